/*
 * config — herald.yaml, the operators' file: for now the DKIM signing
 * keys (domain, selector, key file); relays, the store and the bounce
 * mailbox join it as herald grows. Relative paths are taken from the
 * directory of the config file. Unknown keys are errors.
 *
 * Which file: `--config FILE`, else $HERALD_CONFIG, else ./herald.yaml if
 * it exists; with none, herald runs with the defaults (no signing).
 *
 * Library code: NULL on failure after reporting every problem.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stddef.h>

#include "herald/diag.h"

struct config_dkim {
	char *domain;
	char *selector;
	char *key; /* path, resolved against the config file's directory */
	const char *file;
	unsigned line, col;
};

struct config {
	char *file; /* NULL: defaults, no file */
	struct config_dkim *dkim;
	size_t ndkim;
};

/* Load path (NULL: the defaults). */
struct config *config_load(const char *path, struct diag *d);

/* The path to use: explicit (if not NULL), else $HERALD_CONFIG, else
 * "herald.yaml" when it exists, else NULL. Not malloc'd. */
const char *config_path(const char *explicit_path);

void config_free(struct config *c);

#endif
