/*
 * web_session — herald-web's admin sessions in memory (see
 * web_session.h): a fixed table of WEB_SESSION_MAX slots, a slot free
 * when its id is "".
 */
#include "herald/web_session.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct web_sessions {
	unsigned idle;
	struct web_session s[WEB_SESSION_MAX];
};

struct web_sessions *web_sessions_new(unsigned idle)
{
	struct web_sessions *t = calloc(1, sizeof(*t));

	if (t != NULL)
		t->idle = idle;
	return t;
}

void web_sessions_free(struct web_sessions *t)
{
	if (t == NULL)
		return;
	explicit_bzero(t, sizeof(*t));
	free(t);
}

/* 32 random bytes as 64 hex digits into out. */
static int web_session_random(char out[WEB_SESSION_ID + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[WEB_SESSION_ID / 2];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[WEB_SESSION_ID] = '\0';
	explicit_bzero(b, sizeof(b));
	return 0;
}

bool web_session_equal(const char *a, const char *b)
{
	unsigned char diff = 0;

	if (a == NULL || b == NULL || strlen(a) != WEB_SESSION_ID ||
	    strlen(b) != WEB_SESSION_ID)
		return false;
	for (size_t i = 0; i < WEB_SESSION_ID; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

static bool web_session_live(const struct web_sessions *t,
                             const struct web_session *s, time_t now)
{
	return s->id[0] != '\0' && now - s->last < (time_t)t->idle;
}

const struct web_session *
web_session_new(struct web_sessions *t, const char *user, int role, time_t now)
{
	struct web_session *slot = NULL, fresh = {0};

	if (web_session_random(fresh.id) < 0 ||
	    web_session_random(fresh.csrf) < 0)
		return NULL;
	snprintf(fresh.user, sizeof(fresh.user), "%s", user);
	fresh.role = role;
	fresh.last = now;
	/* a free or expired slot, else the one idle longest */
	for (size_t i = 0; i < WEB_SESSION_MAX; i++) {
		struct web_session *s = &t->s[i];
		if (!web_session_live(t, s, now)) {
			slot = s;
			break;
		}
		if (slot == NULL || s->last < slot->last)
			slot = s;
	}
	*slot = fresh;
	explicit_bzero(&fresh, sizeof(fresh));
	return slot;
}

/* The slot whose id is id, comparing with every slot. */
static struct web_session *web_session_slot(struct web_sessions *t,
                                            const char *id)
{
	struct web_session *found = NULL;

	if (id == NULL || strlen(id) != WEB_SESSION_ID)
		return NULL;
	for (size_t i = 0; i < WEB_SESSION_MAX; i++)
		if (web_session_equal(t->s[i].id, id) && found == NULL)
			found = &t->s[i];
	return found;
}

const struct web_session *web_session_find(struct web_sessions *t,
                                           const char *id, time_t now)
{
	struct web_session *s = web_session_slot(t, id);

	if (s == NULL)
		return NULL;
	if (!web_session_live(t, s, now)) {
		explicit_bzero(s, sizeof(*s));
		return NULL;
	}
	s->last = now;
	return s;
}

void web_session_end(struct web_sessions *t, const char *id)
{
	struct web_session *s = web_session_slot(t, id);

	if (s != NULL)
		explicit_bzero(s, sizeof(*s));
}
