/*
 * herald — the command line for press staff and admins. A thin main over
 * the library: each command loads what it needs (release, coalition list,
 * journalist lists), reports every problem at once on stderr with its
 * file:line:column, and prints only its result on stdout. Exit codes follow
 * <sysexits.h>: EX_USAGE for a wrong command line, EX_DATAERR for bad
 * input, EX_NOUSER for a recipient not on the lists. HERALD_VERSION is
 * the project's version (CMakeLists.txt), the same for heraldd.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "herald/coalition.h"
#include "herald/config.h"
#include "herald/contacts.h"
#include "herald/diag.h"
#include "herald/dkim.h"
#include "herald/i18n.h"
#include "herald/message.h"
#include "herald/release.h"
#include "herald/rfc2047.h"
#include "herald/strset.h"
#include "herald/tval.h"
#include "herald/harden.h"
#include "herald_cli.h"

void cli_inputs_free(struct cli_inputs *in)
{
	for (size_t i = 0; i < in->nlists; i++)
		contacts_free(in->lists[i]);
	free(in->lists);
	coalition_free(in->coal);
	release_free(in->rel);
	verp_free(in->verp);
	for (size_t i = 0; i < in->nsigners; i++)
		dkim_signer_free(in->signers[i]);
	free(in->signers);
	config_free(in->config);
}

int cli_load_config(struct cli_inputs *in, const struct cli_opts *o,
                    struct diag *d)
{
	size_t errors = d->errors;

	in->config = config_load(config_path(o->config), d);
	if (in->config != NULL && in->config->ndkim > 0) {
		in->signers = calloc(in->config->ndkim, sizeof(*in->signers));
		for (size_t i = 0; in->signers && i < in->config->ndkim; i++) {
			const struct config_dkim *k = &in->config->dkim[i];
			struct dkim_signer *s =
			    dkim_signer_load(k->key, k->domain, k->selector, d);
			if (s != NULL)
				in->signers[in->nsigners++] = s;
		}
	}
	if (in->config != NULL && in->config->bounce_domain != NULL)
		in->verp = verp_load(in->config->bounce_secret_file,
		                     in->config->bounce_secret_env,
		                     in->config->bounce_domain, d);
	return d->errors == errors && in->config != NULL ? 0 : -1;
}

/* Load the config and its keys, the release and its coalition list;
 * returns 0 when all loaded. Problems are added to d. */
int cli_load_release(struct cli_inputs *in, const struct cli_opts *o,
                     struct diag *d)
{
	size_t errors = d->errors;

	memset(in, 0, sizeof(*in));
	cli_load_config(in, o, d);
	in->rel = release_load(NULL, o->dir, d);
	if (in->rel != NULL)
		in->coal = coalition_load(
		    NULL, o->coalition ? o->coalition : in->rel->coalition,
		    &in->rel->policy, d);
	return d->errors == errors && in->rel && in->coal ? 0 : -1;
}

/* cli_load_release, and every journalist list in memory. */
int cli_load(struct cli_inputs *in, const struct cli_opts *o, struct diag *d)
{
	size_t errors = d->errors;

	cli_load_release(in, o, d);
	in->lists = calloc(o->nlists ? o->nlists : 1, sizeof(*in->lists));
	if (in->lists == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < o->nlists; i++) {
		in->lists[in->nlists] = contacts_load(o->lists[i], d);
		if (in->lists[in->nlists] != NULL)
			in->nlists++;
	}
	return d->errors == errors && in->rel && in->coal ? 0 : -1;
}

/* The recipients of all lists, each address once; duplicates across lists
 * are warnings. Returns the count, or (size_t)-1 on out-of-memory. */
size_t cli_recipients(const struct cli_inputs *in, struct cli_recipient **out,
                      struct diag *d)
{
	size_t total = 0, n = 0;
	struct cli_recipient *v;
	struct strset *seen = strset_new();

