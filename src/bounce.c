/*
 * bounce — one received message to one bounce event (see bounce.h).
 *
 * The message is first copied with every line end made CRLF and NUL
 * bytes made spaces (the text scans use C strings). The structure is read
 * here, not by libetpan's mailmime_parse (which parses every header field
 * of every part, the returned original's included): parts are cut at
 * their delimiter lines, and the parts that matter are collected in one
 * walk of the top level (never inside a returned original):
 * message/delivery-status, message/feedback-report, the returned
 * original's header block (message/rfc822 or text/rfc822-headers) and the
 * human-readable text. libetpan still decodes base64, quoted-printable
 * and RFC 2047 words.
 *
 * A standard report's recipients come from its field blocks. Without one,
 * recipients come from X-Failed-Recipients or from lines of the text that
 * begin with an address, the way Exim, qmail, Postfix, Sendmail and most
 * hosted services write them, and only when the message looks like a
 * bounce (from a mailer daemon or postmaster, or with a failure subject):
 * a human reply quoting addresses must not suppress anybody.
 *
 * The reason vocabulary and what counts as hard follow the bounce corpus
 * in tests/data/bounces (expected.jsonl), except that reasons about the
 * sender's own reputation or set-up are "neither": herald never
 * suppresses a recipient because its own mail was blocked.
 */
#include "herald/bounce.h"
#include "herald/verdict.h"

#include "bounce_int.h"

#include <ctype.h>
#include <stdbool.h>
#include <libetpan/libetpan.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- building the event ---- */

static int rcpt_add(struct bounce_event *ev, char *addr)
{
	struct bounce_rcpt *r;

	for (size_t i = 0; i < ev->nrcpt; i++)
		if (strcmp(ev->rcpt[i].address, addr) == 0) {
			free(addr);
			return 0;
		}
	if (ev->nrcpt >= BOUNCE_MAX_RCPT) {
		free(addr);
		return 0;
	}
	r = realloc(ev->rcpt, (ev->nrcpt + 1) * sizeof *r);
	if (r == NULL) {
		free(addr);
		return -1;
	}
	ev->rcpt = r;
	r = &ev->rcpt[ev->nrcpt++];
	memset(r, 0, sizeof *r);
	r->address = addr;
	r->hard = -1;
	return 1;
}

/* One per-recipient field block of a delivery-status part. */
enum { D_FINAL, D_ORIGINAL, D_ACTION, D_STATUS, D_DIAG, D_MTA, ND };

/* A field of a report block, cleaned, after its "type;" when strip; NULL
 * if absent. Sets *oom on out-of-memory. */
static char *dsn_value(const struct bounce_hfield *f, int strip, int *oom)
{
	const char *v = f->val, *e, *semi;
	char *r;

	if (f->name == NULL || v == NULL)
		return NULL;
	e = v + f->nval;
	if (strip && (semi = memchr(v, ';', f->nval)) != NULL)
		v = semi + 1;
	r = bounce_str_clean(v, (size_t)(e - v));
	if (r == NULL)
		*oom = 1;
	return r;
}

/* One per-recipient field block of a delivery-status part. */
static int dsn_block(struct bounce_event *ev, const struct bounce_hfield *fs)
{
	int oom = 0, added;
	char *v, *addr;
	struct bounce_rcpt *r;

	v = dsn_value(&fs[D_FINAL], 0, &oom);
	if (v == NULL && !oom)
		v = dsn_value(&fs[D_ORIGINAL], 0, &oom);
	if (v == NULL)
		return oom ? -1 : 0;
	addr = bounce_addr_from(v, &oom);
	free(v);
	if (addr == NULL)
		return oom ? -1 : 0;
	added = rcpt_add(ev, addr);
	if (added <= 0)
		return added;
	r = &ev->rcpt[ev->nrcpt - 1];
	r->action = dsn_value(&fs[D_ACTION], 0, &oom);
	v = dsn_value(&fs[D_STATUS], 0, &oom);
	if (v != NULL) {
		bounce_rules_find_status(v, r->status);
		/* Oracle Messaging Server says which command in a comment:
		 * "5.0.0 (Remote SMTP server has rejected address)" */
		if (bounce_str_casestr(v, "server has rejected address") != NULL)
			r->command = "RCPT";
	}
	free(v);
	r->diagnostic = dsn_value(&fs[D_DIAG], 1, &oom);
	r->remote_mta = dsn_value(&fs[D_MTA], 1, &oom);
	return oom ? -1 : 0;
}

/* Every field block of a delivery-status part; block 0 is per-message,
 * the rest per recipient, but some MTAs merge them, so every block is
 * looked at. A block ends at a blank line or at a line that is not a
 * field. */
static int dsn_parse(struct bounce_event *ev, const char *s, size_t n)
{
	static const char *const names[ND] = {
	    "Final-Recipient", "Original-Recipient", "Action",
	    "Status",          "Diagnostic-Code",    "Remote-MTA"};
	const char *p = s, *e = s + n;
	size_t blocks = 0;

	while (p < e && blocks++ < BOUNCE_MAX_RCPT + 1) {
		struct bounce_hfield fs[ND], f;

		memset(fs, 0, sizeof fs);
		while (bounce_mime_field_line(&p, e, &f) == 1)
			for (size_t k = 0; k < ND; k++)
				if (fs[k].name == NULL &&
				    bounce_mime_field_is(&f, names[k])) {
					fs[k] = f;
					break;
				}
		if (dsn_block(ev, fs) < 0)
			return -1;
	}
	return 0;
}

/* An address that only a mail system sends from, never a recipient's. */
static int is_daemon_addr(const char *addr)
{
	return addr != NULL && (strncasecmp(addr, "mailer-daemon", 13) == 0 ||
	                        strncasecmp(addr, "mail-daemon", 11) == 0 ||
	                        strncasecmp(addr, "mailerdaemon", 12) == 0 ||
	                        strncasecmp(addr, "mdaemon", 7) == 0);
}

/* A sender (address or display name) that is a mail system. */
static int is_daemon(const char *s)
{
	static const char *const names[] = {
	    "mailer-daemon", "mailer_daemon",   "mail-daemon",
	    "mailerdaemon",  "postmaster",      "post_master",
	    "mdaemon",       "bounce",          "mail delivery",
	    "mail.delivery", "delivery system", "delivery subsystem",
	    "mail administrator", "ndr administrator", "mail system",
	};

	if (s == NULL)
		return 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (bounce_str_casestr(s, names[i]) != NULL)
			return 1;
	return 0;
}

static const char *const failure_subjects[] = {
    "undeliver",
    "delivery fail",
    "delivery status",
    "delivery notification",
    "delivery problem",
    "delivery failure",
    "failure notice",
    "failed",
    "failure",
    "returned mail",
    "returned to sender",
    "return mail",
    "not delivered",
    "could not be delivered",
    "unzustellbar",
    "rejected",
    "nondeliverable",
    "non-deliverable",
    "non-delivery",
    "non remis",
    "mail error",
    "error sending",
    "warning: could not",
    "mail system error",
    "delayed mail",
    "delivery delayed",
    "bounce",
    "there was an error",
};

static const char *const autoreply_subjects[] = {
    "out of office",
    "automatic reply",
    "abwesenheitsnotiz",
    "auto:",
    "autoreply",
    "auto-reply",
    "auto reply",
    "auto response",
    "autoresponse",
    "vacation",
    "away from",
    "out of the office",
    "r\xc3\xa9ponse automatique",
    "automatische",
};

