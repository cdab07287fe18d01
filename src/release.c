/*
 * release — loads a release directory and renders it for one journalist
 * (see release.h). Everything that can be checked without a recipient is
 * checked at load time (every field, every template's syntax, every
 * language's files) so that `herald check` reports it all at once; what
 * depends on data (a name a template uses that the context lacks) shows at
 * render time, in strict mode, with the template's line and column.
 */
#include "herald/release.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/compose.h"
#include "herald/datefmt.h"
#include "herald/field.h"
#include "herald/fsrc.h"
#include "herald/tval.h"
#include "herald/yaml_doc.h"

/* A body template is a page of text; 1 MiB is far more than any release
 * and small enough that a wrong file (a PDF, a log) is refused. */
#define RELEASE_TEMPLATE_MAX (1u << 20)
/* Attachments go out with every message: 10 MiB each and 20 MiB in all
 * keep a release deliverable (many servers refuse mail over 25 MB, and
 * base64 adds a third). */
#define RELEASE_ATTACHMENT_MAX  (10u << 20)
#define RELEASE_ATTACHMENTS_MAX (20u << 20)
/* Where the coalition list is when release.yaml does not say: the
 * repository layout, templates/NAME/ beside lists/. */
#define RELEASE_DEFAULT_COALITION "../../lists/coalition.yaml"

static const char *const release_keys[] = {
    "name",      "from",      "reply_to",
    "subject",   "languages", "default_language",
    "fallback",  "date",      "dateline",
    "coalition", "embargo",   "attachments",
    NULL};
static const char *const release_address_keys[] = {"name", "email", NULL};
static const char *const release_embargo_keys[] = {"time", "zone", NULL};
static const char *const release_attachment_keys[] = {"file", "name", "type",
                                                      NULL};

struct release_partial {
	char *name;
	size_t lang;
	enum release_format fmt;
	char *path; /* NULL: no such partial */
	char *src;
	size_t len;
	struct tmpl *t; /* parsed on first use */
};

const char *release_format_ext(enum release_format f)
{
	return f == RELEASE_HTML ? "html" : "txt";
}

static void release_address_free(struct release_address *a)
{
	i18n_text_free(&a->name);
	free(a->email);
}

void release_free(struct release *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; r->subject_tmpl && i < r->policy.nlangs; i++)
		tmpl_free(r->subject_tmpl[i]);
	free(r->subject_tmpl);
	for (size_t i = 0; r->body && i < r->policy.nlangs; i++)
		for (int f = 0; f < RELEASE_FORMATS; f++) {
			tmpl_free(r->body[i][f]);
			free(r->body_path[i][f]);
		}
	free(r->body);
	free(r->body_path);
	for (size_t i = 0; i < r->npartials; i++) {
		free(r->partials[i].name);
		free(r->partials[i].path);
		free(r->partials[i].src);
		tmpl_free(r->partials[i].t);
	}
	free(r->partials);
	for (size_t i = 0; i < r->nattachments; i++) {
		free(r->attachments[i].path);
		free(r->attachments[i].type);
		free(r->attachments[i].data);
		i18n_text_free(&r->attachments[i].name);
	}
	free(r->attachments);
	free(r->embargo_zone);
	for (size_t i = 0; r->base && i < r->policy.nlangs; i++)
		tval_free(r->base[i]);
	free(r->base);
	for (size_t i = 0; i < r->ndatecache; i++) {
		free(r->datecache[i].key);
		free(r->datecache[i].text);
	}
	free(r->datecache);
	for (size_t i = 0; i < r->ndateline; i++)
		i18n_text_free(&r->dateline[i]);
	free(r->dateline);
	i18n_text_free(&r->subject);
	release_address_free(&r->from);
	release_address_free(&r->reply_to);
	i18n_policy_free(&r->policy);
	free(r->date);
	free(r->coalition);
	free(r->name);
	free(r->file);
	free(r->dir);
	free(r);
}

static void release_languages(struct release *r, const struct ydoc_node *n,
                              struct diag *d)
{
	struct i18n_policy *p = &r->policy;

	if (field_expect(n, YDOC_SEQUENCE, "languages", d) < 0)
		return;
	if (n->nitems == 0) {
		ydoc_error(d, n,
		           "languages is empty: a release offers at "
		           "least one language");
		return;
	}
	p->langs = calloc(n->nitems, sizeof(*p->langs));
	if (p->langs == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->nitems; i++) {
		const struct ydoc_node *t = n->items[i];
		if (field_line_check(t, "a language", 35, d) < 0)
			continue;
		if (!i18n_tag_valid(t->str)) {
			ydoc_error(d, t,
			           "language \"%s\" is not a language tag "
			           "(like en, de, pt-BR)",
			           t->str);
			continue;
		}
		if (i18n_find(p, t->str) >= 0) {
			ydoc_error(d, t, "language \"%s\" is listed twice",
			           t->str);
			continue;
		}
		if ((p->langs[p->nlangs] = field_dup(t, d)) != NULL)
			p->nlangs++;
	}
}

