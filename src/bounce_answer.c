/*
 * bounce_answer — answers to a release, as against reports from mail
 * systems (bounce_int.h): a journalist's reply asking to be taken off the
 * list, in the languages herald writes in and those its users'
 * journalists reply in, and auto-replies (vacation, out of office).
 */
#include "bounce_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int bounce_answer_is_unsubscribe(const char *subj, const char *text,
                                 size_t ntext)
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

char *bounce_answer_replied_id(const struct bounce_top *t, int *oom)
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
		while ((id = bounce_mime_msg_id_next(&p, t->v[f] + t->n[f],
		                                     &n)) != NULL) {
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
	r = best != NULL ? bounce_str_clean(best, nbest)
	                 : bounce_str_clean(any, nany);
	if (r == NULL)
		*oom = 1;
	return r;
}

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

int bounce_answer_is_autoreply(const struct bounce_top *t,
                               const struct bounce_head *h, int *oom)
{
	int yes = t->v[T_X_AUTOREPLY] != NULL || t->v[T_X_AUTORESPOND] != NULL;
	char *v = bounce_mime_top_get(t, T_AUTO_SUBMITTED, oom);

	if (v != NULL && bounce_str_casestr(v, "auto-replied") != NULL)
		yes = 1;
	free(v);
	if (bounce_head_subject_has(h, autoreply_subjects,
	                            NELEM(autoreply_subjects)))
		yes = 1;
	return yes && !bounce_head_is_daemon(h) &&
	       !(bounce_head_is_failure(h) &&
	         !(h->subj != NULL && bounce_str_casestr(h->subj, "auto")));
}
