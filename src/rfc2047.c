/*
 * rfc2047 — header fields whose values may hold non-ASCII text (see
 * rfc2047.h). A value is cut into items: ASCII words, pieces of a quoted
 * display name, addresses, and runs of text that travel as encoded words.
 * One greedy pass lays the items out, folding before a space when the next
 * item would pass column 78, and sizes each encoded word to the room left
 * on its line, choosing B or Q per word, whichever carries more text.
 *
 * compose calls this for several fields of every message, so all the work
 * is one pass over the value: no step rescans what an earlier one read.
 * The input checks here are the last guard against header injection:
 * whatever the loaders let through, no CR, LF or NUL from data reaches a
 * field written here.
 */
#include "herald/rfc2047.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libetpan/libetpan.h>
#include <unicode/uchar.h>

/* RFC 5322 §2.1.1: a line SHOULD be at most 78 characters... */
#define RFC2047_LINE_SOFT 78
/* ...and MUST be at most 998. */
#define RFC2047_LINE_HARD 998
/* RFC 2047 §2: an encoded word is at most 75 characters in all. */
#define RFC2047_WORD_MAX 75
/* "=?UTF-8?B?" before and "?=" after the encoded text. */
#define RFC2047_WORD_OVERHEAD 12
/* Bytes of text one encoded word can hold at most (Q, all literal): a
 * grapheme longer than this is split between its characters anyway. */
#define RFC2047_WORD_TEXT_MAX (RFC2047_WORD_MAX - RFC2047_WORD_OVERHEAD)
/* Postfix discards a message header past its default header_size_limit
 * (102400 bytes), so a larger field could never reach anyone intact. */
#define RFC2047_FIELD_MAX 102400

/* The field being written. In measuring mode nothing is stored and only
 * col moves: that is how a mailbox's width is learnt before placing it. */
struct out {
	char *buf;
	size_t len;
	size_t cap;
	size_t col;  /* characters on the current line so far */
	size_t soft; /* fold before an item that would pass this column */
	bool first;  /* nothing placed after "Name:" yet: no fold there */
	bool measure;
};

/* One encoded word: how many bytes of text it takes, in which encoding,
 * and how many characters it is with its delimiters. */
struct ew {
	size_t take;
	size_t len;
	bool b;
	bool clean; /* ends the text or ends just after a space */
};

/* How a display name is written. */
enum name_kind { NAME_NONE, NAME_ATOMS, NAME_QUOTED, NAME_ENCODED };

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex[] = "0123456789ABCDEF";

static int out_reserve(struct out *o, size_t n)
{
	size_t cap;
	char *p;

	if (o->measure)
		return 0;
	if (n > RFC2047_FIELD_MAX || o->len + n + 1 > RFC2047_FIELD_MAX) {
		errno = E2BIG;
		return -1;
	}
	if (o->len + n + 1 <= o->cap)
		return 0;
	cap = o->cap ? o->cap : 128;
	while (cap < o->len + n + 1)
		cap *= 2;
	if (cap > RFC2047_FIELD_MAX)
		cap = RFC2047_FIELD_MAX;
	p = realloc(o->buf, cap);
	if (p == NULL)
		return -1;
	o->buf = p;
	o->cap = cap;
	return 0;
}

/* Account for n characters just added to the current line. */
static int out_advance(struct out *o, size_t n)
{
	o->col += n;
	if (o->measure)
		return 0;
	o->len += n;
	o->buf[o->len] = '\0';
	if (o->col > RFC2047_LINE_HARD) {
		errno = E2BIG;
		return -1;
	}
	return 0;
}

static int out_put(struct out *o, const void *s, size_t n)
{
	if (out_reserve(o, n) < 0)
		return -1;
	if (!o->measure)
		memcpy(o->buf + o->len, s, n);
	return out_advance(o, n);
}

static int out_spaces(struct out *o, size_t n)
{
	if (out_reserve(o, n) < 0)
		return -1;
	if (!o->measure)
		memset(o->buf + o->len, ' ', n);
	return out_advance(o, n);
}

