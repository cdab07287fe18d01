/*
 * yaml_doc — every YAML input file herald reads (config, lists, releases,
 * and the Mustache spec in tests) is loaded here, over libyaml's event
 * parser, into a tree of mapping, sequence and scalar nodes. Every node
 * knows its file, line and column (1-based), so any later validation can
 * name the place of a problem.
 *
 * Scalars are kept exactly as written: there is no type resolution
 * (`version: 2.10` stays the string "2.10"); callers decide what a scalar
 * means, with the helpers below. Whether a scalar was plain or quoted is
 * kept, so `true` and "true" can be told apart.
 *
 * Files are read in chunks; invalid UTF-8 and the characters YAML does
 * not allow are refused as they are read, naming their place.
 *
 * Input is untrusted. Limits: file size, nesting depth, node count. Aliases
 * are rejected (no billion laughs), duplicate mapping keys and non-scalar
 * keys are errors, invalid UTF-8 is an error naming the byte's place, and a
 * file holds at most one document.
 *
 * Errors go to a struct diag. Returns 0 / pointer on success, -1 / NULL on
 * failure; library code, so out-of-memory is an error, never an abort.
 */
#ifndef HERALD_YAML_DOC_H
#define HERALD_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"

enum ydoc_kind { YDOC_SCALAR, YDOC_SEQUENCE, YDOC_MAPPING };

struct ydoc_node;

struct ydoc_pair {
	struct ydoc_node *key; /* always a scalar */
	struct ydoc_node *value;
};

struct ydoc_node {
	enum ydoc_kind kind;
	const char *file; /* owned by the ydoc */
	unsigned line, col;
	/* scalar */
	char *str; /* NUL-terminated; may contain NUL only if len says so */
	size_t len;
	bool quoted; /* single-, double-quoted, literal or folded */
	char *tag;   /* explicit tag as written, or NULL */
	/* sequence */
	struct ydoc_node **items;
	size_t nitems;
	/* mapping, in file order */
	struct ydoc_pair *pairs;
	size_t npairs;
	size_t cap; /* allocated items or pairs (private to yaml_doc) */
};

struct ydoc {
	char *file;
	struct ydoc_node *root; /* NULL for an empty file */
	size_t nodes;
};

struct ydoc_limits {
	size_t max_bytes;   /* default 8 MiB */
	unsigned max_depth; /* default 64 */
	size_t max_nodes;   /* default 1,000,000 */
};

/* The defaults (see yaml_doc.c for why those values). */
extern const struct ydoc_limits ydoc_default_limits;

/* Load the file at path. limits may be NULL for the defaults. On failure
 * returns NULL and adds one error naming file:line:column to d. The caller
 * frees the result with ydoc_free. */
struct ydoc *ydoc_load_file(const char *path, const struct ydoc_limits *limits,
                            struct diag *d);

/* Same, from memory; name is used as the file name in positions. */
struct ydoc *ydoc_load_mem(const char *name, const char *buf, size_t len,
                           const struct ydoc_limits *limits, struct diag *d);

void ydoc_free(struct ydoc *doc);

/*
 * Streaming: a file whose root mapping holds one long sequence (a list of
 * a million journalists) is read without keeping that sequence. The
 * sequence under the root mapping's key `key` (or the root itself, when it
 * is a sequence) is handed out one item at a time; everything else is
 * built as ydoc_load_file builds it. The file is
 * read in chunks, so memory holds one item, not the file. Limits:
 * max_bytes for the file, max_depth, max_nodes for one item together with
 * the rest of the tree, and at most max_items items.
 */
struct ydoc_stream;

/* Open path for streaming the sequence at the root key `key`. NULL after
 * adding the reason to d (the file cannot be opened, or is too large). */
struct ydoc_stream *ydoc_stream_open(const char *path,
                                     const struct ydoc_limits *limits,
                                     const char *key, size_t max_items,
                                     struct diag *d);

/* The next item of the sequence: 1 and *item (the caller frees it with
 * ydoc_node_free); 0 when the document has ended (ydoc_stream_doc holds
 * the rest); -1 after adding the problem to d (the stream is then done:
 * a YAML error ends the reading, as it ends ydoc_load_file). */
int ydoc_stream_next(struct ydoc_stream *s, struct ydoc_node **item);

/* After ydoc_stream_next returned 0: the document without the streamed
 * items (the sequence is there, empty). Owned by the stream. */
const struct ydoc *ydoc_stream_doc(const struct ydoc_stream *s);

/* Items handed out so far; bytes read so far and the file's size (0 when
 * not known), for progress reports. */
size_t ydoc_stream_items(const struct ydoc_stream *s);
size_t ydoc_stream_bytes(const struct ydoc_stream *s);
size_t ydoc_stream_size(const struct ydoc_stream *s);

/* Accepts NULL. */
void ydoc_stream_close(struct ydoc_stream *s);

/* Free a node and everything below it (an item from ydoc_stream_next). */
void ydoc_node_free(struct ydoc_node *n);

/* The value for key in a mapping node, or NULL (also when n is not a
 * mapping). */
const struct ydoc_node *ydoc_get(const struct ydoc_node *n, const char *key);

/* A plain (unquoted) scalar spelling null: "", "~", "null", "Null", "NULL".
 * The empty plain scalar is what `key:` with no value gives. */
bool ydoc_is_null(const struct ydoc_node *n);

/* A plain scalar spelling a boolean (true/false in YAML 1.2 core schema
 * spellings). Returns 0 and sets *out, or -1 when n is not one. */
int ydoc_bool(const struct ydoc_node *n, bool *out);

/* "mapping", "sequence" or "scalar", for messages. */
const char *ydoc_kind_name(enum ydoc_kind k);

/* Add an error at node n's place (or the document's file when n is NULL). */
void ydoc_error(struct diag *d, const struct ydoc_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
