/*
 * store_pg_work — the daemon's work in a PostgreSQL store (store.h's
 * contracts; the SQLite store's functions of the same names are the
 * reference): claiming due deliveries, recording attempts, giving claims
 * back, expiry, the next due time, and heraldd's owners and hand-overs.
 *
 * This is the hot path several heraldd on several machines share through
 * one database. A claim is one statement that locks its rows FOR UPDATE
 * SKIP LOCKED: two nodes claiming at once take disjoint deliveries and
 * never wait for each other. Every other change of a delivery's state is a
 * guarded move (dstate.h, store_pg_move), so a late or stale writer finds
 * the row moved on and leaves it. A batch of ids is one statement
 * (id = ANY($n::bigint[])), not one per id: a round trip to the server
 * costs more than the statement.
 */
#include "store_pg_int.h"

#include "herald/dstate.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tunables, each with why. */
static const struct {
	int64_t ended_keep; /* seconds the row of a heraldd that ended and
	                     * holds nothing is kept: one taken for gone
	                     * that was only stuck finds its row again when
	                     * it wakes (daemon_beat), and `herald show` can
	                     * still name it (as the SQLite store) */
} store_pg_work_defaults = {86400};

/* ---- helpers ------------------------------------------------------------ */

/* ids as an array literal "{1,2,3}" for a $n::bigint[] parameter,
 * malloc'd; NULL when memory runs out. */
static char *store_pg_work_ids(const int64_t *ids, size_t n)
{
	/* "-9223372036854775808," */
	enum { PER_ID = 21 };
	size_t cap, used = 0;
	char *buf;

	if (n > (SIZE_MAX - 3) / PER_ID)
		return NULL;
	cap = n * PER_ID + 3;
	if ((buf = malloc(cap)) == NULL)
		return NULL;
	buf[used++] = '{';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64,
		                         i ? "," : "", ids[i]);
	buf[used++] = '}';
	buf[used] = '\0';
	return buf;
}

/* This handle's heraldd as a parameter: NULL when it has none. */
static void store_pg_work_owner(const struct store_pg *s,
                                struct store_pg_args *a)
{
	if (s->owner != 0)
		store_pg_arg_int(a, s->owner);
	else
		store_pg_arg_text(a, NULL);
}

/* The guarded move of ev (store_pg_move, to NULL) inside a statement:
 * before, the move, after; malloc'd, or NULL with the reason in d. */
static char *store_pg_work_move(struct store_pg *s, enum dstate_event ev,
                                int also, const char *set, const char *where,
                                const char *before, const char *after,
                                const char *what, struct diag *d)
{
	char *move = store_pg_move(s, ev, also, NULL, set, where, what, d);
	char *sql;

	if (move == NULL)
		return NULL;
	if (asprintf(&sql, "%s%s%s", before, move, after) < 0) {
		free(move);
		store_pg_oom(s, what, d);
		return NULL;
	}
	free(move);
	return sql;
}

/* ---- claiming ----------------------------------------------------------- */

/*
 * The due deliveries a claim takes, oldest next_at first: per active
 * release past its embargo, the first $2 waiting ones due at $1 and the
 * first $2 whose lease ran out, each read from its partial index in
 * next_at order and locked as it is read (SKIP LOCKED: what another claim
 * holds is passed over, not waited for, and the scan goes on to the next
 * row, so a claim next to another still fills up); then the first $2 of
 * them all. MATERIALIZED: the rows are chosen and locked once, whatever
 * plan the UPDATE gets. Rows locked here and not taken (beyond $2) stay
 * locked only until this claim commits.
 *
 * Equal next_at come out of the index in its order (the row's place in
 * the table, mostly the order queued); sorting each release's rows by id
 * as well would read every due row of a release at every claim.
 */
#define STORE_PG_CLAIM_DUE                                                     \
	"WITH rel AS (SELECT id FROM releases"                                 \
	"  WHERE state = 'active' AND not_before <= $1::bigint),"              \
	" waiting AS MATERIALIZED (SELECT c.id, c.next_at FROM rel"            \
	"  CROSS JOIN LATERAL (SELECT id, next_at FROM deliveries"             \
	"   WHERE release_id = rel.id AND state IN ('queued', 'deferred')"     \
	"   AND next_at <= $1::bigint ORDER BY next_at LIMIT $2::bigint"       \
	"   FOR UPDATE SKIP LOCKED) c),"                                       \
	" lapsed AS MATERIALIZED (SELECT c.id, c.next_at FROM rel"             \
	"  CROSS JOIN LATERAL (SELECT id, next_at FROM deliveries"             \
	"   WHERE release_id = rel.id AND state = 'sending'"                   \
	"   AND lease_until < $1::bigint ORDER BY next_at LIMIT $2::bigint"    \
	"   FOR UPDATE SKIP LOCKED) c),"                                       \
	" due AS MATERIALIZED (SELECT id FROM (SELECT id, next_at FROM waiting" \
	"  UNION ALL SELECT id, next_at FROM lapsed) c"                        \
	"  ORDER BY next_at, id LIMIT $2::bigint) "

/* The claim's move: a lease that ran out after a hand-over may have
 * reached the relay (every SET reads the row as it was). */
#define STORE_PG_CLAIM_SET                                                     \
	"lease_until = $3::bigint, updated_at = $1::bigint,"                   \
	" owner = $4::bigint, handed_at = NULL,"                               \
	" may_duplicate = CASE WHEN state = 'sending'"                         \
	"  AND handed_at IS NOT NULL THEN $1::bigint ELSE may_duplicate END,"  \
	" duplicate_why = CASE WHEN state = 'sending'"                         \
	"  AND handed_at IS NOT NULL THEN 'lease' ELSE duplicate_why END"

