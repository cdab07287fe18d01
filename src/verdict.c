/*
 * verdict — hard, soft or neither, and the rule that said so (see
 * verdict.h). The rules are tried in table order; the first that applies
 * decides.
 */
#include "herald/verdict.h"

#include <stddef.h>
#include <string.h>

enum {
	V_SENDER,
	V_TEMPORARY,
	V_BEFORE_RCPT,
	V_SERVICE_RULE,
	V_STATUS_TEXT,
	V_STATUS,
	V_RCPT_TEXT,
	V_MTA_TEXT,
	V_NOTICE_DISAGREES,
	V_AFTER_DATA,
	V_CODE_DISAGREES,
	V_TEXT_DISAGREES,
	V_STATUS_DISAGREES,
	V_TEXT_ONLY,
	V_RECIPIENT_SIDE,
	V_NRULES
};

static const struct verdict_rule verdict_table[V_NRULES] = {
    [V_SENDER] = {"sender-side", -1,
                  "the failure is about the sender (reputation, policy, "
                  "authentication, content, relaying) or is not a failure: "
                  "it says nothing about the address"},
    [V_TEMPORARY] = {"temporary", 0,
                     "a temporary failure (4xx, 4.x.x or a delay): the "
                     "address may work tomorrow"},
    [V_BEFORE_RCPT] = {"before-rcpt", -1,
                       "refused before the recipient was named (at the "
                       "connection or MAIL FROM): about the sender"},
    [V_SERVICE_RULE] = {"service-rule", 0,
                         "written by a rule a mail service's customer set "
                         "up (Amazon SES receiving), not by a mailbox "
                         "lookup: its words prove nothing"},
    [V_STATUS_TEXT] = {"status+text", 1,
                       "the enhanced status names a dead address and the "
                       "text agrees"},
    [V_STATUS] = {"status", 1,
                  "the enhanced status names a dead address and no text "
                  "says otherwise"},
    [V_RCPT_TEXT] = {"rcpt+text", 1,
                     "the server refused RCPT TO with a 5xx reply whose "
                     "text says the address does not exist (and whose "
                     "status, if any, agrees)"},
    [V_MTA_TEXT] = {"mta-text", 1,
                    "a known mail server's or provider's own sentence for "
                    "a missing mailbox or domain"},
    [V_NOTICE_DISAGREES] = {"notice-disagrees", 0,
                            "the report names a dead address but its "
                            "notice to the sender says something else "
                            "(a full mailbox or disk)"},
    [V_AFTER_DATA] = {"after-data", 0,
                      "refused after the message was sent (at DATA): the "
                      "server had accepted the address, a filter speaks"},
    [V_CODE_DISAGREES] = {"code-disagrees", 0,
                          "the status names a dead address but the reply "
                          "code does not agree (552 is a full mailbox)"},
    [V_TEXT_DISAGREES] = {"text-disagrees", 0,
                          "the status names a dead address but the text "
                          "says something else"},
    [V_STATUS_DISAGREES] = {"status-disagrees", 0,
                            "the text says the address is unknown but the "
                            "enhanced status says something else"},
    [V_TEXT_ONLY] = {"text-only", 0,
                     "only a text pattern says the address is unknown: "
                     "no status and no refusal of RCPT TO confirm it"},
    [V_RECIPIENT_SIDE] = {"recipient-side", 0,
                          "a failure on the recipient's side that may "
                          "pass (full mailbox, too large, filter, "
                          "suspended, unknown)"},
};

const struct verdict_rule *verdict_rules(unsigned *n)
{
	*n = V_NRULES;
	return verdict_table;
}

static bool is(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

int verdict_reason_class(const char *reason)
{
	static const char *const hard[] = {"userunknown", "hostunknown",
	                                   "hasmoved", "notaccept"};
	static const char *const neither[] = {
	    "blocked",       "spamdetected", "policyviolation", "authfailure",
	    "requireptr",    "badreputation", "securityerror",  "norelaying",
	    "rejected",      "feedback",      "vacation",       "delivered",
	    "virusdetected", "unsubscribe"};

	if (reason == NULL)
		return -1;
	for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++)
		if (strcmp(reason, hard[i]) == 0)
			return 1;
	for (size_t i = 0; i < sizeof neither / sizeof neither[0]; i++)
		if (strcmp(reason, neither[i]) == 0)
			return -1;
	return 0;
}

