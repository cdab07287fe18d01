/*
 * tval — values for templates: a small tree of null, boolean, string, list
 * and map nodes (see include/herald/tval.h).
 *
 * The renderer looks names up in maps once per tag per recipient, so maps
 * keep each key's hash beside it, and a map that grows past a handful of
 * entries gets an open-addressing index so lookups stay cheap whatever its
 * size. The index is built as keys are set, never on lookup, so reading a
 * finished tree changes nothing in it.
 */
#include "herald/tval.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Tunables. */
enum {
	/* Below this many entries a linear scan over the stored hashes is as
	 * fast as an index and costs no memory. */
	TVAL_INDEX_MIN = 8,
	/* First allocation of a list or map: most maps in a release (a member,
	 * a spokesperson) have a few fields. */
	TVAL_FIRST_CAP = 4,
};

#define TVAL_NONE SIZE_MAX /* no such map entry */

struct tval_entry {
	char *key;
	uint32_t hash;
	struct tval *v;
};

/* A reference: a node that stands for a tree owned elsewhere (see
 * tval_ref). Not a kind callers see: every accessor looks through it. */
#define TVAL_REF ((enum tval_kind)0x7f)

struct tval {
	enum tval_kind kind;
	union {
		const struct tval *ref;
		bool b;
		struct {
			char *s;
			size_t len;
		} str;
		struct {
			struct tval **v;
			size_t n, cap;
		} list;
		struct {
			struct tval_entry *v;
			size_t n, cap;
			uint32_t *index; /* entry number + 1, 0 for free */
			size_t nindex;   /* a power of two, or 0 */
		} map;
	} u;
};

static struct tval *tval_new(enum tval_kind kind)
{
	struct tval *v = calloc(1, sizeof(*v));

	if (v != NULL)
		v->kind = kind;
	return v;
}

struct tval *tval_null(void)
{
	return tval_new(TVAL_NULL);
}

struct tval *tval_bool(bool b)
{
	struct tval *v = tval_new(TVAL_BOOL);

	if (v != NULL)
		v->u.b = b;
	return v;
}

struct tval *tval_strn(const char *s, size_t len)
{
	struct tval *v = NULL;

	if (s == NULL || len == SIZE_MAX)
		return NULL;
	v = tval_new(TVAL_STRING);
	if (v == NULL)
		goto fail;
	v->u.str.s = malloc(len + 1);
	if (v->u.str.s == NULL)
		goto fail;
	memcpy(v->u.str.s, s, len);
	v->u.str.s[len] = '\0';
	v->u.str.len = len;
	return v;
fail:
	free(v);
	return NULL;
}

struct tval *tval_str(const char *s)
{
	if (s == NULL)
		return NULL;
	return tval_strn(s, strlen(s));
}

struct tval *tval_list(void)
{
	return tval_new(TVAL_LIST);
}

struct tval *tval_map(void)
{
	return tval_new(TVAL_MAP);
}

/* The array items (n used of *cap, each size bytes) with room for one more:
 * items itself or a larger copy. NULL on out-of-memory, items untouched. */
static void *tval_grow(void *items, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *np;

	if (n < *cap)
		return items;
	ncap = *cap == 0 ? TVAL_FIRST_CAP : *cap * 2;
	if (ncap > SIZE_MAX / size)
		return NULL;
	np = realloc(items, ncap * size);
	if (np != NULL)
		*cap = ncap;
	return np;
}

int tval_push(struct tval *list, struct tval *v)
{
	struct tval **items;

	if (list == NULL || v == NULL || v == list || list->kind != TVAL_LIST)
		goto fail;
	items = tval_grow(list->u.list.v, &list->u.list.cap, list->u.list.n,
	                  sizeof(*items));
	if (items == NULL)
		goto fail;
	list->u.list.v = items;
	items[list->u.list.n++] = v;
	return 0;
fail:
	if (v != list)
		tval_free(v);
	return -1;
}

/* FNV-1a: short keys, no adversary worth a keyed hash (the keys come from
 * herald's own data files and templates). */
static uint32_t tval_hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key != '\0'; key++) {
		h ^= (unsigned char)*key;
		h *= 16777619u;
	}
	return h;
}

/* The entry number of key in map, or TVAL_NONE. */
static size_t tval_find(const struct tval *map, const char *key, uint32_t hash)
{
	size_t i, mask;

	if (map->u.map.nindex == 0) {
		for (i = 0; i < map->u.map.n; i++) {
			const struct tval_entry *e = &map->u.map.v[i];

			if (e->hash == hash && strcmp(e->key, key) == 0)
				return i;
		}
		return TVAL_NONE;
	}
	mask = map->u.map.nindex - 1;
	for (i = hash & mask;; i = (i + 1) & mask) {
		uint32_t slot = map->u.map.index[i];
		const struct tval_entry *e;

		if (slot == 0)
			return TVAL_NONE;
		e = &map->u.map.v[slot - 1];
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return slot - 1;
	}
}

