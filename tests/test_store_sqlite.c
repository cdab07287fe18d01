/*
 * store tests of the SQLite backend (store_sqlite.c) itself, on real files
 * under /tmp: what the store interface does not say and every SQLite store
 * must be — the file and its WAL 0600 under any umask, WAL with
 * synchronous=FULL and foreign keys on the store's own handle, the schema
 * and its version, migrations from older versions, refusing a newer
 * herald's store or another kind of file, opening without creating, a
 * full disk and an I/O error leaving the store as it was, and a done
 * release left unread by claims. What every backend must do is in
 * test_store_conformance.c.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "herald/store.h"
#include "herald/store_sqlite_test.h"
#include "store_fixture.h"

static char tmpdir[] = "/tmp/herald-test-store-sqlite-XXXXXX";

/* A fresh store path per test. */
static char *db_path(const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s.db", tmpdir, name) > 0);
	return p;
}

/* A file name is a SQLite store (even one with "=" in it); a
 * postgresql:// or postgres:// URL or libpq's key=value words are a
 * PostgreSQL store. */
static void test_backend_for(void **state)
{
	(void)state;
	assert_ptr_equal(store_backend_for("herald.db"), &store_sqlite_backend);
	assert_ptr_equal(store_backend_for("/var/lib/herald/a=b.db"),
	                 &store_sqlite_backend);
	assert_ptr_equal(store_backend_for("postgresql://db/herald"),
	                 &store_pg_backend);
	assert_ptr_equal(store_backend_for("postgres://u@db:5433/herald"),
	                 &store_pg_backend);
	assert_ptr_equal(store_backend_for("host=db1 dbname=herald"),
	                 &store_pg_backend);
	assert_ptr_equal(store_backend_for("dbname=herald"), &store_pg_backend);
	assert_null(store_backend_for(""));
}

static void test_schema_and_mode(void **state)
{
	char *path = db_path("schema");
	char *wal = NULL, *shm = NULL;
	struct store *st;
	struct stat sb;
	sqlite3 *db;
	sqlite3_stmt *q;
	mode_t old = umask(0);

	(void)state;
	/* even with a umask that allows everything */
	st = open_ok(path);
	umask(old);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	add_release(st, "schema", 3, 0, 0);
	assert_true(asprintf(&wal, "%s-wal", path) > 0);
	assert_true(asprintf(&shm, "%s-shm", path) > 0);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0077, 0);
	assert_int_equal(stat(shm, &sb), 0);
	assert_int_equal(sb.st_mode & 0077, 0);

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	                 SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_true(sqlite3_column_int(q, 0) >= 5);
	sqlite3_finalize(q);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	assert_int_equal(
	    sqlite3_prepare_v2(db,
	                       "SELECT count(*) FROM sqlite_schema WHERE "
	                       "type = 'table' AND name IN ('releases', "
	                       "'release_files', 'deliveries', 'attempts', "
	                       "'suppressions')",
	                       -1, &q, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 5);
	sqlite3_finalize(q);
	sqlite3_close(db);
	store_close(st);
	free(wal);
	free(shm);
	free(path);
}

static void test_newer_schema_refused(void **state)
{
	char *path = db_path("newer");
	struct store *st = open_ok(path);
	struct diag d = {0};
	sqlite3 *db;

	(void)state;
	store_close(st);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_null(store_open(path, &d));
	assert_non_null(strstr(diag_first(&d), "newer herald"));
	assert_non_null(strstr(diag_first(&d), path));
	diag_clear(&d);
	free(path);
}

static void test_foreign_file_refused(void **state)
{
	char *path = db_path("foreign");
	struct diag d = {0};
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE photos (id INTEGER)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_null(store_open(path, &d));
	assert_non_null(strstr(diag_first(&d), "not a herald store"));
	diag_clear(&d);
	free(path);

	/* a directory that does not exist */
	assert_null(store_open("/nonexistent-dir/herald.db", &d));
	assert_non_null(strstr(diag_first(&d), "cannot create the store"));
	diag_clear(&d);
}

