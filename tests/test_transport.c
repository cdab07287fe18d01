/*
 * transport tests: what herald reads from a relay's reply text, the
 * Maildir transport's files (and that a failed write leaves nothing
 * behind), and what the SMTP transport refuses before it ever connects:
 * bad envelope addresses, passwords in URLs, plain text to a host that is
 * not on loopback. The few connections made go to 127.0.0.1 only (a port
 * nothing listens on, or a listener of this test that never answers);
 * tests/test_transport_tls.py covers real servers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "herald/transport.h"

/* What the done callback saw. */
struct seen {
	int calls;
	int64_t last_id;
	struct transport_reply r; /* the last reply, text not kept */
	char text[512];
};

static void on_done(void *arg, const struct transport_msg *m,
                    const struct transport_reply *r)
{
	struct seen *s = arg;

	s->calls++;
	s->last_id = m->id;
	s->r = *r;
	s->r.text = NULL;
	snprintf(s->text, sizeof(s->text), "%s", r->text ? r->text : "");
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Step t until done has been called `want` times, for at most ms. */
static void step_until(struct transport *t, struct seen *s, int want, double ms)
{
	struct diag d = {0};
	double deadline = now_ms() + ms;

	while (s->calls < want && now_ms() < deadline)
		assert_int_equal(t->ops->step(t, 100, NULL, 0, NULL, &d), 0);
	assert_int_equal(s->calls, want);
	diag_clear(&d);
}

/* -- reply parsing ------------------------------------------------------ */

static void test_parse_reply(void **state)
{
	static const struct {
		const char *text, *status, *queue_id;
	} cases[] = {
	    /* Postfix */
	    {"250 2.0.0 Ok: queued as 4F1X2Y3Z", "2.0.0", "4F1X2Y3Z"},
	    {"250 2.0.0 Ok: queued as 4F1X2Y3Z\n", "2.0.0", "4F1X2Y3Z"},
	    {"250 2.0.0 Ok: queued as 4F1X2Y3Z.", "2.0.0", "4F1X2Y3Z"},
	    {"250 Ok: queued as 4F1X2Y3Z", "", "4F1X2Y3Z"},
	    {"250-first\n250-second\n250 2.0.0 Ok: Queued as ABC", "2.0.0",
	     "ABC"},
	    /* Exim */
	    {"250 OK id=1qAbCd-0001Ab-Cd", "", "1qAbCd-0001Ab-Cd"},
	    {"250 ok msgid=notit", "", ""},
	    /* Exchange */
	    {"250 2.6.0 <abc123@mail.example.com> [InternalId=1, "
	     "Hostname=X.example.com] Queued mail for delivery",
	     "2.6.0", "abc123@mail.example.com"},
	    /* Sendmail */
	    {"250 2.0.0 4AB1cD2e012345 Message accepted for delivery", "2.0.0",
	     "4AB1cD2e012345"},
	    {"250 2.0.0 Message accepted for delivery", "2.0.0", ""},
	    /* refusals */
	    {"450 4.2.1 <a@example.org>: Recipient address rejected: try "
	     "again in 5 minutes",
	     "4.2.1", ""},
	    {"550-5.1.1 The email account does not exist.\n"
	     "550 5.1.1 https://support.example.com/mail x1si",
	     "5.1.1", ""},
	    {"550 Requested action not taken", "", ""},
	    {"421 4.7.0 mx.example.org Error: too many connections", "4.7.0",
	     ""},
	    /* what is not an enhanced status */
	    {"250 2.0.0", "2.0.0", ""},
	    {"250 6.0.0 no such class", "", ""},
	    {"250 2.0000.0 too many digits", "", ""},
	    {"250 2.0.0x glued", "", ""},
	    {"250 2..0 empty", "", ""},
	    {"2.1.5 without a code", "2.1.5", ""},
	    {"", "", ""},
	    {"250 Ok: queued as ", "", ""},
	};
	char status[16], qid[64], long_text[200];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		transport_parse_reply(cases[i].text, status, qid);
		if (strcmp(status, cases[i].status) != 0 ||
		    strcmp(qid, cases[i].queue_id) != 0)
			fail_msg("\"%s\": status \"%s\" queue_id \"%s\", want "
			         "\"%s\" \"%s\"",
			         cases[i].text, status, qid, cases[i].status,
			         cases[i].queue_id);
	}
	transport_parse_reply(NULL, status, qid);
	assert_string_equal(status, "");
	assert_string_equal(qid, "");

	/* an id longer than queue_id is cut, never overflows */
	snprintf(long_text, sizeof(long_text), "250 queued as %0150d", 7);
	transport_parse_reply(long_text, status, qid);
	assert_int_equal(strlen(qid), 63);
}

