/*
 * store_pg_int — what the files of the PostgreSQL store share (store_pg.c:
 * connection, errors, transactions, clock, schema; store_pg_release.c,
 * store_pg_work.c, store_pg_admin.c: the operations). Not an interface:
 * only store_pg*.c include it.
 *
 * Rules every operation keeps:
 * - Every value reaches SQL as a parameter (struct store_pg_args); the SQL
 *   texts are constants.
 * - A write runs in one transaction through store_pg_tx: on any failure it
 *   is rolled back and nothing it did stays; a serialization failure or a
 *   deadlock is retried a few times before it is reported.
 * - Transactions are READ COMMITTED. Operations that read and then write
 *   what another writer could change between the two (queueing a release,
 *   cancel, retry, the suppression list, events) pass STORE_PG_SERIAL:
 *   they take one transaction-level advisory lock, so they run one at a
 *   time across every node, as SQLite's single writer runs them. The hot
 *   path (claim, record, heartbeats) does not: its writes are guarded
 *   (dstate.h) and claims lock their rows FOR UPDATE SKIP LOCKED.
 * - Times are seconds since the epoch on the database's clock. The store
 *   interface speaks the node's clock: store_pg_db_time turns a time a
 *   caller gave into the database's, store_pg_node_time turns one read
 *   back, and store_pg_now is the database's now (see store_pg.c).
 */
#ifndef HERALD_STORE_PG_INT_H
#define HERALD_STORE_PG_INT_H

#include "herald/dstate.h"
#include "herald/store.h"
#include "store_shared.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Memory for strings handed out until the next claim (struct
 * store_delivery's strings point into it). */
struct store_pg_block {
	struct store_pg_block *next;
	size_t used, cap;
	char data[];
};

struct store_pg {
	struct store base;
	PGconn *conn;
	char *conninfo;   /* as given (may hold secrets: never shown) */
	char *shown;      /* for people: user@host:port/db, no password */
	int64_t skew;     /* database clock - node clock, whole seconds */
	time_t skew_read; /* when skew was measured (node clock) */
	struct store_pg_block *claimed; /* strings of the last claim */
	char *key;                      /* store_pg_key's buffer */
	size_t keycap;
	int64_t owner;      /* daemons.id of this handle's heraldd, 0: none */
	int lost;           /* the connection failed: reset before the next
	                     * statement */
	char sqlstate[6];   /* of the last failed statement, "" if none */
};

static inline struct store_pg *store_pg_of(struct store *st)
{
	return (struct store_pg *)st;
}

/* ---- parameters -------------------------------------------------------- */

enum { STORE_PG_MAXARGS = 32 };

/* Parameters of one statement, $1, $2, ... in the order added. */
struct store_pg_args {
	int n;
	const char *v[STORE_PG_MAXARGS];
	int len[STORE_PG_MAXARGS];
	int fmt[STORE_PG_MAXARGS]; /* 0 text, 1 binary (bytea) */
	char num[STORE_PG_MAXARGS][24];
};

void store_pg_args_init(struct store_pg_args *a);
/* An integer ($n::bigint in the SQL where the type is not clear). */
void store_pg_arg_int(struct store_pg_args *a, int64_t v);
/* A string; NULL is SQL NULL. */
void store_pg_arg_text(struct store_pg_args *a, const char *v);
/* Bytes for a bytea column (binary: no escaping). */
void store_pg_arg_bytes(struct store_pg_args *a, const void *v, size_t len);
/* A time the caller gave (node clock) as the database's; 0 stays 0. */
void store_pg_arg_time(struct store_pg *s, struct store_pg_args *a, time_t t);

/* ---- statements ---------------------------------------------------------
 * what says what herald was doing, for the error ("claiming deliveries").
 * On failure: NULL / -1, the reason in d (with the store, herald's words
 * and PostgreSQL's), errno set (ENOSPC disk full, EIO connection lost or
 * server gone, EBUSY lock or serialization conflict, EACCES permission,
 * EINVAL anything else), s->sqlstate set. */

/* Rows of a query, as text; PQclear the result. */
PGresult *store_pg_query(struct store_pg *s, const char *sql,
                         const struct store_pg_args *a, const char *what,
                         struct diag *d);
