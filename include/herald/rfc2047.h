/*
 * rfc2047 — header fields with non-ASCII text: RFC 2047 encoded words
 * (UTF-8, B or Q, whichever is shorter) and RFC 5322 folding. libetpan
 * decodes encoded words but cannot write them; compose builds every
 * top-level header field with this module.
 *
 * Guarantees of every field written: only printable ASCII, CRLF and the
 * single space or tab that starts a folded line; every encoded word at
 * most 75 characters and holding whole UTF-8 characters; lines folded at
 * 78 characters where the text allows (an ASCII word longer than that is
 * kept whole) and never past 998. Input must be valid UTF-8 with no
 * control characters (the loaders guarantee that); otherwise the call
 * fails rather than let a CR or LF from data into a header.
 *
 * Library code: NULL / -1 on failure (bad input or out of memory).
 */
#ifndef HERALD_RFC2047_H
#define HERALD_RFC2047_H

#include <stddef.h>

/* "Name: value" for unstructured text (Subject): ASCII words stay as
 * they are, runs of words with non-ASCII characters become encoded words.
 * Returns the folded field without the final CRLF, malloc'd. */
char *rfc2047_text_field(const char *name, const char *value);

/* One mailbox for an address field: display name and address. The name
 * is written as atoms when it is plain ASCII words, as a quoted string when
 * it has ASCII specials (a comma, a dot, quotes), as encoded words when it
 * has non-ASCII characters; NULL or "" gives the bare address. */
struct rfc2047_mailbox {
	const char *name;
	const char *addr;
};

/* "Name: mailbox, mailbox" folded between and inside mailboxes; the
 * address itself is never broken. Returns NULL if an address holds
 * anything but printable ASCII without spaces, < or >. */
char *rfc2047_address_field(const char *name,
                            const struct rfc2047_mailbox *boxes, size_t n);

/* Decode a header value that may hold encoded words to UTF-8 (for tests
 * and for reading bounces), through libetpan. Malloc'd, NULL on error. */
char *rfc2047_decode(const char *value);

#endif
