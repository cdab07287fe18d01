/*
 * sched tests: buckets refill at their rate up to their burst, a message
 * takes from both its relay's and its domain's bucket or from neither,
 * waits are exact, and the number of buckets stays under its cap however
 * many domains a list has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/sched.h"

#define RELAY "smtp://127.0.0.1:2525"

static void assert_near(double got, double want)
{
	if (got < want - 1e-6 || got > want + 1e-6)
		fail_msg("%.9f, expected %.9f", got, want);
}

static void test_unlimited_by_default(void **state)
{
	struct sched *s = sched_new(NULL);
	int i;

	(void)state;
	assert_non_null(s);
	assert_true(sched_default_limits.relay_per_second == 0);
	assert_true(sched_default_limits.domain_per_minute == 0);
	assert_int_equal(sched_default_limits.max_keys, 4096);
	for (i = 0; i < 10000; i++)
		assert_true(sched_take(s, RELAY, "example.org", 0));
	assert_near(sched_wait(s, RELAY, "example.org", 0), 0);
	/* no limit, no buckets */
	assert_int_equal(sched_keys(s), 0);
	sched_free(s);
	sched_free(NULL);
}

static void test_relay_rate_and_refill(void **state)
{
	struct sched_limits l = {.relay_per_second = 10};
	struct sched *s = sched_new(&l);
	int i;

	(void)state;
	/* a burst of one second's worth, then one every 100 ms */
	for (i = 0; i < 10; i++)
		assert_true(sched_take(s, RELAY, "example.org", 100.0));
	assert_false(sched_take(s, RELAY, "example.net", 100.0));
	assert_near(sched_wait(s, RELAY, "example.net", 100.0), 0.1);
	assert_near(sched_wait(s, RELAY, "example.net", 100.05), 0.05);
	assert_false(sched_take(s, RELAY, "example.net", 100.05));
	assert_true(sched_take(s, RELAY, "example.net", 100.1));
	assert_false(sched_take(s, RELAY, "example.net", 100.1));
	/* idle time refills to the burst, not beyond */
	for (i = 0; i < 10; i++)
		assert_true(sched_take(s, RELAY, "example.org", 200.0));
	assert_false(sched_take(s, RELAY, "example.org", 200.0));
	/* another relay has its own bucket */
	assert_true(sched_take(s, "smtp://relay2:25", "example.org", 200.0));
	/* no domain limit: domains need no bucket */
	assert_int_equal(sched_keys(s), 2);
	sched_free(s);
}

static void test_domain_rate(void **state)
{
	struct sched_limits l = {.domain_per_minute = 30};
	struct sched *s = sched_new(&l);

	(void)state;
	/* 30 a minute: one message, then one every two seconds */
	assert_true(sched_take(s, RELAY, "example.org", 0));
	assert_false(sched_take(s, RELAY, "example.org", 0));
	assert_near(sched_wait(s, RELAY, "example.org", 0), 2.0);
	assert_near(sched_wait(s, RELAY, "example.org", 1.5), 0.5);
	assert_false(sched_take(s, RELAY, "example.org", 1.5));
	/* waiting exactly what sched_wait said is always enough */
	assert_true(sched_take(s, RELAY, "example.org",
	                       1.5 + sched_wait(s, RELAY, "example.org", 1.5)));
	/* case does not make another domain */
	assert_false(sched_take(s, RELAY, "EXAMPLE.Org", 2.0));
	/* other domains are not held back */
	assert_true(sched_take(s, RELAY, "example.net", 2.0));
	assert_true(sched_take(s, NULL, "example.com", 2.0));
	/* no domain: no domain limit */
	assert_true(sched_take(s, RELAY, NULL, 2.0));
	assert_int_equal(sched_keys(s), 3);
	sched_free(s);
}

static void test_explicit_burst(void **state)
{
	struct sched_limits l = {.relay_per_second = 1,
	                         .relay_burst = 5,
	                         .domain_per_minute = 600,
	                         .domain_burst = 0.5};
	struct sched *s = sched_new(&l);
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		assert_true(sched_take(s, RELAY, NULL, 0));
	assert_false(sched_take(s, RELAY, NULL, 0));
	assert_near(sched_wait(s, RELAY, NULL, 0), 1.0);
	/* a burst below one is one: a message can always go eventually */
	assert_true(sched_take(s, NULL, "example.org", 0));
	assert_false(sched_take(s, NULL, "example.org", 0));
	assert_near(sched_wait(s, NULL, "example.org", 0), 0.1);
	sched_free(s);
}

static void test_both_or_nothing(void **state)
{
	struct sched_limits l = {
	    .relay_per_second = 1, .relay_burst = 2, .domain_per_minute = 6};
	struct sched *s = sched_new(&l);

	(void)state;
	assert_true(sched_take(s, RELAY, "a.example", 0));
	/* the domain is empty: the relay's token is not taken */
	assert_false(sched_take(s, RELAY, "a.example", 0));
	assert_true(sched_take(s, RELAY, "b.example", 0));
	/* now the relay is empty: c's token is not taken either */
	assert_false(sched_take(s, RELAY, "c.example", 0));
	assert_near(sched_wait(s, RELAY, "c.example", 0), 1.0);
	/* a second later the relay has a token, and c still has its own
	 * (at 6 a minute, a charged c would wait ten seconds) */
	assert_true(sched_take(s, RELAY, "c.example", 1.0));
	/* the wait is the longer of the two */
	assert_near(sched_wait(s, RELAY, "a.example", 1.0), 9.0);
	assert_near(sched_wait(s, RELAY, "d.example", 1.0), 1.0);
	assert_near(sched_wait(s, NULL, "a.example", 1.0), 9.0);
	sched_free(s);
}

