/*
 * store_pg_release — the releases of the PostgreSQL store (store.h's
 * contracts; store_sqlite.c is the reference): queueing a release with
 * its snapshot and deliveries, reading it back, pausing, cancelling,
 * retrying and bringing a cancel back, and the figures admins ask for.
 *
 * Queueing is the one bulk write herald makes: a release of 100,000
 * journalists must not take 100,000 round trips to the server. The
 * recipients go in batches, each one INSERT of arrays (text[] in
 * PostgreSQL's binary form: no quoting), and only a batch that does not
 * go in whole (an address twice, a Message-ID already in the store, an
 * address twice under only_new) is done again row by row, to say which
 * recipient it was and to count exactly as the SQLite store does.
 *
 * The admin's writes take STORE_PG_SERIAL. Pause, resume, retry and
 * bringing a cancel back lock the release's row before they read its
 * state, so that a heraldd settling the release (done) meanwhile waits
 * for them instead of being overwritten; cancel changes the deliveries
 * first and the release last, the order in which a recording heraldd
 * locks them, so that the two never wait on each other.
 */
#include "store_pg_int.h"

#include "herald/dstate.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The tunables, each with why. */
static const struct {
	size_t name_max;    /* struct store_release_info.name holds this */
	size_t batch_rows;  /* recipients per INSERT: with a thousand the
	                     * server's own work per row (indexes, the
	                     * foreign key) is most of the time (250 and
	                     * 5,000 measured the same), and a batch redone
	                     * row by row stays short */
	size_t batch_bytes; /* ... or fewer, when their strings add up to
	                     * this: bounds the memory and the statement a
	                     * list of long fields makes */
} store_pg_release_defaults = {
    sizeof(((struct store_release_info *)0)->name) - 1, 1000,
    4 * 1024 * 1024};

/* PostgreSQL's type oid of text, for the element type of a binary
 * text[] (pg_type.h: TEXTOID). */
enum { STORE_PG_TEXTOID = 25 };

/* ---- queueing ------------------------------------------------------------ */

/* The columns of a recipient as the batch keeps them. */
enum store_pg_col {
	STORE_PG_C_EMAIL,
	STORE_PG_C_KEY,
	STORE_PG_C_NAME,
	STORE_PG_C_LANGUAGE,
	STORE_PG_C_OUTLET,
	STORE_PG_C_BEAT,
	STORE_PG_C_REGION,
	STORE_PG_C_TIMEZONE,
	STORE_PG_C_MID,
	STORE_PG_NCOLS
};

/* A recipient waiting in the batch. */
struct store_pg_row {
	const char *v[STORE_PG_NCOLS]; /* in the batch's memory */
	size_t at;                     /* its place in the list, from 0 */
	int64_t seen, cancelled;       /* only_new: deliveries of the name
	                                * the address has, and of them
	                                * cancelled ones */
};

struct store_pg_add {
	const struct store_release_new *rn;
	int (*next)(void *arg, struct store_recipient *r);
	void *arg;
	struct store_release_added *out;
	bool only_new;
	bool began;   /* next was called: a second run cannot start over */
	bool nothing; /* roll back, and the call returns 1 */
	time_t now, due; /* the database's clock */
	int64_t id;
	struct store_pg_row *rows;
	size_t n, bytes;
	struct store_pg_block *mem;
};

static bool store_pg_add_only_new(const struct store_pg_add *x)
{
	return x->only_new && x->out->earlier != 0;
}

static unsigned char *store_pg_put32(unsigned char *p, int64_t v)
{
	uint32_t u = (uint32_t)v;

	p[0] = (unsigned char)(u >> 24);
	p[1] = (unsigned char)(u >> 16);
	p[2] = (unsigned char)(u >> 8);
	p[3] = (unsigned char)u;
	return p + 4;
}

/*
 * Column col of rows[0..n) (those with seen == 0 when fresh_only) as a
 * text[] in PostgreSQL's binary form (array_recv): dimensions, a NULL
 * flag, the element type, the length and lower bound of the one
 * dimension, then each element's length (-1: NULL) and bytes. Malloc'd,
 * or NULL (out of memory, or too long for one parameter).
 */
static unsigned char *store_pg_text_array(const struct store_pg_row *rows,
                                          size_t n, bool fresh_only,
                                          enum store_pg_col col,
                                          size_t *len)
{
	size_t size = 20, count = 0;
	unsigned char *buf, *p;
	bool nulls = false;

	for (size_t i = 0; i < n; i++) {
		if (fresh_only && rows[i].seen > 0)
			continue;
		count++;
		size += 4;
		if (rows[i].v[col] == NULL)
			nulls = true;
		else
			size += strlen(rows[i].v[col]);
	}
	if (size > INT_MAX || (buf = malloc(size)) == NULL)
		return NULL;
	p = store_pg_put32(buf, 1);
	p = store_pg_put32(p, nulls);
	p = store_pg_put32(p, STORE_PG_TEXTOID);
	p = store_pg_put32(p, (int64_t)count);
	p = store_pg_put32(p, 1);
	for (size_t i = 0; i < n; i++) {
		const char *v = rows[i].v[col];
		size_t l;

		if (fresh_only && rows[i].seen > 0)
			continue;
		if (v == NULL) {
			p = store_pg_put32(p, -1);
			continue;
		}
		l = strlen(v);
		p = store_pg_put32(p, (int64_t)l);
		memcpy(p, v, l);
		p += l;
	}
	*len = size;
	return buf;
}

