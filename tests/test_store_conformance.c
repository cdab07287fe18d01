/*
 * store conformance: every store_* operation of store.h against every
 * backend of backends[] (today SQLite; a PostgreSQL backend is one more
 * row), each case on a new, empty store of its own, through the interface
 * only. The cases hold a backend to the contracts written in store.h:
 * queueing all or nothing and a name queued again, the suppression list,
 * claiming (embargo, paused and cancelled releases, backoff, leases that
 * run out), recording and the states it leads to, giving claims back,
 * expiry, cancel, retry and bringing a cancel back, heraldd's owners and
 * hand-overs, the bounce mailbox's events and what they do, the IMAP
 * reader's place, the admin's views and counts, two handles and two
 * processes at once, and 100,000 recipients. What one backend is beyond
 * the contract (a file's mode, its pragmas, migrations, a full disk) is
 * in that backend's own tests: test_store_sqlite.c.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <setjmp.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "herald/store.h"
#include "store_fixture.h"

/* ---- the backends ------------------------------------------------------ */

/* A kind of store the cases run against: how to make a new, empty one and
 * remove it again. PostgreSQL is one more row (a server started by setup
 * in a temporary directory, a database per store). */
struct backend {
	const char *name;
	/* Before and after all the cases (a directory, a server): 0, or -1
	 * with why on stderr, and the backend's cases fail. */
	int (*setup)(void);
	void (*teardown)(void);
	/* Where a new, empty store is for store_open (a path, a URL),
	 * malloc'd, or NULL; tag tells a case's stores apart. */
	char *(*fresh)(const char *tag);
	/* Remove the store at where and whatever came with it. */
	void (*cleanup)(const char *where);
	/* Make every release and delivery of the store at where queued at
	 * t: the past, which no store call sets, for the tests of
	 * lifetimes. 0, or -1 with why on stderr. */
	int (*backdate)(const char *where, time_t t);
};

/* SQLite: a file per store in a directory of the run's own. */
static char sqlite_dir[] = "/tmp/herald-test-store-XXXXXX";

static int sqlite_setup(void)
{
	if (mkdtemp(sqlite_dir) == NULL) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static void sqlite_teardown(void)
{
	DIR *dp = opendir(sqlite_dir);
	struct dirent *e;

	while (dp != NULL && (e = readdir(dp)) != NULL) {
		char *p = NULL;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (asprintf(&p, "%s/%s", sqlite_dir, e->d_name) > 0) {
			unlink(p);
			free(p);
		}
	}
	if (dp != NULL)
		closedir(dp);
	rmdir(sqlite_dir);
}

static char *sqlite_fresh(const char *tag)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s.db", sqlite_dir, tag) > 0 ? p : NULL;
}

static void sqlite_cleanup(const char *where)
{
	static const char *const ends[] = {"", "-wal", "-shm", "-journal"};

	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		char *p = NULL;
		if (asprintf(&p, "%s%s", where, ends[i]) > 0) {
			unlink(p);
			free(p);
		}
	}
}

static int sqlite_backdate(const char *where, time_t t)
{
	sqlite3 *db;
	char sql[160];

	assert_int_equal(sqlite3_open(where, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql),
	         "UPDATE deliveries SET queued_at = %lld;"
	         "UPDATE releases SET queued_at = %lld",
	         (long long)t, (long long)t);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	return 0;
}

/* PostgreSQL: a real PostgreSQL 15 server started for the run in a
 * directory of its own (tests/lib/pgserver.py: initdb and postgres as the
 * user postgres, a socket in that directory), a database per store,
 * owned by the role herald, reached over TCP with its password from a
 * 0600 file (PGPASSFILE), as a node would. */
static char pg_dir[] = "/tmp/herald-test-pg-XXXXXX";
static char pg_admin[512]; /* the superuser's key=value, over the socket */
static char pg_port[16];

static int pg_setup(void)
{
	char cmd[1024], line[512];
	char *passfile = NULL;
	FILE *f;

	if (mkdtemp(pg_dir) == NULL) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(cmd, sizeof(cmd),
	         "python3 %s/tests/lib/pgserver.py start %s >/dev/null",
	         HERALD_SOURCE_DIR, pg_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "could not start PostgreSQL in %s\n", pg_dir);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "%s/conninfo", pg_dir);
	if ((f = fopen(cmd, "r")) == NULL ||
	    fgets(pg_admin, sizeof(pg_admin), f) == NULL) {
		fprintf(stderr, "%s: %s\n", cmd, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	pg_admin[strcspn(pg_admin, "\n")] = '\0';
	{
		const char *p = strstr(pg_admin, "port=");
		if (p == NULL)
			return -1;
		snprintf(pg_port, sizeof(pg_port), "%.*s",
		         (int)strcspn(p + 5, " "), p + 5);
	}
	/* the role herald's password, as libpq reads it: a 0600 file of
	 * host:port:database:user:password lines */
	snprintf(cmd, sizeof(cmd), "%s/herald.password", pg_dir);
	if ((f = fopen(cmd, "r")) == NULL || fgets(line, sizeof(line), f) == NULL) {
		fprintf(stderr, "%s: %s\n", cmd, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	if (asprintf(&passfile, "%s/pgpass", pg_dir) < 0)
		return -1;
	if ((f = fopen(passfile, "w")) == NULL) {
		free(passfile);
		return -1;
	}
	fprintf(f, "127.0.0.1:%s:*:herald:%s\n", pg_port, line);
	fclose(f);
	chmod(passfile, 0600);
	setenv("PGPASSFILE", passfile, 1);
	free(passfile);
	return 0;
}

static void pg_teardown(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	         "python3 %s/tests/lib/pgserver.py stop %s >/dev/null",
	         HERALD_SOURCE_DIR, pg_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not stop PostgreSQL in %s\n", pg_dir);
}

/* Run sql as the superuser (database db); 0 or -1 with why on stderr. */
static int pg_admin_sql(const char *db, const char *sql)
{
	char info[640];
	PGconn *c;
	PGresult *r;
	int rc = 0;

	snprintf(info, sizeof(info), "%s", pg_admin);
	if (db != NULL) {
		char *p = strstr(info, "dbname=");
		if (p != NULL)
			snprintf(p, sizeof(info) - (size_t)(p - info),
			         "dbname=%s user=postgres", db);
	}
	c = PQconnectdb(info);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "%s: %s", info, PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
		rc = -1;
	}
	PQclear(r);
	PQfinish(c);
	return rc;
}

static char *pg_fresh(const char *tag)
{
	char sql[160], db[64], *where = NULL;

	snprintf(db, sizeof(db), "h_%ld_%s", (long)getpid(), tag);
	for (char *p = db; *p; p++)
		if (*p == '-')
			*p = '_';
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER herald", db);
	if (pg_admin_sql(NULL, sql) < 0)
		return NULL;
	return asprintf(&where, "postgresql://herald@127.0.0.1:%s/%s", pg_port,
	                db) > 0
	           ? where
	           : NULL;
}

static void pg_cleanup(const char *where)
{
	char sql[160];
	const char *db = strrchr(where, '/');

	if (db == NULL)
		return;
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db + 1);
	(void)pg_admin_sql(NULL, sql);
}

static int pg_backdate(const char *where, time_t t)
{
	char sql[160];
	const char *db = strrchr(where, '/');

	assert_non_null(db);
	snprintf(sql, sizeof(sql),
	         "UPDATE deliveries SET queued_at = %lld;"
	         "UPDATE releases SET queued_at = %lld",
	         (long long)t, (long long)t);
	return pg_admin_sql(db + 1, sql);
}

static const struct backend backends[] = {
    {"sqlite", sqlite_setup, sqlite_teardown, sqlite_fresh, sqlite_cleanup,
     sqlite_backdate},
    {"postgresql", pg_setup, pg_teardown, pg_fresh, pg_cleanup,
     pg_backdate},
};

/* The backend the cases run against now. */
static const struct backend *be;

/* What each case starts with: a new, empty store of the backend (where)
 * and a handle on it (st), made by case_setup and removed by
 * case_teardown. */
struct fixture {
	char *where;
	struct store *st;
};

static int case_setup(void **state)
{
	static unsigned cases;
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct diag d = {0};
	char tag[32];

	snprintf(tag, sizeof(tag), "case-%u", ++cases);
	if (fx == NULL || (fx->where = be->fresh(tag)) == NULL ||
	    (fx->st = store_open(fx->where, &d)) == NULL) {
		fprintf(stderr, "%s: no store for %s: %s\n", be->name, tag,
		        diag_first(&d));
		diag_clear(&d);
		if (fx != NULL)
			free(fx->where);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int case_teardown(void **state)
{
	struct fixture *fx = *state;

	store_close(fx->st);
	be->cleanup(fx->where);
	free(fx->where);
	free(fx);
	return 0;
}

/* The case's store, and where it is (for another handle, another
 * process). */
static struct store *case_store(void **state)
{
	return ((struct fixture *)*state)->st;
}

static const char *case_where(void **state)
{
	return ((struct fixture *)*state)->where;
}

/* Close the case's store and open it again: what the next process sees. */
static struct store *case_reopen(void **state)
{
	struct fixture *fx = *state;

	store_close(fx->st);
	fx->st = open_ok(fx->where);
	return fx->st;
}

static int group_setup(void **state)
{
	(void)state;
	return be->setup();
}

static int group_teardown(void **state)
{
	(void)state;
	be->teardown();
	return 0;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- the interface: names and texts, no backend ------------------------ */

/* The names of states as the store, the log and the CLI spell them. */
static void test_state_names(void **state)
{
	enum store_state s;
	enum store_release_state rs;

	(void)state;
	for (int i = 0; i < STORE_NSTATES; i++) {
		assert_int_equal(store_state_parse(
		                     store_state_name((enum store_state)i), &s),
		                 0);
		assert_int_equal(s, i);
	}
	assert_string_equal(store_state_name(STORE_DEFERRED), "deferred");
	assert_int_equal(store_state_parse("lost", &s), -1);
	assert_int_equal(store_release_state_parse("paused", &rs), 0);
	assert_int_equal(rs, STORE_RELEASE_PAUSED);
	assert_string_equal(store_release_state_name(STORE_RELEASE_CANCELLED),
	                    "cancelled");
}

/* store_evidence: one line, cut at a character boundary; and the soft
 * window in words. */
static void test_evidence_text(void **state)
{
	char buf[48], *e, *long_text = malloc(STORE_EVIDENCE_TEXT_MAX + 8);

	(void)state;
	assert_null(store_evidence("line 1: ", NULL));
	e = store_evidence("line 3: ", "a\r\nb\tc");
	assert_string_equal(e, "line 3: a  b c");
	free(e);
	/* a two-byte character across the cut is left out whole */
	assert_non_null(long_text);
	memset(long_text, 'x', STORE_EVIDENCE_TEXT_MAX + 7);
	long_text[STORE_EVIDENCE_TEXT_MAX - 1] = '\xc3';
	long_text[STORE_EVIDENCE_TEXT_MAX] = '\xa9';
	long_text[STORE_EVIDENCE_TEXT_MAX + 7] = '\0';
	e = store_evidence(NULL, long_text);
	assert_int_equal(strlen(e), STORE_EVIDENCE_TEXT_MAX - 1);
	free(e);
	free(long_text);
	store_window_text(30 * 86400, buf, sizeof(buf));
	assert_string_equal(buf, "30 days");
	store_window_text(86400, buf, sizeof(buf));
	assert_string_equal(buf, "1 day");
	store_window_text(36 * 3600, buf, sizeof(buf));
	assert_string_equal(buf, "36 hours");
	store_window_text(90, buf, sizeof(buf));
	assert_string_equal(buf, "90 seconds");
	store_window_text(0, buf, sizeof(buf));
	assert_string_equal(buf, "0 seconds");
}

/* ---- releases ---------------------------------------------------------- */

static void test_reopen_keeps_data(void **state)
{
	struct store *st = case_store(state);
	struct diag d = {0};
	int64_t id = add_release(st, "reopen", 5, 0, 0), found = 0;
	struct store_release_info info;

	st = case_reopen(state);
	assert_int_equal(store_release_find(st, "reopen", &found, &d), 0);
	assert_int_equal(found, id);
	info = release_info(st, id);
	assert_int_equal(info.total, 5);
	assert_int_equal(info.count[STORE_QUEUED], 5);
	assert_string_equal(info.name, "reopen");
	assert_string_equal(info.source, "/home/press/report");
	diag_clear(&d);
}

static int source_fn(void *arg, const struct store_release_info *r)
{
	memcpy(arg, r->source, sizeof(r->source));
	return 1; /* the first is enough */
}

static void test_long_source_shown(void **state)
{
	struct store *st = case_store(state);
	char src[2000], shown[512];
	struct store_release_new rn = {
	    "source", src, "release", "coalition.yaml", 0, 0, NULL, 0};
	struct store_release_added out;
	struct diag d = {0};
	struct rcpts r;

	memset(src, 'x', sizeof(src));
	memcpy(src, "/home/", 6);
	/* ends in a two-byte character, which the cut must not split */
	memcpy(src + sizeof(src) - 11, "/report-\xc3\xa9", 10);
	src[sizeof(src) - 1] = '\0';
	rcpts_make(&r, "source", 1, "example.org");
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), 0);
	assert_int_equal(store_releases_each(st, 0, source_fn, shown, &d), 0);
	assert_true(strlen(shown) < sizeof(shown));
	assert_memory_equal(shown, "...", 3);
	assert_string_equal(shown + strlen(shown) - 10, "/report-\xc3\xa9");
	rcpts_free(&r);
	diag_clear(&d);
}

/* ---- queueing ---------------------------------------------------------- */

static void test_release_add_all_or_nothing(void **state)
{
	struct store *st = case_store(state);
	struct store_release_new rn = {
	    "atomic", "src", "release", "coalition.yaml", 0, 0, NULL, 0};
	struct store_release_added out;
	struct diag d = {0};
	struct rcpts r;

	/* the same Message-ID twice in one list, near its end */
	rcpts_make(&r, "atomic", 1000, "example.org");
	r.v[998].message_id = r.v[10].message_id;
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), -1);
	assert_non_null(strstr(diag_first(&d), "Message-ID"));
	assert_non_null(strstr(diag_first(&d), "nothing was queued"));
	assert_int_equal(count_releases(st), 0);
	diag_clear(&d);
	rcpts_free(&r);

	/* the same address twice */
	rcpts_make(&r, "atomic2", 100, "example.org");
	r.v[50].email = "j0@EXAMPLE.org";
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), -1);
	assert_non_null(strstr(diag_first(&d), "twice"));
	assert_int_equal(count_releases(st), 0);
	diag_clear(&d);

	/* a good list goes in; the same Message-IDs again (in a release
	 * of another name) do not */
	r.v[50].email = "j50@example.org";
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), 0);
	assert_int_equal(out.suppressed, 0);
	assert_int_equal(count_releases(st), 1);
	rn.name = "atomic-again";
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), -1);
	assert_non_null(strstr(diag_first(&d), "already in the store"));
	assert_int_equal(count_releases(st), 1);
	diag_clear(&d);
	rcpts_free(&r);

	/* a name that does not fit the status line */
	rn.name = "a-release-name-that-goes-on-and-on-and-on-and-on-and-on-"
	          "and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-"
	          "and-on-and-on-and-on-and-on";
	rcpts_make(&r, "atomic3", 1, "example.org");
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), -1);
	assert_int_equal(count_releases(st), 1);
	diag_clear(&d);
	rcpts_free(&r);
}

