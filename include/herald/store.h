/*
 * store — herald's durable state: releases (with a snapshot of every file
 * they were queued from), deliveries (one per recipient), attempts (one
 * row per try), suppressions. Every state change is one transaction;
 * nothing is reported sent before its transaction has committed.
 *
 * Callers use the store_* functions below: each is a thin forward to the
 * handle's backend (struct store_backend, at the end), one backend per
 * file: store_sqlite.c (WAL, synchronous=FULL, foreign keys, file mode
 * 0600) and store_pg*.c (a PostgreSQL database several heraldd may
 * share), both held to the same contract by
 * tests/test_store_conformance.c.
 *
 * Delivery states (DESIGN.md): queued -> sending -> sent; sending ->
 * deferred (next_at) -> ... -> expired; sending -> failed; queued/deferred
 * -> suppressed / cancelled; sent -> bounced / complained (bounce
 * handling). A delivery left in `sending` past its lease is due again
 * (at-least-once; its Message-ID stays the same).
 *
 * Library code: 0 / -1 (or NULL) with the reason in a struct diag; a
 * failure of the disk (ENOSPC, I/O) is reported, never hidden, and leaves
 * the store as it was before the call (the transaction is rolled back).
 * A handle is used by one thread at a time; several processes may open
 * the same store (the CLI queues while the daemon claims and records).
 *
 * Callbacks (fn of the *_each functions, store_release_files,
 * store_delivery_get):
 * return 0 to go on, > 0 to stop early (the call then returns 0), < 0 to
 * stop with a failure (the call returns -1 and adds nothing to d: fn puts
 * its own reason where its caller will find it). Strings handed to fn are
 * valid only during that call. fn may use the store handle.
 *
 * Addresses are compared as the suppression list keeps them: the local
 * part as written, the domain in lower case.
 */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "herald/diag.h"

enum store_state {
	STORE_QUEUED,
	STORE_SENDING,
	STORE_SENT,
	STORE_DEFERRED,
	STORE_FAILED,
	STORE_BOUNCED,
	STORE_COMPLAINED,
	STORE_EXPIRED,
	STORE_SUPPRESSED,
	STORE_CANCELLED,
};
#define STORE_NSTATES 10

/* "queued", "sending", ... and back; parse returns -1 for an unknown name */
const char *store_state_name(enum store_state s);
int store_state_parse(const char *name, enum store_state *out);

/* A release is done when nothing of it is left to send or retry (no
 * delivery queued, sending or deferred): claims skip it. It becomes active
 * again when `herald retry` makes some of it due. */
enum store_release_state {
	STORE_RELEASE_ACTIVE,
	STORE_RELEASE_PAUSED,
	STORE_RELEASE_CANCELLED,
	STORE_RELEASE_DONE,
};
const char *store_release_state_name(enum store_release_state s);
int store_release_state_parse(const char *name, enum store_release_state *out);

/* One file of a release's snapshot, path relative to the snapshot root. */
struct store_file {
	const char *path;
	const void *data;
	size_t len;
};

struct store_release_new {
	const char *name;        /* release.yaml name */
	const char *source;      /* the directory it was queued from (shown) */
	const char *release_dir; /* snapshot path of the release directory */
	const char *coalition;   /* snapshot path of the coalition list */
	time_t not_before;       /* embargo or --at; 0: at once */
	time_t stale_after;      /* 0: none (then the lifetime applies) */
	const struct store_file *files;
	size_t nfiles;
};

/* How store_release_add_each treats a release name the store holds already
 * (only_new, given), and what it did (the rest, set). Queueing the same
 * release twice is a mistake that would mail every journalist again;
 * adding journalists to a release is not. */
struct store_release_added {
	bool only_new; /* queue only the addresses that have no delivery of
	                * a release of this name; false: a name already in
	                * the store queues nothing */
	int64_t release_id; /* the release queued */
	int64_t earlier;    /* the newest release of this name before it, or
	                     * 0 when the name is new */
	size_t queued;      /* deliveries queued (suppressed ones included) */
	size_t suppressed;  /* of them, addresses on the suppression list */
	size_t skipped;     /* only_new: addresses with a delivery of the
	                     * name already */
	size_t skipped_cancelled; /* of them, addresses whose deliveries of
	                           * the name were all cancelled */
};

/* A recipient as queued: what the daemon needs to build its message. */
struct store_recipient {
	const char *email;
	const char *name;
	const char *language; /* the journalist's tag, e.g. de-AT */
	const char *outlet, *beat, *region, *timezone; /* may be NULL */
	const char *message_id;                        /* without < > */
};

/* A delivery claimed for sending, or shown to an admin. Strings point into
 * memory of the store handle: for store_claim until the next claim or
 * close, for store_delivery_get during the callback. */
struct store_delivery {
	int64_t id;
	int64_t release_id;
	enum store_state state;
	struct store_recipient r;
	unsigned attempts;
	time_t queued_at, next_at, updated_at;
	time_t retried_at;       /* the last `herald retry` of it, 0: none;
	                          * the lifetime and the backoff's age count
	                          * from the later of queued_at and this */
	int last_code;           /* last SMTP reply code, 0 if none */
	const char *last_status; /* enhanced status "5.1.1", or NULL */
	const char *last_text;   /* last reply text, or NULL */
};