/* In a child: a check that fails prints and exits 1. */
#define CHILD_CHECK(cond, ...)                                                 \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			_exit(1);                                              \
		}                                                              \
	} while (0)

/* Queue a release too large for what the disk (or the file size limit)
 * allows: the call fails with words for people, and the store is as it
 * was. */
static void child_fill(const char *path, const char *expect)
{
	struct store_release_new rn = {
	    "full", "src", "release", "coalition.yaml", 0, 0, NULL, 0};
	struct store_release_added out;
	struct diag d = {0};
	struct store *st = store_open(path, &d);
	struct rcpts r;
	size_t n = 0;

	CHILD_CHECK(st != NULL, "open: %s", diag_first(&d));
	rcpts_make(&r, "small", 3, "example.org");
	CHILD_CHECK(queue(st, &rn, r.v, r.n, &out, &d) == 0,
	            "small release: %s", diag_first(&d));
	rcpts_free(&r);
	rn.name = "full-big";
	rcpts_make(&r, "big", 20000, "example.org");
	CHILD_CHECK(queue(st, &rn, r.v, r.n, &out, &d) < 0,
	            "a release larger than the disk was queued");
	fprintf(stderr, "  (%s)\n", diag_first(&d));
	CHILD_CHECK(strstr(diag_first(&d), expect) != NULL,
	            "unexpected message: %s", diag_first(&d));
	CHILD_CHECK(strstr(diag_first(&d), "nothing was changed") != NULL,
	            "message does not say nothing changed: %s", diag_first(&d));
	CHILD_CHECK(strstr(diag_first(&d), path) != NULL,
	            "message does not name the store: %s", diag_first(&d));
	diag_clear(&d);
	rcpts_free(&r);
	CHILD_CHECK(store_releases_each(st, 0, count_releases_fn, &n, &d) == 0,
	            "after: %s", diag_first(&d));
	CHILD_CHECK(n == 1, "%zu releases after the failure", n);
	store_close(st);
	/* and from a new handle */
	st = store_open(path, &d);
	CHILD_CHECK(st != NULL, "reopen: %s", diag_first(&d));
	n = 0;
	CHILD_CHECK(store_releases_each(st, 0, count_releases_fn, &n, &d) == 0,
	            "reopened: %s", diag_first(&d));
	CHILD_CHECK(n == 1, "%zu releases after reopening", n);
	store_close(st);
	diag_clear(&d);
}