static void test_suppressed(void **state)
{
	struct store *st = case_store(state);
	struct store_release_new rn = {
	    "sup", "src", "release", "coalition.yaml", 0, 0, NULL, 0};
	struct store_release_added added;
	struct store_delivery out[16];
	struct diag d = {0};
	struct rcpts r;
	int64_t id = 0, did;
	bool yes;

	assert_int_equal(suppress(st, "j1@Example.ORG", "hard bounce", &d), 0);
	assert_int_equal(suppress(st, "j3@example.org", "complaint", &d), 0);
	/* listed twice: the first reason stays, no error */
	assert_int_equal(suppress(st, "j3@EXAMPLE.ORG", "again", &d), 0);
	/* kept with the domain in lower case */
	assert_int_equal(suppressed(st, "j1@example.org", &yes, &d), 0);
	assert_true(yes);
	/* the local part is kept as written */
	assert_int_equal(suppressed(st, "J1@example.org", &yes, &d), 0);
	assert_false(yes);

	rcpts_make(&r, "sup", 6, "example.org");
	assert_int_equal(queue(st, &rn, r.v, r.n, &added, &d), 0);
	id = added.release_id;
	assert_int_equal(added.suppressed, 2);
	assert_int_equal(release_info(st, id).count[STORE_SUPPRESSED], 2);
	assert_int_equal(
	    store_delivery_find(st, id, "j1@example.org", &did, &d), 0);
	assert_int_equal(delivery(st, did).state, STORE_SUPPRESSED);

	/* suppressing an address with a waiting delivery stops it */
	assert_int_equal(suppress(st, "j4@example.org", "manual", &d), 0);
	assert_int_equal(release_info(st, id).count[STORE_SUPPRESSED], 3);
	assert_int_equal(claim(st, time(NULL), 60, 16, out), 3);
	for (int i = 0; i < 3; i++)
		assert_string_not_equal(out[i].r.email, "j4@example.org");
	rcpts_free(&r);
	diag_clear(&d);
}

/* ---- claiming ---------------------------------------------------------- */

static void test_claim_embargo_and_release_state(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[64];
	struct diag d = {0};
	time_t now = time(NULL) + 10; /* past every queued_at below */
	int64_t later = add_release(st, "embargoed", 5, now + 3600, 0);
	int64_t paused = add_release(st, "paused", 4, 0, 0);
	int64_t gone = add_release(st, "cancelled", 3, 0, 0);
	time_t when = 0;
	size_t n = 0;

	assert_int_equal(
	    store_release_set_state(st, paused, STORE_RELEASE_PAUSED, &d), 0);
	assert_int_equal(store_cancel(st, gone, &n, &d), 0);
	assert_int_equal(n, 3);
	assert_int_equal(release_info(st, gone).state, STORE_RELEASE_CANCELLED);
	assert_int_equal(claim(st, now, 60, 64, out), 0);
	assert_int_equal(store_next_due(st, &when, &d), 0);
	assert_int_equal(when, now + 3600);

	/* the embargo ends */
	assert_int_equal(claim(st, now + 3599, 60, 64, out), 0);
	assert_int_equal(claim(st, now + 3600, 60, 64, out), 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(out[i].release_id, later);
		assert_int_equal(out[i].state, STORE_SENDING);
		assert_non_null(out[i].r.message_id);
		assert_string_equal(out[i].r.name, "Journalist");
		if (i > 0)
			assert_true(out[i].id > out[i - 1].id);
	}
	assert_string_equal(out[1].r.language, "de-AT");
	assert_null(out[0].r.outlet);

	/* resumed */
	assert_int_equal(
	    store_release_set_state(st, paused, STORE_RELEASE_ACTIVE, &d), 0);
	assert_int_equal(claim(st, now + 3600, 60, 64, out), 4);
	assert_int_equal(out[0].release_id, paused);

	/* a cancelled release stays cancelled */
	assert_int_equal(
	    store_release_set_state(st, gone, STORE_RELEASE_ACTIVE, &d), -1);
	assert_non_null(strstr(diag_first(&d), "cancelled"));
	diag_clear(&d);
	assert_int_equal(claim(st, now + 3600, 60, 64, out), 0);
}

static void test_claim_order_and_backoff(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10, when;
	int64_t a = add_release(st, "first", 3, 0, 0);
	int64_t b = add_release(st, "second", 3, 0, 0);
	int64_t ids[3];

	(void)b;
	/* two at a time: oldest first */
	assert_int_equal(claim(st, now, 60, 2, out), 2);
	assert_int_equal(out[0].release_id, a);
	assert_int_equal(out[1].release_id, a);
	ids[0] = out[0].id;
	ids[1] = out[1].id;
	/* deferred for ten minutes: not due before */
	record(st, ids[0], now, STORE_DEFERRED, now + 600, true, 451);
	record(st, ids[1], now, STORE_DEFERRED, now + 300, true, 451);
	assert_int_equal(claim(st, now + 1, 60, 8, out), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_not_equal(out[i].id, ids[0]);
		assert_int_not_equal(out[i].id, ids[1]);
	}
	for (int i = 0; i < 4; i++)
		record(st, out[i].id, now + 1, STORE_SENT, 0, true, 250);
	assert_int_equal(store_next_due(st, &when, &d), 0);
	assert_int_equal(when, now + 300);
	assert_int_equal(claim(st, now + 299, 60, 8, out), 0);
	assert_int_equal(claim(st, now + 600, 60, 8, out), 2);
	/* the earlier next_at first */
	assert_int_equal(out[0].id, ids[1]);
	assert_int_equal(out[1].id, ids[0]);
	assert_int_equal(out[0].attempts, 1);
	assert_int_equal(out[0].last_code, 451);
	diag_clear(&d);
}

