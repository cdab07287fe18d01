/*
 * web_throttle — how herald-web slows down password guessing at its
 * login form, per account name and per client address. The rule (also in
 * herald-web(8)):
 *
 *   A key (an account name, or a client address) that fails to log in
 *   WEB_THROTTLE_FAILS times within WEB_THROTTLE_WINDOW seconds is locked
 *   out: every try with it is refused (429) without the password being
 *   checked, for WEB_THROTTLE_DELAY seconds, doubled at each further
 *   lockout within the window (the next failure after a lockout ends
 *   locks again), up to WEB_THROTTLE_DELAY_MAX. A window starts at a
 *   key's first failure after its last window ended. A successful login
 *   clears the account's count; the address's count stays, or a guesser
 *   with one account of their own could clear it between guesses.
 *
 * An address has a larger allowance than an account
 * (WEB_THROTTLE_ADDR_FAILS), because admins behind one NAT or one reverse
 * proxy share it. Unknown account names are counted like known ones, so
 * the answers do not tell which names exist.
 *
 * The table is bounded: when full, the entry idle longest that is not
 * locked out makes room (else the oldest). Not thread-safe: herald-web's
 * one server thread uses it. Never fails.
 */
#ifndef HERALD_WEB_THROTTLE_H
#define HERALD_WEB_THROTTLE_H

#include <time.h>

enum {
	WEB_THROTTLE_FAILS = 5,        /* OWASP: lock an account after a few */
	WEB_THROTTLE_ADDR_FAILS = 20,  /* an office's admins, a few typos
	                                * each */
	WEB_THROTTLE_WINDOW = 15 * 60, /* failures within 15 minutes */
	WEB_THROTTLE_DELAY = 15,       /* the first lockout: long enough to
	                                * make guessing slow, short enough not
	                                * to lock out an admin who typed wrong */
	WEB_THROTTLE_DELAY_MAX = 15 * 60, /* a guesser gets ~4 tries an hour */
	WEB_THROTTLE_KEYS = 1024,         /* keys remembered */
};

enum web_throttle_kind { WEB_THROTTLE_ACCOUNT, WEB_THROTTLE_ADDR };

struct web_throttle;

/* NULL when out of memory. */
struct web_throttle *web_throttle_new(void);
void web_throttle_free(struct web_throttle *t);

/* Seconds until key may try again at now; 0: it may. */
long web_throttle_wait(struct web_throttle *t, enum web_throttle_kind k,
                       const char *key, time_t now);

/* A failed login for key at now. */
void web_throttle_fail(struct web_throttle *t, enum web_throttle_kind k,
                       const char *key, time_t now);

/* A successful login: key's count is cleared. */
void web_throttle_clear(struct web_throttle *t, enum web_throttle_kind k,
                        const char *key);

#endif
