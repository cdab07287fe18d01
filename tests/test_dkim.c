/*
 * dkim tests: relaxed canonicalisation (RFC 6376 §3.4.5's example,
 * whitespace, trailing and missing line ends, the empty body), the fields
 * signed and their order, the folded field, and every refusal an operator
 * or a broken message can meet (key file mode, key type and size, garbage
 * keys, bad domain and selector, no From, bare line ends).
 *
 * Signatures are checked here with GnuTLS against the public key from
 * dkim_dns_record and the canonical bytes written out by hand; the
 * independent verifier (dkimpy) is in test_dkim_verify.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "herald/dkim.h"

#define DOMAIN   "example.org"
#define SELECTOR "herald2024"
#define NOW      ((time_t)1709625600)

static char tmpdir[] = "/tmp/herald-test-dkim-XXXXXX";
static char *ed_path, *rsa_path;
static struct dkim_signer *ed, *rsa;

/* ---- helpers ---- */

static char *path_in_tmp(const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static void write_file(const char *path, const void *data, size_t len,
                       mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* A new key of the given kind as PEM (PKCS#8, or PKCS#1 for RSA when
 * pkcs1 is set) written to tmpdir/name with the given mode. */
static char *make_key(const char *name, gnutls_pk_algorithm_t pk, unsigned bits,
                      int pkcs1, mode_t mode)
{
	gnutls_x509_privkey_t k;
	gnutls_datum_t pem = {NULL, 0};
	char *path = path_in_tmp(name);

	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, pk, bits, 0), 0);
	if (pkcs1)
		assert_int_equal(
		    gnutls_x509_privkey_export2(k, GNUTLS_X509_FMT_PEM, &pem),
		    0);
	else
		assert_int_equal(
		    gnutls_x509_privkey_export2_pkcs8(
		        k, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &pem),
		    0);
	write_file(path, pem.data, pem.size, mode);
	gnutls_free(pem.data);
	gnutls_x509_privkey_deinit(k);
	return path;
}

static void assert_diag_has(struct diag *d, const char *what)
{
	const char *m = diag_first(d);

	if (strstr(m, what) == NULL)
		fail_msg("diag \"%s\" does not say \"%s\"", m, what);
}

/* Loading must fail with a message holding what. */
static void assert_load_refused(const char *path, const char *domain,
                                const char *selector, const char *what)
{
	struct diag d = {0};
	struct dkim_signer *s = dkim_signer_load(path, domain, selector, &d);

	if (s != NULL)
		fail_msg("%s d=%s s=%s was accepted", path, domain, selector);
	assert_true(d.errors > 0);
	assert_diag_has(&d, what);
	diag_clear(&d);
}

static char *b64(const unsigned char *p, size_t n)
{
	gnutls_datum_t in = {(unsigned char *)p, (unsigned)n}, out;
	char *s;

	assert_int_equal(gnutls_base64_encode2(&in, &out), 0);
	s = strndup((char *)out.data, out.size);
	gnutls_free(out.data);
	return s;
}

static char *sha256_b64(const char *data, size_t len)
{
	unsigned char h[32];

	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, h), 0);
	return b64(h, sizeof(h));
}

/* The value of tag name in a DKIM-Signature field, whitespace removed
 * (malloc'd), or NULL. */
static char *tag_value(const char *field, const char *name)
{
	const char *p = strchr(field, ':') + 1;
	size_t nlen = strlen(name);
	char *v = NULL;

	while (*p != '\0') {
		const char *end = strchr(p, ';'), *q;
		size_t n = 0;
		if (end == NULL)
			end = p + strlen(p);
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			v = malloc((size_t)(end - p) + 1);
			assert_non_null(v);
			for (q = p + nlen + 1; q < end; q++)
				if (*q != ' ' && *q != '\t' && *q != '\r' &&
				    *q != '\n')
					v[n++] = *q;
			v[n] = '\0';
			return v;
		}
		p = *end ? end + 1 : end;
	}
	return NULL;
}

