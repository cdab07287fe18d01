/*
 * web_admin — the admin console's pages (see web_admin.h). A release's
 * figures come from figures.c, as herald status's do.
 */
#include "herald/web_admin.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/figures.h"
#include "herald/template.h"
#include "herald/tval.h"

/* The admin pages' head and the logged-in bar. */
#define WEB_ADMIN_HEAD                                                         \
	"<!DOCTYPE html>\n"                                                    \
	"<html lang=\"en\">\n"                                                 \
	"<head>\n"                                                             \
	"<meta charset=\"utf-8\">\n"                                           \
	"<meta name=\"viewport\" content=\"width=device-width, "               \
	"initial-scale=1\">\n"                                                 \
	"<meta name=\"robots\" content=\"noindex\">\n"                         \
	"<title>{{title}} - herald</title>\n"                                  \
	"<style>body{font:15px/1.4 sans-serif;margin:1.5em;color:#222}"       \
	"table{border-collapse:collapse}th,td{padding:.3em .6em;"              \
	"border-bottom:1px solid #ddd;text-align:right}th.l,td.l{text-align:"  \
	"left}header{display:flex;gap:1em;align-items:center}header form"      \
	"{margin:0}.msg{color:#a00}label{display:block;margin:.5em 0}"         \
	"button{font:inherit}</style>\n"                                       \
	"</head>\n"                                                            \
	"<body>\n"

static const char web_admin_login_tmpl[] =
    WEB_ADMIN_HEAD
    "<h1>herald</h1>\n"
    "{{#message}}<p class=\"msg\">{{message}}</p>\n{{/message}}"
    "<form method=\"post\" action=\"/login\">\n"
    "<label>Name <input name=\"name\" autocomplete=\"username\" "
    "required></label>\n"
    "<label>Password <input name=\"password\" type=\"password\" "
    "autocomplete=\"current-password\" required></label>\n"
    "<button type=\"submit\">Log in</button>\n"
    "</form>\n"
    "</body>\n"
    "</html>\n";

static const char web_admin_releases_tmpl[] =
    WEB_ADMIN_HEAD
    "<header><strong>herald</strong>"
    "<span class=\"who\">{{user}} ({{role}})</span>\n"
    "<form method=\"post\" action=\"/logout\">"
    "<input type=\"hidden\" name=\"csrf\" value=\"{{csrf}}\">"
    "<button type=\"submit\">Log out</button></form></header>\n"
    "<h1>Releases</h1>\n"
    "{{^releases}}<p>No releases yet.</p>\n{{/releases}}"
    "{{#any}}<table>\n<thead><tr><th>ID</th><th class=\"l\">Release</th>"
    "<th class=\"l\">State</th><th>Sent / total</th><th>Sent %</th>"
    "<th>Rate/s</th><th>Bounce %</th><th>Complaints</th>"
    "<th>Unsubscribes</th><th class=\"l\">First attempt</th>"
    "<th class=\"l\">Last attempt</th></tr></thead>\n<tbody>\n"
    "{{#releases}}<tr><td data-k=\"id\">{{id}}</td>"
    "<td class=\"l\" data-k=\"name\">{{name}}</td>"
    "<td class=\"l\" data-k=\"state\">{{state}}</td>"
    "<td><span data-k=\"sent\">{{sent}}</span> / "
    "<span data-k=\"total\">{{total}}</span></td>"
    "<td data-k=\"sent_percent\">{{sent_percent}}</td>"
    "<td data-k=\"rate\">{{rate}}</td>"
    "<td data-k=\"bounce_percent\">{{bounce_percent}}</td>"
    "<td data-k=\"complaints\">{{complaints}}</td>"
    "<td data-k=\"unsubscribes\">{{unsubscribes}}</td>"
    "<td class=\"l\" data-k=\"first_attempt\">{{first_attempt}}</td>"
    "<td class=\"l\" data-k=\"last_attempt\">{{last_attempt}}</td></tr>\n"
    "{{/releases}}</tbody>\n</table>\n{{/any}}"
    "</body>\n"
    "</html>\n";

static int web_admin_set(struct tval *m, const char *key, const char *v)
{
	struct tval *s;

	/* tval_set owns s, also when it fails */
	if ((s = tval_str(v != NULL ? v : "")) == NULL)
		return -1;
	return tval_set(m, key, s);
}

static int web_admin_render(const char *name, const char *src, size_t srclen,
                            const struct tval *ctx, char **out, size_t *len,
                            struct diag *d)
{
	static const struct tmpl_opts opts = {.escape = TMPL_ESCAPE_HTML,
	                                      .max_output = 4 * 1024 * 1024};
	struct tmpl *t;
	int rc;

	*out = NULL;
	if ((t = tmpl_parse(name, src, srclen, d)) == NULL)
		return -1;
	rc = tmpl_render(t, ctx, &opts, out, len, d);
	tmpl_free(t);
	return rc;
}

