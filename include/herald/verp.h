/*
 * verp — signed per-delivery return paths and unsubscribe addresses.
 *
 * Each delivery gets its own envelope sender, bounces+TOKEN@domain, and its
 * own unsubscribe address, unsubscribe+TOKEN@domain, so that a bounce or an
 * unsubscribe request names the delivery it is about even when the
 * returned message is mangled. TOKEN is the delivery key (the 32 lowercase
 * hex characters before '@' in herald's Message-ID) and an 80-bit
 * HMAC-SHA256 of the kind and the key under a secret only herald knows:
 *
 *   bounces+<32 hex>-<16 base32>@domain   (local part 57 octets)
 *
 * so nobody can unsubscribe a journalist, or mark an address as bouncing,
 * by guessing. The address depends only on the secret, the domain and the
 * Message-ID, so the daemon and `herald preview` compute the same one
 * without the store. The kind is part of the MAC, so a bounces token
 * cannot be replayed as an unsubscribe request or the other way round.
 * Hex and lowercase base32 survive mailbox providers that fold the case of
 * the local part; checking ignores case.
 *
 * Library code (the CLI uses it too): NULL / -1 on failure, never aborts.
 * verp_load puts its reasons in a struct diag; the address functions and
 * verp_check take untrusted input and only say yes or no. The secret
 * never appears in any message.
 */
#ifndef HERALD_VERP_H
#define HERALD_VERP_H

#include "herald/diag.h"

enum verp_kind { VERP_BOUNCES, VERP_UNSUBSCRIBE };

struct verp;

/* Load the secret and the domain the addresses are under. Exactly one of
 * secret_file (a path) and secret_env (the name of an environment
 * variable) must be non-NULL. The file must be a regular file that group
 * and others can neither read nor write, at most 4 KiB; one trailing
 * newline ("\n" or "\r\n") is not part of the secret. Either way the
 * secret must be at least 16 bytes. domain must be a DNS name (letters,
 * digits, '-', '.'); it is kept lowercased. Returns NULL with the reasons
 * in d. Free with verp_free. */
struct verp *verp_load(const char *secret_file, const char *secret_env,
                       const char *domain, struct diag *d);

/* Wipe the secret and free v. NULL is allowed. */
void verp_free(struct verp *v);

/* The domain the addresses are under, lowercased. Owned by v. */
const char *verp_domain(const struct verp *v);

/* The return path / the unsubscribe address for the delivery whose
 * Message-ID is message_id, given without < >: it must be 32 lowercase
 * hex characters, '@' and a non-empty domain. Returns a malloc'd address
 * the caller frees, or NULL for any other message_id or out of memory. */
char *verp_bounce_address(const struct verp *v, const char *message_id);
char *verp_unsubscribe_address(const struct verp *v, const char *message_id);

/* A Message-ID keyed under the secret: 32 lowercase hex characters of an
 * HMAC-SHA256 of seed (herald uses the release name and the address),
 * '@', domain. Nobody without the secret can compute a journalist's, so
 * a bounce quoting it is evidence; the same secret gives the same id to
 * `herald preview` and to the delivery. Returns a malloc'd string the
 * caller frees, or NULL when GnuTLS fails or memory runs out. */
char *verp_message_id(const struct verp *v, const void *seed, size_t seedlen,
                      const char *domain);

/* Check an address that came back to us (a bounce's recipient, an
 * unsubscribe request's To). Leading and trailing spaces and tabs and one
 * pair of < > around it are allowed; the local part is compared without
 * case, the domain without case against verp_domain. Returns 0 and sets
 * *kind and key (the 32 lowercase hex delivery key, NUL-terminated) when
 * the address is one of ours with a valid MAC for its kind; returns -1 for
 * anything malformed or forged, and then sets key to "". kind and key may
 * be NULL. */
int verp_check(const struct verp *v, const char *address, enum verp_kind *kind,
               char key[33]);

#endif
