/*
 * trouble — what a relay's answer means for one delivery (see trouble.h).
 * Every other part of herald reports facts: the transport says where the
 * exchange stopped and what the relay answered, the store records it. This
 * file alone decides whether that was a success, a temporary or permanent
 * problem of the recipient, or the relay's own fault, and when to try
 * again — as Postfix keeps all of it in smtp_trouble.c and qmgr.
 *
 * The decision in two steps: trouble_classify() names the kind of outcome
 * from the reply alone, trouble_decide() turns a kind into a verdict and a
 * time (backoff, the server's own "try again in N minutes", lifetime and
 * the release's stale-after). Nothing here reads a clock or a random
 * source: both are arguments, so every rule has a test.
 *
 * Choices the rules leave open, made here once:
 * - The reply code decides, not the enhanced status: "450 5.2.1" is
 *   temporary, "550 4.2.1" permanent. RFC 3463 says the class digits must
 *   agree; when a server breaks that, the three-digit code is the part
 *   every SMTP client acts on, and Postfix trusts it too.
 * - 5xx before any recipient is named (greeting, EHLO, AUTH, MAIL FROM)
 *   cannot be about the journalist: it is the relay refusing herald (wrong
 *   credentials, sender address not allowed, sending quota used up). Every
 *   recipient would get the same answer, so failing one would fail the
 *   whole release one recipient at a time. It pauses the relay instead,
 *   at once for relay_max_backoff: retrying bad credentials every few
 *   seconds is how a relay's fail2ban learns to block herald's address.
 * - 4xx at MAIL FROM pauses the relay too: a relay that will not take the
 *   sender now will not take it for the next recipient either (a sender
 *   greylisted per recipient is rare enough not to plan for).
 * - A timeout or a lost connection once a recipient is named (RCPT, DATA,
 *   the final dot) defers that recipient: a slow recipient check or a
 *   message the server choked on is the recipient's trouble, not every
 *   recipient's. Before that (connect, AUTH, MAIL) it is the relay's.
 *   A timeout after the final dot may mean the message did arrive: the
 *   retry can duplicate it, which the stable Message-ID makes visible.
 * - Anything this file does not recognise (a 2xx where the exchange did
 *   not finish, a 3xx, an error without a reply) defers: the default
 *   outcome of the unexpected is temporary, never a dropped recipient.
 * - relay_failures counts the relay's failures in a row before this one:
 *   the first failure pauses it relay_min_backoff, the second twice that.
 * - A server's "try again in N" replaces the backoff, and its jitter only
 *   ever adds: a greylisting server asked again too early greylists again.
 * - next_at is 0 for SENT, FAIL and EXPIRE.
 * - A 552 to RCPT TO (mailbox full) is a temporary failure, retried as a
 *   452 is (RFC 5321 4.5.3.1.10): the journalist will empty the mailbox.
 * - A 5xx refusing the recipient at RCPT whose status or words say the
 *   address itself is dead (550 5.1.1 "user unknown", 5.1.10 null MX,
 *   5.1.6 moved) fails the delivery and marks the address bad, to be
 *   suppressed as a hard bounce is: the relay has said at once what a
 *   DSN would say an hour later. Which evidence means that is the
 *   verdict's rule (verdict.h, through bounce_reply_verdict), so a
 *   refusal and a bounce with the same text are judged alike. A refusal
 *   after the dot is a filter speaking (the server had taken the
 *   address), a 4xx is a check that may pass ("450 5.1.1"), and a
 *   refusal of the sender or of herald (5.7.1 relay access denied,
 *   blocked) says nothing of the address: none marks it.
 * - Expiry (lifetime, stale-after) ends relay-wide troubles as well as a
 *   recipient's: news that can no longer go out in time is not sent late
 *   because the relay was the one that was down. An expired delivery's
 *   decision carries no relay pause; the next delivery's will.
 */
#include "herald/trouble.h"
#include "herald/verdict.h"

#include "herald/bounce.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/*
 * The defaults. Postfix's numbers where herald does what Postfix does.
 */
