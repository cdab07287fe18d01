/*
 * mailbox_maildir — reads bounces from a Maildir (see mailbox.h). A new
 * message is a file in new/; handled, it is renamed into cur/ with the
 * Seen flag (":2,S"), as a mail client would, so the local MTA, an admin
 * with mutt and herald agree on what is new. Nothing is deleted.
 */
#include "herald/mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald/file.h"

struct maildir_box {
	struct mailbox base;
	char *path;
};

static struct mailbox *
maildir_open(const char *url, const struct mailbox_opts *o, struct diag *d)
{
	struct maildir_box *mb;
	const char *path = url + strlen("maildir:");
	struct stat st;

	(void)o; /* a local directory needs no settings */
	if (*path == '\0') {
		diag_add(d, NULL, 0, 0, "mailbox %s: give the Maildir's path",
		         url);
		return NULL;
	}
	for (const char *sub = "new\0cur\0tmp\0"; *sub; sub += 4) {
		char *p = NULL;
		int ok;
		if (asprintf(&p, "%s/%s", path, sub) < 0)
			return NULL;
		ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
		if (!ok)
			diag_add(d, NULL, 0, 0,
			         "mailbox %s is not a Maildir: %s is missing",
			         url, p);
		free(p);
		if (!ok)
			return NULL;
	}
	mb = calloc(1, sizeof(*mb));
	if (mb == NULL || (mb->path = strdup(path)) == NULL) {
		free(mb);
		diag_add(d, NULL, 0, 0, "out of memory");
		return NULL;
	}
	mb->base.ops = &mailbox_maildir_backend;
	return &mb->base;
}

static int maildir_name_cmp(const void *a, const void *b)
{
	/* Maildir names start with the delivery time: oldest first */
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* new/NAME -> cur/NAME:2,S (a name that already has an info part keeps
 * it, with S added). */
static int maildir_mark(struct maildir_box *mb, const char *name,
                        struct diag *d)
{
	char *from = NULL, *to = NULL;
	const char *info = strstr(name, ":2,");
	int rc = -1;

	if (asprintf(&from, "%s/new/%s", mb->path, name) < 0)
		goto done;
	if (info != NULL) {
		if (asprintf(&to, "%s/cur/%s%s", mb->path, name,
		             strchr(info + 3, 'S') ? "" : "S") < 0)
			goto done;
	} else if (asprintf(&to, "%s/cur/%s:2,S", mb->path, name) < 0) {
		goto done;
	}
	if (rename(from, to) < 0) {
		diag_add(d, NULL, 0, 0, "mailbox: cannot move %s to cur/: %s",
		         from, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	free(from);
	free(to);
	return rc;
}

static int maildir_fetch(struct mailbox *base, size_t max_bytes, mailbox_fn fn,
                         void *arg, struct diag *d)
{
	struct maildir_box *mb = (struct maildir_box *)base;
	char *dir = NULL, **names = NULL;
	size_t n = 0, cap = 0;
	int handled = 0;
	DIR *dp;
	struct dirent *e;

	if (asprintf(&dir, "%s/new", mb->path) < 0)
		return -1;
	dp = opendir(dir);
	if (dp == NULL) {
		diag_add(d, NULL, 0, 0, "mailbox: cannot read %s: %s", dir,
		         strerror(errno));
		free(dir);
		return -1;
	}
	while ((e = readdir(dp)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **v = realloc(names, (cap ? cap * 2 : 64) *
			                              sizeof(*names));
			if (v == NULL)
				break;
			names = v;
			cap = cap ? cap * 2 : 64;
		}
		if ((names[n] = strdup(e->d_name)) != NULL)
			n++;
	}
	closedir(dp);
	if (n > 1)
		qsort(names, n, sizeof(*names), maildir_name_cmp);
	for (size_t i = 0; i < n; i++) {
		struct mailbox_msg m = {.id = names[i]};
		struct diag local = {0};
		char *path = NULL, *buf = NULL;
		size_t len = 0;
		struct stat st;
		enum mailbox_verdict v;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			break;
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue; /* gone meanwhile, or not a message */
		}
		if ((size_t)st.st_size > max_bytes) {
			m.len = (size_t)st.st_size; /* refused by size */
		} else if (file_read(path, max_bytes, &buf, &len, &local) ==
		           0) {
			m.data = buf;
			m.len = len;
		} else {
			diag_merge(d, &local);
			diag_clear(&local);
			free(path);
			continue;
		}
		diag_clear(&local);
		v = fn(arg, &m);
		free(buf);
		free(path);
		if (v == MAILBOX_STOP)
			break;
		if (v == MAILBOX_HANDLED && maildir_mark(mb, names[i], d) == 0)
			handled++;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(dir);
	return handled;
}

static void maildir_close(struct mailbox *base)
{
	struct maildir_box *mb = (struct maildir_box *)base;

	if (mb == NULL)
		return;
	free(mb->path);
	free(mb);
}

const struct mailbox_backend mailbox_maildir_backend = {
    .name = "maildir",
    .open = maildir_open,
    .fetch = maildir_fetch,
    .close = maildir_close,
};