static int subject_has(const char *subj, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (bounce_str_casestr(subj, list[i]))
			return 1;
	return 0;
}

/* Lines that begin the returned original inside a text bounce, after
 * any leading dashes, stars or blanks. */
static const char *const original_markers[] = {
    "original message",
    "the original message",
    "original mail",
    "original-message",
    "copy of the message",
    "copy of your message",
    "copy of the original",
    "this is a copy",
    "below this line is a copy",
    "below is a copy",
    "included is a copy",
    "a copy of the original",
    "returned message",
    "unsent message",
    "undelivered message",
    "message headers follow",
    "headers of your message",
    "the header of the original",
    "header of the original",
    "headers of the original",
    "content-type: message/rfc822",
    "your message reads",
};

/* Whether the line [s, e) begins the returned original. */
static int is_marker_line(const char *s, const char *e)
{
	while (s < e && strchr(" \t-=*_#|>[(", *s) != NULL && *s != '\0')
		s++;
	for (size_t i = 0;
	     i < sizeof original_markers / sizeof original_markers[0]; i++) {
		size_t n;

		if (s == e || tolower((unsigned char)*s) != original_markers[i][0])
			continue;
		n = strlen(original_markers[i]);
		if ((size_t)(e - s) >= n &&
		    strncasecmp(s, original_markers[i], n) == 0) {
			/* Sendmail: "The original message was received at" */
			const char *w = s + n;

			while (w < e && *w == ' ')
				w++;
			if ((size_t)(e - w) >= 3 && strncasecmp(w, "was", 3) == 0)
				return 0;
			return 1;
		}
	}
	return 0;
}

/* Offset of the first line of text that begins the returned original,
 * or n. */
static size_t text_cut(const char *text, size_t n)
{
	const char *p = text, *end = text + n;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
			nl = end;
		if (is_marker_line(p, nl))
			return (size_t)(p - text);
		p = nl + 1;
	}
	return n;
}

/* What may stand before a failed address on a line of a text bounce. */
static const char *const rcpt_labels[] = {
    "rcpt to",
    "recipient",
    "recipients",
    "recipient(s)",
    "recipient address",
    "original address",
    "error, address",
    "addresses",
    "address(es)",
    "delivered to",
    "deliver to",
    "delivery to",
    "deliver message to",
    "delivering to",
    "could not be delivered to",
    "unknown user",
    "user unknown",
    "invalid recipient",
    "failed recipient",
    "errors",
    "error for",
    "following recipient",
    "following address",
    "final-recipient",
    "original-recipient",
    "x-failed-recipients",
    "mailbox",
    "to the following",
    "addressee",
};

/* Whether prefix [s, e), before an address on its line, introduces a
 * failed recipient: one of rcpt_labels, or an SMTP reply code with
 * its enhanced status (Sendmail's "550 5.1.1 <a@b>... User unknown"). */
static int is_rcpt_prefix(const char *s, const char *e)
{
	int digits = 0, other = 0;

	while (e > s && e[-1] != '\0' &&
	       strchr(" \t<\"':([;", e[-1]) != NULL)
		e--;
	if ((size_t)(e - s) >= 6 && strncasecmp(e - 6, "rfc822", 6) == 0) {
		e -= 6;
		while (e > s && e[-1] != '\0' &&
		       strchr(" \t<\"':([;", e[-1]) != NULL)
			e--;
	}
	if (e == s)
		return 0;
	for (const char *p = s; p < e; p++) {
		if (isdigit((unsigned char)*p))
			digits++;
		else if (*p != '.' && *p != ' ' && *p != '-' && *p != '#')
			other++;
	}
	if (other == 0 && digits >= 3)
		return 1;
	for (size_t i = 0; i < sizeof rcpt_labels / sizeof rcpt_labels[0];
	     i++) {
		size_t n = strlen(rcpt_labels[i]);

		if ((size_t)(e - s) >= n &&
		    tolower((unsigned char)e[-1]) == rcpt_labels[i][n - 1] &&
		    strncasecmp(e - n, rcpt_labels[i], n) == 0 &&
		    ((size_t)(e - s) == n || !isalnum((unsigned char)*(e - n - 1))))
			return 1;
	}
	return 0;
}

/* The failed recipient's address on line [line, nl): at its start (after
 * quoting and punctuation) or after a label. Sets *n; NULL if none. */
static const char *line_rcpt(const char *line, const char *nl, size_t *n)
{
	const char *p = line, *q;

	while (p < nl && strchr(" \t>*-\"'<([#|", *p) != NULL && *p != '\0')
		p++;
	if (p < nl && (*n = bounce_addr_len(p)) > 0 && p + *n <= nl)
		return p;
	for (q = p; q < nl; q++) {
		const char *a;

		if (*q != '@')
			continue;
		a = q;
		while (a > p && bounce_addr_char((unsigned char)a[-1]))
			a--;
		if (a == q || (*n = bounce_addr_len(a)) == 0 || a + *n > nl)
			return NULL;
		return is_rcpt_prefix(p, a) ? a : NULL;
	}
	return NULL;
}

/* Addresses that are never a failed recipient: herald's own return
 * path, the bounce's sender and the original's sender. */
struct selves {
	const char *a[4];
};

static int is_self(const struct selves *s, const char *addr)
{
	for (size_t i = 0; i < 4; i++)
		if (s->a[i] != NULL && strcasecmp(s->a[i], addr) == 0)
			return 1;
	return is_daemon_addr(addr);
}

/* The text that explains the failure of the recipient on the line at
 * line: up to the next line naming another recipient, at most
 * BOUNCE_DIAG_WINDOW bytes, line ends made blanks. NULL on
 * out-of-memory. */
/* Whether the line at p begins with an SMTP reply code: "550 " (final
 * line), or also "550-" (any line) when any. */
static int is_coded_line(const char *p, const char *e, int any)
{
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return e - p >= 4 && (p[0] == '4' || p[0] == '5') &&
	       isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
	       (p[3] == ' ' || (any && p[3] == '-'));
}

static char *rcpt_window(const char *from, const char *line,
                         const char *end, const char *addr, size_t alen)
{
	const char *p = memchr(line, '\n', (size_t)(end - line));
	const char *stop = end;
	/* Sendmail: "554 <a@b>... reason", one line per recipient; the
	 * coded lines after it are about the next one */
	int coded = is_coded_line(line, p != NULL ? p : end, 0);
	char *w;
	size_t o = 0;

	if ((size_t)(stop - line) > BOUNCE_DIAG_WINDOW)
		stop = line + BOUNCE_DIAG_WINDOW;
	while (p != NULL && p + 1 < stop) {
		const char *nl, *a;
		size_t n = 0;

		p++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		a = line_rcpt(p, nl, &n);
		if ((a != NULL && !(n == alen && strncasecmp(a, addr, n) == 0)) ||
		    (coded && is_coded_line(p, nl, 1))) {
			stop = p;
			break;
		}
		p = nl < end ? nl : NULL;
	}
	w = malloc((size_t)(stop - from) + 1);
	if (w == NULL)
		return NULL;
	for (const char *c = from; c < stop; c++) {
		char ch = *c == '\r' || *c == '\n' || *c == '\t' ? ' ' : *c;

		if ((unsigned char)ch < 0x20 || ch == 0x7f)
			ch = ' ';
		if (ch == ' ' && (o == 0 || w[o - 1] == ' '))
			continue;
		w[o++] = ch;
	}
	while (o > 0 && w[o - 1] == ' ')
		o--;
	w[o] = '\0';
	return w;
}

