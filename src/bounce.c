/*
 * bounce — one received message to one bounce event (see bounce.h).
 *
 * The message is first copied with every line end made CRLF (libetpan's
 * parsers want CRLF) and NUL bytes made spaces (the text scans use C
 * strings). libetpan's mailmime_parse gives the structure; the parts that
 * matter are collected in one walk of the top level (never inside a
 * returned original): message/delivery-status, message/feedback-report,
 * the returned original (message/rfc822 or text/rfc822-headers) and the
 * human-readable text.
 *
 * A standard report's recipients come from its field blocks. Without one,
 * recipients come from X-Failed-Recipients or from lines of the text that
 * begin with an address, the way Exim, qmail, Postfix, Sendmail and most
 * hosted services write them, and only when the message looks like a
 * bounce (from a mailer daemon or postmaster, or with a failure subject):
 * a human reply quoting addresses must not suppress anybody.
 *
 * The reason vocabulary and what counts as hard follow the bounce corpus
 * in ../shared/bounces (expected.jsonl), except that reasons about the
 * sender's own reputation or set-up are "neither": herald never
 * suppresses a recipient because its own mail was blocked.
 */
#include "herald/bounce.h"

#include <ctype.h>
#include <libetpan/libetpan.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	/* Text scanned for non-standard bounces. */
	BOUNCE_MAX_TEXT = 256 * 1024,
	/* RFC 5321: a path is at most 256 octets. */
	BOUNCE_MAX_ADDR = 254,
	/* Text after a recipient's line that explains its failure. */
	BOUNCE_DIAG_WINDOW = 600,
};

/* What one walk of the message collects; the char * are owned. */
struct scan {
	int report_dsn, report_arf;
	char *dsn; /* message/delivery-status body, CRLF */
	size_t ndsn;
	char *arf; /* message/feedback-report body, CRLF */
	size_t narf;
	char *orig; /* returned original's header block, CRLF */
	size_t norig;
	char *text; /* human-readable text, NUL-terminated */
	size_t ntext;
	size_t parts;
};

/* ---- small string helpers ---- */

static char *xstrndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* A header value unfolded, control characters made spaces, trimmed and
 * capped; NULL on out-of-memory. */
static char *clean_value(const char *v)
{
	size_t n = strlen(v), i, o = 0;
	char *p;

	if (n > BOUNCE_MAX_VALUE)
		n = BOUNCE_MAX_VALUE;
	p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == ' ' && (o == 0 || p[o - 1] == ' '))
			continue;
		p[o++] = (char)c;
	}
	while (o > 0 && p[o - 1] == ' ')
		o--;
	p[o] = '\0';
	return p;
}

/* Case-insensitive substring search in a NUL-terminated haystack. */
static const char *ci_find(const char *h, const char *n)
{
	size_t nl = strlen(n);

	if (h == NULL)
		return NULL;
	for (; *h != '\0'; h++)
		if (strncasecmp(h, n, nl) == 0)
			return h;
	return NULL;
}

static int is_addr_char(int c)
{
	return isalnum(c) || strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL;
}

/* An address at s (atext local part, '@', a dotted domain): its length,
 * or 0. */
static size_t addr_len(const char *s)
{
	size_t i = 0, at = 0, dot = 0;

	while (s[i] != '\0' && (is_addr_char((unsigned char)s[i]) ||
	                        (s[i] == '@' && at == 0 && i > 0))) {
		if (s[i] == '@')
			at = i;
		else if (at != 0 && s[i] == '.')
			dot = i;
		i++;
	}
	while (i > 0 && (s[i - 1] == '.' || s[i - 1] == '-'))
		i--;
	if (at == 0 || dot <= at + 1 || dot + 1 >= i || i > BOUNCE_MAX_ADDR)
		return 0;
	return i;
}

/* The address in v ("rfc822; <a@b>", "a@b", "Name <a@b>"), lowercased,
 * or NULL. Sets *oom on out-of-memory. */
static char *addr_from(const char *v, int *oom)
{
	const char *s = strchr(v, ';'), *p;
	size_t n;
	char *a;

	s = s != NULL ? s + 1 : v;
	for (p = s; *p != '\0'; p++) {
		if (p > s && is_addr_char((unsigned char)p[-1]))
			continue;
		n = addr_len(p);
		if (n == 0)
			continue;
		a = xstrndup(p, n);
		if (a == NULL) {
			*oom = 1;
			return NULL;
		}
		for (size_t i = 0; i < n; i++)
			a[i] = (char)tolower((unsigned char)a[i]);
		return a;
	}
	return NULL;
}

/* An enhanced status code ("5.1.1") in s copied to out[16]; 1 if found. */
static int find_status(const char *s, char out[16])
{
	for (const char *p = s; p != NULL && *p != '\0'; p++) {
		size_t i = 0, dots = 0, seg = 0;

		if ((*p != '2' && *p != '4' && *p != '5') ||
		    (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '.')))
			continue;
		if (p[1] != '.')
			continue;
		for (i = 1; i < 12 && p[i] != '\0'; i++) {
			if (p[i] == '.') {
				if (seg == 0 && i > 1)
					break;
				dots++;
				seg = 0;
				if (dots > 2)
					break;
			} else if (isdigit((unsigned char)p[i])) {
				if (++seg > 3)
					break;
			} else {
				break;
			}
		}
		if (dots == 2 && seg > 0 && !isalnum((unsigned char)p[i]) &&
		    !(p[i] == '.' && isdigit((unsigned char)p[i + 1]))) {
			memcpy(out, p, i);
			out[i] = '\0';
			return 1;
		}
	}
	return 0;
}

