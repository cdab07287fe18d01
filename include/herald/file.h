/*
 * file — reading whole input files with a size cap, for the loaders
 * (YAML, templates, partials). A file larger than the cap is refused
 * without reading past it, whatever its size claimed.
 *
 * Library code: returns 0 / -1 with the reason added to a struct diag.
 */
#ifndef HERALD_FILE_H
#define HERALD_FILE_H

#include <stddef.h>

#include "herald/diag.h"

/* Read path into *buf (malloc'd, NUL-terminated, the caller frees) and set
 * *len. Refuses directories and files over max bytes. */
int file_read(const char *path, size_t max, char **buf, size_t *len,
              struct diag *d);

struct stat;

/* A file holding a secret (a key, a password) must be a regular file that
 * no one but its owner can read or write. Returns 0, or -1 after adding
 * "WHAT PATH is readable by others (mode 0644): chmod 600 PATH" (or what
 * else is wrong) to d. */
int file_private_check(const struct stat *st, const char *what,
                       const char *path, struct diag *d);

/* Does a regular file exist at path? */
int file_exists(const char *path);

#endif