/* Fold: the spaces that follow start the continuation line. */
static int out_newline(struct out *o)
{
	if (out_reserve(o, 2) < 0)
		return -1;
	if (!o->measure) {
		memcpy(o->buf + o->len, "\r\n", 2);
		o->len += 2;
		o->buf[o->len] = '\0';
	}
	o->col = 0;
	return 0;
}

/* Before an item of n characters that follows nsp spaces: fold when it
 * would pass the soft limit, then write the spaces. */
static int item_begin(struct out *o, size_t nsp, size_t n)
{
	if (!o->first && o->col + nsp + n > o->soft && out_newline(o) < 0)
		return -1;
	o->first = false;
	return out_spaces(o, nsp);
}

/* The length of the valid, control-free UTF-8 text s, or -1. Refused:
 * malformed, overlong or surrogate sequences, C0 controls (with TAB, CR,
 * LF), DEL and the C1 controls U+0080 to U+009F. *ascii tells whether
 * every byte was ASCII. */
static ptrdiff_t text_check(const char *str, bool *ascii)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	*ascii = true;
	while (s[i] != '\0') {
		unsigned char c = s[i], lo = 0x80, hi = 0xBF;
		size_t more;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7F)
				return -1;
			i++;
			continue;
		}
		*ascii = false;
		if (c == 0xC2) {
			lo = 0xA0; /* U+0080 to U+009F are C1 controls */
			more = 1;
		} else if (c >= 0xC3 && c <= 0xDF) {
			more = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
			more = 2;
		} else if (c >= 0xF0 && c <= 0xF4) {
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
			more = 3;
		} else {
			return -1;
		}
		if (s[i + 1] < lo || s[i + 1] > hi)
			return -1;
		for (size_t k = 2; k <= more; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return -1;
		i += more + 1;
	}
	return (ptrdiff_t)i;
}

/* A field name: printable ASCII but colon (RFC 5322 ftext). */
static bool name_valid(const char *name)
{
	if (name == NULL || *name == '\0')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7E || *p == ':')
			return false;
	return true;
}

/* An address goes out as it is: nothing that could end it, start a
 * comment or quoted string, or reach another line. */
static bool addr_valid(const char *addr)
{
	if (addr == NULL || *addr == '\0')
		return false;
	for (const char *p = addr; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7E || strchr("<>(),;\\\"", *p) != NULL)
			return false;
	return true;
}

/* A word that must travel encoded: non-ASCII, or holding "=?", which a
 * lenient decoder (libetpan's among them) would take for the start of an
 * encoded word even in the middle of a word. */
static bool word_needs_encoding(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80 ||
		    (s[i] == '=' && i + 1 < n && s[i + 1] == '?'))
			return true;
	return false;
}

static size_t word_end(const unsigned char *s, size_t n, size_t i)
{
	while (i < n && s[i] != ' ')
		i++;
	return i;
}

/* Q encoding: which bytes may stand for themselves. In a phrase only the
 * restricted set of RFC 2047 §5(3); in unstructured text every printable
 * ASCII character but "=", "?" and "_" (§4.2). Space is "_" in both. */
static bool q_literal(unsigned char c, bool phrase)
{
	if (phrase)
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		       (c >= '0' && c <= '9') || c == '!' || c == '*' ||
		       c == '+' || c == '-' || c == '/';
	return c > 0x20 && c < 0x7F && c != '=' && c != '?' && c != '_';
}

static size_t q_cost(unsigned char c, bool phrase)
{
	return c == ' ' || q_literal(c, phrase) ? 1 : 3;
}

static size_t b_cost(size_t bytes)
{
	return (bytes + 2) / 3 * 4;
}

/* The code point at s (valid UTF-8) and its length in *len. */
static UChar32 char_at(const unsigned char *s, size_t *len)
{
	if (s[0] < 0x80) {
		*len = 1;
		return s[0];
	}
	if (s[0] < 0xE0) {
		*len = 2;
		return (UChar32)((s[0] & 0x1F) << 6 | (s[1] & 0x3F));
	}
	if (s[0] < 0xF0) {
		*len = 3;
		return (UChar32)((s[0] & 0x0F) << 12 | (s[1] & 0x3F) << 6 |
		                 (s[2] & 0x3F));
	}
	*len = 4;
	return (UChar32)((s[0] & 0x07) << 18 | (s[1] & 0x3F) << 12 |
	                 (s[2] & 0x3F) << 6 | (s[3] & 0x3F));
}

