/*
 * snapshot — what is checked is what is queued and sent. `herald queue`
 * first copies every file a release needs (the release directory:
 * release.yaml, templates, partials, attachments; and the coalition list)
 * into memory, then loads, checks and renders the release from that copy
 * (through a file source, fsrc.h) and puts the same bytes into the store;
 * heraldd reads them back from the store and builds messages from them.
 * Editing the files after queue has read them changes nothing that is
 * checked or goes out.
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
#include "herald/fsrc.h"
#include "herald/store.h"

#define SNAPSHOT_RELEASE_DIR "release"
#define SNAPSHOT_COALITION   "coalition.yaml"

/* A release's files in memory. Zeroed, it is an empty snapshot. */
struct snapshot {
	struct store_file *files; /* paths and data malloc'd */
	size_t n;
	size_t bytes;      /* of all files together */
	char *release_dir; /* snapshot path of the release directory */
	char *coalition;   /* ... of the coalition list; NULL: none yet */
	int dir_errno;     /* why the release directory could not be opened
	                    * (snapshot_collect), or 0 */
};

/* Read the release directory at dir (regular files, recursively, hidden
 * ones skipped, symbolic links refused) into s, which it empties first. A
 * directory that cannot be opened at all is not reported here: s is then
 * left without files, and its source (snapshot_source) says of every
 * file what opening it on disk would have said (so release_load reports
 * release.yaml, as it does for the disk). */
int snapshot_collect(const char *dir, struct snapshot *s, struct diag *d);

/* Add the coalition list at path, at most max bytes (and what the
 * snapshot's bound leaves). */
int snapshot_add_coalition(struct snapshot *s, const char *path, size_t max,
                           struct diag *d);

/* Release release_id's snapshot from the store into s (emptied first),
 * with the paths the store recorded for its release directory and
 * coalition list. Refuses paths that would leave the snapshot and
 * snapshots over the bounds collect keeps: a store is data, not a place to
 * take file names or sizes from blindly. */
int snapshot_load(struct store *st, int64_t release_id, struct snapshot *s,
                  struct diag *d);

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

/* A file source over a snapshot: a path below dir (the path release_load
 * is given) is the file of that name in the release directory, the path
 * coalition (coalition_load's; NULL: none) is the coalition list, and
 * nothing else is there. Names are read as the disk reads them ("a/./b",
 * "a//b", "a/x/../b"). s, dir and coalition must outlive the source and
 * what was loaded from it (a release reads its partials when it first
 * renders them). */
struct snapshot_src {
	struct fsrc src; /* first: the source's operations */
	const struct snapshot *s;
	const char *dir;
	size_t dirlen; /* dir without trailing slashes */
	const char *coalition;
};
void snapshot_source(struct snapshot_src *ss, const struct snapshot *s,
                     const char *dir, const char *coalition);

#endif
