/*
 * template — herald's Mustache engine (include/herald/template.h).
 *
 * tmpl_parse turns a template into a flat array of nodes once; tmpl_render
 * walks that array for each recipient, so a render costs the name lookups
 * and the bytes written, nothing more. A node with a body (section,
 * inverted section, parent, block) knows the index just past its body, so
 * the tree needs no pointers.
 *
 * Whitespace follows the spec's "standalone" rule: a line holding only a
 * section, inverted section, closing, comment, partial, set-delimiter,
 * parent or block tag disappears from the output, indentation and line
 * ending included. Every other line starts with a LINE node carrying the
 * line's leading whitespace. Rendering a LINE node writes the indentation
 * of the place the text is included at (a standalone partial, a block in a
 * layout) and then the line's own whitespace, less what a reindented block
 * drops; that is how partials and blocks are indented line by line without
 * re-parsing anything at render time.
 *
 * Template inheritance ({{<layout}} ... {{$block}} ... {{/layout}}) follows
 * the spec's optional module: the outermost override of a block wins, and
 * an override is rendered in the context stack of the place it lands in.
 *
 * Positions in errors are 1-based lines and columns counted in characters
 * (UTF-8 continuation bytes do not count).
 */
#include "herald/template.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Defaults and limits. */
static const struct {
	size_t max_source;
	size_t max_nodes;
	unsigned max_nesting;
	unsigned partial_depth;
	size_t max_output;
	size_t max_work;
	size_t show_tag;
} tmpl_defaults = {
    /* A release template is a few kilobytes, and Gmail clips an HTML
     * message past 102 KB: a megabyte of template is a mistake, refused
     * before it costs memory. */
    .max_source = 1 << 20,
    /* Text runs, line starts and tags. A real megabyte of HTML makes
     * well under 100,000; a megabyte of empty lines would make two
     * million, and this keeps it to some 16 MB of nodes. */
    .max_nodes = 250000,
    /* Sections, parents and blocks inside each other. Real templates
     * nest three or four deep; the renderer recurses once per level. */
    .max_nesting = 64,
    /* Partials including partials. A tree rendered by a partial that
     * includes itself is legitimate, but one that never stops must end
     * with an error long before the stack does. */
    .partial_depth = 32,
    /* One email body. Far beyond any press release, small enough that a
     * section repeating over a runaway list fails fast. */
    .max_output = 16 << 20,
    /* Work in one render: each node visited costs one, and a name
     * looked up one more for each context frame the lookup may search.
     * Sections nested over lists multiply the work without writing
     * anything ({{#list}} twenty deep over a list of three visits 3^20
     * nodes), so max_output cannot stop them. A release with a
     * coalition of a thousand members costs under 100,000; this is
     * well under a second of work. */
    .max_work = 16 << 20,
    /* Longest stretch of a tag quoted in an error message. */
    .show_tag = 40,
};

/* ---- parsed templates ------------------------------------------------ */

enum tnode_kind {
	TN_TEXT,     /* bytes of the source, as written */
	TN_LINE,     /* a line of the source starts: its leading whitespace */
	TN_VAR,      /* {{name}}: escaped as the options say */
	TN_RAW,      /* {{{name}}} or {{&name}}: never escaped */
	TN_SECTION,  /* {{#name}} body {{/name}} */
	TN_INVERTED, /* {{^name}} body {{/name}} */
	TN_PARTIAL,  /* {{>name}} */
	TN_PARENT,   /* {{<name}} blocks {{/name}}: a layout filled in */
	TN_BLOCK,    /* {{$name}} default {{/name}}: a place in a layout */
};

struct tnode {
	enum tnode_kind kind;
	bool standalone; /* partial, parent, block: alone on its line */
	unsigned line, col;
	/* text, line: the bytes in the source; partial, parent, block: the
	 * indentation in front of a standalone tag */
	size_t off, len;
	size_t end;     /* nodes with a body: the index just past it */
	char *name;     /* as written: "member.name" */
	char *keys;     /* in the same allocation: "member\0name\0" */
	unsigned nkeys; /* 0 for "." (the top of the context stack) */
};

struct tmpl {
	char *where;
	char *src; /* a copy, NUL-terminated; text nodes point into it */
	size_t len;
	struct tnode *nodes;
	size_t n, cap;
};

/* The array items (n used of *cap, each size bytes) with room for one more:
 * items itself or a larger copy. NULL on out-of-memory, items untouched. */
static void *tmpl_grow(void *items, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *np;

	if (n < *cap)
		return items;
	ncap = *cap == 0 ? 16 : *cap * 2;
	if (ncap > SIZE_MAX / size)
		return NULL;
	np = realloc(items, ncap * size);
	if (np != NULL)
		*cap = ncap;
	return np;
}

static bool tmpl_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static bool tmpl_has_body(enum tnode_kind k)
{
	return k == TN_SECTION || k == TN_INVERTED || k == TN_PARENT ||
	       k == TN_BLOCK;
}

void tmpl_free(struct tmpl *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		free(t->nodes[i].name);
	free(t->nodes);
	free(t->src);
	free(t->where);
	free(t);
}

/* ---- parsing --------------------------------------------------------- */

struct ttag {
	size_t start, end; /* the whole tag, delimiters included */
	char sigil;        /* # ^ / ! > < $ & { = or 0 */
	size_t cs, ce;     /* what the tag says, trimmed */
};

enum tstand {
	TS_INLINE, /* shares its line with text or other tags */
	TS_WHOLE,  /* alone on its line: the line goes */
	TS_LEFT,   /* first of a pair alone on their line */
	TS_RIGHT,  /* second of such a pair */
};

