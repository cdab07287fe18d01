/*
 * verdict tests: every rule of verdict.c as rows of a table (status,
 * reply code, refused command, what the text says and how sure, the
 * reason, the notice; the verdict and the rule expected), and the rule
 * table itself (names unique, each reachable, hard only where the
 * evidence is unambiguous).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/verdict.h"

static const struct row {
	const char *name;
	const char *status;
	int code;
	const char *command;
	const char *text; /* text_reason */
	int sure;
	const char *reason;
	const char *notice;
	bool temporary;
	int hard;
	const char *rule;
	bool service;
	bool agrees; /* status_agrees */
} rows[] = {
    /* unambiguous: suppress */
    {"5.1.1 and user unknown", "5.1.1", 550, "RCPT", "userunknown", 0,
     "userunknown", NULL, false, 1, "status+text", false, false},
    {"5.1.1, no words", "5.1.1", 550, NULL, NULL, 0, "userunknown", NULL,
     false, 1, "status", false, false},
    {"5.1.2 no such domain", "5.1.2", 0, NULL, "hostunknown", 0,
     "hostunknown", NULL, false, 1, "status+text", false, false},
    {"5.1.10 null MX", "5.1.10", 556, "RCPT", NULL, 0, "notaccept", NULL,
     false, 1, "status", false, false},
    {"5.1.6 moved", "5.1.6", 551, NULL, "hasmoved", 0, "hasmoved", NULL,
     false, 1, "status+text", false, false},
    {"5.4.4 with host not found", "5.4.4", 0, NULL, "hostunknown", 2,
     "hostunknown", NULL, false, 1, "status+text", false, false},
    {"550 at RCPT, user unknown, no status", "", 550, "RCPT", "userunknown",
     0, "userunknown", NULL, false, 1, "rcpt+text", false, false},
    {"550 5.0.0 at RCPT, user unknown", "5.0.0", 550, "RCPT", "userunknown",
     0, "userunknown", NULL, false, 1, "rcpt+text", false, false},
    {"Gmail's sentence alone", "5.0.0", 0, NULL, "userunknown", 2,
     "userunknown", NULL, false, 1, "mta-text", false, false},
    {"5.4.1 its MTA documents, at RCPT", "5.4.1", 550, "RCPT",
     "userunknown", 0, "userunknown", NULL, false, 1, "rcpt+text", false,
     true},
    /* conflicting or thin evidence: soft */
    {"5.1.1 with 552", "5.1.1", 552, "RCPT", "userunknown", 0, "userunknown",
     NULL, false, 0, "code-disagrees", false, false},
    {"5.1.1 saying mailbox full", "5.1.1", 550, NULL, "mailboxfull", 0,
     "mailboxfull", NULL, false, 0, "text-disagrees", false, false},
    {"5.1.1 beside a notice of a full disk", "5.1.1", 550, NULL,
     "userunknown", 0, "userunknown", "mailboxfull", false, 0,
     "notice-disagrees", false, false},
    {"5.2.1 user unknown", "5.2.1", 550, "RCPT", "userunknown", 0,
     "userunknown", NULL, false, 0, "status-disagrees", false, false},
    {"5.4.1 its MTA documents, stage unknown", "5.4.1", 550, NULL,
     "userunknown", 0, "userunknown", NULL, false, 0, "status-disagrees",
     false, true},
    {"5.4.1 its MTA documents, after DATA", "5.4.1", 550, "DATA",
     "userunknown", 0, "userunknown", NULL, false, 0, "after-data", false,
     true},
    {"5.4.1 its MTA documents, beside a full-mailbox notice", "5.4.1", 550,
     "RCPT", "userunknown", 0, "userunknown", "mailboxfull", false, 0,
     "notice-disagrees", false, true},
    {"5.4.1 access denied, no documented pairing", "5.4.1", 550, "RCPT",
     "userunknown", 0, "userunknown", NULL, false, 0, "status-disagrees",
     false, false},
    {"5.4.4 alone", "5.4.4", 0, NULL, NULL, 0, "hostunknown", NULL, false, 0,
     "recipient-side", false, false},
    {"after DATA", "5.1.1", 550, "DATA", "userunknown", 0, "userunknown",
     NULL, false, 0, "after-data", false, false},
    {"550 User unknown, stage unknown", "", 550, NULL, "userunknown", 0,
     "userunknown", NULL, false, 0, "text-only", false, false},
    {"words only, no code", "", 0, NULL, "userunknown", 0, "userunknown",
     NULL, false, 0, "text-only", false, false},
    {"a known sentence with 552", "", 552, NULL, "userunknown", 2,
     "userunknown", NULL, false, 0, "text-only", false, false},
    {"mailbox full", "5.2.2", 552, "RCPT", "mailboxfull", 0, "mailboxfull",
     NULL, false, 0, "recipient-side", false, false},
    {"too large", "5.3.4", 552, "DATA", "mesgtoobig", 0, "mesgtoobig", NULL,
     false, 0, "recipient-side", false, false},
    {"450 4.1.1 user unknown", "4.1.1", 450, "RCPT", "userunknown", 0,
     "userunknown", NULL, false, 0, "temporary", false, false},
    {"550 with 4.x.x", "4.2.2", 550, NULL, "mailboxfull", 0, "mailboxfull",
     NULL, false, 0, "temporary", false, false},
    {"a delay", "5.1.1", 0, NULL, NULL, 0, "expired", NULL, true, 0,
     "temporary", false, false},
    {"a service's receipt rule", "5.1.1", 550, NULL, "userunknown", 0,
     "userunknown", NULL, false, 0, "service-rule", true, false},
    /* about the sender: nothing */
    {"5.7.1 policy", "5.7.1", 550, "RCPT", "policyviolation", 0,
     "policyviolation", NULL, false, -1, "sender-side", false, false},
    {"5.1.1 blocked by a list", "5.1.1", 550, "RCPT", "blocked", 0,
     "blocked", NULL, false, -1, "sender-side", false, false},
    {"relay access denied", "5.7.1", 554, "RCPT", "norelaying", 0,
     "norelaying", NULL, false, -1, "sender-side", false, false},
    {"refused at MAIL FROM", "5.1.1", 550, "MAIL", NULL, 0, "filtered", NULL,
     false, -1, "before-rcpt", false, false},
    {"greylisting", "4.7.1", 451, "RCPT", "blocked", 0, "blocked", NULL,
     false, -1, "sender-side", false, false},
};

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *w = &rows[i];
		struct verdict_in in = {
		    .status = w->status,
		    .code = w->code,
		    .command = w->command,
		    .text_reason = w->text,
		    .text_sure = w->sure,
		    .reason = w->reason,
		    .notice = w->notice,
		    .temporary = w->temporary,
		    .service_rule = w->service,
		    .status_agrees = w->agrees,
		};
		struct verdict v;

		verdict_decide(&in, &v);
		if (v.hard != w->hard || strcmp(v.rule, w->rule) != 0)
			fail_msg("%s: %d by %s, expected %d by %s", w->name,
			         v.hard, v.rule, w->hard, w->rule);
		assert_non_null(v.why);
	}
}

