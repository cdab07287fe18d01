/*
 * template tests: what herald needs beyond the official spec (which
 * mustache_spec runs): strict mode with every unresolved name reported at
 * its line and column, HTML escaping, values never read as templates, the
 * partial depth and output limits, every syntax error class with its
 * position, partials and layouts as releases use them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/template.h"

/* Partials for a test: NULL-terminated name, source pairs. */
struct fake {
	const char *const *pairs;
	int calls;
	int fail; /* the loader reports an error instead */
};

static int fake_load(void *arg, const char *name, char **src, size_t *len,
                     char **where, struct diag *d)
{
	struct fake *f = arg;
	size_t i;

	f->calls++;
	if (f->fail) {
		diag_add(d, "partials", 0, 0, "cannot read partial %s", name);
		return -1;
	}
	for (i = 0; f->pairs != NULL && f->pairs[i] != NULL; i += 2) {
		if (strcmp(f->pairs[i], name) != 0)
			continue;
		*src = strdup(f->pairs[i + 1]);
		*len = strlen(f->pairs[i + 1]);
		if (asprintf(where, "partials/%s.mustache", name) < 0)
			*where = NULL;
		assert_non_null(*src);
		assert_non_null(*where);
		return 0;
	}
	return 1;
}

/* Parse src as "t.mustache" and render it; returns tmpl_render's result,
 * or -2 when parsing failed. */
static int render(const char *src, const struct tval *ctx,
                  const struct tmpl_opts *o, char **out, struct diag *d)
{
	struct tmpl *t = tmpl_parse("t.mustache", src, strlen(src), d);
	size_t len = 0;
	int rc;

	*out = NULL;
	if (t == NULL)
		return -2;
	rc = tmpl_render(t, ctx, o, out, &len, d);
	if (rc == 0)
		assert_int_equal(len, strlen(*out));
	tmpl_free(t);
	return rc;
}

/* Entry i of d is an error at file:line:col whose message holds needle. */
static void assert_diag(const struct diag *d, size_t i, const char *file,
                        unsigned line, unsigned col, const char *needle)
{
	const struct diag_entry *e;

	if (i >= d->n)
		fail_msg("diag has %zu entries, wanted entry %zu", d->n, i);
	e = &d->v[i];
	assert_int_equal(e->level, DIAG_ERROR);
	assert_non_null(e->file);
	assert_string_equal(e->file, file);
	if (e->line != line || e->col != col)
		fail_msg("entry %zu is at %u:%u, wanted %u:%u (%s)", i, e->line,
		         e->col, line, col, e->msg);
	if (strstr(e->msg, needle) == NULL)
		fail_msg("entry %zu says \"%s\", wanted \"%s\" in it", i,
		         e->msg, needle);
}

static struct tval *map1(const char *k, struct tval *v)
{
	struct tval *m = tval_map();

	assert_non_null(m);
	assert_int_equal(tval_set(m, k, v), 0);
	return m;
}

/* ---- strict mode ------------------------------------------------------ */

static void test_strict_reports_every_unresolved_name(void **state)
{
	struct tmpl_opts o = {.strict = true};
	struct tval *ctx = map1("recipient", map1("name", tval_str("Ada")));
	struct diag d = {0};
	char *out = (char *)"unset";

	(void)state;
	assert_int_equal(render("Dear {{recipient.nmae}},\n"
	                        "{{#embargo}}x{{/embargo}}\n"
	                        "  {{^gone}}y{{/gone}} {{missing}}\n"
	                        "{{recipient.name}}\n",
	                        ctx, &o, &out, &d),
	                 -1);
	assert_null(out);
	assert_int_equal(d.errors, 4);
	assert_diag(&d, 0, "t.mustache", 1, 6,
	            "unresolved name \"recipient.nmae\": \"recipient\" has "
	            "no \"nmae\"");
	assert_diag(&d, 1, "t.mustache", 2, 1, "unresolved name \"embargo\"");
	assert_diag(&d, 2, "t.mustache", 3, 3, "unresolved name \"gone\"");
	assert_diag(&d, 3, "t.mustache", 3, 23, "unresolved name \"missing\"");
	diag_clear(&d);
	tval_free(ctx);
}

