/*
 * herald queue and herald proof — press staff's two ways to send.
 *
 * queue: the release's files read once, into a snapshot, and everything
 * check does done on that snapshot, refusing on any problem; each address
 * once across the lists; the snapshot into the store with one delivery per
 * recipient, in one transaction; then the daemon is woken.
 * The lists are read once, one journalist at a time, and what was checked
 * is kept on disk (the spool) until it goes into the store, so a list of a
 * million costs no more memory than a list of ten. A release name already
 * in the store is refused unless --only-new asks for the addresses it has
 * not reached yet.
 *
 * proof: one marked copy per language to staff, through the relay, at
 * once, without queueing anything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "herald/control.h"
#include "herald/datefmt.h"
#include "herald/message.h"
#include "herald/snapshot.h"
#include "herald/store.h"
#include "herald/transport.h"
#include "herald/yaml_doc.h"
#include "herald_cli.h"

static void queue_usage(FILE *f)
{
	fputs("usage: herald queue RELEASE_DIR --to LIST [--to LIST...] "
	      "[--at TIME] [--only-new]\n"
	      "                    [--embargo-passed send] [--store PATH] "
	      "[--config FILE]\n"
	      "                    [--coalition FILE]\n\n"
	      "Check the release as `herald check` does and refuse on any "
	      "problem; then\n"
	      "queue one delivery per address (each address once across the "
	      "lists; addresses\n"
	      "on the suppression list are skipped) with a snapshot of every "
	      "file, so later\n"
	      "edits change nothing that is sent, and wake heraldd. Nothing "
	      "leaves before\n"
	      "--at or the release's embargo. A release name already in the "
	      "store is refused.\n\n"
	      "  --at TIME      now, +10m (units s, m, h, d), "
	      "2019-05-06T07:00Z, or\n"
	      "                 \"2019-05-06 10:00 Europe/Moscow\"; not in "
	      "the past\n"
	      "  --only-new     queue only the addresses that have no "
	      "delivery of a release\n"
	      "                 of this name yet (journalists added to the "
	      "lists)\n"
	      "  --embargo-passed send\n"
	      "                 the embargo in release.yaml has passed: send "
	      "now, without\n"
	      "                 the embargo's wording (without it, a passed "
	      "embargo is an error)\n"
	      "  --store PATH   the store (default: the config's, else "
	      "herald.db)\n"
	      "Exit status: 0 queued (or nothing new), 64 wrong usage, 65 bad "
	      "input or a\n"
	      "release name already queued, 73 cannot create the store, 75 "
	      "the store is busy\n"
	      "or full (try again).\n",
	      f);
}

static void proof_usage(FILE *f)
{
	fputs("usage: herald proof RELEASE_DIR --to LIST --proof-to EMAIL "
	      "[--proof-to EMAIL...]\n"
	      "                    [--relay URL] [--config FILE]\n\n"
	      "Send each language's message, marked [PROOF xx] in the "
	      "subject (xx: the\n"
	      "language), to staff at once through the relay (default: the "
	      "config's),\n"
	      "without queueing the release.\n",
	      f);
}

/* Tell a running heraldd that work is due (a missed wake-up only delays:
 * the daemon also polls). Returns 0 when one took it. */
static int queue_wake(const char *sock)
{
	return control_wake(sock);
}

/* ---- the spool: what was checked, on its way to the store -------------- */

/* One record per recipient: its seven strings, each as a 16-bit length
 * (QUEUE_SPOOL_NULL: absent) and its bytes. Values are at most 998 bytes
 * (field.c), so a record is at most 7 KB. */
#define QUEUE_SPOOL_NULL   0xFFFFu
#define QUEUE_SPOOL_FIELDS 7
#define QUEUE_SPOOL_MAX    (QUEUE_SPOOL_FIELDS * 1024)

struct queue_spool {
	FILE *f;
	char *dir;   /* where it is (the store's directory), for messages */
	size_t n;    /* records written */
	size_t done; /* records handed to the store */
	int err;     /* errno of a failed write or read, 0 */
	/* reading back */
	const struct release *rel;
	const struct verp *verp; /* keys the Message-IDs, or NULL */
	struct cli_progress *progress;
	char buf[QUEUE_SPOOL_MAX + QUEUE_SPOOL_FIELDS];
	char *message_id;
};

/* An unlinked file in the store's directory: on the disk the store needs
 * room on anyway, readable by no one, gone when herald exits. */