/* The end of the grapheme that starts at i: a character with the marks,
 * joiners and emoji modifiers that extend it (UAX #29 Extend, SpacingMark,
 * ZWJ + pictograph, a pair of regional indicators). Hangul jamo sequences
 * and prepended marks are not joined: at worst a word boundary falls
 * inside one, still between whole characters. Scanning stops past the
 * longest text a word can hold, so a freak cluster costs no more than a
 * word. */
static size_t grapheme_end(const unsigned char *s, size_t n, size_t i)
{
	size_t len, j;
	UChar32 c = char_at(s + i, &len);
	bool ri_open = c >= 0x80 &&
	               u_getIntPropertyValue(c, UCHAR_GRAPHEME_CLUSTER_BREAK) ==
	                   U_GCB_REGIONAL_INDICATOR;
	bool zwj = false;

	j = i + len;
	while (j < n && s[j] >= 0x80 && j - i <= RFC2047_WORD_TEXT_MAX) {
		UChar32 d = char_at(s + j, &len);
		int gcb =
		    u_getIntPropertyValue(d, UCHAR_GRAPHEME_CLUSTER_BREAK);

		if (gcb == U_GCB_REGIONAL_INDICATOR && ri_open)
			ri_open = false;
		else if (zwj &&
		         u_hasBinaryProperty(d, UCHAR_EXTENDED_PICTOGRAPHIC))
			;
		else if (gcb != U_GCB_EXTEND && gcb != U_GCB_SPACING_MARK &&
		         gcb != U_GCB_ZWJ)
			break;
		zwj = gcb == U_GCB_ZWJ;
		j += len;
	}
	return j;
}

/* The longest start of s[0..n) that one encoded word of at most room
 * characters can carry, ending on a grapheme boundary (or, with
 * whole_graphemes false, a character boundary), in whichever encoding
 * carries more; when both carry all of it, the shorter word, Q on a tie.
 * False when not even one grapheme fits. */
static bool word_fit(const unsigned char *s, size_t n, size_t room, bool phrase,
                     bool whole_graphemes, struct ew *w)
{
	size_t i = 0, q = 0, best_q = 0, best_b = 0, q_len = 0, text;

	if (room <= RFC2047_WORD_OVERHEAD)
		return false;
	text = room - RFC2047_WORD_OVERHEAD;
	while (i < n) {
		size_t j, len;
		bool q_fits, b_fits;

		if (whole_graphemes) {
			j = grapheme_end(s, n, i);
		} else {
			char_at(s + i, &len);
			j = i + len;
		}
		for (size_t k = i; k < j; k++)
			q += q_cost(s[k], phrase);
		q_fits = q <= text;
		b_fits = b_cost(j) <= text;
		if (!q_fits && !b_fits)
			break;
		if (q_fits) {
			best_q = j;
			q_len = q;
		}
		if (b_fits)
			best_b = j;
		i = j;
	}
	if (best_q == 0 && best_b == 0)
		return false;
	w->b = best_b > best_q || (best_b == best_q && b_cost(best_b) < q_len);
	w->take = w->b ? best_b : best_q;
	w->len = RFC2047_WORD_OVERHEAD + (w->b ? b_cost(best_b) : q_len);
	return true;
}

/* As word_fit; in a phrase, when the word cannot take all the rest, end
 * it just after the last space it can hold. Decoders that keep the space
 * between two encoded words in a display name (Python's email address
 * parser does, against RFC 2047 §6.2) then show a double space rather
 * than a gap inside a word. Unstructured text is decoded right by all
 * the readers we know of, so there words are filled to the end of the
 * line wherever that falls. */
