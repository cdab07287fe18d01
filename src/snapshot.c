/*
 * snapshot — a release's files in memory, taken from the disk by `herald
 * queue` and from the store by heraldd, and the file source over them
 * that the loaders read (see snapshot.h). The copy is bounded (files,
 * bytes) like every input, and a snapshot read back from the store
 * refuses any path that would leave it: a store is data, not a place to
 * take file names from blindly.
 */
#include "herald/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "herald/file.h"

/* A release is templates, a few partials and attachments: 1,000 files
 * and 64 MiB are far above any real one and keep a wrong directory
 * (a home directory, a mail archive) from being swallowed. */
#define SNAPSHOT_MAX_FILES 1000
#define SNAPSHOT_MAX_BYTES (64u << 20)
#define SNAPSHOT_MAX_DEPTH 8

void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free((char *)s->files[i].path);
		free((void *)s->files[i].data);
	}
	free(s->files);
	free(s->release_dir);
	free(s->coalition);
	memset(s, 0, sizeof(*s));
}

/* Is there room for one more file of len bytes? */
static int snapshot_room(const struct snapshot *s, size_t len,
                         const char *where, struct diag *d)
{
	if (s->n >= SNAPSHOT_MAX_FILES) {
		diag_add(d, where, 0, 0,
		         "more than %d files in the release: is this the "
		         "right directory?",
		         SNAPSHOT_MAX_FILES);
		return -1;
	}
	if (len > SNAPSHOT_MAX_BYTES - s->bytes) {
		diag_add(d, where, 0, 0,
		         "the release's files add up to more than %u MiB",
		         SNAPSHOT_MAX_BYTES >> 20);
		return -1;
	}
	return 0;
}

/* Append the file name (copied) with data (taken: freed on failure too),
 * after snapshot_room; where names it in messages. */
static int snapshot_keep(struct snapshot *s, const char *name, char *data,
                         size_t len, const char *where, struct diag *d)
{
	struct store_file *v;
	char *copy = NULL;

	v = realloc(s->files, (s->n + 1) * sizeof(*v));
	if (v == NULL || (copy = strdup(name)) == NULL) {
		if (v != NULL)
			s->files = v;
		diag_add(d, where, 0, 0, "out of memory");
		free(data);
		return -1;
	}
	s->files = v;
	v[s->n].path = copy;
	v[s->n].data = data;
	v[s->n].len = len;
	s->n++;
	s->bytes += len;
	return 0;
}

/* The file at path on disk, as name, at most max bytes (and what the
 * snapshot's bound leaves: a file over it is refused by file_read,
 * naming that limit). */
static int snapshot_add(struct snapshot *s, const char *path, const char *name,
                        size_t max, struct diag *d)
{
	char *buf = NULL;
	size_t len;

	if (snapshot_room(s, 0, path, d) < 0)
		return -1;
	if (max > SNAPSHOT_MAX_BYTES - s->bytes)
		max = SNAPSHOT_MAX_BYTES - s->bytes;
	if (file_read(path, max, &buf, &len, d) < 0)
		return -1;
	return snapshot_keep(s, name, buf, len, path, d);
}

static int snapshot_dir(struct snapshot *s, const char *dir, const char *prefix,
                        int depth, struct diag *d)
{
	DIR *dp;
	struct dirent *e;
	int rc = 0;

	if (depth > SNAPSHOT_MAX_DEPTH) {
		diag_add(d, dir, 0, 0, "directories nested too deep");
		return -1;
	}
	dp = opendir(dir);
	if (dp == NULL && depth == 0) {
		/* the loaders say it, of the file they look for first */
		s->dir_errno = errno;
		return 0;
	}
	if (dp == NULL) {
		diag_add(d, dir, 0, 0, "cannot read the directory: %s",
		         strerror(errno));
		return -1;
	}
	while (rc == 0 && (e = readdir(dp)) != NULL) {
		char *path = NULL, *name = NULL;
		struct stat st;

		if (e->d_name[0] == '.')
			continue; /* ., .., editor and VCS files */
		if (asprintf(&path, "%s/%s", dir, e->d_name) < 0 ||
		    asprintf(&name, "%s/%s", prefix, e->d_name) < 0) {
			free(path);
			diag_add(d, dir, 0, 0, "out of memory");
			rc = -1;
			break;
		}
		if (lstat(path, &st) < 0) {
			diag_add(d, path, 0, 0, "%s", strerror(errno));
			rc = -1;
		} else if (S_ISLNK(st.st_mode)) {
			diag_add(d, path, 0, 0,
			         "is a symbolic link: a release holds its "
			         "own files");
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = snapshot_dir(s, path, name, depth + 1, d);
		} else if (S_ISREG(st.st_mode)) {
			rc = snapshot_add(s, path, name, SNAPSHOT_MAX_BYTES, d);
		}
		free(path);
		free(name);
	}
	closedir(dp);
	return rc;
}