/* Put entry number i into the index (which has room). */
static void tval_index_put(struct tval *map, size_t i)
{
	size_t mask = map->u.map.nindex - 1;
	size_t s;

	for (s = map->u.map.v[i].hash & mask; map->u.map.index[s] != 0;
	     s = (s + 1) & mask)
		;
	map->u.map.index[s] = (uint32_t)(i + 1);
}

/* Keep the index at most half full, once the map is big enough to want
 * one. Returns 0 or -1 on out-of-memory (the map stays usable). */
static int tval_index_fit(struct tval *map, size_t entries)
{
	size_t want = 16, i;
	uint32_t *index;

	if (entries < TVAL_INDEX_MIN || entries * 2 <= map->u.map.nindex)
		return 0;
	if (entries >= UINT32_MAX / 2)
		return -1;
	while (want < entries * 2)
		want *= 2;
	index = calloc(want, sizeof(*index));
	if (index == NULL)
		return -1;
	free(map->u.map.index);
	map->u.map.index = index;
	map->u.map.nindex = want;
	for (i = 0; i < map->u.map.n; i++)
		tval_index_put(map, i);
	return 0;
}

int tval_set(struct tval *map, const char *key, struct tval *v)
{
	struct tval_entry *e;
	uint32_t hash;
	size_t at;
	char *k = NULL;

	if (map == NULL || key == NULL || v == NULL || v == map ||
	    map->kind != TVAL_MAP)
		goto fail;
	hash = tval_hash(key);
	at = tval_find(map, key, hash);
	if (at != TVAL_NONE) {
		e = &map->u.map.v[at];
		tval_free(e->v);
		e->v = v;
		return 0;
	}
	k = strdup(key);
	if (k == NULL)
		goto fail;
	e = tval_grow(map->u.map.v, &map->u.map.cap, map->u.map.n, sizeof(*e));
	if (e == NULL)
		goto fail;
	map->u.map.v = e;
	if (tval_index_fit(map, map->u.map.n + 1) < 0)
		goto fail;
	e = &map->u.map.v[map->u.map.n];
	e->key = k;
	e->hash = hash;
	e->v = v;
	map->u.map.n++;
	if (map->u.map.nindex != 0)
		tval_index_put(map, map->u.map.n - 1);
	return 0;
fail:
	free(k);
	if (v != map)
		tval_free(v);
	return -1;
}

struct tval *tval_ref(const struct tval *target)
{
	struct tval *v;

	if (target == NULL)
		return NULL;
	v = tval_new(TVAL_REF);
	if (v != NULL)
		v->u.ref = target->kind == TVAL_REF ? target->u.ref : target;
	return v;
}

static const struct tval *tval_deref(const struct tval *v)
{
	return v != NULL && v->kind == TVAL_REF ? v->u.ref : v;
}

enum tval_kind tval_kind(const struct tval *v)
{
	v = tval_deref(v);
	return v == NULL ? TVAL_NULL : v->kind;
}

const char *tval_string(const struct tval *v)
{
	v = tval_deref(v);
	return v != NULL && v->kind == TVAL_STRING ? v->u.str.s : NULL;
}

bool tval_boolean(const struct tval *v)
{
	v = tval_deref(v);
	return v != NULL && v->kind == TVAL_BOOL && v->u.b;
}

size_t tval_len(const struct tval *v)
{
	v = tval_deref(v);
	if (v == NULL)
		return 0;
	switch (v->kind) {
	case TVAL_STRING:
		return v->u.str.len;
	case TVAL_LIST:
		return v->u.list.n;
	case TVAL_MAP:
		return v->u.map.n;
	default:
		return 0;
	}
}

const struct tval *tval_at(const struct tval *list, size_t i)
{
	list = tval_deref(list);
	if (list == NULL || list->kind != TVAL_LIST || i >= list->u.list.n)
		return NULL;
	return list->u.list.v[i];
}

const struct tval *tval_get(const struct tval *map, const char *key)
{
	size_t at;

	map = tval_deref(map);
	if (map == NULL || key == NULL || map->kind != TVAL_MAP)
		return NULL;
	at = tval_find(map, key, tval_hash(key));
	return at == TVAL_NONE ? NULL : map->u.map.v[at].v;
}

void tval_free(struct tval *v)
{
	size_t i;

	if (v == NULL)
		return;
	switch (v->kind) {
	case TVAL_STRING:
		free(v->u.str.s);
		break;
	case TVAL_LIST:
		for (i = 0; i < v->u.list.n; i++)
			tval_free(v->u.list.v[i]);
		free(v->u.list.v);
		break;
	case TVAL_MAP:
		for (i = 0; i < v->u.map.n; i++) {
			free(v->u.map.v[i].key);
			tval_free(v->u.map.v[i].v);
		}
		free(v->u.map.v);
		free(v->u.map.index);
		break;
	default:
		break;
	}
	free(v);
}
