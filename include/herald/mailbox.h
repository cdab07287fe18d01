/*
 * mailbox — where bounces, complaints and unsubscribe requests arrive.
 * One interface, one file per backend: mailbox_maildir.c (a Maildir the
 * local MTA delivers into) and, next, mailbox_imap.c (IMAP over TLS).
 *
 * A pass hands every new message to a callback; what the callback has
 * handled is marked so (moved from new/ to cur/ with the Seen flag in a
 * Maildir), and nothing is ever deleted: the raw message stays for admins
 * to review.
 *
 * Library code: 0 / -1 (or NULL) with the reason in a struct diag.
 */
#ifndef HERALD_MAILBOX_H
#define HERALD_MAILBOX_H

#include <stddef.h>

#include "herald/diag.h"

struct mailbox_msg {
	const char *id;   /* stable within the mailbox (file name, UID) */
	const char *data; /* the message as stored */
	size_t len;
};

/* The callback's answer for a message. */
enum mailbox_verdict {
	MAILBOX_HANDLED, /* mark it handled (not new any more) */
	MAILBOX_KEEP,    /* leave it new: try again on the next pass */
	MAILBOX_STOP,    /* leave it new and end the pass */
};

typedef enum mailbox_verdict (*mailbox_fn)(void *arg,
                                           const struct mailbox_msg *m);

struct mailbox;

struct mailbox_backend {
	const char *name;
	struct mailbox *(*open)(const char *url, struct diag *d);
	/* One pass over the new messages, oldest first; returns how many
	 * were handled, or -1. Messages larger than max_bytes are refused:
	 * the callback sees them with data NULL and len their size. */
	int (*fetch)(struct mailbox *mb, size_t max_bytes, mailbox_fn fn,
	             void *arg, struct diag *d);
	void (*close)(struct mailbox *mb);
};

/* The backend for a URL ("maildir:/path"), or NULL. */
const struct mailbox_backend *mailbox_backend_for(const char *url);

struct mailbox {
	const struct mailbox_backend *ops;
};

extern const struct mailbox_backend mailbox_maildir_backend;

#endif
