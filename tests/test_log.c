/*
 * log tests: a line starts with time= in ISO 8601 UTC and nothing before
 * it, stays one line, and an attempt's line has its keys in the order
 * heraldd(8) gives them, with quoted values that cannot break it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/log.h"

static void test_time(void **state)
{
	char buf[LOG_TIME_SIZE];

	(void)state;
	assert_string_equal(log_time(0, buf), "1970-01-01T00:00:00Z");
	/* the example in heraldd(8) */
	assert_string_equal(log_time(1796678114, buf), "2026-12-07T21:15:14Z");
	assert_int_equal(strlen(buf) + 1, LOG_TIME_SIZE);
}

/* What log_line wrote for text, as a string (the caller frees). */
static char *written(const char *text)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	log_line(f, "%s", text);
	assert_int_equal(fclose(f), 0);
	return out;
}

static void test_line(void **state)
{
	char *t = written("relay=smtp://127.0.0.1:25 paused");
	char *u;

	(void)state;
	/* time= first, then the text, one newline */
	assert_int_equal(strncmp(t, "time=", 5), 0);
	assert_int_equal(t[5 + LOG_TIME_SIZE - 1], ' ');
	assert_string_equal(t + 5 + LOG_TIME_SIZE,
	                    "relay=smtp://127.0.0.1:25 paused\n");
	assert_int_equal(t[9], '-');
	assert_int_equal(t[15], 'T');
	assert_int_equal(t[24], 'Z');
	/* a newline in the text does not start another line */
	u = written("one\ntwo\r\nthree");
	assert_string_equal(u + 5 + LOG_TIME_SIZE, "one two  three\n");
	free(t);
	free(u);
}

static void test_quote(void **state)
{
	char *q = log_quote("a \"quoted\"\treply\r\nline\x7f");

	(void)state;
	assert_string_equal(q, "a  quoted  reply  line ");
	free(q);
	q = log_quote(NULL);
	assert_string_equal(q, "");
	free(q);
}

static void test_escape(void **state)
{
	static const char in[] = "550 \x1b[2J\a\x7f \xc2\x9b"
	                         "2J caf\xc3\xa9\\";
	char buf[16];
	char *q = log_escape(in);
	size_t n;

	(void)state;
	assert_string_equal(q, "550 \\x1b[2J\\x07\\x7f \\xc2\\x9b2J "
	                       "caf\xc3\xa9\\");
	free(q);
	q = log_escape(NULL);
	assert_string_equal(q, "");
	free(q);
	/* a NUL inside is escaped too; only whole escapes fit */
	n = log_escape_to(buf, 9, "a\0b\x1b", 4);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "a\\x00b", 6);
	/* a log line has no raw control character left */
	q = written("bell\a esc\x1b[1m");
	assert_non_null(strstr(q, "bell\\x07 esc\\x1b[1m\n"));
	free(q);
}

static void test_attempt_line(void **state)
{
	struct log_attempt a = {
	    .release = 1,
	    .delivery = 42,
	    .to = "x@example.org",
	    .relay = "smtp://127.0.0.1:2525",
	    .attempt = 1,
	    .code = 250,
	    .status = "2.0.0",
	    .result = "sent",
	    .delay = 0.031,
	    .queue_id = "4F1X2Y3Z",
	    .reason = "sent",
	    .reply = "2.0.0 Ok: queued as 4F1X2Y3Z",
	};
	char *line = log_attempt_line(&a);

	(void)state;
	assert_string_equal(
	    line, "release=1 delivery=42 to=<x@example.org> "
	          "relay=smtp://127.0.0.1:2525 attempt=1 code=250 "
	          "status=2.0.0 result=sent delay=0.031s queue_id=4F1X2Y3Z "
	          "reason=\"sent\" reply=\"2.0.0 Ok: queued as 4F1X2Y3Z\"");
	free(line);
	/* no status, no queue id, a reply that would end the value early,
	 * a relay URL with a space */
	a.status = NULL;
	a.queue_id = NULL;
	a.code = 0;
	a.result = "relay-deferred";
	a.reason = "relay: cannot connect";
	a.reply = "Failed \"to\" connect\nto 127.0.0.1";
	a.relay = "maildir:/var/spool/press out";
	line = log_attempt_line(&a);
	assert_string_equal(
	    line, "release=1 delivery=42 to=<x@example.org> "
	          "relay=\"maildir:/var/spool/press out\" attempt=1 code=0 "
	          "status=- result=relay-deferred delay=0.031s "
	          "reason=\"relay: cannot connect\" "
	          "reply=\"Failed  to  connect to 127.0.0.1\"");
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_line),
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_attempt_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