/* The field as a verifier hashes it: b= emptied, unfolded, WSP runs as
 * one space, the name in lower case, no CRLF. Written differently from
 * dkim.c on purpose. */
static char *sig_field_canon(const char *field)
{
	const char *b = NULL, *p;
	char *out = malloc(strlen(field) + 1), *o = out;
	int space = 0, text = 0;

	assert_non_null(out);
	/* The first "b=" that starts a tag: "bh=" is not one, and base64
	 * values hold no '=' but their final padding. */
	for (p = field + 1; *p != '\0' && b == NULL; p++)
		if (p[0] == 'b' && p[1] == '=' &&
		    (p[-1] == ' ' || p[-1] == '\t' || p[-1] == ';'))
			b = p;
	assert_non_null(b);
	memcpy(o, "dkim-signature:", 15);
	o += 15;
	for (p = strchr(field, ':') + 1; p < b + 2; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == ' ' || *p == '\t') {
			space = 1;
			continue;
		}
		if (space && text)
			*o++ = ' ';
		space = 0;
		text = 1;
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

/* Check field's b= over headers (the canonical signed fields, in h=
 * order) + the field itself, with the public key from the DNS record. */
static void assert_signature_valid(const struct dkim_signer *s,
                                   const char *field, const char *headers)
{
	struct diag d = {0};
	char *rec = dkim_dns_record(s, &d), *p64, *canon, *data, *sig64;
	gnutls_datum_t in, key = {NULL, 0}, sig = {NULL, 0};
	unsigned char h[32];
	gnutls_datum_t digest = {h, sizeof(h)};
	gnutls_pubkey_t pub;
	int r;

	assert_non_null(rec);
	p64 = strstr(rec, "p=") + 2;
	in.data = (unsigned char *)p64;
	in.size = (unsigned)strlen(p64);
	assert_int_equal(gnutls_base64_decode2(&in, &key), 0);
	assert_int_equal(gnutls_pubkey_init(&pub), 0);
	if (dkim_signer_alg(s) == DKIM_RSA_SHA256) {
		assert_int_equal(
		    gnutls_pubkey_import(pub, &key, GNUTLS_X509_FMT_DER), 0);
	} else {
		assert_int_equal(key.size, 32);
		assert_int_equal(gnutls_pubkey_import_ecc_raw(
		                     pub, GNUTLS_ECC_CURVE_ED25519, &key, NULL),
		                 0);
	}
	canon = sig_field_canon(field);
	assert_true(asprintf(&data, "%s%s", headers, canon) > 0);
	assert_int_equal(
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, strlen(data), h), 0);
	sig64 = tag_value(field, "b");
	assert_non_null(sig64);
	in.data = (unsigned char *)sig64;
	in.size = (unsigned)strlen(sig64);
	assert_int_equal(gnutls_base64_decode2(&in, &sig), 0);
	if (dkim_signer_alg(s) == DKIM_RSA_SHA256)
		r = gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_RSA_SHA256, 0,
		                               &digest, &sig);
	else
		r = gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_EDDSA_ED25519,
		                               0, &digest, &sig);
	if (r < 0)
		fail_msg("signature does not verify (%s) over:\n%s",
		         gnutls_strerror(r), data);
	gnutls_free(sig.data);
	gnutls_free(key.data);
	gnutls_pubkey_deinit(pub);
	free(sig64);
	free(data);
	free(canon);
	free(rec);
}

static char *sign_ok(const struct dkim_signer *s, const char *msg)
{
	struct diag d = {0};
	char *f = dkim_sign(s, msg, strlen(msg), NOW, &d);

	if (f == NULL)
		fail_msg("dkim_sign failed: %s", diag_first(&d));
	assert_int_equal(d.errors, 0);
	diag_clear(&d);
	return f;
}

