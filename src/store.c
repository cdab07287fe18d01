/*
 * store — the interface to herald's durable state (see store.h): the names
 * of delivery and release states as the store, the log and the CLI spell
 * them, and the choice of backend for a store path. The backends
 * (store_sqlite.c) hold everything else, so a second kind of store is one
 * more file and one more line in store_backend_for.
 */
#include "herald/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by enum store_state: the words admins read in `herald status`
 * and `herald log`, and the values the SQLite store keeps on disk (so
 * renaming one is a schema migration). */
static const char *const store_state_names[STORE_NSTATES] = {
    [STORE_QUEUED] = "queued",
    [STORE_SENDING] = "sending",
    [STORE_SENT] = "sent",
    [STORE_DEFERRED] = "deferred",
    [STORE_FAILED] = "failed",
    [STORE_BOUNCED] = "bounced",
    [STORE_COMPLAINED] = "complained",
    [STORE_EXPIRED] = "expired",
    [STORE_SUPPRESSED] = "suppressed",
    [STORE_CANCELLED] = "cancelled",
};

static const char *const store_release_state_names[] = {
    [STORE_RELEASE_ACTIVE] = "active",
    [STORE_RELEASE_PAUSED] = "paused",
    [STORE_RELEASE_CANCELLED] = "cancelled",
    [STORE_RELEASE_DONE] = "done",
};
#define STORE_NRELEASE_STATES                                                  \
	(sizeof(store_release_state_names) /                                   \
	 sizeof(store_release_state_names[0]))

/* Indexed by enum store_log_result: the words of `herald log`'s result
 * column and of its --state. */
static const char *const store_log_result_names[STORE_LOG_NRESULTS] = {
    [STORE_LOG_SENT] = "sent",
    [STORE_LOG_DEFERRED] = "deferred",
    [STORE_LOG_FAILED] = "failed",
    [STORE_LOG_EXPIRED] = "expired",
    [STORE_LOG_BOUNCED] = "bounced",
    [STORE_LOG_COMPLAINED] = "complained",
    [STORE_LOG_UNSUBSCRIBED] = "unsubscribed",
    [STORE_LOG_SUPPRESSED] = "suppressed",
};

/* The URL schemes of stores this herald has no backend for: named so that
 * an operator who configures one gets a clear answer instead of a SQLite
 * file called "postgresql:". */
static const char *const store_foreign_schemes[] = {
    "postgresql:", "postgres:", NULL};

/* The index of name in names[n], or -1. */
static int store_name_index(const char *const *names, unsigned n,
                            const char *name)
{
	for (unsigned i = 0; name != NULL && i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}

const char *store_state_name(enum store_state s)
{
	if ((unsigned)s >= STORE_NSTATES)
		return "unknown";
	return store_state_names[s];
}

int store_state_parse(const char *name, enum store_state *out)
{
	int i = store_name_index(store_state_names, STORE_NSTATES, name);

	if (i < 0)
		return -1;
	*out = (enum store_state)i;
	return 0;
}

const char *store_release_state_name(enum store_release_state s)
{
	if ((unsigned)s >= STORE_NRELEASE_STATES)
		return "unknown";
	return store_release_state_names[s];
}

int store_release_state_parse(const char *name, enum store_release_state *out)
{
	int i = store_name_index(store_release_state_names,
	                         STORE_NRELEASE_STATES, name);

	if (i < 0)
		return -1;
	*out = (enum store_release_state)i;
	return 0;
}

const char *store_log_result_name(enum store_log_result r)
{
	if ((unsigned)r >= STORE_LOG_NRESULTS)
		return "unknown";
	return store_log_result_names[r];
}

int store_log_result_parse(const char *name, enum store_log_result *out)
{
	int i = store_name_index(store_log_result_names, STORE_LOG_NRESULTS,
	                         name);

	if (i < 0)
		return -1;
	*out = (enum store_log_result)i;
	return 0;
}

const struct store_backend *store_backend_for(const char *path)
{
	if (path == NULL || *path == '\0')
		return NULL;
	for (size_t i = 0; store_foreign_schemes[i] != NULL; i++)
		if (strncmp(path, store_foreign_schemes[i],
		            strlen(store_foreign_schemes[i])) == 0)
			return NULL;
	return &store_sqlite_backend;
}

struct store *store_open_flags(const char *path, unsigned flags,
                               struct diag *d)
{
	const struct store_backend *b = store_backend_for(path);
	struct store *st;

	if (b == NULL) {
		diag_add(d, path != NULL && *path ? path : NULL, 0, 0,
		         "no store backend for \"%s\": this herald keeps its "
		         "store in a SQLite file (give a file name)",
		         path != NULL ? path : "");
		errno = EINVAL;
		return NULL;
	}
	if ((st = b->open(path, flags, d)) == NULL)
		return NULL; /* errno set by the backend */
	st->ops = b;
	return st;
}

struct store *store_open(const char *path, struct diag *d)
{
	return store_open_flags(path, STORE_OPEN_CREATE, d);
}

const struct store_backend *store_ops(const struct store *st)
{
	return st->ops;
}

void store_close(struct store *st)
{
	if (st != NULL)
		st->ops->close(st);
}

const char *store_event_kind_name(enum store_event_kind k)
{
	static const char *const names[] = {"bounce", "complaint", "autoreply",
	                                    "unsubscribe", "unknown"};

	return (unsigned)k < sizeof(names) / sizeof(*names) ? names[k]
	                                                    : "unknown";
}

char *store_evidence(const char *prefix, const char *text)
{
	size_t pl = prefix != NULL ? strlen(prefix) : 0, n, i;
	char *out;

	if (text == NULL)
		return NULL;
	n = strlen(text);
	if (n > STORE_EVIDENCE_TEXT_MAX) {
		n = STORE_EVIDENCE_TEXT_MAX;
		/* not in the middle of a UTF-8 character */
		while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
			n--;
	}
	if ((out = malloc(pl + n + 1)) == NULL)
		return NULL;
	if (pl > 0)
		memcpy(out, prefix, pl);
	for (i = 0; i < n; i++) {
		char c = text[i];
		out[pl + i] = c == '\r' || c == '\n' || c == '\t' ? ' ' : c;
	}
	out[pl + n] = '\0';
	return out;
}

void store_window_text(unsigned seconds, char *buf, size_t size)
{
	static const struct {
		unsigned n;
		const char *name;
	} units[] = {
	    {86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
	size_t i = 0;

	while (seconds != 0 && i + 1 < sizeof(units) / sizeof(units[0]) &&
	       seconds % units[i].n != 0)
		i++;
	if (seconds == 0)
		i = sizeof(units) / sizeof(units[0]) - 1;
	snprintf(buf, size, "%u %s%s", seconds / units[i].n, units[i].name,
	         seconds / units[i].n == 1 ? "" : "s");
}
