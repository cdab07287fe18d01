/*
 * bounce_int — what the files of the bounce reader share; bounce.h says
 * what the reader does, and bounce.c's opening comment which file does
 * which part of it. Private to the library: not installed, not in
 * include/.
 *
 * Memory: as bounce.h, NULL or -1 on out-of-memory, never an abort.
 * Returned strings are the caller's to free unless said otherwise
 * (pointers into the input, static words).
 */
#ifndef HERALD_BOUNCE_INT_H
#define HERALD_BOUNCE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/bounce.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Tunables of the whole reader, in one table: each bounds what a hostile
 * message can make it do. */
enum {
	/* Walk no deeper: real reports are 2-3 levels deep; more is an
	 * attack on the stack. */
	BOUNCE_MAX_DEPTH = 16,
	/* Parts looked at per message: reports have 2-4. */
	BOUNCE_MAX_PARTS = 256,
	/* Recipients per event: a message to a list domain can fail for
	 * hundreds at once, but not for more than this. */
	BOUNCE_MAX_RCPT = 1000,
	/* A field value kept in an event (a diagnostic can be a paragraph). */
	BOUNCE_MAX_VALUE = 2048,
	/* the longest evidence line kept */
	BOUNCE_EVIDENCE_MAX = 400,
	/* how much of the notice to the sender is read for what it says */
	BOUNCE_NOTICE_WINDOW = 4096,
	/* Text scanned for non-standard bounces. */
	BOUNCE_MAX_TEXT = 256 * 1024,
	/* RFC 5321: a path is at most 256 octets. */
	BOUNCE_MAX_ADDR = 254,
	/* Text after a recipient's line that explains its failure. */
	BOUNCE_DIAG_WINDOW = 600,
};

/* ---- the event (bounce.c) ---- */

/* Add the recipient addr to ev, which takes addr (and frees it when it is
 * not added): 1 when added (the last of ev->rcpt, its verdict "neither"
 * until judged), 0 when ev has it already or holds BOUNCE_MAX_RCPT, -1 on
 * out-of-memory. */
int bounce_rcpt_add(struct bounce_event *ev, char *addr);

/* What the top-level header says about the message; the char * are
 * owned. */
struct bounce_head {
	char *subj;        /* unfolded, or NULL */
	char *subj_dec;    /* decoded, or NULL */
	char *from;        /* address, or NULL */
	char *from_raw;    /* the whole From field, display name included */
	char *to;          /* first address of To, or NULL */
	const char *ofrom; /* the original's From */
	const char *oto;   /* the original's To */
	int strong;        /* sure to be from a mail system */
};

/* Whether the message's From (address or display name) is a mail
 * system's: mailer-daemon, postmaster, "Mail Delivery System", ... */
int bounce_head_is_daemon(const struct bounce_head *h);

/* Whether the subject, as given or decoded, holds one of list[0..n),
 * compared without case. */
int bounce_head_subject_has(const struct bounce_head *h,
                            const char *const *list, size_t n);

/* Whether the subject says that a delivery failed or is delayed
 * ("Undeliverable", "failure notice", "Delivery delayed", ...). */
int bounce_head_is_failure(const struct bounce_head *h);

/* ---- strings (bounce_str.c) ---- */

/* A NUL-terminated copy of s[0..n); NULL on out-of-memory. */
char *bounce_str_ndup(const char *s, size_t n);

/* A header value v[0..n) unfolded, control characters made spaces,
 * trimmed and cut to BOUNCE_MAX_VALUE bytes; NULL on out-of-memory. */
char *bounce_str_clean(const char *v, size_t n);

/* A lowercase copy of s, at most cap bytes; NULL on out-of-memory. */
char *bounce_str_lower(const char *s, size_t cap);

/* The first place in h (NUL-terminated, may be NULL) where n stands,
 * compared without case, or NULL. */
const char *bounce_str_casestr(const char *h, const char *n);

/* ---- addresses (bounce_addr.c) ---- */

/* Whether c may stand in an address (atext, '.'); '@' is not. */
int bounce_addr_char(int c);