static void assert_sign_refused(const char *msg, size_t len, const char *what)
{
	struct diag d = {0};
	char *f = dkim_sign(ed, msg, len, NOW, &d);

	if (f != NULL)
		fail_msg("signed a bad message:\n%s", msg);
	assert_diag_has(&d, what);
	diag_clear(&d);
}

/* The body's bh= must be SHA-256 of canonical. */
static void assert_body_canon(const char *body, const char *canonical)
{
	char *msg, *f, *bh, *want;

	assert_true(asprintf(&msg, "From: a@example.org\r\n\r\n%s", body) > 0);
	f = sign_ok(ed, msg);
	bh = tag_value(f, "bh");
	want = sha256_b64(canonical, strlen(canonical));
	if (strcmp(bh, want) != 0)
		fail_msg("body \"%s\": bh=%s, expected %s for \"%s\"", body, bh,
		         want, canonical);
	free(want);
	free(bh);
	free(f);
	free(msg);
}

/* ---- tests ---- */

/* RFC 6376 §3.4.5, with herald's field names for A and B (only the fields
 * herald signs are hashed) and B's WSP before the colon. */
static void test_rfc6376_example(void **state)
{
	const char *msg = "Subject: X \r\n"
	                  "From \t: Y\t\r\n"
	                  "\tZ  \r\n"
	                  "\r\n"
	                  " C \r\n"
	                  "D \t E\r\n"
	                  "\r\n"
	                  "\r\n";
	char *f, *bh, *want;

	(void)state;
	f = sign_ok(ed, msg);
	bh = tag_value(f, "bh");
	want = sha256_b64(" C\r\nD E\r\n", 9);
	assert_string_equal(bh, want);
	/* h= order: from, then subject. */
	assert_signature_valid(ed, f, "from:Y Z\r\nsubject:X\r\n");
	free(want);
	free(bh);
	free(f);
}

static void test_body_whitespace(void **state)
{
	(void)state;
	assert_body_canon("a \t\r\n\r\n b\t\tc  \r\n\r\n\r\n",
	                  "a\r\n\r\n b c\r\n");
	assert_body_canon("  \t lead\r\n", " lead\r\n");
	assert_body_canon("x\r\n \r\n\t\r\ny\r\n", "x\r\n\r\n\r\ny\r\n");
	assert_body_canon("abc", "abc\r\n");
	assert_body_canon("abc \t ", "abc\r\n");
	assert_body_canon("abc\r\n\r\n  x", "abc\r\n\r\n x\r\n");
	assert_body_canon("\r\n\r\nlate start\r\n", "\r\n\r\nlate start\r\n");
	assert_body_canon("8bit: caf\xc3\xa9 \xe2\x80\x94 ok \r\n",
	                  "8bit: caf\xc3\xa9 \xe2\x80\x94 ok\r\n");
}

/* A body of many lines, so canonical bytes cross the staging chunk. */
static void test_body_long(void **state)
{
	size_t n = 5000, cap = n * 40, i;
	char *body = malloc(cap), *canon = malloc(cap);
	size_t bl = 0, cl = 0;

	(void)state;
	assert_non_null(body);
	assert_non_null(canon);
	for (i = 0; i < n; i++) {
		/* an empty line before every seventh: never a trailing one */
		const char *gap = i % 7 == 3 ? "\r\n" : "";
		bl += (size_t)snprintf(body + bl, cap - bl,
		                       "%sline\t \t%zu  \r\n", gap, i);
		cl += (size_t)snprintf(canon + cl, cap - cl, "%sline %zu\r\n",
		                       gap, i);
	}
	assert_true(bl < cap && cl < cap);
	assert_body_canon(body, canon);
	free(body);
	free(canon);
}

