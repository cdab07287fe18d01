/*
 * transport_send — herald's transports as a command, so that integration
 * tests (tests/test_transport_tls.py) can send through them to real
 * servers and the sending rate can be measured.
 *
 *   transport_send URL [--ca FILE] [--user U --password-env VAR]
 *                  [--count N] [--conns N] [--per-conn N] [--timeout S]
 *                  [--from ADDR] [--to ADDR] [--helo NAME] [--allow-plain]
 *                  [--quiet] < message
 *
 * The message (CRLF line ends) is read from stdin and sent --count times
 * (default 1) from --from to --to; "{n}" in --to becomes the message's
 * number (0, 1, ...). --timeout sets the connect, reply and dot timeouts;
 * --connect-timeout and --dot-timeout (after it) set one of them.
 * --close-after S closes the transport after S seconds, with messages
 * still in flight (they are reported as the transport ends them).
 * --multi sends through transport_smtp_multi_backend (every connection on
 * one thread, one libcurl multi) instead of herald's thread per
 * connection, for tests of what that transport does while libcurl
 * blocks for one message's dot.
 * stdout gets one line per message, key=value:
 *   n=0 stage=done code=250 status=2.0.0 queue_id=... timeout=0 tls=0
 *   conn_lost=0 error=0 ms=1 text="250 2.0.0 Ok: queued as ..."
 *   error_text="..."
 * (--quiet: only the messages that were not delivered). stderr gets the
 * relay as describe() shows it first, and a summary line last:
 *   summary sent=N delivered=N failed=N seconds=S rate=R
 * Exit status: 0 all delivered, 1 some not, EX_USAGE, EX_CONFIG (the
 * transport did not open), EX_SOFTWARE (the transport failed).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "herald/file.h"
#include "herald/transport.h"

/* Larger than any message the tests send. */
#define SEND_INPUT_MAX (64u * 1024 * 1024)

struct send_state {
	size_t delivered, failed, finished;
	bool quiet;
};

static const char *const stage_names[] = {
    "done", "connect", "auth", "mail", "rcpt", "data", "dot", "local",
};

/* s as a double-quoted value: backslash, quote and line ends escaped. */
static void print_quoted(const char *s)
{
	putchar('"');
	for (; s != NULL && *s; s++) {
		if (*s == '"' || *s == '\\') {
			putchar('\\');
			putchar(*s);
		} else if (*s == '\n') {
			fputs("\\n", stdout);
		} else if (*s == '\r') {
			fputs("\\r", stdout);
		} else {
			putchar(*s);
		}
	}
	putchar('"');
}

static void on_done(void *arg, const struct transport_msg *m,
                    const struct transport_reply *r)
{
	struct send_state *st = arg;
	bool ok = r->stage == TRANSPORT_DONE;

	st->finished++;
	if (ok)
		st->delivered++;
	else
		st->failed++;
	if (ok && st->quiet)
		return;
	printf("n=%lld stage=%s code=%d status=%s queue_id=%s timeout=%d "
	       "tls=%d conn_lost=%d error=%d ms=%u text=",
	       (long long)m->id, stage_names[r->stage], r->code, r->status,
	       r->queue_id, r->timeout, r->tls, r->conn_lost, r->error,
	       r->duration_ms);
	print_quoted(r->text);
	fputs(" error_text=", stdout);
	print_quoted(r->error_text);
	putchar('\n');
}

/* to with "{n}" replaced by n, in buf. */
static const char *rcpt_for(const char *to, long long n, char *buf, size_t size)
{
	const char *p = strstr(to, "{n}");

	if (p == NULL)
		return to;
	snprintf(buf, size, "%.*s%lld%s", (int)(p - to), to, n, p + 3);
	return buf;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fputs("usage: transport_send URL [--ca FILE] [--user U --password-env "
	      "VAR] [--count N] [--conns N] [--per-conn N] [--timeout S] "
	      "[--connect-timeout S] [--dot-timeout S] [--close-after S] "
	      "[--from ADDR] [--to ADDR] [--helo NAME] [--allow-plain] "
	      "[--quiet] [--multi] < message\n",
	      stderr);
	return EX_USAGE;
}