/* Where the text explaining the failure of the recipient on the line at
 * line may begin when it comes before that line ("Could not be delivered
 * because of 550 5.1.1 User unknown. The following recipients were
 * affected: a@b"): at most BOUNCE_DIAG_WINDOW bytes back, never before a
 * line naming another recipient. */
static const char *rcpt_back(const char *text, const char *line,
                             const char *addr, size_t alen)
{
	const char *b = line;

	while (b > text && (size_t)(line - b) < BOUNCE_DIAG_WINDOW) {
		const char *ps = b - 1, *a;
		size_t n = 0;

		while (ps > text && ps[-1] != '\n')
			ps--;
		a = line_rcpt(ps, b - 1, &n);
		if (a != NULL && !(n == alen && strncasecmp(a, addr, n) == 0))
			break;
		b = ps;
	}
	return b;
}

/* Whether a diagnostic names no status, reply code or known phrase. */
static int says_nothing(const char *w, const char *lw)
{
	char st[16];

	return !bounce_rules_find_status(w, st) && bounce_rules_find_code(w) == 0 &&
	       bounce_rules_phrase_reason(lw) == NULL;
}

/* Recipients from the lines of text [text, text+n): each line that
 * begins with an address, or names one after a label. With only_known,
 * nothing is added: recipients already in ev get the text after their
 * line as diagnostic when they have none. */
static int text_rcpts(struct bounce_event *ev, const char *text, size_t n,
                      const struct selves *self, int only_known)
{
	const char *line = text, *end = text + n;

	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *p;
		struct bounce_rcpt *r = NULL;
		size_t alen = 0;
		char *addr;

		if (nl == NULL)
			nl = end;
		p = line_rcpt(line, nl, &alen);
		if (p == NULL)
			goto next;
		addr = bounce_addr_dup(p, alen);
		if (addr == NULL)
			return -1;
		if (is_self(self, addr)) {
			free(addr);
			goto next;
		}
		if (only_known) {
			for (size_t i = 0; i < ev->nrcpt; i++)
				if (strcmp(ev->rcpt[i].address, addr) == 0)
					r = &ev->rcpt[i];
			free(addr);
		} else {
			int added = rcpt_add(ev, addr);

			if (added < 0)
				return -1;
			if (added > 0)
				r = &ev->rcpt[ev->nrcpt - 1];
		}
		if (r != NULL && (r->diagnostic == NULL || r->command == NULL)) {
			char *win = rcpt_window(line, line, end, p, alen);
			char *lw;
			const char *back;

			if (win == NULL)
				return -1;
			lw = bounce_str_lower(win, BOUNCE_DIAG_WINDOW);
			if (lw == NULL) {
				free(win);
				return -1;
			}
			/* nothing after the line: the lines before it */
			if (says_nothing(win, lw) &&
			    (back = rcpt_back(text, line, p, alen)) < line) {
				free(win);
				free(lw);
				win = rcpt_window(back, line, end, p, alen);
				lw = win != NULL ? bounce_str_lower(win, 2 * BOUNCE_DIAG_WINDOW)
				                 : NULL;
				if (lw == NULL) {
					free(win);
					return -1;
				}
			}
			if (r->command == NULL)
				r->command = bounce_rules_command(lw);
			free(lw);
			if (r->diagnostic == NULL)
				r->diagnostic = win;
			else
				free(win);
		}
	next:
		line = nl + 1;
	}
	return 0;
}

/* The header block of the original quoted in a text bounce: the first
 * header-looking line after the marker up to a blank line, a slice of the
 * text. Nothing when there is none. */
static void text_original(struct bounce_scan *sc, size_t cut)
{
	const char *p = sc->text + cut, *end = sc->text + sc->ntext;
	size_t lines = 0;

	if (cut >= sc->ntext)
		return;
	/* skip the marker line and look a few lines on for a field */
	while (p < end && lines++ < 8) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *c = p;

		if (nl == NULL)
			break;
		while (c < nl && (isalnum((unsigned char)*c) || *c == '-'))
			c++;
		if (lines > 1 && c > p && c < nl && *c == ':') {
			bounce_mime_orig_set(sc, p, (size_t)(end - p), NULL);
			return;
		}
		p = nl + 1;
	}
}

void bounce_event_free(struct bounce_event *ev)
{
	if (ev == NULL)
		return;
	for (size_t i = 0; i < ev->nrcpt; i++) {
		free(ev->rcpt[i].address);
		free(ev->rcpt[i].action);
		free(ev->rcpt[i].diagnostic);
		free(ev->rcpt[i].remote_mta);
		free(ev->rcpt[i].evidence);
	}
	free(ev->rcpt);
	free(ev->message_id);
	free(ev->verp_to);
	free(ev->orig_return_path);
	free(ev->orig_unsubscribe);
	free(ev->feedback_type);
	memset(ev, 0, sizeof *ev);
}

/* ---- unsubscribe requests ---- */

/* What a journalist writes, alone, to be taken off the list; compared
 * after lowercasing, dropping punctuation and polite words. The
 * languages herald writes in, and those its users' journalists reply in. */
