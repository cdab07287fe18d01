/*
 * herald status, log, show, cancel, pause, resume, retry — what admins use
 * to watch and steer deliveries. Everything is read from the store; the
 * daemon need not be running.
 *
 * Output formats: tables fit the terminal (long texts are cut with "…");
 * `log --format json` writes JSON Lines (one object per attempt, keys as
 * in the table's header, lower case), `--format csv` RFC 4180 CSV with a
 * header row. Times are UTC, ISO 8601.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "herald/config.h"
#include "herald/control.h"
#include "herald/datefmt.h"
#include "herald/store.h"
#include "herald_cli.h"

struct admin_opts {
	const char *cmd;
	const char *config;
	const char *store;
	const char *release;
	const char *state;
	const char *recipient;
	const char *since;
	const char *format;
	const char *arg; /* the positional argument */
	bool watch, failed, deferred;
};

static void admin_usage(FILE *f, const char *cmd)
{
	if (strcmp(cmd, "status") == 0)
		fputs("usage: herald status [RELEASE] [--watch] [--store PATH] "
		      "[--config FILE]\n\n"
		      "Releases with their deliveries counted by state. "
		      "--watch follows a release\n"
		      "until nothing is left to send (on a terminal: a "
		      "progress bar with rate and ETA).\n",
		      f);
	else if (strcmp(cmd, "log") == 0)
		fputs("usage: herald log [--release R] [--state S] "
		      "[--recipient EMAIL] [--since TIME]\n"
		      "                  [--format table|json|csv] [--store "
		      "PATH] [--config FILE]\n\n"
		      "The delivery log, one row per attempt, oldest first. "
		      "S: sent, deferred,\n"
		      "failed, expired. TIME as for queue --at (e.g. "
		      "2026-11-27T00:00Z) or -1h, -2d.\n"
		      "json: one object per line with keys time, release, "
		      "release_id, delivery,\n"
		      "recipient, attempt, relay, code, status, result, "
		      "duration_ms, queue_id, reply.\n"
		      "csv: the same columns, with a header row.\n",
		      f);
	else if (strcmp(cmd, "show") == 0)
		fputs("usage: herald show DELIVERY|EMAIL [--release R] "
		      "[--store PATH] [--config FILE]\n\n"
		      "One delivery with its whole history: by its number "
		      "(from log), or by the\n"
		      "journalist's address (the newest delivery to it, or "
		      "the one of release R).\n",
		      f);
	else if (strcmp(cmd, "retry") == 0)
		fputs(
		    "usage: herald retry RELEASE --failed|--deferred [--store "
		    "PATH]\n\n"
		    "Make the release's failed (or deferred) deliveries due "
		    "again now.\n",
		    f);
	else
		fprintf(f,
		        "usage: herald %s RELEASE [--store PATH] [--config "
		        "FILE]\n\n"
		        "RELEASE is a release number or name (the newest of "
		        "that name).\n",
		        cmd);
}

static int admin_parse(int argc, char **argv, struct admin_opts *o)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"store", required_argument, NULL, 'S'},
	    {"release", required_argument, NULL, 'r'},
	    {"state", required_argument, NULL, 's'},
	    {"recipient", required_argument, NULL, 'e'},
	    {"since", required_argument, NULL, 't'},
	    {"format", required_argument, NULL, 'f'},
	    {"watch", no_argument, NULL, 'w'},
	    {"failed", no_argument, NULL, 'F'},
	    {"deferred", no_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->cmd = argv[0];
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			o->config = optarg;
			break;
		case 'S':
			o->store = optarg;
			break;
		case 'r':
			o->release = optarg;
			break;
		case 's':
			o->state = optarg;
			break;
		case 'e':
			o->recipient = optarg;
			break;
		case 't':
			o->since = optarg;
			break;
		case 'f':
			o->format = optarg;
			break;
		case 'w':
			o->watch = true;
			break;
		case 'F':
			o->failed = true;
			break;
		case 'D':
			o->deferred = true;
			break;
		case 'h':
			admin_usage(stdout, o->cmd);
			return -1;
		default:
			admin_usage(stderr, o->cmd);
			return EX_USAGE;
		}
	}
	if (optind < argc)
		o->arg = argv[optind++];
	if (optind < argc) {
		admin_usage(stderr, o->cmd);
		return EX_USAGE;
	}
	return 0;
}