static void test_lease(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10, when = 0;
	int64_t first[4];

	add_release(st, "lease", 4, 0, 0);
	assert_int_equal(claim(st, now, 60, 8, out), 4);
	for (int i = 0; i < 4; i++)
		first[i] = out[i].id;
	/* while the lease runs nobody gets them, up to its last second */
	for (time_t t = now; t <= now + 60; t += 10)
		assert_int_equal(claim(st, t, 60, 8, out), 0);
	assert_int_equal(store_next_due(st, &when, &d), 0);
	assert_int_equal(when, now + 61);
	/* the daemon died: after the lease they are due again, once */
	assert_int_equal(claim(st, now + 61, 60, 8, out), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(out[i].id, first[i]);
	assert_int_equal(claim(st, now + 61, 60, 8, out), 0);
	assert_int_equal(claim(st, now + 122, 60, 8, out), 4);
	diag_clear(&d);
}

/* ---- recording --------------------------------------------------------- */

static void test_record(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10; /* past every queued_at below */
	int64_t rid = add_release(st, "record", 5, 0, 0), id[5];
	struct store_attempt bad[2];
	struct got g;
	size_t n;

	assert_int_equal(claim(st, now, 60, 8, out), 5);
	for (int i = 0; i < 5; i++)
		id[i] = out[i].id;
	record(st, id[0], now, STORE_SENT, 0, true, 250);
	record(st, id[1], now, STORE_FAILED, 0, true, 550);
	record(st, id[2], now, STORE_DEFERRED, now + 300, true, 451);
	/* the relay's fault: an attempt row, but not charged */
	record(st, id[3], now, STORE_DEFERRED, now + 60, false, 421);
	g = delivery(st, id[0]);
	assert_int_equal(g.state, STORE_SENT);
	assert_int_equal(g.attempts, 1);
	assert_string_equal(g.release, "record");
	assert_int_equal(delivery(st, id[1]).state, STORE_FAILED);
	g = delivery(st, id[2]);
	assert_int_equal(g.state, STORE_DEFERRED);
	assert_int_equal(g.next_at, now + 300);
	assert_int_equal(g.last_code, 451);
	g = delivery(st, id[3]);
	assert_int_equal(g.state, STORE_DEFERRED);
	assert_int_equal(g.attempts, 0);

	/* a delivery cancelled while in flight: a late deferral keeps it
	 * cancelled, a late success says it went out */
	assert_int_equal(store_cancel(st, rid, &n, &d), 0);
	assert_int_equal(n, 3);
	record(st, id[2], now + 1, STORE_DEFERRED, now + 900, true, 451);
	assert_int_equal(delivery(st, id[2]).state, STORE_CANCELLED);
	record(st, id[4], now + 1, STORE_SENT, 0, true, 250);
	assert_int_equal(delivery(st, id[4]).state, STORE_SENT);
	/* a sent delivery stays sent */
	record(st, id[0], now + 2, STORE_DEFERRED, now + 900, true, 451);
	g = delivery(st, id[0]);
	assert_int_equal(g.state, STORE_SENT);
	assert_int_equal(g.last_code, 250);
	assert_int_equal(g.attempts, 2);

	/* a batch with an unknown delivery records nothing */
	memset(bad, 0, sizeof(bad));
	bad[0].delivery_id = id[1];
	bad[0].at = now;
	bad[0].result = STORE_SENT;
	bad[1].delivery_id = 999999;
	bad[1].at = now;
	bad[1].result = STORE_SENT;
	assert_int_equal(store_record(st, bad, 2, &d), -1);
	assert_non_null(strstr(diag_first(&d), "999999"));
	assert_int_equal(delivery(st, id[1]).state, STORE_FAILED);
	diag_clear(&d);
	/* no such delivery: fn is not called */
	g.state = STORE_BOUNCED;
	assert_int_equal(store_delivery_get(st, 999999, got_fn, &g, &d), 0);
	assert_int_equal(g.state, STORE_BOUNCED);
	/* queued is not a result */
	bad[0].result = STORE_QUEUED;
	assert_int_equal(store_record(st, bad, 1, &d), -1);
	diag_clear(&d);
}

static void test_unclaim(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10; /* past every queued_at below */
	int64_t ids[3];

	add_release(st, "unclaim", 3, 0, 0);
	assert_int_equal(claim(st, now, 900, 8, out), 3);
	for (int i = 0; i < 3; i++)
		ids[i] = out[i].id;
	record(st, ids[2], now, STORE_SENT, 0, true, 250);
	/* a relay fault: give them back until the relay may be tried */
	assert_int_equal(store_unclaim(st, ids, 3, now + 30, &d), 0);
	assert_int_equal(delivery(st, ids[0]).state, STORE_QUEUED);
	assert_int_equal(delivery(st, ids[0]).attempts, 0);
	assert_int_equal(delivery(st, ids[2]).state, STORE_SENT);
	assert_int_equal(claim(st, now + 29, 900, 8, out), 0);
	assert_int_equal(claim(st, now + 30, 900, 8, out), 2);
	/* tried before: back as deferred */
	record(st, ids[0], now + 30, STORE_DEFERRED, now + 40, false, 421);
	assert_int_equal(claim(st, now + 40, 900, 8, out), 1);
	assert_int_equal(store_unclaim(st, ids, 1, now + 50, &d), 0);
	assert_int_equal(delivery(st, ids[0]).state, STORE_DEFERRED);
	diag_clear(&d);
}

static int count_log_rows(void *arg, const struct store_log_row *r)
{
	(void)r;
	++*(size_t *)arg;
	return 0;
}

static void test_expire(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10; /* past every queued_at below */
	int64_t old = add_release(st, "old", 3, 0, 0);
	int64_t stale = add_release(st, "stale", 2, 0, now + 100);
	unsigned life = 5 * 86400;

	/* one of the old release in flight: not expired under it */
	assert_int_equal(claim(st, now, 60, 1, out), 1);
	assert_int_equal(out[0].release_id, old);
	assert_int_equal(store_expire(st, now + 99, life, &d), 0);
	/* stale_after passes */
	assert_int_equal(store_expire(st, now + 100, life, &d), 2);
	assert_int_equal(release_info(st, stale).count[STORE_EXPIRED], 2);
	assert_int_equal(release_info(st, old).count[STORE_QUEUED], 2);
	/* the delivery log says so, one row each */
	{
		struct store_log_filter f = {.release_id = stale,
		                             .by_result = true,
		                             .result = STORE_LOG_EXPIRED};
		size_t rows = 0;
		assert_int_equal(
		    store_attempts_each(st, &f, count_log_rows, &rows, &d), 0);
		assert_int_equal(rows, 2);
	}
	/* the lifetime passes */
	assert_int_equal(store_expire(st, now + life - 20, life, &d), 0);
	assert_int_equal(store_expire(st, now + life + 1, life, &d), 2);
	assert_int_equal(release_info(st, old).count[STORE_EXPIRED], 2);
	assert_int_equal(release_info(st, old).count[STORE_SENDING], 1);
	/* lifetime 0: only stale_after */
	add_release(st, "fresh", 2, 0, 0);
	assert_int_equal(store_expire(st, now + 10 * life, 0, &d), 0);
	diag_clear(&d);
}

static void test_cancel_and_retry(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10; /* past every queued_at below */
	int64_t rid = add_release(st, "retry", 5, 0, 0), ids[5];
	struct store_release_info info;
	size_t n;

	assert_int_equal(claim(st, now, 60, 8, out), 5);
	for (int i = 0; i < 5; i++)
		ids[i] = out[i].id;
	record(st, ids[0], now, STORE_FAILED, 0, true, 550);
	record(st, ids[1], now, STORE_FAILED, 0, true, 550);
	record(st, ids[2], now, STORE_DEFERRED, now + 3600, true, 451);
	record(st, ids[3], now, STORE_SENT, 0, true, 250);
	record(st, ids[4], now, STORE_FAILED, 0, true, 550);
	assert_int_equal(suppress(st, out[4].r.email, "hard bounce", &d), 0);
	/* only failed: the suppressed address stays failed */
	assert_int_equal(store_retry(st, rid, true, false, &n, &d), 0);
	assert_int_equal(n, 2);
	info = release_info(st, rid);
	assert_int_equal(info.count[STORE_QUEUED], 2);
	assert_int_equal(info.count[STORE_DEFERRED], 1);
	assert_int_equal(info.count[STORE_FAILED], 1);
	assert_int_equal(store_retry(st, rid, false, true, &n, &d), 0);
	assert_int_equal(n, 1);
	assert_int_equal(claim(st, time(NULL), 60, 8, out), 3);

	/* cancel: what is waiting or in flight */
	assert_int_equal(store_cancel(st, rid, &n, &d), 0);
	assert_int_equal(n, 3);
	info = release_info(st, rid);
	assert_int_equal(info.state, STORE_RELEASE_CANCELLED);
	assert_int_equal(info.count[STORE_CANCELLED], 3);
	assert_int_equal(info.count[STORE_SENT], 1);
	assert_int_equal(store_retry(st, rid, true, true, &n, &d), -1);
	diag_clear(&d);
	assert_int_equal(store_cancel(st, 4242, &n, &d), -1);
	assert_non_null(strstr(diag_first(&d), "4242"));
	diag_clear(&d);
}

/* ---- what admins read -------------------------------------------------- */

struct log {
	size_t n;
	unsigned attempt[16];
	int64_t delivery[16];
	char release[64];
};

static int log_fn(void *arg, const struct store_log_row *r)
{
	struct log *l = arg;

	if (l->n < 16) {
		l->attempt[l->n] = r->attempt;
		l->delivery[l->n] = r->delivery_id;
	}
	snprintf(l->release, sizeof(l->release), "%s", r->release);
	l->n++;
	return 0;
}

static struct log log_of(struct store *st, const struct store_log_filter *f)
{
	struct log l;
	struct diag d = {0};

	memset(&l, 0, sizeof(l));
	if (store_attempts_each(st, f, log_fn, &l, &d) < 0)
		fail_msg("attempts_each: %s", diag_first(&d));
	diag_clear(&d);
	return l;
}

static int stop_fn(void *arg, const struct store_log_row *r)
{
	(void)r;
	(*(int *)arg)++;
	return 1;
}

static void test_attempts_each(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct store_log_filter f;
	struct diag d = {0};
	time_t now = time(NULL) + 10; /* past every queued_at below */
	int64_t r1 = add_release(st, "log-one", 2, 0, 0);
	int64_t r2 = add_release(st, "log-two", 2, 0, 0);
	int64_t a, b;
	struct log l;
	int calls = 0;

	assert_int_equal(claim(st, now, 60, 8, out), 4);
	a = out[0].id; /* r1, j0 */
	b = out[2].id; /* r2, j0 */
	assert_int_equal(out[2].release_id, r2);
	record(st, a, now, STORE_DEFERRED, now + 10, true, 451);
	record(st, out[1].id, now, STORE_SENT, 0, true, 250);
	record(st, b, now + 5, STORE_SENT, 0, true, 250);
	record(st, out[3].id, now + 5, STORE_FAILED, 0, true, 550);
	assert_int_equal(claim(st, now + 10, 60, 8, out), 1);
	record(st, a, now + 10, STORE_DEFERRED, now + 20, false, 421);
	assert_int_equal(claim(st, now + 20, 60, 8, out), 1);
	record(st, a, now + 20, STORE_SENT, 0, true, 250);

	memset(&f, 0, sizeof(f));
	assert_int_equal(log_of(st, &f).n, 6);
	f.release_id = r1;
	l = log_of(st, &f);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.release, "log-one");
	f.email = "j0@EXAMPLE.ORG";
	l = log_of(st, &f);
	assert_int_equal(l.n, 3);
	/* every try numbered, the uncharged one too */
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(l.delivery[i], a);
		assert_int_equal(l.attempt[i], i + 1);
	}
	f.release_id = 0;
	assert_int_equal(log_of(st, &f).n, 4);
	f.by_result = true;
	f.result = STORE_LOG_SENT;
	assert_int_equal(log_of(st, &f).n, 2);
	f.since = now + 10;
	l = log_of(st, &f);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.attempt[0], 3);
	memset(&f, 0, sizeof(f));
	f.by_result = true;
	f.result = STORE_LOG_FAILED;
	l = log_of(st, &f);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.release, "log-two");
	f.by_result = false;
	f.since = now + 5;
	assert_int_equal(log_of(st, &f).n, 4);
	/* fn stops the walk */
	assert_int_equal(store_attempts_each(st, NULL, stop_fn, &calls, &d), 0);
	assert_int_equal(calls, 1);
	diag_clear(&d);
}

struct listing {
	size_t n;
	int64_t id[8];
	size_t total[8], sent[8];
};

static int listing_fn(void *arg, const struct store_release_info *r)
{
	struct listing *l = arg;

	l->id[l->n] = r->id;
	l->total[l->n] = r->total;
	l->sent[l->n] = r->count[STORE_SENT];
	l->n++;
	return 0;
}

static void test_releases_each_and_find(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	struct listing l;
	/* the name again, for other addresses (only_new) */
	int64_t a =
	    add_release_to(st, "report-launch", 3, "example.net", false, 0, 0);
	int64_t b = add_release(st, "other", 2, 0, 0);
	int64_t c = add_release_to(st, "report-launch", 4, "example.org", true,
	                           time(NULL) + 99, 0);
	int64_t found;
	char num[32];

	assert_int_equal(claim(st, time(NULL), 60, 2, out), 2);
	record(st, out[0].id, time(NULL), STORE_SENT, 0, true, 250);
	record(st, out[1].id, time(NULL), STORE_SENT, 0, true, 250);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_releases_each(st, 0, listing_fn, &l, &d), 0);
	assert_int_equal(l.n, 3);
	/* newest first */
	assert_int_equal(l.id[0], c);
	assert_int_equal(l.id[1], b);
	assert_int_equal(l.id[2], a);
	assert_int_equal(l.total[0], 4);
	assert_int_equal(l.total[2], 3);
	assert_int_equal(l.sent[2], 2);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_releases_each(st, b, listing_fn, &l, &d), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.id[0], b);
	assert_int_equal(store_releases_each(st, 777, listing_fn, &l, &d), -1);
	diag_clear(&d);

	/* by name: the newest; by number */
	assert_int_equal(store_release_find(st, "report-launch", &found, &d),
	                 0);
	assert_int_equal(found, c);
	snprintf(num, sizeof(num), "%" PRId64, a);
	assert_int_equal(store_release_find(st, num, &found, &d), 0);
	assert_int_equal(found, a);
	assert_int_equal(store_release_find(st, "nothing", &found, &d), -1);
	assert_non_null(strstr(diag_first(&d), "nothing"));
	diag_clear(&d);
	assert_int_equal(store_release_find(st, "12345", &found, &d), -1);
	diag_clear(&d);

	/* an address: in one release, or the newest of any (b and c have
	 * it) */
	assert_int_equal(
	    store_delivery_find(st, a, "j1@Example.net", &found, &d), 0);
	assert_string_equal(delivery(st, found).email, "j1@example.net");
	assert_int_equal(delivery(st, found).state, STORE_SENT);
	assert_int_equal(
	    store_delivery_find(st, 0, "j1@example.org", &found, &d), 0);
	assert_int_equal(delivery(st, found).state, STORE_QUEUED);
	assert_string_equal(delivery(st, found).release, "report-launch");
	assert_int_equal(
	    store_delivery_find(st, b, "j3@example.org", &found, &d), -1);
	diag_clear(&d);
}

struct files {
	size_t n;
	char path[4][32];
	unsigned char data[4][300];
	size_t len[4];
};

static int files_fn(void *arg, const struct store_file *f)
{
	struct files *fs = arg;

	assert_true(fs->n < 4 && f->len <= 300);
	snprintf(fs->path[fs->n], sizeof(fs->path[0]), "%s", f->path);
	memcpy(fs->data[fs->n], f->data, f->len);
	fs->len[fs->n] = f->len;
	fs->n++;
	return 0;
}

