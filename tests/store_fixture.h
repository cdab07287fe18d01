/*
 * store_fixture — what the store's tests share (store_fixture.c): the
 * store's calls wrapped so that a failure fails the test with its reason,
 * and made-up recipients and releases.
 */
#ifndef HERALD_TEST_STORE_FIXTURE_H
#define HERALD_TEST_STORE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "herald/store.h"

/* store_open(path), or the test fails. */
struct store *open_ok(const char *path);

/* Recipients made up for a test: name<i>@<domain>, Message-ID
 * <tag>.<i>@herald.test; the strings live in one block. */
struct rcpts {
	struct store_recipient *v;
	char *mem;
	size_t n;
};

#define RCPT_LEN 64

void rcpts_make(struct rcpts *r, const char *tag, size_t n, const char *domain);
void rcpts_free(struct rcpts *r);

/* store_release_add_each's source over an array of recipients. */
struct each_src {
	const struct store_recipient *v;
	size_t n, i;
	int fail_at; /* 1-based: fail at this one, 0: never */
};

int each_next(void *arg, struct store_recipient *r);

/* Queue rn for the n recipients v, as store_release_add_each does; out
 * as it sets it (only_new false). */
int queue(struct store *st, const struct store_release_new *rn,
          const struct store_recipient *v, size_t n,
          struct store_release_added *out, struct diag *d);

/* A release of n made-up recipients at domain (j0@domain, ...); only_new:
 * a name queued before takes only the addresses it has not reached. The
 * test fails unless it is queued. add_release: at example.org, not
 * only_new. */
int64_t add_release_to(struct store *st, const char *name, size_t n,
                       const char *domain, bool only_new, time_t not_before,
                       time_t stale_after);
int64_t add_release(struct store *st, const char *name, size_t n,
                    time_t not_before, time_t stale_after);

/* Put email on the suppression list as an admin does, with no rule. */
int suppress(struct store *st, const char *email, const char *reason,
             struct diag *d);

/* Is email on the suppression list, written as the list keeps it (the
 * domain in lower case)? */
int suppressed(struct store *st, const char *email, bool *yes, struct diag *d);

/* store_claim, store_record of one attempt (relay, texts and duration
 * made up), store_release_get: the test fails if the call does. */
int claim(struct store *st, time_t now, unsigned lease, size_t max,
          struct store_delivery *out);
void record(struct store *st, int64_t id, time_t at, enum store_state result,
            time_t next_at, bool counts, int code);
struct store_release_info release_info(struct store *st, int64_t id);

/* A delivery as store_delivery_get shows it. */
struct got {
	enum store_state state;
	unsigned attempts;
	time_t next_at;
	int last_code;
	char release[128];
	char email[128];
};

int got_fn(void *arg, const struct store_delivery *dl, const char *release);
struct got delivery(struct store *st, int64_t id);

/* store_releases_each's fn counting into a size_t, and the count. */
int count_releases_fn(void *arg, const struct store_release_info *r);
size_t count_releases(struct store *st);

#endif
