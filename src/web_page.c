/*
 * web_page — herald-web's pages (see web_page.h). The words are a table
 * here, one row per language, because they are the program's own and not
 * a release's; the layout is a Mustache template rendered by template.c
 * with HTML escaping.
 */
#include "herald/web_page.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "herald/template.h"
#include "herald/tval.h"

/* The words of the unsubscribe pages. */
struct web_page_words {
	const char *lang;
	const char *title;   /* the page's title */
	const char *sender;  /* before the sender's name */
	const char *address; /* before the address */
	const char *button;  /* the confirming button */
	const char *done;    /* unsubscribed */
	const char *mistake; /* before the undo button */
	const char *undo;    /* the undo button */
	const char *undone;  /* subscribed again */
	const char *no_undo; /* cannot be taken back */
};

static const struct web_page_words web_page_words[] = {
    {"en", "Unsubscribe", "These press releases are sent by",
     "Stop sending them to", "Unsubscribe",
     "You are unsubscribed: no more press releases from this sender will "
     "reach this address.",
     "I clicked by mistake:", "Subscribe me again", "You are subscribed again.",
     "This can no longer be undone here. Please write to the sender."},
    {"ru", "Отписка", "Эти пресс-релизы рассылает",
     "Больше не присылать их на адрес", "Отписаться",
     "Вы отписаны: пресс-релизы от этого отправителя больше не будут "
     "приходить на этот адрес.",
     "Я нажал(а) по ошибке:", "Подписать меня снова", "Вы снова подписаны.",
     "Здесь это уже нельзя отменить. Напишите, пожалуйста, отправителю."},
    {"uk", "Відписка", "Ці пресрелізи розсилає",
     "Більше не надсилати їх на адресу", "Відписатися",
     "Вас відписано: пресрелізи від цього відправника більше не "
     "надходитимуть на цю адресу.",
     "Я натиснув(ла) помилково:", "Підписати мене знову",
     "Вас знову підписано.",
     "Тут це вже не можна скасувати. Будь ласка, напишіть відправникові."},
    {"de", "Abmelden", "Diese Pressemitteilungen versendet",
     "Keine mehr senden an", "Abmelden",
     "Sie sind abgemeldet: An diese Adresse gehen keine "
     "Pressemitteilungen dieses Absenders mehr.",
     "Versehentlich geklickt:", "Wieder anmelden",
     "Sie sind wieder angemeldet.",
     "Das lässt sich hier nicht mehr rückgängig machen. Bitte schreiben "
     "Sie dem Absender."},
    {"cs", "Odhlášení", "Tyto tiskové zprávy rozesílá",
     "Už je neposílat na adresu", "Odhlásit",
     "Jste odhlášeni: na tuto adresu už od tohoto odesílatele žádné "
     "tiskové zprávy nepřijdou.",
     "Klikl(a) jsem omylem:", "Znovu mě přihlásit", "Jste znovu přihlášeni.",
     "Zde už to nelze vrátit. Napište prosím odesílateli."},
    {"et", "Tellimusest loobumine", "Neid pressiteateid saadab",
     "Ära saada neid enam aadressile", "Loobu",
     "Tellimus on lõpetatud: sellelt saatjalt ei tule sellele aadressile "
     "enam pressiteateid.",
     "Klõpsasin kogemata:", "Telli uuesti", "Olete uuesti tellinud.",
     "Seda ei saa siin enam tagasi võtta. Palun kirjutage saatjale."},
};
#define WEB_PAGE_NWORDS (sizeof(web_page_words) / sizeof(web_page_words[0]))

/* The one layout. Values are escaped (.html); the words are the
 * program's own but go through the same escaping. */
