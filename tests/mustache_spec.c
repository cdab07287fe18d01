/*
 * mustache_spec — runs the official Mustache spec (tests/data/mustache-spec,
 * MIT licence) against herald's template engine, straight from the spec's
 * YAML files, read through yaml_doc like every other file herald reads.
 *
 *   mustache_spec FILE.yml "Test Name"   run the test(s) of that name
 *   mustache_spec FILE.yml...            run every test of every file
 *
 * Each test prints "PASS <file>/<name>" or "FAIL <file>/<name>: ...", and
 * the run ends with "mustache spec: N of M passed". Exit status: 0 when
 * every test passed, 1 when one failed or no test has the name asked for,
 * EX_USAGE, EX_NOINPUT or EX_DATAERR when the runner could not run.
 *
 * yaml_doc keeps scalars as written; turning the spec's data into values
 * is done here as the spec's authors meant it (YAML 1.2 core schema):
 * plain true/false are booleans, plain null spellings are null, plain
 * numbers are numbers printed as a dynamic language prints them ("1.210"
 * renders "1.21"), anything else is a string. The engine only ever sees
 * strings, as herald's own data gives it.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "herald/diag.h"
#include "herald/template.h"
#include "herald/tval.h"
#include "herald/yaml_doc.h"

static bool spec_digits(const char **p, const char *end, bool hex)
{
	const char *s = *p;

	while (*p < end && ((**p >= '0' && **p <= '9') ||
	                    (hex && ((**p >= 'a' && **p <= 'f') ||
	                             (**p >= 'A' && **p <= 'F')))))
		(*p)++;
	return *p > s;
}

/* Whether s[0, len) is a YAML 1.2 core-schema float (integers included):
 * [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool spec_is_float(const char *s, size_t len)
{
	const char *p = s, *end = s + len;

	if (p < end && (*p == '-' || *p == '+'))
		p++;
	if (p < end && *p == '.') {
		p++;
		if (!spec_digits(&p, end, false))
			return false;
	} else {
		if (!spec_digits(&p, end, false))
			return false;
		if (p < end && *p == '.') {
			p++;
			spec_digits(&p, end, false);
		}
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '-' || *p == '+'))
			p++;
		if (!spec_digits(&p, end, false))
			return false;
	}
	return p == end;
}

static bool spec_is_int(const char *s, size_t len)
{
	const char *p = s, *end = s + len;

	if (p < end && (*p == '-' || *p == '+'))
		p++;
	return spec_digits(&p, end, false) && p == end;
}

/* The text a plain scalar that is a YAML number renders as, in buf (of
 * size n); false when s is no number or does not fit a C number. */
static bool spec_number(const char *s, size_t len, char *buf, size_t n)
{
	const char *p = s + 2;
	char *end;
	double v;
	int prec;

	errno = 0;
	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
		unsigned long long u;

		if (!spec_digits(&p, s + len, s[1] == 'x') || p != s + len)
			return false;
		u = strtoull(s + 2, &end, s[1] == 'x' ? 16 : 8);
		if (errno != 0 || end != s + len)
			return false;
		return snprintf(buf, n, "%llu", u) < (int)n;
	}
	if (spec_is_int(s, len)) {
		long long i = strtoll(s, &end, 10);

		if (errno != 0 || end != s + len)
			return false;
		return snprintf(buf, n, "%lld", i) < (int)n;
	}
	if (!spec_is_float(s, len))
		return false;
	v = strtod(s, &end);
	if (errno != 0 || end != s + len || !isfinite(v))
		return false;
	/* The shortest text that reads back as the same double. */
	for (prec = 1; prec <= 17; prec++) {
		if (snprintf(buf, n, "%.*g", prec, v) >= (int)n)
			return false;
		if (strtod(buf, NULL) == v)
			break;
	}
	return true;
}

/* The value of a node of the test's data, or NULL after adding to d. */
static struct tval *spec_value(const struct ydoc_node *n, struct diag *d)
{
	struct tval *v = NULL;
	char num[64];
	size_t i;
	bool b;

	switch (n->kind) {
	case YDOC_SCALAR:
		if (n->tag != NULL) {
			ydoc_error(d, n, "tagged data (%s) is not supported",
			           n->tag);
			return NULL;
		}
		if (n->quoted)
			v = tval_strn(n->str, n->len);
		else if (ydoc_bool(n, &b) == 0)
			v = tval_bool(b);
		else if (ydoc_is_null(n))
			v = tval_null();
		else if (spec_number(n->str, n->len, num, sizeof(num)))
			v = tval_str(num);
		else
			v = tval_strn(n->str, n->len);
		break;
	case YDOC_SEQUENCE:
		v = tval_list();
		for (i = 0; v != NULL && i < n->nitems; i++) {
			struct tval *item = spec_value(n->items[i], d);

			if (item == NULL || tval_push(v, item) < 0)
				goto fail;
		}
		break;
	case YDOC_MAPPING:
		v = tval_map();
		for (i = 0; v != NULL && i < n->npairs; i++) {
			struct tval *item = spec_value(n->pairs[i].value, d);

			if (item == NULL ||
			    tval_set(v, n->pairs[i].key->str, item) < 0)
				goto fail;
		}
		break;
	}
	if (v == NULL)
		ydoc_error(d, n, "out of memory");
	return v;
fail:
	tval_free(v);
	return NULL;
}