/* One try to deliver, as recorded (and the state it leads to). */
struct store_attempt {
	int64_t delivery_id;
	time_t at;
	const char *relay;    /* "smtp://127.0.0.1:2525", "maildir:/path" */
	int code;             /* SMTP reply code, 0 if none */
	const char *status;   /* enhanced status, or NULL */
	const char *text;     /* reply text (all lines), or NULL */
	const char *queue_id; /* the server's "queued as" id, or NULL */
	unsigned duration_ms;
	enum store_state result; /* SENT, DEFERRED, FAILED or EXPIRED */
	time_t next_at;          /* for DEFERRED */
	bool counts;             /* false: the relay's fault, not charged */
	const char *bad_address; /* FAILED: the refusal says the address is
	                          * permanently bad ("userunknown", as
	                          * trouble_decide names it), or NULL: record
	                          * puts the address on the suppression list,
	                          * as a hard bounce does */
	/* With bad_address: the verdict's rule (verdict.h, as trouble_decide
	 * names it) and the reply it was read from, one line
	 * (store_evidence), kept with the suppression; either may be NULL. */
	const char *rule;
	const char *evidence;
};

/* A release as listed by status. Names are at most 127 bytes
 * (store_release_add_each refuses longer ones); a source longer than 511 bytes is shown as "..."
 * and its end. */
struct store_release_info {
	int64_t id;
	char name[128];
	char source[512];
	enum store_release_state state;
	time_t queued_at, not_before, stale_after;
	size_t count[STORE_NSTATES];
	size_t total;
};

/* What admins asked for beside a release's counts
 * (store_release_figures). */
struct store_release_figures {
	time_t first_attempt, last_attempt; /* 0: none yet (an expiry is
	                                     * not an attempt) */
	size_t sent_recent; /* attempts that ended sent in the
	                     * STORE_RATE_WINDOW seconds before the call */
	size_t complaints;   /* deliveries that drew a complaint */
	size_t unsubscribes; /* ... an unsubscribe request */
};

/* The window of sent_recent, for a delivery rate: a minute is long enough
 * to smooth a relay's bursts and short enough to show a stall. */
enum { STORE_RATE_WINDOW = 60 };

/* A heraldd that uses the store (a row of its daemons table): the owner of
 * the claims it makes. Strings are valid during the callback. */
struct store_daemon {
	int64_t id;
	const char *host; /* gethostname() */
	long pid;
	time_t started;
	time_t heartbeat;    /* its last sign of life */
	time_t ended;        /* 0: running as far as the store knows; else
	                      * when it stopped or was found gone */
	const char *control; /* its control socket, or NULL */
};

/* Deliveries held by claims (state sending), for admins: one group per
 * owner and hand-over. */
struct store_hold {
	struct store_daemon owner; /* id 0: no owner recorded */
	bool handed;        /* handed to a relay connection: may be sent */
	time_t handed_at;   /* the group's earliest hand-over */
	time_t lease_until; /* the group's latest lease */
	size_t n;
};

/* Why a delivery may have reached its journalist twice (same Message-ID):
 * it was on a connection when heraldd stopped and the grace ran out, or
 * it was handed to a relay by a heraldd that died and went again when its
 * lease ran out. */
enum store_duplicate {
	STORE_DUP_NONE,
	STORE_DUP_STOP,
	STORE_DUP_LEASE,
};

/* What arrived in the bounce mailbox about a delivery. */
enum store_event_kind {
	STORE_EVENT_BOUNCE,
	STORE_EVENT_COMPLAINT,
	STORE_EVENT_AUTOREPLY,
	STORE_EVENT_UNSUBSCRIBE,
	STORE_EVENT_UNKNOWN,
};

/* "bounce", "complaint", "autoreply", "unsubscribe", "unknown". */
const char *store_event_kind_name(enum store_event_kind k);

/* Soft bounces suppress an address when STORE_DEFAULT_SOFT_LIMIT of them
 * arrive within STORE_DEFAULT_SOFT_WINDOW seconds, unless the event says
 * otherwise: a full mailbox or a greylisting server bounces once or twice
 * and recovers; three within a month (a few releases) is a mailbox nobody
 * empties, and mailing it on hurts the sender's reputation. */
enum {
	STORE_DEFAULT_SOFT_LIMIT = 3,
	STORE_DEFAULT_SOFT_WINDOW = 30 * 86400,
};

/* A soft window (or any span of seconds) in words for admins: "30 days",
 * "36 hours", "90 minutes", "1 second", in the largest unit that divides
 * it, into buf (always terminated). */
void store_window_text(unsigned seconds, char *buf, size_t size);

struct store_event {
	enum store_event_kind kind;
	const char *message_key; /* the delivery's Message-ID key from a
	                          * checked VERP token, or NULL */
	const char *message_id;  /* the returned original's Message-ID */
	/* Is message_id the keyed Message-ID herald gives the delivery of
	 * release to email (message_id_for with the bounce secret)? Then it
	 * is a token. NULL: a Message-ID is never one. The store holds no
	 * secret: the caller, which does, answers. */
	bool (*id_keyed)(const void *arg, const char *release,
	                 const char *email, const char *message_id);
	const void *id_keyed_arg;
	const char *email;       /* the address it is about, or NULL */
	const char *status;      /* enhanced status, or NULL */
	const char *reason;      /* bounce reason (bounce.c's words) */
	int hard;                /* 1 hard, 0 soft, -1 neither */
	const char *diagnostic;
	const void *raw; /* the message as received, kept for review */
	size_t rawlen;
	unsigned soft_limit;  /* soft bounces that suppress (0: the
	                       * default below) */
	unsigned soft_window; /* within this many seconds (0: the default) */
	/* where the message came from, stable across passes (an IMAP
	 * message's mailbox, UIDVALIDITY and UID, and which event of the
	 * message this is), or NULL: an event with a source is recorded at
	 * most once (see store_event_record) */
	const char *source;
	/* Why: a bounce's verdict rule (verdict.h: "status+text", ...) and
	 * the line of the message it was read from ("line 23: Status:
	 * 5.1.1", store_evidence), kept with the event and with the
	 * suppression it causes; NULL when there is none. */
	const char *rule;
	const char *evidence;
};

