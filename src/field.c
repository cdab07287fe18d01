/*
 * field — the checks that every value read from herald's YAML files shares
 * (see field.h). Kept in one place so that the journalist list, the
 * coalition list, releases and the config all refuse the same bad input
 * with the same words.
 */
#include "herald/field.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* RFC 5322 line limit: a header line, folding aside, cannot carry more. */
#define FIELD_LINE_MAX 998
/* RFC 5321: 64-octet local part, 255-octet domain, 254 for the path. */
#define FIELD_LOCAL_MAX   64
#define FIELD_DOMAIN_MAX  253
#define FIELD_ADDRESS_MAX 254

const struct ydoc_node *field_get(const struct ydoc_node *m, const char *key,
                                  bool required, struct diag *d)
{
	const struct ydoc_node *v = ydoc_get(m, key);

	if (v == NULL && required && m != NULL)
		ydoc_error(d, m, "missing field \"%s\"", key);
	return v;
}

char *field_dup(const struct ydoc_node *n, struct diag *d)
{
	char *s = strdup(n->str);

	if (s == NULL)
		ydoc_error(d, n, "out of memory");
	return s;
}

int field_expect(const struct ydoc_node *n, enum ydoc_kind k, const char *what,
                 struct diag *d)
{
	if (n->kind == k)
		return 0;
	ydoc_error(d, n, "%s must be a %s, not a %s", what, ydoc_kind_name(k),
	           ydoc_kind_name(n->kind));
	return -1;
}

int field_known_keys(const struct ydoc_node *m, const char *const *known,
                     const char *what, struct diag *d)
{
	int rc = 0;

	for (size_t i = 0; i < m->npairs; i++) {
		const struct ydoc_node *k = m->pairs[i].key;
		size_t j;
		char *list = NULL;
		size_t len = 0;
		FILE *f;

		for (j = 0; known[j] != NULL; j++)
			if (strcmp(k->str, known[j]) == 0)
				break;
		if (known[j] != NULL)
			continue;
		rc = -1;
		f = open_memstream(&list, &len);
		if (f != NULL) {
			for (j = 0; known[j] != NULL; j++)
				fprintf(f, "%s%s", j ? ", " : "", known[j]);
			fclose(f);
		}
		ydoc_error(d, k, "unknown field \"%s\" in %s (expected %s)",
		           k->str, what, list ? list : "other fields");
		free(list);
	}
	return rc;
}

int field_line_text(const char *s, size_t len, const struct ydoc_node *n,
                    const char *what, size_t max, struct diag *d)
{
	if (max == 0)
		max = FIELD_LINE_MAX;
	if (len == 0) {
		ydoc_error(d, n, "%s is empty", what);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *name = NULL;
		if (c == '\n')
			name = "a line break (LF)";
		else if (c == '\r')
			name = "a carriage return (CR)";
		else if (c == '\0')
			name = "a NUL byte";
		else if (c < 0x20 || c == 0x7F)
			name = "a control character";
		if (name != NULL) {
			ydoc_error(d, n,
			           "%s contains %s at byte %zu: it must be "
			           "one line of text (it can reach a mail "
			           "header)",
			           what, name, i + 1);
			return -1;
		}
	}
	if (len > max) {
		ydoc_error(d, n, "%s is %zu bytes long, more than %zu", what,
		           len, max);
		return -1;
	}
	return 0;
}

int field_line_check(const struct ydoc_node *n, const char *what, size_t max,
                     struct diag *d)
{
	if (field_expect(n, YDOC_SCALAR, what, d) < 0)
		return -1;
	return field_line_text(n->str, n->len, n, what, max, d);
}

static bool field_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

int field_email_valid(const char *s, size_t len, const char **why)
{
	const char *at = memchr(s, '@', len);
	size_t llen, dlen, label = 0;
	bool dot = false;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80) {
			*why = "it contains non-ASCII characters (herald sends "
			       "to ASCII addresses; write an international "
			       "domain in its xn-- form)";
			return -1;
		}
	if (at == NULL) {
		*why = "it has no @";
		return -1;
	}
	if (len > FIELD_ADDRESS_MAX) {
		*why = "it is longer than 254 characters";
		return -1;
	}
	llen = (size_t)(at - s);
	dlen = len - llen - 1;
	if (llen > 0 && s[0] == '"') {
		*why = "quoted local parts (\"...\"@) are not accepted";
		return -1;
	}
	if (llen == 0) {
		*why = "the part before @ is empty";
		return -1;
	}
	if (llen > FIELD_LOCAL_MAX) {
		*why = "the part before @ is longer than 64 characters";
		return -1;
	}
	for (size_t i = 0; i < llen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (i == 0 || i == llen - 1 || s[i - 1] == '.') {
				*why = "the part before @ has a misplaced dot";
				return -1;
			}
		} else if (!field_atext(c)) {
			*why = "the part before @ has a character that needs "
			       "quoting (space, comma, <, >, @, ...)";
			return -1;
		}
	}
	if (dlen == 0) {
		*why = "the domain after @ is empty";
		return -1;
	}
	if (dlen > FIELD_DOMAIN_MAX) {
		*why = "the domain is longer than 253 characters";
		return -1;
	}
	for (size_t i = llen + 1; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)s[i] : '.';
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-') {
				*why = "the domain has an empty label or a "
				       "label ending in -";
				return -1;
			}
			if (i < len)
				dot = true;
			label = 0;
		} else if (isalnum(c) || c == '-') {
			if (label == 0 && c == '-') {
				*why = "a domain label starts with -";
				return -1;
			}
			if (++label > 63) {
				*why = "a domain label is longer than 63 "
				       "characters";
				return -1;
			}
		} else {
			*why = "the domain has a character other than "
			       "letters, digits, - and .";
			return -1;
		}
	}
	if (!dot) {
		*why = "the domain has no dot (mail to a bare host name is "
		       "not delivered)";
		return -1;
	}
	return 0;
}

int field_email_check(const struct ydoc_node *n, const char *what,
                      struct diag *d)
{
	const char *why = NULL;

	if (field_line_check(n, what, FIELD_ADDRESS_MAX + 64, d) < 0)
		return -1;
	if (field_email_valid(n->str, n->len, &why) == 0)
		return 0;
	ydoc_error(d, n, "%s \"%s\" is not a valid address: %s", what, n->str,
	           why);
	return -1;
}

int field_timezone_check(const struct ydoc_node *n, const char *what,
                         struct diag *d)
{
	const char *dir = getenv("TZDIR");
	char *path = NULL;
	struct stat st;
	int ok;

	if (field_line_check(n, what, 64, d) < 0)
		return -1;
	for (size_t i = 0; i < n->len; i++) {
		unsigned char c = (unsigned char)n->str[i];
		if (!isalnum(c) && !strchr("/_-+", c)) {
			ydoc_error(d, n,
			           "%s \"%s\" is not a time zone name (like "
			           "Europe/Berlin)",
			           what, n->str);
			return -1;
		}
	}
	if (n->str[0] == '/' || strstr(n->str, "..") != NULL) {
		ydoc_error(d, n, "%s \"%s\" is not a time zone name", what,
		           n->str);
		return -1;
	}
	if (asprintf(&path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo",
	             n->str) < 0) {
		ydoc_error(d, n, "out of memory");
		return -1;
	}
	ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	if (!ok) {
		ydoc_error(d, n,
		           "%s \"%s\" is not a known time zone (names are "
		           "IANA zones like Europe/Berlin)",
		           what, n->str);
		return -1;
	}
	return 0;
}
