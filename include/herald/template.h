/*
 * template — herald's Mustache engine (the official spec, v1.4: comments,
 * delimiters, interpolation, inverted sections, partials, sections, and
 * the optional template inheritance module for layouts: {{<layout}} with
 * {{$block}} overrides), with what releases need on top: a strict mode in
 * which a name that resolves to nothing is an error naming template, line,
 * column and the name, HTML escaping chosen per template (`.html` escapes
 * & < > " ', `.txt` escapes nothing), bounded partial recursion and a cap
 * on output size.
 *
 * Values rendered are trees of struct tval (see tval.h) built by the
 * caller; a value is never interpreted as a template, so "{{" in a
 * journalist's name is printed as written. Falsy for sections: null, false
 * and the empty list (the empty string is truthy, as the spec says). A
 * boolean interpolates as "true" / "false", null as nothing.
 *
 * A template is parsed once and rendered many times: tmpl_render only
 * reads t, so one parsed template may be rendered for every recipient,
 * also from several threads at once.
 *
 * Positions are 1-based; columns count characters, not bytes.
 *
 * Errors go to a struct diag. Returns 0 / pointer on success, -1 / NULL on
 * failure; out-of-memory is an error, never an abort (the CLI uses this).
 */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"
#include "herald/tval.h"

enum tmpl_escape { TMPL_ESCAPE_NONE, TMPL_ESCAPE_HTML };

/*
 * Partials (and layouts: {{<name}} loads name like {{>name}} does) are
 * found through a loader. It returns 0 and sets *src (malloc'd, the caller
 * frees it), *len and *where (malloc'd name used in error positions, for
 * example the partial's file path), or 1 when there is no such partial, or
 * -1 on error (after adding to d). A render asks for each name at most
 * once and parses what it gets once.
 *
 * A loader that keeps parsed partials between renders (a release rendered
 * for thousands of journalists) sets `parsed` instead: it returns 0 and a
 * template it owns and keeps alive (*t), 1 when there is no such partial,
 * or -1 on error. The renderer then never parses or frees partials.
 */
struct tmpl;

struct tmpl_loader {
	int (*load)(void *arg, const char *name, char **src, size_t *len,
	            char **where, struct diag *d);
	int (*parsed)(void *arg, const char *name, const struct tmpl **t,
	              struct diag *d);
	void *arg;
};

struct tmpl_opts {
	enum tmpl_escape escape;
	/* Strict: a name that resolves to nothing (in {{x}}, {{#x}} or
	 * {{^x}}; a name whose value is null does resolve), a partial or
	 * layout the loader does not have, and a list or map put where text
	 * goes ({{members}}) are errors. Not strict: they render nothing, as
	 * the spec says. */
	bool strict;
	unsigned max_partial_depth;         /* 0: default (32) */
	size_t max_output;                  /* 0: default (16 MiB) */
	const struct tmpl_loader *partials; /* NULL: no partials exist */
};

struct tmpl;

/* Parse src (len bytes; need not be NUL-terminated; at most 1 MiB; sections
 * nest at most 64 deep). where names the template in errors
 * ("templates/report-launch/en.txt.mustache"). Returns NULL after adding
 * every syntax error found to d (where:line:column: unclosed section "x",
 * a closing tag that does not match, an unclosed tag, a bad set-delimiter
 * tag, a bad name); a tag that never closes ends the search. */
struct tmpl *tmpl_parse(const char *where, const char *src, size_t len,
                        struct diag *d);
void tmpl_free(struct tmpl *t);

/* Render t against ctx (the bottom of the context stack; NULL for none).
 * opts NULL means every default: no escaping, not strict, no partials. On
 * success returns 0 and sets *out (malloc'd, NUL-terminated, the caller
 * frees) and *outlen (may be NULL). In strict mode every unresolved name is
 * reported, each tag once per render, not just the first; on any error
 * returns -1 and *out is NULL. Exceeding max_output or max_partial_depth,
 * and a loader or partial syntax error, stop the render at once. */
int tmpl_render(const struct tmpl *t, const struct tval *ctx,
                const struct tmpl_opts *opts, char **out, size_t *outlen,
                struct diag *d);

#endif
