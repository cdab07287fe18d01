/*
 * web_throttle — herald-web's login throttling (see web_throttle.h for
 * the rule): a fixed table of keys, a slot free when its key is "".
 */
#include "herald/web_throttle.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct web_throttle_key {
	char key[80];      /* "a:" or "n:" and the address or name */
	unsigned fails;    /* failures in the window */
	unsigned lockouts; /* lockouts in the window */
	time_t start;      /* the window's first failure */
	time_t until;      /* locked out until */
	time_t last;       /* the last failure */
};

struct web_throttle {
	struct web_throttle_key k[WEB_THROTTLE_KEYS];
};

struct web_throttle *web_throttle_new(void)
{
	return calloc(1, sizeof(struct web_throttle));
}

void web_throttle_free(struct web_throttle *t)
{
	free(t);
}

static void web_throttle_name(enum web_throttle_kind k, const char *key,
                              char out[80])
{
	snprintf(out, 80, "%c:%s", k == WEB_THROTTLE_ADDR ? 'a' : 'n', key);
}

/* key's slot; with make, a new one when it has none. */
static struct web_throttle_key *web_throttle_find(struct web_throttle *t,
                                                  enum web_throttle_kind k,
                                                  const char *key, time_t now,
                                                  bool make)
{
	struct web_throttle_key *free_slot = NULL, *oldest = NULL;
	struct web_throttle_key *unlocked = NULL;
	char name[80];

	web_throttle_name(k, key, name);
	for (size_t i = 0; i < WEB_THROTTLE_KEYS; i++) {
		struct web_throttle_key *s = &t->k[i];
		if (s->key[0] == '\0') {
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (strcmp(s->key, name) == 0)
			return s;
		if (oldest == NULL || s->last < oldest->last)
			oldest = s;
		if (s->until <= now &&
		    (unlocked == NULL || s->last < unlocked->last))
			unlocked = s;
	}
	if (!make)
		return NULL;
	if (free_slot == NULL)
		free_slot = unlocked != NULL ? unlocked : oldest;
	memset(free_slot, 0, sizeof(*free_slot));
	memcpy(free_slot->key, name, sizeof(name));
	return free_slot;
}

long web_throttle_wait(struct web_throttle *t, enum web_throttle_kind k,
                       const char *key, time_t now)
{
	struct web_throttle_key *s = web_throttle_find(t, k, key, now, false);

	return s != NULL && s->until > now ? (long)(s->until - now) : 0;
}

void web_throttle_fail(struct web_throttle *t, enum web_throttle_kind k,
                       const char *key, time_t now)
{
	struct web_throttle_key *s = web_throttle_find(t, k, key, now, true);
	unsigned limit = k == WEB_THROTTLE_ADDR ? WEB_THROTTLE_ADDR_FAILS
	                                        : WEB_THROTTLE_FAILS;

	if (s->fails == 0 || now - s->start >= WEB_THROTTLE_WINDOW) {
		s->fails = 0;
		s->lockouts = 0;
		s->start = now;
	}
	s->fails++;
	s->last = now;
	if (s->fails >= limit) {
		long delay = WEB_THROTTLE_DELAY;
		for (unsigned i = 0;
		     i < s->lockouts && delay < WEB_THROTTLE_DELAY_MAX; i++)
			delay *= 2;
		if (delay > WEB_THROTTLE_DELAY_MAX)
			delay = WEB_THROTTLE_DELAY_MAX;
		s->lockouts++;
		s->until = now + delay;
	}
}

void web_throttle_clear(struct web_throttle *t, enum web_throttle_kind k,
                        const char *key)
{
	struct web_throttle_key *s = web_throttle_find(t, k, key, 0, false);

	if (s != NULL)
		memset(s, 0, sizeof(*s));
}
