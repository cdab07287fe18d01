/*
 * config — reads herald.yaml (see config.h). Only what is configured is
 * used; a misspelt key is an error so that an operator who writes
 * "dkm:" learns of it before messages go out unsigned.
 *
 * One table, config_settings[], names every setting with its default and
 * the reason for it (as Postfix's postconf(5) does). Reading the file,
 * filling in the defaults and `herald config` all walk it, so a setting
 * cannot be read without also having a default and being shown.
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
#include "herald/mailbox.h"
#include "herald/passwd.h"
#include "herald/sched.h"
#include "herald/store.h"
#include "herald/transport.h"
#include "herald/trouble.h"
#include "herald/yaml_doc.h"

/* What a setting holds, and so how it is read and shown. */
enum config_kind {
	CONFIG_TEXT,        /* one line, as written */
	CONFIG_PATH,        /* one line, relative to the config's directory */
	CONFIG_SECRET_FILE, /* a path naming a secret: shown (set)/(unset) */
	CONFIG_SECRET_ENV,  /* a variable naming a secret: likewise */
	CONFIG_BOOL,        /* true or false */
	CONFIG_COUNT,       /* a whole number from 0 to max */
	CONFIG_DURATION,    /* seconds, written 90, 90s, 15m, 2h, 5d */
	CONFIG_RATE,        /* a number >= 0 */
	CONFIG_DKIM,        /* the list of signing keys */
	CONFIG_WEB_USERS,   /* herald-web's users: shown without hashes */
};

struct config_setting {
	const char *name; /* dotted, as in herald.yaml */
	enum config_kind kind;
	size_t off; /* where the value is in struct config */
	/* The default, one of: text as herald.yaml would say it (text,
	 * paths, flags); a number; the owning module's number. None of
	 * them: no value. */
	const char *text;
	unsigned num;
	const unsigned *owned;
	const double *owned_rate;
	unsigned max; /* counts: the largest; text: the longest (0: 4096) */
	const char *why;
};

#define CONFIG_AT(field) offsetof(struct config, field)

/*
 * Every setting of herald.yaml, in the order of herald.yaml(5). The
 * defaults that belong to another module are taken from it (the reason
 * is given there in full).
 */
