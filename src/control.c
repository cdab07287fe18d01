/*
 * control — heraldd's control socket and herald's client of it, and which
 * heraldd of a store are running (see control.h for the protocol).
 *
 * heraldd serves its socket from its one loop: control_serve() accepts
 * what is waiting, reads one request line per connection and answers it
 * before the loop goes on, so an answer to "pause 3" is true when it is
 * sent: what the daemon still holds of release 3 is on relay connections
 * and nothing else of it will be handed over. herald's side connects,
 * sends a line and reads one back, with a deadline: a missed wake-up only
 * delays (heraldd polls the store every second), and a pause that no
 * heraldd hears still holds in the store.
 */
#include "herald/control.h"

#include "herald/log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A request line is short: the longest is "cancel " and a 19-digit id. */
#define CONTROL_LINE_MAX 64

int control_parse(const char *line, struct control_request *rq)
{
	static const struct {
		const char *word;
		enum control_verb verb;
		bool id;
	} verbs[] = {
	    {"wake", CONTROL_WAKE, false},
	    {"ping", CONTROL_PING, false},
	    {"pause", CONTROL_PAUSE, true},
	    {"cancel", CONTROL_CANCEL, true},
	};

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t n = strlen(verbs[i].word);
		char *end;
		long long id;

		if (strncmp(line, verbs[i].word, n) != 0)
			continue;
		rq->verb = verbs[i].verb;
		rq->release_id = 0;
		if (!verbs[i].id)
			return line[n] == '\0' ? 0 : -1;
		if (line[n] != ' ' || line[n + 1] < '1' || line[n + 1] > '9')
			return -1;
		errno = 0;
		id = strtoll(line + n + 1, &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
		rq->release_id = id;
		return 0;
	}
	return -1;
}

/* ---- heraldd's side ---------------------------------------------------- */