static void test_backend_for(void **state)
{
	(void)state;
	assert_ptr_equal(transport_backend_for("smtp://127.0.0.1:25"),
	                 &transport_smtp_backend);
	assert_ptr_equal(transport_backend_for("SMTPS://relay.example.org"),
	                 &transport_smtp_backend);
	assert_ptr_equal(transport_backend_for("maildir:/var/mail/x"),
	                 &transport_maildir_backend);
	assert_null(transport_backend_for("http://example.org"));
	assert_null(transport_backend_for("smtp:/x"));
	assert_null(transport_backend_for(""));
	assert_null(transport_backend_for(NULL));
	assert_string_equal(transport_smtp_backend.name, "smtp");
	assert_string_equal(transport_maildir_backend.name, "maildir");
}

/* -- Maildir ------------------------------------------------------------ */

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/herald-test-transport-XXXXXX";
	char *p = mkdtemp(tmpl);

	assert_non_null(p);
	return strdup(p);
}

/* Names in dir (not . and ..), at most max; returns the count. */
static int list_dir(const char *dir, char names[][256], int max)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(dp);
	while ((e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n < max)
			snprintf(names[n], 256, "%s", e->d_name);
		n++;
	}
	closedir(dp);
	return n;
}

static void remove_tree(const char *root)
{
	static const char *const subs[] = {"tmp", "new", "cur"};
	char path[1024], names[16][256];
	size_t i;
	int n, j;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/Maildir/%s", root, subs[i]);
		n = list_dir(path, names, 16);
		for (j = 0; j < n && j < 16; j++) {
			char f[1400];
			snprintf(f, sizeof(f), "%s/%.255s", path, names[j]);
			unlink(f);
		}
		rmdir(path);
	}
	snprintf(path, sizeof(path), "%s/Maildir", root);
	rmdir(path);
	rmdir(root);
}

