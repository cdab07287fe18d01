/*
 * sched — rate limits for sending (see sched.h): a token bucket per relay
 * and per recipient domain. A bucket holds up to `burst` tokens and gains
 * `rate` tokens a second; a message takes one from its relay's bucket and
 * one from its domain's, or waits.
 *
 * Each kind of bucket lives in a fixed table made by sched_new(): an array
 * of max_keys buckets, a chained hash on the key, and a least-recently-used
 * list. When the table is full, a new key takes the slot of the bucket used
 * longest ago. That bucket has had the most time to refill, so forgetting
 * it (it starts full when it comes back) loosens the limit least; and a
 * list of 100,000 journalists at 20,000 domains costs max_keys buckets, not
 * 20,000. A kind without a limit has no table at all.
 */
#include "herald/sched.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * The defaults.
 */
const struct sched_limits sched_default_limits = {
    /* No limit: herald's relay is the operator's own MTA, which queues
     * what it takes, or a provider's submission service, which says when
     * it has had enough (421, "too many connections", 4xx to MAIL) and
     * trouble.c pauses it. The transport already caps connections. Set
     * it to a provider's documented sending rate when it has one. */
    .relay_per_second = 0,
    /* One second's worth (at least one): an event loop that wakes late
     * keeps what it earned meanwhile, and no larger burst forms. */
    .relay_burst = 0,
    /* No limit: a press list is spread over many domains, and the
     * relay's queue paces the rest. Where a receiving domain greylists
     * or defers a release for its rate (4.7.x replies at one outlet or
     * mail provider), 30 a minute — one message every two seconds — is
     * a sensible first setting: slower than such receivers' thresholds,
     * and 300 journalists at one outlet still have it in ten minutes. */
    .domain_per_minute = 0,
    /* One second's worth (at least one): the limit is a pace, and a
     * receiver that counts messages a minute sees no burst. */
    .domain_burst = 0,
    /* 4096 relays and 4096 domains: more domains than a press list
     * usually reaches, at about 300 bytes a bucket (1.2 MB for a limited
     * kind, nothing for an unlimited one). */
    .max_keys = 4096,
};

/* The longest key kept: a domain name has at most 253 characters. Longer
 * keys share the bucket of their first SCHED_KEY_MAX bytes. */
#define SCHED_KEY_MAX 255

/* The most buckets of a kind, whatever max_keys says: indexes are int32_t
 * and a million buckets is 300 MB. */
#define SCHED_KEYS_LIMIT (1u << 20)

/* Tokens are doubles: a message may go with a hair less than one token
 * left, so that waiting exactly sched_wait() seconds always suffices. */
#define SCHED_EPSILON 1e-9

struct sched_bucket {
	char key[SCHED_KEY_MAX + 1];
	double tokens;
	double last;          /* when tokens was computed */
	uint32_t hash;        /* of key */
	int32_t hnext;        /* next in the hash chain, -1: none */
	int32_t newer, older; /* the LRU list, -1: none */
};

struct sched_table {
	double rate;  /* tokens a second; 0: no limit, no buckets */
	double burst; /* at least 1 */
	bool fold;    /* keys without regard to ASCII case */
	size_t cap, used;
	struct sched_bucket *b; /* cap buckets */
	int32_t *heads;         /* nheads chains, -1: empty */
	size_t nheads;          /* a power of two, at least 2 * cap */
	int32_t newest, oldest;
};

struct sched {
	struct sched_table relay, domain;
};

static int sched_table_init(struct sched_table *t, double per_second,
                            double burst, bool fold, size_t cap)
{
	size_t i;

	memset(t, 0, sizeof *t);
	t->newest = t->oldest = -1;
	if (!(per_second > 0))
		return 0;
	t->rate = per_second;
	t->burst = burst > 0 ? burst : per_second;
	if (t->burst < 1)
		t->burst = 1;
	t->fold = fold;
	t->cap = cap;
	t->nheads = 1;
	while (t->nheads < 2 * cap)
		t->nheads *= 2;
	t->b = calloc(cap, sizeof *t->b);
	t->heads = malloc(t->nheads * sizeof *t->heads);
	if (t->b == NULL || t->heads == NULL)
		return -1;
	for (i = 0; i < t->nheads; i++)
		t->heads[i] = -1;
	return 0;
}

static void sched_table_free(struct sched_table *t)
{
	free(t->b);
	free(t->heads);
}

struct sched *sched_new(const struct sched_limits *l)
{
	struct sched *s;
	size_t cap;

	if (l == NULL)
		l = &sched_default_limits;
	cap = l->max_keys != 0 ? l->max_keys : sched_default_limits.max_keys;
	if (cap > SCHED_KEYS_LIMIT)
		cap = SCHED_KEYS_LIMIT;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	if (sched_table_init(&s->relay, l->relay_per_second, l->relay_burst,
	                     false, cap) < 0 ||
	    sched_table_init(&s->domain, l->domain_per_minute / 60.0,
	                     l->domain_burst, true, cap) < 0)
		goto fail;
	return s;
fail:
	sched_free(s);
	return NULL;
}

void sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	sched_table_free(&s->domain);
	sched_table_free(&s->relay);
	free(s);
}