struct store_pg_claim_job {
	char *sql;
	time_t now; /* the database's */
	unsigned lease;
	size_t max;
	struct store_delivery *out;
};

/* A claimed row's place in store.h's order: oldest next_at first, then
 * by id. */
struct store_pg_claim_row {
	int64_t next_at, id;
	int row;
};

static int store_pg_claim_cmp(const void *a, const void *b)
{
	const struct store_pg_claim_row *x = a, *y = b;

	if (x->next_at != y->next_at)
		return x->next_at < y->next_at ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int store_pg_claim_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "claiming due deliveries";
	struct store_pg_claim_job *j = arg;
	struct store_pg_args a;
	PGresult *r;
	struct store_pg_claim_row *order = NULL;
	int n, rc = -1;

	store_pg_blocks_free(&s->claimed);
	store_pg_args_init(&a);
	store_pg_arg_int(&a, (int64_t)j->now);
	store_pg_arg_int(&a, (int64_t)j->max);
	store_pg_arg_int(&a, (int64_t)j->now + j->lease);
	store_pg_work_owner(s, &a);
	if ((r = store_pg_query(s, j->sql, &a, what, d)) == NULL)
		return -1;
	n = PQntuples(r);
	if (n > 0 && (order = malloc((size_t)n * sizeof(*order))) == NULL) {
		store_pg_oom(s, what, d);
		goto out;
	}
	/* RETURNING comes in no particular order; STORE_PG_DELIVERY_COLS:
	 * id is column 0, next_at 13 */
	for (int i = 0; i < n; i++) {
		order[i].next_at = store_pg_i64(r, i, 13);
		order[i].id = store_pg_i64(r, i, 0);
		order[i].row = i;
	}
	if (n > 1)
		qsort(order, (size_t)n, sizeof(*order), store_pg_claim_cmp);
	for (int i = 0; i < n; i++)
		if (store_pg_delivery(s, r, order[i].row, 0, &s->claimed,
		                      &j->out[i], what, d) < 0)
			goto out;
	rc = n;
out:
	free(order);
	PQclear(r);
	if (rc < 0)
		store_pg_blocks_free(&s->claimed);
	return rc;
}

int store_pg_claim(struct store *st, time_t now, unsigned lease, size_t max,
                   struct store_delivery *out, struct diag *d)
{
	const char *what = "claiming due deliveries";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_claim_job j = {NULL, store_pg_db_time(s, now), lease,
	                               max, out};
	int rc;

	store_pg_blocks_free(&s->claimed);
	if (j.max > INT_MAX / 4)
		j.max = INT_MAX / 4;
	if (j.max == 0)
		return 0;
	if ((j.sql = store_pg_work_move(
	         s, DSTATE_CLAIM, DSTATE_TAKEOVER, STORE_PG_CLAIM_SET,
	         "id IN (SELECT id FROM due)", STORE_PG_CLAIM_DUE,
	         " RETURNING " STORE_PG_DELIVERY_COLS(""), what, d)) == NULL)
		return -1;
	rc = store_pg_tx(s, 0, what, store_pg_claim_body, &j, d);
	free(j.sql);
	return rc;
}

/* ---- recording ---------------------------------------------------------- */

/* The states an attempt may lead to (the bounce states come later, from
 * the mailbox; queued, sending, ... are not results). */
static bool store_pg_result_ok(enum store_state r)
{
	return r == STORE_SENT || r == STORE_DEFERRED || r == STORE_FAILED ||
	       r == STORE_EXPIRED;
}

/*
 * In record's UPDATE, a.result is the result, and the result is "applied"
 * when dstate allows its move from the delivery's state: while it is
 * sending, or, for "sent", unless it has later news (store.h). malloc'd,
 * NULL when memory runs out.
 */
static char *store_pg_applied(void)
{
	static const enum dstate_event ev[] = {DSTATE_SENT, DSTATE_DEFERRED,
	                                       DSTATE_FAILED, DSTATE_EXPIRED};
	static const enum store_state result[] = {STORE_SENT, STORE_DEFERRED,
	                                          STORE_FAILED, STORE_EXPIRED};
	char *in[sizeof(ev) / sizeof(ev[0])] = {NULL};
	char *out = NULL;
	bool oom = false;

	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
		oom = oom || (in[i] = store_pg_states(dstate_from(ev[i]))) == NULL;
	if (!oom &&
	    asprintf(&out,
	             "((a.result = '%s' AND %s) OR (a.result = '%s' AND %s)"
	             " OR (a.result = '%s' AND %s) OR (a.result = '%s' AND %s))",
	             store_state_name(result[0]), in[0],
	             store_state_name(result[1]), in[1],
	             store_state_name(result[2]), in[2],
	             store_state_name(result[3]), in[3]) < 0)
		out = NULL;
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
		free(in[i]);
	return out;
}

/*
 * A batch of attempts, one round trip: each delivery's counters and
 * (where the result applies) its state and reply, then the attempt rows,
 * numbered by the tries just counted, in the batch's order; returns each
 * delivery's id, release and address key (no row for an id that is no
 * delivery). The one UPDATE of a state not made by store_pg_move: the try
 * counts even when its result no longer applies, so the guard is each
 * SET's CASE (dstate's sets all the same). An UPDATE changes a row once,
 * so a batch holds each delivery once (store_pg_record_chunk).
 * $1..$11: arrays, one element per attempt; %1$s: deferred's from-states,
 * %2$s: store_pg_applied.
 */