static const char *const unsub_phrases[] = {
    /* en */
    "unsubscribe", "unsubscribe me", "unsub", "remove", "remove me",
    "remove me from your list", "remove me from the list",
    "remove me from this list", "remove me from your mailing list",
    "remove me from the mailing list", "remove me from your mailing",
    "take me off", "take me off your list", "take me off the list",
    "take me off this list", "stop", "stop sending", "stop emailing me",
    "stop sending me emails", "opt out", "optout", "opt-out",
    "no more emails", "unsubscribe me from this list",
    /* ru */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd1\x82\xd1\x8c\xd1\x81\xd1\x8f", /* отписаться */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x88\xd0\xb8\xd1\x82\xd0\xb5", /* отпишите */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x88\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f", /* отпишите меня */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x81\xd0\xba\xd0\xb0", /* отписка */
    "\xd1\x83\xd0\xb4\xd0\xb0\xd0\xbb\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f", /* удалите меня */
    "\xd1\x83\xd0\xb4\xd0\xb0\xd0\xbb\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f \xd0\xb8\xd0\xb7 \xd1\x80\xd0\xb0\xd1\x81\xd1\x81\xd1\x8b\xd0\xbb\xd0\xba\xd0\xb8", /* удалите меня из рассылки */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x88\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f \xd0\xbe\xd1\x82 \xd1\x80\xd0\xb0\xd1\x81\xd1\x81\xd1\x8b\xd0\xbb\xd0\xba\xd0\xb8", /* отпишите меня от рассылки */
    "\xd0\xbf\xd1\x80\xd0\xbe\xd1\x88\xd1\x83 \xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd1\x82\xd1\x8c", /* прошу отписать */
    "\xd1\x81\xd1\x82\xd0\xbe\xd0\xbf", /* стоп */
    /* uk */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd1\x82\xd0\xb8\xd1\x81\xd1\x8f", /* відписатися */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x88\xd1\x96\xd1\x82\xd1\x8c", /* відпишіть */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x88\xd1\x96\xd1\x82\xd1\x8c \xd0\xbc\xd0\xb5\xd0\xbd\xd0\xb5", /* відпишіть мене */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x81\xd0\xba\xd0\xb0", /* відписка */
    "\xd0\xb2\xd0\xb8\xd0\xb4\xd0\xb0\xd0\xbb\xd1\x96\xd1\x82\xd1\x8c \xd0\xbc\xd0\xb5\xd0\xbd\xd0\xb5", /* видаліть мене */
    "\xd0\xb2\xd0\xb8\xd0\xb4\xd0\xb0\xd0\xbb\xd1\x96\xd1\x82\xd1\x8c \xd0\xbc\xd0\xb5\xd0\xbd\xd0\xb5 \xd0\xb7 \xd1\x80\xd0\xbe\xd0\xb7\xd1\x81\xd0\xb8\xd0\xbb\xd0\xba\xd0\xb8", /* видаліть мене з розсилки */
    /* es */
    "darme de baja", "dar de baja", "baja", "de baja",
    "cancelar suscripci\xc3\xb3n", "cancelar suscripcion",
    "anular suscripci\xc3\xb3n", "eliminarme", "borrarme",
    "desuscribir", "desuscribirme", "quitarme de la lista",
    "eliminarme de la lista", "no m\xc3\xa1s correos",
    /* fr */
    "d\xc3\xa9sabonner", "desabonner", "me d\xc3\xa9sabonner",
    "me desabonner", "d\xc3\xa9sabonnez moi", "desabonnez moi",
    "d\xc3\xa9sabonnement", "d\xc3\xa9sinscrire", "me d\xc3\xa9sinscrire",
    "d\xc3\xa9sinscrivez moi", "d\xc3\xa9sinscription", "retirez moi",
    "retirez moi de la liste", "supprimez moi", "arr\xc3\xaat",
    /* de */
    "abmelden", "abbestellen", "austragen", "bitte austragen",
    "abmelden bitte", "entfernen", "newsletter abbestellen",
    /* cs */
    "odhl\xc3\xa1sit", "odhlasit", "odhla\xc5\xa1te m\xc4\x9b",
    "odhl\xc3\xa1sit odb\xc4\x9br", "odebrat",
    /* et */
    "loobu", "loobun", "t\xc3\xbchista tellimus", "eemaldage mind",
    /* ar */
    "\xd8\xa5\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1 \xd8\xa7\xd9\x84\xd8\xa7\xd8\xb4\xd8\xaa\xd8\xb1\xd8\xa7\xd9\x83", /* إلغاء الاشتراك */
    "\xd8\xa7\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1 \xd8\xa7\xd9\x84\xd8\xa7\xd8\xb4\xd8\xaa\xd8\xb1\xd8\xa7\xd9\x83", /* الغاء الاشتراك */
    "\xd8\xa5\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1", /* إلغاء */
    "\xd8\xa7\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1", /* الغاء */
    "\xd8\xa3\xd9\x84\xd8\xba\xd9\x88\xd8\xa7 \xd8\xa7\xd8\xb4\xd8\xaa\xd8\xb1\xd8\xa7\xd9\x83\xd9\x8a", /* ألغوا اشتراكي */
    "\xd8\xa3\xd8\xb2\xd9\x84\xd9\x86\xd9\x8a", /* أزلني */
    "\xd8\xa7\xd8\xad\xd8\xb0\xd9\x81\xd9\x86\xd9\x8a", /* احذفني */
    "\xd8\xaa\xd9\x88\xd9\x82\xd9\x81", /* توقف */
};

/* Polite words around the request, dropped before comparing. */
static const char *const unsub_polite[] = {
    "please", "pls", "plz", "thanks", "thank you", "kindly", "bitte",
    "danke", "por favor", "gracias", "merci", "svp",
    "s il vous pla\xc3\xaet", "pros\xc3\xadm", "palun", "ait\xc3\xa4h",
    "\xd0\xbf\xd0\xbe\xd0\xb6\xd0\xb0\xd0\xbb\xd1\x83\xd0\xb9\xd1\x81\xd1\x82\xd0\xb0", /* пожалуйста */
    "\xd1\x81\xd0\xbf\xd0\xb0\xd1\x81\xd0\xb8\xd0\xb1\xd0\xbe", /* спасибо */
    "\xd0\xb1\xd1\x83\xd0\xb4\xd1\x8c \xd0\xbb\xd0\xb0\xd1\x81\xd0\xba\xd0\xb0", /* будь ласка */
    "\xd0\xb4\xd1\x8f\xd0\xba\xd1\x83\xd1\x8e", /* дякую */
    "\xd9\x85\xd9\x86 \xd9\x81\xd8\xb6\xd9\x84\xd9\x83", /* من فضلك */
    "\xd8\xb4\xd9\x83\xd8\xb1\xd8\xa7", /* شكرا */
};

/* Longest text looked at: a request is a few words. */
enum { UNSUB_MAX = 96 };

/* s[0..n) lowercased (ASCII, Latin-1 letters, Cyrillic) with punctuation
 * made blanks and blanks collapsed, into out[UNSUB_MAX + 1]; 0 when
 * longer than that. */
static int unsub_norm(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned char d = i + 1 < n ? (unsigned char)s[i + 1] : 0;

		if (c < 0x80) {
			if (isalnum(c))
				c = (unsigned char)tolower(c);
			else
				c = ' ';
			if (c == ' ' && (o == 0 || out[o - 1] == ' '))
				continue;
			if (o >= UNSUB_MAX)
				return 0;
			out[o++] = (char)c;
			continue;
		}
		if (c == 0xc2 && (d == 0xab || d == 0xbb || d == 0xa0 ||
		                  d == 0xa1 || d == 0xbf)) {
			/* « » nbsp ¡ ¿ */
			if (o > 0 && out[o - 1] != ' ' && o < UNSUB_MAX)
				out[o++] = ' ';
			i++;
			continue;
		}
		if (c == 0xd8 && (d == 0x8c || d == 0x9f)) {
			/* Arabic comma and question mark */
			if (o > 0 && out[o - 1] != ' ' && o < UNSUB_MAX)
				out[o++] = ' ';
			i++;
			continue;
		}
		if (o + 2 > UNSUB_MAX)
			return 0;
		if (d != 0 && c == 0xc3 && d >= 0x80 && d <= 0x9e && d != 0x97)
			d = (unsigned char)(d + 0x20); /* À..Þ */
		else if (c == 0xd0 && d >= 0x90 && d <= 0x9f)
			d = (unsigned char)(d + 0x20); /* А..П */
		else if (c == 0xd0 && d >= 0xa0 && d <= 0xaf) {
			c = 0xd1; /* Р..Я */
			d = (unsigned char)(d - 0x20);
		} else if (c == 0xd0 && d >= 0x80 && d <= 0x8f) {
			c = 0xd1; /* Ѐ..Џ (Ё, Є, І, Ї) */
			d = (unsigned char)(d + 0x10);
		} else if (c == 0xd2 && d == 0x90)
			d = 0x91; /* Ґ */
		out[o++] = (char)c;
		if (d != 0) {
			out[o++] = (char)d;
			i++;
		}
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return 1;
}

