/*
 * web_unsub — the public unsubscribe page's work (herald-web, /u/TOKEN):
 * what a token names, unsubscribing its journalist, and taking that back.
 *
 * TOKEN is the local part of a delivery's unsubscribe address after
 * "unsubscribe+" (verp.c), so a token is checked exactly as the bounce
 * mailbox checks mail to unsubscribe+TOKEN@ (verp_check, kind
 * VERP_UNSUBSCRIBE), and an unsubscribe is recorded through the same
 * store_event_record with the checked key, so policy.c decides for both
 * alike: the address goes on the suppression list, which every later
 * queue of every release honours. What the web adds is told by the event:
 * reason "web", evidence "herald-web: ..." (herald bounces shows both),
 * and the suppression's reason "unsubscribe: web".
 *
 * Taking it back (web_unsub_undo) removes the suppression only when this
 * delivery's own web unsubscribe put it there, within
 * WEB_UNSUB_UNDO_DAYS: a bounce, a complaint or an admin's entry stays.
 *
 * Library code: 0 / 1 / -1 with the reason in a struct diag; a token that
 * names nothing is 0, never a failure.
 */
#ifndef HERALD_WEB_UNSUB_H
#define HERALD_WEB_UNSUB_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "herald/diag.h"
#include "herald/store.h"
#include "herald/verp.h"

/* "I clicked by mistake" is offered for 30 days: long enough for someone
 * back from leave, short enough that an old link cannot silently undo a
 * decision. */
enum { WEB_UNSUB_UNDO_DAYS = 30 };

/* What a token names. Strings malloc'd; free with web_unsub_free. */
struct web_unsub {
	int64_t delivery_id, release_id;
	char key[33];    /* the delivery's Message-ID key */
	char *email;     /* as the delivery has it */
	char *name;      /* the journalist's name, or NULL */
	char *language;  /* the journalist's tag, or NULL */
	char *coalition; /* the sender's name in that language, or NULL
	                  * when the release's snapshot cannot be read */
};

/* Check token and find its delivery into *u. 1: found; 0: forged,
 * malformed or unknown (nothing to show but 404); -1: the store failed. */
int web_unsub_find(struct store *st, const struct verp *v, const char *token,
                   struct web_unsub *u, struct diag *d);

/* Unsubscribe u's journalist; how ("one-click", "button") goes into the
 * event's evidence. *changed: this call put the address on the
 * suppression list (false when it was there already: nothing is done). */
int web_unsub_apply(struct store *st, const struct web_unsub *u,
                    const char *how, bool *changed, struct diag *d);

/* Take back u's web unsubscribe at now: *undone when the suppression was
 * this delivery's web unsubscribe's, not older than
 * WEB_UNSUB_UNDO_DAYS, and is now removed; false (nothing changed) for
 * anything else. */
int web_unsub_undo(struct store *st, const struct web_unsub *u, time_t now,
                   bool *undone, struct diag *d);

void web_unsub_free(struct web_unsub *u);

#endif
