/*
 * datefmt — localized dates and times through ICU (see datefmt.h). A
 * journalist in Vienna reads "6. Mai 2019", one in Moscow "6 мая 2019 г.";
 * an embargo is shown in the reader's own time zone so nobody has to do
 * arithmetic before a deadline.
 */
#include "herald/datefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/udat.h>
#include <unicode/udatpg.h>
#include <unicode/ustring.h>

/* ICU wants UTF-16 strings: short ones here (zones, locales). */
#define DATEFMT_UMAX 128

static int datefmt_u(const char *s, UChar *buf, int32_t cap, int32_t *len)
{
	UErrorCode st = U_ZERO_ERROR;

	u_strFromUTF8(buf, cap, len, s, -1, &st);
	return U_FAILURE(st) || *len >= cap ? -1 : 0;
}

/* ICU locale ids use _ where language tags use -. */
static void datefmt_locale(const char *tag, char *out, size_t size)
{
	size_t i;

	for (i = 0; tag[i] != '\0' && i + 1 < size; i++)
		out[i] = tag[i] == '-' ? '_' : tag[i];
	out[i] = '\0';
}

static char *datefmt_utf8(const UChar *s, int32_t len, struct diag *dg)
{
	UErrorCode st = U_ZERO_ERROR;
	int32_t n = 0;
	char *out;

	u_strToUTF8(NULL, 0, &n, s, len, &st);
	if (st != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(st))
		goto fail;
	out = malloc((size_t)n + 1);
	if (out == NULL)
		goto fail;
	st = U_ZERO_ERROR;
	u_strToUTF8(out, n + 1, NULL, s, len, &st);
	if (U_FAILURE(st)) {
		free(out);
		goto fail;
	}
	return out;
fail:
	diag_add(dg, NULL, 0, 0, "cannot convert a formatted date");
	return NULL;
}

int datefmt_parse_date(const char *s, int *y, int *m, int *d)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30,
	                            31, 31, 30, 31, 30, 31};
	int used = 0;
	bool leap;

	if (strlen(s) != 10 ||
	    sscanf(s, "%4d-%2d-%2d%n", y, m, d, &used) != 3 || used != 10 ||
	    s[4] != '-' || s[7] != '-')
		return -1;
	if (*y < 1900 || *y > 9999 || *m < 1 || *m > 12 || *d < 1 ||
	    *d > mdays[*m - 1])
		return -1;
	leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
	if (*m == 2 && *d == 29 && !leap)
		return -1;
	return 0;
}

bool datefmt_zone_valid(const char *zone)
{
	UChar uz[DATEFMT_UMAX], canon[DATEFMT_UMAX];
	int32_t len;
	UBool system = false;
	UErrorCode st = U_ZERO_ERROR;

	if (datefmt_u(zone, uz, DATEFMT_UMAX, &len) < 0)
		return false;
	ucal_getCanonicalTimeZoneID(uz, len, canon, DATEFMT_UMAX, &system, &st);
	return U_SUCCESS(st) && system;
}

int datefmt_parse_local(const char *s, const char *zone, time_t *out,
                        const char **why)
{
	UChar uz[DATEFMT_UMAX];
	int32_t zlen;
	UErrorCode st = U_ZERO_ERROR;
	UCalendar *cal;
	int y, mo, d, h, mi, sec = 0, used = 0;
	char date[11];
	UDate ms;

	if (strlen(s) < 16 || (s[10] != ' ' && s[10] != 'T')) {
		*why = "write the time as YYYY-MM-DD HH:MM";
		return -1;
	}
	memcpy(date, s, 10);
	date[10] = '\0';
	if (datefmt_parse_date(date, &y, &mo, &d) < 0) {
		*why = "the date is not a valid YYYY-MM-DD date";
		return -1;
	}
	if (sscanf(s + 11, "%2d:%2d%n", &h, &mi, &used) != 2 || used != 5 ||
	    (s[16] != '\0' && (sscanf(s + 16, ":%2d%n", &sec, &used) != 1 ||
	                       used != 3 || s[19] != '\0')) ||
	    h > 23 || mi > 59 || sec > 59 || h < 0 || mi < 0 || sec < 0) {
		*why = "the time is not a valid HH:MM";
		return -1;
	}
	if (!datefmt_zone_valid(zone) ||
	    datefmt_u(zone, uz, DATEFMT_UMAX, &zlen) < 0) {
		*why = "the time zone is not a known IANA zone (like "
		       "Europe/Berlin)";
		return -1;
	}
	cal = ucal_open(uz, zlen, "en_US_POSIX", UCAL_GREGORIAN, &st);
	if (U_FAILURE(st)) {
		*why = "the time zone cannot be used";
		return -1;
	}
	ucal_clear(cal);
	ucal_setDateTime(cal, y, mo - 1, d, h, mi, sec, &st);
	ms = ucal_getMillis(cal, &st);
	ucal_close(cal);
	if (U_FAILURE(st)) {
		*why = "the time cannot be placed in the zone";
		return -1;
	}
	*out = (time_t)(ms / 1000.0);
	return 0;
}

