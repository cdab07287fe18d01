/*
 * i18n tests: the order of the language choice (exact tag, base language,
 * the release's fallback chain, default), tag syntax, and localized texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/i18n.h"

static char *langs[] = {"en", "ru", "uk", "de", "pt-BR"};
static char *chain_crh[] = {"tt", "uk", "ru"}; /* tt is not offered */
static char *chain_be[] = {"en"};
static char *chain_pt[] = {"de"};
static struct i18n_fallback rules[] = {
    {"crh", chain_crh, 3},
    {"be", chain_be, 1},
    {"pt", chain_pt, 1},
};
static const struct i18n_policy policy = {
    .langs = langs,
    .nlangs = 5,
    .default_lang = 0,
    .fallback = rules,
    .nfallback = 3,
};

static void expect(const char *tag, const char *lang, enum i18n_how how)
{
	struct i18n_choice c = i18n_choose(&policy, tag);

	if (strcmp(langs[c.lang], lang) != 0 || c.how != how)
		fail_msg("%s: got %s (how %d), expected %s (how %d)", tag,
		         langs[c.lang], c.how, lang, how);
}

static void test_choice_order(void **state)
{
	(void)state;
	expect("ru", "ru", I18N_EXACT);
	expect("RU", "ru", I18N_EXACT); /* tags are case-insensitive */
	expect("pt-br", "pt-BR", I18N_EXACT);
	expect("de-AT", "de", I18N_BASE);
	expect("uk-UA", "uk", I18N_BASE);
	expect("crh", "uk", I18N_FALLBACK);    /* tt skipped: not offered */
	expect("crh-UA", "uk", I18N_FALLBACK); /* rule for the base */
	expect("be", "en", I18N_FALLBACK);     /* not linguistic, on purpose */
	expect("pt-PT", "de", I18N_FALLBACK);  /* pt-BR is not pt's base */
	expect("fr", "en", I18N_DEFAULT);
	expect("sr-Latn-RS", "en", I18N_DEFAULT);
}

static void test_describe(void **state)
{
	char *s;

	(void)state;
	s = i18n_describe(&policy, "crh", i18n_choose(&policy, "crh"));
	assert_string_equal(s, "crh -> uk (fallback chain for crh)");
	free(s);
	s = i18n_describe(&policy, "fr", i18n_choose(&policy, "fr"));
	assert_string_equal(s, "fr -> en (default: no variant for fr)");
	free(s);
	s = i18n_describe(&policy, "de-AT", i18n_choose(&policy, "de-AT"));
	assert_string_equal(s, "de-AT -> de (base language)");
	free(s);
}

static void test_tag_syntax(void **state)
{
	static const char *good[] = {"en",        "pt-BR",      "es-419",
	                             "sr-Latn",   "sr-Latn-RS", "crh",
	                             "zh-Hant-TW"};
	static const char *bad[] = {
	    "",        "e",     "english", "en_US",        "en-",  "-en",
	    "en-US-x", "en US", "12",      "en-Latn-Latn", "en-U1"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		if (!i18n_tag_valid(good[i]))
			fail_msg("%s should be valid", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (i18n_tag_valid(bad[i]))
			fail_msg("\"%s\" should be invalid", bad[i]);
}

static void test_localized_text(void **state)
{
	struct diag d = {0};
	struct i18n_text t = {0};
	struct ydoc *doc = ydoc_load_mem(
	    "t.yaml",
	    "one: Same Everywhere\n"
	    "all: {en: E, ru: Р, uk: У, de: D, pt-BR: P}\n"
	    "missing: {en: E, ru: Р}\n"
	    "extra: {en: E, ru: Р, uk: У, de: D, pt-BR: P, fr: F}\n"
	    "list: [a]\n",
	    strlen("one: Same Everywhere\n"
	           "all: {en: E, ru: Р, uk: У, de: D, pt-BR: P}\n"
	           "missing: {en: E, ru: Р}\n"
	           "extra: {en: E, ru: Р, uk: У, de: D, pt-BR: P, fr: F}\n"
	           "list: [a]\n"),
	    NULL, &d);

	(void)state;
	assert_non_null(doc);
	assert_int_equal(
	    i18n_text_read(&t, ydoc_get(doc->root, "one"), "x", &policy, &d),
	    0);
	assert_string_equal(t.v[4], "Same Everywhere");
	i18n_text_free(&t);
	assert_int_equal(
	    i18n_text_read(&t, ydoc_get(doc->root, "all"), "x", &policy, &d),
	    0);
	assert_string_equal(t.v[1], "Р");
	assert_string_equal(t.v[4], "P");
	i18n_text_free(&t);
	assert_int_equal(d.errors, 0);

	/* every missing language is named, at the mapping */
	assert_int_equal(i18n_text_read(&t, ydoc_get(doc->root, "missing"),
	                                "subject", &policy, &d),
	                 -1);
	assert_int_equal(d.errors, 3);
	assert_string_equal(d.v[0].msg,
	                    "subject has no text for language \"uk\"");
	assert_int_equal(d.v[0].line, 3);
	assert_int_equal(d.v[0].col, 10);
	assert_string_equal(d.v[2].msg,
	                    "subject has no text for language \"pt-BR\"");
	assert_null(t.v);
	diag_clear(&d);

	/* a language the release does not offer, at its key */
	assert_int_equal(i18n_text_read(&t, ydoc_get(doc->root, "extra"),
	                                "subject", &policy, &d),
	                 -1);
	assert_int_equal(d.errors, 1);
	assert_int_equal(d.v[0].line, 4);
	assert_int_equal(d.v[0].col, 47);
	assert_string_equal(d.v[0].msg, "subject: \"fr\" is not one of the "
	                                "release's languages");
	diag_clear(&d);

	assert_int_equal(i18n_text_read(&t, ydoc_get(doc->root, "list"),
	                                "subject", &policy, &d),
	                 -1);
	assert_non_null(strstr(d.v[0].msg, "not a sequence"));
	diag_clear(&d);
	ydoc_free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_choice_order),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_tag_syntax),
	    cmocka_unit_test(test_localized_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