static const struct config_setting config_settings[] = {
    {"dkim", CONFIG_DKIM, CONFIG_AT(dkim),
     .why = "no keys until the operator makes them (herald keygen); herald "
            "check warns that mail goes out unsigned"},
    {"store", CONFIG_PATH, CONFIG_AT(store), .text = "herald.db",
     .why = "the working directory: a first try needs no setup"},
    {"control", CONFIG_PATH, CONFIG_AT(control),
     .why = "the store's path with .sock (set below): herald queue wakes "
            "the daemon of the store it wrote to"},
    {"relay.url", CONFIG_TEXT, CONFIG_AT(relay.url),
     .text = "maildir:herald-outbox",
     .why = "the embedded transport: a first try needs no mail server"},
    {"relay.ca_file", CONFIG_PATH, CONFIG_AT(relay.ca_file),
     .why = "none: the system's CA certificates"},
    {"relay.user", CONFIG_TEXT, CONFIG_AT(relay.user),
     .why = "none: no AUTH"},
    {"relay.password_file", CONFIG_SECRET_FILE,
     CONFIG_AT(relay.password_file),
     .why = "none: a password never sits in herald.yaml itself"},
    {"relay.password_env", CONFIG_SECRET_ENV, CONFIG_AT(relay.password_env),
     .max = 128, .why = "none: the other way to give the password"},
    {"relay.allow_plain", CONFIG_BOOL, CONFIG_AT(relay.allow_plain),
     .text = "false",
     .why = "a press list is personal data: STARTTLS is required but on "
            "loopback, and AUTH in clear even there only when set"},
    {"relay.helo", CONFIG_TEXT, CONFIG_AT(relay.helo),
     .why = "none: libcurl's, the machine's host name"},
    {"relay.max_connections", CONFIG_COUNT, CONFIG_AT(relay.max_connections),
     .num = TRANSPORT_DEFAULT_CONNECTIONS, .max = TRANSPORT_MAX_CONNECTIONS,
     .why = "fast on loopback, well below Postfix's 20 per destination "
            "(transport.h)"},
    {"relay.max_per_connection", CONFIG_COUNT,
     CONFIG_AT(relay.max_per_connection),
     .num = TRANSPORT_DEFAULT_PER_CONNECTION, .max = 100000,
     .why = "a new session every 100 messages costs under 1% and spreads "
            "load (transport_smtp.c)"},
    {"relay.connect_timeout", CONFIG_DURATION,
     CONFIG_AT(relay.connect_timeout),
     .num = TRANSPORT_DEFAULT_CONNECT_TIMEOUT,
     .why = "Postfix's smtp_connect_timeout (transport_smtp.c)"},
    {"relay.reply_timeout", CONFIG_DURATION, CONFIG_AT(relay.reply_timeout),
     .num = TRANSPORT_DEFAULT_REPLY_TIMEOUT,
     .why = "RFC 5321 4.5.3.2: 5 minutes for MAIL and RCPT "
            "(transport_smtp.c)"},
    {"relay.dot_timeout", CONFIG_DURATION, CONFIG_AT(relay.dot_timeout),
     .num = TRANSPORT_DEFAULT_DOT_TIMEOUT,
     .why = "RFC 5321 4.5.3.2.6: 10 minutes after the final dot "
            "(transport_smtp.c)"},
    {"relay.rate", CONFIG_RATE, CONFIG_AT(relay.rate),
     .owned_rate = &sched_default_limits.relay_per_second,
     .why = "no limit: the relay queues what it takes or says when it has "
            "had enough (sched.c)"},
    {"retry.min_backoff", CONFIG_DURATION, CONFIG_AT(min_backoff),
     .owned = &trouble_default_policy.min_backoff,
     .why = "Postfix's minimal_backoff_time: greylisting servers take a "
            "retry after 1-5 minutes (trouble.c)"},
    {"retry.max_backoff", CONFIG_DURATION, CONFIG_AT(max_backoff),
     .owned = &trouble_default_policy.max_backoff,
     .why = "a delivery deferred for hours is still tried about hourly "
            "(trouble.c)"},
    {"retry.lifetime", CONFIG_DURATION, CONFIG_AT(lifetime),
     .owned = &trouble_default_policy.lifetime,
     .why = "Postfix's maximal_queue_lifetime: a press release is old news "
            "by then (trouble.c)"},
    {"retry.relay_min_backoff", CONFIG_DURATION, CONFIG_AT(relay_min_backoff),
     .owned = &trouble_default_policy.relay_min_backoff,
     .why = "a relay that refused a connection is often back in seconds "
            "(trouble.c)"},
    {"retry.relay_max_backoff", CONFIG_DURATION, CONFIG_AT(relay_max_backoff),
     .owned = &trouble_default_policy.relay_max_backoff,
     .why = "a relay down for long is tried six times an hour (trouble.c)"},
    {"limits.domain_per_minute", CONFIG_RATE, CONFIG_AT(domain_per_minute),
     .owned_rate = &sched_default_limits.domain_per_minute,
     .why = "no limit: a press list is spread over many domains (sched.c)"},
    {"daemon.lease", CONFIG_DURATION, CONFIG_AT(lease), .num = 900,
     .why = "longer than the longest SMTP transaction (10 minutes for the "
            "reply to the final dot), so a live daemon never loses a "
            "claim"},
    {"daemon.grace", CONFIG_DURATION, CONFIG_AT(grace), .num = 30,
     .why = "well inside systemd's default stop timeout of 90 s"},
    {"daemon.batch", CONFIG_COUNT, CONFIG_AT(batch), .num = 64,
     .max = 10000,
     .why = "large enough to keep 8 connections busy, small enough that a "
            "crash re-sends little"},
    {"bounces.domain", CONFIG_TEXT, CONFIG_AT(bounce_domain),
     .why = "none: no signed return paths; the release's From is the "
            "envelope sender"},
    {"bounces.secret_file", CONFIG_SECRET_FILE, CONFIG_AT(bounce_secret_file),
     .why = "none: needed with bounces.domain"},
    {"bounces.secret_env", CONFIG_SECRET_ENV, CONFIG_AT(bounce_secret_env),
     .why = "none: the other way to give the secret"},
    {"bounces.unsubscribe_url", CONFIG_TEXT, CONFIG_AT(unsubscribe_url),
     .why = "none: List-Unsubscribe by mail only"},
    {"bounces.mailbox", CONFIG_TEXT, CONFIG_AT(bounce_mailbox),
     .why = "none: bounces are not read"},
    {"bounces.soft_limit", CONFIG_COUNT, CONFIG_AT(soft_limit),
     .num = STORE_DEFAULT_SOFT_LIMIT, .max = 1000,
     .why = "a full mailbox bounces once or twice and recovers; three "
            "times in a month is abandoned (store.h)"},
    {"bounces.soft_window", CONFIG_DURATION, CONFIG_AT(soft_window),
     .num = STORE_DEFAULT_SOFT_WINDOW,
     .why = "a month holds a few releases (store.h)"},
    {"bounces.poll", CONFIG_DURATION, CONFIG_AT(bounce_poll), .num = 60,
     .why = "a bounce acted on within a minute; a Maildir scan or an IMAP "
            "pass a minute costs nothing"},
    {"bounces.imap.password_file", CONFIG_SECRET_FILE,
     CONFIG_AT(bounce_imap.password_file),
     .why = "none: an IMAP mailbox needs this or password_env"},
    {"bounces.imap.password_env", CONFIG_SECRET_ENV,
     CONFIG_AT(bounce_imap.password_env), .max = 128,
     .why = "none: the other way to give the password"},
    {"bounces.imap.ca_file", CONFIG_PATH, CONFIG_AT(bounce_imap.ca_file),
     .why = "none: the system's CA certificates"},
    {"bounces.imap.move_to", CONFIG_TEXT, CONFIG_AT(bounce_imap.move_to),
     .why = "none: handled mail is flagged \\Seen and kept"},
    {"bounces.imap.delete", CONFIG_BOOL,
     CONFIG_AT(bounce_imap.delete_handled), .text = "false",
     .why = "nothing is deleted unless asked"},
    {"bounces.imap.idle", CONFIG_BOOL, CONFIG_AT(bounce_imap.idle),
     .text = "true",
     .why = "a bounce is read within a second where the server offers "
            "IDLE"},
    {"bounces.imap.idle_renew", CONFIG_DURATION,
     CONFIG_AT(bounce_imap.idle_renew), .num = 25 * 60,
     .why = "servers may end an IDLE after 30 minutes (RFC 2177), some "
            "after 29; firewalls forget silent connections"},
    {"bounces.imap.timeout", CONFIG_DURATION, CONFIG_AT(bounce_imap.timeout),
     .num = MAILBOX_DEFAULT_TIMEOUT,
     .why = "a server that is up answers in far less (mailbox_imap.c)"},
    {"bounces.imap.allow_plain", CONFIG_BOOL,
     CONFIG_AT(bounce_imap.allow_plain), .text = "false",
     .why = "the password never crosses the network in clear"},
    {"web.listen", CONFIG_TEXT, CONFIG_AT(web_listen),
     .text = "127.0.0.1:8025",
     .why = "loopback: plain HTTP never leaves the host; a reverse proxy "
            "or web.tls_cert puts it on the network (web.c)"},
    {"web.tls_cert", CONFIG_PATH, CONFIG_AT(web_tls_cert),
     .why = "none: plain HTTP, on a loopback address only"},
    {"web.tls_key", CONFIG_PATH, CONFIG_AT(web_tls_key),
     .why = "none: goes with web.tls_cert"},
    {"web.base_url", CONFIG_TEXT, CONFIG_AT(web_base_url),
     .why = "none: the pages link only to themselves"},
    {"web.session_idle", CONFIG_DURATION, CONFIG_AT(web_session_idle),
     .num = 30 * 60,
     .why = "OWASP's 15-30 minutes for an idle session of an application "
            "that can change what is sent"},
    {"web.users", CONFIG_WEB_USERS, CONFIG_AT(web_users),
     .why = "none: no one logs in until the operator adds users (herald "
            "passwd makes their hashes)"},
};

