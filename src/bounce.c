/*
 * bounce — one received message to one bounce event (see bounce.h).
 *
 * The message is first copied with every line end made CRLF and NUL
 * bytes made spaces (the text scans use C strings). The structure is read
 * here, not by libetpan's mailmime_parse (which parses every header field
 * of every part, the returned original's included): parts are cut at
 * their delimiter lines, and the parts that matter are collected in one
 * walk of the top level (never inside a returned original):
 * message/delivery-status, message/feedback-report, the returned
 * original's header block (message/rfc822 or text/rfc822-headers) and the
 * human-readable text. libetpan still decodes base64, quoted-printable
 * and RFC 2047 words.
 *
 * A standard report's recipients come from its field blocks. Without one,
 * recipients come from X-Failed-Recipients or from lines of the text that
 * begin with an address, the way Exim, qmail, Postfix, Sendmail and most
 * hosted services write them, and only when the message looks like a
 * bounce (from a mailer daemon or postmaster, or with a failure subject):
 * a human reply quoting addresses must not suppress anybody.
 *
 * The reason vocabulary and what counts as hard follow the bounce corpus
 * in tests/data/bounces (expected.jsonl), except that reasons about the
 * sender's own reputation or set-up are "neither": herald never
 * suppresses a recipient because its own mail was blocked.
 */
#include "herald/bounce.h"
#include "herald/verdict.h"

#include "bounce_int.h"

#include <ctype.h>
#include <stdbool.h>
#include <libetpan/libetpan.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- building the event ---- */

int bounce_rcpt_add(struct bounce_event *ev, char *addr)
{
	struct bounce_rcpt *r;

	for (size_t i = 0; i < ev->nrcpt; i++)
		if (strcmp(ev->rcpt[i].address, addr) == 0) {
			free(addr);
			return 0;
		}
	if (ev->nrcpt >= BOUNCE_MAX_RCPT) {
		free(addr);
		return 0;
	}
	r = realloc(ev->rcpt, (ev->nrcpt + 1) * sizeof *r);
	if (r == NULL) {
		free(addr);
		return -1;
	}
	ev->rcpt = r;
	r = &ev->rcpt[ev->nrcpt++];
	memset(r, 0, sizeof *r);
	r->address = addr;
	r->hard = -1;
	return 1;
}

/* One per-recipient field block of a delivery-status part. */
enum { D_FINAL, D_ORIGINAL, D_ACTION, D_STATUS, D_DIAG, D_MTA, ND };

/* A field of a report block, cleaned, after its "type;" when strip; NULL
 * if absent. Sets *oom on out-of-memory. */
static char *dsn_value(const struct bounce_hfield *f, int strip, int *oom)
{
	const char *v = f->val, *e, *semi;
	char *r;

	if (f->name == NULL || v == NULL)
		return NULL;
	e = v + f->nval;
	if (strip && (semi = memchr(v, ';', f->nval)) != NULL)
		v = semi + 1;
	r = bounce_str_clean(v, (size_t)(e - v));
	if (r == NULL)
		*oom = 1;
	return r;
}

/* One per-recipient field block of a delivery-status part. */
static int dsn_block(struct bounce_event *ev, const struct bounce_hfield *fs)
{
	int oom = 0, added;
	char *v, *addr;
	struct bounce_rcpt *r;

	v = dsn_value(&fs[D_FINAL], 0, &oom);
	if (v == NULL && !oom)
		v = dsn_value(&fs[D_ORIGINAL], 0, &oom);
	if (v == NULL)
		return oom ? -1 : 0;
	addr = bounce_addr_from(v, &oom);
	free(v);
	if (addr == NULL)
		return oom ? -1 : 0;
	added = bounce_rcpt_add(ev, addr);
	if (added <= 0)
		return added;
	r = &ev->rcpt[ev->nrcpt - 1];
	r->action = dsn_value(&fs[D_ACTION], 0, &oom);
	v = dsn_value(&fs[D_STATUS], 0, &oom);
	if (v != NULL) {
		bounce_rules_find_status(v, r->status);
		/* Oracle Messaging Server says which command in a comment:
		 * "5.0.0 (Remote SMTP server has rejected address)" */
		if (bounce_str_casestr(v, "server has rejected address") != NULL)
			r->command = "RCPT";
	}
	free(v);
	r->diagnostic = dsn_value(&fs[D_DIAG], 1, &oom);
	r->remote_mta = dsn_value(&fs[D_MTA], 1, &oom);
	return oom ? -1 : 0;
}

/* Every field block of a delivery-status part; block 0 is per-message,
 * the rest per recipient, but some MTAs merge them, so every block is
 * looked at. A block ends at a blank line or at a line that is not a
 * field. */
