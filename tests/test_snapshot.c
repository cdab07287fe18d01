/*
 * snapshot tests: a release directory read into memory, the file source
 * the loaders read from it (names as the disk reads them, the disk's
 * words for what is missing, a directory or too large), and a snapshot
 * read back from a store, which refuses paths that would leave it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "herald/snapshot.h"

struct tmp {
	char dir[64];
};

static void tmp_put(const struct tmp *t, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void tmp_make(struct tmp *t)
{
	char path[256];

	snprintf(t->dir, sizeof(t->dir), "/tmp/herald-snapshot-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(path, sizeof(path), "%s/rel", t->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/rel/sub", t->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	tmp_put(t, "rel/release.yaml", "name: x\n");
	tmp_put(t, "rel/sub/b.txt", "bee");
	tmp_put(t, "rel/.hidden", "not taken");
	tmp_put(t, "coalition.yaml", "name: c\n");
}

static void tmp_rm(struct tmp *t)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	assert_int_equal(system(cmd), 0);
}

/* Read path through src: its text, or NULL and the first problem in why. */
static char *src_read(const struct fsrc *src, const char *path, size_t max,
                      char *why, size_t size)
{
	struct diag d = {0};
	char *buf = NULL;
	size_t len;

	why[0] = '\0';
	if (fsrc_read(src, path, max, &buf, &len, &d) < 0) {
		snprintf(why, size, "%s", diag_first(&d));
		diag_clear(&d);
		return NULL;
	}
	assert_int_equal(strlen(buf), len);
	return buf;
}

static void test_source(void **state)
{
	static const struct {
		const char *path, *text;
	} found[] = {
	    {"R/release.yaml", "name: x\n"},
	    {"R/./release.yaml", "name: x\n"},
	    {"R//sub/b.txt", "bee"},
	    {"R/sub/../release.yaml", "name: x\n"},
	    {"R/sub/./../sub/b.txt", "bee"},
	    {"C", "name: c\n"},
	};
	static const struct {
		const char *path, *why;
	} missing[] = {
	    {"R/missing.txt", "cannot open: No such file or directory"},
	    {"R/../R/release.yaml", "cannot open: No such file or directory"},
	    {"R/.hidden", "cannot open: No such file or directory"},
	    {"Rx/release.yaml", "cannot open: No such file or directory"},
	    {"release/release.yaml", "cannot open: No such file or directory"},
	    {"R/sub", "is a directory, not a file"},
	    {"R/sub/", "is a directory, not a file"},
	};
	struct snapshot s = {0};
	struct snapshot_src ss;
	struct diag d = {0};
	struct tmp t = {{0}};
	char path[256], why[256], *text;

	(void)state;
	tmp_make(&t);
	snprintf(path, sizeof(path), "%s/rel", t.dir);
	assert_int_equal(snapshot_collect(path, &s, &d), 0);
	assert_int_equal(s.n, 2); /* the hidden file is left out */
	assert_int_equal(s.bytes, 11);
	snprintf(path, sizeof(path), "%s/coalition.yaml", t.dir);
	assert_int_equal(snapshot_add_coalition(&s, path, 100, &d), 0);
	assert_non_null(snapshot_find(&s, "release/sub/b.txt"));
	assert_non_null(snapshot_find(&s, SNAPSHOT_COALITION));
	/* what the disk says of a file changed after the snapshot is not
	 * what the source reads */
	tmp_put(&t, "rel/release.yaml", "name: changed\n");
	snapshot_source(&ss, &s, "R//", "C");
	for (size_t i = 0; i < sizeof(found) / sizeof(*found); i++) {
		text = src_read(&ss.src, found[i].path, 100, why, sizeof(why));
		if (text == NULL || strcmp(text, found[i].text) != 0)
			fail_msg("%s: \"%s\" (%s)", found[i].path,
			         text ? text : "", why);
		assert_true(fsrc_exists(&ss.src, found[i].path));
		free(text);
	}
	for (size_t i = 0; i < sizeof(missing) / sizeof(*missing); i++) {
		text =
		    src_read(&ss.src, missing[i].path, 100, why, sizeof(why));
		assert_null(text);
		if (strstr(why, missing[i].why) == NULL ||
		    strncmp(why, missing[i].path, strlen(missing[i].path)) != 0)
			fail_msg("%s: \"%s\", expected \"%s\"", missing[i].path,
			         why, missing[i].why);
		assert_false(fsrc_exists(&ss.src, missing[i].path));
	}
	/* the size limit, in file_read's words */
	assert_null(src_read(&ss.src, "R/sub/b.txt", 2, why, sizeof(why)));
	assert_string_equal(why, "R/sub/b.txt: error: the file is 3 bytes, "
	                         "more than the limit of 2");
	text = src_read(&ss.src, "R/sub/b.txt", 3, why, sizeof(why));
	assert_string_equal(text, "bee");
	free(text);
	/* a YAML file through the source, named as given */
	{
		struct ydoc *doc =
		    fsrc_yaml(&ss.src, "R/release.yaml", NULL, &d);
		assert_non_null(doc);
		assert_string_equal(doc->file, "R/release.yaml");
		assert_string_equal(ydoc_get(doc->root, "name")->str, "x");
		ydoc_free(doc);
	}
	assert_int_equal(d.errors, 0);
	snapshot_free(&s);
	tmp_rm(&t);
}

