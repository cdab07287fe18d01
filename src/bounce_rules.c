/*
 * bounce_rules — the bounce reader's rule table: what a failure's
 * enhanced status code, reply code and words mean (the reason vocabulary
 * of bounce.h), which SMTP command the remote server refused, and each
 * recipient's verdict, decided by verdict.c. The same table judges a
 * refusal during delivery (bounce_reply_verdict, for trouble.c), so that
 * a refusal and a bounce with the same words are judged alike.
 */
#include "herald/bounce.h"
#include "herald/verdict.h"

#include "bounce_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Words of a diagnostic and what they mean (a reason, or a command). */
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
    /* OpenSMTPD gave up (its notice then says "temporary failure") */
    {"envelope expired", "expired"},
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
    {"not enough disk space", "mailboxfull"},
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
    /* whole sentences of known MTAs and providers */
    {"not listed in domino directory", "userunknown"},
    {"not listed in public name & address book", "userunknown"},
    {"the recipient name is not recognized", "userunknown"},
    {"this user doesn't have a", "userunknown"}, /* Yahoo */
    /* Google Workspace's reply for an address its domain does not have */
    {"550 #5.1.0 address rejected", "userunknown"},
    /* Orange and La Poste (France), in French and English */
    {"adresse destinataire invalide. invalid recipient", "userunknown"},
    {"sorry, no mailbox here by that name", "userunknown"}, /* qmail */
    {"couldn't find a mail exchanger or ip address",
     "notaccept"}, /* qmail */
    {"no such user", "userunknown"},
    {"user not found", "userunknown"},
    {"user not exist", "userunknown"},
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
    /* Lotus Notes / Domino in Japanese, "not found in the (Domino)
     * directory", in UTF-8 and as the ISO-2022-JP bytes they are sent in
     * (lowercased like every diagnostic) */
    {"\xe3\x83\x87\xe3\x82\xa3\xe3\x83\xac\xe3\x82\xaf\xe3\x83\x88\xe3\x83\xaa\xe3\x81\xab\xe3\x81\xaf\xe8\xa6\x8b\xe3\x81\xa4\xe3\x81\x8b\xe3\x82\x8a\xe3\x81\xbe\xe3\x81\x9b\xe3\x82\x93", "userunknown"},
    {"\xe3\x83\x87\xe3\x82\xa3\xe3\x83\xac\xe3\x82\xaf\xe3\x83\x88\xe3\x83\xaa\xe3\x81\xae\xe3\x83\xaa\xe3\x82\xb9\xe3\x83\x88\xe3\x81\xab\xe3\x81\x82\xe3\x82\x8a\xe3\x81\xbe\xe3\x81\x9b\xe3\x82\x93", "userunknown"},
    {"%g%#%l%/%h%j$k$o8+$d$+$j$^$;$s", "userunknown"},
    {"%g%#%l%/%h%j$n%j%9%h$k$\"$j$^$;$s", "userunknown"},
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
    {"badrcptto", "filtered"}, /* qmail's list of refused recipients */
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

/* Phrases of the table above that are a whole sentence a known MTA or
 * provider writes only for a missing mailbox or domain (Gmail's "The
 * email account that you tried to reach does not exist", Postfix's "Host
 * or domain name not found", Exim's "Unrouteable address", Domino's and
 * Exchange 2003's own wording): enough alone for a hard verdict
 * (verdict.h "mta-text"). Other words ("User unknown", "does not exist")
 * need an enhanced status or a refusal of RCPT TO to confirm them. */
static const char *const exact_sentences[] = {
    "no mx record",
    "indicated no smtp service",
    "unrouteable address",
    "host or domain name not found",
    "unrouteable mail domain",
    "not listed in domino directory",
    "not listed in public name & address book",
    "the recipient name is not recognized",
    "sorry, no mailbox here by that name",
    "couldn't find a mail exchanger or ip address",
    "email account that you tried to reach does not exist",
    "address couldn't be found",
    "address could not be found",
    "domain does not exist", /* OpenSMTPD's own DNS verdict */
    /* Google Workspace: the "#5.1.0" form, with its 550 */
    "550 #5.1.0 address rejected",
    /* Orange / La Poste (their LPN007_416, OFR_416 replies) */
    "adresse destinataire invalide. invalid recipient",
    /* Domino in Japanese: "not found in the directory", "not in the
     * directory's list", in UTF-8 and in ISO-2022-JP */
    "\xe3\x83\x87\xe3\x82\xa3\xe3\x83\xac\xe3\x82\xaf\xe3\x83\x88\xe3\x83\xaa\xe3\x81\xab\xe3\x81\xaf\xe8\xa6\x8b\xe3\x81\xa4\xe3\x81\x8b\xe3\x82\x8a\xe3\x81\xbe\xe3\x81\x9b\xe3\x82\x93",
    "\xe3\x83\x87\xe3\x82\xa3\xe3\x83\xac\xe3\x82\xaf\xe3\x83\x88\xe3\x83\xaa\xe3\x81\xae\xe3\x83\xaa\xe3\x82\xb9\xe3\x83\x88\xe3\x81\xab\xe3\x81\x82\xe3\x82\x8a\xe3\x81\xbe\xe3\x81\x9b\xe3\x82\x93",
    "%g%#%l%/%h%j$k$o8+$d$+$j$^$;$s",
    "%g%#%l%/%h%j$n%j%9%h$k$\"$j$^$;$s",
};

