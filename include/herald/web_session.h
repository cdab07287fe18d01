/*
 * web_session — herald-web's admin sessions, kept in its memory: a
 * session id of 32 random bytes (getrandom) as 64 hex digits, the
 * cookie's value, and a CSRF token of the same kind that every form of a
 * logged-in page carries. A session ends after idle seconds without a
 * request, at logout, or when the table is full and a new login needs
 * its place (the longest idle goes). Restarting herald-web ends them all.
 *
 * Ids and tokens are compared in constant time (web_session_equal), and
 * a lookup compares the id given with every session's, so the time taken
 * tells nothing of which sessions exist.
 *
 * Not thread-safe: herald-web's one server thread uses it. Library code:
 * NULL / -1 with errno; never aborts.
 */
#ifndef HERALD_WEB_SESSION_H
#define HERALD_WEB_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* 32 random bytes as hex, and room for the NUL. */
enum { WEB_SESSION_ID = 64 };

/* The most sessions kept: a press office has a handful of admins with a
 * browser or two each; a bound keeps logins from filling the memory. */
enum { WEB_SESSION_MAX = 256 };

struct web_session {
	char id[WEB_SESSION_ID + 1];
	char csrf[WEB_SESSION_ID + 1];
	char user[65]; /* web.users name */
	int role;      /* enum config_web_role */
	time_t last;   /* the last request */
};

struct web_sessions;

/* A table for sessions that end after idle seconds without a request.
 * NULL when out of memory. */
struct web_sessions *web_sessions_new(unsigned idle);

void web_sessions_free(struct web_sessions *t);

/* A new session for user at now, with a fresh id and CSRF token (never
 * an id given before). Returns it (owned by t, valid until the next call
 * on t), or NULL with errno when there is no randomness (getrandom). */
const struct web_session *
web_session_new(struct web_sessions *t, const char *user, int role, time_t now);

/* The live session whose id is id (NULL: none), its idle time renewed to
 * now; NULL when none (an expired one is dropped). Owned by t. */
const struct web_session *web_session_find(struct web_sessions *t,
                                           const char *id, time_t now);

/* End the session whose id is id, if any. */
void web_session_end(struct web_sessions *t, const char *id);

/* Are a and b (NUL-terminated) the same WEB_SESSION_ID hex digits? In
 * time that does not depend on where they differ. NULL is never equal. */
bool web_session_equal(const char *a, const char *b);

#endif
