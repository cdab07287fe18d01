/*
 * dstate — the delivery state machine: which events may move a delivery,
 * from which states, to which, and what each move records beside the
 * state. The states are store.h's (enum store_state); the events are
 * everything in herald that changes one: a claim, an attempt's result, a
 * bounce or complaint from the mailbox, the suppression list, an admin's
 * cancel, resume or retry, heraldd giving claims back, and a lease that
 * ran out.
 *
 * The store's backends decide nothing here: they perform guarded writes,
 * "set state to dstate_next's answer where state is in dstate_from(ev)",
 * so a second backend writes the same machine. Pure functions: no I/O, no
 * clock, no allocation; they never fail but by saying a move is illegal.
 */
#ifndef HERALD_DSTATE_H
#define HERALD_DSTATE_H

#include <stdbool.h>

#include "herald/store.h"

/* A set of states: bit (1u << state). */
#define DSTATE_BIT(s) (1u << (unsigned)(s))

enum dstate_event {
	DSTATE_CLAIM,       /* heraldd takes a due delivery to send it */
	DSTATE_TAKEOVER,    /* heraldd takes one whose lease ran out */
	DSTATE_SENT,        /* an attempt's result: sent (also late: below) */
	DSTATE_DEFERRED,    /* ... deferred (suppressed if the address was
	                     * suppressed meanwhile) */
	DSTATE_FAILED,      /* ... failed */
	DSTATE_EXPIRED,     /* ... expired (found too old when tried) */
	DSTATE_EXPIRE,      /* the lifetime or stale_after ended, untried */
	DSTATE_BOUNCE,      /* a hard bounce that policy acts on */
	DSTATE_COMPLAINT,   /* a complaint that policy acts on */
	DSTATE_SUPPRESS,    /* its address went on the suppression list */
	DSTATE_CANCEL,      /* its release was cancelled */
	DSTATE_UNCANCEL,    /* its release was resumed after a cancel */
	DSTATE_RETRY,       /* herald retry */
	DSTATE_UNCLAIM,     /* heraldd gives an unsent claim back */
	DSTATE_ABANDON,     /* heraldd stops with it on a relay connection */
	DSTATE_OWNER_END,   /* its heraldd ended before handing it over */
	DSTATE_DROP,        /* its release was paused while it was claimed */
	DSTATE_DROP_CANCEL, /* its release was cancelled while claimed */
};
#define DSTATE_NEVENTS 18

/* What a move writes beside the state (a backend's columns). */
enum dstate_record {
	DSTATE_SETS_LEASE = 1u << 0,    /* lease_until = now + lease */
	DSTATE_CLEARS_LEASE = 1u << 1,  /* lease_until = NULL */
	DSTATE_SETS_OWNER = 1u << 2,    /* owner = this heraldd */
	DSTATE_CLEARS_HANDED = 1u << 3, /* handed_at = NULL */
	DSTATE_SETS_NEXT = 1u << 4,     /* next_at = when it is due again */
	DSTATE_SETS_RETRIED = 1u << 5,  /* retried_at = now */
	DSTATE_MAY_DUPLICATE = 1u << 6, /* may_duplicate, duplicate_why:
	                                 * "lease" on a take-over of one
	                                 * handed to a relay, "stop" on
	                                 * abandon */
	DSTATE_SETS_REPLY = 1u << 7,    /* last_code, last_status,
	                                 * last_text: the relay's reply */
	DSTATE_COUNTS_TRY = 1u << 8,    /* tries + 1 (attempts + 1 when the
	                                 * attempt counts) */
	DSTATE_SETS_UPDATED = 1u << 9,  /* updated_at = now (every move) */
};

/* What a backend knows of the delivery beside its state. */
struct dstate_facts {
	bool tried;      /* tries > 0: given back it is deferred, not queued */
	bool suppressed; /* its address is on the suppression list */
	bool lease_out;  /* sending, and its lease ran out */
	bool handed;     /* sending, and handed to a relay connection */
};

/* The states ev may move a delivery from (a set of DSTATE_BIT). A
 * backend's guarded write is "where state is in this set". */
unsigned dstate_from(enum dstate_event ev);

/* The states ev may move a delivery to (a set of DSTATE_BIT); more than
 * one when dstate_next chooses by the facts. */
unsigned dstate_to(enum dstate_event ev);

/* What ev records beside the state (enum dstate_record bits). */
unsigned dstate_records(enum dstate_event ev);

/* The state ev moves a delivery in state from to, given f (NULL: none of
 * the facts), into *to. Returns 0, or -1 when the move is illegal (then
 * *to is left alone). */
int dstate_next(enum dstate_event ev, enum store_state from,
                const struct dstate_facts *f, enum store_state *to);

/* "claim", "sent", ...: the event's name, for messages. */
const char *dstate_event_name(enum dstate_event ev);

#endif
