/*
 * bounce_mime — the structure of a message received at the return path
 * (bounce_int.h): the message copied with every line end made CRLF and
 * NUL bytes made spaces (the text scans use C strings), its header
 * fields, and the parts that matter, collected in one walk of the top
 * level (never inside a returned original): message/delivery-status,
 * message/feedback-report, the returned original's header block
 * (message/rfc822 or text/rfc822-headers) and the human-readable text.
 *
 * The message is cut into parts here, not by libetpan's mailmime_parse:
 * that would parse every header field of every part, the returned
 * original's included, allocating for each. Part boundaries are found with
 * memchr, each part's header block is scanned for Content-Type and
 * Content-Transfer-Encoding only, and of a returned original only its
 * header block is kept (a slice of the message, not a copy). libetpan
 * still decodes base64, quoted-printable and RFC 2047 words, and parses
 * the fields of a feedback report.
 */
#include "bounce_int.h"

#include <ctype.h>
#include <libetpan/libetpan.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *bounce_mime_normalise(const char *msg, size_t len, size_t *out)
{
	size_t i = 0, o = 0, need;
	char *p;

	if (len >= 5 && memcmp(msg, "From ", 5) == 0) {
		while (i < len && msg[i] != '\n' && msg[i] != '\r')
			i++;
		if (i < len && msg[i] == '\r')
			i++;
		if (i < len && msg[i] == '\n')
			i++;
	}
	/* each bare CR or LF grows by one byte */
	need = len - i;
	for (const char *c = msg + i, *e = msg + len;
	     (c = memchr(c, '\n', (size_t)(e - c))) != NULL; c++)
		if (c == msg + i || c[-1] != '\r')
			need++;
	for (const char *c = msg + i, *e = msg + len;
	     (c = memchr(c, '\r', (size_t)(e - c))) != NULL; c++)
		if (c + 1 == e || c[1] != '\n')
			need++;
	p = malloc(need + 1);
	if (p == NULL)
		return NULL;
	if (need == len - i && memchr(msg + i, '\0', len - i) == NULL) {
		/* CRLF already (or no line end at all): one copy */
		memcpy(p, msg + i, len - i);
		p[need] = '\0';
		*out = need;
		return p;
	}
	if (memchr(msg + i, '\r', len - i) == NULL &&
	    memchr(msg + i, '\0', len - i) == NULL) {
		/* LF only, the Maildir way: line by line */
		for (const char *c = msg + i, *e = msg + len; c < e;) {
			const char *nl = memchr(c, '\n', (size_t)(e - c));

			if (nl == NULL)
				nl = e;
			memcpy(p + o, c, (size_t)(nl - c));
			o += (size_t)(nl - c);
			if (nl == e)
				break;
			p[o++] = '\r';
			p[o++] = '\n';
			c = nl + 1;
		}
		p[o] = '\0';
		*out = o;
		return p;
	}
	while (i < len) {
		size_t j = i;

		while (j < len && msg[j] != '\r' && msg[j] != '\n' &&
		       msg[j] != '\0')
			j++;
		memcpy(p + o, msg + i, j - i);
		o += j - i;
		if (j == len)
			break;
		if (msg[j] == '\0') {
			p[o++] = ' ';
		} else {
			if (msg[j] == '\r' && j + 1 < len && msg[j + 1] == '\n')
				j++;
			p[o++] = '\r';
			p[o++] = '\n';
		}
		i = j + 1;
	}
	p[o] = '\0';
	*out = o;
	return p;
}

/* ---- header fields ---- */

size_t bounce_mime_head_len(const char *s, size_t n, size_t *body)
{
	const char *e;

	if (n >= 2 && s[0] == '\r' && s[1] == '\n') {
		*body = 2;
		return 0;
	}
	/* line by line: memchr is faster than memmem for a 4-byte needle */
	for (e = memchr(s, '\n', n); e != NULL;
	     e = memchr(e + 1, '\n', (size_t)(s + n - e - 1)))
		if (s + n - e >= 3 && e[1] == '\r' && e[2] == '\n') {
			e--; /* at the CR of "\r\n\r\n" */
			break;
		}
	if (e == NULL) {
		*body = n;
		return n;
	}
	*body = (size_t)(e - s) + 4;
	return (size_t)(e - s) + 2;
}

int bounce_mime_field_line(const char **at, const char *end,
                           struct bounce_hfield *f)
{
	const char *p = *at, *le, *c = p, *ne, *ve;

