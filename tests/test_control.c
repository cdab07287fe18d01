/*
 * control tests: the request lines heraldd understands, one exchange over
 * a real socket (a client in a child process, the server here), a second
 * heraldd finding the socket taken, a wake-up that finds a heraldd on its
 * own socket, and which daemons rows count as running.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "herald/control.h"

static char tmpdir[] = "/tmp/herald-test-control-XXXXXX";

static char *sock_path(const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static void test_parse(void **state)
{
	struct control_request rq;

	(void)state;
	assert_int_equal(control_parse("wake", &rq), 0);
	assert_int_equal(rq.verb, CONTROL_WAKE);
	assert_int_equal(control_parse("ping", &rq), 0);
	assert_int_equal(rq.verb, CONTROL_PING);
	assert_int_equal(control_parse("pause 12", &rq), 0);
	assert_int_equal(rq.verb, CONTROL_PAUSE);
	assert_int_equal(rq.release_id, 12);
	assert_int_equal(control_parse("cancel 9223372036854775807", &rq), 0);
	assert_int_equal(rq.verb, CONTROL_CANCEL);
	assert_true(rq.release_id == INT64_MAX);
	/* refused: no id, a bad id, trailing words, unknown verbs */
	assert_int_equal(control_parse("pause", &rq), -1);
	assert_int_equal(control_parse("pause ", &rq), -1);
	assert_int_equal(control_parse("pause 0", &rq), -1);
	assert_int_equal(control_parse("pause -1", &rq), -1);
	assert_int_equal(control_parse("pause 1x", &rq), -1);
	assert_int_equal(control_parse("cancel 99999999999999999999", &rq),
	                 -1);
	assert_int_equal(control_parse("wake up", &rq), -1);
	assert_int_equal(control_parse("pings", &rq), -1);
	assert_int_equal(control_parse("resume 1", &rq), -1);
	assert_int_equal(control_parse("", &rq), -1);
}

/* The server side of a test: what it was asked. */
struct served {
	struct control_request rq;
	int n;
};

static void handler(void *arg, const struct control_request *rq, char *reply,
                    size_t size)
{
	struct served *s = arg;

	s->rq = *rq;
	s->n++;
	if (rq->verb == CONTROL_PAUSE)
		snprintf(reply, size, "ok dropped=3 in_flight=2");
}

/* Run request against a server on path from a child process; the child
 * exits 0 when the reply equals want (NULL: none is read). */
static pid_t client(const char *path, const char *request, const char *want)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char reply[128];
		int rc = control_call(path, request, want ? reply : NULL,
		                      sizeof(reply), 5000);
		if (rc < 0)
			_exit(2);
		_exit(want == NULL || strcmp(reply, want) == 0 ? 0 : 3);
	}
	return pid;
}

static void serve_until(int fd, pid_t child, struct served *s)
{
	int status;

	for (int i = 0; i < 500; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10) > 0)
			control_serve(fd, handler, NULL, s);
		if (waitpid(child, &status, WNOHANG) == child) {
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
			return;
		}
	}
	fail_msg("the client did not finish");
}

static void test_exchange(void **state)
{
	char *path = sock_path("x.sock");
	struct diag d = {0};
	struct served s = {0};
	struct stat sb;
	int fd = control_listen(path, &d);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	serve_until(fd, client(path, "ping", "pong"), &s);
	assert_int_equal(s.n, 0); /* ping is answered by the module */
	serve_until(fd, client(path, "pause 7", "ok dropped=3 in_flight=2"),
	            &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.rq.verb, CONTROL_PAUSE);
	assert_int_equal(s.rq.release_id, 7);
	serve_until(fd, client(path, "wake", "ok"), &s);
	assert_int_equal(s.rq.verb, CONTROL_WAKE);
	serve_until(fd,
	            client(path, "resume 7",
	                   "error unknown request (wake, ping, pause ID, "
	                   "cancel ID)"),
	            &s);
	assert_int_equal(s.n, 2);
	control_close(fd, path);
	assert_int_equal(stat(path, &sb), -1);
	/* nobody listens */
	{
		char reply[16];
		assert_int_equal(control_call(path, "ping", reply,
		                              sizeof(reply), 100),
		                 -1);
		assert_true(errno == ENOENT || errno == ECONNREFUSED);
	}
	diag_clear(&d);
	free(path);
}

/* A second heraldd finds the socket answered and leaves it; a socket left
 * by a heraldd that died is replaced; a wake-up reaches a heraldd on its
 * own socket when the first one's is gone. */
static void test_taken_and_left(void **state)
{
	char *path = sock_path("t.sock"), *own;
	struct diag d = {0};
	struct served s = {0};
	int fd, fd2, status;
	pid_t pid;

	(void)state;
	fd = control_listen(path, &d);
	assert_true(fd >= 0);
	/* the probe of the second is a ping: answer it from a child */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 300; i++) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, 10) > 0)
				control_serve(fd, handler, NULL, &s);
		}
		_exit(0);
	}
	assert_int_equal(control_listen(path, &d), -2);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(fd); /* the first dies: its socket file stays */
	own = control_own_path(path, 4242);
	assert_non_null(own);
	assert_non_null(strstr(own, "t.sock.4242"));
	fd2 = control_listen(own, &d);
	assert_true(fd2 >= 0);
	/* the dead one's socket: a wake-up finds the second beside it */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(control_wake(path) == 0 ? 0 : 1);
	serve_until(fd2, pid, &s);
	assert_int_equal(s.rq.verb, CONTROL_WAKE);
	/* and the first's path is taken again by a new heraldd */
	fd = control_listen(path, &d);
	assert_true(fd >= 0);
	control_close(fd, path);
	control_close(fd2, own);
	diag_clear(&d);
	free(own);
	free(path);
}

static void test_alive(void **state)
{
	time_t now = time(NULL);
	struct store_daemon dm = {.id = 1,
	                          .host = control_host(),
	                          .pid = (long)getppid(),
	                          .started = now - 100,
	                          .heartbeat = now - 5};
	pid_t dead;
	int status;

	(void)state;
	assert_true(control_alive(&dm, now));
	/* ended, or silent too long */
	dm.ended = now - 1;
	assert_false(control_alive(&dm, now));
	dm.ended = 0;
	dm.heartbeat = now - CONTROL_STALE - 1;
	assert_false(control_alive(&dm, now));
	dm.heartbeat = now - 5;
	/* this process is no heraldd of that row */
	dm.pid = (long)getpid();
	assert_false(control_alive(&dm, now));
	/* a process that ended */
	dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	waitpid(dead, &status, 0);
	dm.pid = (long)dead;
	assert_false(control_alive(&dm, now));
	/* a heartbeat from before this host booted */
	dm.pid = (long)getppid();
	dm.heartbeat = 1000;
	assert_false(control_alive(&dm, 1000 + 5));
	/* another host: only its heartbeat tells */
	dm.host = "elsewhere.invalid";
	dm.pid = (long)dead;
	dm.heartbeat = now - 5;
	assert_true(control_alive(&dm, now));
	dm.heartbeat = now - CONTROL_STALE - 1;
	assert_false(control_alive(&dm, now));
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_exchange),
	    cmocka_unit_test(test_taken_and_left),
	    cmocka_unit_test(test_alive),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