	for (size_t i = 0; i < in->nlists; i++)
		total += in->lists[i]->n;
	v = calloc(total ? total : 1, sizeof(*v));
	if (v == NULL || seen == NULL)
		goto oom;
	for (size_t i = 0; i < in->nlists; i++) {
		const struct contacts *l = in->lists[i];
		for (size_t k = 0; k < l->n; k++) {
			const struct journalist *j = &l->v[k];
			char *key = contacts_addr_key(j->email);
			int added = key ? strset_add(seen, key) : -1;
			free(key);
			if (added < 0)
				goto oom;
			if (added == 0) {
				/* a repeat within a list was warned about by
				 * contacts_load; across lists, say so here */
				const struct journalist *first = NULL;
				for (size_t p = 0; i > 0 && p < i && !first;
				     p++)
					first = contacts_find(in->lists[p],
					                      j->email);
				if (first != NULL && i > 0 &&
				    contacts_find(l, j->email) == j)
					diag_warn(
					    d, j->file, j->line, j->col,
					    "%s is also in %s (line %u); it "
					    "will be sent one message",
					    j->email, first->file, first->line);
				continue;
			}
			v[n].j = j;
			v[n].choice =
			    i18n_choose(&in->rel->policy, j->language);
			n++;
		}
	}
	strset_free(seen);
	*out = v;
	return n;
oom:
	strset_free(seen);
	free(v);
	return (size_t)-1;
}

static void check_usage(FILE *f)
{
	fputs("usage: herald check RELEASE_DIR --to LIST [--to LIST...] "
	      "[--coalition FILE]\n\n"
	      "Load the config, the release, the coalition list and the "
	      "journalist lists,\n"
	      "build every recipient's message in their language (text, "
	      "HTML, attachments,\n"
	      "signatures), and report every problem (file:line:column) on "
	      "stderr, then a\n"
	      "coverage summary with each language's message size on "
	      "stdout.\n"
	      "Exit status: 0 clean (warnings allowed), 65 bad input, 64 "
	      "wrong usage.\n",
	      f);
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
	      "recipient, 64 wrong usage.\n",
	      f);
}

static void preview_usage(FILE *f)
{
	fputs("usage: herald preview RELEASE_DIR --to LIST [--to LIST...] "
	      "--recipient EMAIL\n"
	      "       herald preview RELEASE_DIR --to LIST [--to LIST...] "
	      "--out DIR\n\n"
	      "Print the exact message (RFC 5322, CRLF line ends) the "
	      "journalist at EMAIL\n"
	      "will receive, signed when herald.yaml has DKIM keys; or "
	      "write one .eml file\n"
	      "per recipient into DIR. Only Date and the signatures differ "
	      "from what is sent.\n"
	      "Exit status: 0 done, 65 bad input, 67 no such recipient, 73 "
	      "cannot write.\n",
	      f);
}

void cli_usage_common(FILE *f)
{
	fputs("\n  --to LIST          a journalist list (YAML); repeat for "
	      "several\n"
	      "  --coalition FILE   the coalition list (default: as "
	      "release.yaml says)\n"
	      "  --config FILE      herald.yaml (default: $HERALD_CONFIG, "
	      "else ./herald.yaml)\n"
	      "  -h, --help         this help\n",
	      f);
}

