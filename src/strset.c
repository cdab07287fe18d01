/*
 * strset — a string set with open addressing and linear probing (see
 * strset.h). Grows at 70% load so probes stay short.
 */
#include "herald/strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strset {
	char **slots;
	size_t cap, n; /* cap: a power of two */
};

static uint64_t strset_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct strset *strset_new(void)
{
	struct strset *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cap = 64;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	if (s->slots == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void strset_free(struct strset *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	free(s);
}

static size_t strset_find(char **slots, size_t cap, const char *str)
{
	size_t i = (size_t)strset_hash(str) & (cap - 1);

	while (slots[i] != NULL && strcmp(slots[i], str) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

static int strset_grow(struct strset *s)
{
	size_t cap = s->cap * 2;
	char **slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i] != NULL)
			slots[strset_find(slots, cap, s->slots[i])] =
			    s->slots[i];
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return 0;
}

int strset_add(struct strset *s, const char *str)
{
	size_t i;

	if ((s->n + 1) * 10 > s->cap * 7 && strset_grow(s) < 0)
		return -1;
	i = strset_find(s->slots, s->cap, str);
	if (s->slots[i] != NULL)
		return 0;
	s->slots[i] = strdup(str);
	if (s->slots[i] == NULL)
		return -1;
	s->n++;
	return 1;
}

bool strset_has(const struct strset *s, const char *str)
{
	return s->slots[strset_find(s->slots, s->cap, str)] != NULL;
}
