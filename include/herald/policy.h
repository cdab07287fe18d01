/*
 * policy — what an event from the bounce mailbox may do: change its
 * delivery's state, put the address on the suppression list now, count as
 * one more soft bounce, or nothing but be kept for review, and why.
 *
 * Anyone can send mail to the bounce mailbox, so the rule is about
 * evidence: only an event that carries a valid signed token of herald's
 * (the VERP return path, the unsubscribe+TOKEN address, or a token in the
 * returned original's headers) naming the very address it reports may
 * act. A delivery found by the returned Message-ID alone or by the
 * address is recorded for review with the reason it was not acted on; a
 * journalist's reply asking to be removed carries no token and waits for
 * an admin (`herald suppress confirm EVENT`).
 *
 * What a verdict does is data the store executes: a move of the
 * delivery's state (dstate.h), a suppression, one more soft bounce to
 * count within a window; and how far back an address may find its
 * delivery. Pure functions: no I/O, no clock; the store asks, then stores.
 */
#ifndef HERALD_POLICY_H
#define HERALD_POLICY_H

#include <stdbool.h>

#include "herald/dstate.h"
#include "herald/store.h"

/* How the event was tied to a delivery. */
enum policy_match {
	POLICY_NONE,       /* to no delivery */
	POLICY_TOKEN,      /* by a valid signed token */
	POLICY_KEYED_ID,   /* by the returned original's keyed Message-ID
	                    * (a token for a bounce or a complaint; a reply's
	                    * In-Reply-To is not: replies wait for an admin) */
	POLICY_MESSAGE_ID, /* by the returned original's Message-ID alone */
	POLICY_ADDRESS,    /* by the address alone */
};

struct policy_event {
	enum store_event_kind kind;
	int hard; /* 1 hard, 0 soft, -1 neither */
	enum policy_match match;
	bool same_address; /* the delivery is to the address the event names
	                    * (or the event names none); when it is not, a
	                    * token is a mismatch and anything else ties the
	                    * event to no delivery */
	/* (an unsubscribe request by token is mail to the delivery's
	 * unsubscribe+TOKEN address; the inbox never ties one otherwise) */
};

struct policy_verdict {
	/* The move of the delivery's state (DSTATE_BOUNCE,
	 * DSTATE_COMPLAINT), or -1: none. */
	int move;
	bool suppress;   /* put the address on the list now */
	bool count_soft; /* one more soft bounce: suppress when the soft
	                  * bounces matched by token within the window reach
	                  * the limit (policy_soft_suppress) */
	bool mismatch;   /* a token of one delivery naming another address */
	/* Why it was not acted on, for `herald bounces --unmatched`, or NULL
	 * when it was acted on or there is nothing to act on. Static. */
	const char *held;
};

/* The verdict for ev into *v. Never fails. */
void policy_event(const struct policy_event *ev, struct policy_verdict *v);

/* Do count soft bounces (this one included) suppress, with limit (0: the
 * default, STORE_DEFAULT_SOFT_LIMIT)? */
bool policy_soft_suppress(long long count, unsigned limit);

/* The window soft bounces are counted in, in seconds, for the configured
 * window (0: the default, STORE_DEFAULT_SOFT_WINDOW). */
unsigned policy_soft_window(unsigned window);

/* The oldest queued_at a delivery found by its address alone may have,
 * at now: an address is tied to its deliveries of the last 30 days. */
long long policy_address_since(long long now);

/* What the store does for an event, from the verdict and, when the
 * verdict counts a soft bounce, the soft bounces the store counted within
 * policy_soft_window (this one included) and the limit. */
struct policy_action {
	int move;        /* a dstate move of the delivery, -1: none */
	bool suppress;   /* put the address on the suppression list */
	bool soft_limit; /* because of the soft limit: the suppression's
	                  * rule is "soft-limit", its evidence the count */
};
void policy_act(const struct policy_verdict *v, long long soft_count,
                unsigned soft_limit, struct policy_action *a);

/* The held reason of an unsubscribe reply waiting for an admin: the only
 * kind `herald suppress confirm` acts on. */
extern const char policy_held_reply[];

#endif