int cli_parse(int argc, char **argv, struct cli_opts *o, unsigned allowed,
              void (*usage)(FILE *))
{
	static const struct option longopts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"coalition", required_argument, NULL, 'c'},
	    {"config", required_argument, NULL, 'C'},
	    {"recipient", required_argument, NULL, 'r'},
	    {"format", required_argument, NULL, 'f'},
	    {"out", required_argument, NULL, 'o'},
	    {"store", required_argument, NULL, 'S'},
	    {"at", required_argument, NULL, 'a'},
	    {"proof-to", required_argument, NULL, 'P'},
	    {"relay", required_argument, NULL, 'R'},
	    {"only-new", no_argument, NULL, 'N'},
	    {"embargo-passed", required_argument, NULL, 'E'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0];
	int ch;

	memset(o, 0, sizeof(*o));
	o->cmd = cmd;
	o->lists = calloc((size_t)argc, sizeof(*o->lists));
	o->proof_to = calloc((size_t)argc, sizeof(*o->proof_to));
	if (o->lists == NULL || o->proof_to == NULL)
		return EX_OSERR;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		unsigned need = ch == 'r'   ? CLI_RECIPIENT
		                : ch == 'f' ? CLI_FORMAT
		                : ch == 'o' ? CLI_OUT
		                : ch == 'S' ? CLI_STORE
		                : ch == 'a' ? CLI_AT
		                : ch == 'P' ? CLI_PROOF
		                : ch == 'R' ? CLI_PROOF
		                : ch == 'N' ? CLI_QUEUE
		                : ch == 'E' ? CLI_QUEUE
		                            : 0;
		if (need != 0 && !(allowed & need)) {
			fprintf(stderr, "herald %s: no such option\n", cmd);
			usage(stderr);
			return EX_USAGE;
		}
		switch (ch) {
		case 't':
			o->lists[o->nlists++] = optarg;
			break;
		case 'c':
			o->coalition = optarg;
			break;
		case 'C':
			o->config = optarg;
			break;
		case 'r':
			o->recipient = optarg;
			break;
		case 'f':
			o->format = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'S':
			o->store = optarg;
			break;
		case 'a':
			o->at = optarg;
			break;
		case 'P':
			o->proof_to[o->nproof++] = optarg;
			break;
		case 'R':
			o->relay = optarg;
			break;
		case 'N':
			o->only_new = true;
			break;
		case 'E':
			o->embargo_passed = optarg;
			break;
		case 'h':
			usage(stdout);
			cli_usage_common(stdout);
			return -1;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "herald %s: %s\n", cmd,
		        optind == argc ? "give the release directory"
		                       : "give one release directory");
		usage(stderr);
		return EX_USAGE;
	}
	o->dir = argv[optind];
	if (o->nlists == 0) {
		fprintf(stderr, "herald %s: give at least one --to LIST\n",
		        cmd);
		return EX_USAGE;
	}
	if ((allowed & CLI_RECIPIENT) && !(allowed & CLI_OUT) &&
	    o->recipient == NULL) {
		fprintf(stderr, "herald %s: give --recipient EMAIL\n", cmd);
		return EX_USAGE;
	}
	if ((allowed & CLI_OUT) && (o->recipient == NULL) == (o->out == NULL)) {
		fprintf(stderr,
		        "herald %s: give either --recipient EMAIL or "
		        "--out DIR\n",
		        cmd);
		return EX_USAGE;
	}
	if (o->embargo_passed && strcmp(o->embargo_passed, "send") != 0) {
		fprintf(stderr,
		        "herald %s: --embargo-passed takes \"send\" (send "
		        "without the embargo's wording), not \"%s\"\n",
		        cmd, o->embargo_passed);
		return EX_USAGE;
	}
	if (o->format && strcmp(o->format, "text") != 0 &&
	    strcmp(o->format, "html") != 0) {
		fprintf(stderr,
		        "herald %s: --format is text or html, not \"%s\"\n",
		        cmd, o->format);
		return EX_USAGE;
	}
	return 0;
}

/* Does a DKIM signature by `signer` align with From's domain under
 * DMARC's relaxed rule (one is the other or a subdomain of it)? */
static bool cli_aligned(const char *from, const char *signer)
{
	size_t lf = strlen(from), ls = strlen(signer);

	if (strcasecmp(from, signer) == 0)
		return true;
	if (lf > ls && from[lf - ls - 1] == '.' &&
	    strcasecmp(from + lf - ls, signer) == 0)
		return true;
	return ls > lf && signer[ls - lf - 1] == '.' &&
	       strcasecmp(signer + ls - lf, from) == 0;
}

