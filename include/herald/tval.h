/*
 * tval — the values a template is rendered against: null, boolean, string,
 * list and map, as a tree the caller builds (from a release, a contact list,
 * the coalition's member list) and then renders many templates against.
 *
 * A container owns what is put into it; freeing the root frees the tree.
 * Strings are copied in and are plain bytes: a value is never interpreted
 * as a template. Maps keep their keys in insertion order; looking a key up
 * costs about as much as hashing it, also for large maps, so one tree can
 * be rendered for thousands of recipients.
 *
 * A finished tree is only read by the renderer: several threads may render
 * against the same tree at once as long as none of them changes it.
 *
 * Library code: out-of-memory is an error (NULL / -1), never an abort.
 */
#ifndef HERALD_TVAL_H
#define HERALD_TVAL_H

#include <stdbool.h>
#include <stddef.h>

enum tval_kind { TVAL_NULL, TVAL_BOOL, TVAL_STRING, TVAL_LIST, TVAL_MAP };

struct tval;

/* Constructors return NULL on out-of-memory. Strings are copied. */
struct tval *tval_null(void);
struct tval *tval_bool(bool b);
struct tval *tval_str(const char *s);
struct tval *tval_strn(const char *s, size_t len);
struct tval *tval_list(void);
struct tval *tval_map(void);

/* A reference to target, a tree owned elsewhere that must outlive it:
 * read through it, it is target; freeing it frees only the reference. It
 * lets many small trees (one per recipient) share one large one (the
 * coalition in a language) without copying. */
struct tval *tval_ref(const struct tval *target);

/* Append to a list / set key in a map (replacing an earlier value with the
 * same key). Ownership of v passes to the container, also on failure (v is
 * freed then). Returns 0, or -1 on out-of-memory or wrong container kind. */
int tval_push(struct tval *list, struct tval *v);
int tval_set(struct tval *map, const char *key, struct tval *v);

enum tval_kind tval_kind(const struct tval *v);
/* NULL unless v is a string; valid while v lives. */
const char *tval_string(const struct tval *v);
bool tval_boolean(const struct tval *v); /* false unless a true bool */
/* Bytes of a string / items of a list / entries of a map; 0 otherwise. */
size_t tval_len(const struct tval *v);
const struct tval *tval_at(const struct tval *list, size_t i);
const struct tval *tval_get(const struct tval *map, const char *key);

/* Frees v and everything in it; NULL is fine. */
void tval_free(struct tval *v);

#endif