/* Format with a skeleton (ICU picks the locale's pattern for it). */
static char *datefmt_format(UDate when, const char *skeleton,
                            const char *locale, const char *zone,
                            struct diag *dg)
{
	UChar uz[DATEFMT_UMAX], usk[64], pattern[128], buf[256];
	int32_t zlen, sklen, plen, n;
	UErrorCode st = U_ZERO_ERROR;
	UDateTimePatternGenerator *gen = NULL;
	UDateFormat *fmt = NULL;
	char loc[64];
	char *out = NULL;

	datefmt_locale(locale, loc, sizeof(loc));
	if (datefmt_u(zone, uz, DATEFMT_UMAX, &zlen) < 0 ||
	    datefmt_u(skeleton, usk, 64, &sklen) < 0)
		goto fail;
	gen = udatpg_open(loc, &st);
	if (U_FAILURE(st))
		goto fail;
	plen = udatpg_getBestPattern(gen, usk, sklen, pattern, 128, &st);
	if (U_FAILURE(st))
		goto fail;
	fmt = udat_open(UDAT_PATTERN, UDAT_PATTERN, loc, uz, zlen, pattern,
	                plen, &st);
	if (U_FAILURE(st))
		goto fail;
	n = udat_format(fmt, when, buf, 256, NULL, &st);
	if (U_FAILURE(st) || n >= 256)
		goto fail;
	out = datefmt_utf8(buf, n, dg);
	udat_close(fmt);
	udatpg_close(gen);
	return out;
fail:
	if (fmt != NULL)
		udat_close(fmt);
	if (gen != NULL)
		udatpg_close(gen);
	diag_add(dg, NULL, 0, 0, "cannot format a date for locale %s: %s",
	         locale, u_errorName(st));
	return NULL;
}

char *datefmt_date(int y, int m, int d, const char *locale, struct diag *dg)
{
	UErrorCode st = U_ZERO_ERROR;
	UChar utc[] = {'U', 'T', 'C', 0};
	UCalendar *cal = ucal_open(utc, 3, "en_US_POSIX", UCAL_GREGORIAN, &st);
	UDate when;

	if (U_FAILURE(st)) {
		diag_add(dg, NULL, 0, 0, "cannot open a calendar");
		return NULL;
	}
	/* noon UTC formatted in UTC: the calendar date, whatever the zone */
	ucal_clear(cal);
	ucal_setDateTime(cal, y, m - 1, d, 12, 0, 0, &st);
	when = ucal_getMillis(cal, &st);
	ucal_close(cal);
	if (U_FAILURE(st)) {
		diag_add(dg, NULL, 0, 0, "cannot place the date %04d-%02d-%02d",
		         y, m, d);
		return NULL;
	}
	return datefmt_format(when, "yMMMMd", locale, "UTC", dg);
}

char *datefmt_datetime(time_t t, const char *locale, const char *zone,
                       struct diag *dg)
{
	return datefmt_format((UDate)t * 1000.0, "yMMMMdHHmmzzzz", locale, zone,
	                      dg);
}

int datefmt_parse_when(const char *s, time_t now, time_t *out, const char **why)
{
	size_t n = strlen(s);

	if (strcmp(s, "now") == 0) {
		*out = now;
		return 0;
	}
	if (s[0] == '+') {
		char *end;
		unsigned long v = strtoul(s + 1, &end, 10);
		unsigned long mult = 1;
		if (end == s + 1 || v > 3650UL * 86400)
			goto bad;
		if (*end == 'm')
			mult = 60;
		else if (*end == 'h')
			mult = 3600;
		else if (*end == 'd')
			mult = 86400;
		else if (*end == '\0') {
			/* +10: seconds? minutes? a guess sends at the wrong
			 * time */
			*why = "a number needs its unit: s, m, h or d (+10m is "
			       "ten minutes from now)";
			return -1;
		} else if (*end != 's')
			goto bad;
		if (end[1] != '\0')
			goto bad;
		*out = now + (time_t)(v * mult);
		return 0;
	}
	if (n >= 17 && s[n - 1] == 'Z' && s[10] == 'T') {
		char local[20];
		if (n - 1 >= sizeof(local))
			goto bad;
		memcpy(local, s, n - 1);
		local[n - 1] = '\0';
		return datefmt_parse_local(local, "UTC", out, why);
	}
	{
		const char *sp = strrchr(s, ' ');
		char local[32];
		if (sp == NULL || (size_t)(sp - s) >= sizeof(local))
			goto bad;
		memcpy(local, s, (size_t)(sp - s));
		local[sp - s] = '\0';
		return datefmt_parse_local(local, sp + 1, out, why);
	}
bad:
	*why = "write the time as +10m, YYYY-MM-DDTHH:MMZ or "
	       "\"YYYY-MM-DD HH:MM Area/City\"";
	return -1;
}
