/*
 * snapshot — copies a release's files into the store and back out (see
 * snapshot.h). The copy is bounded (files, bytes) like every input, and
 * the way back refuses any path that could leave the directory it is
 * written to: a store is data, not a place to take file names from
 * blindly.
 */
#include "herald/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald/file.h"

/* A release is templates, a few partials and attachments: 1,000 files
 * and 64 MiB are far above any real one and keep a wrong directory
 * (a home directory, a mail archive) from being swallowed. */
#define SNAPSHOT_MAX_FILES 1000
#define SNAPSHOT_MAX_BYTES (64u << 20)
#define SNAPSHOT_MAX_DEPTH 8

struct snapshot_walk {
	struct snapshot *s;
	size_t bytes;
	struct diag *d;
};

static int snapshot_add(struct snapshot_walk *w, const char *path,
                        const char *name)
{
	struct snapshot *s = w->s;
	struct store_file *v;
	char *buf = NULL, *copy;
	size_t len;

	if (s->n >= SNAPSHOT_MAX_FILES) {
		diag_add(w->d, path, 0, 0,
		         "more than %d files in the release: is this the "
		         "right directory?",
		         SNAPSHOT_MAX_FILES);
		return -1;
	}
	if (file_read(path, SNAPSHOT_MAX_BYTES - w->bytes, &buf, &len, w->d) <
	    0)
		return -1;
	v = realloc(s->files, (s->n + 1) * sizeof(*v));
	copy = strdup(name);
	if (v == NULL || copy == NULL) {
		free(buf);
		free(copy);
		if (v != NULL)
			s->files = v;
		diag_add(w->d, path, 0, 0, "out of memory");
		return -1;
	}
	s->files = v;
	v[s->n].path = copy;
	v[s->n].data = buf;
	v[s->n].len = len;
	s->n++;
	w->bytes += len;
	return 0;
}

static int snapshot_dir(struct snapshot_walk *w, const char *dir,
                        const char *prefix, int depth)
{
	DIR *dp;
	struct dirent *e;
	int rc = 0;

	if (depth > SNAPSHOT_MAX_DEPTH) {
		diag_add(w->d, dir, 0, 0, "directories nested too deep");
		return -1;
	}
	dp = opendir(dir);
	if (dp == NULL) {
		diag_add(w->d, dir, 0, 0, "cannot read the directory: %s",
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
			diag_add(w->d, dir, 0, 0, "out of memory");
			rc = -1;
			break;
		}
		if (lstat(path, &st) < 0) {
			diag_add(w->d, path, 0, 0, "%s", strerror(errno));
			rc = -1;
		} else if (S_ISLNK(st.st_mode)) {
			diag_add(w->d, path, 0, 0,
			         "is a symbolic link: a release holds its "
			         "own files");
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = snapshot_dir(w, path, name, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			rc = snapshot_add(w, path, name);
		}
		free(path);
		free(name);
	}
	closedir(dp);
	return rc;
}

void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free((char *)s->files[i].path);
		free((void *)s->files[i].data);
	}
	free(s->files);
	s->files = NULL;
	s->n = 0;
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
	free((void *)f->data);
	f->data = data;
	f->len = len;
	return 0;
}

int snapshot_collect(const char *release_dir, const char *coalition,
                     struct snapshot *s, struct diag *d)
{
	struct snapshot_walk w = {s, 0, d};

	s->files = NULL;
	s->n = 0;
	if (snapshot_dir(&w, release_dir, SNAPSHOT_RELEASE_DIR, 0) < 0 ||
	    snapshot_add(&w, coalition, SNAPSHOT_COALITION) < 0) {
		snapshot_free(s);
		return -1;
	}
	return 0;
}

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

/* mkdir -p for the directories of path below root, mode 0700. */
static int snapshot_mkdirs(const char *root, const char *rel, struct diag *d)
{
	char *path = NULL;
	int rc = 0;

	if (asprintf(&path, "%s/%s", root, rel) < 0) {
		diag_add(d, root, 0, 0, "out of memory");
		return -1;
	}
	for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL;
	     p++) {
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			diag_add(d, path, 0, 0, "cannot create: %s",
			         strerror(errno));
			rc = -1;
			break;
		}
		*p = '/';
	}
	free(path);
	return rc;
}

struct snapshot_out {
	const char *dir;
	struct diag *d;
};

static int snapshot_write(void *arg, const struct store_file *f)
{
	struct snapshot_out *o = arg;
	char *path = NULL;
	size_t off = 0;
	int fd;

	if (!snapshot_path_ok(f->path)) {
		diag_add(o->d, o->dir, 0, 0,
		         "the store holds a snapshot path \"%s\" that would "
		         "leave the snapshot directory",
		         f->path);
		return -1;
	}
	if (snapshot_mkdirs(o->dir, f->path, o->d) < 0)
		return -1;
	if (asprintf(&path, "%s/%s", o->dir, f->path) < 0) {
		diag_add(o->d, o->dir, 0, 0, "out of memory");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	          0600);
	if (fd < 0) {
		diag_add(o->d, path, 0, 0, "cannot create: %s",
		         strerror(errno));
		free(path);
		return -1;
	}
	while (off < f->len) {
		ssize_t n =
		    write(fd, (const char *)f->data + off, f->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			diag_add(o->d, path, 0, 0, "cannot write: %s",
			         strerror(errno));
			close(fd);
			free(path);
			return -1;
		}
		off += (size_t)n;
	}
	close(fd);
	free(path);
	return 0;
}

int snapshot_extract(struct store *st, int64_t release_id, const char *dir,
                     struct diag *d)
{
	struct snapshot_out o = {dir, d};

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		diag_add(d, dir, 0, 0, "cannot create: %s", strerror(errno));
		return -1;
	}
	return store_release_files(st, release_id, snapshot_write, &o, d);
}
