/*
 * dstate — the delivery state machine as one table (see dstate.h).
 *
 * Each row is an event: the states it may move a delivery from, the
 * states it may move it to, and what it records. Where an event has more
 * than one target, dstate_next chooses by the facts a backend reads with
 * the row (tried before, address suppressed, lease out, handed over). The
 * SQLite store builds the WHERE of every UPDATE of a delivery's state from
 * dstate_from, so what is legal is said here once.
 */
#include "herald/dstate.h"

#include <stddef.h>

#define B(s)       DSTATE_BIT(STORE_##s)
#define WAITING    (B(QUEUED) | B(DEFERRED))
#define REQUEUE    (B(QUEUED) | B(DEFERRED)) /* deferred when tried */
#define ALL_STATES ((1u << STORE_NSTATES) - 1u)

static const struct dstate_row {
	const char *name;
	unsigned from, to, records;
} dstate_rows[DSTATE_NEVENTS] = {
    [DSTATE_CLAIM] = {"claim", WAITING, B(SENDING),
                      DSTATE_SETS_LEASE | DSTATE_SETS_OWNER |
                          DSTATE_CLEARS_HANDED | DSTATE_SETS_UPDATED},
    /* only once the lease ran out (dstate_next); one handed to a relay
     * may have reached its journalist: a duplicate is possible */
    [DSTATE_TAKEOVER] = {"take-over", B(SENDING), B(SENDING),
                         DSTATE_SETS_LEASE | DSTATE_SETS_OWNER |
                             DSTATE_CLEARS_HANDED | DSTATE_MAY_DUPLICATE |
                             DSTATE_SETS_UPDATED},
    /* a late "sent" (the result of a claim given back or taken over)
     * still wins over what waits or gave up: the journalist has it. It
     * never overwrites a bounce or complaint, which is later news. */
    [DSTATE_SENT] = {"sent",
                     ALL_STATES & ~(B(SENT) | B(BOUNCED) | B(COMPLAINED)),
                     B(SENT),
                     DSTATE_CLEARS_LEASE | DSTATE_SETS_REPLY |
                         DSTATE_COUNTS_TRY | DSTATE_SETS_UPDATED},
    [DSTATE_DEFERRED] = {"deferred", B(SENDING), B(DEFERRED) | B(SUPPRESSED),
                         DSTATE_CLEARS_LEASE | DSTATE_SETS_NEXT |
                             DSTATE_SETS_REPLY | DSTATE_COUNTS_TRY |
                             DSTATE_SETS_UPDATED},
    [DSTATE_FAILED] = {"failed", B(SENDING), B(FAILED),
                       DSTATE_CLEARS_LEASE | DSTATE_SETS_REPLY |
                           DSTATE_COUNTS_TRY | DSTATE_SETS_UPDATED},
    [DSTATE_EXPIRED] = {"expired", B(SENDING), B(EXPIRED),
                        DSTATE_CLEARS_LEASE | DSTATE_SETS_REPLY |
                            DSTATE_COUNTS_TRY | DSTATE_SETS_UPDATED},
    [DSTATE_EXPIRE] = {"expire", WAITING, B(EXPIRED),
                       DSTATE_CLEARS_LEASE | DSTATE_SETS_UPDATED},
    /* a bounce may follow a "sent" (the usual case), a deferral, a
     * failure or another bounce; a complaint may follow a bounce */
    [DSTATE_BOUNCE] = {"bounce",
                       WAITING | B(SENDING) | B(SENT) | B(FAILED) | B(BOUNCED),
                       B(BOUNCED), DSTATE_SETS_UPDATED},
    [DSTATE_COMPLAINT] = {"complaint",
                          WAITING | B(SENDING) | B(SENT) | B(FAILED) |
                              B(BOUNCED),
                          B(COMPLAINED), DSTATE_SETS_UPDATED},
    /* what is claimed goes out; its result finds the suppression
     * (DSTATE_DEFERRED) */
    [DSTATE_SUPPRESS] = {"suppress", WAITING, B(SUPPRESSED),
                         DSTATE_SETS_UPDATED},
    [DSTATE_CANCEL] = {"cancel", WAITING | B(SENDING), B(CANCELLED),
                       DSTATE_CLEARS_LEASE | DSTATE_SETS_UPDATED},
    /* to suppressed when the address was suppressed meanwhile (then
     * nothing but updated_at is written), else due now */
    [DSTATE_UNCANCEL] = {"uncancel", B(CANCELLED), REQUEUE | B(SUPPRESSED),
                         DSTATE_CLEARS_LEASE | DSTATE_SETS_NEXT |
                             DSTATE_SETS_UPDATED},
    /* never a suppressed address (dstate_next) */
    [DSTATE_RETRY] = {"retry", B(FAILED) | B(DEFERRED), B(QUEUED),
                      DSTATE_CLEARS_LEASE | DSTATE_SETS_NEXT |
                          DSTATE_SETS_RETRIED | DSTATE_SETS_UPDATED},
    [DSTATE_UNCLAIM] = {"unclaim", B(SENDING), REQUEUE,
                        DSTATE_CLEARS_LEASE | DSTATE_CLEARS_HANDED |
                            DSTATE_SETS_NEXT | DSTATE_SETS_UPDATED},
    [DSTATE_ABANDON] = {"abandon", B(SENDING), REQUEUE,
                        DSTATE_CLEARS_LEASE | DSTATE_CLEARS_HANDED |
                            DSTATE_SETS_NEXT | DSTATE_MAY_DUPLICATE |
                            DSTATE_SETS_UPDATED},
    /* only what was never handed to a relay (dstate_next); the rest
     * waits for its lease */
    [DSTATE_OWNER_END] = {"owner-end", B(SENDING), REQUEUE,
                          DSTATE_CLEARS_LEASE | DSTATE_SETS_NEXT |
                              DSTATE_SETS_UPDATED},
    [DSTATE_DROP] = {"drop", B(SENDING), REQUEUE,
                     DSTATE_CLEARS_LEASE | DSTATE_CLEARS_HANDED |
                         DSTATE_SETS_NEXT | DSTATE_SETS_UPDATED},
    [DSTATE_DROP_CANCEL] = {"drop-cancel", B(SENDING), B(CANCELLED),
                            DSTATE_CLEARS_LEASE | DSTATE_CLEARS_HANDED |
                                DSTATE_SETS_UPDATED},
};