	if (p >= end)
		return 0;
	if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
		*at = p + 2;
		return 0;
	}
	le = memchr(p, '\n', (size_t)(end - p));
	/* the logical line: continuation lines begin with a blank */
	while (le != NULL && le + 1 < end && (le[1] == ' ' || le[1] == '\t'))
		le = memchr(le + 1, '\n', (size_t)(end - le - 1));
	if (le == NULL)
		le = end;
	*at = le < end ? le + 1 : end;
	while (c < le && *c > ' ' && *c < 0x7f && *c != ':')
		c++;
	ne = c;
	while (c < le && (*c == ' ' || *c == '\t'))
		c++;
	if (ne == p || c == le || *c != ':')
		return -1;
	ve = le;
	if (ve > c + 1 && ve[-1] == '\r')
		ve--;
	f->name = p;
	f->nname = (size_t)(ne - p);
	f->val = c + 1;
	f->nval = (size_t)(ve - (c + 1));
	return 1;
}

int bounce_mime_field_next(const char **at, const char *end,
                           struct bounce_hfield *f)
{
	while (*at < end)
		if (bounce_mime_field_line(at, end, f) == 1)
			return 1;
	return 0;
}

int bounce_mime_field_is(const struct bounce_hfield *f, const char *name)
{
	size_t n = strlen(name);

	return f->nname == n && strncasecmp(f->name, name, n) == 0;
}

void bounce_mime_top_read(const char *s, size_t n, struct bounce_top *t)
{
	static const char *const names[NTOP] = {
	    "From",          "To",           "Subject",     "In-Reply-To",
	    "References",    "Delivered-To", "X-Original-To", "Auto-Submitted",
	    "X-Autoreply",   "X-Autorespond", "X-Failed-Recipients",
	};
	const char *at = s;
	struct bounce_hfield f;

	memset(t, 0, sizeof *t);
	while (bounce_mime_field_next(&at, s + n, &f))
		for (size_t k = 0; k < NTOP; k++)
			if (t->v[k] == NULL &&
			    bounce_mime_field_is(&f, names[k])) {
				t->v[k] = f.val;
				t->n[k] = f.nval;
				break;
			}
}

char *bounce_mime_top_get(const struct bounce_top *t, enum bounce_top_field k,
                          int *oom)
{
	char *v;

	if (t->v[k] == NULL)
		return NULL;
	v = bounce_str_clean(t->v[k], t->n[k]);
	if (v == NULL)
		*oom = 1;
	return v;
}

const char *bounce_mime_msg_id_next(const char **s, const char *e, size_t *n)
{
	const char *lt, *gt;

	while (*s < e && (lt = memchr(*s, '<', (size_t)(e - *s))) != NULL) {
		gt = memchr(lt, '>', (size_t)(e - lt));
		if (gt == NULL)
			break;
		*s = gt + 1;
		if (gt - lt > 1 && (size_t)(gt - lt) <= BOUNCE_MAX_VALUE) {
			*n = (size_t)(gt - lt - 1);
			return lt + 1;
		}
	}
	*s = e;
	return NULL;
}

char *bounce_mime_decode_header(const char *v)
{
	size_t idx = 0;
	char *out = NULL;

	/* no encoded word: nothing to decode (and no iconv to open) */
	if (v == NULL || strstr(v, "=?") == NULL ||
	    mailmime_encoded_phrase_parse("utf-8", v, strlen(v), &idx, "utf-8",
	                                  &out) != MAILIMF_NO_ERROR)
		return NULL;
	return out;
}

/* ---- parts ---- */

/* What a part's header says about its body. */
struct ctype {
	char type[64];   /* "type/subtype", lowercase, cut to fit */
	char rtype[32];  /* report-type parameter, lowercase, or "" */
	const char *bnd; /* boundary parameter, or NULL */
	size_t nbnd;
	int enc; /* MAILMIME_MECHANISM_BASE64, _QUOTED_PRINTABLE, or 0 */
};

/* A token of a structured value at *p (before e) lowercased into
 * out[cap]; *p is moved past it. */
static void ct_token(const char **p, const char *e, char *out, size_t cap,
                     const char *stops)
{
	size_t o = 0;

	while (*p < e && (**p == ' ' || **p == '\t' || **p == '\r' ||
	                  **p == '\n'))
		(*p)++;
	for (; *p < e && strchr(stops, **p) == NULL; (*p)++)
		if (o + 1 < cap)
			out[o++] = (char)tolower((unsigned char)**p);
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	out[o] = '\0';
}

/* Content-Type value [v, v+n) into ct: type, boundary, report-type. A
 * type without a subtype leaves ct->type as it was (the default). */