/* Whether the text is, alone, a request to be unsubscribed. */
static int is_unsub_text(const char *s, size_t n)
{
	char buf[UNSUB_MAX + 1];
	char *p = buf;
	size_t len;
	int changed;

	if (n > 4 * UNSUB_MAX || !unsub_norm(s, n, buf))
		return 0;
	do {
		changed = 0;
		len = strlen(p);
		for (size_t i = 0;
		     i < sizeof unsub_polite / sizeof unsub_polite[0]; i++) {
			size_t k = strlen(unsub_polite[i]);

			if (len > k && strncmp(p, unsub_polite[i], k) == 0 &&
			    p[k] == ' ') {
				p += k + 1;
				changed = 1;
				break;
			}
			if (len > k && strcmp(p + len - k, unsub_polite[i]) == 0 &&
			    p[len - k - 1] == ' ') {
				p[len - k - 1] = '\0';
				changed = 1;
				break;
			}
		}
	} while (changed);
	for (size_t i = 0; i < sizeof unsub_phrases / sizeof unsub_phrases[0];
	     i++)
		if (strcmp(p, unsub_phrases[i]) == 0)
			return 1;
	return 0;
}

/* A subject without its reply and forward prefixes. */
static const char *subject_core(const char *s)
{
	static const char *const prefixes[] = {
	    "re:", "aw:", "fw:", "fwd:", "wg:", "sv:", "odp:", "tr:",
	    "\xd0\xbe\xd1\x82\xd0\xb2\xd0\xb5\xd1\x82:", /* ответ: */
	    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xbe\xd0\xb2\xd1\x96\xd0\xb4\xd1\x8c:", /* відповідь: */
	    "\xd8\xb1\xd8\xaf:", /* رد: */
	};
	int again = 1;

	while (again) {
		again = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0];
		     i++) {
			size_t k = strlen(prefixes[i]);

			if (strncasecmp(s, prefixes[i], k) == 0) {
				s += k;
				again = 1;
			}
		}
	}
	return s;
}

/* Whether a reply asks to be unsubscribed: its decoded subject, or its
 * first line of its own (not quoted) text, is such a request. */
static int is_unsubscribe(const char *subj, const char *text, size_t ntext)
{
	const char *p = text, *end = text + ntext;

	if (subj != NULL) {
		const char *c = subject_core(subj);

		if (is_unsub_text(c, strlen(c)))
			return 1;
	}
	while (p != NULL && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *q = p;

		if (nl == NULL)
			nl = end;
		while (q < nl && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < nl && *q != '>') {
			const char *e = nl;

			while (e > q && (e[-1] == '\r' || e[-1] == ' '))
				e--;
			return is_unsub_text(q, (size_t)(e - q));
		}
		p = nl + 1;
	}
	return 0;
}

/* The Message-ID this message answers (In-Reply-To, else References),
 * preferring one of herald's form (32 hex digits before the @). */
static char *replied_id(const struct bounce_top *t, int *oom)
{
	const char *best = NULL, *any = NULL;
	size_t nbest = 0, nany = 0;
	char *r;

	for (size_t k = 0; k < 2 && best == NULL; k++) {
		enum bounce_top_field f = k == 0 ? T_IN_REPLY_TO : T_REFERENCES;
		const char *p = t->v[f], *id;
		size_t n = 0;

		if (p == NULL)
			continue;
		while ((id = bounce_mime_msg_id_next(&p, t->v[f] + t->n[f], &n)) != NULL) {
			size_t h = 0;

			while (h < n && isxdigit((unsigned char)id[h]))
				h++;
			if (h == 32 && n > 32 && id[h] == '@') {
				best = id, nbest = n;
				break;
			}
			if (any == NULL || k == 1)
				any = id, nany = n; /* References: the last is
				                       the parent */
		}
		if (any != NULL && k == 0)
			break;
	}
	if (best == NULL && any == NULL)
		return NULL;
	r = best != NULL ? bounce_str_clean(best, nbest) : bounce_str_clean(any, nany);
	if (r == NULL)
		*oom = 1;
	return r;
}

/* ---- classification ---- */

/* What the top-level header says about the message; the char * are
 * owned. */
struct head {
	char *subj;        /* unfolded, or NULL */
	char *subj_dec;    /* decoded, or NULL */
	char *from;        /* address, or NULL */
	char *from_raw;    /* the whole From field, display name included */
	char *to;          /* first address of To, or NULL */
	const char *ofrom; /* the original's From */
	const char *oto;   /* the original's To */
	int strong;        /* sure to be from a mail system */
};

static void head_read(struct head *h, const struct bounce_top *t,
                      const struct bounce_orig *o, int *oom)
{
	char *v;

	h->subj = bounce_mime_top_get(t, T_SUBJECT, oom);
	if (h->subj != NULL)
		h->subj_dec = bounce_mime_decode_header(h->subj);
	h->from_raw = bounce_mime_top_get(t, T_FROM, oom);
	if (h->from_raw != NULL)
		h->from = bounce_addr_first(h->from_raw, oom);
	v = bounce_mime_top_get(t, T_TO, oom);
	if (v != NULL)
		h->to = bounce_addr_first(v, oom);
	free(v);
	h->ofrom = o->from;
	h->oto = o->to;
}

static void head_free(struct head *h)
{
	free(h->subj);
	free(h->subj_dec);
	free(h->from);
	free(h->from_raw);
	free(h->to);
}

static int head_is_daemon(const struct head *h)
{
	return is_daemon(h->from_raw);
}

static int head_subject_has(const struct head *h, const char *const *list,
                            size_t n)
{
	return (h->subj != NULL && subject_has(h->subj, list, n)) ||
	       (h->subj_dec != NULL && subject_has(h->subj_dec, list, n));
}

/* ARF, or a complaint in the form some services send without it. */
static int classify_complaint(struct bounce_event *ev, struct bounce_scan *sc,
                              const struct bounce_orig *o, const struct head *h,
                              int *oom)
{
	char *v;

	if (sc->arf == NULL && !sc->report_arf &&
	    !(h->subj != NULL &&
	      bounce_str_casestr(h->subj, "complaint about message from") != NULL))
		return 0;
	ev->kind = BOUNCE_COMPLAINT;
	if (sc->arf != NULL) {
		struct mailimf_fields *f = NULL;

		if (bounce_mime_fields_parse(sc->arf, sc->narf, &f) == 0) {
			ev->feedback_type = bounce_mime_fields_get(f, "Feedback-Type", oom);
			v = bounce_mime_fields_get(f, "Original-Rcpt-To", oom);
			if (v == NULL && !*oom)
				v = bounce_mime_fields_get(f, "Removal-Recipient", oom);
			mailimf_fields_free(f);
			if (v != NULL) {
				char *a = bounce_addr_from(v, oom);

				free(v);
				if (a != NULL && rcpt_add(ev, a) < 0)
					*oom = 1;
			}
		}
	}
	if (ev->nrcpt == 0 && o->hmx != NULL && !*oom) {
		char *a = bounce_addr_from(o->hmx, oom);

		if (a != NULL && rcpt_add(ev, a) < 0)
			*oom = 1;
	}
	if (ev->nrcpt == 0 && h->oto != NULL && !*oom) {
		char *c = bounce_addr_from(h->oto, oom);

		if (c != NULL && rcpt_add(ev, c) < 0)
			*oom = 1;
	}
	for (size_t i = 0; i < ev->nrcpt; i++) {
		ev->rcpt[i].reason = "feedback";
		ev->rcpt[i].hard = -1;
	}
	return 1;
}