/* The same with every column in binary (for bytea columns: read them with
 * PQgetvalue/PQgetlength; integers with store_pg_bin_int). */
PGresult *store_pg_query_bin(struct store_pg *s, const char *sql,
                             const struct store_pg_args *a, const char *what,
                             struct diag *d);
/* A statement without rows; *changed (may be NULL): rows it changed. */
int store_pg_run(struct store_pg *s, const char *sql,
                 const struct store_pg_args *a, int64_t *changed,
                 const char *what, struct diag *d);
/* A query of one integer (NULL or no row: *out = 0). */
int store_pg_int(struct store_pg *s, const char *sql,
                 const struct store_pg_args *a, int64_t *out,
                 const char *what, struct diag *d);

/* Values of a text result: NULL for SQL NULL; integers 0 for NULL. */
const char *store_pg_str(const PGresult *r, int row, int col);
int64_t store_pg_i64(const PGresult *r, int row, int col);
/* A time column (database clock) as the node's clock; NULL and 0 are 0. */
time_t store_pg_time(struct store_pg *s, const PGresult *r, int row, int col);
/* An int8/int4 column of a binary result. */
int64_t store_pg_bin_int(const PGresult *r, int row, int col);

/* ---- transactions ------------------------------------------------------ */

enum { STORE_PG_SERIAL = 1 };

/* Run body(s, arg, d) in one transaction (flags: STORE_PG_SERIAL). body
 * returns 0 (commit), > 0 (commit, and store_pg_tx returns that value) or
 * -1 (roll back; its reason in d). A conflict (serialization failure,
 * deadlock) rolls back and runs body again, up to a few times; body must
 * then start from scratch (reset what it counts). */
int store_pg_tx(struct store_pg *s, unsigned flags, const char *what,
                int (*body)(struct store_pg *s, void *arg, struct diag *d),
                void *arg, struct diag *d);

/* ---- clock -------------------------------------------------------------- */

/* The database's now, in seconds (the node's time(NULL) corrected by the
 * skew measured at most a minute ago). Already the database's: bind it
 * with store_pg_arg_int, not store_pg_arg_time (which would add the skew
 * again). Where the SQLite store calls time(NULL), this backend uses
 * store_pg_now. */
time_t store_pg_now(struct store_pg *s);
/* A node time as the database's and back; 0 stays 0 (it means none). */
time_t store_pg_db_time(const struct store_pg *s, time_t t);
time_t store_pg_node_time(const struct store_pg *s, time_t t);

/* ---- strings ------------------------------------------------------------ */

/* The address as the suppression list keeps it (store.h), into s->key,
 * valid until the next call; NULL when out of memory. */
#define store_pg_key(s, email) store_shared_key(&(s)->key, &(s)->keycap, email)
/* Copy src into the blocks at *head (NULL stays NULL); -1 out of memory. */
int store_pg_dup(struct store_pg_block **head, const char *src,
                 const char **out);
void store_pg_blocks_free(struct store_pg_block **head);
/* "out of memory while <what>", -1. */
int store_pg_oom(struct store_pg *s, const char *what, struct diag *d);
/* A value of a row that is not one herald writes ("state 'x'"), -1. */
int store_pg_bad_value(struct store_pg *s, const char *what,
                       const char *column, const char *value,
                       struct diag *d);

/* ---- shared by the operations (store_pg.c) ---------------------------------- */

/* The columns of a delivery, in the order store_pg_delivery reads them,
 * each with prefix p ("" or "d."). */
#define STORE_PG_DELIVERY_COLS(p)                                              \
	p "id, " p "release_id, " p "state, " p "email, " p "name, " p         \
	  "language, " p "outlet, " p "beat, " p "region, " p "timezone, " p   \
	  "message_id, " p "attempts, " p "queued_at, " p "next_at, " p        \
	  "updated_at, " p "last_code, " p "last_status, " p "last_text, " p  \
	  "retried_at"
#define STORE_PG_DELIVERY_NCOLS 19

/* The columns of a release, in the order store_pg_release reads them. */
#define STORE_PG_RELEASE_COLS                                                  \
	"id, name, source, state, queued_at, not_before, stale_after"

/* A delivery of row `row` whose STORE_PG_DELIVERY_COLS start at column
 * col, strings copied into *mem (times in the node's clock). */
