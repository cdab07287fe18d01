/*
 * compose — builds the MIME message for one journalist (see compose.h).
 *
 * The top-level header is herald's own: every field goes through rfc2047,
 * which refuses control characters and folds at 78 columns, so nothing
 * from the lists can start a new header line. The body is a libetpan MIME
 * tree written by libetpan, which applies quoted-printable and base64 and
 * converts line ends to CRLF. Two things libetpan cannot do are done here:
 * boundaries come from the Message-ID rather than an unseeded random(),
 * and an RFC 2231 file name (filename*=UTF-8''...) is written unquoted, as
 * its grammar requires, where libetpan quotes every parameter value.
 */
#include "herald/compose.h"
#include "herald/mimeenc.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <libetpan/libetpan.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest RFC 2231 value written on one header line: with the parameter
 * name and the fold it stays under 78 characters. */
#define COMPOSE_EXT_CHUNK 54

static const struct {
	const char *ext;
	const char *type;
} compose_types[] = {
    {"pdf", "application/pdf"},
    {"txt", "text/plain"},
    {"csv", "text/csv"},
    {"vcf", "text/vcard"},
    {"ics", "text/calendar"},
    {"html", "text/html"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"png", "image/png"},
    {"gif", "image/gif"},
    {"zip", "application/zip"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument."
             "wordprocessingml.document"},
    {"odt", "application/vnd.oasis.opendocument.text"},
};

const char *compose_content_type(const char *filename)
{
	const char *dot = strrchr(filename, '.');

	if (dot != NULL)
		for (size_t i = 0;
		     i < sizeof(compose_types) / sizeof(*compose_types); i++)
			if (strcasecmp(dot + 1, compose_types[i].ext) == 0)
				return compose_types[i].type;
	return "application/octet-stream";
}

char *compose_message_id(const void *seed, size_t seedlen, const char *domain)
{
	unsigned char digest[32];
	char hex[33];
	char *id = NULL;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, seed, seedlen, digest) < 0)
		return NULL;
	/* 128 bits: unique among all the messages herald will ever send */
	for (size_t i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (asprintf(&id, "%s@%s", hex, domain) < 0)
		return NULL;
	return id;
}

/* RFC 5322 date in UTC: "Tue, 07 May 2019 10:00:00 +0000". The names are
 * the protocol's, not a language's. */
static int compose_date(time_t t, char *buf, size_t size)
{
	static const char days[][4] = {"Sun", "Mon", "Tue", "Wed",
	                               "Thu", "Fri", "Sat"};
	static const char months[][4] = {"Jan", "Feb", "Mar", "Apr",
	                                 "May", "Jun", "Jul", "Aug",
	                                 "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	return snprintf(buf, size,
	                "Date: %s, %02d %s %04d %02d:%02d:%02d +0000",
	                days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	                tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	                tm.tm_sec) < (int)size
	           ? 0
	           : -1;
}

/* A header value herald writes itself (ids, languages) must be plain
 * printable ASCII without spaces. */
static bool compose_token_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == '<' || *s == '>')
			return false;
	return true;
}

static int compose_field(FILE *f, char *field, const char *what, struct diag *d)
{
	if (field == NULL) {
		diag_add(d, NULL, 0, 0,
		         "cannot write the %s header: the value holds "
		         "characters a mail header cannot carry",
		         what);
		return -1;
	}
	fputs(field, f);
	fputs("\r\n", f);
	free(field);
	return 0;
}

static int compose_header(FILE *f, const struct compose_message *m,
                          struct diag *d)
{
	char date[64];
	int rc = 0;