static void cli_check_alignment(const struct cli_inputs *in, struct diag *d)
{
	const char *from = message_from_domain(in->rel);
	bool any = false;

	for (size_t i = 0; i < in->nsigners; i++) {
		const char *dom = dkim_signer_domain(in->signers[i]);
		if (cli_aligned(from, dom)) {
			any = true;
			continue;
		}
		diag_warn(d, in->config->dkim[i].file, in->config->dkim[i].line,
		          in->config->dkim[i].col,
		          "DKIM domain %s does not match the From domain %s: "
		          "receivers checking DMARC will not count this "
		          "signature",
		          dom, from);
	}
	if (in->nsigners == 0)
		diag_warn(d, in->rel->file, 0, 0,
		          "messages will not be DKIM-signed (no dkim keys in "
		          "the config): many receivers file unsigned bulk "
		          "mail as spam");
	else if (!any)
		diag_warn(d, in->rel->file, 0, 0,
		          "no DKIM signature aligns with the From domain %s",
		          from);
}

/* ---- progress ---------------------------------------------------------- */

/* A line appears after this long, and changes at most this often: short
 * runs stay quiet, and a terminal is not flooded. */
#define CLI_PROGRESS_AFTER 2.0
#define CLI_PROGRESS_EVERY 0.25

static double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_start(struct cli_progress *p, const char *cmd)
{
	memset(p, 0, sizeof(*p));
	p->cmd = cmd;
	p->tty = isatty(STDERR_FILENO) == 1;
	p->start = p->last = cli_now();
}

void cli_progress(struct cli_progress *p, const char *fmt, ...)
{
	va_list ap;
	double now;

	if (p == NULL || !p->tty)
		return;
	now = cli_now();
	if (now - p->start < CLI_PROGRESS_AFTER ||
	    (p->shown && now - p->last < CLI_PROGRESS_EVERY))
		return;
	p->last = now;
	p->shown = true;
	fprintf(stderr, "\r%s: ", p->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr);
	fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
	if (p != NULL && p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->shown = false;
	}
}

/* ---- the lists, one journalist at a time --------------------------------- */

/* The message check's state: the forms already built whole, by outcome. */
struct cli_check {
	struct message_opts mo;
	struct strset *good, *bad;
};

/* A recipient's values through what can refuse them one by one: the
 * context and subject rendered, Subject and To encoded as compose does. */
static int cli_check_own(struct cli_inputs *in, const struct journalist *j,
                         size_t lang, struct diag *d)
{
	struct diag local = {0};
	struct tval *ctx = release_context(in->rel, in->coal, j, lang, &local);
	struct rfc2047_mailbox to = {.name = j->name, .addr = j->email};
	char *subject = NULL, *field = NULL;
	int rc = -1;

	if (ctx == NULL || release_subject(in->rel, lang, ctx, &subject,
	                                   &local) < 0)
		goto done;
	if ((field = rfc2047_text_field("Subject", subject)) == NULL) {
		diag_add(&local, j->file, j->line, j->col,
		         "the subject for %s cannot be written as a mail "
		         "header: a value in it holds characters a header "
		         "cannot carry",
		         j->email);
		goto done;
	}
	free(field);
	if ((field = rfc2047_address_field("To", &to, 1)) == NULL) {
		diag_add(&local, j->file, j->line, j->col,
		         "%s: the name cannot go into the To header: it holds "
		         "characters a mail header cannot carry",
		         j->email);
		goto done;
	}
	rc = 0;
done:
	free(field);
	free(subject);
	tval_free(ctx);
	diag_merge(d, &local);
	diag_clear(&local);
	return rc;
}

/* Check j's message (see struct cli_walk). 0 when it builds. */
static int cli_check_one(struct cli_inputs *in, struct cli_check *k,
                         const struct journalist *j, size_t lang,
                         struct cli_walk *w, struct diag *d)
{
	char form[192];
	int added;

