/*
 * datefmt tests: dates as readers write them, from ICU's locale data, and
 * local times placed in their zone (summer and winter time).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/datefmt.h"

/* ICU writes a narrow no-break space (U+202F) before the Russian and
 * Ukrainian year abbreviations, as typesetters do. */
static void expect_date(const char *locale, const char *want)
{
	struct diag d = {0};
	char *s = datefmt_date(2019, 5, 6, locale, &d);

	assert_non_null(s);
	if (strcmp(s, want) != 0)
		fail_msg("%s: \"%s\", expected \"%s\"", locale, s, want);
	free(s);
	diag_clear(&d);
}

static void test_long_dates(void **state)
{
	(void)state;
	expect_date("en-GB", "6 May 2019");
	expect_date("en", "May 6, 2019");
	expect_date("ru", "6 мая 2019\u202fг.");
	expect_date("uk", "6 травня 2019\u202fр.");
	expect_date("de", "6. Mai 2019");
	expect_date("de-AT", "6. Mai 2019");
	expect_date("cs", "6. května 2019");
	expect_date("et", "6. mai 2019");
}

static void test_parse_date(void **state)
{
	int y, m, d;

	(void)state;
	assert_int_equal(datefmt_parse_date("2019-05-06", &y, &m, &d), 0);
	assert_int_equal(y * 10000 + m * 100 + d, 20190506);
	assert_int_equal(datefmt_parse_date("2020-02-29", &y, &m, &d), 0);
	assert_int_equal(datefmt_parse_date("2019-02-29", &y, &m, &d), -1);
	assert_int_equal(datefmt_parse_date("2019-04-31", &y, &m, &d), -1);
	assert_int_equal(datefmt_parse_date("2019-13-01", &y, &m, &d), -1);
	assert_int_equal(datefmt_parse_date("2019-5-6", &y, &m, &d), -1);
	assert_int_equal(datefmt_parse_date("06.05.2019", &y, &m, &d), -1);
	assert_int_equal(datefmt_parse_date("2019-05-06x", &y, &m, &d), -1);
}

static void test_local_times(void **state)
{
	const char *why = NULL;
	time_t t;

	(void)state;
	/* Moscow is UTC+3 all year */
	assert_int_equal(
	    datefmt_parse_local("2019-05-06 10:00", "Europe/Moscow", &t, &why),
	    0);
	assert_int_equal(t, 1557126000);
	/* Berlin: summer time in May, standard time in January */
	assert_int_equal(datefmt_parse_local("2019-05-06T10:00:00",
	                                     "Europe/Berlin", &t, &why),
	                 0);
	assert_int_equal(t, 1557129600);
	assert_int_equal(
	    datefmt_parse_local("2019-01-06 10:00", "Europe/Berlin", &t, &why),
	    0);
	assert_int_equal(t, 1546765200);
	assert_int_equal(
	    datefmt_parse_local("2019-05-06 25:00", "Europe/Berlin", &t, &why),
	    -1);
	assert_non_null(strstr(why, "time"));
	assert_int_equal(
	    datefmt_parse_local("2019-05-06 10:00", "Mars/Olympus", &t, &why),
	    -1);
	assert_non_null(strstr(why, "zone"));
	assert_int_equal(datefmt_parse_local("2019-05-06", "UTC", &t, &why),
	                 -1);
	assert_true(datefmt_zone_valid("America/New_York"));
	assert_false(datefmt_zone_valid("Europe/Atlantis"));
}

static void test_embargo_in_reader_zone(void **state)
{
	struct diag d = {0};
	char *s;

	(void)state;
	/* 07:00 UTC is 03:00 in New York (summer time) and 10:00 in Moscow */
	s = datefmt_datetime(1557126000, "en", "America/New_York", &d);
	assert_non_null(s);
	assert_non_null(strstr(s, "May 6, 2019"));
	assert_non_null(strstr(s, "03:00"));
	free(s);
	s = datefmt_datetime(1557126000, "ru", "Europe/Moscow", &d);
	assert_non_null(strstr(s, "6 мая 2019\u202fг."));
	assert_non_null(strstr(s, "10:00"));
	free(s);
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_long_dates),
	    cmocka_unit_test(test_parse_date),
	    cmocka_unit_test(test_local_times),
	    cmocka_unit_test(test_embargo_in_reader_zone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
