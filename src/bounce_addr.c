/*
 * bounce_addr — mail addresses as bounces write them (bounce_int.h): in a
 * field value ("rfc822; <a@b>", "Name <a@b>, c@d") or at a place in a
 * text, kept lowercase and at most BOUNCE_MAX_ADDR bytes long.
 */
#include "bounce_int.h"

#include <ctype.h>
#include <string.h>

int bounce_addr_char(int c)
{
	return isalnum(c) ||
	       (c != '\0' && strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

size_t bounce_addr_len(const char *s)
{
	size_t i = 0, at = 0, dot = 0;

	while (s[i] != '\0' && (bounce_addr_char((unsigned char)s[i]) ||
	                        (s[i] == '@' && at == 0 && i > 0))) {
		if (s[i] == '@')
			at = i;
		else if (at != 0 && s[i] == '.')
			dot = i;
		i++;
	}
	/* a sentence's full stop or Sendmail's "..." after it is not part
	 * of the domain, nor is the dot found last then */
	while (i > 0 && (s[i - 1] == '.' || s[i - 1] == '-'))
		i--;
	if (dot >= i) {
		dot = 0;
		for (size_t k = i; k-- > at + 1;)
			if (s[k] == '.') {
				dot = k;
				break;
			}
	}
	if (at == 0 || dot <= at + 1 || dot + 1 >= i || i > BOUNCE_MAX_ADDR)
		return 0;
	return i;
}

char *bounce_addr_dup(const char *s, size_t n)
{
	char *a = bounce_str_ndup(s, n);

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		a[i] = (char)tolower((unsigned char)a[i]);
	return a;
}

char *bounce_addr_scan(const char *s, int *oom)
{
	const char *p;
	size_t n;
	char *a;

	for (p = s; *p != '\0'; p++) {
		if (p > s && bounce_addr_char((unsigned char)p[-1]))
			continue;
		n = bounce_addr_len(p);
		if (n == 0)
			continue;
		a = bounce_addr_dup(p, n);
		if (a == NULL)
			*oom = 1;
		return a;
	}
	return NULL;
}

char *bounce_addr_from(const char *v, int *oom)
{
	const char *s = strchr(v, ';');

	return bounce_addr_scan(s != NULL ? s + 1 : v, oom);
}

char *bounce_addr_first(const char *v, int *oom)
{
	const char *lt = strchr(v, '<');
	char *a;

	if (lt != NULL && (a = bounce_addr_scan(lt + 1, oom)) != NULL)
		return a;
	return *oom ? NULL : bounce_addr_scan(v, oom);
}