int snapshot_collect(const char *dir, struct snapshot *s, struct diag *d)
{
	snapshot_free(s);
	if ((s->release_dir = strdup(SNAPSHOT_RELEASE_DIR)) == NULL) {
		diag_add(d, dir, 0, 0, "out of memory");
		return -1;
	}
	if (snapshot_dir(s, dir, SNAPSHOT_RELEASE_DIR, 0, d) < 0) {
		snapshot_free(s);
		return -1;
	}
	return 0;
}

int snapshot_add_coalition(struct snapshot *s, const char *path, size_t max,
                           struct diag *d)
{
	if (s->coalition != NULL) {
		diag_add(d, path, 0, 0, "the snapshot has a coalition list");
		return -1;
	}
	if ((s->coalition = strdup(SNAPSHOT_COALITION)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		return -1;
	}
	if (snapshot_add(s, path, SNAPSHOT_COALITION, max, d) < 0) {
		free(s->coalition);
		s->coalition = NULL;
		return -1;
	}
	return 0;
}

const struct store_file *snapshot_find(const struct snapshot *s,
                                       const char *path)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->files[i].path, path) == 0)
			return &s->files[i];
	return NULL;
}

int snapshot_replace(struct snapshot *s, const char *path, char *data,
                     size_t len)
{
	struct store_file *f = (struct store_file *)snapshot_find(s, path);

	if (f == NULL)
		return -1;
	s->bytes = s->bytes - f->len + len;
	free((void *)f->data);
	f->data = data;
	f->len = len;
	return 0;
}

/* ---- from the store ---------------------------------------------------- */

