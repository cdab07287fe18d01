/*
 * trouble tests: every rule of trouble.c as a row of a table (where the
 * exchange stopped, what the relay said, what herald must decide and when
 * it may try again), the retry-hint parser on replies real servers send,
 * the relay's growing pause, lifetime and stale-after, and which
 * refusals say the address is dead (suppressed as a hard bounce is).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/trouble.h"

#define NOW     1700000000
#define MINUTE  60
#define HOUR    3600
#define DAY     (24 * HOUR)
#define RND_MID 0x80000000u /* no jitter */

enum { F_TIMEOUT = 1, F_TLS = 2, F_LOST = 4, F_ERROR = 8 };

struct rule {
	const char *name;
	enum transport_stage stage;
	int code;
	const char *status;
	const char *text;
	unsigned flags;
	time_t age;              /* now - queued_at */
	unsigned relay_failures; /* before this one */
	enum trouble_verdict want;
	time_t lo, hi; /* bounds of next_at - now over every rnd */
};

/* Recipient backoff of a young delivery: 5 minutes ± 10%. */
#define YOUNG 270, 330
/* The relay's first pause: 10 s ± 10%; its longest: 600 s ± 10%. */
#define RELAY_FIRST 9, 11
#define RELAY_LONG  540, 660

static const struct rule rules[] = {
    /* the relay took it */
    {"2xx after the dot", TRANSPORT_DOT, 250, "2.0.0",
     "2.0.0 Ok: queued as 4BQ1xY", 0, 0, 0, TROUBLE_SENT, 0, 0},
    {"done, 250", TRANSPORT_DONE, 250, "", "Ok", 0, 0, 0, TROUBLE_SENT, 0, 0},
    {"done without SMTP (Maildir)", TRANSPORT_DONE, 0, "", NULL, 0, 0, 0,
     TROUBLE_SENT, 0, 0},

    /* the recipient's 4xx defers only that recipient */
    {"greylisted, hint 5 minutes", TRANSPORT_RCPT, 450, "4.2.0",
     "4.2.0 <x@y>: Recipient address rejected: Greylisted, try again in 5 "
     "minutes",
     0, 0, 0, TROUBLE_DEFER, 300, 330},
    {"greylisted, hint 300 seconds", TRANSPORT_RCPT, 451, "4.7.1",
     "4.7.1 Please try again in 300 seconds", 0, 2 * HOUR, 0, TROUBLE_DEFER,
     300, 330},
    {"hint shorter than a minute: own backoff", TRANSPORT_RCPT, 450, "4.2.0",
     "4.2.0 Greylisted, try again in 30 seconds", 0, 0, 0, TROUBLE_DEFER,
     YOUNG},
    {"hint longer than 4 x max_backoff: own backoff", TRANSPORT_RCPT, 450,
     "4.2.1", "4.2.1 Mailbox busy, try again in 24 hours", 0, 20 * MINUTE, 0,
     TROUBLE_DEFER, 1080, 1320},
    {"hint of 4 x max_backoff is taken", TRANSPORT_RCPT, 450, "4.2.1",
     "4.2.1 retry in 280 minutes", 0, 0, 0, TROUBLE_DEFER, 16800, 18480},
    {"too many recipients", TRANSPORT_RCPT, 452, "4.5.3",
     "4.5.3 Too many recipients", 0, 0, 0, TROUBLE_DEFER, YOUNG},
    {"4xx after the dot", TRANSPORT_DOT, 451, "4.3.0",
     "4.3.0 Error: queue file write error", 0, 0, 0, TROUBLE_DEFER, YOUNG},
    {"4xx to DATA", TRANSPORT_DATA, 451, "4.3.0", "4.3.0 Try later", 0, 0, 0,
     TROUBLE_DEFER, YOUNG},
    {"backoff is the age: 20 minutes old", TRANSPORT_RCPT, 450, "4.2.2",
     "4.2.2 Mailbox full", 0, 20 * MINUTE, 0, TROUBLE_DEFER, 1080, 1320},
    {"backoff is capped at 70 minutes", TRANSPORT_RCPT, 450, "4.2.2",
     "4.2.2 Mailbox full", 0, 3 * DAY, 0, TROUBLE_DEFER, 3780, 4620},
    {"queued in the future (clock step): minimum", TRANSPORT_RCPT, 450, "",
     "busy", 0, -HOUR, 0, TROUBLE_DEFER, YOUNG},

    /* the recipient's 5xx fails only that recipient */
    {"user unknown", TRANSPORT_RCPT, 550, "5.1.1", "5.1.1 User unknown", 0, 0,
     0, TROUBLE_FAIL, 0, 0},
    {"mailbox full, 552 to RCPT: taken as 452", TRANSPORT_RCPT, 552, "5.2.2",
     "5.2.2 Mailbox full", 0, 0, 0, TROUBLE_DEFER, YOUNG},
    {"too big, 552 after the dot", TRANSPORT_DOT, 552, "5.3.4",
     "5.3.4 Message size exceeds fixed limit", 0, 0, 0, TROUBLE_FAIL, 0, 0},
    {"rejected after the dot", TRANSPORT_DOT, 554, "5.7.1",
     "5.7.1 Message content rejected", 0, 0, 0, TROUBLE_FAIL, 0, 0},
    {"5xx to DATA", TRANSPORT_DATA, 554, "5.5.1",
     "5.5.1 Error: no valid recipients", 0, 0, 0, TROUBLE_FAIL, 0, 0},

    /* the code decides when the enhanced status disagrees */
    {"450 with 5.x.x: temporary", TRANSPORT_RCPT, 450, "5.1.1",
     "5.1.1 User unknown", 0, 0, 0, TROUBLE_DEFER, YOUNG},
    {"550 with 4.x.x: permanent", TRANSPORT_RCPT, 550, "4.2.2",
     "4.2.2 Over quota", 0, 0, 0, TROUBLE_FAIL, 0, 0},

    /* lost or slow once a recipient is named: that recipient's */
    {"connection lost sending the message", TRANSPORT_DATA, 0, "", NULL,
     F_LOST | F_ERROR, 0, 0, TROUBLE_DEFER, YOUNG},
    {"timeout after the dot", TRANSPORT_DOT, 0, "", NULL, F_TIMEOUT | F_ERROR,
     0, 0, TROUBLE_DEFER, YOUNG},
    {"timeout at RCPT", TRANSPORT_RCPT, 0, "", NULL, F_TIMEOUT | F_ERROR, 0, 0,
     TROUBLE_DEFER, YOUNG},

    /* the relay's fault: paused, the recipient not charged */
    {"connection refused", TRANSPORT_CONNECT, 0, "", NULL, F_ERROR, 0, 0,
     TROUBLE_RELAY, RELAY_FIRST},
    {"connect timeout", TRANSPORT_CONNECT, 0, "", NULL, F_TIMEOUT | F_ERROR, 0,
     0, TROUBLE_RELAY, RELAY_FIRST},
    {"TLS failure", TRANSPORT_CONNECT, 0, "", NULL, F_TLS | F_ERROR, 0, 0,
     TROUBLE_RELAY, RELAY_FIRST},
    {"TLS failure reported late", TRANSPORT_DATA, 0, "", NULL, F_TLS | F_ERROR,
     0, 0, TROUBLE_RELAY, RELAY_FIRST},
    {"450 greeting", TRANSPORT_CONNECT, 450, "", "Service busy", 0, 0, 0,
     TROUBLE_RELAY, RELAY_FIRST},
    {"452 greeting", TRANSPORT_CONNECT, 452, "4.3.1",
     "4.3.1 Insufficient system storage", 0, 0, 0, TROUBLE_RELAY, RELAY_FIRST},
    {"421 greeting, try again later", TRANSPORT_CONNECT, 421, "4.7.0",
     "4.7.0 Try again later", 0, 0, 0, TROUBLE_RELAY, RELAY_FIRST},
    {"421 greeting with a hint", TRANSPORT_CONNECT, 421, "4.7.0",
     "4.7.0 Too busy, try again in 2 minutes", 0, 0, 0, TROUBLE_RELAY, 120,
     132},
    {"421 to RCPT", TRANSPORT_RCPT, 421, "4.7.0", "4.7.0 Try again later", 0, 0,
     0, TROUBLE_RELAY, RELAY_FIRST},
    {"421 after the dot", TRANSPORT_DOT, 421, "4.4.2",
     "4.4.2 Timeout, closing connection", 0, 0, 0, TROUBLE_RELAY, RELAY_FIRST},
    {"too many concurrent connections", TRANSPORT_RCPT, 421, "4.7.0",
     "4.7.0 Too many concurrent SMTP connections from this IP", 0, 0, 0,
     TROUBLE_RELAY, RELAY_FIRST},
    {"too many connections as 451 to RCPT", TRANSPORT_RCPT, 451, "4.7.1",
     "4.7.1 Error: too many connections from 192.0.2.7", 0, 0, 0, TROUBLE_RELAY,
     RELAY_FIRST},
    {"too many connections as 554 greeting", TRANSPORT_CONNECT, 554, "",
     "Too many connections, slow down", 0, 0, 0, TROUBLE_RELAY, RELAY_FIRST},
    {"too many connections as 550 to RCPT", TRANSPORT_RCPT, 550, "",
     "Too many simultaneous connections", 0, 0, 0, TROUBLE_RELAY, RELAY_FIRST},
    {"AUTH 454", TRANSPORT_AUTH, 454, "4.7.0",
     "4.7.0 Temporary authentication failure", 0, 0, 0, TROUBLE_RELAY,
     RELAY_FIRST},
    {"AUTH without a reply", TRANSPORT_AUTH, 0, "", NULL, F_ERROR, 0, 0,
     TROUBLE_RELAY, RELAY_FIRST},
    {"4xx to MAIL", TRANSPORT_MAIL, 451, "4.3.0",
     "4.3.0 Temporary lookup failure", 0, 0, 0, TROUBLE_RELAY, RELAY_FIRST},
    {"timeout at MAIL", TRANSPORT_MAIL, 0, "", NULL, F_TIMEOUT | F_ERROR, 0, 0,
     TROUBLE_RELAY, RELAY_FIRST},
    {"relay backoff grows: third failure", TRANSPORT_CONNECT, 0, "", NULL,
     F_ERROR, 0, 2, TROUBLE_RELAY, 36, 44},

    /* the relay refuses herald: the longest pause at once */
    {"554 greeting", TRANSPORT_CONNECT, 554, "5.7.1",
     "5.7.1 Service unavailable; client host blocked", 0, 0, 0, TROUBLE_RELAY,
     RELAY_LONG},
    {"530 must issue STARTTLS", TRANSPORT_CONNECT, 530, "5.7.0",
     "5.7.0 Must issue a STARTTLS command first", 0, 0, 0, TROUBLE_RELAY,
     RELAY_LONG},
    {"AUTH 535", TRANSPORT_AUTH, 535, "5.7.8",
     "5.7.8 Error: authentication failed", 0, 0, 0, TROUBLE_RELAY, RELAY_LONG},
    {"sender not allowed", TRANSPORT_MAIL, 553, "5.7.1",
     "5.7.1 <bounces+x@example.org>: Sender address rejected: not owned by "
     "user",
     0, 0, 0, TROUBLE_RELAY, RELAY_LONG},

    /* herald's own failure: temporary, the minimum backoff */
    {"disk full", TRANSPORT_LOCAL, 0, "", NULL, F_ERROR, 0, 0, TROUBLE_DEFER,
     YOUNG},
    {"disk full on an old delivery", TRANSPORT_LOCAL, 0, "", NULL, F_ERROR,
     2 * DAY, 0, TROUBLE_DEFER, YOUNG},
    {"local failure ignores text", TRANSPORT_LOCAL, 0, "",
     "try again in 2 hours", F_ERROR, 0, 0, TROUBLE_DEFER, YOUNG},

    /* anything odd is temporary */
    {"2xx to RCPT but not done", TRANSPORT_RCPT, 250, "2.1.5", "2.1.5 Ok", 0, 0,
     0, TROUBLE_DEFER, YOUNG},
    {"354 after the dot", TRANSPORT_DOT, 354, "", "End data with .", 0, 0, 0,
     TROUBLE_DEFER, YOUNG},
    {"an error without a reply in DATA", TRANSPORT_DATA, 0, "", NULL, F_ERROR,
     0, 0, TROUBLE_DEFER, YOUNG},
    {"done but with an error", TRANSPORT_DONE, 0, "", NULL, F_ERROR, 0, 0,
     TROUBLE_DEFER, YOUNG},
    {"a code out of range", TRANSPORT_RCPT, 999, "", "???", 0, 0, 0,
     TROUBLE_DEFER, YOUNG},
    {"2xx to MAIL, not done", TRANSPORT_MAIL, 250, "", "Ok", 0, 0, 0,
     TROUBLE_DEFER, YOUNG},
};