static void release_fallback(struct release *r, const struct ydoc_node *n,
                             struct diag *d)
{
	struct i18n_policy *p = &r->policy;

	if (field_expect(n, YDOC_MAPPING, "fallback", d) < 0)
		return;
	p->fallback = calloc(n->npairs ? n->npairs : 1, sizeof(*p->fallback));
	if (p->fallback == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->npairs; i++) {
		const struct ydoc_node *k = n->pairs[i].key;
		const struct ydoc_node *v = n->pairs[i].value;
		struct i18n_fallback *fb = &p->fallback[p->nfallback];

		if (!i18n_tag_valid(k->str)) {
			ydoc_error(d, k,
			           "fallback: \"%s\" is not a language tag",
			           k->str);
			continue;
		}
		if (field_expect(v, YDOC_SEQUENCE, "a fallback chain", d) < 0)
			continue;
		if ((fb->tag = field_dup(k, d)) == NULL)
			continue;
		p->nfallback++;
		fb->langs =
		    calloc(v->nitems ? v->nitems : 1, sizeof(*fb->langs));
		if (fb->langs == NULL) {
			ydoc_error(d, v, "out of memory");
			continue;
		}
		for (size_t j = 0; j < v->nitems; j++) {
			const struct ydoc_node *t = v->items[j];
			if (field_line_check(t, "a language", 35, d) < 0)
				continue;
			if (i18n_find(p, t->str) < 0) {
				ydoc_error(d, t,
				           "fallback for %s names \"%s\", "
				           "which is not one of the "
				           "release's languages",
				           k->str, t->str);
				continue;
			}
			if ((fb->langs[fb->nlangs] = field_dup(t, d)) != NULL)
				fb->nlangs++;
		}
		if (v->nitems == 0)
			ydoc_error(d, v, "the fallback chain for %s is empty",
			           k->str);
	}
}

static void release_address(struct release_address *a,
                            const struct ydoc_node *m, const char *key,
                            const struct i18n_policy *p, struct diag *d)
{
	const struct ydoc_node *n = field_get(m, key, true, d);
	const struct ydoc_node *v;
	char *what = NULL;

	if (n == NULL || field_expect(n, YDOC_MAPPING, key, d) < 0)
		return;
	field_known_keys(n, release_address_keys, key, d);
	if ((v = field_get(n, "name", true, d)) != NULL &&
	    asprintf(&what, "%s name", key) >= 0) {
		i18n_text_read(&a->name, v, what, p, d);
		free(what);
		what = NULL;
	}
	if ((v = field_get(n, "email", true, d)) != NULL &&
	    asprintf(&what, "%s email", key) >= 0) {
		if (field_email_check(v, what, d) == 0)
			a->email = field_dup(v, d);
		free(what);
	}
}

static void release_date(struct release *r, const struct ydoc_node *n,
                         struct diag *d)
{
	int y, m, day;

	if (field_line_check(n, "date", 10, d) < 0)
		return;
	if (datefmt_parse_date(n->str, &y, &m, &day) < 0) {
		ydoc_error(d, n, "date \"%s\" is not a date written YYYY-MM-DD",
		           n->str);
		return;
	}
	r->date = field_dup(n, d);
}

static void release_dateline(struct release *r, const struct ydoc_node *n,
                             struct diag *d)
{
	if (field_expect(n, YDOC_SEQUENCE, "dateline", d) < 0)
		return;
	r->dateline = calloc(n->nitems ? n->nitems : 1, sizeof(*r->dateline));
	if (r->dateline == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->nitems; i++)
		if (i18n_text_read(&r->dateline[r->ndateline], n->items[i],
		                   "a dateline place", &r->policy, d) == 0)
			r->ndateline++;
}

/* A moment given as {time: "YYYY-MM-DD HH:MM", zone: Area/City}. */
static int release_moment(const struct ydoc_node *n, const char *what,
                          time_t *at, char **zone_out, struct diag *d)
{
	const struct ydoc_node *t, *z;
	const char *why = NULL;

	if (field_expect(n, YDOC_MAPPING, what, d) < 0)
		return -1;
	field_known_keys(n, release_embargo_keys, what, d);
	t = field_get(n, "time", true, d);
	z = field_get(n, "zone", true, d);
	if (t == NULL || z == NULL || field_line_check(t, "time", 32, d) < 0 ||
	    field_line_check(z, "zone", 64, d) < 0)
		return -1;
	if (!datefmt_zone_valid(z->str)) {
		ydoc_error(d, z,
		           "zone \"%s\" is not a known time zone (names are "
		           "IANA zones like Europe/Berlin)",
		           z->str);
		return -1;
	}
	if (datefmt_parse_local(t->str, z->str, at, &why) < 0) {
		ydoc_error(d, t, "%s time \"%s\": %s", what, t->str, why);
		return -1;
	}
	if (zone_out != NULL && (*zone_out = field_dup(z, d)) == NULL)
		return -1;
	return 0;
}