static bool word_pick(const unsigned char *s, size_t n, size_t room,
                      bool phrase, struct ew *w)
{
	size_t q = 0;

	if (!word_fit(s, n, room, phrase, true, w))
		return false;
	w->clean = w->take == n || !phrase;
	for (size_t k = w->take - 1; !w->clean && k > 1; k--) {
		if (s[k - 1] != ' ' || grapheme_end(s, n, k - 1) != k)
			continue;
		for (size_t i = 0; i < k; i++)
			q += q_cost(s[i], phrase);
		w->b = b_cost(k) < q;
		w->take = k;
		w->len = RFC2047_WORD_OVERHEAD + (w->b ? b_cost(k) : q);
		w->clean = true;
	}
	return true;
}

static int word_write(struct out *o, const unsigned char *s, const struct ew *w,
                      bool phrase)
{
	char *p;

	if (out_reserve(o, w->len) < 0)
		return -1;
	if (o->measure)
		return out_advance(o, w->len);
	p = o->buf + o->len;
	memcpy(p, w->b ? "=?UTF-8?B?" : "=?UTF-8?Q?", 10);
	p += 10;
	if (w->b) {
		for (size_t i = 0; i < w->take; i += 3) {
			size_t left = w->take - i;
			uint32_t v = (uint32_t)s[i] << 16;

			if (left > 1)
				v |= (uint32_t)s[i + 1] << 8;
			if (left > 2)
				v |= s[i + 2];
			*p++ = b64[v >> 18 & 63];
			*p++ = b64[v >> 12 & 63];
			*p++ = left > 1 ? b64[v >> 6 & 63] : '=';
			*p++ = left > 2 ? b64[v & 63] : '=';
		}
	} else {
		for (size_t i = 0; i < w->take; i++) {
			unsigned char c = s[i];

			if (c == ' ') {
				*p++ = '_';
			} else if (q_literal(c, phrase)) {
				*p++ = (char)c;
			} else {
				*p++ = '=';
				*p++ = hex[c >> 4];
				*p++ = hex[c & 15];
			}
		}
	}
	memcpy(p, "?=", 2);
	return out_advance(o, w->len);
}

/* Room for an encoded word after nsp spaces on the current line. */
static size_t line_room(const struct out *o, size_t nsp)
{
	size_t room = o->col + nsp < o->soft ? o->soft - o->col - nsp : 0;

	return room < RFC2047_WORD_MAX ? room : RFC2047_WORD_MAX;
}

/* Whether to fold before the next encoded word rather than write w,
 * picked for the room left on this line (NULL: nothing fitted). */
static bool fold_first(const struct out *o, const unsigned char *t, size_t rest,
                       size_t room, bool phrase, const struct ew *w)
{
	struct ew full;

	/* after "Name:", or when a fresh line has no more room */
	if (o->first || room >= RFC2047_WORD_MAX)
		return false;
	if (w == NULL || !w->clean)
		return true;
	/* a display name that a fresh line holds whole is not cut in two */
	return phrase && w->take < rest &&
	       word_fit(t, rest, RFC2047_WORD_MAX, phrase, true, &full) &&
	       full.take == rest;
}

/* Text s[0..n) as encoded words, the first after nsp spaces, the others
 * one space apart (decoders drop the space between encoded words). Each
 * word takes what fits in the room left on its line (in a phrase, up to a
 * space: see word_pick); the line is folded first when not even one
 * grapheme fits there, or when a phrase word would have to stop inside a
 * text word that a fresh line could hold more of. So a display name that
 * fits in one encoded word is never cut in two. */
static int encoded_place(struct out *o, size_t nsp, const unsigned char *s,
                         size_t n, bool phrase)
{
	size_t pos = 0;

	while (pos < n) {
		const unsigned char *t = s + pos;
		size_t room = line_room(o, nsp);
		struct ew w;
		bool ok = word_pick(t, n - pos, room, phrase, &w);

		if (fold_first(o, t, n - pos, room, phrase, ok ? &w : NULL)) {
			if (out_newline(o) < 0)
				return -1;
			room = line_room(o, nsp);
			ok = word_pick(t, n - pos, room, phrase, &w);
		}
		/* Still no room: either the line is too narrow for any word
		 * (a long field name, a long run of spaces), and it gets a
		 * full word anyway, or the grapheme is longer than any word
		 * can be, and it is cut between its characters. */
		if (!ok &&
		    !word_fit(t, n - pos, RFC2047_WORD_MAX, phrase, true, &w) &&
		    !word_fit(t, n - pos, room, phrase, false, &w))
			word_fit(t, n - pos, RFC2047_WORD_MAX, phrase, false,
			         &w);
		o->first = false;
		if (out_spaces(o, nsp) < 0 || word_write(o, t, &w, phrase) < 0)
			return -1;
		pos += w.take;
		nsp = 1;
	}
	return 0;
}