static int dsn_parse(struct bounce_event *ev, const char *s, size_t n)
{
	static const char *const names[ND] = {
	    "Final-Recipient", "Original-Recipient", "Action",
	    "Status",          "Diagnostic-Code",    "Remote-MTA"};
	const char *p = s, *e = s + n;
	size_t blocks = 0;

	while (p < e && blocks++ < BOUNCE_MAX_RCPT + 1) {
		struct bounce_hfield fs[ND], f;

		memset(fs, 0, sizeof fs);
		while (bounce_mime_field_line(&p, e, &f) == 1)
			for (size_t k = 0; k < ND; k++)
				if (fs[k].name == NULL &&
				    bounce_mime_field_is(&f, names[k])) {
					fs[k] = f;
					break;
				}
		if (dsn_block(ev, fs) < 0)
			return -1;
	}
	return 0;
}

/* A sender (address or display name) that is a mail system. */
static int is_daemon(const char *s)
{
	static const char *const names[] = {
	    "mailer-daemon", "mailer_daemon",   "mail-daemon",
	    "mailerdaemon",  "postmaster",      "post_master",
	    "mdaemon",       "bounce",          "mail delivery",
	    "mail.delivery", "delivery system", "delivery subsystem",
	    "mail administrator", "ndr administrator", "mail system",
	};

	if (s == NULL)
		return 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (bounce_str_casestr(s, names[i]) != NULL)
			return 1;
	return 0;
}

static const char *const failure_subjects[] = {
    "undeliver",
    "delivery fail",
    "delivery status",
    "delivery notification",
    "delivery problem",
    "delivery failure",
    "failure notice",
    "failed",
    "failure",
    "returned mail",
    "returned to sender",
    "return mail",
    "not delivered",
    "could not be delivered",
    "unzustellbar",
    "rejected",
    "nondeliverable",
    "non-deliverable",
    "non-delivery",
    "non remis",
    "mail error",
    "error sending",
    "warning: could not",
    "mail system error",
    "delayed mail",
    "delivery delayed",
    "bounce",
    "there was an error",
};

static const char *const autoreply_subjects[] = {
    "out of office",
    "automatic reply",
    "abwesenheitsnotiz",
    "auto:",
    "autoreply",
    "auto-reply",
    "auto reply",
    "auto response",
    "autoresponse",
    "vacation",
    "away from",
    "out of the office",
    "r\xc3\xa9ponse automatique",
    "automatische",
};

static int subject_has(const char *subj, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (bounce_str_casestr(subj, list[i]))
			return 1;
	return 0;
}

void bounce_event_free(struct bounce_event *ev)
{
	if (ev == NULL)
		return;
	for (size_t i = 0; i < ev->nrcpt; i++) {
		free(ev->rcpt[i].address);
		free(ev->rcpt[i].action);
		free(ev->rcpt[i].diagnostic);
		free(ev->rcpt[i].remote_mta);
		free(ev->rcpt[i].evidence);
	}
	free(ev->rcpt);
	free(ev->message_id);
	free(ev->verp_to);
	free(ev->orig_return_path);
	free(ev->orig_unsubscribe);
	free(ev->feedback_type);
	memset(ev, 0, sizeof *ev);
}

/* ---- unsubscribe requests ---- */

/* What a journalist writes, alone, to be taken off the list; compared
 * after lowercasing, dropping punctuation and polite words. The
 * languages herald writes in, and those its users' journalists reply in. */
