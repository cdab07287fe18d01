/*
 * yaml_doc tests: positions, scalars as written, every limit, and the
 * bad-input files in tests/data/yaml (each names the error it must give in
 * its first line: "# expect: LINE:COL: message" or "# expect: ok").
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "herald/yaml_doc.h"

#define DATA_DIR HERALD_SOURCE_DIR "/tests/data/yaml"

static struct ydoc *load(const char *text, const struct ydoc_limits *lim,
                         struct diag *d)
{
	return ydoc_load_mem("t.yaml", text, strlen(text), lim, d);
}

static void test_positions_and_scalars(void **state)
{
	struct diag d = {0};
	struct ydoc *doc = load("name: herald\n"
	                        "version: 2.10\n"
	                        "list:\n"
	                        "  - \"true\"\n"
	                        "  - true\n"
	                        "empty:\n",
	                        NULL, &d);
	const struct ydoc_node *v, *l;
	bool b = false;

	(void)state;
	assert_non_null(doc);
	assert_int_equal(d.errors, 0);
	assert_int_equal(doc->root->kind, YDOC_MAPPING);
	assert_int_equal(doc->root->line, 1);
	assert_int_equal(doc->root->col, 1);
	v = ydoc_get(doc->root, "version");
	assert_non_null(v);
	assert_string_equal(v->str, "2.10");
	assert_int_equal(v->line, 2);
	assert_int_equal(v->col, 10);
	assert_string_equal(v->file, "t.yaml");
	l = ydoc_get(doc->root, "list");
	assert_int_equal(l->kind, YDOC_SEQUENCE);
	assert_int_equal(l->nitems, 2);
	assert_int_equal(l->items[0]->line, 4);
	assert_int_equal(l->items[0]->col, 5);
	assert_true(l->items[0]->quoted);
	assert_int_equal(ydoc_bool(l->items[0], &b), -1);
	assert_int_equal(ydoc_bool(l->items[1], &b), 0);
	assert_true(b);
	assert_true(ydoc_is_null(ydoc_get(doc->root, "empty")));
	assert_false(ydoc_is_null(ydoc_get(doc->root, "name")));
	assert_null(ydoc_get(doc->root, "missing"));
	assert_null(ydoc_get(v, "x"));
	ydoc_free(doc);
	diag_clear(&d);
}

static void test_utf8_columns_count_characters(void **state)
{
	struct diag d = {0};
	/* "Москва" is 6 characters, 12 bytes */
	struct ydoc *doc = load("Москва: [a, b]\n", NULL, &d);
	const struct ydoc_node *v;

	(void)state;
	assert_non_null(doc);
	v = ydoc_get(doc->root, "Москва");
	assert_non_null(v);
	assert_int_equal(v->col, 9);
	assert_int_equal(v->items[1]->col, 13);
	ydoc_free(doc);
	diag_clear(&d);
}

static void test_nul_in_double_quoted_kept_with_length(void **state)
{
	struct diag d = {0};
	struct ydoc *doc = load("name: \"a\\0b\"\n", NULL, &d);
	const struct ydoc_node *v;

	(void)state;
	assert_non_null(doc);
	v = ydoc_get(doc->root, "name");
	assert_int_equal(v->len, 3);
	assert_int_equal(v->str[1], '\0');
	ydoc_free(doc);
	diag_clear(&d);
}

static char *nested(unsigned depth)
{
	char *s = malloc(2 * (size_t)depth + 2);

	assert_non_null(s);
	for (unsigned i = 0; i < depth; i++) {
		s[i] = '[';
		s[depth + i] = ']';
	}
	s[2 * depth] = '\n';
	s[2 * depth + 1] = '\0';
	return s;
}