/* Open the store named by --store or the config. */
int cli_since(const char *cmd, const char *s, time_t *out)
{
	const char *why = NULL;
	time_t now = time(NULL);

	if (s[0] == '-') {
		char plus[32];
		snprintf(plus, sizeof(plus), "+%s", s + 1);
		if (datefmt_parse_when(plus, now, out, &why) == 0) {
			*out = now - (*out - now);
			return 0;
		}
	} else if (datefmt_parse_when(s, now, out, &why) == 0)
		return 0;
	fprintf(stderr, "herald %s: --since %s: %s\n", cmd, s,
	        why ? why : "not a time");
	return -1;
}

struct store *cli_store(const char *config, const char *store, struct diag *d)
{
	struct config *cfg = NULL;
	struct store *st;

	if (store == NULL) {
		cfg = config_load(config_path(config), d);
		if (cfg == NULL)
			return NULL;
	}
	st = store_open(store ? store : cfg->store, d);
	config_free(cfg);
	return st;
}

static int admin_release(struct store *st, const char *arg, int64_t *id,
                         struct diag *d)
{
	return store_ops(st)->release_find(st, arg, id, d);
}

unsigned cli_width(void)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");

	if (isatty(STDOUT_FILENO) &&
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (cols != NULL && atoi(cols) > 20)
		return (unsigned)atoi(cols);
	return 120;
}

void cli_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, size, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- what waits for a lease ----------------------------------------------- */

/* "21:15:14 UTC", or with the date when that is not today (UTC). */
static void admin_clock(time_t t, char *buf, size_t size)
{
	struct tm tm, today;
	time_t now = time(NULL);

	gmtime_r(&t, &tm);
	gmtime_r(&now, &today);
	strftime(buf, size,
	         tm.tm_yday == today.tm_yday && tm.tm_year == today.tm_year
	             ? "%H:%M:%S UTC"
	             : "%Y-%m-%d %H:%M:%S UTC",
	         &tm);
}

/* One group of deliveries held by a claim, as a sentence: by whom, until
 * when, and what follows. Only groups that wait (their heraldd is gone,
 * or nobody is recorded) unless all is set. */
struct admin_holds {
	const char *indent;
	bool all, quiet; /* quiet: count, print nothing */
	size_t lines, sum;
};

static int admin_hold(void *arg, const struct store_hold *h)
{
	struct admin_holds *a = arg;
	bool alive = h->owner.id != 0 && control_alive(&h->owner, time(NULL));
	char until[40], at[40];

	if (alive && !a->all)
		return 0;
	a->lines++;
	a->sum += h->n;
	if (a->quiet)
		return 0;
	admin_clock(h->lease_until, until, sizeof(until));
	fputs(a->indent, stdout);
	if (a->all)
		printf("lease:      ");
	else
		printf("%zu ", h->n);
	if (h->owner.id == 0) {
		printf("held by a heraldd this store does not name until %s, "
		       "may have been sent\n",
		       until);
		return 0;
	}
	if (h->handed) {
		admin_clock(h->handed_at, at, sizeof(at));
		printf("held by heraldd pid %ld on %s until %s, may have been "
		       "sent (handed to the relay at %s)",
		       h->owner.pid, h->owner.host, until, at);
		if (alive)
			printf(": on a relay connection, waiting for the "
			       "relay's answer\n");
		else
			printf(": that heraldd is gone, so %s due again when "
			       "the lease runs out, with the same Message-ID\n",
			       h->n == 1 ? "it is" : "they are");
		return 0;
	}
	printf("claimed by heraldd pid %ld on %s until %s, not handed to the "
	       "relay",
	       h->owner.pid, h->owner.host, until);
	if (alive)
		printf(": on its way\n");
	else
		printf(": that heraldd is gone, so %s due again as soon as a "
		       "heraldd starts or notices (within a minute)\n",
		       h->n == 1 ? "it is" : "they are");
	return 0;
}

/* herald show: who holds the delivery, and whether it may have reached
 * its journalist twice. */