static struct transport_reply reply_of(const struct rule *c)
{
	struct transport_reply r;

	memset(&r, 0, sizeof r);
	r.stage = c->stage;
	r.code = c->code;
	snprintf(r.status, sizeof r.status, "%s", c->status);
	r.text = (char *)c->text;
	r.timeout = (c->flags & F_TIMEOUT) != 0;
	r.tls = (c->flags & F_TLS) != 0;
	r.conn_lost = (c->flags & F_LOST) != 0;
	r.error = (c->flags & F_ERROR) != 0 ? 7 : 0;
	return r;
}

static const char *verdict_name(enum trouble_verdict v)
{
	switch (v) {
	case TROUBLE_SENT:
		return "SENT";
	case TROUBLE_DEFER:
		return "DEFER";
	case TROUBLE_FAIL:
		return "FAIL";
	case TROUBLE_RELAY:
		return "RELAY";
	case TROUBLE_EXPIRE:
		return "EXPIRE";
	}
	return "?";
}

static void test_rules(void **state)
{
	static const uint32_t rnds[] = {
	    0, 1, 0x10000000, RND_MID, 0xc0000000, 0xfffffffe, UINT32_MAX};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof rules / sizeof *rules; i++) {
		const struct rule *c = &rules[i];
		struct transport_reply r = reply_of(c);
		time_t lo = c->hi, hi = c->lo;

		for (j = 0; j < sizeof rnds / sizeof *rnds; j++) {
			struct trouble_decision d = trouble_decide(
			    &trouble_default_policy, &r, NOW, NOW - c->age, 0,
			    c->relay_failures, rnds[j]);
			time_t delay = d.next_at - NOW;

			if (d.verdict != c->want)
				fail_msg("%s: %s (%s), expected %s", c->name,
				         verdict_name(d.verdict), d.reason,
				         verdict_name(c->want));
			assert_non_null(d.reason);
			if (c->want != TROUBLE_DEFER &&
			    c->want != TROUBLE_RELAY) {
				assert_int_equal(d.next_at, 0);
				continue;
			}
			if (delay < c->lo || delay > c->hi)
				fail_msg("%s: next try in %lld s with rnd "
				         "%#x, expected %lld..%lld",
				         c->name, (long long)delay,
				         (unsigned)rnds[j], (long long)c->lo,
				         (long long)c->hi);
			if (delay < lo)
				lo = delay;
			if (delay > hi)
				hi = delay;
		}
		/* rnd 0 and the largest rnd reach the ends of the range */
		if (c->want == TROUBLE_DEFER || c->want == TROUBLE_RELAY) {
			if (lo != c->lo || hi != c->hi)
				fail_msg("%s: next tries span %lld..%lld, "
				         "expected %lld..%lld",
				         c->name, (long long)lo, (long long)hi,
				         (long long)c->lo, (long long)c->hi);
		}
	}
}

