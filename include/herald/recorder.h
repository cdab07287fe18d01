/*
 * recorder — heraldd's results on their way into the store: the pending
 * batch of delivery attempts, their grouped commit, and the pause while
 * the store refuses writes (a full disk).
 *
 * The loop hands each attempt over as the relay answers (recorder_add);
 * the recorder commits the batch in one transaction (recorder_flush) and
 * only then writes the attempts' log lines: nothing is reported sent
 * before the store has it. A commit that fails keeps the batch, and the
 * loop claims and sends nothing until a later try succeeds
 * (recorder_pause, recorder_resume): results that cannot be recorded are
 * never joined by more. The deliveries stay `sending` meanwhile, held by
 * their lease: at least once, never lost.
 *
 * Daemon code: failures are logged (log.h) and returned as -1; a result
 * that cannot be kept for want of memory is dropped, and its delivery's
 * lease brings it back.
 */
#ifndef HERALD_RECORDER_H
#define HERALD_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "herald/store.h"
#include "herald/transport.h"
#include "herald/trouble.h"

enum {
	/* the longest an attempt waits for its commit, so logs and status
	 * stay current under light load */
	RECORDER_FLUSH_MS = 50,
	/* a store that refuses writes (disk full, I/O error, locked): nothing
	 * is claimed or sent until it takes one again, tried after 1 s, then
	 * 2, 4, 8, 16: soon back once space is freed, and a full disk costs
	 * one failed transaction (and two log lines) every 16 s */
	RECORDER_RETRY_MIN = 1,
	RECORDER_RETRY_MAX = 16,
};

struct recorder_pending;

/* The loop reads n, backoff and paused_until; only recorder_* write them. */
struct recorder {
	struct store *st;
	FILE *log;
	size_t batch; /* a flush is due at this many results */
	struct recorder_pending *pending;
	size_t n;              /* results waiting for their commit */
	struct timespec first; /* when the first of them came */
	/* the store refused a write: seconds to the next try (0: it takes
	 * writes), and when */
	unsigned backoff;
	time_t paused_until;
};

/* One attempt as the relay answered it and trouble.c judged it. Copied:
 * nothing here need outlive recorder_add. */
struct recorder_attempt {
	int64_t release, delivery;
	const char *to;                 /* the recipient's address */
	unsigned attempt;               /* 1-based */
	const struct timespec *started; /* CLOCK_MONOTONIC, at the claim */
	const char *relay;              /* the relay's URL, or NULL */
	const struct transport_reply *rep;
	const struct trouble_decision *dec;
	enum store_state result;
	/* false: the relay's fault, uncharged (logged "relay-deferred") */
	bool counts;
};

/* An empty recorder writing to st and logging to log; a flush is due at
 * batch results. */
void recorder_init(struct recorder *r, struct store *st, FILE *log,
                   size_t batch);

/* Add an attempt to the batch, with its log line. */
void recorder_add(struct recorder *r, const struct recorder_attempt *ra);

/* Is a commit due: batch results waiting, or the first of them waiting
 * RECORDER_FLUSH_MS, or some waiting and nothing in flight? Never while
 * the store is paused. */
bool recorder_due(const struct recorder *r, size_t in_flight);

/* Milliseconds until the commit is due (at least 1), or -1 when nothing
 * waits. */
int recorder_wait_ms(const struct recorder *r);

/* Commit every waiting attempt in one transaction, then log them. 0, or
 * -1 (logged) with the attempts still waiting. */
int recorder_flush(struct recorder *r);

/* The last flush (stopping): what still cannot be recorded is given up
 * and logged; those deliveries go again when their lease ends. */
void recorder_flush_last(struct recorder *r);

/* A write to the store failed: pause (the next try in 1 s, doubling up
 * to RECORDER_RETRY_MAX), and log it; in_flight is for the line. */
void recorder_pause(struct recorder *r, time_t now, size_t in_flight);

/* A try after a pause succeeded, recording `recorded` results: log it and
 * take writes again. */
void recorder_resume(struct recorder *r, size_t recorded);

/* Free what is left (after recorder_flush_last). */
void recorder_free(struct recorder *r);

#endif
