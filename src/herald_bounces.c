/*
 * herald bounces — what arrived in the bounce mailbox, for admins: the
 * event list, one event's message, a file's classification, and
 * `herald bounces fetch`, one pass over the bounce mailbox: every message
 * becomes an event (bounce per failed recipient, complaint, auto-reply,
 * unsubscribe request, or unknown), matched to its delivery by the signed
 * return path first, then by the returned Message-ID, then by address,
 * and recorded with the raw message; the store acts on it (bounced,
 * complained, suppressed). Handled messages are moved, never deleted.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "herald/bounce.h"
#include "herald/config.h"
#include "herald/file.h"
#include "herald/inbox.h"
#include "herald/log.h"
#include "herald/mailbox.h"
#include "herald/store.h"
#include "herald/verp.h"
#include "herald_cli.h"

static void bounces_report(void *arg, const char *msgid,
                           const struct store_event *ev, int64_t id,
                           bool suppressed)
{
	/* every field but the kind came from outside */
	char *m = log_escape(msgid),
	     *to = log_escape(ev->email ? ev->email : "-"),
	     *st = log_escape(ev->status ? ev->status : "-"),
	     *why = log_escape(ev->reason ? ev->reason : "-");

	(void)arg;
	printf("%s message=%s to=<%s> status=%s reason=%s delivery=%lld%s\n",
	       store_event_kind_name(ev->kind), m ? m : "?", to ? to : "?",
	       st ? st : "?", why ? why : "?", (long long)id,
	       suppressed ? " suppressed" : "");
	free(m);
	free(to);
	free(st);
	free(why);
}

/* An mbox handed to `herald bounces parse` may hold many messages. */
#define BOUNCES_MBOX_MAX (256u * 1024u * 1024u)

struct bounces_cmd {
	const char *config, *store, *release, *since, *format, *arg;
	bool unmatched, wide;
};

static void bounces_usage(FILE *f)
{
	fputs("usage: herald bounces [--release R] [--unmatched] [--since TIME]\n"
	      "                      [--format table|json|csv] [--wide] "
	      "[--store PATH]\n"
	      "                      [--config FILE]\n"
	      "       herald bounces show EVENT [--store PATH] [--config FILE]\n"
	      "       herald bounces fetch [--mailbox URL] [--store PATH] "
	      "[--config FILE]\n"
	      "       herald bounces parse FILE... [--format table|json]\n"
	      "       herald bounces explain FILE... [--format table|json] "
	      "[--config FILE]\n\n"
	      "Without a subcommand: what arrived in the bounce mailbox, one "
	      "row per event\n"
	      "(bounce per failed recipient, complaint, auto-reply, "
	      "unsubscribe request,\n"
	      "unknown), oldest first, with the delivery it was matched to "
	      "and how\n"
	      "(verp, keyed-id: a token of herald's, the only match that "
	      "acts; message-id,\n"
	      "address: kept for review; \"mismatch\": a token or Message-ID "
	      "of one delivery\n"
	      "reporting another address). --unmatched: only the events "
	      "matched to no\n"
	      "delivery or not acted on, with why, for review. json: one "
	      "object per line;\n"
	      "csv: with a header row.\n\n"
	      "show: the message kept with an event, as it arrived.\n\n"
	      "fetch: read the bounce mailbox once (default: herald.yaml's "
	      "bounces.mailbox:\n"
	      "maildir:/path, imaps://user@host/Folder or "
	      "imap://user@host/Folder with\n"
	      "STARTTLS): record every event with its delivery and act on it "
	      "(a hard bounce,\n"
	      "a complaint or an unsubscribe suppresses the address). Handled "
	      "messages move\n"
	      "to cur/ (Maildir) or to bounces.imap.move_to (else flagged "
	      "Seen); nothing is\n"
	      "deleted. One line per event on stdout.\n\n"
	      "parse: classify message files (mbox files too) without the "
	      "store and print\n"
	      "their events; with --format json one object per line per "
	      "failed recipient\n"
	      "or event: file, message, type, recipient, status, reply, "
	      "reason, hard,\n"
	      "action, remote_mta, diagnostic, message_id, feedback_type.\n\n"
	      "explain: what herald would make of message files, and why: "
	      "for each\n"
	      "recipient the verdict (hard, soft or neither) and what herald "
	      "does with it,\n"
	      "the reason, the rule that decided and its sentence, status, "
	      "reply code,\n"
	      "refused command, and the line of the message it was read "
	      "from; once per\n"
	      "message, what may act on it (only herald's signed token). "
	      "The soft limit is\n"
	      "herald.yaml's (--config) or the default. json: one object per "
	      "line per\n"
	      "recipient: file, message, type, recipient, verdict, effect, "
	      "reason, rule,\n"
	      "why, status, reply, command, evidence, evidence_line, "
	      "soft_limit,\n"
	      "soft_window, acts.\n",
	      f);
}