/* Filter for store_events_each (zero/false fields match all). */
struct store_event_filter {
	int64_t release_id; /* events matched to this release's deliveries */
	bool unmatched;     /* only events matched to no delivery, or not
	                     * acted on (held, with why) */
	time_t since;       /* events at or after this time */
};

/* A row of the bounce mailbox's event list (herald bounces). */
struct store_event_row {
	int64_t id;
	time_t at;
	enum store_event_kind kind;
	int64_t delivery_id;    /* 0: matched to no delivery */
	int64_t release_id;     /* 0: unmatched */
	const char *release;    /* release name, or NULL */
	const char *matched_by; /* verp, message-id, address, mismatch, NULL */
	const char *email;      /* the address it is about, or NULL */
	const char *status, *reason, *diagnostic; /* may be NULL */
	int hard;                                 /* 1, 0, -1 */
	size_t rawlen; /* size of the message kept with it */
	/* why it was not acted on (policy.h), or NULL */
	const char *held;
	const char *rule, *evidence; /* as store_event has them, or NULL */
};

/* One entry of the suppression list, with what put it there: rule names
 * the kind of evidence and evidence is the evidence itself, one line:
 *   a bounce's verdict rule    "event 12, line 23: Status: 5.1.1"
 *   "complaint", "unsubscribe" "event 12"
 *   "soft-limit"               "3 soft bounces within 30 days: events
 *                               4, 9, 12"
 *   a refusal's verdict rule   "550 5.1.1 <x>: User unknown" (the reply)
 *   "admin"                    the reason given to herald suppress add
 *   "import"                   "FILE:LINE" of the file imported
 *   "confirmed"                "event 12" (herald suppress confirm)
 * Both NULL for entries made before herald kept them. */
struct store_suppression {
	const char *email;
	const char *reason; /* may be NULL */
	time_t at;
	const char *rule;     /* may be NULL */
	const char *evidence; /* may be NULL */
};

/* The longest text of outside origin kept as evidence (a line of mail is
 * at most 998 bytes, RFC 5322), and the longest evidence with what
 * herald puts before it (its place, the event). */
enum { STORE_EVIDENCE_TEXT_MAX = 998, STORE_EVIDENCE_MAX = 1100 };

/* Evidence as the store keeps it: prefix (may be NULL) then text, on one
 * line (CR, LF and TAB as spaces), text cut to STORE_EVIDENCE_TEXT_MAX
 * bytes at a character boundary. malloc'd; NULL when text is NULL or
 * memory runs out. */
char *store_evidence(const char *prefix, const char *text);

/* What a row of the delivery log records: how an attempt ended, or what
 * happened to the delivery after it (an event from the bounce mailbox
 * matched to it, or its address put on the suppression list). */
enum store_log_result {
	STORE_LOG_SENT,
	STORE_LOG_DEFERRED,
	STORE_LOG_FAILED,
	STORE_LOG_EXPIRED,
	STORE_LOG_BOUNCED,      /* a bounce came back (hard or soft) */
	STORE_LOG_COMPLAINED,   /* the journalist reported it as spam */
	STORE_LOG_UNSUBSCRIBED, /* the journalist asked to be taken off */
	STORE_LOG_SUPPRESSED,   /* suppressed: not sent, or never again */
};
#define STORE_LOG_NRESULTS 8

/* "sent", ..., "unsubscribed", "suppressed" and back; parse returns -1
 * for any other name. */
const char *store_log_result_name(enum store_log_result r);
int store_log_result_parse(const char *name, enum store_log_result *out);

/* Filter for store_attempts_each (zero/NULL fields match all). */
struct store_log_filter {
	int64_t release_id;
	const char *email;
	bool by_result;
	enum store_log_result result;
	time_t since; /* rows at or after this time */
};

/* A row of the delivery log: an attempt (attempt > 0), an event (event >
 * 0) or a suppression (both 0). */
struct store_log_row {
	int64_t delivery_id, release_id;
	const char *release; /* release name */
	const char *email;
	time_t at;
	const char *relay; /* NULL but for attempts */
	unsigned attempt;  /* 1-based number of this try for the delivery */
	int64_t event;     /* the bounce mailbox's event */
	int code;
	const char *status, *text, *queue_id; /* text: an attempt's reply, an
	                                       * event's diagnostic, a
	                                       * suppression's reason */
	const char *reason; /* an event's reason ("userunknown"), or NULL */
	int hard;           /* a bounce: 1 hard, 0 soft, -1 neither */
	unsigned duration_ms;
	enum store_log_result result;
};

struct store;

/* ---- opening and closing ---------------------------------------------- */

