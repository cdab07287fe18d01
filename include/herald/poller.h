/*
 * poller — heraldd's reading of the bounce mailbox (bounces.mailbox): one
 * pass (inbox.c) every bounces.poll seconds, or, where an IMAP server
 * offers IDLE, as soon as the server says mail came. The mailbox stays
 * open between passes (an IMAP connection); a failure drops it, is
 * logged, and the next try waits bounces.poll, doubling with every
 * failure up to POLLER_MAX_BACKOFF.
 *
 * The loop calls poller_run every turn, waits on poller's fd (when not
 * -1) with its other sockets, and calls poller_wake when it spoke.
 *
 * Daemon code: failures are logged (log.h), never returned.
 */
#ifndef HERALD_POLLER_H
#define HERALD_POLLER_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "herald/config.h"
#include "herald/mailbox.h"
#include "herald/store.h"
#include "herald/verp.h"

enum {
	/* the longest wait before trying a failing mailbox again */
	POLLER_MAX_BACKOFF = 3600,
};

/* The loop reads fd; only poller_* write the rest. */
struct poller {
	FILE *log;
	struct mailbox *mb;       /* open between passes, or NULL */
	const struct config *cfg; /* the config it was opened with */
	int fd;                   /* the IDLE socket, -1: none */
	bool woken;               /* the IDLE socket spoke: read now */
	time_t last, idle_since, retry_at;
	unsigned failures; /* in a row */
};

/* A poller with no mailbox open, logging to log. */
void poller_init(struct poller *p, FILE *log);

/* Read the mailbox of c if its time has come (a pass every bounces.poll
 * seconds, at once when woken, before the IDLE's renewal is due): record
 * its events in st, matched with verp (NULL: none). idle: wait in IDLE
 * where the server offers it (not with --drain). A config other than the
 * last one's closes the mailbox first: its settings may have changed. */
void poller_run(struct poller *p, const struct config *c, struct store *st,
                const struct verp *verp, bool idle, time_t now);

/* The IDLE socket spoke: read the mailbox at the next poller_run. */
void poller_wake(struct poller *p);

/* Close the mailbox (and its connection). */
void poller_close(struct poller *p);

#endif