static void ct_parse(const char *v, size_t n, struct ctype *ct)
{
	const char *p = v, *e = v + n;
	char t[sizeof ct->type];

	ct_token(&p, e, t, sizeof t, ";\r\n(");
	if (strchr(t, '/') != NULL)
		memcpy(ct->type, t, sizeof t);
	while (p < e) {
		char name[16];
		const char *val;
		size_t nval;

		p = memchr(p, ';', (size_t)(e - p));
		if (p == NULL)
			return;
		p++;
		ct_token(&p, e, name, sizeof name, "=;\r\n");
		if (p >= e || *p != '=')
			continue;
		p++;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		if (p < e && *p == '"') {
			val = ++p;
			while (p < e && *p != '"')
				p += *p == '\\' && p + 1 < e ? 2 : 1;
			nval = (size_t)((p < e ? p : e) - val);
			if (p < e)
				p++;
		} else {
			val = p;
			while (p < e && *p != ';' && *p != ' ' && *p != '\t' &&
			       *p != '\r' && *p != '\n')
				p++;
			nval = (size_t)(p - val);
		}
		if (strcmp(name, "boundary") == 0 && ct->bnd == NULL) {
			ct->bnd = val;
			ct->nbnd = nval;
		} else if (strcmp(name, "report-type") == 0) {
			size_t k = nval < sizeof ct->rtype - 1
			               ? nval
			               : sizeof ct->rtype - 1;

			for (size_t i = 0; i < k; i++)
				ct->rtype[i] =
				    (char)tolower((unsigned char)val[i]);
			ct->rtype[k] = '\0';
		}
	}
}

/* What the header block [s, s+n) says of its body; dflt is the type
 * when it says nothing (text/plain, message/rfc822 in a digest). */
static void part_type(const char *s, size_t n, const char *dflt,
                      struct ctype *ct)
{
	const char *at = s;
	struct bounce_hfield f;
	int seen = 0;

	memset(ct, 0, sizeof *ct);
	memcpy(ct->type, dflt, strlen(dflt) + 1);
	while (bounce_mime_field_next(&at, s + n, &f)) {
		if (f.nname < 12 || strncasecmp(f.name, "Content-", 8) != 0)
			continue;
		if (!(seen & 1) && bounce_mime_field_is(&f, "Content-Type")) {
			seen |= 1;
			ct_parse(f.val, f.nval, ct);
		} else if (!(seen & 2) &&
		           bounce_mime_field_is(&f,
		                                "Content-Transfer-Encoding")) {
			char enc[24];
			const char *p = f.val;

			seen |= 2;
			ct_token(&p, f.val + f.nval, enc, sizeof enc, ";\r\n(");
			if (strcmp(enc, "base64") == 0)
				ct->enc = MAILMIME_MECHANISM_BASE64;
			else if (strcmp(enc, "quoted-printable") == 0)
				ct->enc = MAILMIME_MECHANISM_QUOTED_PRINTABLE;
		}
	}
}

/* The body [b, b+n) decoded: *out points to it, or to a decoded copy
 * (CRLF) stored in *own; -1 on out-of-memory, 1 when it could not be
 * decoded. */
static int part_decoded(const char *b, size_t n, int enc, char **own,
                        const char **out, size_t *nout)
{
	char *dec = NULL;
	size_t idx = 0, dlen = 0;

	*own = NULL;
	if (enc == 0) {
		*out = b;
		*nout = n;
		return 0;
	}
	if (mailmime_part_parse(b, n, &idx, enc, &dec, &dlen) !=
	    MAILIMF_NO_ERROR)
		return 1;
	*own = bounce_mime_normalise(dec, dlen, nout);
	mailmime_decoded_part_free(dec);
	if (*own == NULL)
		return -1;
	*out = *own;
	return 0;
}

int bounce_mime_text_append(struct bounce_scan *sc, const char *s, size_t n)
{
	char *p;

	if (sc->ntext + n > BOUNCE_MAX_TEXT)
		n = BOUNCE_MAX_TEXT - sc->ntext;
	if (n == 0)
		return 0;
	p = realloc(sc->text, sc->ntext + n + 3);
	if (p == NULL)
		return -1;
	sc->text = p;
	memcpy(p + sc->ntext, s, n);
	sc->ntext += n;
	memcpy(p + sc->ntext, "\r\n", 3);
	sc->ntext += 2;
	if (sc->nfirst == 0)
		sc->nfirst = sc->ntext;
	return 0;
}