struct tparser {
	struct tmpl *t;
	struct diag *d;
	const char *s;
	size_t len;
	const char *otag, *ctag; /* delimiters: "{{" "}}" or set in s */
	size_t olen, clen;
	size_t text_start; /* first byte not yet turned into nodes */
	bool bol;          /* at the start of a line with no LINE node yet */
	size_t pair_at;    /* the tag starting here ends a standalone pair */
	bool pair_keep_nl; /* ... and leaves the line ending in place */
	size_t *open;      /* node indices of the bodies not yet closed */
	size_t nopen, capopen;
	size_t lc_off; /* position cache for tparser_pos */
	unsigned lc_line, lc_col;
	bool failed; /* an error was reported */
	bool stop;   /* and parsing cannot go on */
};

/* Line and column of byte off. Positions are asked for mostly in
 * increasing order, so this walks the source about once. */
static void tparser_pos(struct tparser *p, size_t off, unsigned *line,
                        unsigned *col)
{
	if (off < p->lc_off) {
		p->lc_off = 0;
		p->lc_line = 1;
		p->lc_col = 1;
	}
	for (; p->lc_off < off; p->lc_off++) {
		unsigned char c = (unsigned char)p->s[p->lc_off];

		if (c == '\n') {
			p->lc_line++;
			p->lc_col = 1;
		} else if ((c & 0xC0) != 0x80) {
			p->lc_col++;
		}
	}
	*line = p->lc_line;
	*col = p->lc_col;
}

static void tparser_error(struct tparser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tparser_error(struct tparser *p, size_t off, const char *fmt, ...)
{
	unsigned line, col;
	char *msg = NULL;
	va_list ap;

	tparser_pos(p, off, &line, &col);
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	diag_add(p->d, p->t->where, line, col, "%s",
	         msg != NULL ? msg : "out of memory while reporting an error");
	free(msg);
	p->failed = true;
}

static void tparser_oom(struct tparser *p)
{
	diag_add(p->d, p->t->where, 0, 0, "out of memory parsing the template");
	p->failed = true;
	p->stop = true;
}

/* A new node at byte off; its index, or SIZE_MAX on out-of-memory. */
static size_t tparser_node(struct tparser *p, enum tnode_kind kind, size_t off)
{
	struct tmpl *t = p->t;
	struct tnode *nodes, *n;

	if (t->n >= tmpl_defaults.max_nodes) {
		tparser_error(p, off,
		              "the template has more than %zu tags, text runs "
		              "and lines",
		              tmpl_defaults.max_nodes);
		p->stop = true;
		return SIZE_MAX;
	}
	nodes = tmpl_grow(t->nodes, &t->cap, t->n, sizeof(*nodes));
	if (nodes == NULL) {
		tparser_oom(p);
		return SIZE_MAX;
	}
	t->nodes = nodes;
	n = &nodes[t->n];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->off = off;
	tparser_pos(p, off, &n->line, &n->col);
	return t->n++;
}

/* Turn source bytes [a, b) into TEXT nodes, a LINE node in front of each
 * line's content. */
static void tparser_text(struct tparser *p, size_t a, size_t b)
{
	while (a < b && !p->stop) {
		size_t i, e;
		const char *nl;

		if (p->bol) {
			for (e = a;
			     e < b && (p->s[e] == ' ' || p->s[e] == '\t'); e++)
				;
			i = tparser_node(p, TN_LINE, a);
			if (i == SIZE_MAX)
				return;
			p->t->nodes[i].len = e - a;
			p->bol = false;
			a = e;
			continue;
		}
		nl = memchr(p->s + a, '\n', b - a);
		e = nl != NULL ? (size_t)(nl - p->s) + 1 : b;
		i = tparser_node(p, TN_TEXT, a);
		if (i == SIZE_MAX)
			return;
		p->t->nodes[i].len = e - a;
		p->bol = nl != NULL;
		a = e;
	}
}

/* Find the next tag at or after from. Returns 0 and fills tg, 1 when there
 * is none, -1 when a tag opens at tg->start but never closes. */
static int tparser_scan(struct tparser *p, size_t from, struct ttag *tg)
{
	const char *o, *c;
	size_t in, k;
	char closer = 0;

	if (from >= p->len)
		return 1;
	o = memmem(p->s + from, p->len - from, p->otag, p->olen);
	if (o == NULL)
		return 1;
	tg->start = (size_t)(o - p->s);
	in = tg->start + p->olen;
	tg->sigil = 0;
	if (in < p->len && p->s[in] != '\0' &&
	    strchr("#^/!><$&{=", p->s[in]) != NULL)
		tg->sigil = p->s[in++];
	if (tg->sigil == '{')
		closer = '}';
	else if (tg->sigil == '=')
		closer = '=';
	for (k = in;; k++) {
		c = memmem(p->s + k, p->len - k, p->ctag, p->clen);
		if (c == NULL)
			return -1;
		k = (size_t)(c - p->s);
		if (closer == 0 || (k > in && p->s[k - 1] == closer))
			break;
	}
	tg->end = k + p->clen;
	tg->cs = in;
	tg->ce = closer != 0 ? k - 1 : k;
	while (tg->cs < tg->ce && tmpl_space(p->s[tg->cs]))
		tg->cs++;
	while (tg->ce > tg->cs && tmpl_space(p->s[tg->ce - 1]))
		tg->ce--;
	return 0;
}

/* Where the line holding the tag at start begins, when nothing but spaces
 * and tabs precede the tag on it; SIZE_MAX otherwise. */
static size_t tparser_line_head(const struct tparser *p, size_t start)
{
	size_t q = start;

	while (q > p->text_start && (p->s[q - 1] == ' ' || p->s[q - 1] == '\t'))
		q--;
	if (q == 0 || (q >= p->text_start && p->s[q - 1] == '\n'))
		return q;
	return SIZE_MAX;
}

/* Where the next line begins, when nothing but spaces and tabs follow
 * byte end on its line; SIZE_MAX otherwise. */
static size_t tparser_line_tail(const struct tparser *p, size_t end)
{
	size_t k = end;

	while (k < p->len && (p->s[k] == ' ' || p->s[k] == '\t'))
		k++;
	if (k == p->len)
		return k;
	if (p->s[k] == '\n')
		return k + 1;
	if (p->s[k] == '\r' && k + 1 < p->len && p->s[k + 1] == '\n')
		return k + 2;
	return SIZE_MAX;
}

static bool tparser_same(const struct tparser *p, const struct ttag *a,
                         const struct ttag *b)
{
	return a->ce - a->cs == b->ce - b->cs &&
	       memcmp(p->s + a->cs, p->s + b->cs, a->ce - a->cs) == 0;
}

static bool tparser_names(const struct tparser *p, const struct ttag *tg,
                          size_t node)
{
	const char *name = p->t->nodes[node].name;

	return strlen(name) == tg->ce - tg->cs &&
	       memcmp(name, p->s + tg->cs, tg->ce - tg->cs) == 0;
}

/* Whether tg and the tag right after it form a pair that may stand alone
 * on a line together (inheritance: "{{<layout}}{{$block}}",
 * "{{/block}}{{/layout}}", "{{<layout}}{{/layout}}", "{{$b}}{{/b}}").
 * Fills t2 and pair_keep_nl when they do. */
static bool tparser_pair(struct tparser *p, const struct ttag *tg,
                         struct ttag *t2)
{
	size_t top;

	if (tg->sigil == 0 || strchr("<$/", tg->sigil) == NULL ||
	    tparser_scan(p, tg->end, t2) != 0 || t2->start != tg->end)
		return false;
	p->pair_keep_nl = false;
	switch (tg->sigil) {
	case '<':
		return t2->sigil == '$' ||
		       (t2->sigil == '/' && tparser_same(p, tg, t2));
	case '$':
		/* An empty block keeps its line ending: what fills it
		 * decides whether the line has content. */
		p->pair_keep_nl = true;
		return t2->sigil == '/' && tparser_same(p, tg, t2);
	case '/':
		if (p->nopen < 2 || t2->sigil != '/')
			return false;
		top = p->open[p->nopen - 1];
		return p->t->nodes[top].kind == TN_BLOCK &&
		       tparser_names(p, tg, top) &&
		       p->t->nodes[p->open[p->nopen - 2]].kind == TN_PARENT &&
		       tparser_names(p, t2, p->open[p->nopen - 2]);
	default:
		return false;
	}
}

/* How much of tag tg to quote in a message. */
static int tparser_shown(const struct ttag *tg)
{
	size_t len = tg->end - tg->start;

	return (int)(len < tmpl_defaults.show_tag ? len
	                                          : tmpl_defaults.show_tag);
}

/* The reason the name s[0, len) cannot be used, or NULL when it can.
 * Dotted names are looked up key by key. */
static const char *tparser_bad_name(const char *s, size_t len, bool dotted)
{
	size_t i;

	if (len == 0)
		return "the tag has no name";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f)
			return "a name cannot contain spaces or control "
			       "characters";
	}
	if (!dotted || (len == 1 && s[0] == '.'))
		return NULL;
	if (s[0] == '.' || s[len - 1] == '.' || memmem(s, len, "..", 2) != NULL)
		return "a dotted name needs a name on both sides of each dot";
	return NULL;
}