static int admin_show_hold(struct store *st, int64_t id, struct diag *d)
{
	struct admin_holds a = {.indent = "", .all = true};
	enum store_duplicate why;
	time_t at;
	char when[40];

	if (store_ops(st)->holds_each(st, 0, id, admin_hold, &a, d) < 0 ||
	    store_ops(st)->duplicate_get(st, id, &why, &at, d) < 0)
		return -1;
	if (why == STORE_DUP_NONE)
		return 0;
	cli_time(at, when, sizeof(when));
	printf("may duplicate: yes, since %s: %s; a second copy has the "
	       "same Message-ID\n",
	       when,
	       why == STORE_DUP_STOP
	           ? "heraldd stopped (SIGTERM) while it was on a relay "
	             "connection and the grace ran out, so it went again"
	           : "it was on a relay connection of a heraldd that ended "
	             "without its result, and went again when the lease ran "
	             "out");
	return 0;
}

/* ---- status ------------------------------------------------------------- */

static size_t admin_pending(const struct store_release_info *r)
{
	return r->count[STORE_QUEUED] + r->count[STORE_SENDING] +
	       r->count[STORE_DEFERRED];
}

static int admin_status_row(void *arg, const struct store_release_info *r)
{
	unsigned width = *(unsigned *)arg;
	char queued[32];

	cli_time(r->queued_at, queued, sizeof(queued));
	printf("%-5lld %-24.24s %-9s %-20s %6zu %6zu %7zu %7zu %6zu",
	       (long long)r->id, r->name, store_release_state_name(r->state),
	       queued, r->total, r->count[STORE_SENT], admin_pending(r),
	       r->count[STORE_DEFERRED], r->count[STORE_FAILED]);
	if (width >= 130)
		printf(" %7zu %10zu %9zu %7zu", r->count[STORE_BOUNCED],
		       r->count[STORE_SUPPRESSED], r->count[STORE_CANCELLED],
		       r->count[STORE_EXPIRED]);
	printf("\n");
	return 0;
}

struct admin_watch {
	size_t sent0, done, total, pending;
	time_t t0;
	struct store_release_info last;
};

static int admin_watch_row(void *arg, const struct store_release_info *r)
{
	struct admin_watch *w = arg;

	w->last = *r;
	w->total = r->total;
	w->pending = admin_pending(r);
	w->done = r->total - w->pending;
	return 0;
}

static volatile sig_atomic_t admin_interrupted;

static void admin_sigint(int sig)
{
	(void)sig;
	admin_interrupted = 1;
}

/* Follow one release until nothing is left to send. */
static int admin_watch(struct store *st, int64_t id, struct diag *d)
{
	struct admin_watch w = {0};
	size_t held_sum = 0; /* what waits for a lease, as last said */
	bool tty = isatty(STDOUT_FILENO);
	struct sigaction sa = {.sa_handler = admin_sigint};

	sigaction(SIGINT, &sa, NULL);
	if (store_ops(st)->releases_each(st, id, admin_watch_row, &w, d) < 0)
		return EX_TEMPFAIL;
	w.sent0 = w.done;
	w.t0 = time(NULL);
	while (!admin_interrupted) {
		double elapsed = difftime(time(NULL), w.t0);
		double rate =
		    elapsed > 0 ? (double)(w.done - w.sent0) / elapsed : 0;
		unsigned width = cli_width(), bar;
		double frac = w.total ? (double)w.done / (double)w.total : 1;
		char eta[32] = "-";

		if (rate > 0 && w.pending > 0) {
			long s = (long)((double)w.pending / rate);
			snprintf(eta, sizeof(eta), "%ld:%02ld:%02ld", s / 3600,
			         s / 60 % 60, s % 60);
		}
		if (tty) {
			bar = width > 70 ? width - 60 : 10;
			printf("\r[");
			for (unsigned i = 0; i < bar; i++)
				putchar(i < (unsigned)(frac * bar) ? '#' : '.');
			printf(
			    "] %3.0f%% %zu/%zu sent %zu failed %.1f/s ETA %s ",
			    frac * 100, w.last.count[STORE_SENT], w.total,
			    w.last.count[STORE_FAILED], rate, eta);
		} else {
			printf("release=%lld total=%zu sent=%zu pending=%zu "
			       "deferred=%zu failed=%zu rate=%.1f/s eta=%s\n",
			       (long long)id, w.total, w.last.count[STORE_SENT],
			       w.pending, w.last.count[STORE_DEFERRED],
			       w.last.count[STORE_FAILED], rate, eta);
		}
		if (w.last.count[STORE_SENDING] > 0) {
			/* what waits for the lease of a heraldd that is gone;
			 * on a terminal, said again only when it changes */
			struct admin_holds q = {.quiet = true};
			struct admin_holds a = {.indent = tty ? "\n  " : "  "};
			if (store_ops(st)->holds_each(st, id, 0, admin_hold, &q,
			                              d) < 0 ||
			    (q.lines > 0 && (!tty || q.sum != held_sum) &&
			     store_ops(st)->holds_each(st, id, 0, admin_hold, &a,
			                               d) < 0))
				return EX_TEMPFAIL;
			held_sum = q.sum;
		}
		fflush(stdout);
		if (w.pending == 0)
			break;
		sleep(1);
		if (store_ops(st)->releases_each(st, id, admin_watch_row, &w,
		                                 d) < 0)
			return EX_TEMPFAIL;
	}
	if (tty)
		printf("\n");
	return 0;
}

