/*
 * herald status, log, show, cancel, pause, resume, retry — what admins use
 * to watch and steer deliveries. Everything is read from the store; the
 * daemon need not be running. None of them makes a store: a store path
 * with none is said to be wrong (EX_NOINPUT), not answered with an empty
 * one.
 *
 * Output formats: tables fit a terminal (long texts are cut with "...",
 * columns beyond the counts dropped, headers abbreviated; never a state's
 * count); piped, or with --wide, nothing is cut. `--format json` writes
 * JSON Lines (one object per row), `--format csv` RFC 4180 CSV with a
 * header row, both with every column. Times are UTC, ISO 8601.
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
#include "herald/figures.h"
#include "herald/log.h"
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
	bool watch, failed, deferred, wide;
};

static void admin_usage(FILE *f, const char *cmd)
{
	if (strcmp(cmd, "status") == 0)
		fputs("usage: herald status [RELEASE] [--watch] [--format "
		      "table|json|csv] [--wide]\n"
		      "                     [--store PATH] [--config FILE]\n\n"
		      "Releases (newest first) with their deliveries counted "
		      "by state, the counts\n"
		      "adding up to the total; where the terminal is wide "
		      "enough (always in json\n"
		      "and csv) also the share sent, the delivery rate "
		      "while it runs, the bounce\n"
		      "rate, complaints, unsubscribe requests and the first "
		      "and last attempt.\n"
		      "A release is done when nothing of it is left to send "
		      "or retry. --watch\n"
		      "follows a release until nothing is left to send (on "
		      "a terminal: a progress\n"
		      "bar with rate and ETA).\n"
		      "json: one object per line with keys id, name, state, "
		      "queued_at, not_before,\n"
		      "total, queued, sending, sent, deferred, failed, "
		      "bounced, complained,\n"
		      "expired, suppressed, cancelled, sent_percent, rate, "
		      "bounce_percent,\n"
		      "complaints, unsubscribes, first_attempt, last_attempt. "
		      "csv: the same columns,\n"
		      "with a header row.\n",
		      f);
	else if (strcmp(cmd, "log") == 0)
		fputs("usage: herald log [--release R] [--state S] "
		      "[--recipient EMAIL] [--since TIME]\n"
		      "                  [--format table|json|csv] [--wide] "
		      "[--store PATH] [--config FILE]\n\n"
		      "The delivery log, oldest first: one row per attempt, "
		      "and one per bounce,\n"
		      "complaint or unsubscribe request matched to a "
		      "delivery, and per suppression.\n"
		      "S, a row's result: sent, deferred, failed, expired "
		      "(how an attempt ended),\n"
		      "bounced, complained, unsubscribed, suppressed (what "
		      "happened after). TIME as\n"
		      "for queue --at (e.g. 2026-11-27T00:00Z) or -1h, -2d.\n"
		      "json: one object per line with keys time, release, "
		      "release_id, delivery,\n"
		      "recipient, attempt, relay, code, status, result, "
		      "duration_ms, queue_id, reply,\n"
		      "event, reason, hard. csv: the same columns, with a "
		      "header row.\n",
		      f);
	else if (strcmp(cmd, "show") == 0)
		fputs("usage: herald show DELIVERY|EMAIL [--release R] "
		      "[--wide] [--store PATH]\n"
		      "                   [--config FILE]\n\n"
		      "One delivery with its whole history (attempts, "
		      "bounces, complaints,\n"
		      "unsubscribe requests, suppression): by its number "
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
	    {"wide", no_argument, NULL, 'W'},
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
		case 'W':
			o->wide = true;
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

int cli_open_store(const char *cmd, const char *config, const char *store,
                   unsigned flags, struct store **out, struct diag *d)
{
	struct config *cfg = NULL;
	const char *path = store;
	bool there = true;
	int kind;

	*out = NULL;
	if (path == NULL) {
		cfg = config_load_flags(config_path(config), CONFIG_NO_SECRETS,
		                        d);
		if (cfg == NULL)
			return EX_CONFIG;
		path = cfg->store;
	}
	/* the store is a file (the one kind this herald has): say so when
	 * one is made, so a store made in the wrong place is noticed */
	if ((flags & STORE_OPEN_CREATE) && !store_pg_is_address(path))
		there = path == NULL || access(path, F_OK) == 0;
	*out = store_open_flags(path, flags, d);
	kind = errno;
	if (*out != NULL) {
		if (!there) {
			char *abs = realpath(path, NULL);
			fprintf(stderr, "herald %s: made a new store: %s\n", cmd,
			        abs != NULL ? abs : path);
			free(abs);
		}
		config_free(cfg);
		return 0;
	}
	config_free(cfg);
	switch (kind) {
	case ENOENT:
		return flags & STORE_OPEN_CREATE ? EX_CANTCREAT : EX_NOINPUT;
	case EACCES:
		return EX_NOPERM;
	case EINVAL:
		return EX_CONFIG;
	default:
		return EX_TEMPFAIL;
	}
}