/* Bind columns [from, to) of rows as text[] parameters; arrays[] keeps
 * them until the statement has run. */
static int store_pg_bind_arrays(struct store_pg *s, struct store_pg_args *a,
                                const struct store_pg_row *rows, size_t n,
                                bool fresh_only, enum store_pg_col from,
                                enum store_pg_col to, unsigned char **arrays,
                                const char *what, struct diag *d)
{
	for (int c = from; c < (int)to; c++) {
		size_t len = 0;

		arrays[c] = store_pg_text_array(rows, n, fresh_only,
		                                (enum store_pg_col)c, &len);
		if (arrays[c] == NULL)
			return store_pg_oom(s, what, d);
		store_pg_arg_bytes(a, arrays[c], len);
	}
	return 0;
}

static void store_pg_free_arrays(unsigned char **arrays)
{
	for (int c = 0; c < STORE_PG_NCOLS; c++) {
		free(arrays[c]);
		arrays[c] = NULL;
	}
}

/*
 * only_new: how many deliveries of a release of this name each address
 * of rows[0..n) has (the one being queued included, as far as it has
 * gone), and how many of them are cancelled. deliveries_email finds an
 * address's few deliveries.
 */
static int store_pg_add_seen(struct store_pg *s, struct store_pg_add *x,
                             struct store_pg_row *rows, size_t n,
                             const char *what, struct diag *d)
{
	unsigned char *arrays[STORE_PG_NCOLS] = {NULL};
	struct store_pg_args a;
	PGresult *r;

	for (size_t i = 0; i < n; i++)
		rows[i].seen = rows[i].cancelled = 0;
	if (!store_pg_add_only_new(x))
		return 0;
	store_pg_args_init(&a);
	store_pg_arg_text(&a, x->rn->name);
	if (store_pg_bind_arrays(s, &a, rows, n, false, STORE_PG_C_KEY,
	                         STORE_PG_C_KEY + 1, arrays, what, d) < 0) {
		store_pg_free_arrays(arrays);
		return -1;
	}
	/* per address (LATERAL), by deliveries_email on both its columns:
	 * a join would let a planner with stale statistics (a release just
	 * queued) read every delivery of the name for each batch */
	r = store_pg_query(s,
	                   "SELECT u.ord, c.n, c.cancelled"
	                   " FROM unnest($2::text[]) WITH ORDINALITY"
	                   "  AS u(key, ord)"
	                   " CROSS JOIN LATERAL (SELECT count(*) AS n,"
	                   "  count(*) FILTER (WHERE d.state = 'cancelled')"
	                   "   AS cancelled"
	                   "  FROM deliveries d WHERE d.email_key = u.key"
	                   "  AND d.release_id = ANY (ARRAY(SELECT id"
	                   "   FROM releases WHERE name = $1))) c"
	                   " WHERE c.n > 0",
	                   &a, what, d);
	store_pg_free_arrays(arrays);
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		int64_t ord = store_pg_i64(r, i, 0);

		if (ord < 1 || (size_t)ord > n)
			continue;
		rows[ord - 1].seen = store_pg_i64(r, i, 1);
		rows[ord - 1].cancelled = store_pg_i64(r, i, 2);
	}
	PQclear(r);
	return 0;
}

/*
 * Insert the deliveries of rows[0..n) that have no delivery of the name
 * (seen == 0), in their order, each suppressed when its address is;
 * one that would be a second delivery of its address in the release or
 * reuse a Message-ID is left out (the caller compares *inserted with
 * what it gave). *first: the lowest id inserted (ids grow in this
 * session, so every id the batch took is >= it).
 */
static int store_pg_add_insert(struct store_pg *s, struct store_pg_add *x,
                               const struct store_pg_row *rows, size_t n,
                               int64_t *inserted, int64_t *first,
                               const char *what, struct diag *d)
{
	unsigned char *arrays[STORE_PG_NCOLS] = {NULL};
	struct store_pg_args a;
	PGresult *r;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, x->id);
	store_pg_arg_int(&a, (int64_t)x->now);
	store_pg_arg_int(&a, (int64_t)x->due);
	if (store_pg_bind_arrays(s, &a, rows, n, true, STORE_PG_C_EMAIL,
	                         STORE_PG_NCOLS, arrays, what, d) < 0) {
		store_pg_free_arrays(arrays);
		return -1;
	}
	r = store_pg_query(
	    s,
	    "WITH ins AS (INSERT INTO deliveries (release_id, email,"
	    " email_key, name, language, outlet, beat, region, timezone,"
	    " message_id, state, queued_at, next_at, updated_at)"
	    " SELECT $1::bigint, u.email, u.key, u.name, u.language,"
	    " u.outlet, u.beat, u.region, u.timezone, u.mid,"
	    " CASE WHEN EXISTS (SELECT 1 FROM suppressions"
	    "  WHERE email = u.key) THEN 'suppressed' ELSE 'queued' END,"
	    " $2::bigint, $3::bigint, $2::bigint"
	    " FROM unnest($4::text[], $5::text[], $6::text[], $7::text[],"
	    "  $8::text[], $9::text[], $10::text[], $11::text[],"
	    "  $12::text[]) WITH ORDINALITY AS u(email, key, name, language,"
	    "  outlet, beat, region, timezone, mid, ord)"
	    " ORDER BY u.ord"
	    " ON CONFLICT DO NOTHING RETURNING id)"
	    " SELECT count(*), coalesce(min(id), 0) FROM ins",
	    &a, what, d);
	store_pg_free_arrays(arrays);
	if (r == NULL)
		return -1;
	*inserted = store_pg_i64(r, 0, 0);
	*first = store_pg_i64(r, 0, 1);
	PQclear(r);
	return 0;
}

