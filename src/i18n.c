/*
 * i18n — chooses a recipient's language variant and reads per-language
 * texts (see i18n.h). The order of the choice is the one readers expect:
 * their own tag, their base language, what the release's editors chose as
 * fallback, and only then the default.
 */
#include "herald/i18n.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/field.h"

static size_t i18n_alpha(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && isalpha((unsigned char)s[i]))
		i++;
	return i;
}

bool i18n_tag_valid(const char *tag)
{
	const char *p = tag;
	size_t n, part = 0;

	/* language: 2-3 letters */
	n = strcspn(p, "-");
	if (n < 2 || n > 3 || i18n_alpha(p, n) != n)
		return false;
	p += n;
	while (*p == '-') {
		p++;
		n = strcspn(p, "-");
		part++;
		if (part == 1 && n == 4 && i18n_alpha(p, n) == 4) {
			/* script, as in sr-Latn */
		} else if (part <= 2 && n == 2 && i18n_alpha(p, n) == 2) {
			/* region, as in pt-BR */
			part = 2;
		} else if (part <= 2 && n == 3 &&
		           isdigit((unsigned char)p[0]) &&
		           isdigit((unsigned char)p[1]) &&
		           isdigit((unsigned char)p[2])) {
			/* UN M.49 region, as in es-419 */
			part = 2;
		} else {
			return false;
		}
		p += n;
	}
	return *p == '\0';
}

bool i18n_tag_equal(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

long i18n_find(const struct i18n_policy *p, const char *tag)
{
	for (size_t i = 0; i < p->nlangs; i++)
		if (i18n_tag_equal(p->langs[i], tag))
			return (long)i;
	return -1;
}

static const struct i18n_fallback *i18n_rule(const struct i18n_policy *p,
                                             const char *tag)
{
	for (size_t i = 0; i < p->nfallback; i++)
		if (i18n_tag_equal(p->fallback[i].tag, tag))
			return &p->fallback[i];
	return NULL;
}

struct i18n_choice i18n_choose(const struct i18n_policy *p, const char *tag)
{
	struct i18n_choice c = {.lang = p->default_lang, .how = I18N_DEFAULT};
	char base[4] = "";
	size_t blen = strcspn(tag, "-");
	const struct i18n_fallback *rule;
	long i;

	if ((i = i18n_find(p, tag)) >= 0) {
		c.lang = (size_t)i;
		c.how = I18N_EXACT;
		return c;
	}
	if (blen >= 2 && blen <= 3 && tag[blen] == '-') {
		memcpy(base, tag, blen);
		base[blen] = '\0';
		if ((i = i18n_find(p, base)) >= 0) {
			c.lang = (size_t)i;
			c.how = I18N_BASE;
			return c;
		}
	}
	rule = i18n_rule(p, tag);
	if (rule == NULL && base[0] != '\0')
		rule = i18n_rule(p, base);
	if (rule != NULL)
		for (size_t k = 0; k < rule->nlangs; k++)
			if ((i = i18n_find(p, rule->langs[k])) >= 0) {
				c.lang = (size_t)i;
				c.how = I18N_FALLBACK;
				c.via = rule->tag;
				return c;
			}
	return c;
}

char *i18n_describe(const struct i18n_policy *p, const char *tag,
                    struct i18n_choice c)
{
	char *s = NULL;
	const char *lang = p->langs[c.lang];
	int r = -1;

	switch (c.how) {
	case I18N_EXACT:
		r = asprintf(&s, "%s", lang);
		break;
	case I18N_BASE:
		r = asprintf(&s, "%s -> %s (base language)", tag, lang);
		break;
	case I18N_FALLBACK:
		r = asprintf(&s, "%s -> %s (fallback chain for %s)", tag, lang,
		             c.via);
		break;
	case I18N_DEFAULT:
		r = asprintf(&s, "%s -> %s (default: no variant for %s)", tag,
		             lang, tag);
		break;
	}
	return r < 0 ? NULL : s;
}

void i18n_policy_free(struct i18n_policy *p)
{
	for (size_t i = 0; i < p->nlangs; i++)
		free(p->langs[i]);
	free(p->langs);
	for (size_t i = 0; i < p->nfallback; i++) {
		free(p->fallback[i].tag);
		for (size_t k = 0; k < p->fallback[i].nlangs; k++)
			free(p->fallback[i].langs[k]);
		free(p->fallback[i].langs);
	}
	free(p->fallback);
	memset(p, 0, sizeof(*p));
}

void i18n_text_free(struct i18n_text *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

static int i18n_text_parse(struct i18n_text *t, const struct ydoc_node *n,
                           const char *what, const struct i18n_policy *p,
                           bool shared, struct diag *d)
{
	size_t errors = d->errors;

	t->n = p->nlangs;
	t->v = calloc(p->nlangs ? p->nlangs : 1, sizeof(*t->v));
	if (t->v == NULL) {
		ydoc_error(d, n, "out of memory");
		t->n = 0;
		return -1;
	}
	if (n->kind == YDOC_SCALAR) {
		if (field_line_check(n, what, 0, d) < 0)
			goto fail;
		for (size_t i = 0; i < p->nlangs; i++)
			if ((t->v[i] = strdup(n->str)) == NULL)
				goto oom;
		return 0;
	}
	if (n->kind != YDOC_MAPPING) {
		ydoc_error(d, n,
		           "%s must be a text, or a mapping from language to "
		           "text, not a %s",
		           what, ydoc_kind_name(n->kind));
		goto fail;
	}
	for (size_t k = 0; k < n->npairs; k++) {
		const struct ydoc_node *key = n->pairs[k].key;
		const struct ydoc_node *val = n->pairs[k].value;
		long i = i18n_find(p, key->str);
		char *sub = NULL;

		if (i < 0 && shared && i18n_tag_valid(key->str))
			continue; /* a language another release offers */
		if (i < 0) {
			ydoc_error(d, key,
			           shared ? "%s: \"%s\" is not a language tag"
			                  : "%s: \"%s\" is not one of the "
			                    "release's languages",
			           what, key->str);
			continue;
		}
		if (asprintf(&sub, "%s (%s)", what, p->langs[i]) < 0)
			goto oom;
		if (field_line_check(val, sub, 0, d) == 0 &&
		    (t->v[i] = strdup(val->str)) == NULL) {
			free(sub);
			goto oom;
		}
		free(sub);
	}
	if (d->errors == errors)
		for (size_t i = 0; i < p->nlangs; i++)
			if (t->v[i] == NULL)
				ydoc_error(d, n,
				           "%s has no text for language \"%s\"",
				           what, p->langs[i]);
	if (d->errors != errors)
		goto fail;
	return 0;
oom:
	ydoc_error(d, n, "out of memory");
fail:
	i18n_text_free(t);
	return -1;
}

int i18n_text_read(struct i18n_text *t, const struct ydoc_node *n,
                   const char *what, const struct i18n_policy *p,
                   struct diag *d)
{
	return i18n_text_parse(t, n, what, p, false, d);
}

int i18n_text_read_shared(struct i18n_text *t, const struct ydoc_node *n,
                          const char *what, const struct i18n_policy *p,
                          struct diag *d)
{
	return i18n_text_parse(t, n, what, p, true, d);
}
