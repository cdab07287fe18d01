/*
 * dkim — DKIM signatures (RFC 6376) over composed messages: relaxed/relaxed
 * canonicalisation, rsa-sha256 (2048-bit keys or larger) and
 * ed25519-sha256 (RFC 8463), with the cryptography done by GnuTLS.
 *
 * A signer is loaded once from a PEM private key file (PKCS#8 or PKCS#1)
 * that no one but its owner may read, and then signs any number of
 * messages. The message signed is the final serialized bytes with CRLF
 * line endings (what goes to the transport); the result is one
 * "DKIM-Signature: ..." field, folded, without the final CRLF, to be put
 * before the other header fields.
 *
 * Library code: NULL / -1 on failure, with the reason in a struct diag.
 */
#ifndef HERALD_DKIM_H
#define HERALD_DKIM_H

#include <stddef.h>
#include <time.h>

#include "herald/diag.h"

enum dkim_alg { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };

struct dkim_signer;

/* Load the key at key_path for signing as d=domain, s=selector. The
 * algorithm follows the key. Refuses a key file readable or writable by
 * group or others, an RSA key under 2048 bits, and a domain or selector
 * that is not a valid DNS name. */
struct dkim_signer *dkim_signer_load(const char *key_path, const char *domain,
                                     const char *selector, struct diag *d);

void dkim_signer_free(struct dkim_signer *s);

/* Generate a new private key (ed25519, or RSA of bits >= 2048) and write
 * it as PEM PKCS#8 to path, a file that must not exist yet, created 0600
 * (its directory, when missing, 0700), whatever the umask. Nothing is
 * left behind on failure. */
int dkim_key_generate(const char *path, enum dkim_alg alg, unsigned bits,
                      struct diag *d);

enum dkim_alg dkim_signer_alg(const struct dkim_signer *s);
const char *dkim_signer_domain(const struct dkim_signer *s);

/* The header fields signed when present, in this order: from, to,
 * subject, date, message-id, mime-version, content-type, reply-to,
 * content-language, list-unsubscribe, list-unsubscribe-post. From,
 * Subject, To, Date, Message-ID and the List-Unsubscribe fields are also
 * signed once more than they occur, so that a copy added in transit breaks
 * the signature. */

/* Sign msg (len bytes, CRLF line endings, header and body); now is the
 * t= timestamp. Returns the DKIM-Signature field (malloc'd, folded, no
 * final CRLF), or NULL with the reason in d. */
char *dkim_sign(const struct dkim_signer *s, const char *msg, size_t len,
                time_t now, struct diag *d);

/* The DNS TXT record for the key: "v=DKIM1; k=rsa; p=..." or
 * "v=DKIM1; k=ed25519; p=...". Malloc'd. */
char *dkim_dns_record(const struct dkim_signer *s, struct diag *d);

#endif
