/*
 * passwd — the argon2id password hashes of herald-web's users (web.users
 * in herald.yaml): `herald passwd` makes one, herald-web checks a login
 * against one, config.c checks that a configured hash is one. libargon2
 * (the reference implementation, Debian libargon2-dev).
 *
 * A hash is the standard encoded form,
 * $argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH (base64 without
 * padding), so hashes made by other tools (argon2(1), Python's
 * argon2-cffi) are taken as well.
 *
 * Library code: 0 / -1 with the reason in a struct diag; never aborts.
 */
#ifndef HERALD_PASSWD_H
#define HERALD_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"

/* The parameters herald passwd uses (passwd.c says why). */
enum {
	PASSWD_M_KIB = 19 * 1024,
	PASSWD_T = 2,
	PASSWD_P = 1,
	PASSWD_SALT = 16,
	PASSWD_HASH = 32,
	/* the longest encoded hash accepted, and so the buffer to give
	 * passwd_hash: ours are 97 characters */
	PASSWD_ENCODED_MAX = 256,
	/* the longest password taken: a passphrase fits, a megabyte pasted
	 * by mistake (or by an attacker at the login form) does not */
	PASSWD_MAX = 1024,
};

/* Hash the password (len bytes, 1 to PASSWD_MAX) with a fresh random salt
 * (getrandom) into out (PASSWD_ENCODED_MAX bytes, NUL-terminated).
 * -1 when len is out of range, the system has no randomness to give or
 * memory runs out. */
int passwd_hash(const char *pw, size_t len, char *out, size_t size,
                struct diag *d);

/* Does the password match encoded? 1 yes, 0 no (also when encoded is not
 * an argon2id hash that passwd_valid accepts, or len is out of range). */
int passwd_verify(const char *encoded, const char *pw, size_t len);

/* Is s an argon2id hash in the encoded form, version 19, with parameters
 * herald accepts (m from 8*p KiB to 1 GiB, t 1 to 64, p 1 to 16, a salt
 * of 8 to 64 bytes, a hash of 16 to 64 bytes)? The limits keep a
 * mistyped m from making every login take minutes. */
bool passwd_valid(const char *s);

#endif
