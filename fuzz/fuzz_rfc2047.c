/*
 * fuzz_rfc2047 — the header encoder against its promises (rfc2047.h) and
 * the decoder. The first byte chooses the field: even, a Subject
 * (rfc2047_text_field); odd, a To of up to four mailboxes
 * (rfc2047_address_field) whose display names are the rest of the input
 * cut at 0xFF bytes (never part of UTF-8), with fixed addresses.
 *
 * Promises checked: a value that is not valid UTF-8 free of control
 * characters is refused; a valid one is encoded unless the field would
 * pass the length limits; every field is printable ASCII with CRLF only
 * before the space or tab of a folded line, lines at most 998 characters,
 * encoded words at most 75; and rfc2047_decode gives back the value (the
 * display names with their <addresses>), trimmed of spaces at both ends;
 * runs of spaces are compared as one space (libetpan's decoder folds
 * those between words).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "herald/rfc2047.h"

#define MAX_BOXES 4

static const char *const addrs[MAX_BOXES] = {"desk@example.org",
                                             "a.b+c@example.com", "x@y",
                                             "news-desk@mail.example.net"};

/* Valid UTF-8 (shortest form, no surrogates, at most U+10FFFF) with no C0
 * control, DEL or C1 control: what the encoder must take. Written apart
 * from rfc2047.c on purpose. */
static bool text_ok(const unsigned char *s)
{
	while (*s != '\0') {
		unsigned long cp;
		size_t more;

		if (*s < 0x80) {
			if (*s < 0x20 || *s == 0x7F)
				return false;
			s++;
			continue;
		}
		if ((*s & 0xE0) == 0xC0) {
			cp = *s & 0x1Fu;
			more = 1;
		} else if ((*s & 0xF0) == 0xE0) {
			cp = *s & 0x0Fu;
			more = 2;
		} else if ((*s & 0xF8) == 0xF0) {
			cp = *s & 0x07u;
			more = 3;
		} else {
			return false;
		}
		for (size_t k = 1; k <= more; k++) {
			if ((s[k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[k] & 0x3Fu);
		}
		if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) ||
		    (more == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF) ||
		    (cp >= 0x80 && cp <= 0x9F))
			return false;
		s += more + 1;
	}
	return true;
}

/* Check the form of a written field; returns it unfolded (malloc'd). */
static char *check_form(const char *f)
{
	size_t n = strlen(f), col = 0, k = 0, word = 0;
	char *flat = malloc(n + 1);

	FUZZ_CHECK(flat != NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)f[i];

		if (c == '\r') {
			FUZZ_CHECK(f[i + 1] == '\n' &&
			               (f[i + 2] == ' ' || f[i + 2] == '\t'),
			           "CR not in CRLF before a space or tab");
			i++;
			col = 0;
			continue;
		}
		FUZZ_CHECK(c >= 0x20 && c < 0x7F, "a byte not printable ASCII");
		FUZZ_CHECK(++col <= 998, "a line longer than 998");
		flat[k++] = (char)c;
	}
	flat[k] = '\0';
	/* encoded words: "=?UTF-8?" up to the next "?=" */
	for (const char *p = flat; (p = strstr(p, "=?UTF-8?")) != NULL;
	     p += word) {
		const char *e = strstr(p + 10, "?=");

		FUZZ_CHECK(e != NULL, "an encoded word without its end");
		word = (size_t)(e + 2 - p);
		FUZZ_CHECK(word <= 75, "an encoded word longer than 75");
	}
	return flat;
}

/* s trimmed of spaces at both ends, runs of spaces made one, appended to
 * out at *k. */
static void squeeze(const char *s, char *out, size_t *k)
{
	bool space = false;

	while (*s == ' ')
		s++;
	for (; *s != '\0'; s++) {
		if (*s == ' ') {
			space = true;
			continue;
		}
		if (space)
			out[(*k)++] = ' ';
		space = false;
		out[(*k)++] = *s;
	}
	out[*k] = '\0';
}

/* libetpan's decoder keeps the spaces inside an encoded word and folds
 * runs of them between words: compare with runs of spaces as one. */
static void check_decode(const char *value, const char *want)
{
	char *got = rfc2047_decode(value), *sq;
	size_t k = 0;

	FUZZ_CHECK(got != NULL, "rfc2047_decode refused what herald wrote");
	sq = malloc(strlen(got) + 1);
	FUZZ_CHECK(sq != NULL, "out of memory");
	squeeze(got, sq, &k);
	if (strcmp(sq, want) != 0) {
		fprintf(stderr, "wrote  [%s]\ndecoded [%s]\nwanted  [%s]\n",
		        value, got, want);
		FUZZ_CHECK(0, "the decoded field is not the value");
	}
	free(sq);
	free(got);
}