/* Give node i the name the tag holds. Returns 0, or -1 after reporting. */
static int tparser_name(struct tparser *p, const struct ttag *tg, size_t i,
                        bool dotted)
{
	const char *s = p->s + tg->cs;
	size_t len = tg->ce - tg->cs, k;
	const char *why = tparser_bad_name(s, len, dotted);
	struct tnode *n = &p->t->nodes[i];

	if (why != NULL) {
		tparser_error(p, tg->start, "bad tag %.*s: %s",
		              tparser_shown(tg), p->s + tg->start, why);
		return -1;
	}
	n->name = malloc(2 * len + 2);
	if (n->name == NULL) {
		tparser_oom(p);
		return -1;
	}
	memcpy(n->name, s, len);
	n->name[len] = '\0';
	n->keys = n->name + len + 1;
	n->keys[0] = '\0';
	n->nkeys = 0;
	if (!dotted || (len == 1 && s[0] == '.'))
		return 0;
	n->nkeys = 1;
	for (k = 0; k < len; k++) {
		n->keys[k] = s[k] == '.' ? '\0' : s[k];
		if (s[k] == '.')
			n->nkeys++;
	}
	n->keys[len] = '\0';
	return 0;
}

static const char *tparser_what(enum tnode_kind k)
{
	switch (k) {
	case TN_PARENT:
		return "parent";
	case TN_BLOCK:
		return "block";
	default:
		return "section";
	}
}

/* Set the body end of the open node at i. */
static void tparser_close_node(struct tparser *p, size_t i)
{
	p->t->nodes[i].end = p->t->n;
}

static void tparser_close(struct tparser *p, const struct ttag *tg)
{
	int shown = tparser_shown(tg);
	size_t j, k;

	if (p->nopen == 0) {
		tparser_error(p, tg->start,
		              "%.*s closes nothing: no section is open here",
		              shown, p->s + tg->start);
		return;
	}
	for (j = p->nopen; j > 0; j--)
		if (tparser_names(p, tg, p->open[j - 1]))
			break;
	if (j == 0) {
		const struct tnode *top = &p->t->nodes[p->open[p->nopen - 1]];

		tparser_error(p, tg->start,
		              "%.*s does not match the open %s \"%s\" (opened "
		              "at line %u, column %u)",
		              shown, p->s + tg->start, tparser_what(top->kind),
		              top->name, top->line, top->col);
		return;
	}
	/* Close what was left open inside, after saying so. */
	for (k = p->nopen; k > j; k--) {
		const struct tnode *n = &p->t->nodes[p->open[k - 1]];

		tparser_error(p, tg->start,
		              "%.*s closes \"%s\" but the %s \"%s\" opened "
		              "inside it at line %u, column %u is still open",
		              shown, p->s + tg->start,
		              p->t->nodes[p->open[j - 1]].name,
		              tparser_what(n->kind), n->name, n->line, n->col);
		tparser_close_node(p, p->open[k - 1]);
	}
	tparser_close_node(p, p->open[j - 1]);
	p->nopen = j - 1;
}