static const char *const unsub_phrases[] = {
    /* en */
    "unsubscribe", "unsubscribe me", "unsub", "remove", "remove me",
    "remove me from your list", "remove me from the list",
    "remove me from this list", "remove me from your mailing list",
    "remove me from the mailing list", "remove me from your mailing",
    "take me off", "take me off your list", "take me off the list",
    "take me off this list", "stop", "stop sending", "stop emailing me",
    "stop sending me emails", "opt out", "optout", "opt-out",
    "no more emails", "unsubscribe me from this list",
    /* ru */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd1\x82\xd1\x8c\xd1\x81\xd1\x8f", /* отписаться */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x88\xd0\xb8\xd1\x82\xd0\xb5", /* отпишите */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x88\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f", /* отпишите меня */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x81\xd0\xba\xd0\xb0", /* отписка */
    "\xd1\x83\xd0\xb4\xd0\xb0\xd0\xbb\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f", /* удалите меня */
    "\xd1\x83\xd0\xb4\xd0\xb0\xd0\xbb\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f \xd0\xb8\xd0\xb7 \xd1\x80\xd0\xb0\xd1\x81\xd1\x81\xd1\x8b\xd0\xbb\xd0\xba\xd0\xb8", /* удалите меня из рассылки */
    "\xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x88\xd0\xb8\xd1\x82\xd0\xb5 \xd0\xbc\xd0\xb5\xd0\xbd\xd1\x8f \xd0\xbe\xd1\x82 \xd1\x80\xd0\xb0\xd1\x81\xd1\x81\xd1\x8b\xd0\xbb\xd0\xba\xd0\xb8", /* отпишите меня от рассылки */
    "\xd0\xbf\xd1\x80\xd0\xbe\xd1\x88\xd1\x83 \xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd1\x82\xd1\x8c", /* прошу отписать */
    "\xd1\x81\xd1\x82\xd0\xbe\xd0\xbf", /* стоп */
    /* uk */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd1\x82\xd0\xb8\xd1\x81\xd1\x8f", /* відписатися */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x88\xd1\x96\xd1\x82\xd1\x8c", /* відпишіть */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x88\xd1\x96\xd1\x82\xd1\x8c \xd0\xbc\xd0\xb5\xd0\xbd\xd0\xb5", /* відпишіть мене */
    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xb8\xd1\x81\xd0\xba\xd0\xb0", /* відписка */
    "\xd0\xb2\xd0\xb8\xd0\xb4\xd0\xb0\xd0\xbb\xd1\x96\xd1\x82\xd1\x8c \xd0\xbc\xd0\xb5\xd0\xbd\xd0\xb5", /* видаліть мене */
    "\xd0\xb2\xd0\xb8\xd0\xb4\xd0\xb0\xd0\xbb\xd1\x96\xd1\x82\xd1\x8c \xd0\xbc\xd0\xb5\xd0\xbd\xd0\xb5 \xd0\xb7 \xd1\x80\xd0\xbe\xd0\xb7\xd1\x81\xd0\xb8\xd0\xbb\xd0\xba\xd0\xb8", /* видаліть мене з розсилки */
    /* es */
    "darme de baja", "dar de baja", "baja", "de baja",
    "cancelar suscripci\xc3\xb3n", "cancelar suscripcion",
    "anular suscripci\xc3\xb3n", "eliminarme", "borrarme",
    "desuscribir", "desuscribirme", "quitarme de la lista",
    "eliminarme de la lista", "no m\xc3\xa1s correos",
    /* fr */
    "d\xc3\xa9sabonner", "desabonner", "me d\xc3\xa9sabonner",
    "me desabonner", "d\xc3\xa9sabonnez moi", "desabonnez moi",
    "d\xc3\xa9sabonnement", "d\xc3\xa9sinscrire", "me d\xc3\xa9sinscrire",
    "d\xc3\xa9sinscrivez moi", "d\xc3\xa9sinscription", "retirez moi",
    "retirez moi de la liste", "supprimez moi", "arr\xc3\xaat",
    /* de */
    "abmelden", "abbestellen", "austragen", "bitte austragen",
    "abmelden bitte", "entfernen", "newsletter abbestellen",
    /* cs */
    "odhl\xc3\xa1sit", "odhlasit", "odhla\xc5\xa1te m\xc4\x9b",
    "odhl\xc3\xa1sit odb\xc4\x9br", "odebrat",
    /* et */
    "loobu", "loobun", "t\xc3\xbchista tellimus", "eemaldage mind",
    /* ar */
    "\xd8\xa5\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1 \xd8\xa7\xd9\x84\xd8\xa7\xd8\xb4\xd8\xaa\xd8\xb1\xd8\xa7\xd9\x83", /* إلغاء الاشتراك */
    "\xd8\xa7\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1 \xd8\xa7\xd9\x84\xd8\xa7\xd8\xb4\xd8\xaa\xd8\xb1\xd8\xa7\xd9\x83", /* الغاء الاشتراك */
    "\xd8\xa5\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1", /* إلغاء */
    "\xd8\xa7\xd9\x84\xd8\xba\xd8\xa7\xd8\xa1", /* الغاء */
    "\xd8\xa3\xd9\x84\xd8\xba\xd9\x88\xd8\xa7 \xd8\xa7\xd8\xb4\xd8\xaa\xd8\xb1\xd8\xa7\xd9\x83\xd9\x8a", /* ألغوا اشتراكي */
    "\xd8\xa3\xd8\xb2\xd9\x84\xd9\x86\xd9\x8a", /* أزلني */
    "\xd8\xa7\xd8\xad\xd8\xb0\xd9\x81\xd9\x86\xd9\x8a", /* احذفني */
    "\xd8\xaa\xd9\x88\xd9\x82\xd9\x81", /* توقف */
};

/* Polite words around the request, dropped before comparing. */
static const char *const unsub_polite[] = {
    "please", "pls", "plz", "thanks", "thank you", "kindly", "bitte",
    "danke", "por favor", "gracias", "merci", "svp",
    "s il vous pla\xc3\xaet", "pros\xc3\xadm", "palun", "ait\xc3\xa4h",
    "\xd0\xbf\xd0\xbe\xd0\xb6\xd0\xb0\xd0\xbb\xd1\x83\xd0\xb9\xd1\x81\xd1\x82\xd0\xb0", /* пожалуйста */
    "\xd1\x81\xd0\xbf\xd0\xb0\xd1\x81\xd0\xb8\xd0\xb1\xd0\xbe", /* спасибо */
    "\xd0\xb1\xd1\x83\xd0\xb4\xd1\x8c \xd0\xbb\xd0\xb0\xd1\x81\xd0\xba\xd0\xb0", /* будь ласка */
    "\xd0\xb4\xd1\x8f\xd0\xba\xd1\x83\xd1\x8e", /* дякую */
    "\xd9\x85\xd9\x86 \xd9\x81\xd8\xb6\xd9\x84\xd9\x83", /* من فضلك */
    "\xd8\xb4\xd9\x83\xd8\xb1\xd8\xa7", /* شكرا */
};