static int queue_spool_open(struct queue_spool *sp, const char *store,
                            struct diag *d)
{
	const char *slash = strrchr(store, '/');
	const char *tmp = getenv("TMPDIR");
	char *path = NULL;
	int fd;

	/* beside a store file (the same disk); a PostgreSQL store is no
	 * directory: the temporary directory */
	if (store_pg_is_address(store))
		sp->dir = strdup(tmp != NULL && *tmp == '/' ? tmp : "/tmp");
	else if (slash == NULL)
		sp->dir = strdup(".");
	else
		sp->dir = strndup(store, slash == store
		                             ? 1
		                             : (size_t)(slash - store));
	if (sp->dir == NULL ||
	    asprintf(&path, "%s/.herald-queue-XXXXXX", sp->dir) < 0) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	fd = mkstemp(path);
	if (fd < 0) {
		diag_add(d, sp->dir, 0, 0,
		         "cannot create a working file in the store's "
		         "directory: %s",
		         strerror(errno));
		free(path);
		return -1;
	}
	unlink(path);
	free(path);
	sp->f = fdopen(fd, "w+");
	if (sp->f == NULL) {
		close(fd);
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	return 0;
}

static void queue_spool_close(struct queue_spool *sp)
{
	if (sp->f != NULL)
		fclose(sp->f);
	free(sp->dir);
	free(sp->message_id);
}

static void queue_spool_str(FILE *f, const char *v)
{
	size_t len = v ? strlen(v) : 0;
	unsigned char hdr[2];

	if (v == NULL || len >= QUEUE_SPOOL_NULL)
		len = QUEUE_SPOOL_NULL;
	hdr[0] = (unsigned char)(len >> 8);
	hdr[1] = (unsigned char)len;
	fwrite(hdr, 1, 2, f);
	if (len != QUEUE_SPOOL_NULL)
		fwrite(v, 1, len, f);
}

/* cli_walk's callback: keep each recipient whose message checks. */
static int queue_spool_add(void *arg, const struct journalist *j,
                           const struct i18n_choice *c, bool ok)
{
	struct queue_spool *sp = arg;

	(void)c;
	if (!ok || sp->err != 0)
		return 0; /* the check failed: nothing is queued anyway */
	queue_spool_str(sp->f, j->email);
	queue_spool_str(sp->f, j->name);
	queue_spool_str(sp->f, j->language);
	queue_spool_str(sp->f, j->outlet);
	queue_spool_str(sp->f, j->beat);
	queue_spool_str(sp->f, j->region);
	queue_spool_str(sp->f, j->timezone);
	if (ferror(sp->f))
		sp->err = errno ? errno : EIO;
	sp->n++;
	return 0;
}

/* Everything written, and back to the start for reading. */
static int queue_spool_rewind(struct queue_spool *sp)
{
	if (sp->err == 0 && (fflush(sp->f) != 0 || ferror(sp->f)))
		sp->err = errno ? errno : EIO;
	if (sp->err == 0 && fseek(sp->f, 0, SEEK_SET) != 0)
		sp->err = errno;
	return sp->err == 0 ? 0 : -1;
}

/* release_add_each's source: the next recipient from the spool. */
static int queue_spool_next(void *arg, struct store_recipient *r)
{
	struct queue_spool *sp = arg;
	const char *v[QUEUE_SPOOL_FIELDS];
	char *p = sp->buf;

	if (sp->done == sp->n)
		return 0;
	for (size_t i = 0; i < QUEUE_SPOOL_FIELDS; i++) {
		unsigned char hdr[2];
		size_t len;
		if (fread(hdr, 1, 2, sp->f) != 2)
			goto fail;
		len = (size_t)hdr[0] << 8 | hdr[1];
		if (len == QUEUE_SPOOL_NULL) {
			v[i] = NULL;
			continue;
		}
		if (p + len + 1 > sp->buf + sizeof(sp->buf) ||
		    fread(p, 1, len, sp->f) != len)
			goto fail;
		p[len] = '\0';
		v[i] = p;
		p += len + 1;
	}
	if (v[0] == NULL)
		goto fail;
	free(sp->message_id);
	sp->message_id = message_id_for(sp->rel, v[0], sp->verp);
	if (sp->message_id == NULL) {
		sp->err = ENOMEM;
		return -1;
	}
	*r = (struct store_recipient){.email = v[0],
	                              .name = v[1],
	                              .language = v[2],
	                              .outlet = v[3],
	                              .beat = v[4],
	                              .region = v[5],
	                              .timezone = v[6],
	                              .message_id = sp->message_id};
	sp->done++;
	cli_progress(sp->progress, "writing to the store: %zu of %zu (%zu%%)",
	             sp->done, sp->n, sp->done * 100 / sp->n);
	return 1;
fail:
	sp->err = ferror(sp->f) && errno ? errno : EIO;
	return -1;
}

/* What a failed spool says: a full disk in the words the store uses. */
static void queue_spool_failed(const struct queue_spool *sp, struct diag *d)
{
	if (sp->err == ENOSPC || sp->err == EDQUOT)
		diag_add(d, sp->dir, 0, 0,
		         "the disk is full: cannot keep the checked recipients "
		         "in the store's directory (%s)",
		         strerror(sp->err));
	else
		diag_add(d, sp->dir, 0, 0,
		         "cannot keep the checked recipients in the store's "
		         "directory: %s",
		         strerror(sp->err));
}

/* A release name queued before, without --only-new: what to do. */
static void queue_refuse_name(const char *name, long long earlier,
                              const char *store)
{
	fprintf(stderr,
	        "herald queue: release %s is in the store already (release "
	        "%lld, %s): nothing was queued. To send it to the addresses "
	        "it has not reached yet (journalists added to the lists), "
	        "queue it again with --only-new; to send another release, "
	        "give it its own name in release.yaml.\n",
	        name, earlier, store);
}

/* Is the release's name in the store at path already? Looked up before
 * the lists are read, so a repeated queue is refused at once, not after
 * checking a long list (the store's transaction decides in the end).
 * Returns the newest release of the name, 0 when there is none or the
 * store cannot tell. */
static long long queue_name_queued(const char *path, const char *name)
{
	struct diag quiet = {0};
	struct store *st;
	int64_t id = 0;
	size_t digits = strspn(name, "0123456789");

	/* release_find takes a number for a release number */
	if (name[digits] == '\0' ||
	    (!store_pg_is_address(path) && access(path, F_OK) != 0))
		return 0;
	st = store_open_flags(path, 0, &quiet);
	if (st == NULL || store_release_find(st, name, &id, &quiet) < 0)
		id = 0;
	store_close(st);
	diag_clear(&quiet);
	return (long long)id;
}

/* The release and its coalition list, each file read once: into the
 * snapshot first, then loaded from it, so what queue checks and renders
 * is byte for byte what goes into the store and out to journalists (a
 * file changed on disk meanwhile changes neither). Problems to d. */
static void queue_load(struct cli_inputs *in, const struct cli_opts *o,
                       struct snapshot *snap, struct snapshot_src *ss,
                       struct diag *d)
{
	const char *coal;

