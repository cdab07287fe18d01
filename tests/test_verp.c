/*
 * verp tests: the shape of the signed return paths and unsubscribe
 * addresses, a known answer that pins the MAC so the daemon and `herald
 * preview` stay in agreement, checking that refuses forgeries and
 * malformed input, and the secret's loading rules (mode, size, source),
 * with the secret never shown in a message.
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

#include "herald/verp.h"

#define SECRET   "correct horse battery staple 42"
#define SECRET2  "another secret, quite different"
#define ENV_NAME "HERALD_TEST_VERP_SECRET"
#define DOMAIN   "news.example.org"
#define KEY      "0123456789abcdef0123456789abcdef"
#define MSGID    KEY "@mail.example.org"
/* HMAC-SHA256(SECRET, "herald-verp-v1:<kind>:" KEY), first 80 bits in
 * lowercase base32, computed apart from herald (Python hmac, base64). */
#define BOUNCE_WANT "bounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN
#define UNSUB_WANT  "unsubscribe+" KEY "-5iqiamwzacbn67vd@" DOMAIN

/* Does any message in d contain needle? */
static int diag_has(const struct diag *d, const char *needle)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strstr(d->v[i].msg, needle) != NULL ||
		    (d->v[i].file != NULL && strstr(d->v[i].file, needle)))
			return 1;
	return 0;
}

/* A new temporary file holding len bytes of s with the given mode; the
 * caller unlinks and frees the returned path. */