/* 2 when p is one of exact_sentences, else 0 (verdict_in.text_sure). */
static int phrase_sure(const struct pattern *p)
{
	if (p == NULL)
		return 0;
	for (size_t i = 0; i < NELEM(exact_sentences); i++)
		if (strcmp(p->text, exact_sentences[i]) == 0)
			return 2;
	return 0;
}

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
static const struct pattern *phrase_find(const char *diag)
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
	return best < NPATTERNS ? &bounce_patterns[best] : NULL;
}

const char *bounce_rules_phrase_reason(const char *diag)
{
	const struct pattern *p = phrase_find(diag);

	return p != NULL ? p->reason : NULL;
}

/* The reason of one failure; phrase is the reason of the first phrase
 * found in its diagnostic (phrase_find), or NULL. */
static const char *reason_of(const char *status, int code, const char *phrase)
{
	const struct status_reason *sr = status_lookup(status);

	if (status != NULL && status[0] == '2')
		return "delivered";
	if (sr != NULL && sr->strong)
		return sr->reason;
	if (phrase != NULL)
		return phrase;
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
	char *l =
	    diagnostic != NULL ? bounce_str_lower(diagnostic, SIZE_MAX) : NULL;
	const char *r;

	/* out of memory: the status alone */
	r = reason_of(status, code, bounce_rules_phrase_reason(l));
	free(l);
	return r;
}

int bounce_reason_hard(const char *reason)
{
	return verdict_reason_class(reason);
}

/* Whether the status, though not one of an address, is the one a known
 * MTA documents with the very words of the diagnostic (lowercase ldiag,
 * its phrase pat) for a recipient it does not have (verdict.h
 * status_agrees): Exchange Online Protection's directory-based edge
 * blocking, "550 5.4.1 Recipient address rejected: Access denied",
 * written by its servers under protection.outlook.com (Microsoft's
 * documented reply when the recipient is not in the organisation's
 * directory). A bare "Access denied", or 5.4.1 from another server,
 * still disagrees. */
static bool status_agrees(const char *status, const char *ldiag,
                          const struct pattern *pat)
{
	return status != NULL && ldiag != NULL && pat != NULL &&
	       strcmp(status, "5.4.1") == 0 &&
	       strcmp(pat->text, "recipient address rejected: access denied") ==
	           0 &&
	       strstr(ldiag, ".protection.outlook.com") != NULL;
}

void bounce_reply_verdict(const char *status, int code, const char *command,
                          const char *text, const char **reason,
                          struct verdict *v)
{
	char *l =
	    text != NULL ? bounce_str_lower(text, BOUNCE_MAX_VALUE) : NULL;
	const struct pattern *pat = l != NULL ? phrase_find(l) : NULL;
	struct verdict_in in = {.status = status, .code = code,
	                        .command = command};

	/* out of memory: the status and code alone */
	in.text_reason = pat != NULL ? pat->reason : NULL;
	in.text_sure = phrase_sure(pat);
	in.reason = reason_of(status, code, in.text_reason);
	in.status_agrees = status_agrees(status, l, pat);
	free(l);
	verdict_decide(&in, v);
	*reason = in.reason;
}

int bounce_rules_find_status(const char *s, char out[16])
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

int bounce_rules_find_code(const char *s)
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

const char *bounce_rules_command(const char *lw)
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
	    {"most progress was rcpt to", "RCPT"}, /* qmail */
	    {"smtp:rcpt host", "RCPT"},
	    {"[rcpt_to]", "RCPT"}, /* Yahoo */
	};
	const char *reply, *p, *last = NULL;

	if (lw == NULL)
		return NULL;
	/* Postfix's wording for a refusal of RCPT TO, whatever command a
	 * pipelining client (m-FILTER) reports as the last one it sent */
	if (strstr(lw, "recipient address rejected") != NULL)
		return "RCPT";
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
	/* (after RCPT TO and nothing else; a refusal following DATA may
	 * answer a pipelined RCPT TO) */
	if (last != NULL && strncmp(last, "rcpt to", 7) == 0)
		return "RCPT";
	return NULL;
}

