/*
 * fuzz_yaml_doc — ydoc_load_mem on any bytes, with limits small enough
 * that the fuzzer reaches them. A loaded tree must keep the promises of
 * yaml_doc.h: within the node and depth limits, every node placed at a
 * 1-based position in the named file, mapping keys scalars and unique,
 * scalars NUL-terminated at their length.
 */
#include <string.h>

#include "fuzz.h"
#include "herald/diag.h"
#include "herald/yaml_doc.h"

static const struct ydoc_limits limits = {
    .max_bytes = 64 * 1024,
    .max_depth = 16,
    .max_nodes = 5000,
};

static size_t walk(const struct ydoc_node *n, unsigned depth)
{
	size_t count = 1;
	bool b;

	FUZZ_CHECK(n != NULL, "no node");
	FUZZ_CHECK(n->line >= 1 && n->col >= 1, "a node without a place");
	FUZZ_CHECK(strcmp(n->file, "fuzz.yaml") == 0, "a node in another file");
	switch (n->kind) {
	case YDOC_SCALAR:
		FUZZ_CHECK(n->str != NULL && n->str[n->len] == '\0',
		           "a scalar not NUL-terminated at its length");
		(void)ydoc_is_null(n);
		(void)ydoc_bool(n, &b);
		break;
	case YDOC_SEQUENCE:
		FUZZ_CHECK(depth < limits.max_depth, "nested past max_depth");
		for (size_t i = 0; i < n->nitems; i++)
			count += walk(n->items[i], depth + 1);
		break;
	case YDOC_MAPPING:
		FUZZ_CHECK(depth < limits.max_depth, "nested past max_depth");
		for (size_t i = 0; i < n->npairs; i++) {
			const struct ydoc_node *k = n->pairs[i].key;

			FUZZ_CHECK(k->kind == YDOC_SCALAR,
			           "a key not a scalar");
			for (size_t j = 0; j < i; j++) {
				const struct ydoc_node *o = n->pairs[j].key;

				FUZZ_CHECK(o->len != k->len ||
				               memcmp(o->str, k->str, k->len) !=
				                   0,
				           "a duplicate key");
			}
			count += walk(k, depth + 1);
			count += walk(n->pairs[i].value, depth + 1);
			/* the lookup finds the first of its key */
			if (memchr(k->str, '\0', k->len) == NULL)
				FUZZ_CHECK(ydoc_get(n, k->str) ==
				               n->pairs[i].value,
				           "ydoc_get misses a key");
		}
		break;
	}
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diag d = {0};
	struct ydoc *doc =
	    ydoc_load_mem("fuzz.yaml", (const char *)data, size, &limits, &d);

	if (doc == NULL) {
		FUZZ_CHECK(d.errors > 0, "failed without saying why");
	} else {
		FUZZ_CHECK(d.errors == 0, "an error, and a document anyway");
		if (doc->root != NULL)
			FUZZ_CHECK(walk(doc->root, 0) <= limits.max_nodes,
			           "more nodes than max_nodes");
		ydoc_free(doc);
	}
	diag_clear(&d);
	return 0;
}
