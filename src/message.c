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
#include "herald/tval.h"

const char *message_from_domain(const struct release *r)
{
	const char *at = strrchr(r->from.email, '@');

	return at ? at + 1 : r->from.email;
}

/* The Message-ID of a delivery: stable for the release and the address,
 * so a preview and the sent message carry the same id. */
static char *message_default_id(const struct release *r,
                                const struct journalist *j)
{
	char *seed = NULL;
	char *id;
	int n = asprintf(&seed, "%s\n%s", r->name, j->email);

	if (n < 0)
		return NULL;
	id = compose_message_id(seed, (size_t)n, message_from_domain(r));
	free(seed);
	return id;
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
	id = o->message_id ? strdup(o->message_id) : message_default_id(r, j);
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
