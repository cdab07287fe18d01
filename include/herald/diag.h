/*
 * diag — the problems found in input, each with the place it was found.
 *
 * Loaders and validators append to a diag list instead of stopping at the
 * first problem, so `herald check` can report everything at once. A problem
 * is "file:line:column: message" (line and column 1-based; 0 when the
 * problem concerns the whole file or has no place).
 *
 * Memory: a diag owns copies of every string given to it. Allocation
 * failures inside diag_add are absorbed: the entry is dropped but the count
 * of errors still rises, so a failed check never reports itself clean.
 */
#ifndef HERALD_DIAG_H
#define HERALD_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum diag_level { DIAG_ERROR, DIAG_WARNING };

struct diag_entry {
	enum diag_level level;
	char *file;    /* NULL when the problem has no file */
	unsigned line; /* 1-based, 0 when unknown */
	unsigned col;  /* 1-based, 0 when unknown */
	char *msg;
};

struct diag {
	struct diag_entry *v;
	size_t n, cap;
	size_t errors; /* entries of level DIAG_ERROR, including dropped ones */
	size_t warnings;
	size_t max;  /* keep at most this many entries (0: 1000) */
	char *first; /* diag_first's result */
};

/* A diag needs no set-up beyond zeroing: struct diag d = {0}. */
void diag_init(struct diag *d);

/* Append an error / a warning; fmt is printf-style. */
void diag_add(struct diag *d, const char *file, unsigned line, unsigned col,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void diag_warn(struct diag *d, const char *file, unsigned line, unsigned col,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Append src's entries to dst, skipping any dst already has (same level,
 * place and message): rendering 10,000 recipients with one template
 * mistake reports it once. Returns how many were new. */
size_t diag_merge(struct diag *dst, const struct diag *src);

/* Print every entry as "file:line:col: error: msg" to f, in order. */
void diag_print(const struct diag *d, FILE *f);

/* The first entry formatted like diag_print, or "" when empty. Owned by d,
 * valid until the next call on d. */
const char *diag_first(struct diag *d);

/* Free every entry; d can be reused afterwards. */
void diag_clear(struct diag *d);

#endif
