/*
 * coalition — loads lists/coalition.yaml into typed data (see
 * coalition.h). Organisations are named once, by id, and referred to from
 * the member list and the report, so a name translated once is right
 * everywhere it appears.
 */
#include "herald/coalition.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "herald/field.h"
#include "herald/fsrc.h"
#include "herald/yaml_doc.h"

static const char *const coalition_keys[] = {
    "name",   "countries", "organisations", "members", "spokesperson",
    "report", NULL};
static const char *const coalition_org_keys[] = {"name", "countries", NULL};
static const char *const coalition_spokesperson_keys[] = {
    "name", "title", "email", "phone", NULL};
static const char *const coalition_report_keys[] = {
    "title", "url", "authors", "supported_by", "commissioned_by", NULL};

void coalition_free(struct coalition *c)
{
	if (c == NULL)
		return;
	i18n_text_free(&c->name);
	for (size_t i = 0; i < c->ncountries; i++) {
		free(c->countries[i].code);
		i18n_text_free(&c->countries[i].name);
	}
	free(c->countries);
	for (size_t i = 0; i < c->norgs; i++) {
		free(c->orgs[i].id);
		i18n_text_free(&c->orgs[i].name);
		free(c->orgs[i].countries);
	}
	free(c->orgs);
	free(c->members.v);
	i18n_text_free(&c->spokesperson.name);
	i18n_text_free(&c->spokesperson.title);
	free(c->spokesperson.email);
	free(c->spokesperson.phone);
	i18n_text_free(&c->report.title);
	free(c->report.url);
	free(c->report.authors.v);
	free(c->report.supported_by.v);
	free(c->report.commissioned_by.v);
	free(c->file);
	free(c);
}

/* A localized text field of mapping m; absent is an error. */
static void coalition_text(struct i18n_text *t, const struct ydoc_node *m,
                           const char *key, const char *what,
                           const struct i18n_policy *p, struct diag *d)
{
	const struct ydoc_node *n = field_get(m, key, true, d);

	if (n != NULL)
		i18n_text_read_shared(t, n, what, p, d);
}

static long coalition_country(const struct coalition *c, const char *code)
{
	for (size_t i = 0; i < c->ncountries; i++)
		if (strcmp(c->countries[i].code, code) == 0)
			return (long)i;
	return -1;
}

static long coalition_org(const struct coalition *c, const char *id)
{
	for (size_t i = 0; i < c->norgs; i++)
		if (strcmp(c->orgs[i].id, id) == 0)
			return (long)i;
	return -1;
}

static void coalition_countries(struct coalition *c, const struct ydoc_node *n,
                                const struct i18n_policy *p, struct diag *d)
{
	if (field_expect(n, YDOC_MAPPING, "countries", d) < 0)
		return;
	c->countries = calloc(n->npairs ? n->npairs : 1, sizeof(*c->countries));
	if (c->countries == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->npairs; i++) {
		const struct ydoc_node *k = n->pairs[i].key;
		struct coalition_country *cc = &c->countries[c->ncountries];
		bool ok = k->len == 2 && isupper((unsigned char)k->str[0]) &&
		          isupper((unsigned char)k->str[1]);
		if (!ok) {
			ydoc_error(d, k,
			           "country code \"%s\" is not an ISO 3166 "
			           "code of two capital letters (like US)",
			           k->str);
			continue;
		}
		if ((cc->code = field_dup(k, d)) == NULL)
			continue;
		c->ncountries++;
		i18n_text_read_shared(&cc->name, n->pairs[i].value,
		                      "country name", p, d);
	}
}

static void coalition_orgs_read(struct coalition *c, const struct ydoc_node *n,
                                const struct i18n_policy *p, struct diag *d)
{
	if (field_expect(n, YDOC_MAPPING, "organisations", d) < 0)
		return;
	c->orgs = calloc(n->npairs ? n->npairs : 1, sizeof(*c->orgs));
	if (c->orgs == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->npairs; i++) {
		const struct ydoc_node *k = n->pairs[i].key;
		const struct ydoc_node *v = n->pairs[i].value;
		const struct ydoc_node *cs;
		struct coalition_org *o = &c->orgs[c->norgs];

		if ((o->id = field_dup(k, d)) == NULL)
			continue;
		c->norgs++;
		if (field_expect(v, YDOC_MAPPING, "an organisation", d) < 0)
			continue;
		field_known_keys(v, coalition_org_keys, "an organisation", d);
		coalition_text(&o->name, v, "name", "organisation name", p, d);
		cs = field_get(v, "countries", true, d);
		if (cs == NULL ||
		    field_expect(cs, YDOC_SEQUENCE, "countries", d) < 0)
			continue;
		o->countries =
		    calloc(cs->nitems ? cs->nitems : 1, sizeof(*o->countries));
		if (o->countries == NULL) {
			ydoc_error(d, cs, "out of memory");
			continue;
		}
		for (size_t j = 0; j < cs->nitems; j++) {
			const struct ydoc_node *code = cs->items[j];
			long ci;
			if (field_expect(code, YDOC_SCALAR, "a country code",
			                 d) < 0)
				continue;
			ci = coalition_country(c, code->str);
			if (ci < 0) {
				ydoc_error(d, code,
				           "country \"%s\" is not in the "
				           "list's countries",
				           code->str);
				continue;
			}
			o->countries[o->ncountries++] = (size_t)ci;
		}
	}
}

