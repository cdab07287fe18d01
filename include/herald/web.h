/*
 * web — herald-web's HTTP(S) server (libmicrohttpd): /healthz, /metrics
 * (Prometheus text, every metric herald_...), the public unsubscribe
 * page /u/TOKEN (web_unsub.c, web_page.c), and the admin console behind
 * a login (/login, /logout, / the releases: web_admin.c), its sessions
 * (web_session.c) and login throttling (web_throttle.c). herald-web.c is
 * its main.
 *
 * Every admin page without a live session answers 303 to /login and
 * nothing else; every POST of a logged-in page must carry the session's
 * CSRF token (the form field csrf) or is refused with 403 and changes
 * nothing. The session cookie is herald_session: HttpOnly,
 * SameSite=Strict, Path=/, and Secure when herald-web serves HTTPS or
 * web.base_url is https:// (a reverse proxy does TLS).
 *
 * One internal polling thread answers every request, so the one store
 * handle is used by one thread at a time, as store.h requires; requests
 * are bounded (WEB_BODY_MAX body, WEB_MEMORY_LIMIT per connection for the
 * headers, a connection limit overall and per client address, an idle
 * timeout), and every page carries WEB_PAGE_CSP.
 *
 * Plain HTTP is served only on a literal loopback address (127.0.0.0/8,
 * ::1): anywhere else the pages would cross the network in clear, so
 * web_start refuses (TLS through libmicrohttpd's GnuTLS, or a reverse
 * proxy on the same host that terminates TLS).
 *
 * Library code: NULL / -1 with the reason in a struct diag.
 */
#ifndef HERALD_WEB_H
#define HERALD_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "herald/config.h"
#include "herald/diag.h"
#include "herald/store.h"
#include "herald/verp.h"

/* The tunables, each with why (web.c has the table of defaults). */
enum {
	WEB_BODY_MAX = 4096,          /* a one-click body is 26 bytes */
	WEB_MEMORY_LIMIT = 16 * 1024, /* headers of a request: browsers send
	                               * 1-2 KiB; MHD refuses more */
	WEB_CONNECTIONS = 64,         /* a press list's clicks come a few a
	                               * minute; a flood is refused early */
	WEB_PER_IP = 8,               /* one browser opens at most 6 */
	WEB_TIMEOUT = 15,             /* seconds idle before a connection is
	                               * closed: slow clients hold nothing */
};

struct web_opts {
	const char *listen;   /* "ADDR:PORT" or "[ADDR6]:PORT", numeric */
	const char *tls_cert; /* PEM files; both or neither */
	const char *tls_key;
	struct store *st;        /* opened read/write by the caller */
	const struct verp *verp; /* NULL: no unsubscribe tokens (404) */
	FILE *log;               /* one line per request */
	/* the admin console: who may log in (none: no one), how long a
	 * session may stay idle, whether the browser reaches herald-web
	 * over https (Secure cookies) though herald-web itself serves
	 * plain HTTP behind a proxy */
	const struct config_web_user *users;
	size_t nusers;
	unsigned session_idle;
	bool https_outside;
};

struct web;

/* Is the numeric address (no port) a loopback address? */
bool web_loopback(const char *addr);

/* Split listen into addr (no brackets) and *port; -1 when malformed. */
int web_listen_parse(const char *listen, char *addr, size_t addrsize,
                     uint16_t *port);

/* Start serving (a login's dummy hash is made first: about one login's
 * time). Returns NULL with the reason in d; *refused (may be
 * NULL) is set when the reason is plain HTTP on an address that is not
 * loopback or a listen address that is not one (configuration, not the
 * system). */
struct web *web_start(const struct web_opts *o, bool *refused, struct diag *d);

/* The port bound (for listen ports 0). */
uint16_t web_port(const struct web *w);

/* Stop: finish the request being answered, close every connection. */
void web_stop(struct web *w);

/* The /metrics text into *out (malloc'd); -1 when the store fails. */
int web_metrics(struct store *st, char **out, size_t *len, struct diag *d);

#endif
