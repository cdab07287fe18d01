/*
 * yaml_doc — loads one YAML file into a tree whose every node knows its
 * file:line:column. Built over libyaml's event parser (not its document
 * loader) so that limits are enforced while parsing: the nesting depth and
 * node count stop a hostile file early, aliases are refused where they
 * appear (a billion-laughs file fails at its first alias), and duplicate
 * keys are found when their mapping closes. All input files of herald pass
 * through here; see yaml_doc.h for the contract.
 *
 * Input comes through one reader, in chunks, whether from a file or from
 * memory: it refuses invalid UTF-8 and the characters YAML does not allow
 * before libyaml sees them, counting lines and characters as it goes, so
 * every refusal names its place without the whole file in memory. A
 * streamed sequence (ydoc_stream_open) hands out each item as it closes
 * instead of attaching it, so a list of a million entries costs one
 * entry's nodes.
 */
#include "herald/yaml_doc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>


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

/* A file is read this much at a time: large enough that reading costs
 * nothing next to parsing, small enough to be nothing next to a list. */
#define YDOC_CHUNK 65536

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

void ydoc_node_free(struct ydoc_node *n)
{
	node_free(n);
}

void ydoc_free(struct ydoc *doc)
{
	if (doc == NULL)
		return;
	node_free(doc->root);
	free(doc->file);
	free(doc);
}

/*
 * The reader: hands libyaml the input in chunks after checking it. It
 * counts lines and characters (1-based; a character is a byte that does
 * not continue a UTF-8 sequence; LF, CR LF and a lone CR end a line) so a
 * refused byte is named by line and column.
 */
struct ydoc_reader {
	int fd;                   /* -1: the input is in memory */
	const unsigned char *mem; /* memory input */
	size_t memlen;
	const char *name; /* the file's name, for messages */
	struct diag *d;
	size_t max_bytes;
	size_t total;       /* bytes taken from the file so far */
	size_t size;        /* the file's size when known, else 0 */
	unsigned char *buf; /* YDOC_CHUNK bytes (file input) */
	const unsigned char *p; /* checked bytes not yet handed out */
	size_t avail;
	size_t tail;    /* bytes of an unfinished character after them */
	unsigned line, col; /* the place of the next byte to check */
	bool cr;            /* the last byte checked was a CR */
	bool eof;
	bool failed; /* the reader reported a problem: libyaml's "input
	              * error" that follows is not reported again */
};

static void ydoc_reader_advance(struct ydoc_reader *r, unsigned char c)
{
	if (r->cr && c != '\n') {
		r->line++;
		r->col = 1;
	}
	r->cr = false;
	if (c == '\n') {
		r->line++;
		r->col = 1;
	} else if (c == '\r') {
		r->cr = true;
	} else if ((c & 0xC0) != 0x80) {
		r->col++;
	}
}

/* Report a refused byte at the reader's place. */
static int ydoc_reader_refuse(struct ydoc_reader *r, const char *what,
                              unsigned value)
{
	unsigned line = r->line, col = r->col;

	if (r->cr) { /* a CR before it ended a line */
		line++;
		col = 1;
	}
	if (what == NULL)
		diag_add(r->d, r->name, line, col,
		         "invalid UTF-8 (byte 0x%02x): herald reads UTF-8 "
		         "text only",
		         value & 0xFFu);
	else
		diag_add(r->d, r->name, line, col, "%s (byte 0x%02x)", what,
		         value & 0xFFu);
	r->failed = true;
	return -1;
}

/*
 * Check the next n bytes of input, s: well-formed UTF-8 (no overlong
 * forms, surrogates or code points above U+10FFFF) holding only the
 * characters YAML allows (libyaml's reader would refuse the others with
 * a byte offset only). Returns how many bytes are whole characters that
 * passed; the rest is an unfinished character at the end, kept for the
 * next read unless `last`. -1 after reporting the first bad byte.
 */