static void tparser_delims(struct tparser *p, const struct ttag *tg)
{
	size_t a = tg->cs, b, c, e;

	for (b = a; b < tg->ce && !tmpl_space(p->s[b]); b++)
		;
	for (c = b; c < tg->ce && tmpl_space(p->s[c]); c++)
		;
	for (e = c; e < tg->ce && !tmpl_space(p->s[e]); e++)
		;
	if (b == a || e == c || e != tg->ce ||
	    memchr(p->s + a, '=', b - a) != NULL ||
	    memchr(p->s + c, '=', e - c) != NULL) {
		tparser_error(p, tg->start,
		              "bad set-delimiter tag %.*s: write "
		              "%.*s=OPEN CLOSE=%.*s with two delimiters that "
		              "have no spaces and no \"=\"",
		              tparser_shown(tg), p->s + tg->start, (int)p->olen,
		              p->otag, (int)p->clen, p->ctag);
		return;
	}
	p->otag = p->s + a;
	p->olen = b - a;
	p->ctag = p->s + c;
	p->clen = e - c;
}

/* Make the node a tag stands for. indent is the whitespace in front of a
 * standalone tag. */
static void tparser_handle(struct tparser *p, const struct ttag *tg,
                           bool standalone, size_t indent)
{
	enum tnode_kind kind;
	size_t i, *open;
	struct tnode *n;

	switch (tg->sigil) {
	case '!':
		return;
	case '=':
		tparser_delims(p, tg);
		return;
	case '/':
		tparser_close(p, tg);
		return;
	case '#':
		kind = TN_SECTION;
		break;
	case '^':
		kind = TN_INVERTED;
		break;
	case '<':
		kind = TN_PARENT;
		break;
	case '$':
		kind = TN_BLOCK;
		break;
	case '>':
		kind = TN_PARTIAL;
		break;
	case '&':
	case '{':
		kind = TN_RAW;
		break;
	default:
		kind = TN_VAR;
		break;
	}
	if (tmpl_has_body(kind) && p->nopen >= tmpl_defaults.max_nesting) {
		tparser_error(p, tg->start,
		              "sections, parents and blocks nest more than %u "
		              "deep here",
		              tmpl_defaults.max_nesting);
		p->stop = true;
		return;
	}
	i = tparser_node(p, kind, tg->start);
	if (i == SIZE_MAX)
		return;
	if (tparser_name(p, tg, i,
	                 kind == TN_VAR || kind == TN_RAW ||
	                     kind == TN_SECTION || kind == TN_INVERTED) < 0) {
		p->t->n--; /* drop the node; the error is reported */
		return;
	}
	n = &p->t->nodes[i];
	n->standalone = standalone;
	if (standalone) {
		n->off = indent;
		n->len = tg->start - indent;
	} else {
		n->off = tg->start;
		n->len = 0;
	}
	if (!tmpl_has_body(kind))
		return;
	open = tmpl_grow(p->open, &p->capopen, p->nopen, sizeof(*open));
	if (open == NULL) {
		tparser_oom(p);
		return;
	}
	p->open = open;
	p->open[p->nopen++] = i;
}

static bool tparser_may_stand(char sigil)
{
	return sigil != 0 && strchr("#^/!>=<$", sigil) != NULL;
}

/* Handle the tag tg and the text before it; returns where to go on. */
static size_t tparser_tag(struct tparser *p, const struct ttag *tg)
{
	enum tstand sa = TS_INLINE;
	size_t head = SIZE_MAX, tail = SIZE_MAX, next;
	struct ttag t2;

	if (tg->start == p->pair_at) {
		sa = TS_RIGHT;
		p->pair_at = SIZE_MAX;
	} else if (tparser_may_stand(tg->sigil)) {
		head = tparser_line_head(p, tg->start);
		if (head != SIZE_MAX) {
			tail = tparser_line_tail(p, tg->end);
			if (tail != SIZE_MAX) {
				sa = TS_WHOLE;
			} else if (tparser_pair(p, tg, &t2) &&
			           tparser_line_tail(p, t2.end) != SIZE_MAX) {
				sa = TS_LEFT;
				p->pair_at = t2.start;
			}
		}
	}
	if (sa == TS_WHOLE || sa == TS_LEFT) {
		tparser_text(p, p->text_start, head);
	} else {
		tparser_text(p, p->text_start, tg->start);
		if (sa == TS_INLINE && p->bol && !p->stop) {
			if (tparser_node(p, TN_LINE, tg->start) == SIZE_MAX)
				return p->len;
			p->bol = false;
		}
	}
	if (p->stop)
		return p->len;
	tparser_handle(p, tg, sa != TS_INLINE,
	               sa == TS_WHOLE || sa == TS_LEFT ? head : tg->start);
	switch (sa) {
	case TS_WHOLE:
		next = tail;
		p->bol = true;
		break;
	case TS_LEFT:
		next = tg->end;
		break;
	case TS_RIGHT:
		if (p->pair_keep_nl) {
			for (next = tg->end;
			     next < p->len &&
			     (p->s[next] == ' ' || p->s[next] == '\t');
			     next++)
				;
			p->bol = false;
		} else {
			next = tparser_line_tail(p, tg->end);
			p->bol = true;
		}
		break;
	default:
		next = tg->end;
		p->bol = false;
		break;
	}
	p->text_start = next;
	return next;
}