#define STORE_PG_RECORD_SQL                                                    \
	"WITH a AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[],"  \
	"  $4::bigint[], $5::int[], $6::text[], $7::text[], $8::bigint[],"     \
	"  $9::text[], $10::text[], $11::int[]) WITH ORDINALITY"               \
	"  AS a(id, counts, result, next_at, code, status, text, at, relay,"   \
	"  queue_id, duration_ms, ord)),"                                      \
	" u AS (UPDATE deliveries SET tries = tries + 1,"                      \
	" attempts = attempts + a.counts,"                                     \
	" state = CASE"                                                        \
	"  WHEN %1$s AND a.result = 'deferred' AND EXISTS"                     \
	"   (SELECT 1 FROM suppressions"                                       \
	"    WHERE email = deliveries.email_key) THEN 'suppressed'"            \
	"  WHEN %2$s THEN a.result ELSE state END,"                            \
	" next_at = CASE WHEN %1$s AND a.result = 'deferred'"                  \
	"  THEN a.next_at ELSE deliveries.next_at END,"                        \
	" lease_until = CASE WHEN %2$s THEN NULL ELSE lease_until END,"        \
	" last_code = CASE WHEN %2$s THEN a.code ELSE last_code END,"          \
	" last_status = CASE WHEN %2$s THEN a.status ELSE last_status END,"    \
	" last_text = CASE WHEN %2$s THEN a.text ELSE last_text END,"          \
	" updated_at = CASE WHEN %2$s THEN a.at ELSE updated_at END"           \
	" FROM a WHERE deliveries.id = a.id"                                   \
	" RETURNING deliveries.id, deliveries.tries, deliveries.release_id,"   \
	"  deliveries.email_key),"                                             \
	" i AS (INSERT INTO attempts (delivery_id, n, at, relay, code,"        \
	"  status, text, queue_id, duration_ms, result, counts)"               \
	"  SELECT u.id, u.tries, a.at, a.relay, a.code, a.status, a.text,"     \
	"  a.queue_id, a.duration_ms, a.result, a.counts"                      \
	"  FROM u JOIN a ON a.id = u.id ORDER BY a.ord)"                       \
	" SELECT id, release_id, email_key FROM u"

enum { STORE_PG_RECORD_NARRAYS = 11 };

/* STORE_PG_RECORD_SQL made whole, malloc'd; NULL when memory runs out. */
static char *store_pg_record_sql(const char *def, const char *ap)
{
	char *sql;

	return asprintf(&sql, STORE_PG_RECORD_SQL, def, ap) < 0 ? NULL : sql;
}