/* Why row did not go in: its Message-ID is in the store, or its address
 * is in the list twice. -1 always. */
static int store_pg_add_refused(struct store_pg *s,
                                const struct store_pg_row *row,
                                const char *what, struct diag *d)
{
	struct store_pg_args a;
	int64_t has = 0;

	store_pg_args_init(&a);
	store_pg_arg_text(&a, row->v[STORE_PG_C_MID]);
	if (store_pg_int(s,
	                 "SELECT count(*) FROM deliveries WHERE message_id = $1",
	                 &a, &has, what, d) < 0)
		return -1;
	if (has > 0)
		diag_add(d, s->shown, 0, 0,
		         "recipient %zu (%s): the Message-ID <%s> is already "
		         "in the store: nothing was queued",
		         row->at + 1, row->v[STORE_PG_C_EMAIL],
		         row->v[STORE_PG_C_MID]);
	else
		diag_add(d, s->shown, 0, 0,
		         "recipient %zu: %s is in the list twice: nothing was "
		         "queued",
		         row->at + 1, row->v[STORE_PG_C_EMAIL]);
	errno = EINVAL;
	return -1;
}

/* The batch one recipient at a time, as the SQLite store queues them:
 * each sees the ones before it. */
static int store_pg_add_slowly(struct store_pg *s, struct store_pg_add *x,
                               const char *what, struct diag *d)
{
	for (size_t i = 0; i < x->n; i++) {
		struct store_pg_row *row = &x->rows[i];
		int64_t inserted = 0, first = 0;

		if (store_pg_add_seen(s, x, row, 1, what, d) < 0)
			return -1;
		if (row->seen > 0) {
			x->out->skipped++;
			x->out->skipped_cancelled += row->cancelled == row->seen;
			continue;
		}
		if (store_pg_add_insert(s, x, row, 1, &inserted, &first, what,
		                        d) < 0)
			return -1;
		if (inserted == 0)
			return store_pg_add_refused(s, row, what, d);
		x->out->queued++;
	}
	return 0;
}

/* Queue the recipients waiting in the batch, and empty it. */
static int store_pg_add_flush(struct store_pg *s, struct store_pg_add *x,
                              const char *what, struct diag *d)
{
	size_t skipped = 0, skipped_cancelled = 0, fresh;
	int64_t inserted = 0, first = 0;
	struct store_pg_args a;
	int rc = -1;

	if (x->n == 0)
		return 0;
	if (store_pg_add_seen(s, x, x->rows, x->n, what, d) < 0)
		goto out;
	for (size_t i = 0; i < x->n; i++)
		if (x->rows[i].seen > 0) {
			skipped++;
			skipped_cancelled +=
			    x->rows[i].cancelled == x->rows[i].seen;
		}
	fresh = x->n - skipped;
	if (fresh > 0 && store_pg_add_insert(s, x, x->rows, x->n, &inserted,
	                                     &first, what, d) < 0)
		goto out;
	if ((size_t)inserted == fresh) {
		x->out->queued += fresh;
		x->out->skipped += skipped;
		x->out->skipped_cancelled += skipped_cancelled;
		rc = 0;
		goto out;
	}
	/* something did not go in: take the batch out again and say which
	 * one it was (or, under only_new, skip an address the batch holds
	 * twice, as one at a time would) */
	if (inserted > 0) {
		store_pg_args_init(&a);
		store_pg_arg_int(&a, x->id);
		store_pg_arg_int(&a, first);
		if (store_pg_run(s,
		                 "DELETE FROM deliveries"
		                 " WHERE release_id = $1 AND id >= $2",
		                 &a, NULL, what, d) < 0)
			goto out;
	}
	rc = store_pg_add_slowly(s, x, what, d);
out:
	x->n = 0;
	x->bytes = 0;
	store_pg_blocks_free(&x->mem);
	return rc;
}

/* Keep recipient r (number at in the list) in the batch, and queue the
 * batch when it is full. */
