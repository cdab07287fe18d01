/*
 * yaml_doc — loads one YAML file into a tree whose every node knows its
 * file:line:column. Built over libyaml's event parser (not its document
 * loader) so that limits are enforced while parsing: the nesting depth and
 * node count stop a hostile file early, aliases are refused where they
 * appear (a billion-laughs file fails at its first alias), and duplicate
 * keys are found when their mapping closes. All input files of herald pass
 * through here; see yaml_doc.h for the contract.
 */
#include "herald/yaml_doc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "herald/file.h"

/*
 * Defaults. 8 MiB holds a list of tens of thousands of journalists; a
 * larger file is more likely a mistake (a mailbox export, a binary) than a
 * list. 64 levels is far deeper than any herald file needs (they use four
 * or five) and keeps every recursive walk of the tree shallow. A node per
 * 8 bytes of an 8 MiB file bounds memory to a small multiple of the file.
 */
const struct ydoc_limits ydoc_default_limits = {
    .max_bytes = 8u << 20,
    .max_depth = 64,
    .max_nodes = 1000000,
};

const char *ydoc_kind_name(enum ydoc_kind k)
{
	switch (k) {
	case YDOC_SCALAR:
		return "scalar";
	case YDOC_SEQUENCE:
		return "sequence";
	case YDOC_MAPPING:
		return "mapping";
	}
	return "node";
}

void ydoc_error(struct diag *d, const struct ydoc_node *n, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (n != NULL)
		diag_add(d, n->file, n->line, n->col, "%s",
		         msg ? msg : "(out of memory)");
	else
		diag_add(d, NULL, 0, 0, "%s", msg ? msg : "(out of memory)");
	free(msg);
}

static void node_free(struct ydoc_node *n)
{
	if (n == NULL)
		return;
	free(n->str);
	free(n->tag);
	for (size_t i = 0; i < n->nitems; i++)
		node_free(n->items[i]);
	free(n->items);
	for (size_t i = 0; i < n->npairs; i++) {
		node_free(n->pairs[i].key);
		node_free(n->pairs[i].value);
	}
	free(n->pairs);
	free(n);
}

void ydoc_free(struct ydoc *doc)
{
	if (doc == NULL)
		return;
	node_free(doc->root);
	free(doc->file);
	free(doc);
}

/* Line and column (1-based, column in characters) of byte offset off. */
static void ydoc_position(const char *buf, size_t len, size_t off,
                          unsigned *line, unsigned *col)
{
	unsigned l = 1, c = 1;

	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch == '\n' ||
		    (ch == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))) {
			l++;
			c = 1;
		} else if (ch != '\r' && (ch & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

/*
 * Offset of the first byte that is not well-formed UTF-8 (overlong forms,
 * surrogates and code points above U+10FFFF included), or len when all is.
 */
static size_t ydoc_utf8_invalid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n + 1;
	}
	return len;
}

struct ydoc_builder {
	struct ydoc *doc;
	const struct ydoc_limits *lim;
	struct diag *d;
	struct ydoc_node **stack;
	unsigned depth;
	unsigned documents;
};

static struct ydoc_node *ydoc_node_new(struct ydoc_builder *b,
                                       enum ydoc_kind kind,
                                       const yaml_mark_t *mark)
{
	struct ydoc_node *n;

	if (b->doc->nodes >= b->lim->max_nodes) {
		diag_add(b->d, b->doc->file, (unsigned)mark->line + 1,
		         (unsigned)mark->column + 1,
		         "more than %zu YAML nodes: the file is larger than "
		         "herald accepts",
		         b->lim->max_nodes);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		diag_add(b->d, b->doc->file, (unsigned)mark->line + 1,
		         (unsigned)mark->column + 1, "out of memory");
		return NULL;
	}
	n->kind = kind;
	n->file = b->doc->file;
	n->line = (unsigned)mark->line + 1;
	n->col = (unsigned)mark->column + 1;
	b->doc->nodes++;
	return n;
}

static int ydoc_grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *nv;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	nv = realloc(*v, ncap * size);
	if (nv == NULL)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

