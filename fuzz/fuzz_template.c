/*
 * fuzz_template — tmpl_parse and tmpl_render on any template against a
 * small fixed context. The input is a flags byte (bit 0: HTML escaping,
 * bit 1: strict, bit 2: partials through the `parsed` loader instead of
 * `load`), then the template, then up to three partials, each after a NUL
 * byte. A partial named "1" to "3" is that partial; any other name is one
 * of them chosen by its bytes, so every {{>name}} and {{<name}} finds
 * something and recursion is reached.
 *
 * Promises checked: a failed parse or render says why; a render is
 * NUL-terminated at its length, within max_output, and the same when
 * rendered again from the same parsed template.
 */
#include <string.h>

#include "fuzz.h"
#include "herald/diag.h"
#include "herald/template.h"
#include "herald/tval.h"

#define MAX_PARTS 3
#define MAX_OUT   (256 * 1024)

struct parts {
	const char *src[MAX_PARTS];
	size_t len[MAX_PARTS];
	struct tmpl *t[MAX_PARTS];
	size_t n;
};

static int part_index(const struct parts *p, const char *name)
{
	unsigned sum = 0;

	if (p->n == 0)
		return -1;
	if (name[0] >= '1' && name[0] <= '3' && name[1] == '\0')
		return (int)(name[0] - '1') < (int)p->n ? name[0] - '1' : -1;
	for (const char *s = name; *s != '\0'; s++)
		sum += (unsigned char)*s;
	return (int)(sum % p->n);
}

static int part_load(void *arg, const char *name, char **src, size_t *len,
                     char **where, struct diag *d)
{
	struct parts *p = arg;
	int i = part_index(p, name);

	if (i < 0)
		return 1;
	*src = malloc(p->len[i] + 1);
	*where = strdup(name);
	if (*src == NULL || *where == NULL) {
		free(*src);
		free(*where);
		diag_add(d, NULL, 0, 0, "out of memory");
		return -1;
	}
	memcpy(*src, p->src[i], p->len[i]);
	*len = p->len[i];
	return 0;
}

static int part_parsed(void *arg, const char *name, const struct tmpl **t,
                       struct diag *d)
{
	struct parts *p = arg;
	int i = part_index(p, name);

	if (i < 0)
		return 1;
	if (p->t[i] == NULL) {
		diag_add(d, name, 0, 0, "partial did not parse");
		return -1;
	}
	*t = p->t[i];
	return 0;
}

/* The context: what a release renders against, in miniature, with values
 * that look like markup and like Mustache tags. */
static struct tval *context(void)
{
	struct tval *root = tval_map(), *list = tval_list(), *deep = tval_map();
	struct tval *mid = tval_map(), *m1 = tval_map(), *m2 = tval_map();

	if (root == NULL || list == NULL || deep == NULL || mid == NULL ||
	    m1 == NULL || m2 == NULL)
		abort();
	if (tval_set(m1, "name", tval_str("Jürgen <b>&\"'")) < 0 ||
	    tval_set(m2, "name", tval_str("{{name}}")) < 0 ||
	    tval_set(m2, "on", tval_bool(true)) < 0 ||
	    tval_push(list, m1) < 0 || tval_push(list, m2) < 0 ||
	    tval_push(list, tval_str("x")) < 0 ||
	    tval_set(mid, "c", tval_str("deep")) < 0 ||
	    tval_set(deep, "b", mid) < 0 ||
	    tval_set(root, "name", tval_str("Олеся {{#list}}")) < 0 ||
	    tval_set(root, "empty", tval_str("")) < 0 ||
	    tval_set(root, "t", tval_bool(true)) < 0 ||
	    tval_set(root, "f", tval_bool(false)) < 0 ||
	    tval_set(root, "n", tval_null()) < 0 ||
	    tval_set(root, "none", tval_list()) < 0 ||
	    tval_set(root, "list", list) < 0 || tval_set(root, "a", deep) < 0 ||
	    tval_set(root, "ref", tval_ref(m1)) < 0)
		abort();
	return root;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tval *ctx;
	struct parts p = {0};
	struct tmpl_loader loader = {.arg = &p};
	struct tmpl_opts o = {.max_output = MAX_OUT, .partials = &loader};
	struct diag d = {0};
	const char *s, *end, *nul;
	struct tmpl *t;
	char *out = NULL, *again = NULL;
	size_t outlen = 0, againlen = 0;
	int rc;

	if (ctx == NULL)
		ctx = context();
	if (size == 0)
		return 0;
	o.escape = data[0] & 1 ? TMPL_ESCAPE_HTML : TMPL_ESCAPE_NONE;
	o.strict = (data[0] & 2) != 0;
	if (data[0] & 4)
		loader.parsed = part_parsed;
	else
		loader.load = part_load;
	s = (const char *)data + 1;
	end = (const char *)data + size;
	nul = memchr(s, '\0', (size_t)(end - s));
	t = tmpl_parse("fuzz", s, (size_t)((nul ? nul : end) - s), &d);
	while (nul != NULL && p.n < MAX_PARTS) {
		const char *ps = nul + 1;

		nul = memchr(ps, '\0', (size_t)(end - ps));
		p.src[p.n] = ps;
		p.len[p.n] = (size_t)((nul ? nul : end) - ps);
		if (loader.parsed != NULL) {
			struct diag pd = {0};

			p.t[p.n] = tmpl_parse("partial", ps, p.len[p.n], &pd);
			FUZZ_CHECK(
			    p.t[p.n] != NULL || pd.errors > 0,
			    "a partial failed to parse without a reason");
			diag_clear(&pd);
		}
		p.n++;
	}
	if (t == NULL) {
		FUZZ_CHECK(d.errors > 0, "parse failed without a reason");
		goto done;
	}
	FUZZ_CHECK(d.errors == 0, "parsed, with errors");
	rc = tmpl_render(t, ctx, &o, &out, &outlen, &d);
	if (rc < 0) {
		FUZZ_CHECK(out == NULL, "failed render left output");
		FUZZ_CHECK(d.errors > 0, "render failed without a reason");
		goto done;
	}
	FUZZ_CHECK(out != NULL && out[outlen] == '\0',
	           "output not NUL-terminated at its length");
	FUZZ_CHECK(outlen <= MAX_OUT, "output past max_output");
	diag_clear(&d);
	rc = tmpl_render(t, ctx, &o, &again, &againlen, &d);
	FUZZ_CHECK(rc == 0 && againlen == outlen &&
	               memcmp(out, again, outlen) == 0,
	           "a second render differs");
done:
	free(again);
	free(out);
	tmpl_free(t);
	for (size_t i = 0; i < p.n; i++)
		tmpl_free(p.t[i]);
	diag_clear(&d);
	return 0;
}