int web_admin_login(const char *message, char **out, size_t *len,
                    struct diag *d)
{
	struct tval *ctx = tval_map();
	int rc = -1;

	*out = NULL;
	if (ctx == NULL || web_admin_set(ctx, "title", "Log in") < 0 ||
	    (message != NULL && web_admin_set(ctx, "message", message) < 0)) {
		diag_add(d, NULL, 0, 0, "out of memory");
		goto out;
	}
	rc = web_admin_render("herald-web login", web_admin_login_tmpl,
	                      sizeof(web_admin_login_tmpl) - 1, ctx, out, len,
	                      d);
out:
	tval_free(ctx);
	return rc;
}

/* ---- the releases ---------------------------------------------------------- */

struct web_admin_list {
	struct store_release_info *v;
	size_t n, cap;
};

static int web_admin_collect(void *arg, const struct store_release_info *r)
{
	struct web_admin_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct store_release_info *v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *r;
	return 0;
}

static void web_admin_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, size, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One release's row: the figures as herald status has them ("-" where
 * one does not apply). */
static struct tval *web_admin_row(const struct store_release_info *r,
                                  const struct store_release_figures *f,
                                  time_t now)
{
	struct tval *row = tval_map();
	double v;
	char id[24], sent[24], total[24], pct[32] = "-", rate[32] = "-";
	char bpct[32] = "-", compl[24], unsub[24], first[32], last[32];

	if (row == NULL)
		return NULL;
	snprintf(id, sizeof(id), "%lld", (long long)r->id);
	snprintf(sent, sizeof(sent), "%zu", r->count[STORE_SENT]);
	snprintf(total, sizeof(total), "%zu", r->total);
	if (figures_sent_percent(r, &v))
		snprintf(pct, sizeof(pct), "%.1f", v);
	if (figures_rate(r, f, now, &v))
		snprintf(rate, sizeof(rate), "%.1f", v);
	if (figures_bounce_percent(r, &v))
		snprintf(bpct, sizeof(bpct), "%.1f", v);
	snprintf(compl, sizeof(compl), "%zu", f->complaints);
	snprintf(unsub, sizeof(unsub), "%zu", f->unsubscribes);
	web_admin_time(f->first_attempt, first, sizeof(first));
	web_admin_time(f->last_attempt, last, sizeof(last));
	if (web_admin_set(row, "id", id) < 0 ||
	    web_admin_set(row, "name", r->name) < 0 ||
	    web_admin_set(row, "state", store_release_state_name(r->state)) <
	        0 ||
	    web_admin_set(row, "sent", sent) < 0 ||
	    web_admin_set(row, "total", total) < 0 ||
	    web_admin_set(row, "sent_percent", pct) < 0 ||
	    web_admin_set(row, "rate", rate) < 0 ||
	    web_admin_set(row, "bounce_percent", bpct) < 0 ||
	    web_admin_set(row, "complaints", compl) < 0 ||
	    web_admin_set(row, "unsubscribes", unsub) < 0 ||
	    web_admin_set(row, "first_attempt", first) < 0 ||
	    web_admin_set(row, "last_attempt", last) < 0) {
		tval_free(row);
		return NULL;
	}
	return row;
}

int web_admin_releases(struct store *st, time_t now,
                       const struct web_admin_who *who, char **out,
                       size_t *len, struct diag *d)
{
	struct web_admin_list l = {0};
	struct tval *ctx = tval_map(), *rows = tval_list(), *b;
	int rc = -1;

	*out = NULL;
	if (ctx == NULL || rows == NULL)
		goto oom;
	if (store_releases_each(st, 0, web_admin_collect, &l, d) < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		struct store_release_figures f = {0};
		struct tval *row;
		if (store_release_figures(st, l.v[i].id, &f, d) < 0)
			goto out;
		if ((row = web_admin_row(&l.v[i], &f, now)) == NULL ||
		    tval_push(rows, row) < 0)
			goto oom;
	}
	if (web_admin_set(ctx, "title", "Releases") < 0 ||
	    web_admin_set(ctx, "user", who->user) < 0 ||
	    web_admin_set(ctx, "role", who->role) < 0 ||
	    web_admin_set(ctx, "csrf", who->csrf) < 0)
		goto oom;
	if (l.n > 0) {
		if ((b = tval_bool(true)) == NULL || tval_set(ctx, "any", b) < 0)
			goto oom;
	}
	rc = tval_set(ctx, "releases", rows); /* owns rows, also on failure */
	rows = NULL;
	if (rc < 0)
		goto oom;
	rc = web_admin_render("herald-web releases", web_admin_releases_tmpl,
	                      sizeof(web_admin_releases_tmpl) - 1, ctx, out,
	                      len, d);
	goto out;
oom:
	rc = -1;
	diag_add(d, NULL, 0, 0, "out of memory");
out:
	tval_free(rows);
	tval_free(ctx);
	free(l.v);
	return rc;
}