/* A growing string for array literals. */
struct store_pg_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void store_pg_buf_add(struct store_pg_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (cap - b->len < n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* One element of a text[] literal: NULL, or the text in double quotes
 * with " and \ escaped. */
static void store_pg_buf_text(struct store_pg_buf *b, const char *v)
{
	if (v == NULL) {
		store_pg_buf_add(b, "NULL", 4);
		return;
	}
	store_pg_buf_add(b, "\"", 1);
	for (const char *p = v; *p;) {
		size_t run = strcspn(p, "\"\\");
		store_pg_buf_add(b, p, run);
		p += run;
		if (*p) {
			store_pg_buf_add(b, "\\", 1);
			store_pg_buf_add(b, p, 1);
			p++;
		}
	}
	store_pg_buf_add(b, "\"", 1);
}

static void store_pg_buf_int(struct store_pg_buf *b, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	store_pg_buf_add(b, num, (size_t)n);
}

/* The arrays of attempts t[0..n) into b[]: $1..$11 of
 * STORE_PG_RECORD_SQL. */
static void store_pg_record_arrays(struct store_pg *s,
                                   const struct store_attempt *t, size_t n,
                                   struct store_pg_buf *b)
{
	for (int k = 0; k < STORE_PG_RECORD_NARRAYS; k++)
		store_pg_buf_add(&b[k], "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			for (int k = 0; k < STORE_PG_RECORD_NARRAYS; k++)
				store_pg_buf_add(&b[k], ",", 1);
		store_pg_buf_int(&b[0], t[i].delivery_id);
		store_pg_buf_int(&b[1], t[i].counts ? 1 : 0);
		store_pg_buf_text(&b[2], store_state_name(t[i].result));
		store_pg_buf_int(&b[3], store_pg_db_time(s, t[i].next_at));
		store_pg_buf_int(&b[4], t[i].code);
		store_pg_buf_text(&b[5], t[i].status);
		store_pg_buf_text(&b[6], t[i].text);
		store_pg_buf_int(&b[7], store_pg_db_time(s, t[i].at));
		store_pg_buf_text(&b[8], t[i].relay);
		store_pg_buf_text(&b[9], t[i].queue_id);
		store_pg_buf_int(&b[10], t[i].duration_ms);
	}
	for (int k = 0; k < STORE_PG_RECORD_NARRAYS; k++)
		store_pg_buf_add(&b[k], "}", 1);
}

struct store_pg_record_job {
	const char *sql;
	const struct store_attempt *a;
	size_t n;
	int64_t *rel; /* the releases recorded for, once each */
	size_t nrel;
};

/* A FAILED attempt whose refusal says the address is bad (trouble.c
 * decided): the address goes on the suppression list with this delivery
 * as the cause, as after a hard bounce (event_record), in the caller's
 * transaction. Its deliveries still waiting (a deferral of this batch
 * too) end suppressed, as they would had it been recorded first. */
static int store_pg_refused(struct store_pg *s, const struct store_attempt *t,
                            const char *key, const char *what,
                            struct diag *d)
{
	char *why = NULL;
	int rc;

	if (asprintf(&why, "refused: %s (%d%s%s)", t->bad_address, t->code,
	             t->status ? " " : "", t->status ? t->status : "") < 0)
		return store_pg_oom(s, what, d);
	rc = store_pg_suppress_tx(s, key,
	                          &(struct store_pg_why){
	                              .reason = why,
	                              .rule = t->rule,
	                              .evidence = t->evidence,
	                              .delivery_id = t->delivery_id,
	                              .at = t->at},
	                          what, d);
	free(why);
	return rc;
}

/* After a chunk's statement (rows r): an id it did not find fails the
 * batch; note the releases; suppress the refused addresses. */
static int store_pg_record_after(struct store_pg *s,
                                 struct store_pg_record_job *j,
                                 const struct store_attempt *t, size_t n,
                                 const PGresult *r, struct diag *d)
{
	const char *what = "recording attempts";
	int rows = PQntuples(r);

	for (size_t i = 0; i < n; i++) {
		int k = 0;

		while (k < rows && store_pg_i64(r, k, 0) != t[i].delivery_id)
			k++;
		if (k == rows) {
			diag_add(d, s->shown, 0, 0,
			         "there is no delivery %" PRId64
			         " in the store: none of the %zu attempts was "
			         "recorded",
			         t[i].delivery_id, j->n);
			errno = ENOENT;
			return -1;
		}
		{
			int64_t rel = store_pg_i64(r, k, 1);
			size_t m = 0;
			while (m < j->nrel && j->rel[m] != rel)
				m++;
			if (m == j->nrel)
				j->rel[j->nrel++] = rel;
		}
		if (t[i].result == STORE_FAILED && t[i].bad_address != NULL &&
		    store_pg_refused(s, &t[i], store_pg_str(r, k, 2), what,
		                     d) < 0)
			return -1;
	}
	return 0;
}

/* Record t[0..n) (each delivery once) in one statement. */
static int store_pg_record_chunk(struct store_pg *s,
                                 struct store_pg_record_job *j,
                                 const struct store_attempt *t, size_t n,
                                 struct diag *d)
{
	const char *what = "recording attempts";
	struct store_pg_buf b[STORE_PG_RECORD_NARRAYS];
	struct store_pg_args a;
	PGresult *r = NULL;
	int rc = -1;

	memset(b, 0, sizeof(b));
	store_pg_record_arrays(s, t, n, b);
	store_pg_args_init(&a);
	for (int k = 0; k < STORE_PG_RECORD_NARRAYS; k++) {
		if (b[k].oom) {
			store_pg_oom(s, what, d);
			goto out;
		}
		store_pg_arg_text(&a, b[k].p);
	}
	if ((r = store_pg_query(s, j->sql, &a, what, d)) == NULL)
		goto out;
	rc = store_pg_record_after(s, j, t, n, r, d);
out:
	PQclear(r);
	for (int k = 0; k < STORE_PG_RECORD_NARRAYS; k++)
		free(b[k].p);
	return rc;
}

/*
 * A release with nothing left is done. Its row is locked first, and the
 * check is the next statement: in READ COMMITTED each statement sees what
 * was committed when it began, so the check sees the work of whoever held
 * the lock before. Without it two nodes recording the last two deliveries
 * of a release at once would each see the other's still sending, and
 * neither would mark it done; a retry that makes the release active again
 * is ordered the same way. The lock is held from here to the commit.
 */
static int store_pg_record_settle(struct store_pg *s,
                                  struct store_pg_record_job *j,
                                  struct diag *d)
{
	const char *what = "recording attempts";
	char *ids = store_pg_work_ids(j->rel, j->nrel);
	struct store_pg_args a;
	int rc;

	if (ids == NULL)
		return store_pg_oom(s, what, d);
	store_pg_args_init(&a);
	store_pg_arg_text(&a, ids);
	rc = store_pg_run(s,
	                  "SELECT 1 FROM releases WHERE id = ANY($1::bigint[])"
	                  " ORDER BY id FOR UPDATE",
	                  &a, NULL, what, d);
	if (rc == 0)
		rc = store_pg_run(s,
		                  "UPDATE releases SET state = 'done'"
		                  " WHERE id = ANY($1::bigint[]) AND"
		                  STORE_PG_SETTLE("releases.id"),
		                  &a, NULL, what, d);
	free(ids);
	return rc;
}

static int store_pg_record_body(struct store_pg *s, void *arg, struct diag *d)
{
	struct store_pg_record_job *j = arg;
	size_t start = 0;

	j->nrel = 0;
	/* in chunks that hold each delivery once, in the batch's order */
	while (start < j->n) {
		size_t end = start + 1;

		for (; end < j->n; end++) {
			size_t k = start;
			while (k < end &&
			       j->a[k].delivery_id != j->a[end].delivery_id)
				k++;
			if (k < end)
				break;
		}
		if (store_pg_record_chunk(s, j, j->a + start, end - start, d) <
		    0)
			return -1;
		start = end;
	}
	return store_pg_record_settle(s, j, d);
}

int store_pg_record(struct store *st, const struct store_attempt *a, size_t n,
                    struct diag *d)
{
	const char *what = "recording attempts";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_record_job j = {NULL, a, n, NULL, 0};
	char *ap = NULL, *def = NULL, *sql = NULL;
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		if (!store_pg_result_ok(a[i].result)) {
			diag_add(d, s->shown, 0, 0,
			         "an attempt for delivery %" PRId64
			         " cannot end \"%s\": nothing was recorded",
			         a[i].delivery_id,
			         store_state_name(a[i].result));
			errno = EINVAL;
			return -1;
		}
	if (n == 0)
		return 0;
	if ((ap = store_pg_applied()) == NULL ||
	    (def = store_pg_states(dstate_from(DSTATE_DEFERRED))) == NULL ||
	    (sql = store_pg_record_sql(def, ap)) == NULL ||
	    (j.rel = malloc(n * sizeof(*j.rel))) == NULL) {
		store_pg_oom(s, what, d);
		goto out;
	}
	j.sql = sql;
	rc = store_pg_tx(s, 0, what, store_pg_record_body, &j, d);
out:
	free(j.rel);
	free(sql);
	free(def);
	free(ap);
	return rc < 0 ? -1 : 0;
}

/* ---- giving claims back ------------------------------------------------- */

struct store_pg_ids_job {
	const char *what;
	enum dstate_event ev;
	const char *set, *where;
	const char *ids; /* $1 */
	time_t t;        /* $2, the database's */
	time_t now;      /* $3, the database's */
};

static int store_pg_ids_body(struct store_pg *s, void *arg, struct diag *d)
{
	struct store_pg_ids_job *j = arg;
	struct store_pg_args a;

	store_pg_args_init(&a);
	store_pg_arg_text(&a, j->ids);
	store_pg_arg_int(&a, (int64_t)j->t);
	store_pg_arg_int(&a, (int64_t)j->now);
	return store_pg_run_move(s, j->ev, -1, NULL, j->set, j->where, &a, NULL,
	                         j->what, d);
}

/* Move ids by ev with set ($1 the ids, $2 = t, $3 = now), in one
 * transaction (store_pg_move). */
static int store_pg_each_id(struct store_pg *s, const char *what,
                            enum dstate_event ev, const char *set,
                            const int64_t *ids, size_t n, time_t t,
                            struct diag *d)
{
	struct store_pg_ids_job j = {what, ev, set, "id = ANY($1::bigint[])", NULL,
	                             store_pg_db_time(s, t), store_pg_now(s)};
	char *list;
	int rc;

	if (n == 0)
		return 0;
	if ((list = store_pg_work_ids(ids, n)) == NULL)
		return store_pg_oom(s, what, d);
	j.ids = list;
	rc = store_pg_tx(s, 0, what, store_pg_ids_body, &j, d);
	free(list);
	return rc < 0 ? -1 : 0;
}

int store_pg_unclaim(struct store *st, const int64_t *ids, size_t n,
                     time_t next_at, struct diag *d)
{
	return store_pg_each_id(
	    store_pg_of(st), "giving claimed deliveries back", DSTATE_UNCLAIM,
	    "next_at = $2::bigint, lease_until = NULL, handed_at = NULL,"
	    " updated_at = $3::bigint",
	    ids, n, next_at, d);
}

int store_pg_abandon(struct store *st, const int64_t *ids, size_t n,
                     time_t next_at, struct diag *d)
{
	return store_pg_each_id(
	    store_pg_of(st), "giving back what was on relay connections",
	    DSTATE_ABANDON,
	    "next_at = $2::bigint, lease_until = NULL, handed_at = NULL,"
	    " may_duplicate = $3::bigint, duplicate_why = 'stop',"
	    " updated_at = $3::bigint",
	    ids, n, next_at, d);
}

/* ---- what is due ---------------------------------------------------------- */

int store_pg_next_due(struct store *st, time_t *when, struct diag *d)
{
	const char *what = "finding the next due delivery";
	struct store_pg *s = store_pg_of(st);
	int64_t best = 0;
	PGresult *r;

	/* per active release: its embargo, its earliest waiting delivery and
	 * its earliest lease (due the second after it runs out) */
	if ((r = store_pg_query(s,
	                        "SELECT r.not_before,"
	                        " (SELECT min(next_at) FROM deliveries"
	                        "  WHERE release_id = r.id"
	                        "  AND state IN ('queued', 'deferred')),"
	                        " (SELECT min(lease_until) FROM deliveries"
	                        "  WHERE release_id = r.id AND state = 'sending')"
	                        " FROM releases r WHERE r.state = 'active'",
	                        NULL, what, d)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		int64_t t = store_shared_release_due(
		    store_pg_i64(r, i, 0), !PQgetisnull(r, i, 1),
		    store_pg_i64(r, i, 1), !PQgetisnull(r, i, 2),
		    store_pg_i64(r, i, 2));
		if (t != 0 && (best == 0 || t < best))
			best = t;
	}
	PQclear(r);
	*when = store_pg_node_time(s, (time_t)best);
	return 0;
}

/*
 * A delivery is never queued before its release, so only the deliveries
 * of releases that are old enough ($2: queued before the lifetime's
 * start), or stale ($1: now), are read, not every waiting one. Its
 * lifetime counts from its last retry, if later.
 */
#define STORE_PG_EXPIRING                                                      \
	"release_id IN (SELECT id FROM releases"                               \
	"  WHERE queued_at <= $2::bigint"                                      \
	"  OR (stale_after <> 0 AND stale_after <= $1::bigint))"               \
	" AND (GREATEST(queued_at, retried_at) <= $2::bigint OR release_id IN" \
	"  (SELECT id FROM releases"                                           \
	"   WHERE stale_after <> 0 AND stale_after <= $1::bigint))"

struct store_pg_expire_job {
	char *sql;
	time_t now; /* the database's */
	int64_t cut;
};

static int store_pg_expire_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "expiring deliveries";
	struct store_pg_expire_job *j = arg;
	struct store_pg_args a;
	int64_t changed = 0;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, (int64_t)j->now);
	store_pg_arg_int(&a, j->cut);
	if (store_pg_run(s, j->sql, &a, &changed, what, d) < 0)
		return -1;
	if (changed > 0 && store_pg_settle(s, 0, what, d) < 0)
		return -1;
	return changed > INT_MAX ? INT_MAX : (int)changed;
}

int store_pg_expire(struct store *st, time_t now, unsigned lifetime,
                    struct diag *d)
{
	const char *what = "expiring deliveries";
	struct store_pg *s = store_pg_of(st);
	time_t dbnow = store_pg_db_time(s, now);
	/* lifetime 0: no delivery is too old (only stale_after applies) */
	struct store_pg_expire_job j = {
	    NULL, dbnow, lifetime ? (int64_t)dbnow - lifetime : INT64_MIN};
	int rc;

	/* the move and the delivery log's row saying why each one ended
	 * (as when an attempt finds a delivery too old) in one statement:
	 * a row is logged only if this move took it, not a claim meanwhile */
	if ((j.sql = store_pg_work_move(
	         s, DSTATE_EXPIRE, -1,
	         "lease_until = NULL, updated_at = $1::bigint", STORE_PG_EXPIRING,
	         "WITH m AS (",
	         " RETURNING id, tries)"
	         " INSERT INTO attempts (delivery_id, n, at, text, result,"
	         " counts) SELECT id, tries + 1, $1::bigint, 'expired: its"
	         " lifetime or the release''s stale_after ended before it"
	         " could be delivered', 'expired', 0 FROM m",
	         what, d)) == NULL)
		return -1;
	rc = store_pg_tx(s, 0, what, store_pg_expire_body, &j, d);
	free(j.sql);
	return rc;
}

/* ---- owners and hand-overs ---------------------------------------------- */

struct store_pg_daemon_job {
	const char *host, *control;
	long pid;
	time_t now; /* the database's */
	int64_t id;
};

static int store_pg_daemon_add_body(struct store_pg *s, void *arg,
                                    struct diag *d)
{
	struct store_pg_daemon_job *j = arg;
	struct store_pg_args a;

	store_pg_args_init(&a);
	store_pg_arg_text(&a, j->host);
	store_pg_arg_int(&a, j->pid);
	store_pg_arg_int(&a, (int64_t)j->now);
	store_pg_arg_text(&a, j->control);
	return store_pg_int(s,
	                    "INSERT INTO daemons (host, pid, started, heartbeat,"
	                    " control) VALUES ($1, $2, $3, $3, $4) RETURNING id",
	                    &a, &j->id, "adding this heraldd to the store's daemons",
	                    d);
}

int store_pg_daemon_add(struct store *st, const char *host, long pid,
                        time_t now, const char *control, int64_t *id,
                        struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_daemon_job j = {host, control, pid,
	                                store_pg_db_time(s, now), 0};

	if (store_pg_tx(s, 0, "adding this heraldd to the store's daemons",
	                store_pg_daemon_add_body, &j, d) < 0)
		return -1;
	s->owner = j.id;
	*id = j.id;
	return 0;
}

struct store_pg_beat_job {
	time_t now, lease_until; /* the database's */
	const char *ids;         /* NULL: none */
	bool revived;
};

static int store_pg_beat_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "renewing this heraldd's heartbeat and leases";
	struct store_pg_beat_job *j = arg;
	struct store_pg_args a;

	j->revived = false;
	if (s->owner != 0) {
		PGresult *r;

		/* locked: a node ending this one waits, or is waited for */
		store_pg_args_init(&a);
		store_pg_arg_int(&a, s->owner);
		if ((r = store_pg_query(s,
		                        "SELECT ended FROM daemons WHERE id = $1"
		                        " FOR UPDATE",
		                        &a, what, d)) == NULL)
			return -1;
		/* no row: deleted as ended long ago */
		j->revived = PQntuples(r) == 0 || !PQgetisnull(r, 0, 0);
		PQclear(r);
		store_pg_arg_int(&a, (int64_t)j->now);
		if (store_pg_run(s,
		                 "UPDATE daemons SET heartbeat = $2, ended = NULL"
		                 " WHERE id = $1",
		                 &a, NULL, what, d) < 0)
			return -1;
	}
	if (j->ids == NULL)
		return 0;
	/* only its own: one given back meanwhile may be another's */
	store_pg_args_init(&a);
	store_pg_arg_text(&a, j->ids);
	store_pg_arg_int(&a, (int64_t)j->lease_until);
	store_pg_work_owner(s, &a);
	return store_pg_run(s,
	                    "UPDATE deliveries SET lease_until = $2::bigint"
	                    " WHERE id = ANY($1::bigint[]) AND state = 'sending'"
	                    " AND owner IS NOT DISTINCT FROM $3::bigint",
	                    &a, NULL, what, d);
}