static int is_autoreply(const struct bounce_top *t, const struct head *h,
                        int *oom)
{
	int yes = t->v[T_X_AUTOREPLY] != NULL || t->v[T_X_AUTORESPOND] != NULL;
	char *v = bounce_mime_top_get(t, T_AUTO_SUBMITTED, oom);

	if (v != NULL && bounce_str_casestr(v, "auto-replied") != NULL)
		yes = 1;
	free(v);
	if (head_subject_has(h, autoreply_subjects, NELEM(autoreply_subjects)))
		yes = 1;
	return yes && !head_is_daemon(h) &&
	       !(head_subject_has(h, failure_subjects, NELEM(failure_subjects)) &&
	         !(h->subj != NULL && bounce_str_casestr(h->subj, "auto")));
}

/* Phrases of a text that only a mail system writes to the sender of a
 * failed message. */
static const char *const bounce_texts[] = {
    "could not be delivered to",
    "couldn't be delivered to",
    "following addresses had",
    "following recipients failed",
    "following recipient(s) failed",
    "delivery to the following recipient",
    "permanent fatal errors",
    "this is the mail system at host",
    "did not reach the following recipient",
    "wasn't able to deliver your message",
    "unable to deliver message to",
    "unable to deliver your message",
    "message could not be delivered",
    "message was not delivered",
    "delivery has failed to these recipients",
    "recipients returned permanent errors",
    "error message below",
    "delivery status notification",
    "this is the qmail-send program",
    "mail delivery failed",
};

/* ---- Amazon SES notifications (JSON, as SNS mails them) ---- */

/* The string value of "key" at or after s (before end), unescaped
 * quotes tolerated ("key":"v" or \"key\":\"v\"), into a new string; NULL
 * if none. *at is set past the value. Sets *oom on out-of-memory. */
static char *json_value(const char *s, const char *end, const char *key,
                        const char **at, int *oom)
{
	size_t k = strlen(key);

	for (const char *p = s; p != NULL && p + k < end;
	     p = memchr(p + 1, key[0], (size_t)(end - p - 1))) {
		const char *v = p + k, *e;

		if (memcmp(p, key, k) != 0 || (p > s && isalnum((unsigned char)p[-1])))
			continue;
		while (v < end && (*v == '\\' || *v == '"' || *v == ' ' ||
		                   *v == ':'))
			v++;
		for (e = v; e < end && *e != '"' && *e != '\\' && *e != '\n';
		     e++)
			;
		if (e - v > BOUNCE_MAX_VALUE)
			return NULL;
		*at = e;
		{
			char *r = bounce_str_ndup(v, (size_t)(e - v));

			if (r == NULL)
				*oom = 1;
			return r;
		}
	}
	return NULL;
}

/* A bounce or complaint notification of Amazon SES in the text: 1 when
 * it was one (ev filled), 0 when not. */
static int classify_ses(struct bounce_event *ev, const char *text, size_t n,
                        int *oom)
{
	const char *end = text + n, *at = text, *list;
	char *type = json_value(text, end, "notificationType", &at, oom);
	int complaint;

	if (type == NULL)
		return 0;
	complaint = strcmp(type, "Complaint") == 0;
	if (!complaint && strcmp(type, "Bounce") != 0) {
		free(type);
		return 0;
	}
	free(type);
	list = memmem(at, (size_t)(end - at),
	              complaint ? "complainedRecipients" : "bouncedRecipients",
	              complaint ? 20 : 17);
	if (list == NULL)
		return 0;
	ev->kind = complaint ? BOUNCE_COMPLAINT : BOUNCE_DSN;
	if (complaint)
		ev->feedback_type =
		    json_value(at, end, "complaintFeedbackType", &at, oom);
	at = list;
	for (;;) {
		const char *next = at, *close;
		char *v = json_value(at, end, "emailAddress", &next, oom);
		char *a;
		struct bounce_rcpt *r;
		int added;

		if (v == NULL)
			break;
		/* the recipient's object ends at the next '}' */
		close = memchr(next, '}', (size_t)(end - next));
		if (close == NULL)
			close = end;
		a = bounce_addr_from(v, oom);
		free(v);
		at = close;
		if (a == NULL)
			continue;
		if ((added = rcpt_add(ev, a)) < 0) {
			*oom = 1;
			break;
		}
		if (added == 0)
			continue;
		r = &ev->rcpt[ev->nrcpt - 1];
		if (complaint) {
			r->reason = "feedback";
			continue;
		}
		r->action = json_value(next, close, "action", &next, oom);
		v = json_value(next, close, "status", &next, oom);
		if (v != NULL)
			bounce_rules_find_status(v, r->status);
		free(v);
		v = json_value(next, close, "diagnosticCode", &next, oom);
		if (v != NULL) {
			const char *c = strchr(v, ';');

			c = c != NULL ? c + 1 : v;
			r->diagnostic = bounce_str_clean(c, strlen(c));
			if (r->diagnostic == NULL)
				*oom = 1;
			free(v);
		}
	}
	return 1;
}

/* Fill ev from the parsed message; -1 on out-of-memory. */
/* ---- DragonFly Mail Agent ---- */

/* The line after the one at p (CRLF text ending at end), or end. */
static const char *next_line(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? nl + 1 : end;
}

/* dma's notice (the DragonFly Mail Agent: no report part): per failed
 * recipient, "There was an error delivering your mail to <addr>.", a
 * blank line, then either "HOST [IP] did not like our RCPT TO:" (or
 * "MAIL FROM:", "DATA:", "final DATA:") and the server's reply on the
 * next line, or dma's own words ("Could not deliver for the last N
 * seconds. Giving up."). Returns 1 when text is dma's, with ev's
 * recipients added (their command and diagnostic set), else 0. */
static int classify_dma(struct bounce_event *ev, const char *text, size_t n,
                        int *oom)
{
	static const char intro[] = "There was an error delivering your mail "
	                            "to <";
	const char *end = text + n, *at = text;

	if (bounce_str_casestr(text, "This is the DragonFly Mail Agent") == NULL)
		return 0;
	while ((at = memmem(at, (size_t)(end - at), intro,
	                    sizeof intro - 1)) != NULL) {
		const char *a = at + sizeof intro - 1, *p, *e;
		size_t an = bounce_addr_len(a);
		const char *command = NULL;
		struct bounce_rcpt *r;
		char *addr;
		int added;

		at = a;
		if (an == 0 || a + an >= end || a[an] != '>')
			continue;
		addr = bounce_addr_dup(a, an);
		if (addr == NULL) {
			*oom = 1;
			return 1;
		}
		if ((added = rcpt_add(ev, addr)) < 0) {
			*oom = 1;
			return 1;
		}
		if (added == 0)
			continue;
		r = &ev->rcpt[ev->nrcpt - 1];
		/* the paragraph after the blank line */
		p = next_line(a, end);
		while (p < end && (*p == '\r' || *p == '\n'))
			p = next_line(p, end);
		e = next_line(p, end);
		if (memmem(p, (size_t)(e - p), " did not like our ", 18) !=
		    NULL) {
			if (memmem(p, (size_t)(e - p), "RCPT TO", 7) != NULL)
				command = "RCPT";
			else if (memmem(p, (size_t)(e - p), "MAIL FROM", 9) !=
			         NULL)
				command = "MAIL";
			else if (memmem(p, (size_t)(e - p), "DATA", 4) != NULL)
				command = "DATA";
			p = e; /* the reply is on the next line */
		}
		/* the reply or dma's words: up to the blank line */
		e = p;
		while (e < end && *e != '\r' && *e != '\n')
			e = next_line(e, end);
		r->command = command;
		r->diagnostic = bounce_str_clean(p, (size_t)(e - p));
		if (r->diagnostic == NULL) {
			*oom = 1;
			return 1;
		}
	}
	if (ev->nrcpt > 0)
		ev->kind = BOUNCE_DSN;
	return 1;
}