/* A 3-digit SMTP reply code (2xx, 4xx, 5xx) standing alone in s, or 0. */
static int find_code(const char *s)
{
	for (const char *p = s; p != NULL && *p != '\0'; p++) {
		if ((*p != '2' && *p != '4' && *p != '5') ||
		    !isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]))
			continue;
		if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '.' ||
		              p[-1] == ':' || p[-1] == '#'))
			continue;
		if (p[3] != ' ' && p[3] != '-' && p[3] != '\0' &&
		    p[3] != '\r' && p[3] != '\n')
			continue;
		return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	}
	return 0;
}

/* ---- reasons ---- */

struct pattern {
	const char *text;
	const char *reason;
};

/* Diagnostic phrases, most specific first: the first match decides. */
static const struct pattern bounce_patterns[] = {
    {"virus", "virusdetected"},
    {"sender address rejected", "rejected"},
    {"sender rejected", "rejected"},
    {"sender verify failed", "rejected"},
    {"domain of sender", "rejected"},
    {"purported responsible address", "rejected"},
    {"permission to post", "rejected"},
    {"could not be delivered within", "expired"},
    {"delivery attempts will continue", "expired"},
    {"relay access denied", "norelaying"},
    {"relaying denied", "norelaying"},
    {"relay not permitted", "norelaying"},
    {"not permitted to relay", "norelaying"},
    {"unable to relay", "norelaying"},
    {"relaying not allowed", "norelaying"},
    {"too many connections", "toomanyconn"},
    {"too many concurrent", "toomanyconn"},
    {"too many hops", "networkerror"},
    {"mail loop", "networkerror"},
    {"routing loop", "networkerror"},
    {"loops back to myself", "networkerror"},
    {"reverse dns", "requireptr"},
    {"reverse lookup", "requireptr"},
    {"no ptr record", "requireptr"},
    {"ptr record", "requireptr"},
    {"rdns", "requireptr"},
    {"not resolve your address", "requireptr"},
    {"cannot find your hostname", "requireptr"},
    {"dmarc", "authfailure"},
    {"dkim", "authfailure"},
    {"spf", "authfailure"},
    {"sender policy framework", "authfailure"},
    {"starttls", "securityerror"},
    {"tls required", "securityerror"},
    {"encryption required", "securityerror"},
    {"authentication required", "securityerror"},
    {"certificate", "securityerror"},
    {"spamhaus", "blocked"},
    {"blacklist", "blocked"},
    {"blocklist", "blocked"},
    {"black list", "blocked"},
    {"block list", "blocked"},
    {"dnsbl", "blocked"},
    {"rbl", "blocked"},
    {"bad reputation", "badreputation"},
    {"poor reputation", "badreputation"},
    {"reputation", "blocked"},
    {"spam", "spamdetected"},
    {"junk mail", "spamdetected"},
    {"unsolicited", "spamdetected"},
    {"mailbox full", "mailboxfull"},
    {"mailbox is full", "mailboxfull"},
    {"mailbox has exceeded", "mailboxfull"},
    {"over quota", "mailboxfull"},
    {"overquota", "mailboxfull"},
    {"quota exceeded", "mailboxfull"},
    {"exceeded storage", "mailboxfull"},
    {"exceeds quota", "mailboxfull"},
    {"exceeded the quota", "mailboxfull"},
    {"disk quota", "mailboxfull"},
    {"mailbox size limit", "mailboxfull"},
    {"full mailbox", "mailboxfull"},
    {"insufficient system storage", "systemfull"},
    {"message too large", "mesgtoobig"},
    {"message too big", "mesgtoobig"},
    {"message is too big", "mesgtoobig"},
    {"message is too large", "mesgtoobig"},
    {"message size exceeds", "mesgtoobig"},
    {"exceeds size limit", "mesgtoobig"},
    {"size exceeds", "mesgtoobig"},
    {"too big", "mesgtoobig"},
    {"no such user", "userunknown"},
    {"user unknown", "userunknown"},
    {"unknown user", "userunknown"},
    {"unknown recipient", "userunknown"},
    {"user not found", "userunknown"},
    {"recipient not found", "userunknown"},
    {"no such mailbox", "userunknown"},
    {"mailbox not found", "userunknown"},
    {"invalid recipient", "userunknown"},
    {"invalid mailbox", "userunknown"},
    {"not a valid mailbox", "userunknown"},
    {"mailbox unavailable", "userunknown"},
    {"user doesn't exist", "userunknown"},
    {"address does not exist", "userunknown"},
    {"account does not exist", "userunknown"},
    {"mailbox does not exist", "userunknown"},
    {"user does not exist", "userunknown"},
    {"recipient does not exist", "userunknown"},
    {"doesn't have a", "userunknown"},
    {"does not have an account", "userunknown"},
    {"no mailbox", "userunknown"},
    {"unrouteable address", "userunknown"},
    {"address rejected", "userunknown"},
    {"unknown local part", "userunknown"},
    {"not our customer", "userunknown"},
    {"host unknown", "hostunknown"},
    {"unknown host", "hostunknown"},
    {"host not found", "hostunknown"},
    {"domain not found", "hostunknown"},
    {"no such domain", "hostunknown"},
    {"domain does not exist", "hostunknown"},
    {"unrouteable mail domain", "hostunknown"},
    {"name or service not known", "hostunknown"},
    {"nxdomain", "hostunknown"},
    {"does not accept mail", "notaccept"},
    {"accepts no mail", "notaccept"},
    {"null mx", "notaccept"},
    {"account has been disabled", "suspend"},
    {"account is disabled", "suspend"},
    {"mailbox disabled", "suspend"},
    {"suspended", "suspend"},
    {"inactive", "suspend"},
    {"has moved", "hasmoved"},
    {"retry timeout exceeded", "expired"},
    {"retry time", "expired"},
    {"delivery time expired", "expired"},
    {"message expired", "expired"},
    {"too long in queue", "expired"},
    {"could not be delivered for", "expired"},
    {"connection refused", "networkerror"},
    {"connection timed out", "networkerror"},
    {"no route to host", "networkerror"},
    {"lost connection", "networkerror"},
    {"syntax error", "syntaxerror"},
    {"policy", "policyviolation"},
    {"filter", "filtered"},
    {"blocked", "blocked"},
    {"denied", "blocked"},
    {"system error", "systemerror"},
    {"internal error", "systemerror"},
    {"mailer error", "mailererror"},
    {"command died", "mailererror"},
    {"illegal attachment", "contenterror"},
    {"content", "contenterror"},
};

