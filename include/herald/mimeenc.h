/*
 * mimeenc — the content transfer encodings herald writes (RFC 2045):
 * quoted-printable for the text and HTML bodies, base64 for attachments.
 * libetpan can encode too, but one formatted write per encoded byte makes
 * it the slowest step of a message; these run once per body over a
 * lookup table, and compose hands libetpan the encoded text.
 *
 * Output: CRLF line ends, 7-bit only, lines of at most 76 characters.
 * Library code: returns 0 / -1 (out of memory only).
 */
#ifndef HERALD_MIMEENC_H
#define HERALD_MIMEENC_H

#include <stddef.h>

/* Quoted-printable for text: line breaks (LF or CRLF) become CRLF; "=",
 * control characters, 8-bit bytes and whitespace before a line end are
 * encoded; a line starting with "From " or "." has its first character
 * encoded (mbox readers, SMTP servers); long lines get soft breaks.
 * *out is malloc'd and NUL-terminated. */
int mimeenc_qp(const char *in, size_t len, char **out, size_t *outlen);

/* Base64 in lines of 76 characters, each ending in CRLF. */
int mimeenc_base64(const void *in, size_t len, char **out, size_t *outlen);

#endif
