/*
 * herald — the command line for press staff and admins. A thin main over
 * the library: each command loads what it needs (release, coalition list,
 * journalist lists), reports every problem at once on stderr with its
 * file:line:column, and prints only its result on stdout. Exit codes follow
 * <sysexits.h>: EX_USAGE for a wrong command line, EX_DATAERR for bad
 * input, EX_NOUSER for a recipient not on the lists.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "herald/coalition.h"
#include "herald/contacts.h"
#include "herald/diag.h"
#include "herald/i18n.h"
#include "herald/release.h"
#include "herald/tval.h"

#define HERALD_VERSION "0.1.0"

/* Everything a command works on, loaded together so that one run reports
 * the problems of every file. */
struct cli_inputs {
	struct release *rel;
	struct coalition *coal;
	struct contacts **lists;
	size_t nlists;
};

/* One recipient, taken once across all lists (the first entry wins). */
struct cli_recipient {
	const struct journalist *j;
	struct i18n_choice choice;
};

static void cli_inputs_free(struct cli_inputs *in)
{
	for (size_t i = 0; i < in->nlists; i++)
		contacts_free(in->lists[i]);
	free(in->lists);
	coalition_free(in->coal);
	release_free(in->rel);
}

/* Load the release, its coalition list and every journalist list; returns
 * 0 when all loaded. Problems are added to d. */
static int cli_load(struct cli_inputs *in, const char *dir, char **lists,
                    size_t nlists, const char *coalition, struct diag *d)
{
	size_t errors = d->errors;

	memset(in, 0, sizeof(*in));
	in->rel = release_load(dir, d);
	if (in->rel != NULL)
		in->coal =
		    coalition_load(coalition ? coalition : in->rel->coalition,
		                   &in->rel->policy, d);
	in->lists = calloc(nlists ? nlists : 1, sizeof(*in->lists));
	if (in->lists == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nlists; i++) {
		in->lists[in->nlists] = contacts_load(lists[i], d);
		if (in->lists[in->nlists] != NULL)
			in->nlists++;
	}
	return d->errors == errors && in->rel && in->coal ? 0 : -1;
}

/* The recipients of all lists, each address once; duplicates across lists
 * are warnings. Returns the count, or (size_t)-1 on out-of-memory. */
static size_t cli_recipients(const struct cli_inputs *in,
                             struct cli_recipient **out, struct diag *d)
{
	size_t total = 0, n = 0;
	struct cli_recipient *v;

	for (size_t i = 0; i < in->nlists; i++)
		total += in->lists[i]->n;
	v = calloc(total ? total : 1, sizeof(*v));
	if (v == NULL)
		return (size_t)-1;
	for (size_t i = 0; i < in->nlists; i++) {
		const struct contacts *l = in->lists[i];
		for (size_t k = 0; k < l->n; k++) {
			const struct journalist *j = &l->v[k];
			const struct journalist *seen = NULL;
			for (size_t p = 0; p < i && !seen; p++)
				seen = contacts_find(in->lists[p], j->email);
			if (seen == NULL && contacts_find(l, j->email) != j)
				continue; /* warned about by contacts_load */
			if (seen != NULL) {
				diag_warn(d, j->file, j->line, j->col,
				          "%s is also in %s (line %u); it will "
				          "be sent one message",
				          j->email, seen->file, seen->line);
				continue;
			}
			v[n].j = j;
			v[n].choice =
			    i18n_choose(&in->rel->policy, j->language);
			n++;
		}
	}
	*out = v;
	return n;
}

static void cli_usage_common(FILE *f)
{
	fputs("  --to LIST          a journalist list (YAML); repeat for "
	      "several\n"
	      "  --coalition FILE   the coalition list (default: as "
	      "release.yaml says,\n"
	      "                     else ../../lists/coalition.yaml from "
	      "the release)\n"
	      "  -h, --help         this help\n",
	      f);
}

static void check_usage(FILE *f)
{
	fputs("usage: herald check RELEASE_DIR --to LIST [--to LIST...] "
	      "[--coalition FILE]\n\n"
	      "Load the release, the coalition list and the journalist "
	      "lists, render every\n"
	      "recipient in their language in text and HTML, and report "
	      "every problem\n"
	      "(file:line:column) on stderr, then a coverage summary on "
	      "stdout.\n"
	      "Exit status: 0 clean, 65 bad input, 64 wrong usage.\n\n",
	      f);
	cli_usage_common(f);
}