/* One attempt at NOW by a delivery of that age: the reply a stage and code
 * (0: no reply, an error), stale-after stale_in from now (0: none). */
static struct trouble_decision decide(int stage, int code, time_t age,
                                      time_t stale_in, unsigned failures,
                                      uint32_t rnd)
{
	struct transport_reply r;

	memset(&r, 0, sizeof r);
	r.stage = (enum transport_stage)stage;
	r.code = code;
	r.error = code == 0 ? 7 : 0;
	return trouble_decide(NULL, &r, NOW, NOW - age,
	                      stale_in == 0 ? 0 : NOW + stale_in, failures,
	                      rnd);
}

/* With rnd in the middle there is no jitter: the backoffs themselves. A
 * recipient's is the delivery's age within 5..70 minutes; the relay's
 * doubles from 10 s per failure before this one, up to 10 minutes, and
 * does not depend on the delivery's age. */
static void test_backoff_schedule(void **state)
{
	static const struct {
		int stage, code;
		time_t age;
		unsigned failures;
		time_t delay;
	} cases[] = {
	    {TRANSPORT_RCPT, 450, 0, 0, 300},
	    {TRANSPORT_RCPT, 450, 299, 0, 300},
	    {TRANSPORT_RCPT, 450, 300, 0, 300},
	    {TRANSPORT_RCPT, 450, 301, 0, 301},
	    {TRANSPORT_RCPT, 450, 1800, 0, 1800},
	    {TRANSPORT_RCPT, 450, 4200, 0, 4200},
	    {TRANSPORT_RCPT, 450, 4201, 0, 4200},
	    {TRANSPORT_RCPT, 450, 4 * DAY, 0, 4200},
	    {TRANSPORT_RCPT, 450, 1800, 9, 1800},
	    {TRANSPORT_CONNECT, 0, 3 * DAY, 0, 10},
	    {TRANSPORT_CONNECT, 0, 0, 1, 20},
	    {TRANSPORT_CONNECT, 0, 0, 2, 40},
	    {TRANSPORT_CONNECT, 0, 0, 3, 80},
	    {TRANSPORT_CONNECT, 0, 0, 4, 160},
	    {TRANSPORT_CONNECT, 0, 0, 5, 320},
	    {TRANSPORT_CONNECT, 0, 0, 6, 600},
	    {TRANSPORT_CONNECT, 0, 0, 7, 600},
	    {TRANSPORT_CONNECT, 0, 0, 31, 600},
	    {TRANSPORT_CONNECT, 0, 0, 32, 600},
	    {TRANSPORT_CONNECT, 0, 0, 1000, 600},
	    {TRANSPORT_CONNECT, 0, 0, UINT32_MAX, 600},
	    {TRANSPORT_AUTH, 535, 0, 0, 600}, /* refused: the cap at once */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct trouble_decision d =
		    decide(cases[i].stage, cases[i].code, cases[i].age, 0,
		           cases[i].failures, RND_MID);

		if (d.verdict == TROUBLE_EXPIRE ||
		    d.next_at - NOW != cases[i].delay)
			fail_msg("case %zu: %lld s (%s), expected %lld", i,
			         (long long)(d.next_at - NOW), d.reason,
			         (long long)cases[i].delay);
	}
}

