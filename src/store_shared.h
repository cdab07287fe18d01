/*
 * store_shared — what the store backends (store_sqlite.c, store_pg*.c)
 * share beside the interface: the SQL texts dstate's moves become, the
 * address as the suppression list keeps it, and the strings a release is
 * shown with. Not an interface: only the backends include it.
 */
#ifndef HERALD_STORE_SHARED_H
#define HERALD_STORE_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/diag.h"
#include "herald/dstate.h"

/* "state = 'sending'" or "state IN ('queued', 'deferred')": the states of
 * a dstate set (a single one as "=", which is how the partial indexes are
 * written), into buf[size] (256 holds every set). */
void store_shared_states(char *buf, size_t size, unsigned set);

/* The state ev writes as SQL when it has one target ("'sent'"), or
 * deferred/queued by tries when it gives a delivery back; NULL when
 * dstate_next chooses by more than that (the caller says how, in SQL). */
const char *store_shared_to(enum dstate_event ev);

/* Does set (a SET clause) write what dstate_records says a move records,
 * and nothing else dstate knows of? mark is how the backend writes a
 * parameter ("?" for SQLite, "$" for PostgreSQL). A move whose SQL
 * disagrees fails every time, so the table in dstate.c and the SQL cannot
 * drift apart unnoticed. */
bool store_shared_records(unsigned records, const char *set,
                          const char *mark);

/* The address as the suppression list keeps it: the local part as
 * written (it may be case-sensitive), the domain in lower case (it never
 * is). Into *buf (grown as needed, *cap its size), valid until the next
 * call with it; NULL when out of memory. */
const char *store_shared_key(char **buf, size_t *cap, const char *email);

/* Copy src into dst[size], cut on a character boundary if it must be. */
void store_shared_cut(char *dst, size_t size, const char *src);

/* A path for people: "..." and its end when it does not fit. */
void store_shared_shown(char *dst, size_t size, const char *src);

/* When an active release has work next (store_next_due): its earliest
 * waiting delivery (has_next: next_at) or the second after its earliest
 * lease runs out (has_lease: lease_until), whichever comes first, but not
 * before its embargo (not_before); 0 when it has neither. */
int64_t store_shared_release_due(int64_t not_before, bool has_next,
                                 int64_t next_at, bool has_lease,
                                 int64_t lease_until);

/* A release given by number ("12"): true with *id; false for a name. */
bool store_shared_parse_id(const char *s, int64_t *id);

/* A release's stored path v into buf[size] (buf NULL: not wanted); one
 * that does not fit is an error naming the store (where) and label. */
int store_shared_copy_out(const char *where, const char *label, const char *v,
                          char *buf, size_t size, struct diag *d);

#endif