int store_pg_daemon_beat(struct store *st, time_t now, const int64_t *ids,
                         size_t n, time_t lease_until, bool *revived,
                         struct diag *d)
{
	const char *what = "renewing this heraldd's heartbeat and leases";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_beat_job j = {store_pg_db_time(s, now),
	                              store_pg_db_time(s, lease_until), NULL,
	                              false};
	char *list = NULL;
	int rc;

	*revived = false;
	if (n > 0 && (list = store_pg_work_ids(ids, n)) == NULL)
		return store_pg_oom(s, what, d);
	j.ids = list;
	rc = store_pg_tx(s, 0, what, store_pg_beat_body, &j, d);
	free(list);
	if (rc < 0)
		return -1;
	*revived = j.revived;
	return 0;
}

/* A daemons row from columns first.. (id, host, pid, started, heartbeat,
 * ended, control); strings point into r. */
static void store_pg_daemon_row(struct store_pg *s, const PGresult *r, int row,
                                int first, struct store_daemon *dm)
{
	dm->id = store_pg_i64(r, row, first);
	dm->host = store_pg_str(r, row, first + 1);
	dm->pid = (long)store_pg_i64(r, row, first + 2);
	dm->started = store_pg_time(s, r, row, first + 3);
	dm->heartbeat = store_pg_time(s, r, row, first + 4);
	dm->ended = store_pg_time(s, r, row, first + 5);
	dm->control = store_pg_str(r, row, first + 6);
	if (dm->host == NULL)
		dm->host = "";
}