	/* the form: everything but the values that decides what renders
	 * (the zone only writes the embargo's time) */
	snprintf(form, sizeof(form), "%zu %s %s %c%c%c%c", lang,
	         release_locale(in->rel, j, lang),
	         j->timezone && in->rel->has_embargo ? j->timezone : "-",
	         j->outlet ? 'o' : '-',
	         j->beat ? 'b' : '-', j->region ? 'r' : '-',
	         j->timezone ? 't' : '-');
	if (strset_has(k->bad, form))
		return -1;
	if (!strset_has(k->good, form)) {
		struct diag local = {0};
		char *msg = NULL;
		size_t len = 0;
		int rc = message_build(in->rel, in->coal, j, lang, &k->mo, &msg,
		                       &len, &local);
		free(msg);
		diag_merge(d, &local);
		diag_clear(&local);
		w->built++;
		added = strset_add(rc == 0 ? k->good : k->bad, form);
		if (added < 0) {
			diag_add(d, NULL, 0, 0, "out of memory");
			return -1;
		}
		if (rc < 0)
			return -1;
		if (w->size != NULL && len > w->size[lang])
			w->size[lang] = len;
	}
	return cli_check_own(in, j, lang, d);
}

int cli_walk(struct cli_inputs *in, const struct cli_opts *o,
             struct cli_walk *w, struct diag *d)
{
	struct contacts_seen *seen = contacts_seen_new();
	struct cli_check k = {0};
	bool build = in->rel != NULL && in->coal != NULL && in->config != NULL;
	size_t total = 0, before = 0;
	int rc = 0;

	k.good = strset_new();
	k.bad = strset_new();
	if (seen == NULL || k.good == NULL || k.bad == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		rc = -1;
		goto done;
	}
	if (build)
		k.mo = (struct message_opts){
		    .now = time(NULL),
		    .cache = message_cache_new(),
		    .verp = in->verp,
		    .unsubscribe_url = in->config->unsubscribe_url,
		    .signers = in->signers,
		    .nsigners = in->nsigners};
	for (size_t i = 0; i < o->nlists; i++) {
		struct stat st;
		if (stat(o->lists[i], &st) == 0)
			total += (size_t)st.st_size;
	}
	for (size_t i = 0; i < o->nlists && rc == 0; i++) {
		struct contacts_reader *r = contacts_open(o->lists[i], d);
		const struct journalist *j;
		int got;

		if (r == NULL)
			continue;
		while (rc == 0 && (got = contacts_next(r, &j, d)) == 1) {
			unsigned fl = 0, fline = 0;
			struct i18n_choice c = {0};
			bool ok;
			int added = contacts_seen_add(seen, j, (unsigned)i, &fl,
			                              &fline);
			if (added < 0) {
				diag_add(d, NULL, 0, 0, "out of memory");
				rc = -1;
				break;
			}
			if (added == 0) {
				if (fl == i)
					diag_warn(d, j->file, j->line, j->col,
					          "%s is listed again (first at "
					          "line %u); it will be sent one "
					          "message",
					          j->email, fline);
				else
					diag_warn(d, j->file, j->line, j->col,
					          "%s is also in %s (line %u); it "
					          "will be sent one message",
					          j->email, o->lists[fl], fline);
				continue;
			}
			w->recipients++;
			if (in->rel != NULL)
				c = i18n_choose(&in->rel->policy, j->language);
			ok = build && cli_check_one(in, &k, j, c.lang, w, d) == 0;
			if (ok)
				w->checked++;
			if (w->fn != NULL)
				rc = w->fn(w->arg, j, &c, ok);
			if (total > 0)
				cli_progress(w->progress,
				             "reading %s: %zu recipients (%zu%%)",
				             o->lists[i], w->recipients,
				             (before + contacts_bytes(r)) * 100 /
				                 total);
		}
		w->entries += contacts_entries(r);
		before += contacts_bytes(r);
		contacts_close(r);
	}
	cli_progress_end(w->progress);
done:
	message_cache_free(k.mo.cache);
	strset_free(k.good);
	strset_free(k.bad);
	contacts_seen_free(seen);
	return rc;
}

/* What check counts and prints of each recipient: per language, how many
 * read it and how many by fallback; the fallbacks, one line each, kept in
 * a file until the summary is printed. */
struct check_counts {
	const struct i18n_policy *p;
	size_t *per_lang, *fallen;
	FILE *fallbacks;
};

