/*
 * dkim — DKIM-Signature fields (RFC 6376, RFC 8463) for the messages herald
 * sends, so that receivers can tie each press release to the sending
 * domain and DMARC passes (see dkim.h).
 *
 * A signer holds one GnuTLS private key, loaded once with the checks an
 * operator needs to hear about at start-up (file mode, key type and size,
 * domain and selector syntax); signing then does no I/O. Signing one
 * message is two streaming passes over its bytes: the body is
 * canonicalised (relaxed) chunk by chunk straight into a SHA-256 context,
 * and the selected header fields, then our own DKIM-Signature field with an
 * empty b=, into a second one. Nothing is copied but small staging chunks,
 * so the cost is linear in the message size plus one private-key operation.
 *
 * The signed field is built first with b= empty and in its final folded
 * layout; the base64 signature is then appended after "b=". A verifier
 * deletes the b= value with its folding whitespace and gets back exactly
 * the bytes that were signed.
 */
#include "herald/dkim.h"
#include "herald/file.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tunables. */
enum {
	/* A PEM key is a few kilobytes (an RSA-8192 key is about 6.5 KB):
	 * anything much larger is not a key file. */
	DKIM_KEY_FILE_MAX = 64 * 1024,
	/* RFC 8301: signers MUST use RSA keys of at least 1024 bits and
	 * SHOULD use 2048; large receivers treat 1024 as weak. */
	DKIM_RSA_MIN_BITS = 2048,
	/* Instances of signed field names kept per message. A composed
	 * message has one of each; many more means something upstream went
	 * wrong, and each one would lengthen h=. */
	DKIM_SIGNED_FIELDS_MAX = 64,
	/* RFC 5322 §2.1.1: lines SHOULD be at most 78 characters. */
	DKIM_LINE_WIDTH = 78,
	/* Width counted for the tab that starts a folded line: the one a
	 * mail reader shows, so no line looks longer than 78 either. */
	DKIM_TAB_WIDTH = 8,
	/* Staging chunk between the canonicaliser and SHA-256. */
	DKIM_CHUNK = 4096,
};

/* The header fields signed when present, in h= order, and whether each
 * is signed once more than it occurs (dkim.h). */
static const struct {
	const char *name;
	size_t len;
	int oversign;
} dkim_signed[] = {
#define DKIM_NAME(s, o)                                                        \
	{                                                                      \
		s, sizeof(s) - 1, o                                            \
	}
    DKIM_NAME("from", 1),
    DKIM_NAME("to", 1),
    DKIM_NAME("subject", 1),
    DKIM_NAME("date", 1),
    DKIM_NAME("message-id", 1),
    DKIM_NAME("mime-version", 0),
    DKIM_NAME("content-type", 0),
    DKIM_NAME("reply-to", 0),
    DKIM_NAME("content-language", 0),
    DKIM_NAME("list-unsubscribe", 1),
    DKIM_NAME("list-unsubscribe-post", 1),
#undef DKIM_NAME
};
#define DKIM_NSIGNED (sizeof(dkim_signed) / sizeof(dkim_signed[0]))
#define DKIM_FROM    0 /* index of "from" in dkim_signed */

struct dkim_signer {
	enum dkim_alg alg;
	gnutls_privkey_t key;
	char *domain;
	char *selector;
	char *record; /* the DNS TXT record, made at load */
};

/* ---- small growable string for the field being built ---- */

struct dkim_buf {
	char *p;
	size_t n, cap;
	int oom;
};