static const char web_page_template[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"{{lang}}\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, "
    "initial-scale=1\">\n"
    "<meta name=\"robots\" content=\"noindex\">\n"
    "<title>{{title}}</title>\n"
    "<style>body{font:16px/1.5 sans-serif;max-width:36em;margin:3em "
    "auto;padding:0 1em;color:#222}button{font:inherit;padding:.4em "
    "1.2em}.who{font-weight:bold}</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>{{title}}</h1>\n"
    "{{#confirm}}\n"
    "{{#coalition}}<p>{{w.sender}}: <span "
    "class=\"who\">{{coalition}}</span></p>\n{{/coalition}}"
    "<p>{{w.address}} <span class=\"who\">{{#name}}{{name}} "
    "{{/name}}&lt;{{email}}&gt;</span>?</p>\n"
    "<form method=\"post\" action=\"{{action}}\">\n"
    "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n"
    "<button type=\"submit\">{{w.button}}</button>\n"
    "</form>\n"
    "{{/confirm}}\n"
    "{{#done}}\n"
    "<p>{{w.done}}</p>\n"
    "{{#coalition}}<p>{{w.sender}}: <span "
    "class=\"who\">{{coalition}}</span></p>\n{{/coalition}}"
    "<form method=\"post\" action=\"{{action}}/undo\">\n"
    "<p>{{w.mistake}} <button type=\"submit\" name=\"undo\" "
    "value=\"1\">{{w.undo}}</button></p>\n"
    "</form>\n"
    "{{/done}}\n"
    "{{#undone}}<p>{{w.undone}}</p>\n{{/undone}}"
    "{{#no_undo}}<p>{{w.no_undo}}</p>\n{{/no_undo}}"
    "{{#message}}<p>{{message}}</p>\n{{/message}}"
    "</body>\n"
    "</html>\n";

static const struct web_page_words *web_page_find(const char *lang)
{
	for (size_t i = 0; i < WEB_PAGE_NWORDS; i++)
		if (strcmp(web_page_words[i].lang, lang) == 0)
			return &web_page_words[i];
	return &web_page_words[0];
}

const char *web_page_lang(const char *tag)
{
	size_t n;

	if (tag == NULL)
		return "en";
	n = strcspn(tag, "-_");
	for (size_t i = 0; i < WEB_PAGE_NWORDS; i++)
		if (strlen(web_page_words[i].lang) == n &&
		    strncasecmp(web_page_words[i].lang, tag, n) == 0)
			return web_page_words[i].lang;
	return "en";
}

static int web_page_set(struct tval *m, const char *key, const char *v)
{
	struct tval *s;

	if (v == NULL)
		return 0;
	/* tval_set owns s, also when it fails */
	if ((s = tval_str(v)) == NULL)
		return -1;
	return tval_set(m, key, s);
}

static int web_page_flag(struct tval *m, const char *key, bool on)
{
	struct tval *b;

	if (!on)
		return 0;
	if ((b = tval_bool(true)) == NULL)
		return -1;
	return tval_set(m, key, b);
}

int web_page_render(enum web_page_kind k, const struct web_page_vals *v,
                    char **out, size_t *len, struct diag *d)
{
	static const struct tmpl_opts opts = {.escape = TMPL_ESCAPE_HTML,
	                                      .max_output = 64 * 1024};
	bool english = k == WEB_PAGE_NOT_FOUND || k == WEB_PAGE_BAD;
	const char *lang = english ? "en" : web_page_lang(v->language);
	const struct web_page_words *w = web_page_find(lang);
	struct tval *ctx = tval_map(), *words = tval_map();
	struct tmpl *t = NULL;
	const char *title = w->title;
	int rc = -1;

	*out = NULL;
	if (k == WEB_PAGE_NOT_FOUND)
		title = "Not found";
	else if (k == WEB_PAGE_BAD)
		title = "Refused";
	if (ctx == NULL || words == NULL ||
	    web_page_set(words, "sender", w->sender) < 0 ||
	    web_page_set(words, "address", w->address) < 0 ||
	    web_page_set(words, "button", w->button) < 0 ||
	    web_page_set(words, "done", w->done) < 0 ||
	    web_page_set(words, "mistake", w->mistake) < 0 ||
	    web_page_set(words, "undo", w->undo) < 0 ||
	    web_page_set(words, "undone", w->undone) < 0 ||
	    web_page_set(words, "no_undo", w->no_undo) < 0)
		goto oom;
	rc = tval_set(ctx, "w", words); /* owns words, also on failure */
	words = NULL;
	if (rc < 0)
		goto oom;
	rc = -1;
	if (web_page_set(ctx, "lang", lang) < 0 ||
	    web_page_set(ctx, "title", title) < 0 ||
	    (!english && (web_page_set(ctx, "coalition", v->coalition) < 0 ||
	                  web_page_set(ctx, "email", v->email) < 0 ||
	                  web_page_set(ctx, "name", v->name) < 0 ||
	                  web_page_set(ctx, "action", v->action) < 0)) ||
	    web_page_flag(ctx, "confirm", k == WEB_PAGE_CONFIRM) < 0 ||
	    web_page_flag(ctx, "done", k == WEB_PAGE_DONE) < 0 ||
	    web_page_flag(ctx, "undone", k == WEB_PAGE_UNDONE) < 0 ||
	    web_page_flag(ctx, "no_undo", k == WEB_PAGE_NO_UNDO) < 0 ||
	    web_page_set(ctx, "message",
	                 k == WEB_PAGE_NOT_FOUND
	                     ? "There is no such page."
	                     : (k == WEB_PAGE_BAD ? v->message : NULL)) < 0)
		goto oom;
	if ((t = tmpl_parse("herald-web page", web_page_template,
	                    sizeof(web_page_template) - 1, d)) == NULL)
		goto out;
	rc = tmpl_render(t, ctx, &opts, out, len, d);
	goto out;
oom:
	diag_add(d, NULL, 0, 0, "out of memory");
out:
	tmpl_free(t);
	tval_free(words);
	tval_free(ctx);
	return rc;
}
