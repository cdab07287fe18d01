/*
 * transport_maildir — the embedded transport: every message becomes one
 * file in a Maildir (maildir:/path/to/Maildir), no server needed. Used for
 * trying herald out, for proofs, and in tests.
 *
 * Delivery follows the Maildir protocol: the message is written to
 * tmp/NAME, synced, renamed into new/NAME, and new/ is synced; a reader
 * never sees half a message. Any failure (ENOSPC included) removes the
 * temporary file and reports stage TRANSPORT_LOCAL with the errno: a
 * temporary failure, retried later. Delivery is synchronous: submit()
 * calls done before it returns, and step() only waits for the caller's
 * descriptors.
 *
 * NAME is SECONDS.MMICROSECONDSPpidQcounter.host (the form Dovecot and
 * Courier use), host reduced to letters, digits, '-' and '.', and cut so
 * that NAME fits struct transport_reply's queue_id, which reports it.
 *
 * Library code: returns 0 / -1 (or NULL) with the reason in a diag.
 */
#include "herald/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Defaults and limits, each with the reason for its value. */
static const struct {
	size_t room;        /* 64: room() per turn; each write is synced,
	                     * so the daemon takes a batch and then looks
	                     * at its control socket again */
	size_t message_max; /* 64 MiB: the same limit as the SMTP
	                     * transport, so a message that fits here also
	                     * fits a relay */
	size_t host_max;    /* 20: the host name part of a file name, so
	                     * the name fits queue_id[64] */
	mode_t dir_mode;    /* 0700: mail is private */
	mode_t file_mode;   /* 0600: mail is private */
} maildir_defaults = {
    .room = 64,
    .message_max = 64u * 1024 * 1024,
    .host_max = 20,
    .dir_mode = 0700,
    .file_mode = 0600,
};

/* step()'s extra descriptors at most: the daemon's own (control socket,
 * timers), with room. */
#define MAILDIR_EXTRA_FDS_MAX 64

struct maildir_transport {
	struct transport base;
	transport_done_fn done;
	void *arg;
	char *path;
	char *describe;
	int tmp_fd, new_fd; /* the tmp/ and new/ directories */
	char host[32];
	unsigned counter;
	struct pollfd pfds[MAILDIR_EXTRA_FDS_MAX];
};

static struct maildir_transport *maildir_of(struct transport *t)
{
	return (struct maildir_transport *)t;
}

/* mkdir that accepts an existing directory. */
static int maildir_mkdir(const char *path, struct diag *d)
{
	struct stat st;

	if (mkdir(path, maildir_defaults.dir_mode) == 0)
		return 0;
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	diag_add(d, path, 0, 0, "cannot create the Maildir directory: %s",
	         errno == EEXIST ? "exists and is not a directory"
	                         : strerror(errno));
	return -1;
}

static int maildir_open_dir(const char *root, const char *sub, int *fd,
                            struct diag *d)
{
	char *p = NULL;
	int rv = -1;

	if (asprintf(&p, "%s/%s", root, sub) < 0) {
		diag_add(d, root, 0, 0, "out of memory");
		return -1;
	}
	if (maildir_mkdir(p, d) < 0)
		goto fail;
	*fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0) {
		diag_add(d, p, 0, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	rv = 0;
fail:
	free(p);
	return rv;
}

static void maildir_close(struct transport *base)
{
	struct maildir_transport *t = maildir_of(base);

	if (t == NULL)
		return;
	if (t->tmp_fd >= 0)
		close(t->tmp_fd);
	if (t->new_fd >= 0)
		close(t->new_fd);
	free(t->path);
	free(t->describe);
	free(t);
}

static struct transport *maildir_open(const struct transport_config *cfg,
                                      transport_done_fn done, void *arg,
                                      struct diag *d)
{
	struct maildir_transport *t;
	const char *path = cfg->url;
	int cur_fd = -1;
	size_t i, o = 0;
	char host[256];

	if (path == NULL || strncmp(path, "maildir:", 8) != 0 ||
	    path[8] == '\0') {
		diag_add(d, NULL, 0, 0,
		         "relay URL: want maildir:/path/to/Maildir");
		return NULL;
	}
	path += 8;
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		diag_add(d, NULL, 0, 0, "maildir transport: out of memory");
		return NULL;
	}
	t->base.ops = &transport_maildir_backend;
	t->done = done;
	t->arg = arg;
	t->tmp_fd = t->new_fd = -1;
	t->path = strdup(path);
	if (t->path == NULL || asprintf(&t->describe, "maildir:%s", path) < 0) {
		t->describe = NULL;
		diag_add(d, NULL, 0, 0, "maildir transport: out of memory");
		goto fail;
	}
	if (maildir_mkdir(path, d) < 0 ||
	    maildir_open_dir(path, "tmp", &t->tmp_fd, d) < 0 ||
	    maildir_open_dir(path, "new", &t->new_fd, d) < 0 ||
	    maildir_open_dir(path, "cur", &cur_fd, d) < 0)
		goto fail;
	close(cur_fd);

	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i] && o < maildir_defaults.host_max; i++) {
		char c = host[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.')
			t->host[o++] = c;
	}
	if (o == 0)
		t->host[o++] = 'h';
	t->host[o] = '\0';
	return &t->base;
fail:
	maildir_close(&t->base);
	return NULL;
}

