/*
 * web — herald-web's server (see web.h): the request's life (headers,
 * a bounded body, one answer), the routes, /metrics, and the admin
 * console's gate: login, logout, sessions and CSRF checks.
 */
#include "herald/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "herald/file.h"
#include "herald/log.h"
#include "herald/passwd.h"
#include "herald/web_admin.h"
#include "herald/web_page.h"
#include "herald/web_req.h"
#include "herald/web_session.h"
#include "herald/web_throttle.h"
#include "herald/web_unsub.h"

/* The largest certificate chain or key file read. */
#define WEB_PEM_MAX (1024 * 1024)

/* The session cookie's name. */
#define WEB_COOKIE "herald_session"

struct web {
	struct MHD_Daemon *mhd;
	const struct web_opts *o;
	char *cert, *key; /* PEM, kept while MHD runs */
	bool secure;      /* cookies only over HTTPS */
	struct web_sessions *sessions;
	struct web_throttle *throttle;
	/* checked when the name is no user's, so that an unknown name costs
	 * the time a wrong password does: a hash of a random password */
	char dummy[PASSWD_ENCODED_MAX];
};

/* One request: its body so far (at most WEB_BODY_MAX bytes). */
struct web_req {
	char body[WEB_BODY_MAX];
	size_t len;
	bool too_big;
};

bool web_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

