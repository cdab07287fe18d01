/*
 * deliver — heraldd's event loop (see deliver.h).
 *
 * A delivery's way through here: claimed from the store (state sending,
 * with a lease), its message built from the release snapshot, submitted
 * to the transport; when the relay answers, trouble_decide() says what it
 * means, the attempt joins the recorder's batch, and the batch is committed
 * in one transaction; the log lines follow the commit. A crash anywhere
 * leaves the delivery `sending` until its lease runs out, and then it is
 * due again with the same Message-ID: at least once, never lost.
 *
 * The relay's own faults (cannot connect, TLS, AUTH, 421) pause the relay
 * with backoff and give the delivery back uncharged; see trouble.c.
 */
#include "herald/deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "herald/coalition.h"
#include "herald/config.h"
#include "herald/contacts.h"
#include "herald/control.h"
#include "herald/dkim.h"
#include "herald/i18n.h"
#include "herald/log.h"
#include "herald/message.h"
#include "herald/poller.h"
#include "herald/recorder.h"
#include "herald/release.h"
#include "herald/sched.h"
#include "herald/snapshot.h"
#include "herald/store.h"
#include "herald/transport.h"
#include "herald/trouble.h"
#include "herald/verp.h"

/*
 * Tunables of the loop itself (operators' settings are in herald.yaml).
 */
enum {
	/* attempts committed together (the recorder's batch; no claim while
	 * this many wait): one fsync for many messages, and a crash re-sends
	 * at most this many plus those in flight */
	DELIVER_BATCH_RECORDS = 128,
	/* how often expiry runs (lifetime and stale-after) */
	DELIVER_EXPIRE_EVERY = 60,
	/* the longest the loop sleeps: the store is polled this often even
	 * when no wake-up arrives (a missed wake-up only delays) */
	DELIVER_POLL_MS = 1000,
	/* what is handed to the relay is marked in the store in groups
	 * (deliver_handover) sized to what goes out in 1/20 s, measured over
	 * the last quarter of a second: a fast relay costs about 20
	 * transactions a second, and after a crash what was marked but not
	 * yet sent, at most 1/20 s worth, waits for its lease */
	DELIVER_HANDOVER_PER_SECOND = 20,
	DELIVER_HANDOVER_WINDOW_MS = 250,
	/* releases kept loaded (parsed, with their snapshot's files), the
	 * least recently used let go first: a heraldd sends a few releases
	 * at a time, and one let go costs one read of its snapshot from the
	 * store when a retry of it comes due; and at most this many bytes
	 * of their files, as one release may hold 64 MiB (snapshot.c) */
	DELIVER_RELEASES_KEPT = 8,
	DELIVER_RELEASES_BYTES = 256 << 20,
};

/* A release loaded from its snapshot in the store: the files, and what
 * was built from them (the release reads its partials from them when it
 * first renders one). */
struct dl_release {
	int64_t id;
	struct snapshot snap;
	struct snapshot_src src;
	struct release *rel;
	struct coalition *coal;
	struct message_cache *cache;
	size_t bytes; /* what it holds: its files, and attachments copied */
	time_t stale_after;
	char *relay_error; /* why it could not be loaded, or NULL */
};

/* A message in flight. */
struct dl_flight {
	int64_t id, release_id;
	time_t queued_at, stale_after;
	char *email;
	char *msg;
	size_t len;
	unsigned attempt;
	struct timespec started;
	bool submitted; /* on a relay connection (not waiting in ready) */
	struct dl_flight *prev, *next; /* the daemon's in-flight list */
	struct transport_msg m;        /* what goes to the transport */
	char *sender; /* the envelope sender: the signed return path (VERP)
	               * or the release's From, its own copy */
};

struct deliver {
	const struct deliver_opts *o;
	struct config *cfg;
	struct store *st;
	const struct transport_backend *tb;
	struct transport *tr;
	struct transport_config tc;
	bool reopen; /* the relay settings changed: reopen when idle */
	struct dkim_signer **signers;
	size_t nsigners;
	struct verp *verp; /* NULL: the release's From is the sender */
	struct trouble_policy pol;
	struct sched *sched;
	bool rates_local; /* the store keeps no shared rate buckets */
	/* the releases loaded, most recently used first */
	struct dl_release *rels[DELIVER_RELEASES_KEPT];
	size_t nrels;
	size_t rels_bytes;
	struct recorder rec; /* results waiting for their commit */
	struct store_delivery *claimed;
	unsigned relay_failures;
	time_t relay_paused_until;
	char *relay_url; /* logged and recorded: the URL, no description */
	/* why the relay is paused: the last failure's reason, not the one
	 * that began the pause */
	const char *relay_reason;
	/* --drain: the latest due time this daemon gave work for a rate
	 * limit or a relay pause; work due by then is waited for */
	time_t drain_wait;
	time_t last_expire;
	struct poller poller; /* the bounce mailbox */
	time_t last_renew;
	struct dl_flight *flights; /* claimed, not yet done */
	/* claimed and built, waiting for a free connection: claiming ahead
	 * keeps each claim transaction large */
	struct dl_flight **ready;
	size_t nready, ready_head;
	time_t unclaim_at; /* when what is given back is due again */
	/* this heraldd in the store's daemons table (0: not added yet) */
	int64_t owner;
	/* the first handed_credit messages of ready are marked handed over
	 * in the store; the next mark takes handed_ahead more than there is
	 * room for, from handed_sent, the messages sent since handover_window
	 * began (see deliver_handover) */
	size_t handed_credit;
	size_t handed_ahead;
	size_t handed_sent;
	struct timespec handover_window;
	int64_t *hand_ids; /* daemon.batch of each, for the marks */
	bool *hand_ok;
	/* the other heraldd of the store, by id, as last seen running */
	int64_t *others;
	size_t nothers;
	time_t last_others;
	bool abandoned; /* what was on connections at the stop is given
	                 * back already (deliver_abandon) */
	int ctl_fd;
	char *ctl_path;
	FILE *log;
	uint32_t rnd;
};

static volatile sig_atomic_t deliver_stop, deliver_reload;
static int deliver_sigpipe[2] = {-1, -1};

static void deliver_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	if (sig == SIGHUP)
		deliver_reload = 1;
	else
		deliver_stop = 1;
	if (deliver_sigpipe[1] >= 0 && write(deliver_sigpipe[1], &c, 1) < 0) {
		/* the pipe is full: a wake-up is pending anyway */
	}
	errno = saved;
}

static double deliver_ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

static uint32_t deliver_random(struct deliver *dl)
{
	/* xorshift: jitter only, nothing secret */
	dl->rnd ^= dl->rnd << 13;
	dl->rnd ^= dl->rnd >> 17;
	dl->rnd ^= dl->rnd << 5;
	return dl->rnd;
}