static void test_strict_reports_a_tag_once_per_render(void **state)
{
	struct tmpl_opts o = {.strict = true};
	struct tval *list = tval_list(), *ctx;
	struct diag d = {0};
	char *out;
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		assert_int_equal(tval_push(list, map1("n", tval_str("x"))), 0);
	ctx = map1("list", list);
	assert_int_equal(
	    render("{{#list}}{{n}}{{nope}}{{/list}}", ctx, &o, &out, &d), -1);
	assert_int_equal(d.errors, 1);
	assert_diag(&d, 0, "t.mustache", 1, 15, "\"nope\"");
	diag_clear(&d);
	tval_free(ctx);
}

static void test_strict_null_value_is_not_unresolved(void **state)
{
	struct tmpl_opts o = {.strict = true};
	struct tval *ctx = tval_map();
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(tval_set(ctx, "x", tval_null()), 0);
	assert_int_equal(tval_set(ctx, "no", tval_bool(false)), 0);
	assert_int_equal(tval_set(ctx, "none", tval_list()), 0);
	assert_int_equal(render("[{{x}}{{{x}}}{{&x}}{{#x}}a{{/x}}{{^x}}b{{/x}}"
	                        "{{#no}}c{{/no}}{{^none}}d{{/none}}]",
	                        ctx, &o, &out, &d),
	                 0);
	assert_string_equal(out, "[bd]");
	assert_int_equal(d.errors, 0);
	free(out);
	tval_free(ctx);
}

static void test_strict_dotted_name_through_null(void **state)
{
	struct tmpl_opts o = {.strict = true};
	struct tval *ctx = map1("a", tval_null());
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(render("{{a.b}}", ctx, &o, &out, &d), -1);
	assert_diag(&d, 0, "t.mustache", 1, 1, "\"a\" has no \"b\"");
	diag_clear(&d);
	tval_free(ctx);
}

static void test_not_strict_renders_missing_as_empty(void **state)
{
	struct tmpl_opts o = {.strict = false};
	struct tval *ctx = tval_map();
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(render("[{{a}}{{a.b}}{{#s}}x{{/s}}{{^s}}y{{/s}}]", ctx,
	                        &o, &out, &d),
	                 0);
	assert_string_equal(out, "[y]");
	assert_int_equal(d.errors, 0);
	free(out);
	tval_free(ctx);
}

static void test_strict_list_interpolated_is_an_error(void **state)
{
	struct tmpl_opts o = {.strict = true};
	struct tval *ctx = map1("members", tval_list());
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(render("Members: {{members}}", ctx, &o, &out, &d), -1);
	assert_diag(&d, 0, "t.mustache", 1, 10, "is a list, not text");
	diag_clear(&d);
	tval_free(ctx);
}

/* ---- escaping and values ---------------------------------------------- */

static void test_html_escapes_each_character(void **state)
{
	static const char *const cases[][2] = {
	    {"&", "&amp;"},
	    {"<", "&lt;"},
	    {">", "&gt;"},
	    {"\"", "&quot;"},
	    {"'", "&#39;"},
	    {"O'Brien & Sons <press@example.org> \"PR\"",
	     "O&#39;Brien &amp; Sons &lt;press@example.org&gt; "
	     "&quot;PR&quot;"},
	    {"plain Привет", "plain Привет"},
	};
	struct tmpl_opts o = {.escape = TMPL_ESCAPE_HTML};
	struct diag d = {0};
	size_t i;
	char *out;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tval *ctx = map1("v", tval_str(cases[i][0]));

		assert_int_equal(render("{{v}}", ctx, &o, &out, &d), 0);
		assert_string_equal(out, cases[i][1]);
		free(out);
		/* Triple mustache and ampersand never escape. */
		assert_int_equal(render("{{{v}}}|{{& v}}", ctx, &o, &out, &d),
		                 0);
		assert_int_equal(strlen(out), 2 * strlen(cases[i][0]) + 1);
		assert_memory_equal(out, cases[i][0], strlen(cases[i][0]));
		free(out);
		tval_free(ctx);
	}
	assert_int_equal(d.errors, 0);
}