static void release_embargo(struct release *r, const struct ydoc_node *root,
                            const struct ydoc_node *n, struct diag *d)
{
	const struct ydoc_node *t;

	if (ydoc_is_null(n))
		return;
	if (release_moment(n, "embargo", &r->embargo, &r->embargo_zone, d) < 0)
		return;
	r->has_embargo = true;
	t = ydoc_get(n, "time");
	r->embargo_line = t ? t->line : n->line;
	r->embargo_col = t ? t->col : n->col;
	for (size_t i = 0; i < root->npairs; i++) {
		if (root->pairs[i].value != n)
			continue;
		r->embargo_key_line = root->pairs[i].key->line;
		r->embargo_key_col = root->pairs[i].key->col;
		r->embargo_next_line = i + 1 < root->npairs
		                           ? root->pairs[i + 1].key->line
		                           : 0;
	}
}

/* Byte offset of the start of line `line` (1-based) in text, or len. */
static size_t release_line_start(const char *text, size_t len, unsigned line)
{
	size_t off = 0;

	for (unsigned l = 1; l < line && off < len; l++) {
		const char *nl = memchr(text + off, '\n', len - off);
		if (nl == NULL)
			return len;
		off = (size_t)(nl - text) + 1;
	}
	return off;
}

int release_text_without_embargo(const struct release *r, const char *text,
                                 size_t len, char **out, size_t *outlen,
                                 struct diag *d)
{
	static const char why[] =
	    "# The embargo below had passed when this release was queued,\n"
	    "# and `herald queue --embargo-passed=send` sent it without it.\n";
	size_t from, to, lines = 0;
	struct ydoc *before = NULL, *after = NULL;
	char *buf = NULL;
	size_t n = 0;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (r->embargo_key_line == 0 || r->embargo_key_col != 1 ||
	    (r->embargo_next_line != 0 &&
	     r->embargo_next_line <= r->embargo_key_line)) {
		diag_add(d, r->file, r->embargo_key_line, r->embargo_key_col,
		         "the embargo is not an entry of its own lines at the "
		         "top of release.yaml: write it as \"embargo:\" at the "
		         "start of a line to queue with --embargo-passed=send");
		return -1;
	}
	from = release_line_start(text, len, r->embargo_key_line);
	to = r->embargo_next_line
	         ? release_line_start(text, len, r->embargo_next_line)
	         : len;
	/* blank lines and comments before the next entry belong to it */
	{
		size_t end = from, i = from;
		while (i < to) {
			const char *nl = memchr(text + i, '\n', to - i);
			size_t next = nl ? (size_t)(nl - text) + 1 : to, k = i;
			while (k < next && (text[k] == ' ' || text[k] == '\t' ||
			                    text[k] == '\r' || text[k] == '\n'))
				k++;
			if (k < next && text[k] != '#')
				end = next;
			i = next;
		}
		to = end;
	}
	for (size_t i = from; i < to; i++)
		lines += text[i] == '\n';
	buf = malloc(len + sizeof(why) + 2 * (lines + 1) + 1);
	if (buf == NULL) {
		diag_add(d, r->file, 0, 0, "out of memory");
		return -1;
	}
	memcpy(buf, text, from);
	n = from;
	memcpy(buf + n, why, sizeof(why) - 1);
	n += sizeof(why) - 1;
	for (size_t i = from; i < to;) {
		const char *nl = memchr(text + i, '\n', to - i);
		size_t end = nl ? (size_t)(nl - text) + 1 : to;
		buf[n++] = '#';
		buf[n++] = ' ';
		memcpy(buf + n, text + i, end - i);
		n += end - i;
		i = end;
	}
	if (to == len && len > from && text[len - 1] != '\n')
		buf[n++] = '\n';
	memcpy(buf + n, text + to, len - to);
	n += len - to;
	buf[n] = '\0';
	/* the same release without the entry, or nothing */
	before = ydoc_load_mem(r->file, text, len, NULL, d);
	after = ydoc_load_mem(r->file, buf, n, NULL, d);
	if (before == NULL || after == NULL || before->root == NULL ||
	    after->root == NULL || after->root->kind != YDOC_MAPPING ||
	    ydoc_get(before->root, "embargo") == NULL ||
	    ydoc_get(after->root, "embargo") != NULL ||
	    after->root->npairs + 1 != before->root->npairs) {
		diag_add(d, r->file, r->embargo_key_line, r->embargo_key_col,
		         "cannot take the embargo out of release.yaml for "
		         "--embargo-passed=send: write it as its own "
		         "\"embargo:\" entry");
		goto done;
	}
	*out = buf;
	*outlen = n;
	buf = NULL;
	rc = 0;
done:
	ydoc_free(before);
	ydoc_free(after);
	free(buf);
	return rc;
}