void bounce_mime_orig_set(struct bounce_scan *sc, const char *b, size_t n,
                          char *own)
{
	size_t body;

	for (int i = 0; i < 4 && n >= 2 && b[0] == '\r' && b[1] == '\n'; i++)
		b += 2, n -= 2;
	sc->orig = b;
	sc->norig = bounce_mime_head_len(b, n, &body);
	sc->orig_own = own;
}

/* The parts of a multipart body [b, b+n) walked in turn. A missing close
 * delimiter ends the last part at the end of the body. */
static int walk_multipart(struct bounce_scan *sc, const struct ctype *ct,
                          const char *b, size_t n, int depth)
{
	const char *dflt =
	    strcmp(ct->type, "multipart/digest") == 0 ? "message/rfc822"
	                                               : "text/plain";
	const char *p = b, *e = b + n, *start = NULL;
	char delim[2 + 200];
	size_t dl = ct->nbnd + 2;

	if (ct->nbnd == 0 || ct->nbnd > 200)
		return 0;
	delim[0] = delim[1] = '-';
	memcpy(delim + 2, ct->bnd, ct->nbnd);
	while (p < e) {
		const char *d, *q, *nl;
		int close;

		/* the next line that begins with the delimiter */
		if (p == b && (size_t)(e - p) >= dl &&
		    memcmp(p, delim, dl) == 0) {
			d = p;
		} else {
			for (d = memchr(p, '\n', (size_t)(e - p)); d != NULL;
			     d = memchr(d + 1, '\n', (size_t)(e - d - 1)))
				if ((size_t)(e - d - 1) >= dl && d[1] == '-' &&
				    d[2] == '-' &&
				    memcmp(d + 1, delim, dl) == 0)
					break;
			if (d == NULL)
				break;
			d++;
		}
		p = d + dl;
		if (d != b && !(d - b >= 2 && d[-2] == '\r' && d[-1] == '\n'))
			continue; /* a bare LF cannot be here: CRLF */
		q = d + dl;
		close = e - q >= 2 && q[0] == '-' && q[1] == '-';
		if (close)
			q += 2;
		while (q < e && (*q == ' ' || *q == '\t'))
			q++;
		if (q < e && *q != '\r')
			continue; /* a longer boundary */
		if (start != NULL) {
			const char *pe = d == b ? d : d - 2;

			if (bounce_mime_walk(
			        sc, start,
			        (size_t)(pe > start ? pe - start : 0),
			        depth + 1, dflt) < 0)
				return -1;
			if (sc->parts >= BOUNCE_MAX_PARTS)
				return 0;
		}
		if (close)
			return 0;
		nl = q < e ? memchr(q, '\n', (size_t)(e - q)) : NULL;
		start = p = nl != NULL ? nl + 1 : e;
	}
	if (start != NULL && start < e)
		return bounce_mime_walk(sc, start, (size_t)(e - start),
		                        depth + 1, dflt);
	return 0;
}

int bounce_mime_walk(struct bounce_scan *sc, const char *s, size_t n, int depth,
                     const char *dflt)
{
	struct ctype ct;
	size_t hl, at, nd = 0;
	const char *body, *d = NULL;
	char *own = NULL;
	int r;

	if (depth > BOUNCE_MAX_DEPTH || sc->parts >= BOUNCE_MAX_PARTS)
		return 0;
	sc->parts++;
	hl = bounce_mime_head_len(s, n, &at);
	part_type(s, hl, dflt, &ct);
	body = s + at;
	if (strncmp(ct.type, "multipart/", 10) == 0) {
		if (strcmp(ct.type, "multipart/report") == 0) {
			if (strcmp(ct.rtype, "delivery-status") == 0)
				sc->report_dsn = 1;
			if (strcmp(ct.rtype, "feedback-report") == 0)
				sc->report_arf = 1;
		}
		return walk_multipart(sc, &ct, body, n - at, depth);
	}
	if (strcmp(ct.type, "message/delivery-status") == 0 ||
	    strcmp(ct.type, "message/global-delivery-status") == 0) {
		if (sc->dsn != NULL)
			return 0;
		r = part_decoded(body, n - at, ct.enc, &own, &d, &nd);
		sc->dsn = d, sc->ndsn = nd, sc->dsn_own = own;
	} else if (strcmp(ct.type, "message/feedback-report") == 0) {
		if (sc->arf != NULL)
			return 0;
		r = part_decoded(body, n - at, ct.enc, &own, &d, &nd);
		sc->arf = d, sc->narf = nd, sc->arf_own = own;
	} else if (strcmp(ct.type, "text/rfc822-headers") == 0 ||
	           strcmp(ct.type, "message/rfc822-headers") == 0 ||
	           strcmp(ct.type, "message/rfc822") == 0 ||
	           strcmp(ct.type, "message/global") == 0 ||
	           strcmp(ct.type, "message/global-headers") == 0) {
		if (sc->orig != NULL)
			return 0;
		r = part_decoded(body, n - at, ct.enc, &own, &d, &nd);
		if (r == 0)
			bounce_mime_orig_set(sc, d, nd, own);
	} else if (strncmp(ct.type, "text/", 5) == 0 &&
	           strcmp(ct.type, "text/html") != 0) {
		if (sc->ntext >= BOUNCE_MAX_TEXT)
			return 0;
		r = part_decoded(body, n - at, ct.enc, &own, &d, &nd);
		if (r == 0 && bounce_mime_text_append(sc, d, nd) < 0)
			r = -1;
		free(own);
	} else {
		return 0;
	}
	return r < 0 ? -1 : 0;
}

