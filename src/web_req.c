/*
 * web_req — herald-web's request-side parsers (see web_req.h).
 */
#include "herald/web_req.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool web_req_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-';
}

enum web_route web_req_route(const char *path, char token[WEB_TOKEN_MAX + 1])
{
	size_t n = 0;
	const char *p;

	token[0] = '\0';
	if (path == NULL)
		return WEB_ROUTE_NONE;
	if (strcmp(path, "/") == 0)
		return WEB_ROUTE_HOME;
	if (strcmp(path, "/login") == 0)
		return WEB_ROUTE_LOGIN;
	if (strcmp(path, "/logout") == 0)
		return WEB_ROUTE_LOGOUT;
	if (strcmp(path, "/healthz") == 0)
		return WEB_ROUTE_HEALTHZ;
	if (strcmp(path, "/metrics") == 0)
		return WEB_ROUTE_METRICS;
	if (strncmp(path, "/u/", 3) != 0)
		return WEB_ROUTE_NONE;
	p = path + 3;
	while (n <= WEB_TOKEN_MAX && web_req_token_char(p[n]))
		n++;
	if (n == 0 || n > WEB_TOKEN_MAX)
		return WEB_ROUTE_NONE;
	if (p[n] != '\0' && strcmp(p + n, "/undo") != 0)
		return WEB_ROUTE_NONE;
	memcpy(token, p, n);
	token[n] = '\0';
	return p[n] == '\0' ? WEB_ROUTE_UNSUB : WEB_ROUTE_UNSUB_UNDO;
}

static int web_req_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode s[0..n) into out (size bytes); -1 when malformed or too long. */
static int web_req_decode(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return -1;
			hi = web_req_hex(s[i + 1]);
			lo = web_req_hex(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == '\0' || o + 1 >= size)
			return -1;
		out[o++] = (char)c;
	}
	if (size == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

static int web_req_form_run(const char *body, size_t len, const char *name,
                            char *out, size_t size)
{
	char key[64];
	size_t i = 0, fields = 0;
	int found = 0;

	if (size > 0)
		out[0] = '\0';
	if (len > WEB_FORM_MAX || (len > 0 && body == NULL))
		return -1;
	while (i < len) {
		size_t end = i, eq;
		while (end < len && body[end] != '&')
			end++;
		if (++fields > WEB_FORM_FIELDS)
			return -1;
		for (eq = i; eq < end && body[eq] != '='; eq++)
			;
		if (end > i) {
			/* every field is checked, also after the one found:
			 * a malformed body is malformed */
			if (web_req_decode(body + i, eq - i, key, sizeof(key)) <
			    0)
				return -1;
			if (!found && strcmp(key, name) == 0) {
				if (web_req_decode(body + eq + (eq < end),
				                   end - eq - (eq < end), out,
				                   size) < 0)
					return -1;
				found = 1;
			} else {
				char scratch[WEB_FORM_MAX + 1];
				if (web_req_decode(body + eq + (eq < end),
				                   end - eq - (eq < end),
				                   scratch,
				                   sizeof(scratch)) < 0)
					return -1;
			}
		}
		i = end + 1;
	}
	return found;
}

int web_req_form(const char *body, size_t len, const char *name, char *out,
                 size_t size)
{
	int rc = web_req_form_run(body, len, name, out, size);

	/* a failure leaves no half-decoded value behind */
	if (rc < 0 && size > 0)
		out[0] = '\0';
	return rc;
}

/* The first occurrence of n bytes of needle in h[0..hl), or NULL. */
static const char *web_req_find(const char *h, size_t hl, const char *needle,
                                size_t n)
{
	return n <= hl ? memmem(h, hl, needle, n) : NULL;
}

/* The boundary parameter of a multipart content type into b (size
 * bytes), without quotes; -1 when there is none or it is longer than
 * RFC 2046's 70 characters. */
static int web_req_boundary(const char *ctype, char *b, size_t size)
{
	const char *p = ctype;
	size_t n;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			p++;
			n = strcspn(p, "\"");
			if (p[n] != '"')
				return -1;
		} else {
			n = strcspn(p, "; \t");
		}
		if (n == 0 || n > 70 || n + 1 > size)
			return -1;
		memcpy(b, p, n);
		b[n] = '\0';
		return 0;
	}
	return -1;
}

/* multipart/form-data: is there a part named List-Unsubscribe whose
 * content is One-Click? */
static int web_req_multipart(const char *ctype, const char *body, size_t len)
{
	static const char want_name[] = "name=\"List-Unsubscribe\"";
	static const char value[] = "One-Click";
	char b[80], delim[84];
	size_t dn, i = 0, parts = 0;
	const char *p;

	if (web_req_boundary(ctype, b, sizeof(b)) < 0)
		return -1;
	dn = (size_t)snprintf(delim, sizeof(delim), "--%s", b);
	while ((p = web_req_find(body + i, len - i, delim, dn)) != NULL) {
		size_t start = (size_t)(p - body) + dn, hend, end;
		const char *h, *next;
		if (++parts > WEB_FORM_FIELDS)
			return -1;
		if (start + 2 > len || memcmp(body + start, "\r\n", 2) != 0)
			return 0; /* "--" after the last part, or damage */
		start += 2;
		h = web_req_find(body + start, len - start, "\r\n\r\n", 4);
		if (h == NULL)
			return 0;
		hend = (size_t)(h - body);
		next = web_req_find(body + hend, len - hend, delim, dn);
		if (next == NULL)
			return 0;
		end = (size_t)(next - body);
		/* the content ends with the CRLF before the delimiter */
		if (end >= hend + 4 + 2 && body[end - 2] == '\r' &&
		    body[end - 1] == '\n' &&
		    web_req_find(body + start, hend - start, want_name,
		                 sizeof(want_name) - 1) != NULL &&
		    end - 2 - (hend + 4) == sizeof(value) - 1 &&
		    memcmp(body + hend + 4, value, sizeof(value) - 1) == 0)
			return 1;
		i = end;
	}
	return 0;
}

int web_req_one_click(const char *ctype, const char *body, size_t len)
{
	char val[32];
	int rc;

	if (len > WEB_FORM_MAX || (len > 0 && body == NULL))
		return -1;
	if (ctype != NULL && strncasecmp(ctype, "multipart/form-data", 19) == 0)
		return web_req_multipart(ctype, body, len);
	rc = web_req_form(body, len, "List-Unsubscribe", val, sizeof(val));
	if (rc <= 0)
		return rc;
	return strcmp(val, "One-Click") == 0;
}