static int files_fail_fn(void *arg, const struct store_file *f)
{
	(void)arg;
	(void)f;
	return -1;
}

static void test_release_files(void **state)
{
	struct store *st = case_store(state);
	unsigned char bin[256];
	struct store_file files[3] = {
	    {"release/release.yaml", "name: x\n", 8},
	    {"release/logo.png", bin, sizeof(bin)},
	    {"release/empty.txt", NULL, 0},
	};
	struct store_release_new rn = {
	    "files", "src", "release", "coalition.yaml", 0, 0, files, 3};
	struct store_release_added out;
	struct store_release_info info;
	struct diag d = {0};
	struct files fs;
	struct rcpts r;
	int64_t id;
	char rd[64], co[64], tiny[4];

	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	rcpts_make(&r, "files", 2, "example.org");
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), 0);
	id = out.release_id;
	memset(&fs, 0, sizeof(fs));
	assert_int_equal(store_release_files(st, id, files_fn, &fs, &d), 0);
	assert_int_equal(fs.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(fs.path[i], files[i].path);
		assert_int_equal(fs.len[i], files[i].len);
		if (files[i].len)
			assert_memory_equal(fs.data[i], files[i].data,
			                    files[i].len);
	}
	assert_int_equal(store_release_files(st, id, files_fail_fn, NULL, &d),
	                 -1);
	assert_int_equal(d.errors, 0);
	assert_int_equal(store_release_files(st, id + 1, files_fn, &fs, &d),
	                 -1);
	diag_clear(&d);

	assert_int_equal(store_release_get(st, id, &info, rd, sizeof(rd), co,
	                                   sizeof(co), &d),
	                 0);
	assert_string_equal(rd, "release");
	assert_string_equal(co, "coalition.yaml");
	assert_int_equal(info.total, 2);
	assert_int_equal(
	    store_release_get(st, id, &info, tiny, sizeof(tiny), NULL, 0, &d),
	    -1);
	diag_clear(&d);

	/* the same path twice: nothing queued */
	files[2].path = files[0].path;
	rn.name = "files2";
	rcpts_free(&r);
	rcpts_make(&r, "files2", 2, "example.org");
	assert_int_equal(queue(st, &rn, r.v, r.n, &out, &d), -1);
	assert_int_equal(count_releases(st), 1);
	diag_clear(&d);
	rcpts_free(&r);
}

/* ---- two handles, two processes ----------------------------------------- */

static void test_two_handles(void **state)
{
	struct store *daemon = case_store(state);
	struct store *cli = open_ok(case_where(state));
	struct store_delivery out[16];
	time_t now = time(NULL) + 10; /* past every queued_at below */
	int64_t r1, r2;

	r1 = add_release(cli, "two-a", 10, 0, 0);
	assert_int_equal(claim(daemon, now, 60, 4, out), 4);
	r2 = add_release(cli, "two-b", 10, 0, 0);
	record(daemon, out[0].id, now, STORE_SENT, 0, true, 250);
	assert_int_equal(release_info(cli, r1).count[STORE_SENT], 1);
	assert_int_equal(release_info(cli, r1).count[STORE_SENDING], 3);
	assert_int_equal(claim(daemon, now, 60, 16, out), 16);
	assert_int_equal(out[15].release_id, r2);
	assert_int_equal(claim(daemon, now, 60, 16, out), 0);
	store_close(cli);
}

/* A child process queues releases while this one claims: every delivery
 * is claimed exactly once, and neither side sees "busy". */
static void test_two_processes(void **state)
{
	const char *where = case_where(state);
	struct store *st = case_store(state);
	enum { RELEASES = 5, EACH = 2000, TOTAL = RELEASES * EACH };
	struct store_delivery out[100];
	unsigned char *seen = calloc(TOTAL + 1, 1);
	struct timespec t0;
	size_t claimed = 0;
	int status;
	pid_t pid;

	assert_non_null(seen);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct diag d = {0};
		struct store *c = store_open(where, &d);
		for (int i = 0; c != NULL && i < RELEASES; i++) {
			char tag[32];
			struct store_release_new rn = {
			    tag, "src", "release", "coalition.yaml",
			    0,   0,     NULL,      0};
			struct store_release_added added;
			struct rcpts r;
			snprintf(tag, sizeof(tag), "procs%d", i);
			rcpts_make(&r, tag, EACH, "example.org");
			if (queue(c, &rn, r.v, r.n, &added, &d) != 0) {
				fprintf(stderr, "child: %s\n", diag_first(&d));
				_exit(1);
			}
			rcpts_free(&r);
		}
		if (c == NULL)
			fprintf(stderr, "child: %s\n", diag_first(&d));
		_exit(c == NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (claimed < TOTAL && seconds_since(&t0) < 120) {
		int n = claim(st, time(NULL), 600, 100, out);
		struct store_attempt a[100];
		struct diag d = {0};

		if (n == 0) {
			sched_yield();
			continue;
		}
		for (int i = 0; i < n; i++) {
			assert_true(out[i].id >= 1 && out[i].id <= TOTAL);
			assert_int_equal(seen[out[i].id], 0);
			seen[out[i].id] = 1;
			memset(&a[i], 0, sizeof(a[i]));
			a[i].delivery_id = out[i].id;
			a[i].at = time(NULL);
			a[i].code = 250;
			a[i].result = STORE_SENT;
			a[i].counts = true;
		}
		if (store_record(st, a, (size_t)n, &d) < 0)
			fail_msg("record: %s", diag_first(&d));
		claimed += (size_t)n;
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(claimed, TOTAL);
	free(seen);
}

/* ---- size -------------------------------------------------------------- */

static void test_large_release(void **state)
{
	struct store *st = case_store(state);
	struct store_release_new rn = {
	    "large", "src", "release", "coalition.yaml", 0, 0, NULL, 0};
	struct store_release_added added;
	enum { N = 100000, BATCH = 100 };
	struct store_delivery out[BATCH];
	struct store_attempt a[BATCH];
	struct timespec t0;
	struct diag d = {0};
	struct rcpts r;
	double add, claiming = 0, recording = 0, expire, next;
	time_t now, when;
	size_t total = 0;

	assert_int_equal(suppress(st, "j777@example.net", "test", &d), 0);
	rcpts_make(&r, "large", N, "example.net");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (queue(st, &rn, r.v, r.n, &added, &d) != 0)
		fail_msg("release_add_each: %s", diag_first(&d));
	add = seconds_since(&t0);
	assert_int_equal(added.suppressed, 1);
	rcpts_free(&r);

	now = time(NULL);
	for (;;) {
		int n;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		n = claim(st, now, 600, BATCH, out);
		claiming += seconds_since(&t0);
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			memset(&a[i], 0, sizeof(a[i]));
			a[i].delivery_id = out[i].id;
			a[i].at = now;
			a[i].relay = "smtp://127.0.0.1:2525";
			a[i].code = 250;
			a[i].text = "2.0.0 Ok: queued as 4Xyz";
			a[i].result = STORE_SENT;
			a[i].counts = true;
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (store_record(st, a, (size_t)n, &d) < 0)
			fail_msg("record: %s", diag_first(&d));
		recording += seconds_since(&t0);
		total += (size_t)n;
	}
	assert_int_equal(total, N - 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_expire(st, now + 86400, 3600, &d), 0);
	expire = seconds_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_next_due(st, &when, &d), 0);
	next = seconds_since(&t0);
	assert_int_equal(when, 0);
	assert_int_equal(release_info(st, added.release_id).count[STORE_SENT],
	                 N - 1);
	printf("store: release_add_each of %d recipients: %.3f s\n", N, add);
	printf("store: claiming them %d at a time: %.3f s (%zu claims); "
	       "recording: %.3f s\n",
	       BATCH, claiming, (total + BATCH - 1) / BATCH, recording);
	printf("store: expire over them: %.4f s, next_due: %.4f s\n", expire,
	       next);
	diag_clear(&d);
}

/* ---- the bounce mailbox ------------------------------------------------- */

struct mid {
	char id[128];
};

static int mid_fn(void *arg, const struct store_delivery *dl,
                  const char *release)
{
	(void)release;
	snprintf(((struct mid *)arg)->id, sizeof(((struct mid *)arg)->id), "%s",
	         dl->r.message_id);
	return 0;
}

/* The caller's answer for a Message-ID that is herald's keyed one (what
 * inbox.c computes under the bounce secret): these tests' are. */
static bool keyed_yes(const void *arg, const char *release, const char *email,
                      const char *message_id)
{
	(void)arg;
	return release != NULL && email != NULL && message_id != NULL;
}

static bool keyed_no(const void *arg, const char *release, const char *email,
                     const char *message_id)
{
	(void)arg;
	(void)release;
	(void)email;
	(void)message_id;
	return false;
}

static bool event(struct store *st, struct store_event *ev, int64_t want_id)
{
	struct diag d = {0};
	int64_t id = -1;
	bool sup = true;

	if (store_event_record(st, ev, &id, &sup, &d) < 0)
		fail_msg("event_record: %s", diag_first(&d));
	if (id != want_id)
		fail_msg("matched delivery %lld, expected %lld", (long long)id,
		         (long long)want_id);
	diag_clear(&d);
	return sup;
}

static bool is_suppressed(struct store *st, const char *email)
{
	struct diag d = {0};
	bool yes = false;

	assert_int_equal(suppressed(st, email, &yes, &d), 0);
	return yes;
}

static void test_events(void **state)
{
	struct store *st = case_store(state);
	struct mid m1 = {{0}}, m2 = {{0}}, m4 = {{0}}, m5 = {{0}};
	struct diag d = {0};
	char key1[128], key2[128], key5[128];

	add_release(st, "ev", 5, 0, 0);
	assert_int_equal(store_delivery_get(st, 1, mid_fn, &m1, &d), 0);
	assert_int_equal(store_delivery_get(st, 2, mid_fn, &m2, &d), 0);
	assert_int_equal(store_delivery_get(st, 4, mid_fn, &m4, &d), 0);
	assert_int_equal(store_delivery_get(st, 5, mid_fn, &m5, &d), 0);
	snprintf(key1, sizeof(key1), "%.*s", (int)strcspn(m1.id, "@"), m1.id);
	snprintf(key2, sizeof(key2), "%.*s", (int)strcspn(m2.id, "@"), m2.id);
	snprintf(key5, sizeof(key5), "%.*s", (int)strcspn(m5.id, "@"), m5.id);

	/* herald-web finds a token's delivery by its key without acting;
	 * an unknown, short or wildcard key finds none, without failing */
	{
		int64_t byk = -1;
		assert_int_equal(store_delivery_by_key(st, key2, &byk, &d), 0);
		assert_int_equal(byk, 2);
		assert_int_equal(store_delivery_by_key(st, key5, &byk, &d), 0);
		assert_int_equal(byk, 5);
		assert_int_equal(store_delivery_by_key(
		                     st, "0123456789abcdef0123456789abcdef",
		                     &byk, &d),
		                 0);
		assert_int_equal(byk, 0);
		assert_int_equal(
		    store_delivery_by_key(st, "ev.1@herald.test", &byk, &d), 0);
		assert_int_equal(byk, 0);
		assert_int_equal(store_delivery_by_key(st, NULL, &byk, &d), 0);
		assert_int_equal(byk, 0);
		assert_int_equal(delivery(st, 2).state, STORE_QUEUED);
	}

	/* a hard bounce found by its VERP key: bounced and suppressed */
	{
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .message_key = key1,
		                         .status = "5.1.1",
		                         .reason = "userunknown",
		                         .hard = 1,
		                         .raw = "raw",
		                         .rawlen = 3};
		assert_true(event(st, &ev, 1));
		assert_int_equal(delivery(st, 1).state, STORE_BOUNCED);
		assert_true(is_suppressed(st, "j0@example.org"));
	}
	/* soft bounces by token: the third within the window suppresses;
	 * those matched by address only are kept and do not count */
	{
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .message_key = key2,
		                         .email = "j1@EXAMPLE.org",
		                         .reason = "mailboxfull",
		                         .hard = 0};
		struct store_event by_addr = ev;
		by_addr.message_key = NULL;
		for (int i = 0; i < 4; i++)
			assert_false(event(st, &by_addr, 0));
		assert_false(event(st, &ev, 2));
		assert_false(event(st, &ev, 2));
		assert_false(is_suppressed(st, "j1@example.org"));
		assert_true(event(st, &ev, 2));
		assert_true(is_suppressed(st, "j1@example.org"));
	}
	/* a hard bounce matched by address only, or by a Message-ID that is
	 * not herald's keyed one: kept for review, nothing changes */
	{
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .email = "j3@example.org",
		                         .reason = "userunknown",
		                         .hard = 1};
		struct store_event by_id = {.kind = STORE_EVENT_COMPLAINT,
		                            .message_id = m4.id,
		                            .id_keyed = keyed_no};
		assert_false(event(st, &ev, 0));
		assert_false(event(st, &by_id, 0));
		assert_false(is_suppressed(st, "j3@example.org"));
		assert_int_equal(delivery(st, 4).state, STORE_QUEUED);
	}
	/* the sender's fault (blocked, spam): nothing changes */
	{
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .email = "j2@example.org",
		                         .reason = "blocked",
		                         .hard = -1};
		assert_false(event(st, &ev, 3));
		assert_false(is_suppressed(st, "j2@example.org"));
		assert_int_not_equal(delivery(st, 3).state, STORE_BOUNCED);
	}
	/* a complaint found by the returned keyed Message-ID */
	{
		struct store_event ev = {.kind = STORE_EVENT_COMPLAINT,
		                         .message_id = m4.id,
		                         .id_keyed = keyed_yes};
		assert_true(event(st, &ev, 4));
		assert_int_equal(delivery(st, 4).state, STORE_COMPLAINED);
		assert_true(is_suppressed(st, "j3@example.org"));
	}
	/* an unsubscribe request by VERP key suppresses the address */
	{
		struct store_event ev = {.kind = STORE_EVENT_UNSUBSCRIBE,
		                         .message_key = key5};
		assert_true(event(st, &ev, 5));
		assert_true(is_suppressed(st, "j4@example.org"));
	}
	/* an auto-reply changes nothing; an unknown address stays unmatched */
	{
		struct store_event ev = {.kind = STORE_EVENT_AUTOREPLY,
		                         .email = "j2@example.org"};
		assert_false(event(st, &ev, 3));
		struct store_event un = {.kind = STORE_EVENT_BOUNCE,
		                         .email = "nobody@elsewhere.test",
		                         .hard = 1};
		/* unmatched: kept for review, changes nothing */
		assert_false(event(st, &un, 0));
		assert_false(is_suppressed(st, "nobody@elsewhere.test"));
	}
	diag_clear(&d);
}