static int bounces_fetch(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"store", required_argument, NULL, 'S'},
	    {"mailbox", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *storep = NULL, *url = NULL;
	struct config *cfg = NULL;
	struct verp *verp = NULL;
	struct mailbox *mb = NULL;
	const struct mailbox_backend *mbb;
	struct diag d = {0};
	struct store *st = NULL;
	struct inbox_opts io = {.report = bounces_report};
	struct inbox_counts ic;
	int ch, rc = EX_USAGE, n;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			config = optarg;
			break;
		case 'S':
			storep = optarg;
			break;
		case 'm':
			url = optarg;
			break;
		case 'h':
			bounces_usage(stdout);
			return 0;
		default:
			bounces_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		bounces_usage(stderr);
		return EX_USAGE;
	}
	rc = EX_CONFIG;
	cfg = config_load(config_path(config), &d);
	if (cfg == NULL)
		goto done;
	if (url == NULL)
		url = cfg->bounce_mailbox;
	if (url == NULL || (mbb = mailbox_backend_for(url)) == NULL) {
		diag_add(&d, cfg->file, 0, 0,
		         "no bounce mailbox: give --mailbox maildir:/path or "
		         "bounces.mailbox in herald.yaml");
		goto done;
	}
	if (cfg->bounce_domain != NULL) {
		verp =
		    verp_load(cfg->bounce_secret_file, cfg->bounce_secret_env,
		              cfg->bounce_domain, &d);
		if (verp == NULL)
			goto done;
	}
	/* events of deliveries in no store would match nothing: the mailbox
	 * is left as it is when the store is not there */
	if ((rc = cli_open_store("bounces fetch", NULL,
	                         storep ? storep : cfg->store, 0, &st, &d)) !=
	    0)
		goto done;
	rc = EX_TEMPFAIL;
	if ((mb = inbox_open(cfg, url, st, &d)) == NULL)
		goto done;
	io.verp = verp;
	io.soft_limit = cfg->soft_limit;
	io.soft_window = cfg->soft_window;
	n = inbox_pass(st, mb, &io, &ic, &d);
	if (n < 0)
		goto done;
	printf("handled %d message%s: %zu events, %zu matched to deliveries, "
	       "%zu suppressed, %zu unknown\n",
	       n, n == 1 ? "" : "s", ic.events, ic.matched, ic.suppressed,
	       ic.unknown);
	rc = d.errors > 0 ? EX_TEMPFAIL : 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	if (mb != NULL)
		mbb->close(mb);
	if (st != NULL)
		store_close(st);
	verp_free(verp);
	config_free(cfg);
	return rc;
}

/* ---- herald bounces (the list) -------------------------------------- */

enum bounces_format { BOUNCES_TABLE, BOUNCES_JSON, BOUNCES_CSV };

static int bounces_format(const char *s, enum bounces_format *f, bool csv)
{
	if (s == NULL || strcmp(s, "table") == 0)
		*f = BOUNCES_TABLE;
	else if (strcmp(s, "json") == 0)
		*f = BOUNCES_JSON;
	else if (csv && strcmp(s, "csv") == 0)
		*f = BOUNCES_CSV;
	else {
		fprintf(stderr, "herald bounces: --format is table, json%s\n",
		        csv ? " or csv" : "");
		return -1;
	}
	return 0;
}

static const char *bounces_hard(int hard)
{
	return hard == 1 ? "hard" : hard == 0 ? "soft" : "-";
}