const char *bounce_reason(const char *status, int code, const char *diagnostic)
{
	int cls = 0, subj = -1, det = -1;

	/* Statuses that say it all, whatever the text. */
	if (status != NULL) {
		static const struct pattern decisive[] = {
		    {"5.1.8", "rejected"},     {"5.1.7", "rejected"},
		    {"5.2.2", "mailboxfull"},  {"4.2.2", "mailboxfull"},
		    {"5.3.4", "mesgtoobig"},   {"4.4.7", "expired"},
		    {"5.4.7", "expired"},      {"5.1.6", "hasmoved"},
		    {"5.7.26", "authfailure"}, {"5.7.509", "authfailure"},
		};
		for (size_t i = 0; i < sizeof decisive / sizeof decisive[0];
		     i++)
			if (strcmp(status, decisive[i].text) == 0)
				return decisive[i].reason;
	}
	if (diagnostic != NULL)
		for (size_t i = 0;
		     i < sizeof bounce_patterns / sizeof bounce_patterns[0];
		     i++)
			if (ci_find(diagnostic, bounce_patterns[i].text))
				return bounce_patterns[i].reason;
	if (status != NULL && status[0] != '\0' && status[1] == '.') {
		cls = status[0] - '0';
		subj = atoi(status + 2);
		const char *d = strchr(status + 2, '.');
		det = d != NULL ? atoi(d + 1) : -1;
	}
	if (cls == 2)
		return "delivered";
	switch (subj * 1000 + det) {
	case 1001:
	case 1003:
	case 1010:
		return "userunknown";
	case 1002:
		return "hostunknown";
	case 1006:
		return "hasmoved";
	case 1007:
	case 1008:
		return "rejected";
	case 2001:
		return "suspend";
	case 2002:
		return "mailboxfull";
	case 2003:
		return "exceedlimit";
	case 3001:
		return "systemfull";
	case 3004:
		return "mesgtoobig";
	case 3005:
		return "systemerror";
	case 4001:
	case 4002:
	case 4006:
		return "networkerror";
	case 4004:
		return "hostunknown";
	case 4007:
		return "expired";
	case 7001:
		return "blocked";
	case 7026:
	case 7509:
		return "authfailure";
	}
	switch (subj) {
	case 1:
		return "userunknown";
	case 2:
		return "mailboxfull";
	case 3:
		return "systemerror";
	case 4:
		return "networkerror";
	case 5:
		return "syntaxerror";
	case 6:
		return "contenterror";
	case 7:
		return "securityerror";
	}
	if (code == 552)
		return "mailboxfull";
	if (code == 421)
		return "toomanyconn";
	if (code == 550 || code == 553)
		return "userunknown";
	return "undefined";
}

int bounce_reason_hard(const char *reason)
{
	static const char *const hard[] = {"userunknown", "hostunknown",
	                                   "hasmoved", "notaccept"};
	static const char *const neither[] = {
	    "blocked",    "spamdetected",  "policyviolation", "authfailure",
	    "requireptr", "badreputation", "securityerror",   "norelaying",
	    "rejected",   "feedback",      "vacation",        "delivered"};

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

/* ---- input ---- */

/* A copy of msg with CRLF line ends, NULs made spaces and a leading mbox
 * "From " line dropped; NULL on out-of-memory. */
static char *normalise(const char *msg, size_t len, size_t *out)
{
	size_t i = 0, o = 0;
	char *p;

	if (len >= 5 && memcmp(msg, "From ", 5) == 0) {
		while (i < len && msg[i] != '\n' && msg[i] != '\r')
			i++;
		if (i < len && msg[i] == '\r')
			i++;
		if (i < len && msg[i] == '\n')
			i++;
	}
	p = malloc(2 * (len - i) + 1);
	if (p == NULL)
		return NULL;
	for (; i < len; i++) {
		char c = msg[i];

		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && msg[i + 1] == '\n')
				i++;
			p[o++] = '\r';
			p[o++] = '\n';
		} else {
			p[o++] = c == '\0' ? ' ' : c;
		}
	}
	p[o] = '\0';
	*out = o;
	return p;
}