/* The IMAP reader's place per mailbox: nothing for a new mailbox, then
 * what was set last, kept across a reopen, one row per URL. */
static void test_imap_place(void **state)
{
	struct store *st = case_store(state);
	const char *a = "imaps://herald@127.0.0.1:993/INBOX";
	const char *b = "imap://herald@127.0.0.1:143/Bounces";
	struct diag d = {0};
	uint32_t uv = 9, last = 9;

	assert_int_equal(store_imap_place_get(st, a, &uv, &last, &d), 0);
	assert_int_equal(uv, 0);
	assert_int_equal(last, 0);
	assert_int_equal(store_imap_place_set(st, a, 1700000000, 5, &d), 0);
	assert_int_equal(store_imap_place_set(st, b, 42, 1, &d), 0);
	assert_int_equal(store_imap_place_set(st, a, 1700000000, 7, &d), 0);
	st = case_reopen(state);
	assert_int_equal(store_imap_place_get(st, a, &uv, &last, &d), 0);
	assert_int_equal(uv, 1700000000);
	assert_int_equal(last, 7);
	assert_int_equal(store_imap_place_get(st, b, &uv, &last, &d), 0);
	assert_int_equal(uv, 42);
	assert_int_equal(last, 1);
	/* UIDVALIDITY changed: the reader starts the folder again; UIDs
	 * up to 2^32-1 survive the round trip */
	assert_int_equal(store_imap_place_set(st, a, 4294967295u, 0, &d), 0);
	assert_int_equal(store_imap_place_get(st, a, &uv, &last, &d), 0);
	assert_int_equal(uv, 4294967295u);
	assert_int_equal(last, 0);
	assert_int_equal(store_imap_place_set(st, a, 3, 4294967295u, &d), 0);
	assert_int_equal(store_imap_place_get(st, a, &uv, &last, &d), 0);
	assert_int_equal(last, 4294967295u);
	assert_int_equal(d.errors, 0);
}

/* ---- the suppression list ---------------------------------------------- */

/* The suppression list as store_suppressions_each gives it. */
struct sups {
	size_t n;
	char email[8][64], reason[8][64], rule[8][64], evidence[8][128];
	time_t at[8];
};

static int sups_fn(void *arg, const struct store_suppression *sp)
{
	struct sups *l = arg;

	if (l->n < 8) {
		snprintf(l->email[l->n], sizeof(l->email[0]), "%s", sp->email);
		snprintf(l->reason[l->n], sizeof(l->reason[0]), "%s",
		         sp->reason ? sp->reason : "(none)");
		snprintf(l->rule[l->n], sizeof(l->rule[0]), "%s",
		         sp->rule ? sp->rule : "(none)");
		snprintf(l->evidence[l->n], sizeof(l->evidence[0]), "%s",
		         sp->evidence ? sp->evidence : "(none)");
		l->at[l->n] = sp->at;
	}
	l->n++;
	return 0;
}

static struct sups sups_of(struct store *st)
{
	struct sups l;
	struct diag d = {0};

	memset(&l, 0, sizeof(l));
	if (store_suppressions_each(st, sups_fn, &l, &d) < 0)
		fail_msg("suppressions_each: %s", diag_first(&d));
	diag_clear(&d);
	return l;
}

/* The entry of email in l, or the test fails. */
static size_t sup_entry(const struct sups *l, const char *email)
{
	for (size_t i = 0; i < l->n && i < 8; i++)
		if (strcmp(l->email[i], email) == 0)
			return i;
	fail_msg("%s is not on the suppression list", email);
	return 0;
}

/* An import adds all of its entries or none; an address listed already
 * keeps its first reason, time, rule and evidence; what waits for an
 * address added is suppressed at once; the list comes by address; an
 * address taken off is mailed by later queues only. */
static void test_suppression_list(void **state)
{
	struct store *st = case_store(state);
	struct store_suppression v[3] = {
	    {.email = "j2@Example.org",
	     .reason = "bounced",
	     .at = 1000,
	     .rule = "status+text",
	     .evidence = "event 1, line 3: Status: 5.1.1"},
	    {.email = "a@example.net", .reason = "asked", .rule = "admin"},
	    {.email = NULL},
	};
	int64_t rid = add_release(st, "suplist", 3, 0, 0), later;
	time_t before = time(NULL);
	struct diag d = {0};
	size_t added = 99, i;
	struct sups l;
	bool removed;

	/* an entry without an address: none of them goes in */
	assert_int_equal(store_suppress_import(st, v, 3, &added, &d), -1);
	diag_clear(&d);
	assert_int_equal(sups_of(st).n, 0);
	assert_int_equal(release_info(st, rid).count[STORE_QUEUED], 3);
	assert_int_equal(store_suppress_import(st, v, 2, &added, &d), 0);
	assert_int_equal(added, 2);
	assert_int_equal(release_info(st, rid).count[STORE_SUPPRESSED], 1);
	/* listed again: nothing new, the first entry stays */
	v[0].reason = "again";
	v[0].rule = "import";
	assert_int_equal(store_suppress_import(st, v, 1, &added, &d), 0);
	assert_int_equal(added, 0);
	l = sups_of(st);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.email[0], "a@example.net");
	assert_true(l.at[0] >= before); /* at 0: now */
	assert_string_equal(l.rule[0], "admin");
	assert_string_equal(l.evidence[0], "(none)");
	i = sup_entry(&l, "j2@example.org");
	assert_int_equal(i, 1);
	assert_string_equal(l.reason[i], "bounced");
	assert_int_equal(l.at[i], 1000);
	assert_string_equal(l.rule[i], "status+text");
	assert_string_equal(l.evidence[i], "event 1, line 3: Status: 5.1.1");
	/* taken off (the domain in any case): what was suppressed stays so,
	 * a later release mails it */
	assert_int_equal(
	    store_suppress_remove(st, "j2@EXAMPLE.org", &removed, &d), 0);
	assert_true(removed);
	assert_int_equal(
	    store_suppress_remove(st, "j2@example.org", &removed, &d), 0);
	assert_false(removed);
	assert_int_equal(release_info(st, rid).count[STORE_SUPPRESSED], 1);
	later = add_release(st, "suplist-later", 3, 0, 0);
	assert_int_equal(release_info(st, later).count[STORE_SUPPRESSED], 0);
	assert_int_equal(sups_of(st).n, 1);
	diag_clear(&d);
}

/* ---- the bounce mailbox's events, as admins read them ------------------ */

struct evrows {
	size_t n;
	int64_t id[8], delivery[8], release_id[8];
	enum store_event_kind kind[8];
	char release[8][64], matched_by[8][16];
	bool held[8];
	size_t rawlen[8];
};

static int evrows_fn(void *arg, const struct store_event_row *r)
{
	struct evrows *l = arg;

	if (l->n < 8) {
		l->id[l->n] = r->id;
		l->delivery[l->n] = r->delivery_id;
		l->release_id[l->n] = r->release_id;
		l->kind[l->n] = r->kind;
		snprintf(l->release[l->n], sizeof(l->release[0]), "%s",
		         r->release ? r->release : "(none)");
		snprintf(l->matched_by[l->n], sizeof(l->matched_by[0]), "%s",
		         r->matched_by ? r->matched_by : "(none)");
		l->held[l->n] = r->held != NULL;
		l->rawlen[l->n] = r->rawlen;
	}
	l->n++;
	return 0;
}

static struct evrows events_of(struct store *st,
                               const struct store_event_filter *f)
{
	struct evrows l;
	struct diag d = {0};

	memset(&l, 0, sizeof(l));
	if (store_events_each(st, f, evrows_fn, &l, &d) < 0)
		fail_msg("events_each: %s", diag_first(&d));
	diag_clear(&d);
	return l;
}

static size_t count_events(struct store *st)
{
	struct store_event_filter all = {0};

	return events_of(st, &all).n;
}

/* An event with a source is recorded and acted on once: the same message
 * read again (a crash before the reader saved its place) changes nothing;
 * another event of the same message, or the same UID under another
 * UIDVALIDITY, is new. */
static void test_event_source_once(void **state)
{
	struct store *st = case_store(state);
	const char *src =
	    "imaps://h@127.0.0.1:993/INBOX;UIDVALIDITY=7/;UID=3#0";
	struct diag d = {0};
	int64_t id = -1;
	bool sup = false;
	struct mid m2 = {{0}};
	char key2[128];
	struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
	                         .message_key = key2,
	                         .email = "j1@example.org",
	                         .reason = "mailboxfull",
	                         .hard = 0,
	                         .source = src};

	add_release(st, "once", 3, 0, 0);
	assert_int_equal(store_delivery_get(st, 2, mid_fn, &m2, &d), 0);
	snprintf(key2, sizeof(key2), "%.*s", (int)strcspn(m2.id, "@"), m2.id);
	assert_int_equal(store_event_record(st, &ev, &id, &sup, &d), 0);
	assert_int_equal(id, 2);
	for (int i = 0; i < 3; i++) {
		id = -1;
		assert_int_equal(store_event_record(st, &ev, &id, &sup, &d), 1);
		assert_int_equal(id, 0);
		assert_false(sup);
	}
	/* three soft bounces would suppress: only one was counted */
	assert_false(is_suppressed(st, "j1@example.org"));
	assert_int_equal(count_events(st), 1);
	ev.source = "imaps://h@127.0.0.1:993/INBOX;UIDVALIDITY=7/;UID=3#1";
	assert_int_equal(store_event_record(st, &ev, &id, &sup, &d), 0);
	ev.source = "imaps://h@127.0.0.1:993/INBOX;UIDVALIDITY=8/;UID=3#0";
	assert_int_equal(store_event_record(st, &ev, &id, &sup, &d), 0);
	assert_true(sup); /* the third soft bounce */
	/* without a source, every call is an event (the Maildir reader) */
	ev.source = NULL;
	assert_int_equal(store_event_record(st, &ev, &id, &sup, &d), 0);
	assert_int_equal(store_event_record(st, &ev, &id, &sup, &d), 0);
	assert_int_equal(count_events(st), 5);
	assert_int_equal(d.errors, 0);
}