static void deliver_logf(struct deliver *dl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void deliver_logf(struct deliver *dl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(dl->log, fmt, ap);
	va_end(ap);
}

/* ---- configuration --------------------------------------------------- */

static void deliver_signers_free(struct dkim_signer **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dkim_signer_free(s[i]);
	free(s);
}

/* When a setting read again on SIGHUP takes effect. */
enum deliver_when {
	DELIVER_AT_ONCE,    /* the next claim, message, retry or pass */
	DELIVER_WHEN_IDLE,  /* the relay's: once no message is in flight */
	DELIVER_AT_RESTART, /* kept from the start until heraldd restarts */
};

static enum deliver_when deliver_setting_when(const char *name)
{
	/* the store and its socket stay open; the claim arrays are made
	 * for the start's batch (a larger one would overrun them) */
	if (strcmp(name, "store") == 0 || strcmp(name, "control") == 0 ||
	    strcmp(name, "daemon.batch") == 0)
		return DELIVER_AT_RESTART;
	if (strncmp(name, "relay.", 6) == 0 && strcmp(name, "relay.rate") != 0)
		return DELIVER_WHEN_IDLE;
	return DELIVER_AT_ONCE;
}

static bool deliver_differs(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a != b : strcmp(a, b) != 0;
}

/* Did a setting that names a secret change (its file, its variable, or
 * the secret read from them)? herald config shows them only as (set). */
static bool deliver_secret_changed(const char *name, const struct config *a,
                                   const struct config *b)
{
	/* the password read counts for the setting it was read through */
	bool relay_pw = deliver_differs(a->relay.password, b->relay.password);
	bool imap_pw =
	    deliver_differs(a->bounce_imap.password, b->bounce_imap.password);

	if (strcmp(name, "relay.password_file") == 0)
		return deliver_differs(a->relay.password_file,
		                       b->relay.password_file) ||
		       (b->relay.password_file != NULL && relay_pw);
	if (strcmp(name, "relay.password_env") == 0)
		return deliver_differs(a->relay.password_env,
		                       b->relay.password_env) ||
		       (b->relay.password_file == NULL && relay_pw);
	if (strcmp(name, "bounces.imap.password_file") == 0)
		return deliver_differs(a->bounce_imap.password_file,
		                       b->bounce_imap.password_file) ||
		       (b->bounce_imap.password_file != NULL && imap_pw);
	if (strcmp(name, "bounces.imap.password_env") == 0)
		return deliver_differs(a->bounce_imap.password_env,
		                       b->bounce_imap.password_env) ||
		       (b->bounce_imap.password_file == NULL && imap_pw);
	if (strcmp(name, "bounces.secret_file") == 0)
		return deliver_differs(a->bounce_secret_file,
		                       b->bounce_secret_file);
	if (strcmp(name, "bounces.secret_env") == 0)
		return deliver_differs(a->bounce_secret_env,
		                       b->bounce_secret_env);
	return false;
}

static char *deliver_config_text(const struct config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	if (config_print(c, f) < 0) {
		fclose(f);
		free(text);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* What a reload changes, for its log line: the names of the settings whose
 * values differ between old and new, by when they take effect, as
 * "applied=a,b when_idle=c restart=d" ("-": none). *relay_changed: a
 * relay setting differs. malloc'd; NULL when out of memory. */
static char *deliver_config_changes(const struct config *old,
                                    const struct config *new,
                                    bool *relay_changed)
{
	char *a = deliver_config_text(old), *b = deliver_config_text(new);
	char *list[3] = {NULL, NULL, NULL};
	size_t len[3] = {0, 0, 0};
	FILE *f[3] = {NULL, NULL, NULL};
	char *out = NULL, *pa, *pb, *la, *lb;
	bool relay = false;

	*relay_changed = true; /* unknown: reopen */
	if (a == NULL || b == NULL)
		goto done;
	for (int i = 0; i < 3; i++)
		if ((f[i] = open_memstream(&list[i], &len[i])) == NULL)
			goto done;
	/* both printed from one table: the same names, in the same order */
	for (la = strtok_r(a, "\n", &pa), lb = strtok_r(b, "\n", &pb);
	     la != NULL && lb != NULL;
	     la = strtok_r(NULL, "\n", &pa), lb = strtok_r(NULL, "\n", &pb)) {
		size_t n = strcspn(la, " =");
		char name[64];
		enum deliver_when w;

		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, la, n);
		name[n] = '\0';
		if (strcmp(la, lb) == 0 &&
		    !deliver_secret_changed(name, old, new))
			continue;
		w = deliver_setting_when(name);
		if (w == DELIVER_WHEN_IDLE)
			relay = true;
		fprintf(f[w], "%s%s", ftell(f[w]) > 0 ? "," : "", name);
	}
	for (int i = 0; i < 3; i++) {
		if (fclose(f[i]) != 0) {
			f[i] = NULL;
			goto done;
		}
		f[i] = NULL;
	}
	if (asprintf(&out, "applied=%s when_idle=%s restart=%s",
	             *list[0] ? list[0] : "-", *list[1] ? list[1] : "-",
	             *list[2] ? list[2] : "-") < 0)
		out = NULL;
	*relay_changed = relay;
done:
	for (int i = 0; i < 3; i++) {
		if (f[i] != NULL)
			fclose(f[i]);
		free(list[i]);
	}
	free(a);
	free(b);
	return out;
}

/* The rate limits of c, as a new limiter (its buckets start full). */
static struct sched *deliver_sched_new(const struct config *c)
{
	struct sched_limits lim = sched_default_limits;

	lim.relay_per_second = c->relay.rate;
	lim.domain_per_minute = c->domain_per_minute;
	return sched_new(&lim);
}

/* Load the config and everything made from it; on failure nothing of the
 * running state changes. On a reload, *changes (when not NULL) is what
 * changed for the log line (see deliver_config_changes; NULL when out of
 * memory). Every setting takes effect at once but the relay's (once no
 * message is in flight) and the store, the control socket and
 * daemon.batch, which keep their values until a restart. */
static int deliver_load_config(struct deliver *dl, struct diag *d,
                               char **changes)
{
	struct config *cfg = config_load(config_path(dl->o->config_path), d);
	struct dkim_signer **signers = NULL;
	size_t n = 0;
	struct trouble_policy pol = trouble_default_policy;
	struct verp *verp = NULL;
	struct sched *sched = NULL;
	bool relay_changed = true;

	if (changes != NULL)
		*changes = NULL;
	if (cfg == NULL)
		return -1;
	/* the command line's store and relay win over the file's */
	if (dl->o->store_path != NULL) {
		free(cfg->store);
		free(cfg->control);
		cfg->store = strdup(dl->o->store_path);
		cfg->control = store_control_for(dl->o->store_path);
		if (cfg->store == NULL || cfg->control == NULL)
			goto oom;
	}
	if (dl->o->relay_url != NULL) {
		free(cfg->relay.url);
		if ((cfg->relay.url = strdup(dl->o->relay_url)) == NULL)
			goto oom;
	}
	if (cfg->ndkim > 0) {
		signers = calloc(cfg->ndkim, sizeof(*signers));
		if (signers == NULL)
			goto oom;
		for (size_t i = 0; i < cfg->ndkim; i++) {
			const struct config_dkim *k = &cfg->dkim[i];
			signers[n] =
			    dkim_signer_load(k->key, k->domain, k->selector, d);
			if (signers[n] == NULL)
				goto fail;
			n++;
		}
	}
	if (cfg->bounce_domain != NULL &&
	    (verp = verp_load(cfg->bounce_secret_file, cfg->bounce_secret_env,
	                      cfg->bounce_domain, d)) == NULL)
		goto fail;
	/* new limits take effect at once; unchanged ones keep their buckets */
	if ((dl->sched == NULL || cfg->relay.rate != dl->cfg->relay.rate ||
	     cfg->domain_per_minute != dl->cfg->domain_per_minute) &&
	    (sched = deliver_sched_new(cfg)) == NULL)
		goto oom;
	if (cfg->min_backoff)
		pol.min_backoff = cfg->min_backoff;
	if (cfg->max_backoff)
		pol.max_backoff = cfg->max_backoff;
	if (cfg->lifetime)
		pol.lifetime = cfg->lifetime;
	if (cfg->relay_min_backoff)
		pol.relay_min_backoff = cfg->relay_min_backoff;
	if (cfg->relay_max_backoff)
		pol.relay_max_backoff = cfg->relay_max_backoff;
	if (dl->cfg != NULL && changes != NULL)
		*changes = deliver_config_changes(dl->cfg, cfg, &relay_changed);
	verp_free(dl->verp);
	dl->verp = verp;
	deliver_signers_free(dl->signers, dl->nsigners);
	dl->signers = signers;
	dl->nsigners = n;
	dl->pol = pol;
	/* changed rate limits at once (their buckets start full: one
	 * second's worth may go at once) */
	if (sched != NULL) {
		sched_free(dl->sched);
		dl->sched = sched;
	}
	/* the claim arrays were made for the batch at start: a larger one
	 * from a reload would overrun them */
	if (dl->cfg != NULL)
		cfg->batch = dl->cfg->batch;
	if (dl->cfg != NULL && relay_changed)
		dl->reopen = true;
	config_free(dl->cfg);
	dl->cfg = cfg;
	return 0;
oom:
	diag_add(d, cfg->file, 0, 0, "out of memory");
fail:
	sched_free(sched);
	verp_free(verp);
	deliver_signers_free(signers, n);
	config_free(cfg);
	return -1;
}

static void deliver_done(void *arg, const struct transport_msg *m,
                         const struct transport_reply *rep);

static int deliver_open_transport(struct deliver *dl, struct diag *d)
{
	const struct config_relay *r = &dl->cfg->relay;

	dl->tc = transport_config_of(r, dl->o->relay_url);
	dl->tb = transport_backend_for(dl->tc.url);
	if (dl->tb == NULL) {
		diag_add(d, dl->cfg->file, 0, 0,
		         "relay \"%s\" is not smtp://, smtps:// or maildir:",
		         dl->tc.url);
		return -1;
	}
	dl->tr = dl->tb->open(&dl->tc, deliver_done, dl, d);
	if (dl->tr == NULL)
		return -1;
	/* dl->tc points into the config, which a reload frees */
	free(dl->relay_url);
	if ((dl->relay_url = strdup(dl->tc.url)) == NULL) {
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	return 0;
}

/* ---- releases from their snapshots ------------------------------------ */

static void deliver_release_free(struct dl_release *r)
{
	if (r == NULL)
		return;
	message_cache_free(r->cache);
	coalition_free(r->coal);
	release_free(r->rel);
	snapshot_free(&r->snap);
	free(r->relay_error);
	free(r);
}

/* Load release id from the files the store keeps of it, reading nothing
 * from the disk. One that cannot be loaded comes back with the reason
 * (its deliveries wait); NULL when memory runs out. */
static struct dl_release *deliver_release_load(struct deliver *dl, int64_t id)
{
	struct dl_release *r = calloc(1, sizeof(*r));
	struct store_release_info info;
	struct diag d = {0};

	if (r == NULL)
		return NULL;
	r->id = id;
	if (store_release_get(dl->st, id, &info, NULL, 0, NULL, 0, &d) < 0 ||
	    snapshot_load(dl->st, id, &r->snap, &d) < 0)
		goto fail;
	r->stale_after = info.stale_after;
	snapshot_source(&r->src, &r->snap, r->snap.release_dir,
	                r->snap.coalition);
	r->rel = release_load(&r->src.src, r->snap.release_dir, &d);
	if (r->rel != NULL)
		r->coal = coalition_load(&r->src.src, r->snap.coalition,
		                         &r->rel->policy, &d);
	r->cache = message_cache_new();
	if (r->rel == NULL || r->coal == NULL || r->cache == NULL)
		goto fail;
	r->bytes = r->snap.bytes;
	for (size_t i = 0; i < r->rel->nattachments; i++)
		r->bytes += r->rel->attachments[i].len;
	deliver_logf(dl,
	             "release=%lld loaded from the store: files=%zu "
	             "bytes=%zu",
	             (long long)id, r->snap.n, r->bytes);
	return r;
fail:
	r->relay_error = strdup(d.n ? diag_first(&d) : "out of memory");
	deliver_logf(dl, "release=%lld cannot be loaded from its snapshot: %s",
	             (long long)id, r->relay_error ? r->relay_error : "?");
	log_diag(dl->log, &d);
	return r;
}

/* The release id, loaded on first use and kept while it is among the
 * DELIVER_RELEASES_KEPT most recently used (and their files fit in
 * DELIVER_RELEASES_BYTES). Valid until the next call: what outlives it
 * (a message in flight) keeps its own copies. */
static struct dl_release *deliver_release(struct deliver *dl, int64_t id)
{
	struct dl_release *r;
	size_t i;

	for (i = 0; i < dl->nrels && dl->rels[i]->id != id; i++)
		;
	if (i < dl->nrels) {
		r = dl->rels[i];
		memmove(dl->rels + 1, dl->rels, i * sizeof(*dl->rels));
		dl->rels[0] = r;
		return r;
	}
	if ((r = deliver_release_load(dl, id)) == NULL)
		return NULL;
	while (dl->nrels > 0 &&
	       (dl->nrels == DELIVER_RELEASES_KEPT ||
	        dl->rels_bytes + r->bytes > DELIVER_RELEASES_BYTES)) {
		struct dl_release *old = dl->rels[--dl->nrels];
		dl->rels_bytes -= old->bytes;
		deliver_release_free(old);
	}
	memmove(dl->rels + 1, dl->rels, dl->nrels * sizeof(*dl->rels));
	dl->rels[0] = r;
	dl->nrels++;
	dl->rels_bytes += r->bytes;
	return r;
}

/* ---- recording (recorder.c) ------------------------------------------- */

static void deliver_add_pending(struct deliver *dl, const struct dl_flight *f,
                                const struct transport_reply *rep,
                                const struct trouble_decision *dec,
                                enum store_state result, bool counts)
{
	recorder_add(&dl->rec, &(struct recorder_attempt){
	                           .release = f->release_id,
	                           .delivery = f->id,
	                           .to = f->email,
	                           .attempt = f->attempt,
	                           .started = &f->started,
	                           .relay = dl->relay_url,
	                           .rep = rep,
	                           .dec = dec,
	                           .result = result,
	                           .counts = counts,
	                       });
}

/* A write to the store failed: claim and send nothing until it takes
 * writes again (recorder.h). */
static void deliver_store_pause(struct deliver *dl, time_t now)
{
	recorder_pause(&dl->rec, now, dl->tb->in_flight(dl->tr));
}

/* ---- the transport's answers ------------------------------------------ */

/* Take f off the in-flight list and free it; the store is not told. */
static void deliver_forget(struct deliver *dl, struct dl_flight *f)
{
	if (f->prev != NULL)
		f->prev->next = f->next;
	else if (dl->flights == f)
		dl->flights = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	free(f->email);
	free(f->sender);
	free(f->msg);
	free(f);
}

static void deliver_done(void *arg, const struct transport_msg *m,
                         const struct transport_reply *rep)
{
	struct deliver *dl = arg;
	struct dl_flight *f = m->user;
	struct trouble_decision dec;
	time_t now = time(NULL);
	enum store_state result;

	if (rep->stage == TRANSPORT_LOCAL &&
	    strcmp(rep->error_text, "aborted") == 0) {
		/* shutting down: give it back, uncharged, due at once
		 * (what was on a connection is given back already, marked:
		 * deliver_abandon) */
		struct diag d = {0};
		if (!(f->submitted && dl->abandoned) &&
		    store_unclaim(dl->st, &f->id, 1,
		                  dl->unclaim_at > now ? dl->unclaim_at : now,
		                  &d) < 0)
			log_diag(dl->log, &d);
		goto done;
	}
	dec = trouble_decide(&dl->pol, rep, now, f->queued_at, f->stale_after,
	                     dl->relay_failures, deliver_random(dl));
	switch (dec.verdict) {
	case TROUBLE_SENT:
		result = STORE_SENT;
		dl->relay_failures = 0;
		break;
	case TROUBLE_DEFER:
		result = STORE_DEFERRED;
		dl->relay_failures = 0;
		break;
	case TROUBLE_FAIL:
		result = STORE_FAILED;
		dl->relay_failures = 0;
		break;
	case TROUBLE_EXPIRE:
		result = STORE_EXPIRED;
		break;
	case TROUBLE_RELAY:
	default:
		/* the relay's fault: the recipient waits for the relay,
		 * uncharged; the relay pauses. Connections fail one after
		 * another, not always alike: the line says what failed last
		 * whenever that changes, not only when the pause grows. */
		if (dl->relay_paused_until < dec.next_at ||
		    dl->relay_reason == NULL ||
		    strcmp(dl->relay_reason, dec.reason) != 0) {
			char until[LOG_TIME_SIZE];
			if (dl->relay_paused_until < dec.next_at) {
				dl->relay_failures++;
				dl->relay_paused_until = dec.next_at;
			}
			dl->relay_reason = dec.reason;
			deliver_logf(dl,
			             "relay=%s paused until %s (%s; %u in a "
			             "row)",
			             dl->relay_url ? dl->relay_url : "-",
			             log_time(dl->relay_paused_until, until),
			             dec.reason, dl->relay_failures);
		}
		deliver_add_pending(dl, f, rep, &dec, STORE_DEFERRED, false);
		goto done;
	}
	deliver_add_pending(dl, f, rep, &dec, result, true);
done:
	deliver_forget(dl, f);
}

/* ---- claiming and sending ---------------------------------------------- */

/* A delivery that could not even be built: a local, temporary fault. */
static void deliver_local_fault(struct deliver *dl, struct dl_flight *f,
                                const char *why)
{
	struct transport_reply rep = {.stage = TRANSPORT_LOCAL};
	struct transport_msg m = {.id = f->id, .user = f};

	snprintf(rep.error_text, sizeof(rep.error_text), "%s", why);
	deliver_done(dl, &m, &rep);
}

/* May a message to domain through relay go now? The limits are the
 * store's shared buckets when it keeps them (PostgreSQL: several heraldd
 * on several machines keep one limit together), else this heraldd's own
 * (sched.h). When not, *wait: the seconds until it may. */
static bool deliver_rate_ok(struct deliver *dl, const char *relay,
                            const char *domain, double t, double *wait)
{
	const double relay_rate = dl->cfg->relay.rate;
	const double domain_rate = dl->cfg->domain_per_minute / 60;

	if (!dl->rates_local && (relay_rate > 0 || domain_rate > 0)) {
		struct store_rate r = {{NULL, NULL}, {0, 0}, {0, 0}};
		char rk[320], dk[320];
		struct diag d = {0};
		bool taken;
		int k = 0, rc;

		if (relay_rate > 0) {
			snprintf(rk, sizeof(rk), "relay %s", relay);
			r.key[k] = rk;
			r.per_second[k] = relay_rate;
			/* one second's worth, at least one: as sched.c */
			r.burst[k++] = relay_rate > 1 ? relay_rate : 1;
		}
		if (domain_rate > 0) {
			int n = snprintf(dk, sizeof(dk), "domain %s", domain);
			for (int i = 7; i < n && i < (int)sizeof(dk); i++)
				if (dk[i] >= 'A' && dk[i] <= 'Z')
					dk[i] = (char)(dk[i] - 'A' + 'a');
			r.key[k] = dk;
			r.per_second[k] = domain_rate;
			r.burst[k++] = domain_rate > 1 ? domain_rate : 1;
		}
		rc = store_rate_take(dl->st, &r, &taken, wait, &d);
		if (rc == 0)
			return taken;
		if (rc < 0) {
			/* the store cannot say: nothing goes that could break
			 * the limit; try again in a second */
			log_diag(dl->log, &d);
			*wait = 1;
			return false;
		}
		dl->rates_local = true; /* this store keeps no buckets */
	}
	if (sched_take(dl->sched, relay, domain, t))
		return true;
	*wait = sched_wait(dl->sched, relay, domain, t);
	return false;
}

static int deliver_claim(struct deliver *dl, size_t room, time_t now)
{
	struct diag d = {0};
	int n;

	if (dl->nready > 0 && dl->ready_head > 0)
		memmove(dl->ready, dl->ready + dl->ready_head,
		        dl->nready * sizeof(*dl->ready));
	dl->ready_head = 0;
	if (room > dl->cfg->batch - dl->nready)
		room = dl->cfg->batch - dl->nready;
	n = store_claim(dl->st, now, dl->cfg->lease, room, dl->claimed, &d);
	if (n < 0) {
		log_diag(dl->log, &d);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const struct store_delivery *sd = &dl->claimed[i];
		struct dl_release *r = deliver_release(dl, sd->release_id);
		struct dl_flight *f = calloc(1, sizeof(*f));
		struct journalist j = {0};
		struct message_opts mo = {0};
		struct i18n_choice ch;

		if (f == NULL)
			continue; /* the lease brings it back */
		{
			/* rate limits: a delivery over the limit goes back,
			 * uncharged, due when the limit allows */
			struct timespec ts;
			double t;
			const char *at = strrchr(sd->r.email, '@');
			clock_gettime(CLOCK_REALTIME, &ts);
			t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
			double w = 0;
			if (!deliver_rate_ok(dl, dl->tb->describe(dl->tr),
			                     at ? at + 1 : "", t, &w)) {
				time_t due = now + (time_t)(w + 0.999);
				if (due > dl->drain_wait)
					dl->drain_wait = due;
				if (store_unclaim(dl->st, &sd->id, 1, due,
				                  &d) < 0)
					log_diag(dl->log, &d);
				free(f);
				continue;
			}
		}
		f->id = sd->id;
		f->release_id = sd->release_id;
		/* the lifetime counts from the last herald retry, if any */
		f->queued_at = sd->retried_at > sd->queued_at ? sd->retried_at
		                                              : sd->queued_at;
		f->attempt = sd->attempts + 1;
		f->email = strdup(sd->r.email);
		clock_gettime(CLOCK_MONOTONIC, &f->started);
		if (r == NULL || r->relay_error != NULL) {
			deliver_local_fault(dl, f,
			                    r && r->relay_error
			                        ? r->relay_error
			                        : "the release cannot be "
			                          "loaded");
			continue;
		}
		f->stale_after = r->stale_after;
		j.name = (char *)sd->r.name;
		j.email = (char *)sd->r.email;
		j.language = (char *)sd->r.language;
		j.outlet = (char *)sd->r.outlet;
		j.beat = (char *)sd->r.beat;
		j.region = (char *)sd->r.region;
		j.timezone = (char *)sd->r.timezone;
		ch = i18n_choose(&r->rel->policy, j.language);
		mo.now = time(NULL);
		mo.message_id = sd->r.message_id;
		mo.signers = dl->signers;
		mo.nsigners = dl->nsigners;
		mo.cache = r->cache;
		mo.verp = dl->verp;
		mo.unsubscribe_url = dl->cfg->unsubscribe_url;
		if (message_build(r->rel, r->coal, &j, ch.lang, &mo, &f->msg,
		                  &f->len, &d) < 0) {
			char why[200];
			snprintf(why, sizeof(why),
			         "cannot build the message: %s",
			         diag_first(&d));
			log_diag(dl->log, &d);
			deliver_local_fault(dl, f, why);
			continue;
		}
		/* the flight's own copy: the release may be let go before
		 * the relay answers */
		f->sender =
		    dl->verp != NULL
		        ? verp_bounce_address(dl->verp, sd->r.message_id)
		        : strdup(r->rel->from.email);
		if (f->sender == NULL) {
			deliver_local_fault(dl, f,
			                    "cannot make the return path");
			continue;
		}
		f->m = (struct transport_msg){
		    .id = f->id,
		    .sender = f->sender,
		    .rcpt = f->email,
		    .data = f->msg,
		    .len = f->len,
		    .user = f,
		};
		/* claimed: in the list (its lease is renewed) and waiting */
		f->next = dl->flights;
		if (dl->flights != NULL)
			dl->flights->prev = f;
		dl->flights = f;
		dl->ready[dl->ready_head + dl->nready] = f;
		dl->nready++;
	}
	return n;
}

/*
 * Mark the next messages of ready handed over, in one transaction, before
 * any of them goes to a connection: after a crash, what was marked may be
 * at the relay and waits for its lease; the rest of this heraldd's claims
 * are due again at once (deliver_others). A group is the room the
 * transport has plus handed_ahead more: what went out in 1 /
 * DELIVER_HANDOVER_PER_SECOND s lately (up to daemon.batch), so a fast
 * relay costs one transaction for many messages and a slow one marks only
 * what goes on a connection at once. What the store no longer lets this
 * heraldd send (its release paused or cancelled, or the claim given to
 * another heraldd that took this one for gone) is forgotten unsent. -1
 * when the store refused.
 */
static int deliver_handover(struct deliver *dl)
{
	struct diag d = {0};
	double since = deliver_ms_since(&dl->handover_window);
	size_t n, k = 0;

	if (since >= DELIVER_HANDOVER_WINDOW_MS) {
		double rate = (double)dl->handed_sent * 1e3 / since;
		dl->handed_ahead =
		    (size_t)(rate / DELIVER_HANDOVER_PER_SECOND);
		if (dl->handed_ahead > dl->cfg->batch)
			dl->handed_ahead = dl->cfg->batch;
		dl->handed_sent = 0;
		clock_gettime(CLOCK_MONOTONIC, &dl->handover_window);
	}
	n = dl->tb->room(dl->tr) + dl->handed_ahead;
	if (n > dl->nready)
		n = dl->nready;
	for (size_t i = 0; i < n; i++)
		dl->hand_ids[i] = dl->ready[dl->ready_head + i]->id;
	if (store_handover(dl->st, dl->hand_ids, n, time(NULL), dl->hand_ok,
	                   &d) < 0) {
		log_diag(dl->log, &d);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct dl_flight *f = dl->ready[dl->ready_head + i];
		if (dl->hand_ok[i])
			dl->ready[dl->ready_head + k++] = f;
		else
			deliver_forget(dl, f);
	}
	if (k < n) {
		memmove(dl->ready + dl->ready_head + k,
		        dl->ready + dl->ready_head + n,
		        (dl->nready - n) * sizeof(*dl->ready));
		dl->nready -= n - k;
		deliver_logf(dl,
		             "%zu claimed deliveries were taken back meanwhile "
		             "(a pause, a cancel, or another heraldd): not sent "
		             "by this heraldd",
		             n - k);
	}
	dl->handed_credit = k;
	return 0;
}

/* Hand waiting messages to the transport while it has room, each marked
 * handed over first (deliver_handover). */
static void deliver_submit_ready(struct deliver *dl)
{
	struct diag d = {0};

	while (dl->nready > 0 && dl->tb->room(dl->tr) > 0) {
		struct dl_flight *f;
		if (dl->handed_credit == 0) {
			if (deliver_handover(dl) < 0) {
				deliver_store_pause(dl, time(NULL));
				break;
			}
			/* every one marked was taken back (a pause or a
			 * cancel this heraldd was not told of: another host;
			 * another heraldd): mark the next ones, never send
			 * one unmarked */
			if (dl->handed_credit == 0)
				continue;
		}
		f = dl->ready[dl->ready_head++];
		dl->nready--;
		dl->handed_credit--;
		dl->handed_sent++;
		f->submitted = true;
		if (dl->tb->submit(dl->tr, &f->m, &d) < 0) {
			char why[200];
			snprintf(why, sizeof(why), "%s", diag_first(&d));
			log_diag(dl->log, &d);
			deliver_local_fault(dl, f, why);
		}
	}
	if (dl->nready == 0)
		dl->ready_head = 0;
}

/* Give back what was claimed but never handed to the transport
 * (stopping): due at once, uncharged. */
static void deliver_unclaim_ready(struct deliver *dl, time_t due)
{
	dl->unclaim_at = due;
	while (dl->nready > 0) {
		struct dl_flight *f = dl->ready[dl->ready_head++];
		struct transport_reply rep = {.stage = TRANSPORT_LOCAL};
		dl->nready--;
		snprintf(rep.error_text, sizeof(rep.error_text), "aborted");
		deliver_done(dl, &f->m, &rep);
	}
	dl->ready_head = 0;
	dl->unclaim_at = 0;
	dl->handed_credit = 0; /* unclaim took the marks back too */
}

static void deliver_others(struct deliver *dl, time_t now, bool start);

/* Keep the claims of what is in flight: renew their lease well before it
 * runs out, so that a slow relay never makes them due again while this
 * daemon is still sending them; with them, this heraldd's heartbeat, at
 * least every CONTROL_HEARTBEAT seconds, so that other heraldd know it
 * runs (and it looks at them then). -1 when the store refused. */
static int deliver_renew(struct deliver *dl, time_t now)
{
	struct diag d = {0};
	time_t every = (time_t)(dl->cfg->lease / 3);
	int64_t *ids;
	size_t n = 0;
	bool revived = false;
	int rc = 0;

	if (every > CONTROL_HEARTBEAT)
		every = CONTROL_HEARTBEAT;
	if (now - dl->last_renew < every)
		return 0;
	dl->last_renew = now;
	for (struct dl_flight *f = dl->flights; f != NULL; f = f->next)
		n++;
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (ids == NULL)
		return 0;
	n = 0;
	for (struct dl_flight *f = dl->flights; f != NULL; f = f->next)
		ids[n++] = f->id;
	if (store_daemon_beat(dl->st, now, ids, n, now + dl->cfg->lease,
	                      &revived, &d) < 0) {
		log_diag(dl->log, &d);
		rc = -1;
	} else if (revived) {
		deliver_logf(dl,
		             "another heraldd took this one for gone (no "
		             "heartbeat for over %d s): what it had claimed and "
		             "not handed to the relay was given back; it goes "
		             "on",
		             CONTROL_STALE);
	}
	free(ids);
	if (rc == 0 && now - dl->last_others >= CONTROL_HEARTBEAT)
		deliver_others(dl, now, false);
	return rc;
}

/* The store refused a write a while ago: try again, first recording what
 * waits, then renewing the leases of what is claimed (they may have run
 * out meanwhile, and the next claim must not take them again). */
static void deliver_store_retry(struct deliver *dl, time_t now)
{
	size_t n = dl->rec.n;

	dl->last_renew = 0;
	if (recorder_flush(&dl->rec) < 0 || deliver_renew(dl, now) < 0) {
		deliver_store_pause(dl, now);
		return;
	}
	recorder_resume(&dl->rec, n);
}

/* ---- the control socket and the other heraldd of the store ------------- */

/* herald pause or cancel of a release: give back at once what this
 * heraldd claimed of it and has not handed to the relay (in one
 * transaction: queued again, or cancelled), and say how many of its
 * messages are on relay connections: only those may still be delivered.
 * A wake needs nothing: the loop looks at the store after this. */
static void deliver_control_request(void *arg, const struct control_request *rq,
                                    char *reply, size_t size)
{
	struct deliver *dl = arg;
	bool cancel = rq->verb == CONTROL_CANCEL;
	size_t n = 0, k = 0, dropped = 0, flying = 0;
	size_t credit = dl->handed_credit;
	struct diag d = {0};

	if (rq->verb != CONTROL_PAUSE && rq->verb != CONTROL_CANCEL)
		return;
	for (size_t i = 0; i < dl->nready; i++)
		if (dl->ready[dl->ready_head + i]->release_id == rq->release_id)
			dl->hand_ids[n++] = dl->ready[dl->ready_head + i]->id;
	if (n > 0 && store_drop(dl->st, rq->release_id, dl->hand_ids, n, cancel,
	                        &dropped, &d) < 0) {
		/* they are not sent all the same: herald gives back what no
		 * heraldd handed over, and the lease brings back the rest */
		deliver_logf(dl, "control: release=%lld: the store refused to "
		                 "take back what this heraldd claimed:",
		             (long long)rq->release_id);
		log_diag(dl->log, &d);
	}
	for (size_t i = 0; i < dl->nready; i++) {
		struct dl_flight *f = dl->ready[dl->ready_head + i];
		if (f->release_id != rq->release_id) {
			dl->ready[dl->ready_head + k++] = f;
			continue;
		}
		if (i < credit)
			dl->handed_credit--;
		deliver_forget(dl, f);
	}
	dl->nready = k;
	for (struct dl_flight *f = dl->flights; f != NULL; f = f->next)
		if (f->submitted && f->release_id == rq->release_id)
			flying++;
	snprintf(reply, size, "ok dropped=%zu in_flight=%zu", n, flying);
	deliver_logf(dl,
	             "control: release=%lld %s: %zu claimed deliveries given "
	             "back, %zu on relay connections may still be delivered",
	             (long long)rq->release_id,
	             cancel ? "cancelled" : "paused", n, flying);
}

static bool deliver_knows(const struct deliver *dl, int64_t id)
{
	for (size_t i = 0; i < dl->nothers; i++)
		if (dl->others[i] == id)
			return true;
	return false;
}

/*
 * Look at the other heraldd of the store (at start, and with every
 * CONTROL_HEARTBEAT): one seen running for the first time is logged (two
 * heraldd split the work); one that is gone (control_alive) has what it
 * claimed and never handed to the relay given back, due at once, and
 * what it handed over left to its lease: that may have reached the relay.
 * *ctl_taken: a running one holds the configured control socket.
 */
static void deliver_others_at(struct deliver *dl, time_t now, bool start,
                              bool *ctl_taken)
{
	struct store_daemon *v;
	size_t n;
	struct diag d = {0};
	int64_t *keep;
	size_t nkeep = 0;

	dl->last_others = now;
	if (control_daemons(dl->st, &v, &n, &d) < 0) {
		log_diag(dl->log, &d);
		return;
	}
	keep = calloc(n ? n : 1, sizeof(*keep));
	if (keep == NULL)
		goto done;
	for (size_t i = 0; i < n; i++) {
		const struct store_daemon *dm = &v[i];
		char t[LOG_TIME_SIZE], hb[LOG_TIME_SIZE];
		size_t freed, held;
		bool same = strcmp(dm->host, control_host()) == 0;

		if (dm->id == dl->owner || dm->ended != 0)
			continue;
		if (control_alive(dm, now)) {
			keep[nkeep++] = dm->id;
			if (ctl_taken != NULL && dm->control != NULL &&
			    dl->ctl_path != NULL &&
			    strcmp(dm->control, dl->ctl_path) == 0)
				*ctl_taken = true;
			if (deliver_knows(dl, dm->id))
				continue;
			deliver_logf(dl,
			             "%s heraldd pid %ld on %s, started %s, uses "
			             "this store too: the two split the work",
			             start ? "another" : "a new",
			             dm->pid, dm->host, log_time(dm->started, t));
			continue;
		}
		if (store_daemon_end(dl->st, dm->id, now, &freed, &held,
		                     &d) < 0) {
			log_diag(dl->log, &d);
			keep[nkeep++] = dm->id; /* tried again next time */
			continue;
		}
		log_time(dm->heartbeat, hb);
		deliver_logf(dl,
		             "heraldd pid %ld on %s is gone (%s %s): %zu "
		             "deliveries it claimed and had not handed to the "
		             "relay are due at once; %zu it handed over may "
		             "have been sent and wait for their lease",
		             dm->pid, dm->host,
		             now - dm->heartbeat > CONTROL_STALE
		                 ? "no heartbeat since"
		                 : "its process ended; last heartbeat",
		             hb, freed, held);
		/* its own socket, left behind (the configured one is taken
		 * over when found dead) */
		if (same && dm->control != NULL && dl->cfg->control != NULL &&
		    strcmp(dm->control, dl->cfg->control) != 0 &&
		    (dl->ctl_path == NULL ||
		     strcmp(dm->control, dl->ctl_path) != 0))
			unlink(dm->control);
	}
	free(dl->others);
	dl->others = keep;
	dl->nothers = nkeep;
done:
	control_daemons_free(v, n);
	diag_clear(&d);
}

static void deliver_others(struct deliver *dl, time_t now, bool start)
{
	deliver_others_at(dl, now, start, NULL);
}

/* The grace ran out with messages on relay connections: each may have
 * reached the relay (its reply was not read) and goes again after a
 * restart, with the same Message-ID. Say how many, log each, and mark
 * them in the store (herald show) as they are given back, due at once. */
static void deliver_abandon(struct deliver *dl)
{
	struct diag d = {0};
	size_t n = 0, k = 0, len = 0;
	int64_t *ids;
	char *list;

	for (struct dl_flight *f = dl->flights; f != NULL; f = f->next)
		n += f->submitted;
	if (n == 0)
		return;
	ids = calloc(n, sizeof(*ids));
	list = calloc(n, 21);
	if (ids == NULL || list == NULL) {
		free(ids);
		free(list);
		deliver_logf(dl, "stopping: %zu messages may be duplicated "
		                 "after a restart (out of memory: not marked)",
		             n);
		return;
	}
	for (struct dl_flight *f = dl->flights; f != NULL; f = f->next) {
		if (!f->submitted)
			continue;
		ids[k++] = f->id;
		len += (size_t)snprintf(list + len, 21, "%s%lld",
		                        len ? " " : "", (long long)f->id);
		deliver_logf(dl,
		             "release=%lld delivery=%lld to=<%s> attempt=%u "
		             "result=may-duplicate reason=\"on a relay "
		             "connection when the grace ran out: the relay may "
		             "have taken it; it goes again after a restart\"",
		             (long long)f->release_id, (long long)f->id,
		             f->email, f->attempt);
	}
	if (store_abandon(dl->st, ids, n, time(NULL), &d) < 0) {
		deliver_logf(dl, "stopping: the store did not take the marks "
		                 "(they go again when their lease runs out):");
		log_diag(dl->log, &d);
	} else {
		dl->abandoned = true;
	}
	deliver_logf(dl,
	             "stopping: %zu message%s may be duplicated after a "
	             "restart: on relay connections when the %u s grace ran "
	             "out (deliveries %s); each goes again with the same "
	             "Message-ID (herald show DELIVERY says so)",
	             n, n == 1 ? "" : "s", dl->cfg->grace, list);
	free(list);
	free(ids);
}

/* ---- --drain: when to stop ------------------------------------------------ */

/* What is left in the store, by what it waits for. */
struct dl_left {
	time_t now;
	unsigned lifetime;
	size_t paused;        /* in paused releases */
	size_t embargoed;     /* in releases not due yet (embargo, --at) */
	time_t embargo_until; /* the first of those ends */
	size_t waiting;       /* queued or deferred in due releases */
	size_t sending;       /* claimed by another heraldd (or one that
	                       * died), until its lease runs out */
	time_t horizon;       /* the latest any of them may still go out */
};

static int deliver_left_release(void *arg, const struct store_release_info *r)
{
	struct dl_left *l = arg;
	size_t n = r->count[STORE_QUEUED] + r->count[STORE_DEFERRED] +
	           r->count[STORE_SENDING];
	time_t deadline;

	if (n == 0)
		return 0;
	if (r->state == STORE_RELEASE_PAUSED) {
		l->paused += n;
		return 0;
	}
	if (r->state != STORE_RELEASE_ACTIVE)
		return 0;
	if (r->not_before > l->now) {
		l->embargoed += n;
		if (l->embargo_until == 0 || r->not_before < l->embargo_until)
			l->embargo_until = r->not_before;
		return 0;
	}
	l->waiting += r->count[STORE_QUEUED] + r->count[STORE_DEFERRED];
	l->sending += r->count[STORE_SENDING];
	/* a delivery expires a lifetime after it was queued (or retried:
	 * at most from now) or at its release's stale-after */
	deadline = l->now + (time_t)l->lifetime;
	if (r->stale_after != 0 && r->stale_after < deadline)
		deadline = r->stale_after;
	if (deadline > l->horizon)
		l->horizon = deadline;
	return 0;
}

/*
 * --drain, with nothing claimed, waiting or in flight here and every
 * result recorded: stop now? Not while something is due, or waits for a
 * rate limit, for the lease of a claim held elsewhere, or for a relay
 * pause that ends before the work left must go out: those finish in this
 * run. What waits for a paused release, an embargo or --at, a recipient's
 * retry, a relay paused past the work's end or a store that takes no
 * writes waits for a later run: then stop, say what is left and why, and
 * *rc is EX_TEMPFAIL; 0 when nothing is left at all.
 */
static bool deliver_drained(struct deliver *dl, time_t now, int *rc)
{
	struct dl_left l = {.now = now, .lifetime = dl->pol.lifetime};
	struct diag d = {0};
	time_t when = 0;
	size_t left, relay = 0, deferred = 0;
	char t1[LOG_TIME_SIZE], t2[LOG_TIME_SIZE];

	*rc = EX_TEMPFAIL;
	if (store_next_due(dl->st, &when, &d) < 0)
		goto unreadable;
	/* due now (the loop claims it), or by a wait this daemon chose (a
	 * rate limit, the relay's pause): no need to count */
	if (dl->rec.backoff == 0 && when != 0 &&
	    ((when <= now && dl->relay_paused_until <= now) ||
	     when <= dl->drain_wait))
		return false;
	if (store_releases_each(dl->st, 0, deliver_left_release, &l, &d) < 0)
		goto unreadable;
	if (dl->rec.backoff == 0) {
		if (l.sending > 0 && when != 0) {
			/* another heraldd's claims: recorded by it, or due
			 * to this one when their lease runs out */
			if (when > dl->drain_wait)
				dl->drain_wait = when;
			return false;
		}
		if (l.waiting > 0 && dl->relay_paused_until > now) {
			if (dl->relay_paused_until < l.horizon) {
				if (dl->relay_paused_until > dl->drain_wait)
					dl->drain_wait =
					    dl->relay_paused_until;
				return false;
			}
			relay = l.waiting;
		} else {
			deferred = l.waiting;
		}
	} else {
		deferred = l.waiting; /* the store first */
	}
	left = l.paused + l.embargoed + l.waiting + l.sending;
	if (left == 0 && dl->rec.backoff == 0) {
		*rc = 0;
		deliver_logf(dl, "drain: done, nothing left");
		return true;
	}
	{
		/* why, in words, for the operator reading the log */
		char *why = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&why, &len);

		if (f != NULL) {
			if (dl->rec.backoff > 0)
				fprintf(f, "; the store takes no writes");
			if (l.paused)
				fprintf(f, "; %zu in paused releases (herald "
				           "resume)",
				        l.paused);
			if (l.embargoed)
				fprintf(f, "; %zu embargoed until %s",
				        l.embargoed,
				        log_time(l.embargo_until, t1));
			if (deferred)
				fprintf(f, "; %zu deferred, waiting for their "
				           "retry",
				        deferred);
			if (relay)
				fprintf(f,
				        "; %zu wait for the relay, paused until "
				        "%s (%s), past the time they may go out",
				        relay,
				        log_time(dl->relay_paused_until, t2),
				        dl->relay_reason ? dl->relay_reason
				                         : "?");
			if (l.sending)
				fprintf(f, "; %zu held by a claim until its "
				           "lease runs out",
				        l.sending);
			if (fclose(f) != 0) {
				free(why);
				why = NULL;
			}
		}
		deliver_logf(dl,
		             "drain: stopping, work left for a later run: "
		             "left=%zu paused=%zu embargoed=%zu deferred=%zu "
		             "relay_paused=%zu held=%zu next_due=%s%s",
		             left, l.paused, l.embargoed, deferred, relay,
		             l.sending, when ? log_time(when, t2) : "-",
		             why ? why : "");
		free(why);
	}
	return true;
unreadable:
	log_diag(dl->log, &d);
	deliver_logf(dl, "drain: stopping: the store cannot be read");
	return true;
}

/* ---- the loop ----------------------------------------------------------- */

static int deliver_timeout_ms(struct deliver *dl, time_t now, bool stopping)
{
	int ms = DELIVER_POLL_MS;
	time_t when = 0;
	struct diag d = {0};

	if (dl->rec.backoff > 0 && !stopping) {
		/* only the transport's own work until the next try */
		time_t left = dl->rec.paused_until - now;
		return left <= 0 ? 0 : left < ms / 1000 ? (int)left * 1000 : ms;
	}
	if (dl->rec.n > 0)
		return recorder_wait_ms(&dl->rec);
	if (stopping)
		return 100;
	if (store_next_due(dl->st, &when, &d) == 0 && when != 0) {
		if (when <= now)
			ms = dl->tb->room(dl->tr) > 0 &&
			             dl->relay_paused_until <= now
			         ? 0
			         : ms;
		else if ((when - now) * 1000 < ms)
			ms = (int)(when - now) * 1000;
	}
	diag_clear(&d);
	if (dl->relay_paused_until > now &&
	    (dl->relay_paused_until - now) * 1000 < ms)
		ms = (int)(dl->relay_paused_until - now) * 1000;
	return ms;
}

static int deliver_loop(struct deliver *dl)
{
	bool stopping = false;
	time_t grace_end = 0;
	int rc = 0;

	for (;;) {
		time_t now = time(NULL);
		int fds[3] = {deliver_sigpipe[0], dl->ctl_fd, dl->poller.fd};
		bool readable[3] = {false, false, false};
		struct diag d = {0};
		int claimed = 0;

		if (deliver_stop && !stopping) {
			stopping = true;
			deliver_unclaim_ready(dl, 0);
			grace_end = now + dl->cfg->grace;
			deliver_logf(dl,
			             "stopping: %zu in flight, %u s to finish",
			             dl->tb->in_flight(dl->tr), dl->cfg->grace);
		}
		if (deliver_reload) {
			char *changes = NULL;
			deliver_reload = 0;
			if (deliver_load_config(dl, &d, &changes) < 0) {
				deliver_logf(dl, "config not reloaded:");
				log_diag(dl->log, &d);
			} else {
				/* what changed, by when it takes effect */
				deliver_logf(dl, "config reloaded: %s",
				             changes ? changes
				                     : "(the changes are not "
				                       "known: out of memory)");
			}
			free(changes);
		}
		if (dl->reopen && dl->tb->in_flight(dl->tr) == 0) {
			dl->reopen = false;
			dl->tb->close(dl->tr);
			dl->tr = NULL;
			if (deliver_open_transport(dl, &d) < 0) {
				log_diag(dl->log, &d);
				return EX_CONFIG;
			}
		}
		if (dl->rec.backoff == 0 && deliver_renew(dl, now) < 0 &&
		    !stopping)
			deliver_store_pause(dl, now);
		if (!stopping && dl->rec.backoff > 0 &&
		    dl->rec.paused_until <= now)
			deliver_store_retry(dl, now);
		if (!stopping)
			poller_run(&dl->poller, dl->cfg, dl->st, dl->verp,
			           !dl->o->drain, now);
		if (stopping) {
			if (dl->tb->in_flight(dl->tr) == 0 || now >= grace_end)
				break;
		} else {
			if (now - dl->last_expire >= DELIVER_EXPIRE_EVERY) {
				dl->last_expire = now;
				if (store_expire(dl->st, now, dl->pol.lifetime,
				                 &d) < 0)
					log_diag(dl->log, &d);
			}
			if (dl->relay_paused_until <= now &&
			    dl->rec.backoff == 0 &&
			    dl->nready <= dl->cfg->batch / 2 &&
			    dl->rec.n < DELIVER_BATCH_RECORDS) {
				claimed =
				    deliver_claim(dl, dl->cfg->batch, now);
				if (claimed < 0) {
					deliver_store_pause(dl, now);
					claimed = 0;
				}
			}
			if (dl->rec.backoff > 0) {
				/* what is claimed waits for the store */
			} else if (dl->reopen) {
				/* new relay settings: what is claimed waits
				 * until the messages in flight are done and
				 * the relay is opened again with them */
			} else if (dl->relay_paused_until <= now) {
				deliver_submit_ready(dl);
			} else if (dl->nready > 0)
				/* the relay is paused: what waits goes back,
				 * due when the pause ends, uncharged */
				deliver_unclaim_ready(dl,
				                      dl->relay_paused_until);
		}
		if (dl->o->drain && !stopping && claimed == 0 &&
		    dl->nready == 0 && dl->tb->in_flight(dl->tr) == 0 &&
		    (dl->rec.backoff == 0 || dl->rec.n == 0)) {
			if (dl->rec.backoff == 0 && recorder_flush(&dl->rec) < 0) {
				deliver_store_pause(dl, now);
				continue;
			}
			if (deliver_drained(dl, now, &rc))
				break;
		}
		if (dl->tb->step(
		        dl->tr,
		        claimed > 0 ? 0 : deliver_timeout_ms(dl, now, stopping),
		        fds, dl->poller.fd >= 0 ? 3 : 2, readable, &d) < 0)
			log_diag(dl->log, &d);
		if (readable[2])
			poller_wake(&dl->poller);
		if (readable[0]) {
			char buf[64];
			while (read(deliver_sigpipe[0], buf, sizeof(buf)) > 0)
				;
		}
		if (readable[1])
			control_serve(dl->ctl_fd, deliver_control_request,
			              dl->log, dl);
		if (recorder_due(&dl->rec, dl->tb->in_flight(dl->tr)) &&
		    recorder_flush(&dl->rec) < 0 && !stopping)
			deliver_store_pause(dl, time(NULL));
	}
	/* what is still in flight after the grace period goes back */
	deliver_abandon(dl);
	dl->tb->close(dl->tr);
	dl->tr = NULL;
	recorder_flush_last(&dl->rec);
	return rc;
}

int deliver_run(const struct deliver_opts *o)
{
	struct deliver dl = {.o = o, .ctl_fd = -1, .log = o->log};
	struct diag d = {0};
	struct sigaction sa = {0};
	int rc = EX_SOFTWARE;

	if (dl.log == NULL)
		dl.log = stderr;
	poller_init(&dl.poller, dl.log);
	dl.rnd = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(deliver_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		deliver_logf(&dl, "pipe: %s", strerror(errno));
		return EX_OSERR;
	}
	sa.sa_handler = deliver_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	deliver_stop = deliver_reload = 0;

	if (deliver_load_config(&dl, &d, NULL) < 0) {
		rc = EX_CONFIG;
		goto done;
	}
	/* a copy: a reload replaces the config, not the socket */
	dl.ctl_path = dl.cfg->control ? strdup(dl.cfg->control) : NULL;
	dl.st = store_open(dl.cfg->store, &d);
	if (dl.st == NULL) {
		rc = EX_CANTCREAT;
		goto done;
	}
	recorder_init(&dl.rec, dl.st, dl.log, DELIVER_BATCH_RECORDS);
	dl.claimed = calloc(dl.cfg->batch, sizeof(*dl.claimed));
	dl.ready = calloc(dl.cfg->batch, sizeof(*dl.ready));
	dl.hand_ids = calloc(dl.cfg->batch, sizeof(*dl.hand_ids));
	dl.hand_ok = calloc(dl.cfg->batch, sizeof(*dl.hand_ok));
	if (dl.claimed == NULL || dl.ready == NULL || dl.hand_ids == NULL ||
	    dl.hand_ok == NULL)
		goto done;
	if (deliver_open_transport(&dl, &d) < 0) {
		rc = EX_CONFIG;
		goto done;
	}
	{
		/* the other heraldd of the store: logged, or, when gone,
		 * their claims that never reached a relay due at once */
		bool taken = false;
		deliver_others_at(&dl, time(NULL), true, &taken);
		if (dl.ctl_path != NULL &&
		    (dl.ctl_fd = control_open(&dl.ctl_path, taken, dl.log,
		                              &d)) < 0) {
			rc = EX_CANTCREAT;
			goto done;
		}
		/* the daemons table names the socket for herald run from
		 * any directory */
		char *ctl_abs = NULL, cwd[4096];
		int added;
		if (dl.ctl_path != NULL && dl.ctl_path[0] != '/' &&
		    getcwd(cwd, sizeof(cwd)) != NULL &&
		    asprintf(&ctl_abs, "%s/%s", cwd, dl.ctl_path) < 0)
			ctl_abs = NULL;
		added = store_daemon_add(
		    dl.st, control_host(), (long)getpid(), time(NULL),
		    ctl_abs ? ctl_abs : dl.ctl_path, &dl.owner, &d);
		free(ctl_abs);
		if (added < 0) {
			rc = EX_CANTCREAT;
			goto done;
		}
		dl.last_renew = time(NULL);
	}
	deliver_logf(&dl, "started: store=%s relay=\"%s\"%s", dl.cfg->store,
	             dl.tb->describe(dl.tr), o->drain ? " (drain)" : "");
	rc = deliver_loop(&dl);
	deliver_logf(&dl, "stopped");
done:
	log_diag(dl.log, &d);
	if (dl.tr != NULL)
		dl.tb->close(dl.tr);
	recorder_flush_last(&dl.rec);
	for (size_t i = 0; i < dl.nrels; i++)
		deliver_release_free(dl.rels[i]);
	recorder_free(&dl.rec);
	if (dl.ready != NULL)
		deliver_unclaim_ready(&dl, 0);
	if (dl.owner != 0) {
		/* all given back or recorded, but for results the store
		 * refused: those were handed over and wait for their lease */
		size_t freed = 0, held = 0;
		if (store_daemon_end(dl.st, dl.owner, time(NULL), &freed, &held,
		                     &d) < 0)
			log_diag(dl.log, &d);
		else if (freed + held > 0)
			deliver_logf(&dl,
			             "%zu claimed deliveries given back at the "
			             "stop; %zu handed over wait for their lease",
			             freed, held);
	}
	free(dl.ready);
	free(dl.claimed);
	free(dl.hand_ids);
	free(dl.hand_ok);
	free(dl.others);
	control_close(dl.ctl_fd, dl.ctl_path);
	free(dl.ctl_path);
	free(dl.relay_url);
	poller_close(&dl.poller);
	sched_free(dl.sched);
	if (dl.st != NULL)
		store_close(dl.st);
	deliver_signers_free(dl.signers, dl.nsigners);
	verp_free(dl.verp);
	config_free(dl.cfg);
	close(deliver_sigpipe[0]);
	close(deliver_sigpipe[1]);
	deliver_sigpipe[0] = deliver_sigpipe[1] = -1;
	return rc;
}
