/*
 * contacts — the journalist lists (lists/journalists.yaml and the like):
 * who receives a release, at which address, in which language.
 *
 * A list is a mapping with one key, `journalists`, holding a sequence of
 * entries with name, email and language (required) and outlet, beat,
 * region and timezone (optional). Every problem in the file is reported at
 * once with its file:line:column; a list with any error is not returned.
 *
 * Library code: returns NULL / -1 on failure, never aborts.
 */
#ifndef HERALD_CONTACTS_H
#define HERALD_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/diag.h"

struct journalist {
	char *name;
	char *email;
	char *language;
	char *outlet; /* optional fields are NULL when absent */
	char *beat;
	char *region;
	char *timezone;
	const char *file;   /* the list's file name, owned by the list */
	unsigned line, col; /* where the entry starts */
};

struct contacts {
	char *file;
	struct journalist *v;
	size_t n;
};

/* Load and validate one list. Duplicate addresses within the list are
 * warnings (queueing sends to each address once). */
struct contacts *contacts_load(const char *path, struct diag *d);

void contacts_free(struct contacts *c);

/* Do two addresses name the same mailbox? The local part is compared
 * exactly, the domain without regard to case. */
bool contacts_addr_equal(const char *a, const char *b);

/* The address as a key for sets: local part as written, domain in lower
 * case (contacts_addr_equal's rule). Malloc'd; NULL on out of memory. */
char *contacts_addr_key(const char *email);

/* Find a journalist by address (contacts_addr_equal), or NULL. */
const struct journalist *contacts_find(const struct contacts *c,
                                       const char *email);

#endif