#define CONFIG_NSETTINGS (sizeof(config_settings) / sizeof(config_settings[0]))

/* The keys of one dkim entry (dkim is a list of mappings). */
static const char *const config_dkim_keys[] = {"domain", "selector", "key",
                                               NULL};

/* The keys of one web.users entry. */
static const char *const config_user_keys[] = {"name", "role",
                                               "password_hash", NULL};

/* The most users web.users may list: herald-web looks a name up by
 * walking them, and a press office has a handful of admins. */
#define CONFIG_MAX_USERS 1000

/* The longest a section's list of keys gets, with room. */
#define CONFIG_MAX_KEYS 24

static void *config_at(struct config *c, const struct config_setting *s)
{
	return (char *)c + s->off;
}

static const void *config_at_const(const struct config *c,
                                   const struct config_setting *s)
{
	return (const char *)c + s->off;
}

/* The key of s inside section (its name is section.key...), or NULL. */
static const char *config_key_in(const struct config_setting *s,
                                 const char *section)
{
	size_t n = strlen(section);

	if (n == 0)
		return s->name;
	if (strncmp(s->name, section, n) != 0 || s->name[n] != '.')
		return NULL;
	return s->name + n + 1;
}

/* The keys a section may hold (the next part of each name), in the
 * table's order, NULL-terminated. */