static void test_maildir_delivery(void **state)
{
	static const char msg[] = "From: press@herald.test\r\n"
	                          "Subject: launch\r\n\r\n"
	                          ".a dot line\r\nbody\r\n";
	char *root = make_tmpdir();
	char url[300], path[512], names[8][256];
	struct transport_config cfg = {0};
	struct seen seen = {0};
	struct diag d = {0};
	struct transport *t;
	struct stat st;
	int i, n, p[2];
	bool readable = true;

	(void)state;
	snprintf(url, sizeof(url), "maildir:%s/Maildir", root);
	cfg.url = url;
	assert_ptr_equal(transport_backend_for(url),
	                 &transport_maildir_backend);
	t = transport_maildir_backend.open(&cfg, on_done, &seen, &d);
	assert_non_null(t);
	assert_string_equal(t->ops->describe(t), url);
	for (i = 0; i < 3; i++) {
		static const char *const subs[] = {"tmp", "new", "cur"};
		snprintf(path, sizeof(path), "%s/Maildir/%s", root, subs[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
	}

	for (i = 0; i < 3; i++) {
		struct transport_msg m = {.id = 10 + i,
		                          .sender = "press@herald.test",
		                          .rcpt = "desk@example.org",
		                          .data = msg,
		                          .len = sizeof(msg) - 1};
		assert_true(t->ops->room(t) > 0);
		assert_int_equal(t->ops->submit(t, &m, &d), 0);
		/* synchronous: done before submit returns */
		assert_int_equal(seen.calls, i + 1);
		assert_int_equal(seen.last_id, 10 + i);
		assert_int_equal(seen.r.stage, TRANSPORT_DONE);
		assert_int_equal(seen.r.code, 250);
		assert_int_equal(seen.r.error, 0);
		assert_true(seen.r.queue_id[0] != '\0');
		/* the queue id is the file's name in new/ */
		snprintf(path, sizeof(path), "%s/Maildir/new/%s", root,
		         seen.r.queue_id);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		assert_int_equal(st.st_size, (off_t)(sizeof(msg) - 1));
	}
	assert_int_equal(t->ops->in_flight(t), 0);

	snprintf(path, sizeof(path), "%s/Maildir/new", root);
	n = list_dir(path, names, 8);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		char f[1400], buf[256];
		ssize_t r;
		int fd;

		snprintf(f, sizeof(f), "%s/%.255s", path, names[i]);
		fd = open(f, O_RDONLY);
		assert_true(fd >= 0);
		r = read(fd, buf, sizeof(buf));
		close(fd);
		assert_int_equal(r, (ssize_t)(sizeof(msg) - 1));
		assert_memory_equal(buf, msg, sizeof(msg) - 1);
	}
	snprintf(path, sizeof(path), "%s/Maildir/tmp", root);
	assert_int_equal(list_dir(path, names, 8), 0);

	/* step waits for the caller's descriptors */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(t->ops->step(t, 0, &p[0], 1, &readable, &d), 0);
	assert_false(readable);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(t->ops->step(t, 1000, &p[0], 1, &readable, &d), 0);
	assert_true(readable);
	close(p[0]);
	close(p[1]);

	t->ops->close(t);
	assert_int_equal(d.errors, 0);
	remove_tree(root);
	free(root);
}

static void test_maildir_write_error(void **state)
{
	char *root = make_tmpdir();
	char url[300], path[512], names[8][256], *big;
	struct transport_config cfg = {0};
	struct seen seen = {0};
	struct diag d = {0};
	struct transport *t;
	struct rlimit old, lim;
	struct transport_msg m = {.id = 7, .sender = "", .rcpt = "x@y.test"};

	(void)state;
	snprintf(url, sizeof(url), "maildir:%s/Maildir", root);
	cfg.url = url;
	t = transport_maildir_backend.open(&cfg, on_done, &seen, &d);
	assert_non_null(t);

	/* A file size limit makes write() fail part-way (EFBIG), as a full
	 * disk (ENOSPC) would; SIGXFSZ is ignored so the error comes back. */
	big = calloc(1, 100000);
	assert_non_null(big);
	memset(big, 'x', 100000);
	m.data = big;
	m.len = 100000;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(t->ops->submit(t, &m, &d), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.r.stage, TRANSPORT_LOCAL);
	assert_int_equal(seen.r.error, EFBIG);
	assert_int_equal(seen.r.code, 0);
	assert_string_equal(seen.r.queue_id, "");
	assert_non_null(strstr(seen.r.error_text, "write"));
	/* nothing half-written anywhere */
	snprintf(path, sizeof(path), "%s/Maildir/tmp", root);
	assert_int_equal(list_dir(path, names, 8), 0);
	snprintf(path, sizeof(path), "%s/Maildir/new", root);
	assert_int_equal(list_dir(path, names, 8), 0);

	t->ops->close(t);
	free(big);
	diag_clear(&d);
	remove_tree(root);
	free(root);
}

static void test_maildir_open_refused(void **state)
{
	char *root = make_tmpdir();
	char url[400], file[300];
	struct transport_config cfg = {0};
	struct diag d = {0};
	int fd;

	(void)state;
	cfg.url = "maildir:";
	assert_null(transport_maildir_backend.open(&cfg, on_done, NULL, &d));
	assert_true(d.errors > 0);
	diag_clear(&d);

	/* a file where the Maildir should be */
	snprintf(file, sizeof(file), "%s/Maildir", root);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(url, sizeof(url), "maildir:%s", file);
	cfg.url = url;
	assert_null(transport_maildir_backend.open(&cfg, on_done, NULL, &d));
	assert_non_null(strstr(diag_first(&d), "not a directory"));
	diag_clear(&d);
	unlink(file);
	rmdir(root);
	free(root);
}

/* -- SMTP, before and without a server ---------------------------------- */

/* A port on 127.0.0.1 that nothing listens on (bound, then released). */
static int closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void test_smtp_address_refusal(void **state)
{
	static const struct {
		const char *sender, *rcpt, *why;
	} bad[] = {
	    {"press@herald.test", "a b@example.org", "space"},
	    {"press@herald.test", "a\r@example.org", "control"},
	    {"press@herald.test", "a\n@example.org", "control"},
	    {"press@herald.test", "a\t@example.org", "control"},
	    {"press@herald.test", "<a@example.org>", "'<' or '>'"},
	    {"press@herald.test", "a@example.org>\r\nRCPT TO:<b@x.test",
	     "'<' or '>'"},
	    {"press@herald.test", "", "empty"},
	    {"press@herald.test\r\nRSET", "a@example.org", "control"},
	    {"<>", "a@example.org", "'<' or '>'"},
	    {"pr ess@herald.test", "a@example.org", "space"},
	};
	char url[64], longest[300];
	struct transport_config cfg = {0};
	struct seen seen = {0};
	struct diag d = {0};
	struct transport *t;
	size_t i;

	(void)state;
	snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", closed_port());
	cfg.url = url;
	t = transport_smtp_backend.open(&cfg, on_done, &seen, &d);
	assert_non_null(t);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct transport_msg m = {.id = (int64_t)i,
		                          .sender = bad[i].sender,
		                          .rcpt = bad[i].rcpt,
		                          .data = "x\r\n",
		                          .len = 3};
		assert_int_equal(t->ops->submit(t, &m, &d), -1);
		if (strstr(diag_first(&d), bad[i].why) == NULL)
			fail_msg("%zu: %s, want \"%s\"", i, diag_first(&d),
			         bad[i].why);
		assert_int_equal(t->ops->in_flight(t), 0);
		diag_clear(&d);
	}

	/* 254 characters is the limit, 255 is over it */
	memset(longest, 'a', sizeof(longest));
	memcpy(longest + 255 - 12, "@example.org", 13);
	{
		struct transport_msg m = {.id = 99,
		                          .sender = "",
		                          .rcpt = longest,
		                          .data = "x\r\n",
		                          .len = 3};
		assert_int_equal(strlen(longest), 255);
		assert_int_equal(t->ops->submit(t, &m, &d), -1);
		assert_non_null(strstr(diag_first(&d), "255 characters"));
		diag_clear(&d);
		m.rcpt = longest + 1;
		assert_int_equal(t->ops->submit(t, &m, &d), 0);
		assert_int_equal(t->ops->in_flight(t), 1);
		/* nothing listens there: refused at connect */
		step_until(t, &seen, 1, 10000);
		assert_int_equal(seen.r.stage, TRANSPORT_CONNECT);
		assert_int_equal(seen.r.code, 0);
		assert_false(seen.r.conn_lost);
		assert_false(seen.r.tls);
		assert_true(seen.r.error != 0);
		assert_true(seen.r.error_text[0] != '\0');
		assert_int_equal(t->ops->in_flight(t), 0);
	}
	t->ops->close(t);
	assert_int_equal(seen.calls, 1);
	diag_clear(&d);
}