static void tparser_run(struct tparser *p)
{
	struct ttag tg;
	size_t from = 0, i;
	int rc;

	while (!p->stop) {
		rc = tparser_scan(p, from, &tg);
		if (rc == 1) {
			tparser_text(p, p->text_start, p->len);
			break;
		}
		if (rc < 0 && tg.sigil == '=') {
			tparser_error(p, tg.start,
			              "bad set-delimiter tag: %.*s= opens it "
			              "but no =%.*s ends it; write %.*s=OPEN "
			              "CLOSE=%.*s",
			              (int)p->olen, p->otag, (int)p->clen,
			              p->ctag, (int)p->olen, p->otag,
			              (int)p->clen, p->ctag);
			return;
		}
		if (rc < 0) {
			tparser_error(p, tg.start,
			              "unclosed tag: %.*s opens a tag but no "
			              "%.*s closes it",
			              (int)p->olen, p->otag, (int)p->clen,
			              p->ctag);
			return;
		}
		from = tparser_tag(p, &tg);
	}
	if (p->stop)
		return;
	for (i = 0; i < p->nopen; i++) {
		const struct tnode *n = &p->t->nodes[p->open[i]];

		diag_add(p->d, p->t->where, n->line, n->col,
		         "unclosed %s \"%s\": no closing tag for it before the "
		         "end of the template",
		         tparser_what(n->kind), n->name);
		p->failed = true;
	}
}

struct tmpl *tmpl_parse(const char *where, const char *src, size_t len,
                        struct diag *d)
{
	struct tparser p = {0};
	struct tmpl *t;

	if (where == NULL)
		where = "template";
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->where = strdup(where)) == NULL) {
		diag_add(d, where, 0, 0, "out of memory parsing the template");
		goto fail;
	}
	if (len > tmpl_defaults.max_source) {
		diag_add(d, where, 0, 0,
		         "template is %zu bytes, more than the %zu a template "
		         "may have",
		         len, tmpl_defaults.max_source);
		goto fail;
	}
	if (src == NULL && len > 0) {
		diag_add(d, where, 0, 0, "no template text given");
		goto fail;
	}
	t->src = malloc(len + 1);
	if (t->src == NULL) {
		diag_add(d, where, 0, 0, "out of memory parsing the template");
		goto fail;
	}
	if (len > 0)
		memcpy(t->src, src, len);
	t->src[len] = '\0';
	t->len = len;

	p.t = t;
	p.d = d;
	p.s = t->src;
	p.len = len;
	p.otag = "{{";
	p.olen = 2;
	p.ctag = "}}";
	p.clen = 2;
	p.bol = true;
	p.pair_at = SIZE_MAX;
	p.lc_line = 1;
	p.lc_col = 1;
	tparser_run(&p);
	if (p.failed)
		goto fail;
	free(p.open);
	return t;
fail:
	free(p.open);
	tmpl_free(t);
	return NULL;
}

/* ---- rendering ------------------------------------------------------- */

/* How the lines of the template text being rendered are indented. */
struct tframe {
	size_t pre_off, pre_len; /* written before each line, in r->ibuf */
	size_t strip; /* bytes of each line's own indentation dropped */
};

struct tpartial {
	char *name;
	const struct tmpl *t; /* NULL: the loader has no such partial */
	bool owned;           /* parsed by this render, freed with it */
};

/* A block override in force: block node i of template t. */
struct toverride {
	const struct tmpl *t;
	size_t i;
	bool busy; /* being rendered: a block of the same name inside it
	              gets the next override or its default */
};

struct trender {
	enum tmpl_escape escape;
	bool strict;
	unsigned max_depth;
	size_t max_output;
	const struct tmpl_loader *loader;
	struct diag *d;

	char *out; /* the output */
	size_t n, cap;
	char *ibuf; /* indentation of the frames being rendered */
	size_t in, icap;
	const struct tval **stack; /* the context stack */
	size_t ns, caps;
	struct tpartial *parts; /* partials parsed in this render */
	size_t np, capp;
	struct toverride *ovr; /* block overrides, outermost first */
	size_t nov, capov;
	const struct tnode **reported; /* each faulty tag is reported once */
	size_t nrep, caprep;

	size_t work;               /* spent so far (see max_work) */
	unsigned depth;            /* partials and parents being rendered */
	const struct tmpl *top_t;  /* where the current chain of partials */
	const struct tnode *top_n; /* ... started */
	const struct tmpl *at_t;   /* what is being rendered, for errors */
	const struct tnode *at_n;
	bool failed; /* an error was reported: no output */
	bool stop;   /* and rendering cannot go on */
};

static void trender_oom(struct trender *r)
{
	if (!r->stop)
		diag_add(r->d, r->at_t != NULL ? r->at_t->where : NULL, 0, 0,
		         "out of memory rendering the template");
	r->failed = true;
	r->stop = true;
}

static void trender_too_big(struct trender *r)
{
	diag_add(r->d, r->at_t->where, r->at_n != NULL ? r->at_n->line : 0,
	         r->at_n != NULL ? r->at_n->col : 0,
	         "the rendered text grows past %zu bytes here, the most a "
	         "render may produce; is a section repeating over a list much "
	         "longer than meant?",
	         r->max_output);
	r->failed = true;
	r->stop = true;
}

static void trender_too_long(struct trender *r)
{
	diag_add(r->d, r->at_t->where, r->at_n != NULL ? r->at_n->line : 0,
	         r->at_n != NULL ? r->at_n->col : 0,
	         "rendering takes more work here than a render may take "
	         "(%zu steps); do sections nest over lists more deeply than "
	         "meant?",
	         tmpl_defaults.max_work);
	r->failed = true;
	r->stop = true;
}

/* Make room in *buf (*cap bytes, used of them in use) for add more bytes
 * and a NUL, within max_output. Returns 0, or -1 after reporting. */
static int trender_room(struct trender *r, char **buf, size_t *cap, size_t used,
                        size_t add)
{
	size_t want;
	char *np;

	if (add > r->max_output - used) {
		trender_too_big(r);
		return -1;
	}
	if (used + add < *cap)
		return 0;
	want = *cap < 256 ? 256 : *cap;
	while (want <= used + add)
		want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
	if (want > r->max_output + 1)
		want = r->max_output + 1;
	np = realloc(*buf, want);
	if (np == NULL) {
		trender_oom(r);
		return -1;
	}
	*buf = np;
	*cap = want;
	return 0;
}

