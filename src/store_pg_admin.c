/*
 * store_pg_admin — what admins read and what the bounce mailbox records,
 * in the PostgreSQL store (store.h has the contracts, store_pg_int.h the
 * rules; store_sqlite.c is the reference these behave as): the delivery
 * log, one delivery, the bounce mailbox's events (recorded, listed,
 * confirmed) and the IMAP reader's place, and the suppression list.
 *
 * Reads are one statement each (one snapshot); their rows are read whole,
 * then handed to the caller's fn, which may use the handle. Writes run in
 * one transaction through store_pg_tx; those that read and then write
 * (an event: its source, its match, the soft bounces it counts; an
 * import, which counts what it added; a confirmation) and a removal
 * (which must not change an import's count) take the admin lock
 * (STORE_PG_SERIAL), as SQLite's single writer runs them one at a time.
 */
#include "store_pg_int.h"

#include "herald/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tunables, each with why. */
static const struct {
	int soft_ids; /* a soft-limit suppression's evidence names the
	               * newest this many events: the limit is 3 unless
	               * set (at most 1000), and a line of ids is read,
	               * not scrolled (as the SQLite store) */
} store_pg_admin_defaults = {20};

/* ---- what admins read ------------------------------------------------- */

/*
 * The delivery log (as the SQLite store's): the attempts, the bounce
 * mailbox's events matched to a delivery (a "mismatch" is not the
 * delivery's history), and the suppressions of deliveries (one suppressed
 * at queue time or while it waited, at the time it was; one whose event
 * or refusal put the address on the list, at that time). Each part is led
 * by the most selective filter given, so the right index leads. $1
 * release, $2 address key, $3 result name, $4 since. Columns: delivery,
 * release, name, address, time, relay, try, event, code, status, text,
 * queue id, reason, hard, duration, result, then the order within a
 * second (attempt, event, suppression) and the row's id.
 */
/* clang-format off */
#define STORE_PG_LOG_WHERE(at)                                                 \
	" AND ($1::bigint = 0 OR d.release_id = $1)"                           \
	" AND ($2::text IS NULL OR d.email_key = $2) AND " at " >= $4"
#define STORE_PG_LOG_KIND                                                      \
	"CASE e.kind WHEN 'bounce' THEN 'bounced' WHEN 'complaint'"            \
	" THEN 'complained' ELSE 'unsubscribed' END"
#define STORE_PG_LOG_FROM(t)                                                   \
	" JOIN deliveries d ON d.id = " t ".delivery_id"                       \
	" JOIN releases r ON r.id = d.release_id WHERE "
#define STORE_PG_LOG(lead)                                                     \
	"SELECT a.delivery_id, d.release_id, r.name, d.email, a.at, a.relay,"  \
	" a.n, 0, a.code, a.status, a.text, a.queue_id, NULL, -1,"             \
	" a.duration_ms, a.result, 0, a.id"                                    \
	" FROM attempts a" STORE_PG_LOG_FROM("a") lead                         \
	STORE_PG_LOG_WHERE("a.at")                                             \
	" AND ($3::text IS NULL OR a.result = $3)"                             \
	" UNION ALL SELECT e.delivery_id, d.release_id, r.name, d.email, e.at," \
	" NULL, 0, e.id, 0, e.status, e.diagnostic, NULL, e.reason, e.hard,"   \
	" 0, " STORE_PG_LOG_KIND ", 1, e.id"                                   \
	" FROM events e" STORE_PG_LOG_FROM("e") lead                           \
	STORE_PG_LOG_WHERE("e.at")                                             \
	" AND e.kind IN ('bounce', 'complaint', 'unsubscribe')"                \
	" AND e.matched_by IS DISTINCT FROM 'mismatch' AND e.held IS NULL"     \
	" AND ($3 IS NULL OR $3 = " STORE_PG_LOG_KIND ")"                      \
	" UNION ALL SELECT d.id, d.release_id, r.name, d.email, d.updated_at," \
	" NULL, 0, 0, 0, NULL, 'not sent: the address is on the suppression"   \
	" list' || coalesce(' (' || s.reason || ')', ''), NULL, NULL, -1, 0,"  \
	" 'suppressed', 2, d.id FROM deliveries d"                             \
	" JOIN releases r ON r.id = d.release_id"                              \
	" LEFT JOIN suppressions s ON s.email = d.email_key WHERE " lead       \
	STORE_PG_LOG_WHERE("d.updated_at") " AND d.state = 'suppressed'"      \
	" AND ($3 IS NULL OR $3 = 'suppressed')"                               \
	" UNION ALL SELECT d.id, d.release_id, r.name, d.email, s.at, NULL,"   \
	" 0, 0, 0, NULL, 'put on the suppression list: '"                      \
	" || coalesce(s.reason, 'no reason given'), NULL, NULL, -1, 0,"        \
	" 'suppressed', 2, d.id"                                               \
	" FROM suppressions s" STORE_PG_LOG_FROM("s") lead                     \
	STORE_PG_LOG_WHERE("s.at") " AND d.state != 'suppressed'"              \
	" AND ($3 IS NULL OR $3 = 'suppressed')"                               \
	" ORDER BY 5, 17, 18"