static void test_depth_limit(void **state)
{
	struct diag d = {0};
	char *ok = nested(64), *deep = nested(65), *hostile = nested(10000);
	struct ydoc *doc;

	(void)state;
	doc = load(ok, NULL, &d);
	assert_non_null(doc);
	ydoc_free(doc);
	assert_null(load(deep, NULL, &d));
	assert_int_equal(d.errors, 1);
	assert_int_equal(d.v[0].line, 1);
	assert_int_equal(d.v[0].col, 65);
	assert_non_null(strstr(d.v[0].msg, "nesting deeper than 64 levels"));
	diag_clear(&d);
	/* 10,000 levels stop at the 65th, whatever follows */
	assert_null(load(hostile, NULL, &d));
	assert_int_equal(d.v[0].col, 65);
	diag_clear(&d);
	free(ok);
	free(deep);
	free(hostile);
}

static void test_size_limit(void **state)
{
	struct diag d = {0};
	struct ydoc_limits lim = ydoc_default_limits;
	char path[] = "/tmp/herald-ydoc-XXXXXX";
	int fd;

	(void)state;
	lim.max_bytes = 10;
	assert_null(load("name: 12345\n", &lim, &d));
	assert_non_null(strstr(d.v[0].msg, "more than the limit of 10"));
	diag_clear(&d);

	/* the default limit, 8 MiB, through a file one byte larger */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (8 << 20) + 1), 0);
	close(fd);
	assert_null(ydoc_load_file(path, NULL, &d));
	assert_int_equal(d.errors, 1);
	assert_string_equal(d.v[0].file, path);
	assert_non_null(strstr(d.v[0].msg,
	                       "8388609 bytes, more than the limit of "
	                       "8388608"));
	diag_clear(&d);
	unlink(path);
}

static void test_node_limit(void **state)
{
	struct diag d = {0};
	struct ydoc_limits lim = ydoc_default_limits;

	(void)state;
	lim.max_nodes = 5;
	assert_null(load("[1, 2, 3, 4, 5, 6]\n", &lim, &d));
	assert_non_null(strstr(d.v[0].msg, "more than 5 YAML nodes"));
	assert_int_equal(d.v[0].col, 14);
	diag_clear(&d);
}

static void test_missing_file(void **state)
{
	struct diag d = {0};

	(void)state;
	assert_null(ydoc_load_file(DATA_DIR "/no-such-file.yaml", NULL, &d));
	assert_non_null(strstr(d.v[0].msg, "cannot open"));
	assert_non_null(strstr(d.v[0].file, "no-such-file.yaml"));
	diag_clear(&d);
	assert_null(ydoc_load_file(DATA_DIR, NULL, &d));
	assert_non_null(strstr(d.v[0].msg, "is a directory"));
	diag_clear(&d);
}

static void test_empty_file(void **state)
{
	struct diag d = {0};
	struct ydoc *doc = load("# only a comment\n", NULL, &d);

	(void)state;
	assert_non_null(doc);
	assert_null(doc->root);
	ydoc_free(doc);
}

/*
 * Every file in tests/data/yaml states on its first line what loading it
 * must give; the runner holds each to it.
 */
static void check_data_file(const char *path)
{
	struct diag d = {0};
	char line[512];
	FILE *f = fopen(path, "r");
	struct ydoc *doc;
	unsigned eline, ecol;
	int consumed = 0;
	const char *emsg;

	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	assert_true(strncmp(line, "# expect: ", 10) == 0);
	doc = ydoc_load_file(path, NULL, &d);
	if (strcmp(line + 10, "ok") == 0) {
		if (doc == NULL)
			fail_msg("%s: expected to load, got %s", path,
			         diag_first(&d));
		ydoc_free(doc);
		diag_clear(&d);
		return;
	}
	if (sscanf(line + 10, "%u:%u: %n", &eline, &ecol, &consumed) != 2 ||
	    consumed == 0)
		fail_msg("%s: bad expect line", path);
	emsg = line + 10 + consumed;
	if (doc != NULL)
		fail_msg("%s: loaded, expected error %s", path, emsg);
	assert_int_equal(d.errors, 1);
	if (strcmp(d.v[0].file, path) != 0 || d.v[0].line != eline ||
	    d.v[0].col != ecol || strstr(d.v[0].msg, emsg) == NULL)
		fail_msg("%s: expected %u:%u: %s\n got %s", path, eline, ecol,
		         emsg, diag_first(&d));
	diag_clear(&d);
}

