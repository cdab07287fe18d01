/*
 * snapshot — what is queued is what is sent. `herald queue` copies every
 * file a release needs (the release directory: release.yaml, templates,
 * partials, attachments; and the coalition list) into the store, and the
 * daemon builds messages from that copy, so editing the files after
 * queueing changes nothing that goes out.
 *
 * In the snapshot the release directory is "release/" and the coalition
 * list "coalition.yaml".
 *
 * Library code: 0 / -1 with the reason in a struct diag.
 */
#ifndef HERALD_SNAPSHOT_H
#define HERALD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "herald/diag.h"
#include "herald/store.h"

#define SNAPSHOT_RELEASE_DIR "release"
#define SNAPSHOT_COALITION   "coalition.yaml"

struct snapshot {
	struct store_file *files;
	size_t n;
};

/* Read the release directory (regular files, recursively, hidden ones
 * skipped, symbolic links refused) and the coalition list. */
int snapshot_collect(const char *release_dir, const char *coalition,
                     struct snapshot *s, struct diag *d);
void snapshot_free(struct snapshot *s);

/* The snapshot's file at path ("release/release.yaml"), or NULL. */
const struct store_file *snapshot_find(const struct snapshot *s,
                                       const char *path);

/* Put data (malloc'd, len bytes; the snapshot takes it) in place of the
 * file at path, which must be in the snapshot: for what queue changes
 * on purpose (the embargo it was told to drop). -1 when it is not (data
 * is then still the caller's). */
int snapshot_replace(struct snapshot *s, const char *path, char *data,
                     size_t len);

/* Write release release_id's snapshot under dir (created mode 0700; files
 * 0600). Refuses paths that would leave dir. */
int snapshot_extract(struct store *st, int64_t release_id, const char *dir,
                     struct diag *d);

#endif
