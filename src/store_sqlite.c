/*
 * store_sqlite — herald's store in one SQLite file (see store.h for the
 * contract). The CLI and the daemon open the same file: WAL lets the CLI
 * read (status, log) while the daemon writes, every write transaction
 * begins IMMEDIATE so two writers queue on the busy timeout instead of
 * failing on a lock upgrade, and synchronous=FULL makes a commit durable
 * before the daemon reports a message sent.
 *
 * The schema carries a version (PRAGMA user_version) and is brought up to
 * date by the migration steps below, in order, in one transaction. A store
 * written by a newer herald is refused rather than guessed at.
 *
 * Claiming is the hot path: the daemon asks for the next few due
 * deliveries many times a second while a release of 100,000 recipients is
 * going out. Each release's due deliveries are read from a partial index
 * in next_at order (a paused release or an embargo costs one index probe,
 * not a scan), and the few candidates of each release are merged here.
 *
 * Every value reaches SQL as a bound parameter; the SQL texts are
 * constants.
 */
#include "herald/dstate.h"
#include "herald/policy.h"
#include "herald/store.h"
#include "herald/store_sqlite_test.h"
#include "store_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The tunables, each with why. SQLite's own page cache (2 MiB) is left
 * as it is: a 100,000-recipient release queues as fast with it as with
 * 16 MiB (measured), and it bounds the memory a queue needs. */
static const struct {
	int busy_ms; /* how long a writer waits for another: the longest
	              * write is queueing a 100,000-recipient release
	              * (about a second); ten times that leaves room for
	              * a slow disk before anyone is told "busy" */
	mode_t mode; /* the store holds every journalist's address and
	              * reply texts: only herald's user may read it (the
	              * -wal and -shm files take the same mode) */
	const char *wal_limit; /* after a large release is queued, shrink
	                        * the WAL back to 64 MiB instead of leaving
	                        * it as large as that transaction */
	size_t name_max;       /* struct store_release_info.name */
	size_t block;          /* claim's string memory grows by this */
	int soft_ids;          /* a soft-limit suppression's evidence names
	                        * the newest this many events (at most 64):
	                        * the limit is 3 unless set (at most 1000),
	                        * and a line of ids is read, not scrolled */
} store_sqlite_defaults = {
    10000, 0600, "PRAGMA journal_size_limit = 67108864", 127, 4096, 20,
};

/* "HRLD" in PRAGMA application_id: tells a herald store from another
 * SQLite file that happens to be at the configured path. */
#define STORE_SQLITE_APP_ID  1213353028 /* 0x48524c44 */
#define STORE_SQLITE_STR(x)  STORE_SQLITE_STR2(x)
#define STORE_SQLITE_STR2(x) #x

/*
 * Schema migrations, applied in order; each step ends by setting the
 * version it brings the store to. Never edit a released step: add one.
 *
 * Delivery and release states are stored as their names (store.c), so an
 * admin reading the file with sqlite3 sees what `herald status` shows.
 * deliveries.email_key is the address as the suppression list keeps it;
 * attempts counts charged tries, tries every attempt row (attempts.n).
 */
static const struct store_sqlite_migration {
	int version;
	const char *sql;
} store_sqlite_migrations[] = {
    {1,
     "PRAGMA application_id = " STORE_SQLITE_STR(
         STORE_SQLITE_APP_ID) ";"
                              "CREATE TABLE releases ("
                              " id INTEGER PRIMARY KEY,"
                              " name TEXT NOT NULL,"
                              " source TEXT NOT NULL,"
                              " release_dir TEXT NOT NULL,"
                              " coalition TEXT NOT NULL,"
                              " state TEXT NOT NULL DEFAULT 'active'"
                              "  CHECK (state IN ('active', 'paused', "
                              "'cancelled')),"
                              " queued_at INTEGER NOT NULL,"
                              " not_before INTEGER NOT NULL DEFAULT 0,"
                              " stale_after INTEGER NOT NULL DEFAULT 0);"
                              "CREATE INDEX releases_name ON releases (name);"
                              "CREATE TABLE release_files ("
                              " id INTEGER PRIMARY KEY,"
                              " release_id INTEGER NOT NULL REFERENCES "
                              "releases (id)"
                              "  ON DELETE CASCADE,"
                              " path TEXT NOT NULL,"
                              " data BLOB NOT NULL,"
                              " UNIQUE (release_id, path));"
                              "CREATE TABLE deliveries ("
                              " id INTEGER PRIMARY KEY,"
                              " release_id INTEGER NOT NULL REFERENCES "
                              "releases (id)"
                              "  ON DELETE CASCADE,"
                              " email TEXT NOT NULL,"
                              " email_key TEXT NOT NULL,"
                              " name TEXT,"
                              " language TEXT,"
                              " outlet TEXT,"
                              " beat TEXT,"
                              " region TEXT,"
                              " timezone TEXT,"
                              " message_id TEXT NOT NULL UNIQUE,"
                              " state TEXT NOT NULL CHECK (state IN ('queued', "
                              "'sending', 'sent',"
                              "  'deferred', 'failed', 'bounced', "
                              "'complained', 'expired',"
                              "  'suppressed', 'cancelled')),"
                              " attempts INTEGER NOT NULL DEFAULT 0,"
                              " tries INTEGER NOT NULL DEFAULT 0,"
                              " queued_at INTEGER NOT NULL,"
                              " next_at INTEGER NOT NULL,"
                              " lease_until INTEGER,"
                              " updated_at INTEGER NOT NULL,"
                              " last_code INTEGER NOT NULL DEFAULT 0,"
                              " last_status TEXT,"
                              " last_text TEXT);"
                              /* one message per journalist and release; also
                                 finds an address */
                              "CREATE UNIQUE INDEX deliveries_email ON "
                              "deliveries"
                              " (email_key, release_id);"
                              /* counts per release and state; cancel, retry,
                                 expire */
                              "CREATE INDEX deliveries_release ON deliveries "
                              "(release_id, state);"
                              /* claim: a release's waiting deliveries in
                                 next_at order */
                              "CREATE INDEX deliveries_due ON deliveries "
                              "(release_id, next_at)"
                              " WHERE state IN ('queued', 'deferred');"
                              /* claim: leases that ran out (a daemon died) */
                              "CREATE INDEX deliveries_lease ON deliveries "
                              "(release_id, lease_until)"
                              " WHERE state = 'sending';"
                              "CREATE TABLE attempts ("
                              " id INTEGER PRIMARY KEY,"
                              " delivery_id INTEGER NOT NULL REFERENCES "
                              "deliveries (id)"
                              "  ON DELETE CASCADE,"
                              " n INTEGER NOT NULL,"
                              " at INTEGER NOT NULL,"
                              " relay TEXT,"
                              " code INTEGER NOT NULL DEFAULT 0,"
                              " status TEXT,"
                              " text TEXT,"
                              " queue_id TEXT,"
                              " duration_ms INTEGER NOT NULL DEFAULT 0,"
                              " result TEXT NOT NULL"
                              "  CHECK (result IN ('sent', 'deferred', "
                              "'failed', 'expired')),"
                              " counts INTEGER NOT NULL);"
                              "CREATE INDEX attempts_delivery ON attempts "
                              "(delivery_id);"
                              "CREATE INDEX attempts_at ON attempts (at);"
                              "CREATE TABLE suppressions ("
                              " email TEXT PRIMARY KEY,"
                              " reason TEXT,"
                              " at INTEGER NOT NULL) WITHOUT ROWID;"
                              "PRAGMA user_version = 1;"},
    /* 2: what arrives in the bounce mailbox, kept with the raw message */
    {2, "CREATE TABLE events ("
        " id INTEGER PRIMARY KEY,"
        " at INTEGER NOT NULL,"
        " kind TEXT NOT NULL CHECK (kind IN ('bounce', 'complaint',"
        "  'autoreply', 'unsubscribe', 'unknown')),"
        " delivery_id INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,"
        " matched_by TEXT,"
        " email_key TEXT,"
        " status TEXT,"
        " reason TEXT,"
        " hard INTEGER NOT NULL DEFAULT -1,"
        " diagnostic TEXT,"
        " raw BLOB);"
        "CREATE INDEX events_email ON events (email_key, at);"
        "CREATE INDEX events_delivery ON events (delivery_id);"
        "PRAGMA user_version = 2;"},
    /* 3: where the IMAP reader is in each mailbox, and the sources of
     * the events recorded (so a message read twice is acted on once) */
    {3, "CREATE TABLE mailbox_state ("
        " url TEXT PRIMARY KEY,"
        " uidvalidity INTEGER NOT NULL,"
        " last_uid INTEGER NOT NULL,"
        " updated_at INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE event_sources ("
        " source TEXT PRIMARY KEY,"
        " at INTEGER NOT NULL) WITHOUT ROWID;"
        "PRAGMA user_version = 3;"},
    /* 4: the heraldd that hold claims (owners, with a heartbeat), what
     * each handed to a relay connection, and deliveries that may have
     * reached their journalist twice */
    {4, "CREATE TABLE daemons ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " host TEXT NOT NULL,"
        " pid INTEGER NOT NULL,"
        " started INTEGER NOT NULL,"
        " heartbeat INTEGER NOT NULL,"
        " ended INTEGER,"
        " control TEXT);"
        "ALTER TABLE deliveries ADD COLUMN owner INTEGER;"
        "ALTER TABLE deliveries ADD COLUMN handed_at INTEGER;"
        "ALTER TABLE deliveries ADD COLUMN may_duplicate INTEGER NOT NULL"
        " DEFAULT 0;"
        "ALTER TABLE deliveries ADD COLUMN duplicate_why TEXT"
        " CHECK (duplicate_why IN ('stop', 'lease'));"
        /* an owner's claims, when it has ended */
        "CREATE INDEX deliveries_owner ON deliveries (owner)"
        " WHERE state = 'sending';"
        "PRAGMA user_version = 4;"},
    /* 5: a release is done when nothing of it is left to send or retry
     * (claims skip it); a suppression keeps the delivery whose bounce,
     * complaint, unsubscribe request or refusal put the address on the
     * list (found again for the events recorded before: in one
     * transaction, event and suppression got the same time); a retry no
     * longer rewrites queued_at but sets retried_at. The columns and the
     * state are added by store_sqlite_migrate_5 first. */
    {5,
     "UPDATE suppressions SET delivery_id = (SELECT e.delivery_id"
     " FROM events e WHERE e.email_key = suppressions.email"
     " AND e.at = suppressions.at AND e.delivery_id IS NOT NULL"
     " AND e.matched_by IS NOT 'mismatch' ORDER BY e.id LIMIT 1);"
     "UPDATE releases SET state = 'done'"
     " WHERE state IN ('active', 'paused') AND NOT EXISTS"
     " (SELECT 1 FROM deliveries WHERE release_id = releases.id"
     "  AND state IN ('queued', 'sending', 'deferred'));"
     "PRAGMA user_version = 5;"},
    /* 6: why an event from the bounce mailbox was not acted on (only a
     * valid token naming the address it reports acts; policy.c), NULL
     * when it was or there was nothing to act on. The column is added by
     * store_sqlite_migrate_6 first. */
    {6, "PRAGMA user_version = 6;"},
    /* 7: what put an address on the suppression list and what made an
     * event's verdict: the rule (verdict.h's names, or "admin",
     * "import", "soft-limit", ...) and the evidence, one line (store.h,
     * struct store_suppression). Entries and events from before have
     * neither. The columns are added by store_sqlite_migrate_7 first. */
    {7, "PRAGMA user_version = 7;"},
};
/* What a migration step needs beside its SQL, run just before it. */
struct store_sqlite;
static int store_sqlite_migrate_5(struct store_sqlite *s, struct diag *d);
static int store_sqlite_migrate_6(struct store_sqlite *s, struct diag *d);
static int store_sqlite_migrate_7(struct store_sqlite *s, struct diag *d);
static const struct {
	int version;
	int (*fn)(struct store_sqlite *s, struct diag *d);
} store_sqlite_migration_fns[] = {
    {5, store_sqlite_migrate_5},
    {6, store_sqlite_migrate_6},
    {7, store_sqlite_migrate_7},
};
#define STORE_SQLITE_NMIGRATIONS                                               \
	(sizeof(store_sqlite_migrations) / sizeof(store_sqlite_migrations[0]))
#define STORE_SQLITE_VERSION                                                   \
	(store_sqlite_migrations[STORE_SQLITE_NMIGRATIONS - 1].version)

/* The columns of a delivery, in the order store_sqlite_delivery reads;
 * p is the table's alias ("d."). */
#define STORE_SQLITE_DELIVERY_COLS(p)                                          \
	p "id, " p "release_id, " p "state, " p "email, " p "name, " p         \
	  "language, " p "outlet, " p "beat, " p "region, " p "timezone, " p   \
	  "message_id, " p "attempts, " p "queued_at, " p "next_at, " p        \
	  "updated_at, " p "last_code, " p "last_status, " p "last_text, " p  \
	  "retried_at"
#define STORE_SQLITE_DELIVERY_NCOLS 19

/* The columns of a release, in the order store_sqlite_release reads. */
#define STORE_SQLITE_RELEASE_COLS                                              \
	"id, name, source, state, queued_at, not_before, stale_after"

/* Strings handed out by claim: blocks that never move, freed together. */
struct store_sqlite_block {
	struct store_sqlite_block *next;
	size_t used, cap;
	char data[];
};

struct store_sqlite {
	struct store base; /* first: a struct store * is one of these */
	sqlite3 *db;
	char *path;
	struct store_sqlite_block *claimed; /* strings of the last claim */
	char *key;                          /* an address as compared */
	size_t keycap;
	int64_t owner; /* daemons.id of this handle's heraldd, 0: none */
	sqlite3_stmt *load;  /* store_copy's INSERT into load_table */
	size_t load_table;
};

static struct store_sqlite *store_sqlite_of(struct store *st)
{
	return (struct store_sqlite *)st;
}

/* ---- strings ---------------------------------------------------------- */

static void store_sqlite_blocks_free(struct store_sqlite_block **head)
{
	while (*head != NULL) {
		struct store_sqlite_block *b = *head;
		*head = b->next;
		free(b);
	}
}

/* Copy column i of st (NULL stays NULL) into the blocks at *head. */
static int store_sqlite_dup(struct store_sqlite_block **head, sqlite3_stmt *st,
                            int i, const char **out)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t len = (size_t)sqlite3_column_bytes(st, i);
	struct store_sqlite_block *b = *head;

	*out = NULL;
	if (t == NULL)
		return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : -1;
	if (b == NULL || b->cap - b->used < len + 1) {
		size_t cap = len + 1 > store_sqlite_defaults.block
		                 ? len + 1
		                 : store_sqlite_defaults.block;
		if ((b = malloc(sizeof(*b) + cap)) == NULL)
			return -1;
		b->next = *head;
		b->used = 0;
		b->cap = cap;
		*head = b;
	}
	memcpy(b->data + b->used, t, len + 1);
	*out = b->data + b->used;
	b->used += len + 1;
	return 0;
}

/*
 * The address as the suppression list keeps it: the local part as
 * written (it may be case-sensitive), the domain in lower case (it never
 * is). Into s->key, valid until the next call.
 */
static const char *store_sqlite_key(struct store_sqlite *s, const char *email)
{
	return store_shared_key(&s->key, &s->keycap, email);
}

/* ---- errors and transactions ------------------------------------------ */

/*
 * Say what went wrong, for people: the store, what herald was doing, and
 * SQLite's words. The caller rolls back; nothing a failed call did stays.
 */
static int store_sqlite_fail(struct store_sqlite *s, int rc, const char *what,
                             struct diag *d)
{
	const char *msg = s->db != NULL && sqlite3_errcode(s->db) != SQLITE_OK
	                      ? sqlite3_errmsg(s->db)
	                      : sqlite3_errstr(rc);
	int sys = s->db != NULL ? sqlite3_system_errno(s->db) : 0;

	switch (rc & 0xff) {
	case SQLITE_FULL:
		diag_add(d, s->path, 0, 0,
		         "the store's disk is full: nothing was changed (while "
		         "%s); free some space and try again",
		         what);
		break;
	case SQLITE_IOERR:
		diag_add(d, s->path, 0, 0,
		         "the store could not be read or written (%s%s%s) "
		         "while %s: nothing was changed",
		         msg, sys ? ": " : "", sys ? strerror(sys) : "", what);
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		diag_add(d, s->path, 0, 0,
		         "the store is busy: another herald process kept it "
		         "locked for more than %d seconds while %s; try again",
		         store_sqlite_defaults.busy_ms / 1000, what);
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		diag_add(d, s->path, 0, 0,
		         "the store is damaged or is not a herald store (%s, "
		         "while %s)",
		         msg, what);
		break;
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
		diag_add(d, s->path, 0, 0,
		         "cannot use the store (%s) while %s: check the "
		         "permissions of the file and its directory",
		         msg, what);
		break;
	case SQLITE_NOMEM:
		diag_add(d, s->path, 0, 0, "out of memory while %s", what);
		break;
	default:
		diag_add(d, s->path, 0, 0, "store: %s: %s", what, msg);
		break;
	}
	return -1;
}

static int store_sqlite_oom(struct store_sqlite *s, const char *what,
                            struct diag *d)
{
	diag_add(d, s->path, 0, 0, "out of memory while %s", what);
	return -1;
}

static int store_sqlite_exec(struct store_sqlite *s, const char *sql,
                             const char *what, struct diag *d)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_fail(s, rc, what, d);
	return 0;
}

/* Every write transaction takes the write lock at once: a deferred one
 * that reads first could not wait for it later (SQLITE_BUSY at once). */
static int store_sqlite_begin(struct store_sqlite *s, const char *what,
                              struct diag *d)
{
	return store_sqlite_exec(s, "BEGIN IMMEDIATE", what, d);
}

static int store_sqlite_commit(struct store_sqlite *s, const char *what,
                               struct diag *d)
{
	return store_sqlite_exec(s, "COMMIT", what, d);
}