const struct trouble_policy trouble_default_policy = {
    /* Postfix's minimal_backoff_time. Greylisting servers accept a
     * retry after one to five minutes; trying sooner only costs
     * connections and looks like a spammer's burst. */
    .min_backoff = 300,
    /* 70 minutes (Postfix's maximal_backoff_time is 4000 s): a delivery
     * deferred for hours is still tried about once an hour, so it goes
     * out soon after the receiving side recovers. */
    .max_backoff = 4200,
    /* Postfix's maximal_queue_lifetime, 5 days. A press release is old
     * news by then; a release's stale-after usually ends it sooner. */
    .lifetime = 5 * 24 * 3600,
    /* A relay that refused a connection is often back in seconds (a
     * restart, a full connection table). */
    .relay_min_backoff = 10,
    /* 10 minutes: a relay down for longer is tried six times an hour,
     * cheap for it and soon enough once it is back. */
    .relay_max_backoff = 600,
};

/* Retries are spread by ±10% so that deliveries that failed together (a
 * list greylisted at once, a relay restart) do not return as one burst. */
#define TROUBLE_JITTER_PERCENT 10

/* A server's "try again in N" is honoured from a minute up to four times
 * max_backoff (4 h 40 min by default). Shorter hints are not worth a
 * schedule of their own: the normal backoff is later, so it never retries
 * sooner than asked. Longer ones are a mistake or mean "not today"; the
 * normal backoff then keeps trying about hourly. */
#define TROUBLE_HINT_MIN        60
#define TROUBLE_HINT_MAX_FACTOR 4

/* Texts of relays that limit herald's connections, whatever code they
 * come with (some send them as 4xx to RCPT, some as 554 greetings): the
 * relay is busy, the journalist is not at fault. */
static const char *const trouble_busy_texts[] = {
    "too many connections",
    "too many concurrent",
    "too many simultaneous",
};

/* The phrases before a retry hint, lower case. */
static const char *const trouble_hint_leads[] = {
    "try again in",
    "try again later in",
    "retry in",
};

/* Units a hint may be given in, and their seconds. */
static const struct {
	const char *name;
	unsigned seconds;
} trouble_hint_units[] = {
    {"s", 1},    {"sec", 1},   {"secs", 1},   {"second", 1},  {"seconds", 1},
    {"m", 60},   {"min", 60},  {"mins", 60},  {"minute", 60}, {"minutes", 60},
    {"h", 3600}, {"hr", 3600}, {"hrs", 3600}, {"hour", 3600}, {"hours", 3600},
};

/* What kind of outcome a reply is, before any time is attached. */
enum trouble_kind {
	TROUBLE_K_SENT,
	TROUBLE_K_FAIL,       /* the recipient's, permanent */
	TROUBLE_K_DEFER,      /* the recipient's, temporary: age backoff */
	TROUBLE_K_LOCAL,      /* herald's own, temporary: minimum backoff */
	TROUBLE_K_RELAY,      /* the relay's, temporary: growing pause */
	TROUBLE_K_RELAY_CONF, /* the relay refuses herald: long pause */
};

static bool trouble_busy(const char *text)
{
	size_t i;

	if (text == NULL)
		return false;
	for (i = 0; i < sizeof trouble_busy_texts / sizeof *trouble_busy_texts;
	     i++)
		if (strcasestr(text, trouble_busy_texts[i]) != NULL)
			return true;
	return false;
}