static void dkim_buf_add(struct dkim_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *np;
		while (cap < b->n + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void dkim_buf_str(struct dkim_buf *b, const char *s)
{
	dkim_buf_add(b, s, strlen(s));
}

/* Standard base64 (RFC 4648 §4) with padding, NUL-terminated, malloc'd. */
static char *dkim_base64(const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v =
		    (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[v >> 12 & 63];
		*o++ = tab[v >> 6 & 63];
		*o++ = tab[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[v >> 12 & 63];
		*o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* ---- loading ---- */

static int dkim_is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-';
}

/* A DNS name as RFC 6376 allows for d= and s=: dot-separated labels of
 * letters, digits and inner hyphens, 1 to 63 characters each, ASCII.
 * Returns NULL when valid, else what is wrong. */
static const char *dkim_dns_name_problem(const char *s)
{
	size_t label = 0, i;

	if (*s == '\0')
		return "is empty";
	if (strlen(s) > 253)
		return "is longer than 253 characters";
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return "has an empty label (a leading, "
				       "trailing or doubled dot)";
			if (s[i - 1] == '-')
				return "has a label ending with '-'";
			label = 0;
			continue;
		}
		if (c >= 0x80)
			return "is not ASCII (write an internationalised "
			       "domain in its xn-- form)";
		if (!dkim_is_ldh(c))
			return "holds a character other than letters, "
			       "digits, '-' and '.'";
		if (label == 0 && c == '-')
			return "has a label starting with '-'";
		if (++label > 63)
			return "has a label longer than 63 characters";
	}
	if (label == 0)
		return "has an empty label (a leading, trailing or doubled "
		       "dot)";
	if (s[i - 1] == '-')
		return "has a label ending with '-'";
	return NULL;
}

/* diag_add arguments for showing a name from configuration: quoted, or a
 * note when it holds control characters that must not reach a terminal
 * or a log line. */
static const char *dkim_shown(const char *s, const char **q)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f) {
			*q = "";
			return "(not shown: it holds control characters)";
		}
	*q = "\"";
	return s;
}

/* Read the key file through one descriptor, so that the file whose mode
 * was checked is the file whose bytes are used. */
static int dkim_read_key(const char *path, char **out, size_t *outlen,
                         struct diag *d)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		diag_add(d, NULL, 0, 0, "dkim key %s: cannot open: %s", path,
		         strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		diag_add(d, NULL, 0, 0, "dkim key %s: cannot stat: %s", path,
		         strerror(errno));
		goto fail;
	}
	if (file_private_check(&st, "dkim key", path, d) < 0)
		goto fail;
	if (st.st_size > DKIM_KEY_FILE_MAX) {
		diag_add(d, NULL, 0, 0,
		         "dkim key %s is %jd bytes: too large for a PEM "
		         "private key",
		         path, (intmax_t)st.st_size);
		goto fail;
	}
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (buf == NULL) {
		diag_add(d, NULL, 0, 0, "dkim key %s: out of memory", path);
		goto fail;
	}
	/* Stop at the size fstat gave, plus one byte to see growth. */
	while (len < cap) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			diag_add(d, NULL, 0, 0, "dkim key %s: cannot read: %s",
			         path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len == cap) {
		diag_add(d, NULL, 0, 0,
		         "dkim key %s changed while it was read: try again",
		         path);
		goto fail;
	}
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
fail:
	if (buf != NULL) {
		gnutls_memset(buf, 0, len);
		free(buf);
	}
	close(fd);
	return -1;
}