static int control_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (path == NULL || strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int control_listen(const char *path, struct diag *d)
{
	struct sockaddr_un sa;
	char pong[16];
	mode_t old;
	int fd;

	if (control_addr(path, &sa) < 0) {
		diag_add(d, path, 0, 0, "the control socket path is too long");
		return -1;
	}
	/* a heraldd answers there: its socket, not one left by a dead one */
	if (control_call(path, "ping", pong, sizeof(pong), 1000) == 0 &&
	    strcmp(pong, "pong") == 0)
		return -2;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		diag_add(d, path, 0, 0, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(path);      /* a socket left by a daemon that died */
	old = umask(0177); /* created 0600: only this user reaches it */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 16) < 0) {
		umask(old);
		diag_add(d, path, 0, 0, "cannot listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

/* Read one request line from c within CONTROL_REQUEST_MS; -1 if none. */
static int control_read_line(int c, char *buf, size_t size)
{
	size_t n = 0;
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pc = {.fd = c, .events = POLLIN};
		long left;
		ssize_t r;
		char *nl;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = CONTROL_REQUEST_MS -
		       ((now.tv_sec - t0.tv_sec) * 1000 +
		        (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return -1;
		if (poll(&pc, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		r = recv(c, buf + n, size - 1 - n, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return n > 0 ? (buf[n] = '\0', 0) : -1;
		n += (size_t)r;
		buf[n] = '\0';
		if ((nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			return 0;
		}
		if (n + 1 >= size)
			return -1; /* longer than any request */
	}
}

static void control_answer(int c, const char *reply)
{
	char line[CONTROL_LINE_MAX * 2];
	int n = snprintf(line, sizeof(line), "%s\n", reply);

	if (n > 0 && send(c, line, (size_t)n, MSG_NOSIGNAL) < 0) {
		/* the client left: nothing to do */
	}
}

void control_serve(int fd, control_handler fn, FILE *log, void *arg)
{
	for (;;) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		char line[CONTROL_LINE_MAX], reply[CONTROL_LINE_MAX * 2];
		struct control_request rq;
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0)
			return;
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			cred.uid = (uid_t)-1;
			cred.pid = 0;
		}
		if (cred.uid != getuid()) {
			if (log != NULL)
				log_line(log,
				         "control: refused a connection from uid "
				         "%ld (pid %ld): only uid %ld may steer "
				         "heraldd",
				         (long)(int)cred.uid, (long)cred.pid,
				         (long)getuid());
			close(c);
			continue;
		}
		/* only the daemon's own user gets this far */
		if (control_read_line(c, line, sizeof(line)) < 0) {
			close(c);
			continue;
		}
		if (control_parse(line, &rq) < 0) {
			control_answer(c, "error unknown request (wake, ping, "
			                  "pause ID, cancel ID)");
		} else if (rq.verb == CONTROL_PING) {
			control_answer(c, "pong");
		} else {
			snprintf(reply, sizeof(reply), "ok");
			fn(arg, &rq, reply, sizeof(reply));
			control_answer(c, reply);
		}
		close(c);
	}
}

int control_open(char **path, bool taken, FILE *log, struct diag *d)
{
	int fd = taken ? -2 : control_listen(*path, d);

	if (fd == -2) {
		char *own = control_own_path(*path, (long)getpid());
		if (own == NULL)
			return -1;
		log_line(log,
		         "control: another heraldd answers on %s: this one "
		         "listens on %s (herald pause and cancel reach "
		         "both; herald queue wakes the first)",
		         *path, own);
		free(*path);
		*path = own;
		fd = control_listen(*path, d);
	}
	if (fd == -2)
		diag_add(d, *path, 0, 0,
		         "another heraldd answers on this socket");
	return fd < 0 ? -1 : fd;
}

void control_close(int fd, const char *path)
{
	if (fd < 0)
		return;
	close(fd);
	if (path != NULL)
		unlink(path);
}

char *control_own_path(const char *path, long pid)
{
	char *p = NULL;

	if (asprintf(&p, "%s.%ld", path, pid) < 0)
		return NULL;
	return p;
}

/* ---- herald's side ----------------------------------------------------- */

int control_call(const char *path, const char *request, char *reply,
                 size_t size, int wait_ms)
{
	struct sockaddr_un sa;
	char line[CONTROL_LINE_MAX];
	size_t n = 0;
	int fd, len, saved;
	struct timespec t0;

	if (control_addr(path, &sa) < 0)
		return -1;
	len = snprintf(line, sizeof(line), "%s\n", request);
	if (len < 0 || (size_t)len >= sizeof(line)) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, line, (size_t)len, MSG_NOSIGNAL) != len)
		goto fail;
	if (reply == NULL || size == 0) {
		close(fd);
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct timespec now;
		long left;
		ssize_t r;
		char *nl;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = wait_ms - ((now.tv_sec - t0.tv_sec) * 1000 +
		                  (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = recv(fd, reply + n, size - 1 - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r < 0 ? errno : EPROTO;
			goto fail;
		}
		n += (size_t)r;
		reply[n] = '\0';
		if ((nl = strchr(reply, '\n')) != NULL) {
			*nl = '\0';
			close(fd);
			return 0;
		}
		if (n + 1 >= size) {
			errno = EPROTO;
			goto fail;
		}
	}
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int control_wake(const char *path)
{
	const char *slash;
	char *dir;
	size_t blen;
	DIR *dp;
	struct dirent *e;
	int rc = -1, saved;

	if (path == NULL) {
		errno = ENOENT;
		return -1;
	}
	if (control_call(path, "wake", NULL, 0, 0) == 0)
		return 0;
	saved = errno;
	/* the first heraldd stopped while a second one runs */
	slash = strrchr(path, '/');
	dir = slash == NULL ? strdup(".")
	                    : strndup(path, (size_t)(slash - path) + 1);
	if (dir == NULL || (dp = opendir(dir)) == NULL) {
		free(dir);
		errno = saved;
		return -1;
	}
	slash = slash == NULL ? path : slash + 1;
	blen = strlen(slash);
	while (rc < 0 && (e = readdir(dp)) != NULL) {
		const char *tail = e->d_name + blen;
		char *p = NULL;

		if (strncmp(e->d_name, slash, blen) != 0 || tail[0] != '.' ||
		    tail[1] < '1' || tail[1] > '9' ||
		    strspn(tail + 1, "0123456789") != strlen(tail + 1))
			continue;
		if (asprintf(&p, "%s%s", slash == path ? "" : dir,
		             e->d_name) < 0)
			break;
		rc = control_call(p, "wake", NULL, 0, 0);
		free(p);
	}
	closedir(dp);
	free(dir);
	if (rc < 0)
		errno = saved;
	return rc;
}

/* The daemons table's rows, copied out of daemons_each. */
struct control_rows {
	struct store_daemon *v;
	size_t n;
	bool failed; /* memory ran out */
};

static int control_row(void *arg, const struct store_daemon *dm)
{
	struct control_rows *r = arg;
	struct store_daemon *v = realloc(r->v, (r->n + 1) * sizeof(*v));

	if (v == NULL) {
		r->failed = true;
		return 1;
	}
	r->v = v;
	v[r->n] = *dm;
	v[r->n].host = strdup(dm->host);
	v[r->n].control = dm->control ? strdup(dm->control) : NULL;
	r->n++;
	if (v[r->n - 1].host == NULL ||
	    (dm->control != NULL && v[r->n - 1].control == NULL)) {
		r->failed = true;
		return 1;
	}
	return 0;
}

void control_daemons_free(struct store_daemon *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)v[i].host);
		free((char *)v[i].control);
	}
	free(v);
}

int control_daemons(struct store *st, struct store_daemon **v, size_t *n,
                    struct diag *d)
{
	struct control_rows r = {0};

	*v = NULL;
	*n = 0;
	if (store_daemons_each(st, control_row, &r, d) < 0 || r.failed) {
		if (r.failed)
			diag_add(d, NULL, 0, 0, "out of memory");
		control_daemons_free(r.v, r.n);
		return -1;
	}
	*v = r.v;
	*n = r.n;
	return 0;
}

int control_tell(struct store *st, const char *request,
                 void (*fn)(void *arg, const struct store_daemon *dm,
                            enum control_told told, const char *reply),
                 void *arg, struct diag *d)
{
	struct store_daemon *v;
	size_t n;
	time_t at = time(NULL);
	struct timespec t0;
	int answered = 0;

	if (control_daemons(st, &v, &n, d) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < n; i++) {
		const struct store_daemon *dm = &v[i];
		char reply[CONTROL_LINE_MAX * 2];
		struct timespec now;
		long left;

		if (!control_alive(dm, at))
			continue;
		if (strcmp(dm->host, control_host()) != 0) {
			fn(arg, dm, CONTROL_OTHER_HOST, NULL);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = CONTROL_REPLY_MS - ((now.tv_sec - t0.tv_sec) * 1000 +
		                           (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (dm->control != NULL && left > 0 &&
		    control_call(dm->control, request, reply, sizeof(reply),
		                 (int)left) == 0) {
			fn(arg, dm, CONTROL_ANSWERED, reply);
			answered++;
		} else {
			fn(arg, dm, CONTROL_NO_ANSWER, NULL);
		}
	}
	control_daemons_free(v, n);
	return answered;
}

/* ---- who is running ---------------------------------------------------- */

const char *control_host(void)
{
	static char host[256];

	if (host[0] == '\0' && gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	return host;
}

/* When this host booted (btime in /proc/stat), or 0 when unknown. */
static time_t control_boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	char line[256];
	long long bt = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return (time_t)bt;
}

bool control_alive(const struct store_daemon *dm, time_t now)
{
	if (dm->ended != 0 || now - dm->heartbeat > CONTROL_STALE)
		return false;
	if (strcmp(dm->host, control_host()) != 0)
		return true; /* its heartbeat is all there is to go by */
	/* this process is no heraldd of that row (a heraldd restarted in a
	 * container often gets the pid it had) */
	if (dm->pid == (long)getpid() || dm->pid <= 0)
		return false;
	if (kill((pid_t)dm->pid, 0) < 0 && errno == ESRCH)
		return false;
	/* the pid lives, but the host rebooted since: another process */
	return dm->heartbeat >= control_boot_time();
}