static enum trouble_kind trouble_classify(const struct transport_reply *r,
                                          const char **why)
{
	int cls = r->code / 100;

	if (r->stage == TRANSPORT_LOCAL) {
		*why = "local failure";
		return TROUBLE_K_LOCAL;
	}
	if ((r->stage == TRANSPORT_DONE || r->stage == TRANSPORT_DOT) &&
	    cls == 2) {
		*why = "sent";
		return TROUBLE_K_SENT;
	}
	/* A backend without SMTP (a Maildir) reports success without code. */
	if (r->stage == TRANSPORT_DONE && r->code == 0 && r->error == 0 &&
	    !r->timeout && !r->conn_lost && !r->tls) {
		*why = "sent";
		return TROUBLE_K_SENT;
	}
	if (r->tls) {
		*why = "relay: TLS failure";
		return TROUBLE_K_RELAY;
	}
	if (r->code == 421) {
		*why = "relay: 421 closing";
		return TROUBLE_K_RELAY;
	}
	if (trouble_busy(r->text)) {
		*why = "relay: too many connections";
		return TROUBLE_K_RELAY;
	}
	switch (r->stage) {
	case TRANSPORT_CONNECT:
		if (cls == 5) {
			*why = "relay: refused herald at connect";
			return TROUBLE_K_RELAY_CONF;
		}
		if (cls == 4)
			*why = "relay: 4xx at connect";
		else if (r->timeout)
			*why = "relay: connect timeout";
		else if (r->code == 0)
			*why = "relay: cannot connect";
		else
			*why = "relay: unexpected reply at connect";
		return TROUBLE_K_RELAY;
	case TRANSPORT_AUTH:
		if (cls == 5) {
			*why = "relay: AUTH rejected";
			return TROUBLE_K_RELAY_CONF;
		}
		*why = "relay: AUTH failure";
		return TROUBLE_K_RELAY;
	case TRANSPORT_MAIL:
		if (cls == 5) {
			*why = "relay: sender rejected";
			return TROUBLE_K_RELAY_CONF;
		}
		if (cls == 4) {
			*why = "relay: 4xx at MAIL";
			return TROUBLE_K_RELAY;
		}
		if (r->code == 0) {
			*why = "relay: no answer to MAIL";
			return TROUBLE_K_RELAY;
		}
		break;
	case TRANSPORT_RCPT:
	case TRANSPORT_DATA:
	case TRANSPORT_DOT:
		/* RFC 5321 4.5.3.1.10: a 552 to RCPT TO (a full mailbox, too
		 * many recipients) is to be taken as the 452 it means */
		if (r->stage == TRANSPORT_RCPT && r->code == 552) {
			*why = "recipient 552 at RCPT: taken as 452";
			return TROUBLE_K_DEFER;
		}
		if (cls == 5) {
			*why = "recipient 5xx";
			return TROUBLE_K_FAIL;
		}
		if (cls == 4) {
			*why = "recipient 4xx";
			return TROUBLE_K_DEFER;
		}
		if (r->timeout) {
			*why = "timeout";
			return TROUBLE_K_DEFER;
		}
		if (r->conn_lost) {
			*why = "connection lost";
			return TROUBLE_K_DEFER;
		}
		break;
	case TRANSPORT_DONE:
	case TRANSPORT_LOCAL:
		break;
	}
	*why = "unexpected reply";
	return TROUBLE_K_DEFER;
}

/* The reason word when a refusal of the recipient says the address is
 * permanently bad, else NULL; *rule is the verdict's rule either way
 * (see the choices above). */
static const char *trouble_bad_address(const struct transport_reply *r,
                                       const char **rule)
{
	const char *reason;
	struct verdict v;

	*rule = NULL;
	if (r->code / 100 != 5 ||
	    (r->stage != TRANSPORT_RCPT && r->stage != TRANSPORT_DOT))
		return NULL;
	bounce_reply_verdict(r->status[0] != '\0' ? r->status : NULL, r->code,
	                     r->stage == TRANSPORT_RCPT ? "RCPT" : "DATA",
	                     r->text, &reason, &v);
	*rule = v.rule;
	return v.hard == 1 ? reason : NULL;
}

/* delay ± jitter (or + jitter only, for a server's hint, which must not
 * be retried before it asked), at least one second. */
static time_t trouble_jitter(unsigned delay, uint32_t rnd, bool up_only)
{
	uint64_t j = (uint64_t)delay * TROUBLE_JITTER_PERCENT / 100;
	int64_t off;
	int64_t d;

	if (up_only)
		off = (int64_t)(((uint64_t)rnd * (j + 1)) >> 32);
	else
		off =
		    (int64_t)(((uint64_t)rnd * (2 * j + 1)) >> 32) - (int64_t)j;
	d = (int64_t)delay + off;
	return d < 1 ? 1 : (time_t)d;
}

/* A recipient's backoff: about the delivery's age, within the bounds. */
static unsigned trouble_age_delay(const struct trouble_policy *p, time_t now,
                                  time_t queued_at)
{
	int64_t age = now > queued_at ? (int64_t)now - (int64_t)queued_at : 0;

	if (age > (int64_t)p->max_backoff)
		age = p->max_backoff;
	if (age < (int64_t)p->min_backoff)
		age = p->min_backoff;
	return (unsigned)age;
}

/* The relay's pause: relay_min_backoff doubled per failure before this
 * one, up to relay_max_backoff. */
static unsigned trouble_relay_delay(const struct trouble_policy *p,
                                    unsigned failures)
{
	uint64_t d = p->relay_min_backoff;
	unsigned i;

	for (i = 0; i < failures && d != 0 && d < p->relay_max_backoff; i++)
		d *= 2;
	if (d > p->relay_max_backoff)
		d = p->relay_max_backoff > p->relay_min_backoff
		        ? p->relay_max_backoff
		        : p->relay_min_backoff;
	return (unsigned)d;
}