static void trender_put(struct trender *r, const char *s, size_t len)
{
	if (len == 0 || r->stop ||
	    trender_room(r, &r->out, &r->cap, r->n, len) < 0)
		return;
	memcpy(r->out + r->n, s, len);
	r->n += len;
}

/* s with & < > " ' written as HTML entities. */
static void trender_put_html(struct trender *r, const char *s, size_t len)
{
	size_t i, run = 0;
	const char *ent;

	for (i = 0; i < len; i++) {
		switch (s[i]) {
		case '&':
			ent = "&amp;";
			break;
		case '<':
			ent = "&lt;";
			break;
		case '>':
			ent = "&gt;";
			break;
		case '"':
			ent = "&quot;";
			break;
		case '\'':
			ent = "&#39;";
			break;
		default:
			continue;
		}
		trender_put(r, s + run, i - run);
		trender_put(r, ent, strlen(ent));
		run = i + 1;
	}
	trender_put(r, s + run, len - run);
}

/* Whether tag n was reported already in this render; if not, it is from
 * now on. A tag inside a section over 2,000 recipients says its problem
 * once. */
static bool trender_reported(struct trender *r, const struct tnode *n)
{
	const struct tnode **rep;
	size_t i;

	for (i = 0; i < r->nrep; i++)
		if (r->reported[i] == n)
			return true;
	rep = tmpl_grow(r->reported, &r->caprep, r->nrep, sizeof(*rep));
	if (rep == NULL)
		return false; /* report it again rather than not at all */
	r->reported = rep;
	rep[r->nrep++] = n;
	return false;
}

/* The value tag n names, or NULL when it resolves to nothing. *found is
 * the number of keys of a dotted name that did resolve. */
static const struct tval *trender_lookup(const struct trender *r,
                                         const struct tnode *n, unsigned *found)
{
	const struct tval *v = NULL;
	const char *key = n->keys;
	size_t i;
	unsigned k;

	*found = 0;
	if (n->nkeys == 0)
		return r->ns > 0 ? r->stack[r->ns - 1] : NULL;
	for (i = r->ns; i > 0 && v == NULL; i--)
		v = tval_get(r->stack[i - 1], key);
	for (k = 1; v != NULL && k < n->nkeys; k++) {
		*found = k;
		key += strlen(key) + 1;
		v = tval_get(v, key);
	}
	if (v != NULL)
		*found = n->nkeys;
	return v;
}

static void trender_unresolved(struct trender *r, const struct tmpl *t,
                               const struct tnode *n, unsigned found)
{
	const char *key = n->keys;
	size_t plen = 0;
	unsigned k;

	if (!r->strict || trender_reported(r, n))
		return;
	r->failed = true;
	if (found == 0) {
		diag_add(r->d, t->where, n->line, n->col,
		         "unresolved name \"%s\": the data has no \"%s\" here "
		         "(give it a value, null for none)",
		         n->name, n->nkeys > 0 ? n->keys : ".");
		return;
	}
	for (k = 0; k < found; k++) {
		plen += strlen(key) + (k > 0);
		key += strlen(key) + 1;
	}
	diag_add(r->d, t->where, n->line, n->col,
	         "unresolved name \"%s\": \"%.*s\" has no \"%s\"", n->name,
	         (int)plen, n->name, key);
}

static bool trender_truthy(const struct tval *v)
{
	switch (tval_kind(v)) {
	case TVAL_NULL:
		return false;
	case TVAL_BOOL:
		return tval_boolean(v);
	case TVAL_LIST:
		return tval_len(v) > 0;
	default:
		return true;
	}
}

static void trender_push(struct trender *r, const struct tval *v)
{
	const struct tval **st;

	st = tmpl_grow(r->stack, &r->caps, r->ns, sizeof(*st));
	if (st == NULL) {
		trender_oom(r);
		return;
	}
	r->stack = st;
	st[r->ns++] = v;
}

static void trender_range(struct trender *r, const struct tmpl *t, size_t from,
                          size_t to, const struct tframe *f);

static void trender_var(struct trender *r, const struct tmpl *t,
                        const struct tnode *n)
{
	const struct tval *v;
	const char *s;
	size_t len;
	unsigned found;

	v = trender_lookup(r, n, &found);
	if (v == NULL) {
		trender_unresolved(r, t, n, found);
		return;
	}
	switch (tval_kind(v)) {
	case TVAL_STRING:
		s = tval_string(v);
		len = tval_len(v);
		break;
	case TVAL_BOOL:
		s = tval_boolean(v) ? "true" : "false";
		len = strlen(s);
		break;
	case TVAL_NULL:
		return;
	default:
		if (r->strict && !trender_reported(r, n)) {
			diag_add(r->d, t->where, n->line, n->col,
			         "\"%s\" is a %s, not text: use a section "
			         "to render what is in it",
			         n->name,
			         tval_kind(v) == TVAL_LIST ? "list" : "map");
			r->failed = true;
		}
		return;
	}
	if (n->kind == TN_VAR && r->escape == TMPL_ESCAPE_HTML)
		trender_put_html(r, s, len);
	else
		trender_put(r, s, len);
}

static void trender_section(struct trender *r, const struct tmpl *t, size_t i,
                            const struct tframe *f)
{
	const struct tnode *n = &t->nodes[i];
	const struct tval *v;
	size_t k;
	unsigned found;

	v = trender_lookup(r, n, &found);
	if (v == NULL)
		trender_unresolved(r, t, n, found);
	if (n->kind == TN_INVERTED) {
		if (!trender_truthy(v))
			trender_range(r, t, i + 1, n->end, f);
		return;
	}
	if (tval_kind(v) == TVAL_LIST) {
		for (k = 0; k < tval_len(v) && !r->stop; k++) {
			trender_push(r, tval_at(v, k));
			trender_range(r, t, i + 1, n->end, f);
			r->ns--;
		}
	} else if (trender_truthy(v)) {
		trender_push(r, v);
		trender_range(r, t, i + 1, n->end, f);
		r->ns--;
	}
}

