/*
 * coalition — the coalition a release speaks for (lists/coalition.yaml):
 * its name, its member organisations in order with their countries, the
 * spokesperson and the report being launched, each text in every language
 * the release offers. Templates get member names and countries from here,
 * never from their own text, so one list serves every language.
 *
 * File layout: name (localized), countries (code -> localized name),
 * organisations (id -> name, countries), members (ids, in order),
 * spokesperson (name, title, email, phone), report (title, url, authors,
 * supported_by, commissioned_by: ids).
 *
 * Library code: returns NULL on failure after reporting every problem.
 */
#ifndef HERALD_COALITION_H
#define HERALD_COALITION_H

#include <stddef.h>

#include "herald/diag.h"
#include "herald/fsrc.h"
#include "herald/i18n.h"

struct coalition_country {
	char *code;
	struct i18n_text name;
};

struct coalition_org {
	char *id;
	struct i18n_text name;
	size_t *countries; /* indices into coalition.countries */
	size_t ncountries;
};

/* A list of organisations, as indices into coalition.orgs. */
struct coalition_orgs {
	size_t *v;
	size_t n;
};

struct coalition {
	char *file;
	struct i18n_text name;
	struct coalition_country *countries;
	size_t ncountries;
	struct coalition_org *orgs;
	size_t norgs;
	struct coalition_orgs members;
	struct {
		struct i18n_text name, title;
		char *email, *phone;
	} spokesperson;
	struct {
		struct i18n_text title;
		char *url;
		struct coalition_orgs authors, supported_by, commissioned_by;
	} report;
};

/* Load the coalition list at path, read from src (NULL: the disk), with
 * texts for the languages of policy p. */
struct coalition *coalition_load(const struct fsrc *src, const char *path,
                                 const struct i18n_policy *p, struct diag *d);

void coalition_free(struct coalition *c);

#endif
