/*
 * web_unsub — the public unsubscribe page's work (see web_unsub.h).
 */
#include "herald/web_unsub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/coalition.h"
#include "herald/i18n.h"
#include "herald/release.h"
#include "herald/snapshot.h"

void web_unsub_free(struct web_unsub *u)
{
	if (u == NULL)
		return;
	free(u->email);
	free(u->name);
	free(u->language);
	free(u->coalition);
	memset(u, 0, sizeof(*u));
}

static char *web_unsub_dup(const char *s, bool *oom)
{
	char *c;

	if (s == NULL)
		return NULL;
	if ((c = strdup(s)) == NULL)
		*oom = true;
	return c;
}

static int web_unsub_got(void *arg, const struct store_delivery *dl,
                         const char *release)
{
	struct web_unsub *u = arg;
	bool oom = false;

	(void)release;
	u->release_id = dl->release_id;
	u->email = web_unsub_dup(dl->r.email, &oom);
	u->name = web_unsub_dup(dl->r.name, &oom);
	u->language = web_unsub_dup(dl->r.language, &oom);
	return oom || u->email == NULL ? -1 : 0;
}

/* The coalition's name in the journalist's language, from the files the
 * store keeps of the release (what was sent, not what is on disk now);
 * NULL when they cannot be read (the page then names no sender). */
static char *web_unsub_coalition(struct store *st, int64_t release_id,
                                 const char *tag)
{
	struct snapshot snap = {0};
	struct snapshot_src src;
	struct release *rel = NULL;
	struct coalition *coal = NULL;
	struct diag d = {0};
	char *out = NULL;

	if (snapshot_load(st, release_id, &snap, &d) < 0 ||
	    snap.coalition == NULL)
		goto out;
	snapshot_source(&src, &snap, snap.release_dir, snap.coalition);
	if ((rel = release_load(&src.src, snap.release_dir, &d)) == NULL ||
	    (coal = coalition_load(&src.src, snap.coalition, &rel->policy,
	                           &d)) == NULL)
		goto out;
	{
		struct i18n_choice c =
		    i18n_choose(&rel->policy, tag != NULL ? tag : "");
		if (c.lang < coal->name.n && coal->name.v[c.lang] != NULL)
			out = strdup(coal->name.v[c.lang]);
	}
out:
	coalition_free(coal);
	release_free(rel);
	snapshot_free(&snap);
	diag_clear(&d);
	return out;
}

int web_unsub_find(struct store *st, const struct verp *v, const char *token,
                   struct web_unsub *u, struct diag *d)
{
	enum verp_kind kind;
	char *addr = NULL;
	int64_t id = 0;

	memset(u, 0, sizeof(*u));
	if (v == NULL || token == NULL)
		return 0;
	if (asprintf(&addr, "unsubscribe+%s@%s", token, verp_domain(v)) < 0) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	if (verp_check(v, addr, &kind, u->key) < 0 ||
	    kind != VERP_UNSUBSCRIBE) {
		free(addr);
		return 0;
	}
	free(addr);
	if (store_delivery_by_key(st, u->key, &id, d) < 0)
		return -1;
	if (id == 0)
		return 0;
	u->delivery_id = id;
	if (store_delivery_get(st, id, web_unsub_got, u, d) < 0) {
		if (u->email == NULL && d->n == 0)
			diag_add(d, NULL, 0, 0, "out of memory");
		web_unsub_free(u);
		return -1;
	}
	if (u->email == NULL) {
		web_unsub_free(u);
		return 0;
	}
	u->coalition = web_unsub_coalition(st, u->release_id, u->language);
	return 1;
}

/* The suppression of email, when listed: its rule, evidence and time. */
struct web_unsub_sup {
	const char *email;
	bool listed;
	char rule[32];
	char evidence[64];
	time_t at;
};

static int web_unsub_sup_fn(void *arg, const struct store_suppression *s)
{
	struct web_unsub_sup *w = arg;

	if (strcasecmp(s->email, w->email) != 0)
		return 0;
	w->listed = true;
	w->at = s->at;
	snprintf(w->rule, sizeof(w->rule), "%s", s->rule ? s->rule : "");
	snprintf(w->evidence, sizeof(w->evidence), "%s",
	         s->evidence ? s->evidence : "");
	return 1;
}

