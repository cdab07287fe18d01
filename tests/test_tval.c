/*
 * tval tests: kinds and accessors, strings copied in, and container
 * ownership: what is put into a container is freed with it, also when
 * putting it in fails. The ownership tests prove themselves under the
 * AddressSanitizer build, which fails on any leak or double free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/tval.h"

static void test_scalars(void **state)
{
	char buf[] = "Ada";
	struct tval *s = tval_str(buf), *n = tval_null(), *t = tval_bool(true);
	struct tval *f = tval_bool(false), *e = tval_str("");
	struct tval *part = tval_strn("press release", 5);

	(void)state;
	buf[0] = 'X'; /* the string was copied */
	assert_int_equal(tval_kind(s), TVAL_STRING);
	assert_string_equal(tval_string(s), "Ada");
	assert_int_equal(tval_len(s), 3);
	assert_string_equal(tval_string(part), "press");
	assert_int_equal(tval_len(part), 5);
	assert_string_equal(tval_string(e), "");
	assert_int_equal(tval_kind(n), TVAL_NULL);
	assert_int_equal(tval_kind(NULL), TVAL_NULL);
	assert_true(tval_boolean(t));
	assert_false(tval_boolean(f));
	assert_false(tval_boolean(s)); /* not a bool */
	assert_null(tval_string(t));
	assert_null(tval_str(NULL));
	assert_int_equal(tval_len(t), 0);
	tval_free(s);
	tval_free(n);
	tval_free(t);
	tval_free(f);
	tval_free(e);
	tval_free(part);
	tval_free(NULL);
}

static void test_list(void **state)
{
	struct tval *l = tval_list();
	int i;

	(void)state;
	for (i = 0; i < 100; i++)
		assert_int_equal(tval_push(l, tval_bool(i % 2)), 0);
	assert_int_equal(tval_kind(l), TVAL_LIST);
	assert_int_equal(tval_len(l), 100);
	assert_true(tval_boolean(tval_at(l, 1)));
	assert_false(tval_boolean(tval_at(l, 98)));
	assert_null(tval_at(l, 100));
	assert_null(tval_get(l, "0"));
	tval_free(l);
}

static void test_map_set_replaces_and_frees(void **state)
{
	struct tval *m = tval_map();

	(void)state;
	assert_int_equal(tval_set(m, "name", tval_str("first")), 0);
	assert_int_equal(tval_set(m, "name", tval_str("second")), 0);
	assert_int_equal(tval_len(m), 1);
	assert_string_equal(tval_string(tval_get(m, "name")), "second");
	assert_null(tval_get(m, "nam"));
	assert_null(tval_get(m, "names"));
	assert_null(tval_at(m, 0));
	tval_free(m);
}

static void test_big_map_lookups(void **state)
{
	struct tval *m = tval_map();
	char key[32];
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "member%d", i);
		assert_int_equal(tval_set(m, key, tval_bool(i % 3 == 0)), 0);
	}
	/* Replacing in a large map keeps one entry per key. */
	assert_int_equal(tval_set(m, "member7", tval_str("seven")), 0);
	assert_int_equal(tval_len(m), 1000);
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "member%d", i);
		assert_non_null(tval_get(m, key));
	}
	assert_string_equal(tval_string(tval_get(m, "member7")), "seven");
	assert_true(tval_boolean(tval_get(m, "member999")));
	assert_null(tval_get(m, "member1000"));
	assert_null(tval_get(m, ""));
	tval_free(m);
}

/* A value handed to a container belongs to it even when the container
 * refuses it: each refused value here is freed by the call (ASan reports a
 * leak otherwise). */
static void test_failed_put_frees_the_value(void **state)
{
	struct tval *l = tval_list(), *m = tval_map(), *s = tval_str("x");

	(void)state;
	assert_int_equal(tval_push(m, tval_str("into a map")), -1);
	assert_int_equal(tval_set(l, "k", tval_str("into a list")), -1);
	assert_int_equal(tval_push(s, tval_null()), -1);
	assert_int_equal(tval_set(m, NULL, tval_str("no key")), -1);
	assert_int_equal(tval_push(NULL, tval_list()), -1);
	assert_int_equal(tval_push(l, NULL), -1);
	/* A container cannot hold itself; it is not freed by the refusal. */
	assert_int_equal(tval_push(l, l), -1);
	assert_int_equal(tval_set(m, "self", m), -1);
	assert_int_equal(tval_len(l), 0);
	assert_int_equal(tval_len(m), 0);
	tval_free(l);
	tval_free(m);
	tval_free(s);
}

static void test_nested_tree_freed_from_root(void **state)
{
	struct tval *root = tval_map(), *members = tval_list();
	int i;

	(void)state;
	for (i = 0; i < 13; i++) {
		struct tval *org = tval_map();

		assert_int_equal(tval_set(org, "name", tval_str("org")), 0);
		assert_int_equal(tval_set(org, "country", tval_null()), 0);
		assert_int_equal(tval_push(members, org), 0);
	}
	assert_int_equal(tval_set(root, "members", members), 0);
	assert_int_equal(tval_len(tval_get(root, "members")), 13);
	assert_string_equal(
	    tval_string(
	        tval_get(tval_at(tval_get(root, "members"), 12), "name")),
	    "org");
	tval_free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scalars),
	    cmocka_unit_test(test_list),
	    cmocka_unit_test(test_map_set_replaces_and_frees),
	    cmocka_unit_test(test_big_map_lookups),
	    cmocka_unit_test(test_failed_put_frees_the_value),
	    cmocka_unit_test(test_nested_tree_freed_from_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
