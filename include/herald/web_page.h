/*
 * web_page — herald-web's pages: one embedded Mustache template (.html
 * escaping: every value from the store is text, never markup) and the
 * unsubscribe page's words in the languages of herald's sample release,
 * English for any other. No script, no remote asset: the pages work with
 * the Content-Security-Policy herald-web sends (WEB_PAGE_CSP).
 *
 * Library code: 0 / -1 with the reason in a struct diag.
 */
#ifndef HERALD_WEB_PAGE_H
#define HERALD_WEB_PAGE_H

#include <stddef.h>

#include "herald/diag.h"

/* Every page's Content-Security-Policy: nothing but its own inline style,
 * no script, no frame, forms only to itself. */
#define WEB_PAGE_CSP                                                           \
	"default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; "      \
	"script-src 'none'; form-action 'self'; frame-ancestors 'none'; "      \
	"base-uri 'none'"

enum web_page_kind {
	WEB_PAGE_CONFIRM,   /* GET /u/TOKEN: who sends, and the button */
	WEB_PAGE_DONE,      /* unsubscribed (now or before), and the undo */
	WEB_PAGE_UNDONE,    /* subscribed again */
	WEB_PAGE_NO_UNDO,   /* cannot be taken back here */
	WEB_PAGE_NOT_FOUND, /* 404, in English, naming nothing */
	WEB_PAGE_BAD,       /* 400 / 413 / 500: what went wrong, in English */
};

struct web_page_vals {
	const char *language;  /* the journalist's tag (de-AT), or NULL */
	const char *coalition; /* who sends, or NULL */
	const char *email;     /* the address, or NULL */
	const char *name;      /* the journalist's name, or NULL */
	const char *action;    /* the form's target ("/u/TOKEN"), or NULL */
	const char *message;   /* WEB_PAGE_BAD: the text */
};

/* The page's language among those herald-web speaks: tag's base
 * language if it is one (en, ru, uk, de, cs, et), else "en". Static. */
const char *web_page_lang(const char *tag);

/* Render page k into *out (malloc'd, NUL-terminated) and *len. */
int web_page_render(enum web_page_kind k, const struct web_page_vals *v,
                    char **out, size_t *len, struct diag *d);

#endif