static void test_none_escapes_nothing(void **state)
{
	struct tmpl_opts o = {.escape = TMPL_ESCAPE_NONE};
	struct tval *ctx = map1("v", tval_str("& < > \" '"));
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(render("{{v}}|{{{v}}}", ctx, &o, &out, &d), 0);
	assert_string_equal(out, "& < > \" '|& < > \" '");
	free(out);
	tval_free(ctx);
}

static void test_value_is_never_a_template(void **state)
{
	static const char *const partials[] = {"p", "PARTIAL", NULL};
	struct fake f = {partials, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.strict = true, .partials = &loader};
	struct tval *ctx = map1("name", tval_str("{{name}} {{#x}}{{/x}} {{>p}} "
	                                         "{{=<% %>=}} {{/nope}}"));
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(render("{{name}}|{{{name}}}", ctx, &o, &out, &d), 0);
	assert_string_equal(out, "{{name}} {{#x}}{{/x}} {{>p}} {{=<% %>=}} "
	                         "{{/nope}}|{{name}} {{#x}}{{/x}} {{>p}} "
	                         "{{=<% %>=}} {{/nope}}");
	assert_int_equal(f.calls, 0);
	assert_int_equal(d.errors, 0);
	free(out);
	tval_free(ctx);
}

static void test_parse_once_render_many(void **state)
{
	const char *src = "Dear {{name}},\n{{#beats}}- {{.}}\n{{/beats}}";
	struct tmpl_opts o = {.strict = true};
	struct tmpl *t;
	struct tval *a, *b, *beats;
	struct diag d = {0};
	char *out;
	size_t len;

	(void)state;
	t = tmpl_parse("t.mustache", src, strlen(src), &d);
	assert_non_null(t);
	a = map1("name", tval_str("Ada"));
	beats = tval_list();
	assert_int_equal(tval_push(beats, tval_str("energy")), 0);
	assert_int_equal(tval_push(beats, tval_str("climate")), 0);
	assert_int_equal(tval_set(a, "beats", beats), 0);
	b = map1("name", tval_str("Bo"));
	assert_int_equal(tval_set(b, "beats", tval_list()), 0);
	assert_int_equal(tmpl_render(t, a, &o, &out, &len, &d), 0);
	assert_string_equal(out, "Dear Ada,\n- energy\n- climate\n");
	free(out);
	assert_int_equal(tmpl_render(t, b, &o, &out, &len, &d), 0);
	assert_string_equal(out, "Dear Bo,\n");
	assert_int_equal(len, 9);
	free(out);
	tmpl_free(t);
	tval_free(a);
	tval_free(b);
}

/* ---- limits ----------------------------------------------------------- */

static void test_partial_recursion_limit(void **state)
{
	static const char *const partials[] = {"loop", "x{{>loop}}", NULL};
	struct fake f = {partials, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.partials = &loader};
	struct diag d = {0};
	char *out = (char *)"unset";

	(void)state;
	assert_int_equal(render("a\n {{>loop}}", NULL, &o, &out, &d), -1);
	assert_null(out);
	assert_int_equal(d.errors, 1);
	assert_diag(&d, 0, "t.mustache", 2, 2,
	            "partials nest more than 32 deep from \"loop\"");
	assert_non_null(strstr(d.v[0].msg, "partials/loop.mustache:1:2"));
	assert_int_equal(f.calls, 1); /* parsed once, used 32 times */
	diag_clear(&d);
}

