/*
 * replay — a main for a fuzz target built without libFuzzer: runs the
 * target once on every file named, or on every file in a directory named
 * (one level, hidden files skipped), so the saved regression inputs and
 * seeds run under the ordinary compiler and its sanitizers in every test
 * run. A directory that does not exist is skipped: fuzz/regressions/
 * <target>/ exists only once a crash was found there.
 *
 * Exit status 0 when every input ran (a crash aborts first), 1 when a
 * file could not be read or nothing was run at all.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, r;

	if (f == NULL)
		goto fail;
	for (;;) {
		if (len == cap) {
			unsigned char *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (nb == NULL)
				goto fail;
			buf = nb;
		}
		r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	/* a copy of exactly len bytes, so ASan sees reads past the end */
	{
		unsigned char *exact = malloc(len ? len : 1);

		if (exact == NULL) {
			free(buf);
			return -1;
		}
		memcpy(exact, buf, len);
		free(buf);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	return 0;
fail:
	fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
	if (f != NULL)
		fclose(f);
	free(buf);
	return -1;
}

int main(int argc, char **argv)
{
	size_t done = 0;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *dir;
		struct dirent *e;

		if (stat(argv[i], &st) < 0) {
			if (errno == ENOENT)
				continue;
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			        strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			rc |= replay_file(argv[i]) < 0;
			done++;
			continue;
		}
		dir = opendir(argv[i]);
		if (dir == NULL) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			        strerror(errno));
			return 1;
		}
		while ((e = readdir(dir)) != NULL) {
			char *path;

			if (e->d_name[0] == '.')
				continue;
			if (asprintf(&path, "%s/%s", argv[i], e->d_name) < 0) {
				closedir(dir);
				return 1;
			}
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				rc |= replay_file(path) < 0;
				done++;
			}
			free(path);
		}
		closedir(dir);
	}
	printf("replayed %zu inputs\n", done);
	return rc != 0 || done == 0;
}