/* The length of the address at s (atext local part, '@', a dotted
 * domain, at most BOUNCE_MAX_ADDR bytes), or 0. */
size_t bounce_addr_len(const char *s);

/* A lowercase copy of the address s[0..n); NULL on out-of-memory. */
char *bounce_addr_dup(const char *s, size_t n);

/* The first address in s ("rfc822; <a@b>", "a@b", "Name <a@b>"),
 * lowercased, or NULL. Sets *oom on out-of-memory. */
char *bounce_addr_scan(const char *s, int *oom);

/* The address of a report field's value after its "type;" ("rfc822;
 * a@b"), as bounce_addr_scan. */
char *bounce_addr_from(const char *v, int *oom);

/* The first address of an address field's value ("Name <a@b>, c@d"):
 * the one in angle brackets, or the first bare one; lowercased, or NULL.
 * Sets *oom on out-of-memory. */
char *bounce_addr_first(const char *v, int *oom);

/* ---- the message's structure (bounce_mime.c) ---- */

/* What bounce_mime_walk collects. dsn, arf and orig are slices of the
 * message, or of a decoded copy held in the matching *_own. */
struct bounce_scan {
	int report_dsn, report_arf;
	const char *dsn; /* message/delivery-status body, CRLF */
	size_t ndsn;
	const char *arf; /* message/feedback-report body, CRLF */
	size_t narf;
	const char *orig; /* returned original's header block, CRLF */
	size_t norig;
	char *dsn_own, *arf_own, *orig_own;
	char *text; /* human-readable text, NUL-terminated, owned */
	size_t ntext;
	size_t nfirst; /* length of the first text part in text */
	size_t parts;
};

/* What the returned original's header says; owned strings or NULL. */
struct bounce_orig {
	char *mid;  /* Message-ID without < > */
	char *from; /* first address of From */
	char *to;   /* first address of To */
	char *hmx;  /* X-HmXmrOriginalRecipient (Outlook.com complaints) */
	char *rp;   /* the address of Return-Path */
	char *lu;   /* the mailto: address of List-Unsubscribe */
};

/* One field of a CRLF header block: the name and the raw value (still
 * folded, without the final CRLF). */
struct bounce_hfield {
	const char *name, *val;
	size_t nname, nval;
};

/* The fields of the top-level header that the reader uses, each its
 * first occurrence: one pass over the header, nothing parsed or copied
 * for the others (Received, DKIM, ARC... are most of a header). */
enum bounce_top_field {
	T_FROM,
	T_TO,
	T_SUBJECT,
	T_IN_REPLY_TO,
	T_REFERENCES,
	T_DELIVERED_TO,
	T_X_ORIGINAL_TO,
	T_AUTO_SUBMITTED,
	T_X_AUTOREPLY,
	T_X_AUTORESPOND,
	T_X_FAILED_RECIPIENTS,
	NTOP
};

/* Those fields of one message, raw: slices of the message. */
struct bounce_top {
	const char *v[NTOP]; /* raw value, or NULL when absent */
	size_t n[NTOP];
};

/* A copy of msg[0..len) with CRLF line ends, NULs made spaces and a
 * leading mbox "From " line dropped, its length in *out; NULL on
 * out-of-memory. Runs of ordinary bytes are copied whole: this is the one
 * pass over every byte of the message. */
char *bounce_mime_normalise(const char *msg, size_t len, size_t *out);

/* The length of the header block at s[0..n) (up to and including the
 * CRLF before the blank line; all of s when there is no blank line), and
 * in *body the offset of the body. */
size_t bounce_mime_head_len(const char *s, size_t n, size_t *body);

/* The line at *at (before end), which is moved past it: 1 when it is a
 * field (*f filled, continuation lines included), 0 when blank (or at
 * the end), -1 when it is not a field. */
int bounce_mime_field_line(const char **at, const char *end,
                           struct bounce_hfield *f);

/* The next field of the header block [*at, end) into *f: 1, or 0 at the
 * end. Lines that are not a field are skipped. Each byte is looked at a
 * bounded number of times. */
