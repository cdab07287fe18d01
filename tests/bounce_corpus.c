/*
 * bounce_corpus — herald's bounce parser as a command, for the corpus test
 * (test_bounce_corpus.py). For each file named on the command line it
 * prints one JSON line: the file, whether herald saw a bounce, the kind,
 * the recipients, and the first recipient's status, reply code, reason,
 * hardness and diagnostic. An mbox file (first line "From ") is split into its messages;
 * the line then describes all of them: recipients are their union, the
 * rest comes from the first message that is a bounce.
 *
 * Exit status 0 when every file was read and parsed (kind NONE counts as
 * parsed), 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/bounce.h"
#include "herald/diag.h"

static const char *const kinds[] = {"none", "dsn", "complaint", "autoreply",
                                    "unsubscribe"};

static void json_str(const char *s)
{
	if (s == NULL) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t cap = 0, len = 0, r;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (len + 65536 > cap) {
			char *q = realloc(p, cap = len + 65536 + cap);

			if (q == NULL) {
				free(p);
				fclose(f);
				return NULL;
			}
			p = q;
		}
		r = fread(p + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	*n = len;
	return p;
}

/* Start of the next mbox message after offset at, or len. */
static size_t next_from(const char *p, size_t len, size_t at)
{
	for (size_t i = at; i + 6 <= len; i++)
		if (p[i] == '\n' && memcmp(p + i + 1, "From ", 5) == 0)
			return i + 1;
	return len;
}

int main(int argc, char **argv)
{
	int status = 0;

	for (int a = 1; a < argc; a++) {
		size_t len = 0, at = 0;
		char *p = slurp(argv[a], &len);
		int mbox, bounce = 0, first = 1;
		struct bounce_event keep = {0};
		char **addrs = NULL;
		size_t naddrs = 0;

		if (p == NULL) {
			fprintf(stderr, "bounce_corpus: cannot read %s\n",
			        argv[a]);
			status = 1;
			continue;
		}
		mbox = len >= 5 && memcmp(p, "From ", 5) == 0;
		do {
			size_t end = mbox ? next_from(p, len, at + 1) : len;
			struct bounce_event ev;
			struct diag d = {0};

			if (bounce_parse(p + at, end - at, &ev, &d) < 0) {
				fprintf(stderr, "bounce_corpus: %s: %s\n",
				        argv[a], diag_first(&d));
				status = 1;
			} else {
				for (size_t i = 0; i < ev.nrcpt; i++) {
					char **q = realloc(
					    addrs, (naddrs + 1) * sizeof *q);
					if (q == NULL)
						abort();
					addrs = q;
					addrs[naddrs++] =
					    strdup(ev.rcpt[i].address);
				}
				if (ev.kind != BOUNCE_NONE && !bounce) {
					bounce = 1;
					keep = ev;
				} else {
					bounce_event_free(&ev);
				}
			}
			diag_clear(&d);
			at = end;
		} while (mbox && at < len);
		printf("{\"file\": ");
		json_str(argv[a]);
		printf(", \"bounce\": %s, \"kind\": \"%s\", \"recipients\": [",
		       bounce ? "true" : "false", kinds[keep.kind]);
		for (size_t i = 0; i < naddrs; i++) {
			printf("%s", first ? "" : ", ");
			first = 0;
			json_str(addrs[i]);
			free(addrs[i]);
		}
		printf("], \"status\": ");
		json_str(keep.nrcpt && keep.rcpt[0].status[0]
		             ? keep.rcpt[0].status
		             : NULL);
		printf(", \"code\": %d, \"reason\": ",
		       keep.nrcpt ? keep.rcpt[0].code : 0);
		json_str(keep.nrcpt ? keep.rcpt[0].reason : NULL);
		printf(", \"hard\": %d, \"message_id\": ",
		       keep.nrcpt ? keep.rcpt[0].hard : -1);
		json_str(keep.message_id);
		printf(", \"verp_to\": ");
		json_str(keep.verp_to);
		printf(", \"feedback_type\": ");
		json_str(keep.feedback_type);
		printf(", \"command\": ");
		json_str(keep.nrcpt ? keep.rcpt[0].command : NULL);
		printf(", \"rule\": ");
		json_str(keep.nrcpt ? keep.rcpt[0].rule : NULL);
		printf(", \"evidence\": ");
		json_str(keep.nrcpt ? keep.rcpt[0].evidence : NULL);
		printf(", \"evidence_line\": %u",
		       keep.nrcpt ? keep.rcpt[0].evidence_line : 0);
		printf(", \"diagnostic\": ");
		json_str(keep.nrcpt ? keep.rcpt[0].diagnostic : NULL);
		/* every recipient of the message kept (the first bounce of an
		 * mbox): the verdict of each */
		printf(", \"rcpts\": [");
		for (size_t i = 0; i < keep.nrcpt; i++) {
			const struct bounce_rcpt *r = &keep.rcpt[i];

			printf("%s{\"address\": ", i ? ", " : "");
			json_str(r->address);
			printf(", \"status\": ");
			json_str(r->status[0] ? r->status : NULL);
			printf(", \"code\": %d, \"reason\": ", r->code);
			json_str(r->reason);
			printf(", \"hard\": %d, \"rule\": ", r->hard);
			json_str(r->rule);
			printf(", \"command\": ");
			json_str(r->command);
			printf("}");
		}
		printf("]}\n");
		free(addrs);
		bounce_event_free(&keep);
		free(p);
	}
	return status;
}