/* clang-format on */

/* Row i of the delivery log's result into *row; -1 for a result herald
 * does not know. */
static int store_pg_log_row(struct store_pg *s, const PGresult *r, int i,
                            struct store_log_row *row, const char *what,
                            struct diag *d)
{
	const char *result = store_pg_str(r, i, 15);

	memset(row, 0, sizeof(*row));
	row->delivery_id = store_pg_i64(r, i, 0);
	row->release_id = store_pg_i64(r, i, 1);
	row->release = store_pg_str(r, i, 2);
	row->email = store_pg_str(r, i, 3);
	row->at = store_pg_time(s, r, i, 4);
	row->relay = store_pg_str(r, i, 5);
	row->attempt = (unsigned)store_pg_i64(r, i, 6);
	row->event = store_pg_i64(r, i, 7);
	row->code = (int)store_pg_i64(r, i, 8);
	row->status = store_pg_str(r, i, 9);
	row->text = store_pg_str(r, i, 10);
	row->queue_id = store_pg_str(r, i, 11);
	row->reason = store_pg_str(r, i, 12);
	row->hard = (int)store_pg_i64(r, i, 13);
	row->duration_ms = (unsigned)store_pg_i64(r, i, 14);
	if (store_log_result_parse(result, &row->result) < 0)
		return store_pg_bad_value(s, what, "delivery log result",
		                          result, d);
	return 0;
}

