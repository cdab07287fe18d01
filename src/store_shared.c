/*
 * store_shared — what the store backends share (see store_shared.h).
 */
#include "store_shared.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/store.h"

void store_shared_states(char *buf, size_t size, unsigned set)
{
	size_t len;
	int n = 0;

	for (unsigned i = 0; i < STORE_NSTATES; i++)
		n += (set & DSTATE_BIT(i)) != 0;
	snprintf(buf, size, "%s", n == 1 ? "state = " : "state IN (");
	for (unsigned i = 0, k = 0; i < STORE_NSTATES; i++)
		if (set & DSTATE_BIT(i)) {
			len = strlen(buf);
			snprintf(buf + len, size - len, "%s'%s'", k++ ? ", " : "",
			         store_state_name((enum store_state)i));
		}
	len = strlen(buf);
	if (n != 1)
		snprintf(buf + len, size - len, "%s", n == 0 ? "NULL)" : ")");
}

const char *store_shared_to(enum dstate_event ev)
{
	static const char requeue[] =
	    "CASE WHEN tries > 0 THEN 'deferred' ELSE 'queued' END";
	static const char *const one[STORE_NSTATES] = {
	    [STORE_QUEUED] = "'queued'",         [STORE_SENDING] = "'sending'",
	    [STORE_SENT] = "'sent'",             [STORE_DEFERRED] = "'deferred'",
	    [STORE_FAILED] = "'failed'",         [STORE_BOUNCED] = "'bounced'",
	    [STORE_COMPLAINED] = "'complained'", [STORE_EXPIRED] = "'expired'",
	    [STORE_SUPPRESSED] = "'suppressed'", [STORE_CANCELLED] = "'cancelled'",
	};
	unsigned to = dstate_to(ev);

	if (to == (DSTATE_BIT(STORE_QUEUED) | DSTATE_BIT(STORE_DEFERRED)))
		return requeue;
	for (unsigned i = 0; i < STORE_NSTATES; i++)
		if (to == DSTATE_BIT(i))
			return one[i];
	return NULL;
}

bool store_shared_records(unsigned records, const char *set,
                          const char *mark)
{
	static const struct {
		unsigned flag;
		const char *sql; /* a parameter's place: "%s" */
	} cols[] = {
	    {DSTATE_SETS_LEASE, "lease_until = %s"},
	    {DSTATE_CLEARS_LEASE, "lease_until = NULL"},
	    {DSTATE_SETS_OWNER, "owner = "},
	    {DSTATE_CLEARS_HANDED, "handed_at = NULL"},
	    {DSTATE_SETS_NEXT, "next_at = "},
	    {DSTATE_SETS_RETRIED, "retried_at = "},
	    {DSTATE_MAY_DUPLICATE, "may_duplicate = "},
	    {DSTATE_SETS_UPDATED, "updated_at = "},
	};

	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		char want[64];
		const char *p = strstr(cols[i].sql, "%s");
		if (p != NULL)
			snprintf(want, sizeof(want), "%.*s%s",
			         (int)(p - cols[i].sql), cols[i].sql, mark);
		else
			snprintf(want, sizeof(want), "%s", cols[i].sql);
		if (((records & cols[i].flag) != 0) !=
		    (strstr(set, want) != NULL))
			return false;
	}
	return true;
}

const char *store_shared_key(char **buf, size_t *cap, const char *email)
{
	size_t len = strlen(email);
	const char *at = strrchr(email, '@');

	if (len + 1 > *cap) {
		/* any real address fits the first one (RFC 5321: 254) */
		size_t want = len + 1 > 256 ? len + 1 : 256;
		char *k = realloc(*buf, want);
		if (k == NULL)
			return NULL;
		*buf = k;
		*cap = want;
	}
	memcpy(*buf, email, len + 1);
	if (at != NULL)
		for (char *p = *buf + (at - email) + 1; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return *buf;
}

void store_shared_cut(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src);

	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
}

void store_shared_shown(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src), keep;
	const char *tail;

	if (len < size) {
		memcpy(dst, src, len + 1);
		return;
	}
	keep = size - 4;
	tail = src + len - keep;
	while (*tail != '\0' && ((unsigned char)*tail & 0xc0) == 0x80)
		tail++;
	memcpy(dst, "...", 3);
	memcpy(dst + 3, tail, strlen(tail) + 1);
}

int64_t store_shared_release_due(int64_t not_before, bool has_next,
                                 int64_t next_at, bool has_lease,
                                 int64_t lease_until)
{
	int64_t t = has_next ? next_at : 0;

	if (has_lease && (!has_next || lease_until + 1 < t))
		t = lease_until + 1;
	if (!has_next && !has_lease)
		return 0;
	return t < not_before ? not_before : t;
}

bool store_shared_parse_id(const char *s, int64_t *id)
{
	int64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	*id = v;
	return true;
}

int store_shared_copy_out(const char *where, const char *label, const char *v,
                          char *buf, size_t size, struct diag *d)
{
	size_t len = strlen(v);

	if (buf == NULL)
		return 0;
	if (len >= size) {
		diag_add(d, where, 0, 0,
		         "the release's %s (%zu bytes) does not fit in %zu "
		         "bytes",
		         label, len, size);
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, v, len + 1);
	return 0;
}