int store_pg_delivery(struct store_pg *s, const PGresult *r, int row,
                      int col, struct store_pg_block **mem,
                      struct store_delivery *dl, const char *what,
                      struct diag *d);
/* A release of row `row` (STORE_PG_RELEASE_COLS from column 0) and its
 * counts by state (one more query). */
int store_pg_release(struct store_pg *s, const PGresult *r, int row,
                     struct store_release_info *info, const char *what,
                     struct diag *d);
/* "there is no release N in the store", -1 (errno ENOENT). */
int store_pg_no_release(struct store_pg *s, int64_t id, struct diag *d);

/* A release with nothing left to send or retry is done (store.h):
 * STORE_PG_SETTLE(r) is the condition for release r (an SQL expression);
 * store_pg_settle marks release_id (0: every active or paused one) done
 * where it holds, inside the caller's transaction. */
#define STORE_PG_SETTLE(r)                                                     \
	" state IN ('active', 'paused') AND NOT EXISTS (SELECT 1"              \
	" FROM deliveries WHERE release_id = " r                               \
	" AND state IN ('queued', 'sending', 'deferred'))"
int store_pg_settle(struct store_pg *s, int64_t release_id, const char *what,
                    struct diag *d);

/*
 * Guarded writes (dstate.h decides which moves are legal; the store only
 * performs them): store_pg_move builds "UPDATE deliveries SET state = TO,
 * set WHERE where AND state IN (dstate_from(ev) | dstate_from(also))". to
 * NULL: the state ev writes, and then set must write exactly the columns
 * dstate_records(ev) names (lease_until = $n, owner = ..., next_at = ...,
 * ...: see store_shared_records), or the move fails; a caller that names to
 * writes part of a move and says why. also: an event the same statement
 * performs too (a claim that takes over a lease), -1 none. set and where
 * use $1, $2, ... of the caller's parameters. Returns malloc'd SQL, or
 * NULL with the reason in d. store_pg_run_move builds and runs it.
 */
char *store_pg_move(struct store_pg *s, enum dstate_event ev, int also,
                    const char *to, const char *set, const char *where,
                    const char *what, struct diag *d);
int store_pg_run_move(struct store_pg *s, enum dstate_event ev, int also,
                      const char *to, const char *set, const char *where,
                      const struct store_pg_args *a, int64_t *changed,
                      const char *what, struct diag *d);
/* "state = 'x'" / "state IN ('x', 'y')" for a dstate set, malloc'd. */
char *store_pg_states(unsigned set);

/* What a suppression is given besides its address: the reason shown, the
 * rule and evidence (store.h), the delivery that caused it (0: none), and
 * when (node clock). */
struct store_pg_why {
	const char *reason, *rule, *evidence;
	int64_t delivery_id;
	time_t at;
};
/* Inside a transaction: add key to the suppression list (the first entry
 * stays, with its reason, rule and evidence) and suppress its queued and
 * deferred deliveries, which may leave a release with nothing to send. */
int store_pg_suppress_tx(struct store_pg *s, const char *key,
                         const struct store_pg_why *w, const char *what,
                         struct diag *d);

/* ---- the operations (store.h's contracts), by file ----------------------- */

/* store_pg_release.c */
int store_pg_release_add_each(struct store *st,
                              const struct store_release_new *rn,
                              int (*next)(void *arg, struct store_recipient *r),
                              void *arg, struct store_release_added *out,
                              struct diag *d);
int store_pg_release_files(struct store *st, int64_t release_id,
                           int (*fn)(void *arg, const struct store_file *f),
                           void *arg, struct diag *d);
int store_pg_release_get(struct store *st, int64_t release_id,
                         struct store_release_info *info, char *release_dir,
                         size_t rdsize, char *coalition, size_t csize,
                         struct diag *d);
int store_pg_releases_each(struct store *st, int64_t release_id,
                           int (*fn)(void *arg,
                                     const struct store_release_info *r),
                           void *arg, struct diag *d);
int store_pg_release_find(struct store *st, const char *id_or_name,
                          int64_t *release_id, struct diag *d);
int store_pg_release_set_state(struct store *st, int64_t release_id,
                               enum store_release_state state,
                               struct diag *d);
