/*
 * store — the interface to herald's durable state (see store.h): the names
 * of delivery and release states as the store, the log and the CLI spell
 * them, the choice of backend for a store path, and one forward per
 * operation to the handle's backend, so that callers name the operation
 * (store_claim) and never the backend. The backends (store_sqlite.c, and
 * store_pg*.c for PostgreSQL) hold everything else.
 */
#include "herald/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by enum store_state: the words admins read in `herald status`
 * and `herald log`, and the values the SQLite store keeps on disk (so
 * renaming one is a schema migration). */
static const char *const store_state_names[STORE_NSTATES] = {
    [STORE_QUEUED] = "queued",
    [STORE_SENDING] = "sending",
    [STORE_SENT] = "sent",
    [STORE_DEFERRED] = "deferred",
    [STORE_FAILED] = "failed",
    [STORE_BOUNCED] = "bounced",
    [STORE_COMPLAINED] = "complained",
    [STORE_EXPIRED] = "expired",
    [STORE_SUPPRESSED] = "suppressed",
    [STORE_CANCELLED] = "cancelled",
};

static const char *const store_release_state_names[] = {
    [STORE_RELEASE_ACTIVE] = "active",
    [STORE_RELEASE_PAUSED] = "paused",
    [STORE_RELEASE_CANCELLED] = "cancelled",
    [STORE_RELEASE_DONE] = "done",
};
#define STORE_NRELEASE_STATES                                                  \
	(sizeof(store_release_state_names) /                                   \
	 sizeof(store_release_state_names[0]))

/* Indexed by enum store_log_result: the words of `herald log`'s result
 * column and of its --state. */
static const char *const store_log_result_names[STORE_LOG_NRESULTS] = {
    [STORE_LOG_SENT] = "sent",
    [STORE_LOG_DEFERRED] = "deferred",
    [STORE_LOG_FAILED] = "failed",
    [STORE_LOG_EXPIRED] = "expired",
    [STORE_LOG_BOUNCED] = "bounced",
    [STORE_LOG_COMPLAINED] = "complained",
    [STORE_LOG_UNSUBSCRIBED] = "unsubscribed",
    [STORE_LOG_SUPPRESSED] = "suppressed",
};