int dkim_key_generate(const char *path, enum dkim_alg alg, unsigned bits,
                      struct diag *d)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_datum_t pem = {NULL, 0};
	char *dir = NULL, *slash;
	int r, fd = -1, rc = -1;
	size_t off = 0;

	if (alg == DKIM_RSA_SHA256 && (bits < DKIM_RSA_MIN_BITS || bits > 8192)) {
		diag_add(d, NULL, 0, 0,
		         "dkim key %s: an RSA key has %u to 8192 bits, not %u",
		         path, (unsigned)DKIM_RSA_MIN_BITS, bits);
		return -1;
	}
	if ((r = gnutls_x509_privkey_init(&key)) < 0 ||
	    (r = gnutls_x509_privkey_generate2(
	         key,
	         alg == DKIM_RSA_SHA256 ? GNUTLS_PK_RSA
	                                : GNUTLS_PK_EDDSA_ED25519,
	         alg == DKIM_RSA_SHA256 ? bits : 256, 0, NULL, 0)) < 0 ||
	    (r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM,
	                                           NULL, GNUTLS_PKCS_PLAIN,
	                                           &pem)) < 0) {
		diag_add(d, NULL, 0, 0, "dkim key %s: cannot generate: %s", path,
		         gnutls_strerror(r));
		goto done;
	}
	/* the directory: made private when herald makes it */
	if ((dir = strdup(path)) == NULL) {
		diag_add(d, NULL, 0, 0, "dkim key %s: out of memory", path);
		goto done;
	}
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) == 0)
			(void)chmod(dir, 0700); /* whatever the umask */
		else if (errno != EEXIST) {
			diag_add(d, NULL, 0, 0, "dkim key %s: cannot create %s: %s",
			         path, dir, strerror(errno));
			goto done;
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	          0600);
	if (fd < 0) {
		diag_add(d, NULL, 0, 0, "dkim key %s: cannot create: %s%s", path,
		         strerror(errno),
		         errno == EEXIST ? " (herald never overwrites a key)"
		                         : "");
		goto done;
	}
	if (fchmod(fd, 0600) < 0)
		goto write_fail;
	while (off < pem.size) {
		ssize_t n = write(fd, pem.data + off, pem.size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto write_fail;
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto write_fail;
	if (close(fd) < 0) {
		fd = -1;
		goto write_fail;
	}
	fd = -1;
	rc = 0;
	goto done;
write_fail:
	diag_add(d, NULL, 0, 0, "dkim key %s: cannot write: %s", path,
	         strerror(errno));
	if (fd >= 0)
		close(fd);
	fd = -1;
	unlink(path);
done:
	if (pem.data != NULL) {
		gnutls_memset(pem.data, 0, pem.size);
		gnutls_free(pem.data);
	}
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	free(dir);
	return rc;
}

/* "v=DKIM1; k=...; p=..." for the signer's public key, or NULL. */
static char *dkim_make_record(const struct dkim_signer *s, const char *path,
                              struct diag *d)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t der = {NULL, 0}, x = {NULL, 0};
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	char *p64 = NULL, *rec = NULL;
	int r;

	r = gnutls_pubkey_init(&pub);
	if (r < 0) {
		pub = NULL;
		goto fail;
	}
	r = gnutls_pubkey_import_privkey(pub, s->key, 0, 0);
	if (r < 0)
		goto fail;
	if (s->alg == DKIM_RSA_SHA256) {
		/* RFC 6376 §3.6.1: p= is the DER SubjectPublicKeyInfo. */
		r = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der);
		if (r < 0)
			goto fail;
		p64 = dkim_base64(der.data, der.size);
	} else {
		/* RFC 8463 §4.2: p= is the bare 32-byte public key. */
		r = gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0);
		if (r < 0)
			goto fail;
		if (curve != GNUTLS_ECC_CURVE_ED25519 || x.size != 32) {
			r = GNUTLS_E_INVALID_REQUEST;
			goto fail;
		}
		p64 = dkim_base64(x.data, x.size);
	}
	if (p64 == NULL ||
	    asprintf(&rec, "v=DKIM1; k=%s; p=%s",
	             s->alg == DKIM_RSA_SHA256 ? "rsa" : "ed25519", p64) < 0) {
		rec = NULL;
		r = GNUTLS_E_MEMORY_ERROR;
	}
fail:
	if (rec == NULL)
		diag_add(d, NULL, 0, 0,
		         "dkim key %s: cannot make the public key record: %s",
		         path, gnutls_strerror(r));
	free(p64);
	gnutls_free(der.data);
	gnutls_free(x.data);
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	return rec;
}

