/*
 * config — herald.yaml, the operators' file: the store, the relay (URL,
 * TLS, AUTH, connections, rate), the retry policy, rate limits, the
 * daemon's lease and grace period, the bounce mailbox and the DKIM signing
 * keys. Relative paths are taken from the directory of the config file.
 * Durations are seconds or a number with s, m, h or d ("70m", "5d").
 * Unknown keys are errors.
 *
 * Every setting is a row of one table at the top of config.c: its dotted
 * name, its default and why. The table drives reading the file, the
 * defaults and `herald config`; herald.yaml(5) documents each row. A
 * default that belongs to another module (the retry policy's to trouble.c,
 * the transport's to transport.h) is taken from that module, so each is
 * defined once.
 *
 * Which file: `--config FILE`, else $HERALD_CONFIG, else ./herald.yaml if
 * it exists; with none, herald runs with the defaults (no signing).
 *
 * Library code: NULL on failure after reporting every problem.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "herald/diag.h"

struct config_dkim {
	char *domain;
	char *selector;
	char *key; /* path, resolved against the config file's directory */
	const char *file;
	unsigned line, col;
};

/* The relay heraldd sends through (heraldd --relay overrides the URL). */
struct config_relay {
	char *url;
	char *ca_file;       /* NULL: the system's CA certificates */
	char *user;          /* AUTH user, or NULL */
	char *password_file; /* where the password is, as configured */
	char *password_env;
	char *password;      /* read from password_file (mode 0600) or
	                      * password_env; never logged; NULL when
	                      * loaded with CONFIG_NO_SECRETS */
	bool allow_plain;    /* smtp:// without TLS to a non-loopback host */
	char *helo;          /* NULL: libcurl's (the host name) */
	unsigned max_connections, max_per_connection;
	unsigned connect_timeout, reply_timeout, dot_timeout;
	double rate; /* messages per second through this relay, 0: no limit */
};

/* The IMAP bounce mailbox (bounces.imap; the user, host, port and
 * folder are in bounces.mailbox, imaps://user@host:port/Folder). */
struct config_imap {
	char *password_file; /* where the password is, as configured */
	char *password_env;
	char *password;      /* from password_file (mode 0600) or
	                      * password_env; never logged; NULL when
	                      * loaded with CONFIG_NO_SECRETS */
	char *ca_file;       /* NULL: the system's CA certificates */
	char *move_to;       /* folder for handled mail; NULL: flag \Seen */
	bool delete_handled; /* without move_to: expunge handled mail */
	bool allow_plain;    /* imap:// to a loopback address without TLS */
	bool idle;           /* wait with IDLE where offered */
	unsigned timeout;    /* seconds per network step */
	unsigned idle_renew; /* seconds before an IDLE is ended, the folder
	                      * read and the IDLE begun again */
};

/* Every number holds its effective value: what the file says, else the
 * default (a number given as 0 takes the default too). */
/* What a herald-web user may do: viewers and operators both read;
 * operators will also act on releases (issue 14's actions). */
enum config_web_role { CONFIG_WEB_VIEWER, CONFIG_WEB_OPERATOR };

/* One entry of web.users. The hash is an argon2id hash (passwd.h): not a
 * secret like a password, but kept out of `herald config`. */
struct config_web_user {
	char *name;
	enum config_web_role role;
	char *password_hash;
};

/* "viewer" or "operator". Static. */
const char *config_web_role_name(enum config_web_role r);

struct config {
	char *file; /* NULL: defaults, no file */
	struct config_dkim *dkim;
	size_t ndkim;
	char *store;   /* the store's path */
	char *control; /* the daemon's control socket; default: STORE.sock */
	struct config_relay relay;
	/* retry policy, seconds */
	unsigned min_backoff, max_backoff, lifetime;
	unsigned relay_min_backoff, relay_max_backoff;
	double domain_per_minute; /* messages per minute per recipient
	                           * domain, 0: no limit */
	unsigned lease; /* seconds a claimed delivery stays with one daemon */
	unsigned grace; /* seconds in-flight messages get after SIGTERM */
	unsigned batch; /* deliveries claimed at once */
	/* signed return paths and unsubscribe addresses (VERP): the domain
	 * whose mailbox herald reads, and the secret of the tokens */
	char *bounce_domain;      /* NULL: no VERP, From is the sender */
	char *bounce_secret_file; /* one of these two */
	char *bounce_secret_env;
	/* one-click unsubscribe (RFC 8058): an https URL with {token} */
	char *unsubscribe_url;
	char *bounce_mailbox; /* where bounces arrive: maildir:/path,
	                       * imaps://user@host:port/Folder */
	struct config_imap bounce_imap;
	unsigned soft_limit;  /* soft bounces that suppress */
	unsigned soft_window; /* within this many seconds */
	unsigned bounce_poll; /* seconds between heraldd's mailbox passes */
	/* herald-web */
	char *web_listen;     /* ADDRESS:PORT, numeric */
	char *web_tls_cert;   /* PEM files: HTTPS; NULL: plain HTTP, */
	char *web_tls_key;    /* on a loopback address only */
	char *web_base_url;   /* how the pages are reached from outside */
	unsigned web_session_idle; /* seconds before an idle admin session
	                            * ends */
	struct config_web_user *web_users; /* who may log in to herald-web */
	size_t nweb_users;
};

/* Load path (NULL: the defaults). */
struct config *config_load(const char *path, struct diag *d);

/* Flags of config_load_flags(). CONFIG_NO_SECRETS: read every setting
 * but not the passwords that password_file and password_env name (the
 * passwords stay NULL), for showing the settings to someone who may not
 * read the secrets. */
enum { CONFIG_NO_SECRETS = 1 };

/* config_load with flags. */
struct config *config_load_flags(const char *path, unsigned flags,
                                 struct diag *d);

/* The path to use: explicit (if not NULL), else $HERALD_CONFIG, else
 * "herald.yaml" when it exists, else NULL. Not malloc'd. */
const char *config_path(const char *explicit_path);

/* Print every setting of c as a line "name = value", in the order of
 * herald.yaml(5): durations as herald.yaml writes them (15m), a setting
 * without a value as "name =", and the settings that name a secret as
 * "(set)" or "(unset)", never the secret. For c = config_load(NULL): the
 * defaults. 0, or -1 when f could not be written. */
int config_print(const struct config *c, FILE *f);

void config_free(struct config *c);

#endif