/* ,"key": the string, or null when v is NULL or empty */
static void bounces_json_opt(const char *key, const char *v)
{
	printf(",\"%s\":", key);
	cli_json_opt(v);
}

struct bounces_list {
	enum bounces_format fmt;
	unsigned width;
	size_t rows;
};

static int bounces_row(void *arg, const struct store_event_row *r)
{
	struct bounces_list *l = arg;
	char at[32];

	cli_time(r->at, at, sizeof(at));
	l->rows++;
	if (l->fmt == BOUNCES_JSON) {
		printf("{\"time\":\"%s\",\"event\":%lld,\"type\":\"%s\","
		       "\"release\":",
		       at, (long long)r->id, store_event_kind_name(r->kind));
		if (r->release != NULL)
			cli_json_str(r->release);
		else
			fputs("null", stdout);
		printf(",\"delivery\":%lld,\"matched_by\":",
		       (long long)r->delivery_id);
		if (r->matched_by != NULL)
			cli_json_str(r->matched_by);
		else
			fputs("null", stdout);
		fputs(",\"held\":", stdout);
		if (r->held != NULL)
			cli_json_str(r->held);
		else
			fputs("null", stdout);
		fputs(",\"recipient\":", stdout);
		cli_json_str(r->email ? r->email : "");
		fputs(",\"status\":", stdout);
		cli_json_str(r->status ? r->status : "");
		fputs(",\"reason\":", stdout);
		cli_json_str(r->reason ? r->reason : "");
		printf(",\"hard\":%s,\"size\":%zu,\"diagnostic\":",
		       r->hard == 1 ? "true" : r->hard == 0 ? "false" : "null",
		       r->rawlen);
		cli_json_str(r->diagnostic ? r->diagnostic : "");
		bounces_json_opt("rule", r->rule);
		bounces_json_opt("evidence", r->evidence);
		puts("}");
	} else if (l->fmt == BOUNCES_CSV) {
		printf("%s,%lld,%s,", at, (long long)r->id,
		       store_event_kind_name(r->kind));
		cli_csv_str(r->release ? r->release : "");
		printf(",%lld,%s,", (long long)r->delivery_id,
		       r->matched_by ? r->matched_by : "");
		cli_csv_str(r->held ? r->held : "");
		fputc(',', stdout);
		cli_csv_str(r->email ? r->email : "");
		printf(",%s,%s,%s,%zu,", r->status ? r->status : "",
		       r->reason ? r->reason : "", bounces_hard(r->hard),
		       r->rawlen);
		cli_csv_str(r->diagnostic ? r->diagnostic : "");
		fputc(',', stdout);
		cli_csv_str(r->rule ? r->rule : "");
		fputc(',', stdout);
		cli_csv_str(r->evidence ? r->evidence : "");
		fputs("\r\n", stdout);
	} else {
		/* cut only to fit a terminal (width 0: not one, or --wide);
		 * the columns before DIAGNOSTIC take 125 */
		int room = (int)l->width - 125;
		unsigned cut = l->width > 0 ? 1 : 0;

		printf("%-20s %6lld %-11s ", at, (long long)r->id,
		       store_event_kind_name(r->kind));
		cli_cell(r->release ? r->release : "-", cut * 16, 16);
		printf(" %7lld %-10s ", (long long)r->delivery_id,
		       r->matched_by ? r->matched_by : "-");
		cli_cell(r->email ? r->email : "-", cut * 30, 30);
		printf(" %-7s ", r->status ? r->status : "-");
		cli_cell(r->reason ? r->reason : "-", cut * 14, 14);
		printf(" %-4s ", bounces_hard(r->hard));
		if (r->held != NULL) {
			/* why it was not acted on, before the diagnostic */
			char *both = NULL;
			if (asprintf(&both, "not acted on: %s%s%s", r->held,
			             r->diagnostic ? "; " : "",
			             r->diagnostic ? r->diagnostic : "") < 0)
				both = NULL;
			cli_cell(both ? both : r->held,
			         cut * (unsigned)(room < 10 ? 10 : room), 0);
			free(both);
		} else
			cli_cell(r->diagnostic ? r->diagnostic : "",
			         cut * (unsigned)(room < 10 ? 10 : room), 0);
		putchar('\n');
	}
	return 0;
}