/* Partials come from the test's "partials:" mapping. */
static int spec_load(void *arg, const char *name, char **src, size_t *len,
                     char **where, struct diag *d)
{
	const struct ydoc_node *partials = arg;
	const struct ydoc_node *p = ydoc_get(partials, name);

	if (p == NULL)
		return 1;
	if (p->kind != YDOC_SCALAR) {
		ydoc_error(d, p, "partial \"%s\" is a %s, not a template", name,
		           ydoc_kind_name(p->kind));
		return -1;
	}
	*src = malloc(p->len + 1);
	*where = strdup(name);
	if (*src == NULL || *where == NULL) {
		free(*src);
		free(*where);
		ydoc_error(d, p, "out of memory");
		return -1;
	}
	memcpy(*src, p->str, p->len + 1);
	*len = p->len;
	return 0;
}

/* Print s as a C string literal. */
static void spec_quote(FILE *f, const char *s, size_t len)
{
	size_t i;

	fputc('"', f);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static const struct ydoc_node *spec_scalar(const struct ydoc_node *test,
                                           const char *key, struct diag *d)
{
	const struct ydoc_node *n = ydoc_get(test, key);

	if (n == NULL)
		ydoc_error(d, test, "the test has no \"%s\"", key);
	else if (n->kind != YDOC_SCALAR)
		ydoc_error(d, n, "\"%s\" is a %s, not a string", key,
		           ydoc_kind_name(n->kind));
	else
		return n;
	return NULL;
}

/* Run one test; true when it passed. Prints its PASS or FAIL line. */
static bool spec_test(const char *label, const struct ydoc_node *test)
{
	const struct ydoc_node *name, *tpl, *want, *data, *partials;
	struct diag d = {0};
	struct tmpl_loader loader = {.load = spec_load};
	struct tmpl_opts opts = {.escape = TMPL_ESCAPE_HTML,
	                         .partials = &loader};
	struct tval *ctx = NULL;
	struct tmpl *t = NULL;
	char *out = NULL;
	size_t outlen = 0;
	bool pass = false;

	name = spec_scalar(test, "name", &d);
	tpl = spec_scalar(test, "template", &d);
	want = spec_scalar(test, "expected", &d);
	data = ydoc_get(test, "data");
	partials = ydoc_get(test, "partials");
	if (data == NULL)
		ydoc_error(&d, test, "the test has no \"data\"");
	if (d.errors > 0)
		goto report;
	loader.arg = (void *)partials;
	ctx = spec_value(data, &d);
	if (ctx == NULL)
		goto report;
	t = tmpl_parse(name->str, tpl->str, tpl->len, &d);
	if (t == NULL)
		goto report;
	if (tmpl_render(t, ctx, &opts, &out, &outlen, &d) < 0)
		goto report;
	pass = outlen == want->len && memcmp(out, want->str, outlen) == 0;
report:
	printf("%s %s/%s", pass ? "PASS" : "FAIL", label,
	       name != NULL ? name->str : "?");
	if (!pass && d.errors > 0) {
		printf(": %s", diag_first(&d));
	} else if (!pass) {
		fputs(": expected ", stdout);
		spec_quote(stdout, want->str, want->len);
		fputs(" got ", stdout);
		spec_quote(stdout, out, outlen);
	}
	putchar('\n');
	free(out);
	tmpl_free(t);
	tval_free(ctx);
	diag_clear(&d);
	return pass;
}

/* "interpolation" for ".../interpolation.yml", "inheritance" for
 * ".../~inheritance.yml", as the tests are named in ctest. */
static char *spec_label(const char *path)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base != NULL ? base + 1 : path;
	if (*base == '~')
		base++;
	len = strcspn(base, ".");
	return strndup(base, len);
}

static bool spec_is_file(const char *arg)
{
	size_t len = strlen(arg);

	return (len > 4 && strcmp(arg + len - 4, ".yml") == 0) ||
	       (len > 5 && strcmp(arg + len - 5, ".yaml") == 0);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	size_t passed = 0, total = 0, i;
	int nfiles = argc - 1, f, rc = EX_DATAERR;

	if (argc < 2) {
		fprintf(stderr,
		        "usage: %s FILE.yml \"Test Name\"\n"
		        "       %s FILE.yml...\n",
		        argv[0], argv[0]);
		return EX_USAGE;
	}
	if (argc == 3 && !spec_is_file(argv[2])) {
		only = argv[2];
		nfiles = 1;
	}
	for (f = 1; f <= nfiles; f++) {
		struct diag d = {0};
		struct ydoc *doc = ydoc_load_file(argv[f], NULL, &d);
		const struct ydoc_node *tests;
		char *label = spec_label(argv[f]);

		tests = doc != NULL ? ydoc_get(doc->root, "tests") : NULL;
		if (doc != NULL &&
		    (tests == NULL || tests->kind != YDOC_SEQUENCE))
			ydoc_error(&d, doc->root,
			           "no \"tests\" sequence in the spec file");
		if (d.errors > 0 || label == NULL) {
			diag_print(&d, stderr);
			rc = access(argv[f], R_OK) == 0 ? EX_DATAERR
			                                : EX_NOINPUT;
			diag_clear(&d);
			ydoc_free(doc);
			free(label);
			return rc;
		}
		for (i = 0; i < tests->nitems; i++) {
			const struct ydoc_node *name =
			    ydoc_get(tests->items[i], "name");

			if (only != NULL &&
			    (name == NULL || strcmp(name->str, only) != 0))
				continue;
			total++;
			passed += spec_test(label, tests->items[i]);
		}
		diag_clear(&d);
		ydoc_free(doc);
		free(label);
	}
	if (only != NULL && total == 0) {
		fprintf(stderr, "%s: no test named \"%s\"\n", argv[1], only);
		return 1;
	}
	printf("mustache spec: %zu of %zu passed\n", passed, total);
	return passed == total ? 0 : 1;
}