static int classify(struct bounce_event *ev, const struct bounce_top *top,
                    struct bounce_scan *sc)
{
	struct bounce_orig o = {0};
	struct head h = {0};
	struct selves self = {{0}};
	size_t cut = sc->ntext;
	const char *notice = NULL;
	bool service_rule = false;
	char *v;
	int oom = 0, weak = 0;

	v = bounce_mime_top_get(top, T_DELIVERED_TO, &oom);
	if (v == NULL && !oom)
		v = bounce_mime_top_get(top, T_X_ORIGINAL_TO, &oom);
	if (v != NULL) {
		ev->verp_to = bounce_addr_from(v, &oom);
		free(v);
	} else if (!oom && (v = bounce_mime_top_get(top, T_TO, &oom)) != NULL) {
		ev->verp_to = bounce_addr_first(v, &oom);
		free(v);
	}

	if (sc->text != NULL)
		cut = text_cut(sc->text, sc->ntext);
	if (sc->orig == NULL && sc->text != NULL)
		text_original(sc, cut);
	if (sc->orig != NULL && bounce_mime_orig_read(sc->orig, sc->norig, &o) < 0)
		oom = 1;
	ev->message_id = o.mid;
	o.mid = NULL;
	ev->orig_return_path = o.rp;
	o.rp = NULL;
	ev->orig_unsubscribe = o.lu;
	o.lu = NULL;
	head_read(&h, top, &o, &oom);
	self.a[0] = ev->verp_to;
	self.a[1] = h.from;
	self.a[2] = h.to;
	self.a[3] = h.ofrom;

	if (classify_complaint(ev, sc, &o, &h, &oom))
		goto done;

	if (sc->dsn == NULL && sc->text != NULL &&
	    classify_ses(ev, sc->text, sc->ntext, &oom)) {
		if (ev->kind == BOUNCE_COMPLAINT)
			goto done;
		goto rcpts;
	}
	if (sc->dsn == NULL && sc->text != NULL &&
	    classify_dma(ev, sc->text, cut, &oom) && ev->nrcpt > 0)
		goto rcpts;
	if (sc->dsn != NULL && dsn_parse(ev, sc->dsn, sc->ndsn) < 0)
		oom = 1;
	/* a report pasted into the text */
	if (ev->nrcpt == 0 && sc->text != NULL && !oom) {
		const char *f = bounce_str_casestr(sc->text, "\nFinal-Recipient:");

		if (f != NULL &&
		    dsn_parse(ev, f + 1,
		              sc->ntext - (size_t)(f + 1 - sc->text)) < 0)
			oom = 1;
	}
	if (ev->nrcpt > 0) {
		ev->kind = BOUNCE_DSN;
		if (sc->text != NULL && !oom &&
		    text_rcpts(ev, sc->text, cut, &self, 1) < 0)
			oom = 1;
		goto rcpts;
	}

	v = bounce_mime_top_get(top, T_AUTO_SUBMITTED, &oom);
	h.strong = sc->report_dsn || head_is_daemon(&h) ||
	           head_subject_has(&h, failure_subjects,
	                            NELEM(failure_subjects)) ||
	           (v != NULL && bounce_str_casestr(v, "failure") != NULL);
	free(v);

	/* Auto-replies before the text scan: their text quotes addresses. */
	if (!h.strong && is_autoreply(top, &h, &oom)) {
		ev->kind = BOUNCE_AUTOREPLY;
		if (h.from != NULL) {
			char *a = bounce_addr_from(h.from, &oom);

			if (a != NULL && rcpt_add(ev, a) < 0)
				oom = 1;
			if (ev->nrcpt > 0) {
				ev->rcpt[0].reason = "vacation";
				ev->rcpt[0].hard = -1;
			}
		}
		if (ev->message_id == NULL)
			ev->message_id = replied_id(top, &oom);
		goto done;
	}

	/* Non-standard bounces. */
	v = bounce_mime_top_get(top, T_X_FAILED_RECIPIENTS, &oom);
	if (v != NULL) {
		char *save = NULL;

		h.strong = 1;
		for (char *t = strtok_r(v, ", ", &save); t != NULL;
		     t = strtok_r(NULL, ", ", &save)) {
			char *a = bounce_addr_from(t, &oom);

			if (a != NULL && rcpt_add(ev, a) < 0)
				oom = 1;
		}
		free(v);
	}
	if (sc->text != NULL && !h.strong) {
		char *head = bounce_str_ndup(sc->text, cut);

		if (head == NULL) {
			oom = 1;
		} else {
			for (size_t i = 0; i < NELEM(bounce_texts) && !weak;
			     i++)
				weak = bounce_str_casestr(head, bounce_texts[i]) != NULL;
			free(head);
		}
	}
	if (!h.strong && !weak) {
		if (sc->text != NULL &&
		    is_unsubscribe(h.subj_dec != NULL ? h.subj_dec : h.subj,
		                   sc->text, sc->nfirst)) {
			ev->kind = BOUNCE_UNSUBSCRIBE;
			if (h.from != NULL) {
				char *a = bounce_addr_from(h.from, &oom);

				if (a != NULL && rcpt_add(ev, a) < 0)
					oom = 1;
			}
			for (size_t i = 0; i < ev->nrcpt; i++)
				ev->rcpt[i].reason = "unsubscribe";
			free(ev->message_id);
			ev->message_id = replied_id(top, &oom);
		}
		goto done;
	}
	if (sc->text != NULL && !oom &&
	    text_rcpts(ev, sc->text, cut, &self, ev->nrcpt > 0) < 0)
		oom = 1;
	/* A mail system's report naming nobody in a form we know: the
	 * returned original says whom it was for (herald sends one
	 * recipient per message). */
	if (ev->nrcpt == 0 && h.strong && h.oto != NULL && !oom) {
		char *a = bounce_addr_from(h.oto, &oom);

		if (a != NULL && is_self(&self, a))
			free(a);
		else if (a != NULL && rcpt_add(ev, a) < 0)
			oom = 1;
	}
	if (ev->nrcpt > 0)
		ev->kind = BOUNCE_DSN;
rcpts:
	/* Amazon SES receiving (Reporting-MTA inbound-smtp.REGION.
	 * amazonaws.com) keeps no mailboxes: its reports come from a
	 * receipt rule's bounce action, in the words the rule was given */
	if (sc->dsn != NULL) {
		const char *m = memmem(sc->dsn, sc->ndsn, "inbound-smtp.", 13);

		service_rule =
		    m != NULL &&
		    memmem(m, sc->ndsn - (size_t)(m - sc->dsn),
		           ".amazonaws.com", 14) != NULL;
	}
	/* what the notice to the sender says beside a report about one
	 * recipient (about several, it may speak of another) */
	if (ev->nrcpt == 1 && sc->dsn != NULL && sc->text != NULL) {
		char *c = bounce_str_ndup(sc->text, cut < BOUNCE_NOTICE_WINDOW
		                                 ? cut
		                                 : BOUNCE_NOTICE_WINDOW);
		char *l = c != NULL ? bounce_str_lower(c, BOUNCE_NOTICE_WINDOW) : NULL;

		notice = l != NULL ? bounce_rules_phrase_reason(l) : NULL;
		free(l);
		free(c);
	}
	for (size_t i = 0; i < ev->nrcpt && !oom; i++) {
		struct bounce_rcpt *r = &ev->rcpt[i];

		/* no explanation of its own: the text's */
		if (r->diagnostic == NULL && sc->text != NULL) {
			char *c = bounce_str_ndup(sc->text, cut < BOUNCE_DIAG_WINDOW
			                                 ? cut
			                                 : BOUNCE_DIAG_WINDOW);

			r->diagnostic =
			    c != NULL ? bounce_str_clean(c, strlen(c)) : NULL;
			free(c);
			if (r->diagnostic == NULL)
				oom = 1;
		}
		bounce_rules_classify(r, notice, service_rule);
	}
	/* a report that every recipient was delivered (a success DSN asked
	 * for with NOTIFY=SUCCESS, "Action: deliverable") is no bounce */
	if (ev->kind == BOUNCE_DSN && !oom) {
		size_t ok = 0;

		for (size_t i = 0; i < ev->nrcpt; i++)
			ok += ev->rcpt[i].reason != NULL &&
			      strcmp(ev->rcpt[i].reason, "delivered") == 0;
		if (ok == ev->nrcpt)
			ev->kind = BOUNCE_NONE;
	}
done:
	bounce_mime_orig_free(&o);
	head_free(&h);
	return oom ? -1 : 0;
}

