/*
 * web_admin — the admin console's pages (behind a login, web.c decides
 * who may see them): the login form and the releases list, with the
 * figures `herald status` shows, read through the same store calls
 * (store_releases_each, store_release_figures). Server-rendered through
 * herald's Mustache engine with HTML escaping, no script, the stylesheet
 * inline: they work under WEB_PAGE_CSP.
 *
 * Library code: 0 / -1 with the reason in a struct diag.
 */
#ifndef HERALD_WEB_ADMIN_H
#define HERALD_WEB_ADMIN_H

#include <stddef.h>
#include <time.h>

#include "herald/diag.h"
#include "herald/store.h"

/* Who is logged in, as every logged-in page shows it. */
struct web_admin_who {
	const char *user;
	const char *role; /* "viewer", "operator" */
	const char *csrf; /* the session's token, for every form */
};

/* The login form into *out (malloc'd) and *len; message (NULL: none) is
 * shown above it (a wrong password, a lockout). */
int web_admin_login(const char *message, char **out, size_t *len,
                    struct diag *d);

/* The releases list as of now, into *out (malloc'd) and *len. -1 when the
 * store fails (d says why). */
int web_admin_releases(struct store *st, time_t now,
                       const struct web_admin_who *who, char **out, size_t *len,
                       struct diag *d);

#endif