static const struct dstate_row *dstate_row(enum dstate_event ev)
{
	return (unsigned)ev < DSTATE_NEVENTS ? &dstate_rows[ev] : NULL;
}

unsigned dstate_from(enum dstate_event ev)
{
	const struct dstate_row *r = dstate_row(ev);
	return r ? r->from : 0;
}

unsigned dstate_to(enum dstate_event ev)
{
	const struct dstate_row *r = dstate_row(ev);
	return r ? r->to : 0;
}

unsigned dstate_records(enum dstate_event ev)
{
	const struct dstate_row *r = dstate_row(ev);
	return r ? r->records : 0;
}

const char *dstate_event_name(enum dstate_event ev)
{
	const struct dstate_row *r = dstate_row(ev);
	return r ? r->name : "unknown";
}

int dstate_next(enum dstate_event ev, enum store_state from,
                const struct dstate_facts *f, enum store_state *to)
{
	static const struct dstate_facts none;
	const struct dstate_row *r = dstate_row(ev);
	enum store_state next;

	if (f == NULL)
		f = &none;
	if (r == NULL || (unsigned)from >= STORE_NSTATES ||
	    !(r->from & DSTATE_BIT(from)))
		return -1;
	switch (ev) {
	case DSTATE_TAKEOVER:
		if (!f->lease_out)
			return -1;
		next = STORE_SENDING;
		break;
	case DSTATE_RETRY:
		if (f->suppressed)
			return -1;
		next = STORE_QUEUED;
		break;
	case DSTATE_OWNER_END:
		if (f->handed)
			return -1;
		next = f->tried ? STORE_DEFERRED : STORE_QUEUED;
		break;
	case DSTATE_DEFERRED:
		next = f->suppressed ? STORE_SUPPRESSED : STORE_DEFERRED;
		break;
	case DSTATE_UNCANCEL:
		next = f->suppressed ? STORE_SUPPRESSED
		       : f->tried    ? STORE_DEFERRED
		                     : STORE_QUEUED;
		break;
	default:
		if (r->to == REQUEUE) {
			next = f->tried ? STORE_DEFERRED : STORE_QUEUED;
			break;
		}
		/* one target */
		next = STORE_QUEUED;
		while (!(r->to & DSTATE_BIT(next)))
			next = (enum store_state)(next + 1);
		break;
	}
	*to = next;
	return 0;
}