/* Open the store at path with the backend store_backend_for names.
 * flags: STORE_OPEN_CREATE makes an empty store when there is none (for
 * what writes and may start a store: herald queue, heraldd); without it
 * a store that does not exist is an error, and nothing is created. NULL
 * on failure, with the reason in d and its kind in errno, for the exit
 * status: ENOENT there is no store at path (without STORE_OPEN_CREATE),
 * EACCES herald may not read or write it, EINVAL path is not a store this
 * herald can use (another kind of file, a newer herald's, an older
 * schema a PostgreSQL store upgrades only when asked), anything else a
 * failure that may pass (busy, disk full, I/O, memory). STORE_OPEN_MIGRATE
 * (herald store migrate) brings an older PostgreSQL schema up to date; a
 * SQLite store always is on open (one process, one file), and an empty
 * PostgreSQL database gets its schema with STORE_OPEN_CREATE, as an SQLite
 * file is made. */
enum { STORE_OPEN_CREATE = 1, STORE_OPEN_MIGRATE = 2 };
struct store *store_open_flags(const char *path, unsigned flags,
                               struct diag *d);

/* store_open_flags(path, STORE_OPEN_CREATE, d). A handle carries its
 * backend; store_close accepts NULL. */
struct store *store_open(const char *path, struct diag *d);
void store_close(struct store *st);

/*
 * The operations. Each store_X below forwards to the handle's backend
 * (struct store_backend's X) and is all a caller uses: the contract is
 * here, and every backend keeps it (tests/test_store_conformance.c holds
 * each backend to it).
 */

/* ---- releases --------------------------------------------------------- */

/* Queue a release: the release, its snapshot and one delivery per
 * recipient in ONE transaction; all or nothing. next(arg, &r) gives one
 * recipient (1; its strings valid until the next call), says there are
 * no more (0) or fails (-1: nothing is queued, and next has put its
 * reason where its caller finds it). Recipients whose address is
 * suppressed are stored as STORE_SUPPRESSED (counted in out->suppressed).
 * A name already in the store: see struct store_release_added; 1 when
 * nothing was queued for it (out says why: earlier without only_new, or
 * every address skipped). */
int store_release_add_each(struct store *st, const struct store_release_new *rn,
                           int (*next)(void *arg, struct store_recipient *r),
                           void *arg, struct store_release_added *out,
                           struct diag *d);

/* Call fn for every snapshot file of the release, in the order they
 * were added. */
int store_release_files(struct store *st, int64_t release_id,
                        int (*fn)(void *arg, const struct store_file *f),
                        void *arg, struct diag *d);

/* The release (info, with counts) and its snapshot paths (release_dir,
 * coalition) into caller buffers; a buffer may be NULL (size 0) when
 * not wanted, and one too small is an error. */
int store_release_get(struct store *st, int64_t release_id,
                      struct store_release_info *info, char *release_dir,
                      size_t rdsize, char *coalition, size_t csize,
                      struct diag *d);

/* Releases, newest first (release_id 0: all, else that one, which
 * must exist). */
int store_releases_each(struct store *st, int64_t release_id,
                        int (*fn)(void *arg,
                                  const struct store_release_info *r),
                        void *arg, struct diag *d);

/* Find a release by id ("12") or name ("report-launch", newest);
 * -1 with the reason when there is none. */
int store_release_find(struct store *st, const char *id_or_name,
                       int64_t *release_id, struct diag *d);

/* Pause or resume a release (CANCELLED does what store_cancel does).
 * A cancelled release stays cancelled: queue it again instead. A done
 * release stays done (-1, saying so): nothing of it is left. A
 * resumed release with nothing left is done. */
int store_release_set_state(struct store *st, int64_t release_id,
                            enum store_release_state s, struct diag *d);

/* Cancel (queued/deferred/sending -> cancelled) or retry (failed or
 * deferred -> queued, due now) a release's deliveries; *n: how many.
 * cancel also marks the release cancelled, in the same transaction.
 * retry restarts the lifetime (retried_at = now; queued_at stays
 * when it was queued), skips suppressed addresses, refuses a
 * cancelled release and makes a done one active again. */
int store_cancel(struct store *st, int64_t release_id, size_t *n,
                 struct diag *d);
int store_retry(struct store *st, int64_t release_id, bool failed,
                bool deferred, size_t *n, struct diag *d);

/* Bring a cancelled release back: active again, its cancelled
 * deliveries due at once (queued, or deferred when tried before;
 * suppressed when the address was suppressed meanwhile), in one
 * transaction. *n: deliveries due again, *suppressed: those that
 * were suppressed instead. -1 with the reason when the release is
 * not cancelled. */
int store_release_uncancel(struct store *st, int64_t release_id, size_t *n,
                           size_t *suppressed, struct diag *d);

/* The release's figures beyond its counts. They read every attempt
 * of the release: for admins, not for the daemon's loop. */
int store_release_figures(struct store *st, int64_t release_id,
                          struct store_release_figures *out, struct diag *d);

/* ---- claiming and recording ------------------------------------------- */

/* Claim up to max due deliveries: state queued or deferred with
 * next_at <= now, or sending with its lease run out; release active
 * and not_before <= now. Marks them sending with lease until
 * now + lease, in one transaction. Returns how many (into out[], with
 * strings kept in st until the next claim), oldest next_at first.
 * The lease runs out after now + lease: a claim at that second still
 * does not take it again. The claims are this handle's daemon's
 * (store_daemon_add), not handed over; a lease that ran out on a
 * delivery handed over marks it STORE_DUP_LEASE. */