static int maildir_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Deliver m; fills r. The temporary file never outlives a failure, and
 * a file this call did not create is never removed. */
static void maildir_deliver(struct maildir_transport *t,
                            const struct transport_msg *m,
                            struct transport_reply *r, char *name,
                            size_t name_size)
{
	struct timeval tv;
	const char *what = "name";
	int fd = -1, dir = t->tmp_fd, n;
	bool created = false;

	gettimeofday(&tv, NULL);
	n = snprintf(name, name_size, "%lld.M%06ldP%ldQ%u.%s",
	             (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
	             ++t->counter, t->host);
	if (n < 0 || (size_t)n >= name_size) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	what = "create tmp/";
	fd = openat(t->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	            maildir_defaults.file_mode);
	if (fd < 0)
		goto fail;
	created = true;
	what = "write tmp/";
	if (maildir_write_all(fd, m->data, m->len) < 0)
		goto fail;
	what = "fsync tmp/";
	if (fsync(fd) < 0)
		goto fail;
	what = "close tmp/";
	n = close(fd);
	fd = -1;
	if (n < 0)
		goto fail;
	what = "rename to new/";
	if (renameat(t->tmp_fd, name, t->new_fd, name) < 0)
		goto fail;
	/* In new/ now. Should syncing the directory fail, the rename may
	 * not survive a crash: a failure all the same, and the file goes. */
	dir = t->new_fd;
	what = "fsync new/";
	if (fsync(t->new_fd) < 0)
		goto fail;
	r->stage = TRANSPORT_DONE;
	r->code = 250;
	snprintf(r->status, sizeof(r->status), "2.0.0");
	snprintf(r->queue_id, sizeof(r->queue_id), "%s", name);
	return;
fail:
	r->error = errno;
	if (fd >= 0)
		close(fd);
	if (created)
		unlinkat(dir, name, 0);
	r->stage = TRANSPORT_LOCAL;
	snprintf(r->error_text, sizeof(r->error_text), "%s: %s %s: %s", t->path,
	         what, name, strerror(r->error));
}

static int maildir_submit(struct transport *base, const struct transport_msg *m,
                          struct diag *d)
{
	struct maildir_transport *t = maildir_of(base);
	struct transport_reply r;
	struct transport_msg copy = *m;
	struct timespec t0, t1;
	char name[64];
	long long ms;

	if (m->len > maildir_defaults.message_max) {
		diag_add(d, NULL, 0, 0,
		         "maildir transport: the message is %zu bytes, more "
		         "than the limit of %zu",
		         m->len, maildir_defaults.message_max);
		return -1;
	}
	if (m->len > 0 && m->data == NULL) {
		diag_add(d, NULL, 0, 0,
		         "maildir transport: message without data");
		return -1;
	}
	memset(&r, 0, sizeof(r));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	maildir_deliver(t, m, &r, name, sizeof(name));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (long long)(t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	r.duration_ms = ms < 0 ? 0 : ms > UINT_MAX ? UINT_MAX : (unsigned)ms;
	t->done(t->arg, &copy, &r);
	return 0;
}

static size_t maildir_in_flight(const struct transport *t)
{
	(void)t;
	return 0;
}

static size_t maildir_room(const struct transport *t)
{
	(void)t;
	return maildir_defaults.room;
}

static int maildir_step(struct transport *base, int timeout_ms,
                        const int *extra_fds, size_t nextra, bool *readable,
                        struct diag *d)
{
	struct maildir_transport *t = maildir_of(base);
	size_t i;
	int n;

	if (nextra > MAILDIR_EXTRA_FDS_MAX) {
		diag_add(
		    d, NULL, 0, 0,
		    "maildir transport: %zu extra descriptors, more than %d",
		    nextra, MAILDIR_EXTRA_FDS_MAX);
		return -1;
	}
	for (i = 0; i < nextra; i++) {
		t->pfds[i].fd = extra_fds[i];
		t->pfds[i].events = POLLIN;
		t->pfds[i].revents = 0;
		readable[i] = false;
	}
	n = poll(t->pfds, nextra, timeout_ms < 0 ? -1 : timeout_ms);
	if (n < 0 && errno != EINTR) {
		diag_add(d, NULL, 0, 0, "maildir transport: poll: %s",
		         strerror(errno));
		return -1;
	}
	for (i = 0; n > 0 && i < nextra; i++)
		readable[i] = t->pfds[i].revents != 0;
	return 0;
}

static const char *maildir_describe(const struct transport *t)
{
	return ((const struct maildir_transport *)t)->describe;
}

const struct transport_backend transport_maildir_backend = {
    .name = "maildir",
    .open = maildir_open,
    .submit = maildir_submit,
    .in_flight = maildir_in_flight,
    .room = maildir_room,
    .step = maildir_step,
    .close = maildir_close,
    .describe = maildir_describe,
};