/* Longest text looked at: a request is a few words. */
enum { UNSUB_MAX = 96 };

/* s[0..n) lowercased (ASCII, Latin-1 letters, Cyrillic) with punctuation
 * made blanks and blanks collapsed, into out[UNSUB_MAX + 1]; 0 when
 * longer than that. */
static int unsub_norm(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned char d = i + 1 < n ? (unsigned char)s[i + 1] : 0;

		if (c < 0x80) {
			if (isalnum(c))
				c = (unsigned char)tolower(c);
			else
				c = ' ';
			if (c == ' ' && (o == 0 || out[o - 1] == ' '))
				continue;
			if (o >= UNSUB_MAX)
				return 0;
			out[o++] = (char)c;
			continue;
		}
		if (c == 0xc2 && (d == 0xab || d == 0xbb || d == 0xa0 ||
		                  d == 0xa1 || d == 0xbf)) {
			/* « » nbsp ¡ ¿ */
			if (o > 0 && out[o - 1] != ' ' && o < UNSUB_MAX)
				out[o++] = ' ';
			i++;
			continue;
		}
		if (c == 0xd8 && (d == 0x8c || d == 0x9f)) {
			/* Arabic comma and question mark */
			if (o > 0 && out[o - 1] != ' ' && o < UNSUB_MAX)
				out[o++] = ' ';
			i++;
			continue;
		}
		if (o + 2 > UNSUB_MAX)
			return 0;
		if (d != 0 && c == 0xc3 && d >= 0x80 && d <= 0x9e && d != 0x97)
			d = (unsigned char)(d + 0x20); /* À..Þ */
		else if (c == 0xd0 && d >= 0x90 && d <= 0x9f)
			d = (unsigned char)(d + 0x20); /* А..П */
		else if (c == 0xd0 && d >= 0xa0 && d <= 0xaf) {
			c = 0xd1; /* Р..Я */
			d = (unsigned char)(d - 0x20);
		} else if (c == 0xd0 && d >= 0x80 && d <= 0x8f) {
			c = 0xd1; /* Ѐ..Џ (Ё, Є, І, Ї) */
			d = (unsigned char)(d + 0x10);
		} else if (c == 0xd2 && d == 0x90)
			d = 0x91; /* Ґ */
		out[o++] = (char)c;
		if (d != 0) {
			out[o++] = (char)d;
			i++;
		}
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return 1;
}

/* Whether the text is, alone, a request to be unsubscribed. */
static int is_unsub_text(const char *s, size_t n)
{
	char buf[UNSUB_MAX + 1];
	char *p = buf;
	size_t len;
	int changed;

	if (n > 4 * UNSUB_MAX || !unsub_norm(s, n, buf))
		return 0;
	do {
		changed = 0;
		len = strlen(p);
		for (size_t i = 0;
		     i < sizeof unsub_polite / sizeof unsub_polite[0]; i++) {
			size_t k = strlen(unsub_polite[i]);

			if (len > k && strncmp(p, unsub_polite[i], k) == 0 &&
			    p[k] == ' ') {
				p += k + 1;
				changed = 1;
				break;
			}
			if (len > k && strcmp(p + len - k, unsub_polite[i]) == 0 &&
			    p[len - k - 1] == ' ') {
				p[len - k - 1] = '\0';
				changed = 1;
				break;
			}
		}
	} while (changed);
	for (size_t i = 0; i < sizeof unsub_phrases / sizeof unsub_phrases[0];
	     i++)
		if (strcmp(p, unsub_phrases[i]) == 0)
			return 1;
	return 0;
}

/* A subject without its reply and forward prefixes. */
static const char *subject_core(const char *s)
{
	static const char *const prefixes[] = {
	    "re:", "aw:", "fw:", "fwd:", "wg:", "sv:", "odp:", "tr:",
	    "\xd0\xbe\xd1\x82\xd0\xb2\xd0\xb5\xd1\x82:", /* ответ: */
	    "\xd0\xb2\xd1\x96\xd0\xb4\xd0\xbf\xd0\xbe\xd0\xb2\xd1\x96\xd0\xb4\xd1\x8c:", /* відповідь: */
	    "\xd8\xb1\xd8\xaf:", /* رد: */
	};
	int again = 1;

	while (again) {
		again = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0];
		     i++) {
			size_t k = strlen(prefixes[i]);

			if (strncasecmp(s, prefixes[i], k) == 0) {
				s += k;
				again = 1;
			}
		}
	}
	return s;
}

/* Whether a reply asks to be unsubscribed: its decoded subject, or its
 * first line of its own (not quoted) text, is such a request. */
static int is_unsubscribe(const char *subj, const char *text, size_t ntext)
{
	const char *p = text, *end = text + ntext;

	if (subj != NULL) {
		const char *c = subject_core(subj);

		if (is_unsub_text(c, strlen(c)))
			return 1;
	}
	while (p != NULL && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *q = p;

		if (nl == NULL)
			nl = end;
		while (q < nl && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < nl && *q != '>') {
			const char *e = nl;

			while (e > q && (e[-1] == '\r' || e[-1] == ' '))
				e--;
			return is_unsub_text(q, (size_t)(e - q));
		}
		p = nl + 1;
	}
	return 0;
}