/* The events oldest first, all of them, of a release, those not acted on
 * (held, with why, or matched to nothing), since a time; the message kept
 * with each; a reply asking to be removed waits for an admin, and acts
 * once confirmed, once. */
static void test_event_list(void **state)
{
	struct store *st = case_store(state);
	int64_t r1 = add_release(st, "evlist-one", 2, 0, 0);
	int64_t r2 = add_release(st, "evlist-two", 2, 0, 0);
	struct store_event_filter f = {0};
	struct diag d = {0};
	struct mid m = {{0}};
	struct evrows l;
	int64_t d1, d2;
	char key[128], *raw = NULL, *email = NULL;
	size_t len = 0;
	bool yes;

	assert_int_equal(store_delivery_find(st, r1, "j0@example.org", &d1, &d),
	                 0);
	assert_int_equal(store_delivery_find(st, r2, "j1@example.org", &d2, &d),
	                 0);
	assert_int_equal(store_delivery_get(st, d1, mid_fn, &m, &d), 0);
	snprintf(key, sizeof(key), "%.*s", (int)strcspn(m.id, "@"), m.id);
	{
		/* by token: acted on */
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .message_key = key,
		                         .status = "5.1.1",
		                         .reason = "userunknown",
		                         .hard = 1,
		                         .raw = "raw one",
		                         .rawlen = 7};
		assert_true(event(st, &ev, d1));
	}
	{
		/* a reply without a token: matched to the newest delivery of
		 * the address, held for an admin (the call says it matched
		 * none: it acted on none) */
		struct store_event ev = {.kind = STORE_EVENT_UNSUBSCRIBE,
		                         .email = "j1@example.org",
		                         .raw = "please remove me",
		                         .rawlen = 16};
		assert_false(event(st, &ev, 0));
	}
	{
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .email = "nobody@elsewhere.test",
		                         .hard = 1};
		assert_false(event(st, &ev, 0));
	}

	l = events_of(st, &f);
	assert_int_equal(l.n, 3);
	assert_true(l.id[0] < l.id[1] && l.id[1] < l.id[2]);
	assert_int_equal(l.kind[0], STORE_EVENT_BOUNCE);
	assert_int_equal(l.delivery[0], d1);
	assert_int_equal(l.release_id[0], r1);
	assert_string_equal(l.release[0], "evlist-one");
	assert_string_equal(l.matched_by[0], "verp");
	assert_false(l.held[0]);
	assert_int_equal(l.rawlen[0], 7);
	assert_int_equal(l.kind[1], STORE_EVENT_UNSUBSCRIBE);
	assert_int_equal(l.delivery[1], d2);
	assert_string_equal(l.matched_by[1], "address");
	assert_true(l.held[1]);
	assert_int_equal(l.delivery[2], 0);
	assert_int_equal(l.release_id[2], 0);
	f.release_id = r1;
	assert_int_equal(events_of(st, &f).n, 1);
	f.release_id = 0;
	f.unmatched = true;
	assert_int_equal(events_of(st, &f).n, 2);
	f.unmatched = false;
	f.since = time(NULL) + 3600;
	assert_int_equal(events_of(st, &f).n, 0);
	f.since = 0;

	/* the message kept with an event */
	assert_int_equal(store_event_raw(st, l.id[1], &raw, &len, &d), 0);
	assert_int_equal(len, 16);
	assert_memory_equal(raw, "please remove me", 16);
	free(raw);
	assert_int_equal(store_event_raw(st, l.id[2] + 100, &raw, &len, &d),
	                 -1);
	diag_clear(&d);

	/* confirmed: the address goes on the list, by the event, once */
	assert_int_equal(store_event_confirm(st, l.id[2], &email, &d), -1);
	assert_null(email);
	diag_clear(&d);
	assert_int_equal(suppressed(st, "j1@example.org", &yes, &d), 0);
	assert_false(yes);
	assert_int_equal(store_event_confirm(st, l.id[1], &email, &d), 0);
	assert_string_equal(email, "j1@example.org");
	free(email);
	email = NULL;
	assert_true(is_suppressed(st, "j1@example.org"));
	{
		struct sups s = sups_of(st);
		size_t i = sup_entry(&s, "j1@example.org");
		char ev[32];
		snprintf(ev, sizeof(ev), "event %" PRId64, l.id[1]);
		assert_string_equal(s.rule[i], "confirmed");
		assert_string_equal(s.evidence[i], ev);
	}
	assert_int_equal(store_event_confirm(st, l.id[1], &email, &d), -1);
	diag_clear(&d);
	f.unmatched = true;
	assert_int_equal(events_of(st, &f).n, 1);
}

/* ---- what admins see is true ------------------------------------------- */

/* A release with nothing left to send or retry is done: claims skip it,
 * it cannot be paused, a retry makes it active again; a release of
 * suppressed addresses only is done at once, and one whose last waiting
 * delivery is suppressed or expires is done. */
static void test_release_done(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10;
	int64_t rid = add_release(st, "done", 3, 0, 0), other;
	size_t n;

	assert_string_equal(store_release_state_name(STORE_RELEASE_DONE),
	                    "done");
	assert_int_equal(claim(st, now, 60, 8, out), 3);
	record(st, out[0].id, now, STORE_SENT, 0, true, 250);
	record(st, out[1].id, now, STORE_FAILED, 0, true, 550);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_ACTIVE);
	record(st, out[2].id, now, STORE_DEFERRED, now + 60, true, 451);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_ACTIVE);
	assert_int_equal(claim(st, now + 60, 60, 8, out), 1);
	record(st, out[0].id, now + 60, STORE_SENT, 0, true, 250);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_DONE);

	/* claims skip it; pausing it is refused, saying why */
	assert_int_equal(claim(st, now + 3600, 60, 8, out), 0);
	assert_int_equal(
	    store_release_set_state(st, rid, STORE_RELEASE_PAUSED, &d), -1);
	assert_non_null(strstr(diag_first(&d), "is done"));
	diag_clear(&d);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_DONE);

	/* a retry makes it active, and done again once that is sent */
	assert_int_equal(store_retry(st, rid, true, false, &n, &d), 0);
	assert_int_equal(n, 1);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_ACTIVE);
	assert_int_equal(claim(st, now + 3600, 60, 8, out), 1);
	record(st, out[0].id, now + 3600, STORE_SENT, 0, true, 250);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_DONE);
	/* nothing to retry: it stays done */
	assert_int_equal(store_retry(st, rid, true, true, &n, &d), 0);
	assert_int_equal(n, 0);
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_DONE);

	/* every address suppressed: done at once */
	assert_int_equal(suppress(st, "j0@example.org", "test", &d), 0);
	assert_int_equal(suppress(st, "j1@example.org", "test", &d), 0);
	other = add_release(st, "suppressed", 2, 0, 0);
	assert_int_equal(release_info(st, other).state, STORE_RELEASE_DONE);
	/* the last one waiting suppressed: done */
	other = add_release(st, "waiting", 3, 0, 0);
	assert_int_equal(release_info(st, other).state, STORE_RELEASE_ACTIVE);
	assert_int_equal(suppress(st, "j2@example.org", "test", &d), 0);
	assert_int_equal(release_info(st, other).state, STORE_RELEASE_DONE);
	/* the last ones expired: done */
	other = add_release(st, "stale", 4, 0, now + 100);
	assert_int_equal(release_info(st, other).state, STORE_RELEASE_ACTIVE);
	assert_int_equal(store_expire(st, now + 100, 0, &d), 1);
	assert_int_equal(release_info(st, other).state, STORE_RELEASE_DONE);
	diag_clear(&d);
}

struct rows {
	size_t n;
	enum store_log_result result[16];
	int64_t event[16], delivery[16];
	int hard[16];
	char text[16][160];
};

static int rows_fn(void *arg, const struct store_log_row *r)
{
	struct rows *l = arg;

	if (l->n < 16) {
		l->result[l->n] = r->result;
		l->event[l->n] = r->event;
		l->delivery[l->n] = r->delivery_id;
		l->hard[l->n] = r->hard;
		snprintf(l->text[l->n], sizeof(l->text[0]), "%s",
		         r->text ? r->text : "");
	}
	l->n++;
	return 0;
}

static struct rows rows_of(struct store *st, int64_t release, const char *email,
                           int result)
{
	struct store_log_filter f = {.release_id = release, .email = email};
	struct rows l;
	struct diag d = {0};

	memset(&l, 0, sizeof(l));
	if (result >= 0) {
		f.by_result = true;
		f.result = (enum store_log_result)result;
	}
	if (store_attempts_each(st, &f, rows_fn, &l, &d) < 0)
		fail_msg("attempts_each: %s", diag_first(&d));
	diag_clear(&d);
	return l;
}

/* The log holds what came after an attempt: a bounce, a complaint, an
 * unsubscribe request (matched to the delivery; a mismatch is not its
 * history), and the suppression each caused; a delivery of a later
 * release to a suppressed address has its own suppressed row. */
static void test_log_events(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct mid m[3];
	struct diag d = {0};
	time_t t = time(NULL) - 5; /* the attempts come before the events */
	int64_t rid = add_release(st, "logev", 3, 0, 0), later;
	struct rows l;
	char key0[128];

	assert_int_equal(claim(st, time(NULL) + 10, 60, 8, out), 3);
	for (int i = 0; i < 3; i++) {
		record(st, out[i].id, t, STORE_SENT, 0, true, 250);
		memset(&m[i], 0, sizeof(m[i]));
		assert_int_equal(
		    store_delivery_get(st, out[i].id, mid_fn, &m[i], &d), 0);
	}
	snprintf(key0, sizeof(key0), "%.*s", (int)strcspn(m[0].id, "@"),
	         m[0].id);
	{
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .message_id = m[0].id,
		                         .id_keyed = keyed_yes,
		                         .status = "5.1.1",
		                         .reason = "userunknown",
		                         .hard = 1,
		                         .diagnostic =
		                             "smtp; 550 5.1.1 User unknown"};
		assert_true(event(st, &ev, out[0].id));
	}
	{
		struct store_event ev = {.kind = STORE_EVENT_COMPLAINT,
		                         .message_id = m[1].id,
		                         .id_keyed = keyed_yes,
		                         .reason = "abuse"};
		assert_true(event(st, &ev, out[1].id));
	}
	{
		char key2[128];
		snprintf(key2, sizeof(key2), "%.*s", (int)strcspn(m[2].id, "@"),
		         m[2].id);
		struct store_event ev = {.kind = STORE_EVENT_UNSUBSCRIBE,
		                         .message_key = key2};
		assert_true(event(st, &ev, out[2].id));
	}
	/* the first delivery's key with the third's address: a mismatch */
	{
		struct store_event ev = {.kind = STORE_EVENT_BOUNCE,
		                         .message_key = key0,
		                         .email = "j2@example.org",
		                         .hard = 1};
		event(st, &ev, 0);
	}

	/* the bounced delivery: sent, bounced, suppressed */
	l = rows_of(st, rid, "j0@example.org", -1);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.result[0], STORE_LOG_SENT);
	assert_int_equal(l.event[0], 0);
	assert_int_equal(l.result[1], STORE_LOG_BOUNCED);
	assert_true(l.event[1] > 0);
	assert_int_equal(l.hard[1], 1);
	assert_string_equal(l.text[1], "smtp; 550 5.1.1 User unknown");
	assert_int_equal(l.result[2], STORE_LOG_SUPPRESSED);
	assert_non_null(strstr(l.text[2], "bounce: userunknown"));
	l = rows_of(st, rid, "j1@example.org", -1);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.result[1], STORE_LOG_COMPLAINED);
	assert_int_equal(l.result[2], STORE_LOG_SUPPRESSED);
	l = rows_of(st, rid, "j2@example.org", -1);
	assert_int_equal(l.n, 3); /* not the mismatch */
	assert_int_equal(l.result[1], STORE_LOG_UNSUBSCRIBED);
	assert_int_equal(l.result[2], STORE_LOG_SUPPRESSED);

	/* --state bounced finds the bounced delivery, and only it */
	l = rows_of(st, 0, NULL, STORE_LOG_BOUNCED);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.delivery[0], out[0].id);
	assert_int_equal(rows_of(st, 0, NULL, STORE_LOG_COMPLAINED).n, 1);
	assert_int_equal(rows_of(st, 0, NULL, STORE_LOG_UNSUBSCRIBED).n, 1);
	assert_int_equal(rows_of(st, 0, NULL, STORE_LOG_SUPPRESSED).n, 3);
	assert_int_equal(rows_of(st, 0, NULL, STORE_LOG_SENT).n, 3);

	/* a later release skips them: a suppressed row each, saying why */
	later = add_release(st, "later", 3, 0, 0);
	l = rows_of(st, later, NULL, -1);
	assert_int_equal(l.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(l.result[i], STORE_LOG_SUPPRESSED);
		assert_non_null(strstr(l.text[i], "not sent"));
	}
	assert_int_equal(rows_of(st, 0, NULL, STORE_LOG_SUPPRESSED).n, 6);
	diag_clear(&d);
}

