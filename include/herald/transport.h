/*
 * transport — hands a composed message to a relay and reports what the
 * relay said. One interface (struct transport_backend), one file per
 * backend: transport_smtp_pool.c over transport_smtp.c (libcurl's multi
 * interface: messages over reused connections, one thread each) and
 * transport_maildir.c (the embedded default: one file per message in a
 * Maildir, no server needed).
 *
 * A transport is driven by the daemon's event loop: submit() queues a
 * message (the transport keeps its own reference to the bytes until the
 * message is done), step() waits up to a timeout for network activity or
 * for one of the caller's extra file descriptors, makes progress, and calls
 * the done callback once per finished message with the relay's reply. The
 * transport reports facts (codes, reply text, where it failed); the
 * decision what a failure means belongs to trouble.c.
 *
 * Library code: 0 / -1 (or NULL) with the reason in a struct diag.
 */
#ifndef HERALD_TRANSPORT_H
#define HERALD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/diag.h"

/* Where in the SMTP exchange a message stopped. */
enum transport_stage {
	TRANSPORT_DONE,    /* accepted (250 after the final dot) */
	TRANSPORT_CONNECT, /* connecting, greeting, EHLO, STARTTLS, TLS */
	TRANSPORT_AUTH,    /* AUTH */
	TRANSPORT_MAIL,    /* MAIL FROM */
	TRANSPORT_RCPT,    /* RCPT TO */
	TRANSPORT_DATA,    /* DATA, or the message while it was sent */
	TRANSPORT_DOT,     /* the reply after the final dot */
	TRANSPORT_LOCAL,   /* a local failure (out of memory, disk) */
};

struct transport_reply {
	enum transport_stage stage;
	int code;          /* SMTP reply code (e.g. 250, 451, 550); 0: none */
	char status[16];   /* enhanced status "4.2.1", or "" */
	char *text;        /* the reply's text, lines joined with "\n"
	                    * (malloc'd, owned by the transport until the
	                    * done callback returns); NULL if none */
	char queue_id[64]; /* from "250 ... queued as ID", or "" */
	int error;         /* the backend's own error code (CURLcode,
	                    * errno), 0 when none */
	char error_text[256]; /* what the backend said about it */
	bool timeout;         /* the server did not answer in time */
	bool tls;             /* a TLS or certificate failure */
	bool conn_lost;       /* the connection closed mid-transaction */
	unsigned duration_ms;
};

struct transport_msg {
	int64_t id;         /* the caller's delivery id */
	const char *sender; /* envelope sender (MAIL FROM), may be "" */
	const char *rcpt;   /* envelope recipient (RCPT TO) */
	const char *data;   /* the message, CRLF line ends */
	size_t len;
	void *user; /* the caller's, handed back in done */
};

typedef void (*transport_done_fn)(void *arg, const struct transport_msg *m,
                                  const struct transport_reply *r);

/* What a relay is: from --relay URL and herald.yaml's relay section. */
struct transport_config {
	const char *url;          /* smtp://host:port, smtps://host:port,
	                           * maildir:/path */
	bool allow_plain;         /* allow smtp:// without STARTTLS to a host
	                           * that is not on loopback */
	const char *ca_file;      /* CA bundle for certificate checks, or NULL
	                           * for the system's */
	const char *user;         /* AUTH user, or NULL */
	const char *password;     /* AUTH password (read by the caller from a
	                           * 0600 file or the environment), or NULL */
	const char *helo;         /* EHLO name, or NULL for the default */
	unsigned max_connections; /* 0: default (8) */
	unsigned max_per_connection; /* messages per connection, 0: default
	                              * (100) */
	unsigned connect_timeout;    /* seconds, 0: default (30) */
	unsigned reply_timeout;      /* seconds for a command's reply, 0:
	                              * default (300) */
	unsigned dot_timeout;        /* seconds for the reply after the final
	                              * dot, 0: default (600, RFC 5321) */
};

