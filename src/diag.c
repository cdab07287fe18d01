/*
 * diag — collects the problems found in input so that a check can report
 * all of them at once, each with its file:line:column. See diag.h.
 */
#include "herald/diag.h"
#include "herald/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Keep at most this many entries: a list of 100,000 journalists with the
 * same mistake should not print 100,000 lines; the counts stay exact. */
#define DIAG_DEFAULT_MAX 1000

void diag_init(struct diag *d)
{
	memset(d, 0, sizeof(*d));
}

__attribute__((format(printf, 6, 0))) static void
diag_vadd(struct diag *d, enum diag_level level, const char *file,
          unsigned line, unsigned col, const char *fmt, va_list ap)
{
	struct diag_entry *e;
	char *raw = NULL, *msg;
	size_t max = d->max ? d->max : DIAG_DEFAULT_MAX;

	if (level == DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->n >= max)
		return;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct diag_entry *v = realloc(d->v, cap * sizeof(*v));
		if (v == NULL)
			return;
		d->v = v;
		d->cap = cap;
	}
	if (vasprintf(&raw, fmt, ap) < 0)
		return;
	/* a diagnostic may quote what a server or a file said: no control
	 * character of it reaches a terminal or the log */
	msg = log_escape(raw);
	free(raw);
	if (msg == NULL)
		return;
	e = &d->v[d->n];
	e->level = level;
	e->file = NULL;
	if (file != NULL && (e->file = strdup(file)) == NULL) {
		free(msg);
		return;
	}
	e->line = line;
	e->col = col;
	e->msg = msg;
	d->n++;
}

void diag_add(struct diag *d, const char *file, unsigned line, unsigned col,
              const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, DIAG_ERROR, file, line, col, fmt, ap);
	va_end(ap);
}

void diag_warn(struct diag *d, const char *file, unsigned line, unsigned col,
               const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, DIAG_WARNING, file, line, col, fmt, ap);
	va_end(ap);
}

static bool diag_same(const struct diag_entry *a, const struct diag_entry *b)
{
	return a->level == b->level && a->line == b->line && a->col == b->col &&
	       strcmp(a->msg, b->msg) == 0 &&
	       (a->file == b->file ||
	        (a->file && b->file && strcmp(a->file, b->file) == 0));
}

size_t diag_merge(struct diag *dst, const struct diag *src)
{
	size_t added = 0;

	for (size_t i = 0; i < src->n; i++) {
		const struct diag_entry *e = &src->v[i];
		size_t k;
		for (k = 0; k < dst->n; k++)
			if (diag_same(&dst->v[k], e))
				break;
		if (k < dst->n)
			continue;
		if (e->level == DIAG_ERROR)
			diag_add(dst, e->file, e->line, e->col, "%s", e->msg);
		else
			diag_warn(dst, e->file, e->line, e->col, "%s", e->msg);
		added++;
	}
	/* entries src could not keep still make dst a failure */
	if (src->errors > 0 && dst->errors == 0)
		dst->errors = src->errors;
	return added;
}

static void diag_print_entry(const struct diag_entry *e, FILE *f)
{
	const char *what = e->level == DIAG_ERROR ? "error" : "warning";

	if (e->file != NULL && e->line > 0)
		fprintf(f, "%s:%u:%u: %s: %s\n", e->file, e->line,
		        e->col ? e->col : 1, what, e->msg);
	else if (e->file != NULL)
		fprintf(f, "%s: %s: %s\n", e->file, what, e->msg);
	else
		fprintf(f, "%s: %s\n", what, e->msg);
}

void diag_print(const struct diag *d, FILE *f)
{
	size_t shown = 0;

	for (size_t i = 0; i < d->n; i++) {
		diag_print_entry(&d->v[i], f);
		shown++;
	}
	if (shown < d->errors + d->warnings)
		fprintf(f, "(%zu more problems not shown)\n",
		        d->errors + d->warnings - shown);
}

const char *diag_first(struct diag *d)
{
	static const char empty[] = "";
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (d->n == 0)
		return empty;
	f = open_memstream(&buf, &len);
	if (f == NULL)
		return d->v[0].msg;
	diag_print_entry(&d->v[0], f);
	fclose(f);
	if (len > 0 && buf[len - 1] == '\n')
		buf[len - 1] = '\0';
	free(d->first);
	d->first = buf;
	return buf;
}

void diag_clear(struct diag *d)
{
	size_t max = d->max;

	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	free(d->first);
	memset(d, 0, sizeof(*d));
	d->max = max;
}
