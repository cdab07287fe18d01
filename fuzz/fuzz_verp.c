/*
 * fuzz_verp — verp_check on any address under a fixed secret and domain;
 * and for a key made from the input, the return path verp_bounce_address
 * makes must verify as that key's bounces address, and no change of one
 * byte of it (other than the case of a letter) may verify.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "herald/diag.h"
#include "herald/verp.h"

#define SECRET_ENV "HERALD_FUZZ_VERP_SECRET"
#define DOMAIN     "news.example.org"

static struct verp *verp_fixed(void)
{
	static struct verp *v;
	struct diag d = {0};

	if (v != NULL)
		return v;
	if (setenv(SECRET_ENV, "fuzzing secret, sixteen bytes or more", 1) < 0)
		abort();
	v = verp_load(NULL, SECRET_ENV, DOMAIN, &d);
	FUZZ_CHECK(v != NULL, "verp_load refused the fixed secret");
	diag_clear(&d);
	return v;
}

static int is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) &&
		    !(s[i] >= 'a' && s[i] <= 'f'))
			return 0;
	return 1;
}

/* What verp_check accepted must be what verp_*_address makes. */
static void check_accepted(const struct verp *v, const char *addr,
                           enum verp_kind kind, const char key[33])
{
	char msgid[64];
	char *want;
	const char *s = addr;
	size_t n;

	FUZZ_CHECK(strlen(key) == 32 && is_lower_hex(key, 32),
	           "accepted with a key not 32 lowercase hex");
	FUZZ_CHECK(kind == VERP_BOUNCES || kind == VERP_UNSUBSCRIBE,
	           "accepted with an unknown kind");
	snprintf(msgid, sizeof(msgid), "%s@fuzz.example", key);
	want = kind == VERP_BOUNCES ? verp_bounce_address(v, msgid)
	                            : verp_unsubscribe_address(v, msgid);
	FUZZ_CHECK(want != NULL, "no address for an accepted key");
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '<')
		s++;
	n = strlen(want);
	FUZZ_CHECK(strncasecmp(s, want, n) == 0,
	           "accepted an address herald does not make");
	s += n;
	FUZZ_CHECK(strspn(s, ">") <= 1, "accepted >> after the address");
	s += strspn(s, ">");
	FUZZ_CHECK(s[strspn(s, " \t")] == '\0', "accepted junk at the end");
	free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct verp *v = verp_fixed();
	char key[33], msgid[64], *text, *addr;
	enum verp_kind kind;
	size_t pos, alen;
	unsigned char old, repl;

	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (verp_check(v, text, &kind, key) == 0)
		check_accepted(v, text, kind, key);
	else
		FUZZ_CHECK(key[0] == '\0', "refused, and a key set");
	free(text);

	/* A key from the first 16 bytes, the change from the next two. */
	for (size_t i = 0; i < 16; i++) {
		unsigned char c = i < size ? data[i] : 0;

		key[2 * i] = "0123456789abcdef"[c >> 4];
		key[2 * i + 1] = "0123456789abcdef"[c & 15];
	}
	snprintf(msgid, sizeof(msgid), "%.32s@mail.example.org", key);
	addr = verp_bounce_address(v, msgid);
	FUZZ_CHECK(addr != NULL, "no return path for a valid Message-ID");
	FUZZ_CHECK(verp_check(v, addr, &kind, key) == 0 &&
	               kind == VERP_BOUNCES && strncmp(key, msgid, 32) == 0,
	           "a return path herald made does not verify");
	alen = strlen(addr);
	pos = (size > 16 ? data[16] : 0) % alen;
	repl = size > 17 ? data[17] : 0;
	old = (unsigned char)addr[pos];
	if (tolower(repl) != tolower(old)) {
		addr[pos] = (char)repl;
		FUZZ_CHECK(verp_check(v, addr, &kind, key) < 0,
		           "a return path changed in one byte verifies");
	}
	free(addr);
	return 0;
}
