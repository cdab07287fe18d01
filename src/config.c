/*
 * config — reads herald.yaml (see config.h). Only what is configured is
 * used; a misspelt key is an error so that an operator who writes
 * "dkm:" learns of it before messages go out unsigned.
 */
#include "herald/config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/field.h"
#include "herald/file.h"
#include "herald/yaml_doc.h"

static const char *const config_keys[] = {"dkim", NULL};
static const char *const config_dkim_keys[] = {"domain", "selector", "key",
                                               NULL};

const char *config_path(const char *explicit_path)
{
	const char *env = getenv("HERALD_CONFIG");

	if (explicit_path != NULL)
		return explicit_path;
	if (env != NULL && *env != '\0')
		return env;
	if (file_exists("herald.yaml"))
		return "herald.yaml";
	return NULL;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->ndkim; i++) {
		free(c->dkim[i].domain);
		free(c->dkim[i].selector);
		free(c->dkim[i].key);
	}
	free(c->dkim);
	free(c->file);
	free(c);
}

/* path relative to the directory of file. */
static char *config_relative(const char *file, const char *path)
{
	const char *slash = strrchr(file, '/');
	char *out = NULL;

	if (path[0] == '/' || slash == NULL)
		return strdup(path);
	if (asprintf(&out, "%.*s/%s", (int)(slash - file), file, path) < 0)
		return NULL;
	return out;
}

static void config_dkim_entry(struct config *c, const struct ydoc_node *e,
                              struct diag *d)
{
	struct config_dkim *k = &c->dkim[c->ndkim];
	const struct ydoc_node *v;

	if (field_expect(e, YDOC_MAPPING, "a dkim key", d) < 0)
		return;
	c->ndkim++;
	k->file = c->file;
	k->line = e->line;
	k->col = e->col;
	field_known_keys(e, config_dkim_keys, "dkim", d);
	if ((v = field_get(e, "domain", true, d)) != NULL &&
	    field_line_check(v, "domain", 253, d) == 0)
		k->domain = field_dup(v, d);
	if ((v = field_get(e, "selector", true, d)) != NULL &&
	    field_line_check(v, "selector", 63, d) == 0)
		k->selector = field_dup(v, d);
	if ((v = field_get(e, "key", true, d)) != NULL &&
	    field_line_check(v, "key", 4096, d) == 0) {
		k->key = config_relative(c->file, v->str);
		if (k->key == NULL)
			ydoc_error(d, v, "out of memory");
	}
}

struct config *config_load(const char *path, struct diag *d)
{
	struct config *c = calloc(1, sizeof(*c));
	struct ydoc *doc = NULL;
	const struct ydoc_node *n;
	size_t errors = d->errors;

	if (c == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		return NULL;
	}
	if (path == NULL)
		return c;
	if ((c->file = strdup(path)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	doc = ydoc_load_file(path, NULL, d);
	if (doc == NULL)
		goto fail;
	if (doc->root == NULL)
		goto done; /* an empty file: the defaults */
	if (field_expect(doc->root, YDOC_MAPPING, "herald.yaml", d) < 0)
		goto fail;
	field_known_keys(doc->root, config_keys, "herald.yaml", d);
	n = field_get(doc->root, "dkim", false, d);
	if (n != NULL && !ydoc_is_null(n)) {
		size_t count = n->kind == YDOC_SEQUENCE ? n->nitems : 1;
		c->dkim = calloc(count ? count : 1, sizeof(*c->dkim));
		if (c->dkim == NULL) {
			ydoc_error(d, n, "out of memory");
			goto fail;
		}
		if (n->kind == YDOC_SEQUENCE)
			for (size_t i = 0; i < n->nitems; i++)
				config_dkim_entry(c, n->items[i], d);
		else
			config_dkim_entry(c, n, d);
	}
done:
	if (d->errors != errors)
		goto fail;
	ydoc_free(doc);
	return c;
fail:
	ydoc_free(doc);
	config_free(c);
	return NULL;
}