static int store_pg_add_keep(struct store_pg *s, struct store_pg_add *x,
                             const struct store_recipient *r, size_t at,
                             const char *what, struct diag *d)
{
	const char *src[STORE_PG_NCOLS];
	struct store_pg_row *row = &x->rows[x->n];

	src[STORE_PG_C_EMAIL] = r->email;
	if ((src[STORE_PG_C_KEY] = store_pg_key(s, r->email)) == NULL)
		return store_pg_oom(s, what, d);
	src[STORE_PG_C_NAME] = r->name;
	src[STORE_PG_C_LANGUAGE] = r->language;
	src[STORE_PG_C_OUTLET] = r->outlet;
	src[STORE_PG_C_BEAT] = r->beat;
	src[STORE_PG_C_REGION] = r->region;
	src[STORE_PG_C_TIMEZONE] = r->timezone;
	src[STORE_PG_C_MID] = r->message_id;
	for (int c = 0; c < STORE_PG_NCOLS; c++) {
		if (store_pg_dup(&x->mem, src[c], &row->v[c]) < 0)
			return store_pg_oom(s, what, d);
		if (src[c] != NULL)
			x->bytes += strlen(src[c]);
	}
	row->at = at;
	row->seen = row->cancelled = 0;
	x->n++;
	if (x->n == store_pg_release_defaults.batch_rows ||
	    x->bytes >= store_pg_release_defaults.batch_bytes)
		return store_pg_add_flush(s, x, what, d);
	return 0;
}

/* The release's row and its snapshot files. */
static int store_pg_add_release(struct store_pg *s, struct store_pg_add *x,
                                const char *what, struct diag *d)
{
	const struct store_release_new *rn = x->rn;
	struct store_pg_args a;

	store_pg_args_init(&a);
	store_pg_arg_text(&a, rn->name);
	store_pg_arg_text(&a, rn->source ? rn->source : "");
	store_pg_arg_text(&a, rn->release_dir ? rn->release_dir : "");
	store_pg_arg_text(&a, rn->coalition ? rn->coalition : "");
	store_pg_arg_int(&a, (int64_t)x->now);
	store_pg_arg_time(s, &a, rn->not_before);
	store_pg_arg_time(s, &a, rn->stale_after);
	if (store_pg_int(s,
	                 "INSERT INTO releases (name, source, release_dir,"
	                 " coalition, state, queued_at, not_before,"
	                 " stale_after)"
	                 " VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)"
	                 " RETURNING id",
	                 &a, &x->id, what, d) < 0)
		return -1;
	for (size_t k = 0; k < rn->nfiles; k++) {
		const struct store_file *f = &rn->files[k];
		int64_t changed = 0;

		if (f->path == NULL) {
			diag_add(d, s->shown, 0, 0,
			         "snapshot file %zu has no path: nothing was "
			         "queued",
			         k + 1);
			errno = EINVAL;
			return -1;
		}
		store_pg_args_init(&a);
		store_pg_arg_int(&a, x->id);
		store_pg_arg_text(&a, f->path);
		store_pg_arg_bytes(&a, f->data, f->len);
		if (store_pg_run(s,
		                 "INSERT INTO release_files (release_id, path,"
		                 " data) VALUES ($1, $2, $3)"
		                 " ON CONFLICT DO NOTHING",
		                 &a, &changed, "storing the release's files",
		                 d) < 0)
			return -1;
		if (changed == 0) {
			diag_add(d, s->shown, 0, 0,
			         "the snapshot holds %s twice: nothing was "
			         "queued",
			         f->path);
			errno = EINVAL;
			return -1;
		}
	}
	return 0;
}

/* The recipients, read from next and queued in batches. */
static int store_pg_add_recipients(struct store_pg *s, struct store_pg_add *x,
                                   const char *what, struct diag *d)
{
	struct store_recipient rv;
	size_t i;
	int got;

	for (i = 0; (got = x->next(x->arg, &rv)) == 1; i++) {
		x->began = true;
		if (rv.email == NULL || rv.message_id == NULL) {
			/* a fault before it in the list is told first */
			if (store_pg_add_flush(s, x, what, d) < 0)
				return -1;
			diag_add(d, s->shown, 0, 0,
			         "recipient %zu has no %s: nothing was queued",
			         i + 1,
			         rv.email == NULL ? "address" : "Message-ID");
			errno = EINVAL;
			return -1;
		}
		if (store_pg_add_keep(s, x, &rv, i, what, d) < 0)
			return -1;
	}
	x->began = true;
	if (got < 0)
		return -1; /* next said why */
	return store_pg_add_flush(s, x, what, d);
}

