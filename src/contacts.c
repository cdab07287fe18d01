/*
 * contacts — loads and validates journalist lists (see contacts.h). The
 * checks are strict because every value here ends up in a mail header or
 * decides which language a journalist reads: a line break in a name, an
 * address without a domain or a language written "english" is refused
 * with the place it was found, before anything is sent.
 */
#include "herald/contacts.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/field.h"
#include "herald/i18n.h"
#include "herald/strset.h"
#include "herald/yaml_doc.h"

static const char *const contacts_top_keys[] = {"journalists", NULL};
static const char *const contacts_entry_keys[] = {
    "name", "email", "language", "outlet", "beat", "region", "timezone", NULL};

/* Free a journalist's strings and clear it. */
static void contacts_clear(struct journalist *j)
{
	free(j->name);
	free(j->email);
	free(j->language);
	free(j->outlet);
	free(j->beat);
	free(j->region);
	free(j->timezone);
	memset(j, 0, sizeof(*j));
}

void contacts_free(struct contacts *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		contacts_clear(&c->v[i]);
	free(c->v);
	free(c->file);
	free(c);
}

bool contacts_addr_equal(const char *a, const char *b)
{
	const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');

	if (at_a == NULL || at_b == NULL)
		return strcmp(a, b) == 0;
	if (at_a - a != at_b - b || memcmp(a, b, (size_t)(at_a - a)) != 0)
		return false;
	return strcasecmp(at_a, at_b) == 0;
}

char *contacts_addr_key(const char *email)
{
	char *k = strdup(email), *at;

	if (k == NULL)
		return NULL;
	at = strrchr(k, '@');
	for (char *p = at ? at : k + strlen(k); *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return k;
}

const struct journalist *contacts_find(const struct contacts *c,
                                       const char *email)
{
	for (size_t i = 0; i < c->n; i++)
		if (contacts_addr_equal(c->v[i].email, email))
			return &c->v[i];
	return NULL;
}

/* Copy an optional single-line field; -1 only on a bad value. */
static int contacts_text(const struct ydoc_node *entry, const char *key,
                         bool required, char **out, struct diag *d)
{
	const struct ydoc_node *n = field_get(entry, key, required, d);

	if (n == NULL)
		return required ? -1 : 0;
	if (!required && ydoc_is_null(n))
		return 0;
	if (field_line_check(n, key, 0, d) < 0)
		return -1;
	*out = field_dup(n, d);
	return *out == NULL ? -1 : 0;
}

/* Time zones found valid in this list: a list names a few zones many
 * times, and checking one costs a look in the zone database. Bounded: a
 * list of odd zones checks each entry's. */
#define CONTACTS_ZONES_KEPT 1000

static int contacts_entry(struct journalist *j, const struct ydoc_node *e,
                          struct strset *zones, size_t *nzones,
                          struct diag *d)
{
	const struct ydoc_node *n;
	size_t errors = d->errors;

	j->line = e->line;
	j->col = e->col;
	if (field_expect(e, YDOC_MAPPING, "a journalist", d) < 0)
		return -1;
	field_known_keys(e, contacts_entry_keys, "a journalist", d);
	contacts_text(e, "name", true, &j->name, d);
	if ((n = field_get(e, "email", true, d)) != NULL &&
	    field_email_check(n, "email", d) == 0)
		j->email = field_dup(n, d);
	if ((n = field_get(e, "language", true, d)) != NULL &&
	    field_line_check(n, "language", 35, d) == 0) {
		if (!i18n_tag_valid(n->str))
			ydoc_error(d, n,
			           "language \"%s\" is not a language tag "
			           "(like en, de, pt-BR)",
			           n->str);
		else
			j->language = field_dup(n, d);
	}
	contacts_text(e, "outlet", false, &j->outlet, d);
	contacts_text(e, "beat", false, &j->beat, d);
	contacts_text(e, "region", false, &j->region, d);
	if ((n = field_get(e, "timezone", false, d)) != NULL &&
	    !ydoc_is_null(n)) {
		bool known = zones != NULL && n->len == strlen(n->str) &&
		             strset_has(zones, n->str);
		if (known || field_timezone_check(n, "timezone", d) == 0) {
			j->timezone = field_dup(n, d);
			if (!known && zones != NULL &&
			    *nzones < CONTACTS_ZONES_KEPT &&
			    strset_add(zones, n->str) == 1)
				(*nzones)++;
		}
	}
	return d->errors == errors ? 0 : -1;
}

/* Sort order for finding duplicate addresses in O(n log n). */
static int contacts_addr_cmp(const void *pa, const void *pb, void *arg)
{
	const struct contacts *list = arg;
	const struct journalist *a = &list->v[*(const size_t *)pa];
	const struct journalist *b = &list->v[*(const size_t *)pb];
	const char *at_a = strrchr(a->email, '@'),
	           *at_b = strrchr(b->email, '@');
	size_t la = (size_t)(at_a - a->email), lb = (size_t)(at_b - b->email);
	int c = memcmp(a->email, b->email, la < lb ? la : lb);

	if (c == 0 && la != lb)
		c = la < lb ? -1 : 1;
	if (c == 0)
		c = strcasecmp(at_a, at_b);
	if (c == 0)
		c = *(const size_t *)pa < *(const size_t *)pb ? -1 : 1;
	return c;
}

static void contacts_warn_duplicates(const struct contacts *c, struct diag *d)
{
	size_t *idx = malloc((c->n ? c->n : 1) * sizeof(*idx));

	if (idx == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		idx[i] = i;
	qsort_r(idx, c->n, sizeof(*idx), contacts_addr_cmp, (void *)c);
	for (size_t i = 1; i < c->n; i++) {
		size_t first = i - 1;
		while (i < c->n && contacts_addr_equal(c->v[idx[first]].email,
		                                       c->v[idx[i]].email)) {
			const struct journalist *j = &c->v[idx[i]];
			diag_warn(d, c->file, j->line, j->col,
			          "%s is listed again (first at line %u); it "
			          "will be sent one message",
			          j->email, c->v[idx[first]].line);
			i++;
		}
	}
	free(idx);
}

/* A journalist list may be long; it is read one entry at a time, so the
 * file's size costs no memory. 512 MiB and two million entries are twice
 * the largest list herald is measured with (bench/queue.py: a million
 * journalists, 141 MB) and still bound a wrong file. max_nodes is for one
 * entry with the rest of the file: an entry is a dozen nodes. */
static const struct ydoc_limits contacts_limits = {
    .max_bytes = 512u << 20,
    .max_depth = 64,
    .max_nodes = 100000,
};
#define CONTACTS_MAX_ENTRIES 2000000

struct contacts_reader {
	struct ydoc_stream *s;
	char *file;
	struct journalist j; /* the entry last handed out */
	struct strset *zones;
	size_t nzones;
	bool done;
};

struct contacts_reader *contacts_open(const char *path, struct diag *d)
{
	struct contacts_reader *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->file = strdup(path)) == NULL ||
	    (r->zones = strset_new()) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		contacts_close(r);
		return NULL;
	}
	r->s = ydoc_stream_open(path, &contacts_limits, "journalists",
	                        CONTACTS_MAX_ENTRIES, d);
	if (r->s == NULL) {
		contacts_close(r);
		return NULL;
	}
	return r;
}

