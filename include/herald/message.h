/*
 * message — the complete message one journalist receives: the release
 * rendered in their language (subject, text, HTML), composed as MIME with
 * the release's attachments, and signed with every configured DKIM key.
 * This is what `herald preview` prints and what the daemon will send.
 *
 * Library code: returns 0 / -1 with the reasons in a struct diag.
 */
#ifndef HERALD_MESSAGE_H
#define HERALD_MESSAGE_H

#include <stddef.h>
#include <time.h>

#include "herald/coalition.h"
#include "herald/contacts.h"
#include "herald/dkim.h"
#include "herald/release.h"
#include "herald/verp.h"

/* Bodies already encoded, kept between messages: most journalists of a
 * language read the very same text, and encoding it again is the largest
 * cost of a message after rendering. Optional; one per thread. */
struct message_cache;

struct message_cache *message_cache_new(void);
void message_cache_free(struct message_cache *c);

struct message_opts {
	struct message_cache *cache; /* NULL: encode every body */
	time_t now;                  /* Date and the signatures' t= */
	const char *message_id;     /* NULL: derived from release and address
	                             * (message_id_for, keyed with verp) */
	const char *subject_prefix; /* e.g. "[PROOF] ", or NULL */
	/* with VERP: List-Unsubscribe (mailto, and one-click https when
	 * unsubscribe_url is set) naming this delivery; NULL: none */
	const struct verp *verp;
	const char *unsubscribe_url; /* https://...{token}... */
	struct dkim_signer *const *signers;
	size_t nsigners;
};

/* Build the message for journalist j reading variant lang. *out is
 * malloc'd (CRLF line endings), *len its length. */
int message_build(struct release *r, const struct coalition *c,
                  const struct journalist *j, size_t lang,
                  const struct message_opts *o, char **out, size_t *len,
                  struct diag *d);

/* The Message-ID a delivery of release r to address email carries when
 * queued: derived from both, so `herald preview` shows the same one;
 * keyed under the bounce secret when verp is not NULL (nobody outside
 * can compute it), else a plain hash of the two. Malloc'd. */
char *message_id_for(const struct release *r, const char *email,
                     const struct verp *verp);

/* The domain of the release's From address (for Message-IDs and the
 * DMARC alignment check). Points into r. */
const char *message_from_domain(const struct release *r);

#endif
