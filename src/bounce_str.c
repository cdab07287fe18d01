/*
 * bounce_str — the bounce reader's string helpers (bounce_int.h): copies,
 * header values cleaned to be kept, lowercase copies and a
 * case-insensitive search. Every copy is bounded.
 */
#include "bounce_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *bounce_str_ndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *bounce_str_clean(const char *v, size_t n)
{
	size_t i, o = 0;
	char *p;

	if (n > BOUNCE_MAX_VALUE)
		n = BOUNCE_MAX_VALUE;
	p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == ' ' && (o == 0 || p[o - 1] == ' '))
			continue;
		p[o++] = (char)c;
	}
	while (o > 0 && p[o - 1] == ' ')
		o--;
	p[o] = '\0';
	return p;
}

char *bounce_str_lower(const char *s, size_t cap)
{
	size_t n = strlen(s);
	char *p;

	if (n > cap)
		n = cap;
	p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = (char)tolower((unsigned char)s[i]);
	p[n] = '\0';
	return p;
}

const char *bounce_str_casestr(const char *h, const char *n)
{
	size_t nl = strlen(n);
	char set[3];

	if (h == NULL)
		return NULL;
	if (nl == 0)
		return h;
	/* jumps between occurrences of the needle's first letter (strcspn):
	 * a long text costs one vector scan, not a comparison per byte */
	set[0] = (char)tolower((unsigned char)n[0]);
	set[1] = (char)toupper((unsigned char)n[0]);
	set[2] = '\0';
	for (h += strcspn(h, set); *h != '\0'; h += 1 + strcspn(h + 1, set))
		if (strncasecmp(h, n, nl) == 0)
			return h;
	return NULL;
}