int store_claim(struct store *st, time_t now, unsigned lease, size_t max,
                struct store_delivery *out, struct diag *d);

/* Record attempts and the states they lead to, n at once, in ONE
 * transaction (grouped commits for throughput). result is SENT,
 * DEFERRED, FAILED or EXPIRED. Every attempt is kept as a row. The
 * result sets the state of a delivery that is still sending; one
 * that changed meanwhile (cancelled, expired, given back, taken and
 * recorded by another claim after a lease ran out) keeps its state,
 * except that SENT wins over every state but bounced and complained:
 * the message did go out, and the store must say so. A deferral for
 * an address suppressed meanwhile ends suppressed. A FAILED attempt
 * with bad_address puts the address on the suppression list (with
 * this delivery as the cause) and suppresses its waiting deliveries,
 * in the same transaction. A release with nothing left is done. An
 * unknown delivery id fails the whole batch. */
int store_record(struct store *st, const struct store_attempt *a, size_t n,
                 struct diag *d);

/* Give claimed deliveries back (due at next_at, no attempt counted):
 * shutdown, or a relay fault. They become queued again (deferred if
 * tried before); ids no longer sending are left alone. */
int store_unclaim(struct store *st, const int64_t *ids, size_t n,
                  time_t next_at, struct diag *d);

/* Earliest next_at among due-able deliveries (for the daemon's
 * timer; counting embargoes and leases running out); 0 when nothing
 * is waiting. */
int store_next_due(struct store *st, time_t *when, struct diag *d);

/* Expire queued/deferred deliveries whose lifetime (queued_at +
 * lifetime) or release stale_after has passed; returns how many.
 * lifetime 0: only stale_after. */
int store_expire(struct store *st, time_t now, unsigned lifetime,
                 struct diag *d);

/*
 * ---- heraldd's claims: owners and hand-overs ---------------------------
 * A heraldd adds itself as an owner (store_daemon_add); the claims made
 * through that handle carry its id, and it marks what it hands to a relay
 * connection (store_handover) before it does. What a heraldd that is gone
 * (control.c decides) claimed and never handed over is due again at once
 * (store_daemon_end); what it handed over may be at the relay and waits
 * for its lease.
 */

/* Add a daemons row (heartbeat now) and make this handle's claims
 * its; *id: the row's id. */
int store_daemon_add(struct store *st, const char *host, long pid, time_t now,
                     const char *control, int64_t *id, struct diag *d);

/* In one transaction: the heartbeat of this handle's daemon, and the
 * lease of ids (its claims still sending) until lease_until.
 * *revived: another heraldd had taken this one for gone (its claims
 * not handed over were given back); the row is running again. */
int store_daemon_beat(struct store *st, time_t now, const int64_t *ids,
                      size_t n, time_t lease_until, bool *revived,
                      struct diag *d);

/* The daemons rows, oldest first, ended ones too. */
int store_daemons_each(struct store *st,
                       int (*fn)(void *arg, const struct store_daemon *dm),
                       void *arg, struct diag *d);

/* A heraldd has ended (found gone, or this handle's own at its exit),
 * in one transaction: its claims not handed over are due at now
 * (queued, or deferred if tried before; *freed counts them), the
 * handed ones keep their lease (*held), its row is marked ended.
 * Rows ended a day ago that hold nothing are deleted. */
int store_daemon_end(struct store *st, int64_t id, time_t now, size_t *freed,
                     size_t *held, struct diag *d);

/* Mark ids handed over to a relay at now, in one transaction. Only
 * a delivery still sending, claimed by this handle's daemon and not
 * marked yet is marked; ok[i] says whether ids[i] was. One that was
 * not must not be sent: a pause, a cancel or another heraldd took
 * it. */
int store_handover(struct store *st, const int64_t *ids, size_t n, time_t now,
                   bool *ok, struct diag *d);

/* Give back claims of release_id that never reached a relay (its
 * pause or cancel), due at once, in one transaction: cancel false:
 * queued (deferred if tried before), true: cancelled. ids NULL: every
 * delivery of the release claimed by any heraldd and not handed
 * over; else those n ids of the release (their owner's word that
 * they did not reach a relay). Only deliveries still sending change;
 * *dropped counts them. */
int store_drop(struct store *st, int64_t release_id, const int64_t *ids,
               size_t n, bool cancel, size_t *dropped, struct diag *d);

/* Give back ids that were on relay connections when this handle's
 * daemon stopped (the grace ran out): due at next_at, marked
 * STORE_DUP_STOP (now), in one transaction; ids no longer sending
 * are left alone. */
int store_abandon(struct store *st, const int64_t *ids, size_t n,
                  time_t next_at, struct diag *d);

/* The deliveries held by claims, grouped by owner and hand-over:
 * of release_id, or the one delivery_id when it is not 0. */
int store_holds_each(struct store *st, int64_t release_id, int64_t delivery_id,
                     int (*fn)(void *arg, const struct store_hold *h),
                     void *arg, struct diag *d);

/* Whether delivery id may have been sent twice: *why (STORE_DUP_NONE:
 * no) and *at, when that became so. */
int store_duplicate_get(struct store *st, int64_t id, enum store_duplicate *why,
                        time_t *at, struct diag *d);