/*
 * Attach a finished or newly opened node to its parent (or make it the
 * root). Takes ownership of n in every case.
 */
static int ydoc_attach(struct ydoc_builder *b, struct ydoc_node *n)
{
	struct ydoc_node *p;

	if (b->depth == 0) {
		b->doc->root = n;
		return 0;
	}
	p = b->stack[b->depth - 1];
	if (p->kind == YDOC_SEQUENCE) {
		if (ydoc_grow((void **)&p->items, &p->cap, p->nitems,
		              sizeof(*p->items)) < 0)
			goto oom;
		p->items[p->nitems++] = n;
		return 0;
	}
	/* mapping: a key when the last pair is complete, else its value */
	if (p->npairs > 0 && p->pairs[p->npairs - 1].value == NULL) {
		p->pairs[p->npairs - 1].value = n;
		return 0;
	}
	if (n->kind != YDOC_SCALAR) {
		diag_add(b->d, n->file, n->line, n->col,
		         "a mapping key must be a plain value, not a %s",
		         ydoc_kind_name(n->kind));
		node_free(n);
		return -1;
	}
	if (ydoc_grow((void **)&p->pairs, &p->cap, p->npairs,
	              sizeof(*p->pairs)) < 0)
		goto oom;
	p->pairs[p->npairs].key = n;
	p->pairs[p->npairs].value = NULL;
	p->npairs++;
	return 0;
oom:
	diag_add(b->d, n->file, n->line, n->col, "out of memory");
	node_free(n);
	return -1;
}

static int ydoc_key_cmp(const struct ydoc_node *a, const struct ydoc_node *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->str, b->str, n);

	if (c != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

static int ydoc_idx_cmp(const void *pa, const void *pb, void *arg)
{
	const struct ydoc_pair *pairs = arg;
	size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
	int c = ydoc_key_cmp(pairs[a].key, pairs[b].key);

	if (c != 0)
		return c;
	return a < b ? -1 : a > b;
}

/* A mapping closed: refuse duplicate keys, naming both places. */
static int ydoc_check_duplicates(struct ydoc_builder *b,
                                 const struct ydoc_node *m)
{
	size_t *idx;
	int rc = 0;

	if (m->npairs < 2)
		return 0;
	if (m->npairs <= 8) {
		for (size_t i = 1; i < m->npairs; i++)
			for (size_t j = 0; j < i; j++)
				if (ydoc_key_cmp(m->pairs[i].key,
				                 m->pairs[j].key) == 0)
					goto dup_small;
		return 0;
	}
	idx = malloc(m->npairs * sizeof(*idx));
	if (idx == NULL) {
		diag_add(b->d, m->file, m->line, m->col, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < m->npairs; i++)
		idx[i] = i;
	qsort_r(idx, m->npairs, sizeof(*idx), ydoc_idx_cmp, m->pairs);
	for (size_t i = 1; i < m->npairs; i++) {
		const struct ydoc_node *first = m->pairs[idx[i - 1]].key;
		const struct ydoc_node *again = m->pairs[idx[i]].key;
		if (ydoc_key_cmp(first, again) == 0) {
			diag_add(b->d, again->file, again->line, again->col,
			         "duplicate key \"%s\" (first at line %u, "
			         "column %u): each key may appear once",
			         again->str, first->line, first->col);
			rc = -1;
			break;
		}
	}
	free(idx);
	return rc;
dup_small:
	for (size_t i = 1; i < m->npairs; i++)
		for (size_t j = 0; j < i; j++) {
			const struct ydoc_node *first = m->pairs[j].key;
			const struct ydoc_node *again = m->pairs[i].key;
			if (ydoc_key_cmp(first, again) != 0)
				continue;
			diag_add(b->d, again->file, again->line, again->col,
			         "duplicate key \"%s\" (first at line %u, "
			         "column %u): each key may appear once",
			         again->str, first->line, first->col);
			return -1;
		}
	return -1;
}

static int ydoc_event(struct ydoc_builder *b, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	struct ydoc_node *n;
	const unsigned char *anchor = NULL;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->documents > 1) {
			diag_add(b->d, b->doc->file, (unsigned)m->line + 1,
			         (unsigned)m->column + 1,
			         "a second YAML document: herald expects one "
			         "document per file");
			return -1;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		diag_add(b->d, b->doc->file, (unsigned)m->line + 1,
		         (unsigned)m->column + 1,
		         "alias *%s: herald does not accept YAML anchors and "
		         "aliases; write the value out where it is used",
		         (const char *)ev->data.alias.anchor);
		return -1;
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth == 0)
			return 0;
		n = b->stack[--b->depth];
		if (n->kind == YDOC_MAPPING)
			return ydoc_check_duplicates(b, n);
		return 0;
	default:
		return 0;
	}
	if (anchor != NULL) {
		diag_add(b->d, b->doc->file, (unsigned)m->line + 1,
		         (unsigned)m->column + 1,
		         "anchor &%s: herald does not accept YAML anchors and "
		         "aliases; write the value out where it is used",
		         (const char *)anchor);
		return -1;
	}
	if (ev->type == YAML_SCALAR_EVENT) {
		const unsigned char *tag = ev->data.scalar.tag;
		n = ydoc_node_new(b, YDOC_SCALAR, m);
		if (n == NULL)
			return -1;
		n->len = ev->data.scalar.length;
		n->str = malloc(n->len + 1);
		if (n->str == NULL)
			goto oom;
		memcpy(n->str, ev->data.scalar.value, n->len);
		n->str[n->len] = '\0';
		n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
		if (tag != NULL && (n->tag = strdup((const char *)tag)) == NULL)
			goto oom;
		return ydoc_attach(b, n);
	}
	if (b->depth >= b->lim->max_depth) {
		diag_add(b->d, b->doc->file, (unsigned)m->line + 1,
		         (unsigned)m->column + 1,
		         "nesting deeper than %u levels: herald files are "
		         "never this deep",
		         b->lim->max_depth);
		return -1;
	}
	n = ydoc_node_new(b,
	                  ev->type == YAML_MAPPING_START_EVENT ? YDOC_MAPPING
	                                                       : YDOC_SEQUENCE,
	                  m);
	if (n == NULL)
		return -1;
	if (ydoc_attach(b, n) < 0)
		return -1;
	b->stack[b->depth++] = n;
	return 0;
oom:
	diag_add(b->d, b->doc->file, n->line, n->col, "out of memory");
	node_free(n);
	return -1;
}