static void test_collect(void **state)
{
	struct snapshot s = {0};
	struct snapshot_src ss;
	struct diag d = {0};
	struct tmp t = {{0}};
	char path[256], link[256], why[256];

	(void)state;
	tmp_make(&t);
	/* a directory that is not there: no problem yet, and the source
	 * says of release.yaml what opening it on disk says */
	snprintf(path, sizeof(path), "%s/nothere", t.dir);
	assert_int_equal(snapshot_collect(path, &s, &d), 0);
	assert_int_equal(d.errors, 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(s.dir_errno, ENOENT);
	snapshot_source(&ss, &s, "nothere", NULL);
	assert_null(
	    src_read(&ss.src, "nothere/release.yaml", 100, why, sizeof(why)));
	assert_string_equal(why, "nothere/release.yaml: error: cannot open: "
	                         "No such file or directory");
	/* a file where the directory should be */
	snprintf(path, sizeof(path), "%s/coalition.yaml", t.dir);
	assert_int_equal(snapshot_collect(path, &s, &d), 0);
	assert_int_equal(s.dir_errno, ENOTDIR);
	snapshot_source(&ss, &s, "c", NULL);
	assert_null(src_read(&ss.src, "c/release.yaml", 100, why, sizeof(why)));
	assert_string_equal(why, "c/release.yaml: error: cannot open: Not a "
	                         "directory");
	/* a symbolic link is refused, by name */
	snprintf(path, sizeof(path), "%s/rel/sub/b.txt", t.dir);
	snprintf(link, sizeof(link), "%s/rel/link.txt", t.dir);
	assert_int_equal(symlink(path, link), 0);
	snprintf(path, sizeof(path), "%s/rel", t.dir);
	assert_int_equal(snapshot_collect(path, &s, &d), -1);
	assert_non_null(
	    strstr(diag_first(&d), "link.txt: error: is a symbolic link"));
	assert_int_equal(s.n, 0);
	diag_clear(&d);
	snapshot_free(&s);
	tmp_rm(&t);
}

struct one_rcpt {
	bool given;
	const char *message_id;
};

static int one_next(void *arg, struct store_recipient *r)
{
	struct one_rcpt *o = arg;

	if (o->given)
		return 0;
	o->given = true;
	*r = (struct store_recipient){.email = "j@example.org",
	                              .name = "J",
	                              .language = "en",
	                              .message_id = o->message_id};
	return 1;
}

static int64_t put_release(struct store *st, const char *name,
                           const struct store_file *files, size_t n)
{
	struct store_release_new rn = {.name = name,
	                               .source = "/press/release",
	                               .release_dir = "release",
	                               .coalition = "coalition.yaml",
	                               .files = files,
	                               .nfiles = n};
	struct store_release_added out = {0};
	struct one_rcpt o = {false, name};
	struct diag d = {0};

	if (store_release_add_each(st, &rn, one_next, &o, &out, &d) != 0)
		fail_msg("release_add_each: %s", diag_first(&d));
	return out.release_id;
}

static void test_load(void **state)
{
	const struct store_file good[] = {
	    {"release/release.yaml", "name: a\n", 8},
	    {"release/partials/p.txt.mustache", "{{x}}", 5},
	    {"coalition.yaml", "name: c\n", 8},
	};
	const struct store_file bad[] = {
	    {"release/release.yaml", "name: b\n", 8},
	    {"release/../../etc/passwd", "x", 1},
	};
	struct snapshot s = {0};
	struct snapshot_src ss;
	struct store *st;
	struct diag d = {0};
	struct tmp t = {{0}};
	char path[256], why[256], *text;
	int64_t a, b;

	(void)state;
	tmp_make(&t);
	snprintf(path, sizeof(path), "%s/herald.db", t.dir);
	st = store_open(path, &d);
	assert_non_null(st);
	a = put_release(st, "a", good, 3);
	b = put_release(st, "b", bad, 2);
	assert_int_equal(snapshot_load(st, a, &s, &d), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.bytes, 21);
	assert_string_equal(s.release_dir, "release");
	assert_string_equal(s.coalition, "coalition.yaml");
	snapshot_source(&ss, &s, s.release_dir, s.coalition);
	text = src_read(&ss.src, "release/partials/p.txt.mustache", 100, why,
	                sizeof(why));
	assert_string_equal(text, "{{x}}");
	free(text);
	text = src_read(&ss.src, "coalition.yaml", 100, why, sizeof(why));
	assert_string_equal(text, "name: c\n");
	free(text);
	/* a stored path that would leave the snapshot: refused, nothing
	 * kept */
	assert_int_equal(snapshot_load(st, b, &s, &d), -1);
	assert_non_null(strstr(diag_first(&d), "would leave the snapshot"));
	assert_int_equal(s.n, 0);
	diag_clear(&d);
	/* a release that is not there */
	assert_int_equal(snapshot_load(st, 99, &s, &d), -1);
	assert_true(d.errors > 0);
	diag_clear(&d);
	snapshot_free(&s);
	store_close(st);
	tmp_rm(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_source),
	    cmocka_unit_test(test_collect),
	    cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