static void render_usage(FILE *f)
{
	fputs("usage: herald render RELEASE_DIR --to LIST [--to LIST...] "
	      "--recipient EMAIL\n"
	      "                     [--format text|html] [--coalition "
	      "FILE]\n\n"
	      "Print the body the journalist at EMAIL receives, in the "
	      "language chosen for\n"
	      "them. Exit status: 0 printed, 65 bad input, 67 no such "
	      "recipient, 64 wrong usage.\n\n"
	      "  --recipient EMAIL  the journalist's address, as in the "
	      "list\n"
	      "  --format FORMAT    text (default) or html\n",
	      f);
	cli_usage_common(f);
}

/* Options shared by the commands that read a release and lists. */
struct cli_opts {
	const char *dir;
	char **lists;
	size_t nlists;
	const char *coalition;
	const char *recipient;
	const char *format;
};

static int cli_parse(int argc, char **argv, struct cli_opts *o, bool render,
                     void (*usage)(FILE *))
{
	static const struct option longopts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"coalition", required_argument, NULL, 'c'},
	    {"recipient", required_argument, NULL, 'r'},
	    {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->lists = calloc((size_t)argc, sizeof(*o->lists));
	if (o->lists == NULL)
		return EX_OSERR;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			o->lists[o->nlists++] = optarg;
			break;
		case 'c':
			o->coalition = optarg;
			break;
		case 'r':
		case 'f':
			if (!render) {
				fprintf(stderr, "herald: %s takes no --%s\n",
				        argv[0],
				        ch == 'r' ? "recipient" : "format");
				return EX_USAGE;
			}
			if (ch == 'r')
				o->recipient = optarg;
			else
				o->format = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "herald %s: %s\n", argv[0],
		        optind == argc ? "give the release directory"
		                       : "give one release directory");
		usage(stderr);
		return EX_USAGE;
	}
	o->dir = argv[optind];
	if (o->nlists == 0) {
		fprintf(stderr, "herald %s: give at least one --to LIST\n",
		        argv[0]);
		return EX_USAGE;
	}
	if (render && o->recipient == NULL) {
		fprintf(stderr, "herald render: give --recipient EMAIL\n");
		return EX_USAGE;
	}
	if (render && o->format && strcmp(o->format, "text") != 0 &&
	    strcmp(o->format, "html") != 0) {
		fprintf(stderr,
		        "herald render: --format is text or html, not \"%s\"\n",
		        o->format);
		return EX_USAGE;
	}
	return 0;
}

