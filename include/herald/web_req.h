/*
 * web_req — what herald-web reads from a request before anything else
 * looks at it: which page a path names (and the unsubscribe token in it)
 * and one field of an application/x-www-form-urlencoded body. Pure
 * functions over untrusted bytes, with hard limits, fuzzed
 * (fuzz/fuzz_web_req.c).
 *
 * Paths are matched exactly: "/", "/login", "/logout", "/healthz",
 * "/metrics", "/u/TOKEN" and "/u/TOKEN/undo", TOKEN being 1 to
 * WEB_TOKEN_MAX letters, digits and '-' (the local part after
 * "unsubscribe+" that verp.c makes). Anything
 * else, "..", "%2e", a doubled or trailing '/' included, names no page:
 * no path is ever mapped onto a file.
 *
 * Never fails but as stated; never allocates.
 */
#ifndef HERALD_WEB_REQ_H
#define HERALD_WEB_REQ_H

#include <stddef.h>

/* The longest token accepted: verp.c's are 49 characters (32 hex, '-',
 * 16 base32); a little room, no more. */
enum { WEB_TOKEN_MAX = 64 };

enum web_route {
	WEB_ROUTE_NONE, /* no such page: 404 */
	WEB_ROUTE_HEALTHZ,
	WEB_ROUTE_METRICS,
	WEB_ROUTE_UNSUB,      /* /u/TOKEN */
	WEB_ROUTE_UNSUB_UNDO, /* /u/TOKEN/undo */
	WEB_ROUTE_HOME,       /* / : the releases (admin) */
	WEB_ROUTE_LOGIN,      /* /login */
	WEB_ROUTE_LOGOUT,     /* /logout (admin) */
};

/* The page path names; for the unsubscribe routes token gets TOKEN
 * (NUL-terminated; it must hold WEB_TOKEN_MAX + 1 bytes), else "".
 * path NULL is WEB_ROUTE_NONE. */
enum web_route web_req_route(const char *path, char token[WEB_TOKEN_MAX + 1]);

/* The value of the field name in the form body (len bytes, need not be
 * terminated), '+' and %XX decoded, into out (size bytes, always
 * terminated when size > 0). Returns 1 when found, 0 when the body has
 * no such field, -1 when the body is malformed (a bad %-escape, a
 * decoded NUL, more than WEB_FORM_MAX bytes or WEB_FORM_FIELDS fields)
 * or the value does not fit in out (out is then ""; also when it is not
 * found). The first occurrence counts. */
enum { WEB_FORM_MAX = 4096, WEB_FORM_FIELDS = 32 };
int web_req_form(const char *body, size_t len, const char *name, char *out,
                 size_t size);

/* Does the POST body (len bytes) of content type ctype (the header's
 * value, NULL: none) ask to unsubscribe: the field List-Unsubscribe with
 * the value One-Click (RFC 8058), in application/x-www-form-urlencoded
 * (the page's button; some mail clients) or multipart/form-data (what RFC
 * 8058 says clients SHOULD send)? 1 yes, 0 no, -1 malformed (a body over
 * WEB_FORM_MAX, a multipart body without its boundary). No content type
 * is read as a form. */
int web_req_one_click(const char *ctype, const char *body, size_t len);

#endif