int store_pg_daemons_each(struct store *st,
                          int (*fn)(void *arg, const struct store_daemon *dm),
                          void *arg, struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	PGresult *r = store_pg_query(
	    s,
	    "SELECT id, host, pid, started, heartbeat, ended, control"
	    " FROM daemons ORDER BY id",
	    NULL, "reading the store's daemons", d);
	int ret = 0;

	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_daemon dm;
		int rc;

		store_pg_daemon_row(s, r, i, 0, &dm);
		if ((rc = fn(arg, &dm)) != 0) {
			ret = rc < 0 ? -1 : 0;
			break;
		}
	}
	PQclear(r);
	return ret;
}

struct store_pg_end_job {
	int64_t id;
	time_t now; /* the database's */
	int64_t freed, held;
};

static int store_pg_end_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "giving back the claims of a heraldd that ended";
	struct store_pg_end_job *j = arg;
	struct store_pg_args a;

	j->freed = j->held = 0;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, j->id);
	store_pg_arg_int(&a, (int64_t)j->now);
	if (store_pg_run_move(s, DSTATE_OWNER_END, -1, NULL,
	                      "next_at = $2::bigint, lease_until = NULL,"
	                      " updated_at = $2::bigint",
	                      "owner = $1::bigint AND handed_at IS NULL", &a,
	                      &j->freed, what, d) < 0)
		return -1;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, j->id);
	if (store_pg_int(s,
	                 "SELECT count(*) FROM deliveries"
	                 " WHERE owner = $1 AND state = 'sending'",
	                 &a, &j->held, what, d) < 0)
		return -1;
	store_pg_arg_int(&a, (int64_t)j->now);
	if (store_pg_run(s,
	                 "UPDATE daemons SET ended = coalesce(ended, $2)"
	                 " WHERE id = $1",
	                 &a, NULL, what, d) < 0)
		return -1;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, (int64_t)j->now - store_pg_work_defaults.ended_keep);
	return store_pg_run(s,
	                    "DELETE FROM daemons WHERE ended IS NOT NULL"
	                    " AND ended < $1 AND NOT EXISTS (SELECT 1"
	                    "  FROM deliveries WHERE owner = daemons.id"
	                    "  AND state = 'sending')",
	                    &a, NULL, what, d);
}