/* Decoded body of a single part, normalised to CRLF; NULL if none. */
static char *part_body(struct mailmime *m, size_t *n)
{
	struct mailmime_data *b = m->mm_body;
	char *dec = NULL, *res;
	size_t idx = 0, dlen = 0;

	if (b == NULL || b->dt_type != MAILMIME_DATA_TEXT ||
	    b->dt_data.dt_text.dt_data == NULL)
		return NULL;
	if (b->dt_encoded &&
	    (b->dt_encoding == MAILMIME_MECHANISM_BASE64 ||
	     b->dt_encoding == MAILMIME_MECHANISM_QUOTED_PRINTABLE)) {
		if (mailmime_part_parse(b->dt_data.dt_text.dt_data,
		                        b->dt_data.dt_text.dt_length, &idx,
		                        b->dt_encoding, &dec,
		                        &dlen) != MAILIMF_NO_ERROR)
			return NULL;
		res = normalise(dec, dlen, n);
		mailmime_decoded_part_free(dec);
		return res;
	}
	return normalise(b->dt_data.dt_text.dt_data,
	                 b->dt_data.dt_text.dt_length, n);
}

/* "type/subtype" of a part into out (lowercase, cut to fit). */
static void content_type(struct mailmime *m, char *out, size_t cap)
{
	struct mailmime_content *ct = m->mm_content_type;
	const char *t = "text", *s = "plain";
	size_t o = 0;

	if (m->mm_type == MAILMIME_MULTIPLE)
		t = "multipart", s = "mixed";
	if (ct != NULL && ct->ct_type != NULL) {
		struct mailmime_type *ty = ct->ct_type;

		if (ty->tp_type == MAILMIME_TYPE_DISCRETE_TYPE) {
			struct mailmime_discrete_type *d =
			    ty->tp_data.tp_discrete_type;
			static const char *const names[] = {
			    "",      "text",  "image",
			    "audio", "video", "application"};
			if (d->dt_type == MAILMIME_DISCRETE_TYPE_EXTENSION)
				t = d->dt_extension ? d->dt_extension : "";
			else if (d->dt_type > 0 && d->dt_type <= 5)
				t = names[d->dt_type];
		} else if (ty->tp_data.tp_composite_type != NULL) {
			struct mailmime_composite_type *c =
			    ty->tp_data.tp_composite_type;
			if (c->ct_type == MAILMIME_COMPOSITE_TYPE_MESSAGE)
				t = "message";
			else if (c->ct_type ==
			         MAILMIME_COMPOSITE_TYPE_MULTIPART)
				t = "multipart";
			else
				t = c->ct_token ? c->ct_token : "";
		}
		s = ct->ct_subtype ? ct->ct_subtype : "";
	}
	for (; *t != '\0' && o + 2 < cap; t++)
		out[o++] = (char)tolower((unsigned char)*t);
	out[o++] = '/';
	for (; *s != '\0' && o + 1 < cap; s++)
		out[o++] = (char)tolower((unsigned char)*s);
	out[o] = '\0';
}

static const char *ct_param(struct mailmime *m, const char *name)
{
	clistiter *it;

	if (m->mm_content_type == NULL ||
	    m->mm_content_type->ct_parameters == NULL)
		return NULL;
	for (it = clist_begin(m->mm_content_type->ct_parameters); it != NULL;
	     it = clist_next(it)) {
		struct mailmime_parameter *p = clist_content(it);

		if (p->pa_name != NULL && strcasecmp(p->pa_name, name) == 0)
			return p->pa_value;
	}
	return NULL;
}

/* Append text to sc->text up to the cap; -1 on out-of-memory. */
static int text_append(struct scan *sc, const char *s, size_t n)
{
	char *p;

	if (sc->ntext + n > BOUNCE_MAX_TEXT)
		n = BOUNCE_MAX_TEXT - sc->ntext;
	if (n == 0)
		return 0;
	p = realloc(sc->text, sc->ntext + n + 3);
	if (p == NULL)
		return -1;
	sc->text = p;
	memcpy(p + sc->ntext, s, n);
	sc->ntext += n;
	memcpy(p + sc->ntext, "\r\n", 3);
	sc->ntext += 2;
	return 0;
}

/* Raw header block of an embedded message: up to the first blank line. */
static char *header_block(const char *s, size_t n, size_t *out)
{
	size_t i;

	for (i = 0; i + 3 < n; i++)
		if (memcmp(s + i, "\r\n\r\n", 4) == 0)
			break;
	if (i + 3 >= n)
		i = n;
	else
		i += 2;
	return normalise(s, i, out);
}