static int bounces_list(const struct bounces_cmd *o)
{
	struct diag d = {0};
	struct store *st = NULL;
	struct store_event_filter f = {.unmatched = o->unmatched};
	struct bounces_list l = {.width = cli_width(o->wide)};
	int rc = EX_USAGE;

	if (bounces_format(o->format, &l.fmt, true) < 0)
		return EX_USAGE;
	if (o->since != NULL && cli_since("bounces", o->since, &f.since) < 0)
		return EX_USAGE;
	if ((rc = cli_open_store("bounces", o->config, o->store, 0, &st,
	                         &d)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	if (o->release != NULL &&
	    store_release_find(st, o->release, &f.release_id, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	if (l.fmt == BOUNCES_TABLE)
		printf("%-20s %6s %-11s %-16s %7s %-10s %-30s %-7s %-14s %-4s "
		       "%s\n",
		       "TIME", "EVENT", "TYPE", "RELEASE", "DELIV", "MATCHED",
		       "RECIPIENT", "STATUS", "REASON", "HARD", "DIAGNOSTIC");
	else if (l.fmt == BOUNCES_CSV)
		fputs("time,event,type,release,delivery,matched_by,held,"
		      "recipient,"
		      "status,reason,hard,size,diagnostic,rule,evidence\r\n",
		      stdout);
	if (store_events_each(st, &f, bounces_row, &l, &d) < 0)
		goto done;
	if (l.fmt == BOUNCES_TABLE && l.rows == 0)
		printf("(no events%s)\n", o->unmatched ? " unmatched" : "");
	rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	store_close(st);
	return rc;
}

/* ---- herald bounces show ------------------------------------------------ */

static int bounces_show(const struct bounces_cmd *o)
{
	struct diag d = {0};
	struct store *st = NULL;
	char *raw = NULL, *end;
	size_t len = 0;
	long long id;
	int rc = EX_USAGE;

	errno = 0;
	id = strtoll(o->arg, &end, 10);
	if (errno != 0 || *end != '\0' || id <= 0) {
		fprintf(stderr, "herald bounces show: \"%s\" is not an event "
		                "number (see herald bounces)\n",
		        o->arg);
		return EX_USAGE;
	}
	if ((rc = cli_open_store("bounces show", o->config, o->store, 0, &st,
	                         &d)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	if (store_event_raw(st, (int64_t)id, &raw, &len, &d) < 0) {
		rc = EX_DATAERR;
		goto done;
	}
	if (fwrite(raw, 1, len, stdout) != len || fflush(stdout) != 0) {
		fprintf(stderr, "herald bounces show: writing: %s\n",
		        strerror(errno));
		rc = EX_IOERR;
		goto done;
	}
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	free(raw);
	store_close(st);
	return rc;
}

/* ---- herald bounces parse ----------------------------------------------- */

/* Where the next message of an mbox starts (a line "From " after a line
 * end), or len. */
static size_t bounces_mbox_next(const char *p, size_t len, size_t at)
{
	for (size_t i = at; i + 5 < len; i++)
		if ((p[i] == '\n' || p[i] == '\r') &&
		    memcmp(p + i + 1, "From ", 5) == 0)
			return i + 1;
	return len;
}

/* Is path a single message (not an mbox) larger than herald reads?
 * Says so in d. */
static bool bounces_too_big(const char *path, struct diag *d)
{
	char head[5];
	struct stat sb;
	FILE *f = fopen(path, "rb");
	bool big = false;

	if (f == NULL)
		return false; /* file_read says why */
	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (uintmax_t)sb.st_size > BOUNCE_MAX_SIZE &&
	    (fread(head, 1, 5, f) != 5 || memcmp(head, "From ", 5) != 0)) {
		diag_add(d, path, 0, 0,
		         "refused: %ju bytes, larger than herald reads in one "
		         "message (%u)",
		         (uintmax_t)sb.st_size, BOUNCE_MAX_SIZE);
		big = true;
	}
	fclose(f);
	return big;
}

static const char *bounces_type(const struct bounce_event *ev)
{
	switch (ev->kind) {
	case BOUNCE_DSN:
		return "bounce";
	case BOUNCE_COMPLAINT:
		return "complaint";
	case BOUNCE_AUTOREPLY:
		return "autoreply";
	case BOUNCE_UNSUBSCRIBE:
		return "unsubscribe";
	default:
		break;
	}
	/* mail to an unsubscribe+ address (its signature is checked when
	 * the mailbox is read; here there is no secret to check it with) */
	if (ev->verp_to != NULL && strncasecmp(ev->verp_to, "unsubscribe+", 12) == 0)
		return "unsubscribe";
	return "unknown";
}

/* One message of a file given to parse or explain, as read. */
struct bounces_msg {
	const char *file;
	size_t n;     /* its number in an mbox (1: the first) */
	bool mbox;    /* the file is an mbox */
	size_t line0; /* lines of the file before the message */
	const struct bounce_event *ev;
};

/* The keys parse and explain begin each object with: file, message (in
 * an mbox), type, recipient. */
static void bounces_json_head(const struct bounces_msg *m,
                              const struct bounce_rcpt *r)
{
	fputs("{\"file\":", stdout);
	cli_json_str(m->file);
	if (m->mbox)
		printf(",\"message\":%zu", m->n);
	else
		fputs(",\"message\":null", stdout);
	printf(",\"type\":\"%s\"", bounces_type(m->ev));
	bounces_json_opt("recipient", r ? r->address : NULL);
}

static void bounces_parsed(void *arg, const struct bounces_msg *m)
{
	enum bounces_format fmt = *(const enum bounces_format *)arg;
	const struct bounce_event *ev = m->ev;
	const char *type = bounces_type(ev);
	size_t n = ev->nrcpt > 0 ? ev->nrcpt : 1;

	for (size_t i = 0; i < n; i++) {
		const struct bounce_rcpt *r =
		    ev->nrcpt > 0 ? &ev->rcpt[i] : NULL;
		if (fmt == BOUNCES_JSON) {
			bounces_json_head(m, r);
			bounces_json_opt("status", r ? r->status : NULL);
			if (r != NULL && r->code > 0)
				printf(",\"reply\":%d", r->code);
			else
				fputs(",\"reply\":null", stdout);
			bounces_json_opt("reason", r ? r->reason : NULL);
			printf(",\"hard\":%s",
			       r == NULL      ? "null"
			       : r->hard == 1 ? "true"
			       : r->hard == 0 ? "false"
			                      : "null");
			bounces_json_opt("action", r ? r->action : NULL);
			bounces_json_opt("remote_mta", r ? r->remote_mta : NULL);
			bounces_json_opt("diagnostic", r ? r->diagnostic : NULL);
			bounces_json_opt("message_id", ev->message_id);
			bounces_json_opt("feedback_type", ev->feedback_type);
			puts("}");
		} else {
			char where[64] = "";
			if (m->mbox)
				snprintf(where, sizeof(where), "#%zu", m->n);
			printf("%s%s: %s", m->file, where, type);
			if (r != NULL)
				printf(" <%s> status=%s reply=%d reason=%s %s",
				       r->address, r->status[0] ? r->status : "-",
				       r->code, r->reason ? r->reason : "-",
				       bounces_hard(r->hard));
			if (ev->message_id != NULL)
				printf(" message-id=<%s>", ev->message_id);
			putchar('\n');
		}
	}
}

/* Lines in the n bytes at p, as the bounce reader counts them: LF, CRLF
 * and a lone CR each end one. */
static size_t bounces_lines(const char *p, size_t n)
{
	size_t lines = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' ||
		    (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')))
			lines++;
	return lines;
}

/* Read each file (an mbox message by message), parse every message and
 * hand it to fn; problems go to stderr, naming cmd, the file and the
 * message. Returns 0, else the exit status of the first problem:
 * EX_NOINPUT a file that is not there or may not be read, EX_DATAERR one
 * refused by size or a message that could not be read, EX_IOERR the
 * output could not be written. */
static int bounces_each_message(const char *cmd, char **files, int nfiles,
                                void (*fn)(void *arg,
                                           const struct bounces_msg *m),
                                void *arg)
{
	int rc = 0;

	for (int i = 0; i < nfiles; i++) {
		struct diag d = {0};
		char *buf = NULL;
		size_t len = 0, at = 0, msg = 0, line0 = 0;
		bool mbox;

		/* an mbox may hold many messages, each capped on its own; a
		 * single message larger than herald reads is refused unread */
		if (bounces_too_big(files[i], &d) ||
		    file_read(files[i], BOUNCES_MBOX_MAX, &buf, &len, &d) < 0) {
			int code = access(files[i], R_OK) != 0 ? EX_NOINPUT
			                                       : EX_DATAERR;
			fprintf(stderr, "herald %s: ", cmd);
			diag_print(&d, stderr);
			diag_clear(&d);
			if (rc == 0)
				rc = code;
			continue;
		}
		mbox = len >= 5 && memcmp(buf, "From ", 5) == 0;
		do {
			size_t end = mbox ? bounces_mbox_next(buf, len, at + 1)
			                  : len;
			struct bounce_event ev;
			msg++;
			if (bounce_parse(buf + at, end - at, &ev, &d) < 0) {
				fprintf(stderr, "herald %s: %s", cmd, files[i]);
				if (mbox)
					fprintf(stderr, " (message %zu)", msg);
				fputs(": ", stderr);
				diag_print(&d, stderr);
				diag_clear(&d);
				if (rc == 0)
					rc = EX_DATAERR;
			} else {
				struct bounces_msg m = {files[i], msg, mbox,
				                        line0, &ev};
				fn(arg, &m);
				bounce_event_free(&ev);
			}
			line0 += bounces_lines(buf + at, end - at);
			at = end;
		} while (mbox && at < len);
		free(buf);
	}
	if (fflush(stdout) != 0)
		rc = EX_IOERR;
	return rc;
}

static int bounces_parse_files(const struct bounces_cmd *o, char **files,
                               int nfiles)
{
	enum bounces_format fmt;

	if (bounces_format(o->format, &fmt, false) < 0)
		return EX_USAGE;
	if (nfiles == 0) {
		bounces_usage(stderr);
		return EX_USAGE;
	}
	return bounces_each_message("bounces parse", files, nfiles,
	                            bounces_parsed, &fmt);
}

/* ---- herald bounces explain --------------------------------------------- */

/* What explain knows beside the message: the soft limit in force. */
struct bounces_explain {
	enum bounces_format fmt;
	unsigned soft_limit, soft_window;
};

/* Once per message: what may act on a message of this kind (policy.c,
 * docs/guarantees.md). */
static const char *bounces_acts(const struct bounce_event *ev)
{
	const char *type = bounces_type(ev);

	if (strcmp(type, "bounce") == 0)
		return "only a report carrying herald's signed token naming "
		       "the "
		       "address it reports acts (the return path it was sent "
		       "to, or the returned original's Return-Path, "
		       "List-Unsubscribe or keyed Message-ID); without one it "
		       "is kept for review (herald bounces --unmatched) and "
		       "changes nothing";
	if (strcmp(type, "complaint") == 0)
		return "only a complaint carrying herald's signed token naming "
		       "the address acts (the returned original's Return-Path "
		       "or List-Unsubscribe, or its keyed Message-ID): it "
		       "marks "
		       "the delivery complained and suppresses the address; "
		       "without one it is kept for review and changes nothing";
	if (strcmp(type, "unsubscribe") == 0)
		return "mail to a delivery's signed unsubscribe+ address "
		       "suppresses that address at once; a journalist's reply "
		       "asking to be removed carries no token and waits for an "
		       "admin (herald suppress confirm EVENT)";
	if (strcmp(type, "autoreply") == 0)
		return "an auto-reply changes nothing; it is kept with the "
		       "message";
	return "a message herald does not read as a report changes nothing; "
	       "it is kept with the message";
}

/* The verdict in words, and what herald does with it (when it carries
 * the token). effect is written into buf. */
static const char *bounces_effect(const struct bounces_explain *x,
                                  const struct bounce_event *ev,
                                  const struct bounce_rcpt *r, char *buf,
                                  size_t size)
{
	const char *type = bounces_type(ev);
	char span[48];

	if (strcmp(type, "complaint") == 0)
		return "suppressed at once when it carries herald's token (the "
		       "delivery is marked complained)";
	if (strcmp(type, "unsubscribe") == 0)
		return ev->verp_to != NULL &&
		               strncasecmp(ev->verp_to, "unsubscribe+", 12) == 0
		           ? "suppressed at once when the unsubscribe+ address "
		             "carries a valid signature"
		           : "waits for an admin: herald suppress confirm "
		             "EVENT "
		             "suppresses the address";
	if (strcmp(type, "bounce") != 0 || r == NULL || r->hard == -1)
		return "changes nothing";
	if (r->hard == 1)
		return "suppressed at once when it carries herald's token";
	store_window_text(x->soft_window, span, sizeof(span));
	snprintf(buf, size, "counts toward the soft limit (%u within %s)",
	         x->soft_limit, span);
	return buf;
}

static const char *bounces_verdict_word(const struct bounce_event *ev,
                                        const struct bounce_rcpt *r)
{
	if (r == NULL || ev->kind != BOUNCE_DSN)
		return NULL;
	return r->hard == 1 ? "hard" : r->hard == 0 ? "soft" : "neither";
}

static const char *bounces_verdict_says(int hard)
{
	return hard == 1   ? "hard: the address itself is dead"
	       : hard == 0 ? "soft: a failure that may pass"
	                   : "neither: it says nothing about the address";
}

/* One "  name: value" line, value escaped (it came from outside). */
static void bounces_field(const char *name, const char *value)
{
	char *safe = log_escape(value ? value : "-");

	printf("    %-10s %s\n", name, safe ? safe : "(out of memory)");
	free(safe);
}

static void bounces_explained(void *arg, const struct bounces_msg *m)
{
	const struct bounces_explain *x = arg;
	const struct bounce_event *ev = m->ev;
	const char *type = bounces_type(ev);
	size_t n = ev->nrcpt > 0 ? ev->nrcpt : 1;

	if (x->fmt == BOUNCES_TABLE) {
		char *file = log_escape(m->file), *to = NULL;
		printf("%s", file ? file : "?");
		if (m->mbox)
			printf(", message %zu", m->n);
		printf(": %s\n", type);
		if (ev->verp_to != NULL &&
		    (to = log_escape(ev->verp_to)) != NULL)
			printf("  sent to <%s>\n", to);
		printf("  what acts: %s\n", bounces_acts(ev));
		free(file);
		free(to);
	}
	for (size_t i = 0; i < n; i++) {
		const struct bounce_rcpt *r =
		    ev->nrcpt > 0 ? &ev->rcpt[i] : NULL;
		const char *verdict = bounces_verdict_word(ev, r);
		char buf[128], code[16] = "-", line[32] = "";
		const char *effect = bounces_effect(x, ev, r, buf, sizeof(buf));
		size_t at = r != NULL && r->evidence_line > 0
		                ? m->line0 + r->evidence_line
		                : 0;

		if (x->fmt == BOUNCES_JSON) {
			bounces_json_head(m, r);
			bounces_json_opt("verdict", verdict);
			bounces_json_opt("effect", effect);
			bounces_json_opt("reason", r ? r->reason : NULL);
			bounces_json_opt("rule", r ? r->rule : NULL);
			bounces_json_opt("why", r ? r->why : NULL);
			bounces_json_opt("status", r ? r->status : NULL);
			if (r != NULL && r->code > 0)
				printf(",\"reply\":%d", r->code);
			else
				fputs(",\"reply\":null", stdout);
			bounces_json_opt("command", r ? r->command : NULL);
			bounces_json_opt("evidence", r ? r->evidence : NULL);
			if (at > 0)
				printf(",\"evidence_line\":%zu", at);
			else
				fputs(",\"evidence_line\":null", stdout);
			printf(",\"soft_limit\":%u,\"soft_window\":%u",
			       x->soft_limit, x->soft_window);
			bounces_json_opt("acts", bounces_acts(ev));
			puts("}");
			continue;
		}
		if (r == NULL) {
			printf("  %s\n", effect);
			continue;
		}
		{
			char *addr = log_escape(r->address);
			printf("  recipient <%s>\n", addr ? addr : "?");
			free(addr);
		}
		if (verdict != NULL)
			bounces_field("verdict:",
			              bounces_verdict_says(r->hard));
		bounces_field("herald:", effect);
		bounces_field("reason:", r->reason);
		if (r->rule != NULL) {
			char *both = NULL;
			if (asprintf(&both, "%s: %s", r->rule,
			             r->why ? r->why : "") < 0)
				both = NULL;
			bounces_field("rule:", both ? both : r->rule);
			free(both);
		}
		bounces_field("status:", r->status[0] ? r->status : NULL);
		if (r->code > 0)
			snprintf(code, sizeof(code), "%d", r->code);
		bounces_field("reply:", code);
		bounces_field("command:", r->command);
		if (r->evidence == NULL)
			bounces_field("evidence:", "none found");
		else {
			char *ev_line = NULL;
			if (at > 0)
				snprintf(line, sizeof(line), "line %zu: ", at);
			if (asprintf(&ev_line, "%s%s%s", line, r->evidence,
			             at > 0
			                 ? ""
			                 : " (not in the message as it "
			                   "stands: unfolded or decoded)") < 0)
				ev_line = NULL;
			bounces_field("evidence:",
			              ev_line ? ev_line : r->evidence);
			free(ev_line);
		}
	}
	if (x->fmt == BOUNCES_TABLE)
		putchar('\n');
}

static int bounces_explain_files(const struct bounces_cmd *o, char **files,
                                 int nfiles)
{
	struct bounces_explain x = {0};
	struct diag d = {0};
	struct config *cfg;

	if (bounces_format(o->format, &x.fmt, false) < 0)
		return EX_USAGE;
	if (nfiles == 0) {
		bounces_usage(stderr);
		return EX_USAGE;
	}
	/* the soft limit in force: herald.yaml's when there is one (its
	 * secrets are not needed) */
	cfg = config_load_flags(config_path(o->config), CONFIG_NO_SECRETS, &d);
	if (cfg == NULL) {
		diag_print(&d, stderr);
		diag_clear(&d);
		return EX_CONFIG;
	}
	x.soft_limit =
	    cfg->soft_limit ? cfg->soft_limit : STORE_DEFAULT_SOFT_LIMIT;
	x.soft_window =
	    cfg->soft_window ? cfg->soft_window : STORE_DEFAULT_SOFT_WINDOW;
	config_free(cfg);
	diag_clear(&d);
	return bounces_each_message("bounces explain", files, nfiles,
	                            bounces_explained, &x);
}

/* ---- the command line ----------------------------------------------------- */

int cmd_bounces(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"store", required_argument, NULL, 'S'},
	    {"release", required_argument, NULL, 'r'},
	    {"since", required_argument, NULL, 't'},
	    {"format", required_argument, NULL, 'f'},
	    {"unmatched", no_argument, NULL, 'u'},
	    {"wide", no_argument, NULL, 'W'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct bounces_cmd o = {0};
	const char *sub = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
	int ch;

	if (sub != NULL && strcmp(sub, "fetch") == 0)
		return bounces_fetch(argc - 1, argv + 1);
	optind = sub != NULL ? 2 : 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			o.config = optarg;
			break;
		case 'S':
			o.store = optarg;
			break;
		case 'r':
			o.release = optarg;
			break;
		case 't':
			o.since = optarg;
			break;
		case 'f':
			o.format = optarg;
			break;
		case 'u':
			o.unmatched = true;
			break;
		case 'W':
			o.wide = true;
			break;
		case 'h':
			bounces_usage(stdout);
			return 0;
		default:
			bounces_usage(stderr);
			return EX_USAGE;
		}
	}
	if (sub != NULL && strcmp(sub, "parse") == 0)
		return bounces_parse_files(&o, argv + optind, argc - optind);
	if (sub != NULL && strcmp(sub, "explain") == 0)
		return bounces_explain_files(&o, argv + optind, argc - optind);
	if (sub != NULL && strcmp(sub, "show") == 0) {
		if (optind + 1 != argc) {
			bounces_usage(stderr);
			return EX_USAGE;
		}
		o.arg = argv[optind];
		return bounces_show(&o);
	}
	if (sub != NULL || optind != argc) {
		fprintf(stderr, "herald bounces: unknown subcommand \"%s\"\n",
		        sub ? sub : argv[optind]);
		bounces_usage(stderr);
		return EX_USAGE;
	}
	return bounces_list(&o);
}
