/*
 * verp — signed per-delivery return paths and unsubscribe addresses, so
 * that bounces and unsubscribe requests can be tied to a delivery and
 * cannot be forged (see verp.h).
 *
 * A token is K "-" MAC, where K is the delivery key from the Message-ID
 * and MAC is HMAC-SHA256(secret, "herald-verp-v1:" kind ":" K) cut to its
 * first 80 bits and written in lowercase RFC 4648 base32 (exactly 16
 * characters, no padding). The "v1" lets a later scheme be told apart
 * from this one. 80 bits are plenty against online guessing, where each
 * guess costs the forger a mail, and keep the local part at 57 octets,
 * under the 64 that RFC 5321 allows.
 *
 * Checking recomputes the MAC and compares every character, whatever the
 * first difference, so the time taken does not tell a forger how much of
 * a guess was right.
 */
#include "herald/verp.h"
#include "herald/file.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tunables. */
enum {
	/* A secret is a few dozen random bytes; a file much larger than that
	 * is the wrong file. */
	VERP_SECRET_MAX = 4096,
	/* Below 128 bits a secret could be guessed offline from one
	 * captured address. */
	VERP_SECRET_MIN = 16,
	/* RFC 5321 4.5.3.1.3: a path is at most 256 octets with its < >, so
	 * an address at most 254; ours is 58 octets plus the domain. */
	VERP_DOMAIN_MAX = 254 - 58,
	/* An address to check, with any spaces around it: generous for
	 * spacing, small enough that nothing large is scanned. */
	VERP_INPUT_MAX = 1024,
};

enum {
	VERP_KEY_LEN = 32,   /* hex characters of the delivery key */
	VERP_MAC_BYTES = 10, /* 80 bits */
	VERP_MAC_LEN = 16,   /* base32 characters for 80 bits */
	VERP_TOKEN_LEN = VERP_KEY_LEN + 1 + VERP_MAC_LEN,
};

struct verp {
	unsigned char *secret;
	size_t secret_len;
	char *domain; /* lowercased */
};

/* The local-part prefix of each kind, also the kind's name in the MAC. */
static const char *const verp_kind_names[] = {
    [VERP_BOUNCES] = "bounces",
    [VERP_UNSUBSCRIBE] = "unsubscribe",
};

static const char verp_b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static int verp_is_lower_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int verp_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Do n bytes of a and b match without case? ASCII only, whatever the
 * locale: strncasecmp would follow it. */