int store_pg_daemon_end(struct store *st, int64_t id, time_t now,
                        size_t *freed, size_t *held, struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_end_job j = {id, store_pg_db_time(s, now), 0, 0};

	*freed = *held = 0;
	if (store_pg_tx(s, 0, "giving back the claims of a heraldd that ended",
	                store_pg_end_body, &j, d) < 0)
		return -1;
	*freed = (size_t)j.freed;
	*held = (size_t)j.held;
	return 0;
}

struct store_pg_handover_job {
	const int64_t *ids;
	size_t n;
	const char *list;
	time_t now; /* the database's */
	bool *ok;
};

static int store_pg_handover_body(struct store_pg *s, void *arg,
                                  struct diag *d)
{
	struct store_pg_handover_job *j = arg;
	struct store_pg_args a;
	PGresult *r;

	for (size_t i = 0; i < j->n; i++)
		j->ok[i] = false;
	store_pg_args_init(&a);
	store_pg_arg_text(&a, j->list);
	store_pg_arg_int(&a, (int64_t)j->now);
	store_pg_work_owner(s, &a);
	if ((r = store_pg_query(s,
	                        "UPDATE deliveries SET handed_at = $2::bigint"
	                        " WHERE id = ANY($1::bigint[])"
	                        " AND state = 'sending'"
	                        " AND owner IS NOT DISTINCT FROM $3::bigint"
	                        " AND handed_at IS NULL RETURNING id",
	                        &a, "marking deliveries handed to the relay",
	                        d)) == NULL)
		return -1;
	/* an id given twice is marked once, at its first place */
	for (int k = 0; k < PQntuples(r); k++) {
		int64_t id = store_pg_i64(r, k, 0);
		for (size_t i = 0; i < j->n; i++)
			if (j->ids[i] == id) {
				j->ok[i] = true;
				break;
			}
	}
	PQclear(r);
	return 0;
}