	rc |= compose_field(f, rfc2047_address_field("From", &m->from, 1),
	                    "From", d);
	rc |= compose_field(f, rfc2047_address_field("To", &m->to, 1), "To", d);
	if (m->reply_to.addr != NULL)
		rc |= compose_field(
		    f, rfc2047_address_field("Reply-To", &m->reply_to, 1),
		    "Reply-To", d);
	rc |= compose_field(f, rfc2047_text_field("Subject", m->subject),
	                    "Subject", d);
	if (compose_date(m->date, date, sizeof(date)) < 0) {
		diag_add(d, NULL, 0, 0, "cannot write the Date header");
		rc = -1;
	} else {
		fprintf(f, "%s\r\n", date);
	}
	if (!compose_token_ok(m->message_id) ||
	    strchr(m->message_id, '@') == NULL) {
		diag_add(d, NULL, 0, 0, "bad Message-ID \"%s\"",
		         m->message_id ? m->message_id : "");
		rc = -1;
	} else {
		/* fold before the id when the line would pass 78 */
		fprintf(f, "Message-ID:%s<%s>\r\n",
		        strlen(m->message_id) + 14 > 78 ? "\r\n " : " ",
		        m->message_id);
	}
	fputs("MIME-Version: 1.0\r\n", f);
	if (m->language != NULL) {
		if (!compose_token_ok(m->language)) {
			diag_add(d, NULL, 0, 0, "bad language \"%s\"",
			         m->language);
			rc = -1;
		} else {
			fprintf(f, "Content-Language: %s\r\n", m->language);
		}
	}
	/* ask auto-responders (vacation, out of office) to stay quiet */
	fputs("Precedence: bulk\r\n", f);
	fputs("X-Auto-Response-Suppress: OOF, AutoReply\r\n", f);
	for (size_t i = 0; i < m->nextra; i++) {
		const char *x = m->extra[i];
		for (const char *p = x; *p; p++)
			if ((*p == '\r' &&
			     (p[1] != '\n' || (p[2] != ' ' && p[2] != '\t'))) ||
			    (*p == '\n' && (p == x || p[-1] != '\r')) ||
			    (unsigned char)*p >= 0x7f) {
				diag_add(d, NULL, 0, 0,
				         "header field \"%.40s\" is not "
				         "encoded and folded",
				         x);
				return -1;
			}
		fprintf(f, "%s\r\n", x);
	}
	return rc;
}

/* Boundary for nesting level `level`: "=_" cannot occur in
 * quoted-printable or base64 text, so no part can contain it. */
static char *compose_boundary(const char *message_id, int level)
{
	unsigned char digest[32];
	char *b = NULL;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, message_id, strlen(message_id),
	                     digest) < 0)
		return NULL;
	if (asprintf(&b, "=_herald_%02x%02x%02x%02x%02x%02x%02x%02x_%d",
	             digest[0], digest[1], digest[2], digest[3], digest[4],
	             digest[5], digest[6], digest[7], level) < 0)
		return NULL;
	return b;
}

/* An empty multipart of the given subtype with herald's boundary.
 * libetpan adds a boundary parameter of its own making; its value is
 * replaced. */
static struct mailmime *compose_multipart(const char *type,
                                          const char *message_id, int level)
{
	struct mailmime *mp = mailmime_multiple_new(type);
	char *boundary = compose_boundary(message_id, level);
	clistiter *it;

	if (mp == NULL || boundary == NULL)
		goto fail;
	for (it = clist_begin(mp->mm_content_type->ct_parameters); it != NULL;
	     it = clist_next(it)) {
		struct mailmime_parameter *p = clist_content(it);
		if (strcasecmp(p->pa_name, "boundary") == 0) {
			free(p->pa_value);
			p->pa_value = boundary;
			return mp;
		}
	}
fail:
	if (mp != NULL)
		mailmime_free(mp);
	free(boundary);
	return NULL;
}

/* Give part its body, already encoded with mechanism: libetpan writes it
 * as it is. It keeps the pointer: the text must outlive the writing. */
static int compose_set_encoded(struct mailmime *part, int mechanism,
                               const char *encoded, size_t len)
{
	struct mailmime_data *data =
	    mailmime_data_new_data(mechanism, 1, encoded, len);

	if (data == NULL)
		return -1;
	part->mm_data.mm_single = data;
	return 0;
}