static char *release_path(const char *dir, const char *name);

static bool release_filename_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '/' || *s == '\\')
			return false;
	return true;
}

static void release_attachments(struct release *r, const struct ydoc_node *n,
                                struct diag *d)
{
	size_t total = 0;

	if (field_expect(n, YDOC_SEQUENCE, "attachments", d) < 0)
		return;
	r->attachments =
	    calloc(n->nitems ? n->nitems : 1, sizeof(*r->attachments));
	if (r->attachments == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->nitems; i++) {
		const struct ydoc_node *e = n->items[i], *v;
		struct release_attachment *a = &r->attachments[r->nattachments];
		const char *base;

		if (field_expect(e, YDOC_MAPPING, "an attachment", d) < 0)
			continue;
		field_known_keys(e, release_attachment_keys, "an attachment",
		                 d);
		v = field_get(e, "file", true, d);
		if (v == NULL || field_line_check(v, "file", 4096, d) < 0)
			continue;
		r->nattachments++;
		if (v->str[0] == '/' || strcmp(v->str, "..") == 0 ||
		    strncmp(v->str, "../", 3) == 0 ||
		    strstr(v->str, "/../") != NULL) {
			ydoc_error(d, v,
			           "attachment %s must be inside the release "
			           "directory (it is queued with it)",
			           v->str);
			continue;
		}
		if ((a->path = release_path(r->dir, v->str)) == NULL) {
			ydoc_error(d, v, "out of memory");
			continue;
		}
		if (!fsrc_exists(r->src, a->path)) {
			ydoc_error(d, v, "attachment %s is not a readable file",
			           a->path);
			continue;
		}
		if (fsrc_read(r->src, a->path, RELEASE_ATTACHMENT_MAX, &a->data,
		              &a->len, d) < 0)
			continue;
		total += a->len;
		if (total > RELEASE_ATTACHMENTS_MAX)
			ydoc_error(d, v,
			           "attachments add up to more than %u MiB: "
			           "link large files instead",
			           RELEASE_ATTACHMENTS_MAX >> 20);
		base = strrchr(v->str, '/');
		base = base ? base + 1 : v->str;
		v = field_get(e, "name", false, d);
		if (v != NULL) {
			if (i18n_text_read(&a->name, v, "attachment name",
			                   &r->policy, d) == 0)
				for (size_t k = 0; k < a->name.n; k++)
					if (!release_filename_ok(
					        a->name.v[k]) ||
					    strlen(a->name.v[k]) > 200) {
						ydoc_error(d, v,
						           "attachment name "
						           "\"%s\" must be a "
						           "file name of at "
						           "most 200 bytes, "
						           "without / or \\",
						           a->name.v[k]);
						break;
					}
		} else {
			a->name.n = r->policy.nlangs;
			a->name.v = calloc(a->name.n, sizeof(*a->name.v));
			for (size_t k = 0; a->name.v && k < a->name.n; k++)
				a->name.v[k] = strdup(base);
		}
		v = field_get(e, "type", false, d);
		if (v != NULL) {
			const char *slash = strchr(v->str, '/');
			if (field_line_check(v, "type", 100, d) == 0 &&
			    (slash == NULL || slash == v->str ||
			     slash[1] == '\0' || strpbrk(v->str, " ;\"") ||
			     strchr(slash + 1, '/')))
				ydoc_error(d, v,
				           "type \"%s\" is not a content type "
				           "like application/pdf",
				           v->str);
			else
				a->type = field_dup(v, d);
		} else {
			a->type = strdup(compose_content_type(base));
		}
	}
}