static void test_smtp_tls_policy(void **state)
{
	static const struct {
		const char *url;
		bool allow_plain, auth;
		const char *describe;
	} cases[] = {
	    {"smtp://192.0.2.1", false, false,
	     "smtp://192.0.2.1:25 STARTTLS required"},
	    {"smtp://192.0.2.1:587", false, true,
	     "smtp://192.0.2.1:587 STARTTLS required (AUTH) user=press"},
	    {"smtp://192.0.2.1", true, false,
	     "smtp://192.0.2.1:25 STARTTLS if offered (allow_plain)"},
	    /* credentials never go over a network in clear */
	    {"smtp://192.0.2.1", true, true,
	     "smtp://192.0.2.1:25 STARTTLS required (AUTH) user=press"},
	    {"smtp://relay.example.org", false, false,
	     "smtp://relay.example.org:25 STARTTLS required"},
	    /* a name is not an address, even this one */
	    {"smtp://localhost:2525", false, false,
	     "smtp://localhost:2525 STARTTLS required"},
	    {"smtp://128.0.0.1", false, false,
	     "smtp://128.0.0.1:25 STARTTLS required"},
	    {"smtp://127.0.0.1:2525", false, false,
	     "smtp://127.0.0.1:2525 STARTTLS if offered (loopback)"},
	    {"smtp://127.8.9.10", false, false,
	     "smtp://127.8.9.10:25 STARTTLS if offered (loopback)"},
	    /* AUTH in clear even on loopback only when allow_plain says so */
	    {"smtp://[::1]:2525", false, true,
	     "smtp://[::1]:2525 STARTTLS required (AUTH; relay.allow_plain "
	     "not set) user=press"},
	    {"smtp://[::1]:2525", true, true,
	     "smtp://[::1]:2525 STARTTLS if offered (loopback) user=press"},
	    {"smtps://192.0.2.1", false, false, "smtps://192.0.2.1:465 TLS"},
	};
	struct seen seen = {0};
	struct diag d = {0};
	size_t i;

	(void)state;
	/* None of these connects: open() only decides; nothing is
	 * submitted, and close() has no connection to end. */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct transport_config cfg = {.url = cases[i].url};
		struct transport *t;

		cfg.allow_plain = cases[i].allow_plain;
		if (cases[i].auth) {
			cfg.user = "press";
			cfg.password = "Pw-unit-secret";
		}
		t = transport_smtp_backend.open(&cfg, on_done, &seen, &d);
		if (t == NULL)
			fail_msg("%s: %s", cases[i].url, diag_first(&d));
		assert_string_equal(t->ops->describe(t), cases[i].describe);
		assert_null(strstr(t->ops->describe(t), "secret"));
		assert_int_equal(t->ops->room(t), 8);
		t->ops->close(t);
	}
	assert_int_equal(seen.calls, 0);
	assert_int_equal(d.errors, 0);
}

