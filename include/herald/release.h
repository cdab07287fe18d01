/*
 * release — one press release: templates/NAME/release.yaml (sender,
 * reply-to, subject per language, the languages offered and the fallback
 * chain, date and dateline) with a plain-text and an HTML body template
 * per language and shared partials. It renders a release for one
 * journalist: the context (coalition, spokesperson, report, release,
 * recipient) in the chosen language, then the subject and both bodies.
 *
 * Templates are parsed once at load time and rendered in strict mode: a
 * name that resolves to nothing is an error naming template, line, column
 * and the name. Partials are looked up as partials/NAME.LANG.EXT.mustache,
 * then partials/NAME.EXT.mustache (EXT: txt or html, as the including
 * template).
 *
 * Library code: NULL / -1 on failure after reporting every problem.
 */
#ifndef HERALD_RELEASE_H
#define HERALD_RELEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "herald/coalition.h"
#include "herald/contacts.h"
#include "herald/diag.h"
#include "herald/fsrc.h"
#include "herald/i18n.h"
#include "herald/template.h"
#include "herald/tval.h"

enum release_format { RELEASE_TEXT, RELEASE_HTML };
#define RELEASE_FORMATS 2

struct release_address {
	struct i18n_text name;
	char *email;
};

struct release_partial; /* cached partial sources, private */

struct release_datecache {
	char *key; /* locale, or locale LF zone */
	char *text;
};

/* A file sent with every message of the release. */
struct release_attachment {
	char *path;            /* as read */
	char *type;            /* content type */
	struct i18n_text name; /* the file name readers see, per language */
	char *data;
	size_t len;
};

struct release {
	const struct fsrc *src; /* where its files are read (NULL: the disk);
	                         * partials are read when first rendered */
	char *dir;
	char *file; /* the release.yaml path */
	char *name;
	struct i18n_policy policy;
	struct release_address from, reply_to;
	struct i18n_text subject;
	char *date; /* YYYY-MM-DD as written */
	struct i18n_text *dateline;
	size_t ndateline;
	char *coalition;  /* path of the coalition list */
	bool has_embargo; /* nothing leaves before embargo */
	time_t embargo;
	char *embargo_zone; /* the zone the embargo was given in */
	/* where the embargo is in release.yaml: its time (for messages), and
	 * the lines of the whole `embargo:` entry, key_line up to (not
	 * including) next_line (0: to the end of the file); key_col 1 when
	 * it is a top-level entry of its own lines */
	unsigned embargo_line, embargo_col;
	unsigned embargo_key_line, embargo_key_col, embargo_next_line;
	time_t stale_after; /* 0: none; no message leaves after it */
	struct release_attachment *attachments;
	size_t nattachments;
	/* per offered language: subject and body templates */
	struct tmpl **subject_tmpl;
	struct tmpl *(*body)[RELEASE_FORMATS];
	char *(*body_path)[RELEASE_FORMATS];
	struct release_partial *partials;
	size_t npartials;
	struct release_datecache *datecache; /* formatted dates, private */
	struct tval **base; /* per language: the shared context, private */
	const struct coalition *base_coal; /* the coalition base is for */
	size_t ndatecache;
};

/* Load dir/release.yaml and every template it needs, reading them from
 * src (NULL: the disk), which must outlive the release. */
struct release *release_load(const struct fsrc *src, const char *dir,
                             struct diag *d);

/* release.yaml's text (as read: text, len) with its embargo entry
 * commented out, and a comment saying why: what `herald queue
 * --embargo-passed=send` keeps in the store, so the message is built
 * without the embargo's wording wherever it is built. *out is malloc'd.
 * -1 after adding the reason to d (the embargo is not an entry of its own
 * lines, or the text is not the one r was loaded from). */
int release_text_without_embargo(const struct release *r, const char *text,
                                 size_t len, char **out, size_t *outlen,
                                 struct diag *d);

void release_free(struct release *r);

/* "txt" / "html". */
const char *release_format_ext(enum release_format f);

/* The render context for journalist j (NULL: no recipient fields, for
 * previews of a language) in offered language lang. Dates are written for
 * the journalist's locale (their tag when it is a form of lang, like de-AT
 * for de; lang otherwise) and the embargo in their time zone. NULL after
 * adding the reason to d. The caller frees it with tval_free. */
struct tval *release_context(struct release *r, const struct coalition *c,
                             const struct journalist *j, size_t lang,
                             struct diag *d);

/* The locale dates are written in for j reading variant lang. */
const char *release_locale(const struct release *r, const struct journalist *j,
                           size_t lang);

/* Render the body in format f (or the subject, with release_subject) for
 * language lang against ctx. Returns 0 and a malloc'd NUL-terminated
 * result, or -1 after adding every problem to d. */
int release_render(struct release *r, size_t lang, enum release_format f,
                   const struct tval *ctx, char **out, size_t *len,
                   struct diag *d);
int release_subject(struct release *r, size_t lang, const struct tval *ctx,
                    char **out, struct diag *d);

#endif