int bounce_mime_field_next(const char **at, const char *end,
                           struct bounce_hfield *f);

/* Whether f is called name (compared without case). */
int bounce_mime_field_is(const struct bounce_hfield *f, const char *name);

/* The top-level header block s[0..n) read into *t. */
void bounce_mime_top_read(const char *s, size_t n, struct bounce_top *t);

/* Field k's value unfolded and cleaned (bounce_str_clean), or NULL when
 * absent; sets *oom on out-of-memory. */
char *bounce_mime_top_get(const struct bounce_top *t, enum bounce_top_field k,
                          int *oom);

/* The next "<id>" of [*s, e) without its brackets, or NULL; *s is moved
 * past it (to e when there is none) and *n set to its length. */
const char *bounce_mime_msg_id_next(const char **s, const char *e, size_t *n);

/* A header value decoded from RFC 2047 to UTF-8, or NULL when it has no
 * encoded word or cannot be decoded; free with free(). */
char *bounce_mime_decode_header(const char *v);

/* Append s[0..n) and a CRLF to sc->text, all of it cut to
 * BOUNCE_MAX_TEXT; -1 on out-of-memory. */
int bounce_mime_text_append(struct bounce_scan *sc, const char *s, size_t n);

/* Make the header block at b[0..n) (blank lines before it skipped) the
 * returned original's; own is the decoded copy b lies in, or NULL. */
void bounce_mime_orig_set(struct bounce_scan *sc, const char *b, size_t n,
                          char *own);

/* One part s[0..n), header and body, at depth (0: the message): what it
 * holds is collected in sc; dflt is its type when its header names none.
 * A returned original is not walked into: only its header block is kept.
 * -1 on out-of-memory. */
int bounce_mime_walk(struct bounce_scan *sc, const char *s, size_t n, int depth,
                     const char *dflt);

/* The returned original's header block s[0..n) read into *o (zeroed by
 * the caller): only the fields herald uses. -1 on out-of-memory; free
 * with bounce_mime_orig_free either way. */
int bounce_mime_orig_read(const char *s, size_t n, struct bounce_orig *o);
void bounce_mime_orig_free(struct bounce_orig *o);

/* The header fields of s[0..n) (a feedback report's block) parsed by
 * libetpan into *f; -1 when they cannot be (*f is then NULL). Free *f
 * with mailimf_fields_free. */
struct mailimf_fields;
int bounce_mime_fields_parse(const char *s, size_t n,
                             struct mailimf_fields **f);

/* The value of the first optional field of f (may be NULL) called name,
 * cleaned; NULL if absent. Sets *oom on out-of-memory. */
char *bounce_mime_fields_get(struct mailimf_fields *f, const char *name,
                             int *oom);

/* ---- the rule table (bounce_rules.c) ---- */

/* An enhanced status code ("5.1.1") in s (may be NULL) copied to
 * out[16]; 1 if found, else 0. */
int bounce_rules_find_status(const char *s, char out[16]);

/* A 3-digit SMTP reply code (2xx, 4xx, 5xx) standing alone in s (may be
 * NULL), or 0. */
int bounce_rules_find_code(const char *s);

/* The reason of the first diagnostic phrase found in diag (lowercase),
 * or NULL. */
const char *bounce_rules_phrase_reason(const char *diag);

/* The SMTP command a failure answered ("RCPT", "DATA", "MAIL"; static),
 * from the wording of Postfix ("in reply to end of DATA command") or Exim
 * ("after RCPT TO"), or a transcript refusing MAIL FROM; lw is lowercase,
 * or NULL. NULL when the text does not say. Sendmail's transcripts are
 * not read for RCPT and DATA: with pipelining, the reply to RCPT TO comes
 * after ">>> DATA". */
const char *bounce_rules_command(const char *lw);

/* Judge one recipient: its status (read from the diagnostic when the
 * report gave none, or a vaguer X.0.0), reply code, command, reason, and
 * the verdict (hard, rule, why) of verdict.c. notice is the reason of the
 * words of the notice beside a report about this one recipient, or NULL;
 * service_rule: the report comes from a rule a mail service's customer
 * set up (verdict.h). On out-of-memory the status and code alone
 * decide. */