static void test_empty_body(void **state)
{
	static const char *msgs[] = {
	    "From: a@example.org\r\n\r\n",
	    "From: a@example.org\r\n\r\n\r\n\r\n \t\r\n",
	    "From: a@example.org\r\n",
	    "From: a@example.org",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(msgs) / sizeof(*msgs); i++) {
		char *f = sign_ok(ed, msgs[i]), *bh = tag_value(f, "bh");
		assert_string_equal(
		    bh, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
		assert_signature_valid(ed, f, "from:a@example.org\r\n");
		free(bh);
		free(f);
	}
}

/* Every name herald signs, two To fields, names in odd case, unsigned
 * fields between: h= lists each name as often as it occurs (once more
 * when oversigned), and the hash takes instances from the bottom up. */
static void test_fields_and_folding(void **state)
{
	const char *msg =
	    "Received: from relay\r\n"
	    "FROM: Press <press@example.org>\r\n"
	    "To: Anna <anna@example.net>\r\n"
	    "X-Mailer: herald\r\n"
	    "to: Ben <ben@example.net>,\r\n"
	    "  Carla <carla@example.net>\r\n"
	    "Subject: =?UTF-8?B?0J/RgNC40LLQtdGC?=\r\n"
	    " =?UTF-8?Q?caf=C3=A9?=\r\n"
	    "Date: Tue, 05 Mar 2024 09:00:00 +0100\r\n"
	    "message-ID: <1@example.org>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Reply-To: desk@example.org\r\n"
	    "Content-Language: de\r\n"
	    "List-Unsubscribe: <mailto:u@example.org>\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
	    "\r\n"
	    "Hello.\r\n";
	const char *hashed =
	    "from:Press <press@example.org>\r\n"
	    "to:Ben <ben@example.net>, Carla <carla@example.net>\r\n"
	    "to:Anna <anna@example.net>\r\n"
	    "subject:=?UTF-8?B?0J/RgNC40LLQtdGC?= =?UTF-8?Q?caf=C3=A9?=\r\n"
	    "date:Tue, 05 Mar 2024 09:00:00 +0100\r\n"
	    "message-id:<1@example.org>\r\n"
	    "mime-version:1.0\r\n"
	    "content-type:text/plain; charset=utf-8\r\n"
	    "reply-to:desk@example.org\r\n"
	    "content-language:de\r\n"
	    "list-unsubscribe:<mailto:u@example.org>\r\n"
	    "list-unsubscribe-post:List-Unsubscribe=One-Click\r\n";
	char *f, *h, *line, *v;

	(void)state;
	f = sign_ok(rsa, msg);
	assert_true(strncmp(f,
	                    "DKIM-Signature: v=1; a=rsa-sha256; "
	                    "c=relaxed/relaxed; d=" DOMAIN ";",
	                    strlen("DKIM-Signature: v=1; a=rsa-sha256; "
	                           "c=relaxed/relaxed; d=" DOMAIN ";")) == 0);
	assert_true(f[strlen(f) - 1] != '\n');
	h = tag_value(f, "h");
	assert_string_equal(h, "from:from:to:to:to:subject:subject:date:date:"
	                       "message-id:message-id:mime-version:"
	                       "content-type:reply-to:content-language:"
	                       "list-unsubscribe:list-unsubscribe:"
	                       "list-unsubscribe-post:list-unsubscribe-post");
	v = tag_value(f, "s");
	assert_string_equal(v, SELECTOR);
	free(v);
	v = tag_value(f, "t");
	assert_string_equal(v, "1709625600");
	free(v);
	/* Lines of at most 78 columns, tabs counted as 8; only CRLF breaks,
	 * each followed by whitespace. */
	for (line = f; line != NULL;) {
		char *end = strstr(line, "\r\n");
		size_t col = 0;
		for (char *p = line; p < (end ? end : line + strlen(line));
		     p++) {
			assert_true(*p != '\r' && *p != '\n');
			col = *p == '\t' ? (col / 8 + 1) * 8 : col + 1;
		}
		if (col > 78)
			fail_msg("line over 78 columns in\n%s", f);
		if (end != NULL)
			assert_true(end[2] == '\t' || end[2] == ' ');
		line = end ? end + 2 : NULL;
	}
	assert_signature_valid(rsa, f, hashed);
	free(h);
	free(f);
}

static void test_rsa_keys(void **state)
{
	struct diag d = {0};
	char *path, *rec;
	struct dkim_signer *s;

	(void)state;
	/* PKCS#1 "RSA PRIVATE KEY" (rsa_path is PKCS#8). */
	path = make_key("rsa-pkcs1.pem", GNUTLS_PK_RSA, 2048, 1, 0600);
	s = dkim_signer_load(path, DOMAIN, SELECTOR, &d);
	if (s == NULL) {
		fail_msg("%s", diag_first(&d));
		return;
	}
	assert_int_equal(dkim_signer_alg(s), DKIM_RSA_SHA256);
	assert_string_equal(dkim_signer_domain(s), DOMAIN);
	rec = dkim_dns_record(s, &d);
	assert_true(strncmp(rec, "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEF",
	                    42) == 0);
	free(rec);
	{
		char *f = sign_ok(s, "From: a@example.org\r\n\r\nx\r\n");
		assert_signature_valid(s, f, "from:a@example.org\r\n");
		free(f);
	}
	dkim_signer_free(s);
	free(path);
	rec = dkim_dns_record(ed, &d);
	assert_true(strncmp(rec, "v=DKIM1; k=ed25519; p=", 22) == 0);
	assert_int_equal(strlen(rec + 22), 44);
	free(rec);
	assert_int_equal(dkim_signer_alg(ed), DKIM_ED25519_SHA256);
	assert_int_equal(d.errors, 0);
}

static void test_key_mode(void **state)
{
	struct diag d = {0};
	struct dkim_signer *s;
	char *want;

	(void)state;
	assert_int_equal(chmod(ed_path, 0644), 0);
	assert_true(asprintf(&want,
	                     "dkim key %s is readable by others (mode 0644): "
	                     "chmod 600 %s",
	                     ed_path, ed_path) > 0);
	assert_load_refused(ed_path, DOMAIN, SELECTOR, want);
	free(want);
	assert_int_equal(chmod(ed_path, 0640), 0);
	assert_load_refused(ed_path, DOMAIN, SELECTOR,
	                    "is readable by group (mode 0640)");
	assert_int_equal(chmod(ed_path, 0602), 0);
	assert_load_refused(ed_path, DOMAIN, SELECTOR,
	                    "is writable by others (mode 0602)");
	assert_int_equal(chmod(ed_path, 0660), 0);
	assert_load_refused(ed_path, DOMAIN, SELECTOR,
	                    "is readable and writable by group (mode 0660)");
	assert_int_equal(chmod(ed_path, 0664), 0);
	assert_load_refused(ed_path, DOMAIN, SELECTOR,
	                    "is readable by others (mode 0664)");
	/* Execute bits give nothing away. */
	assert_int_equal(chmod(ed_path, 0711), 0);
	s = dkim_signer_load(ed_path, DOMAIN, SELECTOR, &d);
	assert_non_null(s);
	dkim_signer_free(s);
	assert_int_equal(chmod(ed_path, 0400), 0);
	s = dkim_signer_load(ed_path, DOMAIN, SELECTOR, &d);
	assert_non_null(s);
	dkim_signer_free(s);
	assert_int_equal(chmod(ed_path, 0600), 0);
}

static void test_short_rsa(void **state)
{
	char *path = make_key("rsa1024.pem", GNUTLS_PK_RSA, 1024, 0, 0600);

	(void)state;
	assert_load_refused(path, DOMAIN, SELECTOR, "is a 1024-bit RSA key");
	free(path);
}

static void test_other_key_types(void **state)
{
	char *path =
	    make_key("p256.pem", GNUTLS_PK_ECDSA,
	             GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, 0600);

	(void)state;
	assert_load_refused(path, DOMAIN, SELECTOR,
	                    "DKIM signs with RSA (rsa-sha256) or Ed25519");
	free(path);
}

static void test_bad_key_files(void **state)
{
	static const char *garbage[] = {
	    "",
	    "this is not a key\n",
	    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
	};
	char *path = path_in_tmp("garbage.pem"), *missing;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(garbage) / sizeof(*garbage); i++) {
		write_file(path, garbage[i], strlen(garbage[i]), 0600);
		assert_load_refused(path, DOMAIN, SELECTOR,
		                    "cannot be read as a PEM private key");
	}
	assert_load_refused(tmpdir, DOMAIN, SELECTOR, "is not a regular file");
	missing = path_in_tmp("missing.pem");
	assert_load_refused(missing, DOMAIN, SELECTOR, "cannot open");
	free(missing);
	free(path);
}