static int store_pg_add_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "queueing the release";
	struct store_pg_add *x = arg;
	struct store_release_added *out = x->out;
	struct store_pg_args a;
	int64_t n = 0;

	if (x->began) {
		/* the recipients cannot be read a second time */
		diag_add(d, s->shown, 0, 0,
		         "the store was busy while %s: nothing was queued; "
		         "queue the release again",
		         what);
		errno = EBUSY;
		return -1;
	}
	memset(out, 0, sizeof(*out));
	out->only_new = x->only_new;
	x->nothing = false;
	x->n = x->bytes = 0;
	store_pg_blocks_free(&x->mem);

	/* a name queued before: refused, or only its new addresses */
	store_pg_args_init(&a);
	store_pg_arg_text(&a, x->rn->name);
	if (store_pg_int(s, "SELECT max(id) FROM releases WHERE name = $1", &a,
	                 &out->earlier, what, d) < 0)
		return -1;
	if (out->earlier != 0 && !x->only_new) {
		x->nothing = true;
		return -1;
	}
	if (store_pg_add_release(s, x, what, d) < 0 ||
	    store_pg_add_recipients(s, x, what, d) < 0)
		return -1;
	if (out->queued == 0 && out->skipped > 0) {
		/* every address has had the release */
		x->nothing = true;
		return -1;
	}
	store_pg_args_init(&a);
	store_pg_arg_int(&a, x->id);
	if (store_pg_int(s,
	                 "SELECT count(*) FROM deliveries"
	                 " WHERE release_id = $1 AND state = 'suppressed'",
	                 &a, &n, what, d) < 0)
		return -1;
	out->suppressed = (size_t)n;
	/* every address suppressed, or none: nothing is left to send */
	if (store_pg_settle(s, x->id, what, d) < 0)
		return -1;
	out->release_id = x->id;
	return 0;
}

int store_pg_release_add_each(struct store *st,
                              const struct store_release_new *rn,
                              int (*next)(void *arg, struct store_recipient *r),
                              void *arg, struct store_release_added *out,
                              struct diag *d)
{
	const char *what = "queueing the release";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_add x;
	time_t not_before;
	int rc;

	memset(&x, 0, sizeof(x));
	x.rn = rn;
	x.next = next;
	x.arg = arg;
	x.out = out;
	x.only_new = out->only_new;
	memset(out, 0, sizeof(*out));
	out->only_new = x.only_new;
	if (rn->name == NULL || *rn->name == '\0' ||
	    strlen(rn->name) > store_pg_release_defaults.name_max) {
		diag_add(d, s->shown, 0, 0,
		         "a release name must be 1 to %zu bytes long",
		         store_pg_release_defaults.name_max);
		errno = EINVAL;
		return -1;
	}
	x.now = store_pg_now(s);
	not_before = store_pg_db_time(s, rn->not_before);
	x.due = not_before > x.now ? not_before : x.now;
	x.rows = calloc(store_pg_release_defaults.batch_rows, sizeof(*x.rows));
	if (x.rows == NULL)
		return store_pg_oom(s, what, d);
	rc = store_pg_tx(s, STORE_PG_SERIAL, what, store_pg_add_body, &x, d);
	store_pg_blocks_free(&x.mem);
	free(x.rows);
	if (rc < 0 && x.nothing) {
		/* rolled back on purpose: nothing of the name was queued */
		out->queued = 0;
		out->release_id = 0;
		return 1;
	}
	return rc < 0 ? -1 : 0;
}

/* ---- reading releases ------------------------------------------------------ */

int store_pg_release_files(struct store *st, int64_t release_id,
                           int (*fn)(void *arg, const struct store_file *f),
                           void *arg, struct diag *d)
{
	const char *what = "reading the release's files";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	int64_t has = 0;
	PGresult *r;
	int ret = 0;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, release_id);
	if (store_pg_int(s, "SELECT count(*) FROM releases WHERE id = $1", &a,
	                 &has, what, d) < 0)
		return -1;
	if (has == 0)
		return store_pg_no_release(s, release_id, d);
	/* binary: the files' bytes as they are (libpq ends each value with
	 * a NUL, so path reads as a string) */
	if ((r = store_pg_query_bin(s,
	                            "SELECT path, data FROM release_files"
	                            " WHERE release_id = $1 ORDER BY id",
	                            &a, what, d)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_file f;
		int rc;

		f.path = PQgetvalue(r, i, 0);
		f.data = PQgetvalue(r, i, 1);
		f.len = (size_t)PQgetlength(r, i, 1);
		if ((rc = fn(arg, &f)) != 0) {
			ret = rc > 0 ? 0 : -1;
			break;
		}
	}
	PQclear(r);
	return ret;
}