static void config_section_keys(const char *section,
                                const char *keys[CONFIG_MAX_KEYS + 1],
                                size_t lens[CONFIG_MAX_KEYS])
{
	size_t n = 0;

	for (size_t i = 0; i < CONFIG_NSETTINGS && n < CONFIG_MAX_KEYS; i++) {
		const char *k = config_key_in(&config_settings[i], section);
		size_t len, j;
		if (k == NULL)
			continue;
		len = strcspn(k, ".");
		for (j = 0; j < n; j++)
			if (lens[j] == len && strncmp(keys[j], k, len) == 0)
				break;
		if (j < n)
			continue;
		keys[n] = k;
		lens[n] = len;
		n++;
	}
	keys[n] = NULL;
}

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

static void config_free_secret(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
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
	for (size_t i = 0; i < c->nweb_users; i++) {
		free(c->web_users[i].name);
		free(c->web_users[i].password_hash);
	}
	free(c->web_users);
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		if (s->kind == CONFIG_TEXT || s->kind == CONFIG_PATH ||
		    s->kind == CONFIG_SECRET_FILE ||
		    s->kind == CONFIG_SECRET_ENV)
			free(*(char **)config_at(c, s));
	}
	config_free_secret(c->relay.password);
	config_free_secret(c->bounce_imap.password);
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

static void config_dkim(struct config *c, const struct ydoc_node *n,
                        struct diag *d)
{
	size_t count;

	if (n == NULL || ydoc_is_null(n))
		return;
	count = n->kind == YDOC_SEQUENCE ? n->nitems : 1;
	c->dkim = calloc(count ? count : 1, sizeof(*c->dkim));
	if (c->dkim == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	if (n->kind == YDOC_SEQUENCE)
		for (size_t i = 0; i < n->nitems; i++)
			config_dkim_entry(c, n->items[i], d);
	else
		config_dkim_entry(c, n, d);
}

const char *config_web_role_name(enum config_web_role r)
{
	return r == CONFIG_WEB_OPERATOR ? "operator" : "viewer";
}

/* A user name: what a login form and a log line carry safely. */
static bool config_user_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._@-", *s) != NULL))
			return false;
	return true;
}

static void config_user_entry(struct config *c, const struct ydoc_node *e,
                              struct diag *d)
{
	struct config_web_user *u = &c->web_users[c->nweb_users];
	const struct ydoc_node *v;