static int check_recipient(void *arg, const struct journalist *j,
                           const struct i18n_choice *c, bool ok)
{
	struct check_counts *cc = arg;
	char *why;

	(void)ok;
	if (cc->p == NULL)
		return 0;
	cc->per_lang[c->lang]++;
	if (c->how == I18N_EXACT)
		return 0;
	cc->fallen[c->lang]++;
	why = i18n_describe(cc->p, j->language, *c);
	if (cc->fallbacks != NULL)
		fprintf(cc->fallbacks, "  fallback: %s <%s>: %s\n", j->name,
		        j->email, why ? why : "?");
	free(why);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_inputs in;
	struct cli_walk w = {0};
	struct cli_progress pr;
	struct check_counts cc = {0};
	struct diag d = {0};
	size_t nlangs = 0, *size = NULL;
	int rc = cli_parse(argc, argv, &o, 0, check_usage);

	if (rc != 0) {
		free(o.lists);
		free(o.proof_to);
		return rc < 0 ? 0 : rc;
	}
	cli_progress_start(&pr, "herald check");
	if (cli_load_release(&in, &o, &d) == 0)
		cli_check_alignment(&in, &d);
	if (in.rel != NULL && in.rel->has_embargo &&
	    in.rel->embargo <= time(NULL)) {
		char when[64];
		struct tm tm;
		gmtime_r(&in.rel->embargo, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		diag_warn(&d, in.rel->file, in.rel->embargo_line,
		          in.rel->embargo_col,
		          "the embargo (%s) has passed: herald queue refuses "
		          "the release unless told --embargo-passed=send (then "
		          "the messages go out at once, without the embargo's "
		          "wording)",
		          when);
	}
	if (in.rel != NULL) {
		nlangs = in.rel->policy.nlangs;
		cc.p = &in.rel->policy;
		cc.per_lang = calloc(nlangs, sizeof(*cc.per_lang));
		cc.fallen = calloc(nlangs, sizeof(*cc.fallen));
		size = calloc(nlangs, sizeof(*size));
		if (!cc.per_lang || !cc.fallen || !size) {
			diag_add(&d, NULL, 0, 0, "out of memory");
			cc.p = NULL;
		}
	}
	cc.fallbacks = tmpfile();
	w.fn = check_recipient;
	w.arg = &cc;
	w.size = size;
	w.progress = &pr;
	cli_walk(&in, &o, &w, &d);
	diag_print(&d, stderr);
	if (in.rel != NULL && in.coal != NULL && cc.p != NULL) {
		const struct i18n_policy *p = &in.rel->policy;
		printf("release %s (%s)\n", in.rel->name, o.dir);
		printf("languages:");
		for (size_t l = 0; l < p->nlangs; l++)
			printf(" %s", p->langs[l]);
		printf(" (default %s)\n", p->langs[p->default_lang]);
		printf("recipients: %zu in %zu list%s (%zu entries), %zu "
		       "messages checked (%zu built whole, one per language "
		       "and form)\n",
		       w.recipients, o.nlists, o.nlists == 1 ? "" : "s",
		       w.entries, w.checked, w.built);
		printf("signing: %zu DKIM key%s\n", in.nsigners,
		       in.nsigners == 1 ? "" : "s");
		printf("coverage:\n");
		for (size_t l = 0; w.recipients > 0 && l < p->nlangs; l++) {
			printf("  %-6s %4zu recipient%s", p->langs[l],
			       cc.per_lang[l], cc.per_lang[l] == 1 ? " " : "s");
			if (cc.per_lang[l])
				printf("  message %zu bytes", size[l]);
			if (cc.fallen[l])
				printf("  (%zu by fallback)", cc.fallen[l]);
			printf("\n");
		}
		fflush(stdout);
		if (cc.fallbacks != NULL) {
			char buf[65536];
			size_t n;
			rewind(cc.fallbacks);
			while ((n = fread(buf, 1, sizeof(buf), cc.fallbacks)) >
			       0)
				fwrite(buf, 1, n, stdout);
		}
	}
	if (d.errors > 0)
		fprintf(stderr, "herald check: %zu error%s, %zu warning%s\n",
		        d.errors, d.errors == 1 ? "" : "s", d.warnings,
		        d.warnings == 1 ? "" : "s");
	rc = d.errors > 0 ? EX_DATAERR : 0;
	if (cc.fallbacks != NULL)
		fclose(cc.fallbacks);
	free(cc.per_lang);
	free(cc.fallen);
	free(size);
	cli_inputs_free(&in);
	diag_clear(&d);
	free(o.lists);
	free(o.proof_to);
	return rc;
}

/* The recipient named by --recipient, or NULL after saying so. */
const struct cli_recipient *cli_find(const struct cli_recipient *v, size_t n,
                                     const struct cli_opts *o)
{
	for (size_t i = 0; i < n; i++)
		if (contacts_addr_equal(v[i].j->email, o->recipient))
			return &v[i];
	fprintf(stderr, "herald %s: no journalist <%s> in the lists given\n",
	        o->cmd, o->recipient);
	return NULL;
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
	const struct cli_recipient *who;
	enum release_format f;
	int rc =
	    cli_parse(argc, argv, &o, CLI_RECIPIENT | CLI_FORMAT, render_usage);

	if (rc != 0) {
		free(o.lists);
		free(o.proof_to);
		return rc < 0 ? 0 : rc;
	}
	f = o.format && strcmp(o.format, "html") == 0 ? RELEASE_HTML
	                                              : RELEASE_TEXT;
	rc = EX_DATAERR;
	if (cli_load(&in, &o, &d) < 0)
		goto done;
	n = cli_recipients(&in, &rcp, &d);
	if (n == (size_t)-1) {
		diag_add(&d, NULL, 0, 0, "out of memory");
		goto done;
	}
	if ((who = cli_find(rcp, n, &o)) == NULL) {
		rc = EX_NOUSER;
		goto done;
	}
	ctx = release_context(in.rel, in.coal, who->j, who->choice.lang, &d);
	if (ctx == NULL)
		goto done;
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
	free(o.proof_to);
	return rc;
}

/* A file name for a recipient's .eml: the address with anything but
 * letters, digits, . - _ @ + replaced, so no address can escape DIR. */
static char *cli_eml_name(const char *dir, const char *email)
{
	char *safe = strdup(email), *path = NULL;

	if (safe == NULL)
		return NULL;
	for (char *p = safe; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-_@+", *p))
			*p = '_';
	if (safe[0] == '.')
		safe[0] = '_';
	if (asprintf(&path, "%s/%s.eml", dir, safe) < 0)
		path = NULL;
	free(safe);
	return path;
}

/* Write data to path atomically: a temporary file beside it, fsync,
 * rename. Mode 0600: messages hold the lists' personal data. The
 * temporary file is always a new file (O_EXCL, O_NOFOLLOW), so a link
 * planted at its name in a directory others may write is never followed,
 * and a symbolic link at path itself is refused (errno ELOOP), not
 * replaced: whoever planted it meant something by it. */
int cli_write_file(const char *path, const char *data, size_t len)
{
	char *tmp = NULL;
	int fd = -1, saved;
	size_t off = 0;
	struct stat st;

	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		errno = S_ISLNK(st.st_mode) ? ELOOP : EEXIST;
		return -1;
	}
	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0600);
	if (fd < 0) {
		saved = errno;
		free(tmp);
		errno = saved;
		return -1;
	}
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	errno = saved;
	return -1;
}