/* What a person should do about libyaml's most common complaints. */
static const struct {
	const char *problem;
	const char *hint;
} ydoc_hints[] = {
    {"mapping values are not allowed",
     "check the indentation, or quote a value that contains \": \""},
    {"found a tab character", "indent with spaces, not tabs"},
    {"found character that cannot start any token",
     "quote a value that starts with @, ` or %"},
    {"did not find expected key",
     "expected a \"key: value\" line at this indentation"},
    {"found unexpected end of stream", "a quote or bracket is not closed"},
    {"did not find expected ',' or ']'", "a [ list is not closed"},
    {"did not find expected ',' or '}'", "a { mapping is not closed"},
};

static const char *ydoc_hint(const char *problem)
{
	for (size_t i = 0; i < sizeof(ydoc_hints) / sizeof(*ydoc_hints); i++)
		if (strncmp(problem, ydoc_hints[i].problem,
		            strlen(ydoc_hints[i].problem)) == 0)
			return ydoc_hints[i].hint;
	return NULL;
}

static void ydoc_parser_error(struct ydoc_builder *b, yaml_parser_t *p,
                              const char *buf, size_t len)
{
	unsigned line, col;
	const char *problem = p->problem ? p->problem : "malformed YAML";
	const char *hint = ydoc_hint(problem);

	if (p->error == YAML_READER_ERROR) {
		ydoc_position(buf, len, p->problem_offset, &line, &col);
		diag_add(b->d, b->doc->file, line, col, "%s (byte 0x%02x)",
		         problem, (unsigned)p->problem_value & 0xFFu);
		return;
	}
	if (p->error == YAML_MEMORY_ERROR) {
		diag_add(b->d, b->doc->file, 0, 0, "out of memory");
		return;
	}
	line = (unsigned)p->problem_mark.line + 1;
	col = (unsigned)p->problem_mark.column + 1;
	if (p->context != NULL)
		diag_add(b->d, b->doc->file, line, col,
		         "%s %s (started at line %u, column %u)%s%s", problem,
		         p->context, (unsigned)p->context_mark.line + 1,
		         (unsigned)p->context_mark.column + 1, hint ? ": " : "",
		         hint ? hint : "");
	else
		diag_add(b->d, b->doc->file, line, col, "%s%s%s", problem,
		         hint ? ": " : "", hint ? hint : "");
}

