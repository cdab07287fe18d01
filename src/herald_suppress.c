/*
 * herald suppress — the suppression list: the addresses herald never
 * mails again, whatever the release (a hard bounce, a complaint, an
 * unsubscribe request, soft bounces piling up, or staff adding one by
 * hand), each with its reason and date, and the rule and evidence that
 * put it there (store.h, struct store_suppression).
 *
 *   list   [--format table|json|csv]
 *   add    EMAIL... [--reason TEXT]
 *   remove EMAIL...
 *   import FILE      (one address per line, or the CSV export writes)
 *   export [--format csv|json]
 *   confirm EVENT... (a reply asking to be removed, which waits for an
 *                    admin: it carries no token of herald's)
 *
 * An import is all or nothing: a bad line names FILE:LINE:COLUMN and
 * nothing is added.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "herald/config.h"
#include "herald/datefmt.h"
#include "herald/diag.h"
#include "herald/field.h"
#include "herald/file.h"
#include "herald/store.h"
#include "herald_cli.h"

/* The largest import file herald reads (some million addresses). */
#define SUPPRESS_IMPORT_MAX (256u * 1024u * 1024u)
/* The longest reason kept with an entry. */
#define SUPPRESS_REASON_MAX 200
/* The longest rule name an import takes (herald's are much shorter). */
#define SUPPRESS_RULE_MAX 32

struct suppress_cmd {
	const char *config, *store, *format, *reason;
};

static void suppress_usage(FILE *f)
{
	fputs("usage: herald suppress list [--format table|json|csv]\n"
	      "       herald suppress add EMAIL... [--reason TEXT]\n"
	      "       herald suppress remove EMAIL...\n"
	      "       herald suppress import FILE\n"
	      "       herald suppress export [--format csv|json]\n"
	      "       herald suppress confirm EVENT...\n"
	      "       (each also takes --store PATH and --config FILE)\n\n"
	      "The suppression list: addresses herald never mails again, for "
	      "any release,\n"
	      "with the reason and the date they were added, and the rule "
	      "and evidence that\n"
	      "put them there (a bounce's verdict rule and the line it was "
	      "read from,\n"
	      "soft-limit and the events counted, a refusal's rule and the "
	      "server's reply,\n"
	      "admin, import and FILE:LINE, confirmed and the event). A hard "
	      "bounce, a\n"
	      "complaint or an unsubscribe request adds one; so does staff "
	      "with add or\n"
	      "import. Adding suppresses the address's queued and deferred "
	      "deliveries at\n"
	      "once. remove lets later queues mail the address again "
	      "(deliveries already\n"
	      "suppressed stay so). import reads one address per line (# "
	      "starts a comment),\n"
	      "or the CSV that export writes "
	      "(email,reason,time,rule,evidence; the rule and\n"
	      "evidence are kept, and an older export without them imports "
	      "as rule import);\n"
	      "it is all or nothing. add and import make the store when "
	      "there is none (the\n"
	      "list may be started before the first release); list, export "
	      "and remove need\n"
	      "one. confirm acts on a journalist's reply asking to be "
	      "removed (herald bounces\n"
	      "--unmatched lists them: a reply carries no token of herald's, "
	      "so it waits for\n"
	      "an admin).\n",
	      f);
}

/* ---- list and export ------------------------------------------------------
 */

enum suppress_format { SUPPRESS_TABLE, SUPPRESS_JSON, SUPPRESS_CSV };

static int suppress_row(void *arg, const struct store_suppression *sp)
{
	enum suppress_format fmt = *(enum suppress_format *)arg;
	char at[32];

	cli_time(sp->at, at, sizeof(at));
	if (fmt == SUPPRESS_JSON) {
		fputs("{\"email\":", stdout);
		cli_json_str(sp->email);
		fputs(",\"reason\":", stdout);
		cli_json_str(sp->reason ? sp->reason : "");
		printf(",\"time\":\"%s\",\"rule\":", at);
		cli_json_opt(sp->rule);
		fputs(",\"evidence\":", stdout);
		cli_json_opt(sp->evidence);
		puts("}");
	} else if (fmt == SUPPRESS_CSV) {
		cli_csv_str(sp->email);
		putchar(',');
		cli_csv_str(sp->reason ? sp->reason : "");
		printf(",%s,", at);
		cli_csv_str(sp->rule ? sp->rule : "");
		putchar(',');
		cli_csv_str(sp->evidence ? sp->evidence : "");
		fputs("\r\n", stdout);
	} else {
		/* addresses and evidence may come from a bounce: escaped */
		printf("%-20s ", at);
		cli_cell(sp->email, 0, 40);
		putchar(' ');
		cli_cell(sp->rule ? sp->rule : "-", 0, 16);
		putchar(' ');
		cli_cell(sp->reason ? sp->reason : "-", 0, 32);
		putchar(' ');
		cli_cell(sp->evidence ? sp->evidence : "-", 0, 0);
		putchar('\n');
	}
	return 0;
}