struct trouble_decision trouble_decide(const struct trouble_policy *p,
                                       const struct transport_reply *r,
                                       time_t now, time_t queued_at,
                                       time_t stale_after,
                                       unsigned relay_failures, uint32_t rnd)
{
	struct trouble_decision d = {.verdict = TROUBLE_DEFER};
	enum trouble_kind k;
	unsigned hint;
	uint64_t hint_max;
	time_t delay = 0;

	if (p == NULL)
		p = &trouble_default_policy;
	k = trouble_classify(r, &d.reason);
	switch (k) {
	case TROUBLE_K_SENT:
		d.verdict = TROUBLE_SENT;
		return d;
	case TROUBLE_K_FAIL:
		d.verdict = TROUBLE_FAIL;
		if ((d.bad_address = trouble_bad_address(r, &d.rule)) != NULL)
			d.reason = "recipient 5xx: the address is bad";
		return d;
	case TROUBLE_K_DEFER:
		d.verdict = TROUBLE_DEFER;
		delay = trouble_jitter(trouble_age_delay(p, now, queued_at),
		                       rnd, false);
		break;
	case TROUBLE_K_LOCAL:
		d.verdict = TROUBLE_DEFER;
		delay = trouble_jitter(p->min_backoff, rnd, false);
		break;
	case TROUBLE_K_RELAY:
		d.verdict = TROUBLE_RELAY;
		delay = trouble_jitter(trouble_relay_delay(p, relay_failures),
		                       rnd, false);
		break;
	case TROUBLE_K_RELAY_CONF:
		d.verdict = TROUBLE_RELAY;
		delay = trouble_jitter(trouble_relay_delay(p, UINT_MAX), rnd,
		                       false);
		break;
	}

	/* The server knows best when it will take the message. Herald's own
	 * failures come with no server text worth reading. */
	hint = k == TROUBLE_K_LOCAL ? 0 : trouble_retry_hint(r->text);
	hint_max = (uint64_t)p->max_backoff * TROUBLE_HINT_MAX_FACTOR;
	if (hint >= TROUBLE_HINT_MIN && hint <= hint_max)
		delay = trouble_jitter(hint, rnd, true);
	d.next_at = now + delay;

	if ((int64_t)now >= (int64_t)queued_at + (int64_t)p->lifetime) {
		d.verdict = TROUBLE_EXPIRE;
		d.next_at = 0;
		d.reason = "lifetime over";
	} else if (stale_after != 0 && d.next_at >= stale_after) {
		d.verdict = TROUBLE_EXPIRE;
		d.next_at = 0;
		d.reason = "stale-after reached";
	}
	return d;
}

/* "5 minutes" at s (after a lead phrase): seconds, or 0. */
static unsigned trouble_hint_at(const char *s)
{
	uint64_t n = 0;
	char unit[8];
	size_t len = 0;
	size_t i;
	bool digits = false;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s >= '0' && *s <= '9'; s++) {
		digits = true;
		if (n < UINT_MAX)
			n = n * 10 + (uint64_t)(*s - '0');
	}
	if (!digits)
		return 0;
	while (*s == ' ' || *s == '\t')
		s++;
	for (; (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'); s++) {
		if (len + 1 >= sizeof unit)
			return 0;
		unit[len++] = (char)(*s | 0x20);
	}
	unit[len] = '\0';
	for (i = 0; i < sizeof trouble_hint_units / sizeof *trouble_hint_units;
	     i++) {
		if (strcmp(unit, trouble_hint_units[i].name) == 0) {
			n *= trouble_hint_units[i].seconds;
			return n > UINT_MAX ? UINT_MAX : (unsigned)n;
		}
	}
	return 0;
}

unsigned trouble_retry_hint(const char *text)
{
	const char *p;
	size_t i;
	unsigned s;

	if (text == NULL)
		return 0;
	for (p = text; *p != '\0'; p++) {
		for (i = 0;
		     i < sizeof trouble_hint_leads / sizeof *trouble_hint_leads;
		     i++) {
			size_t n = strlen(trouble_hint_leads[i]);

			if (strncasecmp(p, trouble_hint_leads[i], n) != 0)
				continue;
			s = trouble_hint_at(p + n);
			if (s != 0)
				return s;
		}
	}
	return 0;
}
