/*
 * fsrc — where a release's files are read from: the disk, or the snapshot
 * of them that `herald queue` keeps in the store (snapshot.h). The loaders
 * of a release (release.yaml, its templates, partials and attachments) and
 * of its coalition list read every file through one, so the release that
 * queue checks and the one heraldd sends are built from the same bytes,
 * whatever happens to the files on disk meanwhile.
 *
 * A path is the one the loaders would open on disk (the release directory
 * joined with a name from release.yaml); a source that is not the disk
 * finds its own copy of that file, and every message names the path as
 * given. Sizes are capped and refused as file_read refuses them, in the
 * same words.
 *
 * Library code: 0 / -1 with the reason added to a struct diag.
 */
#ifndef HERALD_FSRC_H
#define HERALD_FSRC_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"
#include "herald/yaml_doc.h"

/* A source: two operations. A backend embeds this first in its own
 * struct and finds itself from the pointer it is handed. */
struct fsrc {
	/* Read path into *buf (malloc'd, NUL-terminated, the caller frees)
	 * and *len; refuses what is not a regular file and files over max
	 * bytes. */
	int (*read)(const struct fsrc *src, const char *path, size_t max,
	            char **buf, size_t *len, struct diag *d);
	/* Is there a regular file at path? */
	bool (*exists)(const struct fsrc *src, const char *path);
};

/* The disk: file_read and file_exists. */
extern const struct fsrc fsrc_disk;

/* src's operations; src NULL reads the disk. */
int fsrc_read(const struct fsrc *src, const char *path, size_t max, char **buf,
              size_t *len, struct diag *d);
bool fsrc_exists(const struct fsrc *src, const char *path);

/* The YAML document at path (ydoc_load_file's limits and messages); NULL
 * after adding the reason to d. The caller frees it with ydoc_free. */
struct ydoc *fsrc_yaml(const struct fsrc *src, const char *path,
                       const struct ydoc_limits *limits, struct diag *d);

#endif