/* Every rule has a unique name, is reached by some row, and only the
 * four of unambiguous evidence are hard. */
static void test_table(void **state)
{
	static const char *const hard[] = {"status+text", "status",
	                                   "rcpt+text", "mta-text"};
	unsigned n;
	const struct verdict_rule *t = verdict_rules(&n);

	(void)state;
	assert_true(n > 0);
	for (unsigned i = 0; i < n; i++) {
		bool used = false, is_hard = false;

		for (unsigned j = i + 1; j < n; j++)
			assert_string_not_equal(t[i].name, t[j].name);
		for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
			used = used || strcmp(rows[k].rule, t[i].name) == 0;
		if (!used)
			fail_msg("rule %s: no row reaches it", t[i].name);
		for (size_t k = 0; k < sizeof hard / sizeof hard[0]; k++)
			is_hard = is_hard || strcmp(hard[k], t[i].name) == 0;
		assert_int_equal(t[i].hard == 1, is_hard);
		assert_true(t[i].why != NULL && t[i].why[0] != '\0');
	}
}

static void test_reason_class(void **state)
{
	(void)state;
	assert_int_equal(verdict_reason_class("userunknown"), 1);
	assert_int_equal(verdict_reason_class("notaccept"), 1);
	assert_int_equal(verdict_reason_class("mailboxfull"), 0);
	assert_int_equal(verdict_reason_class("filtered"), 0);
	assert_int_equal(verdict_reason_class("blocked"), -1);
	assert_int_equal(verdict_reason_class("feedback"), -1);
	assert_int_equal(verdict_reason_class(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_reason_class),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
