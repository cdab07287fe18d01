/*
 * transport — the interface side of herald's transports (see transport.h):
 * which backend serves a relay URL, and reading what a relay's reply text
 * says beyond its code (the enhanced status and the relay's queue id).
 *
 * The reply text is untrusted: everything here reads at most the text
 * given, writes at most the fixed sizes of the caller's arrays, and keeps
 * a queue id only when it is made of characters a queue id is made of.
 */
#include "herald/transport.h"

#include "herald/config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* The forms of "this is my queue id" in the replies of common MTAs, in the
 * order they are tried. Each names a marker; the id is the word after it
 * (ID_AFTER) or the word before it (ID_BEFORE). */
enum reply_id_where { ID_AFTER, ID_BEFORE };

static const struct {
	const char *marker;
	enum reply_id_where where;
} reply_id_forms[] = {
    /* Postfix "250 2.0.0 Ok: queued as 4F1X2Y3Z", also Sendmail's
     * and many others' "queued as" */
    {"queued as ", ID_AFTER},
    /* Exim "250 OK id=1qAbCd-0001Ab-Cd" */
    {"id=", ID_AFTER},
    /* Exchange "250 2.6.0 <id@host> [InternalId=...] Queued mail for
     * delivery" */
    {" Queued mail for delivery", ID_BEFORE},
    /* Sendmail "250 2.0.0 4AB1cD2e012345 Message accepted for
     * delivery" */
    {" Message accepted for delivery", ID_BEFORE},
};

const struct transport_backend *transport_backend_for(const char *url)
{
	if (url == NULL)
		return NULL;
	if (strncasecmp(url, "smtp://", 7) == 0 ||
	    strncasecmp(url, "smtps://", 8) == 0)
		return &transport_smtp_backend;
	if (strncasecmp(url, "maildir:", 8) == 0)
		return &transport_maildir_backend;
	return NULL;
}

/* A character a queue id may contain: printable ASCII, not a space, not
 * a delimiter of the reply's prose. */
static int reply_id_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("<>()[]{};,\"'`", c) == NULL;
}

/* Copy the id at p (an optional <...> around it is dropped) into
 * queue_id; 0 when there is one. Ids longer than the array are cut: the
 * start of an id still finds it in the relay's log. */
static int reply_take_id(const char *p, const char *end, char queue_id[64])
{
	size_t n = 0;

	if (p < end && *p == '<')
		p++;
	while (p < end && reply_id_char((unsigned char)*p) && n < 63)
		queue_id[n++] = *p++;
	/* a trailing full stop ends a sentence, not an id */
	while (n > 0 && queue_id[n - 1] == '.')
		n--;
	queue_id[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* The word that ends at end, after skipping back over one bracketed part
 * ("<id@host> [InternalId=...] Queued ...") and spaces; or NULL. */
static const char *reply_word_before(const char *text, const char *end)
{
	const char *s = end;

	if (s > text && s[-1] == ']') {
		while (s > text && s[-1] != '[')
			s--;
		if (s > text)
			s--;
	}
	while (s > text && s[-1] == ' ')
		s--;
	end = s;
	while (s > text && !isspace((unsigned char)s[-1]))
		s--;
	/* a code or an enhanced status is not an id
	 * ("250 2.0.0 Message accepted for delivery") */
	if (strspn(s, "0123456789.") >= (size_t)(end - s))
		return NULL;
	return s;
}

/* The id next to reply_id_forms[form]'s marker in [text, end), or -1. */
static int reply_find_id(const char *text, const char *end, size_t form,
                         char queue_id[64])
{
	const char *marker = reply_id_forms[form].marker;
	size_t mlen = strlen(marker);
	const char *p, *w;

	for (p = text; (size_t)(end - p) >= mlen; p++) {
		if (strncasecmp(p, marker, mlen) != 0)
			continue;
		if (reply_id_forms[form].where == ID_AFTER) {
			/* the marker starts a word: "msgid=" is not "id=" */
			if (p > text && !isspace((unsigned char)p[-1]))
				continue;
			if (reply_take_id(p + mlen, end, queue_id) == 0)
				return 0;
		} else {
			w = reply_word_before(text, p);
			if (w != NULL && reply_take_id(w, p, queue_id) == 0)
				return 0;
		}
	}
	return -1;
}

void transport_parse_reply(const char *text, char status[16], char queue_id[64])
{
	const char *end, *line, *p;
	size_t form;

	status[0] = '\0';
	queue_id[0] = '\0';
	if (text == NULL)
		return;
	end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		end--;

	/* The enhanced status starts the last line's text, after the code:
	 * class "." subject "." detail (RFC 3463), class 2, 4 or 5,
	 * subject and detail 1-3 digits. */
	line = end;
	while (line > text && line[-1] != '\n')
		line--;
	p = line;
	if (end - p >= 3 && isdigit((unsigned char)p[0]) &&
	    isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
	    (end - p == 3 || p[3] == ' ' || p[3] == '-'))
		p += end - p == 3 ? 3 : 4;
	while (p < end && *p == ' ')
		p++;
	if (p < end && (*p == '2' || *p == '4' || *p == '5') && p + 1 < end &&
	    p[1] == '.') {
		const char *q = p + 2;
		int part, ok = 1;

		for (part = 0; part < 2 && ok; part++) {
			size_t digits = 0;

			while (q < end && isdigit((unsigned char)*q) &&
			       digits < 4) {
				q++;
				digits++;
			}
			ok = digits >= 1 && digits <= 3;
			if (ok && part == 0) {
				ok = q < end && *q == '.';
				q++;
			}
		}
		if (ok && (q == end || *q == ' ')) {
			memcpy(status, p, (size_t)(q - p));
			status[q - p] = '\0';
		}
	}

	for (form = 0;
	     form < sizeof(reply_id_forms) / sizeof(reply_id_forms[0]); form++)
		if (reply_find_id(text, end, form, queue_id) == 0)
			return;
}

struct transport_config transport_config_of(const struct config_relay *r,
                                            const char *url)
{
	return (struct transport_config){
	    .url = url ? url : r->url,
	    .allow_plain = r->allow_plain,
	    .ca_file = r->ca_file,
	    .user = r->user,
	    .password = r->password,
	    .helo = r->helo,
	    .max_connections = r->max_connections,
	    .max_per_connection = r->max_per_connection,
	    .connect_timeout = r->connect_timeout,
	    .reply_timeout = r->reply_timeout,
	    .dot_timeout = r->dot_timeout,
	};
}