int store_pg_release_get(struct store *st, int64_t release_id,
                         struct store_release_info *info, char *release_dir,
                         size_t rdsize, char *coalition, size_t csize,
                         struct diag *d)
{
	const char *what = "reading a release";
	struct store_pg *s = store_pg_of(st);
	struct store_release_info tmp;
	struct store_pg_args a;
	const char *rd, *co;
	PGresult *r;
	int ret = -1;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, release_id);
	if ((r = store_pg_query(s,
	                        "SELECT " STORE_PG_RELEASE_COLS
	                        ", release_dir, coalition"
	                        " FROM releases WHERE id = $1",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		store_pg_no_release(s, release_id, d);
		goto out;
	}
	if (store_pg_release(s, r, 0, info ? info : &tmp, what, d) < 0)
		goto out;
	rd = store_pg_str(r, 0, 7);
	co = store_pg_str(r, 0, 8);
	if (store_shared_copy_out(s->shown, "snapshot directory", rd ? rd : "",
	                      release_dir, rdsize, d) < 0 ||
	    store_shared_copy_out(s->shown, "coalition list", co ? co : "", coalition,
	                      csize, d) < 0)
		goto out;
	ret = 0;
out:
	PQclear(r);
	return ret;
}

int store_pg_releases_each(struct store *st, int64_t release_id,
                           int (*fn)(void *arg,
                                     const struct store_release_info *r),
                           void *arg, struct diag *d)
{
	const char *what = "listing releases";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	PGresult *r;
	int ret = 0;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, release_id);
	if ((r = store_pg_query(s,
	                        "SELECT " STORE_PG_RELEASE_COLS
	                        " FROM releases"
	                        " WHERE $1::bigint = 0 OR id = $1"
	                        " ORDER BY id DESC",
	                        &a, what, d)) == NULL)
		return -1;
	if (release_id != 0 && PQntuples(r) == 0) {
		PQclear(r);
		return store_pg_no_release(s, release_id, d);
	}
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_release_info info;
		int rc;

		if (store_pg_release(s, r, i, &info, what, d) < 0) {
			ret = -1;
			break;
		}
		if ((rc = fn(arg, &info)) != 0) {
			ret = rc > 0 ? 0 : -1;
			break;
		}
	}
	PQclear(r);
	return ret;
}

int store_pg_release_find(struct store *st, const char *id_or_name,
                          int64_t *release_id, struct diag *d)
{
	const char *what = "finding a release";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	int64_t id, found = 0;

	if (id_or_name == NULL || *id_or_name == '\0') {
		diag_add(d, s->shown, 0, 0, "no release named");
		errno = EINVAL;
		return -1;
	}
	if (store_shared_parse_id(id_or_name, &id)) {
		store_pg_args_init(&a);
		store_pg_arg_int(&a, id);
		if (store_pg_int(s, "SELECT id FROM releases WHERE id = $1", &a,
		                 &found, what, d) < 0)
			return -1;
		if (found != 0) {
			*release_id = found;
			return 0;
		}
	}
	store_pg_args_init(&a);
	store_pg_arg_text(&a, id_or_name);
	if (store_pg_int(s,
	                 "SELECT id FROM releases WHERE name = $1"
	                 " ORDER BY id DESC LIMIT 1",
	                 &a, &found, what, d) < 0)
		return -1;
	if (found != 0) {
		*release_id = found;
		return 0;
	}
	diag_add(d, s->shown, 0, 0,
	         "there is no release \"%s\" in the store (`herald status` "
	         "lists them)",
	         id_or_name);
	errno = ENOENT;
	return -1;
}

/* ---- the admin's writes -------------------------------------------------- */

/*
 * The release's state, inside the caller's transaction, its row locked
 * until the transaction ends: a heraldd that would mark it done
 * meanwhile (store_pg_settle) waits, and then sees what this
 * transaction made of it.
 */
static int store_pg_release_state(struct store_pg *s, int64_t release_id,
                                  enum store_release_state *rs,
                                  const char *what, struct diag *d)
{
	struct store_pg_args a;
	const char *name;
	PGresult *r;
	int ret = -1;

	store_pg_args_init(&a);
	store_pg_arg_int(&a, release_id);
	if ((r = store_pg_query(s,
	                        "SELECT state FROM releases WHERE id = $1"
	                        " FOR UPDATE",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		store_pg_no_release(s, release_id, d);
		goto out;
	}
	name = store_pg_str(r, 0, 0);
	if (store_release_state_parse(name, rs) < 0) {
		store_pg_bad_value(s, what, "release state", name, d);
		goto out;
	}
	ret = 0;
out:
	PQclear(r);
	return ret;
}

struct store_pg_cancel_arg {
	int64_t release_id;
	time_t now; /* the database's */
	size_t n;
};

/*
 * Cancel a release and what of it has not gone out. The deliveries
 * first, then the release: a heraldd recording results locks
 * deliveries and then settles their release, and taking the rows in
 * the same order keeps the two from waiting on each other (a
 * deadlock, which PostgreSQL breaks by failing one of them).
 */
static int store_pg_cancel_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "cancelling the release";
	struct store_pg_cancel_arg *c = arg;
	struct store_pg_args a;
	int64_t changed = 0, found = 0;

	c->n = 0;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, c->release_id);
	store_pg_arg_int(&a, (int64_t)c->now);
	if (store_pg_run_move(s, DSTATE_CANCEL, -1, NULL,
	                      "lease_until = NULL, updated_at = $2",
	                      "release_id = $1", &a, &changed, what, d) < 0)
		return -1;
	store_pg_args_init(&a);
	store_pg_arg_int(&a, c->release_id);
	if (store_pg_run(s,
	                 "UPDATE releases SET state = 'cancelled'"
	                 " WHERE id = $1",
	                 &a, &found, what, d) < 0)
		return -1;
	if (found == 0)
		return store_pg_no_release(s, c->release_id, d);
	c->n = (size_t)changed;
	return 0;
}

int store_pg_cancel(struct store *st, int64_t release_id, size_t *n,
                    struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_cancel_arg c = {release_id, store_pg_now(s), 0};

	if (store_pg_tx(s, STORE_PG_SERIAL, "cancelling the release",
	                store_pg_cancel_body, &c, d) < 0)
		return -1;
	if (n != NULL)
		*n = c.n;
	return 0;
}