/* A text part (text/plain or text/html), UTF-8, quoted-printable; text
 * is the body already encoded. */
static struct mailmime *compose_text_part(const char *type, const char *text,
                                          size_t len)
{
	struct mailmime_content *ct = mailmime_content_new_with_str(type);
	struct mailmime_parameter *param = NULL;
	struct mailmime_fields *fields = NULL;
	struct mailmime *part = NULL;

	if (ct == NULL)
		goto fail;
	param = mailmime_param_new_with_data("charset", "UTF-8");
	if (param == NULL || clist_append(ct->ct_parameters, param) < 0)
		goto fail;
	param = NULL;
	fields =
	    mailmime_fields_new_encoding(MAILMIME_MECHANISM_QUOTED_PRINTABLE);
	if (fields == NULL)
		goto fail;
	part = mailmime_new_empty(ct, fields);
	if (part == NULL)
		goto fail;
	if (compose_set_encoded(part, MAILMIME_MECHANISM_QUOTED_PRINTABLE, text,
	                        len) < 0) {
		mailmime_free(part);
		return NULL;
	}
	return part;
fail:
	if (param != NULL)
		mailmime_parameter_free(param);
	if (fields != NULL)
		mailmime_fields_free(fields);
	if (ct != NULL)
		mailmime_content_free(ct);
	return NULL;
}

static bool compose_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x7f || (unsigned char)*s < 0x20)
			return false;
	return true;
}

/* RFC 2231 ext-value: UTF-8'' then attr-chars and %XX. */
static char *compose_ext_value(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *v = malloc(3 * n + 8), *p;

	if (v == NULL)
		return NULL;
	p = v;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || strchr("!#$&+-.^_`|~", c)) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return v;
}

/* An ASCII stand-in for a file name, for readers that ignore RFC 2231:
 * every byte outside printable ASCII (and " and \) becomes _. */
static char *compose_ascii_name(const char *s)
{
	char *a = malloc(strlen(s) + 1), *p = a;
	bool last_ = false;

	if (a == NULL)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool ok = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
		if (!ok && (c & 0xC0) == 0x80)
			continue; /* one _ per character, not per byte */
		if (!ok && last_)
			continue;
		*p++ = ok ? (char)c : '_';
		last_ = !ok;
	}
	*p = '\0';
	return a;
}

/* Add one disposition parameter name=value (copies both). */
static int compose_dsp_param(struct mailmime_disposition *dsp, const char *name,
                             const char *value)
{
	struct mailmime_parameter *param;
	struct mailmime_disposition_parm *dparm;

	param = mailmime_param_new_with_data((char *)name, (char *)value);
	if (param == NULL)
		return -1;
	dparm =
	    mailmime_disposition_parm_new(MAILMIME_DISPOSITION_PARM_PARAMETER,
	                                  NULL, NULL, NULL, NULL, 0, param);
	if (dparm == NULL) {
		mailmime_parameter_free(param);
		return -1;
	}
	if (clist_append(dsp->dsp_parms, dparm) < 0) {
		mailmime_disposition_parm_free(dparm);
		return -1;
	}
	return 0;
}

/*
 * The RFC 2231 file name: filename*=UTF-8''... when it fits on a line,
 * else continuations filename*0*=UTF-8''..., filename*1*=..., each short
 * enough that no header line passes 78 characters. Never splits a %XX.
 */
