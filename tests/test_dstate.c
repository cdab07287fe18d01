/*
 * dstate tests: the delivery state machine as a table. Every legal move
 * is a row (event, from, facts, to); every (event, state) pair not in the
 * table is refused; what each event records is a row too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/dstate.h"

enum {
	Q = STORE_QUEUED,
	SG = STORE_SENDING,
	ST = STORE_SENT,
	DF = STORE_DEFERRED,
	FL = STORE_FAILED,
	BO = STORE_BOUNCED,
	CO = STORE_COMPLAINED,
	EX = STORE_EXPIRED,
	SU = STORE_SUPPRESSED,
	CA = STORE_CANCELLED
};

/* facts: t tried, s suppressed, l lease out, h handed */
#define F(t, s, l, h)                                                          \
	{                                                                      \
		t, s, l, h                                                     \
	}
#define NOF    F(false, false, false, false)
#define TRIED  F(true, false, false, false)
#define SUPP   F(false, true, false, false)
#define LEASE  F(false, false, true, false)
#define HANDED F(false, false, false, true)

static const struct move {
	enum dstate_event ev;
	int from;
	struct dstate_facts f;
	int to; /* -1: refused */
} moves[] = {
    {DSTATE_CLAIM, Q, NOF, SG},
    {DSTATE_CLAIM, DF, TRIED, SG},
    {DSTATE_TAKEOVER, SG, LEASE, SG},
    {DSTATE_TAKEOVER, SG, F(false, false, true, true), SG},
    {DSTATE_TAKEOVER, SG, NOF, -1}, /* its lease still runs */
    {DSTATE_SENT, SG, NOF, ST},
    /* a late "sent" wins over what waits or gave up */
    {DSTATE_SENT, Q, NOF, ST},
    {DSTATE_SENT, DF, NOF, ST},
    {DSTATE_SENT, FL, NOF, ST},
    {DSTATE_SENT, EX, NOF, ST},
    {DSTATE_SENT, SU, NOF, ST},
    {DSTATE_SENT, CA, NOF, ST},
    {DSTATE_DEFERRED, SG, NOF, DF},
    {DSTATE_DEFERRED, SG, SUPP, SU},
    {DSTATE_FAILED, SG, NOF, FL},
    {DSTATE_EXPIRED, SG, NOF, EX},
    {DSTATE_EXPIRE, Q, NOF, EX},
    {DSTATE_EXPIRE, DF, NOF, EX},
    {DSTATE_BOUNCE, Q, NOF, BO},
    {DSTATE_BOUNCE, SG, NOF, BO},
    {DSTATE_BOUNCE, ST, NOF, BO},
    {DSTATE_BOUNCE, DF, NOF, BO},
    {DSTATE_BOUNCE, FL, NOF, BO},
    {DSTATE_BOUNCE, BO, NOF, BO},
    {DSTATE_COMPLAINT, Q, NOF, CO},
    {DSTATE_COMPLAINT, SG, NOF, CO},
    {DSTATE_COMPLAINT, ST, NOF, CO},
    {DSTATE_COMPLAINT, DF, NOF, CO},
    {DSTATE_COMPLAINT, FL, NOF, CO},
    {DSTATE_COMPLAINT, BO, NOF, CO},
    {DSTATE_SUPPRESS, Q, NOF, SU},
    {DSTATE_SUPPRESS, DF, NOF, SU},
    {DSTATE_CANCEL, Q, NOF, CA},
    {DSTATE_CANCEL, DF, NOF, CA},
    {DSTATE_CANCEL, SG, NOF, CA},
    {DSTATE_UNCANCEL, CA, NOF, Q},
    {DSTATE_UNCANCEL, CA, TRIED, DF},
    {DSTATE_UNCANCEL, CA, SUPP, SU},
    {DSTATE_UNCANCEL, CA, F(true, true, false, false), SU},
    {DSTATE_RETRY, FL, TRIED, Q},
    {DSTATE_RETRY, DF, TRIED, Q},
    {DSTATE_RETRY, FL, F(true, true, false, false), -1}, /* suppressed */
    {DSTATE_UNCLAIM, SG, NOF, Q},
    {DSTATE_UNCLAIM, SG, TRIED, DF},
    {DSTATE_ABANDON, SG, NOF, Q},
    {DSTATE_ABANDON, SG, F(true, false, false, true), DF},
    {DSTATE_OWNER_END, SG, NOF, Q},
    {DSTATE_OWNER_END, SG, TRIED, DF},
    {DSTATE_OWNER_END, SG, HANDED, -1}, /* waits for its lease */
    {DSTATE_DROP, SG, NOF, Q},
    {DSTATE_DROP, SG, F(true, false, false, true), DF},
    {DSTATE_DROP_CANCEL, SG, NOF, CA},
    {DSTATE_DROP_CANCEL, SG, HANDED, CA},
};

/* Is (ev, from) in the table above as a move that can be legal? */
static bool listed(enum dstate_event ev, int from)
{
	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++)
		if (moves[i].ev == ev && moves[i].from == from &&
		    moves[i].to != -1)
			return true;
	return false;
}

static void test_moves(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
		const struct move *m = &moves[i];
		enum store_state to = STORE_NSTATES;
		int rc =
		    dstate_next(m->ev, (enum store_state)m->from, &m->f, &to);

		print_message("%s from %s\n", dstate_event_name(m->ev),
		              store_state_name((enum store_state)m->from));
		if (m->to == -1) {
			assert_int_equal(rc, -1);
			assert_int_equal(to, STORE_NSTATES); /* left alone */
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(to, m->to);
		/* the guard a backend writes agrees with the move */
		assert_true(dstate_from(m->ev) & DSTATE_BIT(m->from));
		assert_true(dstate_to(m->ev) & DSTATE_BIT(to));
	}
}

