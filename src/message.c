/*
 * message — one journalist's message from end to end (see message.h):
 * context, render, compose, sign. Every step's problems are reported; a
 * message is never returned half-built or unsigned when a key is set.
 */
#include "herald/message.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "herald/compose.h"
#include "herald/mimeenc.h"
#include "herald/tval.h"

/* One remembered body: what was rendered and its quoted-printable. */
struct message_body {
	char *rendered;
	size_t len;
	char *encoded;
	size_t encoded_len;
};

/* Bodies per (language, format), the last one seen of each. */
struct message_cache {
	struct message_body *v;
	size_t n;
};

struct message_cache *message_cache_new(void)
{
	return calloc(1, sizeof(struct message_cache));
}

void message_cache_free(struct message_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].rendered);
		free(c->v[i].encoded);
	}
	free(c->v);
	free(c);
}

/* The quoted-printable of text for slot (lang, format): from the cache
 * when the same text was encoded last time, else encoded now and kept.
 * Returns the encoded text (owned by the cache) or NULL. */
static const char *message_encoded(struct message_cache *c, size_t slot,
                                   const char *text, size_t len,
                                   size_t *encoded_len)
{
	struct message_body *b;
	char *enc, *copy;
	size_t elen;

	if (slot >= c->n) {
		struct message_body *v = realloc(c->v, (slot + 1) * sizeof(*v));
		if (v == NULL)
			return NULL;
		memset(v + c->n, 0, (slot + 1 - c->n) * sizeof(*v));
		c->v = v;
		c->n = slot + 1;
	}
	b = &c->v[slot];
	if (b->rendered != NULL && b->len == len &&
	    memcmp(b->rendered, text, len) == 0) {
		*encoded_len = b->encoded_len;
		return b->encoded;
	}
	if (mimeenc_qp(text, len, &enc, &elen) < 0)
		return NULL;
	copy = malloc(len + 1);
	if (copy == NULL) {
		free(enc);
		return NULL;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	free(b->rendered);
	free(b->encoded);
	b->rendered = copy;
	b->len = len;
	b->encoded = enc;
	b->encoded_len = elen;
	*encoded_len = elen;
	return enc;
}

const char *message_from_domain(const struct release *r)
{
	const char *at = strrchr(r->from.email, '@');

	return at ? at + 1 : r->from.email;
}

/* The Message-ID of a delivery: stable for the release and the address,
 * so a preview and the sent message carry the same id; keyed under the
 * bounce secret, so that it cannot be computed from outside. */
char *message_id_for(const struct release *r, const char *email,
                     const struct verp *verp)
{
	char *seed = NULL;
	char *id;
	int n = asprintf(&seed, "%s\n%s", r->name, email);

	if (n < 0)
		return NULL;
	id = verp != NULL ? verp_message_id(verp, seed, (size_t)n,
	                                    message_from_domain(r))
	                  : compose_message_id(seed, (size_t)n,
	                                       message_from_domain(r));
	free(seed);
	return id;
}

static char *message_default_id(const struct release *r,
                                const struct journalist *j,
                                const struct verp *verp)
{
	return message_id_for(r, j->email, verp);
}

int message_build(struct release *r, const struct coalition *c,
                  const struct journalist *j, size_t lang,
                  const struct message_opts *o, char **out, size_t *len,
                  struct diag *d)
{
	struct compose_message m = {0};
	struct compose_attachment *att = NULL;
	struct tval *ctx = NULL;
	char *subject = NULL, *text = NULL, *html = NULL, *id = NULL;
	char *msg = NULL, *signed_msg = NULL;
	char **sigs = NULL;
	size_t msglen = 0, total;
	int rc = -1;
	bool bad;
	char *unsub = NULL;
	const char *extra[2];
	size_t nextra = 0;

	*out = NULL;
	*len = 0;
	ctx = release_context(r, c, j, lang, d);
	if (ctx == NULL)
		goto done;
	/* all three, so that a check reports each one's problems */
	bad = release_subject(r, lang, ctx, &subject, d) < 0;
	bad |= release_render(r, lang, RELEASE_TEXT, ctx, &text, &m.text_len,
	                      d) < 0;
	bad |= release_render(r, lang, RELEASE_HTML, ctx, &html, &m.html_len,
	                      d) < 0;
	if (bad)
		goto done;
	if (o->subject_prefix != NULL && subject != NULL) {
		char *p = NULL;
		if (asprintf(&p, "%s%s", o->subject_prefix, subject) < 0)
			goto oom;
		free(subject);
		subject = p;
	}
	id = o->message_id ? strdup(o->message_id) : message_default_id(r, j, o->verp);
	if (id == NULL)
		goto oom;
	if (r->nattachments > 0) {
		att = calloc(r->nattachments, sizeof(*att));
		if (att == NULL)
			goto oom;
		for (size_t i = 0; i < r->nattachments; i++) {
			att[i].filename = r->attachments[i].name.v[lang];
			/* readers without RFC 2231 see the default
			 * language's name */
			att[i].ascii_filename =
			    r->attachments[i].name.v[r->policy.default_lang];
			att[i].content_type = r->attachments[i].type;
			att[i].data = r->attachments[i].data;
			att[i].len = r->attachments[i].len;
		}
	}
	m.from.name = r->from.name.v[lang];
	m.from.addr = r->from.email;
	m.to.name = j->name;
	m.to.addr = j->email;
	m.reply_to.name = r->reply_to.name.v[lang];
	m.reply_to.addr = r->reply_to.email;
	m.subject = subject;
	m.date = o->now;
	m.message_id = id;
	m.language = r->policy.langs[lang];
	m.text = text;
	m.html = html;
	m.attachments = att;
	m.nattachments = r->nattachments;
	if (o->cache != NULL) {
		m.text_encoded = message_encoded(
		    o->cache, 2 * lang, text, m.text_len, &m.text_encoded_len);
		m.html_encoded =
		    message_encoded(o->cache, 2 * lang + 1, html, m.html_len,
		                    &m.html_encoded_len);
		if (m.text_encoded == NULL || m.html_encoded == NULL)
			goto oom;
	}
	if (o->verp != NULL) {
		/* RFC 2369 and RFC 8058: the journalist's client offers
		 * "unsubscribe"; the address names this delivery and carries
		 * its signature (verp.c); DKIM covers both fields */
		char *addr = verp_unsubscribe_address(o->verp, id);
		const char *plus = addr ? strchr(addr, '+') : NULL;
		const char *at = addr ? strchr(addr, '@') : NULL;
		if (addr == NULL || plus == NULL || at == NULL) {
			free(addr);
			goto oom;
		}
		if (o->unsubscribe_url != NULL) {
			const char *t = strstr(o->unsubscribe_url, "{token}");
			if (asprintf(&unsub,
			             "List-Unsubscribe:\r\n "
			             "<mailto:%s?subject=unsubscribe>,"
			             "\r\n <%.*s%.*s%s>",
			             addr, (int)(t - o->unsubscribe_url),
			             o->unsubscribe_url, (int)(at - plus - 1),
			             plus + 1, t + strlen("{token}")) < 0)
				unsub = NULL;
			extra[nextra++] = "List-Unsubscribe-Post: "
			                  "List-Unsubscribe=One-Click";
		} else if (asprintf(&unsub,
		                    "List-Unsubscribe:\r\n "
		                    "<mailto:%s?subject=unsubscribe>",
		                    addr) < 0) {
			unsub = NULL;
		}
		free(addr);
		if (unsub == NULL)
			goto oom;
		extra[nextra++] = unsub;
		m.extra = extra;
		m.nextra = nextra;
	}
	if (compose_build(&m, &msg, &msglen, d) < 0)
		goto done;
	if (o->nsigners == 0) {
		*out = msg;
		*len = msglen;
		msg = NULL;
		rc = 0;
		goto done;
	}
	/* every signature covers the unsigned message; all go on top */
	sigs = calloc(o->nsigners, sizeof(*sigs));
	if (sigs == NULL)
		goto oom;
	total = msglen;
	for (size_t i = 0; i < o->nsigners; i++) {
		sigs[i] = dkim_sign(o->signers[i], msg, msglen, o->now, d);
		if (sigs[i] == NULL)
			goto done;
		total += strlen(sigs[i]) + 2;
	}
	signed_msg = malloc(total + 1);
	if (signed_msg == NULL)
		goto oom;
	*len = 0;
	for (size_t i = 0; i < o->nsigners; i++) {
		size_t n = strlen(sigs[i]);
		memcpy(signed_msg + *len, sigs[i], n);
		memcpy(signed_msg + *len + n, "\r\n", 2);
		*len += n + 2;
	}
	memcpy(signed_msg + *len, msg, msglen);
	*len += msglen;
	signed_msg[*len] = '\0';
	*out = signed_msg;
	signed_msg = NULL;
	rc = 0;
	goto done;
oom:
	diag_add(d, NULL, 0, 0, "out of memory building the message for %s",
	         j->email);
done:
	for (size_t i = 0; sigs && i < o->nsigners; i++)
		free(sigs[i]);
	free(sigs);
	free(signed_msg);
	free(unsub);
	free(msg);
	free(att);
	free(id);
	free(html);
	free(text);
	free(subject);
	tval_free(ctx);
	if (rc < 0)
		*len = 0;
	return rc;
}