void bounce_rules_classify(struct bounce_rcpt *r, const char *notice,
                           bool service_rule);

/* ---- text bounces (bounce_text.c) ---- */

/* Addresses that are never a failed recipient: herald's own return
 * path, the bounce's sender and the original's sender. */
struct bounce_selves {
	const char *a[4];
};

/* Whether addr is one of s's (compared without case) or a mail system's
 * own (mailer-daemon@...). */
int bounce_text_is_self(const struct bounce_selves *s, const char *addr);

/* The offset of the first line of text[0..n) that begins the returned
 * original ("----- Original message -----", "Below this line is a copy of
 * the message."), or n. */
size_t bounce_text_cut(const char *text, size_t n);

/* The header block of the original quoted in a text bounce after the
 * line at cut (bounce_text_cut): the first header-looking line after that
 * line up to a blank line, made sc's returned original (a slice of
 * sc->text). Nothing when there is none. */
void bounce_text_original(struct bounce_scan *sc, size_t cut);

/* Whether text[0..n) holds words only a mail system writes to the sender
 * of a failed message ("could not be delivered to", "this is the
 * qmail-send program"). 0 with *oom set on out-of-memory. */
int bounce_text_is_notice(const char *text, size_t n, int *oom);

/* Recipients from the lines of text[0..n): each line that begins with an
 * address, or names one after a label, the addresses of self excepted.
 * Each recipient found gets, where it has none, the text around its line
 * as diagnostic and the SMTP command that text names. With only_known,
 * nothing is added: only the recipients already in ev are looked for.
 * -1 on out-of-memory. */
int bounce_text_rcpts(struct bounce_event *ev, const char *text, size_t n,
                      const struct bounce_selves *self, int only_known);

/* ---- Amazon SES notifications (bounce_ses.c) ---- */

/* An Amazon SES bounce or complaint notification in text[0..n): 1 when it
 * is one (ev's kind set, its recipients added with their status and
 * diagnostic, or its feedback type), else 0. Sets *oom on
 * out-of-memory. */
int bounce_ses_read(struct bounce_event *ev, const char *text, size_t n,
                    int *oom);

/* ---- the DragonFly Mail Agent (bounce_dma.c) ---- */

/* dma's notice in text[0..n): per failed recipient, "There was an error
 * delivering your mail to <addr>.", a blank line, then either "HOST [IP]
 * did not like our RCPT TO:" (or "MAIL FROM:", "DATA:", "final DATA:")
 * and the server's reply on the next line, or dma's own words ("Could not
 * deliver for the last N seconds. Giving up."). Returns 1 when text is
 * dma's, with ev's recipients added (their command and diagnostic set)
 * and ev's kind BOUNCE_DSN when there are any, else 0. Sets *oom on
 * out-of-memory. */
int bounce_dma_read(struct bounce_event *ev, const char *text, size_t n,
                    int *oom);

/* ---- answers: unsubscribe requests, auto-replies (bounce_answer.c) ---- */

/* Whether a reply asks to be unsubscribed: its subject subj (decoded, or
 * NULL), or the first line of its own (not quoted) text[0..ntext), is
 * alone such a request ("Unsubscribe", "Please remove me", "Bitte
 * austragen", ...). */
int bounce_answer_is_unsubscribe(const char *subj, const char *text,
                                 size_t ntext);

/* Whether the message is an auto-reply (vacation, out of office), as its
 * header (X-Autoreply, X-Autorespond, Auto-Submitted: auto-replied) or
 * its subject says, from no mail system and without a failure subject
 * (unless the subject says "auto" too). Sets *oom on out-of-memory. */
int bounce_answer_is_autoreply(const struct bounce_top *t,
                               const struct bounce_head *h, int *oom);

/* The Message-ID this message answers (In-Reply-To, else References),
 * preferring one of herald's form (32 hex digits before the @), without
 * its < >, or NULL. Sets *oom on out-of-memory. */
char *bounce_answer_replied_id(const struct bounce_top *t, int *oom);

#endif