static int compose_ext_params(struct mailmime_disposition *dsp, const char *ext)
{
	size_t len = strlen(ext), off = 0;
	int index = 0;

	if (len <= COMPOSE_EXT_CHUNK - 7) {
		char *v = NULL;
		int rc;
		if (asprintf(&v, "UTF-8''%s", ext) < 0)
			return -1;
		rc = compose_dsp_param(dsp, "filename*", v);
		free(v);
		return rc;
	}
	while (off < len) {
		size_t n = len - off > COMPOSE_EXT_CHUNK ? COMPOSE_EXT_CHUNK
		                                         : len - off;
		char name[32], *v = NULL;
		int rc;
		/* back up so a %XX triplet stays whole */
		if (off + n < len && n >= 2 && ext[off + n - 1] == '%')
			n -= 1;
		else if (off + n < len && n >= 2 && ext[off + n - 2] == '%')
			n -= 2;
		snprintf(name, sizeof(name), "filename*%d*", index);
		if (asprintf(&v, "%s%.*s", index == 0 ? "UTF-8''" : "", (int)n,
		             ext + off) < 0)
			return -1;
		rc = compose_dsp_param(dsp, name, v);
		free(v);
		if (rc < 0)
			return -1;
		off += n;
		index++;
	}
	return 0;
}

static struct mailmime *compose_attachment(const struct compose_attachment *a,
                                           const char *encoded,
                                           size_t encoded_len)
{
	struct mailmime_content *ct = NULL;
	struct mailmime_disposition *dsp = NULL;
	struct mailmime_mechanism *enc = NULL;
	struct mailmime_fields *fields = NULL;
	struct mailmime_parameter *param = NULL;
	struct mailmime *part = NULL;
	char *ascii = compose_ascii_name(a->ascii_filename ? a->ascii_filename
	                                                   : a->filename);
	char *ext = NULL;

	if (ascii == NULL)
		goto fail;
	ct = mailmime_content_new_with_str(a->content_type);
	if (ct == NULL)
		goto fail;
	param = mailmime_param_new_with_data("name", ascii);
	if (param == NULL || clist_append(ct->ct_parameters, param) < 0)
		goto fail;
	param = NULL;
	/* A non-ASCII name goes only in RFC 2231 form: readers that also
	 * find a plain filename= differ on which one to show. The
	 * disposition takes ownership of the plain name. */
	if (compose_ascii(a->filename)) {
		dsp = mailmime_disposition_new_with_data(
		    MAILMIME_DISPOSITION_TYPE_ATTACHMENT, ascii, NULL, NULL,
		    NULL, (size_t)-1);
		if (dsp == NULL)
			goto fail;
		ascii = NULL;
	} else {
		dsp = mailmime_disposition_new_with_data(
		    MAILMIME_DISPOSITION_TYPE_ATTACHMENT, NULL, NULL, NULL,
		    NULL, (size_t)-1);
		ext = compose_ext_value(a->filename);
		if (dsp == NULL || ext == NULL ||
		    compose_ext_params(dsp, ext) < 0)
			goto fail;
	}
	enc = mailmime_mechanism_new(MAILMIME_MECHANISM_BASE64, NULL);
	if (enc == NULL)
		goto fail;
	fields = mailmime_fields_new_with_data(enc, NULL, NULL, dsp, NULL);
	if (fields == NULL)
		goto fail;
	enc = NULL;
	dsp = NULL;
	part = mailmime_new_empty(ct, fields);
	if (part == NULL)
		goto fail;
	ct = NULL;
	fields = NULL;
	if (compose_set_encoded(part, MAILMIME_MECHANISM_BASE64, encoded,
	                        encoded_len) < 0) {
		mailmime_free(part);
		part = NULL;
		goto fail;
	}
	free(ext);
	free(ascii);
	return part;
fail:
	if (fields != NULL)
		mailmime_fields_free(fields);
	if (enc != NULL)
		mailmime_mechanism_free(enc);
	if (dsp != NULL)
		mailmime_disposition_free(dsp);
	if (param != NULL)
		mailmime_parameter_free(param);
	if (ct != NULL)
		mailmime_content_free(ct);
	free(ext);
	free(ascii);
	return NULL;
}

/* libetpan writes `filename*="UTF-8''..."` and `filename*0*="..."`; the
 * RFC 2231 grammar has no quotes around an extended value. Remove them,
 * in place; the values hold no quote. */
