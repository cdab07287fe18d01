/*
 * mailbox — where bounces, complaints and unsubscribe requests arrive.
 * One interface, one file per backend: mailbox_maildir.c (a Maildir the
 * local MTA delivers into) and mailbox_imap.c (IMAP over TLS, with the
 * server's certificate checked).
 *
 * A pass hands every new message to a callback; what the callback has
 * handled is marked so (moved from new/ to cur/ with the Seen flag in a
 * Maildir; moved to another folder, or flagged \Seen, over IMAP), and
 * nothing is deleted unless the operator asks for it: the raw message
 * stays for admins to review.
 *
 * Library code: 0 / -1 (or NULL) with the reason in a struct diag.
 */
#ifndef HERALD_MAILBOX_H
#define HERALD_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"

struct mailbox_msg {
	const char *id;   /* stable within the mailbox (file name, UID) */
	const char *data; /* the message as stored */
	size_t len;
	/* the same message on every pass, from any process, or NULL: an
	 * IMAP message is "URL;UIDVALIDITY=v/;UID=u" (RFC 5092). Events
	 * recorded with it are recorded once (store.h event_record). */
	const char *key;
};

struct store;

/* Seconds an IMAP server gets for each network step (connect, a reply)
 * when the caller says 0 (mailbox_imap.c says why). */
enum { MAILBOX_DEFAULT_TIMEOUT = 30 };

/* What a backend may need besides the URL (the Maildir needs nothing). */
struct mailbox_opts {
	struct store *st;     /* IMAP: where UIDVALIDITY and the last UID
	                       * handled are kept (required) */
	const char *password; /* IMAP LOGIN; never logged */
	const char *ca_file;  /* PEM file of trusted CAs; NULL: the
	                       * system's trust store */
	const char *move_to;  /* handled mail goes to this folder (created
	                       * when missing); NULL: flagged \Seen, kept */
	bool delete_handled;  /* without move_to: expunge handled mail */
	bool allow_plain;     /* imap:// to a literal loopback address may
	                       * go without TLS when the server offers none */
	bool idle;            /* wait with IMAP IDLE where offered */
	unsigned timeout;     /* seconds for each network step (0:
	                       * MAILBOX_DEFAULT_TIMEOUT) */
	/* protocol trace (HERALD_IMAP_TRACE), LOGIN redacted; may be NULL */
	void (*trace)(void *arg, const char *line);
	void *trace_arg;
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
	/* Checks the URL and keeps the options (o may be NULL for the
	 * Maildir); connects to nothing yet. Strings in o are copied. */
	struct mailbox *(*open)(const char *url, const struct mailbox_opts *o,
	                        struct diag *d);
	/* One pass over the new messages, oldest first; returns how many
	 * were handled, or -1. Messages larger than max_bytes are refused:
	 * the callback sees them with data NULL and len their size. A
	 * backend with a connection opens it when needed and keeps it for
	 * the next pass; after -1 it starts with a new one. */
	int (*fetch)(struct mailbox *mb, size_t max_bytes, mailbox_fn fn,
	             void *arg, struct diag *d);
	/* Wait for new mail where the server can say when some arrives
	 * (IMAP IDLE). 0 with *fd a descriptor to poll for reading: the
	 * next fetch ends the wait; 0 with *fd -1: the backend cannot
	 * wait (poll with fetch instead); 1: new mail came already (fetch
	 * now); -1 on failure (the connection is dropped). NULL when the
	 * backend never can. */
	int (*idle)(struct mailbox *mb, int *fd, struct diag *d);
	void (*close)(struct mailbox *mb);
};

/* The backend for a URL ("maildir:/path", "imaps://user@host/Folder",
 * "imap://user@host/Folder"), or NULL. */
const struct mailbox_backend *mailbox_backend_for(const char *url);

struct mailbox {
	const struct mailbox_backend *ops;
};

/* The backend's open for url; NULL with the reason in d (also for a URL
 * no backend reads). */
struct mailbox *mailbox_open(const char *url, const struct mailbox_opts *o,
                             struct diag *d);

extern const struct mailbox_backend mailbox_maildir_backend;
extern const struct mailbox_backend mailbox_imap_backend;

#endif
