/*
 * fsrc — reading a release's files from one source (see fsrc.h): the
 * interface, and the disk behind it. The snapshot's source is in
 * snapshot.c.
 */
#include "herald/fsrc.h"

#include <stdlib.h>

#include "herald/file.h"

static int fsrc_disk_read(const struct fsrc *src, const char *path, size_t max,
                          char **buf, size_t *len, struct diag *d)
{
	(void)src;
	return file_read(path, max, buf, len, d);
}

static bool fsrc_disk_exists(const struct fsrc *src, const char *path)
{
	(void)src;
	return file_exists(path) != 0;
}

const struct fsrc fsrc_disk = {fsrc_disk_read, fsrc_disk_exists};

int fsrc_read(const struct fsrc *src, const char *path, size_t max, char **buf,
              size_t *len, struct diag *d)
{
	if (src == NULL)
		src = &fsrc_disk;
	return src->read(src, path, max, buf, len, d);
}

bool fsrc_exists(const struct fsrc *src, const char *path)
{
	if (src == NULL)
		src = &fsrc_disk;
	return src->exists(src, path);
}

struct ydoc *fsrc_yaml(const struct fsrc *src, const char *path,
                       const struct ydoc_limits *limits, struct diag *d)
{
	struct ydoc *doc;
	char *buf;
	size_t len;

	/* the disk is streamed as it always was: a list may be large */
	if (src == NULL || src == &fsrc_disk)
		return ydoc_load_file(path, limits, d);
	if (limits == NULL)
		limits = &ydoc_default_limits;
	if (fsrc_read(src, path, limits->max_bytes, &buf, &len, d) < 0)
		return NULL;
	doc = ydoc_load_mem(path, buf, len, limits, d);
	free(buf);
	return doc;
}