static void test_wait_changes_nothing(void **state)
{
	struct sched_limits l = {
	    .relay_per_second = 2, .relay_burst = 1, .domain_per_minute = 60};
	struct sched *s = sched_new(&l);
	int i;

	(void)state;
	assert_true(sched_take(s, RELAY, "example.org", 0));
	for (i = 0; i < 5; i++)
		assert_near(sched_wait(s, RELAY, "example.org", 0.25), 0.75);
	/* unknown keys would start full */
	assert_near(sched_wait(s, "smtp://other:25", "example.net", 0.25), 0);
	assert_int_equal(sched_keys(s), 2);
	assert_near(sched_wait(s, NULL, NULL, 0.25), 0);
	sched_free(s);
}

/* now from a caller whose clock stepped back: no tokens for time that
 * has already been counted, and the wait says so. */
static void test_time_going_back(void **state)
{
	struct sched_limits l = {.relay_per_second = 1, .relay_burst = 1};
	struct sched *s = sched_new(&l);

	(void)state;
	assert_true(sched_take(s, RELAY, NULL, 10.0));
	assert_false(sched_take(s, RELAY, NULL, 5.0));
	assert_near(sched_wait(s, RELAY, NULL, 5.0), 6.0);
	assert_false(sched_take(s, RELAY, NULL, 10.5));
	assert_true(sched_take(s, RELAY, NULL, 11.0));
	sched_free(s);
}

static void test_key_cap_forgets_least_recent(void **state)
{
	struct sched_limits l = {.domain_per_minute = 1, .max_keys = 3};
	struct sched *s = sched_new(&l);

	(void)state;
	assert_true(sched_take(s, RELAY, "a.example", 0));
	assert_true(sched_take(s, RELAY, "b.example", 0));
	assert_true(sched_take(s, RELAY, "c.example", 0));
	assert_int_equal(sched_keys(s), 3);
	/* a is used again: now b is the least recently used */
	assert_false(sched_take(s, RELAY, "a.example", 1));
	assert_true(sched_take(s, RELAY, "d.example", 1));
	assert_int_equal(sched_keys(s), 3);
	/* a was kept, and is still empty */
	assert_false(sched_take(s, RELAY, "a.example", 2));
	/* b was forgotten: it starts full (and pushes out c) */
	assert_true(sched_take(s, RELAY, "b.example", 2));
	assert_int_equal(sched_keys(s), 3);
	assert_near(sched_wait(s, RELAY, "c.example", 2), 0);
	/* d is still held */
	assert_near(sched_wait(s, RELAY, "d.example", 2), 59);
	sched_free(s);
}

/* A list of 100,000 journalists at 100,000 domains: the buckets stop at
 * the cap, and the recent ones are still limited. */
static void test_key_cap_large_list(void **state)
{
	struct sched_limits l = {.relay_per_second = 1e6,
	                         .domain_per_minute = 1};
	struct sched *s = sched_new(&l);
	char dom[64];
	int i;

	(void)state;
	for (i = 0; i < 100000; i++) {
		snprintf(dom, sizeof dom, "outlet%d.example", i);
		assert_true(sched_take(s, RELAY, dom, (double)i * 1e-5));
		assert_true(sched_keys(s) <= 1 + 4096);
	}
	assert_int_equal(sched_keys(s), 1 + 4096);
	assert_false(sched_take(s, RELAY, "outlet99999.example", 1.0));
	assert_false(sched_take(s, RELAY, "OUTLET95904.example", 1.0));
	sched_free(s);
}

/* Keys longer than a domain name can be share a bucket: the cap on what
 * a bucket holds is fixed. */
static void test_long_keys(void **state)
{
	struct sched_limits l = {.domain_per_minute = 1};
	struct sched *s = sched_new(&l);
	char a[400], b[400];

	(void)state;
	memset(a, 'a', sizeof a - 1);
	a[sizeof a - 1] = '\0';
	memcpy(b, a, sizeof b);
	b[300] = 'b';
	assert_true(sched_take(s, NULL, a, 0));
	assert_false(sched_take(s, NULL, b, 0));
	b[200] = 'b';
	assert_true(sched_take(s, NULL, b, 0));
	assert_true(sched_take(s, NULL, "", 0));
	assert_false(sched_take(s, NULL, "", 0));
	sched_free(s);
}

static void test_odd_limits(void **state)
{
	struct sched_limits l = {.relay_per_second = -1,
	                         .domain_per_minute = -5,
	                         .max_keys = (size_t)1 << 40};
	struct sched *s = sched_new(&l);

	(void)state;
	/* negative: no limit; an absurd cap is clamped, not allocated */
	assert_non_null(s);
	assert_true(sched_take(s, RELAY, "example.org", 0));
	assert_true(sched_take(s, RELAY, "example.org", 0));
	assert_int_equal(sched_keys(s), 0);
	sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unlimited_by_default),
	    cmocka_unit_test(test_relay_rate_and_refill),
	    cmocka_unit_test(test_domain_rate),
	    cmocka_unit_test(test_explicit_burst),
	    cmocka_unit_test(test_both_or_nothing),
	    cmocka_unit_test(test_wait_changes_nothing),
	    cmocka_unit_test(test_time_going_back),
	    cmocka_unit_test(test_key_cap_forgets_least_recent),
	    cmocka_unit_test(test_key_cap_large_list),
	    cmocka_unit_test(test_long_keys),
	    cmocka_unit_test(test_odd_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
