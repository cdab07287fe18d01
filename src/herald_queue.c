/*
 * herald queue and herald proof — press staff's two ways to send.
 *
 * queue: everything check does, refusing on any problem; each address once
 * across the lists; a snapshot of every file into the store with one
 * delivery per recipient, in one transaction; then the daemon is woken.
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
#include "herald_cli.h"

static void queue_usage(FILE *f)
{
	fputs("usage: herald queue RELEASE_DIR --to LIST [--to LIST...] "
	      "[--at TIME]\n"
	      "                    [--store PATH] [--config FILE] "
	      "[--coalition FILE]\n\n"
	      "Check the release as `herald check` does and refuse on any "
	      "problem; then\n"
	      "queue one delivery per address (each address once across the "
	      "lists; addresses\n"
	      "on the suppression list are skipped) with a snapshot of every "
	      "file, so later\n"
	      "edits change nothing that is sent, and wake heraldd. Nothing "
	      "leaves before\n"
	      "--at or the release's embargo.\n\n"
	      "  --at TIME      now, +10m, 2019-05-06T07:00Z, or "
	      "\"2019-05-06 10:00 Europe/Moscow\"\n"
	      "  --store PATH   the store (default: the config's, else "
	      "herald.db)\n"
	      "Exit status: 0 queued, 65 bad input, 75 the store is busy or "
	      "full (try again).\n",
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

/* The store path: --store, else the config's. */
static const char *queue_store_path(const struct cli_opts *o,
                                    const struct cli_inputs *in)
{
	return o->store ? o->store : in->config->store;
}

/* Tell a running heraldd that work is due (a missed wake-up only delays:
 * the daemon also polls). Returns 0 when one took it. */
static int queue_wake(const char *sock)
{
	return control_wake(sock);
}

int cmd_queue(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_inputs in;
	struct cli_recipient *rcp = NULL;
	struct store_recipient *sr = NULL;
	struct snapshot snap = {0};
	struct store *st = NULL;
	struct diag d = {0};
	size_t n = 0, total = 0, suppressed = 0;
	time_t now = time(NULL), not_before = 0;
	int64_t release_id = 0;
	char *sock = NULL;
	int rc = cli_parse(argc, argv, &o, CLI_AT | CLI_STORE, queue_usage);

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
	}
	if (cli_load(&in, &o, &d) < 0)
		goto done;
	n = cli_recipients(&in, &rcp, &d);
	if (n == (size_t)-1) {
		diag_add(&d, NULL, 0, 0, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < in.nlists; i++)
		total += in.lists[i]->n;
	/* everything check does: every message must build */
	if (cli_build_all(&in, rcp, n, NULL, &d) != n || d.errors > 0)
		goto done;
	if (in.rel->has_embargo && in.rel->embargo > not_before)
		not_before = in.rel->embargo;
	if (in.rel->stale_after != 0 && in.rel->stale_after <= now) {
		diag_add(&d, in.rel->file, 0, 0,
		         "the release went stale before it was queued "
		         "(stale_after has passed)");
		goto done;
	}
	if (snapshot_collect(in.rel->dir,
	                     o.coalition ? o.coalition : in.rel->coalition,
	                     &snap, &d) < 0)
		goto done;
	sr = calloc(n ? n : 1, sizeof(*sr));
	if (sr == NULL) {
		diag_add(&d, NULL, 0, 0, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const struct journalist *j = rcp[i].j;
		sr[i] = (struct store_recipient){
		    .email = j->email,
		    .name = j->name,
		    .language = j->language,
		    .outlet = j->outlet,
		    .beat = j->beat,
		    .region = j->region,
		    .timezone = j->timezone,
		    .message_id = message_id_for(in.rel, j->email),
		};
		if (sr[i].message_id == NULL) {
			diag_add(&d, NULL, 0, 0, "out of memory");
			goto done;
		}
	}
	st = store_open(queue_store_path(&o, &in), &d);
	if (st == NULL) {
		rc = EX_CANTCREAT;
		goto done;
	}
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
		if (store_ops(st)->release_add(st, &rn, sr, n, &release_id,
		                               &suppressed, &d) < 0) {
			rc = EX_TEMPFAIL;
			goto done;
		}
	}
	printf("queued release %lld (%s): %zu recipient%s",
	       (long long)release_id, in.rel->name, n - suppressed,
	       n - suppressed == 1 ? "" : "s");
	if (suppressed > 0)
		printf(", %zu suppressed address%s skipped", suppressed,
		       suppressed == 1 ? "" : "es");
	if (total > n)
		printf(", %zu repeated address%s removed", total - n,
		       total - n == 1 ? "" : "es");
	printf("\n");
	if (not_before > now) {
		char when[64];
		struct tm tm;
		gmtime_r(&not_before, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		printf("nothing leaves before %s\n", when);
	}
	if (o.store != NULL) {
		if (asprintf(&sock, "%s.sock", o.store) < 0)
			sock = NULL;
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
	if (st != NULL)
		store_close(st);
	for (size_t i = 0; sr != NULL && i < n; i++)
		free((char *)sr[i].message_id);
	free(sr);
	snapshot_free(&snap);
	free(rcp);
	if (rc != EX_USAGE)
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