static void test_data_files(void **state)
{
	DIR *dir = opendir(DATA_DIR);
	struct dirent *e;
	unsigned n = 0;

	(void)state;
	assert_non_null(dir);
	while ((e = readdir(dir)) != NULL) {
		char *path;
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".yaml") != 0)
			continue;
		assert_true(asprintf(&path, "%s/%s", DATA_DIR, e->d_name) > 0);
		check_data_file(path);
		free(path);
		n++;
	}
	closedir(dir);
	/* the directory holds one file per error class; losing them would
	 * make this test pass vacuously */
	assert_true(n >= 14);
}

/* ---- streaming ---------------------------------------------------------- */

static char *write_tmp(const char *text, size_t len)
{
	char *path = strdup("/tmp/herald-ydoc-stream-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

/* The sequence under the root key comes out item by item, with places;
 * the rest of the document is built as ever, the sequence left empty. */
static void test_stream_items(void **state)
{
	const char *text = "before: 1\n"
	                   "journalists:\n"
	                   "  - {name: a}\n"
	                   "  - plain\n"
	                   "  - [x, y]\n"
	                   "after: 2\n";
	char *path = write_tmp(text, strlen(text));
	struct diag d = {0};
	struct ydoc_stream *s =
	    ydoc_stream_open(path, NULL, "journalists", 10, &d);
	struct ydoc_node *item;
	const struct ydoc *doc;
	const struct ydoc_node *seq;

	(void)state;
	assert_non_null(s);
	assert_int_equal(ydoc_stream_next(s, &item), 1);
	assert_int_equal(item->kind, YDOC_MAPPING);
	assert_int_equal(item->line, 3);
	assert_int_equal(item->col, 5);
	assert_string_equal(ydoc_get(item, "name")->str, "a");
	ydoc_node_free(item);
	assert_int_equal(ydoc_stream_next(s, &item), 1);
	assert_int_equal(item->kind, YDOC_SCALAR);
	assert_string_equal(item->str, "plain");
	ydoc_node_free(item);
	assert_int_equal(ydoc_stream_next(s, &item), 1);
	assert_int_equal(item->kind, YDOC_SEQUENCE);
	assert_int_equal(item->nitems, 2);
	assert_int_equal(item->line, 5);
	ydoc_node_free(item);
	assert_int_equal(ydoc_stream_next(s, &item), 0);
	assert_null(item);
	assert_int_equal(ydoc_stream_items(s), 3);
	assert_int_equal(ydoc_stream_bytes(s), strlen(text));
	assert_int_equal(ydoc_stream_size(s), strlen(text));
	doc = ydoc_stream_doc(s);
	seq = ydoc_get(doc->root, "journalists");
	assert_non_null(seq);
	assert_int_equal(seq->kind, YDOC_SEQUENCE);
	assert_int_equal(seq->nitems, 0);
	assert_string_equal(ydoc_get(doc->root, "after")->str, "2");
	assert_int_equal(d.errors, 0);
	ydoc_stream_close(s);
	unlink(path);
	free(path);

	/* a root sequence (the key forgotten) streams too: the caller says
	 * what is wrong once it has read it, in as little memory */
	text = "- {name: a}\n- {name: b}\n";
	path = write_tmp(text, strlen(text));
	s = ydoc_stream_open(path, NULL, "journalists", 10, &d);
	assert_int_equal(ydoc_stream_next(s, &item), 1);
	ydoc_node_free(item);
	assert_int_equal(ydoc_stream_next(s, &item), 1);
	ydoc_node_free(item);
	assert_int_equal(ydoc_stream_next(s, &item), 0);
	assert_int_equal(ydoc_stream_doc(s)->root->kind, YDOC_SEQUENCE);
	assert_int_equal(ydoc_stream_doc(s)->root->nitems, 0);
	ydoc_stream_close(s);
	unlink(path);
	free(path);
}

/* Limits: the count of items, and max_nodes for one item, not all. */
static void test_stream_limits(void **state)
{
	struct ydoc_limits lim = ydoc_default_limits;
	struct diag d = {0};
	char *text = NULL, *path;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct ydoc_stream *s;
	struct ydoc_node *item;
	int rc, n = 0;

	(void)state;
	fputs("journalists:\n", f);
	for (int i = 0; i < 1000; i++)
		fprintf(f, "  - {name: n%d, email: e%d}\n", i, i);
	fclose(f);
	path = write_tmp(text, len);
	lim.max_nodes = 10; /* the root, the sequence, one item of five */
	s = ydoc_stream_open(path, &lim, "journalists", 1000, &d);
	assert_non_null(s);
	while ((rc = ydoc_stream_next(s, &item)) == 1) {
		n++;
		ydoc_node_free(item);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, 1000);
	ydoc_stream_close(s);
	/* one item more than allowed: refused at that item */
	s = ydoc_stream_open(path, &lim, "journalists", 999, &d);
	while ((rc = ydoc_stream_next(s, &item)) == 1)
		ydoc_node_free(item);
	assert_int_equal(rc, -1);
	assert_int_equal(d.errors, 1);
	assert_int_equal(d.v[0].line, 1001);
	assert_non_null(strstr(d.v[0].msg, "more than 999 entries"));
	ydoc_stream_close(s);
	diag_clear(&d);
	unlink(path);
	free(path);
	free(text);
}

/* A file read in chunks names a bad byte's place exactly as one read
 * whole: characters split across chunks, a CR LF and a lone CR. */
static void test_stream_bad_byte_place(void **state)
{
	struct diag d = {0}, m = {0};
	char *text = NULL, *path;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct ydoc *doc;

	(void)state;
	fputs("journalists:\r\n", f);
	for (int i = 0; i < 20000; i++)
		fprintf(f, "  - \"Москва %d\"\n", i); /* 2-byte characters */
	fputs("  - \"a\r  b\"\n", f);                /* a lone CR */
	fputs("  - \"Ab\xC3\x28\"\n", f);            /* bad continuation */
	fclose(f);
	assert_true(len > 3 * 65536);
	path = write_tmp(text, len);
	assert_null(ydoc_load_file(path, NULL, &d));
	assert_null(ydoc_load_mem("m.yaml", text, len, NULL, &m));
	assert_int_equal(d.errors, 1);
	assert_int_equal(m.errors, 1);
	assert_int_equal(d.v[0].line, 20004); /* the lone CR ended one */
	assert_int_equal(d.v[0].col, 8);
	assert_int_equal(m.v[0].line, d.v[0].line);
	assert_int_equal(m.v[0].col, d.v[0].col);
	assert_non_null(strstr(d.v[0].msg, "invalid UTF-8 (byte 0xc3)"));
	diag_clear(&d);
	diag_clear(&m);
	unlink(path);
	free(path);
	/* valid, the same file loads whole */
	text[len - 4] = 'c';
	path = write_tmp(text, len);
	doc = ydoc_load_file(path, NULL, &d);
	assert_non_null(doc);
	assert_int_equal(ydoc_get(doc->root, "journalists")->nitems, 20002);
	ydoc_free(doc);
	unlink(path);
	free(path);
	free(text);
	/* C1 controls are refused (U+0086), NEL (U+0085) is not */
	assert_null(load("a: \"x\xC2\x86\"\n", NULL, &d));
	assert_int_equal(d.v[0].col, 6);
	assert_non_null(strstr(d.v[0].msg, "control characters are not "
	                                   "allowed (byte 0x86)"));
	diag_clear(&d);
	doc = load("a: \"x\xC2\x85\"\n", NULL, &d);
	assert_non_null(doc);
	ydoc_free(doc);
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_positions_and_scalars),
	    cmocka_unit_test(test_utf8_columns_count_characters),
	    cmocka_unit_test(test_nul_in_double_quoted_kept_with_length),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_node_limit),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_empty_file),
	    cmocka_unit_test(test_data_files),
	    cmocka_unit_test(test_stream_items),
	    cmocka_unit_test(test_stream_limits),
	    cmocka_unit_test(test_stream_bad_byte_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