/* Tunables from herald.yaml are honoured, odd ones stay sane. */
static void test_own_policy(void **state)
{
	struct trouble_policy p = {60, 120, 3600, 1, 1000};
	struct transport_reply r;
	struct trouble_decision d;

	(void)state;
	memset(&r, 0, sizeof r);
	r.stage = TRANSPORT_RCPT;
	r.code = 450;
	d = trouble_decide(&p, &r, NOW, NOW - 1000, 0, 0, RND_MID);
	assert_int_equal(d.next_at - NOW, 120);
	d = trouble_decide(&p, &r, NOW, NOW, 0, 0, RND_MID);
	assert_int_equal(d.next_at - NOW, 60);
	d = trouble_decide(&p, &r, NOW, NOW - 3600, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);

	/* a zero backoff still waits a second: no busy loop */
	p = (struct trouble_policy){0, 0, 3600, 0, 0};
	d = trouble_decide(&p, &r, NOW, NOW, 0, 0, 0);
	assert_int_equal(d.verdict, TROUBLE_DEFER);
	assert_int_equal(d.next_at - NOW, 1);
	r.stage = TRANSPORT_CONNECT;
	r.code = 0;
	d = trouble_decide(&p, &r, NOW, NOW, 0, UINT32_MAX, 0);
	assert_int_equal(d.verdict, TROUBLE_RELAY);
	assert_int_equal(d.next_at - NOW, 1);

	/* a relay cap below its minimum: the minimum */
	p = (struct trouble_policy){300, 4200, DAY, 30, 20};
	d = trouble_decide(&p, &r, NOW, NOW, 0, 5, RND_MID);
	assert_int_equal(d.next_at - NOW, 30);
}