/* Write the indentation frame f puts before each line. */
static void trender_put_indent(struct trender *r, const struct tframe *f)
{
	if (f->pre_len > 0)
		trender_put(r, r->ibuf + f->pre_off, f->pre_len);
}

/* Frame nf writes f's indentation, then the source indentation ws[0, len)
 * of f's text less what f strips. */
static void trender_indent(struct trender *r, const struct tframe *f,
                           const char *ws, size_t len, struct tframe *nf)
{
	size_t skip = f->strip < len ? f->strip : len;
	size_t need = f->pre_len + len - skip;

	nf->pre_off = r->in;
	nf->pre_len = 0;
	nf->strip = 0;
	if (need == 0)
		return;
	if (trender_room(r, &r->ibuf, &r->icap, r->in, need) < 0)
		return;
	memcpy(r->ibuf + r->in, r->ibuf + f->pre_off, f->pre_len);
	memcpy(r->ibuf + r->in + f->pre_len, ws + skip, len - skip);
	nf->pre_len = need;
	r->in += need;
}

/* The partial or parent tag n names, parsed; NULL when there is none
 * (reported in strict mode) or on error (then r->stop). */
static const struct tmpl *trender_load(struct trender *r, const struct tmpl *t,
                                       const struct tnode *n)
{
	struct tpartial *parts;
	struct tmpl *pt = NULL;
	char *src = NULL, *where = NULL, *name = NULL;
	size_t i, len = 0;
	int rc = 1;

	for (i = 0; i < r->np; i++)
		if (strcmp(r->parts[i].name, n->name) == 0)
			break;
	if (i == r->np && r->loader != NULL && r->loader->parsed != NULL) {
		const struct tmpl *lt = NULL;
		rc = r->loader->parsed(r->loader->arg, n->name, &lt, r->d);
		if (rc < 0) {
			r->failed = true;
			r->stop = true;
			return NULL;
		}
		name = strdup(n->name);
		parts = tmpl_grow(r->parts, &r->capp, r->np, sizeof(*parts));
		if (name == NULL || parts == NULL) {
			free(name);
			trender_oom(r);
			return NULL;
		}
		r->parts = parts;
		parts[r->np].name = name;
		parts[r->np].t = rc == 0 ? lt : NULL;
		parts[r->np].owned = false;
		r->np++;
	} else if (i == r->np) {
		if (r->loader != NULL && r->loader->load != NULL)
			rc = r->loader->load(r->loader->arg, n->name, &src,
			                     &len, &where, r->d);
		if (rc < 0) {
			r->failed = true;
			r->stop = true;
			goto fail;
		}
		if (rc == 0) {
			pt = tmpl_parse(where != NULL ? where : n->name, src,
			                len, r->d);
			if (pt == NULL) {
				r->failed = true;
				r->stop = true;
				goto fail;
			}
		}
		name = strdup(n->name);
		parts = tmpl_grow(r->parts, &r->capp, r->np, sizeof(*parts));
		if (name == NULL || parts == NULL) {
			trender_oom(r);
			goto fail;
		}
		r->parts = parts;
		parts[r->np].name = name;
		parts[r->np].t = pt;
		parts[r->np].owned = true;
		r->np++;
		free(src);
		free(where);
	}
	if (r->parts[i].t == NULL && r->strict && !trender_reported(r, n)) {
		diag_add(r->d, t->where, n->line, n->col, "%s \"%s\" not found",
		         n->kind == TN_PARENT ? "parent template" : "partial",
		         n->name);
		r->failed = true;
	}
	return r->parts[i].t;
fail:
	free(name);
	tmpl_free(pt);
	free(src);
	free(where);
	return NULL;
}

/* Render pt in place of the partial or parent tag i of t. */
static void trender_include(struct trender *r, const struct tmpl *t, size_t i,
                            const struct tmpl *pt, const struct tframe *f)
{
	const struct tnode *n = &t->nodes[i];
	struct tframe nf = {0};
	size_t mark = r->in;

	if (r->depth == 0) {
		r->top_t = t;
		r->top_n = n;
	}
	if (r->depth >= r->max_depth) {
		diag_add(r->d, r->top_t->where, r->top_n->line, r->top_n->col,
		         "partials nest more than %u deep from \"%s\" "
		         "included here (the deepest is \"%s\" at %s:%u:%u); "
		         "does a partial include itself without a section "
		         "that ends?",
		         r->max_depth, r->top_n->name, n->name, t->where,
		         n->line, n->col);
		r->failed = true;
		r->stop = true;
		return;
	}
	if (n->standalone)
		trender_indent(r, f, t->src + n->off, n->len, &nf);
	r->depth++;
	trender_range(r, pt, 0, pt->n, &nf);
	r->depth--;
	r->in = mark;
}

static void trender_parent(struct trender *r, const struct tmpl *t, size_t i,
                           const struct tframe *f)
{
	const struct tnode *n = &t->nodes[i];
	const struct tmpl *pt;
	struct toverride *ovr;
	size_t j, mark = r->nov;

	pt = trender_load(r, t, n);
	if (pt == NULL)
		return;
	/* The blocks directly inside the tag override the layout's; other
	 * text inside it is ignored, as the spec says. */
	for (j = i + 1; j < n->end;) {
		const struct tnode *b = &t->nodes[j];

		if (b->kind == TN_BLOCK) {
			ovr =
			    tmpl_grow(r->ovr, &r->capov, r->nov, sizeof(*ovr));
			if (ovr == NULL) {
				trender_oom(r);
				return;
			}
			r->ovr = ovr;
			ovr[r->nov].t = t;
			ovr[r->nov].i = j;
			ovr[r->nov].busy = false;
			r->nov++;
		}
		j = tmpl_has_body(b->kind) ? b->end : j + 1;
	}
	trender_include(r, t, i, pt, f);
	r->nov = mark;
}

