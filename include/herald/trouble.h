/*
 * trouble — the one place that decides what a relay's answer means for a
 * delivery: sent, deferred until when, failed, or the relay's own fault
 * (the relay is paused, the recipient is not charged an attempt). The
 * defaults follow Postfix (qmgr, smtp_trouble.c); every number is in the
 * table at the top of trouble.c with the reason for it.
 *
 * Pure functions: no I/O, no clock (now is an argument), jitter from a
 * caller-supplied random value, so every decision can be tested.
 */
#ifndef HERALD_TROUBLE_H
#define HERALD_TROUBLE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "herald/transport.h"

enum trouble_verdict {
	TROUBLE_SENT,   /* the relay took it */
	TROUBLE_DEFER,  /* try this recipient again at next_at */
	TROUBLE_FAIL,   /* permanent for this recipient */
	TROUBLE_RELAY,  /* the relay's fault: pause it, do not charge */
	TROUBLE_EXPIRE, /* temporary, but the lifetime or stale-after is over */
};

struct trouble_policy {
	unsigned min_backoff;       /* seconds (default 300) */
	unsigned max_backoff;       /* seconds (default 4200) */
	unsigned lifetime;          /* seconds (default 5 days) */
	unsigned relay_min_backoff; /* seconds (default 10) */
	unsigned relay_max_backoff; /* seconds (default 600) */
};

/* The defaults (trouble.c says why each). */
extern const struct trouble_policy trouble_default_policy;

struct trouble_decision {
	enum trouble_verdict verdict;
	time_t next_at;     /* DEFER: when; RELAY: when the relay may be
	                     * tried again */
	const char *reason; /* short, for logs: "recipient 4xx", ... */
	/* FAIL: the refusal says the address itself is permanently bad (no
	 * such mailbox or domain, moved, accepts no mail), in the words of
	 * bounce_reason ("userunknown", ...), by the rules of verdict.h; NULL
	 * otherwise. The address is
	 * then suppressed as after a hard bounce. */
	const char *bad_address;
	/* FAIL at RCPT or after the dot: the verdict's rule on the refusal
	 * (verdict.h: "status+text", "after-data", ...), static; NULL for
	 * other decisions. */
	const char *rule;
};

/*
 * Decide for one finished attempt. queued_at is when the delivery was
 * queued (its age drives the backoff), stale_after the release's (0:
 * none), relay_failures how many times in a row the relay has failed
 * (for its backoff), rnd a random 32-bit value for jitter.
 */
struct trouble_decision trouble_decide(const struct trouble_policy *p,
                                       const struct transport_reply *r,
                                       time_t now, time_t queued_at,
                                       time_t stale_after,
                                       unsigned relay_failures, uint32_t rnd);

/* "try again in N minutes/seconds" in a reply text: seconds, or 0. */
unsigned trouble_retry_hint(const char *text);

#endif
