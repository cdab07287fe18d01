/*
 * verdict — whether one delivery failure says the journalist's address is
 * dead (hard: suppressed for good), may recover (soft: counts toward the
 * soft limit) or says nothing about the address (neither: the sender's
 * own reputation, set-up or content).
 *
 * A hard verdict silently ends a journalist's releases, so it needs
 * unambiguous evidence: an enhanced status that names the address
 * (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10; 5.4.4 only with text saying the
 * domain does not exist) with no reply code or text saying otherwise; a
 * 5xx refusal of RCPT TO whose text says the address is unknown (and
 * whose status, if any, names the address, says only "failed", or is
 * the one its MTA documents with those words: status_agrees); or a
 * known MTA's or provider's whole sentence for it. Words alone ("550
 * User unknown" from an unknown stage of an unknown server), a refusal
 * after DATA, a status or a notice that contradicts the text and every
 * mailbox-full, filter, policy, security, reputation or content verdict
 * count toward the soft path or nothing.
 *
 * Pure: used by the bounce reader (bounce.c) for every recipient of a
 * report and by the delivery policy (trouble.c) for a 5xx at RCPT time,
 * so both decide alike. Every verdict names the rule that made it.
 */
#ifndef HERALD_VERDICT_H
#define HERALD_VERDICT_H

#include <stdbool.h>

struct verdict_in {
	const char *status;      /* enhanced status "5.1.1", "" or NULL */
	int code;                /* SMTP reply code, 0 when none */
	const char *command;     /* refused command "RCPT", "DATA", "MAIL",
	                          * NULL when not known */
	const char *text_reason; /* what the text says (a reason word of
	                          * bounce_reason's vocabulary from a phrase),
	                          * NULL when no phrase was recognised */
	int text_sure;           /* for an address reason: 2 when the text
	                          * is a known MTA's or provider's whole
	                          * sentence for a missing mailbox or domain
	                          * (enough alone), 0 for words that need a
	                          * status or RCPT TO to confirm them */
	const char *reason;      /* the reason reported for the failure */
	const char *notice;      /* what the message's human-readable part
	                          * says (a reason word), NULL: nothing */
	bool temporary;          /* the report says delayed / will retry */
	bool service_rule;       /* the report was made by a rule a mail
	                          * service's customer configured, not by a
	                          * mailbox lookup (Amazon SES receiving's
	                          * bounce action: its words are whatever the
	                          * rule says) */
	bool status_agrees;      /* the status is not one of an address, but
	                          * it is the one a known MTA documents with
	                          * these very words for a recipient it does
	                          * not have (Exchange Online's directory-based
	                          * edge blocking, 5.4.1 "Recipient address
	                          * rejected: Access denied"): it confirms a
	                          * refusal of RCPT TO instead of
	                          * contradicting it */
};

struct verdict {
	int hard;         /* 1 hard, 0 soft, -1 neither */
	const char *rule; /* the rule's stable name ("status+text", ...) */
	const char *why;  /* one sentence for an admin */
};

/* Decide. Never fails; static strings. */
void verdict_decide(const struct verdict_in *in, struct verdict *out);

/* 1 when reason is one that names a dead address (userunknown,
 * hostunknown, hasmoved, notaccept), -1 when it is about the sender's
 * side (blocked, spamdetected, policyviolation, ...), complaints,
 * auto-replies and delivery reports, 0 otherwise. NULL gives -1. */
int verdict_reason_class(const char *reason);

/* The table of rules, for documentation and tests: each rule's name,
 * its verdict and its sentence, in the order they are tried; *n is set
 * to their number. */
struct verdict_rule {
	const char *name;
	int hard;
	const char *why;
};
const struct verdict_rule *verdict_rules(unsigned *n);

#endif