static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(trouble_default_policy.min_backoff, 5 * MINUTE);
	assert_int_equal(trouble_default_policy.max_backoff, 70 * MINUTE);
	assert_int_equal(trouble_default_policy.lifetime, 5 * DAY);
	assert_int_equal(trouble_default_policy.relay_min_backoff, 10);
	assert_int_equal(trouble_default_policy.relay_max_backoff, 600);
}

static void test_lifetime(void **state)
{
	struct trouble_decision d;

	(void)state;
	d = decide(TRANSPORT_RCPT, 450, 5 * DAY - 1, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_DEFER);
	/* the next try may fall after the lifetime: it is the last one */
	assert_int_equal(d.next_at, NOW + 4200);

	d = decide(TRANSPORT_RCPT, 450, 5 * DAY, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);
	assert_int_equal(d.next_at, 0);
	assert_string_equal(d.reason, "lifetime over");
	d = decide(TRANSPORT_DOT, 0, 6 * DAY, 0, 0, RND_MID); /* no reply */
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);
	d = decide(TRANSPORT_LOCAL, 0, 5 * DAY, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);
	/* a relay down for the whole lifetime ends the delivery too */
	d = decide(TRANSPORT_CONNECT, 0, 5 * DAY, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);

	/* a final answer stays final, however old */
	d = decide(TRANSPORT_RCPT, 550, 9 * DAY, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_FAIL);
	d = decide(TRANSPORT_DOT, 250, 9 * DAY, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_SENT);
}