static int web_unsub_sup(struct store *st, const char *email,
                         struct web_unsub_sup *w, struct diag *d)
{
	memset(w, 0, sizeof(*w));
	w->email = email;
	return store_suppressions_each(st, web_unsub_sup_fn, w, d);
}

int web_unsub_apply(struct store *st, const struct web_unsub *u,
                    const char *how, bool *changed, struct diag *d)
{
	struct web_unsub_sup w;
	char *source = NULL, *evidence = NULL, *raw = NULL;
	struct timespec ts;
	int64_t id = 0;
	bool sup = false;
	int rc = -1, n;

	*changed = false;
	if (web_unsub_sup(st, u->email, &w, d) < 0)
		return -1;
	if (w.listed)
		return 0; /* already off the list: idempotent */
	/* a source of its own for each act (to the nanosecond), so that
	 * the store keeps an unsubscribe after an undo as a new event; a
	 * repeated click is caught above, by the suppression */
	clock_gettime(CLOCK_REALTIME, &ts);
	if (asprintf(&source, "herald-web:%s:%lld.%09ld", u->key,
	             (long long)ts.tv_sec, (long)ts.tv_nsec) < 0 ||
	    asprintf(&evidence, "herald-web: %s", how) < 0 ||
	    (n = asprintf(&raw,
	                  "herald-web POST /u/ (%s) for delivery %" PRId64 "\n",
	                  how, u->delivery_id)) < 0) {
		diag_add(d, NULL, 0, 0, "out of memory");
		goto out;
	}
	{
		struct store_event ev = {.kind = STORE_EVENT_UNSUBSCRIBE,
		                         .message_key = u->key,
		                         .hard = -1,
		                         .reason = "web",
		                         .raw = raw,
		                         .rawlen = (size_t)n,
		                         .source = source,
		                         .evidence = evidence};
		if (store_event_record(st, &ev, &id, &sup, d) < 0)
			goto out;
	}
	*changed = sup;
	rc = 0;
out:
	free(raw);
	free(evidence);
	free(source);
	return rc;
}

/* The newest web unsubscribe event of a delivery. */
struct web_unsub_ev {
	int64_t delivery_id;
	int64_t id;
	time_t at;
};

static int web_unsub_ev_fn(void *arg, const struct store_event_row *r)
{
	struct web_unsub_ev *e = arg;

	if (r->delivery_id == e->delivery_id &&
	    r->kind == STORE_EVENT_UNSUBSCRIBE && r->reason != NULL &&
	    strcmp(r->reason, "web") == 0 && r->id > e->id) {
		e->id = r->id;
		e->at = r->at;
	}
	return 0;
}

int web_unsub_undo(struct store *st, const struct web_unsub *u, time_t now,
                   bool *undone, struct diag *d)
{
	struct store_event_filter f = {.release_id = u->release_id};
	struct web_unsub_ev e = {.delivery_id = u->delivery_id};
	struct web_unsub_sup w;
	const time_t window = (time_t)WEB_UNSUB_UNDO_DAYS * 86400;
	char want[32];
	size_t wn;
	bool removed = false;

	*undone = false;
	if (store_events_each(st, &f, web_unsub_ev_fn, &e, d) < 0)
		return -1;
	if (e.id == 0 || now - e.at > window)
		return 0;
	if (web_unsub_sup(st, u->email, &w, d) < 0)
		return -1;
	/* put there by that very event ("event ID, herald-web: ...") */
	wn = (size_t)snprintf(want, sizeof(want), "event %" PRId64, e.id);
	if (!w.listed || strcmp(w.rule, "unsubscribe") != 0 ||
	    strncmp(w.evidence, want, wn) != 0 ||
	    (w.evidence[wn] != '\0' && w.evidence[wn] != ',') ||
	    now - w.at > window)
		return 0;
	if (store_suppress_remove(st, u->email, &removed, d) < 0)
		return -1;
	*undone = removed;
	return 0;
}
