/*
 * i18n — which of a release's language variants a recipient gets, and the
 * per-language text values read from lists and releases.
 *
 * A recipient's language tag (pt-BR, de-AT, crh) is matched to a variant:
 * the exact tag, then its base language, then the release's fallback chain
 * for the tag or its base language, then the release's default. The chain
 * is per release because the right fallback is not always linguistic: a
 * Crimean Tatar journalist may read Ukrainian, a Belarusian one English.
 *
 * Library code: returns 0 / -1 and reports through struct diag.
 */
#ifndef HERALD_I18N_H
#define HERALD_I18N_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"
#include "herald/yaml_doc.h"

/* One fallback rule: a tag or base language, and the offered languages to
 * try, in order. */
struct i18n_fallback {
	char *tag;
	char **langs;
	size_t nlangs;
};

struct i18n_policy {
	char **langs; /* the offered languages, in release order */
	size_t nlangs;
	size_t default_lang; /* index into langs */
	struct i18n_fallback *fallback;
	size_t nfallback;
};

enum i18n_how {
	I18N_EXACT,    /* the tag itself is offered */
	I18N_BASE,     /* its base language is offered (de-AT -> de) */
	I18N_FALLBACK, /* through the release's fallback chain */
	I18N_DEFAULT,  /* nothing matched: the release's default */
};

struct i18n_choice {
	size_t lang; /* index into policy->langs */
	enum i18n_how how;
	const char *via; /* I18N_FALLBACK: the rule's tag */
};

/* Is tag a well-formed language tag herald accepts (language, optional
 * script, optional region: "en", "pt-BR", "sr-Latn-RS", "es-419")? */
bool i18n_tag_valid(const char *tag);

/* Case-insensitive comparison of language tags (BCP 47 tags are). */
bool i18n_tag_equal(const char *a, const char *b);

/* Index of tag among the offered languages, or -1. */
long i18n_find(const struct i18n_policy *p, const char *tag);

/* Choose the variant for a recipient's tag. Never fails: the default is
 * the last resort. */
struct i18n_choice i18n_choose(const struct i18n_policy *p, const char *tag);

/* A person-readable account of a choice: "pt-BR → en (default: no variant
 * for pt-BR or pt)". Malloc'd; NULL on out-of-memory. */
char *i18n_describe(const struct i18n_policy *p, const char *tag,
                    struct i18n_choice c);

void i18n_policy_free(struct i18n_policy *p);

/*
 * A text with one value per offered language (index as in policy->langs).
 * In YAML it is either one scalar, the same in every language, or a mapping
 * from language to text that covers every offered language.
 */
struct i18n_text {
	char **v;
	size_t n;
};

/* Read a localized text from node n (the value of field `what`, named in
 * errors). Each value must be a single line (field_line rules). Adds every
 * problem to d and returns -1 on any. */
int i18n_text_read(struct i18n_text *t, const struct ydoc_node *n,
                   const char *what, const struct i18n_policy *p,
                   struct diag *d);

/* The same for lists that several releases share (the coalition list):
 * texts for languages this release does not offer are allowed (they must
 * be language tags) and skipped. */
int i18n_text_read_shared(struct i18n_text *t, const struct ydoc_node *n,
                          const char *what, const struct i18n_policy *p,
                          struct diag *d);

void i18n_text_free(struct i18n_text *t);

#endif