static ptrdiff_t ydoc_reader_check(struct ydoc_reader *r,
                                   const unsigned char *s, size_t n,
                                   bool last)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i], lo = 0x80, hi = 0xBF;
		size_t more;
		uint32_t cp;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
			    c == 0x7F)
				return ydoc_reader_refuse(
				    r, "control characters are not allowed", c);
			ydoc_reader_advance(r, c);
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			more = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			more = 2;
			cp = c & 0x0F;
			lo = c == 0xE0 ? 0xA0 : 0x80;
			hi = c == 0xED ? 0x9F : 0xBF;
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3;
			cp = c & 0x07;
			lo = c == 0xF0 ? 0x90 : 0x80;
			hi = c == 0xF4 ? 0x8F : 0xBF;
		} else {
			return ydoc_reader_refuse(r, NULL, c);
		}
		for (size_t k = 1; k <= more; k++) {
			unsigned char b;
			if (i + k >= n) {
				if (last)
					return ydoc_reader_refuse(r, NULL, c);
				return (ptrdiff_t)i; /* the rest comes next */
			}
			b = s[i + k];
			if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
				return ydoc_reader_refuse(r, NULL, c);
			cp = (cp << 6) | (b & 0x3F);
		}
		/* C1 controls and the non-characters U+FFFE, U+FFFF */
		if ((cp >= 0x80 && cp <= 0x9F && cp != 0x85) || cp == 0xFFFE ||
		    cp == 0xFFFF)
			return ydoc_reader_refuse(
			    r, "control characters are not allowed", cp);
		ydoc_reader_advance(r, c);
		i += more + 1;
	}
	return (ptrdiff_t)n;
}

/* Make checked bytes available (or reach the end); -1 after reporting. */
static int ydoc_reader_fill(struct ydoc_reader *r)
{
	ptrdiff_t ok;
	ssize_t got;

	if (r->fd < 0) { /* memory: one check of all of it */
		r->eof = true;
		ok = ydoc_reader_check(r, r->mem, r->memlen, true);
		if (ok < 0)
			return -1;
		r->p = r->mem;
		r->avail = r->memlen;
		return 0;
	}
	/* the unfinished character of the last chunk goes first */
	if (r->tail > 0)
		memmove(r->buf, r->p + r->avail, r->tail);
	do
		got = read(r->fd, r->buf + r->tail, YDOC_CHUNK - r->tail);
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		diag_add(r->d, r->name, 0, 0, "cannot read: %s",
		         strerror(errno));
		r->failed = true;
		return -1;
	}
	r->total += (size_t)got;
	if (r->total > r->max_bytes) {
		diag_add(r->d, r->name, 0, 0,
		         "the file is more than the limit of %zu bytes",
		         r->max_bytes);
		r->failed = true;
		return -1;
	}
	r->eof = got == 0;
	ok = ydoc_reader_check(r, r->buf, r->tail + (size_t)got, r->eof);
	if (ok < 0)
		return -1;
	r->p = r->buf;
	r->avail = (size_t)ok;
	r->tail = r->tail + (size_t)got - (size_t)ok;
	return 0;
}

/* libyaml's read handler: 1 with *got bytes (0 at the end), 0 on error. */
static int ydoc_reader_read(void *data, unsigned char *out, size_t size,
                            size_t *got)
{
	struct ydoc_reader *r = data;

	*got = 0;
	while (r->avail == 0 && !r->eof)
		if (ydoc_reader_fill(r) < 0)
			return 0;
	if (size > r->avail)
		size = r->avail;
	memcpy(out, r->p, size);
	r->p += size;
	r->avail -= size;
	*got = size;
	return 1;
}

