/*
 * web — herald-web's server (see web.h): the request's life (headers,
 * a bounded body, one answer), the routes, /metrics.
 */
#include "herald/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "herald/file.h"
#include "herald/log.h"
#include "herald/web_page.h"
#include "herald/web_req.h"
#include "herald/web_unsub.h"

/* The largest certificate chain or key file read. */
#define WEB_PEM_MAX (1024 * 1024)

struct web {
	struct MHD_Daemon *mhd;
	const struct web_opts *o;
	char *cert, *key; /* PEM, kept while MHD runs */
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

static enum MHD_Result web_answer(struct MHD_Connection *c, unsigned status,
                                  const char *type, char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
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

	if (refused != NULL)
		*refused = false;
	if (w == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return NULL;
	}
	w->o = o;
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
	free(w);
}
