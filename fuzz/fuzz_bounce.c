/*
 * fuzz_bounce — bounce_parse on any message, then bounce_event_free. The
 * parser must never fail on content (only on size or memory), and what it
 * returns must keep the promises of bounce.h: every recipient has an
 * address, statuses are terminated, reasons are from the vocabulary.
 */
#include <string.h>

#include "fuzz.h"
#include "herald/bounce.h"
#include "herald/diag.h"

/* A kind bounce.h names; -Wswitch says when a new one is added. */
static int kind_known(enum bounce_kind k)
{
	switch (k) {
	case BOUNCE_NONE:
	case BOUNCE_DSN:
	case BOUNCE_COMPLAINT:
	case BOUNCE_AUTOREPLY:
	case BOUNCE_UNSUBSCRIBE:
		return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bounce_event ev;
	struct diag d = {0};

	if (bounce_parse((const char *)data, size, &ev, &d) < 0) {
		FUZZ_CHECK(size > BOUNCE_MAX_SIZE, "refused by content");
		diag_clear(&d);
		return 0;
	}
	FUZZ_CHECK(kind_known(ev.kind), "an unknown kind");
	FUZZ_CHECK(ev.nrcpt == 0 || ev.rcpt != NULL, "recipients missing");
	for (size_t i = 0; i < ev.nrcpt; i++) {
		const struct bounce_rcpt *r = &ev.rcpt[i];

		FUZZ_CHECK(r->address != NULL, "a recipient without address");
		FUZZ_CHECK(memchr(r->status, '\0', sizeof(r->status)) != NULL,
		           "status not terminated");
		FUZZ_CHECK(r->hard >= -1 && r->hard <= 1, "hard out of range");
		if (r->reason != NULL)
			(void)bounce_reason_hard(r->reason);
	}
	bounce_event_free(&ev);
	FUZZ_CHECK(ev.rcpt == NULL && ev.nrcpt == 0, "free left the event");
	diag_clear(&d);
	return 0;
}