/* Render subject and both bodies for one recipient; problems to d. */
static int cli_render_all(struct cli_inputs *in, const struct cli_recipient *rc,
                          size_t bytes[RELEASE_FORMATS], struct diag *d)
{
	struct diag local = {0};
	struct tval *ctx;
	char *out = NULL;
	size_t len;
	int rc_ = 0;

	ctx = release_context(in->rel, in->coal, rc->j, rc->choice.lang);
	if (ctx == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	if (release_subject(in->rel, rc->choice.lang, ctx, &out, &local) < 0)
		rc_ = -1;
	free(out);
	for (int f = 0; f < RELEASE_FORMATS; f++) {
		if (release_render(in->rel, rc->choice.lang,
		                   (enum release_format)f, ctx, &out, &len,
		                   &local) < 0)
			rc_ = -1;
		else
			bytes[f] = len;
		free(out);
	}
	tval_free(ctx);
	diag_merge(d, &local);
	diag_clear(&local);
	return rc_;
}

static int cmd_check(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_inputs in;
	struct cli_recipient *rcp = NULL;
	struct diag d = {0};
	size_t n = 0, rendered = 0, nlangs;
	size_t *per_lang = NULL, *fallen = NULL;
	size_t(*size)[RELEASE_FORMATS] = NULL;
	int rc = cli_parse(argc, argv, &o, false, check_usage);

	if (rc != 0) {
		free(o.lists);
		return rc < 0 ? 0 : rc;
	}
	if (cli_load(&in, o.dir, o.lists, o.nlists, o.coalition, &d) == 0) {
		n = cli_recipients(&in, &rcp, &d);
		nlangs = in.rel->policy.nlangs;
		per_lang = calloc(nlangs, sizeof(*per_lang));
		fallen = calloc(nlangs, sizeof(*fallen));
		size = calloc(nlangs, sizeof(*size));
		if (n == (size_t)-1 || !per_lang || !fallen || !size) {
			diag_add(&d, NULL, 0, 0, "out of memory");
			n = 0;
		}
		for (size_t i = 0; i < n; i++) {
			size_t bytes[RELEASE_FORMATS] = {0, 0};
			size_t l = rcp[i].choice.lang;
			per_lang[l]++;
			if (rcp[i].choice.how != I18N_EXACT)
				fallen[l]++;
			if (cli_render_all(&in, &rcp[i], bytes, &d) == 0) {
				rendered++;
				for (int f = 0; f < RELEASE_FORMATS; f++)
					if (bytes[f] > size[l][f])
						size[l][f] = bytes[f];
			}
		}
	}
	diag_print(&d, stderr);
	if (in.rel != NULL && in.coal != NULL) {
		const struct i18n_policy *p = &in.rel->policy;
		size_t total = 0;
		for (size_t i = 0; i < in.nlists; i++)
			total += in.lists[i]->n;
		printf("release %s (%s)\n", in.rel->name, o.dir);
		printf("languages:");
		for (size_t l = 0; l < p->nlangs; l++)
			printf(" %s", p->langs[l]);
		printf(" (default %s)\n", p->langs[p->default_lang]);
		printf("recipients: %zu in %zu list%s (%zu entries), %zu "
		       "rendered in text and HTML\n",
		       n, in.nlists, in.nlists == 1 ? "" : "s", total,
		       rendered);
		printf("coverage:\n");
		for (size_t l = 0; n > 0 && l < p->nlangs; l++) {
			printf("  %-6s %4zu recipient%s", p->langs[l],
			       per_lang[l], per_lang[l] == 1 ? " " : "s");
			if (fallen[l])
				printf(" (%zu by fallback)", fallen[l]);
			if (per_lang[l])
				printf("  text %zu bytes, html %zu bytes",
				       size[l][RELEASE_TEXT],
				       size[l][RELEASE_HTML]);
			printf("\n");
		}
		for (size_t i = 0; i < n; i++) {
			char *why;
			if (rcp[i].choice.how == I18N_EXACT)
				continue;
			why =
			    i18n_describe(p, rcp[i].j->language, rcp[i].choice);
			printf("  fallback: %s <%s>: %s\n", rcp[i].j->name,
			       rcp[i].j->email, why ? why : "?");
			free(why);
		}
	}
	if (d.errors > 0)
		fprintf(stderr, "herald check: %zu error%s, %zu warning%s\n",
		        d.errors, d.errors == 1 ? "" : "s", d.warnings,
		        d.warnings == 1 ? "" : "s");
	rc = d.errors > 0 ? EX_DATAERR : 0;
	free(per_lang);
	free(fallen);
	free(size);
	free(rcp);
	cli_inputs_free(&in);
	diag_clear(&d);
	free(o.lists);
	return rc;
}

static int cmd_render(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_inputs in;
	struct cli_recipient *rcp = NULL;
	struct diag d = {0};
	struct tval *ctx = NULL;
	char *out = NULL;
	size_t n, len = 0;
	const struct cli_recipient *who = NULL;
	enum release_format f;
	int rc = cli_parse(argc, argv, &o, true, render_usage);

	if (rc != 0) {
		free(o.lists);
		return rc < 0 ? 0 : rc;
	}
	f = o.format && strcmp(o.format, "html") == 0 ? RELEASE_HTML
	                                              : RELEASE_TEXT;
	rc = EX_DATAERR;
	if (cli_load(&in, o.dir, o.lists, o.nlists, o.coalition, &d) < 0)
		goto done;
	n = cli_recipients(&in, &rcp, &d);
	if (n == (size_t)-1) {
		diag_add(&d, NULL, 0, 0, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n && who == NULL; i++)
		if (contacts_addr_equal(rcp[i].j->email, o.recipient))
			who = &rcp[i];
	if (who == NULL) {
		fprintf(stderr,
		        "herald render: no journalist <%s> in the "
		        "lists given\n",
		        o.recipient);
		rc = EX_NOUSER;
		goto done;
	}
	ctx = release_context(in.rel, in.coal, who->j, who->choice.lang);
	if (ctx == NULL) {
		diag_add(&d, NULL, 0, 0, "out of memory");
		goto done;
	}
	if (release_render(in.rel, who->choice.lang, f, ctx, &out, &len, &d) <
	    0)
		goto done;
	if (fwrite(out, 1, len, stdout) != len || fflush(stdout) != 0) {
		perror("herald render: stdout");
		rc = EX_IOERR;
		goto done;
	}
	rc = 0;
done:
	diag_print(&d, stderr);
	free(out);
	tval_free(ctx);
	free(rcp);
	cli_inputs_free(&in);
	diag_clear(&d);
	free(o.lists);
	return rc;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"check", cmd_check,
     "validate a release and lists, render every recipient"},
    {"render", cmd_render, "print one recipient's rendered body"},
};

static void usage(FILE *f)
{
	fputs("usage: herald [--help | --version] COMMAND [ARGS]\n\n"
	      "herald distributes press releases by e-mail, one personal "
	      "message per\n"
	      "journalist, in their language.\n\ncommands:\n",
	      f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fputs("\n'herald COMMAND --help' tells more.\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("herald %s\n", HERALD_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "herald: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return EX_USAGE;
}