struct ydoc_builder {
	struct ydoc *doc;
	const struct ydoc_limits *lim;
	struct diag *d;
	struct ydoc_node **stack;
	unsigned depth;
	unsigned documents;
	/* streaming: the root mapping's key whose sequence is handed out
	 * item by item (NULL: none), that sequence once open, the item being
	 * built, a finished item not yet handed out */
	const char *key;
	struct ydoc_node *seq;
	struct ydoc_node *item;
	struct ydoc_node *ready;
	size_t item_nodes; /* doc->nodes before the item began */
	size_t items, max_items;
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
	if (p == b->seq) {
		/* a streamed item: kept aside, handed out when it closes */
		if (b->items >= b->max_items) {
			diag_add(b->d, n->file, n->line, n->col,
			         "more than %zu entries: the list is longer "
			         "than herald accepts",
			         b->max_items);
			node_free(n);
			return -1;
		}
		b->items++;
		b->item_nodes = b->doc->nodes - 1;
		if (n->kind == YDOC_SCALAR)
			b->ready = n;
		else
			b->item = n;
		return 0;
	}
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
	case YAML_MAPPING_END_EVENT: {
		int rc = 0;
		if (b->depth == 0)
			return 0;
		n = b->stack[--b->depth];
		if (n->kind == YDOC_MAPPING)
			rc = ydoc_check_duplicates(b, n);
		if (n == b->item) {
			b->item = NULL;
			if (rc == 0)
				b->ready = n;
			else
				node_free(n);
		}
		return rc;
	}
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
	/* the sequence to stream: the value of `key` in the root mapping;
	 * or the root, when it is a sequence (a list without its key: the
	 * caller says so once it is read, in as little memory) */
	if (b->key != NULL && b->seq == NULL && n->kind == YDOC_SEQUENCE &&
	    b->depth == 1)
		b->seq = n;
	if (b->key != NULL && b->seq == NULL && n->kind == YDOC_SEQUENCE &&
	    b->depth == 2 && b->stack[0] == b->doc->root &&
	    b->doc->root->kind == YDOC_MAPPING) {
		const struct ydoc_pair *last =
		    &b->doc->root->pairs[b->doc->root->npairs - 1];
		if (last->value == n && strcmp(last->key->str, b->key) == 0)
			b->seq = n;
	}
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

static void ydoc_parser_error(struct ydoc_builder *b, yaml_parser_t *p)
{
	unsigned line, col;
	const char *problem = p->problem ? p->problem : "malformed YAML";
	const char *hint = ydoc_hint(problem);

	if (p->error == YAML_READER_ERROR) {
		/* the reader refuses what libyaml's would, with the place;
		 * this is only reached if the two ever disagree */
		diag_add(b->d, b->doc->file, 0, 0, "%s at byte %zu", problem,
		         p->problem_offset + 1);
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

struct ydoc_stream {
	struct ydoc_builder b;
	struct ydoc_reader r;
	yaml_parser_t parser;
	bool parser_ready;
	bool done;   /* the stream ended */
	bool failed; /* a problem was reported */
};

void ydoc_stream_close(struct ydoc_stream *s)
{
	if (s == NULL)
		return;
	if (s->parser_ready)
		yaml_parser_delete(&s->parser);
	if (s->r.fd >= 0)
		close(s->r.fd);
	free(s->r.buf);
	node_free(s->b.item);
	node_free(s->b.ready);
	free(s->b.stack);
	ydoc_free(s->b.doc);
	free(s);
}

/* A stream over fd (a file; -1 for memory input set up by the caller). */
static struct ydoc_stream *ydoc_stream_new(const char *name, int fd,
                                           const struct ydoc_limits *limits,
                                           const char *key, size_t max_items,
                                           struct diag *d)
{
	struct ydoc_stream *s = calloc(1, sizeof(*s));

	if (limits == NULL)
		limits = &ydoc_default_limits;
	if (s == NULL) {
		if (fd >= 0)
			close(fd);
		diag_add(d, name, 0, 0, "out of memory");
		return NULL;
	}
	s->r.fd = fd;
	s->r.d = d;
	s->r.max_bytes = limits->max_bytes;
	s->r.line = 1;
	s->r.col = 1;
	s->b.lim = limits;
	s->b.d = d;
	s->b.key = key;
	s->b.max_items = max_items;
	s->b.doc = calloc(1, sizeof(*s->b.doc));
	if (s->b.doc == NULL || (s->b.doc->file = strdup(name)) == NULL ||
	    (fd >= 0 && (s->r.buf = malloc(YDOC_CHUNK)) == NULL) ||
	    (s->b.stack = calloc(limits->max_depth + 1,
	                         sizeof(*s->b.stack))) == NULL ||
	    !yaml_parser_initialize(&s->parser)) {
		diag_add(d, name, 0, 0, "out of memory");
		ydoc_stream_close(s);
		return NULL;
	}
	s->parser_ready = true;
	s->r.name = s->b.doc->file;
	yaml_parser_set_input(&s->parser, ydoc_reader_read, &s->r);
	yaml_parser_set_encoding(&s->parser, YAML_UTF8_ENCODING);
	return s;
}

struct ydoc_stream *ydoc_stream_open(const char *path,
                                     const struct ydoc_limits *limits,
                                     const char *key, size_t max_items,
                                     struct diag *d)
{
	struct ydoc_stream *s;
	struct stat st;
	int fd;

	if (limits == NULL)
		limits = &ydoc_default_limits;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		diag_add(d, path, 0, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		diag_add(d, path, 0, 0, "cannot stat: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		diag_add(d, path, 0, 0, "is a directory, not a file");
		close(fd);
		return NULL;
	}
	if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > limits->max_bytes) {
		diag_add(d, path, 0, 0,
		         "the file is %jd bytes, more than the limit of %zu",
		         (intmax_t)st.st_size, limits->max_bytes);
		close(fd);
		return NULL;
	}
	s = ydoc_stream_new(path, fd, limits, key, max_items, d);
	if (s != NULL && S_ISREG(st.st_mode))
		s->r.size = (size_t)st.st_size;
	return s;
}

int ydoc_stream_next(struct ydoc_stream *s, struct ydoc_node **item)
{
	yaml_event_t ev;

	*item = NULL;
	if (s->failed)
		return -1;
	for (;;) {
		if (s->b.ready != NULL) {
			/* an item handed out no longer counts against
			 * max_nodes: that limit is for one item */
			*item = s->b.ready;
			s->b.ready = NULL;
			s->b.doc->nodes = s->b.item_nodes;
			return 1;
		}
		if (s->done)
			return 0;
		if (!yaml_parser_parse(&s->parser, &ev)) {
			if (!s->r.failed)
				ydoc_parser_error(&s->b, &s->parser);
			s->failed = true;
			return -1;
		}
		s->done = ev.type == YAML_STREAM_END_EVENT;
		if (ydoc_event(&s->b, &ev) < 0) {
			yaml_event_delete(&ev);
			s->failed = true;
			return -1;
		}
		yaml_event_delete(&ev);
	}
}

const struct ydoc *ydoc_stream_doc(const struct ydoc_stream *s)
{
	return s->b.doc;
}

size_t ydoc_stream_items(const struct ydoc_stream *s)
{
	return s->b.items;
}

size_t ydoc_stream_bytes(const struct ydoc_stream *s)
{
	return s->r.fd >= 0 ? s->r.total : s->r.memlen;
}

size_t ydoc_stream_size(const struct ydoc_stream *s)
{
	return s->r.size;
}

/* Read a whole document (nothing streamed) and take it from the stream. */
static struct ydoc *ydoc_stream_take(struct ydoc_stream *s)
{
	struct ydoc_node *item;
	struct ydoc *doc = NULL;

	if (s != NULL && ydoc_stream_next(s, &item) == 0) {
		doc = s->b.doc;
		s->b.doc = NULL;
	}
	ydoc_stream_close(s);
	return doc;
}

struct ydoc *ydoc_load_mem(const char *name, const char *buf, size_t len,
                           const struct ydoc_limits *limits, struct diag *d)
{
	struct ydoc_stream *s;

	if (limits == NULL)
		limits = &ydoc_default_limits;
	if (len > limits->max_bytes) {
		diag_add(d, name, 0, 0,
		         "the file is %zu bytes, more than the limit of %zu",
		         len, limits->max_bytes);
		return NULL;
	}
	s = ydoc_stream_new(name, -1, limits, NULL, 0, d);
	if (s != NULL) {
		s->r.mem = (const unsigned char *)buf;
		s->r.memlen = len;
		s->r.size = len;
	}
	return ydoc_stream_take(s);
}

struct ydoc *ydoc_load_file(const char *path, const struct ydoc_limits *limits,
                            struct diag *d)
{
	return ydoc_stream_take(ydoc_stream_open(path, limits, NULL, 0, d));
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
