/*
 * log — heraldd's log lines: one line per event, key=value, greppable,
 * with stable keys. Every line starts with the time it was written,
 * `time=2026-12-07T21:15:14Z` (ISO 8601, UTC, whole seconds), and has no
 * other prefix: under systemd, journald adds its own. Times inside a line
 * are written the same way, never as seconds since the epoch.
 *
 * A delivery attempt's line (log_attempt_line) is made when the relay
 * answers and written (log_line) only once the attempt is committed to the
 * store, so the line is formatted here and timed when it is written.
 *
 * Daemon code: writing a line never fails the caller (a log that cannot
 * be written is no reason to stop delivering); the functions that return
 * memory return NULL when out of memory.
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* "2026-12-07T21:15:14Z" and its NUL. */
enum { LOG_TIME_SIZE = 21 };

/* t as "2026-12-07T21:15:14Z" into buf; returns buf. */
const char *log_time(time_t t, char buf[LOG_TIME_SIZE]);

/* Write "time=NOW " and the formatted text as one line to f, and flush. A
 * line is written in one piece, so lines from several writers do not mix.
 * CR and LF in the text become spaces: one event, one line; other control
 * characters are escaped (log_escape). */
void log_line(FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vline(FILE *f, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Every problem of d as its own line (log_line): "file:line:col: msg",
 * "file: msg" or "msg", as each has a place; d is cleared after. How
 * every daemon module reports a failure its caller does not return. */
struct diag;
void log_diag(FILE *f, struct diag *d);

/* s (NULL: "") as text for a quoted value (key="..."): on one line, with
 * CR, LF, other control characters and double quotes as spaces.
 * malloc'd; NULL when out of memory. */
char *log_quote(const char *s);

/* Text from outside (a bounce's diagnostic or From address, an IMAP
 * server's words, an SMTP reply) as it may meet a terminal or the log:
 * every control character (C0, DEL, and C1 written as UTF-8 U+0080 to
 * U+009F) as \xHH, one escape per byte, so no escape sequence, bell,
 * carriage return or NUL reaches the reader; everything else unchanged.
 * The one function for it: the CLI, heraldd's log, diagnostics and the
 * SMTP transport's reply capture all use it.
 *
 * log_escape_to: the n bytes at src (NULs included) escaped into dst, at
 * most cap bytes and whole escapes only, no NUL added; returns the bytes
 * written. log_escape: s (NULL: "") escaped, malloc'd; NULL when out of
 * memory. */
size_t log_escape_to(char *dst, size_t cap, const char *src, size_t n);
char *log_escape(const char *s);

/* One delivery attempt, as its log line has it. */
struct log_attempt {
	long long release, delivery;
	const char *to;       /* the recipient's address */
	const char *relay;    /* the relay's URL (never a password) */
	unsigned attempt;     /* 1-based */
	int code;             /* the reply code, 0: none */
	const char *status;   /* enhanced status, or NULL */
	const char *result;   /* sent, deferred, failed, expired,
	                       * relay-deferred */
	double delay;         /* seconds from claim to answer */
	const char *queue_id; /* the relay's queue id, or NULL */
	const char *reason;   /* herald's decision, a few words */
	const char *reply;    /* the relay's reply or what failed, or NULL */
};

/* The attempt's line, without the time (log_line adds it when the line is
 * written): release= delivery= to=<> relay= attempt= code= status=
 * result= delay= [queue_id=] reason="" reply="", in that order. A relay
 * URL with a space or a quote is quoted. malloc'd; NULL when out of
 * memory. */
char *log_attempt_line(const struct log_attempt *a);

#endif
