/*
 * store_sqlite_test — what the SQLite store shows its own tests
 * (tests/test_store_sqlite.c) beyond the store interface. herald itself
 * never calls these: only tests include this header.
 *
 * Same rules as store.h: 0 / -1 with the reason in d; fn as the store's
 * callbacks (0 go on, > 0 stop, < 0 fail).
 */
#ifndef HERALD_STORE_SQLITE_TEST_H
#define HERALD_STORE_SQLITE_TEST_H

#include "herald/store.h"

/* The settings a commit's durability rests on, as this handle has them,
 * each to fn as a name and value (journal_mode "wal", synchronous
 * "full", foreign_keys "on"), so a test can hold the store to them. st
 * must be a SQLite store. */
int store_sqlite_test_durability(struct store *st,
                                 int (*fn)(void *arg, const char *name,
                                           const char *value),
                                 void *arg, struct diag *d);

#endif