static int walk(struct mailmime *m, struct scan *sc, int depth)
{
	char ct[96];
	clistiter *it;

	if (m == NULL || depth > BOUNCE_MAX_DEPTH ||
	    ++sc->parts > BOUNCE_MAX_PARTS)
		return 0;
	content_type(m, ct, sizeof ct);
	if (m->mm_type == MAILMIME_MULTIPLE) {
		if (strcmp(ct, "multipart/report") == 0) {
			const char *rt = ct_param(m, "report-type");

			if (rt != NULL &&
			    strcasecmp(rt, "delivery-status") == 0)
				sc->report_dsn = 1;
			if (rt != NULL &&
			    strcasecmp(rt, "feedback-report") == 0)
				sc->report_arf = 1;
		}
		if (m->mm_data.mm_multipart.mm_mp_list == NULL)
			return 0;
		for (it = clist_begin(m->mm_data.mm_multipart.mm_mp_list);
		     it != NULL; it = clist_next(it))
			if (walk(clist_content(it), sc, depth + 1) < 0)
				return -1;
		return 0;
	}
	if (m->mm_type == MAILMIME_MESSAGE) {
		/* The top level is walked into; a returned original is not. */
		if (depth == 0)
			return walk(m->mm_data.mm_message.mm_msg_mime, sc,
			            depth + 1);
		if (sc->orig == NULL && m->mm_body != NULL &&
		    m->mm_body->dt_type == MAILMIME_DATA_TEXT) {
			size_t n = 0;
			char *b = part_body(m, &n);

			if (b != NULL) {
				sc->orig = header_block(b, n, &sc->norig);
				free(b);
				if (sc->orig == NULL)
					return -1;
			}
		}
		return 0;
	}
	if (strcmp(ct, "message/delivery-status") == 0 ||
	    strcmp(ct, "message/global-delivery-status") == 0) {
		if (sc->dsn == NULL)
			sc->dsn = part_body(m, &sc->ndsn);
	} else if (strcmp(ct, "message/feedback-report") == 0) {
		if (sc->arf == NULL)
			sc->arf = part_body(m, &sc->narf);
	} else if (strcmp(ct, "text/rfc822-headers") == 0 ||
	           strcmp(ct, "message/rfc822-headers") == 0 ||
	           strcmp(ct, "message/rfc822") == 0 ||
	           strcmp(ct, "message/global-headers") == 0) {
		if (sc->orig == NULL) {
			size_t n = 0;
			char *b = part_body(m, &n);

			if (b != NULL) {
				sc->orig = header_block(b, n, &sc->norig);
				free(b);
				if (sc->orig == NULL)
					return -1;
			}
		}
	} else if (strncmp(ct, "text/", 5) == 0 &&
	           strcmp(ct, "text/html") != 0) {
		size_t n = 0;
		char *b = part_body(m, &n);

		if (b != NULL) {
			int r = text_append(sc, b, n);

			free(b);
			if (r < 0)
				return -1;
		}
	}
	return 0;
}

/* ---- header fields ---- */

/* The value of the first optional field called name, cleaned; NULL if
 * absent. Sets *oom on out-of-memory. */
static char *field_get(struct mailimf_fields *f, const char *name, int *oom)
{
	clistiter *it;

	if (f == NULL || f->fld_list == NULL)
		return NULL;
	for (it = clist_begin(f->fld_list); it != NULL; it = clist_next(it)) {
		struct mailimf_field *fl = clist_content(it);
		char *v;

		if (fl->fld_type != MAILIMF_FIELD_OPTIONAL_FIELD ||
		    fl->fld_data.fld_optional_field->fld_name == NULL ||
		    strcasecmp(fl->fld_data.fld_optional_field->fld_name,
		               name) != 0 ||
		    fl->fld_data.fld_optional_field->fld_value == NULL)
			continue;
		v = clean_value(fl->fld_data.fld_optional_field->fld_value);
		if (v == NULL)
			*oom = 1;
		return v;
	}
	return NULL;
}

/* A typed field of f, or NULL. */
static struct mailimf_field *field_typed(struct mailimf_fields *f, int type)
{
	clistiter *it;

	if (f == NULL || f->fld_list == NULL)
		return NULL;
	for (it = clist_begin(f->fld_list); it != NULL; it = clist_next(it)) {
		struct mailimf_field *fl = clist_content(it);

		if (fl->fld_type == type)
			return fl;
	}
	return NULL;
}

/* The first address of an address list, or NULL. */
static const char *first_addr(struct mailimf_address_list *l)
{
	struct mailimf_address *a;

	if (l == NULL || l->ad_list == NULL || clist_begin(l->ad_list) == NULL)
		return NULL;
	a = clist_content(clist_begin(l->ad_list));
	if (a->ad_type == MAILIMF_ADDRESS_MAILBOX)
		return a->ad_data.ad_mailbox->mb_addr_spec;
	return NULL;
}

static const char *from_addr(struct mailimf_fields *f)
{
	struct mailimf_field *fl = field_typed(f, MAILIMF_FIELD_FROM);
	struct mailimf_mailbox_list *l;

	if (fl == NULL || (l = fl->fld_data.fld_from->frm_mb_list) == NULL ||
	    l->mb_list == NULL || clist_begin(l->mb_list) == NULL)
		return NULL;
	return ((struct mailimf_mailbox *)clist_content(
	            clist_begin(l->mb_list)))
	    ->mb_addr_spec;
}

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

static void rcpt_classify(struct bounce_rcpt *r)
{
	if (r->status[0] == '\0' && r->diagnostic != NULL)
		find_status(r->diagnostic, r->status);
	if (r->code == 0 && r->diagnostic != NULL)
		r->code = find_code(r->diagnostic);
	r->reason = bounce_reason(r->status, r->code, r->diagnostic);
	/* A temporary failure reported as final: the MTA gave up. */
	if (r->action != NULL && strncasecmp(r->action, "failed", 6) == 0 &&
	    r->status[0] == '4')
		r->reason = "expired";
	r->hard = bounce_reason_hard(r->reason);
}

