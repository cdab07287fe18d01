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
#include <pthread.h>
#include <stdint.h>
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
	size_t nfirst; /* length of the first text part in text */
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

/* Case-insensitive substring search in a NUL-terminated haystack: jumps
 * between occurrences of the needle's first letter (strcspn), so a long
 * text costs one vector scan, not a comparison per byte. */
static const char *ci_find(const char *h, const char *n)
{
	size_t nl = strlen(n);
	char set[3];

	if (h == NULL)
		return NULL;
	if (nl == 0)
		return h;
	set[0] = (char)tolower((unsigned char)n[0]);
	set[1] = (char)toupper((unsigned char)n[0]);
	set[2] = '\0';
	for (h += strcspn(h, set); *h != '\0'; h += 1 + strcspn(h + 1, set))
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

/* Enhanced status codes ("subject.detail" of RFC 3463 and the IANA
 * registry) to reasons. A strong entry decides whatever the text says; a
 * weak one only when no phrase of the diagnostic is recognised, because
 * MTAs use those codes loosely (5.1.1 for a full mailbox, 5.2.0 for spam,
 * 5.7.1 for anything refused). */
struct status_reason {
	const char *code;
	const char *reason;
	int strong;
};

static const struct status_reason status_reasons[] = {
    {"1.0", "userunknown", 0},  {"1.1", "userunknown", 0},
    {"1.2", "hostunknown", 0},  {"1.3", "userunknown", 0},
    {"1.4", "userunknown", 0},  {"1.6", "hasmoved", 1},
    {"1.7", "rejected", 1},     {"1.8", "rejected", 1},
    {"1.9", "systemerror", 0},  {"1.10", "notaccept", 1},
    {"2.0", "filtered", 0},     {"2.1", "filtered", 0},
    {"2.2", "mailboxfull", 1},  {"2.3", "exceedlimit", 1},
    {"2.4", "filtered", 0},     {"3.0", "systemerror", 0},
    {"3.1", "systemfull", 0},   {"3.2", "notaccept", 0},
    {"3.3", "systemerror", 0},  {"3.4", "mesgtoobig", 1},
    {"3.5", "systemerror", 0},  {"4.0", "networkerror", 0},
    {"4.1", "networkerror", 0}, {"4.2", "networkerror", 0},
    {"4.3", "systemerror", 0},  {"4.4", "hostunknown", 0},
    {"4.5", "systemfull", 0},   {"4.6", "networkerror", 0},
    {"4.7", "expired", 0},      {"5.0", "syntaxerror", 0},
    {"5.1", "syntaxerror", 0},  {"5.2", "syntaxerror", 0},
    {"5.3", "toomanyconn", 0},  {"5.4", "syntaxerror", 0},
    {"5.5", "syntaxerror", 0},  {"5.6", "securityerror", 0},
    {"6.0", "contenterror", 0}, {"6.1", "contenterror", 0},
    {"6.2", "contenterror", 0}, {"6.3", "contenterror", 0},
    {"6.5", "contenterror", 0}, {"6.6", "contenterror", 0},
    {"6.7", "contenterror", 0}, {"6.8", "contenterror", 0},
    {"6.9", "contenterror", 0}, {"6.10", "contenterror", 0},
    {"7.0", "securityerror", 0}, {"7.1", "blocked", 0},
    {"7.2", "securityerror", 0}, {"7.3", "securityerror", 0},
    {"7.4", "securityerror", 0}, {"7.5", "securityerror", 0},
    {"7.6", "securityerror", 0}, {"7.7", "securityerror", 0},
    {"7.8", "securityerror", 0}, {"7.9", "securityerror", 0},
    {"7.10", "securityerror", 0}, {"7.11", "securityerror", 0},
    {"7.13", "suspend", 1},     {"7.14", "securityerror", 0},
    {"7.15", "securityerror", 0}, {"7.16", "mesgtoobig", 1},
    {"7.17", "hasmoved", 1},    {"7.18", "hasmoved", 1},
    {"7.20", "authfailure", 1}, {"7.21", "authfailure", 1},
    {"7.22", "authfailure", 1}, {"7.23", "authfailure", 1},
    {"7.24", "authfailure", 1}, {"7.25", "requireptr", 1},
    {"7.26", "authfailure", 1}, {"7.27", "notaccept", 1},
    {"7.509", "authfailure", 1}, {"7.510", "notaccept", 0},
    {"7.606", "blocked", 1},    {"7.708", "blocked", 1},
};

/* Diagnostic phrases, lowercase, most specific first: the first match
 * decides. Sender-side refusals come first so that "sender address
 * rejected: user unknown" never reads as the recipient's address being
 * bad. Phrases are the wording of common MTAs and hosted services. */
static const struct pattern bounce_patterns[] = {
    /* the sender's own address or domain refused */
    {"sender address rejected", "rejected"},
    {"sender verify failed", "rejected"},
    {"sender verification failed", "rejected"},
    {"domain of sender address", "rejected"},
    {"sender domain must exist", "rejected"},
    {"sender rejected", "rejected"},
    {"invalid sender", "rejected"},
    {"sender is in my black list", "rejected"},
    {"sender address has been blacklisted", "rejected"},
    {"unroutable sender address", "rejected"},
    {"returned mail not accepted here", "rejected"},
    {"null sender is not allowed", "rejected"},
    {"empty envelope senders not allowed", "rejected"},
    {"mail from not owned by user", "rejected"},
    {"not a member of this", "rejected"},
    {"are not member", "rejected"},
    {"permission to post", "rejected"},
    {"not allowed to post", "rejected"},
    {"not authorized to send to this group", "rejected"},
    {"you do not have permission", "rejected"},
    {"your message was rejected by the group", "rejected"},
    /* the recipient's mailbox */
    {"mailbox full", "mailboxfull"},
    {"mailbox is full", "mailboxfull"},
    {"mailbox has exceeded", "mailboxfull"},
    {"mailbox exceeded", "mailboxfull"},
    {"mailbox over quota", "mailboxfull"},
    {"mailbox size limit", "mailboxfull"},
    {"mailbox would exceed", "mailboxfull"},
    {"mailfolder is full", "mailboxfull"},
    {"full mailbox", "mailboxfull"},
    {"over quota", "mailboxfull"},
    {"overquota", "mailboxfull"},
    {"quota exceeded", "mailboxfull"},
    {"exceeded storage", "mailboxfull"},
    {"exceeds quota", "mailboxfull"},
    {"exceeded the quota", "mailboxfull"},
    {"exceeding its mailbox quota", "mailboxfull"},
    {"exceeding their quota", "mailboxfull"},
    {"over the allowed quota", "mailboxfull"},
    {"over the quota", "mailboxfull"},
    {"disk quota", "mailboxfull"},
    {"quota violation", "mailboxfull"},
    {"reached disk quota", "mailboxfull"},
    {"not enough space", "mailboxfull"},
    {"does not have enough space", "mailboxfull"},
    {"not enough storage space", "mailboxfull"},
    {"space has been used up", "mailboxfull"},
    {"too many messages on the server", "mailboxfull"},
    {"too much mail data", "mailboxfull"},
    {"number of messages in recipient's mailbox exceeded", "mailboxfull"},
    {"boite du destinataire pleine", "mailboxfull"},
    {"message too large", "mesgtoobig"},
    {"message too big", "mesgtoobig"},
    {"message is too big", "mesgtoobig"},
    {"message is too large", "mesgtoobig"},
    {"message size exceeds", "mesgtoobig"},
    {"message size limit", "mesgtoobig"},
    {"exceeds size limit", "mesgtoobig"},
    {"exceeds the maximum size", "mesgtoobig"},
    {"exceeded the maximum message size", "mesgtoobig"},
    {"size exceeds", "mesgtoobig"},
    {"too big for", "mesgtoobig"},
    {"message length exceeds", "exceedlimit"},
    {"account has been disabled", "suspend"},
    {"mailbox is frozen", "suspend"},
    {"account is frozen", "suspend"},
    {"account is disabled", "suspend"},
    {"account disabled", "suspend"},
    {"mailbox disabled", "suspend"},
    {"mailbox is disabled", "suspend"},
    {"account has been suspended", "suspend"},
    {"account is suspended", "suspend"},
    {"suspended", "suspend"},
    {"mailbox is inactive", "suspend"},
    {"account is inactive", "suspend"},
    {"account inactive", "suspend"},
    {"is not active", "suspend"},
    {"has been disabled", "suspend"},
    {"temporarily disabled", "suspend"},
    {"extended inactivity", "suspend"},
    {"has moved", "hasmoved"},
    {"address has changed", "hasmoved"},
    {"no longer in use", "hasmoved"},
    {"smtp authentication", "securityerror"},
    {"without authentication", "securityerror"},
    {"relay access denied", "norelaying"},
    {"relaying denied", "norelaying"},
    {"relay denied", "norelaying"},
    {"relay not permitted", "norelaying"},
    {"not permitted to relay", "norelaying"},
    {"unable to relay", "norelaying"},
    {"relaying not allowed", "norelaying"},
    {"relaying mail to", "norelaying"},
    {"we do not relay", "norelaying"},
    {"not a gateway", "norelaying"},
    {"must be authenticated", "norelaying"},
    /* the sender's authentication, reverse DNS and reputation */
    {"dmarc", "authfailure"},
    {"dkim", "authfailure"},
    {"spf check", "authfailure"},
    {"spf fail", "authfailure"},
    {"spf validation", "authfailure"},
    {"spf record", "authfailure"},
    {"sender policy framework", "authfailure"},
    {"authentication failed", "authfailure"},
    {"unauthenticated senders", "securityerror"},
    {"reverse dns", "requireptr"},
    {"reverse lookup", "requireptr"},
    {"reverse hostname", "requireptr"},
    {"ptr record", "requireptr"},
    {"no ptr", "requireptr"},
    {"rdns", "requireptr"},
    {"not resolve your address", "requireptr"},
    {"cannot find your hostname", "requireptr"},
    {"cannot find your reverse hostname", "requireptr"},
    {"client host rejected: cannot find", "requireptr"},
    {"ip name lookup failed", "requireptr"},
    {"bad reputation", "badreputation"},
    {"poor reputation", "badreputation"},
    {"low reputation", "badreputation"},
    {"sender reputation", "badreputation"},
    {"ip reputation", "badreputation"},
    /* DNS trouble that may pass */
    {"host not found, try again", "networkerror"},
    {"malformed or unexpected name server reply", "networkerror"},
    {"temporary failure in name resolution", "networkerror"},
    /* a domain that takes no mail */
    {"no mx record", "notaccept"},
    {"indicated no smtp service", "notaccept"},
    {"doesn't receive email", "notaccept"},
    {"does not receive email", "notaccept"},
    {"null mx", "notaccept"},
    /* the recipient's address */
    {"unrouteable address", "hostunknown"},
    {"unroutable address", "hostunknown"},
    {"host unknown", "hostunknown"},
    {"unknown host", "hostunknown"},
    {"host not found", "hostunknown"},
    {"host or domain name not found", "hostunknown"},
    {"domain not found", "hostunknown"},
    {"unknown domain", "hostunknown"},
    {"no such domain", "hostunknown"},
    {"domain does not exist", "hostunknown"},
    {"domain must exist", "hostunknown"},
    {"unrouteable mail domain", "hostunknown"},
    {"name or service not known", "hostunknown"},
    {"nxdomain", "hostunknown"},
    {"domain is not reachable", "hostunknown"},
    {"no such user", "userunknown"},
    {"user unknown", "userunknown"},
    {"unknown user", "userunknown"},
    {"user not known", "userunknown"},
    {"unknown recipient", "userunknown"},
    {"recipient unknown", "userunknown"},
    {"unknown address", "userunknown"},
    {"address unknown", "userunknown"},
    {"unknown or illegal alias", "userunknown"},
    {"recipient not found", "userunknown"},
    {"recipient address rejected: user", "userunknown"},
    {"recipient address rejected: unknown", "userunknown"},
    {"recipient address rejected: invalid", "userunknown"},
    {"recipient address rejected: access denied", "userunknown"},
    {"recipient rejected", "userunknown"},
    {"no such mailbox", "userunknown"},
    {"no such recipient", "userunknown"},
    {"no such address", "userunknown"},
    {"no such person", "userunknown"},
    {"no mailbox here", "userunknown"},
    {"no mailbox by that name", "userunknown"},
    {"no account by that name", "userunknown"},
    {"mailbox not found", "userunknown"},
    {"mailbox not present", "userunknown"},
    {"mailbox does not exist", "userunknown"},
    {"mailbox unavailable", "userunknown"},
    {"mailbox is unavailable", "userunknown"},
    {"mailbox invalid", "userunknown"},
    {"invalid mailbox", "userunknown"},
    {"invalid recipient", "userunknown"},
    {"invalid address", "userunknown"},
    {"invalid user", "userunknown"},
    {"not a valid mailbox", "userunknown"},
    {"not a valid recipient", "userunknown"},
    {"not a valid user", "userunknown"},
    {"is not a known user", "userunknown"},
    {"not a known user", "userunknown"},
    {"not listed in", "userunknown"},
    {"user doesn't exist", "userunknown"},
    {"user does not exist", "userunknown"},
    {"address does not exist", "userunknown"},
    {"account does not exist", "userunknown"},
    {"recipient does not exist", "userunknown"},
    {"email account that you tried to reach does not exist", "userunknown"},
    {"does not exist", "userunknown"},
    {"address couldn't be found", "userunknown"},
    {"address could not be found", "userunknown"},
    {"couldn't be found", "userunknown"},
    {"doesn't have a", "userunknown"},
    {"does not have an account", "userunknown"},
    {"no mailbox", "userunknown"},
    {"unknown local part", "userunknown"},
    {"not our customer", "userunknown"},
    {"nonexistent", "userunknown"},
    {"non-existent", "userunknown"},
    {"bad destination mailbox", "userunknown"},
    {"bad recipient", "userunknown"},
    {"no valid recipients", "userunknown"},
    {"recipient address rejected", "userunknown"},
    {"address rejected", "userunknown"},
    /* filters on the recipient's side */
    {"rejected by the recipient", "filtered"},
    {"recipient is only accepting mail from", "filtered"},
    {"refused due to recipient preferences", "filtered"},
    {"message rejected due to user rules", "filtered"},
    {"not accepting any mail", "filtered"},
    {"user reject", "filtered"},
    {"blocked by the recipient", "filtered"},
    {"refuse to receive mail", "filtered"},
    {"has restricted sms e-mail", "filtered"},
    {"resolver.rst.notauthorized", "filtered"},
    {"this account is protected by", "filtered"},
    {"bounced address", "filtered"},
    {"filtered", "filtered"},
    /* spam, viruses, content */
    {"spam or virus", "spamdetected"},
    {"virus", "virusdetected"},
    {"malware", "virusdetected"},
    {"spamhaus", "blocked"},
    {"spamcop", "blocked"},
    {"blacklist", "blocked"},
    {"blocklist", "blocked"},
    {"black list", "blocked"},
    {"block list", "blocked"},
    {"dnsbl", "blocked"},
    {"rbl", "blocked"},
    {"listed at", "blocked"},
    {"listed in", "blocked"},
    {"spam", "spamdetected"},
    {"junk mail", "spamdetected"},
    {"bulk mail", "spamdetected"},
    {"bulk email", "spamdetected"},
    {"unsolicited", "spamdetected"},
    {"mail rejete", "spamdetected"},
    {"message content rejected", "spamdetected"},
    {"content filter", "spamdetected"},
    {"policy", "policyviolation"},
    {"protocol violation", "policyviolation"},
    {"too many connections", "toomanyconn"},
    {"too many concurrent", "toomanyconn"},
    {"too many simultaneous", "toomanyconn"},
    {"connection limit", "toomanyconn"},
    {"too many recipients", "toomanyconn"},
    {"too many smtp sessions", "toomanyconn"},
    {"too many hops", "networkerror"},
    {"hop count exceeded", "networkerror"},
    {"mail loop", "networkerror"},
    {"routing loop", "networkerror"},
    {"loops back to myself", "networkerror"},
    {"blocked", "blocked"},
    {"denied", "blocked"},
    {"refused to talk", "blocked"},
    {"not allowed to send", "blocked"},
    {"access denied", "blocked"},
    {"starttls", "securityerror"},
    {"tls required", "securityerror"},
    {"encryption required", "securityerror"},
    {"must issue a starttls", "securityerror"},
    {"authentication required", "securityerror"},
    {"certificate", "securityerror"},
    {"system error", "systemerror"},
    {"internal error", "systemerror"},
    {"server error", "systemerror"},
    {"configuration error", "systemerror"},
    {"local configuration", "systemerror"},
    {"temporary failure", "systemerror"},
    {"local error", "systemerror"},
    {"i/o error", "systemerror"},
    {"connection refused", "networkerror"},
    {"connection timed out", "networkerror"},
    {"timed out", "networkerror"},
    {"no route to host", "networkerror"},
    {"network is unreachable", "networkerror"},
    {"lost connection", "networkerror"},
    {"connection reset", "networkerror"},
    {"connection dropped", "networkerror"},
    {"host not reachable", "networkerror"},
    {"unable to connect", "networkerror"},
    {"could not connect", "networkerror"},
    {"retry timeout exceeded", "expired"},
    {"retry time not reached", "expired"},
    {"delivery time expired", "expired"},
    {"message expired", "expired"},
    {"too long in queue", "expired"},
    {"could not be delivered within", "expired"},
    {"could not be delivered for", "expired"},
    {"has been delayed", "expired"},
    {"delivery attempts will continue", "expired"},
    {"will be retried", "expired"},
    {"illegal attachment", "contenterror"},
    {"improper use of 8-bit data", "contenterror"},
    {"content", "contenterror"},
    {"insufficient system storage", "systemfull"},
    {"system full", "systemfull"},
    {"does not accept mail", "notaccept"},
    {"accepts no mail", "notaccept"},
    {"not accepting mail", "notaccept"},
    {"null mx", "notaccept"},
    {"mailer error", "mailererror"},
    {"command died", "mailererror"},
    {"command failed", "mailererror"},
    {"exit status", "mailererror"},
    {"procmail", "mailererror"},
    {"syntax error", "syntaxerror"},
    {"unrecognized command", "syntaxerror"},
    {"command not recognized", "syntaxerror"},
};

/* The status code's entry, or NULL. */
static const struct status_reason *status_lookup(const char *status)
{
	const char *p;

	if (status == NULL || status[0] == '\0' || status[1] != '.')
		return NULL;
	p = status + 2;
	for (size_t i = 0; i < sizeof status_reasons / sizeof status_reasons[0];
	     i++)
		if (strcmp(p, status_reasons[i].code) == 0)
			return &status_reasons[i];
	return NULL;
}

/* The phrases indexed by their first two bytes, built once: a
 * diagnostic is then scanned once, comparing at each position only the
 * phrases that begin there, instead of one strstr per phrase. */
enum { NPATTERNS = sizeof bounce_patterns / sizeof bounce_patterns[0] };
static unsigned short phrase_next[NPATTERNS];
static unsigned char phrase_len[NPATTERNS];
static unsigned short phrase_head[256][256];
static pthread_once_t phrase_once = PTHREAD_ONCE_INIT;

static void phrase_index(void)
{
	/* phrase_head holds index + 1 (0: none); chains keep table order */
	for (size_t i = NPATTERNS; i-- > 0;) {
		const unsigned char *t =
		    (const unsigned char *)bounce_patterns[i].text;

		phrase_len[i] = (unsigned char)strlen((const char *)t);
		phrase_next[i] = phrase_head[t[0]][t[1]];
		phrase_head[t[0]][t[1]] = (unsigned short)(i + 1);
	}
}

/* The first phrase (in table order) found in diag (already lowercase),
 * or NULL. */
static const char *phrase_reason(const char *diag)
{
	size_t best = NPATTERNS;

	if (diag == NULL)
		return NULL;
	pthread_once(&phrase_once, phrase_index);
	for (const unsigned char *p = (const unsigned char *)diag; p[0] != 0;
	     p++)
		for (unsigned short k = phrase_head[p[0]][p[1]];
		     k != 0 && (size_t)(k - 1) < best; k = phrase_next[k - 1]) {
			const unsigned char *t =
			    (const unsigned char *)bounce_patterns[k - 1].text;
			size_t j = 2, n = phrase_len[k - 1];

			/* byte by byte: stops at the diagnostic's end (a
			 * phrase has no NUL), never reads past it */
			while (j < n && p[j] == t[j])
				j++;
			if (j == n) {
				best = (size_t)(k - 1);
				break;
			}
		}
	return best < NPATTERNS ? bounce_patterns[best].reason : NULL;
}

/* A lowercase copy of s, at most cap bytes; NULL on out-of-memory. */
static char *lower_dup(const char *s, size_t cap)
{
	size_t n = strlen(s);
	char *p;

	if (n > cap)
		n = cap;
	p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = (char)tolower((unsigned char)s[i]);
	p[n] = '\0';
	return p;
}

/* The reason of one failure; ldiag is the diagnostic in lowercase. */
static const char *reason_of(const char *status, int code, const char *ldiag)
{
	const struct status_reason *sr = status_lookup(status);
	const char *r;

	if (status != NULL && status[0] == '2')
		return "delivered";
	if (sr != NULL && sr->strong)
		return sr->reason;
	r = phrase_reason(ldiag);
	if (r != NULL)
		return r;
	if (sr != NULL)
		return sr->reason;
	if (code == 552)
		return "mailboxfull";
	if (code == 421)
		return "toomanyconn";
	if (code == 550 || code == 553)
		return "userunknown";
	return "undefined";
}

const char *bounce_reason(const char *status, int code, const char *diagnostic)
{
	char *l = diagnostic != NULL ? lower_dup(diagnostic, SIZE_MAX) : NULL;
	const char *r;

	/* out of memory: the status alone */
	r = reason_of(status, code, l);
	free(l);
	return r;
}

int bounce_reason_hard(const char *reason)
{
	static const char *const hard[] = {"userunknown", "hostunknown",
	                                   "hasmoved", "notaccept"};
	static const char *const neither[] = {
	    "blocked",    "spamdetected",  "policyviolation", "authfailure",
	    "requireptr", "badreputation", "securityerror",   "norelaying",
	    "rejected",   "feedback",      "vacation",        "delivered",
	    "virusdetected"};

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
 * "From " line dropped; NULL on out-of-memory. Runs of ordinary bytes are
 * copied whole: this is the one pass over every byte of the message. */
static char *normalise(const char *msg, size_t len, size_t *out)
{
	size_t i = 0, o = 0, need;
	char *p;

	if (len >= 5 && memcmp(msg, "From ", 5) == 0) {
		while (i < len && msg[i] != '\n' && msg[i] != '\r')
			i++;
		if (i < len && msg[i] == '\r')
			i++;
		if (i < len && msg[i] == '\n')
			i++;
	}
	/* each bare CR or LF grows by one byte */
	need = len - i;
	for (const char *c = msg + i, *e = msg + len;
	     (c = memchr(c, '\n', (size_t)(e - c))) != NULL; c++)
		if (c == msg + i || c[-1] != '\r')
			need++;
	for (const char *c = msg + i, *e = msg + len;
	     (c = memchr(c, '\r', (size_t)(e - c))) != NULL; c++)
		if (c + 1 == e || c[1] != '\n')
			need++;
	p = malloc(need + 1);
	if (p == NULL)
		return NULL;
	while (i < len) {
		size_t j = i;

		while (j < len && msg[j] != '\r' && msg[j] != '\n' &&
		       msg[j] != '\0')
			j++;
		memcpy(p + o, msg + i, j - i);
		o += j - i;
		if (j == len)
			break;
		if (msg[j] == '\0') {
			p[o++] = ' ';
		} else {
			if (msg[j] == '\r' && j + 1 < len && msg[j + 1] == '\n')
				j++;
			p[o++] = '\r';
			p[o++] = '\n';
		}
		i = j + 1;
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
	/* a slice of the message, which is normalised already */
	*n = b->dt_data.dt_text.dt_length;
	return xstrndup(b->dt_data.dt_text.dt_data, *n);
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
	if (sc->nfirst == 0)
		sc->nfirst = sc->ntext;
	return 0;
}

/* Raw header block of an embedded message (CRLF already): up to the
 * first blank line. */
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
	*out = i;
	return xstrndup(s, i);
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

/* The SMTP command a failure answered, from the wording of Postfix ("in
 * reply to end of DATA command") or Exim ("after RCPT TO"); lw is
 * lowercase, or a transcript refusing MAIL FROM. NULL when the text does
 * not say. Sendmail's transcripts are not read for RCPT and DATA: with
 * pipelining, the reply to RCPT TO comes after ">>> DATA". */
static const char *smtp_command(const char *lw)
{
	static const struct pattern said[] = {
	    {"in reply to end of data", "DATA"},
	    {"in reply to data", "DATA"},
	    {"after end of data", "DATA"},
	    {"after data", "DATA"},
	    {"in reply to rcpt to", "RCPT"},
	    {"after rcpt to", "RCPT"},
	    {"in reply to mail from", "MAIL"},
	    {"after mail from", "MAIL"},
	    {"smtp command data", "DATA"}, /* m-FILTER */
	};
	const char *reply, *p, *last = NULL;

	if (lw == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof said / sizeof said[0]; i++)
		if (strstr(lw, said[i].text) != NULL)
			return said[i].reason;
	/* A transcript whose first refusal follows MAIL FROM and nothing
	 * else (with pipelining, RCPT TO and DATA would follow it too). */
	reply = strstr(lw, "<<< 5");
	p = strstr(lw, "<<< 4");
	if (reply == NULL || (p != NULL && p < reply))
		reply = p;
	for (p = strstr(lw, ">>> "); p != NULL && reply != NULL && p < reply;
	     p = strstr(p + 4, ">>> "))
		last = p + 4;
	if (last != NULL && strncmp(last, "mail from", 9) == 0)
		return "MAIL";
	return NULL;
}

static void rcpt_classify(struct bounce_rcpt *r)
{
	const struct status_reason *sr;
	const char *phrase = NULL;
	char *ldiag = NULL;

	if (r->diagnostic != NULL) {
		char found[16];

		/* "5.0.0" from the report says less than "5.7.1" in the
		 * remote server's own reply */
		if (r->status[0] == '\0')
			find_status(r->diagnostic, r->status);
		else if (strcmp(r->status + 1, ".0.0") == 0 &&
		         find_status(r->diagnostic, found) &&
		         found[0] == r->status[0])
			memcpy(r->status, found, sizeof found);
		if (r->code == 0)
			r->code = find_code(r->diagnostic);
		ldiag = lower_dup(r->diagnostic, BOUNCE_MAX_VALUE);
	}
	sr = status_lookup(r->status);
	if (ldiag != NULL)
		phrase = phrase_reason(ldiag);
	if (r->command == NULL)
		r->command = smtp_command(ldiag);
	r->reason = reason_of(r->status, r->code, ldiag);
	free(ldiag);
	/* Refused after the server had accepted the recipient (at DATA): a
	 * filter speaking, not a missing mailbox. Refused at MAIL FROM:
	 * about the sender. */
	if (r->command != NULL && strcmp(r->command, "DATA") == 0 &&
	    strcmp(r->reason, "userunknown") == 0)
		r->reason = "filtered";
	/* The text calls the address unknown, the status says the mailbox
	 * exists (X.2.0: mailbox status) or the message was refused (X.7.x:
	 * security or policy): conflicting evidence, read as a filter. */
	if (strcmp(r->reason, "userunknown") == 0 && r->status[0] != '\0' &&
	    (strcmp(r->status + 1, ".2.0") == 0 ||
	     strncmp(r->status + 1, ".7.", 3) == 0))
		r->reason = "filtered";
	if (r->command != NULL && strcmp(r->command, "MAIL") == 0 &&
	    (strcmp(r->reason, "userunknown") == 0 ||
	     strcmp(r->reason, "hostunknown") == 0))
		r->reason = "rejected";
	/* A temporary failure reported as final, or a delay: the MTA gave
	 * up or is still trying, for no reason it named. */
	if (phrase == NULL && !(sr != NULL && sr->strong) && r->action != NULL &&
	    ((strncasecmp(r->action, "failed", 6) == 0 && r->status[0] == '4') ||
	     strncasecmp(r->action, "delayed", 7) == 0))
		r->reason = "expired";
	r->hard = bounce_reason_hard(r->reason);
	/* A temporary failure never condemns an address. */
	if (r->hard == 1 && (r->status[0] == '4' || r->code / 100 == 4))
		r->hard = 0;
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
		if (ci_find(s, names[i]) != NULL)
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
		if (ci_find(subj, list[i]))
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
		size_t n = strlen(original_markers[i]);

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

	while (e > s && strchr(" \t<\"':([;", e[-1]) != NULL)
		e--;
	if ((size_t)(e - s) >= 6 && strncasecmp(e - 6, "rfc822", 6) == 0) {
		e -= 6;
		while (e > s && strchr(" \t<\"':([;", e[-1]) != NULL)
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
		    strncasecmp(e - n, rcpt_labels[i], n) == 0 &&
		    ((size_t)(e - s) == n || !isalnum((unsigned char)e[-n - 1])))
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
	if (p < nl && (*n = addr_len(p)) > 0 && p + *n <= nl)
		return p;
	for (q = p; q < nl; q++) {
		const char *a;

		if (*q != '@')
			continue;
		a = q;
		while (a > p && is_addr_char((unsigned char)a[-1]))
			a--;
		if (a == q || (*n = addr_len(a)) == 0 || a + *n > nl)
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
static char *rcpt_window(const char *line, const char *end, const char *addr,
                         size_t alen)
{
	const char *p = memchr(line, '\n', (size_t)(end - line));
	const char *stop = end;
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
		if (a != NULL && !(n == alen && strncasecmp(a, addr, n) == 0)) {
			stop = p;
			break;
		}
		p = nl < end ? nl : NULL;
	}
	w = malloc((size_t)(stop - line) + 1);
	if (w == NULL)
		return NULL;
	for (const char *c = line; c < stop; c++) {
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
		addr = xstrndup(p, alen);
		if (addr == NULL)
			return -1;
		for (size_t i = 0; i < alen; i++)
			addr[i] = (char)tolower((unsigned char)addr[i]);
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
			char *win = rcpt_window(line, end, p, alen);
			char *lw;

			if (win == NULL)
				return -1;
			lw = lower_dup(win, BOUNCE_DIAG_WINDOW);
			if (lw == NULL) {
				free(win);
				return -1;
			}
			if (r->command == NULL)
				r->command = smtp_command(lw);
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
 * header-looking line after the marker up to a blank line. NULL when
 * there is none; sets *oom on out-of-memory. */
static char *text_original(const char *text, size_t n, size_t cut,
                           size_t *out, int *oom)
{
	const char *p = text + cut, *end = text + n;
	size_t lines = 0;

	if (cut >= n)
		return NULL;
	/* skip the marker line and look a few lines on for a field */
	while (p < end && lines++ < 8) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *c = p;

		if (nl == NULL)
			break;
		while (c < nl && (isalnum((unsigned char)*c) || *c == '-'))
			c++;
		if (lines > 1 && c > p && c < nl && *c == ':') {
			char *h = header_block(p, (size_t)(end - p), out);

			if (h == NULL)
				*oom = 1;
			return h;
		}
		p = nl + 1;
	}
	return NULL;
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
static char *replied_id(struct mailimf_fields *top, int *oom)
{
	static const int types[] = {MAILIMF_FIELD_IN_REPLY_TO,
	                            MAILIMF_FIELD_REFERENCES};
	const char *best = NULL, *any = NULL;

	for (size_t t = 0; t < 2 && best == NULL; t++) {
		struct mailimf_field *fl = field_typed(top, types[t]);
		clist *l;

		if (fl == NULL)
			continue;
		l = t == 0 ? fl->fld_data.fld_in_reply_to->mid_list
		           : fl->fld_data.fld_references->mid_list;
		for (clistiter *it = l ? clist_begin(l) : NULL; it != NULL;
		     it = clist_next(it)) {
			const char *id = clist_content(it);
			size_t h = 0;

			if (id == NULL)
				continue;
			while (isxdigit((unsigned char)id[h]))
				h++;
			if (h == 32 && id[h] == '@') {
				best = id;
				break;
			}
			if (any == NULL || t == 1)
				any = id; /* References: the last is the parent */
		}
		if (any != NULL && t == 0)
			break;
	}
	return dup_or_oom(best != NULL ? best : any, oom);
}

/* A header value decoded from RFC 2047 to UTF-8; NULL on failure. */
static char *decode_header(const char *v)
{
	size_t idx = 0;
	char *out = NULL;

	if (v == NULL ||
	    mailmime_encoded_phrase_parse("utf-8", v, strlen(v), &idx, "utf-8",
	                                  &out) != MAILIMF_NO_ERROR)
		return NULL;
	return out;
}

/* ---- classification ---- */

/* What the top-level header says about the message. */
struct head {
	const char *subj;  /* raw */
	char *subj_dec;    /* decoded, owned, or NULL */
	const char *from;  /* address, or NULL */
	const char *fname; /* display name, or NULL */
	char *from_raw;    /* the field when it did not parse, owned */
	const char *to;
	const char *ofrom; /* the original's From */
	const char *oto;   /* the original's To */
	int strong;        /* sure to be from a mail system */
};

static void head_read(struct head *h, struct mailimf_fields *top,
                      struct mailimf_fields *orig, int *oom)
{
	struct mailimf_field *fl;

	fl = field_typed(top, MAILIMF_FIELD_SUBJECT);
	if (fl != NULL)
		h->subj = fl->fld_data.fld_subject->sbj_value;
	if (h->subj != NULL)
		h->subj_dec = decode_header(h->subj);
	fl = field_typed(top, MAILIMF_FIELD_FROM);
	if (fl != NULL && fl->fld_data.fld_from->frm_mb_list != NULL &&
	    fl->fld_data.fld_from->frm_mb_list->mb_list != NULL &&
	    clist_begin(fl->fld_data.fld_from->frm_mb_list->mb_list) != NULL) {
		struct mailimf_mailbox *mb = clist_content(
		    clist_begin(fl->fld_data.fld_from->frm_mb_list->mb_list));

		h->from = mb->mb_addr_spec;
		h->fname = mb->mb_display_name;
	} else {
		h->from_raw = field_get(top, "From", oom);
	}
	fl = field_typed(top, MAILIMF_FIELD_TO);
	if (fl != NULL)
		h->to = first_addr(fl->fld_data.fld_to->to_addr_list);
	h->ofrom = from_addr(orig);
	fl = field_typed(orig, MAILIMF_FIELD_TO);
	if (fl != NULL)
		h->oto = first_addr(fl->fld_data.fld_to->to_addr_list);
}

static int head_is_daemon(const struct head *h)
{
	return is_daemon(h->from) || is_daemon(h->fname) ||
	       is_daemon(h->from_raw);
}

static int head_subject_has(const struct head *h, const char *const *list,
                            size_t n)
{
	return (h->subj != NULL && subject_has(h->subj, list, n)) ||
	       (h->subj_dec != NULL && subject_has(h->subj_dec, list, n));
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ARF, or a complaint in the form some services send without it. */
static int classify_complaint(struct bounce_event *ev, struct scan *sc,
                              struct mailimf_fields *orig,
                              const struct head *h, int *oom)
{
	char *v;

	if (sc->arf == NULL && !sc->report_arf &&
	    !(h->subj != NULL &&
	      ci_find(h->subj, "complaint about message from") != NULL))
		return 0;
	ev->kind = BOUNCE_COMPLAINT;
	if (sc->arf != NULL) {
		struct mailimf_fields *f = NULL;

		if (parse_fields(sc->arf, sc->narf, &f) == 0) {
			ev->feedback_type = field_get(f, "Feedback-Type", oom);
			v = field_get(f, "Original-Rcpt-To", oom);
			if (v == NULL && !*oom)
				v = field_get(f, "Removal-Recipient", oom);
			mailimf_fields_free(f);
			if (v != NULL) {
				char *a = addr_from(v, oom);

				free(v);
				if (a != NULL && rcpt_add(ev, a) < 0)
					*oom = 1;
			}
		}
	}
	if (ev->nrcpt == 0 && orig != NULL && !*oom) {
		v = field_get(orig, "X-HmXmrOriginalRecipient", oom);
		if (v != NULL) {
			char *a = addr_from(v, oom);

			free(v);
			if (a != NULL && rcpt_add(ev, a) < 0)
				*oom = 1;
		}
	}
	if (ev->nrcpt == 0 && h->oto != NULL && !*oom) {
		char *c = addr_from(h->oto, oom);

		if (c != NULL && rcpt_add(ev, c) < 0)
			*oom = 1;
	}
	for (size_t i = 0; i < ev->nrcpt; i++) {
		ev->rcpt[i].reason = "feedback";
		ev->rcpt[i].hard = -1;
	}
	return 1;
}

static int is_autoreply(struct mailimf_fields *top, const struct head *h,
                        int *oom)
{
	int yes = 0;
	char *v = field_get(top, "Auto-Submitted", oom);

	if (v != NULL && ci_find(v, "auto-replied") != NULL)
		yes = 1;
	free(v);
	if ((v = field_get(top, "X-Autoreply", oom)) != NULL)
		yes = 1;
	free(v);
	if ((v = field_get(top, "X-Autorespond", oom)) != NULL)
		yes = 1;
	free(v);
	if (head_subject_has(h, autoreply_subjects, NELEM(autoreply_subjects)))
		yes = 1;
	return yes && !head_is_daemon(h) &&
	       !(head_subject_has(h, failure_subjects, NELEM(failure_subjects)) &&
	         !(h->subj != NULL && ci_find(h->subj, "auto")));
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
			char *r = xstrndup(v, (size_t)(e - v));

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
		a = addr_from(v, oom);
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
			find_status(v, r->status);
		free(v);
		v = json_value(next, close, "diagnosticCode", &next, oom);
		if (v != NULL) {
			const char *c = strchr(v, ';');

			r->diagnostic = clean_value(c != NULL ? c + 1 : v);
			if (r->diagnostic == NULL)
				*oom = 1;
			free(v);
		}
	}
	return 1;
}

/* Fill ev from the parsed message; -1 on out-of-memory. */
static int classify(struct bounce_event *ev, struct mailimf_fields *top,
                    struct scan *sc)
{
	struct mailimf_fields *orig = NULL;
	struct head h = {0};
	struct selves self = {{0}};
	size_t cut = sc->ntext;
	char *v;
	int oom = 0, weak = 0;

	ev->verp_to = field_get(top, "Delivered-To", &oom);
	if (ev->verp_to == NULL && !oom)
		ev->verp_to = field_get(top, "X-Original-To", &oom);
	if (ev->verp_to == NULL && !oom) {
		struct mailimf_field *fl = field_typed(top, MAILIMF_FIELD_TO);

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

	if (sc->text != NULL)
		cut = text_cut(sc->text, sc->ntext);
	if (sc->orig == NULL && sc->text != NULL)
		sc->orig = text_original(sc->text, sc->ntext, cut, &sc->norig,
		                         &oom);
	if (sc->orig != NULL && parse_fields(sc->orig, sc->norig, &orig) == 0) {
		struct mailimf_field *fl =
		    field_typed(orig, MAILIMF_FIELD_MESSAGE_ID);

		if (fl != NULL)
			ev->message_id = dup_or_oom(
			    fl->fld_data.fld_message_id->mid_value, &oom);
	}
	head_read(&h, top, orig, &oom);
	self.a[0] = ev->verp_to;
	self.a[1] = h.from;
	self.a[2] = h.to;
	self.a[3] = h.ofrom;

	if (classify_complaint(ev, sc, orig, &h, &oom))
		goto done;

	if (sc->dsn == NULL && sc->text != NULL &&
	    classify_ses(ev, sc->text, sc->ntext, &oom)) {
		if (ev->kind == BOUNCE_COMPLAINT)
			goto done;
		goto rcpts;
	}
	if (sc->dsn != NULL && dsn_parse(ev, sc->dsn, sc->ndsn) < 0)
		oom = 1;
	/* a report pasted into the text */
	if (ev->nrcpt == 0 && sc->text != NULL && !oom) {
		const char *f = ci_find(sc->text, "\nFinal-Recipient:");

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

	v = field_get(top, "Auto-Submitted", &oom);
	h.strong = sc->report_dsn || head_is_daemon(&h) ||
	           head_subject_has(&h, failure_subjects,
	                            NELEM(failure_subjects)) ||
	           (v != NULL && ci_find(v, "failure") != NULL);
	free(v);

	/* Auto-replies before the text scan: their text quotes addresses. */
	if (!h.strong && is_autoreply(top, &h, &oom)) {
		ev->kind = BOUNCE_AUTOREPLY;
		if (h.from != NULL) {
			char *a = addr_from(h.from, &oom);

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
	v = field_get(top, "X-Failed-Recipients", &oom);
	if (v != NULL) {
		char *save = NULL;

		h.strong = 1;
		for (char *t = strtok_r(v, ", ", &save); t != NULL;
		     t = strtok_r(NULL, ", ", &save)) {
			char *a = addr_from(t, &oom);

			if (a != NULL && rcpt_add(ev, a) < 0)
				oom = 1;
		}
		free(v);
	}
	if (sc->text != NULL && !h.strong) {
		char *head = xstrndup(sc->text, cut);

		if (head == NULL) {
			oom = 1;
		} else {
			for (size_t i = 0; i < NELEM(bounce_texts) && !weak;
			     i++)
				weak = ci_find(head, bounce_texts[i]) != NULL;
			free(head);
		}
	}
	if (!h.strong && !weak) {
		if (sc->text != NULL &&
		    is_unsubscribe(h.subj_dec != NULL ? h.subj_dec : h.subj,
		                   sc->text, sc->nfirst)) {
			ev->kind = BOUNCE_UNSUBSCRIBE;
			if (h.from != NULL) {
				char *a = addr_from(h.from, &oom);

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
		char *a = addr_from(h.oto, &oom);

		if (a != NULL && is_self(&self, a))
			free(a);
		else if (a != NULL && rcpt_add(ev, a) < 0)
			oom = 1;
	}
	if (ev->nrcpt > 0)
		ev->kind = BOUNCE_DSN;
rcpts:
	for (size_t i = 0; i < ev->nrcpt && !oom; i++) {
		struct bounce_rcpt *r = &ev->rcpt[i];

		/* no explanation of its own: the text's */
		if (r->diagnostic == NULL && sc->text != NULL) {
			char *c = xstrndup(sc->text, cut < BOUNCE_DIAG_WINDOW
			                                 ? cut
			                                 : BOUNCE_DIAG_WINDOW);

			r->diagnostic = c != NULL ? clean_value(c) : NULL;
			free(c);
			if (r->diagnostic == NULL)
				oom = 1;
		}
		rcpt_classify(r);
	}
done:
	if (orig != NULL)
		mailimf_fields_free(orig);
	free(h.subj_dec);
	free(h.from_raw);
	return oom ? -1 : 0;
}

/* Whether the message is a multipart whose boundary never occurs in it
 * (libetpan then sees only the preamble). */
static int boundary_missing(struct mailmime *mime, const char *buf, size_t n)
{
	struct mailmime *m;
	const char *b, *body;

	if (mime == NULL || mime->mm_type != MAILMIME_MESSAGE)
		return 0;
	m = mime->mm_data.mm_message.mm_msg_mime;
	if (m == NULL || m->mm_type != MAILMIME_MULTIPLE)
		return 0;
	b = ct_param(m, "boundary");
	body = memmem(buf, n, "\r\n\r\n", 4);
	if (b == NULL || b[0] == '\0' || body == NULL)
		return 0;
	return memmem(body, n - (size_t)(body - buf), b, strlen(b)) == NULL;
}

int bounce_parse(const char *msg, size_t len, struct bounce_event *ev,
                 struct diag *d)
{
	struct mailmime *mime = NULL;
	struct mailimf_fields *top = NULL, *own = NULL;
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
	if (n == 0) {
		rc = 0; /* nothing: not a bounce */
		goto out;
	}
	if (mailmime_parse(buf, n, &idx, &mime) == MAILIMF_NO_ERROR) {
		if (walk(mime, &sc, 0) < 0)
			goto oom;
		if (mime->mm_type == MAILMIME_MESSAGE)
			top = mime->mm_data.mm_message.mm_fields;
	} else {
		/* A structure libetpan refuses (a multipart whose boundary
		 * never occurs): the header alone, the body as text. */
		mime = NULL;
		idx = 0;
		if (mailimf_fields_parse(buf, n, &idx, &own) != MAILIMF_NO_ERROR)
			own = NULL;
		top = own;
	}
	if ((sc.text == NULL && sc.dsn == NULL && sc.arf == NULL) ||
	    boundary_missing(mime, buf, n)) {
		/* no body part libetpan could make sense of: the raw body */
		const char *body = memmem(buf, n, "\r\n\r\n", 4);
		size_t at = body != NULL ? (size_t)(body - buf) + 4 : n;

		if (text_append(&sc, buf + at, n - at) < 0)
			goto oom;
	}
	if (classify(ev, top, &sc) < 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	diag_add(d, NULL, 0, 0, "bounce: out of memory");
	bounce_event_free(ev);
	rc = -1;
out:
	/* The trees point into buf: free them first. */
	if (mime != NULL)
		mailmime_free(mime);
	if (own != NULL)
		mailimf_fields_free(own);
	free(buf);
	free(sc.dsn);
	free(sc.arf);
	free(sc.orig);
	free(sc.text);
	return rc;
}
