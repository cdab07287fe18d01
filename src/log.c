/*
 * log — heraldd's key=value log lines (see log.h). The daemon's modules
 * (deliver, recorder, poller, control) say what happened; this file says
 * how a line looks: the time first, one event a
 * line, the attempt line's keys in their documented order (heraldd(8)).
 */
#include "herald/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/diag.h"

const char *log_time(time_t t, char buf[LOG_TIME_SIZE])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, LOG_TIME_SIZE, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, LOG_TIME_SIZE, "1970-01-01T00:00:00Z");
	return buf;
}

void log_vline(FILE *f, const char *fmt, va_list ap)
{
	char when[LOG_TIME_SIZE];
	char *text = NULL, *safe;

	log_time(time(NULL), when);
	if (vasprintf(&text, fmt, ap) < 0) {
		/* out of memory: say that much rather than nothing */
		fprintf(f, "time=%s (a log line was lost: out of memory)\n",
		        when);
		fflush(f);
		return;
	}
	for (char *p = text; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	/* what outside text is left in the line cannot drive a terminal */
	safe = log_escape(text);
	fprintf(f, "time=%s %s\n", when,
	        safe ? safe : "(a log line was lost: out of memory)");
	fflush(f);
	free(safe);
	free(text);
}

void log_line(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(f, fmt, ap);
	va_end(ap);
}

void log_diag(FILE *f, struct diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct diag_entry *e = &d->v[i];
		if (e->file != NULL && e->line > 0)
			log_line(f, "%s:%u:%u: %s", e->file, e->line, e->col,
			         e->msg);
		else if (e->file != NULL)
			log_line(f, "%s: %s", e->file, e->msg);
		else
			log_line(f, "%s", e->msg);
	}
	diag_clear(d);
}

/* How many bytes of p (n left) make one character to escape: 1 for C0
 * and DEL, 2 for C1 in UTF-8 (C2 80..C2 9F), 0 for anything else. */
static size_t log_control_len(const unsigned char *p, size_t n)
{
	if (p[0] < 0x20 || p[0] == 0x7f)
		return 1;
	if (p[0] == 0xc2 && n > 1 && p[1] >= 0x80 && p[1] <= 0x9f)
		return 2;
	return 0;
}

size_t log_escape_to(char *dst, size_t cap, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)src;
	size_t out = 0, i = 0;

	while (i < n) {
		size_t k = log_control_len(p + i, n - i);
		if (k == 0) {
			if (out == cap)
				break;
			dst[out++] = (char)p[i++];
			continue;
		}
		if (cap - out < 4 * k)
			break;
		for (size_t j = 0; j < k; j++, i++) {
			dst[out++] = '\\';
			dst[out++] = 'x';
			dst[out++] = hex[p[i] >> 4];
			dst[out++] = hex[p[i] & 15];
		}
	}
	return out;
}

char *log_escape(const char *s)
{
	size_t n = s ? strlen(s) : 0, cap = 4 * n;
	char *q = malloc(cap + 1);

	if (q == NULL)
		return NULL;
	q[log_escape_to(q, cap, s ? s : "", n)] = '\0';
	return q;
}

char *log_quote(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *q = malloc(n + 1);

	if (q == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		q[i] = s[i] == '"' || (unsigned char)s[i] < 0x20 ||
		               (unsigned char)s[i] == 0x7f
		           ? ' '
		           : s[i];
	q[n] = '\0';
	return q;
}

/* A value that holds a space, a quote or a control character is quoted
 * (its quotes and controls as spaces), so the line still splits on the
 * spaces between keys. */
static bool log_needs_quotes(const char *s)
{
	if (*s == '\0')
		return true;
	for (; *s != '\0'; s++)
		if (*s == ' ' || *s == '"' || (unsigned char)*s < 0x20 ||
		    (unsigned char)*s == 0x7f)
			return true;
	return false;
}

char *log_attempt_line(const struct log_attempt *a)
{
	const char *relay = a->relay ? a->relay : "-";
	bool quote = log_needs_quotes(relay);
	char *qrelay = quote ? log_quote(relay) : NULL;
	char *qreason = log_quote(a->reason);
	char *qreply = log_quote(a->reply);
	char *line = NULL;

	if ((quote && qrelay == NULL) || qreason == NULL || qreply == NULL)
		goto done;
	if (asprintf(&line,
	             "release=%lld delivery=%lld to=<%s> relay=%s%s%s "
	             "attempt=%u code=%d status=%s result=%s delay=%.3fs%s%s "
	             "reason=\"%s\" reply=\"%s\"",
	             a->release, a->delivery, a->to ? a->to : "",
	             quote ? "\"" : "", quote ? qrelay : relay,
	             quote ? "\"" : "", a->attempt, a->code,
	             a->status && a->status[0] ? a->status : "-", a->result,
	             a->delay, a->queue_id ? " queue_id=" : "",
	             a->queue_id ? a->queue_id : "", qreason, qreply) < 0)
		line = NULL;
done:
	free(qrelay);
	free(qreason);
	free(qreply);
	return line;
}