static void test_partial_depth_option(void **state)
{
	static const char *const partials[] = {"a", "A{{>b}}", "b", "B{{>c}}",
	                                       "c", "C",       NULL};
	struct fake f = {partials, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.partials = &loader, .max_partial_depth = 3};
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(render("{{>a}}", NULL, &o, &out, &d), 0);
	assert_string_equal(out, "ABC");
	free(out);
	o.max_partial_depth = 2;
	assert_int_equal(render("{{>a}}", NULL, &o, &out, &d), -1);
	assert_diag(&d, 0, "t.mustache", 1, 1, "more than 2 deep");
	diag_clear(&d);
}

static void test_output_cap(void **state)
{
	struct tmpl_opts o = {.max_output = 10};
	struct tval *list = tval_list(), *ctx;
	struct diag d = {0};
	char *out = (char *)"unset";
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		assert_int_equal(tval_push(list, tval_bool(true)), 0);
	ctx = map1("l", list);
	assert_int_equal(render("0123456789", ctx, &o, &out, &d), 0);
	assert_string_equal(out, "0123456789");
	free(out);
	assert_int_equal(render("\n{{#l}}abcd{{/l}}", ctx, &o, &out, &d), -1);
	assert_null(out);
	assert_int_equal(d.errors, 1);
	assert_diag(&d, 0, "t.mustache", 2, 7, "past 10 bytes");
	diag_clear(&d);
	/* The default cap stops a runaway loop too. */
	o.max_output = 0;
	assert_int_equal(render("{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}"
	                        "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}"
	                        "{{#l}}{{#l}}0123456789abcdef"
	                        "{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"
	                        "{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"
	                        "{{/l}}{{/l}}",
	                        ctx, &o, &out, &d),
	                 -1);
	assert_diag(&d, 0, "t.mustache", 1, 97, "past 16777216 bytes");
	diag_clear(&d);
	tval_free(ctx);
}

static void test_source_size_limit(void **state)
{
	size_t len = (1u << 20) + 1;
	char *big = malloc(len);
	struct diag d = {0};

	(void)state;
	assert_non_null(big);
	memset(big, 'x', len);
	assert_null(tmpl_parse("big.mustache", big, len, &d));
	assert_int_equal(d.errors, 1);
	assert_non_null(strstr(d.v[0].msg, "more than the 1048576"));
	diag_clear(&d);
	free(big);
}

static void test_node_limit(void **state)
{
	size_t len = 200000;
	char *lines = malloc(len);
	struct tmpl *t;
	struct diag d = {0};

	(void)state;
	assert_non_null(lines);
	/* 100,000 lines of one character: 200,000 nodes, within the cap. */
	memset(lines, '\n', len);
	for (size_t i = 0; i < len; i += 2)
		lines[i] = 'x';
	t = tmpl_parse("lines.mustache", lines, len, &d);
	assert_non_null(t);
	tmpl_free(t);
	/* 200,000 one-character lines make 400,000 nodes. */
	memset(lines, '\n', len);
	assert_null(tmpl_parse("lines.mustache", lines, len, &d));
	assert_int_equal(d.errors, 1);
	assert_diag(&d, 0, "lines.mustache", 125001, 1,
	            "more than 250000 tags, text runs and lines");
	diag_clear(&d);
	free(lines);
}

/* n copies of tag, NUL-terminated, in a new string. */
static char *repeat(const char *tag, int n)
{
	size_t len = strlen(tag);
	char *s = malloc(len * (size_t)n + 1);
	int i;

	assert_non_null(s);
	for (i = 0; i < n; i++)
		memcpy(s + len * (size_t)i, tag, len);
	s[len * (size_t)n] = '\0';
	return s;
}

