/*
 * sched — how fast herald may send: a token bucket per relay (messages per
 * second) and one per recipient domain (messages per minute), so a list
 * with 300 journalists at one outlet does not arrive at its mail server as
 * one burst. How many connections a relay gets is the transport's limit
 * (transport_config.max_connections), not this one's.
 *
 * A message may go when both its relay's and its domain's bucket hold a
 * token; sched_take() takes one from each or from neither. Buckets are
 * kept for at most max_keys relays and max_keys domains, whatever the size
 * of the list: when a new one is needed, the least recently used is
 * forgotten (it starts full again if it comes back). Memory is allocated
 * by sched_new() only, so taking and waiting never fail.
 *
 * Pure logic: no clock (now is an argument, seconds on any monotonic
 * scale), no I/O. Library code: NULL on failure.
 */
#ifndef HERALD_SCHED_H
#define HERALD_SCHED_H

#include <stdbool.h>
#include <stddef.h>

/* A limit of 0 (or less) is no limit; a burst or max_keys of 0 takes the
 * default (sched.c says why each). */
struct sched_limits {
	double relay_per_second;  /* messages per second through a relay */
	double relay_burst;       /* messages at once (0: one second's worth,
	                           * at least 1) */
	double domain_per_minute; /* messages per minute to one domain */
	double domain_burst;      /* messages at once (0: one second's worth,
	                           * at least 1) */
	size_t max_keys;          /* buckets kept per kind (0: 4096) */
};

/* The defaults (sched.c says why each). */
extern const struct sched_limits sched_default_limits;

struct sched;

/* A limiter with limits l (NULL: the defaults), copied. NULL when out of
 * memory. Free with sched_free(). */
struct sched *sched_new(const struct sched_limits *l);

/*
 * May a message to domain through relay go at now? If both buckets hold a
 * token, take one from each and return true; otherwise take none and
 * return false. relay is matched exactly (the relay's URL), domain without
 * regard to ASCII case; NULL skips that bucket. Keys longer than 255 bytes
 * share the bucket of their first 255. now must not go backwards by much:
 * a bucket never refills for time before its last use.
 */
bool sched_take(struct sched *s, const char *relay, const char *domain,
                double now);

/* Seconds from now until sched_take() would allow the message (0: now).
 * Changes nothing. */
double sched_wait(const struct sched *s, const char *relay, const char *domain,
                  double now);

/* How many buckets (relays and domains) s holds now; at most twice
 * max_keys. */
size_t sched_keys(const struct sched *s);

/* Free s (NULL: nothing). */
void sched_free(struct sched *s);

#endif
