/*
 * inbox — one pass over the bounce mailbox: each message becomes events
 * (bounce.c), matched and acted on by the store (event_record), with the
 * signed return path checked first (verp.c): a herald return path with a
 * wrong signature is set aside as unknown and changes nothing. Used by
 * `herald bounces fetch` and by heraldd's loop.
 *
 * Library code: returns the number of messages handled, or -1.
 */
#ifndef HERALD_INBOX_H
#define HERALD_INBOX_H

#include "herald/config.h"
#include "herald/diag.h"
#include "herald/mailbox.h"
#include "herald/store.h"
#include "herald/verp.h"

struct inbox_opts {
	const struct verp *verp; /* NULL: no return-path matching */
	unsigned soft_limit;     /* soft bounces that suppress (0: 3) */
	unsigned soft_window;    /* seconds (0: 30 days) */
	/* called after each recorded event (for output); may be NULL */
	void (*report)(void *arg, const char *msg_id,
	               const struct store_event *ev, int64_t delivery_id,
	               bool suppressed);
	void *arg;
};

struct inbox_counts {
	size_t events, matched, suppressed, unknown;
	size_t again; /* events of messages read before: nothing done */
};

int inbox_pass(struct store *st, struct mailbox *mb, const struct inbox_opts *o,
               struct inbox_counts *c, struct diag *d);

/* The mailbox at url (herald.yaml's bounces.mailbox, or another) with
 * the settings of bounces.imap; st keeps an IMAP mailbox's place. With
 * HERALD_IMAP_TRACE set, the IMAP exchange goes to stderr (LOGIN
 * redacted). NULL with the reason in d. */
struct mailbox *inbox_open(const struct config *cfg, const char *url,
                           struct store *st, struct diag *d);

#endif