/* ---- what admins read ------------------------------------------------- */

/* The delivery log: rows matching f (NULL: all), oldest first; at the
 * same second an attempt comes before an event, an event before the
 * suppression it caused. Events matched to a delivery by a "mismatch"
 * are not its history and are left out. */
int store_attempts_each(struct store *st, const struct store_log_filter *f,
                        int (*fn)(void *arg, const struct store_log_row *r),
                        void *arg, struct diag *d);

/* One delivery by id: fn is called once, with the release's name,
 * or not at all when there is no such delivery (still 0). By
 * release and address: store_delivery_find, then this. */
int store_delivery_get(struct store *st, int64_t id,
                       int (*fn)(void *arg, const struct store_delivery *dl,
                                 const char *release),
                       void *arg, struct diag *d);

/* The delivery of release_id (0: the newest of any release) to
 * email; -1 with the reason when there is none. */
int store_delivery_find(struct store *st, int64_t release_id, const char *email,
                        int64_t *id, struct diag *d);

/* The delivery whose Message-ID's key (what comes before '@': the 32
 * lowercase hex characters verp_check gives for a checked token) is key,
 * compared byte by byte, into *id; *id 0 when there is none, or key is
 * empty, longer than 64 bytes or holds '@' (0 either way: an unknown
 * token is no failure). For herald-web, which must find a token's
 * delivery without acting on it. */
int store_delivery_by_key(struct store *st, const char *key, int64_t *id,
                          struct diag *d);

/* ---- the bounce mailbox ----------------------------------------------- */

/* Record one mailbox event in one transaction: match it to a
 * delivery (the VERP key first, then the returned Message-ID, then
 * the address among the deliveries of the last 30 days), keep it
 * with the raw message, and act: a hard bounce marks the delivery
 * bounced and suppresses the address; soft bounces suppress after
 * soft_limit within soft_window; a complaint marks it complained and
 * suppresses; an unsubscribe request suppresses; a bounce that is the
 * sender's fault (hard -1), an auto-reply or an unknown message
 * changes nothing. Sets *delivery_id (0: the event is about no
 * delivery: unmatched, a mismatch, or held for review) and *suppressed.
 * The event keeps ev's rule and evidence; the suppression it causes
 * gets them too (rule: the event's kind when ev has none; evidence
 * "event ID, " and ev's), or, when the soft limit is reached, rule
 * "soft-limit" and the count, the window and the events' ids.
 * An event whose source was recorded before changes nothing and
 * returns 1 (*delivery_id 0): a message read again after a crash or
 * a lost connection is not acted on twice. */
int store_event_record(struct store *st, const struct store_event *ev,
                       int64_t *delivery_id, bool *suppressed, struct diag *d);

/* The bounce mailbox's events, oldest first. */
int store_events_each(struct store *st, const struct store_event_filter *f,
                      int (*fn)(void *arg, const struct store_event_row *r),
                      void *arg, struct diag *d);

/* The message kept with event id, into *raw (malloc'd, caller
 * frees) and *len; -1 with the reason when there is no such event. */
int store_event_raw(struct store *st, int64_t id, char **raw, size_t *len,
                    struct diag *d);

/* An admin confirms event id, a reply asking to be removed that
 * waits for one (policy.h): in one transaction the event acts and
 * its address goes on the suppression list (rule "confirmed",
 * evidence "event ID"). *email is the address
 * (malloc'd, caller frees). -1 with the reason when there is no such
 * event or it is not such a reply (or was confirmed before). */
int store_event_confirm(struct store *st, int64_t id, char **email,
                        struct diag *d);

/* Where the reader of an IMAP mailbox is (mailbox_imap.c): the
 * folder's UIDVALIDITY and the highest UID handled, by mailbox URL;
 * both 0 for a mailbox never read. set writes both in one
 * transaction. Only the IMAP reader keeps a place (a Maildir's
 * messages move when read). */
int store_imap_place_get(struct store *st, const char *url,
                         uint32_t *uidvalidity, uint32_t *last_uid,
                         struct diag *d);
int store_imap_place_set(struct store *st, const char *url,
                         uint32_t uidvalidity, uint32_t last_uid,
                         struct diag *d);

/* ---- the suppression list --------------------------------------------- */

/* The suppression list, by address. */
int store_suppressions_each(struct store *st,
                            int (*fn)(void *arg,
                                      const struct store_suppression *s),
                            void *arg, struct diag *d);

/* Add n entries in one transaction (all or none), each with its reason,
 * rule and evidence, and at (0: now). Adding an address keeps its first
 * reason, time, rule and evidence if it is already listed, and
 * suppresses its queued and deferred deliveries at once. *added counts
 * the addresses that were not listed yet. */
int store_suppress_import(struct store *st, const struct store_suppression *v,
                          size_t n, size_t *added, struct diag *d);

/* Take email off the suppression list (*removed: it was on it).
 * Deliveries already suppressed stay so: only later queues mail it. */
int store_suppress_remove(struct store *st, const char *email, bool *removed,
                          struct diag *d);

/* ---- rate limits several heraldd share ------------------------------------ */

/* Token buckets kept in the store, so that a limit holds for every heraldd
 * of the store together (a relay's and a receiving domain's limits are
 * global, however many machines send). Up to two buckets, taken from
 * together or not at all: key NULL skips one. A bucket holds up to burst
 * tokens, gains per_second a second on the store's clock, and starts
 * full. */