static int verp_same_nocase(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (verp_lower((unsigned char)a[i]) !=
		    verp_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* A DNS name: dot-separated labels of letters, digits and inner hyphens,
 * 1 to 63 characters each. Returns NULL when valid, else what is wrong. */
static const char *verp_domain_problem(const char *s)
{
	size_t label = 0, i;

	if (*s == '\0')
		return "is empty";
	if (strlen(s) > VERP_DOMAIN_MAX)
		return "is too long: a return path must fit in 254 octets";
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return "has an empty label or one ending with "
				       "'-'";
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return "holds a character other than letters, "
			       "digits, '-' and '.' (write an "
			       "internationalised domain in its xn-- form)";
		if (label == 0 && c == '-')
			return "has a label starting with '-'";
		if (++label > 63)
			return "has a label longer than 63 characters";
	}
	if (label == 0 || s[i - 1] == '-')
		return "has an empty label or one ending with '-'";
	return NULL;
}

/* Read the secret file through one descriptor, so that the file whose
 * mode was checked is the file whose bytes are used. */
static int verp_read_secret(struct verp *v, const char *path, struct diag *d)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		diag_add(d, NULL, 0, 0, "bounce secret %s: cannot open: %s",
		         path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		diag_add(d, NULL, 0, 0, "bounce secret %s: cannot stat: %s",
		         path, strerror(errno));
		goto fail;
	}
	if (file_private_check(&st, "bounce secret", path, d) < 0)
		goto fail;
	/* One byte more than allowed, to see a file that is too large
	 * whatever its size claimed. */
	buf = malloc(VERP_SECRET_MAX + 1);
	if (buf == NULL) {
		diag_add(d, NULL, 0, 0, "bounce secret %s: out of memory",
		         path);
		goto fail;
	}
	while (len < VERP_SECRET_MAX + 1) {
		ssize_t n = read(fd, buf + len, VERP_SECRET_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			diag_add(d, NULL, 0, 0,
			         "bounce secret %s: cannot read: %s", path,
			         strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > VERP_SECRET_MAX) {
		diag_add(d, NULL, 0, 0,
		         "bounce secret %s is larger than %d bytes: give the "
		         "file holding only the secret",
		         path, VERP_SECRET_MAX);
		goto fail;
	}
	/* Editors and `echo` end the file with a newline. */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len < VERP_SECRET_MIN) {
		diag_add(d, NULL, 0, 0,
		         "bounce secret %s is shorter than %d bytes: make one "
		         "with: head -c 32 /dev/urandom | base64 > %s",
		         path, VERP_SECRET_MIN, path);
		goto fail;
	}
	close(fd);
	v->secret = buf;
	v->secret_len = len;
	return 0;
fail:
	if (buf != NULL) {
		explicit_bzero(buf, VERP_SECRET_MAX + 1);
		free(buf);
	}
	close(fd);
	return -1;
}

static int verp_env_secret(struct verp *v, const char *name, struct diag *d)
{
	const char *s = getenv(name);
	size_t len;

	if (s == NULL) {
		diag_add(d, NULL, 0, 0,
		         "bounce secret: environment variable %s is not set",
		         name);
		return -1;
	}
	len = strlen(s);
	if (len < VERP_SECRET_MIN) {
		diag_add(d, NULL, 0, 0,
		         "bounce secret in environment variable %s is shorter "
		         "than %d bytes: make one with: head -c 32 "
		         "/dev/urandom | base64",
		         name, VERP_SECRET_MIN);
		return -1;
	}
	v->secret = malloc(len);
	if (v->secret == NULL) {
		diag_add(d, NULL, 0, 0, "bounce secret: out of memory");
		return -1;
	}
	memcpy(v->secret, s, len);
	v->secret_len = len;
	return 0;
}

struct verp *verp_load(const char *secret_file, const char *secret_env,
                       const char *domain, struct diag *d)
{
	struct verp *v;
	const char *why;
	size_t i;

	if ((secret_file == NULL) == (secret_env == NULL)) {
		diag_add(d, NULL, 0, 0,
		         "bounce secret: give a secret file or an environment "
		         "variable (%s)",
		         secret_file == NULL ? "neither was given"
		                             : "both were given; keep one");
		return NULL;
	}
	if (domain == NULL)
		domain = "";
	why = verp_domain_problem(domain);
	if (why != NULL) {
		/* The name is shown only when printable: control
		 * characters must not reach a terminal or a log line. */
		int shown = 1;
		for (i = 0; domain[i] != '\0'; i++)
			if ((unsigned char)domain[i] < 0x20 ||
			    domain[i] == 0x7f)
				shown = 0;
		diag_add(d, NULL, 0, 0,
		         "bounce domain %s%s%s %s: give the domain that "
		         "receives bounces, such as bounces.example.org",
		         shown ? "\"" : "",
		         shown ? domain
		               : "(not shown: it holds control "
		                 "characters)",
		         shown ? "\"" : "", why);
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL) {
		diag_add(d, NULL, 0, 0, "bounce secret: out of memory");
		return NULL;
	}
	v->domain = strdup(domain);
	if (v->domain == NULL) {
		diag_add(d, NULL, 0, 0, "bounce secret: out of memory");
		goto fail;
	}
	for (i = 0; v->domain[i] != '\0'; i++)
		v->domain[i] = (char)verp_lower((unsigned char)v->domain[i]);
	if (secret_file != NULL ? verp_read_secret(v, secret_file, d)
	                        : verp_env_secret(v, secret_env, d))
		goto fail;
	return v;
fail:
	verp_free(v);
	return NULL;
}

void verp_free(struct verp *v)
{
	if (v == NULL)
		return;
	if (v->secret != NULL) {
		explicit_bzero(v->secret, v->secret_len);
		free(v->secret);
	}
	free(v->domain);
	free(v);
}

const char *verp_domain(const struct verp *v)
{
	return v->domain;
}

/* The 16 base32 characters of the MAC for kind and the 32-hex key (not
 * NUL-terminated) into out. Returns 0, or -1 when GnuTLS fails. */
static int verp_mac(const struct verp *v, enum verp_kind kind, const char *key,
                    char out[VERP_MAC_LEN])
{
	static const char prefix[] = "herald-verp-v1:";
	/* prefix, the longest kind name, ':', the key */
	char data[sizeof(prefix) - 1 + 11 + 1 + VERP_KEY_LEN];
	unsigned char digest[32];
	const char *name = verp_kind_names[kind];
	size_t n = 0, nl = strlen(name), i;
	unsigned bits = 0, acc = 0;

	memcpy(data, prefix, sizeof(prefix) - 1);
	n += sizeof(prefix) - 1;
	memcpy(data + n, name, nl);
	n += nl;
	data[n++] = ':';
	memcpy(data + n, key, VERP_KEY_LEN);
	n += VERP_KEY_LEN;
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, v->secret, v->secret_len, data,
	                     n, digest) < 0)
		return -1;
	/* 80 bits, five at a time, most significant first (RFC 4648). */
	for (i = 0, n = 0; i < VERP_MAC_BYTES; i++) {
		acc = (acc << 8) | digest[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[n++] = verp_b32[(acc >> bits) & 31];
		}
	}
	explicit_bzero(digest, sizeof(digest));
	return 0;
}