static char *write_secret(const char *s, size_t len, mode_t mode)
{
	const char *dir = getenv("TMPDIR");
	char *path = NULL;
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	assert_true(asprintf(&path, "%s/herald-verp-XXXXXX", dir) > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static struct verp *load_env(const char *secret, const char *domain)
{
	struct diag d = {0};
	struct verp *v;

	assert_int_equal(setenv(ENV_NAME, secret, 1), 0);
	v = verp_load(NULL, ENV_NAME, domain, &d);
	if (v == NULL)
		fail_msg("verp_load: %s", diag_first(&d));
	diag_clear(&d);
	return v;
}

/* Expect verp_check to refuse address. */
static void expect_refused(const struct verp *v, const char *address)
{
	enum verp_kind kind = VERP_UNSUBSCRIBE;
	char key[33] = "unchanged";

	if (verp_check(v, address, &kind, key) == 0)
		fail_msg("accepted \"%s\"", address);
	assert_string_equal(key, "");
}

static void expect_accepted(const struct verp *v, const char *address,
                            enum verp_kind want_kind, const char *want_key)
{
	enum verp_kind kind =
	    want_kind == VERP_BOUNCES ? VERP_UNSUBSCRIBE : VERP_BOUNCES;
	char key[33] = "";

	if (verp_check(v, address, &kind, key) != 0)
		fail_msg("refused \"%s\"", address);
	assert_int_equal(kind, want_kind);
	assert_string_equal(key, want_key);
}

static void test_known_answer(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	char *b = verp_bounce_address(v, MSGID);
	char *u = verp_unsubscribe_address(v, MSGID);

	(void)state;
	assert_string_equal(b, BOUNCE_WANT);
	assert_string_equal(u, UNSUB_WANT);
	free(b);
	free(u);
	verp_free(v);
}

static void test_shape(void **state)
{
	struct verp *v = load_env(SECRET, "News.Example.ORG");
	char *b = verp_bounce_address(v, "ffeeddccbbaa99887766554433221100@x");
	char *u =
	    verp_unsubscribe_address(v, "ffeeddccbbaa99887766554433221100@x");
	const char *at, *p;

	(void)state;
	assert_string_equal(verp_domain(v), DOMAIN);
	assert_non_null(b);
	assert_non_null(u);
	assert_memory_equal(b, "bounces+ffeeddccbbaa99887766554433221100-", 41);
	assert_memory_equal(u, "unsubscribe+ffeeddccbbaa99887766554433221100-",
	                    45);
	at = strchr(b, '@');
	assert_non_null(at);
	assert_int_equal(at - b, 57);
	assert_string_equal(at, "@" DOMAIN);
	for (p = b + 41; p < at; p++)
		assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz234567", *p));
	at = strchr(u, '@');
	assert_int_equal(at - u, 61);
	assert_true(at - u <= 64);
	assert_string_equal(at, "@" DOMAIN);
	free(b);
	free(u);
	verp_free(v);
}

/* The address depends only on the secret, the domain and the key: the
 * same secret from a file (with its newline) and from the environment
 * give the same address, whatever the Message-ID's domain. */
static void test_same_message_id_same_address(void **state)
{
	char *path = write_secret(SECRET "\n", strlen(SECRET) + 1, 0600);
	struct diag d = {0};
	struct verp *f = verp_load(path, NULL, DOMAIN, &d);
	struct verp *e = load_env(SECRET, DOMAIN);
	char *a, *b, *c;

	(void)state;
	if (f == NULL)
		fail_msg("verp_load: %s", diag_first(&d));
	a = verp_bounce_address(f, MSGID);
	b = verp_bounce_address(e, MSGID);
	c = verp_bounce_address(e, KEY "@other.example");
	assert_string_equal(a, BOUNCE_WANT);
	assert_string_equal(a, b);
	assert_string_equal(a, c);
	free(a);
	free(b);
	free(c);
	verp_free(f);
	verp_free(e);
	unlink(path);
	free(path);
	diag_clear(&d);
}

static void test_macs_differ(void **state)
{
	struct verp *v1 = load_env(SECRET, DOMAIN);
	struct verp *v2 = load_env(SECRET2, DOMAIN);
	char *a = verp_bounce_address(v1, MSGID);
	char *b = verp_bounce_address(v2, MSGID);
	char *u = verp_unsubscribe_address(v1, MSGID);
	char *k = verp_bounce_address(v1, "0123456789abcdef0123456789abcdee@x");

	(void)state;
	/* Same key, so the MACs are the 16 characters after "-". */
	assert_memory_not_equal(a + 41, b + 41, 16);
	assert_memory_not_equal(a + 41, u + 45, 16);
	assert_memory_not_equal(a + 41, k + 41, 16);
	/* An address made with one secret does not check with another. */
	expect_accepted(v1, a, VERP_BOUNCES, KEY);
	expect_refused(v2, a);
	expect_refused(v1, b);
	free(a);
	free(b);
	free(u);
	free(k);
	verp_free(v1);
	verp_free(v2);
}

static void test_round_trip(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	const char *id = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5@mail.example.org";
	char *b = verp_bounce_address(v, id);
	char *u = verp_unsubscribe_address(v, id);

	(void)state;
	expect_accepted(v, b, VERP_BOUNCES, "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5");
	expect_accepted(v, u, VERP_UNSUBSCRIBE,
	                "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5");
	expect_accepted(v, BOUNCE_WANT, VERP_BOUNCES, KEY);
	expect_accepted(v, UNSUB_WANT, VERP_UNSUBSCRIBE, KEY);
	/* kind and key may be NULL. */
	assert_int_equal(verp_check(v, b, NULL, NULL), 0);
	assert_int_equal(verp_check(v, b + 1, NULL, NULL), -1);
	free(b);
	free(u);
	verp_free(v);
}

/* Mailbox providers may fold the local part's case; the domain has none. */
static void test_case_and_wrapping(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	char *b = verp_bounce_address(v, MSGID);
	char *up = strdup(b);
	char *wrapped = NULL;
	size_t i;

	(void)state;
	for (i = 0; up[i] != '\0'; i++)
		if (up[i] >= 'a' && up[i] <= 'z')
			up[i] = (char)(up[i] - 'a' + 'A');
	expect_accepted(v, up, VERP_BOUNCES, KEY);
	expect_accepted(v,
	                "Unsubscribe+0123456789ABCDEF0123456789abcdef-"
	                "5IQIAMWZACBN67VD@News.Example.Org",
	                VERP_UNSUBSCRIBE, KEY);
	assert_true(asprintf(&wrapped, " \t<%s>  ", b) > 0);
	expect_accepted(v, wrapped, VERP_BOUNCES, KEY);
	free(wrapped);
	assert_true(asprintf(&wrapped, "  %s\t", b) > 0);
	expect_accepted(v, wrapped, VERP_BOUNCES, KEY);
	free(wrapped);
	free(up);
	free(b);
	verp_free(v);
}

/* Every character of the MAC and of the key counts. */
static void test_flipped_characters(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	char *b = verp_bounce_address(v, MSGID);
	size_t i;

	(void)state;
	for (i = strlen("bounces+"); i < 57; i++) {
		char c = b[i];
		if (c == '-')
			continue;
		/* Stay within the alphabet so only the MAC can refuse it. */
		b[i] = c == 'a' ? 'b' : 'a';
		expect_refused(v, b);
		b[i] = c;
	}
	expect_accepted(v, b, VERP_BOUNCES, KEY);
	free(b);
	verp_free(v);
}

/* A token made for one kind is refused as the other. */
static void test_kind_swap(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	char *b = verp_bounce_address(v, MSGID);
	char *u = verp_unsubscribe_address(v, MSGID);
	char *swapped = NULL;

	(void)state;
	assert_true(
	    asprintf(&swapped, "unsubscribe+%s", b + strlen("bounces+")) > 0);
	expect_refused(v, swapped);
	free(swapped);
	assert_true(
	    asprintf(&swapped, "bounces+%s", u + strlen("unsubscribe+")) > 0);
	expect_refused(v, swapped);
	free(swapped);
	free(b);
	free(u);
	verp_free(v);
}

static void test_wrong_domain(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	struct verp *other = load_env(SECRET, "example.org");
	char *o = verp_bounce_address(other, MSGID);
	const char *token = "bounces+" KEY "-yz7z2ngphft5d5aw";
	const char *domains[] = {"example.org", "news.example.com", DOMAIN ".",
	                         "x." DOMAIN,   "news-example.org", ""};
	char *a = NULL;
	size_t i;

	(void)state;
	expect_refused(v, o);
	for (i = 0; i < sizeof(domains) / sizeof(*domains); i++) {
		assert_true(asprintf(&a, "%s@%s", token, domains[i]) > 0);
		expect_refused(v, a);
		free(a);
	}
	free(o);
	verp_free(v);
	verp_free(other);
}

static void test_malformed(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	char *longer = NULL;
	char huge[2000];
	const char *bad[] = {
	    "",
	    "   ",
	    "<>",
	    "bounces+" KEY "-yz7z2ngphft5d5aw" DOMAIN, /* no @ */
	    "bounces+" KEY "-yz7z2ngphft5d5aw@",       /* no domain */
	    "bounces+0123456789abcdef0123456789abcde-yz7z2ngphft5d5aw@" DOMAIN,
	    "bounces+0123456789abcdef0123456789abcdeg-yz7z2ngphft5d5aw@" DOMAIN,
	    "bounces+" KEY "-yz7z2ngphft5d5a@" DOMAIN,         /* short MAC */
	    "bounces+" KEY "-yz7z2ngphft5d5awa@" DOMAIN,       /* long MAC */
	    "bounces+" KEY "-yz7z2ngphft5d5a1@" DOMAIN,        /* not base32 */
	    "bounces+" KEY "yz7z2ngphft5d5aw@" DOMAIN,         /* no '-' */
	    "bounces-" KEY "-yz7z2ngphft5d5aw@" DOMAIN,        /* no '+' */
	    "bounce+" KEY "-yz7z2ngphft5d5aw@" DOMAIN,         /* kind */
	    "xbounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN,       /* extra */
	    "bounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN "x",    /* extra */
	    "bounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN " x",   /* extra */
	    "bounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN "\r\n", /* CRLF */
	    "<bounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN,       /* half < > */
	    "bounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN ">",    /* half < > */
	    "<<bounces+" KEY "-yz7z2ngphft5d5aw@" DOMAIN ">>", /* two < > */
	    "\"bounces+" KEY "-yz7z2ngphft5d5aw\"@" DOMAIN,    /* quoted */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		expect_refused(v, bad[i]);
	/* Too long: a domain padded beyond 254 octets, and a valid address
	 * with text after more spaces than the input cap. */
	assert_true(asprintf(&longer, "%s%0*d", BOUNCE_WANT, 300, 0) > 0);
	expect_refused(v, longer);
	free(longer);
	memset(huge, ' ', sizeof(huge) - 2);
	huge[sizeof(huge) - 2] = 'x';
	huge[sizeof(huge) - 1] = '\0';
	assert_true(asprintf(&longer, "%s%s", BOUNCE_WANT, huge) > 0);
	expect_refused(v, longer);
	free(longer);
	/* Within the cap, spaces around it are allowed. */
	huge[sizeof(huge) - 2] = ' ';
	assert_true(
	    asprintf(&longer, "%.500s%s%.400s", huge, BOUNCE_WANT, huge) > 0);
	expect_accepted(v, longer, VERP_BOUNCES, KEY);
	free(longer);
	assert_int_equal(verp_check(v, NULL, NULL, NULL), -1);
	assert_int_equal(verp_check(NULL, BOUNCE_WANT, NULL, NULL), -1);
	verp_free(v);
}

static void test_bad_message_ids(void **state)
{
	struct verp *v = load_env(SECRET, DOMAIN);
	const char *bad[] = {
	    "",
	    KEY,
	    KEY "@",
	    "<" KEY "@mail.example.org>",
	    "0123456789ABCDEF0123456789abcdef@mail.example.org",
	    "0123456789abcdef0123456789abcde@mail.example.org",
	    "0123456789abcdef0123456789abcdef0@mail.example.org",
	    "0123456789abcdeg0123456789abcdef@mail.example.org",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char *b = verp_bounce_address(v, bad[i]);
		char *u = verp_unsubscribe_address(v, bad[i]);
		if (b != NULL || u != NULL)
			fail_msg("made an address for \"%s\"", bad[i]);
	}
	assert_null(verp_bounce_address(v, NULL));
	assert_null(verp_bounce_address(NULL, MSGID));
	verp_free(v);
}

static void expect_mode_refused(mode_t mode, const char *what)
{
	char *path = write_secret(SECRET, strlen(SECRET), mode);
	struct diag d = {0};
	char *want = NULL;

	assert_null(verp_load(path, NULL, DOMAIN, &d));
	assert_int_equal(d.errors, 1);
	assert_true(asprintf(&want,
	                     "bounce secret %s is %s (mode %04o): "
	                     "chmod 600 %s",
	                     path, what, (unsigned)mode, path) > 0);
	if (!diag_has(&d, want))
		fail_msg("got \"%s\", expected \"%s\"", diag_first(&d), want);
	assert_false(diag_has(&d, SECRET));
	free(want);
	unlink(path);
	free(path);
	diag_clear(&d);
}

static void test_secret_file_mode(void **state)
{
	char *path = write_secret(SECRET, strlen(SECRET), 0400);
	struct diag d = {0};
	struct verp *v;

	(void)state;
	expect_mode_refused(0644, "readable by others");
	expect_mode_refused(0640, "readable by group");
	expect_mode_refused(0620, "writable by group");
	expect_mode_refused(0606, "readable and writable by others");
	v = verp_load(path, NULL, DOMAIN, &d);
	assert_non_null(v);
	assert_int_equal(d.errors, 0);
	verp_free(v);
	unlink(path);
	free(path);
}

static void test_secret_file_size(void **state)
{
	char big[4098];
	char *path;
	struct diag d = {0};
	struct verp *v;

	(void)state;
	/* Short, even before its newline is taken off. */
	path = write_secret("0123456789abcde\n", 16, 0600);
	assert_null(verp_load(path, NULL, DOMAIN, &d));
	assert_true(diag_has(&d, "is shorter than 16 bytes"));
	assert_true(diag_has(&d, path));
	assert_false(diag_has(&d, "0123456789abcde"));
	unlink(path);
	free(path);
	diag_clear(&d);

	/* A file of 4096 bytes (newline included) is allowed; 4097 bytes
	 * is not. */
	memset(big, 's', sizeof(big));
	big[4095] = '\n';
	path = write_secret(big, 4096, 0600);
	v = verp_load(path, NULL, DOMAIN, &d);
	assert_non_null(v);
	verp_free(v);
	unlink(path);
	free(path);
	big[4095] = 's';
	path = write_secret(big, 4097, 0600);
	assert_null(verp_load(path, NULL, DOMAIN, &d));
	assert_true(diag_has(&d, "is larger than 4096 bytes"));
	unlink(path);
	free(path);
	diag_clear(&d);

	/* Missing file, and a directory. */
	assert_null(verp_load("/nonexistent/herald-verp", NULL, DOMAIN, &d));
	assert_true(diag_has(&d, "/nonexistent/herald-verp: cannot open"));
	assert_null(verp_load("/", NULL, DOMAIN, &d));
	assert_true(diag_has(&d, "is not a regular file"));
	diag_clear(&d);
}

static void test_env_secret(void **state)
{
	struct diag d = {0};

	(void)state;
	assert_int_equal(unsetenv(ENV_NAME), 0);
	assert_null(verp_load(NULL, ENV_NAME, DOMAIN, &d));
	assert_true(
	    diag_has(&d, "environment variable " ENV_NAME " is not set"));
	diag_clear(&d);

	assert_int_equal(setenv(ENV_NAME, "short-secret", 1), 0);
	assert_null(verp_load(NULL, ENV_NAME, DOMAIN, &d));
	assert_true(diag_has(&d, ENV_NAME " is shorter than 16 bytes"));
	assert_false(diag_has(&d, "short-secret"));
	diag_clear(&d);

	/* Exactly one source. */
	assert_int_equal(setenv(ENV_NAME, SECRET, 1), 0);
	assert_null(verp_load(NULL, NULL, DOMAIN, &d));
	assert_true(diag_has(&d, "neither was given"));
	assert_null(verp_load("/dev/null", ENV_NAME, DOMAIN, &d));
	assert_true(diag_has(&d, "both were given"));
	assert_false(diag_has(&d, SECRET));
	diag_clear(&d);
}

static void test_bad_domain(void **state)
{
	const char *bad[] = {
	    "",       "example..org", ".example.org", "example.org.", "-x.org",
	    "x-.org", "ex ample.org", "exa_mple.org", "bücher.de",    "x\n.org",
	};
	char longd[300];
	struct diag d = {0};
	size_t i;

	(void)state;
	assert_int_equal(setenv(ENV_NAME, SECRET, 1), 0);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		if (verp_load(NULL, ENV_NAME, bad[i], &d) != NULL)
			fail_msg("accepted domain \"%s\"", bad[i]);
	}
	assert_null(verp_load(NULL, ENV_NAME, NULL, &d));
	/* The address must fit in 254 octets: 58 plus the domain. */
	memset(longd, 'a', sizeof(longd));
	for (i = 60; i < sizeof(longd); i += 61)
		longd[i] = '.';
	longd[197] = '\0';
	assert_null(verp_load(NULL, ENV_NAME, longd, &d));
	longd[196] = '\0';
	verp_free(load_env(SECRET, longd));
	assert_true(diag_has(&d, "bounce domain \"example..org\""));
	assert_true(diag_has(&d, "not shown: it holds control characters"));
	assert_false(diag_has(&d, "x\n.org"));
	assert_false(diag_has(&d, SECRET));
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_answer),
	    cmocka_unit_test(test_shape),
	    cmocka_unit_test(test_same_message_id_same_address),
	    cmocka_unit_test(test_macs_differ),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_case_and_wrapping),
	    cmocka_unit_test(test_flipped_characters),
	    cmocka_unit_test(test_kind_swap),
	    cmocka_unit_test(test_wrong_domain),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_bad_message_ids),
	    cmocka_unit_test(test_secret_file_mode),
	    cmocka_unit_test(test_secret_file_size),
	    cmocka_unit_test(test_env_secret),
	    cmocka_unit_test(test_bad_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