static void test_names(void **state)
{
	static const struct {
		const char *name, *why;
	} bad[] = {
	    {"", "is empty"},
	    {"exa mple.org", "other than letters"},
	    {"example.org\r\nBcc: x", "other than letters"},
	    {"example_org", "other than letters"},
	    {"-example.org", "starting with '-'"},
	    {"example-.org", "ending with '-'"},
	    {"example.org-", "ending with '-'"},
	    {"example..org", "empty label"},
	    {".example.org", "empty label"},
	    {"example.org.", "empty label"},
	    {"b\xc3\xbc"
	     "cher.example",
	     "xn--"},
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     ".org",
	     "longer than 63"},
	};
	static const char *good[] = {"example.org", "mail.example.co.uk",
	                             "xn--bcher-kva.example", "a1-b2.x"};
	char *domain;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_load_refused(ed_path, bad[i].name, SELECTOR, bad[i].why);
		assert_load_refused(ed_path, DOMAIN, bad[i].name, bad[i].why);
	}
	assert_load_refused(ed_path, "exa mple.org", SELECTOR,
	                    "dkim domain \"exa mple.org\"");
	assert_load_refused(ed_path, DOMAIN, "s 1", "dkim selector \"s 1\"");
	/* A name with a line break is not echoed into the message. */
	assert_load_refused(ed_path, "x.org\r\nBcc: y", SELECTOR,
	                    "dkim domain (not shown: it holds control "
	                    "characters) holds");
	for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
		struct diag d = {0};
		struct dkim_signer *s =
		    dkim_signer_load(ed_path, good[i], "sel.2024", &d);
		if (s == NULL)
			fail_msg("%s refused: %s", good[i], diag_first(&d));
		dkim_signer_free(s);
	}
	/* 240 + "._domainkey." + selector is over 253. */
	domain = malloc(241);
	assert_non_null(domain);
	for (i = 0; i < 240; i++)
		domain[i] = i % 10 == 9 ? '.' : 'a';
	domain[239] = 'a';
	domain[240] = '\0';
	assert_load_refused(ed_path, domain, SELECTOR, "too long together");
	free(domain);
}

