/*
 * policy tests: every rule of policy.c as a row of a table (the kind of
 * event, hard or soft, how it was tied to a delivery, whether the
 * delivery is to the address it names; what it may do and why not), and
 * the soft limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/policy.h"

enum {
	B = STORE_EVENT_BOUNCE,
	C = STORE_EVENT_COMPLAINT,
	U = STORE_EVENT_UNSUBSCRIBE,
	A = STORE_EVENT_AUTOREPLY,
	X = STORE_EVENT_UNKNOWN
};
enum { MB = DSTATE_BOUNCE, MC = DSTATE_COMPLAINT };
enum {
	T = POLICY_TOKEN,
	K = POLICY_KEYED_ID,
	M = POLICY_MESSAGE_ID,
	D = POLICY_ADDRESS,
	N = POLICY_NONE
};

static const struct row {
	const char *name;
	int kind, hard, match;
	bool same;
	int move; /* a dstate move, -1: none */
	bool suppress, soft, mismatch;
	const char *held; /* a word of the reason, or NULL: none */
} rows[] = {
    {"hard bounce, token", B, 1, T, true, MB, true, false, false, NULL},
    {"soft bounce, token", B, 0, T, true, -1, false, true, false, NULL},
    {"neither, token", B, -1, T, true, -1, false, false, false, NULL},
    {"complaint, token", C, -1, T, true, MC, true, false, false, NULL},
    {"unsubscribe address", U, -1, T, true, -1, true, false, false, NULL},
    {"hard bounce, keyed Message-ID", B, 1, K, true, MB, true, false, false,
     NULL},
    {"soft bounce, keyed Message-ID", B, 0, K, true, -1, false, true, false,
     NULL},
    {"complaint, keyed Message-ID", C, -1, K, true, MC, true, false, false,
     NULL},
    {"keyed Message-ID of another", B, 1, K, false, -1, false, false, true,
     "another address"},
    {"reply to a keyed Message-ID", U, -1, K, true, -1, false, false, false,
     "waits for an admin"},
    {"token of another address", B, 1, T, false, -1, false, false, true,
     "another address"},
    {"complaint, token of another", C, -1, T, false, -1, false, false, true,
     "another address"},
    {"hard bounce by Message-ID", B, 1, M, true, -1, false, false, false,
     "Message-ID"},
    {"hard bounce by address", B, 1, D, true, -1, false, false, false,
     "address only"},
    {"soft bounce by address", B, 0, D, true, -1, false, false, false,
     "address only"},
    {"hard bounce, no delivery", B, 1, N, true, -1, false, false, false,
     "no token"},
    {"complaint by address", C, -1, D, true, -1, false, false, false,
     "address only"},
    {"complaint by Message-ID", C, -1, M, true, -1, false, false, false,
     "Message-ID"},
    {"reply by Message-ID", U, -1, M, true, -1, false, false, false,
     "waits for an admin"},
    {"reply by address", U, -1, D, true, -1, false, false, false,
     "waits for an admin"},
    {"reply, no delivery", U, -1, N, true, -1, false, false, false,
     "waits for an admin"},
    {"neither by address", B, -1, D, true, -1, false, false, false, NULL},
    {"autoreply", A, -1, D, true, -1, false, false, false, NULL},
    {"unknown", X, -1, N, true, -1, false, false, false, NULL},
    /* another address's Message-ID ties the event to no delivery */
    {"bounce, Message-ID of another", B, 1, M, false, -1, false, false, false,
     "no delivery"},
    {"complaint, Message-ID of another", C, -1, M, false, -1, false, false,
     false, "no delivery"},
    {"reply, Message-ID of another", U, -1, M, false, -1, false, false, false,
     "waits for an admin"},
    {"reply, keyed Message-ID of another", U, -1, K, false, -1, false, false,
     false, "waits for an admin"},
    {"autoreply, Message-ID of another", A, -1, M, false, -1, false, false,
     false, NULL},
};

/* policy_event's verdict on an event of a row */
static void judge(int kind, int hard, int match, bool same,
                  struct policy_verdict *v)
{
	struct policy_event ev = {.kind = (enum store_event_kind)kind,
	                          .hard = hard,
	                          .match = (enum policy_match)match,
	                          .same_address = same};
	policy_event(&ev, v);
}

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct policy_verdict v;

		judge(r->kind, r->hard, r->match, r->same, &v);
		print_message("%s\n", r->name);
		assert_int_equal(v.move, r->move);
		assert_int_equal(v.suppress, r->suppress);
		assert_int_equal(v.count_soft, r->soft);
		assert_int_equal(v.mismatch, r->mismatch);
		if (r->held == NULL)
			assert_null(v.held);
		else
			assert_non_null(strstr(v.held, r->held));
		/* whatever acts was matched by a token for its own address */
		if (v.move != -1 || v.suppress || v.count_soft)
			assert_true((r->match == T || r->match == K) &&
			            r->same);
	}
}

static void test_soft_limit(void **state)
{
	(void)state;
	assert_false(policy_soft_suppress(2, 0));
	assert_true(policy_soft_suppress(STORE_DEFAULT_SOFT_LIMIT, 0));
	assert_false(policy_soft_suppress(4, 5));
	assert_true(policy_soft_suppress(5, 5));
	assert_true(policy_soft_suppress(1, 1));
}

static void test_windows(void **state)
{
	(void)state;
	assert_int_equal(policy_soft_window(0), STORE_DEFAULT_SOFT_WINDOW);
	assert_int_equal(policy_soft_window(7 * 86400), 7 * 86400);
	assert_int_equal(policy_address_since(100LL * 86400), 70LL * 86400);
}

/* What the store does: the verdict's move and suppression, or, for a
 * soft bounce, the limit's decision on the count */
static const struct act_row {
	const char *name;
	int kind, hard, match;
	long long count;
	unsigned limit;
	int move;
	bool suppress, soft_limit;
} acts[] = {
    {"hard bounce", B, 1, T, 0, 0, MB, true, false},
    {"complaint", C, -1, T, 0, 0, MC, true, false},
    {"unsubscribe", U, -1, T, 0, 0, -1, true, false},
    {"soft, below the limit", B, 0, T, 2, 0, -1, false, true},
    {"soft, at the limit", B, 0, T, 3, 0, -1, true, true},
    {"soft, at a limit of 5", B, 0, T, 5, 5, -1, true, true},
    {"soft, below a limit of 5", B, 0, K, 4, 5, -1, false, true},
    {"soft by address: not counted", B, 0, D, 9, 1, -1, false, false},
    {"hard by Message-ID", B, 1, M, 0, 0, -1, false, false},
};

static void test_act(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		const struct act_row *r = &acts[i];
		struct policy_verdict v;
		struct policy_action a;

		print_message("%s\n", r->name);
		judge(r->kind, r->hard, r->match, true, &v);
		policy_act(&v, r->count, r->limit, &a);
		assert_int_equal(a.move, r->move);
		assert_int_equal(a.suppress, r->suppress);
		assert_int_equal(a.soft_limit, r->soft_limit);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows),
	    cmocka_unit_test(test_soft_limit),
	    cmocka_unit_test(test_windows),
	    cmocka_unit_test(test_act),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