/* The Message-ID this message answers (In-Reply-To, else References),
 * preferring one of herald's form (32 hex digits before the @). */
static char *replied_id(const struct bounce_top *t, int *oom)
{
	const char *best = NULL, *any = NULL;
	size_t nbest = 0, nany = 0;
	char *r;

	for (size_t k = 0; k < 2 && best == NULL; k++) {
		enum bounce_top_field f = k == 0 ? T_IN_REPLY_TO : T_REFERENCES;
		const char *p = t->v[f], *id;
		size_t n = 0;

		if (p == NULL)
			continue;
		while ((id = bounce_mime_msg_id_next(&p, t->v[f] + t->n[f], &n)) != NULL) {
			size_t h = 0;

			while (h < n && isxdigit((unsigned char)id[h]))
				h++;
			if (h == 32 && n > 32 && id[h] == '@') {
				best = id, nbest = n;
				break;
			}
			if (any == NULL || k == 1)
				any = id, nany = n; /* References: the last is
				                       the parent */
		}
		if (any != NULL && k == 0)
			break;
	}
	if (best == NULL && any == NULL)
		return NULL;
	r = best != NULL ? bounce_str_clean(best, nbest) : bounce_str_clean(any, nany);
	if (r == NULL)
		*oom = 1;
	return r;
}

/* ---- classification ---- */

/* What the top-level header says about the message; the char * are
 * owned. */
struct head {
	char *subj;        /* unfolded, or NULL */
	char *subj_dec;    /* decoded, or NULL */
	char *from;        /* address, or NULL */
	char *from_raw;    /* the whole From field, display name included */
	char *to;          /* first address of To, or NULL */
	const char *ofrom; /* the original's From */
	const char *oto;   /* the original's To */
	int strong;        /* sure to be from a mail system */
};

static void head_read(struct head *h, const struct bounce_top *t,
                      const struct bounce_orig *o, int *oom)
{
	char *v;

	h->subj = bounce_mime_top_get(t, T_SUBJECT, oom);
	if (h->subj != NULL)
		h->subj_dec = bounce_mime_decode_header(h->subj);
	h->from_raw = bounce_mime_top_get(t, T_FROM, oom);
	if (h->from_raw != NULL)
		h->from = bounce_addr_first(h->from_raw, oom);
	v = bounce_mime_top_get(t, T_TO, oom);
	if (v != NULL)
		h->to = bounce_addr_first(v, oom);
	free(v);
	h->ofrom = o->from;
	h->oto = o->to;
}

static void head_free(struct head *h)
{
	free(h->subj);
	free(h->subj_dec);
	free(h->from);
	free(h->from_raw);
	free(h->to);
}

static int head_is_daemon(const struct head *h)
{
	return is_daemon(h->from_raw);
}

static int head_subject_has(const struct head *h, const char *const *list,
                            size_t n)
{
	return (h->subj != NULL && subject_has(h->subj, list, n)) ||
	       (h->subj_dec != NULL && subject_has(h->subj_dec, list, n));
}

/* ARF, or a complaint in the form some services send without it. */
static int classify_complaint(struct bounce_event *ev, struct bounce_scan *sc,
                              const struct bounce_orig *o, const struct head *h,
                              int *oom)
{
	char *v;

	if (sc->arf == NULL && !sc->report_arf &&
	    !(h->subj != NULL &&
	      bounce_str_casestr(h->subj, "complaint about message from") != NULL))
		return 0;
	ev->kind = BOUNCE_COMPLAINT;
	if (sc->arf != NULL) {
		struct mailimf_fields *f = NULL;

		if (bounce_mime_fields_parse(sc->arf, sc->narf, &f) == 0) {
			ev->feedback_type = bounce_mime_fields_get(f, "Feedback-Type", oom);
			v = bounce_mime_fields_get(f, "Original-Rcpt-To", oom);
			if (v == NULL && !*oom)
				v = bounce_mime_fields_get(f, "Removal-Recipient", oom);
			mailimf_fields_free(f);
			if (v != NULL) {
				char *a = bounce_addr_from(v, oom);

				free(v);
				if (a != NULL && bounce_rcpt_add(ev, a) < 0)
					*oom = 1;
			}
		}
	}
	if (ev->nrcpt == 0 && o->hmx != NULL && !*oom) {
		char *a = bounce_addr_from(o->hmx, oom);

		if (a != NULL && bounce_rcpt_add(ev, a) < 0)
			*oom = 1;
	}
	if (ev->nrcpt == 0 && h->oto != NULL && !*oom) {
		char *c = bounce_addr_from(h->oto, oom);

		if (c != NULL && bounce_rcpt_add(ev, c) < 0)
			*oom = 1;
	}
	for (size_t i = 0; i < ev->nrcpt; i++) {
		ev->rcpt[i].reason = "feedback";
		ev->rcpt[i].hard = -1;
	}
	return 1;
}

