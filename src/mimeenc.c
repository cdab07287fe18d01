/*
 * mimeenc — quoted-printable and base64 for message bodies (see
 * mimeenc.h). Written for speed: a release goes to thousands of
 * journalists, and every message encodes its own rendered bodies.
 */
#include "herald/mimeenc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* RFC 2045 §6.7 rule 5: encoded lines are at most 76 characters; a soft
 * break "=" counts, so a line holds at most 75 characters of text. */
#define MIMEENC_QP_LINE  76
#define MIMEENC_B64_LINE 76

static const char mimeenc_hex[] = "0123456789ABCDEF";

/* May byte c stand for itself in quoted-printable? */
static bool mimeenc_qp_plain(unsigned char c)
{
	return (c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t';
}

int mimeenc_qp(const char *in, size_t len, char **out, size_t *outlen)
{
	/* worst case: every byte as =XX, plus a soft break per 25 bytes */
	size_t cap = 3 * len + 3 * (len / 25 + 1) + 3;
	char *o = malloc(cap + 1);
	size_t n = 0, col = 0;

	if (o == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		bool eol, plain;
		size_t w;

		if (c == '\n' ||
		    (c == '\r' && i + 1 < len && in[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			o[n++] = '\r';
			o[n++] = '\n';
			col = 0;
			continue;
		}
		/* is this the last character before a line end (or the end)? */
		eol = i + 1 == len || in[i + 1] == '\n' ||
		      (in[i + 1] == '\r' && i + 2 < len && in[i + 2] == '\n');
		plain = mimeenc_qp_plain(c) &&
		        !((c == ' ' || c == '\t') && eol) &&
		        !(col == 0 && c == '.') &&
		        !(col == 0 && c == 'F' && len - i >= 5 &&
		          memcmp(in + i, "From ", 5) == 0);
		w = plain ? 1 : 3;
		/* room for this character, and for a soft break after it
		 * unless the line ends here */
		if (col + w > MIMEENC_QP_LINE - (eol ? 0 : 1)) {
			o[n++] = '=';
			o[n++] = '\r';
			o[n++] = '\n';
			col = 0;
			/* a new line: re-check the start-of-line rules */
			if (plain &&
			    (c == '.' || (c == 'F' && len - i >= 5 &&
			                  memcmp(in + i, "From ", 5) == 0))) {
				plain = false;
				w = 3;
			}
		}
		if (plain) {
			o[n++] = (char)c;
		} else {
			o[n++] = '=';
			o[n++] = mimeenc_hex[c >> 4];
			o[n++] = mimeenc_hex[c & 15];
		}
		col += w;
	}
	o[n] = '\0';
	*out = o;
	*outlen = n;
	return 0;
}

static const char mimeenc_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int mimeenc_base64(const void *in, size_t len, char **out, size_t *outlen)
{
	const unsigned char *p = in;
	size_t groups = (len + 2) / 3;
	size_t lines = (groups * 4 + MIMEENC_B64_LINE - 1) / MIMEENC_B64_LINE;
	char *o = malloc(groups * 4 + 2 * lines + 1);
	size_t n = 0, col = 0;

	if (o == NULL)
		return -1;
	for (size_t i = 0; i < len; i += 3) {
		unsigned a = p[i];
		unsigned b = i + 1 < len ? p[i + 1] : 0;
		unsigned c = i + 2 < len ? p[i + 2] : 0;
		o[n++] = mimeenc_b64[a >> 2];
		o[n++] = mimeenc_b64[((a & 3) << 4) | (b >> 4)];
		o[n++] =
		    i + 1 < len ? mimeenc_b64[((b & 15) << 2) | (c >> 6)] : '=';
		o[n++] = i + 2 < len ? mimeenc_b64[c & 63] : '=';
		col += 4;
		if (col == MIMEENC_B64_LINE) {
			o[n++] = '\r';
			o[n++] = '\n';
			col = 0;
		}
	}
	if (col > 0) {
		o[n++] = '\r';
		o[n++] = '\n';
	}
	o[n] = '\0';
	*out = o;
	*outlen = n;
	return 0;
}
