/*
 * file — bounded whole-file reads for herald's loaders (see file.h).
 */
#include "herald/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_private_check(const struct stat *st, const char *what,
                       const char *path, struct diag *d)
{
	int others, r, w;

	if (!S_ISREG(st->st_mode)) {
		diag_add(d, NULL, 0, 0, "%s %s is not a regular file", what,
		         path);
		return -1;
	}
	if (!(st->st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)))
		return 0;
	/* name the widest class that has access, and what it has */
	others = (st->st_mode & (S_IROTH | S_IWOTH)) != 0;
	r = (st->st_mode & (others ? S_IROTH : S_IRGRP)) != 0;
	w = (st->st_mode & (others ? S_IWOTH : S_IWGRP)) != 0;
	diag_add(d, NULL, 0, 0, "%s %s is %s by %s (mode %04o): chmod 600 %s",
	         what, path,
	         r && w ? "readable and writable"
	         : r    ? "readable"
	                : "writable",
	         others ? "others" : "group", (unsigned)(st->st_mode & 07777),
	         path);
	return -1;
}

int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int file_read(const char *path, size_t max, char **out, size_t *outlen,
              struct diag *d)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	int fd;

	*out = NULL;
	*outlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		diag_add(d, path, 0, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		diag_add(d, path, 0, 0, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		diag_add(d, path, 0, 0, "is a directory, not a file");
		goto fail;
	}
	if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max) {
		diag_add(d, path, 0, 0,
		         "the file is %jd bytes, more than the limit of %zu",
		         (intmax_t)st.st_size, max);
		goto fail;
	}
	/* Read up to one byte past the limit: enough to tell it was
	 * exceeded even when the size claimed was wrong (pipes, growing
	 * files). */
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
	if (cap > max + 1)
		cap = max + 1;
	buf = malloc(cap + 1);
	if (buf == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	for (;;) {
		ssize_t r;
		if (len == cap) {
			char *nb;
			if (cap > max)
				break;
			cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				diag_add(d, path, 0, 0, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			diag_add(d, path, 0, 0, "cannot read: %s",
			         strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > max) {
		diag_add(d, path, 0, 0,
		         "the file is more than the limit of %zu bytes", max);
		goto fail;
	}
	buf[len] = '\0';
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}