static void compose_unquote_ext(MMAPString *s)
{
	char *p = s->str;

	while ((p = strstr(p, "filename*")) != NULL) {
		char *q = p + strlen("filename*"), *open, *close;
		size_t tail;

		while (*q >= '0' && *q <= '9')
			q++;
		if (*q == '*')
			q++;
		if (q[0] != '=' || q[1] != '"') {
			p = q;
			continue;
		}
		open = q + 1;
		close = strchr(open + 1, '"');
		if (close == NULL)
			return;
		/* drop the closing quote, then the opening one */
		tail = s->len - (size_t)(close + 1 - s->str);
		memmove(close, close + 1, tail + 1);
		s->len--;
		tail = s->len - (size_t)(open + 1 - s->str);
		memmove(open, open + 1, tail + 1);
		s->len--;
		p = open;
	}
}

/*
 * libetpan writes the tree with a short token in place of each body, and
 * the encoded bodies are put in their places afterwards: libetpan's writer
 * looks at every byte it writes, which for bodies is work already done.
 * A token starts with "=_", which quoted-printable and base64 never hold.
 */
#define COMPOSE_TOKEN "=_herald_body_%zu="

static int compose_splice(const char *head, size_t headlen,
                          const MMAPString *skel, const char *const *bodies,
                          const size_t *lens, size_t nbodies, char **out,
                          size_t *outlen)
{
	size_t total = headlen + skel->len, n = 0, k = 0;
	const char *p = skel->str, *end = skel->str + skel->len;
	char token[40], *o;

	for (size_t i = 0; i < nbodies; i++)
		total += lens[i];
	o = malloc(total + 1);
	if (o == NULL)
		return -1;
	memcpy(o, head, headlen);
	n = headlen;
	while (k < nbodies) {
		int tl = snprintf(token, sizeof(token), COMPOSE_TOKEN, k);
		const char *t = memmem(p, (size_t)(end - p), token, (size_t)tl);
		if (t == NULL) {
			free(o);
			return -1;
		}
		memcpy(o + n, p, (size_t)(t - p));
		n += (size_t)(t - p);
		memcpy(o + n, bodies[k], lens[k]);
		n += lens[k];
		p = t + tl;
		k++;
	}
	memcpy(o + n, p, (size_t)(end - p));
	n += (size_t)(end - p);
	o[n] = '\0';
	*out = o;
	*outlen = n;
	return 0;
}

int compose_build(const struct compose_message *m, char **out, size_t *len,
                  struct diag *d)
{
	struct mailmime *root = NULL, *alt = NULL, *part = NULL;
	size_t nbodies = 2 + m->nattachments;
	const char **bodies = NULL;
	size_t *lens = NULL;
	char **owned = NULL, (*tokens)[40] = NULL;
	MMAPString *skel = NULL;
	char *head = NULL;
	size_t headlen = 0;
	FILE *f = NULL;
	int col = 0;

	*out = NULL;
	*len = 0;
	bodies = calloc(nbodies, sizeof(*bodies));
	lens = calloc(nbodies, sizeof(*lens));
	owned = calloc(nbodies, sizeof(*owned));
	tokens = calloc(nbodies, sizeof(*tokens));
	if (!bodies || !lens || !owned || !tokens)
		goto oom;
	f = open_memstream(&head, &headlen);
	if (f == NULL)
		goto oom;
	if (compose_header(f, m, d) < 0)
		goto fail;