struct dkim_signer *dkim_signer_load(const char *key_path, const char *domain,
                                     const char *selector, struct diag *d)
{
	struct dkim_signer *s = NULL;
	const char *why, *q;
	char *pem = NULL;
	size_t pemlen = 0;
	gnutls_datum_t datum;
	unsigned bits = 0;
	int r, pk;

	why = dkim_dns_name_problem(domain);
	if (why != NULL) {
		const char *shown = dkim_shown(domain, &q);
		diag_add(d, NULL, 0, 0, "dkim domain %s%s%s %s", q, shown, q,
		         why);
		return NULL;
	}
	why = dkim_dns_name_problem(selector);
	if (why != NULL) {
		const char *shown = dkim_shown(selector, &q);
		diag_add(d, NULL, 0, 0, "dkim selector %s%s%s %s", q, shown, q,
		         why);
		return NULL;
	}
	/* The key is published at selector._domainkey.domain. */
	if (strlen(selector) + strlen("._domainkey.") + strlen(domain) > 253) {
		diag_add(d, NULL, 0, 0,
		         "dkim selector and domain are too long together: "
		         "%s._domainkey.%s is over 253 characters",
		         selector, domain);
		return NULL;
	}
	if (dkim_read_key(key_path, &pem, &pemlen, d) < 0)
		return NULL;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto oom;
	s->domain = strdup(domain);
	s->selector = strdup(selector);
	if (s->domain == NULL || s->selector == NULL)
		goto oom;
	r = gnutls_privkey_init(&s->key);
	if (r < 0) {
		s->key = NULL;
		diag_add(d, NULL, 0, 0, "dkim key %s: %s", key_path,
		         gnutls_strerror(r));
		goto fail;
	}
	datum.data = (unsigned char *)pem;
	datum.size = (unsigned)pemlen;
	r = gnutls_privkey_import_x509_raw(s->key, &datum, GNUTLS_X509_FMT_PEM,
	                                   NULL, 0);
	if (r < 0) {
		diag_add(d, NULL, 0, 0,
		         "dkim key %s cannot be read as a PEM private key "
		         "(%s): give an unencrypted PKCS#8 \"PRIVATE KEY\" or "
		         "PKCS#1 \"RSA PRIVATE KEY\" file",
		         key_path, gnutls_strerror(r));
		goto fail;
	}
	pk = gnutls_privkey_get_pk_algorithm(s->key, &bits);
	if (pk == GNUTLS_PK_RSA) {
		if (bits < DKIM_RSA_MIN_BITS) {
			diag_add(d, NULL, 0, 0,
			         "dkim key %s is a %u-bit RSA key: receivers "
			         "want at least %d bits; make a new key "
			         "(e.g. openssl genpkey -algorithm RSA "
			         "-pkeyopt rsa_keygen_bits:2048)",
			         key_path, bits, DKIM_RSA_MIN_BITS);
			goto fail;
		}
		s->alg = DKIM_RSA_SHA256;
	} else if (pk == GNUTLS_PK_EDDSA_ED25519) {
		s->alg = DKIM_ED25519_SHA256;
	} else {
		diag_add(d, NULL, 0, 0,
		         "dkim key %s is of type %s: DKIM signs with RSA "
		         "(rsa-sha256) or Ed25519 (ed25519-sha256) keys",
		         key_path,
		         pk > 0 ? gnutls_pk_get_name((gnutls_pk_algorithm_t)pk)
		                : "unknown");
		goto fail;
	}
	s->record = dkim_make_record(s, key_path, d);
	if (s->record == NULL)
		goto fail;
	gnutls_memset(pem, 0, pemlen);
	free(pem);
	return s;
oom:
	diag_add(d, NULL, 0, 0, "dkim key %s: out of memory", key_path);
fail:
	gnutls_memset(pem, 0, pemlen);
	free(pem);
	dkim_signer_free(s);
	return NULL;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	if (s->key != NULL)
		gnutls_privkey_deinit(s->key);
	free(s->domain);
	free(s->selector);
	free(s->record);
	free(s);
}

enum dkim_alg dkim_signer_alg(const struct dkim_signer *s)
{
	return s->alg;
}

const char *dkim_signer_domain(const struct dkim_signer *s)
{
	return s->domain;
}

char *dkim_dns_record(const struct dkim_signer *s, struct diag *d)
{
	char *r = strdup(s->record);

	if (r == NULL)
		diag_add(d, NULL, 0, 0, "dkim record: out of memory");
	return r;
}

/* ---- canonicalisation into a hash ---- */

/* Canonical bytes go through a small chunk into SHA-256. */
struct dkim_sink {
	gnutls_hash_hd_t h;
	size_t n;
	int err;
	unsigned char buf[DKIM_CHUNK];
};

