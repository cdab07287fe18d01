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

/* The tunables, each with why. */
static const struct {
	long long address_days; /* a bounce that names only an address is
	                         * about its deliveries of the last 30
	                         * days: the retry lifetime is 5 days and a
	                         * late bounce may come weeks after; older
	                         * deliveries are other releases' business */
} policy_defaults = {30};

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
	enum policy_match match = ev->match;
	bool token =
	    ev->match == POLICY_TOKEN || (ev->match == POLICY_KEYED_ID &&
	                                  ev->kind != STORE_EVENT_UNSUBSCRIBE);

	v->move = -1;
	v->suppress = false;
	v->count_soft = false;
	v->mismatch = false;
	v->held = NULL;

	if (token && !ev->same_address) {
		v->mismatch = true;
		v->held = "the token names another address's delivery";
		return;
	}
	/* another address's Message-ID: nobody's token, no delivery */
	if (!ev->same_address)
		match = POLICY_NONE;
	/* a bounce neither hard nor soft (a sender-side failure) changes
	 * nothing, however it was matched */
	if (!acts ||
	    (ev->kind == STORE_EVENT_BOUNCE && ev->hard != 0 && ev->hard != 1))
		return;
	if (!token) {
		v->held = ev->kind == STORE_EVENT_UNSUBSCRIBE
		              ? policy_held_reply
		              : policy_held_why[match];
		return;
	}
	switch (ev->kind) {
	case STORE_EVENT_BOUNCE:
		if (ev->hard == 1) {
			v->move = DSTATE_BOUNCE;
			v->suppress = true;
		} else {
			v->count_soft = true;
		}
		break;
	case STORE_EVENT_COMPLAINT:
		v->move = DSTATE_COMPLAINT;
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

unsigned policy_soft_window(unsigned window)
{
	return window ? window : STORE_DEFAULT_SOFT_WINDOW;
}

long long policy_address_since(long long now)
{
	return now - policy_defaults.address_days * 86400;
}

void policy_act(const struct policy_verdict *v, long long soft_count,
                unsigned soft_limit, struct policy_action *a)
{
	a->move = v->move;
	a->suppress = v->suppress;
	a->soft_limit = false;
	if (v->count_soft) {
		a->suppress = policy_soft_suppress(soft_count, soft_limit);
		a->soft_limit = true;
	}
}