static int is_autoreply(const struct bounce_top *t, const struct head *h,
                        int *oom)
{
	int yes = t->v[T_X_AUTOREPLY] != NULL || t->v[T_X_AUTORESPOND] != NULL;
	char *v = bounce_mime_top_get(t, T_AUTO_SUBMITTED, oom);

	if (v != NULL && bounce_str_casestr(v, "auto-replied") != NULL)
		yes = 1;
	free(v);
	if (head_subject_has(h, autoreply_subjects, NELEM(autoreply_subjects)))
		yes = 1;
	return yes && !head_is_daemon(h) &&
	       !(head_subject_has(h, failure_subjects, NELEM(failure_subjects)) &&
	         !(h->subj != NULL && bounce_str_casestr(h->subj, "auto")));
}

/* Fill ev from the parsed message; -1 on out-of-memory. */
static int classify(struct bounce_event *ev, const struct bounce_top *top,
                    struct bounce_scan *sc)
{
	struct bounce_orig o = {0};
	struct head h = {0};
	struct bounce_selves self = {{0}};
	size_t cut = sc->ntext;
	const char *notice = NULL;
	bool service_rule = false;
	char *v;
	int oom = 0, weak = 0;

	v = bounce_mime_top_get(top, T_DELIVERED_TO, &oom);
	if (v == NULL && !oom)
		v = bounce_mime_top_get(top, T_X_ORIGINAL_TO, &oom);
	if (v != NULL) {
		ev->verp_to = bounce_addr_from(v, &oom);
		free(v);
	} else if (!oom && (v = bounce_mime_top_get(top, T_TO, &oom)) != NULL) {
		ev->verp_to = bounce_addr_first(v, &oom);
		free(v);
	}

	if (sc->text != NULL)
		cut = bounce_text_cut(sc->text, sc->ntext);
	if (sc->orig == NULL && sc->text != NULL)
		bounce_text_original(sc, cut);
	if (sc->orig != NULL && bounce_mime_orig_read(sc->orig, sc->norig, &o) < 0)
		oom = 1;
	ev->message_id = o.mid;
	o.mid = NULL;
	ev->orig_return_path = o.rp;
	o.rp = NULL;
	ev->orig_unsubscribe = o.lu;
	o.lu = NULL;
	head_read(&h, top, &o, &oom);
	self.a[0] = ev->verp_to;
	self.a[1] = h.from;
	self.a[2] = h.to;
	self.a[3] = h.ofrom;

	if (classify_complaint(ev, sc, &o, &h, &oom))
		goto done;

	if (sc->dsn == NULL && sc->text != NULL &&
	    bounce_ses_read(ev, sc->text, sc->ntext, &oom)) {
		if (ev->kind == BOUNCE_COMPLAINT)
			goto done;
		goto rcpts;
	}
	if (sc->dsn == NULL && sc->text != NULL &&
	    bounce_dma_read(ev, sc->text, cut, &oom) && ev->nrcpt > 0)
		goto rcpts;
	if (sc->dsn != NULL && dsn_parse(ev, sc->dsn, sc->ndsn) < 0)
		oom = 1;
	/* a report pasted into the text */
	if (ev->nrcpt == 0 && sc->text != NULL && !oom) {
		const char *f = bounce_str_casestr(sc->text, "\nFinal-Recipient:");

		if (f != NULL &&
		    dsn_parse(ev, f + 1,
		              sc->ntext - (size_t)(f + 1 - sc->text)) < 0)
			oom = 1;
	}
	if (ev->nrcpt > 0) {
		ev->kind = BOUNCE_DSN;
		if (sc->text != NULL && !oom &&
		    bounce_text_rcpts(ev, sc->text, cut, &self, 1) < 0)
			oom = 1;
		goto rcpts;
	}

	v = bounce_mime_top_get(top, T_AUTO_SUBMITTED, &oom);
	h.strong = sc->report_dsn || head_is_daemon(&h) ||
	           head_subject_has(&h, failure_subjects,
	                            NELEM(failure_subjects)) ||
	           (v != NULL && bounce_str_casestr(v, "failure") != NULL);
	free(v);

	/* Auto-replies before the text scan: their text quotes addresses. */
	if (!h.strong && is_autoreply(top, &h, &oom)) {
		ev->kind = BOUNCE_AUTOREPLY;
		if (h.from != NULL) {
			char *a = bounce_addr_from(h.from, &oom);

			if (a != NULL && bounce_rcpt_add(ev, a) < 0)
				oom = 1;
			if (ev->nrcpt > 0) {
				ev->rcpt[0].reason = "vacation";
				ev->rcpt[0].hard = -1;
			}
		}
		if (ev->message_id == NULL)
			ev->message_id = replied_id(top, &oom);
		goto done;
	}