static int dkim_sink_init(struct dkim_sink *k)
{
	k->n = 0;
	k->err = 0;
	return gnutls_hash_init(&k->h, GNUTLS_DIG_SHA256) < 0 ? -1 : 0;
}

static void dkim_sink_flush(struct dkim_sink *k)
{
	if (k->n > 0 && gnutls_hash(k->h, k->buf, k->n) < 0)
		k->err = 1;
	k->n = 0;
}

static inline void dkim_sink_byte(struct dkim_sink *k, unsigned char c)
{
	if (k->n == sizeof(k->buf))
		dkim_sink_flush(k);
	k->buf[k->n++] = c;
}

/* Finish: the 32-byte digest into out; 0, or -1 if a hash call failed. */
static int dkim_sink_done(struct dkim_sink *k, unsigned char out[32])
{
	dkim_sink_flush(k);
	gnutls_hash_deinit(k->h, out);
	return k->err ? -1 : 0;
}

static inline int dkim_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static void dkim_sink_put(struct dkim_sink *k, const unsigned char *p, size_t n)
{
	if (n > sizeof(k->buf) - k->n) {
		dkim_sink_flush(k);
		if (n > sizeof(k->buf)) {
			if (gnutls_hash(k->h, p, n) < 0)
				k->err = 1;
			return;
		}
	}
	memcpy(k->buf + k->n, p, n);
	k->n += n;
}

/* Bytes that end a run of text in the body: WSP and line ends. */
static const unsigned char dkim_body_special[256] = {
    ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [' '] = 1};

/* Relaxed body canonicalisation (RFC 6376 §3.4.4): WSP runs become one
 * space, WSP at line ends goes, empty lines at the end go, and a last line
 * without CRLF gets one (as the SMTP transport would add it). Empty lines
 * are only counted until a non-empty line shows they are not trailing.
 * Runs of text between WSP and line ends are copied whole.
 * Returns 0, or -1 with the reason for a CR or LF that is not a CRLF. */
static int dkim_canon_body(struct dkim_sink *k, const unsigned char *b,
                           size_t len, size_t first_line, struct diag *d)
{
	size_t pending = 0, line = first_line, i = 0;
	int wsp = 0, text = 0;

	while (i < len) {
		size_t j = i;
		unsigned char c;

		while (j < len && !dkim_body_special[b[j]])
			j++;
		if (j > i) {
			if (!text) {
				for (; pending > 0; pending--)
					dkim_sink_put(
					    k, (const unsigned char *)"\r\n",
					    2);
				text = 1;
			}
			if (wsp) {
				dkim_sink_byte(k, ' ');
				wsp = 0;
			}
			dkim_sink_put(k, b + i, j - i);
			i = j;
			continue;
		}
		c = b[i++];
		if (dkim_wsp(c)) {
			wsp = 1;
		} else if (c == '\r' && i < len && b[i] == '\n') {
			if (text)
				dkim_sink_put(k, (const unsigned char *)"\r\n",
				              2);
			else
				pending++;
			wsp = text = 0;
			i++;
			line++;
		} else {
			diag_add(d, NULL, 0, 0,
			         "message line %zu has a bare %s: lines must "
			         "end in CRLF",
			         line, c == '\r' ? "CR" : "LF");
			return -1;
		}
	}
	if (text)
		dkim_sink_put(k, (const unsigned char *)"\r\n", 2);
	return 0;
}

/* Relaxed header canonicalisation (RFC 6376 §3.4.2) of one field, the
 * bytes from its name to the end of its value without the final CRLF:
 * name in lower case, no WSP around the colon, unfolded, WSP runs as one
 * space, no WSP at the end. The field was checked when it was split out:
 * it has a colon and its only CRs and LFs are folding CRLFs. */