/* The indentation of the first line of block i's body, when its tag
 * stands alone so the body starts on a line of its own: the source
 * indentation a block's content is measured from. */
static const struct tnode *trender_block_line(const struct tmpl *t, size_t i)
{
	const struct tnode *n = &t->nodes[i];

	if (!n->standalone || i + 1 >= n->end ||
	    t->nodes[i + 1].kind != TN_LINE)
		return NULL;
	return &t->nodes[i + 1];
}

static void trender_block(struct trender *r, const struct tmpl *t, size_t i,
                          const struct tframe *f)
{
	const struct tnode *n = &t->nodes[i], *first, *own;
	const struct tmpl *ot;
	struct tframe nf = {0};
	size_t k, mark = r->in;

	for (k = 0; k < r->nov; k++)
		if (!r->ovr[k].busy &&
		    strcmp(r->ovr[k].t->nodes[r->ovr[k].i].name, n->name) == 0)
			break;
	if (k == r->nov) {
		trender_range(r, t, i + 1, n->end, f);
		return;
	}
	ot = r->ovr[k].t;
	first = trender_block_line(ot, r->ovr[k].i);
	if (n->standalone) {
		/* The override is indented like this block's default
		 * content, or like the tag when the default has none. */
		own = trender_block_line(t, i);
		if (own != NULL && own->len > 0)
			trender_indent(r, f, t->src + own->off, own->len, &nf);
		else
			trender_indent(r, f, t->src + n->off, n->len, &nf);
		/* An override that starts mid-line still starts indented. */
		if (first == NULL &&
		    r->ovr[k].i + 1 < ot->nodes[r->ovr[k].i].end)
			trender_put_indent(r, &nf);
	}
	nf.strip = first != NULL ? first->len : 0;
	r->ovr[k].busy = true;
	trender_range(r, ot, r->ovr[k].i + 1, ot->nodes[r->ovr[k].i].end, &nf);
	r->ovr[k].busy = false;
	r->in = mark;
}

static void trender_range(struct trender *r, const struct tmpl *t, size_t from,
                          size_t to, const struct tframe *f)
{
	const struct tmpl *save_t = r->at_t;
	const struct tnode *save_n = r->at_n;
	size_t i = from, skip;

	while (i < to && !r->stop) {
		const struct tnode *n = &t->nodes[i];

		r->at_t = t;
		r->at_n = n;
		r->work +=
		    n->kind == TN_TEXT || n->kind == TN_LINE ? 1 : 1 + r->ns;
		if (r->work > tmpl_defaults.max_work) {
			trender_too_long(r);
			break;
		}
		switch (n->kind) {
		case TN_TEXT:
			trender_put(r, t->src + n->off, n->len);
			i++;
			break;
		case TN_LINE:
			trender_put_indent(r, f);
			skip = f->strip < n->len ? f->strip : n->len;
			trender_put(r, t->src + n->off + skip, n->len - skip);
			i++;
			break;
		case TN_VAR:
		case TN_RAW:
			trender_var(r, t, n);
			i++;
			break;
		case TN_SECTION:
		case TN_INVERTED:
			trender_section(r, t, i, f);
			i = n->end;
			break;
		case TN_PARTIAL: {
			const struct tmpl *pt = trender_load(r, t, n);

			if (pt != NULL)
				trender_include(r, t, i, pt, f);
			i++;
		} break;
		case TN_PARENT:
			trender_parent(r, t, i, f);
			i = n->end;
			break;
		case TN_BLOCK:
			trender_block(r, t, i, f);
			i = n->end;
			break;
		}
	}
	r->at_t = save_t;
	r->at_n = save_n;
}

int tmpl_render(const struct tmpl *t, const struct tval *ctx,
                const struct tmpl_opts *opts, char **out, size_t *outlen,
                struct diag *d)
{
	static const struct tmpl_opts none;
	struct trender r = {0};
	struct tframe top = {0};
	size_t i;
	int rc = -1;

	if (out != NULL)
		*out = NULL;
	if (outlen != NULL)
		*outlen = 0;
	if (t == NULL || out == NULL) {
		diag_add(d, NULL, 0, 0,
		         "tmpl_render needs a template and a place for the "
		         "output");
		return -1;
	}
	if (opts == NULL)
		opts = &none;
	r.escape = opts->escape;
	r.strict = opts->strict;
	r.max_depth = opts->max_partial_depth != 0
	                  ? opts->max_partial_depth
	                  : tmpl_defaults.partial_depth;
	r.max_output =
	    opts->max_output != 0 ? opts->max_output : tmpl_defaults.max_output;
	if (r.max_output == SIZE_MAX)
		r.max_output--; /* room for the terminating NUL */
	r.loader = opts->partials;
	r.d = d;
	r.at_t = t;
	if (ctx != NULL)
		trender_push(&r, ctx);
	trender_range(&r, t, 0, t->n, &top);
	if (r.failed)
		goto fail;
	if (r.out == NULL) {
		r.out = malloc(1);
		if (r.out == NULL) {
			trender_oom(&r);
			goto fail;
		}
	}
	r.out[r.n] = '\0';
	*out = r.out;
	r.out = NULL;
	if (outlen != NULL)
		*outlen = r.n;
	rc = 0;
fail:
	for (i = 0; i < r.np; i++) {
		free(r.parts[i].name);
		if (r.parts[i].owned)
			tmpl_free((struct tmpl *)r.parts[i].t);
	}
	free(r.parts);
	free(r.reported);
	free(r.ovr);
	free(r.stack);
	free(r.ibuf);
	free(r.out);
	return rc;
}