	if (field_expect(e, YDOC_MAPPING, "a web user", d) < 0)
		return;
	c->nweb_users++;
	field_known_keys(e, config_user_keys, "web.users", d);
	if ((v = field_get(e, "name", true, d)) != NULL &&
	    field_line_check(v, "name", 64, d) == 0) {
		if (!config_user_name_ok(v->str))
			ydoc_error(d, v,
			           "user name \"%s\" must be 1 to 64 letters, "
			           "digits, '.', '_', '@' or '-'",
			           v->str);
		for (size_t i = 0; i + 1 < c->nweb_users; i++)
			if (c->web_users[i].name != NULL &&
			    strcmp(c->web_users[i].name, v->str) == 0)
				ydoc_error(d, v,
				           "user \"%s\" is listed twice in "
				           "web.users (each name once)",
				           v->str);
		u->name = field_dup(v, d);
	}
	if ((v = field_get(e, "role", true, d)) != NULL &&
	    field_line_check(v, "role", 16, d) == 0) {
		if (strcmp(v->str, "viewer") == 0)
			u->role = CONFIG_WEB_VIEWER;
		else if (strcmp(v->str, "operator") == 0)
			u->role = CONFIG_WEB_OPERATOR;
		else
			ydoc_error(d, v,
			           "role \"%s\" is not viewer or operator",
			           v->str);
	}
	if ((v = field_get(e, "password_hash", true, d)) != NULL &&
	    field_line_check(v, "password_hash", PASSWD_ENCODED_MAX, d) == 0) {
		/* the hash is not shown: it is one step from the password */
		if (!passwd_valid(v->str))
			ydoc_error(d, v,
			           "password_hash is not an argon2id hash "
			           "($argon2id$v=19$m=...,t=...,p=...$salt$hash, "
			           "as herald passwd prints)");
		u->password_hash = field_dup(v, d);
	}
}

static void config_users(struct config *c, const struct ydoc_node *n,
                         struct diag *d)
{
	if (n == NULL || ydoc_is_null(n))
		return;
	if (field_expect(n, YDOC_SEQUENCE, "web.users", d) < 0)
		return;
	if (n->nitems > CONFIG_MAX_USERS) {
		ydoc_error(d, n, "web.users lists %zu users; at most %d",
		           n->nitems, CONFIG_MAX_USERS);
		return;
	}
	c->web_users = calloc(n->nitems ? n->nitems : 1, sizeof(*c->web_users));
	if (c->web_users == NULL) {
		ydoc_error(d, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < n->nitems; i++)
		config_user_entry(c, n->items[i], d);
}

/* A duration: seconds, or a number with s, m, h or d. */
static int config_duration_text(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;
	unsigned long mult = 1;

	v = strtoul(s, &end, 10);
	if (end == s || s[0] == '-' || s[0] == '+')
		return -1;
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
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > 100UL * 365 * 86400 / mult)
		return -1;
	*out = (unsigned)(v * mult);
	return 0;
}