	/* Non-standard bounces. */
	v = bounce_mime_top_get(top, T_X_FAILED_RECIPIENTS, &oom);
	if (v != NULL) {
		char *save = NULL;

		h.strong = 1;
		for (char *t = strtok_r(v, ", ", &save); t != NULL;
		     t = strtok_r(NULL, ", ", &save)) {
			char *a = bounce_addr_from(t, &oom);

			if (a != NULL && bounce_rcpt_add(ev, a) < 0)
				oom = 1;
		}
		free(v);
	}
	if (sc->text != NULL && !h.strong)
		weak = bounce_text_is_notice(sc->text, cut, &oom);
	if (!h.strong && !weak) {
		if (sc->text != NULL &&
		    is_unsubscribe(h.subj_dec != NULL ? h.subj_dec : h.subj,
		                   sc->text, sc->nfirst)) {
			ev->kind = BOUNCE_UNSUBSCRIBE;
			if (h.from != NULL) {
				char *a = bounce_addr_from(h.from, &oom);

				if (a != NULL && bounce_rcpt_add(ev, a) < 0)
					oom = 1;
			}
			for (size_t i = 0; i < ev->nrcpt; i++)
				ev->rcpt[i].reason = "unsubscribe";
			free(ev->message_id);
			ev->message_id = replied_id(top, &oom);
		}
		goto done;
	}
	if (sc->text != NULL && !oom &&
	    bounce_text_rcpts(ev, sc->text, cut, &self, ev->nrcpt > 0) < 0)
		oom = 1;
	/* A mail system's report naming nobody in a form we know: the
	 * returned original says whom it was for (herald sends one
	 * recipient per message). */
	if (ev->nrcpt == 0 && h.strong && h.oto != NULL && !oom) {
		char *a = bounce_addr_from(h.oto, &oom);

		if (a != NULL && bounce_text_is_self(&self, a))
			free(a);
		else if (a != NULL && bounce_rcpt_add(ev, a) < 0)
			oom = 1;
	}
	if (ev->nrcpt > 0)
		ev->kind = BOUNCE_DSN;
rcpts:
	/* Amazon SES receiving (Reporting-MTA inbound-smtp.REGION.
	 * amazonaws.com) keeps no mailboxes: its reports come from a
	 * receipt rule's bounce action, in the words the rule was given */
	if (sc->dsn != NULL) {
		const char *m = memmem(sc->dsn, sc->ndsn, "inbound-smtp.", 13);

		service_rule =
		    m != NULL &&
		    memmem(m, sc->ndsn - (size_t)(m - sc->dsn),
		           ".amazonaws.com", 14) != NULL;
	}
	/* what the notice to the sender says beside a report about one
	 * recipient (about several, it may speak of another) */
	if (ev->nrcpt == 1 && sc->dsn != NULL && sc->text != NULL) {
		char *c = bounce_str_ndup(sc->text, cut < BOUNCE_NOTICE_WINDOW
		                                 ? cut
		                                 : BOUNCE_NOTICE_WINDOW);
		char *l = c != NULL ? bounce_str_lower(c, BOUNCE_NOTICE_WINDOW) : NULL;

		notice = l != NULL ? bounce_rules_phrase_reason(l) : NULL;
		free(l);
		free(c);
	}
	for (size_t i = 0; i < ev->nrcpt && !oom; i++) {
		struct bounce_rcpt *r = &ev->rcpt[i];

		/* no explanation of its own: the text's */
		if (r->diagnostic == NULL && sc->text != NULL) {
			char *c = bounce_str_ndup(sc->text, cut < BOUNCE_DIAG_WINDOW
			                                 ? cut
			                                 : BOUNCE_DIAG_WINDOW);

			r->diagnostic =
			    c != NULL ? bounce_str_clean(c, strlen(c)) : NULL;
			free(c);
			if (r->diagnostic == NULL)
				oom = 1;
		}
		bounce_rules_classify(r, notice, service_rule);
	}
	/* a report that every recipient was delivered (a success DSN asked
	 * for with NOTIFY=SUCCESS, "Action: deliverable") is no bounce */
	if (ev->kind == BOUNCE_DSN && !oom) {
		size_t ok = 0;

		for (size_t i = 0; i < ev->nrcpt; i++)
			ok += ev->rcpt[i].reason != NULL &&
			      strcmp(ev->rcpt[i].reason, "delivered") == 0;
		if (ok == ev->nrcpt)
			ev->kind = BOUNCE_NONE;
	}
done:
	bounce_mime_orig_free(&o);
	head_free(&h);
	return oom ? -1 : 0;
}

/* The line of buf (CRLF line ends) holding needle[0..n), or NULL; *no
 * is its number (1 = the first line of buf). Of the first few lines that
 * hold it, a report's Diagnostic-Code field is preferred to the notice
 * that repeats it. */
