/*
 * compose — the MIME message one journalist receives: the top-level
 * header (From, To, Reply-To, Subject, Date, Message-ID, MIME-Version,
 * Content-Language, Precedence, X-Auto-Response-Suppress, and any extra
 * fields already encoded, such as List-Unsubscribe), then the body as
 * multipart/alternative (text/plain and text/html, UTF-8,
 * quoted-printable), wrapped in multipart/mixed with base64 attachments
 * when there are any.
 *
 * The header is written by herald (rfc2047) so that every field is folded
 * and encoded as RFC 5322 and RFC 2047 require; the body tree is built and
 * serialized by libetpan's MIME writer. Boundaries are derived from the
 * Message-ID, so the same delivery composes to the same bytes (preview
 * shows exactly what is sent, but for Date and signatures). The output has
 * CRLF line endings and only 7-bit characters, ready for SMTP without
 * 8BITMIME and for DKIM signing.
 *
 * Library code: returns 0 / -1 with the reason in a struct diag.
 */
#ifndef HERALD_COMPOSE_H
#define HERALD_COMPOSE_H

#include <stddef.h>
#include <time.h>

#include "herald/diag.h"
#include "herald/rfc2047.h"

struct compose_attachment {
	const char *filename;       /* UTF-8, shown to the reader */
	const char *ascii_filename; /* for readers without RFC 2231; NULL:
	                             * filename, non-ASCII as _ */
	const char *content_type;   /* "application/pdf" */
	const char *data;
	size_t len;
	/* the data in base64 (mimeenc_base64), when the caller has it
	 * already (the same file goes to every recipient); NULL: encoded
	 * here */
	const char *encoded;
	size_t encoded_len;
};

struct compose_message {
	struct rfc2047_mailbox from, to;
	struct rfc2047_mailbox reply_to; /* addr NULL: no Reply-To */
	const char *subject;             /* UTF-8, one line */
	time_t date;
	const char *message_id; /* "unique@domain", without < > */
	const char *language;   /* Content-Language, e.g. "ru" */
	const char *text;
	size_t text_len;
	const char *html;
	size_t html_len;
	/* text and html already in quoted-printable (mimeenc_qp), when the
	 * caller has them; NULL: encoded here */
	const char *text_encoded, *html_encoded;
	size_t text_encoded_len, html_encoded_len;
	const struct compose_attachment *attachments;
	size_t nattachments;
	/* complete, already encoded and folded fields ("Name: value"),
	 * written after the standard ones */
	const char *const *extra;
	size_t nextra;
};

/* Compose m into *out (malloc'd, CRLF line endings, NUL-terminated) and
 * *len. Fails, naming the field, if any header value cannot be written
 * safely (control characters, a bad address). */
int compose_build(const struct compose_message *m, char **out, size_t *len,
                  struct diag *d);

/* A Message-ID "<hex>@<domain>" (without < >) derived from seed: the same
 * seed gives the same id, so a delivery keeps its id across retries and
 * previews. Malloc'd; NULL on out of memory. */
char *compose_message_id(const void *seed, size_t seedlen, const char *domain);

/* The content type for a file name by its extension (pdf, txt, vcf, csv,
 * jpg, png, ...), "application/octet-stream" when unknown. */
const char *compose_content_type(const char *filename);

#endif