/* The line of buf (CRLF line ends) holding needle[0..n), or NULL; *no
 * is its number (1 = the first line of buf). Of the first few lines that
 * hold it, a report's Diagnostic-Code field is preferred to the notice
 * that repeats it. */
static const char *line_of(const char *buf, size_t len, const char *needle,
                           size_t n, unsigned *no)
{
	const char *first = NULL, *at = buf;
	unsigned first_no = 0, k = 1;
	const char *scanned = buf;

	for (int tries = 0; tries < 8 && n > 0; tries++) {
		const char *start;

		at = memmem(at, len - (size_t)(at - buf), needle, n);
		if (at == NULL)
			break;
		/* count the lines up to this one, from where the last
		 * count stopped */
		start = scanned;
		for (const char *c = scanned;
		     (c = memchr(c, '\n', (size_t)(at - c))) != NULL; c++) {
			k++;
			start = c + 1;
		}
		scanned = start;
		if (first == NULL) {
			first = start;
			first_no = k;
		}
		if ((size_t)(at - start) >= 16 &&
		    strncasecmp(start, "Diagnostic-Code:", 16) == 0) {
			*no = k;
			return start;
		}
		at += n;
	}
	*no = first_no;
	return first;
}

/* Each recipient's evidence: the line of the message its verdict was
 * read from (the diagnostic's first words, else its Status field), as it
 * stands there, with its number; where no such line is there verbatim
 * (an encoded part, a diagnostic pasted together from several lines),
 * the diagnostic as read and line 0. from_line: the message began with
 * an mbox "From " line, which buf no longer holds. Returns -1 on
 * out-of-memory. */
static int evidence_find(struct bounce_event *ev, const char *buf, size_t len,
                         int from_line)
{
	for (size_t i = 0; i < ev->nrcpt; i++) {
		struct bounce_rcpt *r = &ev->rcpt[i];
		char key[64];
		const char *line = NULL, *d = r->diagnostic;
		size_t n = 0, cap;
		unsigned no = 0;

		if (r->rule == NULL)
			continue;
		/* a verdict the status made: its Status line */
		if (r->status[0] != '\0' &&
		    (strcmp(r->rule, "status") == 0 ||
		     strcmp(r->rule, "temporary") == 0)) {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			if (k > 0 && (size_t)k < sizeof key)
				line = line_of(buf, len, key, (size_t)k, &no);
		}
		if (line == NULL && d != NULL && d[0] != '\0') {
			/* its first words: the reader unfolds long lines */
			while (n < 40 && d[n] != '\0')
				n++;
			/* whole words: a fold may follow any of them */
			if (d[n] != '\0')
				while (n > 0 && d[n] != ' ')
					n--;
			if (n >= 8)
				line = line_of(buf, len, d, n, &no);
		}
		if (line == NULL && r->status[0] != '\0') {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			if (k > 0 && (size_t)k < sizeof key)
				line = line_of(buf, len, key, (size_t)k, &no);
		}
		if (line != NULL) {
			const char *e = line;

			while (e < buf + len && *e != '\r' && *e != '\n')
				e++;
			cap = (size_t)(e - line);
			if (cap > BOUNCE_EVIDENCE_MAX)
				cap = BOUNCE_EVIDENCE_MAX;
			r->evidence = bounce_str_clean(line, cap);
			r->evidence_line = no + (from_line ? 1u : 0u);
		} else if (d != NULL) {
			cap = strlen(d);
			r->evidence = bounce_str_clean(d, cap > BOUNCE_EVIDENCE_MAX
			                             ? BOUNCE_EVIDENCE_MAX
			                             : cap);
		} else if (r->status[0] != '\0') {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			r->evidence = k > 0 ? bounce_str_ndup(key, (size_t)k) : NULL;
		} else {
			continue;
		}
		if (r->evidence == NULL)
			return -1;
	}
	return 0;
}

int bounce_parse(const char *msg, size_t len, struct bounce_event *ev,
                 struct diag *d)
{
	struct bounce_top top;
	struct bounce_scan sc = {0};
	size_t n = 0, hl, body;
	char *buf = NULL;
	int rc = -1;

	memset(ev, 0, sizeof *ev);
	if (len > BOUNCE_MAX_SIZE) {
		diag_add(
		    d, NULL, 0, 0,
		    "bounce: message of %zu bytes refused: larger than the "
		    "%u-byte limit",
		    len, BOUNCE_MAX_SIZE);
		return -1;
	}
	buf = bounce_mime_normalise(msg, len, &n);
	if (buf == NULL)
		goto oom;
	if (n == 0) {
		rc = 0; /* nothing: not a bounce */
		goto out;
	}
	hl = bounce_mime_head_len(buf, n, &body);
	bounce_mime_top_read(buf, hl, &top);
	if (bounce_mime_walk(&sc, buf, n, 0, "text/plain") < 0)
		goto oom;
	if (sc.text == NULL && sc.dsn == NULL && sc.arf == NULL &&
	    bounce_mime_text_append(&sc, buf + body, n - body) < 0)
		goto oom; /* no part made sense (a boundary that never
		             occurs): the raw body */
	if (classify(ev, &top, &sc) < 0 ||
	    evidence_find(ev, buf, n, len >= 5 && memcmp(msg, "From ", 5) == 0) <
	        0)
		goto oom;
	rc = 0;
	goto out;
oom:
	diag_add(d, NULL, 0, 0, "bounce: out of memory");
	bounce_event_free(ev);
	rc = -1;
out:
	free(buf);
	free(sc.dsn_own);
	free(sc.arf_own);
	free(sc.orig_own);
	free(sc.text);
	return rc;
}