void contacts_close(struct contacts_reader *r)
{
	if (r == NULL)
		return;
	contacts_clear(&r->j);
	ydoc_stream_close(r->s);
	strset_free(r->zones);
	free(r->file);
	free(r);
}

/* The checks of the whole file, once its entries are read. */
static void contacts_finish(struct contacts_reader *r, struct diag *d)
{
	const struct ydoc *doc = ydoc_stream_doc(r->s);
	const struct ydoc_node *list;

	if (doc->root == NULL) {
		diag_add(d, r->file, 0, 0,
		         "the list is empty: expected \"journalists:\" and a "
		         "sequence of entries");
		return;
	}
	if (field_expect(doc->root, YDOC_MAPPING, "a journalist list", d) < 0)
		return;
	field_known_keys(doc->root, contacts_top_keys, "a journalist list", d);
	list = field_get(doc->root, "journalists", true, d);
	if (list == NULL ||
	    field_expect(list, YDOC_SEQUENCE, "journalists", d) < 0)
		return;
	if (ydoc_stream_items(r->s) == 0)
		ydoc_error(d, list, "the list has no journalists");
}

int contacts_next(struct contacts_reader *r, const struct journalist **j,
                  struct diag *d)
{
	struct ydoc_node *e;
	int rc;

	*j = NULL;
	for (;;) {
		size_t errors = d->errors;
		contacts_clear(&r->j);
		if (r->done)
			return 0;
		rc = ydoc_stream_next(r->s, &e);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			r->done = true;
			contacts_finish(r, d);
			return 0;
		}
		if (ydoc_stream_doc(r->s)->root->kind == YDOC_SEQUENCE) {
			/* entries without "journalists:": read to the end,
			 * where the shape is reported once */
			ydoc_node_free(e);
			continue;
		}
		r->j.file = r->file;
		rc = contacts_entry(&r->j, e, r->zones, &r->nzones, d);
		ydoc_node_free(e);
		if (rc == 0 && d->errors == errors) {
			*j = &r->j;
			return 1;
		}
	}
}

size_t contacts_entries(const struct contacts_reader *r)
{
	return ydoc_stream_items(r->s);
}

size_t contacts_bytes(const struct contacts_reader *r)
{
	return ydoc_stream_bytes(r->s);
}

size_t contacts_size(const struct contacts_reader *r)
{
	return ydoc_stream_size(r->s);
}

struct contacts *contacts_load(const char *path, struct diag *d)
{
	struct contacts_reader *r = contacts_open(path, d);
	struct contacts *c = NULL;
	const struct journalist *j;
	size_t errors = d->errors, cap = 0;
	int rc;

