/*
 * store_fixture — what the store's tests (test_store_conformance.c,
 * test_store_sqlite.c) share (store_fixture.h says what each does): made-up
 * recipients and releases, and the store's calls wrapped so that a failure
 * fails the test with its reason (cmocka's fail_msg).
 */
#include "store_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct store *open_ok(const char *path)
{
	struct diag d = {0};
	struct store *st = store_open(path, &d);

	if (st == NULL)
		fail_msg("store_open %s: %s", path, diag_first(&d));
	diag_clear(&d);
	return st;
}

void rcpts_make(struct rcpts *r, const char *tag, size_t n, const char *domain)
{
	r->n = n;
	r->v = calloc(n ? n : 1, sizeof(*r->v));
	r->mem = malloc((n ? n : 1) * 2 * RCPT_LEN);
	assert_non_null(r->v);
	assert_non_null(r->mem);
	for (size_t i = 0; i < n; i++) {
		char *email = r->mem + 2 * RCPT_LEN * i;
		char *mid = email + RCPT_LEN;
		snprintf(email, RCPT_LEN, "j%zu@%s", i, domain);
		snprintf(mid, RCPT_LEN, "%s.%zu@herald.test", tag, i);
		r->v[i].email = email;
		r->v[i].name = "Journalist";
		r->v[i].language = i % 2 ? "de-AT" : "en";
		r->v[i].outlet = i % 3 ? "Daily" : NULL;
		r->v[i].message_id = mid;
	}
}

void rcpts_free(struct rcpts *r)
{
	free(r->v);
	free(r->mem);
}

int each_next(void *arg, struct store_recipient *r)
{
	struct each_src *e = arg;

	if (e->fail_at != 0 && e->i + 1 == (size_t)e->fail_at)
		return -1;
	if (e->i >= e->n)
		return 0;
	*r = e->v[e->i++];
	return 1;
}

int queue(struct store *st, const struct store_release_new *rn,
          const struct store_recipient *v, size_t n,
          struct store_release_added *out, struct diag *d)
{
	struct each_src src = {v, n, 0, 0};

	memset(out, 0, sizeof(*out));
	return store_release_add_each(st, rn, each_next, &src, out, d);
}

int64_t add_release_to(struct store *st, const char *name, size_t n,
                       const char *domain, bool only_new, time_t not_before,
                       time_t stale_after)
{
	struct store_release_new rn = {
	    name,       "/home/press/report", "release", "coalition.yaml",
	    not_before, stale_after,          NULL,      0};
	struct store_release_added out = {.only_new = only_new};
	struct each_src src;
	struct diag d = {0};
	struct rcpts r;
	char tag[64];
	static unsigned seq;

	snprintf(tag, sizeof(tag), "%s-%u", name, ++seq);
	rcpts_make(&r, tag, n, domain);
	src = (struct each_src){r.v, r.n, 0, 0};
	if (store_release_add_each(st, &rn, each_next, &src, &out, &d) != 0)
		fail_msg("release_add_each: %s", diag_first(&d));
	assert_true(out.release_id > 0);
	rcpts_free(&r);
	diag_clear(&d);
	return out.release_id;
}

int64_t add_release(struct store *st, const char *name, size_t n,
                    time_t not_before, time_t stale_after)
{
	return add_release_to(st, name, n, "example.org", false, not_before,
	                      stale_after);
}

int suppress(struct store *st, const char *email, const char *reason,
             struct diag *d)
{
	struct store_suppression sp = {.email = email, .reason = reason};
	size_t added;

	return store_suppress_import(st, &sp, 1, &added, d);
}

struct listed {
	const char *email;
	bool yes;
};

static int listed_fn(void *arg, const struct store_suppression *sp)
{
	struct listed *l = arg;

	if (strcmp(sp->email, l->email) != 0)
		return 0;
	l->yes = true;
	return 1;
}

int suppressed(struct store *st, const char *email, bool *yes, struct diag *d)
{
	struct listed l = {email, false};
	int rc = store_suppressions_each(st, listed_fn, &l, d);

	*yes = l.yes;
	return rc;
}

int claim(struct store *st, time_t now, unsigned lease, size_t max,
          struct store_delivery *out)
{
	struct diag d = {0};
	int n = store_claim(st, now, lease, max, out, &d);

	if (n < 0)
		fail_msg("claim: %s", diag_first(&d));
	diag_clear(&d);
	return n;
}

void record(struct store *st, int64_t id, time_t at, enum store_state result,
            time_t next_at, bool counts, int code)
{
	struct store_attempt a = {.delivery_id = id,
	                          .at = at,
	                          .relay = "smtp://127.0.0.1:2525",
	                          .code = code,
	                          .status = "4.0.0",
	                          .text = "reply text",
	                          .queue_id = "Q123",
	                          .duration_ms = 12,
	                          .result = result,
	                          .next_at = next_at,
	                          .counts = counts};
	struct diag d = {0};

	if (store_record(st, &a, 1, &d) < 0)
		fail_msg("record: %s", diag_first(&d));
	diag_clear(&d);
}

struct store_release_info release_info(struct store *st, int64_t id)
{
	struct store_release_info info;
	struct diag d = {0};

	if (store_release_get(st, id, &info, NULL, 0, NULL, 0, &d) < 0)
		fail_msg("release_get: %s", diag_first(&d));
	diag_clear(&d);
	return info;
}

int got_fn(void *arg, const struct store_delivery *dl, const char *release)
{
	struct got *g = arg;

	g->state = dl->state;
	g->attempts = dl->attempts;
	g->next_at = dl->next_at;
	g->last_code = dl->last_code;
	snprintf(g->release, sizeof(g->release), "%s", release);
	snprintf(g->email, sizeof(g->email), "%s", dl->r.email);
	return 0;
}

struct got delivery(struct store *st, int64_t id)
{
	struct got g;
	struct diag d = {0};

	memset(&g, 0, sizeof(g));
	if (store_delivery_get(st, id, got_fn, &g, &d) < 0)
		fail_msg("delivery_get: %s", diag_first(&d));
	diag_clear(&d);
	return g;
}

int count_releases_fn(void *arg, const struct store_release_info *r)
{
	(void)r;
	(*(size_t *)arg)++;
	return 0;
}

size_t count_releases(struct store *st)
{
	struct diag d = {0};
	size_t n = 0;

	if (store_releases_each(st, 0, count_releases_fn, &n, &d) < 0)
		fail_msg("releases_each: %s", diag_first(&d));
	diag_clear(&d);
	return n;
}