static int cmd_preview(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_inputs in;
	struct cli_recipient *rcp = NULL;
	struct diag d = {0};
	char *msg = NULL;
	size_t n, len = 0, written = 0;
	struct message_opts mo = {0};
	int rc =
	    cli_parse(argc, argv, &o, CLI_RECIPIENT | CLI_OUT, preview_usage);

	if (rc != 0) {
		free(o.lists);
		free(o.proof_to);
		return rc < 0 ? 0 : rc;
	}
	rc = EX_DATAERR;
	if (cli_load(&in, &o, &d) < 0)
		goto done;
	mo =
	    (struct message_opts){.now = time(NULL),
	                          .cache = message_cache_new(),
	                          .verp = in.verp,
	                          .unsubscribe_url = in.config->unsubscribe_url,
	                          .signers = in.signers,
	                          .nsigners = in.nsigners};
	n = cli_recipients(&in, &rcp, &d);
	if (n == (size_t)-1) {
		diag_add(&d, NULL, 0, 0, "out of memory");
		goto done;
	}
	if (o.recipient != NULL) {
		const struct cli_recipient *who = cli_find(rcp, n, &o);
		if (who == NULL) {
			rc = EX_NOUSER;
			goto done;
		}
		if (message_build(in.rel, in.coal, who->j, who->choice.lang,
		                  &mo, &msg, &len, &d) < 0)
			goto done;
		if (fwrite(msg, 1, len, stdout) != len || fflush(stdout) != 0) {
			perror("herald preview: stdout");
			rc = EX_IOERR;
			goto done;
		}
		rc = 0;
		goto done;
	}
	if (mkdir(o.out, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "herald preview: cannot create %s: %s\n", o.out,
		        strerror(errno));
		rc = EX_CANTCREAT;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		struct diag local = {0};
		char *path;
		if (message_build(in.rel, in.coal, rcp[i].j, rcp[i].choice.lang,
		                  &mo, &msg, &len, &local) < 0) {
			diag_merge(&d, &local);
			diag_clear(&local);
			continue;
		}
		diag_clear(&local);
		path = cli_eml_name(o.out, rcp[i].j->email);
		if (path == NULL || cli_write_file(path, msg, len) < 0) {
			if (path != NULL && errno == ELOOP)
				fprintf(stderr,
				        "herald preview: %s is a symbolic link: "
				        "not followed, not replaced; remove it or "
				        "choose another --out\n",
				        path);
			else if (path != NULL && errno == EEXIST)
				fprintf(stderr,
				        "herald preview: %s exists and is not a "
				        "regular file (or a temporary file of "
				        "that name exists): not written\n",
				        path);
			else
				fprintf(stderr,
				        "herald preview: cannot write %s: %s\n",
				        path ? path : o.out, strerror(errno));
			free(path);
			rc = EX_CANTCREAT;
			goto done;
		}
		free(path);
		free(msg);
		msg = NULL;
		written++;
	}
	printf("wrote %zu message%s to %s\n", written, written == 1 ? "" : "s",
	       o.out);
	rc = d.errors > 0 ? EX_DATAERR : 0;
done:
	diag_print(&d, stderr);
	message_cache_free(mo.cache);
	free(msg);
	free(rcp);
	cli_inputs_free(&in);
	diag_clear(&d);
	free(o.lists);
	free(o.proof_to);
	return rc;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"check", cmd_check,
     "validate a release and lists, build every recipient's message"},
    {"render", cmd_render, "print one recipient's rendered body"},
    {"queue", cmd_queue, "queue a release for delivery by heraldd"},
    {"proof", cmd_proof, "send a marked proof of each language to staff"},
    {"status", cmd_status, "releases and their deliveries by state"},
    {"log", cmd_log, "the delivery log: one row per attempt"},
    {"show", cmd_show, "one delivery's whole history"},
    {"cancel", cmd_cancel, "cancel a release's remaining deliveries"},
    {"pause", cmd_pause, "pause a release"},
    {"resume", cmd_resume, "resume a paused release"},
    {"retry", cmd_retry, "retry a release's failed or deferred deliveries"},
    {"bounces", cmd_bounces,
     "read the bounce mailbox: bounces, complaints, unsubscribes"},
    {"suppress", cmd_suppress,
     "the suppression list: addresses never mailed again"},
    {"keygen", cmd_keygen, "make a DKIM signing key and its DNS record"},
    {"preview", cmd_preview,
     "print one recipient's message, or write every message as .eml"},
    {"config", cmd_config,
     "every setting of herald.yaml as used, or its default"},
    {"store", cmd_store,
     "the store: bring its schema up to date, copy it to another"},
    {"passwd", cmd_passwd,
     "print the argon2id hash of a password for web.users"},
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
	/* secrets are read into memory: no core file, no ptrace */
	(void)harden_process();
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