static int config_duration(const struct ydoc_node *n, const char *what,
                           unsigned *out, struct diag *d)
{
	if (field_line_check(n, what, 32, d) < 0)
		return -1;
	if (config_duration_text(n->str, out) == 0)
		return 0;
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
	if (end == n->str || *end != '\0' || v > max || n->str[0] == '-') {
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

/* One setting's value from node v into c; what names it in messages. */
static void config_value(struct config *c, const struct config_setting *s,
                         const struct ydoc_node *v, const char *what,
                         struct diag *d)
{
	void *at = config_at(c, s);
	char **text = at;

	switch (s->kind) {
	case CONFIG_TEXT:
	case CONFIG_PATH:
	case CONFIG_SECRET_FILE:
	case CONFIG_SECRET_ENV:
		if (field_line_check(v, what, s->max ? s->max : 4096, d) < 0)
			return;
		free(*text);
		/* a file is found from herald.yaml's directory; a
		 * PostgreSQL store's address is no file */
		*text = (s->kind == CONFIG_PATH &&
		         !(at == (void *)&c->store &&
		           store_pg_is_address(v->str))) ||
		                s->kind == CONFIG_SECRET_FILE
		            ? config_relative(c->file, v->str)
		            : field_dup(v, d);
		if (*text == NULL)
			ydoc_error(d, v, "out of memory");
		break;
	case CONFIG_BOOL:
		if (ydoc_bool(v, at) < 0)
			ydoc_error(d, v, "%s must be true or false", what);
		break;
	case CONFIG_COUNT:
		config_count(v, what, s->max, at, d);
		break;
	case CONFIG_DURATION:
		config_duration(v, what, at, d);
		break;
	case CONFIG_RATE:
		config_rate(v, what, at, d);
		break;
	case CONFIG_DKIM:
		config_dkim(c, v, d);
		break;
	case CONFIG_WEB_USERS:
		config_users(c, v, d);
		break;
	}
}

/* The mapping of a section ("" for the file's root), checked for unknown
 * keys, with each of its settings read into c. NULL when absent or not a
 * mapping. what names it in messages. */
static const struct ydoc_node *config_section(struct config *c,
                                              const struct ydoc_node *m,
                                              const char *section,
                                              const char *what,
                                              struct diag *d)
{
	const char *keys[CONFIG_MAX_KEYS + 1];
	size_t lens[CONFIG_MAX_KEYS];

	if (m == NULL || field_expect(m, YDOC_MAPPING, what, d) < 0)
		return NULL;
	config_section_keys(section, keys, lens);
	{
		/* the keys as strings of their own for field_known_keys */
		char names[CONFIG_MAX_KEYS][32];
		const char *known[CONFIG_MAX_KEYS + 1];
		size_t n;
		for (n = 0; keys[n] != NULL; n++) {
			snprintf(names[n], sizeof(names[n]), "%.*s",
			         (int)lens[n], keys[n]);
			known[n] = names[n];
		}
		known[n] = NULL;
		field_known_keys(m, known, strcmp(what, "bounces.imap") == 0
		                               ? "imap"
		                               : what,
		                 d);
	}
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		const char *k = config_key_in(s, section);
		const struct ydoc_node *v;
		if (k == NULL || strchr(k, '.') != NULL)
			continue; /* elsewhere, or in a subsection */
		if ((v = field_get(m, k, false, d)) != NULL)
			config_value(c, s, v, k, d);
	}
	return m;
}

/* A password (the relay's, the IMAP mailbox's) into *out: from a file no
 * one else may read, or from the environment. Never in herald.yaml
 * itself, never in a message. m is the section (for places). */
static void config_password(const struct ydoc_node *m, const char *path,
                            const char *env, char **out, struct diag *d)
{
	const struct ydoc_node *pf = field_get(m, "password_file", false, d);
	const struct ydoc_node *pe = field_get(m, "password_env", false, d);
	char *buf = NULL;
	size_t len = 0;
	struct stat st;

	if (env != NULL) {
		const char *v = getenv(env);
		if (v == NULL || *v == '\0') {
			ydoc_error(d, pe,
			           "the environment variable %s named by "
			           "password_env is not set",
			           env);
			return;
		}
		if ((*out = strdup(v)) == NULL)
			ydoc_error(d, pe, "out of memory");
		return;
	}
	if (path == NULL)
		return;
	if (stat(path, &st) < 0) {
		ydoc_error(d, pf, "password_file %s: %s", path,
		           strerror(errno));
		return;
	}
	if (file_private_check(&st, "password_file", path, d) < 0)
		return;
	if (file_read(path, 4096, &buf, &len, d) < 0)
		return;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0 || memchr(buf, '\n', len) || memchr(buf, '\0', len)) {
		ydoc_error(d, pf, "password_file %s must hold one line", path);
		explicit_bzero(buf, len);
		free(buf);
		return;
	}
	*out = buf;
}

/* password_file and password_env of section m: one or none. */
static int config_password_pair(const struct ydoc_node *m, const char *file,
                                const char *env, struct diag *d)
{
	if (file == NULL || env == NULL)
		return 0;
	ydoc_error(d, field_get(m, "password_env", false, d),
	           "give password_file or password_env, not both");
	return -1;
}

static void config_relay(struct config *c, const struct ydoc_node *m,
                         unsigned flags, struct diag *d)
{
	struct config_relay *r = &c->relay;

	if (m == NULL ||
	    config_password_pair(m, r->password_file, r->password_env, d) < 0)
		return;
	if (!(flags & CONFIG_NO_SECRETS))
		config_password(m, r->password_file, r->password_env,
		                &r->password, d);
}

