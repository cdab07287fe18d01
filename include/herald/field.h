/*
 * field — typed reading of values from yaml_doc trees, with the checks
 * every input field of herald shares: required or optional, kind, single
 * line (no CR, LF, NUL or other control characters: such a value could
 * forge a mail header), e-mail address syntax, time zone names, and
 * unknown keys (a misspelt key is an error, not silently ignored). Every
 * problem is added to a struct diag with the value's file:line:column.
 */
#ifndef HERALD_FIELD_H
#define HERALD_FIELD_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"
#include "herald/yaml_doc.h"

/* The value of key in mapping m; when absent and required, an error at m
 * saying which key is missing. NULL when absent. */
const struct ydoc_node *field_get(const struct ydoc_node *m, const char *key,
                                  bool required, struct diag *d);

/* A copy of scalar n's text (the caller frees it), or NULL after adding
 * "out of memory" at n's place. */
char *field_dup(const struct ydoc_node *n, struct diag *d);

/* Expect n to be of kind k; error naming `what` and what was found. */
int field_expect(const struct ydoc_node *n, enum ydoc_kind k, const char *what,
                 struct diag *d);

/* Error on every key of m not in the NULL-terminated list known. */
int field_known_keys(const struct ydoc_node *m, const char *const *known,
                     const char *what, struct diag *d);

/* A single-line text: a scalar, not empty, no control characters (CR, LF,
 * NUL, TAB, DEL, ...), at most max bytes (0: 998, a mail line). */
int field_line_check(const struct ydoc_node *n, const char *what, size_t max,
                     struct diag *d);

/* Same check on a string already read (n names the place). */
int field_line_text(const char *s, size_t len, const struct ydoc_node *n,
                    const char *what, size_t max, struct diag *d);

/* A mail address (addr-spec): dot-atom local part of at most 64 octets,
 * a domain of LDH labels with at least one dot, 254 octets in all, ASCII.
 * Returns 0 when valid; otherwise sets *why to a static explanation. */
int field_email_valid(const char *s, size_t len, const char **why);

/* field_email_valid on a node, with the error added to d. */
int field_email_check(const struct ydoc_node *n, const char *what,
                      struct diag *d);

/* An IANA time zone name that exists in the system's zoneinfo. */
int field_timezone_check(const struct ydoc_node *n, const char *what,
                         struct diag *d);

#endif
