/*
 * fuzz_web_req — herald-web's request-side parsers: web_req_route on any
 * path and web_req_form on any body. A route's token is 1 to
 * WEB_TOKEN_MAX letters, digits and '-', and the path is exactly
 * "/u/TOKEN" or "/u/TOKEN/undo" (so no "..", no '%', no second segment
 * ever reaches the unsubscribe code); a form value found is terminated,
 * shorter than the buffer and holds no NUL; a failure or a field not
 * found leaves "" behind; the one-click test, urlencoded or multipart,
 * answers yes, no or malformed; the same input gives the same answer.
 *
 * The first byte of the input chooses: even, a path; odd, a body.
 */
#include <string.h>

#include "fuzz.h"
#include "herald/web_req.h"

static int token_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > WEB_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') ||
		      (t[i] >= 'A' && t[i] <= 'Z') ||
		      (t[i] >= '0' && t[i] <= '9') || t[i] == '-'))
			return 0;
	return 1;
}

static void fuzz_route(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);
	char token[WEB_TOKEN_MAX + 1], want[WEB_TOKEN_MAX + 16];
	enum web_route r;

	if (path == NULL)
		abort();
	memcpy(path, data, size);
	path[size] = '\0';
	r = web_req_route(path, token);
	switch (r) {
	case WEB_ROUTE_UNSUB:
	case WEB_ROUTE_UNSUB_UNDO:
		FUZZ_CHECK(token_ok(token), "a token with other characters");
		snprintf(want, sizeof(want), "/u/%s%s", token,
		         r == WEB_ROUTE_UNSUB_UNDO ? "/undo" : "");
		FUZZ_CHECK(strcmp(want, path) == 0,
		           "the path is not exactly /u/TOKEN[/undo]");
		break;
	case WEB_ROUTE_HEALTHZ:
		FUZZ_CHECK(strcmp(path, "/healthz") == 0, "healthz");
		FUZZ_CHECK(token[0] == '\0', "a token outside /u/");
		break;
	case WEB_ROUTE_METRICS:
		FUZZ_CHECK(strcmp(path, "/metrics") == 0, "metrics");
		FUZZ_CHECK(token[0] == '\0', "a token outside /u/");
		break;
	case WEB_ROUTE_HOME:
	case WEB_ROUTE_LOGIN:
	case WEB_ROUTE_LOGOUT:
		FUZZ_CHECK(strcmp(path, r == WEB_ROUTE_HOME    ? "/"
		                        : r == WEB_ROUTE_LOGIN ? "/login"
		                                               : "/logout") == 0,
		           "an admin page's path is not exactly its own");
		FUZZ_CHECK(token[0] == '\0', "a token outside /u/");
		break;
	case WEB_ROUTE_NONE:
		FUZZ_CHECK(token[0] == '\0', "a token without a route");
		break;
	default:
		FUZZ_CHECK(0, "an unknown route");
	}
	FUZZ_CHECK(web_req_route(path, token) == r, "not the same answer");
	free(path);
}

static void fuzz_form(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"List-Unsubscribe", "undo", "x"};
	char out[64], again[64];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int rc = web_req_form((const char *)data, size, names[i], out,
		                      sizeof(out));
		FUZZ_CHECK(rc >= -1 && rc <= 1, "an unknown result");
		FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL,
		           "the value is not terminated");
		if (rc != 1)
			FUZZ_CHECK(out[0] == '\0',
			           "a value left after no match");
		if (size > WEB_FORM_MAX)
			FUZZ_CHECK(rc == -1, "a body over the limit read");
		FUZZ_CHECK(web_req_form((const char *)data, size, names[i],
		                        again, sizeof(again)) == rc &&
		               strcmp(out, again) == 0,
		           "not the same answer");
	}
	/* one-click in either encoding: a yes, a no or malformed, the same
	 * each time */
	{
		static const char *const ctypes[] = {
		    NULL, "application/x-www-form-urlencoded",
		    "multipart/form-data; boundary=XyZ",
		    "multipart/form-data; boundary=\"a b\"",
		    "multipart/form-data"};
		for (size_t i = 0; i < sizeof(ctypes) / sizeof(ctypes[0]);
		     i++) {
			int rc = web_req_one_click(ctypes[i],
			                           (const char *)data, size);
			FUZZ_CHECK(rc >= -1 && rc <= 1, "an unknown result");
			FUZZ_CHECK(web_req_one_click(ctypes[i],
			                             (const char *)data,
			                             size) == rc,
			           "not the same answer");
			if (size > WEB_FORM_MAX)
				FUZZ_CHECK(rc == -1, "a body over the limit");
		}
	}
	/* no room at all: never found, never written past */
	FUZZ_CHECK(web_req_form((const char *)data, size, "x", out, 0) != 1,
	           "a value found into no room");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_route(data + 1, size - 1);
	else
		fuzz_form(data + 1, size - 1);
	return 0;
}