static int admin_release(struct store *st, const char *arg, int64_t *id,
                         struct diag *d)
{
	return store_release_find(st, arg, id, d);
}

unsigned cli_width(bool wide)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");

	if (wide || !isatty(STDOUT_FILENO))
		return 0;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (cols != NULL && atoi(cols) > 20)
		return (unsigned)atoi(cols);
	return 80;
}

/* Columns (characters) of the UTF-8 text s. */
static unsigned cli_cols(const char *s)
{
	unsigned n = 0;

	for (; s != NULL && *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

void cli_cell(const char *s, unsigned width, unsigned pad)
{
	char *flat = strdup(s ? s : ""), *safe;
	unsigned n, shown = 0, keep;
	bool cut;

	for (char *p = flat; p != NULL && *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	/* a cell may hold what a server said: escapes, bells and NULs are
	 * shown, not obeyed */
	safe = flat != NULL ? log_escape(flat) : NULL;
	free(flat);
	if (safe == NULL) {
		fputs("(out of memory)", stdout);
		return;
	}
	n = cli_cols(safe);
	cut = width > 0 && n > width;
	keep = cut ? (width > 3 ? width - 3 : width) : n;
	for (const char *p = safe; *p; p++) {
		bool lead = ((unsigned char)*p & 0xc0) != 0x80;
		if (lead && shown == keep)
			break;
		shown += lead;
		putchar(*p);
	}
	free(safe);
	if (cut && width > 3) {
		fputs("...", stdout);
		shown += 3;
	}
	for (; shown < pad; shown++)
		putchar(' ');
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

	if (store_holds_each(st, 0, id, admin_hold, &a, d) < 0 ||
	    store_duplicate_get(st, id, &why, &at, d) < 0)
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

/* What is left to send or retry: queued, sending, deferred. */
static size_t admin_left(const struct store_release_info *r)
{
	return r->count[STORE_QUEUED] + r->count[STORE_SENDING] +
	       r->count[STORE_DEFERRED];
}

enum admin_format { ADMIN_TABLE, ADMIN_JSON, ADMIN_CSV };

static int admin_format(const char *cmd, const char *s, enum admin_format *f)
{
	if (s == NULL || strcmp(s, "table") == 0)
		*f = ADMIN_TABLE;
	else if (strcmp(s, "json") == 0)
		*f = ADMIN_JSON;
	else if (strcmp(s, "csv") == 0)
		*f = ADMIN_CSV;
	else {
		fprintf(stderr,
		        "herald %s: --format is table, json or csv, not "
		        "\"%s\"\n",
		        cmd, s);
		return -1;
	}
	return 0;
}

/* A release as status shows it. */
struct admin_release {
	struct store_release_info r;
	struct store_release_figures f;
};

struct admin_releases {
	struct admin_release *v;
	size_t n, cap;
};

static int admin_collect(void *arg, const struct store_release_info *r)
{
	struct admin_releases *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct admin_release *v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL) {
			fputs("herald status: out of memory\n", stderr);
			return -1;
		}
		l->v = v;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	l->v[l->n++].r = *r;
	return 0;
}

/* The columns of status: the counts (never dropped: they add up to the
 * total), then the figures, dropped on a narrow terminal in the order of
 * drop (highest first). key is the JSON and CSV name. */
enum {
	ST_ID,
	ST_NAME,
	ST_STATE,
	ST_QUEUED_AT,
	ST_TOTAL,
	ST_SENT,
	ST_QUEUED,
	ST_SENDING,
	ST_DEFERRED,
	ST_FAILED,
	ST_BOUNCED,
	ST_COMPLAINED,
	ST_EXPIRED,
	ST_SUPPRESSED,
	ST_CANCELLED,
	ST_SENT_PCT,
	ST_RATE,
	ST_BOUNCE_PCT,
	ST_COMPLAINTS,
	ST_UNSUBS,
	ST_FIRST,
	ST_LAST,
	ST_NCOLS
};

static const struct {
	const char *head, *abbr, *key;
	int state;    /* the delivery state it counts, or -1 */
	unsigned drop; /* 0: always shown; else dropped in this order */
	bool left;    /* aligned left */
} admin_cols[ST_NCOLS] = {
    [ST_ID] = {"ID", "ID", "id", -1, 0, true},
    [ST_NAME] = {"RELEASE", "RELEASE", "name", -1, 0, true},
    [ST_STATE] = {"STATE", "STATE", "state", -1, 0, true},
    [ST_QUEUED_AT] = {"QUEUED_AT", "QUEUED_AT", "queued_at", -1, 6, true},
    [ST_TOTAL] = {"TOTAL", "TOT", "total", -1, 0, false},
    [ST_SENT] = {"SENT", "SENT", "sent", STORE_SENT, 0, false},
    [ST_QUEUED] = {"QUEUED", "QUE", "queued", STORE_QUEUED, 0, false},
    [ST_SENDING] = {"SENDING", "SND", "sending", STORE_SENDING, 0, false},
    [ST_DEFERRED] = {"DEFERRED", "DEF", "deferred", STORE_DEFERRED, 0,
                     false},
    [ST_FAILED] = {"FAILED", "FAIL", "failed", STORE_FAILED, 0, false},
    [ST_BOUNCED] = {"BOUNCED", "BNC", "bounced", STORE_BOUNCED, 0, false},
    [ST_COMPLAINED] = {"COMPLAINED", "CMPL", "complained", STORE_COMPLAINED,
                       0, false},
    [ST_EXPIRED] = {"EXPIRED", "EXP", "expired", STORE_EXPIRED, 0, false},
    [ST_SUPPRESSED] = {"SUPPRESSED", "SUPP", "suppressed", STORE_SUPPRESSED,
                       0, false},
    [ST_CANCELLED] = {"CANCELLED", "CANC", "cancelled", STORE_CANCELLED, 0,
                      false},
    [ST_SENT_PCT] = {"SENT%", "SENT%", "sent_percent", -1, 1, false},
    [ST_RATE] = {"RATE/S", "RATE/S", "rate", -1, 3, false},
    [ST_BOUNCE_PCT] = {"BOUNCE%", "BOUNCE%", "bounce_percent", -1, 2,
                       false},
    [ST_COMPLAINTS] = {"COMPLAINTS", "COMPLAINTS", "complaints", -1, 4,
                       false},
    [ST_UNSUBS] = {"UNSUBSCRIBES", "UNSUBSCRIBES", "unsubscribes", -1, 5,
                   false},
    [ST_FIRST] = {"FIRST_ATTEMPT", "FIRST_ATTEMPT", "first_attempt", -1, 7,
                  true},
    [ST_LAST] = {"LAST_ATTEMPT", "LAST_ATTEMPT", "last_attempt", -1, 8,
                 true},
};
#define ADMIN_CELL 160

/* One cell as text; "" for a value that does not apply (JSON null, an
 * empty CSV field, "-" in the table). now: when the figures were read. */
static void admin_cell(const struct admin_release *a, int col, time_t now,
                       char *buf, size_t size)
{
	const struct store_release_info *r = &a->r;
	const struct store_release_figures *f = &a->f;
	double v;

	buf[0] = '\0';
	if (admin_cols[col].state >= 0) {
		snprintf(buf, size, "%zu", r->count[admin_cols[col].state]);
		return;
	}
	switch (col) {
	case ST_ID:
		snprintf(buf, size, "%lld", (long long)r->id);
		break;
	case ST_NAME:
		snprintf(buf, size, "%s", r->name);
		break;
	case ST_STATE:
		snprintf(buf, size, "%s", store_release_state_name(r->state));
		break;
	case ST_QUEUED_AT:
		cli_time(r->queued_at, buf, size);
		break;
	case ST_TOTAL:
		snprintf(buf, size, "%zu", r->total);
		break;
	case ST_SENT_PCT:
		if (figures_sent_percent(r, &v))
			snprintf(buf, size, "%.1f", v);
		break;
	case ST_RATE:
		if (figures_rate(r, f, now, &v))
			snprintf(buf, size, "%.1f", v);
		break;
	case ST_BOUNCE_PCT:
		if (figures_bounce_percent(r, &v))
			snprintf(buf, size, "%.1f", v);
		break;
	case ST_COMPLAINTS:
		snprintf(buf, size, "%zu", f->complaints);
		break;
	case ST_UNSUBS:
		snprintf(buf, size, "%zu", f->unsubscribes);
		break;
	case ST_FIRST:
		if (f->first_attempt != 0)
			cli_time(f->first_attempt, buf, size);
		break;
	case ST_LAST:
		if (f->last_attempt != 0)
			cli_time(f->last_attempt, buf, size);
		break;
	}
}

/* Is the column's value a JSON string (not a number)? */
static bool admin_col_text(int col)
{
	return col == ST_NAME || col == ST_STATE || col == ST_QUEUED_AT ||
	       col == ST_FIRST || col == ST_LAST;
}

static void admin_status_json(const struct admin_releases *l, time_t now)
{
	char buf[ADMIN_CELL];

	for (size_t i = 0; i < l->n; i++) {
		for (int c = 0; c < ST_NCOLS; c++) {
			printf("%s\"%s\":", c ? "," : "{", admin_cols[c].key);
			admin_cell(&l->v[i], c, now, buf, sizeof(buf));
			if (buf[0] == '\0')
				fputs("null", stdout);
			else if (admin_col_text(c))
				cli_json_str(buf);
			else
				fputs(buf, stdout);
			/* after queued_at: the embargo or --at */
			if (c == ST_QUEUED_AT) {
				fputs(",\"not_before\":", stdout);
				if (l->v[i].r.not_before == 0)
					fputs("null", stdout);
				else {
					cli_time(l->v[i].r.not_before, buf,
					         sizeof(buf));
					cli_json_str(buf);
				}
			}
		}
		puts("}");
	}
}

static void admin_status_csv(const struct admin_releases *l, time_t now)
{
	char buf[ADMIN_CELL];

	for (int c = 0; c < ST_NCOLS; c++)
		printf("%s%s%s", c ? "," : "", admin_cols[c].key,
		       c == ST_QUEUED_AT ? ",not_before" : "");
	fputs("\r\n", stdout);
	for (size_t i = 0; i < l->n; i++) {
		for (int c = 0; c < ST_NCOLS; c++) {
			admin_cell(&l->v[i], c, now, buf, sizeof(buf));
			if (c > 0)
				putchar(',');
			if (c == ST_NAME)
				cli_csv_str(buf);
			else
				fputs(buf, stdout);
			if (c == ST_QUEUED_AT) {
				buf[0] = '\0';
				if (l->v[i].r.not_before != 0)
					cli_time(l->v[i].r.not_before, buf,
					         sizeof(buf));
				printf(",%s", buf);
			}
		}
		fputs("\r\n", stdout);
	}
}

/* The width of column c over every row, with its full or short header. */
static unsigned admin_col_width(const struct admin_releases *l, int c,
                                bool abbr, time_t now)
{
	char buf[ADMIN_CELL];
	unsigned w = cli_cols(abbr ? admin_cols[c].abbr : admin_cols[c].head);

	for (size_t i = 0; i < l->n; i++) {
		admin_cell(&l->v[i], c, now, buf, sizeof(buf));
		if (cli_cols(buf) > w)
			w = cli_cols(buf);
	}
	return w;
}

/* The table: every count always. On a terminal too narrow for all of it
 * the figures are dropped (in their order of drop), then the counts'
 * headers abbreviated (with a key below) and the figures tried again,
 * then long release names cut. width 0: everything. */
static void admin_status_table(const struct admin_releases *l, time_t now,
                               unsigned width)
{
	char buf[ADMIN_CELL];
	unsigned w[ST_NCOLS], total = 0;
	bool shown[ST_NCOLS], abbr = false;
	int last = 0;

	for (int pass = 0; pass < 2; pass++) {
		abbr = pass == 1;
		total = 0;
		for (int c = 0; c < ST_NCOLS; c++) {
			shown[c] = true;
			w[c] = admin_col_width(l, c, abbr, now);
			total += w[c] + (c > 0);
		}
		for (unsigned k = 8; width > 0 && total > width && k > 0; k--)
			for (int c = 0; c < ST_NCOLS; c++)
				if (admin_cols[c].drop == k && shown[c]) {
					shown[c] = false;
					total -= w[c] + 1;
				}
		if (width == 0 || total <= width)
			break;
	}
	if (width > 0 && total > width) {
		unsigned over = total - width, min = cli_cols("RELEASE");
		w[ST_NAME] = w[ST_NAME] > min + over ? w[ST_NAME] - over
		             : w[ST_NAME] > min      ? min
		                                     : w[ST_NAME];
	}
	for (int c = 0; c < ST_NCOLS; c++)
		if (shown[c])
			last = c;
	for (int c = 0; c < ST_NCOLS; c++) {
		const char *h = abbr ? admin_cols[c].abbr : admin_cols[c].head;
		if (!shown[c])
			continue;
		if (c > 0)
			putchar(' ');
		if (admin_cols[c].left)
			cli_cell(h, 0, c == last ? 0 : w[c]);
		else
			printf("%*s", (int)w[c], h);
	}
	putchar('\n');
	for (size_t i = 0; i < l->n; i++) {
		for (int c = 0; c < ST_NCOLS; c++) {
			if (!shown[c])
				continue;
			if (c > 0)
				putchar(' ');
			admin_cell(&l->v[i], c, now, buf, sizeof(buf));
			if (buf[0] == '\0')
				snprintf(buf, sizeof(buf), "-");
			if (admin_cols[c].left)
				cli_cell(buf, w[c], c == last ? 0 : w[c]);
			else
				printf("%*s", (int)w[c], buf);
		}
		putchar('\n');
	}
	if (abbr) {
		/* the key, in lines that fit */
		unsigned at = 0;
		for (int c = 0; c < ST_NCOLS; c++) {
			int n;
			if (strcmp(admin_cols[c].head, admin_cols[c].abbr) == 0)
				continue;
			n = snprintf(buf, sizeof(buf), "%s%s %s",
			             at == 0 ? "(" : "", admin_cols[c].abbr,
			             admin_cols[c].key);
			if (at > 0 && at + 2 + (unsigned)n + 1 > width) {
				fputs(",\n", stdout);
				at = 0;
			} else if (at > 0) {
				fputs(", ", stdout);
				at += 2;
			}
			fputs(buf, stdout);
			at += (unsigned)n;
		}
		fputs(")\n", stdout);
	}
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
	w->pending = admin_left(r);
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
	if (store_releases_each(st, id, admin_watch_row, &w, d) < 0)
		return EX_TEMPFAIL;
	w.sent0 = w.done;
	w.t0 = time(NULL);
	while (!admin_interrupted) {
		double elapsed = difftime(time(NULL), w.t0);
		double rate =
		    elapsed > 0 ? (double)(w.done - w.sent0) / elapsed : 0;
		unsigned width = cli_width(false), bar;
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
			printf("release=%lld total=%zu sent=%zu left=%zu "
			       "queued=%zu sending=%zu deferred=%zu failed=%zu "
			       "rate=%.1f/s eta=%s\n",
			       (long long)id, w.total, w.last.count[STORE_SENT],
			       w.pending, w.last.count[STORE_QUEUED],
			       w.last.count[STORE_SENDING],
			       w.last.count[STORE_DEFERRED],
			       w.last.count[STORE_FAILED], rate, eta);
		}
		if (w.last.count[STORE_SENDING] > 0) {
			/* what waits for the lease of a heraldd that is gone;
			 * on a terminal, said again only when it changes */
			struct admin_holds q = {.quiet = true};
			struct admin_holds a = {.indent = tty ? "\n  " : "  "};
			if (store_holds_each(st, id, 0, admin_hold, &q,
			                     d) < 0 ||
			    (q.lines > 0 && (!tty || q.sum != held_sum) &&
			     store_holds_each(st, id, 0, admin_hold, &a,
			                      d) < 0))
				return EX_TEMPFAIL;
			held_sum = q.sum;
		}
		fflush(stdout);
		if (w.pending == 0)
			break;
		sleep(1);
		if (store_releases_each(st, id, admin_watch_row, &w, d) < 0)
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
	struct admin_releases l = {0};
	enum admin_format fmt;
	int64_t id = 0;
	int rc = admin_parse(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if (admin_format("status", o.format, &fmt) < 0)
		return EX_USAGE;
	if (o.watch && (o.arg == NULL || fmt != ADMIN_TABLE)) {
		fprintf(stderr, "herald status: --watch follows one RELEASE, "
		                "on the terminal (no --format)\n");
		return EX_USAGE;
	}
	if ((rc = cli_open_store("status", o.config, o.store, 0, &st, &d)) !=
	    0)
		goto done;
	if (o.arg != NULL && admin_release(st, o.arg, &id, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	if (o.watch) {
		rc = admin_watch(st, id, &d);
		goto done;
	}
	rc = EX_TEMPFAIL;
	if (store_releases_each(st, id, admin_collect, &l, &d) < 0)
		goto done;
	for (size_t i = 0; i < l.n; i++)
		if (store_release_figures(st, l.v[i].r.id, &l.v[i].f, &d) < 0)
			goto done;
	if (fmt == ADMIN_JSON)
		admin_status_json(&l, time(NULL));
	else if (fmt == ADMIN_CSV)
		admin_status_csv(&l, time(NULL));
	else
		admin_status_table(&l, time(NULL), cli_width(o.wide));
	rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	free(l.v);
	if (st != NULL)
		store_close(st);
	return rc;
}

/* ---- log ------------------------------------------------------------------
 */

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

void cli_json_opt(const char *s)
{
	if (s != NULL && *s != '\0')
		cli_json_str(s);
	else
		fputs("null", stdout);
}

bool cli_csv_guarded(const char *s)
{
	return s != NULL && s[0] != '\0' && strchr("=+-@\t\r'", s[0]) != NULL;
}

void cli_csv_str(const char *s)
{
	putchar('"');
	/* A spreadsheet runs a cell that starts with = + - @ as a formula
	 * (a bounce's diagnostic, a reason, an address come from outside):
	 * such a cell, and one that starts with the quote itself, gets a
	 * leading ', which `herald suppress import` takes off again. */
	if (cli_csv_guarded(s))
		putchar('\'');
	for (; s && *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

/* What a row says, for the table's REPLY column and show: an attempt's
 * reply, an event with its kind and reason, a suppression's reason. */
static void admin_row_text(const struct store_log_row *r, char *buf,
                           size_t size)
{
	const char *what = NULL, *diag = r->text ? r->text : "";

	switch (r->event > 0 ? r->result : STORE_LOG_SENT) {
	case STORE_LOG_BOUNCED:
		what = r->hard == 1   ? "hard bounce"
		       : r->hard == 0 ? "soft bounce"
		                      : "bounce (not about the address)";
		break;
	case STORE_LOG_COMPLAINED:
		what = "complaint";
		break;
	case STORE_LOG_UNSUBSCRIBED:
		what = "unsubscribe request";
		break;
	default:
		snprintf(buf, size, "%s", diag);
		return;
	}
	snprintf(buf, size, "%s%s%s%s%s", what, r->reason ? ": " : "",
	         r->reason ? r->reason : "", *diag ? ": " : "", diag);
}

static int admin_log_row(void *arg, const struct store_log_row *r)
{
	struct admin_log *l = arg;
	bool tried = r->event == 0 && r->result != STORE_LOG_SUPPRESSED;
	const char *result = store_log_result_name(r->result);
	char at[32];

	cli_time(r->at, at, sizeof(at));
	l->rows++;
	if (l->fmt == ADMIN_JSON) {
		printf("{\"time\":\"%s\",\"release\":", at);
		cli_json_str(r->release);
		printf(",\"release_id\":%lld,\"delivery\":%lld,\"recipient\":",
		       (long long)r->release_id, (long long)r->delivery_id);
		cli_json_str(r->email);
		if (tried) {
			printf(",\"attempt\":%u,\"relay\":", r->attempt);
			cli_json_str(r->relay);
			printf(",\"code\":%d", r->code);
		} else
			fputs(",\"attempt\":null,\"relay\":null,\"code\":null",
			      stdout);
		fputs(",\"status\":", stdout);
		cli_json_str(r->status ? r->status : "");
		printf(",\"result\":\"%s\",\"duration_ms\":", result);
		if (tried)
			printf("%u", r->duration_ms);
		else
			fputs("null", stdout);
		fputs(",\"queue_id\":", stdout);
		cli_json_str(r->queue_id ? r->queue_id : "");
		printf(",\"reply\":");
		cli_json_str(r->text ? r->text : "");
		fputs(",\"event\":", stdout);
		if (r->event > 0)
			printf("%lld", (long long)r->event);
		else
			fputs("null", stdout);
		fputs(",\"reason\":", stdout);
		if (r->reason != NULL)
			cli_json_str(r->reason);
		else
			fputs("null", stdout);
		printf(",\"hard\":%s}\n",
		       r->event == 0  ? "null"
		       : r->hard == 1 ? "true"
		       : r->hard == 0 ? "false"
		                      : "null");
	} else if (l->fmt == ADMIN_CSV) {
		printf("%s,", at);
		cli_csv_str(r->release);
		printf(",%lld,%lld,", (long long)r->release_id,
		       (long long)r->delivery_id);
		cli_csv_str(r->email);
		if (tried) {
			printf(",%u,", r->attempt);
			cli_csv_str(r->relay);
			printf(",%d,", r->code);
		} else
			fputs(",,,,", stdout);
		printf("%s,%s,", r->status ? r->status : "", result);
		if (tried)
			printf("%u", r->duration_ms);
		putchar(',');
		cli_csv_str(r->queue_id ? r->queue_id : "");
		putchar(',');
		cli_csv_str(r->text ? r->text : "");
		putchar(',');
		if (r->event > 0)
			printf("%lld", (long long)r->event);
		putchar(',');
		if (r->reason != NULL)
			cli_csv_str(r->reason);
		printf(",%s\r\n", r->event == 0  ? ""
		                  : r->hard == 1 ? "true"
		                  : r->hard == 0 ? "false"
		                                 : "");
	} else {
		/* the columns before REPLY take 102 */
		char text[1024], n[3][16];
		int room = (int)l->width - 102;

		admin_row_text(r, text, sizeof(text));
		snprintf(n[0], sizeof(n[0]), tried ? "%u" : "-", r->attempt);
		snprintf(n[1], sizeof(n[1]), tried ? "%d" : "-", r->code);
		snprintf(n[2], sizeof(n[2]), tried ? "%u" : "-",
		         r->duration_ms);
		printf("%-20s %5lld %7lld ", at, (long long)r->release_id,
		       (long long)r->delivery_id);
		cli_cell(r->email, l->width ? 30 : 0, 30);
		printf(" %3s %4s %-6s %-12s %6s ", n[0], n[1],
		       r->status ? r->status : "-", result, n[2]);
		cli_cell(text, l->width ? (unsigned)(room < 10 ? 10 : room) : 0,
		         0);
		putchar('\n');
	}
	return 0;
}

static void admin_log_header(void)
{
	printf("%-20s %5s %7s %-30s %3s %4s %-6s %-12s %6s %s\n", "TIME",
	       "REL", "DELIV", "RECIPIENT", "TRY", "CODE", "STATUS", "RESULT",
	       "MS", "REPLY");
}

int cmd_log(int argc, char **argv)
{
	struct admin_opts o;
	struct diag d = {0};
	struct store *st = NULL;
	struct store_log_filter f = {0};
	struct admin_log l = {0};
	int rc = admin_parse(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	l.width = cli_width(o.wide);
	rc = EX_USAGE;
	if (admin_format("log", o.format, &l.fmt) < 0)
		goto done;
	if (o.state != NULL) {
		if (store_log_result_parse(o.state, &f.result) < 0) {
			fprintf(stderr, "herald log: --state is a row's result: ");
			for (int i = 0; i < STORE_LOG_NRESULTS; i++)
				fprintf(stderr, "%s%s", i ? ", " : "",
				        store_log_result_name(
				            (enum store_log_result)i));
			fprintf(stderr, "; not \"%s\"\n", o.state);
			goto done;
		}
		f.by_result = true;
	}
	if (o.since != NULL && cli_since("log", o.since, &f.since) < 0)
		goto done;
	f.email = o.recipient;
	if ((rc = cli_open_store("log", o.config, o.store, 0, &st, &d)) != 0)
		goto done;
	if (o.release != NULL &&
	    admin_release(st, o.release, &f.release_id, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	rc = EX_TEMPFAIL;
	if (l.fmt == ADMIN_CSV)
		printf("time,release,release_id,delivery,recipient,attempt,"
		       "relay,code,status,result,duration_ms,queue_id,"
		       "reply,event,reason,hard\r\n");
	else if (l.fmt == ADMIN_TABLE)
		admin_log_header();
	if (store_attempts_each(st, &f, admin_log_row, &l, &d) < 0)
		goto done;
	rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
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

/* A reply as CODE STATUS TEXT with each said once (a server's text
 * often starts with its code and status already), its lines under each
 * other. */
static void admin_reply(int code, const char *status, const char *text)
{
	const char *t = text ? text : "", *rest = t;
	char c[16] = "";
	size_t cl;

	if (code != 0) {
		cl = (size_t)snprintf(c, sizeof(c), "%d", code);
		if (strncmp(t, c, cl) == 0 &&
		    (t[cl] == ' ' || t[cl] == '-' || t[cl] == '\0')) {
			c[0] = '\0'; /* the text starts with it */
			rest = t[cl] != '\0' ? t + cl + 1 : t + cl;
		}
	}
	if (c[0] != '\0')
		printf("%s ", c);
	if (status != NULL && *status != '\0' &&
	    strncmp(rest, status, strlen(status)) != 0)
		printf("%s ", status);
	for (; *t; t++)
		if (*t == '\n')
			fputs("\n            ", stdout);
		else if (*t != '\r')
			putchar(*t);
	putchar('\n');
}

static int admin_show_delivery(void *arg, const struct store_delivery *dl,
                               const char *release)
{
	struct admin_show *s = arg;
	char q[32], n[32], u[32], r[32];

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
	if (dl->retried_at != 0) {
		cli_time(dl->retried_at, r, sizeof(r));
		printf("retried:    %s (herald retry)\n", r);
	}
	printf("next:       %s\n",
	       dl->state == STORE_DEFERRED || dl->state == STORE_QUEUED ? n
	                                                                : "-");
	printf("updated:    %s\n", u);
	if (dl->last_code != 0 || dl->last_text != NULL) {
		fputs("last reply: ", stdout);
		admin_reply(dl->last_code, dl->last_status, dl->last_text);
	}
	return 0;
}

int cmd_show(int argc, char **argv)
{
	struct admin_opts o;
	struct diag d = {0};
	struct store *st = NULL;
	struct admin_show s = {0};
	struct admin_log l = {.fmt = ADMIN_TABLE};
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
	l.width = cli_width(o.wide);
	if ((rc = cli_open_store("show", o.config, o.store, 0, &st, &d)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	if (by_address) {
		int64_t rel = 0, found;

		if ((o.release != NULL &&
		     admin_release(st, o.release, &rel, &d) < 0) ||
		    store_delivery_find(st, rel, o.arg, &found, &d) < 0) {
			rc = EX_DATAERR;
			goto done;
		}
		id = found;
	}
	if (store_delivery_get(st, id, admin_show_delivery, &s, &d) < 0)
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
		if (store_attempts_each(st, &f, admin_log_row, &l, &d) < 0)
			goto done;
		if (l.rows == 0)
			printf("(no attempts yet)\n");
	}
	rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
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
	int64_t *heard; /* the ids of those that answered (when memory ran
	                 * out, fewer: theirs may count twice) */
	size_t nheard;
};

static void admin_told(void *arg, const struct store_daemon *dm,
                       enum control_told told, const char *reply)
{
	struct admin_told *t = arg;
	unsigned long long dropped, flying;

	if (told == CONTROL_ANSWERED &&
	    sscanf(reply, "ok dropped=%llu in_flight=%llu", &dropped,
	           &flying) == 2) {
		int64_t *v = realloc(t->heard, (t->nheard + 1) * sizeof(*v));
		printf("heraldd pid %ld: %llu claimed deliveries given back, "
		       "%llu already on relay connections\n",
		       dm->pid, dropped, flying);
		t->in_flight += (size_t)flying;
		if (v != NULL) {
			t->heard = v;
			t->heard[t->nheard++] = dm->id;
		}
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

/* What a running heraldd that did not answer has handed to the relay of
 * the release: on its connections, as far as anyone can tell. */
static int admin_unheard(void *arg, const struct store_hold *h)
{
	struct admin_told *t = arg;

	if (!h->handed || h->owner.id == 0 ||
	    !control_alive(&h->owner, time(NULL)))
		return 0;
	for (size_t i = 0; i < t->nheard; i++)
		if (t->heard[i] == h->owner.id)
			return 0;
	t->in_flight += h->n;
	return 0;
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
	if (store_drop(st, id, NULL, 0, cancel, &dropped, d) < 0) {
		diag_print(d, stderr);
		diag_clear(d);
	} else if (dropped > 0) {
		printf("%zu claimed by a heraldd that did not answer given "
		       "back in the store\n",
		       dropped);
	}
	/* a pause leaves theirs sending: count them; a cancel has ended
	 * them in the store, whatever the relay does with them */
	if (t.silent > 0 && !cancel &&
	    store_holds_each(st, id, 0, admin_unheard, &t, d) < 0) {
		diag_print(d, stderr);
		diag_clear(d);
	}
	if (t.answered == 0 && t.silent == 0)
		printf("no heraldd is running on this store: the store's "
		       "change alone applies\n");
	printf("in flight: %zu (already on relay connections: they may "
	       "still be delivered; nothing else of release %lld leaves)%s\n",
	       t.in_flight, (long long)id,
	       t.silent > 0 && cancel
	           ? "; a heraldd that did not answer may deliver what it "
	             "had on its connections too"
	           : "");
	free(t.heard);
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
	if ((rc = cli_open_store(o.cmd, o.config, o.store, 0, &st, &d)) != 0)
		goto done;
	if (admin_release(st, o.arg, &id, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	/* nothing of a done release is left to pause or resume: not a
	 * failure a retry mends */
	if (what == 1 || what == 2) {
		struct store_release_info info = {0};
		if (store_release_get(st, id, &info, NULL, 0, NULL, 0,
		                      &d) == 0 &&
		    info.state == STORE_RELEASE_DONE) {
			fprintf(stderr,
			        "herald %s: release %lld is done: nothing of "
			        "it is left to send (herald retry %lld --failed "
			        "sends its failed deliveries again)\n",
			        o.cmd, (long long)id, (long long)id);
			rc = EX_DATAERR;
			goto done;
		}
		/* resuming a cancelled release brings its cancelled
		 * deliveries back */
		if (what == 2 && info.state == STORE_RELEASE_CANCELLED) {
			size_t sup = 0;
			rc = EX_TEMPFAIL;
			if (store_release_uncancel(st, id, &n, &sup, &d) < 0)
				goto done;
			printf("release %lld resumed: %zu cancelled "
			       "deliveries due again",
			       (long long)id, n);
			if (sup > 0)
				printf(", %zu suppressed meanwhile", sup);
			printf("\n");
			rc = 0;
			goto done;
		}
	}
	rc = EX_TEMPFAIL;
	switch (what) {
	case 0:
		if (store_cancel(st, id, &n, &d) < 0)
			goto done;
		printf("release %lld cancelled: %zu deliveries will not be "
		       "sent\n",
		       (long long)id, n);
		break;
	case 1:
	case 2:
		if (store_release_set_state(st, id,
		                            what == 1 ? STORE_RELEASE_PAUSED
		                                      : STORE_RELEASE_ACTIVE,
		                            &d) < 0)
			goto done;
		printf("release %lld %s\n", (long long)id,
		       what == 1 ? "paused" : "resumed");
		break;
	case 3:
		if (store_retry(st, id, o.failed, o.deferred, &n, &d) < 0)
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