struct transport;

struct transport_backend {
	const char *name; /* "smtp", "maildir" */
	struct transport *(*open)(const struct transport_config *cfg,
	                          transport_done_fn done, void *arg,
	                          struct diag *d);
	/* Queue m; the transport copies what it needs (m->data included) or
	 * keeps it until done. Returns -1 when it cannot take more now. */
	int (*submit)(struct transport *t, const struct transport_msg *m,
	              struct diag *d);
	/* Messages submitted and not yet done. */
	size_t (*in_flight)(const struct transport *t);
	/* How many more it can take now (connections/slots free). */
	size_t (*room)(const struct transport *t);
	/* Wait up to timeout_ms for progress or for one of the extra fds to
	 * become readable (revents[i] set for those), then call done for
	 * every finished message. Returns 0, or -1 on a fault of the
	 * transport itself. */
	int (*step)(struct transport *t, int timeout_ms, const int *extra_fds,
	            size_t nextra, bool *readable, struct diag *d);
	/* Abandon every message in flight (done is called for each with
	 * stage TRANSPORT_LOCAL and error_text "aborted") and free t. */
	void (*close)(struct transport *t);
	/* "smtp://127.0.0.1:2525" — for logs; no password. */
	const char *(*describe)(const struct transport *t);
};

struct config_relay;

/* The transport settings of herald.yaml's relay section, with url instead
 * of the configured URL when not NULL. Points into r. */
struct transport_config transport_config_of(const struct config_relay *r,
                                            const char *url);

/* The backend for a URL (smtp://, smtps://, maildir:), or NULL. */
const struct transport_backend *transport_backend_for(const char *url);

/* Every backend starts its struct transport with this. */
struct transport {
	const struct transport_backend *ops;
};

/* SMTP: one worker thread per connection (transport_smtp_pool.c), each
 * with its own transport_smtp_multi_backend of one connection. */
extern const struct transport_backend transport_smtp_backend;
/* SMTP over one libcurl multi handle, every connection on the calling
 * thread (transport_smtp.c): a message waiting for its final dot's reply
 * holds up the others (libcurl 7.88), hence the pool above. */
extern const struct transport_backend transport_smtp_multi_backend;
extern const struct transport_backend transport_maildir_backend;

/* What the SMTP transports refuse at submit, whatever the relay: an
 * envelope address that is empty (the recipient), not one line, or holds
 * a space, '<' or '>'; a message over the size limit or without data.
 * 0, or -1 with the reason in d. */
int transport_smtp_check(const struct transport_msg *m, struct diag *d);

/* From any thread: make a transport_smtp_multi_backend transport end
 * every transfer it runs (done: stage TRANSPORT_LOCAL, "aborted") within
 * about a second, even one libcurl is blocked in, waiting for a dot's
 * reply; the thread driving it then closes it. */
void transport_smtp_interrupt(struct transport *t);

/* Connections to the relay when the config names none, and the most it
 * may name (each is a thread of the SMTP transport; Postfix's default
 * concurrency per destination is 20). */
enum { TRANSPORT_DEFAULT_CONNECTIONS = 8, TRANSPORT_MAX_CONNECTIONS = 64 };

/* The SMTP transport's other defaults for what transport_config leaves 0
 * (transport_smtp.c says why each; herald config shows them). */
enum {
	TRANSPORT_DEFAULT_PER_CONNECTION = 100,
	TRANSPORT_DEFAULT_CONNECT_TIMEOUT = 30,
	TRANSPORT_DEFAULT_REPLY_TIMEOUT = 300,
	TRANSPORT_DEFAULT_DOT_TIMEOUT = 600,
};

/* Parse an SMTP reply's text for the enhanced status ("4.2.1") and a
 * "queued as ID"; used by transports and tests. */
void transport_parse_reply(const char *text, char status[16],
                           char queue_id[64]);

#endif