static void test_nesting_limit(void **state)
{
	char *open = repeat("{{#a}}", 64), *close = repeat("{{/a}}", 64);
	char *src = malloc(strlen(open) + strlen(close) + 1), *deeper;
	struct tmpl *t;
	struct diag d = {0};

	(void)state;
	assert_non_null(src);
	memcpy(src, open, strlen(open));
	memcpy(src + strlen(open), close, strlen(close) + 1);
	t = tmpl_parse("t.mustache", src, strlen(src), &d);
	assert_non_null(t);
	tmpl_free(t);
	deeper = repeat("{{#a}}", 65);
	assert_null(tmpl_parse("t.mustache", deeper, strlen(deeper), &d));
	assert_int_equal(d.errors, 1);
	assert_diag(&d, 0, "t.mustache", 1, 64 * 6 + 1, "nest more than 64");
	diag_clear(&d);
	free(deeper);
	free(src);
	free(close);
	free(open);
}

/* ---- syntax errors ---------------------------------------------------- */

/* Parsing src fails with exactly n errors; the first at line:col saying
 * needle. */
static void assert_syntax(const char *src, size_t n, unsigned line,
                          unsigned col, const char *needle)
{
	struct diag d = {0};
	struct tmpl *t = tmpl_parse("bad.mustache", src, strlen(src), &d);

	if (t != NULL)
		fail_msg("\"%s\" parsed", src);
	if (d.errors != n)
		fail_msg("\"%s\" gave %zu errors, wanted %zu", src, d.errors,
		         n);
	assert_diag(&d, 0, "bad.mustache", line, col, needle);
	diag_clear(&d);
}

static void test_syntax_unclosed_section(void **state)
{
	(void)state;
	assert_syntax("line one\n  {{#news}}\n  x\n", 1, 2, 3,
	              "unclosed section \"news\"");
	assert_syntax("{{^a}}{{#b}}{{/b}}", 1, 1, 1, "unclosed section \"a\"");
}

static void test_syntax_mismatched_close(void **state)
{
	struct diag d = {0};

	(void)state;
	assert_syntax("{{#a}}\nx{{/b}}", 2, 2, 2,
	              "{{/b}} does not match the open section \"a\" (opened "
	              "at line 1, column 1)");
	assert_syntax("{{#a}}\n{{#b}}x{{/a}}", 1, 2, 8,
	              "{{/a}} closes \"a\" but the section \"b\" opened inside "
	              "it at line 2, column 1 is still open");
	assert_syntax("x {{/a}}", 1, 1, 3, "closes nothing");
	/* Both errors of the first case, in order. */
	assert_null(tmpl_parse("bad.mustache", "{{#a}}\nx{{/b}}",
	                       strlen("{{#a}}\nx{{/b}}"), &d));
	assert_diag(&d, 1, "bad.mustache", 1, 1, "unclosed section \"a\"");
	diag_clear(&d);
}

static void test_syntax_unclosed_tag(void **state)
{
	(void)state;
	assert_syntax("Hello {{name}}, {{oops\nmore", 1, 1, 17, "unclosed tag");
	assert_syntax("{{{name}}", 1, 1, 1, "unclosed tag");
	assert_syntax("{{=<% %>=}}<%a%> <%b", 1, 1, 18,
	              "unclosed tag: <% opens a tag but no %> closes it");
}

static void test_syntax_bad_delimiters(void **state)
{
	(void)state;
	assert_syntax("{{=<% %> x=}}", 1, 1, 1, "bad set-delimiter tag");
	assert_syntax("a\n {{=<%=}}", 1, 2, 2, "bad set-delimiter tag");
	assert_syntax("{{=a= b=}}", 1, 1, 1, "bad set-delimiter tag");
	assert_syntax("x {{=<% %>}}", 1, 1, 3,
	              "bad set-delimiter tag: {{= opens it but no =}} ends it");
}

static void test_syntax_bad_names(void **state)
{
	(void)state;
	assert_syntax("{{a b}}", 1, 1, 1, "cannot contain spaces");
	assert_syntax("x{{ }}", 1, 1, 2, "has no name");
	assert_syntax("{{a..b}}", 1, 1, 1, "dotted name");
	assert_syntax("{{#.a}}{{/.a}}", 2, 1, 1, "dotted name");
	assert_syntax("{{>}}", 1, 1, 1, "has no name");
}