static void test_disk_full(void **state)
{
	char *dir = NULL;
	int status;
	pid_t pid;

	(void)state;
	assert_true(asprintf(&dir, "%s/full", tmpdir) > 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *path = NULL;
		/* a small disk of its own: a tmpfs in a private mount
		 * namespace (root only; otherwise skipped) */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=512k,mode=0700") < 0)
			_exit(77);
		if (asprintf(&path, "%s/herald.db", dir) < 0)
			_exit(1);
		child_fill(path, "disk is full");
		free(path);
		umount(dir);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	rmdir(dir);
	free(dir);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_io_error(void **state)
{
	char *path = db_path("ioerr");
	struct store *st = open_ok(path);
	int status;
	pid_t pid;

	(void)state;
	store_close(st);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* writes past 1 MiB fail (EFBIG): an I/O error to SQLite */
		struct rlimit rl;
		signal(SIGXFSZ, SIG_IGN);
		getrlimit(RLIMIT_FSIZE, &rl);
		rl.rlim_cur = 1 << 20;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(1);
		child_fill(path, "could not be read or written");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(path);
}

static int64_t count_rows(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return n;
}

/* A store of schema version 2 (before the mailbox state) is brought to 3
 * on open, with what it held. */
static void test_migration_3(void **state)
{
	char *path = db_path("mig3");
	struct store *st = open_ok(path);
	struct diag d = {0};
	uint32_t uv = 1, last = 1;
	sqlite3 *db;

	(void)state;
	add_release(st, "mig", 4, 0, 0);
	store_close(st);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "DROP TABLE mailbox_state;"
	                              "DROP TABLE event_sources;"
	                              /* what version 4 adds */
	                              "DROP INDEX deliveries_owner;"
	                              "ALTER TABLE deliveries DROP owner;"
	                              "ALTER TABLE deliveries DROP handed_at;"
	                              "ALTER TABLE deliveries DROP "
	                              "may_duplicate;"
	                              "ALTER TABLE deliveries DROP "
	                              "duplicate_why;"
	                              "DROP TABLE daemons;"
	                              "PRAGMA user_version = 2;",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	st = open_ok(path);
	/* brought up to this herald's version, every step after 2 again */
	assert_true(count_rows(path, "PRAGMA user_version") >= 3);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM deliveries"),
	                 4);
	assert_int_equal(
	    store_imap_place_get(st, "imaps://x/INBOX", &uv, &last, &d), 0);
	assert_int_equal(uv + last, 0);
	store_close(st);
	unlink(path);
	free(path);
}

/* A store of schema version 6 (before rules and evidence) is brought to
 * 7 on open, with what it held; a column a run that did not finish added
 * already is left as it is. */
static void test_migration_7(void **state)
{
	char *path = db_path("mig7");
	struct store *st = open_ok(path);
	struct diag d = {0};
	sqlite3 *db;

	(void)state;
	add_release(st, "mig", 2, 0, 0);
	assert_int_equal(suppress(st, "j1@example.org", "old", &d), 0);
	store_close(st);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "ALTER TABLE events DROP evidence;"
	                              "ALTER TABLE suppressions DROP rule;"
	                              "ALTER TABLE suppressions DROP evidence;"
	                              "PRAGMA user_version = 6;",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	st = open_ok(path);
	assert_int_equal(count_rows(path, "PRAGMA user_version"), 7);
	assert_int_equal(count_rows(path,
	                            "SELECT count(*) FROM"
	                            " pragma_table_info('suppressions')"
	                            " WHERE name IN ('rule', 'evidence')"),
	                 2);
	assert_int_equal(count_rows(path,
	                            "SELECT count(*) FROM"
	                            " pragma_table_info('events')"
	                            " WHERE name IN ('rule', 'evidence')"),
	                 2);
	/* what was there stays, without a rule */
	assert_int_equal(count_rows(path,
	                            "SELECT count(*) FROM suppressions"
	                            " WHERE email = 'j1@example.org'"
	                            " AND reason = 'old' AND rule IS NULL"),
	                 1);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM deliveries"),
	                 2);
	diag_clear(&d);
	store_close(st);
	unlink(path);
	free(path);
}

/* A reader opens without making a store: none there is ENOENT and nothing
 * is made; a file that is no store is EINVAL. */
static void test_open_existing(void **state)
{
	char *path = db_path("absent"), *wal = NULL, *text = db_path("text");
	struct diag d = {0};
	struct stat sb;
	struct store *st;
	FILE *f;

	(void)state;
	errno = 0;
	assert_null(store_open_flags(path, 0, &d));
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(diag_first(&d), path));
	assert_non_null(strstr(diag_first(&d), "no store"));
	diag_clear(&d);
	assert_int_equal(stat(path, &sb), -1);
	assert_true(asprintf(&wal, "%s-wal", path) > 0);
	assert_int_equal(stat(wal, &sb), -1);
	errno = 0;
	assert_null(store_open_flags("/nonexistent-dir/herald.db", 0, &d));
	assert_int_equal(errno, ENOENT);
	diag_clear(&d);

	/* made by what may make one, then read */
	st = store_open_flags(path, STORE_OPEN_CREATE, &d);
	assert_non_null(st);
	store_close(st);
	st = store_open_flags(path, 0, &d);
	assert_non_null(st);
	store_close(st);

	/* not a store: a text file, a directory, another kind */
	assert_non_null(f = fopen(text, "w"));
	fputs("journalists, one a line\n", f);
	fclose(f);
	errno = 0;
	assert_null(store_open_flags(text, 0, &d));
	assert_int_equal(errno, EINVAL);
	diag_clear(&d);
	errno = 0;
	assert_null(store_open_flags(tmpdir, 0, &d));
	assert_int_equal(errno, EINVAL);
	diag_clear(&d);
	/* a PostgreSQL address with its password written in is refused
	 * before anything is tried: it would be shown in logs */
	errno = 0;
	assert_null(store_open_flags("postgresql://h:secret@db/herald", 0, &d));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(diag_first(&d), "password"));
	assert_null(strstr(diag_first(&d), "secret"));
	diag_clear(&d);
	free(wal);
	free(text);
	free(path);
}