static int suppress_list(const struct suppress_cmd *o, bool export)
{
	struct diag d = {0};
	struct store *st;
	enum suppress_format fmt = export ? SUPPRESS_CSV : SUPPRESS_TABLE;
	int rc = EX_TEMPFAIL;

	if (o->format == NULL)
		;
	else if (!export && strcmp(o->format, "table") == 0)
		fmt = SUPPRESS_TABLE;
	else if (strcmp(o->format, "json") == 0)
		fmt = SUPPRESS_JSON;
	else if (strcmp(o->format, "csv") == 0)
		fmt = SUPPRESS_CSV;
	else {
		fprintf(stderr, "herald suppress: --format is %s\n",
		        export ? "csv or json" : "table, json or csv");
		return EX_USAGE;
	}
	if ((rc = cli_open_store(export ? "suppress export" : "suppress list",
	                         o->config, o->store, 0, &st, &d)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	if (fmt == SUPPRESS_TABLE)
		printf("%-20s %-40s %-16s %-32s %s\n", "ADDED", "EMAIL", "RULE",
		       "REASON", "EVIDENCE");
	else if (fmt == SUPPRESS_CSV)
		fputs("email,reason,time,rule,evidence\r\n", stdout);
	if (store_suppressions_each(st, suppress_row, &fmt, &d) < 0)
		goto done;
	rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	store_close(st);
	return rc;
}

/* ---- add and remove --------------------------------------------------------
 */

/* Is r one line of printable text of at most max bytes (empty only if
 * empty_ok)? (Reasons and evidence are shown in tables.) */
static int suppress_text_ok(const char *r, size_t max, bool empty_ok)
{
	size_t n = strlen(r);

	if ((n == 0 && !empty_ok) || n > max)
		return 0;
	for (const unsigned char *p = (const unsigned char *)r; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static int suppress_reason_ok(const char *r)
{
	return suppress_text_ok(r, SUPPRESS_REASON_MAX, false);
}

/* A rule's name as herald writes them ("status+text", "soft-limit"). */
static int suppress_rule_ok(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > SUPPRESS_RULE_MAX)
		return 0;
	for (const char *p = r; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '+' || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

static int suppress_add(const struct suppress_cmd *o, char **emails, int n)
{
	struct diag d = {0};
	struct store *st = NULL;
	struct store_suppression *v = NULL;
	size_t added = 0;
	int rc = EX_USAGE, bad = 0;

	if (n <= 0) {
		suppress_usage(stderr);
		return EX_USAGE;
	}
	if (o->reason != NULL && !suppress_reason_ok(o->reason)) {
		fprintf(stderr,
		        "herald suppress add: --reason must be one line of at "
		        "most %d characters\n",
		        SUPPRESS_REASON_MAX);
		return EX_USAGE;
	}
	for (int i = 0; i < n; i++) {
		const char *why = NULL;
		if (field_email_valid(emails[i], strlen(emails[i]), &why) < 0) {
			fprintf(stderr, "herald suppress add: \"%s\": %s\n",
			        emails[i], why);
			bad++;
		}
	}
	if (bad > 0)
		return EX_DATAERR;
	if ((v = calloc((size_t)n, sizeof(*v))) == NULL) {
		fputs("herald suppress add: out of memory\n", stderr);
		return EX_OSERR;
	}
	for (int i = 0; i < n; i++) {
		v[i].email = emails[i];
		v[i].reason = o->reason ? o->reason : "added by staff";
		v[i].rule = "admin";
		v[i].evidence = v[i].reason;
	}
	/* the list may be started before the first release is queued */
	if ((rc = cli_open_store("suppress add", o->config, o->store,
	                         STORE_OPEN_CREATE, &st, &d)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	if (store_suppress_import(st, v, (size_t)n, &added, &d) < 0)
		goto done;
	printf("suppressed %zu address%s (%zu already listed)\n", added,
	       added == 1 ? "" : "es", (size_t)n - added);
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	free(v);
	store_close(st);
	return rc;
}

static int suppress_remove(const struct suppress_cmd *o, char **emails, int n)
{
	struct diag d = {0};
	struct store *st;
	int rc = EX_TEMPFAIL, missing = 0;

	if (n == 0) {
		suppress_usage(stderr);
		return EX_USAGE;
	}
	if ((rc = cli_open_store("suppress remove", o->config, o->store, 0, &st,
	                         &d)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	for (int i = 0; i < n; i++) {
		bool removed = false;
		if (store_suppress_remove(st, emails[i], &removed, &d) < 0)
			goto done;
		if (removed)
			printf("removed %s\n", emails[i]);
		else {
			fprintf(stderr,
			        "herald suppress remove: %s is not on the "
			        "suppression list\n",
			        emails[i]);
			missing++;
		}
	}
	rc = missing > 0 ? EX_DATAERR : 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	store_close(st);
	return rc;
}

/* A reply asking to be removed carries no token, so anyone could have
 * written it: it waits until an admin confirms it here. */
static int suppress_confirm(const struct suppress_cmd *o, char **ids, int n)
{
	struct diag d = {0};
	struct store *st = NULL;
	int rc, bad = 0;

	if (n == 0) {
		suppress_usage(stderr);
		return EX_USAGE;
	}
	for (int i = 0; i < n; i++) {
		char *end;
		errno = 0;
		if (strtoll(ids[i], &end, 10) <= 0 || *end != '\0' ||
		    errno != 0) {
			fprintf(stderr,
			        "herald suppress confirm: %s is not an event "
			        "number (herald bounces --unmatched lists "
			        "them)\n",
			        ids[i]);
			return EX_USAGE;
		}
	}
	if ((rc = cli_open_store("suppress confirm", o->config, o->store, 0,
	                         &st, &d)) != 0)
		goto done;
	for (int i = 0; i < n; i++) {
		char *email = NULL;
		if (store_event_confirm(st, strtoll(ids[i], NULL, 10), &email,
		                        &d) < 0) {
			diag_print(&d, stderr);
			diag_clear(&d);
			bad++;
			continue;
		}
		printf("event %s confirmed: suppressed %s\n", ids[i], email);
		free(email);
	}
	rc = bad > 0 ? EX_DATAERR : 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	store_close(st);
	return rc;
}

/* ---- import ------------------------------------------------------------- */

/* One CSV field at *p (quoted with "" inside, or bare up to a comma), into
 * a malloc'd string; *p moves past it and its comma. NULL with *col at
 * the fault on a quote that does not close. */
static char *suppress_csv_field(const char **p, const char *end, size_t *col,
                                const char *line)
{
	const char *s = *p;
	char *out = malloc((size_t)(end - s) + 1);
	size_t k = 0;

	if (out == NULL)
		return NULL;
	if (s < end && *s == '"') {
		s++;
		for (;;) {
			if (s >= end) {
				*col = (size_t)(*p - line) + 1;
				free(out);
				return NULL;
			}
			if (*s == '"') {
				if (s + 1 < end && s[1] == '"') {
					out[k++] = '"';
					s += 2;
					continue;
				}
				s++;
				break;
			}
			out[k++] = *s++;
		}
	} else
		while (s < end && *s != ',')
			out[k++] = *s++;
	out[k] = '\0';
	/* export's guard against spreadsheet formulas (cli_csv_str) */
	if (out[0] == '\'' && cli_csv_guarded(out + 1))
		memmove(out, out + 1, k);
	if (s < end && *s == ',')
		s++;
	*p = s;
	return out;
}

struct suppress_import {
	struct store_suppression *v;
	char **owned; /* strings to free */
	size_t n, cap, nowned, owncap;
};

static int suppress_own(struct suppress_import *im, char *s)
{
	if (im->nowned == im->owncap) {
		size_t cap = im->owncap ? im->owncap * 2 : 64;
		char **o = realloc(im->owned, cap * sizeof(*o));
		if (o == NULL)
			return -1;
		im->owned = o;
		im->owncap = cap;
	}
	im->owned[im->nowned++] = s;
	return 0;
}

/* An import's field: *s when it is not empty, kept by im from here on
 * (*s NULL then), else fallback, into *out. -1 when memory runs out. */
static int suppress_take(struct suppress_import *im, char **s,
                         const char *fallback, const char **out)
{
	if (*s == NULL || **s == '\0') {
		*out = fallback;
		return 0;
	}
	if (suppress_own(im, *s) < 0)
		return -1;
	*out = *s;
	*s = NULL;
	return 0;
}

/* Read one line of an import file (without its line end). Problems go to
 * d with the file, line and column. */
static int suppress_import_line(struct suppress_import *im, const char *file,
                                size_t lineno, const char *line,
                                const char *end, bool csv, struct diag *d)
{
	const char *p = line, *why = NULL;
	char *email = NULL, *reason = NULL, *when = NULL, *rule = NULL,
	     *evidence = NULL;
	size_t col = 0;
	time_t at = 0;
	struct store_suppression *entry;
	int rc;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p == '#')
		return 0;
	for (const char *q = line; q < end; q++)
		if (*q == '\0') {
			diag_add(d, file, (int)lineno, (int)(q - line) + 1,
			         "a NUL byte in the line");
			return 1;
		}
	if (csv) {
		if ((email = suppress_csv_field(&p, end, &col, line)) == NULL)
			goto bad_quote;
		if (p < end &&
		    (reason = suppress_csv_field(&p, end, &col, line)) == NULL)
			goto bad_quote;
		if (p < end &&
		    (when = suppress_csv_field(&p, end, &col, line)) == NULL)
			goto bad_quote;
		/* an export from before rules were kept has no more */
		if (p < end &&
		    (rule = suppress_csv_field(&p, end, &col, line)) == NULL)
			goto bad_quote;
		if (p < end && (evidence = suppress_csv_field(&p, end, &col,
		                                              line)) == NULL)
			goto bad_quote;
	} else {
		const char *e = end;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((email = strndup(p, (size_t)(e - p))) == NULL)
			goto oom;
	}
	col = (size_t)(p - line) + 1;
	if (field_email_valid(email, strlen(email), &why) < 0) {
		diag_add(d, file, (int)lineno, csv ? 1 : (int)col,
		         "\"%s\" is not a mail address: %s", email, why);
		goto skip;
	}
	if (reason != NULL && *reason != '\0' && !suppress_reason_ok(reason)) {
		diag_add(d, file, (int)lineno, 0,
		         "the reason must be one line of at most %d "
		         "characters",
		         SUPPRESS_REASON_MAX);
		goto skip;
	}
	if (when != NULL && *when != '\0' && strcmp(when, "-") != 0 &&
	    datefmt_parse_when(when, time(NULL), &at, &why) < 0) {
		diag_add(d, file, (int)lineno, 0, "time \"%s\": %s", when,
		         why ? why : "not a time");
		goto skip;
	}
	if (rule != NULL && *rule != '\0' && !suppress_rule_ok(rule)) {
		diag_add(
		    d, file, (int)lineno, 0,
		    "the rule must be a word of at most %d letters, digits "
		    "and + - . (herald suppress export writes them)",
		    SUPPRESS_RULE_MAX);
		goto skip;
	}
	if (evidence != NULL &&
	    !suppress_text_ok(evidence, STORE_EVIDENCE_MAX, true)) {
		diag_add(d, file, (int)lineno, 0,
		         "the evidence must be one line of at most %d bytes",
		         STORE_EVIDENCE_MAX);
		goto skip;
	}
	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 256;
		struct store_suppression *v = realloc(im->v, cap * sizeof(*v));
		if (v == NULL)
			goto oom;
		im->v = v;
		im->cap = cap;
	}
	entry = &im->v[im->n];
	entry->at = at;
	if (suppress_take(im, &email, NULL, &entry->email) < 0 ||
	    suppress_take(im, &reason, "imported", &entry->reason) < 0)
		goto oom;
	/* an export keeps what put each address on the list; anything
	 * else is the file's word, and says where */
	if (rule != NULL && *rule != '\0') {
		if (suppress_take(im, &rule, NULL, &entry->rule) < 0 ||
		    suppress_take(im, &evidence, NULL, &entry->evidence) < 0)
			goto oom;
	} else {
		char *where = NULL;
		/* within what an import takes back (a path is rarely longer) */
		if (asprintf(&where, "%.*s:%zu", STORE_EVIDENCE_TEXT_MAX, file,
		             lineno) < 0)
			goto oom;
		if (suppress_own(im, where) < 0) {
			free(where);
			goto oom;
		}
		entry->rule = "import";
		entry->evidence = where;
	}
	im->n++;
	rc = 0;
	goto done;
bad_quote:
	diag_add(d, file, (int)lineno, (int)col, "a quoted field does not end");
skip:
	rc = 1;
	goto done;
oom:
	diag_add(d, file, 0, 0, "out of memory");
	rc = -1;
done:
	/* what the entry took is NULL here */
	free(email);
	free(reason);
	free(when);
	free(rule);
	free(evidence);
	return rc;
}

static int suppress_import(const struct suppress_cmd *o, const char *file)
{
	struct diag d = {0};
	struct store *st = NULL;
	struct suppress_import im = {0};
	char *buf = NULL;
	size_t len = 0, lineno = 0, added = 0, bad = 0;
	const char *p, *end;
	bool csv;
	int rc = EX_DATAERR;

	if (file_read(file, SUPPRESS_IMPORT_MAX, &buf, &len, &d) < 0)
		goto done;
	/* the CSV export starts with its header row */
	csv = len >= 6 && strncmp(buf, "email,", 6) == 0;
	p = buf;
	end = buf + len;
	while (p < end) {
		const char *nl = p, *le;
		int r;
		while (nl < end && *nl != '\n')
			nl++;
		le = nl;
		if (le > p && le[-1] == '\r')
			le--;
		lineno++;
		if (!(csv && lineno == 1)) {
			r = suppress_import_line(&im, file, lineno, p, le, csv,
			                         &d);
			if (r < 0)
				goto done;
			if (r > 0 && ++bad >= 20) {
				diag_add(&d, file, (int)lineno, 0,
				         "too many bad lines; stopping here");
				break;
			}
		}
		p = nl < end ? nl + 1 : end;
	}
	if (bad > 0) {
		diag_add(&d, file, 0, 0,
		         "nothing imported: fix the lines above first");
		goto done;
	}
	/* the list may be started before the first release is queued */
	if ((rc = cli_open_store("suppress import", o->config, o->store,
	                         STORE_OPEN_CREATE, &st, &d)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	if (store_suppress_import(st, im.v, im.n, &added, &d) < 0)
		goto done;
	printf("imported %zu address%s: %zu new, %zu already listed\n", im.n,
	       im.n == 1 ? "" : "es", added, im.n - added);
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	for (size_t i = 0; i < im.nowned; i++)
		free(im.owned[i]);
	free(im.owned);
	free(im.v);
	free(buf);
	store_close(st);
	return rc;
}

/* ---- the command line ----------------------------------------------------- */

int cmd_suppress(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"store", required_argument, NULL, 'S'},
	    {"format", required_argument, NULL, 'f'},
	    {"reason", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct suppress_cmd o = {0};
	const char *sub = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
	int ch, nargs;
	char **args;

	optind = sub != NULL ? 2 : 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			o.config = optarg;
			break;
		case 'S':
			o.store = optarg;
			break;
		case 'f':
			o.format = optarg;
			break;
		case 'r':
			o.reason = optarg;
			break;
		case 'h':
			suppress_usage(stdout);
			return 0;
		default:
			suppress_usage(stderr);
			return EX_USAGE;
		}
	}
	args = argv + optind;
	nargs = argc - optind;
	if (sub == NULL) {
		suppress_usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(sub, "list") == 0 && nargs == 0)
		return suppress_list(&o, false);
	if (strcmp(sub, "export") == 0 && nargs == 0)
		return suppress_list(&o, true);
	if (strcmp(sub, "add") == 0)
		return suppress_add(&o, args, nargs);
	if (strcmp(sub, "remove") == 0)
		return suppress_remove(&o, args, nargs);
	if (strcmp(sub, "confirm") == 0)
		return suppress_confirm(&o, args, nargs);
	if (strcmp(sub, "import") == 0 && nargs == 1)
		return suppress_import(&o, args[0]);
	fprintf(stderr, "herald suppress: unknown subcommand or arguments\n");
	suppress_usage(stderr);
	return EX_USAGE;
}