/* The key as stored (truncated, folded) into k, and its hash (FNV-1a). */
static uint32_t sched_key(const struct sched_table *t, const char *key,
                          char k[SCHED_KEY_MAX + 1])
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < SCHED_KEY_MAX && key[i] != '\0'; i++) {
		char c = key[i];

		if (t->fold && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		k[i] = c;
		h = (h ^ (uint8_t)c) * 16777619u;
	}
	k[i] = '\0';
	return h;
}

static int32_t sched_find(const struct sched_table *t, const char *k,
                          uint32_t h)
{
	int32_t i;

	for (i = t->heads[h & (t->nheads - 1)]; i >= 0; i = t->b[i].hnext)
		if (t->b[i].hash == h && strcmp(t->b[i].key, k) == 0)
			return i;
	return -1;
}

static void sched_lru_unlink(struct sched_table *t, int32_t i)
{
	struct sched_bucket *b = &t->b[i];

	if (b->newer >= 0)
		t->b[b->newer].older = b->older;
	else
		t->newest = b->older;
	if (b->older >= 0)
		t->b[b->older].newer = b->newer;
	else
		t->oldest = b->newer;
	b->newer = b->older = -1;
}

static void sched_lru_push(struct sched_table *t, int32_t i)
{
	struct sched_bucket *b = &t->b[i];

	b->newer = -1;
	b->older = t->newest;
	if (t->newest >= 0)
		t->b[t->newest].newer = i;
	t->newest = i;
	if (t->oldest < 0)
		t->oldest = i;
}

static void sched_hash_unlink(struct sched_table *t, int32_t i)
{
	int32_t *p = &t->heads[t->b[i].hash & (t->nheads - 1)];

	while (*p != i)
		p = &t->b[*p].hnext;
	*p = t->b[i].hnext;
}

/* The bucket for key, made (full) or reused from the oldest when new,
 * moved to the front of the LRU list. */
static struct sched_bucket *sched_get(struct sched_table *t, const char *key,
                                      double now)
{
	char k[SCHED_KEY_MAX + 1];
	uint32_t h = sched_key(t, key, k);
	int32_t i = sched_find(t, k, h);
	struct sched_bucket *b;

	if (i >= 0) {
		sched_lru_unlink(t, i);
		sched_lru_push(t, i);
		return &t->b[i];
	}
	if (t->used < t->cap) {
		i = (int32_t)t->used++;
	} else {
		i = t->oldest;
		sched_lru_unlink(t, i);
		sched_hash_unlink(t, i);
	}
	b = &t->b[i];
	memcpy(b->key, k, sizeof b->key);
	b->hash = h;
	b->tokens = t->burst;
	b->last = now;
	b->hnext = t->heads[h & (t->nheads - 1)];
	t->heads[h & (t->nheads - 1)] = i;
	sched_lru_push(t, i);
	return b;
}

/* The tokens b holds at now. Time before b->last earns nothing. */
static double sched_tokens_at(const struct sched_table *t,
                              const struct sched_bucket *b, double now)
{
	double tokens = b->tokens;

	if (now > b->last)
		tokens += (now - b->last) * t->rate;
	return tokens < t->burst ? tokens : t->burst;
}

static struct sched_bucket *sched_refill(struct sched_table *t, const char *key,
                                         double now)
{
	struct sched_bucket *b;

	if (t->rate <= 0 || key == NULL)
		return NULL;
	b = sched_get(t, key, now);
	b->tokens = sched_tokens_at(t, b, now);
	if (now > b->last)
		b->last = now;
	return b;
}

bool sched_take(struct sched *s, const char *relay, const char *domain,
                double now)
{
	struct sched_bucket *rb = sched_refill(&s->relay, relay, now);
	struct sched_bucket *db = sched_refill(&s->domain, domain, now);

	if ((rb != NULL && rb->tokens < 1 - SCHED_EPSILON) ||
	    (db != NULL && db->tokens < 1 - SCHED_EPSILON))
		return false;
	if (rb != NULL)
		rb->tokens -= 1;
	if (db != NULL)
		db->tokens -= 1;
	return true;
}

static double sched_table_wait(const struct sched_table *t, const char *key,
                               double now)
{
	char k[SCHED_KEY_MAX + 1];
	uint32_t h;
	int32_t i;
	double tokens;

	if (t->rate <= 0 || key == NULL)
		return 0;
	h = sched_key(t, key, k);
	i = sched_find(t, k, h);
	if (i < 0)
		return 0; /* a new bucket starts full */
	tokens = sched_tokens_at(t, &t->b[i], now);
	if (tokens >= 1 - SCHED_EPSILON)
		return 0;
	/* From the later of now and the bucket's last use: time before
	 * that earns nothing. */
	return (1 - tokens) / t->rate +
	       (t->b[i].last > now ? t->b[i].last - now : 0);
}

double sched_wait(const struct sched *s, const char *relay, const char *domain,
                  double now)
{
	double r = sched_table_wait(&s->relay, relay, now);
	double d = sched_table_wait(&s->domain, domain, now);

	return r > d ? r : d;
}

size_t sched_keys(const struct sched *s)
{
	return s->relay.used + s->domain.used;
}
