/*
 * bench/compose — how fast herald builds journalists' messages, against a
 * baseline in the same run: copying a pre-rendered 3 KB message into a
 * fresh buffer per recipient (the least any mailer must do). Prints both
 * rates, their ratio and the peak resident memory after 10% and after all
 * of the recipients, so growth with the list shows. Ratios, not absolute
 * times: the machines are shared and noisy.
 *
 *   compose RELEASE_DIR LIST COUNT [DKIM_KEY DOMAIN SELECTOR]
 *
 * One core (a single thread). COUNT messages are built for the list's
 * journalists in turn, each with its own Message-ID.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "herald/coalition.h"
#include "herald/contacts.h"
#include "herald/dkim.h"
#include "herald/message.h"
#include "herald/release.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

int main(int argc, char **argv)
{
	struct diag d = {0};
	struct release *r;
	struct coalition *c;
	struct contacts *list;
	struct dkim_signer *signer = NULL;
	struct message_opts o = {.now = time(NULL)};
	unsigned long count;
	double t0, t_herald, t_base;
	size_t bytes = 0, sink = 0;
	long peak_early = 0;
	char *pre, id[64];

	if (argc != 4 && argc != 7) {
		fprintf(stderr, "usage: compose RELEASE_DIR LIST COUNT "
		                "[DKIM_KEY DOMAIN SELECTOR]\n");
		return 64;
	}
	count = strtoul(argv[3], NULL, 10);
	r = release_load(NULL, argv[1], &d);
	c = r ? coalition_load(NULL, r->coalition, &r->policy, &d) : NULL;
	list = contacts_load(argv[2], &d);
	if (argc == 7)
		signer = dkim_signer_load(argv[4], argv[5], argv[6], &d);
	if (!r || !c || !list || (argc == 7 && !signer) || count == 0) {
		diag_print(&d, stderr);
		return 65;
	}
	o.cache = message_cache_new();
	if (signer) {
		o.signers = &signer;
		o.nsigners = 1;
	}

	/* herald: context, render, compose (and sign) per recipient */
	t0 = now();
	for (unsigned long i = 0; i < count; i++) {
		const struct journalist *j = &list->v[i % list->n];
		struct i18n_choice ch = i18n_choose(&r->policy, j->language);
		char *msg;
		size_t len;
		snprintf(id, sizeof(id), "%lu.bench@coalition.example.org", i);
		o.message_id = id;
		if (message_build(r, c, j, ch.lang, &o, &msg, &len, &d) < 0) {
			diag_print(&d, stderr);
			return 1;
		}
		bytes += len;
		sink += (unsigned char)msg[len / 2];
		free(msg);
		if (i + 1 == count / 10)
			peak_early = peak_kib();
	}
	t_herald = now() - t0;

	/* baseline: a pre-rendered 3 KB message copied per recipient */
	pre = malloc(3072);
	memset(pre, 'x', 3072);
	t0 = now();
	for (unsigned long i = 0; i < count; i++) {
		char *msg = malloc(3072);
		memcpy(msg, pre, 3072);
		msg[i % 3072] = (char)i;
		sink += (unsigned char)msg[(i * 7) % 3072];
		free(msg);
	}
	t_base = now() - t0;
	free(pre);

	printf("messages: %lu (%s), average %zu bytes\n", count,
	       signer ? "signed" : "unsigned", bytes / count);
	printf("herald:   %.0f messages/s\n", (double)count / t_herald);
	printf("baseline: %.0f messages/s (3 KB copy)\n",
	       (double)count / t_base);
	printf("ratio:    baseline is %.1fx herald\n", t_herald / t_base);
	printf("peak RSS: %ld KiB after %lu messages, %ld KiB after %lu\n",
	       peak_early, count / 10, peak_kib(), count);
	printf("(checksum %zu)\n", sink);
	message_cache_free(o.cache);
	dkim_signer_free(signer);
	contacts_free(list);
	coalition_free(c);
	release_free(r);
	return 0;
}