/* The index of name in names[n], or -1. */
static int store_name_index(const char *const *names, unsigned n,
                            const char *name)
{
	for (unsigned i = 0; name != NULL && i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}

const char *store_state_name(enum store_state s)
{
	if ((unsigned)s >= STORE_NSTATES)
		return "unknown";
	return store_state_names[s];
}

int store_state_parse(const char *name, enum store_state *out)
{
	int i = store_name_index(store_state_names, STORE_NSTATES, name);

	if (i < 0)
		return -1;
	*out = (enum store_state)i;
	return 0;
}

const char *store_release_state_name(enum store_release_state s)
{
	if ((unsigned)s >= STORE_NRELEASE_STATES)
		return "unknown";
	return store_release_state_names[s];
}

int store_release_state_parse(const char *name, enum store_release_state *out)
{
	int i = store_name_index(store_release_state_names,
	                         STORE_NRELEASE_STATES, name);

	if (i < 0)
		return -1;
	*out = (enum store_release_state)i;
	return 0;
}

const char *store_log_result_name(enum store_log_result r)
{
	if ((unsigned)r >= STORE_LOG_NRESULTS)
		return "unknown";
	return store_log_result_names[r];
}

int store_log_result_parse(const char *name, enum store_log_result *out)
{
	int i = store_name_index(store_log_result_names, STORE_LOG_NRESULTS,
	                         name);

	if (i < 0)
		return -1;
	*out = (enum store_log_result)i;
	return 0;
}

const struct store_backend *store_backend_for(const char *path)
{
	if (path == NULL || *path == '\0')
		return NULL;
	if (store_pg_is_address(path))
		return &store_pg_backend;
	return &store_sqlite_backend;
}

char *store_control_for(const char *store)
{
	char *out = NULL;

	if (store_pg_is_address(store))
		return strdup(STORE_PG_CONTROL);
	if (asprintf(&out, "%s.sock", store) < 0)
		return NULL;
	return out;
}

struct store *store_open_flags(const char *path, unsigned flags,
                               struct diag *d)
{
	const struct store_backend *b = store_backend_for(path);
	struct store *st;

	if (b == NULL) {
		diag_add(d, NULL, 0, 0,
		         "no store given: herald.yaml \"store:\" (or --store) "
		         "names a SQLite file or a postgresql:// address");
		errno = EINVAL;
		return NULL;
	}
	if ((st = b->open(path, flags, d)) == NULL)
		return NULL; /* errno set by the backend */
	st->ops = b;
	return st;
}

struct store *store_open(const char *path, struct diag *d)
{
	return store_open_flags(path, STORE_OPEN_CREATE, d);
}

void store_close(struct store *st)
{
	if (st != NULL)
		st->ops->close(st);
}

/* ---- moving a whole store ---------------------------------------------- */

static const char *const store_cols_releases[] = {
    "id", "name", "source", "release_dir", "coalition", "state", "queued_at",
    "not_before", "stale_after", NULL};
static const char *const store_cols_release_files[] = {"id", "release_id",
                                                        "path", "data", NULL};
static const char *const store_cols_daemons[] = {
    "id", "host", "pid", "started", "heartbeat", "ended", "control", NULL};
static const char *const store_cols_deliveries[] = {
    "id",           "release_id",    "email",       "email_key",
    "name",         "language",      "outlet",      "beat",
    "region",       "timezone",      "message_id",  "state",
    "attempts",     "tries",         "queued_at",   "next_at",
    "lease_until",  "updated_at",    "last_code",   "last_status",
    "last_text",    "owner",         "handed_at",   "may_duplicate",
    "duplicate_why", "retried_at",   NULL};
static const char *const store_cols_attempts[] = {
    "id",   "delivery_id", "n",        "at",          "relay",  "code",
    "status", "text",      "queue_id", "duration_ms", "result", "counts",
    NULL};
static const char *const store_cols_events[] = {
    "id",     "at",     "kind",       "delivery_id", "matched_by",
    "email_key", "status", "reason",  "hard",        "diagnostic",
    "raw",    "held",   "rule",       "evidence",    NULL};
static const char *const store_cols_suppressions[] = {
    "email", "reason", "at", "delivery_id", "rule", "evidence", NULL};
static const char *const store_cols_mailbox_state[] = {
    "url", "uidvalidity", "last_uid", "updated_at", NULL};
static const char *const store_cols_event_sources[] = {"source", "at", NULL};

/* Parents before the tables that refer to them (deliveries.owner names a
 * daemons row, suppressions and events a delivery). */
#define STORE_TABLE(t, kinds)                                                  \
	{#t, store_cols_##t, kinds, sizeof(kinds) - 1}
/* a kind for every column, and no more */
#define STORE_KINDS_FIT(t, kinds)                                              \
	_Static_assert(sizeof(store_cols_##t) / sizeof(char *) - 1 ==          \
	                   sizeof(kinds) - 1,                                  \
	               #t ": one kind per column")
#define STORE_KINDS_releases "itttttiii"
#define STORE_KINDS_release_files "iitb"
#define STORE_KINDS_daemons "itiiiit"
#define STORE_KINDS_deliveries "iittttttttttiiiiiiittiiiti"
#define STORE_KINDS_attempts "iiiititttiti"
#define STORE_KINDS_events "iitittttitbttt"
#define STORE_KINDS_suppressions "ttiitt"
#define STORE_KINDS_mailbox_state "tiii"
#define STORE_KINDS_event_sources "ti"
STORE_KINDS_FIT(releases, STORE_KINDS_releases);
STORE_KINDS_FIT(release_files, STORE_KINDS_release_files);
STORE_KINDS_FIT(daemons, STORE_KINDS_daemons);
STORE_KINDS_FIT(deliveries, STORE_KINDS_deliveries);
STORE_KINDS_FIT(attempts, STORE_KINDS_attempts);
STORE_KINDS_FIT(events, STORE_KINDS_events);
STORE_KINDS_FIT(suppressions, STORE_KINDS_suppressions);
STORE_KINDS_FIT(mailbox_state, STORE_KINDS_mailbox_state);
STORE_KINDS_FIT(event_sources, STORE_KINDS_event_sources);

const struct store_table store_tables[] = {
    STORE_TABLE(releases, STORE_KINDS_releases),
    STORE_TABLE(release_files, STORE_KINDS_release_files),
    STORE_TABLE(daemons, STORE_KINDS_daemons),
    STORE_TABLE(deliveries, STORE_KINDS_deliveries),
    STORE_TABLE(attempts, STORE_KINDS_attempts),
    STORE_TABLE(events, STORE_KINDS_events),
    STORE_TABLE(suppressions, STORE_KINDS_suppressions),
    STORE_TABLE(mailbox_state, STORE_KINDS_mailbox_state),
    STORE_TABLE(event_sources, STORE_KINDS_event_sources),
};
_Static_assert(sizeof(store_tables) / sizeof(store_tables[0]) <=
                   sizeof(((struct store_copied *)0)->rows) /
                       sizeof(size_t),
               "struct store_copied counts every table");
const size_t store_ntables = sizeof(store_tables) / sizeof(store_tables[0]);

struct store_copying {
	struct store *to;
	struct store_copied seen;
	struct diag *d;
};

static int store_copy_row(void *arg, const struct store_row *r)
{
	struct store_copying *c = arg;

	c->seen.rows[r->table]++;
	return c->to->ops->load_row(c->to, r, c->d) < 0 ? -1 : 0;
}

int store_rate_take(struct store *st, const struct store_rate *r,
                    bool *taken, double *wait, struct diag *d)
{
	*taken = true;
	*wait = 0;
	if (st->ops->rate_take == NULL)
		return 1;
	return st->ops->rate_take(st, r, taken, wait, d);
}

int store_copy(struct store *from, struct store *to, struct store_copied *out,
               struct diag *d)
{
	struct store_copying c = {to, {{0}}, d};

	memset(out, 0, sizeof(*out));
	if (to->ops->load_begin(to, d) < 0)
		return -1;
	if (from->ops->rows_each(from, store_copy_row, &c, d) < 0) {
		int kind = errno;
		struct diag quiet;
		diag_init(&quiet);
		(void)to->ops->load_end(to, false, &c.seen, out, &quiet);
		diag_clear(&quiet);
		errno = kind;
		return -1;
	}
	return to->ops->load_end(to, true, &c.seen, out, d);
}

/* ---- the operations: each a forward to the handle's backend ---------- */

int store_release_add_each(struct store *st, const struct store_release_new *rn,
                           int (*next)(void *arg, struct store_recipient *r),
                           void *arg, struct store_release_added *out,
                           struct diag *d)
{
	return st->ops->release_add_each(st, rn, next, arg, out, d);
}

int store_release_files(struct store *st, int64_t release_id,
                        int (*fn)(void *arg, const struct store_file *f),
                        void *arg, struct diag *d)
{
	return st->ops->release_files(st, release_id, fn, arg, d);
}

int store_release_get(struct store *st, int64_t release_id,
                      struct store_release_info *info, char *release_dir,
                      size_t rdsize, char *coalition, size_t csize,
                      struct diag *d)
{
	return st->ops->release_get(st, release_id, info, release_dir, rdsize,
	                            coalition, csize, d);
}

int store_releases_each(struct store *st, int64_t release_id,
                        int (*fn)(void *arg,
                                  const struct store_release_info *r),
                        void *arg, struct diag *d)
{
	return st->ops->releases_each(st, release_id, fn, arg, d);
}

int store_release_find(struct store *st, const char *id_or_name,
                       int64_t *release_id, struct diag *d)
{
	return st->ops->release_find(st, id_or_name, release_id, d);
}

int store_release_set_state(struct store *st, int64_t release_id,
                            enum store_release_state s, struct diag *d)
{
	return st->ops->release_set_state(st, release_id, s, d);
}

int store_cancel(struct store *st, int64_t release_id, size_t *n,
                 struct diag *d)
{
	return st->ops->cancel(st, release_id, n, d);
}

int store_retry(struct store *st, int64_t release_id, bool failed,
                bool deferred, size_t *n, struct diag *d)
{
	return st->ops->retry(st, release_id, failed, deferred, n, d);
}

int store_release_uncancel(struct store *st, int64_t release_id, size_t *n,
                           size_t *suppressed, struct diag *d)
{
	return st->ops->release_uncancel(st, release_id, n, suppressed, d);
}

int store_release_figures(struct store *st, int64_t release_id,
                          struct store_release_figures *out, struct diag *d)
{
	return st->ops->release_figures(st, release_id, out, d);
}

int store_claim(struct store *st, time_t now, unsigned lease, size_t max,
                struct store_delivery *out, struct diag *d)
{
	return st->ops->claim(st, now, lease, max, out, d);
}

int store_record(struct store *st, const struct store_attempt *a, size_t n,
                 struct diag *d)
{
	return st->ops->record(st, a, n, d);
}

int store_unclaim(struct store *st, const int64_t *ids, size_t n,
                  time_t next_at, struct diag *d)
{
	return st->ops->unclaim(st, ids, n, next_at, d);
}

int store_next_due(struct store *st, time_t *when, struct diag *d)
{
	return st->ops->next_due(st, when, d);
}

int store_expire(struct store *st, time_t now, unsigned lifetime,
                 struct diag *d)
{
	return st->ops->expire(st, now, lifetime, d);
}

int store_daemon_add(struct store *st, const char *host, long pid, time_t now,
                     const char *control, int64_t *id, struct diag *d)
{
	return st->ops->daemon_add(st, host, pid, now, control, id, d);
}

int store_daemon_beat(struct store *st, time_t now, const int64_t *ids,
                      size_t n, time_t lease_until, bool *revived,
                      struct diag *d)
{
	return st->ops->daemon_beat(st, now, ids, n, lease_until, revived, d);
}

int store_daemons_each(struct store *st,
                       int (*fn)(void *arg, const struct store_daemon *dm),
                       void *arg, struct diag *d)
{
	return st->ops->daemons_each(st, fn, arg, d);
}

int store_daemon_end(struct store *st, int64_t id, time_t now, size_t *freed,
                     size_t *held, struct diag *d)
{
	return st->ops->daemon_end(st, id, now, freed, held, d);
}

int store_handover(struct store *st, const int64_t *ids, size_t n, time_t now,
                   bool *ok, struct diag *d)
{
	return st->ops->handover(st, ids, n, now, ok, d);
}

int store_drop(struct store *st, int64_t release_id, const int64_t *ids,
               size_t n, bool cancel, size_t *dropped, struct diag *d)
{
	return st->ops->drop(st, release_id, ids, n, cancel, dropped, d);
}

int store_abandon(struct store *st, const int64_t *ids, size_t n,
                  time_t next_at, struct diag *d)
{
	return st->ops->abandon(st, ids, n, next_at, d);
}

int store_holds_each(struct store *st, int64_t release_id, int64_t delivery_id,
                     int (*fn)(void *arg, const struct store_hold *h),
                     void *arg, struct diag *d)
{
	return st->ops->holds_each(st, release_id, delivery_id, fn, arg, d);
}

int store_duplicate_get(struct store *st, int64_t id, enum store_duplicate *why,
                        time_t *at, struct diag *d)
{
	return st->ops->duplicate_get(st, id, why, at, d);
}

int store_attempts_each(struct store *st, const struct store_log_filter *f,
                        int (*fn)(void *arg, const struct store_log_row *r),
                        void *arg, struct diag *d)
{
	return st->ops->attempts_each(st, f, fn, arg, d);
}

int store_delivery_get(struct store *st, int64_t id,
                       int (*fn)(void *arg, const struct store_delivery *dl,
                                 const char *release),
                       void *arg, struct diag *d)
{
	return st->ops->delivery_get(st, id, fn, arg, d);
}

int store_delivery_find(struct store *st, int64_t release_id, const char *email,
                        int64_t *id, struct diag *d)
{
	return st->ops->delivery_find(st, release_id, email, id, d);
}

int store_delivery_by_key(struct store *st, const char *key, int64_t *id,
                          struct diag *d)
{
	*id = 0;
	/* a key is what comes before '@': an empty one, or one with '@',
	 * names nobody */
	if (key == NULL || *key == '\0' || strchr(key, '@') != NULL ||
	    strlen(key) > 64)
		return 0;
	return st->ops->delivery_by_key(st, key, id, d);
}

int store_event_record(struct store *st, const struct store_event *ev,
                       int64_t *delivery_id, bool *suppressed, struct diag *d)
{
	return st->ops->event_record(st, ev, delivery_id, suppressed, d);
}

int store_events_each(struct store *st, const struct store_event_filter *f,
                      int (*fn)(void *arg, const struct store_event_row *r),
                      void *arg, struct diag *d)
{
	return st->ops->events_each(st, f, fn, arg, d);
}

int store_event_raw(struct store *st, int64_t id, char **raw, size_t *len,
                    struct diag *d)
{
	return st->ops->event_raw(st, id, raw, len, d);
}

int store_event_confirm(struct store *st, int64_t id, char **email,
                        struct diag *d)
{
	return st->ops->event_confirm(st, id, email, d);
}

int store_imap_place_get(struct store *st, const char *url,
                         uint32_t *uidvalidity, uint32_t *last_uid,
                         struct diag *d)
{
	return st->ops->imap_place_get(st, url, uidvalidity, last_uid, d);
}

int store_imap_place_set(struct store *st, const char *url,
                         uint32_t uidvalidity, uint32_t last_uid,
                         struct diag *d)
{
	return st->ops->imap_place_set(st, url, uidvalidity, last_uid, d);
}

int store_suppressions_each(struct store *st,
                            int (*fn)(void *arg,
                                      const struct store_suppression *s),
                            void *arg, struct diag *d)
{
	return st->ops->suppressions_each(st, fn, arg, d);
}

int store_suppress_import(struct store *st, const struct store_suppression *v,
                          size_t n, size_t *added, struct diag *d)
{
	return st->ops->suppress_import(st, v, n, added, d);
}

int store_suppress_remove(struct store *st, const char *email, bool *removed,
                          struct diag *d)
{
	return st->ops->suppress_remove(st, email, removed, d);
}

const char *store_event_kind_name(enum store_event_kind k)
{
	static const char *const names[] = {"bounce", "complaint", "autoreply",
	                                    "unsubscribe", "unknown"};

	return (unsigned)k < sizeof(names) / sizeof(*names) ? names[k]
	                                                    : "unknown";
}

char *store_evidence(const char *prefix, const char *text)
{
	size_t pl = prefix != NULL ? strlen(prefix) : 0, n, i;
	char *out;

	if (text == NULL)
		return NULL;
	n = strlen(text);
	if (n > STORE_EVIDENCE_TEXT_MAX) {
		n = STORE_EVIDENCE_TEXT_MAX;
		/* not in the middle of a UTF-8 character */
		while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
			n--;
	}
	if ((out = malloc(pl + n + 1)) == NULL)
		return NULL;
	if (pl > 0)
		memcpy(out, prefix, pl);
	for (i = 0; i < n; i++) {
		char c = text[i];
		out[pl + i] = c == '\r' || c == '\n' || c == '\t' ? ' ' : c;
	}
	out[pl + n] = '\0';
	return out;
}

void store_window_text(unsigned seconds, char *buf, size_t size)
{
	static const struct {
		unsigned n;
		const char *name;
	} units[] = {
	    {86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
	size_t i = 0;

	while (seconds != 0 && i + 1 < sizeof(units) / sizeof(units[0]) &&
	       seconds % units[i].n != 0)
		i++;
	if (seconds == 0)
		i = sizeof(units) / sizeof(units[0]) - 1;
	snprintf(buf, size, "%u %s%s", seconds / units[i].n, units[i].name,
	         seconds / units[i].n == 1 ? "" : "s");
}