char *verp_message_id(const struct verp *v, const void *seed, size_t seedlen,
                      const char *domain)
{
	/* its own prefix: a Message-ID is never a valid return path MAC */
	static const char prefix[] = "herald-message-id-v1:";
	unsigned char digest[32];
	char hex[VERP_KEY_LEN + 1];
	char *data, *id = NULL;

	if ((data = malloc(sizeof(prefix) - 1 + seedlen)) == NULL)
		return NULL;
	memcpy(data, prefix, sizeof(prefix) - 1);
	memcpy(data + sizeof(prefix) - 1, seed, seedlen);
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, v->secret, v->secret_len, data,
	                     sizeof(prefix) - 1 + seedlen, digest) < 0)
		goto done;
	for (size_t i = 0; i < VERP_KEY_LEN / 2; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (asprintf(&id, "%s@%s", hex, domain) < 0)
		id = NULL;
done:
	explicit_bzero(digest, sizeof(digest));
	free(data);
	return id;
}

static char *verp_address(const struct verp *v, enum verp_kind kind,
                          const char *message_id)
{
	char mac[VERP_MAC_LEN];
	char *addr = NULL;
	size_t i;

	if (v == NULL || message_id == NULL)
		return NULL;
	for (i = 0; i < VERP_KEY_LEN; i++)
		if (!verp_is_lower_hex((unsigned char)message_id[i]))
			return NULL;
	if (message_id[VERP_KEY_LEN] != '@' ||
	    message_id[VERP_KEY_LEN + 1] == '\0')
		return NULL;
	if (verp_mac(v, kind, message_id, mac) < 0)
		return NULL;
	if (asprintf(&addr, "%s+%.*s-%.*s@%s", verp_kind_names[kind],
	             VERP_KEY_LEN, message_id, VERP_MAC_LEN, mac,
	             v->domain) < 0)
		return NULL;
	return addr;
}

char *verp_bounce_address(const struct verp *v, const char *message_id)
{
	return verp_address(v, VERP_BOUNCES, message_id);
}

char *verp_unsubscribe_address(const struct verp *v, const char *message_id)
{
	return verp_address(v, VERP_UNSUBSCRIBE, message_id);
}

/* Parse "<kind>+<key>-<mac>@<domain>" exactly filling len bytes at s.
 * Sets *kind, key (lowercased, NUL-terminated) and mac (lowercased).
 * Returns 0, or -1 when s is not of that shape or not for v's domain. */
static int verp_parse(const struct verp *v, const char *s, size_t len,
                      enum verp_kind *kind, char key[VERP_KEY_LEN + 1],
                      char mac[VERP_MAC_LEN])
{
	size_t k, nl, dl = strlen(v->domain), i;
	const char *p;

	for (k = 0; k < sizeof(verp_kind_names) / sizeof(*verp_kind_names);
	     k++) {
		nl = strlen(verp_kind_names[k]);
		if (len == nl + 1 + VERP_TOKEN_LEN + 1 + dl &&
		    verp_same_nocase(s, verp_kind_names[k], nl) && s[nl] == '+')
			break;
	}
	if (k == sizeof(verp_kind_names) / sizeof(*verp_kind_names))
		return -1;
	*kind = (enum verp_kind)k;
	p = s + nl + 1;
	for (i = 0; i < VERP_KEY_LEN; i++) {
		int c = verp_lower((unsigned char)p[i]);
		if (!verp_is_lower_hex(c))
			return -1;
		key[i] = (char)c;
	}
	key[VERP_KEY_LEN] = '\0';
	p += VERP_KEY_LEN;
	if (*p++ != '-')
		return -1;
	for (i = 0; i < VERP_MAC_LEN; i++) {
		int c = verp_lower((unsigned char)p[i]);
		if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')))
			return -1;
		mac[i] = (char)c;
	}
	p += VERP_MAC_LEN;
	if (*p++ != '@')
		return -1;
	/* The length check above makes the domain exactly dl bytes. */
	if (!verp_same_nocase(p, v->domain, dl))
		return -1;
	return 0;
}

int verp_check(const struct verp *v, const char *address, enum verp_kind *kind,
               char key[33])
{
	char k[VERP_KEY_LEN + 1], mac[VERP_MAC_LEN], want[VERP_MAC_LEN];
	enum verp_kind kd;
	unsigned diff = 0;
	size_t len, i;
	const char *s;

	if (key != NULL)
		key[0] = '\0';
	if (v == NULL || address == NULL)
		return -1;
	/* Ours is at most 256 octets with < > (RFC 5321); the cap on the
	 * whole input, spaces included, keeps from measuring anything much
	 * longer, and a cut-off input is never mistaken for a whole one. */
	len = strnlen(address, VERP_INPUT_MAX + 1);
	if (len > VERP_INPUT_MAX)
		return -1;
	s = address;
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len > 256)
		return -1;
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s++;
		len -= 2;
	}
	if (verp_parse(v, s, len, &kd, k, mac) < 0)
		return -1;
	if (verp_mac(v, kd, k, want) < 0)
		return -1;
	for (i = 0; i < VERP_MAC_LEN; i++)
		diff |= (unsigned)(mac[i] ^ want[i]);
	if (diff != 0)
		return -1;
	if (kind != NULL)
		*kind = kd;
	if (key != NULL)
		memcpy(key, k, sizeof(k));
	return 0;
}