/* A refusal that says the address is bad (trouble.c's bad_address) puts
 * it on the suppression list with its delivery as the cause, as a hard
 * bounce does, and suppresses what waits for it; another refusal does
 * not. */
static void test_refused_suppresses(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10;
	int64_t rid = add_release(st, "refused", 2, 0, 0), later;
	struct store_attempt a = {.at = now,
	                          .relay = "smtp://127.0.0.1:2525",
	                          .code = 550,
	                          .status = "5.1.1",
	                          .text = "550 5.1.1 User unknown",
	                          .result = STORE_FAILED,
	                          .counts = true,
	                          .bad_address = "userunknown",
	                          .rule = "status+text",
	                          .evidence = "550 5.1.1 User unknown"};
	struct rows l;

	assert_int_equal(claim(st, now, 60, 8, out), 2);
	later = add_release(st, "later", 1, 0, 0); /* j0, waiting */
	a.delivery_id = out[0].id;
	assert_int_equal(store_record(st, &a, 1, &d), 0);
	assert_true(is_suppressed(st, "j0@example.org"));
	assert_int_equal(delivery(st, out[0].id).state, STORE_FAILED);
	assert_int_equal(release_info(st, later).count[STORE_SUPPRESSED], 1);
	assert_int_equal(release_info(st, later).state, STORE_RELEASE_DONE);
	l = rows_of(st, rid, "j0@example.org", -1);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.result[0], STORE_LOG_FAILED);
	assert_int_equal(l.result[1], STORE_LOG_SUPPRESSED);
	assert_non_null(strstr(l.text[1], "refused: userunknown (550 5.1.1)"));
	/* the suppression keeps the verdict's rule and the reply */
	{
		struct sups s = sups_of(st);
		size_t i = sup_entry(&s, "j0@example.org");
		assert_string_equal(s.rule[i], "status+text");
		assert_string_equal(s.evidence[i], "550 5.1.1 User unknown");
	}
	/* a full mailbox is not a bad address */
	a.delivery_id = out[1].id;
	a.status = "5.2.2";
	a.bad_address = NULL;
	assert_int_equal(store_record(st, &a, 1, &d), 0);
	assert_false(is_suppressed(st, "j1@example.org"));
	assert_int_equal(release_info(st, rid).state, STORE_RELEASE_DONE);
	diag_clear(&d);
}

struct times {
	time_t queued_at, retried_at;
};

static int times_fn(void *arg, const struct store_delivery *dl,
                    const char *release)
{
	struct times *t = arg;

	(void)release;
	t->queued_at = dl->queued_at;
	t->retried_at = dl->retried_at;
	return 0;
}

/* A retry keeps when the delivery was queued, and its lifetime counts
 * from the retry. */
static void test_retry_keeps_queued_at(void **state)
{
	const char *where = case_where(state);
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL), old = now - 10 * 86400;
	int64_t rid = add_release(st, "retried", 1, 0, 0), id;
	struct times t = {0};
	size_t n;

	assert_int_equal(claim(st, now + 10, 60, 8, out), 1);
	id = out[0].id;
	record(st, id, now, STORE_FAILED, 0, true, 550);
	/* queued ten days ago */
	assert_int_equal(be->backdate(where, old), 0);
	assert_int_equal(store_retry(st, rid, true, false, &n, &d), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_delivery_get(st, id, times_fn, &t, &d), 0);
	assert_int_equal(t.queued_at, old);
	assert_true(t.retried_at >= now);
	/* five days' lifetime: from the retry, not from the queueing */
	assert_int_equal(store_expire(st, now + 60, 5 * 86400, &d), 0);
	assert_int_equal(claim(st, now + 60, 60, 8, out), 1);
	assert_true(out[0].retried_at >= now);
	assert_int_equal(out[0].queued_at, old);
	store_unclaim(st, &id, 1, now + 60, &d);
	assert_int_equal(
	    store_expire(st, t.retried_at + 5 * 86400, 5 * 86400, &d), 1);
	diag_clear(&d);
}

/* The figures beside the counts: first and last attempt (an expiry is
 * none), the attempts sent in the last minute, complaints and
 * unsubscribe requests. */
static void test_release_figures(void **state)
{
	struct store *st = case_store(state);
	struct store_delivery out[8];
	struct store_release_figures f;
	struct diag d = {0};
	time_t now = time(NULL);
	int64_t rid = add_release(st, "figures", 4, 0, now + 3600);
	struct mid m[2];

	assert_int_equal(store_release_figures(st, rid, &f, &d), 0);
	assert_int_equal(f.first_attempt, 0);
	assert_int_equal(f.last_attempt, 0);
	assert_int_equal(claim(st, now + 10, 60, 3, out), 3);
	record(st, out[0].id, now - 100, STORE_SENT, 0, true, 250);
	record(st, out[1].id, now, STORE_SENT, 0, true, 250);
	record(st, out[2].id, now - 50, STORE_FAILED, 0, true, 550);
	for (int i = 0; i < 2; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		store_delivery_get(st, out[i].id, mid_fn, &m[i], &d);
	}
	{
		struct store_event ev = {.kind = STORE_EVENT_COMPLAINT,
		                         .message_id = m[0].id,
		                         .id_keyed = keyed_yes};
		event(st, &ev, out[0].id);
		event(st, &ev, out[0].id); /* one delivery, counted once */
	}
	{
		char key1[128];
		snprintf(key1, sizeof(key1), "%.*s", (int)strcspn(m[1].id, "@"),
		         m[1].id);
		struct store_event ev = {.kind = STORE_EVENT_UNSUBSCRIBE,
		                         .message_key = key1};
		event(st, &ev, out[1].id);
	}
	/* the fourth expires later: not an attempt */
	assert_int_equal(store_expire(st, now + 3600, 0, &d), 1);
	assert_int_equal(store_release_figures(st, rid, &f, &d), 0);
	assert_int_equal(f.first_attempt, now - 100);
	assert_int_equal(f.last_attempt, now);
	assert_int_equal(f.sent_recent, 1);
	assert_int_equal(f.complaints, 1);
	assert_int_equal(f.unsubscribes, 1);
	diag_clear(&d);
}

/* ---- queueing again, bringing a cancel back ----------------------------- */

static void test_release_add_each_names(void **state)
{
	struct store *st = case_store(state);
	struct store_release_new rn = {
	    "names", "src", "release", "coalition.yaml", 0, 0, NULL, 0};
	struct store_release_added out;
	struct each_src src;
	struct diag d = {0};
	struct rcpts r, more;

	rcpts_make(&r, "names", 10, "example.org");
	/* the first time: all of them */
	memset(&out, 0, sizeof(out));
	src = (struct each_src){r.v, r.n, 0, 0};
	assert_int_equal(
	    store_release_add_each(st, &rn, each_next, &src, &out, &d), 0);
	assert_int_equal(out.queued, 10);
	assert_int_equal(out.earlier, 0);
	assert_true(out.release_id > 0);
	/* the same name again: nothing, and the release it has */
	memset(&out, 0, sizeof(out));
	src = (struct each_src){r.v, r.n, 0, 0};
	assert_int_equal(
	    store_release_add_each(st, &rn, each_next, &src, &out, &d), 1);
	assert_int_equal(out.earlier, 1);
	assert_int_equal(out.queued, 0);
	assert_int_equal(out.skipped, 0);
	assert_int_equal(count_releases(st), 1);
	/* only_new with three new addresses among the ten: the three, with
	 * Message-IDs of their own (another tag) */
	rcpts_make(&more, "names-more", 13, "example.org");
	memset(&out, 0, sizeof(out));
	out.only_new = true;
	src = (struct each_src){more.v, more.n, 0, 0};
	assert_int_equal(
	    store_release_add_each(st, &rn, each_next, &src, &out, &d), 0);
	assert_int_equal(out.queued, 3);
	assert_int_equal(out.skipped, 10);
	assert_int_equal(out.skipped_cancelled, 0);
	assert_int_equal(out.earlier, 1);
	assert_int_equal(release_info(st, out.release_id).total, 3);
	/* nothing new: nothing queued, no empty release */
	memset(&out, 0, sizeof(out));
	out.only_new = true;
	src = (struct each_src){more.v, more.n, 0, 0};
	assert_int_equal(
	    store_release_add_each(st, &rn, each_next, &src, &out, &d), 1);
	assert_int_equal(out.skipped, 13);
	assert_int_equal(count_releases(st), 2);
	/* the source failing halfway: nothing of it stays */
	rn.name = "names-other";
	memset(&out, 0, sizeof(out));
	src = (struct each_src){r.v, r.n, 0, 5};
	assert_int_equal(
	    store_release_add_each(st, &rn, each_next, &src, &out, &d), -1);
	assert_int_equal(count_releases(st), 2);
	diag_clear(&d);
	rcpts_free(&r);
	rcpts_free(&more);
}

static void test_release_uncancel(void **state)
{
	struct store *st = case_store(state);
	struct store_release_new rn = {
	    "uncancel", "src", "release", "coalition.yaml", 0, 0, NULL, 0};
	struct store_release_added out;
	struct store_delivery dl[4];
	struct each_src src;
	struct diag d = {0};
	struct rcpts r;
	time_t now = time(NULL);
	size_t n = 0, sup = 0;
	int64_t id;

	rcpts_make(&r, "uncancel", 6, "example.org");
	memset(&out, 0, sizeof(out));
	src = (struct each_src){r.v, r.n, 0, 0};
	assert_int_equal(
	    store_release_add_each(st, &rn, each_next, &src, &out, &d), 0);
	id = out.release_id;
	/* one sent, one tried and deferred, then the release cancelled */
	assert_int_equal(claim(st, now, 60, 2, dl), 2);
	record(st, dl[0].id, now, STORE_SENT, 0, true, 250);
	record(st, dl[1].id, now, STORE_DEFERRED, now + 600, true, 451);
	assert_int_equal(store_cancel(st, id, &n, &d), 0);
	assert_int_equal(n, 5);
	/* an address suppressed while the release was cancelled */
	assert_int_equal(suppress(st, "j5@example.org", "test", &d), 0);
	assert_int_equal(store_release_uncancel(st, id, &n, &sup, &d), 0);
	assert_int_equal(n, 4);
	assert_int_equal(sup, 1);
	{
		struct store_release_info info = release_info(st, id);
		assert_int_equal(info.state, STORE_RELEASE_ACTIVE);
		assert_int_equal(info.count[STORE_SENT], 1);
		assert_int_equal(info.count[STORE_DEFERRED], 1);
		assert_int_equal(info.count[STORE_QUEUED], 3);
		assert_int_equal(info.count[STORE_SUPPRESSED], 1);
		assert_int_equal(info.count[STORE_CANCELLED], 0);
	}
	/* due at once: the deferred one too */
	assert_int_equal(claim(st, now + 1, 60, 4, dl), 4);
	/* a release that is not cancelled is not "brought back" */
	assert_int_equal(store_release_uncancel(st, id, &n, &sup, &d), -1);
	assert_non_null(strstr(diag_first(&d), "not cancelled"));
	diag_clear(&d);
	rcpts_free(&r);
	/* brought back with nothing left to send (one sent, the other
	 * suppressed meanwhile): the release is done, not active forever */
	{
		struct store_release_new rn2 = {"uncancel-done",
		                                "src",
		                                "release",
		                                "coalition.yaml",
		                                0,
		                                0,
		                                NULL,
		                                0};
		struct store_release_info info;

		rcpts_make(&r, "uncancel-done", 2, "example.net");
		memset(&out, 0, sizeof(out));
		src = (struct each_src){r.v, r.n, 0, 0};
		assert_int_equal(
		    store_release_add_each(st, &rn2, each_next, &src, &out, &d),
		    0);
		id = out.release_id;
		assert_int_equal(claim(st, now + 2, 60, 1, dl), 1);
		record(st, dl[0].id, now + 2, STORE_SENT, 0, true, 250);
		assert_int_equal(store_cancel(st, id, &n, &d), 0);
		assert_int_equal(n, 1);
		assert_int_equal(suppress(st, r.v[1].email, "test", &d), 0);
		assert_int_equal(store_release_uncancel(st, id, &n, &sup, &d),
		                 0);
		assert_int_equal(n, 0);
		assert_int_equal(sup, 1);
		info = release_info(st, id);
		assert_int_equal(info.state, STORE_RELEASE_DONE);
		rcpts_free(&r);
	}
}