/* Every pair the table does not list is refused, whatever the facts, and
 * is outside dstate_from (the backend's WHERE) */
static void test_refused(void **state)
{
	(void)state;
	for (int ev = 0; ev < DSTATE_NEVENTS; ev++)
		for (int from = 0; from < STORE_NSTATES; from++) {
			if (listed((enum dstate_event)ev, from))
				continue;
			for (unsigned bits = 0; bits < 16; bits++) {
				struct dstate_facts f = {
				    bits & 1, (bits & 2) != 0, (bits & 4) != 0,
				    (bits & 8) != 0};
				enum store_state to = STORE_NSTATES;
				print_message(
				    "%s from %s refused\n",
				    dstate_event_name((enum dstate_event)ev),
				    store_state_name((enum store_state)from));
				/* a listed pair's refusals are rows above */
				assert_int_equal(
				    dstate_next((enum dstate_event)ev,
				                (enum store_state)from, &f,
				                &to),
				    -1);
				assert_int_equal(to, STORE_NSTATES);
			}
			assert_false(dstate_from((enum dstate_event)ev) &
			             DSTATE_BIT(from));
		}
	/* out of range */
	enum store_state to = STORE_NSTATES;
	assert_int_equal(dstate_next((enum dstate_event)DSTATE_NEVENTS,
	                             STORE_QUEUED, NULL, &to),
	                 -1);
	assert_int_equal(
	    dstate_next(DSTATE_CLAIM, (enum store_state)99, NULL, &to), -1);
	assert_int_equal(dstate_from((enum dstate_event)DSTATE_NEVENTS), 0);
	assert_string_equal(
	    dstate_event_name((enum dstate_event)DSTATE_NEVENTS), "unknown");
}

/* No final state is left by anything but a late "sent", a bounce or a
 * complaint; cancelled only by uncancel */
static void test_final(void **state)
{
	(void)state;
	for (int ev = 0; ev < DSTATE_NEVENTS; ev++) {
		unsigned from = dstate_from((enum dstate_event)ev);
		if (from & DSTATE_BIT(STORE_COMPLAINED))
			fail_msg("%s leaves complained",
			         dstate_event_name((enum dstate_event)ev));
		if ((from & DSTATE_BIT(STORE_EXPIRED)) && ev != DSTATE_SENT)
			fail_msg("%s leaves expired",
			         dstate_event_name((enum dstate_event)ev));
		if ((from & DSTATE_BIT(STORE_CANCELLED)) && ev != DSTATE_SENT &&
		    ev != DSTATE_UNCANCEL)
			fail_msg("%s leaves cancelled",
			         dstate_event_name((enum dstate_event)ev));
	}
}

enum {
	LS = DSTATE_SETS_LEASE,
	LC = DSTATE_CLEARS_LEASE,
	OW = DSTATE_SETS_OWNER,
	HC = DSTATE_CLEARS_HANDED,
	NX = DSTATE_SETS_NEXT,
	RT = DSTATE_SETS_RETRIED,
	DU = DSTATE_MAY_DUPLICATE,
	RP = DSTATE_SETS_REPLY,
	TR = DSTATE_COUNTS_TRY,
	UP = DSTATE_SETS_UPDATED
};

static const struct rec {
	enum dstate_event ev;
	const char *name;
	unsigned records;
} recs[] = {
    {DSTATE_CLAIM, "claim", LS | OW | HC | UP},
    {DSTATE_TAKEOVER, "take-over", LS | OW | HC | DU | UP},
    {DSTATE_SENT, "sent", LC | RP | TR | UP},
    {DSTATE_DEFERRED, "deferred", LC | NX | RP | TR | UP},
    {DSTATE_FAILED, "failed", LC | RP | TR | UP},
    {DSTATE_EXPIRED, "expired", LC | RP | TR | UP},
    {DSTATE_EXPIRE, "expire", LC | UP},
    {DSTATE_BOUNCE, "bounce", UP},
    {DSTATE_COMPLAINT, "complaint", UP},
    {DSTATE_SUPPRESS, "suppress", UP},
    {DSTATE_CANCEL, "cancel", LC | UP},
    {DSTATE_UNCANCEL, "uncancel", LC | NX | UP},
    {DSTATE_RETRY, "retry", LC | NX | RT | UP},
    {DSTATE_UNCLAIM, "unclaim", LC | HC | NX | UP},
    {DSTATE_ABANDON, "abandon", LC | HC | NX | DU | UP},
    {DSTATE_OWNER_END, "owner-end", LC | NX | UP},
    {DSTATE_DROP, "drop", LC | HC | NX | UP},
    {DSTATE_DROP_CANCEL, "drop-cancel", LC | HC | UP},
};

static void test_records(void **state)
{
	(void)state;
	assert_int_equal(sizeof(recs) / sizeof(recs[0]), DSTATE_NEVENTS);
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		const struct rec *r = &recs[i];
		unsigned got = dstate_records(r->ev);

		print_message("%s\n", r->name);
		assert_string_equal(dstate_event_name(r->ev), r->name);
		assert_int_equal(got, r->records);
		/* a lease is set or cleared, never both */
		assert_false((got & LS) && (got & LC));
		/* whatever leaves sending clears or renews its lease */
		if (dstate_from(r->ev) == DSTATE_BIT(STORE_SENDING))
			assert_true(got & (LS | LC));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_moves),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_final),
	    cmocka_unit_test(test_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