struct store_rate {
	const char *key[2]; /* "relay <url>", "domain <name>" */
	double per_second[2];
	double burst[2];
};

/* Take a token from each bucket of r, or from none: 0 with *taken, and
 * when not taken *wait, the seconds until both would hold one. 1 when
 * this store keeps no shared buckets (SQLite: heraldd keeps its own,
 * sched.h), -1 on failure. */
int store_rate_take(struct store *st, const struct store_rate *r,
                    bool *taken, double *wait, struct diag *d);

/* ---- moving a whole store ------------------------------------------------ */

/* A value of a row as it moves between stores. */
struct store_value {
	enum { STORE_VALUE_NULL, STORE_VALUE_INT, STORE_VALUE_TEXT,
	       STORE_VALUE_BYTES } kind;
	int64_t i;     /* INT */
	const char *p; /* TEXT (NUL-terminated) and BYTES */
	size_t len;    /* TEXT and BYTES */
};

/* The tables of a store and their columns, in the order a copy writes
 * them (every table after those it refers to). Both backends keep these
 * tables with these columns; times are seconds since the epoch. */
struct store_table {
	const char *name;
	const char *const *columns; /* NULL-terminated */
	const char *kinds; /* per column: 'i' integer, 't' text, 'b' bytes */
	size_t ncolumns;
};
extern const struct store_table store_tables[];
extern const size_t store_ntables;

/* One row of table t (store_tables[t]), values in its column order. */
struct store_row {
	size_t table;
	const struct store_value *v;
};

/* What store_copy moved: rows per table (store_tables' order), as
 * counted in the source and then in the target before it committed. */
struct store_copied {
	size_t rows[16];
};

/* Copy every row of from into to, which must be an empty store (made by
 * opening it with STORE_OPEN_CREATE): all or nothing, in one transaction
 * of to, read from one consistent view of from. Ids stay as they are (a
 * release keeps its number, a delivery its log). Before to commits, its
 * rows are counted per table and compared with what was read; any
 * difference rolls everything back. Nothing of from changes. */
int store_copy(struct store *from, struct store *to, struct store_copied *out,
               struct diag *d);

/* ---- backends --------------------------------------------------------- */

/* What a backend provides: each member is the operation of the store_
 * function of its name (store_claim for claim, ...), whose contract is
 * above. */
