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

enum { B = STORE_EVENT_BOUNCE, C = STORE_EVENT_COMPLAINT,
       U = STORE_EVENT_UNSUBSCRIBE, A = STORE_EVENT_AUTOREPLY,
       X = STORE_EVENT_UNKNOWN };
enum { T = POLICY_TOKEN, K = POLICY_KEYED_ID, M = POLICY_MESSAGE_ID,
       D = POLICY_ADDRESS, N = POLICY_NONE };

static const struct row {
	const char *name;
	int kind, hard, match;
	bool same;
	const char *state;
	bool suppress, soft, mismatch;
	const char *held; /* a word of the reason, or NULL: none */
} rows[] = {
    {"hard bounce, token", B, 1, T, true, "bounced", true, false, false, NULL},
    {"soft bounce, token", B, 0, T, true, NULL, false, true, false, NULL},
    {"neither, token", B, -1, T, true, NULL, false, false, false, NULL},
    {"complaint, token", C, -1, T, true, "complained", true, false, false,
     NULL},
    {"unsubscribe address", U, -1, T, true, NULL, true, false, false, NULL},
    {"hard bounce, keyed Message-ID", B, 1, K, true, "bounced", true, false,
     false, NULL},
    {"soft bounce, keyed Message-ID", B, 0, K, true, NULL, false, true, false,
     NULL},
    {"complaint, keyed Message-ID", C, -1, K, true, "complained", true,
     false, false, NULL},
    {"keyed Message-ID of another", B, 1, K, false, NULL, false, false, true,
     "another address"},
    {"reply to a keyed Message-ID", U, -1, K, true, NULL, false, false,
     false, "waits for an admin"},
    {"token of another address", B, 1, T, false, NULL, false, false, true,
     "another address"},
    {"complaint, token of another", C, -1, T, false, NULL, false, false,
     true, "another address"},
    {"hard bounce by Message-ID", B, 1, M, true, NULL, false, false, false,
     "Message-ID"},
    {"hard bounce by address", B, 1, D, true, NULL, false, false, false,
     "address only"},
    {"soft bounce by address", B, 0, D, true, NULL, false, false, false,
     "address only"},
    {"hard bounce, no delivery", B, 1, N, true, NULL, false, false, false,
     "no token"},
    {"complaint by address", C, -1, D, true, NULL, false, false, false,
     "address only"},
    {"complaint by Message-ID", C, -1, M, true, NULL, false, false, false,
     "Message-ID"},
    {"reply by Message-ID", U, -1, M, true, NULL, false, false, false,
     "waits for an admin"},
    {"reply by address", U, -1, D, true, NULL, false, false, false,
     "waits for an admin"},
    {"reply, no delivery", U, -1, N, true, NULL, false, false, false,
     "waits for an admin"},
    {"neither by address", B, -1, D, true, NULL, false, false, false, NULL},
    {"autoreply", A, -1, D, true, NULL, false, false, false, NULL},
    {"unknown", X, -1, N, true, NULL, false, false, false, NULL},
};

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct policy_event ev = {.kind = (enum store_event_kind)r->kind,
		                          .hard = r->hard,
		                          .match = (enum policy_match)r->match,
		                          .same_address = r->same};
		struct policy_verdict v;

		policy_event(&ev, &v);
		print_message("%s\n", r->name);
		if (r->state == NULL)
			assert_null(v.state);
		else
			assert_string_equal(v.state, r->state);
		assert_int_equal(v.suppress, r->suppress);
		assert_int_equal(v.count_soft, r->soft);
		assert_int_equal(v.mismatch, r->mismatch);
		if (r->held == NULL)
			assert_null(v.held);
		else
			assert_non_null(strstr(v.held, r->held));
		/* whatever acts was matched by a token for its own address */
		if (v.state != NULL || v.suppress || v.count_soft)
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows),
	    cmocka_unit_test(test_soft_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