static void test_smtp_open_refused(void **state)
{
	static const struct {
		const char *url, *helo, *why;
		bool user, password;
	} cases[] = {
	    {"smtp://press:Pw-unit-secret@127.0.0.1", NULL, "user or password",
	     false, false},
	    {"smtp://press@127.0.0.1", NULL, "user or password", false, false},
	    {"smtp://127.0.0.1/helo.example.org", NULL, "path", false, false},
	    {"smtp://127.0.0.1?x=1", NULL, "query", false, false},
	    {"http://127.0.0.1", NULL, "not smtp or smtps", false, false},
	    {"smtp://", NULL, "relay URL", false, false},
	    {"smtp://127.0.0.1", NULL, "both a user and a password", true,
	     false},
	    {"smtp://127.0.0.1", NULL, "both a user and a password", false,
	     true},
	    {"smtp://127.0.0.1", "bad name", "cannot have", false, false},
	    {"smtp://127.0.0.1", "a/b", "cannot have", false, false},
	    {"smtp://127.0.0.1", "", "1 to 255", false, false},
	};
	struct seen seen = {0};
	struct diag d = {0};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct transport_config cfg = {.url = cases[i].url,
		                               .helo = cases[i].helo};

		if (cases[i].user)
			cfg.user = "press";
		if (cases[i].password)
			cfg.password = "Pw-unit-secret";
		assert_null(
		    transport_smtp_backend.open(&cfg, on_done, &seen, &d));
		if (strstr(diag_first(&d), cases[i].why) == NULL)
			fail_msg("%s: %s, want \"%s\"", cases[i].url,
			         diag_first(&d), cases[i].why);
		/* the password is never repeated */
		assert_null(strstr(diag_first(&d), "secret"));
		diag_clear(&d);
	}
	/* more connections than the transport runs threads for */
	{
		struct transport_config cfg = {.url = "smtp://127.0.0.1",
		                               .max_connections = 65};

		assert_null(
		    transport_smtp_backend.open(&cfg, on_done, &seen, &d));
		assert_non_null(strstr(diag_first(&d), "more than 64"));
		diag_clear(&d);
	}
	/* a refused open closes nothing it did not open (it once closed
	 * descriptor 0 for every worker it had not started) */
	assert_int_not_equal(fcntl(0, F_GETFD), -1);
	/* an address literal is a good EHLO name */
	{
		struct transport_config cfg = {.url = "smtp://127.0.0.1",
		                               .helo = "[192.0.2.1]"};
		struct transport *t =
		    transport_smtp_backend.open(&cfg, on_done, &seen, &d);
		assert_non_null(t);
		t->ops->close(t);
	}
	assert_int_equal(seen.calls, 0);
}