/* ---- the returned original's header, a feedback report's fields ---- */

int bounce_mime_orig_read(const char *s, size_t n, struct bounce_orig *o)
{
	const char *at = s;
	struct bounce_hfield f;
	int oom = 0;

	while (!oom && bounce_mime_field_next(&at, s + n, &f)) {
		char **dst = NULL, *v;

		if (o->mid == NULL && bounce_mime_field_is(&f, "Message-ID")) {
			const char *p = f.val, *id;
			size_t k = 0;

			id = bounce_mime_msg_id_next(&p, f.val + f.nval, &k);
			if (id == NULL)
				id = f.val, k = f.nval; /* bare, some MUAs */
			if ((o->mid = bounce_str_clean(id, k)) == NULL)
				oom = 1;
			else if (o->mid[0] == '\0' ||
			         strchr(o->mid, ' ') != NULL) {
				free(o->mid);
				o->mid = NULL;
			}
			continue;
		}
		if (o->to == NULL && bounce_mime_field_is(&f, "To"))
			dst = &o->to;
		else if (o->from == NULL && bounce_mime_field_is(&f, "From"))
			dst = &o->from;
		else if (o->hmx == NULL &&
		         bounce_mime_field_is(&f, "X-HmXmrOriginalRecipient"))
			dst = &o->hmx;
		else if (o->rp == NULL &&
		         bounce_mime_field_is(&f, "Return-Path"))
			dst = &o->rp;
		else if (o->lu == NULL &&
		         bounce_mime_field_is(&f, "List-Unsubscribe"))
			dst = &o->lu;
		if (dst == NULL)
			continue;
		v = bounce_str_clean(f.val, f.nval);
		if (v == NULL) {
			oom = 1;
			continue;
		}
		if (dst == &o->hmx) {
			o->hmx = v;
			continue;
		}
		if (dst == &o->lu) {
			/* "<mailto:a@b?subject=…>, <https://…>": the address */
			char *m = strcasestr(v, "mailto:");
			if (m != NULL) {
				m[7 + strcspn(m + 7, "?>, \t")] = '\0';
				o->lu = bounce_addr_scan(m + 7, &oom);
			}
			free(v);
			continue;
		}
		*dst = bounce_addr_first(v, &oom);
		free(v);
	}
	return oom ? -1 : 0;
}

void bounce_mime_orig_free(struct bounce_orig *o)
{
	free(o->mid);
	free(o->from);
	free(o->to);
	free(o->hmx);
	free(o->rp);
	free(o->lu);
}

int bounce_mime_fields_parse(const char *s, size_t n, struct mailimf_fields **f)
{
	size_t idx = 0;

	*f = NULL;
	if (s == NULL)
		return -1;
	return mailimf_fields_parse(s, n, &idx, f) == MAILIMF_NO_ERROR ? 0 : -1;
}

char *bounce_mime_fields_get(struct mailimf_fields *f, const char *name,
                             int *oom)
{
	clistiter *it;

	if (f == NULL || f->fld_list == NULL)
		return NULL;
	for (it = clist_begin(f->fld_list); it != NULL; it = clist_next(it)) {
		struct mailimf_field *fl = clist_content(it);
		const char *val;
		char *v;

		if (fl->fld_type != MAILIMF_FIELD_OPTIONAL_FIELD ||
		    fl->fld_data.fld_optional_field->fld_name == NULL ||
		    strcasecmp(fl->fld_data.fld_optional_field->fld_name,
		               name) != 0 ||
		    fl->fld_data.fld_optional_field->fld_value == NULL)
			continue;
		val = fl->fld_data.fld_optional_field->fld_value;
		v = bounce_str_clean(val, strlen(val));
		if (v == NULL)
			*oom = 1;
		return v;
	}
	return NULL;
}