static void test_bad_messages(void **state)
{
	const char *m;

	(void)state;
	m = "To: a@example.org\r\nSubject: x\r\n\r\nbody\r\n";
	assert_sign_refused(m, strlen(m), "no From field");
	m = "\r\nFrom: a@example.org\r\n";
	assert_sign_refused(m, strlen(m), "no From field");
	assert_sign_refused("", 0, "no From field");
	m = "From: a@example.org\r\nFrom: b@example.org\r\n\r\nx\r\n";
	assert_sign_refused(m, strlen(m), "more than one From");
	m = "From: a@example.org\r\nthis is not a field\r\n\r\nx\r\n";
	assert_sign_refused(m, strlen(m), "line 2 is not a header field");
	m = " From: a@example.org\r\n\r\nx\r\n";
	assert_sign_refused(m, strlen(m), "starts with whitespace");
	m = "From: a@example.org\nSubject: x\r\n\r\nx\r\n";
	assert_sign_refused(m, strlen(m), "line 1 has a bare CR or LF");
	m = "From: a@example.org\r\nSubject: x\ry\r\n\r\nx\r\n";
	assert_sign_refused(m, strlen(m), "line 2 has a bare CR or LF");
	m = "From: a@example.org\r\n\r\nline 3\r\nline 4\nx\r\n";
	assert_sign_refused(m, strlen(m), "line 4 has a bare LF");
	m = "From: a@example.org\r\n\r\nx\r";
	assert_sign_refused(m, strlen(m), "line 3 has a bare CR");
	m = "From: a@example.org\r\n: no name\r\n\r\nx\r\n";
	assert_sign_refused(m, strlen(m), "bad header field name");
	{
		/* 64 instances of signed names are kept, not 65. */
		size_t cap = 70 * 24, n = 0, i;
		char *many = malloc(cap), *more = malloc(cap + 32);
		assert_non_null(many);
		assert_non_null(more);
		n += (size_t)snprintf(many, cap, "From: a@example.org\r\n");
		for (i = 0; i < 63; i++)
			n += (size_t)snprintf(many + n, cap - n,
			                      "To: b%zu@example.org\r\n", i);
		n += (size_t)snprintf(many + n, cap - n, "\r\nx\r\n");
		free(sign_ok(ed, many));
		n = (size_t)snprintf(more, cap + 32, "To: c@example.org\r\n%s",
		                     many);
		assert_sign_refused(more, n, "more than 64 fields");
		free(more);
		free(many);
	}
	{
		struct diag d = {0};
		m = "From: a@example.org\r\n\r\n";
		assert_null(dkim_sign(ed, m, strlen(m), -1, &d));
		assert_diag_has(&d, "negative");
		diag_clear(&d);
	}
}

