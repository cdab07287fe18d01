/*
 * config — reads herald.yaml (see config.h). Only what is configured is
 * used; a misspelt key is an error so that an operator who writes
 * "dkm:" learns of it before messages go out unsigned.
 */
#include "herald/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald/field.h"
#include "herald/file.h"
#include "herald/transport.h"
#include "herald/yaml_doc.h"

static const char *const config_keys[] = {"dkim",   "store",   "control",
                                          "relay",  "retry",   "limits",
                                          "daemon", "bounces", NULL};
static const char *const config_bounces_keys[] = {
    "domain",  "secret_file", "secret_env",  "unsubscribe_url",
    "mailbox", "soft_limit",  "soft_window", "poll",
    "imap",    NULL};
static const char *const config_imap_keys[] = {
    "password_file", "password_env", "ca_file",     "move_to", "delete",
    "idle",          "idle_renew",   "timeout",     "allow_plain",
    NULL};
static const char *const config_relay_keys[] = {"url",
                                                "ca_file",
                                                "user",
                                                "password_file",
                                                "password_env",
                                                "allow_plain",
                                                "helo",
                                                "max_connections",
                                                "max_per_connection",
                                                "connect_timeout",
                                                "reply_timeout",
                                                "dot_timeout",
                                                "rate",
                                                NULL};
static const char *const config_retry_keys[] = {
    "min_backoff",       "max_backoff",       "lifetime",
    "relay_min_backoff", "relay_max_backoff", NULL};
static const char *const config_limits_keys[] = {"domain_per_minute", NULL};
static const char *const config_daemon_keys[] = {"lease", "grace", "batch",
                                                 NULL};

/*
 * Defaults for what herald.yaml may leave out (the retry policy's own
 * defaults live in trouble.c; 0 here means "trouble.c's").
 */
static const struct {
	const char *store; /* beside the config, or the current dir */
	const char *relay; /* the embedded transport: no server needed */
	unsigned lease;    /* longer than the longest SMTP transaction
	                    * (10 minutes for the reply to the final
	                    * dot) so a live daemon never loses a claim */
	unsigned grace;    /* systemd's default stop timeout is 90 s */
	unsigned batch;    /* deliveries per claim: large enough to
	                    * keep 8 connections busy, small enough that
	                    * a crash re-sends little */
} config_defaults = {"herald.db", "maildir:herald-outbox", 900, 30, 64};
static const char *const config_dkim_keys[] = {"domain", "selector", "key",
                                               NULL};

const char *config_path(const char *explicit_path)
{
	const char *env = getenv("HERALD_CONFIG");

	if (explicit_path != NULL)
		return explicit_path;
	if (env != NULL && *env != '\0')
		return env;
	if (file_exists("herald.yaml"))
		return "herald.yaml";
	return NULL;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->ndkim; i++) {
		free(c->dkim[i].domain);
		free(c->dkim[i].selector);
		free(c->dkim[i].key);
	}
	free(c->dkim);
	free(c->store);
	free(c->control);
	free(c->relay.url);
	free(c->relay.ca_file);
	free(c->relay.user);
	if (c->relay.password != NULL) {
		explicit_bzero(c->relay.password, strlen(c->relay.password));
		free(c->relay.password);
	}
	free(c->relay.helo);
	free(c->bounce_domain);
	free(c->bounce_secret_file);
	free(c->bounce_secret_env);
	free(c->unsubscribe_url);
	free(c->bounce_mailbox);
	if (c->bounce_imap.password != NULL) {
		explicit_bzero(c->bounce_imap.password,
		               strlen(c->bounce_imap.password));
		free(c->bounce_imap.password);
	}
	free(c->bounce_imap.ca_file);
	free(c->bounce_imap.move_to);
	free(c->file);
	free(c);
}

/* path relative to the directory of file. */
static char *config_relative(const char *file, const char *path)
{
	const char *slash = strrchr(file, '/');
	char *out = NULL;

	if (path[0] == '/' || slash == NULL)
		return strdup(path);
	if (asprintf(&out, "%.*s/%s", (int)(slash - file), file, path) < 0)
		return NULL;
	return out;
}