int store_pg_attempts_each(struct store *st, const struct store_log_filter *f,
                           int (*fn)(void *arg, const struct store_log_row *r),
                           void *arg, struct diag *d)
{
	const char *what = "reading the delivery log";
	struct store_pg *s = store_pg_of(st);
	static const struct store_log_filter none = {0};
	bool by_email;
	const char *sql, *key = NULL;
	struct store_pg_args a;
	PGresult *r;
	int ret = 0;

	if (f == NULL)
		f = &none;
	by_email = f->email != NULL && *f->email != '\0';
	if (by_email)
		sql = STORE_PG_LOG("d.email_key = $2");
	else if (f->release_id != 0)
		sql = STORE_PG_LOG("d.release_id = $1");
	else
		sql = STORE_PG_LOG("true");
	if (by_email && (key = store_pg_key(s, f->email)) == NULL)
		return store_pg_oom(s, what, d);
	store_pg_args_init(&a);
	store_pg_arg_int(&a, f->release_id);
	store_pg_arg_text(&a, key);
	store_pg_arg_text(&a, f->by_result ? store_log_result_name(f->result)
	                                   : NULL);
	store_pg_arg_time(s, &a, f->since);
	if ((r = store_pg_query(s, sql, &a, what, d)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_log_row row;
		int cb;

		if (store_pg_log_row(s, r, i, &row, what, d) < 0) {
			ret = -1;
			break;
		}
		if ((cb = fn(arg, &row)) != 0) {
			ret = cb > 0 ? 0 : -1;
			break;
		}
	}
	PQclear(r);
	return ret;
}

int store_pg_delivery_get(struct store *st, int64_t id,
                          int (*fn)(void *arg, const struct store_delivery *dl,
                                    const char *release),
                          void *arg, struct diag *d)
{
	const char *what = "reading a delivery";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_block *mem = NULL;
	struct store_delivery dl;
	const char *release = NULL;
	struct store_pg_args a;
	PGresult *r;
	int ret = -1;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, id);
	if ((r = store_pg_query(s,
	                        "SELECT " STORE_PG_DELIVERY_COLS(
	                            "d.") ", r.name FROM deliveries d"
	                                  " JOIN releases r ON r.id = "
	                                  "d.release_id WHERE d.id = $1",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		ret = 0; /* none: fn is not called */
		goto out;
	}
	if (store_pg_delivery(s, r, 0, 0, &mem, &dl, what, d) < 0)
		goto out;
	if (store_pg_dup(&mem, store_pg_str(r, 0, STORE_PG_DELIVERY_NCOLS),
	                 &release) < 0) {
		store_pg_oom(s, what, d);
		goto out;
	}
	PQclear(r);
	r = NULL;
	ret = fn(arg, &dl, release ? release : "") < 0 ? -1 : 0;
out:
	PQclear(r);
	store_pg_blocks_free(&mem);
	return ret;
}

int store_pg_delivery_find(struct store *st, int64_t release_id,
                           const char *email, int64_t *id, struct diag *d)
{
	const char *what = "finding a delivery";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	const char *key;
	PGresult *r;
	int ret = -1;

	if (email == NULL || *email == '\0') {
		diag_add(d, s->shown, 0, 0, "no address given");
		errno = EINVAL;
		return -1;
	}
	if ((key = store_pg_key(s, email)) == NULL)
		return store_pg_oom(s, what, d);
	store_pg_args_init(&a);
	store_pg_arg_text(&a, key);
	store_pg_arg_int(&a, release_id);
	if ((r = store_pg_query(s,
	                        "SELECT id FROM deliveries WHERE email_key = $1"
	                        " AND ($2::bigint = 0 OR release_id = $2)"
	                        " ORDER BY release_id DESC LIMIT 1",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		*id = store_pg_i64(r, 0, 0);
		ret = 0;
	} else {
		if (release_id != 0)
			diag_add(d, s->shown, 0, 0,
			         "release %" PRId64 " has no delivery to %s",
			         release_id, email);
		else
			diag_add(d, s->shown, 0, 0, "no release was sent to %s",
			         email);
		errno = ENOENT;
	}
	PQclear(r);
	return ret;
}

/* The key compared byte by byte (COLLATE "C"), as store_pg_event_match
 * compares a VERP key. */
int store_pg_delivery_by_key(struct store *st, const char *key, int64_t *id,
                             struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;

	*id = 0;
	store_pg_args_init(&a);
	store_pg_arg_text(&a, key);
	return store_pg_int(s,
	                    "SELECT id FROM deliveries"
	                    " WHERE message_id COLLATE \"C\" >= $1 || '@'"
	                    " AND message_id COLLATE \"C\" < $1 || 'A' LIMIT 1",
	                    &a, id, "finding a token's delivery", d);
}

/* ---- the bounce mailbox ----------------------------------------------- */

/* What store_pg_event_record's transaction works with: what it is given,
 * and what it found and did (reset by each run of the body: a conflict
 * runs it again). */
struct store_pg_event {
	const struct store_event *ev;
	const char *ev_key; /* the event's address as the list keeps it,
	                     * or NULL */
	time_t now;         /* the database's */
	/* found and done */
	char *key;       /* the address: the event's, else the matched
	                  * delivery's (malloc'd), or NULL */
	int64_t id;      /* the delivery matched, 0: none */
	const char *how; /* matched_by, static, or NULL */
	int64_t event_id;
	struct policy_verdict pv;
	bool suppressed;
	char *why, *evidence, *soft_evidence;
};

/* Does a equal b in ASCII letters of any case (SQLite's lower())? */
static bool store_pg_same_ascii(const char *a, const char *b)
{
	for (;; a++, b++) {
		char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
		char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
		if (x != y)
			return false;
		if (x == '\0')
			return true;
	}
}

/* The address of delivery id as the list keeps it into *out (malloc'd;
 * NULL: no such delivery). */
static int store_pg_delivery_key(struct store_pg *s, int64_t id, char **out,
                                 const char *what, struct diag *d)
{
	struct store_pg_args a;
	PGresult *r;
	const char *v;

	*out = NULL;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, id);
	if ((r = store_pg_query(
	         s, "SELECT email_key FROM deliveries WHERE id = $1", &a, what,
	         d)) == NULL)
		return -1;
	v = PQntuples(r) > 0 ? store_pg_str(r, 0, 0) : NULL;
	if (v != NULL && (*out = strdup(v)) == NULL) {
		PQclear(r);
		return store_pg_oom(s, what, d);
	}
	PQclear(r);
	return 0;
}

/* Is the delivery's Message-ID (just matched by it) the keyed one the
 * caller computes under the bounce secret? Then it is a token too. */
static int store_pg_keyed(struct store_pg *s, struct store_pg_event *e,
                          const char *what, struct diag *d)
{
	struct store_pg_args a;
	PGresult *r;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, e->id);
	if ((r = store_pg_query(s,
	                        "SELECT r.name, d.email FROM deliveries d"
	                        " JOIN releases r ON r.id = d.release_id"
	                        " WHERE d.id = $1",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) > 0 &&
	    e->ev->id_keyed(e->ev->id_keyed_arg, store_pg_str(r, 0, 0),
	                    store_pg_str(r, 0, 1), e->ev->message_id))
		e->how = "keyed-id";
	PQclear(r);
	return 0;
}

/* The delivery an event is about (as the SQLite store's
 * store_sqlite_event_match): by VERP key, by Message-ID, by address (the
 * newest since policy_address_since). Sets e->id (0: none) and e->how
 * ("verp", "message-id", "keyed-id": a Message-ID the caller says is
 * keyed, "address"). The VERP key is compared byte by byte (COLLATE
 * "C"), as SQLite compares it, whatever the database's collation. */
static int store_pg_event_match(struct store_pg *s, struct store_pg_event *e,
                                const char *what, struct diag *d)
{
	static const char *const sql[] = {
	    "SELECT id FROM deliveries"
	    " WHERE message_id COLLATE \"C\" >= $1 || '@'"
	    " AND message_id COLLATE \"C\" < $1 || 'A' LIMIT 1",
	    "SELECT id FROM deliveries WHERE message_id = $1",
	    "SELECT id FROM deliveries WHERE email_key = $1"
	    " AND queued_at >= $2"
	    " ORDER BY queued_at DESC, id DESC LIMIT 1"};
	static const char *const name[] = {"verp", "message-id", "address"};
	const char *arg[] = {e->ev->message_key, e->ev->message_id, e->ev_key};

	for (int i = 0; i < 3 && e->id == 0; i++) {
		struct store_pg_args a;
		if (arg[i] == NULL || *arg[i] == '\0')
			continue;
		store_pg_args_init(&a);
		store_pg_arg_text(&a, arg[i]);
		if (i == 2)
			store_pg_arg_int(&a, policy_address_since(e->now));
		if (store_pg_int(s, sql[i], &a, &e->id, what, d) < 0)
			return -1;
		if (e->id != 0)
			e->how = name[i];
	}
	if (e->id != 0 && strcmp(e->how, "message-id") == 0 &&
	    e->ev->id_keyed != NULL)
		return store_pg_keyed(s, e, what, d);
	return 0;
}

/* The soft bounces matched by token for e->key within window seconds
 * before now (what the soft limit counts, the one just recorded
 * included) into *count, and the evidence a soft-limit suppression keeps
 * into e->soft_evidence: "3 soft bounces within 30 days: events 4, 9,
 * 12", the newest soft_ids of them (NULL when memory runs out). */
static int store_pg_soft(struct store_pg *s, struct store_pg_event *e,
                         unsigned window, int64_t *count, const char *what,
                         struct diag *d)
{
	enum { MAX_IDS = 64 };
	int keep = store_pg_admin_defaults.soft_ids, n;
	char span[48], list[MAX_IDS * 22] = "";
	size_t at = 0;
	struct store_pg_args a;
	PGresult *r;

	*count = 0;
	if (keep > MAX_IDS)
		keep = MAX_IDS;
	store_pg_args_init(&a);
	store_pg_arg_text(&a, e->key);
	store_pg_arg_int(&a, (int64_t)e->now - (int64_t)window);
	store_pg_arg_int(&a, keep);
	if ((r = store_pg_query(s,
	                        "SELECT id, count(*) OVER () FROM events"
	                        " WHERE email_key = $1 AND kind = 'bounce'"
	                        " AND hard = 0 AND at >= $2"
	                        " AND matched_by IN ('verp', 'keyed-id')"
	                        " AND held IS NULL ORDER BY id DESC LIMIT $3",
	                        &a, what, d)) == NULL)
		return -1;
	n = PQntuples(r);
	if (n > 0)
		*count = store_pg_i64(r, 0, 1);
	/* oldest first, as admins read them */
	for (int i = n - 1; i >= 0; i--)
		at += (size_t)snprintf(list + at, sizeof(list) - at,
		                       "%s%" PRId64, i == n - 1 ? "" : ", ",
		                       store_pg_i64(r, i, 0));
	PQclear(r);
	store_window_text(window, span, sizeof(span));
	if (asprintf(&e->soft_evidence,
	             "%" PRId64 " soft bounce%s within %s: event%s %s%s",
	             *count, *count == 1 ? "" : "s", span, n == 1 ? "" : "s",
	             *count > n ? "..., " : "", list) < 0)
		e->soft_evidence = NULL;
	return 0;
}

/* Claim ev's source: 1 when it was recorded before (nothing to do). */
static int store_pg_event_source(struct store_pg *s, struct store_pg_event *e,
                                 const char *what, struct diag *d)
{
	struct store_pg_args a;
	int64_t changed = 0;

	store_pg_args_init(&a);
	store_pg_arg_text(&a, e->ev->source);
	store_pg_arg_int(&a, e->now);
	if (store_pg_run(s,
	                 "INSERT INTO event_sources (source, at)"
	                 " VALUES ($1, $2) ON CONFLICT (source) DO NOTHING",
	                 &a, &changed, what, d) < 0)
		return -1;
	return changed == 0 ? 1 : 0;
}

/* A token or Message-ID of one delivery with another's address is a
 * forgery (or a forward): kept with the delivery it named, for review,
 * and acted on by nobody. When the event names no address, e->key
 * becomes the delivery's. */
static int store_pg_event_address(struct store_pg *s, struct store_pg_event *e,
                                  struct policy_event *pe, const char *what,
                                  struct diag *d)
{
	char *dkey = NULL;

	if (e->id == 0 || (e->ev_key != NULL && strcmp(e->how, "address") == 0))
		return 0; /* found by the address: the same one */
	if (store_pg_delivery_key(s, e->id, &dkey, what, d) < 0)
		return -1;
	if (e->ev_key != NULL &&
	    (dkey == NULL || !store_pg_same_ascii(dkey, e->ev_key))) {
		e->how = "mismatch";
		pe->same_address = false;
	}
	if (e->ev_key == NULL)
		e->key = dkey; /* the address: the delivery's */
	else
		free(dkey);
	return 0;
}

/* Keep the event, with the raw message; its id into e->event_id. */
static int store_pg_event_insert(struct store_pg *s, struct store_pg_event *e,
                                 const char *what, struct diag *d)
{
	const struct store_event *ev = e->ev;
	struct store_pg_args a;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, e->now);
	store_pg_arg_text(&a, store_event_kind_name(ev->kind));
	if (e->id != 0)
		store_pg_arg_int(&a, e->id);
	else
		store_pg_arg_text(&a, NULL);
	store_pg_arg_text(&a, e->how);
	store_pg_arg_text(&a, e->key);
	store_pg_arg_text(&a, ev->status);
	store_pg_arg_text(&a, ev->reason);
	store_pg_arg_int(&a, ev->hard);
	store_pg_arg_text(&a, ev->diagnostic);
	if (ev->raw != NULL)
		store_pg_arg_bytes(&a, ev->raw, ev->rawlen);
	else
		store_pg_arg_text(&a, NULL);
	store_pg_arg_text(&a, e->pv.held);
	store_pg_arg_text(&a, ev->rule);
	store_pg_arg_text(&a, ev->evidence);
	return store_pg_int(s,
	                    "INSERT INTO events (at, kind, delivery_id,"
	                    " matched_by, email_key, status, reason, hard,"
	                    " diagnostic, raw, held, rule, evidence)"
	                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
	                    " $11, $12, $13) RETURNING id",
	                    &a, &e->event_id, what, d);
}

/* Do what policy says: move the delivery, suppress the address. */
static int store_pg_event_act(struct store_pg *s, struct store_pg_event *e,
                              const char *what, struct diag *d)
{
	const struct store_event *ev = e->ev;
	struct policy_action act = {.move = -1};
	int64_t count = 0;

	if (e->pv.count_soft && e->key != NULL) {
		/* the soft bounces policy counts, this one included */
		if (store_pg_soft(s, e, policy_soft_window(ev->soft_window),
		                  &count, what, d) < 0)
			return -1;
	} else {
		e->pv.count_soft = false; /* no address: nothing to count */
	}
	policy_act(&e->pv, count, ev->soft_limit, &act);
	if (act.move >= 0 && e->id != 0) {
		struct store_pg_args a;
		store_pg_args_init(&a);
		store_pg_arg_int(&a, e->id);
		store_pg_arg_int(&a, e->now);
		if (store_pg_run_move(s, (enum dstate_event)act.move, -1, NULL,
		                      "updated_at = $2", "id = $1", &a, NULL,
		                      what, d) < 0 ||
		    /* a bounce for a delivery still waiting may end a
		     * release */
		    store_pg_settle(s, 0, what, d) < 0)
			return -1;
	}
	/* policy acts only on a token's own delivery (id is never 0 then) */
	if (act.suppress && e->key != NULL && e->id != 0) {
		struct store_pg_why w = {.delivery_id = e->id,
		                         .at = store_pg_node_time(s, e->now)};
		if (asprintf(&e->why, "%s%s%s", store_event_kind_name(ev->kind),
		             ev->reason ? ": " : "",
		             ev->reason ? ev->reason : "") < 0)
			e->why = NULL;
		if (act.soft_limit) {
			w.rule = "soft-limit";
			w.evidence = e->soft_evidence;
		} else {
			w.rule = ev->rule ? ev->rule
			                  : store_event_kind_name(ev->kind);
			if (asprintf(&e->evidence, "event %" PRId64 "%s%s",
			             e->event_id, ev->evidence ? ", " : "",
			             ev->evidence ? ev->evidence : "") < 0)
				e->evidence = NULL;
			w.evidence = e->evidence;
		}
		w.reason = e->why;
		if (store_pg_suppress_tx(s, e->key, &w, what, d) < 0)
			return -1;
		e->suppressed = true;
	}
	return 0;
}

/* What a run of the body found and wrote, forgotten before the next. */
static void store_pg_event_reset(struct store_pg_event *e)
{
	free(e->key);
	free(e->why);
	free(e->evidence);
	free(e->soft_evidence);
	e->key = e->why = e->evidence = e->soft_evidence = NULL;
	e->id = e->event_id = 0;
	e->how = NULL;
	memset(&e->pv, 0, sizeof(e->pv));
	e->suppressed = false;
}

/* The transaction of store_pg_event_record: the source claimed in the
 * transaction that records the event and acts on it, so that either both
 * happened or neither did. */
static int store_pg_event_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "recording a bounce mailbox event";
	struct store_pg_event *e = arg;
	struct policy_event pe = {.kind = e->ev->kind, .hard = e->ev->hard};
	int rc;

	store_pg_event_reset(e);
	if (e->ev->source != NULL &&
	    (rc = store_pg_event_source(s, e, what, d)) != 0)
		return rc; /* 1: recorded before */
	if (store_pg_event_match(s, e, what, d) < 0)
		return -1;
	pe.match = e->how == NULL                    ? POLICY_NONE
	           : strcmp(e->how, "verp") == 0     ? POLICY_TOKEN
	           : strcmp(e->how, "keyed-id") == 0 ? POLICY_KEYED_ID
	           : strcmp(e->how, "address") == 0  ? POLICY_ADDRESS
	                                             : POLICY_MESSAGE_ID;
	pe.same_address = true;
	if (store_pg_event_address(s, e, &pe, what, d) < 0)
		return -1;
	if (e->key == NULL && e->ev_key != NULL &&
	    (e->key = strdup(e->ev_key)) == NULL)
		return store_pg_oom(s, what, d);
	policy_event(&pe, &e->pv);
	if (store_pg_event_insert(s, e, what, d) < 0 ||
	    store_pg_event_act(s, e, what, d) < 0)
		return -1;
	return 0;
}

int store_pg_event_record(struct store *st, const struct store_event *ev,
                          int64_t *delivery_id, bool *suppressed,
                          struct diag *d)
{
	const char *what = "recording a bounce mailbox event";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_event e;
	char *ev_key = NULL;
	int rc;

	*delivery_id = 0;
	*suppressed = false;
	memset(&e, 0, sizeof(e));
	if (ev->email != NULL) {
		const char *k = store_pg_key(s, ev->email);
		if (k == NULL || (ev_key = strdup(k)) == NULL)
			return store_pg_oom(s, what, d);
	}
	e.ev = ev;
	e.ev_key = ev_key;
	e.now = store_pg_now(s);
	rc = store_pg_tx(s, STORE_PG_SERIAL, what, store_pg_event_body, &e, d);
	if (rc == 0) {
		*suppressed = e.suppressed;
		*delivery_id = e.how != NULL && strcmp(e.how, "mismatch") == 0
		                   ? 0
		               : e.pv.held != NULL ? 0
		                                   : e.id;
	}
	store_pg_event_reset(&e);
	free(ev_key);
	return rc;
}

int store_pg_events_each(struct store *st, const struct store_event_filter *f,
                         int (*fn)(void *arg, const struct store_event_row *r),
                         void *arg, struct diag *d)
{
	const char *what = "reading the bounce mailbox's events";
	struct store_pg *s = store_pg_of(st);
	static const struct store_event_filter none = {0};
	struct store_pg_args a;
	PGresult *r;
	int ret = 0;

	if (f == NULL)
		f = &none;
	store_pg_args_init(&a);
	store_pg_arg_time(s, &a, f->since);
	store_pg_arg_int(&a, f->release_id);
	store_pg_arg_int(&a, f->unmatched);
	if ((r = store_pg_query(
	         s,
	         "SELECT e.id, e.at, e.kind, e.delivery_id, d.release_id,"
	         " r.name, e.matched_by, coalesce(e.email_key, d.email),"
	         " e.status, e.reason, e.diagnostic, e.hard, length(e.raw),"
	         " e.held, e.rule, e.evidence"
	         " FROM events e LEFT JOIN deliveries d ON d.id = e.delivery_id"
	         " LEFT JOIN releases r ON r.id = d.release_id"
	         " WHERE e.at >= $1 AND ($2::bigint = 0 OR d.release_id = $2)"
	         " AND ($3::int = 0 OR e.delivery_id IS NULL"
	         "  OR e.matched_by = 'mismatch' OR e.held IS NOT NULL)"
	         " ORDER BY e.at, e.id",
	         &a, what, d)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_event_row row;
		const char *kind = store_pg_str(r, i, 2);
		int cb;

		memset(&row, 0, sizeof(row));
		row.id = store_pg_i64(r, i, 0);
		row.at = store_pg_time(s, r, i, 1);
		row.kind = STORE_EVENT_UNKNOWN;
		for (int k = STORE_EVENT_BOUNCE; k <= STORE_EVENT_UNKNOWN; k++)
			if (kind != NULL &&
			    strcmp(kind, store_event_kind_name(
			                     (enum store_event_kind)k)) == 0)
				row.kind = (enum store_event_kind)k;
		row.delivery_id = store_pg_i64(r, i, 3);
		row.release_id = store_pg_i64(r, i, 4);
		row.release = store_pg_str(r, i, 5);
		row.matched_by = store_pg_str(r, i, 6);
		row.email = store_pg_str(r, i, 7);
		row.status = store_pg_str(r, i, 8);
		row.reason = store_pg_str(r, i, 9);
		row.diagnostic = store_pg_str(r, i, 10);
		row.hard = (int)store_pg_i64(r, i, 11);
		row.rawlen = (size_t)store_pg_i64(r, i, 12);
		row.held = store_pg_str(r, i, 13);
		row.rule = store_pg_str(r, i, 14);
		row.evidence = store_pg_str(r, i, 15);
		if ((cb = fn(arg, &row)) != 0) {
			ret = cb > 0 ? 0 : -1;
			break;
		}
	}
	PQclear(r);
	return ret;
}

int store_pg_event_raw(struct store *st, int64_t id, char **raw, size_t *len,
                       struct diag *d)
{
	const char *what = "reading an event's message";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	PGresult *r;
	int ret = -1;

	*raw = NULL;
	*len = 0;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, id);
	if ((r = store_pg_query_bin(s, "SELECT raw FROM events WHERE id = $1",
	                            &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		diag_add(d, s->shown, 0, 0, "no event %" PRId64, id);
		errno = ENOENT;
		goto out;
	}
	*len = (size_t)PQgetlength(r, 0, 0); /* NULL: 0 */
	if ((*raw = malloc(*len + 1)) == NULL) {
		*len = 0;
		store_pg_oom(s, what, d);
		goto out;
	}
	if (*len > 0)
		memcpy(*raw, PQgetvalue(r, 0, 0), *len);
	(*raw)[*len] = '\0';
	ret = 0;
out:
	PQclear(r);
	return ret;
}

/* What store_pg_event_confirm's transaction is given and finds. */
struct store_pg_confirm {
	int64_t id;
	time_t now; /* the database's */
	char *key;  /* the event's address (malloc'd) */
};

static int store_pg_confirm_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "confirming an unsubscribe request";
	struct store_pg_confirm *c = arg;
	struct store_pg_args a;
	char evidence[32];
	int64_t delivery;
	PGresult *r;

	free(c->key);
	c->key = NULL;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, c->id);
	store_pg_arg_text(&a, policy_held_reply);
	if ((r = store_pg_query(s,
	                        "SELECT email_key, coalesce(delivery_id, 0),"
	                        " (kind = 'unsubscribe' AND held = $2"
	                        " AND email_key IS NOT NULL)::int"
	                        " FROM events WHERE id = $1",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		diag_add(d, s->shown, 0, 0,
		         "there is no event %" PRId64 " (herald bounces "
		         "--unmatched lists the requests waiting)",
		         c->id);
		errno = ENOENT;
		return -1;
	}
	if (store_pg_i64(r, 0, 2) != 1) {
		PQclear(r);
		diag_add(d, s->shown, 0, 0,
		         "event %" PRId64 " is not an unsubscribe request "
		         "waiting for an admin (herald bounces --unmatched "
		         "lists them; herald suppress add ADDRESS suppresses "
		         "any address)",
		         c->id);
		errno = EINVAL;
		return -1;
	}
	c->key = strdup(store_pg_str(r, 0, 0));
	delivery = store_pg_i64(r, 0, 1);
	PQclear(r);
	if (c->key == NULL)
		return store_pg_oom(s, what, d);
	store_pg_args_init(&a);
	store_pg_arg_int(&a, c->id);
	if (store_pg_run(s,
	                 "UPDATE events SET held = NULL, matched_by = 'admin'"
	                 " WHERE id = $1",
	                 &a, NULL, what, d) < 0)
		return -1;
	snprintf(evidence, sizeof(evidence), "event %" PRId64, c->id);
	return store_pg_suppress_tx(
	    s, c->key,
	    &(struct store_pg_why){.reason = "unsubscribe: reply (confirmed)",
	                           .rule = "confirmed",
	                           .evidence = evidence,
	                           .delivery_id = delivery,
	                           .at = store_pg_node_time(s, c->now)},
	    what, d);
}

int store_pg_event_confirm(struct store *st, int64_t id, char **email,
                           struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_confirm c = {.id = id, .now = store_pg_now(s)};

	*email = NULL;
	if (store_pg_tx(s, STORE_PG_SERIAL, "confirming an unsubscribe request",
	                store_pg_confirm_body, &c, d) < 0) {
		free(c.key);
		return -1;
	}
	*email = c.key;
	return 0;
}

int store_pg_imap_place_get(struct store *st, const char *url,
                            uint32_t *uidvalidity, uint32_t *last_uid,
                            struct diag *d)
{
	const char *what = "reading the bounce mailbox's state";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	PGresult *r;

	*uidvalidity = *last_uid = 0;
	store_pg_args_init(&a);
	store_pg_arg_text(&a, url);
	if ((r = store_pg_query(s,
	                        "SELECT uidvalidity, last_uid FROM"
	                        " mailbox_state WHERE url = $1",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		*uidvalidity = (uint32_t)store_pg_i64(r, 0, 0);
		*last_uid = (uint32_t)store_pg_i64(r, 0, 1);
	}
	PQclear(r);
	return 0;
}

/* The place to write, for store_pg_imap_place_set's transaction. */
struct store_pg_place {
	const char *url;
	uint32_t uidvalidity, last_uid;
	time_t now; /* the database's */
};

static int store_pg_place_body(struct store_pg *s, void *arg, struct diag *d)
{
	const struct store_pg_place *p = arg;
	struct store_pg_args a;

	store_pg_args_init(&a);
	store_pg_arg_text(&a, p->url);
	store_pg_arg_int(&a, p->uidvalidity);
	store_pg_arg_int(&a, p->last_uid);
	store_pg_arg_int(&a, p->now);
	return store_pg_run(s,
	                    "INSERT INTO mailbox_state (url, uidvalidity,"
	                    " last_uid, updated_at) VALUES ($1, $2, $3, $4)"
	                    " ON CONFLICT (url) DO UPDATE SET uidvalidity = $2,"
	                    " last_uid = $3, updated_at = $4",
	                    &a, NULL, "recording the bounce mailbox's state",
	                    d);
}

int store_pg_imap_place_set(struct store *st, const char *url,
                            uint32_t uidvalidity, uint32_t last_uid,
                            struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_place p = {url, uidvalidity, last_uid, store_pg_now(s)};

	/* one statement; the transaction retries it on a conflict */
	return store_pg_tx(s, 0, "recording the bounce mailbox's state",
	                   store_pg_place_body, &p, d) < 0
	           ? -1
	           : 0;
}

/* ---- the suppression list --------------------------------------------- */

int store_pg_suppressions_each(struct store *st,
                               int (*fn)(void *arg,
                                         const struct store_suppression *s),
                               void *arg, struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	PGresult *r;
	int ret = 0;

	/* by address byte by byte (COLLATE "C"), as SQLite orders them,
	 * whatever the database's collation */
	if ((r = store_pg_query(
	         s,
	         "SELECT email, reason, at, rule, evidence"
	         " FROM suppressions ORDER BY email COLLATE \"C\"",
	         NULL, "reading the suppression list", d)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_suppression sp = {
		    .email = store_pg_str(r, i, 0),
		    .reason = store_pg_str(r, i, 1),
		    .at = store_pg_time(s, r, i, 2),
		    .rule = store_pg_str(r, i, 3),
		    .evidence = store_pg_str(r, i, 4),
		};
		int cb;
		if ((cb = fn(arg, &sp)) != 0) {
			ret = cb > 0 ? 0 : -1;
			break;
		}
	}
	PQclear(r);
	return ret;
}

/* What store_pg_suppress_import's transaction is given and counts. */
struct store_pg_import {
	const struct store_suppression *v;
	size_t n;
	time_t now; /* the node's */
	size_t added;
};

static int store_pg_import_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "importing the suppression list";
	static const char count[] = "SELECT count(*) FROM suppressions";
	struct store_pg_import *im = arg;
	int64_t before = 0, after = 0;

	im->added = 0;
	if (store_pg_int(s, count, NULL, &before, what, d) < 0)
		return -1;
	for (size_t i = 0; i < im->n; i++) {
		const struct store_suppression *v = &im->v[i];
		const char *key;
		if (v->email == NULL || *v->email == '\0') {
			diag_add(d, s->shown, 0, 0, "no address to suppress");
			errno = EINVAL;
			return -1;
		}
		if ((key = store_pg_key(s, v->email)) == NULL)
			return store_pg_oom(s, what, d);
		if (store_pg_suppress_tx(
		        s, key,
		        &(struct store_pg_why){.reason = v->reason,
		                               .rule = v->rule,
		                               .evidence = v->evidence,
		                               .at = v->at ? v->at : im->now},
		        what, d) < 0)
			return -1;
	}
	if (store_pg_int(s, count, NULL, &after, what, d) < 0)
		return -1;
	/* the admin lock keeps other imports and removals out between the
	 * two counts; an address a refusal adds meanwhile may be counted */
	im->added = after > before ? (size_t)(after - before) : 0;
	return 0;
}

int store_pg_suppress_import(struct store *st,
                             const struct store_suppression *v, size_t n,
                             size_t *added, struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_import im = {v, n,
	                             store_pg_node_time(s, store_pg_now(s)), 0};

	*added = 0;
	if (store_pg_tx(s, STORE_PG_SERIAL, "importing the suppression list",
	                store_pg_import_body, &im, d) < 0)
		return -1;
	*added = im.added;
	return 0;
}

/* What store_pg_suppress_remove's transaction is given and finds. */
struct store_pg_remove {
	const char *key;
	bool removed;
};

static int store_pg_remove_body(struct store_pg *s, void *arg, struct diag *d)
{
	struct store_pg_remove *rm = arg;
	struct store_pg_args a;
	int64_t changed = 0;

	store_pg_args_init(&a);
	store_pg_arg_text(&a, rm->key);
	if (store_pg_run(s, "DELETE FROM suppressions WHERE email = $1", &a,
	                 &changed, "taking an address off the suppression list",
	                 d) < 0)
		return -1;
	rm->removed = changed > 0;
	return 0;
}

int store_pg_suppress_remove(struct store *st, const char *email, bool *removed,
                             struct diag *d)
{
	const char *what = "taking an address off the suppression list";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_remove rm = {NULL, false};
	const char *k;
	char *key;
	int rc;

	*removed = false;
	if (email == NULL || *email == '\0') {
		diag_add(d, s->shown, 0, 0, "no address given");
		errno = EINVAL;
		return -1;
	}
	/* a copy: s->key is store_pg_key's buffer for the next caller */
	if ((k = store_pg_key(s, email)) == NULL || (key = strdup(k)) == NULL)
		return store_pg_oom(s, what, d);
	rm.key = key;
	/* the admin lock: an import counts what it added between two
	 * counts, which a removal must not change */
	rc =
	    store_pg_tx(s, STORE_PG_SERIAL, what, store_pg_remove_body, &rm, d);
	free(key);
	if (rc < 0)
		return -1;
	*removed = rm.removed;
	return 0;
}