int main(int argc, char **argv)
{
	struct transport_config cfg = {0};
	struct send_state st = {0};
	const struct transport_backend *be;
	struct transport *t = NULL;
	struct diag d = {0};
	const char *from = "press@herald.test", *to = "desk@herald.test";
	const char *password_env = NULL;
	long long count = 1, next = 0;
	char *data = NULL, rcpt[512];
	size_t len = 0;
	double t0, secs, close_after = 0;
	bool multi = false;
	int i, rv = EX_SOFTWARE;

	/* The daemon ignores SIGPIPE; so does its stand-in. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		return usage();
	cfg.url = argv[1];
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--allow-plain") == 0) {
			cfg.allow_plain = true;
			continue;
		}
		if (strcmp(a, "--quiet") == 0) {
			st.quiet = true;
			continue;
		}
		if (strcmp(a, "--multi") == 0) {
			multi = true;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--ca") == 0)
			cfg.ca_file = v;
		else if (strcmp(a, "--user") == 0)
			cfg.user = v;
		else if (strcmp(a, "--password-env") == 0)
			password_env = v;
		else if (strcmp(a, "--count") == 0)
			count = atoll(v);
		else if (strcmp(a, "--conns") == 0)
			cfg.max_connections = (unsigned)atoi(v);
		else if (strcmp(a, "--per-conn") == 0)
			cfg.max_per_connection = (unsigned)atoi(v);
		else if (strcmp(a, "--timeout") == 0)
			cfg.connect_timeout = cfg.reply_timeout =
			    cfg.dot_timeout = (unsigned)atoi(v);
		else if (strcmp(a, "--connect-timeout") == 0)
			cfg.connect_timeout = (unsigned)atoi(v);
		else if (strcmp(a, "--dot-timeout") == 0)
			cfg.dot_timeout = (unsigned)atoi(v);
		else if (strcmp(a, "--close-after") == 0)
			close_after = atof(v);
		else if (strcmp(a, "--from") == 0)
			from = v;
		else if (strcmp(a, "--to") == 0)
			to = v;
		else if (strcmp(a, "--helo") == 0)
			cfg.helo = v;
		else
			return usage();
	}
	if (password_env != NULL) {
		cfg.password = getenv(password_env);
		if (cfg.password == NULL) {
			fprintf(stderr, "transport_send: %s is not set\n",
			        password_env);
			return EX_USAGE;
		}
	}
	if (count < 0)
		return usage();
	if (file_read("/dev/stdin", SEND_INPUT_MAX, &data, &len, &d) < 0) {
		fprintf(stderr, "transport_send: %s\n", diag_first(&d));
		diag_clear(&d);
		return EX_NOINPUT;
	}
	be = transport_backend_for(cfg.url);
	if (multi && be == &transport_smtp_backend)
		be = &transport_smtp_multi_backend;
	if (be == NULL) {
		fprintf(stderr, "transport_send: no transport for %s\n",
		        cfg.url);
		rv = EX_CONFIG;
		goto out;
	}
	t = be->open(&cfg, on_done, &st, &d);
	if (t == NULL) {
		fprintf(stderr, "transport_send: %s\n", diag_first(&d));
		rv = EX_CONFIG;
		goto out;
	}
	fprintf(stderr, "relay=%s\n", be->describe(t));

	t0 = now_seconds();
	while (st.finished < (size_t)count &&
	       (close_after <= 0 || now_seconds() - t0 < close_after)) {
		while (next < count && be->room(t) > 0) {
			struct transport_msg m = {
			    .id = next,
			    .sender = from,
			    .rcpt = rcpt_for(to, next, rcpt, sizeof(rcpt)),
			    .data = data,
			    .len = len,
			};
			if (be->submit(t, &m, &d) < 0) {
				fprintf(stderr, "transport_send: %s\n",
				        diag_first(&d));
				goto out;
			}
			next++;
		}
		if (st.finished < (size_t)count &&
		    be->step(t, 1000, NULL, 0, NULL, &d) < 0) {
			fprintf(stderr, "transport_send: %s\n", diag_first(&d));
			goto out;
		}
	}
	if (st.finished < (size_t)count) {
		/* --close-after: what is in flight is done as "aborted" */
		be->close(t);
		t = NULL;
	}
	secs = now_seconds() - t0;
	fflush(stdout);
	fprintf(stderr,
	        "summary sent=%lld delivered=%zu failed=%zu seconds=%.3f "
	        "rate=%.0f\n",
	        count, st.delivered, st.failed, secs,
	        secs > 0 ? (double)count / secs : 0.0);
	rv = st.failed ? 1 : 0;
out:
	if (t != NULL)
		be->close(t);
	diag_clear(&d);
	free(data);
	return rv;
}