	if (snapshot_collect(o->dir, snap, d) < 0)
		return;
	snapshot_source(ss, snap, o->dir, NULL);
	in->rel = release_load(&ss->src, o->dir, d);
	if (in->rel == NULL)
		return;
	coal = o->coalition ? o->coalition : in->rel->coalition;
	if (snapshot_add_coalition(snap, coal, ydoc_default_limits.max_bytes,
	                           d) < 0)
		return;
	ss->coalition = coal;
	in->coal = coalition_load(&ss->src, coal, &in->rel->policy, d);
}

/* "2019-05-06 07:00:00 UTC" */
static void queue_utc(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int cmd_queue(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_inputs in;
	struct cli_walk w = {0};
	struct cli_progress pr = {0};
	struct queue_spool sp = {0};
	struct store_release_added added = {0};
	struct snapshot snap = {0};
	struct snapshot_src ss;
	struct store *st = NULL;
	struct diag d = {0};
	time_t now = time(NULL), not_before = 0;
	const char *store_path = NULL;
	char *sock = NULL, *store_abs = NULL;
	int rc = cli_parse(argc, argv, &o, CLI_AT | CLI_STORE | CLI_QUEUE,
	                   queue_usage);

	memset(&in, 0, sizeof(in));
	if (rc != 0) {
		free(o.lists);
		free(o.proof_to);
		return rc < 0 ? 0 : rc;
	}
	rc = EX_DATAERR;
	if (o.at != NULL) {
		const char *why = NULL;
		/* "+4s" counts from the next whole second: the store keeps
		 * whole seconds, and counting from time()'s truncated now
		 * would let the release leave up to a second early */
		struct timespec ts;
		time_t from = now;
		if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
			from = ts.tv_sec + (ts.tv_nsec > 0);
		if (datefmt_parse_when(o.at, from, &not_before, &why) < 0) {
			fprintf(stderr, "herald queue: --at %s: %s\n", o.at,
			        why);
			rc = EX_USAGE;
			goto done;
		}
		if (not_before < now) {
			char when[64];
			queue_utc(not_before, when, sizeof(when));
			fprintf(stderr,
			        "herald queue: --at %s: that is in the past "
			        "(%s): give a time to come, or now\n",
			        o.at, when);
			rc = EX_USAGE;
			goto done;
		}
	}
	cli_progress_start(&pr, "herald queue");
	cli_load_config(&in, &o, &d);
	queue_load(&in, &o, &snap, &ss, &d);
	if (in.rel != NULL && in.rel->has_embargo && in.rel->embargo <= now) {
		char when[64];
		queue_utc(in.rel->embargo, when, sizeof(when));
		if (o.embargo_passed != NULL) {
			/* the messages are checked, and later built, as
			 * the release without its embargo */
			in.rel->has_embargo = false;
			printf("the embargo (%s) has passed: sending without "
			       "it (--embargo-passed=send)\n",
			       when);
		} else {
			diag_add(&d, in.rel->file, in.rel->embargo_line,
			         in.rel->embargo_col,
			         "the embargo (%s) has passed: queued, the "
			         "release would go out at once with every "
			         "message saying it is embargoed. Give the "
			         "embargo a time to come, remove it, or queue "
			         "with --embargo-passed=send to send now without "
			         "the embargo's wording",
			         when);
		}
	}
	if (in.rel != NULL && in.rel->stale_after != 0 &&
	    in.rel->stale_after <= now)
		diag_add(&d, in.rel->file, 0, 0,
		         "the release went stale before it was queued "
		         "(stale_after has passed)");
	store_path = o.store ? o.store
	                     : in.config != NULL ? in.config->store : NULL;
	if (store_path != NULL && in.rel != NULL && !o.only_new) {
		long long earlier = queue_name_queued(store_path, in.rel->name);
		if (earlier != 0) {
			store_abs = realpath(store_path, NULL);
			queue_refuse_name(in.rel->name, earlier,
			                  store_abs ? store_abs : store_path);
			goto done;
		}
	}
	if (store_path != NULL && queue_spool_open(&sp, store_path, &d) < 0) {
		rc = EX_CANTCREAT;
		goto done;
	}
	/* every problem of every list, even when the release has some */
	w.fn = sp.f != NULL ? queue_spool_add : NULL;
	w.arg = &sp;
	w.progress = &pr;
	if (cli_walk(&in, &o, &w, &d) < 0 || d.errors > 0 ||
	    in.rel == NULL || in.coal == NULL || store_path == NULL ||
	    w.checked != w.recipients)
		goto done;
	if (queue_spool_rewind(&sp) < 0) {
		queue_spool_failed(&sp, &d);
		rc = EX_TEMPFAIL;
		goto done;
	}
	if (in.rel->has_embargo && in.rel->embargo > not_before)
		not_before = in.rel->embargo;
	if (o.embargo_passed != NULL && in.rel->embargo_key_line != 0 &&
	    !in.rel->has_embargo) {
		/* what the store keeps is the release as checked: without
		 * the embargo */
		const char *yaml = SNAPSHOT_RELEASE_DIR "/release.yaml";
		const struct store_file *f = snapshot_find(&snap, yaml);
		char *text = NULL;
		size_t len = 0;
		if (f == NULL ||
		    release_text_without_embargo(in.rel, f->data, f->len, &text,
		                                 &len, &d) < 0)
			goto done;
		if (snapshot_replace(&snap, yaml, text, len) < 0) {
			free(text);
			diag_add(&d, yaml, 0, 0, "not in the snapshot");
			goto done;
		}
	}
	st = store_open(store_path, &d);
	if (st == NULL) {
		rc = EX_CANTCREAT;
		goto done;
	}
	store_abs = realpath(store_path, NULL);
	sp.rel = in.rel;
	sp.verp = in.verp;
	sp.progress = &pr;
	added.only_new = o.only_new;
	{
		struct store_release_new rn = {
		    .name = in.rel->name,
		    .source = o.dir,
		    .release_dir = SNAPSHOT_RELEASE_DIR,
		    .coalition = SNAPSHOT_COALITION,
		    .not_before = not_before,
		    .stale_after = in.rel->stale_after,
		    .files = snap.files,
		    .nfiles = snap.n,
		};
		int r = store_release_add_each(st, &rn, queue_spool_next, &sp,
		                               &added, &d);
		cli_progress_end(&pr);
		if (r < 0) {
			if (sp.err != 0)
				queue_spool_failed(&sp, &d);
			rc = EX_TEMPFAIL;
			goto done;
		}
		if (r > 0 && added.skipped == 0) {
			queue_refuse_name(in.rel->name,
			                  (long long)added.earlier,
			                  store_abs ? store_abs : store_path);
			rc = EX_DATAERR;
			goto done;
		}
		if (r > 0) {
			printf("nothing to queue: all %zu address%s of the "
			       "lists ha%s a delivery of %s already (release "
			       "%lld)\n",
			       added.skipped, added.skipped == 1 ? "" : "es",
			       added.skipped == 1 ? "s" : "ve", in.rel->name,
			       (long long)added.earlier);
			if (added.skipped_cancelled > 0)
				printf("%zu of them %s cancelled: herald "
				       "resume RELEASE brings a cancelled "
				       "release's deliveries back\n",
				       added.skipped_cancelled,
				       added.skipped_cancelled == 1 ? "was"
				                                    : "were");
			printf("store: %s\n", store_abs ? store_abs : store_path);
			rc = 0;
			goto done;
		}
	}
	printf("queued release %lld (%s): %zu recipient%s",
	       (long long)added.release_id, in.rel->name,
	       added.queued - added.suppressed,
	       added.queued - added.suppressed == 1 ? "" : "s");
	if (added.suppressed > 0)
		printf(", %zu suppressed address%s skipped", added.suppressed,
		       added.suppressed == 1 ? "" : "es");
	if (w.entries > w.recipients)
		printf(", %zu repeated address%s removed",
		       w.entries - w.recipients,
		       w.entries - w.recipients == 1 ? "" : "es");
	printf("\n");
	if (added.skipped > 0) {
		printf("%zu address%s skipped: %s a delivery of %s already "
		       "(release %lld and before; --only-new)\n",
		       added.skipped, added.skipped == 1 ? "" : "es",
		       added.skipped == 1 ? "it has" : "they have",
		       in.rel->name, (long long)added.earlier);
		if (added.skipped_cancelled > 0)
			printf("%zu of them %s cancelled: herald resume "
			       "RELEASE brings a cancelled release's "
			       "deliveries back\n",
			       added.skipped_cancelled,
			       added.skipped_cancelled == 1 ? "was" : "were");
	}
	printf("store: %s\n", store_abs ? store_abs : store_path);
	if (not_before > now) {
		char when[64];
		queue_utc(not_before, when, sizeof(when));
		printf("nothing leaves before %s\n", when);
	}
	if (o.store != NULL) {
		sock = store_control_for(o.store);
	} else if (in.config->control != NULL) {
		sock = strdup(in.config->control);
	}
	/* heraldd not listening is normal (it is started next, or polls):
	 * say what happens to the release rather than sound an alarm */
	if (queue_wake(sock) == 0)
		printf("woke heraldd (%s)\n", sock);
	else
		printf("heraldd is not listening on %s: the release waits in "
		       "the store until heraldd runs (it delivers within a "
		       "few seconds of starting)\n",
		       sock != NULL ? sock : "its control socket");
	rc = 0;
done:
	cli_progress_end(&pr);
	diag_print(&d, stderr);
	if (rc == EX_DATAERR && d.errors > 0)
		fprintf(stderr,
		        "herald queue: nothing was queued (%zu "
		        "error%s)\n",
		        d.errors, d.errors == 1 ? "" : "s");
	else if (rc == EX_TEMPFAIL || rc == EX_CANTCREAT)
		/* the store refused (disk full, busy, not writable): its
		 * transaction was rolled back */
		fprintf(stderr, "herald queue: nothing was queued; queue the "
		                "release again once the store's problem above "
		                "is solved\n");
	free(sock);
	free(store_abs);
	if (st != NULL)
		store_close(st);
	queue_spool_close(&sp);
	snapshot_free(&snap);
	cli_inputs_free(&in);
	diag_clear(&d);
	free(o.lists);
	free(o.proof_to);
	return rc;
}

/* ---- proof ------------------------------------------------------------------
 */

struct proof_state {
	size_t done, failed;
};

static void proof_done(void *arg, const struct transport_msg *m,
                       const struct transport_reply *r)
{
	struct proof_state *ps = arg;

	ps->done++;
	if (r->stage == TRANSPORT_DONE) {
		printf("proof sent to <%s>: %d %s%s%s\n", m->rcpt, r->code,
		       r->status, r->queue_id[0] ? " queued as " : "",
		       r->queue_id);
	} else {
		ps->failed++;
		fprintf(stderr, "herald proof: <%s>: not sent: %d %s %s\n",
		        m->rcpt, r->code, r->text ? r->text : "",
		        r->error_text);
	}
}

int cmd_proof(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_inputs in;
	struct cli_recipient *rcp = NULL;
	struct diag d = {0};
	struct transport *tr = NULL;
	const struct transport_backend *tb = NULL;
	struct proof_state ps = {0};
	char **msgs = NULL;
	size_t nmsgs = 0, n;
	int rc = cli_parse(argc, argv, &o, CLI_PROOF, proof_usage);

	if (rc != 0) {
		free(o.lists);
		free(o.proof_to);
		return rc < 0 ? 0 : rc;
	}
	rc = EX_DATAERR;
	if (o.nproof == 0) {
		fprintf(stderr, "herald proof: give --proof-to EMAIL\n");
		rc = EX_USAGE;
		free(o.lists);
		free(o.proof_to);
		return rc;
	}
	if (cli_load(&in, &o, &d) < 0)
		goto done;
	n = cli_recipients(&in, &rcp, &d);
	if (n == (size_t)-1)
		goto done;
	{
		const struct config_relay *cr = &in.config->relay;
		struct transport_config tc = transport_config_of(cr, o.relay);

		tc.max_connections = 1; /* a few messages, in order */
		tb = transport_backend_for(tc.url);
		if (tb == NULL) {
			diag_add(&d, NULL, 0, 0,
			         "relay \"%s\" is not "
			         "smtp://, smtps:// or maildir:",
			         tc.url);
			goto done;
		}
		tr = tb->open(&tc, proof_done, &ps, &d);
		if (tr == NULL)
			goto done;
	}
	msgs = calloc(in.rel->policy.nlangs * o.nproof, sizeof(*msgs));
	if (msgs == NULL)
		goto done;
	for (size_t l = 0; l < in.rel->policy.nlangs; l++) {
		const char *lang = in.rel->policy.langs[l];
		char prefix[64];
		struct message_opts mo = {.now = time(NULL),
		                          .subject_prefix = prefix,
		                          .signers = in.signers,
		                          .nsigners = in.nsigners};
		/* a journalist who reads this language, for the personal
		 * fields; staff see what that journalist would */
		const struct journalist *sample = NULL;
		for (size_t i = 0; i < n && sample == NULL; i++)
			if (rcp[i].choice.lang == l)
				sample = rcp[i].j;
		snprintf(prefix, sizeof(prefix), "[PROOF %s] ", lang);
		for (size_t k = 0; k < o.nproof; k++) {
			struct journalist j = {0};
			struct transport_msg m;
			size_t len;
			char *msg;
			if (sample != NULL)
				j = *sample;
			j.name = (char *)"Proof reader";
			j.email = o.proof_to[k];
			j.language = (char *)lang;
			if (message_build(in.rel, in.coal, &j, l, &mo, &msg,
			                  &len, &d) < 0)
				goto done;
			msgs[nmsgs++] = msg;
			m = (struct transport_msg){.id = (int64_t)nmsgs,
			                           .sender = in.rel->from.email,
			                           .rcpt = o.proof_to[k],
			                           .data = msg,
			                           .len = len};
			/* one connection: wait for room before each message */
			while (tb->room(tr) == 0)
				if (tb->step(tr, 1000, NULL, 0, NULL, &d) < 0)
					goto done;
			if (tb->submit(tr, &m, &d) < 0)
				goto done;
		}
	}
	while (tb->in_flight(tr) > 0)
		if (tb->step(tr, 1000, NULL, 0, NULL, &d) < 0)
			goto done;
	rc = ps.failed > 0 ? EX_TEMPFAIL : 0;
done:
	diag_print(&d, stderr);
	if (tr != NULL)
		tb->close(tr);
	for (size_t i = 0; i < nmsgs; i++)
		free(msgs[i]);
	free(msgs);
	free(rcp);
	cli_inputs_free(&in);
	diag_clear(&d);
	free(o.lists);
	free(o.proof_to);
	return rc;
}
