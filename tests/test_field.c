/*
 * field tests: the address syntax every list entry is held to, and the
 * single-line rule that keeps data out of mail headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/field.h"

static void test_addresses(void **state)
{
	static const char *good[] = {
	    "anna@example.org",
	    "a.b-c+tag@mail.example.co.uk",
	    "o'connor@example.net",
	    "x@xn--e1afmkfd.xn--p1ai",
	    "user_1@sub-domain.example.test",
	};
	static const struct {
		const char *addr;
		const char *why;
	} bad[] = {
	    {"anna.example.org", "it has no @"},
	    {"@example.org", "the part before @ is empty"},
	    {"anna@", "the domain after @ is empty"},
	    {"anna@localhost", "the domain has no dot"},
	    {".anna@example.org", "misplaced dot"},
	    {"an..na@example.org", "misplaced dot"},
	    {"anna.@example.org", "misplaced dot"},
	    {"an na@example.org", "needs quoting"},
	    {"anna<x>@example.org", "needs quoting"},
	    {"\"anna x\"@example.org", "quoted local parts"},
	    {"anna@exa_mple.org", "other than letters, digits"},
	    {"anna@-example.org", "starts with -"},
	    {"anna@example-.org", "ending in -"},
	    {"anna@example..org", "empty label"},
	    {"anna@пример.рф", "non-ASCII"},
	    {"анна@example.org", "non-ASCII"},
	    {"a@b@example.org", "other than letters, digits"},
	};
	const char *why;
	char long_local[80], long_addr[320];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		if (field_email_valid(good[i], strlen(good[i]), &why) != 0)
			fail_msg("%s should be valid: %s", good[i], why);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		why = "";
		if (field_email_valid(bad[i].addr, strlen(bad[i].addr), &why) ==
		    0)
			fail_msg("%s should be invalid", bad[i].addr);
		if (strstr(why, bad[i].why) == NULL)
			fail_msg("%s: reason \"%s\", expected \"%s\"",
			         bad[i].addr, why, bad[i].why);
	}
	/* 65-octet local part */
	memset(long_local, 'a', 65);
	memcpy(long_local + 65, "@example.org", sizeof("@example.org"));
	assert_int_equal(
	    field_email_valid(long_local, strlen(long_local), &why), -1);
	assert_non_null(strstr(why, "longer than 64"));
	/* 300 characters in all */
	memset(long_addr, 'b', 300);
	memcpy(long_addr, "a@", 2);
	memcpy(long_addr + 290, ".example.o", 10);
	long_addr[300] = '\0';
	assert_int_equal(field_email_valid(long_addr, 300, &why), -1);
	assert_non_null(strstr(why, "longer than 254"));
}

static void test_single_line(void **state)
{
	struct diag d = {0};
	static const struct {
		const char *s;
		size_t len;
		const char *msg;
	} cases[] = {
	    {"Anna\nBcc: x@example.org", 23, "a line break (LF) at byte 5"},
	    {"Anna\r", 5, "a carriage return (CR) at byte 5"},
	    {"An\0na", 5, "a NUL byte at byte 3"},
	    {"Anna\tIvanova", 12, "a control character at byte 5"},
	    {"Anna\x7f", 5, "a control character at byte 5"},
	    {"", 0, "is empty"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_int_equal(field_line_text(cases[i].s, cases[i].len, NULL,
		                                 "name", 0, &d),
		                 -1);
		if (strstr(d.v[i].msg, cases[i].msg) == NULL)
			fail_msg("case %zu: %s", i, d.v[i].msg);
	}
	assert_int_equal(field_line_text("Анна Иванова", strlen("Анна Иванова"),
	                                 NULL, "name", 0, &d),
	                 0);
	assert_int_equal(field_line_text("abcdef", 6, NULL, "name", 5, &d), -1);
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_single_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
