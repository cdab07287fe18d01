/*
 * strset — a set of strings (open addressing, FNV-1a), for finding
 * repeats in lists of up to millions of addresses in linear time.
 * Strings are copied in. Library code: -1 on out of memory.
 */
#ifndef HERALD_STRSET_H
#define HERALD_STRSET_H

#include <stdbool.h>
#include <stddef.h>

struct strset;

struct strset *strset_new(void);
void strset_free(struct strset *s);

/* Add s; returns 1 when it was new, 0 when already present, -1 on out of
 * memory. */
int strset_add(struct strset *s, const char *str);
bool strset_has(const struct strset *s, const char *str);

#endif