/* A sequence of organisation ids into list l. */
static void coalition_refs(struct coalition_orgs *l, const struct coalition *c,
                           const struct ydoc_node *m, const char *key,
                           struct diag *d)
{
	const struct ydoc_node *n = field_get(m, key, true, d);

	if (n == NULL || field_expect(n, YDOC_SEQUENCE, key, d) < 0)
		return;
	l->v = calloc(n->nitems ? n->nitems : 1, sizeof(*l->v));
	if (l->v == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->nitems; i++) {
		const struct ydoc_node *id = n->items[i];
		long oi;
		if (field_expect(id, YDOC_SCALAR, "an organisation id", d) < 0)
			continue;
		oi = coalition_org(c, id->str);
		if (oi < 0) {
			ydoc_error(d, id,
			           "organisation \"%s\" is not in the list's "
			           "organisations",
			           id->str);
			continue;
		}
		for (size_t j = 0; j < l->n; j++)
			if (l->v[j] == (size_t)oi)
				ydoc_error(d, id,
				           "organisation \"%s\" is "
				           "listed twice in %s",
				           id->str, key);
		l->v[l->n++] = (size_t)oi;
	}
	if (n->nitems == 0)
		ydoc_error(d, n, "%s is empty", key);
}

static int coalition_phone_check(const struct ydoc_node *n, struct diag *d)
{
	size_t digits = 0;

	if (field_line_check(n, "phone", 40, d) < 0)
		return -1;
	for (size_t i = 0; i < n->len; i++) {
		unsigned char ch = (unsigned char)n->str[i];
		if (isdigit(ch))
			digits++;
		else if (!strchr(" +-().", ch) || (ch == '+' && i != 0)) {
			ydoc_error(d, n,
			           "phone \"%s\" may hold only digits, "
			           "spaces and + - ( ) . (like +1 202 555 "
			           "0100)",
			           n->str);
			return -1;
		}
	}
	if (digits < 5) {
		ydoc_error(d, n, "phone \"%s\" has too few digits", n->str);
		return -1;
	}
	return 0;
}

static int coalition_url_check(const struct ydoc_node *n, struct diag *d)
{
	if (field_line_check(n, "url", 2000, d) < 0)
		return -1;
	if (strncmp(n->str, "https://", 8) != 0 &&
	    strncmp(n->str, "http://", 7) != 0) {
		ydoc_error(d, n, "url \"%s\" must start with https://", n->str);
		return -1;
	}
	for (size_t i = 0; i < n->len; i++)
		if (n->str[i] == ' ' || n->str[i] == '<' || n->str[i] == '>' ||
		    n->str[i] == '"') {
			ydoc_error(d, n,
			           "url contains a space, quote or angle "
			           "bracket: write it percent-encoded");
			return -1;
		}
	return 0;
}

struct coalition *coalition_load(const struct fsrc *src, const char *path,
                                 const struct i18n_policy *p, struct diag *d)
{
	struct ydoc *doc = fsrc_yaml(src, path, NULL, d);
	struct coalition *c = NULL;
	const struct ydoc_node *r, *n, *sp, *rep;
	size_t errors = d->errors;

	if (doc == NULL)
		return NULL;
	r = doc->root;
	if (r == NULL) {
		diag_add(d, path, 0, 0, "the coalition list is empty");
		goto fail;
	}
	if (field_expect(r, YDOC_MAPPING, "the coalition list", d) < 0)
		goto fail;
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->file = strdup(path)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	field_known_keys(r, coalition_keys, "the coalition list", d);
	coalition_text(&c->name, r, "name", "coalition name", p, d);
	if ((n = field_get(r, "countries", true, d)) != NULL)
		coalition_countries(c, n, p, d);
	if ((n = field_get(r, "organisations", true, d)) != NULL)
		coalition_orgs_read(c, n, p, d);
	coalition_refs(&c->members, c, r, "members", d);

	sp = field_get(r, "spokesperson", true, d);
	if (sp != NULL &&
	    field_expect(sp, YDOC_MAPPING, "spokesperson", d) == 0) {
		field_known_keys(sp, coalition_spokesperson_keys,
		                 "spokesperson", d);
		coalition_text(&c->spokesperson.name, sp, "name",
		               "spokesperson name", p, d);
		coalition_text(&c->spokesperson.title, sp, "title",
		               "spokesperson title", p, d);
		if ((n = field_get(sp, "email", true, d)) != NULL &&
		    field_email_check(n, "spokesperson email", d) == 0)
			c->spokesperson.email = field_dup(n, d);
		if ((n = field_get(sp, "phone", true, d)) != NULL &&
		    coalition_phone_check(n, d) == 0)
			c->spokesperson.phone = field_dup(n, d);
	}

	rep = field_get(r, "report", true, d);
	if (rep != NULL && field_expect(rep, YDOC_MAPPING, "report", d) == 0) {
		field_known_keys(rep, coalition_report_keys, "report", d);
		coalition_text(&c->report.title, rep, "title", "report title",
		               p, d);
		if ((n = field_get(rep, "url", true, d)) != NULL &&
		    coalition_url_check(n, d) == 0)
			c->report.url = field_dup(n, d);
		coalition_refs(&c->report.authors, c, rep, "authors", d);
		coalition_refs(&c->report.supported_by, c, rep, "supported_by",
		               d);
		coalition_refs(&c->report.commissioned_by, c, rep,
		               "commissioned_by", d);
	}
	if (d->errors != errors)
		goto fail;
	ydoc_free(doc);
	return c;
fail:
	coalition_free(c);
	ydoc_free(doc);
	return NULL;
}