static void test_syntax_every_error_reported(void **state)
{
	struct diag d = {0};
	const char *src = "{{/x}}\n{{a b}}\nПривет, {{#s}}";

	(void)state;
	assert_null(tmpl_parse("bad.mustache", src, strlen(src), &d));
	assert_int_equal(d.errors, 3);
	assert_diag(&d, 0, "bad.mustache", 1, 1, "closes nothing");
	assert_diag(&d, 1, "bad.mustache", 2, 1, "cannot contain spaces");
	/* Columns count characters, not bytes. */
	assert_diag(&d, 2, "bad.mustache", 3, 9, "unclosed section \"s\"");
	diag_clear(&d);
}

/* ---- partials and layouts --------------------------------------------- */

static void test_missing_partial(void **state)
{
	struct fake f = {NULL, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.partials = &loader};
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(render("[{{>nope}}]", NULL, &o, &out, &d), 0);
	assert_string_equal(out, "[]");
	free(out);
	o.strict = true;
	assert_int_equal(render("[\n {{>nope}}]", NULL, &o, &out, &d), -1);
	assert_diag(&d, 0, "t.mustache", 2, 2, "partial \"nope\" not found");
	diag_clear(&d);
	/* No loader: no partials exist. */
	o.partials = NULL;
	assert_int_equal(render("{{>nope}}", NULL, &o, &out, &d), -1);
	assert_diag(&d, 0, "t.mustache", 1, 1, "partial \"nope\" not found");
	diag_clear(&d);
}

static void test_partial_errors_name_the_partial(void **state)
{
	static const char *const partials[] = {"bad", "ok\n{{#x}}", NULL};
	struct fake f = {partials, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.partials = &loader, .strict = true};
	struct diag d = {0};
	char *out = (char *)"unset";

	(void)state;
	assert_int_equal(render("{{>bad}}", NULL, &o, &out, &d), -1);
	assert_null(out);
	assert_diag(&d, 0, "partials/bad.mustache", 2, 1,
	            "unclosed section \"x\"");
	diag_clear(&d);
	/* A strict error inside a partial names the partial's file. */
	f.pairs = (const char *const[]){"p", "a\n  {{who}}", NULL};
	assert_int_equal(render("{{>p}}", NULL, &o, &out, &d), -1);
	assert_diag(&d, 0, "partials/p.mustache", 2, 3, "\"who\"");
	diag_clear(&d);
}

static void test_loader_failure_fails_the_render(void **state)
{
	struct fake f = {NULL, 0, 1};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.partials = &loader};
	struct diag d = {0};
	char *out = (char *)"unset";

	(void)state;
	assert_int_equal(render("x{{>p}}", NULL, &o, &out, &d), -1);
	assert_null(out);
	assert_int_equal(d.errors, 1);
	assert_non_null(strstr(d.v[0].msg, "cannot read partial p"));
	diag_clear(&d);
}

static void test_partials_loaded_once_per_render(void **state)
{
	static const char *const partials[] = {"p", "<{{.}}>", NULL};
	struct fake f = {partials, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.partials = &loader};
	struct tval *list = tval_list(), *ctx;
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(tval_push(list, tval_str("a")), 0);
	assert_int_equal(tval_push(list, tval_str("b")), 0);
	ctx = map1("l", list);
	assert_int_equal(
	    render("{{#l}}{{>p}}{{/l}}{{>p}}{{>q}}{{>q}}", ctx, &o, &out, &d),
	    0);
	assert_int_equal(f.calls, 2); /* p found once, q missing once */
	free(out);
	tval_free(ctx);
}