/* ---- owners and hand-overs ---------------------------------------------- */

static int64_t owner_add(struct store *st, long pid, time_t now)
{
	struct diag d = {0};
	int64_t id = 0;

	if (store_daemon_add(st, "host.test", pid, now, "/run/x.sock", &id,
	                     &d) < 0)
		fail_msg("daemon_add: %s", diag_first(&d));
	diag_clear(&d);
	assert_true(id > 0);
	return id;
}

struct holds {
	size_t handed, waiting;
	long pid;
	time_t lease_until;
};

static int holds_fn(void *arg, const struct store_hold *h)
{
	struct holds *x = arg;

	if (h->handed)
		x->handed += h->n;
	else
		x->waiting += h->n;
	x->pid = h->owner.pid;
	if (h->lease_until > x->lease_until)
		x->lease_until = h->lease_until;
	return 0;
}

static struct holds holds(struct store *st, int64_t rid, int64_t did)
{
	struct holds x = {0};
	struct diag d = {0};

	if (store_holds_each(st, rid, did, holds_fn, &x, &d) < 0)
		fail_msg("holds_each: %s", diag_first(&d));
	diag_clear(&d);
	return x;
}

static int ended_fn(void *arg, const struct store_daemon *dm)
{
	time_t *ended = arg;

	ended[dm->id < 8 ? dm->id : 0] = dm->ended ? dm->ended : -1;
	return 0;
}

/* Two heraldd (two handles) on one store: claims carry their owner, only
 * the owner marks them handed over, a heraldd that is gone gives back
 * what it never handed over and keeps the rest to its lease, after which
 * a claim marks it a possible duplicate; pause and cancel give back
 * claims; a stop marks what was on connections. */
static void test_owners_and_handover(void **state)
{
	struct store *a = case_store(state);
	struct store *b = open_ok(case_where(state));
	struct store_delivery out[8];
	struct diag d = {0};
	time_t now = time(NULL) + 10, at, ended[8] = {0};
	int64_t rid = add_release(a, "owners", 6, 0, 0), ida, idb, ids[6];
	enum store_duplicate why;
	size_t freed, held, n;
	bool ok[6], revived;

	ida = owner_add(a, 101, now);
	idb = owner_add(b, 202, now);
	assert_true(ida != idb);
	assert_int_equal(claim(a, now, 600, 8, out), 6);
	for (int i = 0; i < 6; i++)
		ids[i] = out[i].id;
	/* the owner marks two; a second mark, or another heraldd's, fails */
	assert_int_equal(store_handover(a, ids, 2, now, ok, &d), 0);
	assert_true(ok[0] && ok[1]);
	assert_int_equal(store_handover(a, ids, 1, now, ok, &d), 0);
	assert_false(ok[0]);
	assert_int_equal(store_handover(b, ids + 2, 1, now, ok, &d), 0);
	assert_false(ok[0]);
	{
		struct holds h = holds(a, rid, 0);
		assert_int_equal(h.handed, 2);
		assert_int_equal(h.waiting, 4);
		assert_int_equal(h.pid, 101);
		assert_int_equal(h.lease_until, now + 600);
		h = holds(a, 0, ids[0]);
		assert_int_equal(h.handed, 1);
		assert_int_equal(h.waiting, 0);
	}
	/* a's heartbeat renews only its own claims */
	assert_int_equal(
	    store_daemon_beat(b, now + 5, ids, 6, now + 900, &revived, &d), 0);
	assert_false(revived);
	assert_int_equal(holds(a, rid, 0).lease_until, now + 600);
	assert_int_equal(
	    store_daemon_beat(a, now + 5, ids, 6, now + 605, &revived, &d), 0);
	assert_int_equal(holds(a, rid, 0).lease_until, now + 605);
	/* a is gone: b gives back what a never handed over, at once */
	assert_int_equal(store_daemon_end(b, ida, now + 6, &freed, &held, &d),
	                 0);
	assert_int_equal(freed, 4);
	assert_int_equal(held, 2);
	assert_int_equal(delivery(a, ids[2]).state, STORE_QUEUED);
	assert_int_equal(delivery(a, ids[0]).state, STORE_SENDING);
	assert_int_equal(store_daemons_each(a, ended_fn, ended, &d), 0);
	assert_int_equal(ended[ida], now + 6);
	assert_int_equal(ended[idb], -1);
	/* a's claim was taken back: it must not send it */
	assert_int_equal(store_handover(a, ids + 2, 1, now + 6, ok, &d), 0);
	assert_false(ok[0]);
	/* b takes the four at once, not the two handed over */
	assert_int_equal(claim(b, now + 6, 600, 8, out), 4);
	for (int i = 0; i < 4; i++)
		assert_true(out[i].id != ids[0] && out[i].id != ids[1]);
	assert_int_equal(store_duplicate_get(b, ids[2], &why, &at, &d), 0);
	assert_int_equal(why, STORE_DUP_NONE);
	/* a wakes: its row runs again */
	assert_int_equal(
	    store_daemon_beat(a, now + 7, NULL, 0, now + 607, &revived, &d), 0);
	assert_true(revived);
	assert_int_equal(store_daemons_each(a, ended_fn, ended, &d), 0);
	assert_int_equal(ended[ida], -1);
	/* the handed two after their lease: taken, marked */
	assert_int_equal(claim(b, now + 606, 600, 8, out), 2);
	assert_int_equal(store_duplicate_get(b, ids[0], &why, &at, &d), 0);
	assert_int_equal(why, STORE_DUP_LEASE);
	assert_int_equal(at, now + 606);
	/* a pause: the owner's word for its ids, handed or not */
	assert_int_equal(store_handover(b, ids, 1, now + 606, ok, &d), 0);
	assert_true(ok[0]);
	assert_int_equal(store_drop(b, rid, ids, 1, false, &n, &d), 0);
	assert_int_equal(n, 1);
	assert_int_equal(delivery(a, ids[0]).state, STORE_QUEUED);
	/* herald's own: only what nobody handed over */
	assert_int_equal(store_handover(b, ids + 1, 1, now + 606, ok, &d), 0);
	assert_true(ok[0]);
	assert_int_equal(store_drop(a, rid, NULL, 0, false, &n, &d), 0);
	assert_int_equal(n, 4);
	assert_int_equal(delivery(a, ids[1]).state, STORE_SENDING);
	/* a stop with ids[1] on a connection: given back, marked */
	assert_int_equal(store_abandon(b, ids + 1, 1, now + 700, &d), 0);
	assert_int_equal(delivery(a, ids[1]).state, STORE_QUEUED);
	assert_int_equal(delivery(a, ids[1]).next_at, now + 700);
	assert_int_equal(store_duplicate_get(a, ids[1], &why, &at, &d), 0);
	assert_int_equal(why, STORE_DUP_STOP);
	/* a cancel: claims end cancelled, the rest is the store's cancel */
	assert_int_equal(claim(b, now + 700, 600, 8, out), 6);
	assert_int_equal(store_drop(b, rid, ids, 2, true, &n, &d), 0);
	assert_int_equal(n, 2);
	assert_int_equal(delivery(a, ids[0]).state, STORE_CANCELLED);
	assert_int_equal(delivery(a, ids[2]).state, STORE_SENDING);
	/* b stops: nothing handed over, everything given back */
	assert_int_equal(store_daemon_end(b, idb, now + 701, &freed, &held, &d),
	                 0);
	assert_int_equal(freed, 4);
	assert_int_equal(held, 0);
	assert_int_equal(holds(a, rid, 0).waiting, 0);
	diag_clear(&d);
	store_close(b);
}

/* ---- heraldd's rows ----------------------------------------------------- */

struct dms {
	size_t n;
	char host[4][32], control[4][32];
	long pid[4];
	time_t started[4], heartbeat[4], ended[4];
};

static int dms_fn(void *arg, const struct store_daemon *dm)
{
	struct dms *l = arg;

	if (l->n < 4) {
		snprintf(l->host[l->n], sizeof(l->host[0]), "%s", dm->host);
		snprintf(l->control[l->n], sizeof(l->control[0]), "%s",
		         dm->control ? dm->control : "(none)");
		l->pid[l->n] = dm->pid;
		l->started[l->n] = dm->started;
		l->heartbeat[l->n] = dm->heartbeat;
		l->ended[l->n] = dm->ended;
	}
	l->n++;
	return 0;
}

/* The daemons rows oldest first, with what daemon_add, daemon_beat and
 * daemon_end recorded. */
static void test_daemons_each(void **state)
{
	struct store *a = case_store(state);
	struct store *b = open_ok(case_where(state));
	time_t now = time(NULL);
	struct diag d = {0};
	struct dms l;
	int64_t ida, idb;
	size_t freed = 9, held = 9;
	bool revived = true;

	ida = owner_add(a, 101, now);
	assert_int_equal(
	    store_daemon_add(b, "other.test", 202, now + 1, NULL, &idb, &d), 0);
	assert_true(idb > ida);
	assert_int_equal(
	    store_daemon_beat(a, now + 5, NULL, 0, now + 65, &revived, &d), 0);
	assert_false(revived);
	assert_int_equal(store_daemon_end(a, idb, now + 6, &freed, &held, &d),
	                 0);
	assert_int_equal(freed + held, 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_daemons_each(a, dms_fn, &l, &d), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.host[0], "host.test");
	assert_int_equal(l.pid[0], 101);
	assert_string_equal(l.control[0], "/run/x.sock");
	assert_int_equal(l.started[0], now);
	assert_int_equal(l.heartbeat[0], now + 5);
	assert_int_equal(l.ended[0], 0);
	assert_string_equal(l.host[1], "other.test");
	assert_int_equal(l.pid[1], 202);
	assert_string_equal(l.control[1], "(none)");
	assert_int_equal(l.ended[1], now + 6);
	diag_clear(&d);
	store_close(b);
}

/* A case: run on a new store of the backend (case_setup). */
#define CASE(t) cmocka_unit_test_setup_teardown(t, case_setup, case_teardown)

/* With an argument: only the backend of that name (ctest runs each
 * backend as a test of its own). */
int main(int argc, char **argv)
{
	const struct CMUnitTest once[] = {
	    cmocka_unit_test(test_state_names),
	    cmocka_unit_test(test_evidence_text),
	};
	const struct CMUnitTest cases[] = {
	    CASE(test_reopen_keeps_data),
	    CASE(test_long_source_shown),
	    CASE(test_release_add_all_or_nothing),
	    CASE(test_suppressed),
	    CASE(test_claim_embargo_and_release_state),
	    CASE(test_claim_order_and_backoff),
	    CASE(test_lease),
	    CASE(test_record),
	    CASE(test_unclaim),
	    CASE(test_expire),
	    CASE(test_cancel_and_retry),
	    CASE(test_attempts_each),
	    CASE(test_releases_each_and_find),
	    CASE(test_release_files),
	    CASE(test_two_handles),
	    CASE(test_two_processes),
	    CASE(test_large_release),
	    CASE(test_events),
	    CASE(test_imap_place),
	    CASE(test_suppression_list),
	    CASE(test_event_source_once),
	    CASE(test_event_list),
	    CASE(test_release_done),
	    CASE(test_log_events),
	    CASE(test_refused_suppresses),
	    CASE(test_retry_keeps_queued_at),
	    CASE(test_release_figures),
	    CASE(test_release_add_each_names),
	    CASE(test_release_uncancel),
	    CASE(test_owners_and_handover),
	    CASE(test_daemons_each),
	};
	int failed = cmocka_run_group_tests_name("store", once, NULL, NULL);

	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (argc > 1 && strcmp(argv[1], backends[i].name) != 0)
			continue;
		be = &backends[i];
		failed += cmocka_run_group_tests_name(
		    be->name, cases, group_setup, group_teardown);
	}
	return failed;
}
