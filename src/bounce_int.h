/*
 * bounce_int — what the files of the bounce reader share; bounce.h says
 * what the reader does. Private to the library: not installed, not in
 * include/.
 *
 * Memory: as bounce.h, NULL or -1 on out-of-memory, never an abort;
 * returned strings are the caller's to free.
 */
#ifndef HERALD_BOUNCE_INT_H
#define HERALD_BOUNCE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/bounce.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Tunables. */
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

#endif