/* Unstructured text (s trimmed of spaces at both ends): ASCII words as
 * they are, each maximal run of words that need encoding, with the spaces
 * inside it, as encoded words. */
static int text_place(struct out *o, const unsigned char *s, size_t n)
{
	size_t i = 0, nsp = 1;

	while (i < n) {
		size_t start = i, end = word_end(s, n, i);

		if (!word_needs_encoding(s + start, end - start)) {
			if (item_begin(o, nsp, end - start) < 0 ||
			    out_put(o, s + start, end - start) < 0)
				return -1;
		} else {
			for (;;) {
				size_t j = end, e;

				while (j < n && s[j] == ' ')
					j++;
				if (j == n)
					break;
				e = word_end(s, n, j);
				if (!word_needs_encoding(s + j, e - j))
					break;
				end = e;
			}
			if (encoded_place(o, nsp, s + start, end - start,
			                  false) < 0)
				return -1;
		}
		for (i = end, nsp = 0; i < n && s[i] == ' '; i++)
			nsp++;
	}
	return 0;
}

static bool atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c);
}

/* Trim the name's spaces and decide how it is written. */
static enum name_kind name_classify(const char *name, const unsigned char **s,
                                    size_t *n)
{
	const unsigned char *p = (const unsigned char *)(name ? name : "");
	size_t len = strlen((const char *)p);
	enum name_kind kind = NAME_ATOMS;

	while (len > 0 && *p == ' ') {
		p++;
		len--;
	}
	while (len > 0 && p[len - 1] == ' ')
		len--;
	*s = p;
	*n = len;
	if (len == 0)
		return NAME_NONE;
	if (word_needs_encoding(p, len))
		return NAME_ENCODED;
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && !atext(p[i]))
			kind = NAME_QUOTED;
	return kind;
}

/* A quoted-string name, cut at its spaces so it can fold there (RFC 5322
 * allows FWS inside a quoted string); " and \ are escaped. */
static int quoted_place(struct out *o, const unsigned char *s, size_t n)
{
	size_t i = 0, nsp = 1;

	while (i < n) {
		size_t start = i, end = word_end(s, n, i), len = end - start;

		for (size_t k = start; k < end; k++)
			if (s[k] == '"' || s[k] == '\\')
				len++;
		len += (start == 0) + (end == n);
		if (item_begin(o, nsp, len) < 0 ||
		    (start == 0 && out_put(o, "\"", 1) < 0))
			return -1;
		for (size_t k = start; k < end; k++) {
			if ((s[k] == '"' || s[k] == '\\') &&
			    out_put(o, "\\", 1) < 0)
				return -1;
			if (out_put(o, s + k, 1) < 0)
				return -1;
		}
		if (end == n && out_put(o, "\"", 1) < 0)
			return -1;
		for (i = end, nsp = 0; i < n && s[i] == ' '; i++)
			nsp++;
	}
	return 0;
}

/* One mailbox after one space: the name, then <addr>, or the bare
 * address; a comma after it unless it is the last. */
static int mailbox_place(struct out *o, const struct rfc2047_mailbox *box,
                         bool last)
{
	const unsigned char *s;
	size_t n, alen = strlen(box->addr);
	enum name_kind kind = name_classify(box->name, &s, &n);
	int rc = 0;

	switch (kind) {
	case NAME_NONE:
		break;
	case NAME_ATOMS:
		rc = text_place(o, s, n);
		break;
	case NAME_QUOTED:
		rc = quoted_place(o, s, n);
		break;
	case NAME_ENCODED:
		rc = encoded_place(o, 1, s, n, true);
		break;
	}
	if (rc < 0)
		return -1;
	if (kind == NAME_NONE) {
		if (item_begin(o, 1, alen + !last) < 0 ||
		    out_put(o, box->addr, alen) < 0)
			return -1;
	} else {
		if (item_begin(o, 1, alen + 2 + !last) < 0 ||
		    out_put(o, "<", 1) < 0 || out_put(o, box->addr, alen) < 0 ||
		    out_put(o, ">", 1) < 0)
			return -1;
	}
	return last ? 0 : out_put(o, ",", 1);
}