int web_listen_parse(const char *listen, char *addr, size_t addrsize,
                     uint16_t *port)
{
	const char *colon, *start = listen, *end;
	char *e;
	unsigned long p;

	if (listen == NULL)
		return -1;
	if (*listen == '[') {
		start = listen + 1;
		if ((end = strchr(start, ']')) == NULL || end[1] != ':')
			return -1;
		colon = end + 1;
	} else {
		if ((colon = strrchr(listen, ':')) == NULL ||
		    memchr(listen, ':', (size_t)(colon - listen)) != NULL)
			return -1;
		end = colon;
	}
	if (end == start || (size_t)(end - start) >= addrsize)
		return -1;
	memcpy(addr, start, (size_t)(end - start));
	addr[end - start] = '\0';
	errno = 0;
	p = strtoul(colon + 1, &e, 10);
	if (colon[1] == '\0' || *e != '\0' || errno != 0 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

/* ---- /metrics ------------------------------------------------------------ */

struct web_metrics_acc {
	FILE *f;
	size_t total[STORE_NSTATES];
	size_t releases[4];
};

/* A label value as Prometheus reads it: \\, \" and \n escaped. */
static void web_metrics_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static int web_metrics_release(void *arg, const struct store_release_info *r)
{
	struct web_metrics_acc *m = arg;

	for (int s = 0; s < STORE_NSTATES; s++) {
		fprintf(m->f,
		        "herald_release_deliveries{release_id=\"%" PRId64
		        "\",release=\"",
		        r->id);
		web_metrics_label(m->f, r->name);
		fprintf(m->f, "\",state=\"%s\"} %zu\n",
		        store_state_name((enum store_state)s), r->count[s]);
		m->total[s] += r->count[s];
	}
	if ((unsigned)r->state < 4)
		m->releases[r->state]++;
	return 0;
}

static int web_metrics_event(void *arg, const struct store_event_row *r)
{
	size_t *n = arg;

	if ((unsigned)r->kind <= STORE_EVENT_UNKNOWN)
		n[r->kind]++;
	return 0;
}

int web_metrics(struct store *st, char **out, size_t *len, struct diag *d)
{
	struct web_metrics_acc m = {0};
	size_t events[STORE_EVENT_UNKNOWN + 1] = {0};
	int rc = -1;

	*out = NULL;
	if ((m.f = open_memstream(out, len)) == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	fputs("# HELP herald_release_deliveries Deliveries of a release by "
	      "state.\n"
	      "# TYPE herald_release_deliveries gauge\n",
	      m.f);
	if (store_releases_each(st, 0, web_metrics_release, &m, d) < 0)
		goto out;
	if (store_events_each(st, NULL, web_metrics_event, events, d) < 0)
		goto out;
	fputs("# HELP herald_deliveries Deliveries of every release by state.\n"
	      "# TYPE herald_deliveries gauge\n",
	      m.f);
	for (int s = 0; s < STORE_NSTATES; s++)
		fprintf(m.f, "herald_deliveries{state=\"%s\"} %zu\n",
		        store_state_name((enum store_state)s), m.total[s]);
	fprintf(m.f,
	        "# HELP herald_queue_depth Deliveries queued, deferred or "
	        "being sent.\n"
	        "# TYPE herald_queue_depth gauge\n"
	        "herald_queue_depth %zu\n",
	        m.total[STORE_QUEUED] + m.total[STORE_DEFERRED] +
	            m.total[STORE_SENDING]);
	fputs("# HELP herald_events_total Events from the bounce mailbox and "
	      "the unsubscribe page by type.\n"
	      "# TYPE herald_events_total counter\n",
	      m.f);
	for (int k = 0; k <= STORE_EVENT_UNKNOWN; k++)
		fprintf(m.f, "herald_events_total{type=\"%s\"} %zu\n",
		        store_event_kind_name((enum store_event_kind)k),
		        events[k]);
	fputs("# HELP herald_releases Releases by state.\n"
	      "# TYPE herald_releases gauge\n",
	      m.f);
	for (int s = 0; s < 4; s++)
		fprintf(m.f, "herald_releases{state=\"%s\"} %zu\n",
		        store_release_state_name((enum store_release_state)s),
		        m.releases[s]);
	rc = 0;
out:
	if (fclose(m.f) != 0 && rc == 0) {
		diag_add(d, NULL, 0, 0, "out of memory");
		rc = -1;
	}
	if (rc < 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- answers ------------------------------------------------------------- */

/* Headers some answers add. */
struct web_extra {
	const char *location;    /* a redirect's target */
	const char *cookie;      /* Set-Cookie */
	const char *retry_after; /* seconds */
};

static enum MHD_Result web_answer_x(struct MHD_Connection *c, unsigned status,
                                    const char *type, char *body, size_t len,
                                    const struct web_extra *x)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	if (x != NULL && x->location != NULL)
		MHD_add_response_header(r, "Location", x->location);
	if (x != NULL && x->cookie != NULL)
		MHD_add_response_header(r, "Set-Cookie", x->cookie);
	if (x != NULL && x->retry_after != NULL)
		MHD_add_response_header(r, "Retry-After", x->retry_after);
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Content-Security-Policy", WEB_PAGE_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result web_answer(struct MHD_Connection *c, unsigned status,
                                  const char *type, char *body, size_t len)
{
	return web_answer_x(c, status, type, body, len, NULL);
}

static enum MHD_Result web_text(struct MHD_Connection *c, unsigned status,
                                const char *text)
{
	char *body = strdup(text);

	if (body == NULL)
		return MHD_NO;
	return web_answer(c, status, "text/plain; charset=utf-8", body,
	                  strlen(body));
}

static enum MHD_Result web_page(struct web *w, struct MHD_Connection *c,
                                unsigned status, enum web_page_kind k,
                                const struct web_page_vals *v)
{
	struct diag d = {0};
	char *body = NULL;
	size_t len = 0;

	if (web_page_render(k, v, &body, &len, &d) < 0) {
		log_line(w->o->log, "web page not rendered: %s",
		         diag_first(&d));
		diag_clear(&d);
		return web_text(c, 500, "internal error\n");
	}
	diag_clear(&d);
	return web_answer(c, status, "text/html; charset=utf-8", body, len);
}

static enum MHD_Result web_bad(struct web *w, struct MHD_Connection *c,
                               unsigned status, const char *message)
{
	struct web_page_vals v = {.message = message};

	return web_page(w, c, status, WEB_PAGE_BAD, &v);
}

static enum MHD_Result web_not_found(struct web *w, struct MHD_Connection *c)
{
	struct web_page_vals v = {0};

	return web_page(w, c, 404, WEB_PAGE_NOT_FOUND, &v);
}

/* ---- the routes ---------------------------------------------------------- */

static enum MHD_Result web_metrics_page(struct web *w, struct MHD_Connection *c)
{
	struct diag d = {0};
	char *body;
	size_t len;

	if (web_metrics(w->o->st, &body, &len, &d) < 0) {
		log_line(w->o->log, "web metrics failed: %s", diag_first(&d));
		diag_clear(&d);
		return web_text(c, 500, "the store failed\n");
	}
	return web_answer(c, 200, "text/plain; version=0.0.4; charset=utf-8",
	                  body, len);
}

static enum MHD_Result web_unsub_page(struct web *w, struct MHD_Connection *c,
                                      enum web_route route, bool post,
                                      const char *token,
                                      const struct web_req *rq)
{
	struct web_unsub u;
	struct diag d = {0};
	struct web_page_vals v = {0};
	char action[WEB_TOKEN_MAX + 8];
	enum web_page_kind k = WEB_PAGE_CONFIRM;
	const char *did = "shown";
	enum MHD_Result ret;
	int rc;

	rc = web_unsub_find(w->o->st, w->o->verp, token, &u, &d);
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		log_line(w->o->log, "web unsubscribe token=unknown result=404");
		return web_not_found(w, c);
	}
	if (post && route == WEB_ROUTE_UNSUB) {
		const char *ctype = MHD_lookup_connection_value(
		    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		bool changed;
		if (web_req_one_click(ctype, rq->body, rq->len) != 1) {
			web_unsub_free(&u);
			return web_bad(w, c, 400,
			               "The request did not ask to unsubscribe "
			               "(List-Unsubscribe=One-Click).");
		}
		if (web_unsub_apply(w->o->st, &u, "one-click", &changed, &d) <
		    0)
			goto fail;
		k = WEB_PAGE_DONE;
		did = changed ? "unsubscribed" : "unsubscribed-before";
	} else if (post) {
		bool undone;
		if (web_unsub_undo(w->o->st, &u, time(NULL), &undone, &d) < 0)
			goto fail;
		k = undone ? WEB_PAGE_UNDONE : WEB_PAGE_NO_UNDO;
		did = undone ? "subscribed-again" : "undo-refused";
	}
	snprintf(action, sizeof(action), "/u/%s", token);
	v.language = u.language;
	v.coalition = u.coalition;
	v.email = u.email;
	v.name = u.name;
	v.action = action;
	log_line(w->o->log, "web unsubscribe delivery=%" PRId64 " result=%s",
	         u.delivery_id, did);
	ret = web_page(w, c, 200, k, &v);
	web_unsub_free(&u);
	return ret;
fail:
	log_line(w->o->log, "web unsubscribe failed: %s", diag_first(&d));
	diag_clear(&d);
	web_unsub_free(&u);
	return web_bad(w, c, 503,
	               "The page cannot be served right now. Please try again "
	               "in a few minutes.");
}

/* ---- the admin console's gate ------------------------------------------ */

/* 303 to location, with a cookie to set (NULL: none). */
static enum MHD_Result web_redirect(struct MHD_Connection *c,
                                    const char *location, const char *cookie)
{
	struct web_extra x = {.location = location, .cookie = cookie};
	char *body = strdup("see other\n");

	if (body == NULL)
		return MHD_NO;
	return web_answer_x(c, 303, "text/plain; charset=utf-8", body,
	                    strlen(body), &x);
}

/* The client's address as text ("?" when unknown). */
static void web_client(struct MHD_Connection *c, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *i =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = i != NULL ? i->client_addr : NULL;

	snprintf(buf, size, "?");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		          buf, (socklen_t)size);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		          &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		          (socklen_t)size);
}

/* The request's live session, or NULL. */
static const struct web_session *web_session_of(struct web *w,
                                                struct MHD_Connection *c)
{
	const char *id =
	    MHD_lookup_connection_value(c, MHD_COOKIE_KIND, WEB_COOKIE);

	return web_session_find(w->sessions, id, time(NULL));
}

static enum MHD_Result web_login_form(struct web *w, struct MHD_Connection *c,
                                      unsigned status, const char *message,
                                      const char *retry_after)
{
	struct web_extra x = {.retry_after = retry_after};
	struct diag d = {0};
	char *body;
	size_t len;

	if (web_admin_login(message, &body, &len, &d) < 0) {
		log_line(w->o->log, "web page not rendered: %s",
		         diag_first(&d));
		diag_clear(&d);
		return web_text(c, 500, "internal error\n");
	}
	return web_answer_x(c, status, "text/html; charset=utf-8", body, len,
	                    &x);
}

/* The user named name, or NULL. */
static const struct config_web_user *web_user(const struct web *w,
                                              const char *name)
{
	for (size_t i = 0; i < w->o->nusers; i++)
		if (strcmp(w->o->users[i].name, name) == 0)
			return &w->o->users[i];
	return NULL;
}

/* POST /login: the throttle first (web_throttle.h has the rule), then the
 * password; an unknown name is checked against the dummy hash, so that it
 * takes as long and answers the same as a wrong password. */
static enum MHD_Result web_login(struct web *w, struct MHD_Connection *c,
                                 const struct web_req *rq)
{
	char name[65], pw[PASSWD_MAX + 1], addr[INET6_ADDRSTRLEN];
	char cookie[WEB_SESSION_ID + 128], retry[24];
	const struct config_web_user *u;
	const struct web_session *s;
	const char *old;
	long wait, wa;
	time_t now = time(NULL);
	int ok;

	web_client(c, addr, sizeof(addr));
	if (web_req_form(rq->body, rq->len, "name", name, sizeof(name)) != 1 ||
	    web_req_form(rq->body, rq->len, "password", pw, sizeof(pw)) != 1 ||
	    name[0] == '\0' || pw[0] == '\0') {
		explicit_bzero(pw, sizeof(pw));
		return web_login_form(w, c, 400,
		                      "Give a name (at most 64 characters) and "
		                      "a password.",
		                      NULL);
	}
	u = web_user(w, name);
	wait = web_throttle_wait(w->throttle, WEB_THROTTLE_ACCOUNT, name, now);
	wa = web_throttle_wait(w->throttle, WEB_THROTTLE_ADDR, addr, now);
	if (wa > wait)
		wait = wa;
	if (wait > 0) {
		explicit_bzero(pw, sizeof(pw));
		log_line(w->o->log,
		         "web login user=%s addr=%s result=throttled wait=%ld",
		         u != NULL ? u->name : "unknown", addr, wait);
		snprintf(retry, sizeof(retry), "%ld", wait);
		return web_login_form(w, c, 429,
		                      "Too many failed logins: wait a while, "
		                      "then try again.",
		                      retry);
	}
	ok = passwd_verify(u != NULL ? u->password_hash : w->dummy, pw,
	                   strlen(pw)) == 1 &&
	     u != NULL;
	explicit_bzero(pw, sizeof(pw));
	if (!ok) {
		web_throttle_fail(w->throttle, WEB_THROTTLE_ACCOUNT, name, now);
		web_throttle_fail(w->throttle, WEB_THROTTLE_ADDR, addr, now);
		log_line(w->o->log, "web login user=%s addr=%s result=refused",
		         u != NULL ? u->name : "unknown", addr);
		return web_login_form(w, c, 401, "Wrong name or password.",
		                      NULL);
	}
	web_throttle_clear(w->throttle, WEB_THROTTLE_ACCOUNT, name);
	/* never carry a session over a login: the id the browser had (which
	 * someone may have planted) ends, a new one begins */
	old = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, WEB_COOKIE);
	if (old != NULL)
		web_session_end(w->sessions, old);
	if ((s = web_session_new(w->sessions, u->name, (int)u->role, now)) ==
	    NULL) {
		log_line(w->o->log, "web login failed: getrandom: %s",
		         strerror(errno));
		return web_text(c, 503, "no session could be made\n");
	}
	log_line(w->o->log, "web login user=%s addr=%s role=%s result=ok",
	         u->name, addr, config_web_role_name(u->role));
	snprintf(cookie, sizeof(cookie),
	         WEB_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s", s->id,
	         w->secure ? "; Secure" : "");
	return web_redirect(c, "/", cookie);
}

/* POST /logout, with the session's CSRF token. */
static enum MHD_Result web_logout(struct web *w, struct MHD_Connection *c,
                                  const struct web_session *s,
                                  const struct web_req *rq)
{
	char cookie[160], addr[INET6_ADDRSTRLEN], user[sizeof(s->user)];

	web_client(c, addr, sizeof(addr));
	snprintf(user, sizeof(user), "%s", s->user);
	web_session_end(w->sessions, s->id);
	log_line(w->o->log, "web logout user=%s addr=%s", user, addr);
	snprintf(cookie, sizeof(cookie),
	         WEB_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; "
	                    "Max-Age=0%s",
	         w->secure ? "; Secure" : "");
	(void)rq;
	return web_redirect(c, "/login", cookie);
}

static enum MHD_Result web_releases(struct web *w, struct MHD_Connection *c,
                                    const struct web_session *s)
{
	struct web_admin_who who = {
	    .user = s->user,
	    .role = config_web_role_name((enum config_web_role)s->role),
	    .csrf = s->csrf};
	struct diag d = {0};
	char *body;
	size_t len;

	if (web_admin_releases(w->o->st, time(NULL), &who, &body, &len, &d) <
	    0) {
		log_line(w->o->log, "web releases failed: %s", diag_first(&d));
		diag_clear(&d);
		return web_bad(w, c, 503,
		               "The store cannot be read right now. Please try "
		               "again in a few minutes.");
	}
	return web_answer(c, 200, "text/html; charset=utf-8", body, len);
}

/* Every admin page: no live session, no data (303 to /login); a POST
 * without the session's CSRF token changes nothing (403). */
static enum MHD_Result web_admin(struct web *w, struct MHD_Connection *c,
                                 enum web_route route, bool get, bool post,
                                 const struct web_req *rq)
{
	const struct web_session *s = web_session_of(w, c);
	char csrf[WEB_SESSION_ID + 1];

	if (s == NULL)
		return web_redirect(c, "/login", NULL);
	if (post) {
		if (web_req_form(rq->body, rq->len, "csrf", csrf,
		                 sizeof(csrf)) != 1 ||
		    !web_session_equal(csrf, s->csrf)) {
			log_line(w->o->log, "web csrf user=%s result=refused",
			         s->user);
			return web_bad(w, c, 403,
			               "This form is out of date or was not "
			               "sent from herald's own page: reload the "
			               "page and try again.");
		}
		if (route == WEB_ROUTE_LOGOUT)
			return web_logout(w, c, s, rq);
	}
	if (get && route == WEB_ROUTE_HOME)
		return web_releases(w, c, s);
	return web_bad(w, c, 405, "This method is not allowed here.");
}

static enum MHD_Result web_handle(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	struct web *w = cls;
	struct web_req *rq = *con_cls;
	char token[WEB_TOKEN_MAX + 1];
	enum web_route route;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;

	(void)version;
	if (rq == NULL) {
		const char *cl = MHD_lookup_connection_value(
		    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		/* a body larger than any form: refused before it is read */
		if (cl != NULL && strtoull(cl, NULL, 10) > WEB_BODY_MAX)
			return web_bad(w, c, 413, "The request is too large.");
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (rq->len + *upload_size > sizeof(rq->body))
			rq->too_big = true;
		else {
			memcpy(rq->body + rq->len, upload, *upload_size);
			rq->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
		return web_bad(w, c, 413, "The request is too large.");
	route = web_req_route(url, token);
	if (route == WEB_ROUTE_NONE)
		return web_not_found(w, c);
	if (route == WEB_ROUTE_HEALTHZ && get)
		return web_text(c, 200, "ok\n");
	if (route == WEB_ROUTE_METRICS && get)
		return web_metrics_page(w, c);
	if ((route == WEB_ROUTE_UNSUB && (get || post)) ||
	    (route == WEB_ROUTE_UNSUB_UNDO && post))
		return web_unsub_page(w, c, route, post, token, rq);
	if (route == WEB_ROUTE_LOGIN && get)
		return web_login_form(w, c, 200, NULL, NULL);
	if (route == WEB_ROUTE_LOGIN && post)
		return web_login(w, c, rq);
	if (route == WEB_ROUTE_HOME || route == WEB_ROUTE_LOGOUT)
		return web_admin(w, c, route, get, post, rq);
	return web_bad(w, c, 405, "This method is not allowed here.");
}

static void web_done(void *cls, struct MHD_Connection *c, void **con_cls,
                     enum MHD_RequestTerminationCode why)
{
	(void)cls;
	(void)c;
	(void)why;
	free(*con_cls);
	*con_cls = NULL;
}

static void web_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct web *w = cls;
	char *line = NULL;

	if (vasprintf(&line, fmt, ap) < 0)
		return;
	line[strcspn(line, "\r\n")] = '\0';
	log_line(w->o->log, "web libmicrohttpd: %s", line);
	free(line);
}

struct web *web_start(const struct web_opts *o, bool *refused, struct diag *d)
{
	struct web *w = calloc(1, sizeof(*w));
	struct sockaddr_storage ss = {0};
	char addr[64];
	uint16_t port;
	size_t len;
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	bool tls = o->tls_cert != NULL || o->tls_key != NULL;
	char dummy[32];

	if (refused != NULL)
		*refused = false;
	if (w == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return NULL;
	}
	w->o = o;
	w->secure = tls || o->https_outside;
	if ((w->sessions = web_sessions_new(o->session_idle)) == NULL ||
	    (w->throttle = web_throttle_new()) == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		goto fail;
	}
	/* a password no one knows: 31 random bytes as letters */
	if (getrandom(dummy, sizeof(dummy) - 1, 0) !=
	    (ssize_t)(sizeof(dummy) - 1)) {
		diag_add(d, NULL, 0, 0, "getrandom: %s", strerror(errno));
		goto fail;
	}
	for (size_t i = 0; i + 1 < sizeof(dummy); i++)
		dummy[i] = (char)('a' + (unsigned char)dummy[i] % 26);
	dummy[sizeof(dummy) - 1] = '\0';
	if (passwd_hash(dummy, sizeof(dummy) - 1, w->dummy, sizeof(w->dummy),
	                d) < 0)
		goto fail;
	if (web_listen_parse(o->listen, addr, sizeof(addr), &port) < 0) {
		diag_add(d, NULL, 0, 0,
		         "listen address %s is not ADDRESS:PORT with a numeric "
		         "address ([ADDRESS]:PORT for IPv6)",
		         o->listen ? o->listen : "(none)");
		goto refuse;
	}
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, addr,
	                     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		flags |= MHD_USE_IPv6;
	} else {
		diag_add(d, NULL, 0, 0,
		         "listen address %s is not a numeric IPv4 or IPv6 "
		         "address",
		         addr);
		goto refuse;
	}
	if (tls && (o->tls_cert == NULL || o->tls_key == NULL)) {
		diag_add(d, NULL, 0, 0,
		         "web.tls_cert and web.tls_key go together: give both "
		         "or neither");
		goto refuse;
	}
	if (!tls && !web_loopback(addr)) {
		diag_add(d, NULL, 0, 0,
		         "refusing plain HTTP on %s, which is not a loopback "
		         "address: set web.tls_cert and web.tls_key, or listen "
		         "on 127.0.0.1 behind a reverse proxy that does TLS",
		         addr);
		goto refuse;
	}
	if (tls) {
		if (file_read(o->tls_cert, WEB_PEM_MAX, &w->cert, &len, d) <
		        0 ||
		    file_read(o->tls_key, WEB_PEM_MAX, &w->key, &len, d) < 0)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	w->mhd = MHD_start_daemon(
	    flags, port, NULL, NULL, web_handle, w, MHD_OPTION_EXTERNAL_LOGGER,
	    web_mhd_log, (void *)w, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)WEB_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)WEB_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)WEB_TIMEOUT, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)WEB_MEMORY_LIMIT, MHD_OPTION_NOTIFY_COMPLETED, web_done,
	    (void *)NULL, tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
	    w->cert, MHD_OPTION_HTTPS_MEM_KEY, w->key, MHD_OPTION_END);
	if (w->mhd == NULL) {
		diag_add(d, NULL, 0, 0,
		         "cannot serve on %s: the address is in use or not "
		         "this host's, or the certificate or key is not valid "
		         "PEM",
		         o->listen);
		goto fail;
	}
	return w;
refuse:
	if (refused != NULL)
		*refused = true;
fail:
	if (w->key != NULL)
		explicit_bzero(w->key, strlen(w->key));
	free(w->key);
	free(w->cert);
	web_sessions_free(w->sessions);
	web_throttle_free(w->throttle);
	free(w);
	return NULL;
}

uint16_t web_port(const struct web *w)
{
	const union MHD_DaemonInfo *i =
	    MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);

	return i != NULL ? i->port : 0;
}

void web_stop(struct web *w)
{
	if (w == NULL)
		return;
	MHD_stop_daemon(w->mhd);
	if (w->key != NULL)
		explicit_bzero(w->key, strlen(w->key));
	free(w->key);
	free(w->cert);
	web_sessions_free(w->sessions);
	web_throttle_free(w->throttle);
	free(w);
}