static char *release_path(const char *dir, const char *name)
{
	char *p = NULL;

	if (name[0] == '/')
		return strdup(name);
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* Parse one template file; a missing file is reported at node n. */
static struct tmpl *release_template(const struct release *r, const char *path,
                                     const struct ydoc_node *n,
                                     const char *lang, struct diag *d)
{
	struct tmpl *t;
	char *src;
	size_t len;

	if (!fsrc_exists(r->src, path)) {
		ydoc_error(d, n, "language %s has no template %s", lang, path);
		return NULL;
	}
	if (fsrc_read(r->src, path, RELEASE_TEMPLATE_MAX, &src, &len, d) < 0)
		return NULL;
	t = tmpl_parse(path, src, len, d);
	free(src);
	return t;
}

static void release_templates(struct release *r, const struct ydoc_node *langs,
                              struct diag *d)
{
	size_t n = r->policy.nlangs;

	r->subject_tmpl = calloc(n, sizeof(*r->subject_tmpl));
	r->body = calloc(n, sizeof(*r->body));
	r->body_path = calloc(n, sizeof(*r->body_path));
	if (r->subject_tmpl == NULL || r->body == NULL ||
	    r->body_path == NULL) {
		diag_add(d, r->file, 0, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *lang = r->policy.langs[i];
		const struct ydoc_node *where = langs;

		for (size_t k = 0; k < langs->nitems; k++)
			if (strcmp(langs->items[k]->str, lang) == 0)
				where = langs->items[k];
		for (int f = 0; f < RELEASE_FORMATS; f++) {
			char *name = NULL;
			if (asprintf(&name, "%s.%s.mustache", lang,
			             release_format_ext(
			                 (enum release_format)f)) < 0 ||
			    (r->body_path[i][f] = release_path(r->dir, name)) ==
			        NULL) {
				free(name);
				diag_add(d, r->file, 0, 0, "out of memory");
				return;
			}
			free(name);
			r->body[i][f] = release_template(r, r->body_path[i][f],
			                                 where, lang, d);
		}
		if (r->subject.v != NULL) {
			char *what = NULL;
			if (asprintf(&what, "%s: subject (%s)", r->file, lang) <
			    0) {
				diag_add(d, r->file, 0, 0, "out of memory");
				return;
			}
			r->subject_tmpl[i] = tmpl_parse(
			    what, r->subject.v[i], strlen(r->subject.v[i]), d);
			free(what);
		}
	}
}

struct release *release_load(const struct fsrc *src, const char *dir,
                             struct diag *d)
{
	struct release *r = calloc(1, sizeof(*r));
	struct ydoc *doc = NULL;
	const struct ydoc_node *root, *n, *langs;
	size_t errors = d->errors;
	size_t dlen = strlen(dir);

	if (r == NULL || (r->dir = strdup(dir)) == NULL) {
		diag_add(d, dir, 0, 0, "out of memory");
		goto fail;
	}
	r->src = src;
	while (dlen > 1 && r->dir[dlen - 1] == '/')
		r->dir[--dlen] = '\0';
	if ((r->file = release_path(r->dir, "release.yaml")) == NULL) {
		diag_add(d, dir, 0, 0, "out of memory");
		goto fail;
	}
	doc = fsrc_yaml(src, r->file, NULL, d);
	if (doc == NULL)
		goto fail;
	root = doc->root;
	if (root == NULL) {
		diag_add(d, r->file, 0, 0, "release.yaml is empty");
		goto fail;
	}
	if (field_expect(root, YDOC_MAPPING, "release.yaml", d) < 0)
		goto fail;
	field_known_keys(root, release_keys, "release.yaml", d);

	if ((n = field_get(root, "name", true, d)) != NULL &&
	    field_line_check(n, "name", 64, d) == 0) {
		bool ok = true;
		for (size_t i = 0; i < n->len; i++)
			if (!islower((unsigned char)n->str[i]) &&
			    !isdigit((unsigned char)n->str[i]) &&
			    n->str[i] != '-')
				ok = false;
		if (!ok)
			ydoc_error(d, n,
			           "name \"%s\" may hold only a-z, 0-9 and -",
			           n->str);
		else
			r->name = field_dup(n, d);
	}
	langs = field_get(root, "languages", true, d);
	if (langs != NULL) {
		size_t before = d->errors;
		release_languages(r, langs, d);
		/* every text below is checked per language */
		if (r->policy.nlangs == 0 || d->errors != before)
			goto fail;
	} else {
		goto fail;
	}
	if ((n = field_get(root, "default_language", false, d)) != NULL &&
	    field_line_check(n, "default_language", 35, d) == 0) {
		long i = i18n_find(&r->policy, n->str);
		if (i < 0)
			ydoc_error(d, n,
			           "default_language \"%s\" is not one of the "
			           "release's languages",
			           n->str);
		else
			r->policy.default_lang = (size_t)i;
	}
	if ((n = field_get(root, "fallback", false, d)) != NULL)
		release_fallback(r, n, d);
	release_address(&r->from, root, "from", &r->policy, d);
	release_address(&r->reply_to, root, "reply_to", &r->policy, d);
	if ((n = field_get(root, "subject", true, d)) != NULL)
		i18n_text_read(&r->subject, n, "subject", &r->policy, d);
	if ((n = field_get(root, "date", false, d)) != NULL)
		release_date(r, n, d);
	if ((n = field_get(root, "dateline", false, d)) != NULL)
		release_dateline(r, n, d);
	if ((n = field_get(root, "embargo", false, d)) != NULL)
		release_embargo(r, root, n, d);
	/* news goes stale: no message leaves after this */
	if ((n = field_get(root, "stale_after", false, d)) != NULL &&
	    !ydoc_is_null(n))
		release_moment(n, "stale_after", &r->stale_after, NULL, d);
	if ((n = field_get(root, "attachments", false, d)) != NULL)
		release_attachments(r, n, d);
	n = field_get(root, "coalition", false, d);
	if (n != NULL && field_line_check(n, "coalition", 4096, d) < 0)
		n = NULL;
	r->coalition =
	    release_path(r->dir, n ? n->str : RELEASE_DEFAULT_COALITION);
	if (r->coalition == NULL)
		diag_add(d, r->file, 0, 0, "out of memory");
	release_templates(r, langs, d);
	if (d->errors != errors)
		goto fail;
	ydoc_free(doc);
	return r;
fail:
	ydoc_free(doc);
	release_free(r);
	return NULL;
}

/* ---- the render context ------------------------------------------------ */

static int ctx_set_str(struct tval *m, const char *key, const char *s)
{
	return tval_set(m, key, s ? tval_str(s) : tval_null());
}

/* Items of lists joined by templates carry their place: number (1-based),
 * first and last. */
static int ctx_place(struct tval *item, size_t i, size_t n)
{
	char num[24];

	snprintf(num, sizeof(num), "%zu", i + 1);
	return ctx_set_str(item, "number", num) |
	       tval_set(item, "first", tval_bool(i == 0)) |
	       tval_set(item, "last", tval_bool(i + 1 == n));
}

static char *ctx_countries(const struct coalition *c,
                           const struct coalition_org *o, size_t lang)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (f == NULL)
		return NULL;
	for (size_t k = 0; k < o->ncountries; k++)
		fprintf(f, "%s%s", k ? ", " : "",
		        c->countries[o->countries[k]].name.v[lang]);
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

static struct tval *ctx_orgs(const struct coalition *c,
                             const struct coalition_orgs *l, size_t lang)
{
	struct tval *list = tval_list();
	int rc = 0;

	if (list == NULL)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		const struct coalition_org *o = &c->orgs[l->v[i]];
		struct tval *item = tval_map();
		char *countries = ctx_countries(c, o, lang);

		if (item == NULL || countries == NULL) {
			tval_free(item);
			free(countries);
			rc = -1;
			break;
		}
		rc |= ctx_set_str(item, "id", o->id);
		rc |= ctx_set_str(item, "name", o->name.v[lang]);
		rc |= ctx_set_str(item, "countries", countries);
		rc |= ctx_place(item, i, l->n);
		free(countries);
		rc |= tval_push(list, item);
	}
	if (rc != 0) {
		tval_free(list);
		return NULL;
	}
	return list;
}

const char *release_locale(const struct release *r, const struct journalist *j,
                           size_t lang)
{
	const char *v = r->policy.langs[lang];
	size_t n = strlen(v);

	if (j != NULL && j->language != NULL &&
	    strncasecmp(j->language, v, n) == 0 &&
	    (j->language[n] == '\0' || j->language[n] == '-'))
		return j->language;
	return v;
}

/* release.date and release.embargo, written for the reader. */
/* A formatted date for key (locale, or locale and zone), from the
 * release's cache: ICU's formatters take far longer to open than to use,
 * and every journalist with the same locale reads the same text. The
 * returned text belongs to the cache. */
static const char *release_date_cached(struct release *r, const char *key,
                                       time_t when, int y, int m, int day,
                                       const char *locale, const char *zone,
                                       struct diag *d)
{
	struct release_datecache *v;
	char *text;

	for (size_t i = 0; i < r->ndatecache; i++)
		if (strcmp(r->datecache[i].key, key) == 0)
			return r->datecache[i].text;
	text = zone ? datefmt_datetime(when, locale, zone, d)
	            : datefmt_date(y, m, day, locale, d);
	if (text == NULL)
		return NULL;
	v = realloc(r->datecache, (r->ndatecache + 1) * sizeof(*v));
	if (v == NULL) {
		free(text);
		return NULL;
	}
	r->datecache = v;
	v[r->ndatecache].key = strdup(key);
	v[r->ndatecache].text = text;
	if (v[r->ndatecache].key == NULL) {
		free(text);
		return NULL;
	}
	return v[r->ndatecache++].text;
}

/* release.date and release.embargo, written for the reader. */
static int ctx_dates(struct tval *rel, struct release *r,
                     const struct journalist *j, size_t lang, struct diag *d)
{
	const char *locale = release_locale(r, j, lang);
	const char *text;
	int rc = 0, y, m, day;

	rc |= ctx_set_str(rel, "date_iso", r->date);
	if (r->date != NULL && datefmt_parse_date(r->date, &y, &m, &day) == 0) {
		text = release_date_cached(r, locale, 0, y, m, day, locale,
		                           NULL, d);
		if (text == NULL)
			return -1;
		rc |= ctx_set_str(rel, "date", text);
	} else {
		rc |= ctx_set_str(rel, "date", NULL);
	}
	if (r->has_embargo) {
		struct tval *e = tval_map();
		const char *zone =
		    j && j->timezone ? j->timezone : r->embargo_zone;
		char iso[32], *key = NULL;
		struct tm tm;

		if (e == NULL || asprintf(&key, "%s\n%s", locale, zone) < 0) {
			tval_free(e);
			return -1;
		}
		text = release_date_cached(r, key, r->embargo, 0, 0, 0, locale,
		                           zone, d);
		free(key);
		if (text == NULL) {
			tval_free(e);
			return -1;
		}
		gmtime_r(&r->embargo, &tm);
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		rc |= ctx_set_str(e, "until", text);
		rc |= ctx_set_str(e, "iso", iso);
		rc |= tval_set(rel, "embargo", e);
	} else {
		rc |= tval_set(rel, "embargo", tval_null());
	}
	return rc;
}

/*
 * The part of the context that is the same for every reader of language
 * lang: coalition, spokesperson, report and dateline. Built once per
 * language and shared by reference with every recipient's context.
 */
static struct tval *release_base(struct release *r, const struct coalition *c,
                                 size_t lang)
{
	struct tval *base, *co, *sp, *rep, *dl;
	int rc = 0;

	if (r->base_coal != c) {
		for (size_t i = 0; r->base && i < r->policy.nlangs; i++) {
			tval_free(r->base[i]);
			r->base[i] = NULL;
		}
		r->base_coal = c;
	}
	if (r->base == NULL &&
	    (r->base = calloc(r->policy.nlangs, sizeof(*r->base))) == NULL)
		return NULL;
	if (r->base[lang] != NULL)
		return r->base[lang];
	base = tval_map();
	co = tval_map();
	sp = tval_map();
	rep = tval_map();
	dl = tval_list();
	if (!base || !co || !sp || !rep || !dl) {
		tval_free(base);
		tval_free(co);
		tval_free(sp);
		tval_free(rep);
		tval_free(dl);
		return NULL;
	}
	rc |= ctx_set_str(co, "name", c->name.v[lang]);
	rc |= tval_set(co, "members", ctx_orgs(c, &c->members, lang));

	rc |= ctx_set_str(sp, "name", c->spokesperson.name.v[lang]);
	rc |= ctx_set_str(sp, "title", c->spokesperson.title.v[lang]);
	rc |= ctx_set_str(sp, "email", c->spokesperson.email);
	rc |= ctx_set_str(sp, "phone", c->spokesperson.phone);

	rc |= ctx_set_str(rep, "title", c->report.title.v[lang]);
	rc |= ctx_set_str(rep, "url", c->report.url);
	rc |= tval_set(rep, "authors", ctx_orgs(c, &c->report.authors, lang));
	rc |= tval_set(rep, "supported_by",
	               ctx_orgs(c, &c->report.supported_by, lang));
	rc |= tval_set(rep, "commissioned_by",
	               ctx_orgs(c, &c->report.commissioned_by, lang));

	for (size_t i = 0; i < r->ndateline; i++) {
		struct tval *item = tval_map();
		if (item == NULL) {
			rc = -1;
			break;
		}
		rc |= ctx_set_str(item, "place", r->dateline[i].v[lang]);
		rc |= ctx_place(item, i, r->ndateline);
		rc |= tval_push(dl, item);
	}
	/* the containers own their items from here, also on failure */
	rc |= tval_set(base, "coalition", co);
	rc |= tval_set(base, "spokesperson", sp);
	rc |= tval_set(base, "report", rep);
	rc |= tval_set(base, "dateline", dl);
	if (rc != 0) {
		tval_free(base);
		return NULL;
	}
	r->base[lang] = base;
	return base;
}

struct tval *release_context(struct release *r, const struct coalition *c,
                             const struct journalist *j, size_t lang,
                             struct diag *d)
{
	const struct tval *base = release_base(r, c, lang);
	struct tval *ctx = tval_map(), *rel = tval_map(), *rcp = tval_map();
	int rc = 0;

	if (base == NULL || ctx == NULL || rel == NULL || rcp == NULL) {
		tval_free(rel);
		tval_free(rcp);
		rc = -1;
		goto done;
	}
	rc |= ctx_set_str(ctx, "lang", r->policy.langs[lang]);
	rc |= tval_set(ctx, "coalition", tval_ref(tval_get(base, "coalition")));
	rc |= tval_set(ctx, "spokesperson",
	               tval_ref(tval_get(base, "spokesperson")));
	rc |= tval_set(ctx, "report", tval_ref(tval_get(base, "report")));

	rc |= ctx_set_str(rel, "name", r->name);
	rc |= tval_set(rel, "dateline", tval_ref(tval_get(base, "dateline")));
	if (ctx_dates(rel, r, j, lang, d) < 0)
		rc = -1;

	rc |= ctx_set_str(rcp, "name", j ? j->name : NULL);
	rc |= ctx_set_str(rcp, "email", j ? j->email : NULL);
	rc |= ctx_set_str(rcp, "language", j ? j->language : NULL);
	rc |= ctx_set_str(rcp, "outlet", j ? j->outlet : NULL);
	rc |= ctx_set_str(rcp, "beat", j ? j->beat : NULL);
	rc |= ctx_set_str(rcp, "region", j ? j->region : NULL);
	rc |= ctx_set_str(rcp, "timezone", j ? j->timezone : NULL);

	/* ctx owns rel and rcp from here, also on failure */
	rc |= tval_set(ctx, "release", rel);
	rc |= tval_set(ctx, "recipient", rcp);
done:
	if (rc != 0) {
		if (d->errors == 0)
			diag_add(d, NULL, 0, 0, "out of memory");
		tval_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ---- rendering ----------------------------------------------------------- */

struct release_loader_arg {
	struct release *r;
	size_t lang;
	enum release_format fmt;
};

static bool release_partial_name_ok(const char *name)
{
	if (*name == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

/* Find (and remember) the source of partial name for a language and
 * format: partials/NAME.LANG.EXT.mustache, else partials/NAME.EXT.mustache */
static struct release_partial *
release_partial_find(struct release *r, const char *name, size_t lang,
                     enum release_format fmt, struct diag *d)
{
	struct release_partial *p, *v;
	const char *ext = release_format_ext(fmt);
	char *path = NULL;

	for (size_t i = 0; i < r->npartials; i++) {
		p = &r->partials[i];
		if (p->lang == lang && p->fmt == fmt &&
		    strcmp(p->name, name) == 0)
			return p;
	}
	v = realloc(r->partials, (r->npartials + 1) * sizeof(*v));
	if (v == NULL)
		goto oom;
	r->partials = v;
	p = &r->partials[r->npartials];
	memset(p, 0, sizeof(*p));
	p->lang = lang;
	p->fmt = fmt;
	if ((p->name = strdup(name)) == NULL)
		goto oom;
	r->npartials++;
	if (asprintf(&path, "%s/partials/%s.%s.%s.mustache", r->dir, name,
	             r->policy.langs[lang], ext) < 0)
		goto oom;
	if (!fsrc_exists(r->src, path)) {
		free(path);
		if (asprintf(&path, "%s/partials/%s.%s.mustache", r->dir, name,
		             ext) < 0)
			goto oom;
		if (!fsrc_exists(r->src, path)) {
			free(path);
			return p; /* remembered as missing */
		}
	}
	if (fsrc_read(r->src, path, RELEASE_TEMPLATE_MAX, &p->src, &p->len, d) <
	    0) {
		free(path);
		return NULL;
	}
	p->path = path;
	return p;
oom:
	diag_add(d, r->dir, 0, 0, "out of memory");
	return NULL;
}

/* The parsed partial name for the render's language and format, parsed
 * once and kept with the release. */
static int release_parsed_partial(void *arg, const char *name,
                                  const struct tmpl **t, struct diag *d)
{
	struct release_loader_arg *a = arg;
	struct release_partial *p;

	if (!release_partial_name_ok(name)) {
		diag_add(d, a->r->dir, 0, 0,
		         "partial name \"%s\" may hold only letters, digits, "
		         "- and _",
		         name);
		return -1;
	}
	p = release_partial_find(a->r, name, a->lang, a->fmt, d);
	if (p == NULL)
		return -1;
	if (p->path == NULL) {
		diag_add(d, a->r->dir, 0, 0,
		         "no partial \"%s\": looked for partials/%s.%s.%s."
		         "mustache and partials/%s.%s.mustache",
		         name, name, a->r->policy.langs[a->lang],
		         release_format_ext(a->fmt), name,
		         release_format_ext(a->fmt));
		return -1;
	}
	if (p->t == NULL) {
		p->t = tmpl_parse(p->path, p->src, p->len, d);
		if (p->t == NULL)
			return -1;
	}
	*t = p->t;
	return 0;
}

int release_render(struct release *r, size_t lang, enum release_format f,
                   const struct tval *ctx, char **out, size_t *len,
                   struct diag *d)
{
	struct release_loader_arg arg = {r, lang, f};
	struct tmpl_loader loader = {.parsed = release_parsed_partial,
	                             .arg = &arg};
	struct tmpl_opts opts = {
	    .escape = f == RELEASE_HTML ? TMPL_ESCAPE_HTML : TMPL_ESCAPE_NONE,
	    .strict = true,
	    .partials = &loader,
	};

	*out = NULL;
	*len = 0;
	if (lang >= r->policy.nlangs || r->body[lang][f] == NULL) {
		diag_add(d, r->file, 0, 0, "no template for this language");
		return -1;
	}
	return tmpl_render(r->body[lang][f], ctx, &opts, out, len, d);
}

int release_subject(struct release *r, size_t lang, const struct tval *ctx,
                    char **out, struct diag *d)
{
	struct tmpl_opts opts = {.escape = TMPL_ESCAPE_NONE, .strict = true};
	size_t len;

	*out = NULL;
	if (lang >= r->policy.nlangs || r->subject_tmpl[lang] == NULL) {
		diag_add(d, r->file, 0, 0, "no subject for this language");
		return -1;
	}
	if (tmpl_render(r->subject_tmpl[lang], ctx, &opts, out, &len, d) < 0)
		return -1;
	if (field_line_text(*out, len, NULL, "the rendered subject", 0, d) <
	    0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}