int store_pg_handover(struct store *st, const int64_t *ids, size_t n,
                      time_t now, bool *ok, struct diag *d)
{
	const char *what = "marking deliveries handed to the relay";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_handover_job j = {ids, n, NULL,
	                                  store_pg_db_time(s, now), ok};
	char *list;
	int rc;

	for (size_t i = 0; i < n; i++)
		ok[i] = false;
	if (n == 0)
		return 0;
	if ((list = store_pg_work_ids(ids, n)) == NULL)
		return store_pg_oom(s, what, d);
	j.list = list;
	rc = store_pg_tx(s, 0, what, store_pg_handover_body, &j, d);
	free(list);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			ok[i] = false;
		return -1;
	}
	return 0;
}

/* drop's columns beside the state: given back it is due at $2;
 * cancelled, next_at stays */
#define STORE_PG_DROP_SET                                                      \
	"lease_until = NULL, handed_at = NULL, updated_at = $2::bigint"

struct store_pg_drop_job {
	int64_t release_id;
	const char *list; /* NULL: every claim of the release not handed */
	bool cancel;
	time_t now; /* the database's */
	int64_t dropped;
};

static int store_pg_drop_body(struct store_pg *s, void *arg, struct diag *d)
{
	struct store_pg_drop_job *j = arg;
	struct store_pg_args a;

	j->dropped = 0;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, j->release_id);
	store_pg_arg_int(&a, (int64_t)j->now);
	if (j->list != NULL)
		store_pg_arg_text(&a, j->list);
	return store_pg_run_move(
	    s, j->cancel ? DSTATE_DROP_CANCEL : DSTATE_DROP, -1, NULL,
	    j->cancel ? STORE_PG_DROP_SET
	              : "next_at = $2::bigint, " STORE_PG_DROP_SET,
	    j->list == NULL
	        ? "release_id = $1::bigint AND handed_at IS NULL"
	        : "id = ANY($3::bigint[]) AND release_id = $1::bigint",
	    &a, &j->dropped,
	    "giving back claims of a paused or cancelled release", d);
}

int store_pg_drop(struct store *st, int64_t release_id, const int64_t *ids,
                  size_t n, bool cancel, size_t *dropped, struct diag *d)
{
	const char *what = "giving back claims of a paused or cancelled "
	                   "release";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_drop_job j = {release_id, NULL, cancel, 0, 0};
	char *list = NULL;
	int rc;

	*dropped = 0;
	if (ids != NULL && n == 0)
		return 0;
	if (ids != NULL && (list = store_pg_work_ids(ids, n)) == NULL)
		return store_pg_oom(s, what, d);
	j.list = list;
	j.now = store_pg_now(s);
	rc = store_pg_tx(s, 0, what, store_pg_drop_body, &j, d);
	free(list);
	if (rc < 0)
		return -1;
	*dropped = (size_t)j.dropped;
	return 0;
}

/* holds_each's columns and grouping; its WHERE comes between (a daemon
 * row gone meanwhile: its claims still group by their owner) */
#define STORE_PG_HOLD_COLS                                                     \
	"SELECT m.id, m.host, m.pid, m.started, m.heartbeat, m.ended,"         \
	" m.control, (d.handed_at IS NOT NULL)::int AS handed,"                \
	" min(d.handed_at), max(d.lease_until), count(*)"                      \
	" FROM deliveries d LEFT JOIN daemons m ON m.id = d.owner"
#define STORE_PG_HOLD_GROUP                                                    \
	" GROUP BY d.owner, m.id, handed"                                      \
	" ORDER BY d.owner NULLS FIRST, handed"

int store_pg_holds_each(struct store *st, int64_t release_id,
                        int64_t delivery_id,
                        int (*fn)(void *arg, const struct store_hold *h),
                        void *arg, struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	PGresult *r;
	int ret = 0;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, delivery_id != 0 ? delivery_id : release_id);
	if ((r = store_pg_query(
	         s,
	         delivery_id != 0
	             ? STORE_PG_HOLD_COLS " WHERE d.id = $1 AND d.state = "
	                                  "'sending'" STORE_PG_HOLD_GROUP
	             : STORE_PG_HOLD_COLS " WHERE d.release_id = $1 AND "
	                                  "d.state = 'sending'" STORE_PG_HOLD_GROUP,
	         &a, "reading who holds deliveries", d)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_hold h;
		int rc;

		memset(&h, 0, sizeof(h));
		if (!PQgetisnull(r, i, 0))
			store_pg_daemon_row(s, r, i, 0, &h.owner);
		else
			h.owner.host = "";
		h.handed = store_pg_i64(r, i, 7) != 0;
		h.handed_at = store_pg_time(s, r, i, 8);
		h.lease_until = store_pg_time(s, r, i, 9);
		h.n = (size_t)store_pg_i64(r, i, 10);
		if ((rc = fn(arg, &h)) != 0) {
			ret = rc < 0 ? -1 : 0;
			break;
		}
	}
	PQclear(r);
	return ret;
}

int store_pg_duplicate_get(struct store *st, int64_t id,
                           enum store_duplicate *why, time_t *at,
                           struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	PGresult *r;

	*why = STORE_DUP_NONE;
	*at = 0;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, id);
	if ((r = store_pg_query(s,
	                        "SELECT may_duplicate, duplicate_why"
	                        " FROM deliveries WHERE id = $1",
	                        &a, "reading a delivery's duplicate mark",
	                        d)) == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		const char *w = store_pg_str(r, 0, 1);
		*at = store_pg_time(s, r, 0, 0);
		if (*at != 0 && w != NULL)
			*why = strcmp(w, "stop") == 0 ? STORE_DUP_STOP
			                              : STORE_DUP_LEASE;
	}
	PQclear(r);
	return 0;
}