struct store_pg_set_arg {
	int64_t release_id;
	enum store_release_state state;
};

static int store_pg_set_state_body(struct store_pg *s, void *arg,
                                   struct diag *d)
{
	const char *what = "changing the release's state";
	struct store_pg_set_arg *x = arg;
	enum store_release_state cur;
	struct store_pg_args a;

	if (store_pg_release_state(s, x->release_id, &cur, what, d) < 0)
		return -1;
	if (cur == STORE_RELEASE_CANCELLED) {
		diag_add(d, s->shown, 0, 0,
		         "release %" PRId64 " is cancelled: herald resume "
		         "%" PRId64 " brings its deliveries back",
		         x->release_id, x->release_id);
		errno = EINVAL;
		return -1;
	}
	if (cur == STORE_RELEASE_DONE) {
		diag_add(d, s->shown, 0, 0,
		         "release %" PRId64 " is done: nothing of it is left "
		         "to send (herald retry --failed sends its failed "
		         "deliveries again)",
		         x->release_id);
		errno = EINVAL;
		return -1;
	}
	store_pg_args_init(&a);
	store_pg_arg_int(&a, x->release_id);
	store_pg_arg_text(&a, store_release_state_name(x->state));
	if (store_pg_run(s, "UPDATE releases SET state = $2 WHERE id = $1", &a,
	                 NULL, what, d) < 0)
		return -1;
	/* resumed with nothing left: done */
	return store_pg_settle(s, x->release_id, what, d);
}

int store_pg_release_set_state(struct store *st, int64_t release_id,
                               enum store_release_state state,
                               struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_set_arg x = {release_id, state};

	if ((unsigned)state > STORE_RELEASE_CANCELLED) {
		diag_add(d, s->shown, 0, 0,
		         "a release cannot be set %s: it is done when nothing "
		         "of it is left",
		         store_release_state_name(state));
		errno = EINVAL;
		return -1;
	}
	if (state == STORE_RELEASE_CANCELLED)
		return store_pg_cancel(st, release_id, NULL, d);
	return store_pg_tx(s, STORE_PG_SERIAL, "changing the release's state",
	                   store_pg_set_state_body, &x, d) < 0
	           ? -1
	           : 0;
}

struct store_pg_retry_arg {
	int64_t release_id;
	bool failed, deferred;
	time_t now; /* the database's */
	size_t n;
};

static int store_pg_retry_body(struct store_pg *s, void *arg, struct diag *d)
{
	const char *what = "retrying deliveries";
	struct store_pg_retry_arg *x = arg;
	enum store_release_state rs;
	struct store_pg_args a;
	int64_t changed = 0;

	x->n = 0;
	if (store_pg_release_state(s, x->release_id, &rs, what, d) < 0)
		return -1;
	if (rs == STORE_RELEASE_CANCELLED) {
		diag_add(d, s->shown, 0, 0,
		         "release %" PRId64 " is cancelled: nothing is "
		         "retried (herald resume %" PRId64 " brings its "
		         "deliveries back)",
		         x->release_id, x->release_id);
		errno = EINVAL;
		return -1;
	}
	/* a state not asked for is NULL, which matches nothing; queued_at
	 * stays when it was queued, and the lifetime counts from now */
	store_pg_args_init(&a);
	store_pg_arg_int(&a, x->release_id);
	store_pg_arg_text(&a, x->failed ? "failed" : NULL);
	store_pg_arg_text(&a, x->deferred ? "deferred" : NULL);
	store_pg_arg_int(&a, (int64_t)x->now);
	if (store_pg_run_move(s, DSTATE_RETRY, -1, NULL,
	                      "next_at = $4, retried_at = $4,"
	                      " lease_until = NULL, updated_at = $4",
	                      "release_id = $1 AND state IN ($2::text, $3::text)"
	                      " AND NOT EXISTS (SELECT 1 FROM suppressions"
	                      "  WHERE email = deliveries.email_key)",
	                      &a, &changed, what, d) < 0)
		return -1;
	x->n = (size_t)changed;
	if (changed == 0)
		return 0;
	/* something is due again: a done release is active again */
	store_pg_args_init(&a);
	store_pg_arg_int(&a, x->release_id);
	return store_pg_run(s,
	                    "UPDATE releases SET state = 'active'"
	                    " WHERE id = $1 AND state = 'done'",
	                    &a, NULL, what, d);
}

int store_pg_retry(struct store *st, int64_t release_id, bool failed,
                   bool deferred, size_t *n, struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_retry_arg x = {release_id, failed, deferred,
	                               store_pg_now(s), 0};

	if (n != NULL)
		*n = 0;
	if (store_pg_tx(s, STORE_PG_SERIAL, "retrying deliveries",
	                store_pg_retry_body, &x, d) < 0)
		return -1;
	if (n != NULL)
		*n = x.n;
	return 0;
}

struct store_pg_uncancel_arg {
	int64_t release_id;
	time_t now; /* the database's */
	size_t n, suppressed;
};