static void test_stale_after(void **state)
{
	struct trouble_decision d;

	(void)state;
	/* young delivery, next try at now + 300 (no jitter) */
	d = decide(TRANSPORT_RCPT, 450, 0, 301, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_DEFER);
	assert_int_equal(d.next_at, NOW + 300);
	d = decide(TRANSPORT_RCPT, 450, 0, 300, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);
	assert_string_equal(d.reason, "stale-after reached");
	assert_int_equal(d.next_at, 0);
	/* jitter decides near the edge: early tries still fit */
	d = decide(TRANSPORT_RCPT, 450, 0, 300, 0, 0);
	assert_int_equal(d.verdict, TROUBLE_DEFER);
	assert_int_equal(d.next_at, NOW + 270);
	/* already stale */
	d = decide(TRANSPORT_RCPT, 450, 0, -10, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);
	/* a relay pause past stale-after: the news cannot go in time */
	d = decide(TRANSPORT_CONNECT, 0, 0, 5, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);
	d = decide(TRANSPORT_CONNECT, 0, 0, 11, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_RELAY);
	/* 0: no stale-after */
	d = decide(TRANSPORT_RCPT, 450, 4 * DAY, 0, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_DEFER);
	/* final answers are not expired by it */
	d = decide(TRANSPORT_RCPT, 550, 0, -10, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_FAIL);
	d = decide(TRANSPORT_DOT, 250, 0, -10, 0, RND_MID);
	assert_int_equal(d.verdict, TROUBLE_SENT);
}

/* A server's hint sets next_at, and a next_at at or past stale-after
 * expires like any other. */
static void test_hint_and_stale_after(void **state)
{
	struct transport_reply r;
	struct trouble_decision d;

	(void)state;
	memset(&r, 0, sizeof r);
	r.stage = TRANSPORT_RCPT;
	r.code = 450;
	r.text = (char *)"Greylisted, try again in 10 minutes";
	d = trouble_decide(NULL, &r, NOW, NOW, NOW + 601, 0, 0);
	assert_int_equal(d.verdict, TROUBLE_DEFER);
	assert_int_equal(d.next_at, NOW + 600);
	d = trouble_decide(NULL, &r, NOW, NOW, NOW + 600, 0, 0);
	assert_int_equal(d.verdict, TROUBLE_EXPIRE);
}

/* A refusal whose words say the address is dead: failed, and marked bad
 * (to be suppressed as a hard bounce is), with the bounce reader's
 * reason; every other refusal, a 4xx, or a refusal of the sender or of
 * herald: not marked. */
