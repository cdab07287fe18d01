/*
 * bounce_text — bounces without a report part, read from their text
 * (bounce_int.h): the way Exim, qmail, Postfix, Sendmail and most hosted
 * services write them, a failed recipient's address begins a line or
 * follows a label ("Recipient:", "550 5.1.1 <a@b>..."), and the lines
 * around it explain the failure. The returned original, which quotes
 * addresses of its own, is cut off first, at the line that introduces
 * it. The caller reads the text only when the message looks like a
 * bounce: a human reply quoting addresses must not suppress anybody.
 */
#include "bounce_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An address that only a mail system sends from, never a recipient's. */
static int is_daemon_addr(const char *addr)
{
	return addr != NULL && (strncasecmp(addr, "mailer-daemon", 13) == 0 ||
	                        strncasecmp(addr, "mail-daemon", 11) == 0 ||
	                        strncasecmp(addr, "mailerdaemon", 12) == 0 ||
	                        strncasecmp(addr, "mdaemon", 7) == 0);
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

		if (s == e ||
		    tolower((unsigned char)*s) != original_markers[i][0])
			continue;
		n = strlen(original_markers[i]);
		if ((size_t)(e - s) >= n &&
		    strncasecmp(s, original_markers[i], n) == 0) {
			/* Sendmail: "The original message was received at" */
			const char *w = s + n;

			while (w < e && *w == ' ')
				w++;
			if ((size_t)(e - w) >= 3 &&
			    strncasecmp(w, "was", 3) == 0)
				return 0;
			return 1;
		}
	}
	return 0;
}

size_t bounce_text_cut(const char *text, size_t n)
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
		    ((size_t)(e - s) == n ||
		     !isalnum((unsigned char)*(e - n - 1))))
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

int bounce_text_is_self(const struct bounce_selves *s, const char *addr)
{
	for (size_t i = 0; i < 4; i++)
		if (s->a[i] != NULL && strcasecmp(s->a[i], addr) == 0)
			return 1;
	return is_daemon_addr(addr);
}

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

/* The text that explains the failure of the recipient on the line at
 * line: up to the next line naming another recipient, at most
 * BOUNCE_DIAG_WINDOW bytes, line ends made blanks. NULL on
 * out-of-memory. */
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
		if ((a != NULL &&
		     !(n == alen && strncasecmp(a, addr, n) == 0)) ||
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

	return !bounce_rules_find_status(w, st) &&
	       bounce_rules_find_code(w) == 0 &&
	       bounce_rules_phrase_reason(lw) == NULL;
}

int bounce_text_rcpts(struct bounce_event *ev, const char *text, size_t n,
                      const struct bounce_selves *self, int only_known)
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
		if (bounce_text_is_self(self, addr)) {
			free(addr);
			goto next;
		}
		if (only_known) {
			for (size_t i = 0; i < ev->nrcpt; i++)
				if (strcmp(ev->rcpt[i].address, addr) == 0)
					r = &ev->rcpt[i];
			free(addr);
		} else {
			int added = bounce_rcpt_add(ev, addr);

			if (added < 0)
				return -1;
			if (added > 0)
				r = &ev->rcpt[ev->nrcpt - 1];
		}
		if (r != NULL &&
		    (r->diagnostic == NULL || r->command == NULL)) {
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
				lw = win != NULL
				         ? bounce_str_lower(
				               win, 2 * BOUNCE_DIAG_WINDOW)
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

void bounce_text_original(struct bounce_scan *sc, size_t cut)
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

int bounce_text_is_notice(const char *text, size_t n, int *oom)
{
	char *head = bounce_str_ndup(text, n);
	int yes = 0;

	if (head == NULL) {
		*oom = 1;
		return 0;
	}
	for (size_t i = 0; i < NELEM(bounce_texts) && !yes; i++)
		yes = bounce_str_casestr(head, bounce_texts[i]) != NULL;
	free(head);
	return yes;
}