/* A cancelled release back to active, its cancelled deliveries due now:
 * to suppressed first where the address was suppressed meanwhile, then
 * the rest to queued (deferred when tried before, as unclaim does). */
static int store_pg_uncancel_body(struct store_pg *s, void *arg,
                                  struct diag *d)
{
	const char *what = "bringing the cancelled release back";
	struct store_pg_uncancel_arg *x = arg;
	enum store_release_state cur;
	struct store_pg_args a;
	int64_t sup = 0, back = 0;

	x->n = x->suppressed = 0;
	if (store_pg_release_state(s, x->release_id, &cur, what, d) < 0)
		return -1;
	if (cur != STORE_RELEASE_CANCELLED) {
		diag_add(d, s->shown, 0, 0,
		         "release %" PRId64 " is %s, not cancelled",
		         x->release_id, store_release_state_name(cur));
		errno = EINVAL;
		return -1;
	}
	store_pg_args_init(&a);
	store_pg_arg_int(&a, x->release_id);
	if (store_pg_run(s,
	                 "UPDATE releases SET state = 'active' WHERE id = $1",
	                 &a, NULL, what, d) < 0)
		return -1;
	store_pg_arg_int(&a, (int64_t)x->now);
	/* dstate_next's three targets as two statements: the ones whose
	 * address was suppressed meanwhile (the state alone, as dstate.c
	 * says), */
	if (store_pg_run_move(s, DSTATE_UNCANCEL, -1, "'suppressed'",
	                      "updated_at = $2",
	                      "release_id = $1 AND EXISTS (SELECT 1"
	                      " FROM suppressions"
	                      "  WHERE email = deliveries.email_key)",
	                      &a, &sup, what, d) < 0)
		return -1;
	/* then the rest, deferred when tried */
	if (store_pg_run_move(
	        s, DSTATE_UNCANCEL, -1,
	        "CASE WHEN tries > 0 THEN 'deferred' ELSE 'queued' END",
	        "next_at = $2, lease_until = NULL, updated_at = $2",
	        "release_id = $1", &a, &back, what, d) < 0)
		return -1;
	x->suppressed = (size_t)sup;
	x->n = (size_t)back;
	/* nothing cancelled left to bring back: the release is done */
	return store_pg_settle(s, x->release_id, what, d);
}

int store_pg_release_uncancel(struct store *st, int64_t release_id, size_t *n,
                              size_t *suppressed, struct diag *d)
{
	struct store_pg *s = store_pg_of(st);
	struct store_pg_uncancel_arg x = {release_id, store_pg_now(s), 0, 0};

	*n = *suppressed = 0;
	if (store_pg_tx(s, STORE_PG_SERIAL,
	                "bringing the cancelled release back",
	                store_pg_uncancel_body, &x, d) < 0)
		return -1;
	*n = x.n;
	*suppressed = x.suppressed;
	return 0;
}

/* ---- figures ---------------------------------------------------------------- */

int store_pg_release_figures(struct store *st, int64_t release_id,
                             struct store_release_figures *out,
                             struct diag *d)
{
	const char *what = "reading a release's figures";
	struct store_pg *s = store_pg_of(st);
	struct store_pg_args a;
	PGresult *r;

	memset(out, 0, sizeof(*out));
	/* an expiry row (no relay) records no try */
	store_pg_args_init(&a);
	store_pg_arg_int(&a, release_id);
	store_pg_arg_int(&a, (int64_t)store_pg_now(s) - STORE_RATE_WINDOW);
	if ((r = store_pg_query(s,
	                        "SELECT min(a.at), max(a.at),"
	                        " count(*) FILTER (WHERE a.result = 'sent'"
	                        "  AND a.at > $2)"
	                        " FROM deliveries d"
	                        " JOIN attempts a ON a.delivery_id = d.id"
	                        " WHERE d.release_id = $1"
	                        " AND (a.relay IS NOT NULL"
	                        "  OR a.result <> 'expired')",
	                        &a, what, d)) == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		out->first_attempt = store_pg_time(s, r, 0, 0);
		out->last_attempt = store_pg_time(s, r, 0, 1);
		out->sent_recent = (size_t)store_pg_i64(r, 0, 2);
	}
	PQclear(r);
	store_pg_args_init(&a);
	store_pg_arg_int(&a, release_id);
	if ((r = store_pg_query(s,
	                        "SELECT e.kind, count(DISTINCT e.delivery_id)"
	                        " FROM events e"
	                        " JOIN deliveries d ON d.id = e.delivery_id"
	                        " WHERE d.release_id = $1"
	                        " AND e.kind IN ('complaint', 'unsubscribe')"
	                        " AND e.matched_by IS DISTINCT FROM 'mismatch'"
	                        " AND e.held IS NULL"
	                        " GROUP BY e.kind",
	                        &a, what, d)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *kind = store_pg_str(r, i, 0);
		size_t n = (size_t)store_pg_i64(r, i, 1);

		if (kind != NULL && strcmp(kind, "complaint") == 0)
			out->complaints = n;
		else
			out->unsubscribes = n;
	}
	PQclear(r);
	return 0;
}