static void config_dkim_entry(struct config *c, const struct ydoc_node *e,
                              struct diag *d)
{
	struct config_dkim *k = &c->dkim[c->ndkim];
	const struct ydoc_node *v;

	if (field_expect(e, YDOC_MAPPING, "a dkim key", d) < 0)
		return;
	c->ndkim++;
	k->file = c->file;
	k->line = e->line;
	k->col = e->col;
	field_known_keys(e, config_dkim_keys, "dkim", d);
	if ((v = field_get(e, "domain", true, d)) != NULL &&
	    field_line_check(v, "domain", 253, d) == 0)
		k->domain = field_dup(v, d);
	if ((v = field_get(e, "selector", true, d)) != NULL &&
	    field_line_check(v, "selector", 63, d) == 0)
		k->selector = field_dup(v, d);
	if ((v = field_get(e, "key", true, d)) != NULL &&
	    field_line_check(v, "key", 4096, d) == 0) {
		k->key = config_relative(c->file, v->str);
		if (k->key == NULL)
			ydoc_error(d, v, "out of memory");
	}
}

/* A duration: seconds, or a number with s, m, h or d. */
static int config_duration(const struct ydoc_node *n, const char *what,
                           unsigned *out, struct diag *d)
{
	char *end;
	unsigned long v;
	unsigned long mult = 1;

	if (field_line_check(n, what, 32, d) < 0)
		return -1;
	v = strtoul(n->str, &end, 10);
	if (end == n->str)
		goto bad;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		goto bad;
	}
	if (*end != '\0' && end[1] != '\0')
		goto bad;
	if (v > 100UL * 365 * 86400 / mult)
		goto bad;
	*out = (unsigned)(v * mult);
	return 0;
bad:
	ydoc_error(d, n,
	           "%s \"%s\" is not a duration (seconds, or a number with "
	           "s, m, h or d, like 70m)",
	           what, n->str);
	return -1;
}