static void dkim_canon_field(struct dkim_sink *k, const char *f, size_t len)
{
	size_t i = 0;
	int wsp = 0, text = 0;

	for (; i < len && f[i] != ':'; i++) {
		unsigned char c = (unsigned char)f[i];
		if (dkim_wsp(c))
			continue;
		dkim_sink_byte(k, c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	dkim_sink_byte(k, ':');
	for (i++; i < len; i++) {
		unsigned char c = (unsigned char)f[i];
		if (c == '\r' || c == '\n')
			continue;
		if (dkim_wsp(c)) {
			wsp = 1;
			continue;
		}
		if (wsp && text)
			dkim_sink_byte(k, ' ');
		wsp = 0;
		text = 1;
		dkim_sink_byte(k, c);
	}
}

/* ---- the header section ---- */

struct dkim_field {
	const char *p; /* start of the name */
	size_t len;    /* to the end of the value, without the final CRLF */
	unsigned id;   /* index in dkim_signed */
};

struct dkim_header {
	struct dkim_field v[DKIM_SIGNED_FIELDS_MAX];
	size_t n;
	size_t count[DKIM_NSIGNED]; /* instances of each signed name */
	size_t lines;               /* lines in the header section */
};

static int dkim_signed_id(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < DKIM_NSIGNED; i++)
		if (dkim_signed[i].len == len &&
		    strncasecmp(dkim_signed[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/* Split the header section h (hlen bytes, the last field's CRLF included
 * when there is one) into fields, keeping those herald signs. */
static int dkim_parse_header(const char *h, size_t hlen, struct dkim_header *hd,
                             struct diag *d)
{
	size_t pos = 0, line = 0;
	struct dkim_field *cur = NULL;
	int in_field = 0;

	while (pos < hlen) {
		const char *start = h + pos, *nl, *cr, *colon;
		size_t end, next;

		line++;
		nl = memchr(start, '\n', hlen - pos);
		if (nl != NULL) {
			if (nl == start || nl[-1] != '\r')
				goto bare;
			end = (size_t)(nl - h) - 1;
			next = end + 2;
		} else {
			end = next = hlen;
		}
		cr = memchr(start, '\r', end - pos);
		if (cr != NULL)
			goto bare;
		if (dkim_wsp((unsigned char)*start)) {
			if (!in_field) {
				diag_add(
				    d, NULL, 0, 0,
				    "message line 1 starts with "
				    "whitespace: it is not a header field");
				return -1;
			}
			if (cur != NULL)
				cur->len = end - (size_t)(cur->p - h);
		} else {
			size_t nlen;
			int id;
			colon = memchr(start, ':', end - pos);
			if (colon == NULL) {
				diag_add(d, NULL, 0, 0,
				         "message line %zu is not a header "
				         "field (no colon)",
				         line);
				return -1;
			}
			nlen = (size_t)(colon - start);
			while (nlen > 0 &&
			       dkim_wsp((unsigned char)start[nlen - 1]))
				nlen--;
			for (size_t i = 0; i < nlen; i++) {
				unsigned char c = (unsigned char)start[i];
				if (c < 33 || c > 126) {
					nlen = 0;
					break;
				}
			}
			if (nlen == 0) {
				diag_add(d, NULL, 0, 0,
				         "message line %zu: bad header "
				         "field name",
				         line);
				return -1;
			}
			in_field = 1;
			cur = NULL;
			id = dkim_signed_id(start, nlen);
			if (id >= 0) {
				if (hd->n == DKIM_SIGNED_FIELDS_MAX) {
					diag_add(d, NULL, 0, 0,
					         "message header has more "
					         "than %d fields of the kinds "
					         "DKIM signs",
					         DKIM_SIGNED_FIELDS_MAX);
					return -1;
				}
				cur = &hd->v[hd->n++];
				cur->p = start;
				cur->len = end - pos;
				cur->id = (unsigned)id;
				hd->count[id]++;
			}
		}
		pos = next;
	}
	hd->lines = line;
	return 0;
bare:
	diag_add(d, NULL, 0, 0,
	         "message line %zu has a bare CR or LF: lines must end in "
	         "CRLF",
	         line);
	return -1;
}

/* ---- the folded DKIM-Signature field ---- */

struct dkim_fold {
	struct dkim_buf b;
	size_t col;
};

static void dkim_fold_break(struct dkim_fold *f)
{
	dkim_buf_add(&f->b, "\r\n\t", 3);
	f->col = DKIM_TAB_WIDTH;
}

/* Before something w columns wide: a space when it fits on this line,
 * else a fold. */
static void dkim_fold_space(struct dkim_fold *f, size_t w)
{
	if (f->col + 1 + w <= DKIM_LINE_WIDTH) {
		dkim_buf_add(&f->b, " ", 1);
		f->col++;
	} else {
		dkim_fold_break(f);
	}
}

/* One tag that is never split, "name=value;". */
static void dkim_fold_tag(struct dkim_fold *f, const char *name,
                          const char *value)
{
	size_t n = strlen(name) + 1 + strlen(value) + 1;

	dkim_fold_space(f, n);
	dkim_buf_str(&f->b, name);
	dkim_buf_add(&f->b, "=", 1);
	dkim_buf_str(&f->b, value);
	dkim_buf_add(&f->b, ";", 1);
	f->col += n;
}

/* Base64 characters, broken wherever the line is full (RFC 6376 allows
 * FWS anywhere inside a base64 value). */
static void dkim_fold_b64(struct dkim_fold *f, const char *v)
{
	size_t n = strlen(v);

	while (n > 0) {
		size_t room, k;
		if (f->col >= DKIM_LINE_WIDTH)
			dkim_fold_break(f);
		room = DKIM_LINE_WIDTH - f->col;
		k = n < room ? n : room;
		dkim_buf_add(&f->b, v, k);
		f->col += k;
		v += k;
		n -= k;
	}
}

/* The field up to and including "b=", in its final layout, into f.
 * Returns 0, or -1 when out of memory. */
static int dkim_field_unsigned(struct dkim_fold *f, const struct dkim_signer *s,
                               const struct dkim_header *hd, time_t now,
                               const char *bh)
{
	char t[24];
	size_t i, j, n;

	dkim_buf_str(&f->b, "DKIM-Signature:");
	f->col = strlen("DKIM-Signature:");
	dkim_fold_tag(f, "v", "1");
	dkim_fold_tag(f, "a",
	              s->alg == DKIM_RSA_SHA256 ? "rsa-sha256"
	                                        : "ed25519-sha256");
	dkim_fold_tag(f, "c", "relaxed/relaxed");
	dkim_fold_tag(f, "d", s->domain);
	dkim_fold_tag(f, "s", s->selector);
	snprintf(t, sizeof(t), "%lld", (long long)now);
	dkim_fold_tag(f, "t", t);

	/* h=: each name as often as it occurs, once more if oversigned
	 * (From always occurs, so h= starts with "from:"); a line may break
	 * after any colon. */
	dkim_fold_space(f, strlen("h=from:"));
	dkim_buf_add(&f->b, "h=", 2);
	f->col += 2;
	for (i = 0, n = 0; i < DKIM_NSIGNED; i++) {
		size_t times = hd->count[i] + (size_t)dkim_signed[i].oversign;
		for (j = 0; j < times; j++, n++) {
			size_t w = dkim_signed[i].len + 1;
			if (n > 0 && f->col + w > DKIM_LINE_WIDTH)
				dkim_fold_break(f);
			dkim_buf_add(&f->b, dkim_signed[i].name,
			             dkim_signed[i].len);
			dkim_buf_add(&f->b, ":", 1);
			f->col += w;
		}
	}
	if (f->b.oom)
		return -1;
	f->b.p[f->b.n - 1] = ';'; /* the last colon ends the tag */

	dkim_fold_space(f, strlen("bh=;") + strlen(bh));
	dkim_buf_add(&f->b, "bh=", 3);
	f->col += 3;
	dkim_fold_b64(f, bh);
	dkim_buf_add(&f->b, ";", 1);
	f->col++;

	/* b= starts its own line; the signature fills the lines after. */
	dkim_fold_break(f);
	dkim_buf_add(&f->b, "b=", 2);
	f->col += 2;
	return f->b.oom ? -1 : 0;
}

/* ---- signing ---- */

char *dkim_sign(const struct dkim_signer *s, const char *msg, size_t len,
                time_t now, struct diag *d)
{
	struct dkim_header *hd = NULL;
	struct dkim_sink *k = NULL;
	struct dkim_fold f = {{NULL, 0, 0, 0}, 0};
	unsigned char bh_raw[32], hash[32];
	gnutls_datum_t digest = {hash, sizeof(hash)}, sig = {NULL, 0};
	const char *sep, *body;
	size_t hlen, blen, i;
	char *bh = NULL, *b64 = NULL;
	int r;

	if (now < 0) {
		diag_add(d, NULL, 0, 0, "dkim: the signing time is negative");
		return NULL;
	}
	hd = calloc(1, sizeof(*hd));
	k = malloc(sizeof(*k));
	if (hd == NULL || k == NULL)
		goto oom;

	/* The header section ends at the first empty line. */
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n') {
		hlen = 0;
		body = msg + 2;
		blen = len - 2;
	} else if ((sep = memmem(msg, len, "\r\n\r\n", 4)) != NULL) {
		hlen = (size_t)(sep - msg) + 2;
		body = sep + 4;
		blen = len - hlen - 2;
	} else {
		hlen = len;
		body = msg + len;
		blen = 0;
	}
	if (dkim_parse_header(msg, hlen, hd, d) < 0)
		goto fail;
	if (hd->count[DKIM_FROM] != 1) {
		diag_add(d, NULL, 0, 0,
		         hd->count[DKIM_FROM] == 0
		             ? "dkim: the message has no From field, and a "
		               "DKIM signature must cover it"
		             : "dkim: the message has more than one From "
		               "field");
		goto fail;
	}

	/* bh=: the canonicalised body. */
	if (dkim_sink_init(k) < 0)
		goto crypto;
	r = dkim_canon_body(k, (const unsigned char *)body, blen, hd->lines + 2,
	                    d);
	if (dkim_sink_done(k, bh_raw) < 0 && r == 0)
		goto crypto;
	if (r < 0)
		goto fail;
	bh = dkim_base64(bh_raw, sizeof(bh_raw));
	if (bh == NULL)
		goto oom;

	if (dkim_field_unsigned(&f, s, hd, now, bh) < 0)
		goto oom;

	/* b=: the signed fields in h= order, each name's instances from
	 * the bottom up, then this field with b= empty and no CRLF. */
	if (dkim_sink_init(k) < 0)
		goto crypto;
	for (i = 0; i < DKIM_NSIGNED; i++) {
		size_t j = hd->n;
		while (j-- > 0) {
			if (hd->v[j].id != i)
				continue;
			dkim_canon_field(k, hd->v[j].p, hd->v[j].len);
			dkim_sink_byte(k, '\r');
			dkim_sink_byte(k, '\n');
		}
	}
	dkim_canon_field(k, f.b.p, f.b.n);
	if (dkim_sink_done(k, hash) < 0)
		goto crypto;

	if (s->alg == DKIM_RSA_SHA256)
		/* RSASSA-PKCS1-v1_5 over the SHA-256 digest. */
		r = gnutls_privkey_sign_hash(s->key, GNUTLS_DIG_SHA256, 0,
		                             &digest, &sig);
	else
		/* RFC 8463 §3: PureEdDSA over the SHA-256 digest. */
		r = gnutls_privkey_sign_data2(s->key, GNUTLS_SIGN_EDDSA_ED25519,
		                              0, &digest, &sig);
	if (r < 0) {
		diag_add(d, NULL, 0, 0, "dkim: cannot sign: %s",
		         gnutls_strerror(r));
		goto fail;
	}
	b64 = dkim_base64(sig.data, sig.size);
	if (b64 == NULL)
		goto oom;
	dkim_fold_b64(&f, b64);
	if (f.b.oom)
		goto oom;
	free(b64);
	gnutls_free(sig.data);
	free(bh);
	free(k);
	free(hd);
	return f.b.p;
crypto:
	diag_add(d, NULL, 0, 0, "dkim: SHA-256 failed");
	goto fail;
oom:
	diag_add(d, NULL, 0, 0, "dkim: out of memory");
fail:
	free(b64);
	gnutls_free(sig.data);
	free(f.b.p);
	free(bh);
	free(k);
	free(hd);
	return NULL;
}