/* A listener on 127.0.0.1 that completes connections (the kernel does)
 * but never says a word: the messages stay in flight. */
static int silent_listener(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_smtp_close_aborts_and_step_watches_fds(void **state)
{
	struct transport_config cfg = {0};
	struct seen seen = {0};
	struct diag d = {0};
	struct transport *t;
	char url[64];
	int lfd, port, p[2], i;
	bool readable = true;
	double deadline, start;

	(void)state;
	lfd = silent_listener(&port);
	snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", port);
	cfg.url = url;
	cfg.max_connections = 2;
	t = transport_smtp_backend.open(&cfg, on_done, &seen, &d);
	assert_non_null(t);
	for (i = 0; i < 2; i++) {
		struct transport_msg m = {.id = i,
		                          .sender = "press@herald.test",
		                          .rcpt = "desk@example.org",
		                          .data = "x\r\n",
		                          .len = 3};
		assert_int_equal(t->ops->submit(t, &m, &d), 0);
	}
	assert_int_equal(t->ops->in_flight(t), 2);
	assert_int_equal(t->ops->room(t), 0);
	{
		struct transport_msg m = {.id = 3, .sender = "", .rcpt = "a@b"};
		assert_int_equal(t->ops->submit(t, &m, &d), -1);
		assert_non_null(strstr(diag_first(&d), "no room"));
		diag_clear(&d);
	}

	/* the caller's descriptor wakes step, with the messages waiting */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(t->ops->step(t, 0, &p[0], 1, &readable, &d), 0);
	assert_false(readable);
	assert_int_equal(write(p[1], "x", 1), 1);
	deadline = now_ms() + 5000;
	do
		assert_int_equal(t->ops->step(t, 1000, &p[0], 1, &readable, &d),
		                 0);
	while (!readable && now_ms() < deadline);
	assert_true(readable);
	assert_int_equal(seen.calls, 0);
	close(p[0]);
	close(p[1]);

	/* close() neither hangs on the silent server nor sends it a dot */
	start = now_ms();
	t->ops->close(t);
	assert_true(now_ms() - start < 2000);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.r.stage, TRANSPORT_LOCAL);
	assert_string_equal(seen.r.error_text, "aborted");
	close(lfd);
	diag_clear(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_reply),
	    cmocka_unit_test(test_backend_for),
	    cmocka_unit_test(test_maildir_delivery),
	    cmocka_unit_test(test_maildir_write_error),
	    cmocka_unit_test(test_maildir_open_refused),
	    cmocka_unit_test(test_smtp_address_refusal),
	    cmocka_unit_test(test_smtp_tls_policy),
	    cmocka_unit_test(test_smtp_open_refused),
	    cmocka_unit_test(test_smtp_close_aborts_and_step_watches_fds),
	};

	/* The daemon ignores SIGPIPE, and so does this test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
