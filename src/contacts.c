/*
 * contacts — loads and validates journalist lists (see contacts.h). The
 * checks are strict because every value here ends up in a mail header or
 * decides which language a journalist reads: a line break in a name, an
 * address without a domain or a language written "english" is refused
 * with the place it was found, before anything is sent.
 */
#include "herald/contacts.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/field.h"
#include "herald/i18n.h"
#include "herald/yaml_doc.h"

static const char *const contacts_top_keys[] = {"journalists", NULL};
static const char *const contacts_entry_keys[] = {
    "name", "email", "language", "outlet", "beat", "region", "timezone", NULL};

void contacts_free(struct contacts *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct journalist *j = &c->v[i];
		free(j->name);
		free(j->email);
		free(j->language);
		free(j->outlet);
		free(j->beat);
		free(j->region);
		free(j->timezone);
	}
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

static int contacts_entry(struct journalist *j, const struct ydoc_node *e,
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
	    !ydoc_is_null(n) && field_timezone_check(n, "timezone", d) == 0)
		j->timezone = field_dup(n, d);
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

/* A journalist list may be long: 64 MiB holds about half a million
 * entries, where the other files keep yaml_doc's 8 MiB. */
static const struct ydoc_limits contacts_limits = {
    .max_bytes = 64u << 20,
    .max_depth = 64,
    .max_nodes = 8000000,
};

struct contacts *contacts_load(const char *path, struct diag *d)
{
	struct ydoc *doc = ydoc_load_file(path, &contacts_limits, d);
	struct contacts *c = NULL;
	const struct ydoc_node *list;
	size_t errors = d->errors;

	if (doc == NULL)
		return NULL;
	if (doc->root == NULL) {
		diag_add(d, path, 0, 0,
		         "the list is empty: expected \"journalists:\" and a "
		         "sequence of entries");
		goto fail;
	}
	if (field_expect(doc->root, YDOC_MAPPING, "a journalist list", d) < 0)
		goto fail;
	field_known_keys(doc->root, contacts_top_keys, "a journalist list", d);
	list = field_get(doc->root, "journalists", true, d);
	if (list == NULL ||
	    field_expect(list, YDOC_SEQUENCE, "journalists", d) < 0)
		goto fail;
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->file = strdup(path)) == NULL ||
	    (c->v = calloc(list->nitems ? list->nitems : 1, sizeof(*c->v))) ==
	        NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < list->nitems; i++) {
		c->v[i].file = c->file;
		contacts_entry(&c->v[i], list->items[i], d);
		c->n++;
	}
	if (list->nitems == 0)
		ydoc_error(d, list, "the list has no journalists");
	if (d->errors != errors)
		goto fail;
	contacts_warn_duplicates(c, d);
	ydoc_free(doc);
	return c;
fail:
	contacts_free(c);
	ydoc_free(doc);
	return NULL;
}