/* What the enhanced status says of the address. */
enum st { ST_NONE, ST_ADDRESS, ST_ROUTE, ST_OTHER };

static enum st status_class(const char *s)
{
	static const char *const address[] = {"5.1.1", "5.1.2", "5.1.3",
	                                      "5.1.6", "5.1.10"};

	if (s == NULL || s[0] == '\0')
		return ST_NONE;
	/* X.0.0, and "other" of the address (X.1.0), mail system (X.3.0)
	 * and protocol (X.5.0) classes, say only "failed" */
	if (strcmp(s + 1, ".0.0") == 0 || strcmp(s + 1, ".1.0") == 0 ||
	    strcmp(s + 1, ".3.0") == 0 || strcmp(s + 1, ".5.0") == 0)
		return ST_NONE;
	for (size_t i = 0; i < sizeof address / sizeof address[0]; i++)
		if (strcmp(s, address[i]) == 0)
			return ST_ADDRESS;
	/* "unable to route": the domain is dead only if the text says so */
	if (strcmp(s, "5.4.4") == 0)
		return ST_ROUTE;
	return ST_OTHER;
}

/* The notice to the sender speaks of a mailbox that exists but cannot
 * take the message now. */
static bool notice_disagrees(const char *notice)
{
	return is(notice, "mailboxfull") || is(notice, "suspend") ||
	       is(notice, "systemfull");
}

static void set(struct verdict *out, int rule)
{
	out->hard = verdict_table[rule].hard;
	out->rule = verdict_table[rule].name;
	out->why = verdict_table[rule].why;
}

void verdict_decide(const struct verdict_in *in, struct verdict *out)
{
	enum st st = status_class(in->status);
	int tx = in->text_reason != NULL ? verdict_reason_class(in->text_reason)
	                                 : 2; /* 2: the text says nothing */
	bool code_ok = in->code == 0 || (in->code / 100 == 5 && in->code != 552);
	bool temporary = in->temporary || in->code / 100 == 4 ||
	                 (in->status != NULL && in->status[0] == '4');

	if (verdict_reason_class(in->reason) == -1 || tx == -1) {
		set(out, V_SENDER);
		return;
	}
	if (temporary) {
		set(out, V_TEMPORARY);
		return;
	}
	if (is(in->command, "MAIL") || is(in->command, "CONN") ||
	    is(in->command, "HELO") || is(in->command, "EHLO")) {
		set(out, V_BEFORE_RCPT);
		return;
	}
	if (in->service_rule) {
		set(out, V_SERVICE_RULE);
		return;
	}
	if (st == ST_ROUTE)
		st = is(in->text_reason, "hostunknown") ||
		             is(in->text_reason, "notaccept")
		         ? ST_ADDRESS
		         : ST_OTHER;
	if (is(in->command, "DATA") && (st == ST_ADDRESS || tx == 1)) {
		set(out, V_AFTER_DATA);
		return;
	}
	if (st == ST_ADDRESS) {
		if (!code_ok)
			set(out, V_CODE_DISAGREES);
		else if (tx == 0)
			set(out, V_TEXT_DISAGREES);
		else if (notice_disagrees(in->notice))
			set(out, V_NOTICE_DISAGREES);
		else
			set(out, tx == 1 ? V_STATUS_TEXT : V_STATUS);
		return;
	}
	if (tx == 1) {
		bool rcpt =
		    is(in->command, "RCPT") && in->code / 100 == 5 && code_ok;

		/* a status its MTA documents with these words for a
		 * recipient it does not have agrees, at RCPT TO only */
		if (st == ST_OTHER && !(in->status_agrees && rcpt))
			set(out, V_STATUS_DISAGREES);
		else if (notice_disagrees(in->notice))
			set(out, V_NOTICE_DISAGREES);
		else if (rcpt)
			set(out, V_RCPT_TEXT);
		else if (in->text_sure >= 2 && code_ok)
			set(out, V_MTA_TEXT);
		else
			set(out, V_TEXT_ONLY);
		return;
	}
	set(out, V_RECIPIENT_SIDE);
}
