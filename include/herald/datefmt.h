/*
 * datefmt — dates and times as a reader in a given language and time zone
 * writes them ("6 May 2019", "6 мая 2019 г.", "6. Mai 2019"), with ICU's
 * locale data: herald keeps no month names or date patterns of its own.
 *
 * Library code: NULL / -1 on failure with the reason in a struct diag.
 */
#ifndef HERALD_DATEFMT_H
#define HERALD_DATEFMT_H

#include <stdbool.h>
#include <time.h>

#include "herald/diag.h"

/* Parse "YYYY-MM-DD" (a calendar date, valid in the Gregorian calendar)
 * into year, month (1-12) and day. Returns 0 or -1. */
int datefmt_parse_date(const char *s, int *y, int *m, int *d);

/* The instant at local time "YYYY-MM-DD HH:MM" (or "YYYY-MM-DDTHH:MM",
 * seconds optional) in IANA zone `zone`. Returns 0, or -1 when the text or
 * zone is not valid (why names which). */
int datefmt_parse_local(const char *s, const char *zone, time_t *out,
                        const char **why);

/* A calendar date in long form for locale (a language tag: "ru", "en-GB",
 * "de-AT"). Malloc'd. */
char *datefmt_date(int y, int m, int d, const char *locale, struct diag *dg);

/* An instant as date and time with the zone's name for locale, in IANA
 * zone `zone` ("6 May 2019 at 10:00:00 CEST" style, ICU's long date and
 * short time). Malloc'd. */
char *datefmt_datetime(time_t t, const char *locale, const char *zone,
                       struct diag *dg);

/* A moment given on a command line: "now", "+90s" / "+10m" / "+2h" /
 * "+1d" from now (the unit is required), "YYYY-MM-DDTHH:MM[:SS]Z" (UTC),
 * or "YYYY-MM-DD HH:MM[:SS] Area/City". Returns 0, or -1 with why. */
int datefmt_parse_when(const char *s, time_t now, time_t *out,
                       const char **why);

/* Is zone an IANA time zone ICU knows? */
bool datefmt_zone_valid(const char *zone);

#endif
