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

/*
 * A list read one journalist at a time, for lists too long to hold (check
 * and queue read a million entries this way in constant memory). The same
 * checks as contacts_load, entry by entry; duplicates are the caller's to
 * find (contacts_seen below).
 */
struct contacts_reader;

/* NULL after adding the reason to d. */
struct contacts_reader *contacts_open(const char *path, struct diag *d);

/* The next valid journalist: 1 and *j (owned by the reader, valid until
 * the next call); entries with problems are reported to d and skipped.
 * 0 at the end of the list, after the checks of the whole file (an empty
 * list, unknown keys); -1 when the file cannot be read on (a YAML error,
 * reported): the entries after it are not checked. */
int contacts_next(struct contacts_reader *r, const struct journalist **j,
                  struct diag *d);

/* Entries read so far (valid or not); bytes read and the file's size
 * (0 when not known), for progress reports. */
size_t contacts_entries(const struct contacts_reader *r);
size_t contacts_bytes(const struct contacts_reader *r);
size_t contacts_size(const struct contacts_reader *r);

/* Accepts NULL. */
void contacts_close(struct contacts_reader *r);

/*
 * The addresses seen across lists, each with where it was first seen, so
 * every address is sent one message however often it is listed. About 50
 * bytes an address: the one part of reading lists that grows with them.
 */
struct contacts_seen;

struct contacts_seen *contacts_seen_new(void);
void contacts_seen_free(struct contacts_seen *s);

/* Note j's address as seen in list number `list`. 1 when it is new; 0 when
 * it was seen before (*list_first and *line_first: where first); -1 on
 * out of memory. */
int contacts_seen_add(struct contacts_seen *s, const struct journalist *j,
                      unsigned list, unsigned *list_first,
                      unsigned *line_first);

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