static int config_count(const struct ydoc_node *n, const char *what,
                        unsigned max, unsigned *out, struct diag *d)
{
	char *end;
	unsigned long v;

	if (field_line_check(n, what, 16, d) < 0)
		return -1;
	v = strtoul(n->str, &end, 10);
	if (end == n->str || *end != '\0' || v > max) {
		ydoc_error(d, n, "%s \"%s\" is not a whole number from 0 to %u",
		           what, n->str, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int config_rate(const struct ydoc_node *n, const char *what, double *out,
                       struct diag *d)
{
	char *end;
	double v;

	if (field_line_check(n, what, 16, d) < 0)
		return -1;
	v = strtod(n->str, &end);
	if (end == n->str || *end != '\0' || !(v >= 0) || v > 1e6) {
		ydoc_error(d, n, "%s \"%s\" is not a rate (a number >= 0)",
		           what, n->str);
		return -1;
	}
	*out = v;
	return 0;
}

/* A text value into *out (malloc'd); paths resolved against the file. */
static void config_text(struct config *c, const struct ydoc_node *m,
                        const char *key, bool path, char **out, struct diag *d)
{
	const struct ydoc_node *v = field_get(m, key, false, d);

	if (v == NULL || field_line_check(v, key, 4096, d) < 0)
		return;
	free(*out);
	*out = path ? config_relative(c->file, v->str) : field_dup(v, d);
	if (*out == NULL)
		ydoc_error(d, v, "out of memory");
}

/* A password (the relay's, the IMAP mailbox's) into *out: from a file no
 * one else may read, or from the environment. Never in herald.yaml
 * itself, never in a message. */
static void config_password(struct config *c, const struct ydoc_node *m,
                            char **out, struct diag *d)
{
	const struct ydoc_node *pf = field_get(m, "password_file", false, d);
	const struct ydoc_node *pe = field_get(m, "password_env", false, d);
	char *path = NULL, *buf = NULL;
	size_t len = 0;
	struct stat st;

	if (pf != NULL && pe != NULL) {
		ydoc_error(d, pe,
		           "give password_file or password_env, not "
		           "both");
		return;
	}
	if (pe != NULL) {
		const char *v;
		if (field_line_check(pe, "password_env", 128, d) < 0)
			return;
		v = getenv(pe->str);
		if (v == NULL || *v == '\0') {
			ydoc_error(d, pe,
			           "the environment variable %s named by "
			           "password_env is not set",
			           pe->str);
			return;
		}
		*out = strdup(v);
		return;
	}
	if (pf == NULL || field_line_check(pf, "password_file", 4096, d) < 0)
		return;
	path = config_relative(c->file, pf->str);
	if (path == NULL) {
		ydoc_error(d, pf, "out of memory");
		return;
	}
	if (stat(path, &st) < 0) {
		ydoc_error(d, pf, "password_file %s: %s", path,
		           strerror(errno));
		goto done;
	}
	if (file_private_check(&st, "password_file", path, d) < 0)
		goto done;
	if (file_read(path, 4096, &buf, &len, d) < 0)
		goto done;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0 || memchr(buf, '\n', len) || memchr(buf, '\0', len)) {
		ydoc_error(d, pf, "password_file %s must hold one line", path);
		explicit_bzero(buf, len);
		free(buf);
		goto done;
	}
	*out = buf;
done:
	free(path);
}

static void config_relay(struct config *c, const struct ydoc_node *m,
                         struct diag *d)
{
	const struct ydoc_node *v;

	if (field_expect(m, YDOC_MAPPING, "relay", d) < 0)
		return;
	field_known_keys(m, config_relay_keys, "relay", d);
	config_text(c, m, "url", false, &c->relay.url, d);
	config_text(c, m, "ca_file", true, &c->relay.ca_file, d);
	config_text(c, m, "user", false, &c->relay.user, d);
	config_text(c, m, "helo", false, &c->relay.helo, d);
	config_password(c, m, &c->relay.password, d);
	if ((v = field_get(m, "allow_plain", false, d)) != NULL &&
	    ydoc_bool(v, &c->relay.allow_plain) < 0)
		ydoc_error(d, v, "allow_plain must be true or false");
	if ((v = field_get(m, "max_connections", false, d)) != NULL)
		config_count(v, "max_connections", TRANSPORT_MAX_CONNECTIONS,
		             &c->relay.max_connections, d);
	if ((v = field_get(m, "max_per_connection", false, d)) != NULL)
		config_count(v, "max_per_connection", 100000,
		             &c->relay.max_per_connection, d);
	if ((v = field_get(m, "connect_timeout", false, d)) != NULL)
		config_duration(v, "connect_timeout", &c->relay.connect_timeout,
		                d);
	if ((v = field_get(m, "reply_timeout", false, d)) != NULL)
		config_duration(v, "reply_timeout", &c->relay.reply_timeout, d);
	if ((v = field_get(m, "dot_timeout", false, d)) != NULL)
		config_duration(v, "dot_timeout", &c->relay.dot_timeout, d);
	if ((v = field_get(m, "rate", false, d)) != NULL)
		config_rate(v, "rate", &c->relay.rate, d);
}

/* bounces.imap: how to reach the IMAP mailbox of bounces.mailbox. */
static void config_imap(struct config *c, const struct ydoc_node *m,
                        struct diag *d)
{
	struct config_imap *im = &c->bounce_imap;
	static const struct {
		const char *key;
		size_t off;
	} flags[] = {
	    {"delete", offsetof(struct config_imap, delete_handled)},
	    {"idle", offsetof(struct config_imap, idle)},
	    {"allow_plain", offsetof(struct config_imap, allow_plain)},
	};
	const struct ydoc_node *v;

	if (field_expect(m, YDOC_MAPPING, "bounces.imap", d) < 0)
		return;
	field_known_keys(m, config_imap_keys, "imap", d);
	config_password(c, m, &im->password, d);
	config_text(c, m, "ca_file", true, &im->ca_file, d);
	config_text(c, m, "move_to", false, &im->move_to, d);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if ((v = field_get(m, flags[i].key, false, d)) != NULL &&
		    ydoc_bool(v, (bool *)((char *)im + flags[i].off)) < 0)
			ydoc_error(d, v, "%s must be true or false",
			           flags[i].key);
	if ((v = field_get(m, "timeout", false, d)) != NULL)
		config_duration(v, "timeout", &im->timeout, d);
	/* a server may end an IDLE after 30 minutes (RFC 2177) */
	if ((v = field_get(m, "idle_renew", false, d)) != NULL &&
	    config_duration(v, "idle_renew", &im->idle_renew, d) == 0 &&
	    (im->idle_renew < 1 || im->idle_renew > 29 * 60))
		ydoc_error(d, v,
		           "idle_renew \"%s\" must be from 1s to 29m (a "
		           "server may end an IDLE after 30 minutes)",
		           v->str);
	if (im->move_to != NULL && im->delete_handled)
		ydoc_error(d, m,
		           "give move_to or delete: true, not both (handled "
		           "mail is either moved or deleted)");
	if (im->move_to != NULL &&
	    (im->move_to[0] == '\0' || strpbrk(im->move_to, "\r\n\"*%") ||
	     strlen(im->move_to) > 255))
		ydoc_error(d, m,
		           "move_to must be a folder name (no quotes, "
		           "wildcards or line breaks)");
}

static void config_section(const struct ydoc_node *root, const char *name,
                           const char *const *keys,
                           const struct ydoc_node **out, struct diag *d)
{
	const struct ydoc_node *m = field_get(root, name, false, d);

	*out = NULL;
	if (m == NULL || field_expect(m, YDOC_MAPPING, name, d) < 0)
		return;
	field_known_keys(m, keys, name, d);
	*out = m;
}

/* The defaults for everything a file may leave out. */
static int config_fill_defaults(struct config *c)
{
	if (c->store == NULL &&
	    (c->store = strdup(config_defaults.store)) == NULL)
		return -1;
	if (c->control == NULL &&
	    asprintf(&c->control, "%s.sock", c->store) < 0) {
		c->control = NULL;
		return -1;
	}
	if (c->relay.url == NULL &&
	    (c->relay.url = strdup(config_defaults.relay)) == NULL)
		return -1;
	if (c->lease == 0)
		c->lease = config_defaults.lease;
	if (c->grace == 0)
		c->grace = config_defaults.grace;
	if (c->batch == 0)
		c->batch = config_defaults.batch;
	return 0;
}

struct config *config_load(const char *path, struct diag *d)
{
	struct config *c = calloc(1, sizeof(*c));
	struct ydoc *doc = NULL;
	const struct ydoc_node *n;
	size_t errors = d->errors;

	if (c == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		return NULL;
	}
	if (path == NULL) {
		if (config_fill_defaults(c) < 0) {
			diag_add(d, NULL, 0, 0, "out of memory");
			config_free(c);
			return NULL;
		}
		return c;
	}
	if ((c->file = strdup(path)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	doc = ydoc_load_file(path, NULL, d);
	if (doc == NULL)
		goto fail;
	if (doc->root == NULL)
		goto done; /* an empty file: the defaults */
	if (field_expect(doc->root, YDOC_MAPPING, "herald.yaml", d) < 0)
		goto fail;
	field_known_keys(doc->root, config_keys, "herald.yaml", d);
	n = field_get(doc->root, "dkim", false, d);
	if (n != NULL && !ydoc_is_null(n)) {
		size_t count = n->kind == YDOC_SEQUENCE ? n->nitems : 1;
		c->dkim = calloc(count ? count : 1, sizeof(*c->dkim));
		if (c->dkim == NULL) {
			ydoc_error(d, n, "out of memory");
			goto fail;
		}
		if (n->kind == YDOC_SEQUENCE)
			for (size_t i = 0; i < n->nitems; i++)
				config_dkim_entry(c, n->items[i], d);
		else
			config_dkim_entry(c, n, d);
	}
	{
		const struct ydoc_node *m, *v;
		config_text(c, doc->root, "store", true, &c->store, d);
		config_text(c, doc->root, "control", true, &c->control, d);
		if ((m = field_get(doc->root, "relay", false, d)) != NULL)
			config_relay(c, m, d);
		config_section(doc->root, "retry", config_retry_keys, &m, d);
		if (m != NULL) {
			if ((v = field_get(m, "min_backoff", false, d)))
				config_duration(v, "min_backoff",
				                &c->min_backoff, d);
			if ((v = field_get(m, "max_backoff", false, d)))
				config_duration(v, "max_backoff",
				                &c->max_backoff, d);
			if ((v = field_get(m, "lifetime", false, d)))
				config_duration(v, "lifetime", &c->lifetime, d);
			if ((v = field_get(m, "relay_min_backoff", false, d)))
				config_duration(v, "relay_min_backoff",
				                &c->relay_min_backoff, d);
			if ((v = field_get(m, "relay_max_backoff", false, d)))
				config_duration(v, "relay_max_backoff",
				                &c->relay_max_backoff, d);
		}
		config_section(doc->root, "limits", config_limits_keys, &m, d);
		if (m != NULL &&
		    (v = field_get(m, "domain_per_minute", false, d)))
			config_rate(v, "domain_per_minute",
			            &c->domain_per_minute, d);
		config_section(doc->root, "bounces", config_bounces_keys, &m,
		               d);
		if (m != NULL) {
			config_text(c, m, "domain", false, &c->bounce_domain,
			            d);
			config_text(c, m, "secret_file", true,
			            &c->bounce_secret_file, d);
			config_text(c, m, "secret_env", false,
			            &c->bounce_secret_env, d);
			config_text(c, m, "unsubscribe_url", false,
			            &c->unsubscribe_url, d);
			config_text(c, m, "mailbox", false, &c->bounce_mailbox,
			            d);
			if ((v = field_get(m, "soft_limit", false, d)))
				config_count(v, "soft_limit", 1000,
				             &c->soft_limit, d);
			if ((v = field_get(m, "soft_window", false, d)))
				config_duration(v, "soft_window",
				                &c->soft_window, d);
			if ((v = field_get(m, "poll", false, d)))
				config_duration(v, "poll", &c->bounce_poll, d);
			c->bounce_imap.idle = true;
			if ((v = field_get(m, "imap", false, d)) != NULL)
				config_imap(c, v, d);
			if (c->bounce_mailbox != NULL &&
			    strncmp(c->bounce_mailbox, "imap", 4) == 0 &&
			    c->bounce_imap.password == NULL &&
			    d->errors == errors)
				ydoc_error(
				    d, m,
				    "an IMAP mailbox needs its password: "
				    "give imap.password_file (a file "
				    "only herald's user may read) or "
				    "imap.password_env");
			if (c->bounce_domain == NULL)
				ydoc_error(d, m, "bounces needs a domain");
			if ((c->bounce_secret_file == NULL) ==
			    (c->bounce_secret_env == NULL))
				ydoc_error(d, m,
				           "bounces needs secret_file or "
				           "secret_env (one of them)");
			if (c->unsubscribe_url != NULL &&
			    (strncmp(c->unsubscribe_url, "https://", 8) != 0 ||
			     strstr(c->unsubscribe_url, "{token}") == NULL))
				ydoc_error(
				    d, m,
				    "unsubscribe_url must be an https:// "
				    "URL with {token} in it");
		}
		config_section(doc->root, "daemon", config_daemon_keys, &m, d);
		if (m != NULL) {
			if ((v = field_get(m, "lease", false, d)))
				config_duration(v, "lease", &c->lease, d);
			if ((v = field_get(m, "grace", false, d)))
				config_duration(v, "grace", &c->grace, d);
			if ((v = field_get(m, "batch", false, d)))
				config_count(v, "batch", 10000, &c->batch, d);
		}
	}
done:
	if (d->errors == errors && config_fill_defaults(c) < 0)
		diag_add(d, path, 0, 0, "out of memory");
	if (d->errors != errors)
		goto fail;
	ydoc_free(doc);
	return c;
fail:
	ydoc_free(doc);
	config_free(c);
	return NULL;
}