/* bounces.imap: how to reach the IMAP mailbox of bounces.mailbox. */
static void config_imap(struct config *c, const struct ydoc_node *m,
                        unsigned flags, struct diag *d)
{
	struct config_imap *im = &c->bounce_imap;
	const struct ydoc_node *v;
	unsigned renew;

	if (m == NULL)
		return;
	if (config_password_pair(m, im->password_file, im->password_env, d) ==
	        0 &&
	    !(flags & CONFIG_NO_SECRETS))
		config_password(m, im->password_file, im->password_env,
		                &im->password, d);
	/* a server may end an IDLE after 30 minutes (RFC 2177) */
	if ((v = field_get(m, "idle_renew", false, d)) != NULL &&
	    config_duration_text(v->str, &renew) == 0 &&
	    (renew < 1 || renew > 29 * 60))
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

/* bounces: what must go together. */
static void config_bounces(struct config *c, const struct ydoc_node *m,
                           size_t errors, struct diag *d)
{
	const struct config_imap *im = &c->bounce_imap;

	if (m == NULL)
		return;
	if (c->bounce_mailbox != NULL &&
	    strncmp(c->bounce_mailbox, "imap", 4) == 0 &&
	    im->password_file == NULL && im->password_env == NULL &&
	    d->errors == errors)
		ydoc_error(d, m,
		           "an IMAP mailbox needs its password: give "
		           "imap.password_file (a file only herald's user may "
		           "read) or imap.password_env");
	if (c->bounce_domain == NULL)
		ydoc_error(d, m, "bounces needs a domain");
	if ((c->bounce_secret_file == NULL) == (c->bounce_secret_env == NULL))
		ydoc_error(d, m,
		           "bounces needs secret_file or secret_env (one of "
		           "them)");
	if (c->unsubscribe_url != NULL &&
	    (strncmp(c->unsubscribe_url, "https://", 8) != 0 ||
	     strstr(c->unsubscribe_url, "{token}") == NULL))
		ydoc_error(d, m,
		           "unsubscribe_url must be an https:// URL with "
		           "{token} in it");
}

/* web: what must go together. */
static void config_web(struct config *c, const struct ydoc_node *m,
                       struct diag *d)
{
	if (m == NULL)
		return;
	if ((c->web_tls_cert == NULL) != (c->web_tls_key == NULL))
		ydoc_error(d, m, "web needs tls_cert and tls_key together");
	if (c->web_base_url != NULL &&
	    strncmp(c->web_base_url, "https://", 8) != 0 &&
	    strncmp(c->web_base_url, "http://", 7) != 0)
		ydoc_error(d, m,
		           "web.base_url must be an https:// (or http://) URL");
}

/*
 * The defaults. before: every default, before the file is read (what the
 * file says replaces it). After: the numbers the file gave as 0 take
 * their default again, and the control socket follows the store.
 */
static int config_defaults(struct config *c, bool before)
{
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		void *at = config_at(c, s);
		unsigned def = s->owned ? *s->owned : s->num;
		switch (s->kind) {
		case CONFIG_TEXT:
		case CONFIG_PATH:
			if (before && s->text != NULL &&
			    (*(char **)at = strdup(s->text)) == NULL)
				return -1;
			break;
		case CONFIG_BOOL:
			if (before)
				*(bool *)at = strcmp(s->text, "true") == 0;
			break;
		case CONFIG_COUNT:
		case CONFIG_DURATION:
			if (*(unsigned *)at == 0)
				*(unsigned *)at = def;
			break;
		case CONFIG_RATE:
			if (*(double *)at == 0 && s->owned_rate != NULL)
				*(double *)at = *s->owned_rate;
			break;
		case CONFIG_SECRET_FILE:
		case CONFIG_SECRET_ENV:
		case CONFIG_DKIM:
		case CONFIG_WEB_USERS:
			break;
		}
	}
	if (!before && c->control == NULL) {
		/* beside a store file; with a PostgreSQL store (shared by
		 * several machines) each node's own, beside herald.yaml */
		c->control = store_pg_is_address(c->store)
		                 ? config_relative(c->file, STORE_PG_CONTROL)
		                 : store_control_for(c->store);
		if (c->control == NULL)
			return -1;
	}
	return 0;
}

struct config *config_load_flags(const char *path, unsigned flags,
                                 struct diag *d)
{
	struct config *c = calloc(1, sizeof(*c));
	struct ydoc *doc = NULL;
	const struct ydoc_node *root, *relay, *bounces, *web;
	size_t errors = d->errors;