static void store_sqlite_rollback(struct store_sqlite *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static sqlite3_stmt *store_sqlite_prepare(struct store_sqlite *s,
                                          const char *sql, const char *what,
                                          struct diag *d)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(s->db, sql, -1, 0, &st, NULL);

	if (rc != SQLITE_OK) {
		store_sqlite_fail(s, rc, what, d);
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* ---- delivery states: guarded writes ----------------------------------- */

/*
 * dstate.c decides which moves of a delivery's state are legal; the store
 * only performs them. Every UPDATE that changes deliveries.state is
 * prepared by store_sqlite_move, which writes "state = TO" and guards it
 * with "state IN (the states dstate_from allows)". Only record's UPDATE
 * builds its guard into a CASE instead (store_sqlite_record: the try is
 * counted even when the result no longer applies), from the same sets.
 * The texts are built from dstate's table and herald's state names, never
 * from a value: values are still bound.
 */

/* "state = 'sending'" or "state IN ('queued', 'deferred')": the states of
 * set (a single one as "=", which is how the partial indexes are written).
 * NULL when memory runs out; free with sqlite3_free. */
static char *store_sqlite_in(unsigned set)
{
	char in[256];

	store_shared_states(in, sizeof(in), set);
	return sqlite3_mprintf("%s", in);
}

/* Prepare an SQL text made from fmt (a constant) and the texts that
 * dstate's sets became. */
static sqlite3_stmt *store_sqlite_preparef(struct store_sqlite *s,
                                           const char *what, struct diag *d,
                                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static sqlite3_stmt *store_sqlite_preparef(struct store_sqlite *s,
                                           const char *what, struct diag *d,
                                           const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	char *sql;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (sql == NULL) {
		store_sqlite_oom(s, what, d);
		return NULL;
	}
	st = store_sqlite_prepare(s, sql, what, d);
	sqlite3_free(sql);
	return st;
}

/*
 * The guarded write: prepare "UPDATE deliveries SET state = TO, set WHERE
 * where AND state IN (dstate_from(ev) and dstate_from(also))". to is the
 * new state as SQL, NULL: store_shared_to(ev), and then set must write
 * what dstate_records says (store_shared_records); a caller that names
 * to writes part of a move (uncancel's suppressed ones) and says why.
 * also is an event the same statement performs too (a claim that takes
 * over a lease), -1: none. set and where are constants with the caller's
 * parameters.
 */
static sqlite3_stmt *store_sqlite_move(struct store_sqlite *s,
                                       enum dstate_event ev, int also,
                                       const char *to, const char *set,
                                       const char *where, const char *what,
                                       struct diag *d)
{
	unsigned from = dstate_from(ev), records = dstate_records(ev);
	char *in;
	sqlite3_stmt *st;

	if (also >= 0) {
		from |= dstate_from((enum dstate_event)also);
		records |= dstate_records((enum dstate_event)also);
	}
	if (to == NULL && ((to = store_shared_to(ev)) == NULL ||
	                   !store_shared_records(records, set, "?"))) {
		diag_add(d, s->path, 0, 0,
		         "store: %s: the move \"%s\" is not written as dstate "
		         "says",
		         what, dstate_event_name(ev));
		return NULL;
	}
	if ((in = store_sqlite_in(from)) == NULL) {
		store_sqlite_oom(s, what, d);
		return NULL;
	}
	st = store_sqlite_preparef(s, what, d,
	                           "UPDATE deliveries SET state = %s%s%s"
	                           " WHERE %s AND %s",
	                           to, *set ? ", " : "", set, where, in);
	sqlite3_free(in);
	return st;
}

/* Run a statement that returns no rows, and reset it for the next use. */
static int store_sqlite_run(struct store_sqlite *s, sqlite3_stmt *st,
                            const char *what, struct diag *d)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

static int store_sqlite_text(sqlite3_stmt *st, int i, const char *v)
{
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static int store_sqlite_int(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, v);
}

/* A bind failed (a value too large for SQLite, or out of memory). */
static int store_sqlite_bind_fail(struct store_sqlite *s, const char *what,
                                  struct diag *d)
{
	int rc = sqlite3_errcode(s->db);

	return store_sqlite_fail(s, rc != SQLITE_OK ? rc : SQLITE_ERROR, what,
	                         d);
}

/* ---- rows ------------------------------------------------------------- */

static int store_sqlite_bad_value(struct store_sqlite *s, const char *what,
                                  const char *value, struct diag *d)
{
	diag_add(d, s->path, 0, 0,
	         "the store holds a state \"%s\" this herald does not know "
	         "(while %s): was it written by a newer herald?",
	         value ? value : "", what);
	return -1;
}

/* A delivery row (STORE_SQLITE_DELIVERY_COLS from column 0), strings
 * copied into *mem. */
static int store_sqlite_delivery(struct store_sqlite *s, sqlite3_stmt *st,
                                 struct store_sqlite_block **mem,
                                 struct store_delivery *dl, const char *what,
                                 struct diag *d)
{
	const char *state = (const char *)sqlite3_column_text(st, 2);
	int rc = 0;

	memset(dl, 0, sizeof(*dl));
	dl->id = sqlite3_column_int64(st, 0);
	dl->release_id = sqlite3_column_int64(st, 1);
	if (store_state_parse(state, &dl->state) < 0)
		return store_sqlite_bad_value(s, what, state, d);
	rc |= store_sqlite_dup(mem, st, 3, &dl->r.email);
	rc |= store_sqlite_dup(mem, st, 4, &dl->r.name);
	rc |= store_sqlite_dup(mem, st, 5, &dl->r.language);
	rc |= store_sqlite_dup(mem, st, 6, &dl->r.outlet);
	rc |= store_sqlite_dup(mem, st, 7, &dl->r.beat);
	rc |= store_sqlite_dup(mem, st, 8, &dl->r.region);
	rc |= store_sqlite_dup(mem, st, 9, &dl->r.timezone);
	rc |= store_sqlite_dup(mem, st, 10, &dl->r.message_id);
	dl->attempts = (unsigned)sqlite3_column_int64(st, 11);
	dl->queued_at = (time_t)sqlite3_column_int64(st, 12);
	dl->next_at = (time_t)sqlite3_column_int64(st, 13);
	dl->updated_at = (time_t)sqlite3_column_int64(st, 14);
	dl->last_code = sqlite3_column_int(st, 15);
	rc |= store_sqlite_dup(mem, st, 16, &dl->last_status);
	rc |= store_sqlite_dup(mem, st, 17, &dl->last_text);
	dl->retried_at = (time_t)sqlite3_column_int64(st, 18);
	if (rc != 0)
		return store_sqlite_oom(s, what, d);
	return 0;
}

/* A release row (STORE_SQLITE_RELEASE_COLS) and its counts. */
static int store_sqlite_release(struct store_sqlite *s, sqlite3_stmt *st,
                                sqlite3_stmt *counts,
                                struct store_release_info *info,
                                const char *what, struct diag *d)
{
	const char *name = (const char *)sqlite3_column_text(st, 1);
	const char *source = (const char *)sqlite3_column_text(st, 2);
	const char *state = (const char *)sqlite3_column_text(st, 3);
	int rc;

	memset(info, 0, sizeof(*info));
	info->id = sqlite3_column_int64(st, 0);
	store_shared_cut(info->name, sizeof(info->name), name ? name : "");
	store_shared_shown(info->source, sizeof(info->source),
	                   source ? source : "");
	if (store_release_state_parse(state, &info->state) < 0)
		return store_sqlite_bad_value(s, what, state, d);
	info->queued_at = (time_t)sqlite3_column_int64(st, 4);
	info->not_before = (time_t)sqlite3_column_int64(st, 5);
	info->stale_after = (time_t)sqlite3_column_int64(st, 6);

	if (store_sqlite_int(counts, 1, info->id) != SQLITE_OK)
		return store_sqlite_bind_fail(s, what, d);
	while ((rc = sqlite3_step(counts)) == SQLITE_ROW) {
		const char *cs = (const char *)sqlite3_column_text(counts, 0);
		enum store_state ds;
		size_t c = (size_t)sqlite3_column_int64(counts, 1);

		if (store_state_parse(cs, &ds) < 0) {
			sqlite3_reset(counts);
			return store_sqlite_bad_value(s, what, cs, d);
		}
		info->count[ds] = c;
		info->total += c;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		sqlite3_reset(counts);
		return -1;
	}
	sqlite3_reset(counts);
	return 0;
}

static const char store_sqlite_counts_sql[] =
    "SELECT state, count(*) FROM deliveries WHERE release_id = ?1"
    " GROUP BY state";

static int store_sqlite_no_release(struct store_sqlite *s, int64_t id,
                                   struct diag *d)
{
	diag_add(d, s->path, 0, 0,
	         "there is no release %" PRId64 " in the store", id);
	return -1;
}

/* A release with nothing left to send or retry is done (store.h).
 * STORE_SQLITE_SETTLE is the condition, for release r; settle marks
 * release_id (0: every active or paused one) done where it holds, inside
 * the caller's transaction. Each release costs one probe of the
 * deliveries_release index, and done releases are not looked at again. */
#define STORE_SQLITE_SETTLE(r)                                                 \
	" state IN ('active', 'paused') AND NOT EXISTS (SELECT 1"              \
	" FROM deliveries WHERE release_id = " r                               \
	" AND state IN ('queued', 'sending', 'deferred'))"

static int store_sqlite_settle(struct store_sqlite *s, int64_t release_id,
                               const char *what, struct diag *d)
{
	sqlite3_stmt *st = store_sqlite_prepare(
	    s,
	    release_id != 0
	        ? "UPDATE releases SET state = 'done' WHERE id = ?1 AND"
	          STORE_SQLITE_SETTLE("?1")
	        : "UPDATE releases SET state = 'done' WHERE ?1 = 0 AND"
	          STORE_SQLITE_SETTLE("releases.id"),
	    what, d);
	int rc;

	if (st == NULL)
		return -1;
	if (store_sqlite_int(st, 1, release_id) != SQLITE_OK) {
		sqlite3_finalize(st);
		return store_sqlite_bind_fail(s, what, d);
	}
	rc = store_sqlite_run(s, st, what, d);
	sqlite3_finalize(st);
	return rc;
}

/* ---- open and close --------------------------------------------------- */

/* Is there a store file at path? For commands that must not make one:
 * 0, or -1 with the reason in d and its kind (store.h) in *kind. */
static int store_sqlite_exists(const char *path, int *kind, struct diag *d)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		*kind = errno == ENOENT || errno == ENOTDIR ? ENOENT
		        : errno == EACCES                  ? EACCES
		                                           : EIO;
		if (*kind == ENOENT)
			diag_add(d, path, 0, 0,
			         "there is no store here: only herald queue "
			         "(and suppress add or import) makes one; give "
			         "--store PATH or the config that names the "
			         "store (\"store:\" in herald.yaml)");
		else
			diag_add(d, path, 0, 0, "cannot reach the store: %s",
			         strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		*kind = EINVAL;
		diag_add(d, path, 0, 0, "not a store: not a regular file");
		return -1;
	}
	return 0;
}

/* The kind of a failure to open (store.h), from SQLite's last error: no
 * error at all is herald refusing the file (not its store, a newer
 * herald's, no write-ahead log). */
static int store_sqlite_kind(const struct store_sqlite *s)
{
	switch (s->db != NULL ? sqlite3_errcode(s->db) & 0xff
	                      : SQLITE_CANTOPEN) {
	case SQLITE_OK:
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return EINVAL;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH:
		return EACCES;
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	default:
		return EIO;
	}
}

/* Create the file with the store's mode before SQLite opens it, so it is
 * never readable by others, whatever the umask. */
static int store_sqlite_create(const char *path, struct diag *d)
{
	mode_t mode = store_sqlite_defaults.mode;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	              mode);

	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		diag_add(d, path, 0, 0, "cannot create the store: %s",
		         strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) < 0) {
		diag_add(d, path, 0, 0, "cannot set the store's mode: %s",
		         strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

/* One integer from a statement with one row (PRAGMA user_version, ...). */
static int store_sqlite_int_query(struct store_sqlite *s, const char *sql,
                                  int64_t *out, const char *what,
                                  struct diag *d)
{
	sqlite3_stmt *st = store_sqlite_prepare(s, sql, what, d);
	int rc;

	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc,
		                  what, d);
		sqlite3_finalize(st);
		return -1;
	}
	*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* Does table have column? -1 on failure (in d). */
static int store_sqlite_has_column(struct store_sqlite *s, const char *table,
                                   const char *column, const char *what,
                                   struct diag *d)
{
	sqlite3_stmt *st = store_sqlite_prepare(
	    s, "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
	    what, d);
	int rc, has;

	if (st == NULL)
		return -1;
	if (store_sqlite_text(st, 1, table) || store_sqlite_text(st, 2, column)) {
		sqlite3_finalize(st);
		return store_sqlite_bind_fail(s, what, d);
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return store_sqlite_fail(s, rc, what, d);
	}
	has = sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	return has;
}

/* Migration 5, what SQL alone cannot say (each part done only when it is
 * not there yet): the columns suppressions.delivery_id and
 * deliveries.retried_at, and 'done' among the release states of the CHECK
 * constraint of releases.state. ALTER TABLE cannot change a CHECK
 * constraint; SQLite documents this way of widening one
 * (lang_altertable.html, "making other kinds of table schema changes"):
 * the table's text changed in sqlite_schema and schema_version raised,
 * inside the migration's transaction, so every connection reads the
 * schema again. */
static int store_sqlite_migrate_5(struct store_sqlite *s, struct diag *d)
{
	const char *what = "letting a release be done";
	char sql[64];
	int64_t version, widened;
	int has;

	if ((has = store_sqlite_has_column(s, "suppressions", "delivery_id",
	                                   what, d)) < 0 ||
	    (!has &&
	     store_sqlite_exec(s,
	                       "ALTER TABLE suppressions ADD COLUMN delivery_id"
	                       " INTEGER REFERENCES deliveries (id)"
	                       " ON DELETE SET NULL",
	                       what, d) < 0) ||
	    (has = store_sqlite_has_column(s, "deliveries", "retried_at", what,
	                                   d)) < 0 ||
	    (!has && store_sqlite_exec(s,
	                               "ALTER TABLE deliveries ADD COLUMN"
	                               " retried_at INTEGER NOT NULL DEFAULT 0",
	                               what, d) < 0))
		return -1;
	if (store_sqlite_int_query(
	        s,
	        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
	        " AND name = 'releases'"
	        " AND instr(sql, '''cancelled'', ''done'')') > 0",
	        &widened, what, d) < 0)
		return -1;
	if (widened)
		return 0;
	if (store_sqlite_int_query(s, "PRAGMA schema_version", &version, what,
	                           d) < 0 ||
	    store_sqlite_exec(s, "PRAGMA writable_schema = ON", what, d) < 0)
		return -1;
	if (store_sqlite_exec(
	        s,
	        "UPDATE sqlite_schema SET sql = replace(sql,"
	        " '''paused'', ''cancelled'')',"
	        " '''paused'', ''cancelled'', ''done'')')"
	        " WHERE type = 'table' AND name = 'releases'"
	        " AND instr(sql, '''paused'', ''cancelled'')') > 0",
	        what, d) < 0)
		goto fail;
	if (sqlite3_changes(s->db) != 1) {
		diag_add(d, s->path, 0, 0,
		         "the store's releases table is not as herald made it "
		         "(while %s)",
		         what);
		goto fail;
	}
	snprintf(sql, sizeof(sql), "PRAGMA schema_version = %" PRId64,
	         version + 1);
	if (store_sqlite_exec(s, sql, what, d) < 0)
		goto fail;
	return store_sqlite_exec(s, "PRAGMA writable_schema = OFF", what, d);
fail:
	sqlite3_exec(s->db, "PRAGMA writable_schema = OFF", NULL, NULL, NULL);
	return -1;
}

/* Migration 6's column, unless a run that did not finish added it. */
static int store_sqlite_migrate_6(struct store_sqlite *s, struct diag *d)
{
	const char *what = "keeping why an event was not acted on";
	int has = store_sqlite_has_column(s, "events", "held", what, d);

	if (has < 0)
		return -1;
	if (has)
		return 0;
	return store_sqlite_exec(s, "ALTER TABLE events ADD COLUMN held TEXT",
	                         what, d);
}

/* Migration 7's columns, each unless a run that did not finish added
 * it. */
static int store_sqlite_migrate_7(struct store_sqlite *s, struct diag *d)
{
	static const struct {
		const char *table, *column, *sql;
	} add[] = {
	    {"events", "rule", "ALTER TABLE events ADD COLUMN rule TEXT"},
	    {"events", "evidence",
	     "ALTER TABLE events ADD COLUMN evidence TEXT"},
	    {"suppressions", "rule",
	     "ALTER TABLE suppressions ADD COLUMN rule TEXT"},
	    {"suppressions", "evidence",
	     "ALTER TABLE suppressions ADD COLUMN evidence TEXT"},
	};
	const char *what = "keeping the rule and evidence of each verdict";

	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
		int has = store_sqlite_has_column(s, add[i].table,
		                                  add[i].column, what, d);
		if (has < 0 ||
		    (!has && store_sqlite_exec(s, add[i].sql, what, d) < 0))
			return -1;
	}
	return 0;
}

/* Is this file a herald store at a version this herald can use? */
static int store_sqlite_check(struct store_sqlite *s, int64_t *version,
                              struct diag *d)
{
	const char *what = "reading the schema version";
	int64_t app, tables;

	if (store_sqlite_int_query(s, "PRAGMA user_version", version, what, d) <
	        0 ||
	    store_sqlite_int_query(s, "PRAGMA application_id", &app, what, d) <
	        0 ||
	    store_sqlite_int_query(s, "SELECT count(*) FROM sqlite_schema",
	                           &tables, what, d) < 0)
		return -1;
	if ((app != 0 && app != STORE_SQLITE_APP_ID) ||
	    (app == 0 && tables > 0)) {
		diag_add(d, s->path, 0, 0,
		         "this SQLite file is not a herald store: give the "
		         "store another path (herald.yaml \"store:\")");
		return -1;
	}
	if (*version > STORE_SQLITE_VERSION) {
		diag_add(d, s->path, 0, 0,
		         "the store was written by a newer herald (schema "
		         "version %" PRId64 "; this herald knows up to %d): "
		         "use that herald, or a copy of the store from before "
		         "it was upgraded",
		         *version, STORE_SQLITE_VERSION);
		return -1;
	}
	return 0;
}

/* Bring the schema up to date: every step newer than the store's version,
 * in order, in one transaction (two processes opening a new store at once
 * take turns; the second finds nothing to do). */
static int store_sqlite_migrate(struct store_sqlite *s, struct diag *d)
{
	const char *what = "bringing the store's schema up to date";
	int64_t version;

	if (store_sqlite_check(s, &version, d) < 0)
		return -1;
	if (version == STORE_SQLITE_VERSION)
		return 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if (store_sqlite_check(s, &version, d) < 0)
		goto fail;
	for (size_t i = 0; i < STORE_SQLITE_NMIGRATIONS; i++) {
		const struct store_sqlite_migration *m =
		    &store_sqlite_migrations[i];
		if (m->version <= version)
			continue;
		for (size_t k = 0; k < sizeof(store_sqlite_migration_fns) /
		                           sizeof(store_sqlite_migration_fns[0]);
		     k++)
			if (store_sqlite_migration_fns[k].version ==
			        m->version &&
			    store_sqlite_migration_fns[k].fn(s, d) < 0)
				goto fail;
		if (store_sqlite_exec(s, m->sql, what, d) < 0)
			goto fail;
	}
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	store_sqlite_rollback(s);
	return -1;
}

static void store_sqlite_close(struct store *st)
{
	struct store_sqlite *s = store_sqlite_of(st);

	if (s == NULL)
		return;
	store_sqlite_blocks_free(&s->claimed);
	sqlite3_finalize(s->load);
	if (s->db != NULL)
		sqlite3_close_v2(s->db);
	free(s->key);
	free(s->path);
	free(s);
}

static struct store *store_sqlite_open(const char *path, unsigned flags,
                                       struct diag *d)
{
	const char *what = "opening the store";
	static const char *const settings[] = {
	    "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON", NULL};
	struct store_sqlite *s = calloc(1, sizeof(*s));
	sqlite3_stmt *st = NULL;
	const char *mode;
	int rc, kind = 0;

	if (s == NULL || (s->path = strdup(path)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory opening the store");
		kind = ENOMEM;
		goto fail;
	}
	s->base.ops = &store_sqlite_backend;
	if (flags & STORE_OPEN_CREATE) {
		if (store_sqlite_create(path, d) < 0) {
			kind = errno == EACCES || errno == EPERM ||
			               errno == EROFS
			           ? EACCES
			           : errno;
			goto fail;
		}
	} else if (store_sqlite_exists(path, &kind, d) < 0)
		goto fail;
	rc = sqlite3_open_v2(path, &s->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	                         SQLITE_OPEN_EXRESCODE,
	                     NULL);
	if (rc != SQLITE_OK) {
		store_sqlite_fail(s, rc, what, d);
		goto fail;
	}
	sqlite3_busy_timeout(s->db, store_sqlite_defaults.busy_ms);

	/* WAL first: it decides how the -wal and -shm files come to be */
	if ((st = store_sqlite_prepare(s, "PRAGMA journal_mode = WAL", what,
	                               d)) == NULL)
		goto fail;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto fail;
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		diag_add(d, path, 0, 0,
		         "the store cannot use write-ahead logging (journal "
		         "mode \"%s\"): is it on a network file system?",
		         mode ? mode : "");
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	for (size_t i = 0; settings[i] != NULL; i++)
		if (store_sqlite_exec(s, settings[i], what, d) < 0)
			goto fail;
	if (store_sqlite_exec(s, store_sqlite_defaults.wal_limit, what, d) < 0)
		goto fail;
	if (store_sqlite_migrate(s, d) < 0)
		goto fail;
	return &s->base;
fail:
	sqlite3_finalize(st);
	if (kind == 0)
		kind = store_sqlite_kind(s);
	store_sqlite_close(s ? &s->base : NULL);
	errno = kind;
	return NULL;
}

/* ---- releases --------------------------------------------------------- */

/* The recipients of a release being queued: the caller's function. */
struct store_sqlite_rcpts {
	int (*next)(void *arg, struct store_recipient *r);
	void *arg;
};

/* What to do with a release name the store holds already. */
enum store_sqlite_names {
	STORE_SQLITE_NAME_REFUSE,  /* queue nothing (returns 1) */
	STORE_SQLITE_NAME_ONLY_NEW /* skip addresses it has reached */
};

static int store_sqlite_release_in(struct store *stp,
                                   const struct store_release_new *rn,
                                   struct store_sqlite_rcpts *rs,
                                   enum store_sqlite_names names,
                                   struct store_release_added *out,
                                   struct diag *d)
{
	const char *what = "queueing the release";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *rel = NULL, *file = NULL, *dl = NULL, *count = NULL;
	sqlite3_stmt *prior = NULL, *has = NULL;
	struct store_recipient rv;
	time_t now = time(NULL);
	time_t next = rn->not_before > now ? rn->not_before : now;
	int64_t id;
	size_t i = 0;
	int rc, got;

	if (rn->name == NULL || *rn->name == '\0' ||
	    strlen(rn->name) > store_sqlite_defaults.name_max) {
		diag_add(d, s->path, 0, 0,
		         "a release name must be 1 to %zu bytes long",
		         store_sqlite_defaults.name_max);
		return -1;
	}
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if ((rel = store_sqlite_prepare(
	         s,
	         "INSERT INTO releases (name, source, release_dir,"
	         " coalition, state, queued_at, not_before, stale_after)"
	         " VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7)",
	         what, d)) == NULL ||
	    (file = store_sqlite_prepare(
	         s,
	         "INSERT INTO release_files (release_id, path, data)"
	         " VALUES (?1, ?2, ?3)",
	         what, d)) == NULL ||
	    (dl = store_sqlite_prepare(
	         s,
	         "INSERT INTO deliveries (release_id, email, email_key,"
	         " name, language, outlet, beat, region, timezone,"
	         " message_id, state, queued_at, next_at, updated_at)"
	         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
	         " CASE WHEN EXISTS (SELECT 1 FROM suppressions"
	         "  WHERE email = ?3) THEN 'suppressed' ELSE 'queued' END,"
	         " ?11, ?12, ?11)",
	         what, d)) == NULL ||
	    (count = store_sqlite_prepare(
	         s,
	         "SELECT count(*) FROM deliveries"
	         " WHERE release_id = ?1 AND state = 'suppressed'",
	         what, d)) == NULL ||
	    (prior = store_sqlite_prepare(
	         s,
	         "SELECT max(id) FROM releases WHERE name = ?1", what,
	         d)) == NULL ||
	    (has = store_sqlite_prepare(
	         s,
	         /* deliveries_email finds the address's few deliveries */
	         "SELECT count(*), coalesce(sum(d.state = 'cancelled'), 0)"
	         " FROM deliveries d JOIN releases r ON r.id = d.release_id"
	         " WHERE d.email_key = ?1 AND r.name = ?2",
	         what, d)) == NULL)
		goto fail;
	/* a name queued before: refused, or only its new addresses */
	if (store_sqlite_text(prior, 1, rn->name) ||
	    store_sqlite_text(has, 2, rn->name)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if ((rc = sqlite3_step(prior)) != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto fail;
	}
	out->earlier = sqlite3_column_int64(prior, 0);
	sqlite3_reset(prior);
	if (out->earlier != 0 && names == STORE_SQLITE_NAME_REFUSE)
		goto nothing;

	if (store_sqlite_text(rel, 1, rn->name) ||
	    store_sqlite_text(rel, 2, rn->source ? rn->source : "") ||
	    store_sqlite_text(rel, 3, rn->release_dir ? rn->release_dir : "") ||
	    store_sqlite_text(rel, 4, rn->coalition ? rn->coalition : "") ||
	    store_sqlite_int(rel, 5, now) ||
	    store_sqlite_int(rel, 6, rn->not_before) ||
	    store_sqlite_int(rel, 7, rn->stale_after)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_run(s, rel, what, d) < 0)
		goto fail;
	id = sqlite3_last_insert_rowid(s->db);

	if (store_sqlite_int(file, 1, id) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	for (size_t k = 0; k < rn->nfiles; k++) {
		const struct store_file *f = &rn->files[k];
		if (f->path == NULL) {
			diag_add(d, s->path, 0, 0,
			         "snapshot file %zu has no path: nothing was "
			         "queued",
			         k + 1);
			goto fail;
		}
		if (store_sqlite_text(file, 2, f->path) ||
		    (f->len == 0 ? sqlite3_bind_zeroblob(file, 3, 0)
		                 : sqlite3_bind_blob64(file, 3, f->data,
		                                       (sqlite3_uint64)f->len,
		                                       SQLITE_STATIC))) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		rc = sqlite3_step(file);
		if (rc == SQLITE_CONSTRAINT_UNIQUE) {
			diag_add(d, s->path, 0, 0,
			         "the snapshot holds %s twice: nothing was "
			         "queued",
			         f->path);
			goto fail;
		}
		if (rc != SQLITE_DONE) {
			store_sqlite_fail(s, rc, "storing the release's files",
			                  d);
			goto fail;
		}
		sqlite3_reset(file);
	}

	if (store_sqlite_int(dl, 1, id) || store_sqlite_int(dl, 11, now) ||
	    store_sqlite_int(dl, 12, next)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	for (i = 0; (got = rs->next(rs->arg, &rv)) == 1; i++) {
		const struct store_recipient *r = &rv;
		const char *key;

		if (r->email == NULL || r->message_id == NULL) {
			diag_add(d, s->path, 0, 0,
			         "recipient %zu has no %s: nothing was queued",
			         i + 1,
			         r->email == NULL ? "address" : "Message-ID");
			goto fail;
		}
		if ((key = store_sqlite_key(s, r->email)) == NULL) {
			store_sqlite_oom(s, what, d);
			goto fail;
		}
		if (out->earlier != 0 && names == STORE_SQLITE_NAME_ONLY_NEW) {
			int64_t seen, cancelled;
			if (store_sqlite_text(has, 1, key)) {
				store_sqlite_bind_fail(s, what, d);
				goto fail;
			}
			if ((rc = sqlite3_step(has)) != SQLITE_ROW) {
				store_sqlite_fail(s, rc, what, d);
				goto fail;
			}
			seen = sqlite3_column_int64(has, 0);
			cancelled = sqlite3_column_int64(has, 1);
			sqlite3_reset(has);
			if (seen > 0) {
				out->skipped++;
				out->skipped_cancelled += cancelled == seen;
				continue;
			}
		}
		if (store_sqlite_text(dl, 2, r->email) ||
		    store_sqlite_text(dl, 3, key) ||
		    store_sqlite_text(dl, 4, r->name) ||
		    store_sqlite_text(dl, 5, r->language) ||
		    store_sqlite_text(dl, 6, r->outlet) ||
		    store_sqlite_text(dl, 7, r->beat) ||
		    store_sqlite_text(dl, 8, r->region) ||
		    store_sqlite_text(dl, 9, r->timezone) ||
		    store_sqlite_text(dl, 10, r->message_id)) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		rc = sqlite3_step(dl);
		if (rc == SQLITE_CONSTRAINT_UNIQUE) {
			if (strstr(sqlite3_errmsg(s->db), "message_id") != NULL)
				diag_add(d, s->path, 0, 0,
				         "recipient %zu (%s): the Message-ID "
				         "<%s> is already in the store: "
				         "nothing was queued",
				         i + 1, r->email, r->message_id);
			else
				diag_add(d, s->path, 0, 0,
				         "recipient %zu: %s is in the list "
				         "twice: nothing was queued",
				         i + 1, r->email);
			goto fail;
		}
		if (rc != SQLITE_DONE) {
			store_sqlite_fail(s, rc, what, d);
			goto fail;
		}
		sqlite3_reset(dl);
		out->queued++;
	}
	if (got < 0)
		goto fail; /* next said why */
	if (out->queued == 0 && out->skipped > 0)
		goto nothing; /* every address has had the release */

	if (store_sqlite_int(count, 1, id) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if ((rc = sqlite3_step(count)) != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto fail;
	}
	out->suppressed = (size_t)sqlite3_column_int64(count, 0);
	sqlite3_reset(count);
	sqlite3_finalize(rel);
	sqlite3_finalize(file);
	sqlite3_finalize(dl);
	sqlite3_finalize(count);
	sqlite3_finalize(prior);
	sqlite3_finalize(has);
	rel = file = dl = count = prior = has = NULL;
	/* every address suppressed, or none: nothing is left to send */
	if (store_sqlite_settle(s, id, what, d) < 0 ||
	    store_sqlite_commit(s, what, d) < 0)
		goto fail;
	out->release_id = id;
	return 0;
nothing:
	out->queued = 0;
	sqlite3_finalize(has);
	sqlite3_finalize(prior);
	sqlite3_finalize(count);
	sqlite3_finalize(dl);
	sqlite3_finalize(file);
	sqlite3_finalize(rel);
	store_sqlite_rollback(s);
	return 1;
fail:
	sqlite3_finalize(has);
	sqlite3_finalize(prior);
	sqlite3_finalize(count);
	sqlite3_finalize(dl);
	sqlite3_finalize(file);
	sqlite3_finalize(rel);
	store_sqlite_rollback(s);
	return -1;
}

static int store_sqlite_release_add_each(
    struct store *stp, const struct store_release_new *rn,
    int (*next)(void *arg, struct store_recipient *r), void *arg,
    struct store_release_added *out, struct diag *d)
{
	struct store_sqlite_rcpts rs = {.next = next, .arg = arg};
	bool only_new = out->only_new;

	memset(out, 0, sizeof(*out));
	out->only_new = only_new;
	return store_sqlite_release_in(stp, rn, &rs,
	                               only_new ? STORE_SQLITE_NAME_ONLY_NEW
	                                        : STORE_SQLITE_NAME_REFUSE,
	                               out, d);
}

static int store_sqlite_release_files(struct store *stp, int64_t release_id,
                                      int (*fn)(void *arg,
                                                const struct store_file *f),
                                      void *arg, struct diag *d)
{
	const char *what = "reading the release's files";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL, *rel = NULL;
	int rc, ret = -1;

	if ((rel = store_sqlite_prepare(
	         s, "SELECT 1 FROM releases WHERE id = ?1", what, d)) == NULL ||
	    (st = store_sqlite_prepare(s,
	                               "SELECT path, data FROM release_files"
	                               " WHERE release_id = ?1 ORDER BY id",
	                               what, d)) == NULL)
		goto out;
	if (store_sqlite_int(rel, 1, release_id) ||
	    store_sqlite_int(st, 1, release_id)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(rel)) == SQLITE_DONE) {
		store_sqlite_no_release(s, release_id, d);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_file f;
		int r;

		f.path = (const char *)sqlite3_column_text(st, 0);
		f.data = sqlite3_column_blob(st, 1);
		f.len = (size_t)sqlite3_column_bytes(st, 1);
		if (f.data == NULL)
			f.data = "";
		if (f.path == NULL) {
			store_sqlite_oom(s, what, d);
			goto out;
		}
		if ((r = fn(arg, &f)) != 0) {
			ret = r > 0 ? 0 : -1;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(rel);
	return ret;
}

static int store_sqlite_release_get(struct store *stp, int64_t release_id,
                                    struct store_release_info *info,
                                    char *release_dir, size_t rdsize,
                                    char *coalition, size_t csize,
                                    struct diag *d)
{
	const char *what = "reading a release";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL, *counts = NULL;
	struct store_release_info tmp;
	const char *rd, *co;
	int rc, ret = -1;

	if ((st = store_sqlite_prepare(s,
	                               "SELECT " STORE_SQLITE_RELEASE_COLS
	                               ", release_dir, coalition"
	                               " FROM releases WHERE id = ?1",
	                               what, d)) == NULL ||
	    (counts = store_sqlite_prepare(s, store_sqlite_counts_sql, what,
	                                   d)) == NULL)
		goto out;
	if (store_sqlite_int(st, 1, release_id) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		store_sqlite_no_release(s, release_id, d);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	if (store_sqlite_release(s, st, counts, info ? info : &tmp, what, d) <
	    0)
		goto out;
	rd = (const char *)sqlite3_column_text(st, 7);
	co = (const char *)sqlite3_column_text(st, 8);
	if (store_shared_copy_out(s->path, "snapshot directory", rd ? rd : "",
	                          release_dir, rdsize, d) < 0 ||
	    store_shared_copy_out(s->path, "coalition list", co ? co : "", coalition,
	                          csize, d) < 0)
		goto out;
	ret = 0;
out:
	sqlite3_finalize(counts);
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_releases_each(
    struct store *stp, int64_t release_id,
    int (*fn)(void *arg, const struct store_release_info *r), void *arg,
    struct diag *d)
{
	const char *what = "listing releases";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL, *counts = NULL;
	size_t seen = 0;
	int rc, ret = -1;

	if ((st = store_sqlite_prepare(s,
	                               "SELECT " STORE_SQLITE_RELEASE_COLS
	                               " FROM releases"
	                               " WHERE ?1 = 0 OR id = ?1"
	                               " ORDER BY id DESC",
	                               what, d)) == NULL ||
	    (counts = store_sqlite_prepare(s, store_sqlite_counts_sql, what,
	                                   d)) == NULL)
		goto out;
	if (store_sqlite_int(st, 1, release_id) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_release_info info;
		int r;

		if (store_sqlite_release(s, st, counts, &info, what, d) < 0)
			goto out;
		seen++;
		if ((r = fn(arg, &info)) != 0) {
			ret = r > 0 ? 0 : -1;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	if (release_id != 0 && seen == 0) {
		store_sqlite_no_release(s, release_id, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(counts);
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_release_find(struct store *stp, const char *id_or_name,
                                     int64_t *release_id, struct diag *d)
{
	const char *what = "finding a release";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *by_id = NULL, *by_name = NULL;
	int64_t id;
	int rc, ret = -1;

	if (id_or_name == NULL || *id_or_name == '\0') {
		diag_add(d, s->path, 0, 0, "no release named");
		return -1;
	}
	if ((by_id = store_sqlite_prepare(
	         s, "SELECT id FROM releases WHERE id = ?1", what, d)) ==
	        NULL ||
	    (by_name = store_sqlite_prepare(s,
	                                    "SELECT id FROM releases"
	                                    " WHERE name = ?1"
	                                    " ORDER BY id DESC LIMIT 1",
	                                    what, d)) == NULL)
		goto out;
	if (store_shared_parse_id(id_or_name, &id)) {
		if (store_sqlite_int(by_id, 1, id) != SQLITE_OK) {
			store_sqlite_bind_fail(s, what, d);
			goto out;
		}
		if ((rc = sqlite3_step(by_id)) == SQLITE_ROW) {
			*release_id = id;
			ret = 0;
			goto out;
		}
		if (rc != SQLITE_DONE) {
			store_sqlite_fail(s, rc, what, d);
			goto out;
		}
	}
	if (store_sqlite_text(by_name, 1, id_or_name) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(by_name)) == SQLITE_ROW) {
		*release_id = sqlite3_column_int64(by_name, 0);
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	diag_add(d, s->path, 0, 0,
	         "there is no release \"%s\" in the store (`herald status` "
	         "lists them)",
	         id_or_name);
out:
	sqlite3_finalize(by_name);
	sqlite3_finalize(by_id);
	return ret;
}

/* Cancel a release and what of it has not gone out, in the caller's
 * transaction. */
static int store_sqlite_cancel_in(struct store_sqlite *s, int64_t release_id,
                                  size_t *n, struct diag *d)
{
	const char *what = "cancelling the release";
	sqlite3_stmt *rel = NULL, *dl = NULL;
	int ret = -1;

	if ((rel =
	         store_sqlite_prepare(s,
	                              "UPDATE releases SET state = 'cancelled'"
	                              " WHERE id = ?1",
	                              what, d)) == NULL ||
	    (dl = store_sqlite_move(s, DSTATE_CANCEL, -1, NULL,
	                            "lease_until = NULL, updated_at = ?2",
	                            "release_id = ?1", what, d)) == NULL)
		goto out;
	if (store_sqlite_int(rel, 1, release_id) ||
	    store_sqlite_int(dl, 1, release_id) ||
	    store_sqlite_int(dl, 2, time(NULL))) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if (store_sqlite_run(s, rel, what, d) < 0)
		goto out;
	if (sqlite3_changes64(s->db) == 0) {
		store_sqlite_no_release(s, release_id, d);
		goto out;
	}
	if (store_sqlite_run(s, dl, what, d) < 0)
		goto out;
	if (n != NULL)
		*n = (size_t)sqlite3_changes64(s->db);
	ret = 0;
out:
	sqlite3_finalize(dl);
	sqlite3_finalize(rel);
	return ret;
}

static int store_sqlite_cancel(struct store *stp, int64_t release_id, size_t *n,
                               struct diag *d)
{
	const char *what = "cancelling the release";
	struct store_sqlite *s = store_sqlite_of(stp);

	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if (store_sqlite_cancel_in(s, release_id, n, d) < 0 ||
	    store_sqlite_commit(s, what, d) < 0) {
		store_sqlite_rollback(s);
		return -1;
	}
	return 0;
}

/* The release's state, inside the caller's transaction. */
static int store_sqlite_release_state(struct store_sqlite *s,
                                      int64_t release_id,
                                      enum store_release_state *rs,
                                      const char *what, struct diag *d)
{
	sqlite3_stmt *st = store_sqlite_prepare(
	    s, "SELECT state FROM releases WHERE id = ?1", what, d);
	const char *name;
	int rc, ret = -1;

	if (st == NULL)
		return -1;
	if (store_sqlite_int(st, 1, release_id) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		store_sqlite_no_release(s, release_id, d);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	name = (const char *)sqlite3_column_text(st, 0);
	if (store_release_state_parse(name, rs) < 0) {
		store_sqlite_bad_value(s, what, name, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_release_set_state(struct store *stp, int64_t release_id,
                                          enum store_release_state rs,
                                          struct diag *d)
{
	const char *what = "changing the release's state";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL;
	enum store_release_state cur;

	if ((unsigned)rs > STORE_RELEASE_CANCELLED) {
		diag_add(d, s->path, 0, 0,
		         "a release cannot be set %s: it is done when nothing "
		         "of it is left",
		         store_release_state_name(rs));
		return -1;
	}
	if (rs == STORE_RELEASE_CANCELLED)
		return store_sqlite_cancel(stp, release_id, NULL, d);
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if (store_sqlite_release_state(s, release_id, &cur, what, d) < 0)
		goto fail;
	if (cur == STORE_RELEASE_CANCELLED) {
		diag_add(d, s->path, 0, 0,
		         "release %" PRId64 " is cancelled: herald resume "
		         "%" PRId64 " brings its deliveries back",
		         release_id, release_id);
		goto fail;
	}
	if (cur == STORE_RELEASE_DONE) {
		diag_add(d, s->path, 0, 0,
		         "release %" PRId64 " is done: nothing of it is left "
		         "to send (herald retry --failed sends its failed "
		         "deliveries again)",
		         release_id);
		goto fail;
	}
	if ((st = store_sqlite_prepare(
	         s, "UPDATE releases SET state = ?2 WHERE id = ?1", what, d)) ==
	    NULL)
		goto fail;
	if (store_sqlite_int(st, 1, release_id) ||
	    store_sqlite_text(st, 2, store_release_state_name(rs))) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_run(s, st, what, d) < 0)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (store_sqlite_settle(s, release_id, what, d) < 0 ||
	    store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	return -1;
}

/* A cancelled release back to active, its cancelled deliveries due now:
 * to suppressed first where the address was suppressed meanwhile, then
 * the rest to queued (deferred when tried before, as unclaim does). */
static int store_sqlite_release_uncancel(struct store *stp, int64_t release_id,
                                         size_t *n, size_t *suppressed,
                                         struct diag *d)
{
	const char *what = "bringing the cancelled release back";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *rel = NULL, *sup = NULL, *back = NULL;
	enum store_release_state cur;
	time_t now = time(NULL);

	*n = *suppressed = 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if (store_sqlite_release_state(s, release_id, &cur, what, d) < 0)
		goto fail;
	if (cur != STORE_RELEASE_CANCELLED) {
		diag_add(d, s->path, 0, 0,
		         "release %" PRId64 " is %s, not cancelled", release_id,
		         store_release_state_name(cur));
		goto fail;
	}
	if ((rel = store_sqlite_prepare(
	         s, "UPDATE releases SET state = 'active' WHERE id = ?1", what,
	         d)) == NULL ||
	    /* dstate_next's three targets as two statements: the ones whose
	     * address was suppressed meanwhile (the state alone, as
	     * dstate.c says), */
	    (sup = store_sqlite_move(
	         s, DSTATE_UNCANCEL, -1, "'suppressed'", "updated_at = ?2",
	         "release_id = ?1 AND EXISTS (SELECT 1 FROM suppressions"
	         "  WHERE email = deliveries.email_key)",
	         what, d)) == NULL ||
	    /* then the rest, deferred when tried */
	    (back = store_sqlite_move(
	         s, DSTATE_UNCANCEL, -1,
	         "CASE WHEN tries > 0 THEN 'deferred' ELSE 'queued' END",
	         "next_at = ?2, lease_until = NULL, updated_at = ?2",
	         "release_id = ?1", what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(rel, 1, release_id) ||
	    store_sqlite_int(sup, 1, release_id) ||
	    store_sqlite_int(sup, 2, now) ||
	    store_sqlite_int(back, 1, release_id) ||
	    store_sqlite_int(back, 2, now)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_run(s, rel, what, d) < 0 ||
	    store_sqlite_run(s, sup, what, d) < 0)
		goto fail;
	*suppressed = (size_t)sqlite3_changes64(s->db);
	if (store_sqlite_run(s, back, what, d) < 0)
		goto fail;
	*n = (size_t)sqlite3_changes64(s->db);
	sqlite3_finalize(rel);
	sqlite3_finalize(sup);
	sqlite3_finalize(back);
	rel = sup = back = NULL;
	/* nothing cancelled left to bring back: the release is done */
	if (store_sqlite_settle(s, release_id, what, d) < 0 ||
	    store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	*n = *suppressed = 0;
	sqlite3_finalize(back);
	sqlite3_finalize(sup);
	sqlite3_finalize(rel);
	store_sqlite_rollback(s);
	return -1;
}

/* The connection's durability settings, read back from SQLite itself
 * (store_sqlite_test.h). */
int store_sqlite_test_durability(struct store *stp,
                                 int (*fn)(void *arg, const char *name,
                                           const char *value),
                                 void *arg, struct diag *d)
{
	static const char *const sync_names[] = {"off", "normal", "full",
	                                         "extra"};
	const char *what = "reading the store's settings";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st;
	int64_t sync, fk;
	char mode[32] = "";
	int rc;

	if ((st = store_sqlite_prepare(s, "PRAGMA journal_mode", what, d)) ==
	    NULL)
		return -1;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		sqlite3_finalize(st);
		return -1;
	}
	if (sqlite3_column_text(st, 0) != NULL)
		store_shared_cut(mode, sizeof(mode),
		                 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (store_sqlite_int_query(s, "PRAGMA synchronous", &sync, what, d) <
	        0 ||
	    store_sqlite_int_query(s, "PRAGMA foreign_keys", &fk, what, d) < 0)
		return -1;
	if ((rc = fn(arg, "journal_mode", mode)) != 0 ||
	    (rc = fn(arg, "synchronous",
	             sync >= 0 && sync <= 3 ? sync_names[sync] : "?")) != 0 ||
	    (rc = fn(arg, "foreign_keys", fk ? "on" : "off")) != 0)
		return rc < 0 ? -1 : 0;
	return 0;
}

/* ---- the daemon's work ------------------------------------------------ */

struct store_sqlite_cand {
	int64_t id, next_at;
};

static int store_sqlite_cand_cmp(const void *a, const void *b)
{
	const struct store_sqlite_cand *x = a, *y = b;

	if (x->next_at != y->next_at)
		return x->next_at < y->next_at ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Append the (id, next_at) rows of st to c. */
static int store_sqlite_cands(struct store_sqlite *s, sqlite3_stmt *st,
                              struct store_sqlite_cand *c, size_t *nc,
                              const char *what, struct diag *d)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		c[*nc].id = sqlite3_column_int64(st, 0);
		c[*nc].next_at = sqlite3_column_int64(st, 1);
		(*nc)++;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

static int store_sqlite_claim(struct store *stp, time_t now, unsigned lease,
                              size_t max, struct store_delivery *out,
                              struct diag *d)
{
	const char *what = "claiming due deliveries";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *rel = NULL, *due = NULL, *expired = NULL, *take = NULL;
	sqlite3_stmt *row = NULL;
	struct store_sqlite_cand *c = NULL;
	size_t nc = 0;
	int rc;

	store_sqlite_blocks_free(&s->claimed);
	if (max > INT_MAX / 4)
		max = INT_MAX / 4;
	if (max == 0)
		return 0;
	/* each release adds at most max due and max expired leases */
	if ((c = malloc(3 * max * sizeof(*c))) == NULL)
		return store_sqlite_oom(s, what, d);
	if (store_sqlite_begin(s, what, d) < 0)
		goto fail;
	if ((rel = store_sqlite_prepare(s,
	                                "SELECT id FROM releases"
	                                " WHERE state = 'active'"
	                                " AND not_before <= ?1 ORDER BY id",
	                                what, d)) == NULL ||
	    (due = store_sqlite_prepare(
	         s,
	         "SELECT id, next_at FROM deliveries"
	         " WHERE release_id = ?1"
	         " AND state IN ('queued', 'deferred')"
	         " AND next_at <= ?2 ORDER BY next_at, id LIMIT ?3",
	         what, d)) == NULL ||
	    (expired = store_sqlite_prepare(
	         s,
	         "SELECT id, next_at FROM deliveries"
	         " WHERE release_id = ?1 AND state = 'sending'"
	         " AND lease_until < ?2 ORDER BY next_at, id LIMIT ?3",
	         what, d)) == NULL ||
	    /* a lease that ran out after a hand-over: the relay may have
	     * taken it (every SET reads the row as it was) */
	    (take = store_sqlite_move(
	         s, DSTATE_CLAIM, DSTATE_TAKEOVER, NULL,
	         "lease_until = ?2, updated_at = ?3, owner = ?4,"
	         " handed_at = NULL,"
	         " may_duplicate = CASE WHEN state = 'sending'"
	         "  AND handed_at IS NOT NULL THEN ?3 ELSE may_duplicate END,"
	         " duplicate_why = CASE WHEN state = 'sending'"
	         "  AND handed_at IS NOT NULL THEN 'lease'"
	         "  ELSE duplicate_why END",
	         "id = ?1", what, d)) == NULL ||
	    /* not UPDATE ... RETURNING: SQLite builds a temporary table for
	     * every statement that returns, which costs more than this */
	    (row = store_sqlite_prepare(
	         s,
	         "SELECT " STORE_SQLITE_DELIVERY_COLS("d.") " FROM deliveries d"
	                                                    " WHERE d.id = ?1",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(rel, 1, now) || store_sqlite_int(due, 2, now) ||
	    store_sqlite_int(due, 3, (int64_t)max) ||
	    store_sqlite_int(expired, 2, now) ||
	    store_sqlite_int(expired, 3, (int64_t)max) ||
	    store_sqlite_int(take, 2, (int64_t)now + lease) ||
	    store_sqlite_int(take, 3, now) ||
	    (s->owner ? store_sqlite_int(take, 4, s->owner)
	              : sqlite3_bind_null(take, 4))) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	while ((rc = sqlite3_step(rel)) == SQLITE_ROW) {
		int64_t rid = sqlite3_column_int64(rel, 0);

		if (store_sqlite_int(due, 1, rid) ||
		    store_sqlite_int(expired, 1, rid)) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_cands(s, due, c, &nc, what, d) < 0 ||
		    store_sqlite_cands(s, expired, c, &nc, what, d) < 0)
			goto fail;
		qsort(c, nc, sizeof(*c), store_sqlite_cand_cmp);
		if (nc > max)
			nc = max;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto fail;
	}
	for (size_t i = 0; i < nc; i++) {
		if (store_sqlite_int(take, 1, c[i].id) ||
		    store_sqlite_int(row, 1, c[i].id)) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, take, what, d) < 0)
			goto fail;
		if ((rc = sqlite3_step(row)) != SQLITE_ROW) {
			store_sqlite_fail(s, rc, what, d);
			goto fail;
		}
		if (store_sqlite_delivery(s, row, &s->claimed, &out[i], what,
		                          d) < 0)
			goto fail;
		sqlite3_reset(row);
	}
	sqlite3_finalize(row);
	sqlite3_finalize(take);
	sqlite3_finalize(expired);
	sqlite3_finalize(due);
	sqlite3_finalize(rel);
	row = take = expired = due = rel = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	free(c);
	return (int)nc;
fail:
	sqlite3_finalize(row);
	sqlite3_finalize(take);
	sqlite3_finalize(expired);
	sqlite3_finalize(due);
	sqlite3_finalize(rel);
	store_sqlite_rollback(s);
	store_sqlite_blocks_free(&s->claimed);
	free(c);
	return -1;
}

/* The states an attempt may lead to (the bounce states come later, from
 * the mailbox; queued, sending, ... are not results). */
static bool store_sqlite_result_ok(enum store_state r)
{
	return r == STORE_SENT || r == STORE_DEFERRED || r == STORE_FAILED ||
	       r == STORE_EXPIRED;
}

/*
 * In record's UPDATE, ?3 is the result, and the result is "applied" when
 * dstate allows its move from the delivery's state: while it is sending,
 * or, for "sent", unless it has later news (store.h). Into *applied, NULL
 * when memory runs out (free with sqlite3_free). SQLite evaluates every
 * SET expression on the row as it was before the UPDATE.
 */
static int store_sqlite_applied(char **applied)
{
	static const enum dstate_event ev[] = {DSTATE_SENT, DSTATE_DEFERRED,
	                                       DSTATE_FAILED, DSTATE_EXPIRED};
	static const enum store_state result[] = {STORE_SENT, STORE_DEFERRED,
	                                          STORE_FAILED, STORE_EXPIRED};
	sqlite3_str *t = sqlite3_str_new(NULL);
	bool oom = false;

	sqlite3_str_appendall(t, "(");
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		char *in = store_sqlite_in(dstate_from(ev[i]));
		oom = oom || in == NULL;
		sqlite3_str_appendf(t, "%s(?3 = '%s' AND %s)", i ? " OR " : "",
		                    store_state_name(result[i]), in ? in : "");
		sqlite3_free(in);
	}
	sqlite3_str_appendall(t, ")");
	*applied = sqlite3_str_finish(t);
	if (oom) {
		sqlite3_free(*applied);
		*applied = NULL;
	}
	return *applied == NULL ? -1 : 0;
}

/* What a suppression is given besides its address: the reason shown,
 * the rule and evidence (store.h), the delivery that caused it (0:
 * none), and when. */
struct store_sqlite_why {
	const char *reason, *rule, *evidence;
	int64_t delivery_id;
	time_t at;
};

static int store_sqlite_suppress_tx(struct store_sqlite *s, const char *key,
                                    const struct store_sqlite_why *w,
                                    const char *what, struct diag *d);

/* A FAILED attempt whose refusal says the address is bad (trouble.c
 * decided): the address goes on the suppression list with this delivery
 * as the cause, as after a hard bounce (event_record), in the caller's
 * transaction. */
static int store_sqlite_refused(struct store_sqlite *s,
                                const struct store_attempt *t,
                                const char *what, struct diag *d)
{
	sqlite3_stmt *st = store_sqlite_prepare(
	    s, "SELECT email_key FROM deliveries WHERE id = ?1", what, d);
	char *key = NULL, *why = NULL;
	int rc;

	if (st == NULL)
		return -1;
	if (store_sqlite_int(st, 1, t->delivery_id) != SQLITE_OK) {
		sqlite3_finalize(st);
		return store_sqlite_bind_fail(s, what, d);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW &&
	    (key = strdup((const char *)sqlite3_column_text(st, 0))) == NULL)
		rc = SQLITE_NOMEM;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW) {
		free(key); /* NULL here; said for the reader and cppcheck */
		return store_sqlite_fail(s, rc == SQLITE_DONE ? SQLITE_ERROR : rc,
		                         what, d);
	}
	if (asprintf(&why, "refused: %s (%d%s%s)", t->bad_address, t->code,
	             t->status ? " " : "", t->status ? t->status : "") < 0) {
		free(key);
		return store_sqlite_oom(s, what, d);
	}
	rc = store_sqlite_suppress_tx(
	    s, key,
	    &(struct store_sqlite_why){.reason = why,
	                               .rule = t->rule,
	                               .evidence = t->evidence,
	                               .delivery_id = t->delivery_id,
	                               .at = t->at},
	    what, d);
	free(why);
	free(key);
	return rc;
}

static int store_sqlite_record(struct store *stp, const struct store_attempt *a,
                               size_t n, struct diag *d)
{
	const char *what = "recording attempts";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *upd = NULL, *ins = NULL, *settle = NULL;
	char *ap = NULL, *def = NULL;

	for (size_t i = 0; i < n; i++)
		if (!store_sqlite_result_ok(a[i].result)) {
			diag_add(d, s->path, 0, 0,
			         "an attempt for delivery %" PRId64
			         " cannot end \"%s\": nothing was recorded",
			         a[i].delivery_id,
			         store_state_name(a[i].result));
			return -1;
		}
	if (n == 0)
		return 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if (store_sqlite_applied(&ap) < 0 ||
	    (def = store_sqlite_in(dstate_from(DSTATE_DEFERRED))) == NULL) {
		store_sqlite_oom(s, what, d);
		goto fail;
	}
	/* the one UPDATE of a state not made by store_sqlite_move: the try
	 * counts even when its result no longer applies, so the guard is
	 * each SET's CASE (dstate's sets all the same) */
	if ((upd = store_sqlite_preparef(
	         s, what, d,
	         "UPDATE deliveries SET tries = tries + 1,"
	         " attempts = attempts + ?2,"
	         " state = CASE"
	         "  WHEN %s AND ?3 = 'deferred' AND EXISTS"
	         "   (SELECT 1 FROM suppressions"
	         "    WHERE email = deliveries.email_key) THEN 'suppressed'"
	         "  WHEN %s THEN ?3 ELSE state END,"
	         " next_at = CASE WHEN %s AND ?3 = 'deferred'"
	         "  THEN ?4 ELSE next_at END,"
	         " lease_until = CASE WHEN %s THEN NULL ELSE lease_until END,"
	         " last_code = CASE WHEN %s THEN ?5 ELSE last_code END,"
	         " last_status = CASE WHEN %s THEN ?6 ELSE last_status END,"
	         " last_text = CASE WHEN %s THEN ?7 ELSE last_text END,"
	         " updated_at = CASE WHEN %s THEN ?8 ELSE updated_at END"
	         " WHERE id = ?1",
	         def, ap, def, ap, ap, ap, ap, ap)) == NULL ||
	    (ins = store_sqlite_prepare(
	         s,
	         "INSERT INTO attempts (delivery_id, n, at, relay, code,"
	         " status, text, queue_id, duration_ms, result, counts)"
	         " VALUES (?1, (SELECT tries FROM deliveries WHERE id = ?1),"
	         " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	         what, d)) == NULL ||
	    (settle = store_sqlite_prepare(
	         s,
	         "UPDATE releases SET state = 'done' WHERE id ="
	         " (SELECT release_id FROM deliveries WHERE id = ?1) AND"
	         STORE_SQLITE_SETTLE("releases.id"),
	         what, d)) == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const struct store_attempt *t = &a[i];
		const char *result = store_state_name(t->result);

		if (store_sqlite_int(upd, 1, t->delivery_id) ||
		    store_sqlite_int(upd, 2, t->counts ? 1 : 0) ||
		    store_sqlite_text(upd, 3, result) ||
		    store_sqlite_int(upd, 4, t->next_at) ||
		    store_sqlite_int(upd, 5, t->code) ||
		    store_sqlite_text(upd, 6, t->status) ||
		    store_sqlite_text(upd, 7, t->text) ||
		    store_sqlite_int(upd, 8, t->at)) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, upd, what, d) < 0)
			goto fail;
		if (sqlite3_changes64(s->db) == 0) {
			diag_add(d, s->path, 0, 0,
			         "there is no delivery %" PRId64
			         " in the store: none of the %zu attempts was "
			         "recorded",
			         t->delivery_id, n);
			goto fail;
		}
		if (store_sqlite_int(ins, 1, t->delivery_id) ||
		    store_sqlite_int(ins, 3, t->at) ||
		    store_sqlite_text(ins, 4, t->relay) ||
		    store_sqlite_int(ins, 5, t->code) ||
		    store_sqlite_text(ins, 6, t->status) ||
		    store_sqlite_text(ins, 7, t->text) ||
		    store_sqlite_text(ins, 8, t->queue_id) ||
		    store_sqlite_int(ins, 9, t->duration_ms) ||
		    store_sqlite_text(ins, 10, result) ||
		    store_sqlite_int(ins, 11, t->counts ? 1 : 0)) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, ins, what, d) < 0)
			goto fail;
		if (t->result == STORE_FAILED && t->bad_address != NULL &&
		    store_sqlite_refused(s, t, what, d) < 0)
			goto fail;
		/* the last of a release: done */
		if (store_sqlite_int(settle, 1, t->delivery_id) != SQLITE_OK ||
		    store_sqlite_run(s, settle, what, d) < 0)
			goto fail;
	}
	sqlite3_finalize(settle);
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	settle = ins = upd = NULL;
	sqlite3_free(def);
	sqlite3_free(ap);
	def = ap = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(settle);
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_free(def);
	sqlite3_free(ap);
	store_sqlite_rollback(s);
	return -1;
}

/* Move each id (?1) by ev with set (?2 = t, ?3 = now), in one
 * transaction (store_sqlite_move). */
static int store_sqlite_each_id(struct store_sqlite *s, const char *what,
                                enum dstate_event ev, const char *set,
                                const int64_t *ids, size_t n, time_t t,
                                struct diag *d)
{
	sqlite3_stmt *st = NULL;

	if (n == 0)
		return 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if ((st = store_sqlite_move(s, ev, -1, NULL, set, "id = ?1", what, d)) ==
	    NULL)
		goto fail;
	if (store_sqlite_int(st, 2, t) || store_sqlite_int(st, 3, time(NULL))) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (store_sqlite_int(st, 1, ids[i]) != SQLITE_OK) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, st, what, d) < 0)
			goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	return -1;
}

static int store_sqlite_unclaim(struct store *stp, const int64_t *ids, size_t n,
                                time_t next_at, struct diag *d)
{
	return store_sqlite_each_id(
	    store_sqlite_of(stp), "giving claimed deliveries back",
	    DSTATE_UNCLAIM,
	    "next_at = ?2, lease_until = NULL, handed_at = NULL,"
	    " updated_at = ?3",
	    ids, n, next_at, d);
}

/* ---- owners and hand-overs -------------------------------------------- */

/* How long the row of a heraldd that ended and holds nothing is kept: a
 * heraldd taken for gone that was only stuck finds its row again when it
 * wakes (daemon_beat), and `herald show` can still name it. */
#define STORE_SQLITE_ENDED_KEEP 86400

static int store_sqlite_daemon_add(struct store *stp, const char *host,
                                   long pid, time_t now, const char *control,
                                   int64_t *id, struct diag *d)
{
	const char *what = "adding this heraldd to the store's daemons";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = store_sqlite_prepare(
	    s,
	    "INSERT INTO daemons (host, pid, started, heartbeat, control)"
	    " VALUES (?1, ?2, ?3, ?3, ?4)",
	    what, d);
	int ret = -1;

	if (st == NULL)
		return -1;
	if (store_sqlite_text(st, 1, host) || store_sqlite_int(st, 2, pid) ||
	    store_sqlite_int(st, 3, now) || store_sqlite_text(st, 4, control)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if (store_sqlite_run(s, st, what, d) < 0)
		goto out;
	s->owner = sqlite3_last_insert_rowid(s->db);
	*id = s->owner;
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Bind this handle's owner (NULL when it has none) at i. */
static int store_sqlite_owner(struct store_sqlite *s, sqlite3_stmt *st, int i)
{
	return s->owner ? store_sqlite_int(st, i, s->owner)
	                : sqlite3_bind_null(st, i);
}

static int store_sqlite_daemon_beat(struct store *stp, time_t now,
                                    const int64_t *ids, size_t n,
                                    time_t lease_until, bool *revived,
                                    struct diag *d)
{
	const char *what = "renewing this heraldd's heartbeat and leases";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *was = NULL, *beat = NULL, *renew = NULL;
	int rc;

	*revived = false;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if ((was = store_sqlite_prepare(
	         s, "SELECT ended FROM daemons WHERE id = ?1", what, d)) ==
	        NULL ||
	    (beat = store_sqlite_prepare(
	         s,
	         "UPDATE daemons SET heartbeat = ?2, ended = NULL"
	         " WHERE id = ?1",
	         what, d)) == NULL ||
	    /* only its own: one given back meanwhile may be another's */
	    (renew = store_sqlite_prepare(
	         s,
	         "UPDATE deliveries SET lease_until = ?2"
	         " WHERE id = ?1 AND state = 'sending' AND owner IS ?3",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(was, 1, s->owner) ||
	    store_sqlite_int(beat, 1, s->owner) ||
	    store_sqlite_int(beat, 2, now) ||
	    store_sqlite_int(renew, 2, lease_until) ||
	    store_sqlite_owner(s, renew, 3)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (s->owner != 0) {
		rc = sqlite3_step(was);
		if (rc == SQLITE_ROW)
			*revived = sqlite3_column_type(was, 0) != SQLITE_NULL;
		else if (rc == SQLITE_DONE)
			*revived = true; /* deleted as ended long ago */
		else {
			store_sqlite_fail(s, rc, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, beat, what, d) < 0)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (store_sqlite_int(renew, 1, ids[i]) != SQLITE_OK) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, renew, what, d) < 0)
			goto fail;
	}
	sqlite3_finalize(renew);
	sqlite3_finalize(beat);
	sqlite3_finalize(was);
	renew = beat = was = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(renew);
	sqlite3_finalize(beat);
	sqlite3_finalize(was);
	store_sqlite_rollback(s);
	return -1;
}

/* A daemons row from columns first.. (id, host, pid, started, heartbeat,
 * ended, control); strings point into st's row. */
static void store_sqlite_daemon_row(sqlite3_stmt *st, int first,
                                    struct store_daemon *dm)
{
	dm->id = sqlite3_column_int64(st, first);
	dm->host = (const char *)sqlite3_column_text(st, first + 1);
	dm->pid = (long)sqlite3_column_int64(st, first + 2);
	dm->started = (time_t)sqlite3_column_int64(st, first + 3);
	dm->heartbeat = (time_t)sqlite3_column_int64(st, first + 4);
	dm->ended = (time_t)sqlite3_column_int64(st, first + 5);
	dm->control = (const char *)sqlite3_column_text(st, first + 6);
	if (dm->host == NULL)
		dm->host = "";
}

static int store_sqlite_daemons_each(struct store *stp,
                                     int (*fn)(void *arg,
                                               const struct store_daemon *dm),
                                     void *arg, struct diag *d)
{
	const char *what = "reading the store's daemons";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = store_sqlite_prepare(
	    s,
	    "SELECT id, host, pid, started, heartbeat, ended, control"
	    " FROM daemons ORDER BY id",
	    what, d);
	int rc, ret = -1;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_daemon dm;
		int r;

		store_sqlite_daemon_row(st, 0, &dm);
		if ((r = fn(arg, &dm)) != 0) {
			ret = r < 0 ? -1 : 0;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_daemon_end(struct store *stp, int64_t id, time_t now,
                                   size_t *freed, size_t *held,
                                   struct diag *d)
{
	const char *what = "giving back the claims of a heraldd that ended";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *fr = NULL, *cnt = NULL, *end = NULL, *old = NULL;
	int rc;

	*freed = *held = 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if ((fr = store_sqlite_move(
	         s, DSTATE_OWNER_END, -1, NULL,
	         "next_at = ?2, lease_until = NULL, updated_at = ?2",
	         "owner = ?1 AND handed_at IS NULL", what, d)) == NULL ||
	    (cnt = store_sqlite_prepare(
	         s,
	         "SELECT count(*) FROM deliveries"
	         " WHERE owner = ?1 AND state = 'sending'",
	         what, d)) == NULL ||
	    (end = store_sqlite_prepare(
	         s,
	         "UPDATE daemons SET ended = coalesce(ended, ?2)"
	         " WHERE id = ?1",
	         what, d)) == NULL ||
	    (old = store_sqlite_prepare(
	         s,
	         "DELETE FROM daemons WHERE ended IS NOT NULL"
	         " AND ended < ?1 AND NOT EXISTS (SELECT 1 FROM deliveries"
	         "  WHERE owner = daemons.id AND state = 'sending')",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(fr, 1, id) || store_sqlite_int(fr, 2, now) ||
	    store_sqlite_int(cnt, 1, id) || store_sqlite_int(end, 1, id) ||
	    store_sqlite_int(end, 2, now) ||
	    store_sqlite_int(old, 1, (int64_t)now - STORE_SQLITE_ENDED_KEEP)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_run(s, fr, what, d) < 0)
		goto fail;
	*freed = (size_t)sqlite3_changes64(s->db);
	if ((rc = sqlite3_step(cnt)) != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto fail;
	}
	*held = (size_t)sqlite3_column_int64(cnt, 0);
	if (store_sqlite_run(s, end, what, d) < 0 ||
	    store_sqlite_run(s, old, what, d) < 0)
		goto fail;
	sqlite3_finalize(old);
	sqlite3_finalize(end);
	sqlite3_finalize(cnt);
	sqlite3_finalize(fr);
	old = end = cnt = fr = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(old);
	sqlite3_finalize(end);
	sqlite3_finalize(cnt);
	sqlite3_finalize(fr);
	store_sqlite_rollback(s);
	*freed = *held = 0;
	return -1;
}

static int store_sqlite_handover(struct store *stp, const int64_t *ids,
                                 size_t n, time_t now, bool *ok,
                                 struct diag *d)
{
	const char *what = "marking deliveries handed to the relay";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL;

	for (size_t i = 0; i < n; i++)
		ok[i] = false;
	if (n == 0)
		return 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if ((st = store_sqlite_prepare(
	         s,
	         "UPDATE deliveries SET handed_at = ?2"
	         " WHERE id = ?1 AND state = 'sending' AND owner IS ?3"
	         " AND handed_at IS NULL",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(st, 2, now) || store_sqlite_owner(s, st, 3)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (store_sqlite_int(st, 1, ids[i]) != SQLITE_OK) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, st, what, d) < 0)
			goto fail;
		ok[i] = sqlite3_changes64(s->db) == 1;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	for (size_t i = 0; i < n; i++)
		ok[i] = false;
	return -1;
}

/* drop's columns beside the state: given back it is due at ?2;
 * cancelled, next_at stays */
#define STORE_SQLITE_DROP_SET                                                  \
	"lease_until = NULL, handed_at = NULL, updated_at = ?2"

static int store_sqlite_drop(struct store *stp, int64_t release_id,
                             const int64_t *ids, size_t n, bool cancel,
                             size_t *dropped, struct diag *d)
{
	const char *what = "giving back claims of a paused or cancelled "
	                   "release";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL;
	size_t k = ids == NULL ? 1 : n;

	*dropped = 0;
	if (k == 0)
		return 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	st = store_sqlite_move(
	    s, cancel ? DSTATE_DROP_CANCEL : DSTATE_DROP, -1, NULL,
	    cancel ? STORE_SQLITE_DROP_SET : "next_at = ?2, " STORE_SQLITE_DROP_SET,
	    ids == NULL ? "release_id = ?1 AND handed_at IS NULL"
	                : "id = ?3 AND release_id = ?1",
	    what, d);
	if (st == NULL)
		goto fail;
	if (store_sqlite_int(st, 1, release_id) ||
	    store_sqlite_int(st, 2, time(NULL))) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	for (size_t i = 0; i < k; i++) {
		if (ids != NULL && store_sqlite_int(st, 3, ids[i]) != SQLITE_OK) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, st, what, d) < 0)
			goto fail;
		*dropped += (size_t)sqlite3_changes64(s->db);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	*dropped = 0;
	return -1;
}

static int store_sqlite_abandon(struct store *stp, const int64_t *ids,
                                size_t n, time_t next_at, struct diag *d)
{
	return store_sqlite_each_id(
	    store_sqlite_of(stp), "giving back what was on relay connections",
	    DSTATE_ABANDON,
	    "next_at = ?2, lease_until = NULL, handed_at = NULL,"
	    " may_duplicate = ?3, duplicate_why = 'stop', updated_at = ?3",
	    ids, n, next_at, d);
}

/* holds_each's columns and grouping; its WHERE comes between */
#define STORE_SQLITE_HOLD_COLS                                                 \
	"SELECT m.id, m.host, m.pid, m.started, m.heartbeat, m.ended,"         \
	" m.control, d.handed_at IS NOT NULL AS handed, min(d.handed_at),"     \
	" max(d.lease_until), count(*)"                                        \
	" FROM deliveries d LEFT JOIN daemons m ON m.id = d.owner"
#define STORE_SQLITE_HOLD_GROUP " GROUP BY d.owner, handed ORDER BY d.owner, handed"

static int store_sqlite_holds_each(struct store *stp, int64_t release_id,
                                   int64_t delivery_id,
                                   int (*fn)(void *arg,
                                             const struct store_hold *h),
                                   void *arg, struct diag *d)
{
	const char *what = "reading who holds deliveries";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = store_sqlite_prepare(
	    s,
	    delivery_id != 0
	        ? STORE_SQLITE_HOLD_COLS " WHERE d.id = ?2 AND d.state = "
	                                 "'sending'" STORE_SQLITE_HOLD_GROUP
	        : STORE_SQLITE_HOLD_COLS " WHERE d.release_id = ?1 AND "
	                                 "d.state = "
	                                 "'sending'" STORE_SQLITE_HOLD_GROUP,
	    what, d);
	int rc, ret = -1;

	if (st == NULL)
		return -1;
	if (sqlite3_bind_int64(st, delivery_id != 0 ? 2 : 1,
	                       delivery_id != 0 ? delivery_id : release_id) !=
	    SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_hold h = {0};
		int r;

		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			store_sqlite_daemon_row(st, 0, &h.owner);
		else
			h.owner.host = "";
		h.handed = sqlite3_column_int(st, 7) != 0;
		h.handed_at = (time_t)sqlite3_column_int64(st, 8);
		h.lease_until = (time_t)sqlite3_column_int64(st, 9);
		h.n = (size_t)sqlite3_column_int64(st, 10);
		if ((r = fn(arg, &h)) != 0) {
			ret = r < 0 ? -1 : 0;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_duplicate_get(struct store *stp, int64_t id,
                                      enum store_duplicate *why, time_t *at,
                                      struct diag *d)
{
	const char *what = "reading a delivery's duplicate mark";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = store_sqlite_prepare(
	    s,
	    "SELECT may_duplicate, duplicate_why FROM deliveries"
	    " WHERE id = ?1",
	    what, d);
	int rc, ret = -1;

	*why = STORE_DUP_NONE;
	*at = 0;
	if (st == NULL)
		return -1;
	if (store_sqlite_int(st, 1, id) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *w = (const char *)sqlite3_column_text(st, 1);
		*at = (time_t)sqlite3_column_int64(st, 0);
		if (*at != 0 && w != NULL)
			*why = strcmp(w, "stop") == 0 ? STORE_DUP_STOP
			                              : STORE_DUP_LEASE;
	} else if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_expire(struct store *stp, time_t now, unsigned lifetime,
                               struct diag *d)
{
	const char *what = "expiring deliveries";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL;
	char *in;
	/* lifetime 0: no delivery is too old (only stale_after applies) */
	int64_t cut = lifetime ? (int64_t)now - lifetime : INT64_MIN;
	int64_t changed;

	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	/* A delivery is never queued before its release, so only the
	 * deliveries of releases that are old enough, or stale, are read
	 * (through the release's index), not every waiting one. Its
	 * lifetime counts from its last retry, if later. */
#define STORE_SQLITE_EXPIRING                                                  \
	"release_id IN (SELECT id FROM releases"                               \
	"  WHERE queued_at <= ?2"                                              \
	"  OR (stale_after != 0 AND stale_after <= ?1))"                       \
	" AND (max(queued_at, retried_at) <= ?2 OR release_id IN"              \
	"  (SELECT id FROM releases"                                           \
	"   WHERE stale_after != 0 AND stale_after <= ?1))"
	/* the delivery log says why each one ended, as it does when an
	 * attempt finds a delivery too old */
	if ((in = store_sqlite_in(dstate_from(DSTATE_EXPIRE))) == NULL) {
		store_sqlite_oom(s, what, d);
		goto fail;
	}
	st = store_sqlite_preparef(
	    s, what, d,
	    "INSERT INTO attempts (delivery_id, n, at, text, result,"
	    " counts) SELECT id, tries + 1, ?1, 'expired: its lifetime"
	    " or the release''s"
	    " stale_after ended before it could be delivered',"
	    " 'expired', 0 FROM deliveries WHERE " STORE_SQLITE_EXPIRING
	    " AND %s",
	    in);
	sqlite3_free(in);
	if (st == NULL)
		goto fail;
	if (store_sqlite_int(st, 1, now) || store_sqlite_int(st, 2, cut)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_run(s, st, what, d) < 0)
		goto fail;
	sqlite3_finalize(st);
	if ((st = store_sqlite_move(s, DSTATE_EXPIRE, -1, NULL,
	                            "lease_until = NULL, updated_at = ?1",
	                            STORE_SQLITE_EXPIRING, what, d)) == NULL)
		goto fail;
#undef STORE_SQLITE_EXPIRING
	if (store_sqlite_int(st, 1, now) || store_sqlite_int(st, 2, cut)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_run(s, st, what, d) < 0)
		goto fail;
	changed = sqlite3_changes64(s->db);
	sqlite3_finalize(st);
	st = NULL;
	if ((changed > 0 && store_sqlite_settle(s, 0, what, d) < 0) ||
	    store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return changed > INT_MAX ? INT_MAX : (int)changed;
fail:
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	return -1;
}

static int store_sqlite_retry(struct store *stp, int64_t release_id,
                              bool failed, bool deferred, size_t *n,
                              struct diag *d)
{
	const char *what = "retrying deliveries";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL;
	enum store_release_state rs;
	time_t now = time(NULL);
	int64_t changed;

	if (n != NULL)
		*n = 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if (store_sqlite_release_state(s, release_id, &rs, what, d) < 0)
		goto fail;
	if (rs == STORE_RELEASE_CANCELLED) {
		diag_add(d, s->path, 0, 0,
		         "release %" PRId64 " is cancelled: nothing is "
		         "retried (herald resume %" PRId64 " brings its "
		         "deliveries back)",
		         release_id, release_id);
		goto fail;
	}
	/* an unused state binds NULL, which matches nothing; queued_at
	 * stays when it was queued, and the lifetime counts from now */
	if ((st = store_sqlite_move(
	         s, DSTATE_RETRY, -1, NULL,
	         "next_at = ?4, retried_at = ?4, lease_until = NULL,"
	         " updated_at = ?4",
	         "release_id = ?1 AND state IN (?2, ?3)"
	         " AND NOT EXISTS (SELECT 1 FROM suppressions"
	         "  WHERE email = deliveries.email_key)",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(st, 1, release_id) ||
	    store_sqlite_text(st, 2, failed ? "failed" : NULL) ||
	    store_sqlite_text(st, 3, deferred ? "deferred" : NULL) ||
	    store_sqlite_int(st, 4, now)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_run(s, st, what, d) < 0)
		goto fail;
	changed = sqlite3_changes64(s->db);
	if (n != NULL)
		*n = (size_t)changed;
	sqlite3_finalize(st);
	st = NULL;
	/* something is due again: a done release is active again */
	if (changed > 0 &&
	    (st = store_sqlite_prepare(s,
	                               "UPDATE releases SET state = 'active'"
	                               " WHERE id = ?1 AND state = 'done'",
	                               what, d)) == NULL)
		goto fail;
	if (st != NULL && (store_sqlite_int(st, 1, release_id) != SQLITE_OK ||
	                   store_sqlite_run(s, st, what, d) < 0))
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	return 0;
fail:
	if (n != NULL)
		*n = 0;
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	return -1;
}

/* ---- what admins read ------------------------------------------------- */

/*
 * The delivery log: the attempts, the bounce mailbox's events matched to
 * a delivery (a "mismatch" is not the delivery's history), and the
 * suppressions of deliveries (one suppressed at queue time or while it
 * waited, at the time it was; one whose bounce, complaint, unsubscribe
 * request or refusal put the address on the list, at that time). Each
 * part is led by the most selective filter given (so the right index
 * leads); the other filters are the same in each. Columns: delivery,
 * release, name, address, time, relay, try, event, code, status, text,
 * queue id, reason, hard, duration, result, then the order within a
 * second (attempt, event, suppression) and the row's id.
 */
#define STORE_SQLITE_LOG_WHERE(at)                                             \
	" AND (?1 = 0 OR d.release_id = ?1)"                                   \
	" AND (?2 IS NULL OR d.email_key = ?2) AND " at " >= ?4"
#define STORE_SQLITE_LOG_KIND                                                  \
	"CASE e.kind WHEN 'bounce' THEN 'bounced' WHEN 'complaint'"            \
	" THEN 'complained' ELSE 'unsubscribed' END"
#define STORE_SQLITE_LOG_FROM(t)                                               \
	" JOIN deliveries d ON d.id = " t ".delivery_id"                       \
	" JOIN releases r ON r.id = d.release_id WHERE "
#define STORE_SQLITE_LOG(lead)                                                 \
	"SELECT a.delivery_id, d.release_id, r.name, d.email, a.at, a.relay,"  \
	" a.n, 0, a.code, a.status, a.text, a.queue_id, NULL, -1,"             \
	" a.duration_ms, a.result, 0, a.id"                                    \
	" FROM attempts a" STORE_SQLITE_LOG_FROM("a") lead                     \
	STORE_SQLITE_LOG_WHERE("a.at") " AND (?3 IS NULL OR a.result = ?3)"    \
	" UNION ALL SELECT e.delivery_id, d.release_id, r.name, d.email, e.at," \
	" NULL, 0, e.id, 0, e.status, e.diagnostic, NULL, e.reason, e.hard,"   \
	" 0, " STORE_SQLITE_LOG_KIND ", 1, e.id"                               \
	" FROM events e" STORE_SQLITE_LOG_FROM("e") lead                       \
	STORE_SQLITE_LOG_WHERE("e.at")                                         \
	" AND e.kind IN ('bounce', 'complaint', 'unsubscribe')"                \
	" AND e.matched_by IS NOT 'mismatch' AND e.held IS NULL"               \
	" AND (?3 IS NULL OR ?3 = " STORE_SQLITE_LOG_KIND ")"                  \
	" UNION ALL SELECT d.id, d.release_id, r.name, d.email, d.updated_at," \
	" NULL, 0, 0, 0, NULL, 'not sent: the address is on the suppression"   \
	" list' || coalesce(' (' || s.reason || ')', ''), NULL, NULL, -1, 0,"  \
	" 'suppressed', 2, d.id FROM deliveries d"                             \
	" JOIN releases r ON r.id = d.release_id"                              \
	" LEFT JOIN suppressions s ON s.email = d.email_key WHERE " lead       \
	STORE_SQLITE_LOG_WHERE("d.updated_at") " AND d.state = 'suppressed'"  \
	" AND (?3 IS NULL OR ?3 = 'suppressed')"                               \
	" UNION ALL SELECT d.id, d.release_id, r.name, d.email, s.at, NULL,"   \
	" 0, 0, 0, NULL, 'put on the suppression list: '"                      \
	" || coalesce(s.reason, 'no reason given'), NULL, NULL, -1, 0,"        \
	" 'suppressed', 2, d.id"                                               \
	" FROM suppressions s" STORE_SQLITE_LOG_FROM("s") lead                 \
	STORE_SQLITE_LOG_WHERE("s.at") " AND d.state != 'suppressed'"          \
	" AND (?3 IS NULL OR ?3 = 'suppressed')"                               \
	" ORDER BY 5, 17, 18"

static int
store_sqlite_attempts_each(struct store *stp, const struct store_log_filter *f,
                           int (*fn)(void *arg, const struct store_log_row *r),
                           void *arg, struct diag *d)
{
	const char *what = "reading the delivery log";
	struct store_sqlite *s = store_sqlite_of(stp);
	static const struct store_log_filter none = {0};
	const char *sql, *key = NULL;
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	if (f == NULL)
		f = &none;
	if (f->email != NULL && *f->email != '\0')
		sql = STORE_SQLITE_LOG("d.email_key = ?2");
	else if (f->release_id != 0)
		sql = STORE_SQLITE_LOG("d.release_id = ?1");
	else
		sql = STORE_SQLITE_LOG("1");
	if (f->email != NULL && *f->email != '\0' &&
	    (key = store_sqlite_key(s, f->email)) == NULL)
		return store_sqlite_oom(s, what, d);
	if ((st = store_sqlite_prepare(s, sql, what, d)) == NULL)
		return -1;
	if (store_sqlite_int(st, 1, f->release_id) ||
	    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT) ||
	    store_sqlite_text(st, 3,
	                      f->by_result ? store_log_result_name(f->result)
	                                   : NULL) ||
	    store_sqlite_int(st, 4, f->since)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_log_row r;
		const char *result = (const char *)sqlite3_column_text(st, 15);
		int cb;

		memset(&r, 0, sizeof(r));
		r.delivery_id = sqlite3_column_int64(st, 0);
		r.release_id = sqlite3_column_int64(st, 1);
		r.release = (const char *)sqlite3_column_text(st, 2);
		r.email = (const char *)sqlite3_column_text(st, 3);
		r.at = (time_t)sqlite3_column_int64(st, 4);
		r.relay = (const char *)sqlite3_column_text(st, 5);
		r.attempt = (unsigned)sqlite3_column_int64(st, 6);
		r.event = sqlite3_column_int64(st, 7);
		r.code = sqlite3_column_int(st, 8);
		r.status = (const char *)sqlite3_column_text(st, 9);
		r.text = (const char *)sqlite3_column_text(st, 10);
		r.queue_id = (const char *)sqlite3_column_text(st, 11);
		r.reason = (const char *)sqlite3_column_text(st, 12);
		r.hard = sqlite3_column_int(st, 13);
		r.duration_ms = (unsigned)sqlite3_column_int64(st, 14);
		if (store_log_result_parse(result, &r.result) < 0) {
			store_sqlite_bad_value(s, what, result, d);
			goto out;
		}
		if ((cb = fn(arg, &r)) != 0) {
			ret = cb > 0 ? 0 : -1;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_delivery_get(struct store *stp, int64_t id,
                                     int (*fn)(void *arg,
                                               const struct store_delivery *dl,
                                               const char *release),
                                     void *arg, struct diag *d)
{
	const char *what = "reading a delivery";
	struct store_sqlite *s = store_sqlite_of(stp);
	struct store_sqlite_block *mem = NULL;
	struct store_delivery dl;
	const char *release = NULL;
	sqlite3_stmt *st;
	int rc, ret = -1;

	if ((st = store_sqlite_prepare(
	         s,
	         "SELECT " STORE_SQLITE_DELIVERY_COLS(
	             "d.") ", r.name FROM deliveries d"
	                   " JOIN releases r ON r.id = d.release_id"
	                   " WHERE d.id = ?1",
	         what, d)) == NULL)
		return -1;
	if (store_sqlite_int(st, 1, id) != SQLITE_OK) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		ret = 0; /* none: fn is not called */
		goto out;
	}
	if (rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	if (store_sqlite_delivery(s, st, &mem, &dl, what, d) < 0)
		goto out;
	if (store_sqlite_dup(&mem, st, STORE_SQLITE_DELIVERY_NCOLS, &release) <
	    0) {
		store_sqlite_oom(s, what, d);
		goto out;
	}
	/* done with the statement before fn, which may use the store */
	sqlite3_finalize(st);
	st = NULL;
	ret = fn(arg, &dl, release ? release : "") < 0 ? -1 : 0;
out:
	sqlite3_finalize(st);
	store_sqlite_blocks_free(&mem);
	return ret;
}

static int store_sqlite_delivery_find(struct store *stp, int64_t release_id,
                                      const char *email, int64_t *id,
                                      struct diag *d)
{
	const char *what = "finding a delivery";
	struct store_sqlite *s = store_sqlite_of(stp);
	const char *key;
	sqlite3_stmt *st;
	int rc, ret = -1;

	if (email == NULL || *email == '\0') {
		diag_add(d, s->path, 0, 0, "no address given");
		return -1;
	}
	if ((key = store_sqlite_key(s, email)) == NULL)
		return store_sqlite_oom(s, what, d);
	if ((st = store_sqlite_prepare(s,
	                               "SELECT id FROM deliveries"
	                               " WHERE email_key = ?1"
	                               " AND (?2 = 0 OR release_id = ?2)"
	                               " ORDER BY release_id DESC LIMIT 1",
	                               what, d)) == NULL)
		return -1;
	if (store_sqlite_text(st, 1, key) ||
	    store_sqlite_int(st, 2, release_id)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		if (release_id != 0)
			diag_add(d, s->path, 0, 0,
			         "release %" PRId64 " has no delivery to %s",
			         release_id, email);
		else
			diag_add(d, s->path, 0, 0, "no release was sent to %s",
			         email);
	} else {
		store_sqlite_fail(s, rc, what, d);
	}
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_delivery_by_key(struct store *stp, const char *key,
                                        int64_t *id, struct diag *d)
{
	const char *what = "finding a token's delivery";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st;
	int rc, ret = -1;

	*id = 0;
	if ((st = store_sqlite_prepare(s,
	                               "SELECT id FROM deliveries"
	                               " WHERE message_id >= ?1 || '@'"
	                               " AND message_id < ?1 || 'A' LIMIT 1",
	                               what, d)) == NULL)
		return -1;
	if (store_sqlite_text(st, 1, key)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		store_sqlite_fail(s, rc, what, d);
	}
out:
	sqlite3_finalize(st);
	return ret;
}

/* ---- suppressions ----------------------------------------------------- */

/* Inside a transaction: add key to the suppression list (the first
 * entry stays, with its reason, rule and evidence) and suppress its
 * queued and deferred deliveries, which may leave a release with nothing
 * to send. */
static int store_sqlite_suppress_tx(struct store_sqlite *s, const char *key,
                                    const struct store_sqlite_why *w,
                                    const char *what, struct diag *d)
{
	sqlite3_stmt *add = NULL, *dl = NULL;
	int rc = -1;

	if ((add = store_sqlite_prepare(
	         s,
	         "INSERT INTO suppressions (email, reason, at, delivery_id,"
	         " rule, evidence) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	         " ON CONFLICT (email) DO NOTHING",
	         what, d)) == NULL ||
	    (dl = store_sqlite_move(s, DSTATE_SUPPRESS, -1, NULL,
	                            "updated_at = ?2", "email_key = ?1", what,
	                            d)) == NULL)
		goto done;
	if (store_sqlite_text(add, 1, key) ||
	    store_sqlite_text(add, 2, w->reason) ||
	    store_sqlite_int(add, 3, w->at) ||
	    (w->delivery_id != 0 ? store_sqlite_int(add, 4, w->delivery_id)
	                         : sqlite3_bind_null(add, 4)) ||
	    store_sqlite_text(add, 5, w->rule) ||
	    store_sqlite_text(add, 6, w->evidence) ||
	    store_sqlite_text(dl, 1, key) || store_sqlite_int(dl, 2, w->at)) {
		store_sqlite_bind_fail(s, what, d);
		goto done;
	}
	if (store_sqlite_run(s, add, what, d) < 0 ||
	    store_sqlite_run(s, dl, what, d) < 0)
		goto done;
	if (sqlite3_changes(s->db) > 0 &&
	    store_sqlite_settle(s, 0, what, d) < 0)
		goto done;
	rc = 0;
done:
	sqlite3_finalize(dl);
	sqlite3_finalize(add);
	return rc;
}

/* The delivery an event is about: by VERP key, by Message-ID, by address
 * (the newest since policy_address_since). Sets *id (0: none) and *how ("verp",
 * "message-id", "keyed-id": a Message-ID the caller says is keyed,
 * "address"). */
static int store_sqlite_event_match(struct store_sqlite *s,
                                    const struct store_event *ev,
                                    const char *key, int64_t *id,
                                    const char **how, const char *what,
                                    struct diag *d)
{
	static const char *const sql[] = {
	    "SELECT id FROM deliveries WHERE message_id >= ?1 || '@'"
	    " AND message_id < ?1 || 'A' LIMIT 1",
	    "SELECT id FROM deliveries WHERE message_id = ?1",
	    "SELECT id FROM deliveries WHERE email_key = ?1 AND queued_at >= ?2"
	    " ORDER BY queued_at DESC, id DESC LIMIT 1"};
	static const char *const name[] = {"verp", "message-id", "address"};
	static const char keyed_sql[] =
	    "SELECT r.name, d.email FROM deliveries d"
	    " JOIN releases r ON r.id = d.release_id WHERE d.id = ?1";
	const char *arg[] = {ev->message_key, ev->message_id, key};

	*id = 0;
	*how = NULL;
	for (int i = 0; i < 3; i++) {
		sqlite3_stmt *st;
		int rc;
		if (arg[i] == NULL || *arg[i] == '\0')
			continue;
		if ((st = store_sqlite_prepare(s, sql[i], what, d)) == NULL)
			return -1;
		if (store_sqlite_text(st, 1, arg[i]) ||
		    (i == 2 &&
		     store_sqlite_int(st, 2, policy_address_since(time(NULL))))) {
			sqlite3_finalize(st);
			return store_sqlite_bind_fail(s, what, d);
		}
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			store_sqlite_fail(s, rc, what, d);
			return -1;
		}
		if (*id != 0) {
			*how = name[i];
			break;
		}
	}
	/* a Message-ID keyed under the bounce secret is a token too */
	if (*id != 0 && strcmp(*how, "message-id") == 0 &&
	    ev->id_keyed != NULL) {
		sqlite3_stmt *st = store_sqlite_prepare(s, keyed_sql, what, d);
		int rc;
		if (st == NULL)
			return -1;
		if (store_sqlite_int(st, 1, *id)) {
			sqlite3_finalize(st);
			return store_sqlite_bind_fail(s, what, d);
		}
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW &&
		    ev->id_keyed(ev->id_keyed_arg,
		                 (const char *)sqlite3_column_text(st, 0),
		                 (const char *)sqlite3_column_text(st, 1),
		                 ev->message_id))
			*how = "keyed-id";
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			store_sqlite_fail(s, rc, what, d);
			return -1;
		}
	}
	return 0;
}

/* The soft bounces matched by token for key within window seconds before
 * now (what the soft limit counts, the one just recorded included) into
 * *count, and the evidence a soft-limit suppression keeps into
 * *evidence: "3 soft bounces within 30 days: events 4, 9, 12", the
 * newest soft_ids of them (NULL when memory runs out). */
static int store_sqlite_soft(struct store_sqlite *s, const char *key,
                             time_t now, unsigned window, int64_t *count,
                             char **evidence, const char *what, struct diag *d)
{
	enum { MAX_IDS = 64 };
	int64_t ids[MAX_IDS];
	int keep = store_sqlite_defaults.soft_ids, n = 0, rc;
	char span[48], list[MAX_IDS * 22] = "";
	size_t at = 0;
	sqlite3_stmt *st = store_sqlite_prepare(
	    s,
	    "SELECT id FROM events WHERE email_key = ?1"
	    " AND kind = 'bounce' AND hard = 0 AND at >= ?2"
	    " AND matched_by IN ('verp', 'keyed-id') AND held IS NULL"
	    " ORDER BY id DESC",
	    what, d);

	*count = 0;
	*evidence = NULL;
	if (st == NULL)
		return -1;
	if (keep > MAX_IDS)
		keep = MAX_IDS;
	if (store_sqlite_text(st, 1, key) ||
	    store_sqlite_int(st, 2, now - window)) {
		sqlite3_finalize(st);
		return store_sqlite_bind_fail(s, what, d);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((*count)++ < keep)
			ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_sqlite_fail(s, rc, what, d);
	/* oldest first, as admins read them */
	for (int i = n - 1; i >= 0; i--)
		at +=
		    (size_t)snprintf(list + at, sizeof(list) - at, "%s%" PRId64,
		                     i == n - 1 ? "" : ", ", ids[i]);
	store_window_text(window, span, sizeof(span));
	if (asprintf(evidence,
	             "%" PRId64 " soft bounce%s within %s: event%s %s%s",
	             *count, *count == 1 ? "" : "s", span, n == 1 ? "" : "s",
	             *count > n ? "..., " : "", list) < 0)
		*evidence = NULL;
	return 0;
}

/* Run st (with ?1..?3 bound by the caller) once and finalize it. */
static int store_sqlite_once(struct store_sqlite *s, sqlite3_stmt *st,
                             const char *what, struct diag *d)
{
	int rc = store_sqlite_run(s, st, what, d);

	sqlite3_finalize(st);
	return rc;
}

static int store_sqlite_event_record(struct store *stp,
                                     const struct store_event *ev,
                                     int64_t *delivery_id, bool *suppressed,
                                     struct diag *d)
{
	const char *what = "recording a bounce mailbox event";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL;
	const char *how = NULL, *key = NULL;
	char *email_key = NULL, *why = NULL, *evidence = NULL,
	     *soft_evidence = NULL;
	time_t now = time(NULL);
	int64_t id = 0, event_id = 0, count = 0;
	struct policy_event pe = {0};
	struct policy_verdict pv = {0};
	struct policy_action act = {.move = -1};

	*delivery_id = 0;
	*suppressed = false;
	if (ev->email != NULL && (key = store_sqlite_key(s, ev->email)) != NULL)
		email_key = strdup(key);
	if (store_sqlite_begin(s, what, d) < 0) {
		free(email_key);
		return -1;
	}
	/* exactly once: the source is claimed in the transaction that
	 * records the event and acts on it, so either both happened or
	 * neither did */
	if (ev->source != NULL) {
		if ((st = store_sqlite_prepare(
		         s,
		         "INSERT OR IGNORE INTO event_sources (source, at)"
		         " VALUES (?1, ?2)",
		         what, d)) == NULL)
			goto fail;
		if (store_sqlite_text(st, 1, ev->source) ||
		    store_sqlite_int(st, 2, now)) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (store_sqlite_run(s, st, what, d) < 0)
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
		if (sqlite3_changes(s->db) == 0) {
			store_sqlite_rollback(s);
			free(email_key);
			return 1; /* recorded before */
		}
	}
	if (store_sqlite_event_match(s, ev, email_key, &id, &how, what, d) < 0)
		goto fail;
	pe.kind = ev->kind;
	pe.hard = ev->hard;
	pe.match = how == NULL                   ? POLICY_NONE
	           : strcmp(how, "verp") == 0    ? POLICY_TOKEN
	           : strcmp(how, "keyed-id") == 0 ? POLICY_KEYED_ID
	           : strcmp(how, "address") == 0 ? POLICY_ADDRESS
	                                         : POLICY_MESSAGE_ID;
	pe.same_address = true;
	/* a token or Message-ID of one delivery with another's address: a
	 * forgery (or a forward); kept with the delivery it named, for
	 * review, and acted on by nobody */
	if (id != 0 && email_key != NULL && strcmp(how, "address") != 0) {
		bool same = false;
		if ((st = store_sqlite_prepare(
		         s,
		         "SELECT lower(email_key) = lower(?2) FROM deliveries"
		         " WHERE id = ?1",
		         what, d)) == NULL)
			goto fail;
		if (store_sqlite_int(st, 1, id) ||
		    store_sqlite_text(st, 2, email_key)) {
			store_sqlite_bind_fail(s, what, d);
			goto fail;
		}
		if (sqlite3_step(st) == SQLITE_ROW)
			same = sqlite3_column_int(st, 0) == 1;
		sqlite3_finalize(st);
		st = NULL;
		if (!same) {
			how = "mismatch";
			pe.same_address = false;
		}
	}
	policy_event(&pe, &pv);
	/* the address: the event's, else the matched delivery's */
	if (email_key == NULL && id != 0) {
		if ((st = store_sqlite_prepare(
		         s, "SELECT email_key FROM deliveries WHERE id = ?1",
		         what, d)) == NULL)
			goto fail;
		store_sqlite_int(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW)
			email_key =
			    strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		st = NULL;
	}
	if ((st = store_sqlite_prepare(
	         s,
	         "INSERT INTO events (at, kind, delivery_id, matched_by,"
	         " email_key, status, reason, hard, diagnostic, raw, held,"
	         " rule, evidence)"
	         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
	         " ?13)",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(st, 1, now) ||
	    store_sqlite_text(st, 2, store_event_kind_name(ev->kind)) ||
	    (id ? store_sqlite_int(st, 3, id) : sqlite3_bind_null(st, 3)) ||
	    store_sqlite_text(st, 4, how) ||
	    store_sqlite_text(st, 5, email_key) ||
	    store_sqlite_text(st, 6, ev->status) ||
	    store_sqlite_text(st, 7, ev->reason) ||
	    store_sqlite_int(st, 8, ev->hard) ||
	    store_sqlite_text(st, 9, ev->diagnostic) ||
	    sqlite3_bind_blob64(st, 10, ev->raw, ev->rawlen, SQLITE_STATIC) ||
	    store_sqlite_text(st, 11, pv.held) ||
	    store_sqlite_text(st, 12, ev->rule) ||
	    store_sqlite_text(st, 13, ev->evidence)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	if (store_sqlite_once(s, st, what, d) < 0) {
		st = NULL;
		goto fail;
	}
	st = NULL;
	event_id = sqlite3_last_insert_rowid(s->db);
	if (pv.count_soft && email_key != NULL) {
		/* the soft bounces policy counts, this one included */
		if (store_sqlite_soft(s, email_key, now,
		                      policy_soft_window(ev->soft_window), &count,
		                      &soft_evidence, what, d) < 0)
			goto fail;
	} else {
		pv.count_soft = false; /* no address: nothing to count */
	}
	policy_act(&pv, count, ev->soft_limit, &act);
	if (act.move >= 0 && id != 0) {
		if ((st = store_sqlite_move(s, (enum dstate_event)act.move, -1,
		                            NULL, "updated_at = ?2", "id = ?1",
		                            what, d)) == NULL)
			goto fail;
		store_sqlite_int(st, 1, id);
		store_sqlite_int(st, 2, now);
		if (store_sqlite_once(s, st, what, d) < 0) {
			st = NULL;
			goto fail;
		}
		st = NULL;
		/* a bounce for a delivery still waiting may end a release */
		if (store_sqlite_settle(s, 0, what, d) < 0)
			goto fail;
	}
	/* policy acts only on a token's own delivery (id is never 0 then) */
	if (act.suppress && email_key != NULL && id != 0) {
		struct store_sqlite_why w = {.delivery_id = id, .at = now};
		if (asprintf(&why, "%s%s%s", store_event_kind_name(ev->kind),
		             ev->reason ? ": " : "",
		             ev->reason ? ev->reason : "") < 0)
			why = NULL;
		if (act.soft_limit) {
			w.rule = "soft-limit";
			w.evidence = soft_evidence;
		} else {
			w.rule = ev->rule ? ev->rule
			                  : store_event_kind_name(ev->kind);
			if (asprintf(&evidence, "event %" PRId64 "%s%s",
			             event_id, ev->evidence ? ", " : "",
			             ev->evidence ? ev->evidence : "") < 0)
				evidence = NULL;
			w.evidence = evidence;
		}
		w.reason = why;
		if (store_sqlite_suppress_tx(s, email_key, &w, what, d) < 0)
			goto fail;
		st = NULL;
		*suppressed = true;
	}
	if (store_sqlite_commit(s, what, d) < 0)
		goto fail;
	*delivery_id = how != NULL && strcmp(how, "mismatch") == 0 ? 0
	               : pv.held != NULL                             ? 0
	                                                             : id;
	free(email_key);
	free(why);
	free(evidence);
	free(soft_evidence);
	return 0;
fail:
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	free(email_key);
	free(why);
	free(evidence);
	free(soft_evidence);
	*suppressed = false;
	return -1;
}

/* An admin confirms a reply asking to be removed (policy_held_reply):
 * the event acts as an unsubscribe request, in one transaction. */
static int store_sqlite_event_confirm(struct store *stp, int64_t id,
                                      char **email, struct diag *d)
{
	const char *what = "confirming an unsubscribe request";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st = NULL;
	char *key = NULL, evidence[32];
	int64_t delivery = 0;
	int rc;

	*email = NULL;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if ((st = store_sqlite_prepare(
	         s,
	         "SELECT email_key, coalesce(delivery_id, 0),"
	         " kind = 'unsubscribe' AND held = ?2 AND email_key IS NOT NULL"
	         " FROM events WHERE id = ?1",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(st, 1, id) ||
	    store_sqlite_text(st, 2, policy_held_reply)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		diag_add(d, s->path, 0, 0,
		         "there is no event %" PRId64 " (herald bounces "
		         "--unmatched lists the requests waiting)",
		         id);
		goto fail;
	}
	if (rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto fail;
	}
	if (sqlite3_column_int(st, 2) != 1) {
		diag_add(d, s->path, 0, 0,
		         "event %" PRId64 " is not an unsubscribe request "
		         "waiting for an admin (herald bounces --unmatched "
		         "lists them; herald suppress add ADDRESS suppresses "
		         "any address)",
		         id);
		goto fail;
	}
	if ((key = strdup((const char *)sqlite3_column_text(st, 0))) == NULL) {
		store_sqlite_oom(s, what, d);
		goto fail;
	}
	delivery = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	if ((st = store_sqlite_prepare(
	         s,
	         "UPDATE events SET held = NULL, matched_by = 'admin'"
	         " WHERE id = ?1",
	         what, d)) == NULL)
		goto fail;
	if (store_sqlite_int(st, 1, id)) {
		store_sqlite_bind_fail(s, what, d);
		goto fail;
	}
	rc = store_sqlite_once(s, st, what, d);
	st = NULL;
	snprintf(evidence, sizeof(evidence), "event %" PRId64, id);
	if (rc < 0 ||
	    store_sqlite_suppress_tx(
	        s, key,
	        &(struct store_sqlite_why){.reason =
	                                       "unsubscribe: reply (confirmed)",
	                                   .rule = "confirmed",
	                                   .evidence = evidence,
	                                   .delivery_id = delivery,
	                                   .at = time(NULL)},
	        what, d) < 0 ||
	    store_sqlite_commit(s, what, d) < 0)
		goto fail;
	*email = key;
	return 0;
fail:
	sqlite3_finalize(st);
	store_sqlite_rollback(s);
	free(key);
	return -1;
}

static int store_sqlite_imap_place_get(struct store *stp, const char *url,
                                       uint32_t *uidvalidity,
                                       uint32_t *last_uid, struct diag *d)
{
	const char *what = "reading the bounce mailbox's state";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st;
	int rc;

	*uidvalidity = *last_uid = 0;
	if ((st = store_sqlite_prepare(s,
	                               "SELECT uidvalidity, last_uid FROM"
	                               " mailbox_state WHERE url = ?1",
	                               what, d)) == NULL)
		return -1;
	if (store_sqlite_text(st, 1, url)) {
		sqlite3_finalize(st);
		return store_sqlite_bind_fail(s, what, d);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
		*last_uid = (uint32_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_sqlite_fail(s, rc, what, d);
	return 0;
}

static int store_sqlite_imap_place_set(struct store *stp, const char *url,
                                       uint32_t uidvalidity,
                                       uint32_t last_uid, struct diag *d)
{
	const char *what = "recording the bounce mailbox's state";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st;

	if ((st = store_sqlite_prepare(
	         s,
	         "INSERT INTO mailbox_state (url, uidvalidity, last_uid,"
	         " updated_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (url) DO"
	         " UPDATE SET uidvalidity = ?2, last_uid = ?3, updated_at = ?4",
	         what, d)) == NULL)
		return -1;
	if (store_sqlite_text(st, 1, url) || store_sqlite_int(st, 2, uidvalidity) ||
	    store_sqlite_int(st, 3, last_uid) ||
	    store_sqlite_int(st, 4, time(NULL))) {
		sqlite3_finalize(st);
		return store_sqlite_bind_fail(s, what, d);
	}
	/* one statement: its own transaction */
	return store_sqlite_once(s, st, what, d);
}

static int store_sqlite_next_due(struct store *stp, time_t *when,
                                 struct diag *d)
{
	const char *what = "finding the next due delivery";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st;
	int64_t best = 0;
	int rc, ret = -1;

	/* per active release: its embargo, its earliest waiting delivery and
	 * its earliest lease (due the second after it runs out) */
	if ((st = store_sqlite_prepare(
	         s,
	         "SELECT r.not_before,"
	         " (SELECT min(next_at) FROM deliveries"
	         "  WHERE release_id = r.id"
	         "  AND state IN ('queued', 'deferred')),"
	         " (SELECT min(lease_until) FROM deliveries"
	         "  WHERE release_id = r.id AND state = 'sending')"
	         " FROM releases r WHERE r.state = 'active'",
	         what, d)) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t t = store_shared_release_due(
		    sqlite3_column_int64(st, 0),
		    sqlite3_column_type(st, 1) != SQLITE_NULL,
		    sqlite3_column_int64(st, 1),
		    sqlite3_column_type(st, 2) != SQLITE_NULL,
		    sqlite3_column_int64(st, 2));
		if (t != 0 && (best == 0 || t < best))
			best = t;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	*when = (time_t)best;
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* ---- the event list and the suppression list, for admins -------------- */

/* How many addresses the suppression list holds, into *n. */
static int store_sqlite_count_suppressions(struct store_sqlite *s, int64_t *n,
                                           const char *what, struct diag *d)
{
	sqlite3_stmt *st =
	    store_sqlite_prepare(s, "SELECT count(*) FROM suppressions", what, d);
	int rc;

	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return store_sqlite_fail(s, rc, what, d);
	return 0;
}

static int store_sqlite_events_each(
    struct store *stp, const struct store_event_filter *f,
    int (*fn)(void *arg, const struct store_event_row *r), void *arg,
    struct diag *d)
{
	const char *what = "reading the bounce mailbox's events";
	struct store_sqlite *s = store_sqlite_of(stp);
	static const struct store_event_filter none = {0};
	sqlite3_stmt *st;
	int rc, ret = -1;

	if (f == NULL)
		f = &none;
	if ((st = store_sqlite_prepare(
	         s,
	         "SELECT e.id, e.at, e.kind, e.delivery_id, d.release_id,"
	         " r.name, e.matched_by, coalesce(e.email_key, d.email),"
	         " e.status, e.reason, e.diagnostic, e.hard, length(e.raw),"
	         " e.held, e.rule, e.evidence"
	         " FROM events e LEFT JOIN deliveries d ON d.id = e.delivery_id"
	         " LEFT JOIN releases r ON r.id = d.release_id"
	         " WHERE e.at >= ?1 AND (?2 = 0 OR d.release_id = ?2)"
	         " AND (?3 = 0 OR e.delivery_id IS NULL"
	         "  OR e.matched_by = 'mismatch' OR e.held IS NOT NULL)"
	         " ORDER BY e.at, e.id",
	         what, d)) == NULL)
		return -1;
	if (store_sqlite_int(st, 1, f->since) ||
	    store_sqlite_int(st, 2, f->release_id) ||
	    store_sqlite_int(st, 3, f->unmatched)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event_row r;
		const char *kind = (const char *)sqlite3_column_text(st, 2);
		int cb;

		memset(&r, 0, sizeof(r));
		r.id = sqlite3_column_int64(st, 0);
		r.at = (time_t)sqlite3_column_int64(st, 1);
		r.kind = STORE_EVENT_UNKNOWN;
		for (int k = STORE_EVENT_BOUNCE; k <= STORE_EVENT_UNKNOWN; k++)
			if (kind != NULL &&
			    strcmp(kind, store_event_kind_name(
			                     (enum store_event_kind)k)) == 0)
				r.kind = (enum store_event_kind)k;
		r.delivery_id = sqlite3_column_int64(st, 3);
		r.release_id = sqlite3_column_int64(st, 4);
		r.release = (const char *)sqlite3_column_text(st, 5);
		r.matched_by = (const char *)sqlite3_column_text(st, 6);
		r.email = (const char *)sqlite3_column_text(st, 7);
		r.status = (const char *)sqlite3_column_text(st, 8);
		r.reason = (const char *)sqlite3_column_text(st, 9);
		r.diagnostic = (const char *)sqlite3_column_text(st, 10);
		r.hard = sqlite3_column_int(st, 11);
		r.rawlen = (size_t)sqlite3_column_int64(st, 12);
		r.held = (const char *)sqlite3_column_text(st, 13);
		r.rule = (const char *)sqlite3_column_text(st, 14);
		r.evidence = (const char *)sqlite3_column_text(st, 15);
		if ((cb = fn(arg, &r)) != 0) {
			ret = cb > 0 ? 0 : -1;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_event_raw(struct store *stp, int64_t id, char **raw,
                                  size_t *len, struct diag *d)
{
	const char *what = "reading an event's message";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st;
	int rc, ret = -1;

	*raw = NULL;
	*len = 0;
	if ((st = store_sqlite_prepare(s, "SELECT raw FROM events WHERE id = ?1",
	                               what, d)) == NULL)
		return -1;
	if (store_sqlite_int(st, 1, id)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		diag_add(d, s->path, 0, 0, "no event %lld", (long long)id);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	*len = (size_t)sqlite3_column_bytes(st, 0);
	if ((*raw = malloc(*len + 1)) == NULL) {
		store_sqlite_oom(s, what, d);
		goto out;
	}
	if (*len > 0)
		memcpy(*raw, sqlite3_column_blob(st, 0), *len);
	(*raw)[*len] = '\0';
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_suppressions_each(
    struct store *stp,
    int (*fn)(void *arg, const struct store_suppression *sp), void *arg,
    struct diag *d)
{
	const char *what = "reading the suppression list";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *st;
	int rc, ret = -1;

	if ((st = store_sqlite_prepare(
	         s,
	         "SELECT email, reason, at, rule, evidence FROM suppressions"
	         " ORDER BY email",
	         what, d)) == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_suppression sp = {
		    .email = (const char *)sqlite3_column_text(st, 0),
		    .reason = (const char *)sqlite3_column_text(st, 1),
		    .at = (time_t)sqlite3_column_int64(st, 2),
		    .rule = (const char *)sqlite3_column_text(st, 3),
		    .evidence = (const char *)sqlite3_column_text(st, 4),
		};
		int cb;
		if ((cb = fn(arg, &sp)) != 0) {
			ret = cb > 0 ? 0 : -1;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_suppress_remove(struct store *stp, const char *email,
                                        bool *removed, struct diag *d)
{
	const char *what = "taking an address off the suppression list";
	struct store_sqlite *s = store_sqlite_of(stp);
	const char *key;
	sqlite3_stmt *st;
	int ret = -1;

	*removed = false;
	if (email == NULL || *email == '\0') {
		diag_add(d, s->path, 0, 0, "no address given");
		return -1;
	}
	if ((key = store_sqlite_key(s, email)) == NULL)
		return store_sqlite_oom(s, what, d);
	if ((st = store_sqlite_prepare(
	         s, "DELETE FROM suppressions WHERE email = ?1", what, d)) ==
	    NULL)
		return -1;
	if (store_sqlite_text(st, 1, key)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if (store_sqlite_run(s, st, what, d) < 0)
		goto out;
	*removed = sqlite3_changes(s->db) > 0;
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int store_sqlite_suppress_import(struct store *stp,
                                        const struct store_suppression *v,
                                        size_t n, size_t *added,
                                        struct diag *d)
{
	const char *what = "importing the suppression list";
	struct store_sqlite *s = store_sqlite_of(stp);
	time_t now = time(NULL);
	int64_t before = 0, after = 0;

	*added = 0;
	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	if (store_sqlite_count_suppressions(s, &before, what, d) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const char *key;
		if (v[i].email == NULL || *v[i].email == '\0') {
			diag_add(d, s->path, 0, 0, "no address to suppress");
			goto fail;
		}
		if ((key = store_sqlite_key(s, v[i].email)) == NULL) {
			store_sqlite_oom(s, what, d);
			goto fail;
		}
		if (store_sqlite_suppress_tx(s, key,
		                             &(struct store_sqlite_why){
		                                 .reason = v[i].reason,
		                                 .rule = v[i].rule,
		                                 .evidence = v[i].evidence,
		                                 .at = v[i].at ? v[i].at : now},
		                             what, d) < 0)
			goto fail;
	}
	if (store_sqlite_count_suppressions(s, &after, what, d) < 0 ||
	    store_sqlite_commit(s, what, d) < 0)
		goto fail;
	*added = (size_t)(after - before);
	return 0;
fail:
	store_sqlite_rollback(s);
	return -1;
}

static int
store_sqlite_release_figures(struct store *stp, int64_t release_id,
                             struct store_release_figures *out,
                             struct diag *d)
{
	const char *what = "reading a release's figures";
	struct store_sqlite *s = store_sqlite_of(stp);
	sqlite3_stmt *att = NULL, *ev = NULL;
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	/* an expiry row (no relay) records no try */
	if ((att = store_sqlite_prepare(
	         s,
	         "SELECT min(a.at), max(a.at),"
	         " coalesce(sum(a.result = 'sent' AND a.at > ?2), 0)"
	         " FROM deliveries d JOIN attempts a ON a.delivery_id = d.id"
	         " WHERE d.release_id = ?1"
	         " AND (a.relay IS NOT NULL OR a.result != 'expired')",
	         what, d)) == NULL ||
	    (ev = store_sqlite_prepare(
	         s,
	         "SELECT e.kind, count(DISTINCT e.delivery_id) FROM events e"
	         " JOIN deliveries d ON d.id = e.delivery_id"
	         " WHERE d.release_id = ?1"
	         " AND e.kind IN ('complaint', 'unsubscribe')"
	         " AND e.matched_by IS NOT 'mismatch' AND e.held IS NULL"
	         " GROUP BY e.kind",
	         what, d)) == NULL)
		goto out;
	if (store_sqlite_int(att, 1, release_id) ||
	    store_sqlite_int(att, 2, time(NULL) - STORE_RATE_WINDOW) ||
	    store_sqlite_int(ev, 1, release_id)) {
		store_sqlite_bind_fail(s, what, d);
		goto out;
	}
	if ((rc = sqlite3_step(att)) != SQLITE_ROW) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	out->first_attempt = (time_t)sqlite3_column_int64(att, 0);
	out->last_attempt = (time_t)sqlite3_column_int64(att, 1);
	out->sent_recent = (size_t)sqlite3_column_int64(att, 2);
	while ((rc = sqlite3_step(ev)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(ev, 0);
		size_t n = (size_t)sqlite3_column_int64(ev, 1);
		if (kind != NULL && strcmp(kind, "complaint") == 0)
			out->complaints = n;
		else
			out->unsubscribes = n;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_fail(s, rc, what, d);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(ev);
	sqlite3_finalize(att);
	return ret;
}

/* ---- moving a whole store (store_copy) --------------------------------- */

/* "SELECT a, b FROM t ORDER BY a" or "INSERT INTO t (a, b) VALUES (?1,
 * ?2)" for table t of store_tables; NULL out of memory. */
static char *store_sqlite_table_sql(const struct store_table *t, bool insert)
{
	sqlite3_str *q = sqlite3_str_new(NULL);

	sqlite3_str_appendall(q, insert ? "INSERT INTO " : "SELECT ");
	if (insert)
		sqlite3_str_appendf(q, "%s (", t->name);
	for (size_t i = 0; i < t->ncolumns; i++)
		sqlite3_str_appendf(q, "%s%s", i ? ", " : "", t->columns[i]);
	if (insert) {
		sqlite3_str_appendall(q, ") VALUES (");
		for (size_t i = 0; i < t->ncolumns; i++)
			/* SQLite's printf has no %zu */
			sqlite3_str_appendf(q, "%s?%d", i ? ", " : "",
			                    (int)i + 1);
		sqlite3_str_appendall(q, ")");
	} else {
		sqlite3_str_appendf(q, " FROM %s ORDER BY %s", t->name,
		                    t->columns[0]);
	}
	return sqlite3_str_finish(q);
}

static int store_sqlite_rows_table(struct store_sqlite *s, size_t table,
                                   int (*fn)(void *arg,
                                             const struct store_row *r),
                                   void *arg, struct diag *d)
{
	const char *what = "reading the store to copy it";
	const struct store_table *t = &store_tables[table];
	struct store_value v[32];
	char *sql = store_sqlite_table_sql(t, false);
	sqlite3_stmt *st;
	int rc, stop = 0;

	if (sql == NULL)
		return store_sqlite_oom(s, what, d);
	st = store_sqlite_prepare(s, sql, what, d);
	sqlite3_free(sql);
	if (st == NULL)
		return -1;
	while (stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (size_t i = 0; i < t->ncolumns; i++) {
			int c = (int)i;
			memset(&v[i], 0, sizeof(v[i]));
			if (sqlite3_column_type(st, c) == SQLITE_NULL) {
				v[i].kind = STORE_VALUE_NULL;
			} else if (t->kinds[i] == 'i') {
				v[i].kind = STORE_VALUE_INT;
				v[i].i = sqlite3_column_int64(st, c);
			} else if (t->kinds[i] == 'b') {
				v[i].kind = STORE_VALUE_BYTES;
				v[i].p = sqlite3_column_blob(st, c);
				v[i].len = (size_t)sqlite3_column_bytes(st, c);
			} else {
				v[i].kind = STORE_VALUE_TEXT;
				v[i].p = (const char *)sqlite3_column_text(st, c);
				v[i].len = (size_t)sqlite3_column_bytes(st, c);
			}
		}
		stop = fn(arg, &(struct store_row){table, v});
	}
	if (stop == 0 && rc != SQLITE_DONE)
		store_sqlite_fail(s, rc, what, d);
	sqlite3_finalize(st);
	return stop < 0 || (stop == 0 && rc != SQLITE_DONE) ? -1 : 0;
}

static int store_sqlite_rows_each(struct store *stp,
                                  int (*fn)(void *arg,
                                            const struct store_row *r),
                                  void *arg, struct diag *d)
{
	const char *what = "reading the store to copy it";
	struct store_sqlite *s = store_sqlite_of(stp);
	int rc = 0;

	/* one read transaction: one consistent view of every table */
	if (store_sqlite_exec(s, "BEGIN", what, d) < 0)
		return -1;
	for (size_t t = 0; rc == 0 && t < store_ntables; t++)
		rc = store_sqlite_rows_table(s, t, fn, arg, d);
	store_sqlite_rollback(s);
	return rc;
}

static int store_sqlite_load_begin(struct store *stp, struct diag *d)
{
	const char *what = "copying into the store";
	struct store_sqlite *s = store_sqlite_of(stp);

	if (store_sqlite_begin(s, what, d) < 0)
		return -1;
	for (size_t t = 0; t < store_ntables; t++) {
		char sql[96];
		int64_t n;
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
		         store_tables[t].name);
		if (store_sqlite_int_query(s, sql, &n, what, d) < 0)
			goto fail;
		if (n > 0) {
			diag_add(d, s->path, 0, 0,
			         "the store to copy into is not empty (its %s "
			         "has %" PRId64 " rows): copy into a new store",
			         store_tables[t].name, n);
			errno = EEXIST;
			goto fail;
		}
	}
	s->load_table = store_ntables;
	return 0;
fail: {
	int kind = errno; /* EEXIST: not empty */
	store_sqlite_rollback(s);
	errno = kind;
	return -1;
}
}

static int store_sqlite_load_row(struct store *stp, const struct store_row *r,
                                 struct diag *d)
{
	const char *what = "copying into the store";
	struct store_sqlite *s = store_sqlite_of(stp);
	const struct store_table *t = &store_tables[r->table];
	int rc = SQLITE_OK;

	if (s->load == NULL || s->load_table != r->table) {
		char *sql = store_sqlite_table_sql(t, true);
		sqlite3_finalize(s->load);
		s->load = NULL;
		if (sql == NULL)
			return store_sqlite_oom(s, what, d);
		s->load = store_sqlite_prepare(s, sql, what, d);
		sqlite3_free(sql);
		if (s->load == NULL)
			return -1;
		s->load_table = r->table;
	}
	for (size_t i = 0; rc == SQLITE_OK && i < t->ncolumns; i++) {
		const struct store_value *v = &r->v[i];
		int c = (int)i + 1;
		switch (v->kind) {
		case STORE_VALUE_NULL:
			rc = sqlite3_bind_null(s->load, c);
			break;
		case STORE_VALUE_INT:
			rc = sqlite3_bind_int64(s->load, c, v->i);
			break;
		case STORE_VALUE_TEXT:
			rc = sqlite3_bind_text(s->load, c, v->p, (int)v->len,
			                       SQLITE_STATIC);
			break;
		case STORE_VALUE_BYTES:
			rc = sqlite3_bind_blob(s->load, c, v->len ? v->p : "",
			                       (int)v->len, SQLITE_STATIC);
			break;
		}
	}
	if (rc != SQLITE_OK)
		return store_sqlite_bind_fail(s, what, d);
	return store_sqlite_run(s, s->load, what, d);
}

static int store_sqlite_load_end(struct store *stp, bool commit,
                                 const struct store_copied *want,
                                 struct store_copied *got, struct diag *d)
{
	const char *what = "copying into the store";
	struct store_sqlite *s = store_sqlite_of(stp);

	sqlite3_finalize(s->load);
	s->load = NULL;
	memset(got, 0, sizeof(*got));
	for (size_t t = 0; commit && t < store_ntables; t++) {
		char sql[96];
		int64_t n;
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
		         store_tables[t].name);
		if (store_sqlite_int_query(s, sql, &n, what, d) < 0) {
			commit = false;
			break;
		}
		got->rows[t] = (size_t)n;
		if (got->rows[t] != want->rows[t]) {
			diag_add(d, s->path, 0, 0,
			         "the copy's %s has %zu rows where %zu were "
			         "read: nothing was copied",
			         store_tables[t].name, got->rows[t],
			         want->rows[t]);
			commit = false;
		}
	}
	if (commit && store_sqlite_commit(s, what, d) == 0)
		return 0;
	store_sqlite_rollback(s);
	return -1;
}

const struct store_backend store_sqlite_backend = {
    .name = "sqlite",
    .rows_each = store_sqlite_rows_each,
    .load_begin = store_sqlite_load_begin,
    .load_row = store_sqlite_load_row,
    .load_end = store_sqlite_load_end,
    .open = store_sqlite_open,
    .close = store_sqlite_close,
    .release_add_each = store_sqlite_release_add_each,
    .release_uncancel = store_sqlite_release_uncancel,
    .release_files = store_sqlite_release_files,
    .release_get = store_sqlite_release_get,
    .releases_each = store_sqlite_releases_each,
    .release_find = store_sqlite_release_find,
    .release_set_state = store_sqlite_release_set_state,
    .claim = store_sqlite_claim,
    .record = store_sqlite_record,
    .unclaim = store_sqlite_unclaim,
    .daemon_add = store_sqlite_daemon_add,
    .daemon_beat = store_sqlite_daemon_beat,
    .daemons_each = store_sqlite_daemons_each,
    .daemon_end = store_sqlite_daemon_end,
    .handover = store_sqlite_handover,
    .drop = store_sqlite_drop,
    .abandon = store_sqlite_abandon,
    .holds_each = store_sqlite_holds_each,
    .duplicate_get = store_sqlite_duplicate_get,
    .event_record = store_sqlite_event_record,
    .imap_place_get = store_sqlite_imap_place_get,
    .imap_place_set = store_sqlite_imap_place_set,
    .expire = store_sqlite_expire,
    .cancel = store_sqlite_cancel,
    .retry = store_sqlite_retry,
    .attempts_each = store_sqlite_attempts_each,
    .delivery_get = store_sqlite_delivery_get,
    .next_due = store_sqlite_next_due,
    .delivery_find = store_sqlite_delivery_find,
    .delivery_by_key = store_sqlite_delivery_by_key,
    .events_each = store_sqlite_events_each,
    .event_raw = store_sqlite_event_raw,
    .event_confirm = store_sqlite_event_confirm,
    .suppressions_each = store_sqlite_suppressions_each,
    .suppress_remove = store_sqlite_suppress_remove,
    .suppress_import = store_sqlite_suppress_import,
    .release_figures = store_sqlite_release_figures,
};