int store_pg_cancel(struct store *st, int64_t release_id, size_t *n,
                    struct diag *d);
int store_pg_retry(struct store *st, int64_t release_id, bool failed,
                   bool deferred, size_t *n, struct diag *d);
int store_pg_release_uncancel(struct store *st, int64_t release_id, size_t *n,
                              size_t *suppressed, struct diag *d);
int store_pg_release_figures(struct store *st, int64_t release_id,
                             struct store_release_figures *out,
                             struct diag *d);

/* store_pg_work.c */
int store_pg_claim(struct store *st, time_t now, unsigned lease, size_t max,
                   struct store_delivery *out, struct diag *d);
int store_pg_record(struct store *st, const struct store_attempt *a, size_t n,
                    struct diag *d);
int store_pg_unclaim(struct store *st, const int64_t *ids, size_t n,
                     time_t next_at, struct diag *d);
int store_pg_next_due(struct store *st, time_t *when, struct diag *d);
int store_pg_expire(struct store *st, time_t now, unsigned lifetime,
                    struct diag *d);
int store_pg_daemon_add(struct store *st, const char *host, long pid,
                        time_t now, const char *control, int64_t *id,
                        struct diag *d);
int store_pg_daemon_beat(struct store *st, time_t now, const int64_t *ids,
                         size_t n, time_t lease_until, bool *revived,
                         struct diag *d);
int store_pg_daemons_each(struct store *st,
                          int (*fn)(void *arg, const struct store_daemon *dm),
                          void *arg, struct diag *d);
int store_pg_daemon_end(struct store *st, int64_t id, time_t now,
                        size_t *freed, size_t *held, struct diag *d);
int store_pg_handover(struct store *st, const int64_t *ids, size_t n,
                      time_t now, bool *ok, struct diag *d);
int store_pg_drop(struct store *st, int64_t release_id, const int64_t *ids,
                  size_t n, bool cancel, size_t *dropped, struct diag *d);
int store_pg_abandon(struct store *st, const int64_t *ids, size_t n,
                     time_t next_at, struct diag *d);
int store_pg_holds_each(struct store *st, int64_t release_id,
                        int64_t delivery_id,
                        int (*fn)(void *arg, const struct store_hold *h),
                        void *arg, struct diag *d);
int store_pg_duplicate_get(struct store *st, int64_t id,
                           enum store_duplicate *why, time_t *at,
                           struct diag *d);

/* store_pg_admin.c */
int store_pg_attempts_each(struct store *st, const struct store_log_filter *f,
                           int (*fn)(void *arg, const struct store_log_row *r),
                           void *arg, struct diag *d);
int store_pg_delivery_get(struct store *st, int64_t id,
                          int (*fn)(void *arg, const struct store_delivery *dl,
                                    const char *release),
                          void *arg, struct diag *d);
int store_pg_delivery_find(struct store *st, int64_t release_id,
                           const char *email, int64_t *id, struct diag *d);
int store_pg_delivery_by_key(struct store *st, const char *key, int64_t *id,
                             struct diag *d);
int store_pg_event_record(struct store *st, const struct store_event *ev,
                          int64_t *delivery_id, bool *suppressed,
                          struct diag *d);
int store_pg_events_each(struct store *st, const struct store_event_filter *f,
                         int (*fn)(void *arg, const struct store_event_row *r),
                         void *arg, struct diag *d);
int store_pg_event_raw(struct store *st, int64_t id, char **raw, size_t *len,
                       struct diag *d);
int store_pg_event_confirm(struct store *st, int64_t id, char **email,
                           struct diag *d);
int store_pg_imap_place_get(struct store *st, const char *url,
                            uint32_t *uidvalidity, uint32_t *last_uid,
                            struct diag *d);
int store_pg_imap_place_set(struct store *st, const char *url,
                            uint32_t uidvalidity, uint32_t last_uid,
                            struct diag *d);
int store_pg_suppressions_each(struct store *st,
                               int (*fn)(void *arg,
                                         const struct store_suppression *s),
                               void *arg, struct diag *d);
int store_pg_suppress_import(struct store *st,
                             const struct store_suppression *v, size_t n,
                             size_t *added, struct diag *d);
int store_pg_suppress_remove(struct store *st, const char *email,
                             bool *removed, struct diag *d);

#endif