struct ydoc *ydoc_load_mem(const char *name, const char *buf, size_t len,
                           const struct ydoc_limits *limits, struct diag *d)
{
	struct ydoc_builder b = {0};
	yaml_parser_t parser;
	yaml_event_t ev;
	size_t bad;
	int done = 0, parser_ready = 0;

	if (limits == NULL)
		limits = &ydoc_default_limits;
	b.lim = limits;
	b.d = d;
	b.doc = calloc(1, sizeof(*b.doc));
	if (b.doc == NULL || (b.doc->file = strdup(name)) == NULL) {
		diag_add(d, name, 0, 0, "out of memory");
		goto fail;
	}
	if (len > limits->max_bytes) {
		diag_add(d, name, 0, 0,
		         "the file is %zu bytes, more than the limit of %zu",
		         len, limits->max_bytes);
		goto fail;
	}
	bad = ydoc_utf8_invalid((const unsigned char *)buf, len);
	if (bad < len) {
		unsigned line, col;
		ydoc_position(buf, len, bad, &line, &col);
		diag_add(d, name, line, col,
		         "invalid UTF-8 (byte 0x%02x): herald reads UTF-8 "
		         "text only",
		         (unsigned char)buf[bad]);
		goto fail;
	}
	b.stack = calloc(limits->max_depth + 1, sizeof(*b.stack));
	if (b.stack == NULL || !yaml_parser_initialize(&parser)) {
		diag_add(d, name, 0, 0, "out of memory");
		goto fail;
	}
	parser_ready = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			ydoc_parser_error(&b, &parser, buf, len);
			goto fail;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		if (ydoc_event(&b, &ev) < 0) {
			yaml_event_delete(&ev);
			goto fail;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	free(b.stack);
	return b.doc;
fail:
	if (parser_ready)
		yaml_parser_delete(&parser);
	free(b.stack);
	ydoc_free(b.doc);
	return NULL;
}

struct ydoc *ydoc_load_file(const char *path, const struct ydoc_limits *limits,
                            struct diag *d)
{
	struct ydoc *doc;
	char *buf;
	size_t len;

	if (limits == NULL)
		limits = &ydoc_default_limits;
	if (file_read(path, limits->max_bytes, &buf, &len, d) < 0)
		return NULL;
	doc = ydoc_load_mem(path, buf, len, limits, d);
	free(buf);
	return doc;
}

const struct ydoc_node *ydoc_get(const struct ydoc_node *n, const char *key)
{
	size_t klen;

	if (n == NULL || n->kind != YDOC_MAPPING)
		return NULL;
	klen = strlen(key);
	for (size_t i = 0; i < n->npairs; i++) {
		const struct ydoc_node *k = n->pairs[i].key;
		if (k->len == klen && memcmp(k->str, key, klen) == 0)
			return n->pairs[i].value;
	}
	return NULL;
}

bool ydoc_is_null(const struct ydoc_node *n)
{
	static const char *const spellings[] = {"", "~", "null", "Null",
	                                        "NULL"};

	if (n == NULL || n->kind != YDOC_SCALAR || n->quoted || n->tag)
		return false;
	for (size_t i = 0; i < sizeof(spellings) / sizeof(*spellings); i++)
		if (strcmp(n->str, spellings[i]) == 0)
			return true;
	return false;
}

int ydoc_bool(const struct ydoc_node *n, bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE"};
	static const char *const no[] = {"false", "False", "FALSE"};

	if (n == NULL || n->kind != YDOC_SCALAR || n->quoted)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(n->str, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(n->str, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}