static void test_standalone_partial_indents_each_line(void **state)
{
	static const char *const partials[] = {
	    "members", "<ul>\n{{#m}}\n  <li>{{.}}</li>\n{{/m}}\n</ul>\n", NULL};
	struct fake f = {partials, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {.partials = &loader, .escape = TMPL_ESCAPE_HTML};
	struct tval *list = tval_list(), *ctx;
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(tval_push(list, tval_str("A & B")), 0);
	assert_int_equal(tval_push(list, tval_str("line\nbreak")), 0);
	ctx = map1("m", list);
	assert_int_equal(
	    render("<div>\n    {{> members }}\n</div>\n", ctx, &o, &out, &d),
	    0);
	/* A value's own line breaks are not indented. */
	assert_string_equal(out, "<div>\n"
	                         "    <ul>\n"
	                         "      <li>A &amp; B</li>\n"
	                         "      <li>line\nbreak</li>\n"
	                         "    </ul>\n"
	                         "</div>\n");
	free(out);
	tval_free(ctx);
}

static void test_layout_with_blocks(void **state)
{
	static const char *const partials[] = {
	    "layout",
	    "<h1>{{$title}}Press release{{/title}}</h1>\n"
	    "<main>\n"
	    "  {{$body}}\n"
	    "  {{/body}}\n"
	    "</main>\n"
	    "{{$footer}}<p>{{coalition}}</p>{{/footer}}\n",
	    NULL};
	struct fake f = {partials, 0, 0};
	struct tmpl_loader loader = {.load = fake_load, .arg = &f};
	struct tmpl_opts o = {
	    .partials = &loader, .escape = TMPL_ESCAPE_HTML, .strict = true};
	struct tval *ctx = map1("lead", tval_str("Report <launched>"));
	struct diag d = {0};
	char *out;

	(void)state;
	assert_int_equal(tval_set(ctx, "coalition", tval_str("C & Co")), 0);
	assert_int_equal(render("{{<layout}}\n"
	                        "{{$title}}Launch{{/title}}\n"
	                        "{{$body}}\n"
	                        "<p>{{lead}}</p>\n"
	                        "<p>More</p>\n"
	                        "{{/body}}\n"
	                        "{{/layout}}\n",
	                        ctx, &o, &out, &d),
	                 0);
	assert_string_equal(out, "<h1>Launch</h1>\n"
	                         "<main>\n"
	                         "  <p>Report &lt;launched&gt;</p>\n"
	                         "  <p>More</p>\n"
	                         "</main>\n"
	                         "<p>C &amp; Co</p>\n");
	assert_int_equal(d.errors, 0);
	free(out);
	tval_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strict_reports_every_unresolved_name),
	    cmocka_unit_test(test_strict_reports_a_tag_once_per_render),
	    cmocka_unit_test(test_strict_null_value_is_not_unresolved),
	    cmocka_unit_test(test_strict_dotted_name_through_null),
	    cmocka_unit_test(test_not_strict_renders_missing_as_empty),
	    cmocka_unit_test(test_strict_list_interpolated_is_an_error),
	    cmocka_unit_test(test_html_escapes_each_character),
	    cmocka_unit_test(test_none_escapes_nothing),
	    cmocka_unit_test(test_value_is_never_a_template),
	    cmocka_unit_test(test_parse_once_render_many),
	    cmocka_unit_test(test_partial_recursion_limit),
	    cmocka_unit_test(test_partial_depth_option),
	    cmocka_unit_test(test_output_cap),
	    cmocka_unit_test(test_source_size_limit),
	    cmocka_unit_test(test_node_limit),
	    cmocka_unit_test(test_nesting_limit),
	    cmocka_unit_test(test_syntax_unclosed_section),
	    cmocka_unit_test(test_syntax_mismatched_close),
	    cmocka_unit_test(test_syntax_unclosed_tag),
	    cmocka_unit_test(test_syntax_bad_delimiters),
	    cmocka_unit_test(test_syntax_bad_names),
	    cmocka_unit_test(test_syntax_every_error_reported),
	    cmocka_unit_test(test_missing_partial),
	    cmocka_unit_test(test_partial_errors_name_the_partial),
	    cmocka_unit_test(test_loader_failure_fails_the_render),
	    cmocka_unit_test(test_partials_loaded_once_per_render),
	    cmocka_unit_test(test_standalone_partial_indents_each_line),
	    cmocka_unit_test(test_layout_with_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