static void subject(const char *value)
{
	bool ok = text_ok((const unsigned char *)value);
	char *f, *flat, *want;
	size_t k = 0;

	errno = 0;
	f = rfc2047_text_field("Subject", value);
	if (!ok) {
		FUZZ_CHECK(f == NULL, "encoded a value with bad UTF-8 or a "
		                      "control character");
		return;
	}
	if (f == NULL) {
		FUZZ_CHECK(errno == E2BIG || errno == ENOMEM,
		           "refused a valid value");
		return;
	}
	flat = check_form(f);
	FUZZ_CHECK(strncmp(flat, "Subject:", 8) == 0, "not a Subject field");
	want = malloc(strlen(value) + 1);
	FUZZ_CHECK(want != NULL, "out of memory");
	squeeze(value, want, &k);
	if (k == 0) {
		FUZZ_CHECK(flat[8] == '\0', "an empty value written");
	} else {
		FUZZ_CHECK(flat[8] == ' ' && flat[9] != ' ',
		           "\"Subject:\" not followed by one space");
		check_decode(f + 9, want);
	}
	free(want);
	free(flat);
	free(f);
}

/* How the decoder should give back a display name: as it is when the
 * encoder writes it as atoms or as encoded words, in its quoted-string
 * form when it has ASCII specials and nothing that needs encoding
 * (libetpan's decoder leaves quoted strings as they are). */
static void name_want(const char *name, char *out, size_t *k)
{
	bool special = false, encode = false;
	char *sq = malloc(strlen(name) + 1);
	size_t n = 0;

	FUZZ_CHECK(sq != NULL, "out of memory");
	squeeze(name, sq, &n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)sq[i];

		if (c >= 0x80 || (c == '=' && sq[i + 1] == '?'))
			encode = true;
		else if (c != ' ' && !isalnum(c) &&
		         strchr("!#$%&'*+-/=?^_`{|}~", c) == NULL)
			special = true;
	}
	if (!special || encode) {
		memcpy(out + *k, sq, n + 1);
		*k += n;
	} else {
		out[(*k)++] = '"';
		for (size_t i = 0; i < n; i++) {
			if (sq[i] == '"' || sq[i] == '\\')
				out[(*k)++] = '\\';
			out[(*k)++] = sq[i];
		}
		out[(*k)++] = '"';
		out[*k] = '\0';
	}
	free(sq);
}

static void to(char *const names[], size_t n)
{
	struct rfc2047_mailbox boxes[MAX_BOXES];
	bool ok = true;
	size_t cap = 64, k = 0;
	char *f, *flat, *want;

	for (size_t i = 0; i < n; i++) {
		boxes[i].name = names[i];
		boxes[i].addr = addrs[i];
		ok = ok && text_ok((const unsigned char *)names[i]);
		cap += 2 * strlen(names[i]) + strlen(addrs[i]) + 8;
	}
	errno = 0;
	f = rfc2047_address_field("To", boxes, n);
	if (!ok) {
		FUZZ_CHECK(f == NULL, "encoded a name with bad UTF-8 or a "
		                      "control character");
		return;
	}
	if (f == NULL) {
		FUZZ_CHECK(errno == E2BIG || errno == ENOMEM,
		           "refused a valid name");
		return;
	}
	flat = check_form(f);
	FUZZ_CHECK(strncmp(flat, "To: ", 4) == 0, "not a To field");
	want = malloc(cap);
	FUZZ_CHECK(want != NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t before;

		if (i > 0) {
			memcpy(want + k, ", ", 2);
			k += 2;
		}
		before = k;
		name_want(names[i], want, &k);
		if (k > before)
			k += (size_t)snprintf(want + k, cap - k, " <%s>",
			                      addrs[i]);
		else
			k +=
			    (size_t)snprintf(want + k, cap - k, "%s", addrs[i]);
	}
	check_decode(f + 4, want);
	free(want);
	free(flat);
	free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *names[MAX_BOXES];
	size_t n = 0;

	if (size == 0)
		return 0;
	buf = malloc(size);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	if ((data[0] & 1) == 0) {
		subject(buf);
	} else {
		char *p = buf, *cut;

		names[n++] = p;
		while (n < MAX_BOXES && (cut = strchr(p, 0xff)) != NULL) {
			*cut = '\0';
			p = cut + 1;
			names[n++] = p;
		}
		to(names, n);
	}
	free(buf);
	return 0;
}