/* A message with a NUL byte and 8-bit bytes is signed as bytes. */
static void test_binary_bytes(void **state)
{
	static const char m[] = "From: a@example.org\r\n\r\na\0b\xff\r\n";
	static const char canon[] = "a\0b\xff\r\n";
	struct diag d = {0};
	char *f, *bh, *want;

	(void)state;
	f = dkim_sign(ed, m, sizeof(m) - 1, NOW, &d);
	assert_non_null(f);
	bh = tag_value(f, "bh");
	want = sha256_b64(canon, sizeof(canon) - 1);
	assert_string_equal(bh, want);
	free(want);
	free(bh);
	free(f);
}

/* ---- set-up ---- */

static int setup(void **state)
{
	struct diag d = {0};

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	ed_path =
	    make_key("ed25519.pem", GNUTLS_PK_EDDSA_ED25519,
	             GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0, 0600);
	rsa_path = make_key("rsa2048.pem", GNUTLS_PK_RSA, 2048, 0, 0600);
	ed = dkim_signer_load(ed_path, DOMAIN, SELECTOR, &d);
	rsa = dkim_signer_load(rsa_path, DOMAIN, SELECTOR, &d);
	if (ed == NULL || rsa == NULL) {
		diag_print(&d, stderr);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	static const char *names[] = {"ed25519.pem",   "rsa2048.pem",
	                              "rsa-pkcs1.pem", "rsa1024.pem",
	                              "p256.pem",      "garbage.pem"};
	size_t i;

	(void)state;
	dkim_signer_free(ed);
	dkim_signer_free(rsa);
	for (i = 0; i < sizeof(names) / sizeof(*names); i++) {
		char *p = path_in_tmp(names[i]);
		unlink(p);
		free(p);
	}
	rmdir(tmpdir);
	free(ed_path);
	free(rsa_path);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6376_example),
	    cmocka_unit_test(test_body_whitespace),
	    cmocka_unit_test(test_body_long),
	    cmocka_unit_test(test_empty_body),
	    cmocka_unit_test(test_fields_and_folding),
	    cmocka_unit_test(test_rsa_keys),
	    cmocka_unit_test(test_key_mode),
	    cmocka_unit_test(test_short_rsa),
	    cmocka_unit_test(test_other_key_types),
	    cmocka_unit_test(test_bad_key_files),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_bad_messages),
	    cmocka_unit_test(test_binary_bytes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