/* One per-recipient field block of a delivery-status part. */
static int dsn_block(struct bounce_event *ev, struct mailimf_fields *f)
{
	int oom = 0, added;
	char *v, *addr;
	struct bounce_rcpt *r;

	v = field_get(f, "Final-Recipient", &oom);
	if (v == NULL && !oom)
		v = field_get(f, "Original-Recipient", &oom);
	if (v == NULL)
		return oom ? -1 : 0;
	addr = addr_from(v, &oom);
	free(v);
	if (addr == NULL)
		return oom ? -1 : 0;
	added = rcpt_add(ev, addr);
	if (added <= 0)
		return added;
	r = &ev->rcpt[ev->nrcpt - 1];
	r->action = field_get(f, "Action", &oom);
	v = field_get(f, "Status", &oom);
	if (v != NULL)
		find_status(v, r->status);
	free(v);
	v = field_get(f, "Diagnostic-Code", &oom);
	if (v != NULL) {
		const char *s = strchr(v, ';');

		r->diagnostic = clean_value(s != NULL ? s + 1 : v);
		if (r->diagnostic == NULL)
			oom = 1;
		free(v);
	}
	v = field_get(f, "Remote-MTA", &oom);
	if (v != NULL) {
		const char *s = strchr(v, ';');

		r->remote_mta = clean_value(s != NULL ? s + 1 : v);
		if (r->remote_mta == NULL)
			oom = 1;
		free(v);
	}
	rcpt_classify(r);
	return oom ? -1 : 0;
}

/* Every field block of a delivery-status (or feedback-report) part;
 * block 0 is per-message, the rest per recipient, but some MTAs merge
 * them, so every block is looked at. */
static int dsn_parse(struct bounce_event *ev, const char *s, size_t n)
{
	size_t idx = 0, blocks = 0;

	while (idx < n && blocks++ < BOUNCE_MAX_RCPT + 1) {
		struct mailimf_fields *f = NULL;
		size_t before;

		while (mailimf_crlf_parse(s, n, &idx) == MAILIMF_NO_ERROR)
			;
		before = idx;
		if (idx >= n)
			break;
		if (mailimf_fields_parse(s, n, &idx, &f) == MAILIMF_NO_ERROR) {
			int r = dsn_block(ev, f);

			mailimf_fields_free(f);
			if (r < 0)
				return -1;
		}
		if (idx == before) {
			/* not a field: skip the line */
			while (idx < n && s[idx] != '\n')
				idx++;
			if (idx < n)
				idx++;
		}
	}
	return 0;
}

static int parse_fields(const char *s, size_t n, struct mailimf_fields **f)
{
	size_t idx = 0;

	*f = NULL;
	if (s == NULL)
		return -1;
	return mailimf_fields_parse(s, n, &idx, f) == MAILIMF_NO_ERROR ? 0 : -1;
}

static int is_daemon(const char *addr)
{
	return addr != NULL && (strncasecmp(addr, "mailer-daemon", 13) == 0 ||
	                        strncasecmp(addr, "postmaster", 10) == 0 ||
	                        strncasecmp(addr, "mail-daemon", 11) == 0 ||
	                        strncasecmp(addr, "mailerdaemon", 12) == 0 ||
	                        ci_find(addr, "bounce") != NULL ||
	                        strncasecmp(addr, "mdaemon", 7) == 0);
}

static const char *const failure_subjects[] = {
    "undeliver",
    "undelivered",
    "delivery fail",
    "delivery status",
    "failure",
    "failed",
    "returned mail",
    "returned to sender",
    "not delivered",
    "could not be delivered",
    "unzustellbar",
    "delivery problem",
    "rejected",
    "nondeliverable",
    "non-delivery",
    "non remis",
    "error",
    "warning: could not",
    "delivery notification",
    "mail system error",
    "bounce",
};

static const char *const autoreply_subjects[] = {
    "out of office",
    "automatic reply",
    "abwesenheitsnotiz",
    "auto:",
    "autoreply",
    "auto-reply",
    "auto reply",
    "vacation",
    "away from",
    "out of the office",
    "r\xc3\xa9ponse automatique",
    "automatische",
};

static int subject_has(const char *subj, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ci_find(subj, list[i]))
			return 1;
	return 0;
}

/* Markers of the returned original inside a text bounce. */
static const char *const original_markers[] = {
    "original message",        "copy of the message",
    "returned message",        "original-message",
    "message headers follow",  "unsent message below",
    "headers of your message", "this is a copy",
    "------- original",        "content-type: message/rfc822",
};

/* Recipients from the lines of text, before any returned original. A
 * line counts when it begins (after blanks, '<', '"') with an address
 * and the address is not one of ours (the bounce's To, the original's
 * From). */
