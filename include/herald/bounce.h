/*
 * bounce — turn one message received at herald's return path into one
 * event: a delivery failure (DSN), a complaint (ARF), an auto-reply, or
 * nothing herald needs to act on.
 *
 * Bounces come from every MTA on the internet and are hostile input: the
 * parser caps the message size, the number of parts, recipients and field
 * lengths, and never fails on malformed content — what it cannot make
 * sense of is reported as BOUNCE_NONE. Standard reports (RFC 3464
 * multipart/report; report-type=delivery-status, RFC 5965 feedback
 * reports) are read field by field; the common non-standard formats
 * (Exim, qmail, Sendmail, Postfix and hosted services) are read from their
 * text with conservative patterns.
 *
 * Memory: library code, returns errors instead of aborting on
 * out-of-memory. Every string in a bounce_event is owned by the event
 * except bounce_rcpt.reason, .command, .rule and .why, which point to
 * static storage.
 */
#ifndef HERALD_BOUNCE_H
#define HERALD_BOUNCE_H

#include <stddef.h>

#include "herald/diag.h"

/* Messages larger than this are refused by size. */
#define BOUNCE_MAX_SIZE (10u * 1024u * 1024u)

enum bounce_kind {
	BOUNCE_NONE,      /* not a bounce: a human reply, unknown */
	BOUNCE_DSN,       /* delivery status, standard or not */
	BOUNCE_COMPLAINT, /* ARF feedback report */
	BOUNCE_AUTOREPLY, /* vacation / out of office */
	BOUNCE_UNSUBSCRIBE, /* a reply asking to be left alone */
};

struct bounce_rcpt {
	char *address;      /* lowercased as given; never NULL */
	char *action;       /* DSN Action, or NULL */
	char status[16];    /* "5.1.1", or "" when none was found */
	int code;           /* SMTP reply code (550), 0 when none */
	char *diagnostic;   /* unfolded, "smtp;" stripped, or NULL */
	char *remote_mta;   /* "dns;" stripped, or NULL */
	const char *reason; /* bounce_reason() vocabulary, static */
	int hard;           /* 1 hard, 0 soft, -1 neither */
	/* The SMTP command the remote server refused ("RCPT", "DATA",
	 * "MAIL"), static, or NULL when the report does not say. */
	const char *command;
	/* The verdict's rule and its sentence (verdict.h), static. */
	const char *rule;
	const char *why;
	/* The line of the message the verdict was read from (the report's
	 * Diagnostic-Code or Status field, or the text's line), one line,
	 * control characters made spaces, at most 400 bytes, owned, or
	 * NULL; evidence_line is its number in the message as given to
	 * bounce_parse (1 = first), 0 when the words were not found there
	 * as they stand (in an encoded part, or pasted from several lines:
	 * evidence is then the diagnostic as read). */
	char *evidence;
	unsigned evidence_line;
};

struct bounce_event {
	enum bounce_kind kind;
	struct bounce_rcpt *rcpt;
	size_t nrcpt;
	/* Message-ID of the returned original, without < >, or NULL. */
	char *message_id;
	/* The address the bounce was sent to (Delivered-To, X-Original-To or
	 * To), for VERP matching, or NULL. */
	char *verp_to;
	/* The returned original's Return-Path address and the mailto:
	 * address of its List-Unsubscribe, lowercased, or NULL: where a
	 * feedback loop's complaint carries herald's signed tokens. */
	char *orig_return_path;
	char *orig_unsubscribe;
	/* ARF Feedback-Type ("abuse"), or NULL. */
	char *feedback_type;
};

/* Parse one message (LF, CRLF or CR line ends; a leading mbox "From "
 * line is skipped) into *ev, which is overwritten. Returns 0 with
 * ev->kind possibly BOUNCE_NONE, or -1 with the reason in d when the
 * message is refused (larger than BOUNCE_MAX_SIZE) or memory runs out;
 * on -1 *ev holds nothing to free. On 0 free with bounce_event_free. */
int bounce_parse(const char *msg, size_t len, struct bounce_event *ev,
                 struct diag *d);

/* Free what bounce_parse stored in ev and zero it. NULL-safe. */
void bounce_event_free(struct bounce_event *ev);

/* Classify a failure to the reason vocabulary ("userunknown",
 * "mailboxfull", "blocked", ... "undefined"). Any argument may be NULL /
 * 0. The diagnostic text decides where it is specific; the enhanced
 * status code otherwise. Returns static storage, never NULL. */
const char *bounce_reason(const char *status, int code, const char *diagnostic);

/* 1 when the reason means the address is permanently bad (herald may
 * suppress it), 0 when the failure is temporary or the recipient's side
 * may recover, -1 for reasons that say nothing about the address: the
 * sender's own reputation or setup (blocked, spamdetected,
 * policyviolation, authfailure, requireptr, ...), complaints, auto-replies
 * and delivery reports. NULL gives -1. */
int bounce_reason_hard(const char *reason);

/* The verdict on a refusal given during delivery (a 5xx to RCPT TO or
 * after the dot): the same rules as for a report (verdict.h), with the
 * reason word in *reason. */
struct verdict;
void bounce_reply_verdict(const char *status, int code, const char *command,
                          const char *text, const char **reason,
                          struct verdict *v);

#endif