	if (c == NULL || config_defaults(c, true) < 0) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	if (path == NULL)
		goto done;
	if ((c->file = strdup(path)) == NULL) {
		diag_add(d, path, 0, 0, "out of memory");
		goto fail;
	}
	doc = ydoc_load_file(path, NULL, d);
	if (doc == NULL)
		goto fail;
	if (doc->root == NULL)
		goto done; /* an empty file: the defaults */
	root = config_section(c, doc->root, "", "herald.yaml", d);
	if (root == NULL)
		goto fail;
	relay = config_section(c, field_get(root, "relay", false, d), "relay",
	                       "relay", d);
	config_section(c, field_get(root, "retry", false, d), "retry",
	               "retry", d);
	config_section(c, field_get(root, "limits", false, d), "limits",
	               "limits", d);
	config_section(c, field_get(root, "daemon", false, d), "daemon",
	               "daemon", d);
	bounces = config_section(c, field_get(root, "bounces", false, d),
	                         "bounces", "bounces", d);
	web = config_section(c, field_get(root, "web", false, d), "web", "web",
	                     d);
	config_relay(c, relay, flags, d);
	if (bounces != NULL)
		config_imap(c,
		            config_section(c,
		                           field_get(bounces, "imap", false, d),
		                           "bounces.imap", "bounces.imap", d),
		            flags, d);
	config_bounces(c, bounces, errors, d);
	config_web(c, web, d);
done:
	if (d->errors == errors && config_defaults(c, false) < 0)
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

struct config *config_load(const char *path, struct diag *d)
{
	return config_load_flags(path, 0, d);
}

/* ---- herald config ------------------------------------------------------ */

/* A duration as herald.yaml writes it: the largest unit it is a whole
 * number of (900 is 15m, 90 is 90s). */
static void config_print_duration(unsigned v, FILE *f)
{
	static const struct {
		unsigned seconds;
		char unit;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}};

	for (size_t i = 0; v > 0 && i < sizeof(units) / sizeof(units[0]); i++)
		if (v % units[i].seconds == 0) {
			fprintf(f, "%u%c", v / units[i].seconds, units[i].unit);
			return;
		}
	fprintf(f, v > 0 ? "%us" : "%u", v);
}

int config_print(const struct config *c, FILE *f)
{
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		const void *at = config_at_const(c, s);
		const char *text = NULL;

		fprintf(f, "%s =", s->name);
		switch (s->kind) {
		case CONFIG_TEXT:
		case CONFIG_PATH:
			text = *(char *const *)at;
			if (text != NULL)
				fprintf(f, " %s", text);
			break;
		case CONFIG_SECRET_FILE:
		case CONFIG_SECRET_ENV:
			fputs(*(char *const *)at != NULL ? " (set)" : " (unset)",
			      f);
			break;
		case CONFIG_BOOL:
			fputs(*(const bool *)at ? " true" : " false", f);
			break;
		case CONFIG_COUNT:
			fprintf(f, " %u", *(const unsigned *)at);
			break;
		case CONFIG_DURATION:
			fputc(' ', f);
			config_print_duration(*(const unsigned *)at, f);
			break;
		case CONFIG_RATE:
			fprintf(f, " %g", *(const double *)at);
			break;
		case CONFIG_DKIM:
			for (size_t k = 0; k < c->ndkim; k++)
				fprintf(f,
				        "%s{domain: %s, selector: %s, key: %s}",
				        k == 0 ? " [" : ", ", c->dkim[k].domain,
				        c->dkim[k].selector, c->dkim[k].key);
			if (c->ndkim > 0)
				fputc(']', f);
			break;
		case CONFIG_WEB_USERS:
			/* never the hashes */
			for (size_t k = 0; k < c->nweb_users; k++)
				fprintf(f, "%s{name: %s, role: %s}",
				        k == 0 ? " [" : ", ", c->web_users[k].name,
				        config_web_role_name(
				            c->web_users[k].role));
			if (c->nweb_users > 0)
				fputc(']', f);
			break;
		}
		fputc('\n', f);
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}