static int text_rcpts(struct bounce_event *ev, char *text, const char *self1,
                      const char *self2)
{
	char *line = text, *end = text + strlen(text);
	size_t mark = (size_t)(end - text);

	for (size_t i = 0;
	     i < sizeof original_markers / sizeof original_markers[0]; i++) {
		const char *p = ci_find(text, original_markers[i]);

		if (p != NULL && (size_t)(p - text) < mark)
			mark = (size_t)(p - text);
	}
	end = text + mark;
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char *p = line, *addr;
		size_t n;
		int oom = 0, added;

		if (nl == NULL)
			nl = end;
		while (p < nl && (*p == ' ' || *p == '\t' || *p == '<' ||
		                  *p == '"' || *p == '\''))
			p++;
		if (strncasecmp(p, "RCPT TO:", 8) == 0 ||
		    strncasecmp(p, "Recipient:", 10) == 0 ||
		    strncasecmp(p, "Final-Recipient:", 16) == 0) {
			p = strchr(p, ':') + 1;
			while (p < nl && (*p == ' ' || *p == '<'))
				p++;
			if (strncasecmp(p, "rfc822;", 7) == 0)
				p += 7;
			while (p < nl && (*p == ' ' || *p == '<'))
				p++;
		}
		n = p < nl ? addr_len(p) : 0;
		if (n > 0 && p + n <= nl) {
			addr = xstrndup(p, n);
			if (addr == NULL)
				return -1;
			for (size_t i = 0; i < n; i++)
				addr[i] = (char)tolower((unsigned char)addr[i]);
			if ((self1 != NULL && strcasecmp(addr, self1) == 0) ||
			    (self2 != NULL && strcasecmp(addr, self2) == 0) ||
			    is_daemon(addr)) {
				free(addr);
			} else {
				added = rcpt_add(ev, addr);
				if (added < 0)
					return -1;
				if (added > 0) {
					struct bounce_rcpt *r =
					    &ev->rcpt[ev->nrcpt - 1];
					size_t w = (size_t)(end - line);

					if (w > BOUNCE_DIAG_WINDOW)
						w = BOUNCE_DIAG_WINDOW;
					char *win = xstrndup(line, w);

					if (win == NULL)
						return -1;
					r->diagnostic = clean_value(win);
					free(win);
					if (r->diagnostic == NULL)
						return -1;
					rcpt_classify(r);
				}
			}
		}
		(void)oom;
		line = nl + 1;
	}
	return 0;
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
	}
	free(ev->rcpt);
	free(ev->message_id);
	free(ev->verp_to);
	free(ev->feedback_type);
	memset(ev, 0, sizeof *ev);
}

static char *dup_or_oom(const char *s, int *oom)
{
	char *p;

	if (s == NULL)
		return NULL;
	p = strdup(s);
	if (p == NULL)
		*oom = 1;
	return p;
}

/* Fill ev from the parsed message; -1 on out-of-memory. */
static int classify(struct bounce_event *ev, struct mailimf_fields *top,
                    struct scan *sc)
{
	struct mailimf_fields *orig = NULL;
	struct mailimf_field *fl;
	const char *subj = NULL, *from = from_addr(top), *ofrom = NULL;
	char *v;
	int oom = 0, autoreply = 0;

	fl = field_typed(top, MAILIMF_FIELD_SUBJECT);
	if (fl != NULL)
		subj = fl->fld_data.fld_subject->sbj_value;

	ev->verp_to = field_get(top, "Delivered-To", &oom);
	if (ev->verp_to == NULL && !oom)
		ev->verp_to = field_get(top, "X-Original-To", &oom);
	if (ev->verp_to == NULL && !oom) {
		fl = field_typed(top, MAILIMF_FIELD_TO);
		if (fl != NULL)
			ev->verp_to = dup_or_oom(
			    first_addr(fl->fld_data.fld_to->to_addr_list),
			    &oom);
	}
	if (ev->verp_to != NULL) {
		v = addr_from(ev->verp_to, &oom);
		free(ev->verp_to);
		ev->verp_to = v;
	}

	if (sc->orig != NULL && parse_fields(sc->orig, sc->norig, &orig) == 0) {
		fl = field_typed(orig, MAILIMF_FIELD_MESSAGE_ID);
		if (fl != NULL)
			ev->message_id = dup_or_oom(
			    fl->fld_data.fld_message_id->mid_value, &oom);
		ofrom = from_addr(orig);
	}

	if (sc->arf != NULL || sc->report_arf) {
		struct mailimf_fields *f = NULL;

		ev->kind = BOUNCE_COMPLAINT;
		if (sc->arf != NULL &&
		    parse_fields(sc->arf, sc->narf, &f) == 0) {
			ev->feedback_type = field_get(f, "Feedback-Type", &oom);
			v = field_get(f, "Original-Rcpt-To", &oom);
			if (v == NULL && !oom)
				v = field_get(f, "Removal-Recipient", &oom);
			mailimf_fields_free(f);
			if (v != NULL) {
				char *a = addr_from(v, &oom);

				free(v);
				if (a != NULL && rcpt_add(ev, a) < 0)
					oom = 1;
			}
		}
		if (ev->nrcpt == 0 && orig != NULL && !oom) {
			fl = field_typed(orig, MAILIMF_FIELD_TO);
			if (fl != NULL) {
				const char *a = first_addr(
				    fl->fld_data.fld_to->to_addr_list);
				char *c = a ? addr_from(a, &oom) : NULL;

				if (c != NULL && rcpt_add(ev, c) < 0)
					oom = 1;
			}
		}
		for (size_t i = 0; i < ev->nrcpt; i++) {
			ev->rcpt[i].reason = "feedback";
			ev->rcpt[i].hard = -1;
		}
		goto done;
	}