static void test_bad_address(void **state)
{
	static const struct {
		const char *name;
		enum transport_stage stage;
		int code;
		const char *status, *text;
		enum trouble_verdict want;
		const char *bad; /* NULL: not marked */
	} cases[] = {
	    {"550 5.1.1 user unknown", TRANSPORT_RCPT, 550, "5.1.1",
	     "5.1.1 <x@y>: Recipient address rejected: User unknown in virtual "
	     "mailbox table",
	     TROUBLE_FAIL, "userunknown"},
	    {"5.1.1 with the code in the text", TRANSPORT_RCPT, 550, "5.1.1",
	     "550 5.1.1 <x@y>: Recipient address rejected: User unknown",
	     TROUBLE_FAIL, "userunknown"},
	    /* "other address status" and no words for a missing mailbox:
	     * the address may be refused for any reason */
	    {"5.1.0 other address status", TRANSPORT_RCPT, 550, "5.1.0",
	     "5.1.0 Address rejected", TROUBLE_FAIL, NULL},
	    {"5.1.0 and user unknown", TRANSPORT_RCPT, 550, "5.1.0",
	     "5.1.0 <x@y>: User unknown", TROUBLE_FAIL, "userunknown"},
	    {"5.1.10 null MX", TRANSPORT_RCPT, 556, "5.1.10",
	     "5.1.10 Recipient address has null MX", TROUBLE_FAIL, "notaccept"},
	    {"Exchange's RecipientNotFound", TRANSPORT_RCPT, 550, "5.1.10",
	     "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by "
	     "SMTP address lookup",
	     TROUBLE_FAIL, "notaccept"},
	    {"no enhanced status, words only", TRANSPORT_RCPT, 550, "",
	     "No such user here", TROUBLE_FAIL, "userunknown"},
	    /* Exchange Online's directory-based edge blocking: its
	     * documented 5.4.1 agrees with its words */
	    {"Exchange Online's directory block", TRANSPORT_RCPT, 550, "5.4.1",
	     "5.4.1 Recipient address rejected: Access denied. AS(201806281) "
	     "[BN8NAM12FT042.eop-nam12.prod.protection.outlook.com]",
	     TROUBLE_FAIL, "userunknown"},
	    {"5.1.2 no such domain", TRANSPORT_RCPT, 550, "5.1.2",
	     "5.1.2 <x@nx.example>: Recipient address rejected: Domain not "
	     "found",
	     TROUBLE_FAIL, "hostunknown"},
	    {"5.1.6 moved", TRANSPORT_RCPT, 551, "5.1.6",
	     "5.1.6 User has moved; no forwarding address", TROUBLE_FAIL,
	     "hasmoved"},
	    /* refused after the dot: the server had taken the address, a
	     * filter speaks (counts as soft, never suppresses) */
	    {"after the dot", TRANSPORT_DOT, 550, "5.1.1",
	     "5.1.1 Mailbox does not exist", TROUBLE_FAIL, NULL},
	    /* failed, but the address is not known to be dead */
	    {"mailbox full", TRANSPORT_RCPT, 552, "5.2.2",
	     "5.2.2 Mailbox full", TROUBLE_DEFER, NULL},
	    {"policy refusal", TRANSPORT_RCPT, 550, "5.7.1",
	     "5.7.1 <x@y>: Recipient address rejected: rejected for policy "
	     "reasons",
	     TROUBLE_FAIL, NULL},
	    {"user unknown with a mailbox-status code", TRANSPORT_RCPT, 550,
	     "5.2.1", "5.2.1 <x@y>... User Unknown", TROUBLE_FAIL, NULL},
	    {"greylisted with 5xx words", TRANSPORT_RCPT, 450, "4.7.1",
	     "4.7.1 <x@y>: Recipient address rejected: Greylisted, user "
	     "unknown for now",
	     TROUBLE_DEFER, NULL},
	    {"access denied, 5.4.1 from another server", TRANSPORT_RCPT, 550,
	     "5.4.1", "5.4.1 Recipient address rejected: Access denied",
	     TROUBLE_FAIL, NULL},
	    {"mailbox disabled", TRANSPORT_RCPT, 550, "5.2.1",
	     "5.2.1 Mailbox disabled, not accepting messages", TROUBLE_FAIL,
	     NULL},
	    {"relay access denied", TRANSPORT_RCPT, 554, "5.7.1",
	     "5.7.1 <x@y>: Relay access denied", TROUBLE_FAIL, NULL},
	    {"blocked for spam", TRANSPORT_RCPT, 550, "5.7.1",
	     "5.7.1 Service unavailable; client host blocked using "
	     "zen.spamhaus.org",
	     TROUBLE_FAIL, NULL},
	    {"the sender unknown", TRANSPORT_RCPT, 550, "5.1.0",
	     "5.1.0 <bounces+x@example.org>: Sender address rejected: User "
	     "unknown",
	     TROUBLE_FAIL, NULL},
	    {"content rejected after the dot", TRANSPORT_DOT, 554, "5.7.1",
	     "5.7.1 Message content rejected", TROUBLE_FAIL, NULL},
	    {"too big", TRANSPORT_DOT, 552, "5.3.4",
	     "5.3.4 Message size exceeds fixed limit", TROUBLE_FAIL, NULL},
	    {"5xx to DATA", TRANSPORT_DATA, 554, "5.5.1",
	     "5.5.1 Error: no valid recipients", TROUBLE_FAIL, NULL},
	    /* temporary, or not the recipient's: never marked */
	    {"450 5.1.1: may pass", TRANSPORT_RCPT, 450, "5.1.1",
	     "5.1.1 User unknown", TROUBLE_DEFER, NULL},
	    {"451 verification in progress", TRANSPORT_RCPT, 451, "4.1.1",
	     "4.1.1 <x@y>: Recipient address rejected: unverified address: "
	     "user unknown",
	     TROUBLE_DEFER, NULL},
	    {"5.1.1 to MAIL FROM: the sender", TRANSPORT_MAIL, 550, "5.1.1",
	     "5.1.1 User unknown", TROUBLE_RELAY, NULL},
	    {"user unknown as the relay's busy text", TRANSPORT_RCPT, 550, "",
	     "Too many simultaneous connections", TROUBLE_RELAY, NULL},
	    {"sent", TRANSPORT_DOT, 250, "2.0.0", "2.0.0 Ok: queued as 4BQ1",
	     TROUBLE_SENT, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct transport_reply r;
		struct trouble_decision d;

		memset(&r, 0, sizeof r);
		r.stage = cases[i].stage;
		r.code = cases[i].code;
		snprintf(r.status, sizeof r.status, "%s", cases[i].status);
		r.text = (char *)cases[i].text;
		d = trouble_decide(NULL, &r, NOW, NOW, 0, 0, RND_MID);
		if (d.verdict != cases[i].want)
			fail_msg("%s: %s (%s), expected %s", cases[i].name,
			         verdict_name(d.verdict), d.reason,
			         verdict_name(cases[i].want));
		if ((d.bad_address == NULL) != (cases[i].bad == NULL) ||
		    (d.bad_address != NULL &&
		     strcmp(d.bad_address, cases[i].bad) != 0))
			fail_msg("%s: bad address %s, expected %s",
			         cases[i].name,
			         d.bad_address ? d.bad_address : "(none)",
			         cases[i].bad ? cases[i].bad : "(none)");
		if (d.bad_address != NULL)
			assert_non_null(strstr(d.reason, "address"));
		/* every 5xx refusal of the recipient names its rule */
		if (d.verdict == TROUBLE_FAIL &&
		    (r.stage == TRANSPORT_RCPT || r.stage == TRANSPORT_DOT) &&
		    d.rule == NULL)
			fail_msg("%s: no verdict rule", cases[i].name);
		if (d.bad_address != NULL &&
		    strcmp(d.rule, "status+text") != 0 &&
		    strcmp(d.rule, "status") != 0 &&
		    strcmp(d.rule, "rcpt+text") != 0 &&
		    strcmp(d.rule, "mta-text") != 0)
			fail_msg("%s: marked by rule %s", cases[i].name,
			         d.rule);
	}
	/* old or stale, a dead address is still failed and marked */
	{
		struct transport_reply r;
		struct trouble_decision d;

		memset(&r, 0, sizeof r);
		r.stage = TRANSPORT_RCPT;
		r.code = 550;
		snprintf(r.status, sizeof r.status, "5.1.1");
		r.text = (char *)"5.1.1 User unknown";
		d = trouble_decide(NULL, &r, NOW, NOW - 9 * DAY, NOW - 10, 0,
		                   RND_MID);
		assert_int_equal(d.verdict, TROUBLE_FAIL);
		assert_string_equal(d.bad_address, "userunknown");
		assert_int_equal(d.next_at, 0);
	}
}

static void test_retry_hint(void **state)
{
	static const struct {
		const char *text;
		unsigned seconds;
	} cases[] = {
	    {"450 4.2.0 <x@y>: Recipient address rejected: Greylisted, try "
	     "again in 5 minutes",
	     300},
	    {"421 4.7.0 Try again later", 0},
	    {"451 4.7.1 Please try again in 300 seconds", 300},
	    {"452 4.5.3 Too many recipients", 0},
	    {"421 4.7.0 Too many concurrent SMTP connections from this IP", 0},
	    {"550 5.1.1 User unknown", 0},
	    {"554 5.7.1 <x@y>: Relay access denied; message rejected", 0},
	    {"450 4.2.0 <x@y>: Recipient address rejected: Greylisted, see "
	     "http://postgrey.schweikert.ch/help/example.org.html",
	     0},
	    {"451 4.7.1 Greylisting in action, please come back later", 0},
	    {"451-4.7.1 Greylisted\n451 4.7.1 please retry in 60 seconds", 60},
	    {"451 Temporary failure, retry in 2 hours", 7200},
	    {"451 4.7.0 Try again later in 10 min", 600},
	    {"450 TRY AGAIN IN 1 HOUR", 3600},
	    {"450 try again in 30s", 30},
	    {"450 try again in 5m", 300},
	    {"450 try again in 2 hrs", 7200},
	    {"450 try again in\t2\tminutes", 120},
	    {"450 try again in 1 minute.", 60},
	    {"450 try again in 45 secs", 45},
	    {"450 try again in a few minutes", 0},
	    {"450 try again in 5 months", 0},
	    {"450 try again in 5", 0},
	    {"450 try again in -5 minutes", 0},
	    {"450 try again in 1.5 hours", 0},
	    {"450 try again in 5 minutesplease", 0},
	    {"450 try again in 2 minutes, or retry in 3 minutes", 120},
	    {"450 try again in time; retry in 90 seconds", 90},
	    {"450 try again in 99999999999999999999 hours", UINT32_MAX},
	    {"450 try again in 4294967295 seconds", UINT32_MAX},
	    {"", 0},
	    {"try again in", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		unsigned got = trouble_retry_hint(cases[i].text);

		if (got != cases[i].seconds)
			fail_msg("\"%s\": %u, expected %u", cases[i].text, got,
			         cases[i].seconds);
	}
	assert_int_equal(trouble_retry_hint(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_backoff_schedule),
	    cmocka_unit_test(test_own_policy),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_lifetime),
	    cmocka_unit_test(test_stale_after),
	    cmocka_unit_test(test_hint_and_stale_after),
	    cmocka_unit_test(test_retry_hint),
	    cmocka_unit_test(test_bad_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