/* The address in angle brackets a reply names first, after its code and
 * status made of digits and the characters of skip ("550 5.1.1
 * <a@b>..."): its length, *at set to it; 0 when the reply does not
 * begin so. A bare address ("550 a@b... No such user") is not read so:
 * filtering gateways write that form about refusals of their own, not
 * only a recipient's server about RCPT TO. */
static size_t reply_names(const char *diag, const char *skip, const char **at)
{
	const char *lt = diag;
	size_t n;

	if (lt == NULL)
		return 0;
	while (isdigit((unsigned char)*lt) ||
	       (*lt != '\0' && strchr(skip, *lt) != NULL))
		lt++;
	if (lt == diag || *lt != '<' || (n = bounce_addr_len(lt + 1)) == 0 ||
	    lt[1 + n] != '>')
		return 0;
	*at = lt + 1;
	return n;
}

/* Whether diag is a reply about another address than addr: "550 5.2.1
 * <other@x>... User Unknown" (Sendmail's form: code, status, address). */
static int names_other(const char *diag, const char *addr)
{
	const char *a = NULL;
	size_t n = reply_names(diag, ". -", &a);

	return n != 0 && (strlen(addr) != n || strncasecmp(a, addr, n) != 0);
}

/* Whether diag is a reply naming addr itself first, after its code and
 * status: "550 5.1.1 <addr>... User unknown" (Sendmail), "550 <addr>:
 * User unknown": a server echoes the address it refuses in its reply to
 * RCPT TO, not in one about the message. */
static int names_self(const char *diag, const char *addr)
{
	const char *a = NULL;
	size_t n = reply_names(diag, ". -#", &a);

	return n != 0 && (a[n + 1] == ':' || a[n + 1] == '.') &&
	       strlen(addr) == n && strncasecmp(a, addr, n) == 0;
}

void bounce_rules_classify(struct bounce_rcpt *r, const char *notice,
                           bool service_rule)
{
	const struct status_reason *sr;
	const struct pattern *pat = NULL;
	const char *phrase = NULL;
	char *ldiag = NULL;
	struct verdict_in in;
	struct verdict v;
	bool temporary;

	if (r->diagnostic != NULL) {
		char found[16];

		/* "5.0.0" from the report says less than "5.7.1" in the
		 * remote server's own reply */
		if (r->status[0] == '\0')
			bounce_rules_find_status(r->diagnostic, r->status);
		else if (strcmp(r->status + 1, ".0.0") == 0 &&
		         bounce_rules_find_status(r->diagnostic, found) &&
		         found[0] == r->status[0])
			memcpy(r->status, found, sizeof found);
		if (r->code == 0)
			r->code = bounce_rules_find_code(r->diagnostic);
		ldiag = bounce_str_lower(r->diagnostic, BOUNCE_MAX_VALUE);
	}
	sr = status_lookup(r->status);
	if (ldiag != NULL && (pat = phrase_find(ldiag)) != NULL)
		phrase = pat->reason;
	if (r->command == NULL)
		r->command = bounce_rules_command(ldiag);
	if (r->command == NULL && r->code / 100 == 5 &&
	    names_self(r->diagnostic, r->address))
		r->command = "RCPT";
	r->reason = reason_of(r->status, r->code, phrase);
	in.status_agrees = status_agrees(r->status, ldiag, pat);
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
	/* "<other@x>... User unknown" about a recipient that is not other@x:
	 * an alias or forward target is missing, not the recipient. */
	if (strcmp(r->reason, "userunknown") == 0 &&
	    names_other(r->diagnostic, r->address))
		r->reason = "filtered";
	if (r->command != NULL && strcmp(r->command, "MAIL") == 0 &&
	    (strcmp(r->reason, "userunknown") == 0 ||
	     strcmp(r->reason, "hostunknown") == 0))
		r->reason = "rejected";
	/* A temporary failure reported as final, or a delay: the MTA gave
	 * up or is still trying, for no reason it named. */
	temporary = r->action != NULL &&
	            ((strncasecmp(r->action, "failed", 6) == 0 &&
	              r->status[0] == '4') ||
	             strncasecmp(r->action, "delayed", 7) == 0);
	if (phrase == NULL && !(sr != NULL && sr->strong) && temporary)
		r->reason = "expired";
	in.status = r->status;
	in.code = r->code;
	in.command = r->command;
	in.text_reason = phrase;
	in.text_sure = phrase_sure(pat);
	in.reason = r->reason;
	in.notice = notice;
	in.temporary = temporary;
	in.service_rule = service_rule;
	verdict_decide(&in, &v);
	r->hard = v.hard;
	r->rule = v.rule;
	r->why = v.why;
	/* A text pattern alone called the address unknown: Sisimai's and
	 * herald's word for a refusal nothing confirms is "filtered". */
	if (v.hard != 1 && bounce_reason_hard(r->reason) == 1 &&
	    strcmp(v.rule, "temporary") != 0)
		r->reason = "filtered";
}
