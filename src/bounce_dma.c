/*
 * bounce_dma — the notice of the DragonFly Mail Agent (dma), which
 * writes no report part (bounce_int.h).
 */
#include "bounce_int.h"

#include <string.h>

/* The line after the one at p (CRLF text ending at end), or end. */
static const char *next_line(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? nl + 1 : end;
}

int bounce_dma_read(struct bounce_event *ev, const char *text, size_t n,
                    int *oom)
{
	static const char intro[] = "There was an error delivering your mail "
	                            "to <";
	const char *end = text + n, *at = text;

	if (bounce_str_casestr(text, "This is the DragonFly Mail Agent") ==
	    NULL)
		return 0;
	while ((at = memmem(at, (size_t)(end - at), intro,
	                    sizeof intro - 1)) != NULL) {
		const char *a = at + sizeof intro - 1, *p, *e;
		size_t an = bounce_addr_len(a);
		const char *command = NULL;
		struct bounce_rcpt *r;
		char *addr;
		int added;

		at = a;
		if (an == 0 || a + an >= end || a[an] != '>')
			continue;
		addr = bounce_addr_dup(a, an);
		if (addr == NULL) {
			*oom = 1;
			return 1;
		}
		if ((added = bounce_rcpt_add(ev, addr)) < 0) {
			*oom = 1;
			return 1;
		}
		if (added == 0)
			continue;
		r = &ev->rcpt[ev->nrcpt - 1];
		/* the paragraph after the blank line */
		p = next_line(a, end);
		while (p < end && (*p == '\r' || *p == '\n'))
			p = next_line(p, end);
		e = next_line(p, end);
		if (memmem(p, (size_t)(e - p), " did not like our ", 18) !=
		    NULL) {
			if (memmem(p, (size_t)(e - p), "RCPT TO", 7) != NULL)
				command = "RCPT";
			else if (memmem(p, (size_t)(e - p), "MAIL FROM", 9) !=
			         NULL)
				command = "MAIL";
			else if (memmem(p, (size_t)(e - p), "DATA", 4) != NULL)
				command = "DATA";
			p = e; /* the reply is on the next line */
		}
		/* the reply or dma's words: up to the blank line */
		e = p;
		while (e < end && *e != '\r' && *e != '\n')
			e = next_line(e, end);
		r->command = command;
		r->diagnostic = bounce_str_clean(p, (size_t)(e - p));
		if (r->diagnostic == NULL) {
			*oom = 1;
			return 1;
		}
	}
	if (ev->nrcpt > 0)
		ev->kind = BOUNCE_DSN;
	return 1;
}