	if (r == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->file = strdup(path)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	while ((rc = contacts_next(r, &j, d)) == 1) {
		if (c->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct journalist *v =
			    realloc(c->v, ncap * sizeof(*c->v));
			if (v == NULL) {
				diag_add(d, path, 0, 0, "out of memory");
				goto fail;
			}
			c->v = v;
			cap = ncap;
		}
		/* the strings move from the reader to the list */
		c->v[c->n] = r->j;
		c->v[c->n].file = c->file;
		memset(&r->j, 0, sizeof(r->j));
		c->n++;
	}
	if (rc < 0 || d->errors != errors)
		goto fail;
	contacts_warn_duplicates(c, d);
	contacts_close(r);
	return c;
fail:
	contacts_free(c);
	contacts_close(r);
	return NULL;
}

/* ---- addresses seen across lists ---------------------------------------- */

/* Each address is a record in blocks that never move: where it was first
 * seen, then the key (contacts_addr_key's form) with its NUL. The table
 * holds record numbers (block << 20 | offset, plus one; 0 is empty). */
#define CONTACTS_SEEN_BLOCK (1u << 20)

struct contacts_seen_rec {
	uint32_t list, line;
	char key[];
};

struct contacts_seen {
	char **blocks;
	size_t nblocks, used; /* used: bytes of the last block */
	uint64_t *slots;
	size_t cap, n; /* cap: a power of two */
	char key[320]; /* the address being looked up, as a key */
};

struct contacts_seen *contacts_seen_new(void)
{
	struct contacts_seen *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cap = 1024;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	if (s->slots == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void contacts_seen_free(struct contacts_seen *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nblocks; i++)
		free(s->blocks[i]);
	free(s->blocks);
	free(s->slots);
	free(s);
}

static struct contacts_seen_rec *contacts_seen_rec(const struct contacts_seen *s,
                                                   uint64_t ref)
{
	ref--;
	return (struct contacts_seen_rec *)(s->blocks[ref >> 20] +
	                                    (ref & (CONTACTS_SEEN_BLOCK - 1)));
}

static uint64_t contacts_seen_hash(const char *k)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *k; k++) {
		h ^= (unsigned char)*k;
		h *= 1099511628211ULL;
	}
	return h;
}

static int contacts_seen_grow(struct contacts_seen *s)
{
	size_t ncap = s->cap * 2;
	uint64_t *nv = calloc(ncap, sizeof(*nv));

	if (nv == NULL)
		return -1;
	for (size_t i = 0; i < s->cap; i++) {
		size_t h;
		if (s->slots[i] == 0)
			continue;
		h = contacts_seen_hash(contacts_seen_rec(s, s->slots[i])->key) &
		    (ncap - 1);
		while (nv[h] != 0)
			h = (h + 1) & (ncap - 1);
		nv[h] = s->slots[i];
	}
	free(s->slots);
	s->slots = nv;
	s->cap = ncap;
	return 0;
}

int contacts_seen_add(struct contacts_seen *s, const struct journalist *j,
                      unsigned list, unsigned *list_first,
                      unsigned *line_first)
{
	size_t len = strlen(j->email), need, h;
	const char *at = strrchr(j->email, '@');
	struct contacts_seen_rec *rec;

	/* addresses are at most 254 bytes (field_email_check) */
	if (len >= sizeof(s->key))
		len = sizeof(s->key) - 1;
	memcpy(s->key, j->email, len);
	s->key[len] = '\0';
	for (char *p = s->key + (at ? (size_t)(at - j->email) : len); *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	h = contacts_seen_hash(s->key) & (s->cap - 1);
	while (s->slots[h] != 0) {
		rec = contacts_seen_rec(s, s->slots[h]);
		if (strcmp(rec->key, s->key) == 0) {
			*list_first = rec->list;
			*line_first = rec->line;
			return 0;
		}
		h = (h + 1) & (s->cap - 1);
	}
	need = (sizeof(*rec) + len + 1 + 7) & ~(size_t)7;
	if (s->nblocks == 0 || s->used + need > CONTACTS_SEEN_BLOCK) {
		char **nb = realloc(s->blocks, (s->nblocks + 1) * sizeof(*nb));
		if (nb == NULL)
			return -1;
		s->blocks = nb;
		if ((nb[s->nblocks] = malloc(CONTACTS_SEEN_BLOCK)) == NULL)
			return -1;
		s->nblocks++;
		s->used = 0;
	}
	rec = (struct contacts_seen_rec *)(s->blocks[s->nblocks - 1] + s->used);
	rec->list = list;
	rec->line = j->line;
	memcpy(rec->key, s->key, len + 1);
	s->slots[h] = ((uint64_t)(s->nblocks - 1) << 20 | s->used) + 1;
	s->used += need;
	s->n++;
	if (s->n * 10 > s->cap * 7 && contacts_seen_grow(s) < 0)
		return -1;
	return 1;
}