	if (sc->dsn != NULL && dsn_parse(ev, sc->dsn, sc->ndsn) < 0)
		oom = 1;
	if (ev->nrcpt > 0) {
		ev->kind = BOUNCE_DSN;
		goto done;
	}

	/* Auto-replies before the text scan: their text quotes addresses. */
	v = field_get(top, "Auto-Submitted", &oom);
	if (v != NULL && ci_find(v, "auto-replied") != NULL && !is_daemon(from))
		autoreply = 1;
	free(v);
	v = field_get(top, "X-Autoreply", &oom);
	if (v != NULL)
		autoreply = 1;
	free(v);
	v = field_get(top, "X-Autorespond", &oom);
	if (v != NULL)
		autoreply = 1;
	free(v);
	if (subj != NULL && subject_has(subj, autoreply_subjects,
	                                sizeof autoreply_subjects /
	                                    sizeof autoreply_subjects[0]))
		autoreply = 1;
	if (autoreply && !is_daemon(from) &&
	    !(subj != NULL &&
	      subject_has(subj, failure_subjects,
	                  sizeof failure_subjects /
	                      sizeof failure_subjects[0]) &&
	      !ci_find(subj, "auto"))) {
		ev->kind = BOUNCE_AUTOREPLY;
		if (from != NULL) {
			char *a = addr_from(from, &oom);

			if (a != NULL && rcpt_add(ev, a) < 0)
				oom = 1;
			if (ev->nrcpt > 0) {
				ev->rcpt[0].reason = "vacation";
				ev->rcpt[0].hard = -1;
			}
		}
		goto done;
	}

	/* Non-standard bounces. */
	{
		int looks = sc->report_dsn || is_daemon(from) ||
		            (subj != NULL &&
		             subject_has(subj, failure_subjects,
		                         sizeof failure_subjects /
		                             sizeof failure_subjects[0]));

		if (!looks)
			goto done;
		v = field_get(top, "X-Failed-Recipients", &oom);
		if (v != NULL) {
			char *save = NULL;

			for (char *t = strtok_r(v, ", ", &save); t != NULL;
			     t = strtok_r(NULL, ", ", &save)) {
				char *a = addr_from(t, &oom);

				if (a != NULL && rcpt_add(ev, a) < 0)
					oom = 1;
			}
			free(v);
		}
		if (sc->text != NULL && !oom) {
			if (ev->nrcpt > 0) {
				/* Known recipients: only their diagnostics. */
				struct bounce_event tmp = {0};

				if (text_rcpts(&tmp, sc->text, ev->verp_to,
				               ofrom) < 0)
					oom = 1;
				for (size_t i = 0; i < ev->nrcpt; i++) {
					for (size_t j = 0; j < tmp.nrcpt; j++)
						if (strcmp(
						        tmp.rcpt[j].address,
						        ev->rcpt[i].address) ==
						    0) {
							ev->rcpt[i].diagnostic =
							    tmp.rcpt[j]
							        .diagnostic;
							tmp.rcpt[j].diagnostic =
							    NULL;
						}
					if (ev->rcpt[i].diagnostic == NULL)
						ev->rcpt[i].diagnostic =
						    dup_or_oom(sc->text, &oom);
					if (ev->rcpt[i].diagnostic != NULL &&
					    strlen(ev->rcpt[i].diagnostic) >
					        BOUNCE_DIAG_WINDOW) {
						char *c = clean_value(
						    ev->rcpt[i].diagnostic);
						free(ev->rcpt[i].diagnostic);
						ev->rcpt[i].diagnostic = c;
					}
				}
				bounce_event_free(&tmp);
			} else if (text_rcpts(ev, sc->text, ev->verp_to,
			                      ofrom) < 0) {
				oom = 1;
			}
		}
		for (size_t i = 0; i < ev->nrcpt; i++)
			rcpt_classify(&ev->rcpt[i]);
		if (ev->nrcpt > 0)
			ev->kind = BOUNCE_DSN;
	}
done:
	if (orig != NULL)
		mailimf_fields_free(orig);
	return oom ? -1 : 0;
}

int bounce_parse(const char *msg, size_t len, struct bounce_event *ev,
                 struct diag *d)
{
	struct mailmime *mime = NULL;
	struct scan sc = {0};
	size_t n = 0, idx = 0;
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
	buf = normalise(msg, len, &n);
	if (buf == NULL)
		goto oom;
	if (n == 0 || mailmime_parse(buf, n, &idx, &mime) != MAILIMF_NO_ERROR) {
		mime = NULL;
		rc = 0; /* nothing usable: not a bounce */
		goto out;
	}
	if (walk(mime, &sc, 0) < 0)
		goto oom;
	if (sc.text == NULL && mime->mm_type == MAILMIME_MESSAGE &&
	    mime->mm_data.mm_message.mm_msg_mime == NULL &&
	    text_append(&sc, buf, n) < 0)
		goto oom;
	if (classify(ev,
	             mime->mm_type == MAILMIME_MESSAGE
	                 ? mime->mm_data.mm_message.mm_fields
	                 : NULL,
	             &sc) < 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	diag_add(d, NULL, 0, 0, "bounce: out of memory");
	bounce_event_free(ev);
	rc = -1;
out:
	/* The tree points into buf: free it first. */
	if (mime != NULL)
		mailmime_free(mime);
	free(buf);
	free(sc.dsn);
	free(sc.arf);
	free(sc.orig);
	free(sc.text);
	return rc;
}