/* "Name:" into o, ready for the first item. */
static int field_begin(struct out *o, const char *name, size_t hint)
{
	memset(o, 0, sizeof(*o));
	o->soft = RFC2047_LINE_SOFT;
	o->first = true;
	if (out_reserve(o, strlen(name) + hint + 64) < 0)
		return -1;
	if (out_put(o, name, strlen(name)) < 0)
		return -1;
	return out_put(o, ":", 1);
}

char *rfc2047_text_field(const char *name, const char *value)
{
	struct out o = {0};
	const unsigned char *s = (const unsigned char *)value;
	ptrdiff_t n;
	bool ascii;

	if (!name_valid(name) || value == NULL ||
	    (n = text_check(value, &ascii)) < 0) {
		errno = EINVAL;
		return NULL;
	}
	while (n > 0 && *s == ' ') {
		s++;
		n--;
	}
	while (n > 0 && s[n - 1] == ' ')
		n--;
	if (field_begin(&o, name, ascii ? (size_t)n : (size_t)n * 2) < 0 ||
	    text_place(&o, s, (size_t)n) < 0)
		goto fail;
	return o.buf;
fail:
	free(o.buf);
	return NULL;
}

char *rfc2047_address_field(const char *name,
                            const struct rfc2047_mailbox *boxes, size_t n)
{
	struct out o = {0};
	size_t hint = 0;
	bool ascii;

	if (!name_valid(name) || boxes == NULL || n == 0) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!addr_valid(boxes[i].addr) ||
		    (boxes[i].name != NULL &&
		     text_check(boxes[i].name, &ascii) < 0)) {
			errno = EINVAL;
			return NULL;
		}
		hint += strlen(boxes[i].addr) + 4;
		if (boxes[i].name != NULL)
			hint += strlen(boxes[i].name) * 2;
		if (hint > RFC2047_FIELD_MAX) {
			errno = E2BIG;
			return NULL;
		}
	}
	if (field_begin(&o, name, hint) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		bool last = i + 1 == n;

		/* Keep a mailbox on one line when it fits on one: fold
		 * before it rather than inside it. */
		if (i > 0) {
			struct out m = {.soft = SIZE_MAX, .measure = true};

			mailbox_place(&m, &boxes[i], last);
			if (o.col + m.col > o.soft && m.col <= o.soft &&
			    out_newline(&o) < 0)
				goto fail;
		}
		if (mailbox_place(&o, &boxes[i], last) < 0)
			goto fail;
	}
	return o.buf;
fail:
	free(o.buf);
	return NULL;
}

char *rfc2047_decode(const char *value)
{
	char *flat = NULL, *result = NULL;
	size_t n, k = 0, index = 0;

	if (value == NULL) {
		errno = EINVAL;
		return NULL;
	}
	n = strlen(value);
	flat = malloc(n + 1);
	if (flat == NULL)
		goto fail;
	/* Unfold: a line break followed by a space or tab goes, the space
	 * or tab stays. */
	for (size_t i = 0; i < n; i++) {
		bool wsp_next;

		if (value[i] == '\r' && value[i + 1] == '\n' &&
		    (value[i + 2] == ' ' || value[i + 2] == '\t')) {
			i++;
			continue;
		}
		wsp_next = value[i + 1] == ' ' || value[i + 1] == '\t';
		if (value[i] == '\n' && wsp_next)
			continue;
		flat[k++] = value[i];
	}
	flat[k] = '\0';
	if (mailmime_encoded_phrase_parse("utf-8", flat, k, &index, "utf-8",
	                                  &result) != MAILIMF_NO_ERROR) {
		errno = EINVAL;
		result = NULL;
		goto fail;
	}
	free(flat);
	return result;
fail:
	free(flat);
	return NULL;
}