	/* the encoded bodies: given by the caller, or made here */
	bodies[0] = m->text_encoded;
	lens[0] = m->text_encoded_len;
	bodies[1] = m->html_encoded;
	lens[1] = m->html_encoded_len;
	if (bodies[0] == NULL) {
		if (mimeenc_qp(m->text, m->text_len, &owned[0], &lens[0]) < 0)
			goto oom;
		bodies[0] = owned[0];
	}
	if (bodies[1] == NULL) {
		if (mimeenc_qp(m->html, m->html_len, &owned[1], &lens[1]) < 0)
			goto oom;
		bodies[1] = owned[1];
	}
	for (size_t i = 0; i < m->nattachments; i++) {
		const struct compose_attachment *a = &m->attachments[i];
		bodies[2 + i] = a->encoded;
		lens[2 + i] = a->encoded_len;
		if (a->encoded == NULL) {
			if (mimeenc_base64(a->data, a->len, &owned[2 + i],
			                   &lens[2 + i]) < 0)
				goto oom;
			bodies[2 + i] = owned[2 + i];
		}
	}
	for (size_t i = 0; i < nbodies; i++)
		snprintf(tokens[i], sizeof(tokens[i]), COMPOSE_TOKEN, i);

	alt = compose_multipart("multipart/alternative", m->message_id, 1);
	if (alt == NULL)
		goto oom;
	part = compose_text_part("text/plain", tokens[0], strlen(tokens[0]));
	if (part == NULL ||
	    mailmime_smart_add_part(alt, part) != MAILIMF_NO_ERROR)
		goto oom;
	part = compose_text_part("text/html", tokens[1], strlen(tokens[1]));
	if (part == NULL ||
	    mailmime_smart_add_part(alt, part) != MAILIMF_NO_ERROR)
		goto oom;
	part = NULL;
	root = alt;
	if (m->nattachments > 0) {
		root = compose_multipart("multipart/mixed", m->message_id, 0);
		if (root == NULL)
			goto oom;
		if (mailmime_smart_add_part(root, alt) != MAILIMF_NO_ERROR)
			goto oom;
		alt = NULL;
		for (size_t i = 0; i < m->nattachments; i++) {
			part = compose_attachment(&m->attachments[i],
			                          tokens[2 + i],
			                          strlen(tokens[2 + i]));
			if (part == NULL || mailmime_smart_add_part(
			                        root, part) != MAILIMF_NO_ERROR)
				goto oom;
			part = NULL;
		}
	} else {
		alt = NULL;
	}
	/* libetpan writes a root part's body but not its header: the
	 * multipart's Content-Type ends herald's header */
	{
		int level = m->nattachments > 0 ? 0 : 1;
		char *b = compose_boundary(m->message_id, level);
		if (b == NULL)
			goto oom;
		fprintf(f, "Content-Type: %s;\r\n boundary=\"%s\"\r\n\r\n",
		        level == 0 ? "multipart/mixed"
		                   : "multipart/alternative",
		        b);
		free(b);
	}
	if (fclose(f) != 0) {
		f = NULL;
		goto oom;
	}
	f = NULL;
	skel = mmap_string_new("");
	if (skel == NULL ||
	    mailmime_write_mem(skel, &col, root) != MAILIMF_NO_ERROR)
		goto oom;
	compose_unquote_ext(skel);
	if (compose_splice(head, headlen, skel, bodies, lens, nbodies, out,
	                   len) < 0)
		goto oom;
	mmap_string_free(skel);
	mailmime_free(root);
	for (size_t i = 0; i < nbodies; i++)
		free(owned[i]);
	free(owned);
	free(tokens);
	free(lens);
	free(bodies);
	free(head);
	return 0;
oom:
	diag_add(d, NULL, 0, 0, "out of memory composing the message");
fail:
	if (f != NULL)
		fclose(f);
	if (part != NULL)
		mailmime_free(part);
	if (alt != NULL && alt != root)
		mailmime_free(alt);
	if (root != NULL)
		mailmime_free(root);
	if (skel != NULL)
		mmap_string_free(skel);
	for (size_t i = 0; owned != NULL && i < nbodies; i++)
		free(owned[i]);
	free(owned);
	free(tokens);
	free(lens);
	free(bodies);
	free(head);
	*out = NULL;
	*len = 0;
	return -1;
}
