/*
 * policy — what an event from the bounce mailbox may do (see policy.h).
 *
 * The costly mistake is to suppress a journalist who still reads mail:
 * they silently stop receiving every release. So nothing that anyone
 * could have written acts: a bounce, complaint or unsubscribe request
 * changes a delivery or the suppression list only with a valid token
 * naming the address it reports. Everything else is kept, with why.
 */
#include "herald/policy.h"

#include <stddef.h>

const char policy_held_reply[] =
    "a reply without a token: waits for an admin (herald suppress confirm)";

/* Why an event matched otherwise than by token is not acted on. */
static const char *const policy_held_why[] = {
    [POLICY_NONE] = "no token of herald's and no delivery of this address",
    [POLICY_TOKEN] = NULL,
    [POLICY_KEYED_ID] = NULL,
    [POLICY_MESSAGE_ID] = "no token of herald's: matched by the returned "
                          "Message-ID only, which a sender can copy",
    [POLICY_ADDRESS] = "no token of herald's: matched by the address "
                       "only, which anyone can write",
};

void policy_event(const struct policy_event *ev, struct policy_verdict *v)
{
	bool acts = ev->kind == STORE_EVENT_BOUNCE ||
	            ev->kind == STORE_EVENT_COMPLAINT ||
	            ev->kind == STORE_EVENT_UNSUBSCRIBE;
	/* a reply names the message it answers: evidence of nothing */
	bool token = ev->match == POLICY_TOKEN ||
	             (ev->match == POLICY_KEYED_ID &&
	              ev->kind != STORE_EVENT_UNSUBSCRIBE);

	v->state = NULL;
	v->suppress = false;
	v->count_soft = false;
	v->mismatch = false;
	v->held = NULL;

	if (token && !ev->same_address) {
		v->mismatch = true;
		v->held = "the token names another address's delivery";
		return;
	}
	/* a bounce neither hard nor soft (a sender-side failure) changes
	 * nothing, however it was matched */
	if (!acts || (ev->kind == STORE_EVENT_BOUNCE && ev->hard != 0 &&
	              ev->hard != 1))
		return;
	if (!token) {
		v->held = ev->kind == STORE_EVENT_UNSUBSCRIBE
		              ? policy_held_reply
		              : policy_held_why[ev->match];
		return;
	}
	switch (ev->kind) {
	case STORE_EVENT_BOUNCE:
		if (ev->hard == 1) {
			v->state = "bounced";
			v->suppress = true;
		} else {
			v->count_soft = true;
		}
		break;
	case STORE_EVENT_COMPLAINT:
		v->state = "complained";
		v->suppress = true;
		break;
	default: /* STORE_EVENT_UNSUBSCRIBE */
		v->suppress = true;
		break;
	}
}

bool policy_soft_suppress(long long count, unsigned limit)
{
	return count >= (long long)(limit ? limit : STORE_DEFAULT_SOFT_LIMIT);
}
