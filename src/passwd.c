/*
 * passwd — argon2id hashes for herald-web's users (see passwd.h).
 *
 * The parameters: OWASP's Password Storage Cheat Sheet gives, for
 * argon2id, m=19 MiB, t=2, p=1 as its minimum, equal in strength to its
 * other rows (m=46 MiB t=1 ... m=7 MiB t=5). herald-web checks a login in
 * its one thread, and a few admins log in a few times a day, so the
 * minimum's 20-40 ms on a small server is cheap for us and still costs a
 * guesser with a stolen herald.yaml 19 MiB and two passes per guess. p=1:
 * the server's thread is one thread. A 16-byte salt (RFC 9106's
 * recommendation) and a 32-byte hash (RFC 9106's tag length).
 */
#include "herald/passwd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <argon2.h>

/* A number of at most 10 digits at *s, then stop; -1 when none. */
static long passwd_num(const char **s, char stop)
{
	long v = 0;
	int n = 0;

	while (**s >= '0' && **s <= '9' && n < 10) {
		v = v * 10 + (**s - '0');
		(*s)++;
		n++;
	}
	if (n == 0 || (n > 1 && (*s)[-n] == '0') || **s != stop)
		return -1;
	(*s)++;
	return v;
}

/* Base64 without padding (RFC 4648 alphabet) up to '$' or the end:
 * how many bytes it decodes to, or -1 when it is not that. */
static long passwd_b64(const char **s, char stop)
{
	size_t n = 0;

	while ((**s >= 'A' && **s <= 'Z') || (**s >= 'a' && **s <= 'z') ||
	       (**s >= '0' && **s <= '9') || **s == '+' || **s == '/') {
		(*s)++;
		n++;
	}
	if (**s != stop || n % 4 == 1)
		return -1;
	if (stop != '\0')
		(*s)++;
	return (long)(n * 3 / 4);
}

bool passwd_valid(const char *s)
{
	static const char prefix[] = "$argon2id$v=19$m=";
	long m, t, p, salt, hash;

	if (s == NULL || strlen(s) >= PASSWD_ENCODED_MAX ||
	    strncmp(s, prefix, sizeof(prefix) - 1) != 0)
		return false;
	s += sizeof(prefix) - 1;
	if ((m = passwd_num(&s, ',')) < 0 || strncmp(s, "t=", 2) != 0)
		return false;
	s += 2;
	if ((t = passwd_num(&s, ',')) < 0 || strncmp(s, "p=", 2) != 0)
		return false;
	s += 2;
	if ((p = passwd_num(&s, '$')) < 0)
		return false;
	if (p < 1 || p > 16 || t < 1 || t > 64 || m < 8 * p || m > 1024 * 1024)
		return false;
	salt = passwd_b64(&s, '$');
	hash = passwd_b64(&s, '\0');
	return salt >= 8 && salt <= 64 && hash >= 16 && hash <= 64;
}

int passwd_hash(const char *pw, size_t len, char *out, size_t size,
                struct diag *d)
{
	unsigned char salt[PASSWD_SALT];
	size_t got = 0;
	int rc;

	if (len == 0 || len > PASSWD_MAX) {
		diag_add(d, NULL, 0, 0,
		         "a password is 1 to %d bytes long, not %zu",
		         PASSWD_MAX, len);
		return -1;
	}
	while (got < sizeof(salt)) {
		ssize_t n = getrandom(salt + got, sizeof(salt) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			diag_add(d, NULL, 0, 0, "getrandom: %s",
			         strerror(errno));
			return -1;
		}
		got += (size_t)n;
	}
	rc = argon2id_hash_encoded(PASSWD_T, PASSWD_M_KIB, PASSWD_P, pw, len,
	                           salt, sizeof(salt), PASSWD_HASH, out, size);
	explicit_bzero(salt, sizeof(salt));
	if (rc != ARGON2_OK) {
		diag_add(d, NULL, 0, 0, "argon2id: %s",
		         argon2_error_message(rc));
		return -1;
	}
	return 0;
}

int passwd_verify(const char *encoded, const char *pw, size_t len)
{
	if (!passwd_valid(encoded) || len == 0 || len > PASSWD_MAX)
		return 0;
	return argon2id_verify(encoded, pw, len) == ARGON2_OK ? 1 : 0;
}