int cmd_status(int argc, char **argv)
{
	struct admin_opts o;
	struct diag d = {0};
	struct store *st = NULL;
	int64_t id = 0;
	unsigned width = cli_width();
	int rc = admin_parse(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = EX_TEMPFAIL;
	st = cli_store(o.config, o.store, &d);
	if (st == NULL)
		goto done;
	if (o.arg != NULL && admin_release(st, o.arg, &id, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	if (o.watch) {
		if (id == 0) {
			fprintf(stderr, "herald status: --watch needs a "
			                "RELEASE\n");
			rc = EX_USAGE;
			goto done;
		}
		rc = admin_watch(st, id, &d);
		goto done;
	}
	printf("%-5s %-24s %-9s %-20s %6s %6s %7s %7s %6s", "ID", "RELEASE",
	       "STATE", "QUEUED", "TOTAL", "SENT", "PENDING", "DEFERRED",
	       "FAILED");
	if (width >= 130)
		printf(" %7s %10s %9s %7s", "BOUNCED", "SUPPRESSED",
		       "CANCELLED", "EXPIRED");
	printf("\n");
	if (store_ops(st)->releases_each(st, id, admin_status_row, &width, &d) <
	    0)
		goto done;
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	if (st != NULL)
		store_close(st);
	return rc;
}

/* ---- log ------------------------------------------------------------------
 */

enum admin_format { ADMIN_TABLE, ADMIN_JSON, ADMIN_CSV };

struct admin_log {
	enum admin_format fmt;
	unsigned width;
	size_t rows;
};

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t cli_utf8_len(const unsigned char *p)
{
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* overlong, surrogates, past U+10FFFF */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

/* Text from the store may hold what a remote server sent (bounce
 * diagnostics): bytes that are not UTF-8 become U+FFFD, so the output is
 * always valid JSON. */
void cli_json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putchar('"');
	while (p != NULL && *p) {
		unsigned char c = *p;
		size_t n;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else if ((n = cli_utf8_len(p)) == 0)
			fputs("\\ufffd", stdout);
		else {
			fwrite(p, 1, n, stdout);
			p += n;
			continue;
		}
		p++;
	}
	putchar('"');
}

void cli_csv_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static int admin_log_row(void *arg, const struct store_log_row *r)
{
	struct admin_log *l = arg;
	char at[32];

	cli_time(r->at, at, sizeof(at));
	l->rows++;
	if (l->fmt == ADMIN_JSON) {
		printf("{\"time\":\"%s\",\"release\":", at);
		cli_json_str(r->release);
		printf(",\"release_id\":%lld,\"delivery\":%lld,\"recipient\":",
		       (long long)r->release_id, (long long)r->delivery_id);
		cli_json_str(r->email);
		printf(",\"attempt\":%u,\"relay\":", r->attempt);
		cli_json_str(r->relay);
		printf(",\"code\":%d,\"status\":", r->code);
		cli_json_str(r->status ? r->status : "");
		printf(",\"result\":\"%s\",\"duration_ms\":%u,\"queue_id\":",
		       store_state_name(r->result), r->duration_ms);
		cli_json_str(r->queue_id ? r->queue_id : "");
		printf(",\"reply\":");
		cli_json_str(r->text ? r->text : "");
		printf("}\n");
	} else if (l->fmt == ADMIN_CSV) {
		printf("%s,", at);
		cli_csv_str(r->release);
		printf(",%lld,%lld,", (long long)r->release_id,
		       (long long)r->delivery_id);
		cli_csv_str(r->email);
		printf(",%u,", r->attempt);
		cli_csv_str(r->relay);
		printf(",%d,%s,%s,%u,", r->code, r->status ? r->status : "",
		       store_state_name(r->result), r->duration_ms);
		cli_csv_str(r->queue_id ? r->queue_id : "");
		putchar(',');
		cli_csv_str(r->text ? r->text : "");
		printf("\r\n");
	} else {
		int room = (int)l->width - 112;
		char reply[512];
		size_t k = 0;
		for (const char *p = r->text ? r->text : "";
		     *p && k + 1 < sizeof(reply); p++)
			reply[k++] = *p == '\n' ? ' ' : *p;
		reply[k] = '\0';
		if (room < 10)
			room = 10;
		if ((int)k > room && room >= 3) {
			memcpy(reply + room - 3, "...", 4);
		}
		printf("%-20s %5lld %7lld %-30.30s %3u %4d %-6s %-9s %6u %s\n",
		       at, (long long)r->release_id, (long long)r->delivery_id,
		       r->email, r->attempt, r->code,
		       r->status ? r->status : "-", store_state_name(r->result),
		       r->duration_ms, reply);
	}
	return 0;
}

static void admin_log_header(void)
{
	printf("%-20s %5s %7s %-30s %3s %4s %-6s %-9s %6s %s\n", "TIME", "REL",
	       "DELIV", "RECIPIENT", "TRY", "CODE", "STATUS", "RESULT", "MS",
	       "REPLY");
}

int cmd_log(int argc, char **argv)
{
	struct admin_opts o;
	struct diag d = {0};
	struct store *st = NULL;
	struct store_log_filter f = {0};
	struct admin_log l = {.width = cli_width()};
	int rc = admin_parse(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = EX_USAGE;
	if (o.format == NULL || strcmp(o.format, "table") == 0)
		l.fmt = ADMIN_TABLE;
	else if (strcmp(o.format, "json") == 0)
		l.fmt = ADMIN_JSON;
	else if (strcmp(o.format, "csv") == 0)
		l.fmt = ADMIN_CSV;
	else {
		fprintf(stderr, "herald log: --format is table, json or csv\n");
		goto done;
	}
	if (o.state != NULL) {
		if (store_state_parse(o.state, &f.state) < 0) {
			fprintf(stderr, "herald log: unknown state \"%s\"\n",
			        o.state);
			goto done;
		}
		f.by_state = true;
	}
	if (o.since != NULL && cli_since("log", o.since, &f.since) < 0)
		goto done;
	f.email = o.recipient;
	rc = EX_TEMPFAIL;
	st = cli_store(o.config, o.store, &d);
	if (st == NULL)
		goto done;
	if (o.release != NULL &&
	    admin_release(st, o.release, &f.release_id, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	if (l.fmt == ADMIN_CSV)
		printf("time,release,release_id,delivery,recipient,attempt,"
		       "relay,code,status,result,duration_ms,queue_id,"
		       "reply\r\n");
	else if (l.fmt == ADMIN_TABLE)
		admin_log_header();
	if (store_ops(st)->attempts_each(st, &f, admin_log_row, &l, &d) < 0)
		goto done;
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	if (st != NULL)
		store_close(st);
	return rc;
}

/* ---- show ------------------------------------------------------------------
 */

struct admin_show {
	int64_t release_id;
	char *email;
	bool found;
};

static int admin_show_delivery(void *arg, const struct store_delivery *dl,
                               const char *release)
{
	struct admin_show *s = arg;
	char q[32], n[32], u[32];

	s->found = true;
	s->release_id = dl->release_id;
	s->email = strdup(dl->r.email);
	cli_time(dl->queued_at, q, sizeof(q));
	cli_time(dl->next_at, n, sizeof(n));
	cli_time(dl->updated_at, u, sizeof(u));
	printf("delivery:   %lld\n", (long long)dl->id);
	printf("release:    %lld (%s)\n", (long long)dl->release_id, release);
	printf("recipient:  %s <%s>\n", dl->r.name ? dl->r.name : "",
	       dl->r.email);
	printf("language:   %s\n", dl->r.language ? dl->r.language : "-");
	printf("message-id: <%s>\n", dl->r.message_id);
	printf("state:      %s\n", store_state_name(dl->state));
	printf("attempts:   %u\n", dl->attempts);
	printf("queued:     %s\n", q);
	printf("next:       %s\n",
	       dl->state == STORE_DEFERRED || dl->state == STORE_QUEUED ? n
	                                                                : "-");
	printf("updated:    %s\n", u);
	if (dl->last_code != 0 || dl->last_text != NULL)
		printf("last reply: %d %s %s\n", dl->last_code,
		       dl->last_status ? dl->last_status : "",
		       dl->last_text ? dl->last_text : "");
	return 0;
}

int cmd_show(int argc, char **argv)
{
	struct admin_opts o;
	struct diag d = {0};
	struct store *st = NULL;
	struct admin_show s = {0};
	struct admin_log l = {.fmt = ADMIN_TABLE, .width = cli_width()};
	char *end;
	long long id = 0;
	bool by_address;
	int rc = admin_parse(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if (o.arg == NULL) {
		fprintf(stderr, "herald show: give a delivery number (from "
		                "herald log) or a journalist's address\n");
		admin_usage(stderr, "show");
		return EX_USAGE;
	}
	by_address = strchr(o.arg, '@') != NULL;
	if (!by_address &&
	    ((id = strtoll(o.arg, &end, 10)) <= 0 || *end != '\0')) {
		fprintf(stderr,
		        "herald show: \"%s\" is neither a delivery number "
		        "(from herald log) nor an address\n",
		        o.arg);
		return EX_USAGE;
	}
	if (o.release != NULL && !by_address) {
		fprintf(stderr, "herald show: --release goes with an address, "
		                "not a delivery number\n");
		return EX_USAGE;
	}
	rc = EX_TEMPFAIL;
	st = cli_store(o.config, o.store, &d);
	if (st == NULL)
		goto done;
	if (by_address) {
		int64_t rel = 0, found;

		if ((o.release != NULL && admin_release(st, o.release, &rel,
		                                        &d) < 0) ||
		    store_ops(st)->delivery_find(st, rel, o.arg, &found, &d) <
		        0) {
			rc = EX_DATAERR;
			goto done;
		}
		id = found;
	}
	if (store_ops(st)->delivery_get(st, id, admin_show_delivery, &s, &d) <
	    0)
		goto done;
	if (!s.found) {
		fprintf(stderr, "herald show: no delivery %lld\n", id);
		rc = EX_DATAERR;
		goto done;
	}
	if (admin_show_hold(st, id, &d) < 0)
		goto done;
	printf("\nhistory:\n");
	{
		struct store_log_filter f = {.release_id = s.release_id,
		                             .email = s.email};
		admin_log_header();
		if (store_ops(st)->attempts_each(st, &f, admin_log_row, &l,
		                                 &d) < 0)
			goto done;
		if (l.rows == 0)
			printf("(no attempts yet)\n");
	}
	rc = 0;
done:
	free(s.email);
	diag_print(&d, stderr);
	diag_clear(&d);
	if (st != NULL)
		store_close(st);
	return rc;
}

/* ---- telling heraldd of a pause or cancel ------------------------------- */

struct admin_told {
	size_t in_flight; /* on relay connections, by their heraldd's word */
	size_t answered, silent;
};

static void admin_told(void *arg, const struct store_daemon *dm,
                       enum control_told told, const char *reply)
{
	struct admin_told *t = arg;
	unsigned long long dropped, flying;

	if (told == CONTROL_ANSWERED &&
	    sscanf(reply, "ok dropped=%llu in_flight=%llu", &dropped,
	           &flying) == 2) {
		printf("heraldd pid %ld: %llu claimed deliveries given back, "
		       "%llu already on relay connections\n",
		       dm->pid, dropped, flying);
		t->in_flight += (size_t)flying;
		t->answered++;
		return;
	}
	t->silent++;
	if (told == CONTROL_ANSWERED)
		printf("heraldd pid %ld answered \"%s\"\n", dm->pid, reply);
	else
		printf("heraldd pid %ld on %s %s: what it handed to the relay "
		       "may still be delivered; the rest of its claims is "
		       "given back in the store\n",
		       dm->pid, dm->host,
		       told == CONTROL_OTHER_HOST
		           ? "runs on another host and was not told"
		           : "did not answer");
}

/* After a pause or cancel in the store: tell every heraldd of the store,
 * which gives back at once what it claimed of the release and has not
 * handed to the relay, and says how many of its messages are on relay
 * connections: those may still be delivered, nothing else of the release
 * leaves. Claims of a heraldd that did not answer are given back here
 * (one that is told later finds them gone and does not send them). */
static void admin_tell(struct store *st, int64_t id, bool cancel,
                       struct diag *d)
{
	struct admin_told t = {0};
	char req[64];
	size_t dropped = 0;

	snprintf(req, sizeof(req), "%s %lld", cancel ? "cancel" : "pause",
	         (long long)id);
	if (control_tell(st, req, admin_told, &t, d) < 0) {
		diag_print(d, stderr);
		diag_clear(d);
	}
	if (store_ops(st)->drop(st, id, NULL, 0, cancel, &dropped, d) < 0) {
		diag_print(d, stderr);
		diag_clear(d);
	} else if (dropped > 0) {
		printf("%zu claimed by a heraldd that did not answer given "
		       "back in the store\n",
		       dropped);
	}
	if (t.answered == 0 && t.silent == 0)
		printf("no heraldd is running on this store: the store's "
		       "change alone applies\n");
	printf("in flight: %zu (already on relay connections: they may "
	       "still be delivered; nothing else of release %lld leaves)\n",
	       t.in_flight, (long long)id);
}

/* ---- cancel, pause, resume, retry --------------------------------------- */

static int admin_release_cmd(int argc, char **argv, int what)
{
	struct admin_opts o;
	struct diag d = {0};
	struct store *st = NULL;
	int64_t id;
	size_t n = 0;
	int rc = admin_parse(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if (o.arg == NULL || (what == 3 && o.failed == o.deferred)) {
		admin_usage(stderr, o.cmd);
		return EX_USAGE;
	}
	rc = EX_TEMPFAIL;
	st = cli_store(o.config, o.store, &d);
	if (st == NULL)
		goto done;
	if (admin_release(st, o.arg, &id, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	switch (what) {
	case 0:
		if (store_ops(st)->cancel(st, id, &n, &d) < 0)
			goto done;
		printf("release %lld cancelled: %zu deliveries will not be "
		       "sent\n",
		       (long long)id, n);
		break;
	case 1:
	case 2:
		if (store_ops(st)->release_set_state(
		        st, id,
		        what == 1 ? STORE_RELEASE_PAUSED : STORE_RELEASE_ACTIVE,
		        &d) < 0)
			goto done;
		printf("release %lld %s\n", (long long)id,
		       what == 1 ? "paused" : "resumed");
		break;
	case 3:
		if (store_ops(st)->retry(st, id, o.failed, o.deferred, &n, &d) <
		    0)
			goto done;
		printf("release %lld: %zu deliveries due again now\n",
		       (long long)id, n);
		break;
	}
	if (what == 0 || what == 1)
		admin_tell(st, id, what == 0, &d);
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	if (st != NULL)
		store_close(st);
	return rc;
}

int cmd_cancel(int argc, char **argv)
{
	return admin_release_cmd(argc, argv, 0);
}

int cmd_pause(int argc, char **argv)
{
	return admin_release_cmd(argc, argv, 1);
}

int cmd_resume(int argc, char **argv)
{
	return admin_release_cmd(argc, argv, 2);
}

int cmd_retry(int argc, char **argv)
{
	return admin_release_cmd(argc, argv, 3);
}