struct store_backend {
	const char *name;
	/* store_open_flags; close: store_close */
	struct store *(*open)(const char *path, unsigned flags, struct diag *d);
	void (*close)(struct store *st);
	/* store_release_add_each */
	int (*release_add_each)(
	    struct store *st, const struct store_release_new *rn,
	    int (*next)(void *arg, struct store_recipient *r), void *arg,
	    struct store_release_added *out, struct diag *d);
	/* store_release_files */
	int (*release_files)(struct store *st, int64_t release_id,
	                     int (*fn)(void *arg, const struct store_file *f),
	                     void *arg, struct diag *d);
	/* store_release_get */
	int (*release_get)(struct store *st, int64_t release_id,
	                   struct store_release_info *info, char *release_dir,
	                   size_t rdsize, char *coalition, size_t csize,
	                   struct diag *d);
	/* store_releases_each */
	int (*releases_each)(struct store *st, int64_t release_id,
	                     int (*fn)(void *arg,
	                               const struct store_release_info *r),
	                     void *arg, struct diag *d);
	/* store_release_find */
	int (*release_find)(struct store *st, const char *id_or_name,
	                    int64_t *release_id, struct diag *d);
	/* store_release_set_state */
	int (*release_set_state)(struct store *st, int64_t release_id,
	                         enum store_release_state s, struct diag *d);
	/* store_cancel */
	int (*cancel)(struct store *st, int64_t release_id, size_t *n,
	              struct diag *d);
	/* store_retry */
	int (*retry)(struct store *st, int64_t release_id, bool failed,
	             bool deferred, size_t *n, struct diag *d);
	/* store_release_uncancel */
	int (*release_uncancel)(struct store *st, int64_t release_id, size_t *n,
	                        size_t *suppressed, struct diag *d);
	/* store_release_figures */
	int (*release_figures)(struct store *st, int64_t release_id,
	                       struct store_release_figures *out,
	                       struct diag *d);
	/* store_claim */
	int (*claim)(struct store *st, time_t now, unsigned lease, size_t max,
	             struct store_delivery *out, struct diag *d);
	/* store_record */
	int (*record)(struct store *st, const struct store_attempt *a, size_t n,
	              struct diag *d);
	/* store_unclaim */
	int (*unclaim)(struct store *st, const int64_t *ids, size_t n,
	               time_t next_at, struct diag *d);
	/* store_next_due */
	int (*next_due)(struct store *st, time_t *when, struct diag *d);
	/* store_expire */
	int (*expire)(struct store *st, time_t now, unsigned lifetime,
	              struct diag *d);
	/* store_daemon_add */
	int (*daemon_add)(struct store *st, const char *host, long pid,
	                  time_t now, const char *control, int64_t *id,
	                  struct diag *d);
	/* store_daemon_beat */
	int (*daemon_beat)(struct store *st, time_t now, const int64_t *ids,
	                   size_t n, time_t lease_until, bool *revived,
	                   struct diag *d);
	/* store_daemons_each */
	int (*daemons_each)(struct store *st,
	                    int (*fn)(void *arg, const struct store_daemon *dm),
	                    void *arg, struct diag *d);
	/* store_daemon_end */
	int (*daemon_end)(struct store *st, int64_t id, time_t now,
	                  size_t *freed, size_t *held, struct diag *d);
	/* store_handover */
	int (*handover)(struct store *st, const int64_t *ids, size_t n,
	                time_t now, bool *ok, struct diag *d);
	/* store_drop */
	int (*drop)(struct store *st, int64_t release_id, const int64_t *ids,
	            size_t n, bool cancel, size_t *dropped, struct diag *d);
	/* store_abandon */
	int (*abandon)(struct store *st, const int64_t *ids, size_t n,
	               time_t next_at, struct diag *d);
	/* store_holds_each */
	int (*holds_each)(struct store *st, int64_t release_id,
	                  int64_t delivery_id,
	                  int (*fn)(void *arg, const struct store_hold *h),
	                  void *arg, struct diag *d);
	/* store_duplicate_get */
	int (*duplicate_get)(struct store *st, int64_t id,
	                     enum store_duplicate *why, time_t *at,
	                     struct diag *d);
	/* store_attempts_each */
	int (*attempts_each)(struct store *st, const struct store_log_filter *f,
	                     int (*fn)(void *arg,
	                               const struct store_log_row *r),
	                     void *arg, struct diag *d);
	/* store_delivery_get */
	int (*delivery_get)(struct store *st, int64_t id,
	                    int (*fn)(void *arg,
	                              const struct store_delivery *dl,
	                              const char *release),
	                    void *arg, struct diag *d);
	/* store_delivery_find */
	int (*delivery_find)(struct store *st, int64_t release_id,
	                     const char *email, int64_t *id, struct diag *d);
	/* store_delivery_by_key */
	int (*delivery_by_key)(struct store *st, const char *key, int64_t *id,
	                       struct diag *d);
	/* store_event_record */
	int (*event_record)(struct store *st, const struct store_event *ev,
	                    int64_t *delivery_id, bool *suppressed,
	                    struct diag *d);
	/* store_events_each */
	int (*events_each)(struct store *st, const struct store_event_filter *f,
	                   int (*fn)(void *arg,
	                             const struct store_event_row *r),
	                   void *arg, struct diag *d);
	/* store_event_raw */
	int (*event_raw)(struct store *st, int64_t id, char **raw, size_t *len,
	                 struct diag *d);
	/* store_event_confirm */
	int (*event_confirm)(struct store *st, int64_t id, char **email,
	                     struct diag *d);
	/* store_imap_place_get */
	int (*imap_place_get)(struct store *st, const char *url,
	                      uint32_t *uidvalidity, uint32_t *last_uid,
	                      struct diag *d);
	/* store_imap_place_set */
	int (*imap_place_set)(struct store *st, const char *url,
	                      uint32_t uidvalidity, uint32_t last_uid,
	                      struct diag *d);
	/* store_suppressions_each */
	int (*suppressions_each)(struct store *st,
	                         int (*fn)(void *arg,
	                                   const struct store_suppression *s),
	                         void *arg, struct diag *d);
	/* store_suppress_import */
	int (*suppress_import)(struct store *st,
	                       const struct store_suppression *v, size_t n,
	                       size_t *added, struct diag *d);
	/* store_suppress_remove */
	int (*suppress_remove)(struct store *st, const char *email,
	                       bool *removed, struct diag *d);
	/* store_rate_take; NULL: the store keeps no shared buckets */
	int (*rate_take)(struct store *st, const struct store_rate *r,
	                 bool *taken, double *wait, struct diag *d);
	/* store_copy, the source's part: every row of every table
	 * (store_tables' order) to fn, from one consistent view */
	int (*rows_each)(struct store *st,
	                 int (*fn)(void *arg, const struct store_row *r),
	                 void *arg, struct diag *d);
	/* store_copy, the target's part: begin (the store must be empty:
	 * -1 saying so otherwise), one row at a time, then end: commit
	 * (true) when the rows counted per table in the open transaction
	 * equal want, else (or commit false) roll back; got: what was
	 * counted */
	int (*load_begin)(struct store *st, struct diag *d);
	int (*load_row)(struct store *st, const struct store_row *r,
	                struct diag *d);
	int (*load_end)(struct store *st, bool commit,
	                const struct store_copied *want,
	                struct store_copied *got, struct diag *d);
};

/* The backend for a store path ("file.db" -> sqlite); NULL for a kind of
 * store this herald was built without ("postgresql://..."). */
const struct store_backend *store_backend_for(const char *path);

/* Every backend starts its struct store with this. */
struct store {
	const struct store_backend *ops;
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

/* The control socket of the heraldd of a store given on the command line
 * (malloc'd, NULL out of memory): beside a store file, "FILE.sock"; for
 * a PostgreSQL store, STORE_PG_CONTROL in the working directory (each
 * machine has its own heraldd; herald.yaml's control: names another). */
#define STORE_PG_CONTROL "heraldd.sock"
char *store_control_for(const char *store);

/* Is path a PostgreSQL store's address: a postgresql:// or postgres://
 * URL, or libpq's key=value words starting with one of host=, hostaddr=,
 * dbname=, user=, port=, service=, sslmode=, passfile=? */
bool store_pg_is_address(const char *path);

#endif
