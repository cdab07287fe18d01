/*
 * template — herald's Mustache engine (the official spec, v1.4: comments,
 * delimiters, interpolation, inverted sections, partials, sections), with
 * what releases need on top: a strict mode in which a name that resolves to
 * nothing is an error naming template, line, column and the name, HTML
 * escaping chosen per template (`.html` escapes & < > " ', `.txt` escapes
 * nothing), bounded partial recursion and a cap on output size.
 *
 * Values rendered are trees of struct tval (null, boolean, string, list,
 * map) built by the caller; a value is never interpreted as a template, so
 * "{{" in a journalist's name is printed as written.
 *
 * Errors go to a struct diag. Returns 0 / pointer on success, -1 / NULL on
 * failure; out-of-memory is an error, never an abort (the CLI uses this).
 */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"

/* ---- values ---------------------------------------------------------- */

enum tval_kind { TVAL_NULL, TVAL_BOOL, TVAL_STRING, TVAL_LIST, TVAL_MAP };

struct tval;

/* Constructors return NULL on out-of-memory. Strings are copied. */
struct tval *tval_null(void);
struct tval *tval_bool(bool b);
struct tval *tval_str(const char *s);
struct tval *tval_strn(const char *s, size_t len);
struct tval *tval_list(void);
struct tval *tval_map(void);

/* Append to a list / set key in a map (replacing an earlier value with the
 * same key). Ownership of v passes to the container, also on failure (v is
 * freed then). Returns 0, or -1 on out-of-memory or wrong container kind. */
int tval_push(struct tval *list, struct tval *v);
int tval_set(struct tval *map, const char *key, struct tval *v);

enum tval_kind tval_kind(const struct tval *v);
/* NULL unless v is a string; valid while v lives. */
const char *tval_string(const struct tval *v);
bool tval_boolean(const struct tval *v); /* false unless a true bool */
size_t tval_len(const struct tval *v); /* list items / map entries */
const struct tval *tval_at(const struct tval *list, size_t i);
const struct tval *tval_get(const struct tval *map, const char *key);

/* Frees v and everything in it; NULL is fine. */
void tval_free(struct tval *v);

/* ---- templates ------------------------------------------------------- */

enum tmpl_escape { TMPL_ESCAPE_NONE, TMPL_ESCAPE_HTML };

/*
 * Partials are found through a loader. It returns 0 and sets *src (malloc'd,
 * the caller frees it), *len and *where (malloc'd name used in error
 * positions, for example the partial's file path), or 1 when there is no
 * such partial, or -1 on error (after adding to d).
 */
struct tmpl_loader {
	int (*load)(void *arg, const char *name, char **src, size_t *len,
		    char **where, struct diag *d);
	void *arg;
};

struct tmpl_opts {
	enum tmpl_escape escape;
	bool strict;		  /* unresolved names are errors */
	unsigned max_partial_depth; /* 0: default (32) */
	size_t max_output;	  /* 0: default (16 MiB) */
	const struct tmpl_loader *partials; /* NULL: no partials exist */
};

struct tmpl;

/* Parse src (len bytes; need not be NUL-terminated). where names the
 * template in errors ("templates/report-launch/en.txt.mustache"). Returns
 * NULL after adding every syntax error found to d (file:line:column:
 * unclosed section "x" opened at ..., bad delimiter, ...). */
struct tmpl *tmpl_parse(const char *where, const char *src, size_t len,
			struct diag *d);
void tmpl_free(struct tmpl *t);

/* Render t against ctx (the bottom of the context stack). On success
 * returns 0 and sets *out (malloc'd, NUL-terminated, the caller frees) and
 * *outlen. In strict mode every unresolved name is reported, not just the
 * first; on any error returns -1 and *out is NULL. */
int tmpl_render(const struct tmpl *t, const struct tval *ctx,
		const struct tmpl_opts *opts, char **out, size_t *outlen,
		struct diag *d);

#endif
