/*
 * bench_bounces — herald's bounce parser over a set of messages, for
 * bench/bounces. Reads every file named on the command line into memory
 * first (an mbox file, first line "From ", is split into its messages),
 * then parses all of them ROUNDS times with bounce_parse and prints one
 * line: the number of messages, how many were bounces (of any kind), the
 * CPU seconds spent parsing and the messages parsed per CPU second (CPU
 * time, not wall time: these machines are shared, and a busy neighbour
 * would halve a wall-clock rate), and the wall seconds.
 *
 * usage: bench_bounces ROUNDS FILE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/bounce.h"
#include "herald/diag.h"

struct msg {
	const char *p;
	size_t n;
};

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t cap = 0, len = 0, r;

	if (f == NULL)
		return NULL;
	do {
		if (len + 65536 > cap) {
			char *q = realloc(p, cap = 2 * cap + 65536);

			if (q == NULL) {
				free(p);
				fclose(f);
				return NULL;
			}
			p = q;
		}
		r = fread(p + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	fclose(f);
	*n = len;
	return p;
}

static double now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct msg *m = NULL;
	size_t nm = 0, bounces = 0;
	long rounds;
	double t0, w0, t, w;

	if (argc < 3 || (rounds = strtol(argv[1], NULL, 10)) < 1) {
		fprintf(stderr, "usage: bench_bounces ROUNDS FILE...\n");
		return 2;
	}
	for (int a = 2; a < argc; a++) {
		size_t len = 0, at = 0;
		char *p = slurp(argv[a], &len);
		int mbox;

		if (p == NULL) {
			fprintf(stderr, "bench_bounces: cannot read %s\n",
			        argv[a]);
			return 1;
		}
		mbox = len >= 5 && memcmp(p, "From ", 5) == 0;
		do {
			size_t end = len;
			struct msg *q;

			for (size_t i = at + 1; mbox && i + 6 <= len; i++)
				if (p[i] == '\n' && memcmp(p + i + 1, "From ", 5) == 0) {
					end = i + 1;
					break;
				}
			q = realloc(m, (nm + 1) * sizeof *q);
			if (q == NULL)
				return 1;
			m = q;
			m[nm].p = p + at;
			m[nm++].n = end - at;
			at = end;
		} while (mbox && at < len);
	}
	t0 = now(CLOCK_PROCESS_CPUTIME_ID);
	w0 = now(CLOCK_MONOTONIC);
	for (long r = 0; r < rounds; r++)
		for (size_t i = 0; i < nm; i++) {
			struct bounce_event ev;
			struct diag d = {0};

			if (bounce_parse(m[i].p, m[i].n, &ev, &d) == 0) {
				if (r == 0 && ev.kind != BOUNCE_NONE)
					bounces++;
				bounce_event_free(&ev);
			}
			diag_clear(&d);
		}
	t = now(CLOCK_PROCESS_CPUTIME_ID) - t0;
	w = now(CLOCK_MONOTONIC) - w0;
	printf("herald messages=%zu bounces=%zu rounds=%ld cpu=%.3f wall=%.3f "
	       "rate=%.0f\n",
	       nm, bounces, rounds, t, w, (double)nm * (double)rounds / t);
	return 0;
}