/* Is path a plain relative path that stays below its root? */
static bool snapshot_path_ok(const char *path)
{
	const char *p = path;

	if (*p == '\0' || *p == '/')
		return false;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

struct snapshot_in {
	struct snapshot *s;
	int64_t id;
	struct diag *d;
};

static int snapshot_take(void *arg, const struct store_file *f)
{
	struct snapshot_in *in = arg;
	char where[64], *data;

	snprintf(where, sizeof(where), "release %lld", (long long)in->id);
	if (!snapshot_path_ok(f->path)) {
		diag_add(in->d, where, 0, 0,
		         "the store holds a snapshot path \"%s\" that would "
		         "leave the snapshot",
		         f->path);
		return -1;
	}
	if (snapshot_room(in->s, f->len, where, in->d) < 0)
		return -1;
	if ((data = malloc(f->len + 1)) == NULL) {
		diag_add(in->d, where, 0, 0, "out of memory");
		return -1;
	}
	memcpy(data, f->data, f->len);
	data[f->len] = '\0';
	return snapshot_keep(in->s, f->path, data, f->len, where, in->d);
}

int snapshot_load(struct store *st, int64_t release_id, struct snapshot *s,
                  struct diag *d)
{
	char rdir[256], cpath[256];
	struct snapshot_in in = {s, release_id, d};

	snapshot_free(s);
	if (store_release_get(st, release_id, NULL, rdir, sizeof(rdir), cpath,
	                      sizeof(cpath), d) < 0)
		return -1;
	if ((s->release_dir = strdup(rdir)) == NULL ||
	    (s->coalition = strdup(cpath)) == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		goto fail;
	}
	if (store_release_files(st, release_id, snapshot_take, &in, d) < 0)
		goto fail;
	return 0;
fail:
	snapshot_free(s);
	return -1;
}

/* ---- the file source ---------------------------------------------------- */

/* The snapshot path of path as the source reads it (malloc'd), or NULL
 * when the source has no such file (*oom: for want of memory). */
static char *snapshot_src_path(const struct snapshot_src *ss, const char *path,
                               bool *oom)
{
	const struct snapshot *s = ss->s;
	const char *p;
	char *out;
	size_t len;

	*oom = false;
	if (ss->coalition != NULL && strcmp(path, ss->coalition) == 0) {
		if (s->coalition == NULL)
			return NULL;
		out = strdup(s->coalition);
		*oom = out == NULL;
		return out;
	}
	if (s->release_dir == NULL || strncmp(path, ss->dir, ss->dirlen) != 0 ||
	    path[ss->dirlen] != '/')
		return NULL;
	/* the release directory, then each name, as the disk reads them:
	 * empty names and "." are nothing, ".." goes up */
	len = strlen(s->release_dir);
	out = malloc(len + strlen(path) + 2);
	if (out == NULL) {
		*oom = true;
		return NULL;
	}
	memcpy(out, s->release_dir, len + 1);
	for (p = path + ss->dirlen; *p != '\0';) {
		size_t n;
		p += strspn(p, "/");
		n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.')) {
			p += n;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			char *up = strrchr(out, '/');
			if (up == NULL ||
			    (size_t)(up - out) < strlen(s->release_dir)) {
				free(out); /* above the release directory */
				return NULL;
			}
			*up = '\0';
			p += n;
			continue;
		}
		len = strlen(out);
		out[len] = '/';
		memcpy(out + len + 1, p, n);
		out[len + 1 + n] = '\0';
		p += n;
	}
	return out;
}

/* Is there a file below path (a directory of the snapshot)? */
static bool snapshot_src_isdir(const struct snapshot *s, const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < s->n; i++)
		if (strncmp(s->files[i].path, path, n) == 0 &&
		    s->files[i].path[n] == '/')
			return true;
	return false;
}

static int snapshot_src_read(const struct fsrc *src, const char *path,
                             size_t max, char **buf, size_t *len,
                             struct diag *d)
{
	const struct snapshot_src *ss = (const struct snapshot_src *)src;
	const struct store_file *f = NULL;
	bool oom;
	char *at = snapshot_src_path(ss, path, &oom);

	*buf = NULL;
	*len = 0;
	if (at != NULL)
		f = snapshot_find(ss->s, at);
	if (f == NULL) {
		if (oom)
			diag_add(d, path, 0, 0, "out of memory");
		else if (at != NULL && snapshot_src_isdir(ss->s, at))
			diag_add(d, path, 0, 0, "is a directory, not a file");
		else
			diag_add(d, path, 0, 0, "cannot open: %s",
			         strerror(ss->s->dir_errno ? ss->s->dir_errno
			                                   : ENOENT));
		free(at);
		return -1;
	}
	free(at);
	if (f->len > max) {
		diag_add(d, path, 0, 0,
		         "the file is %zu bytes, more than the limit of %zu",
		         f->len, max);
		return -1;
	}
	if ((*buf = malloc(f->len + 1)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		return -1;
	}
	memcpy(*buf, f->data, f->len);
	(*buf)[f->len] = '\0';
	*len = f->len;
	return 0;
}

static bool snapshot_src_exists(const struct fsrc *src, const char *path)
{
	const struct snapshot_src *ss = (const struct snapshot_src *)src;
	bool oom, yes;
	char *at = snapshot_src_path(ss, path, &oom);

	yes = at != NULL && snapshot_find(ss->s, at) != NULL;
	free(at);
	return yes;
}

void snapshot_source(struct snapshot_src *ss, const struct snapshot *s,
                     const char *dir, const char *coalition)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	*ss = (struct snapshot_src){
	    .src = {snapshot_src_read, snapshot_src_exists},
	    .s = s,
	    .dir = dir,
	    .dirlen = n,
	    .coalition = coalition,
	};
}