static const char *line_of(const char *buf, size_t len, const char *needle,
                           size_t n, unsigned *no)
{
	const char *first = NULL, *at = buf;
	unsigned first_no = 0, k = 1;
	const char *scanned = buf;

	for (int tries = 0; tries < 8 && n > 0; tries++) {
		const char *start;

		at = memmem(at, len - (size_t)(at - buf), needle, n);
		if (at == NULL)
			break;
		/* count the lines up to this one, from where the last
		 * count stopped */
		start = scanned;
		for (const char *c = scanned;
		     (c = memchr(c, '\n', (size_t)(at - c))) != NULL; c++) {
			k++;
			start = c + 1;
		}
		scanned = start;
		if (first == NULL) {
			first = start;
			first_no = k;
		}
		if ((size_t)(at - start) >= 16 &&
		    strncasecmp(start, "Diagnostic-Code:", 16) == 0) {
			*no = k;
			return start;
		}
		at += n;
	}
	*no = first_no;
	return first;
}

/* Each recipient's evidence: the line of the message its verdict was
 * read from (the diagnostic's first words, else its Status field), as it
 * stands there, with its number; where no such line is there verbatim
 * (an encoded part, a diagnostic pasted together from several lines),
 * the diagnostic as read and line 0. from_line: the message began with
 * an mbox "From " line, which buf no longer holds. Returns -1 on
 * out-of-memory. */
static int evidence_find(struct bounce_event *ev, const char *buf, size_t len,
                         int from_line)
{
	for (size_t i = 0; i < ev->nrcpt; i++) {
		struct bounce_rcpt *r = &ev->rcpt[i];
		char key[64];
		const char *line = NULL, *d = r->diagnostic;
		size_t n = 0, cap;
		unsigned no = 0;

		if (r->rule == NULL)
			continue;
		/* a verdict the status made: its Status line */
		if (r->status[0] != '\0' &&
		    (strcmp(r->rule, "status") == 0 ||
		     strcmp(r->rule, "temporary") == 0)) {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			if (k > 0 && (size_t)k < sizeof key)
				line = line_of(buf, len, key, (size_t)k, &no);
		}
		if (line == NULL && d != NULL && d[0] != '\0') {
			/* its first words: the reader unfolds long lines */
			while (n < 40 && d[n] != '\0')
				n++;
			/* whole words: a fold may follow any of them */
			if (d[n] != '\0')
				while (n > 0 && d[n] != ' ')
					n--;
			if (n >= 8)
				line = line_of(buf, len, d, n, &no);
		}
		if (line == NULL && r->status[0] != '\0') {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			if (k > 0 && (size_t)k < sizeof key)
				line = line_of(buf, len, key, (size_t)k, &no);
		}
		if (line != NULL) {
			const char *e = line;

			while (e < buf + len && *e != '\r' && *e != '\n')
				e++;
			cap = (size_t)(e - line);
			if (cap > BOUNCE_EVIDENCE_MAX)
				cap = BOUNCE_EVIDENCE_MAX;
			r->evidence = bounce_str_clean(line, cap);
			r->evidence_line = no + (from_line ? 1u : 0u);
		} else if (d != NULL) {
			cap = strlen(d);
			r->evidence = bounce_str_clean(d, cap > BOUNCE_EVIDENCE_MAX
			                             ? BOUNCE_EVIDENCE_MAX
			                             : cap);
		} else if (r->status[0] != '\0') {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			r->evidence = k > 0 ? bounce_str_ndup(key, (size_t)k) : NULL;
		} else {
			continue;
		}
		if (r->evidence == NULL)
			return -1;
	}
	return 0;
}

int bounce_parse(const char *msg, size_t len, struct bounce_event *ev,
                 struct diag *d)
{
	struct bounce_top top;
	struct bounce_scan sc = {0};
	size_t n = 0, hl, body;
	char *buf = NULL;
	int rc = -1;

	memset(ev, 0, sizeof *ev);
	if (len > BOUNCE_MAX_SIZE) {
		diag_add(
		    d, NULL, 0, 0,
		    "bounce: message of %zu bytes refused: larger than the "
		    "%u-byte limit",
		    len, BOUNCE_MAX_SIZE);
		return -1;
	}
	buf = bounce_mime_normalise(msg, len, &n);
	if (buf == NULL)
		goto oom;
	if (n == 0) {
		rc = 0; /* nothing: not a bounce */
		goto out;
	}
	hl = bounce_mime_head_len(buf, n, &body);
	bounce_mime_top_read(buf, hl, &top);
	if (bounce_mime_walk(&sc, buf, n, 0, "text/plain") < 0)
		goto oom;
	if (sc.text == NULL && sc.dsn == NULL && sc.arf == NULL &&
	    bounce_mime_text_append(&sc, buf + body, n - body) < 0)
		goto oom; /* no part made sense (a boundary that never
		             occurs): the raw body */
	if (classify(ev, &top, &sc) < 0 ||
	    evidence_find(ev, buf, n, len >= 5 && memcmp(msg, "From ", 5) == 0) <
	        0)
		goto oom;
	rc = 0;
	goto out;
oom:
	diag_add(d, NULL, 0, 0, "bounce: out of memory");
	bounce_event_free(ev);
	rc = -1;
out:
	free(buf);
	free(sc.dsn_own);
	free(sc.arf_own);
	free(sc.orig_own);
	free(sc.text);
	return rc;
}