struct durability {
	char journal_mode[16], synchronous[16], foreign_keys[16];
};

static int durability_fn(void *arg, const char *name, const char *value)
{
	struct durability *u = arg;

	if (strcmp(name, "journal_mode") == 0)
		snprintf(u->journal_mode, sizeof(u->journal_mode), "%s", value);
	else if (strcmp(name, "synchronous") == 0)
		snprintf(u->synchronous, sizeof(u->synchronous), "%s", value);
	else if (strcmp(name, "foreign_keys") == 0)
		snprintf(u->foreign_keys, sizeof(u->foreign_keys), "%s", value);
	return 0;
}

/* A commit is durable before the daemon says "sent": WAL with
 * synchronous=FULL syncs the WAL at every commit (NORMAL may lose the
 * last transactions on power loss), read from the store's own handle. */
static void test_durability_settings(void **state)
{
	char *path = db_path("durable");
	struct store *st = open_ok(path);
	struct durability u;
	struct diag d = {0};

	(void)state;
	memset(&u, 0, sizeof(u));
	assert_int_equal(
	    store_sqlite_test_durability(st, durability_fn, &u, &d), 0);
	assert_string_equal(u.journal_mode, "wal");
	assert_string_equal(u.synchronous, "full");
	assert_string_equal(u.foreign_keys, "on");
	store_close(st);
	free(path);
}

/* A done release is not even read by a claim: a delivery of it made
 * due behind the store's back (by SQL) is not taken. */
static void test_done_release_unread(void **state)
{
	char *path = db_path("done");
	struct store *st = open_ok(path);
	struct store_delivery out[8];
	time_t now = time(NULL) + 10;
	int64_t rid = add_release(st, "done", 2, 0, 0);

	(void)state;
	assert_int_equal(claim(st, now, 60, 8, out), 2);
	record(st, out[0].id, now, STORE_SENT, 0, true, 250);
	record(st, out[1].id, now, STORE_FAILED, 0, true, 550);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_DONE);
	assert_int_equal(rid, 1); /* the store's first */
	{
		sqlite3 *db;
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db,
		                              "UPDATE deliveries SET state ="
		                              " 'queued' WHERE release_id = 1"
		                              " AND state = 'failed'",
		                              NULL, NULL, NULL),
		                 SQLITE_OK);
		sqlite3_close(db);
		assert_int_equal(claim(st, now + 3600, 60, 8, out), 0);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db,
		                              "UPDATE deliveries SET state ="
		                              " 'failed' WHERE release_id = 1"
		                              " AND state = 'queued'",
		                              NULL, NULL, NULL),
		                 SQLITE_OK);
		sqlite3_close(db);
	}
	store_close(st);
	free(path);
}

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	DIR *dp = opendir(tmpdir);
	struct dirent *e;

	(void)state;
	while (dp != NULL && (e = readdir(dp)) != NULL) {
		char *p = NULL;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (asprintf(&p, "%s/%s", tmpdir, e->d_name) > 0) {
			if (unlink(p) < 0)
				rmdir(p);
			free(p);
		}
	}
	if (dp != NULL)
		closedir(dp);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backend_for),
	    cmocka_unit_test(test_schema_and_mode),
	    cmocka_unit_test(test_newer_schema_refused),
	    cmocka_unit_test(test_foreign_file_refused),
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_io_error),
	    cmocka_unit_test(test_migration_3),
	    cmocka_unit_test(test_migration_7),
	    cmocka_unit_test(test_open_existing),
	    cmocka_unit_test(test_durability_settings),
	    cmocka_unit_test(test_done_release_unread),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
