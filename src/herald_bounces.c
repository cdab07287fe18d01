/*
 * herald bounces fetch — one pass over the bounce mailbox: every message
 * becomes an event (bounce per failed recipient, complaint, auto-reply,
 * unsubscribe request, or unknown), matched to its delivery by the signed
 * return path first, then by the returned Message-ID, then by address,
 * and recorded with the raw message; the store acts on it (bounced,
 * complained, suppressed). Handled messages are moved, never deleted.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "herald/config.h"
#include "herald/inbox.h"
#include "herald/mailbox.h"
#include "herald/store.h"
#include "herald/verp.h"
#include "herald_cli.h"

static void bounces_report(void *arg, const char *msgid,
                           const struct store_event *ev, int64_t id,
                           bool suppressed)
{

	(void)arg;
	printf("%s message=%s to=<%s> status=%s reason=%s delivery=%lld%s\n",
	       store_event_kind_name(ev->kind), msgid,
	       ev->email ? ev->email : "-", ev->status ? ev->status : "-",
	       ev->reason ? ev->reason : "-", (long long)id,
	       suppressed ? " suppressed" : "");
}

static void bounces_usage(FILE *f)
{
	fputs("usage: herald bounces fetch [--mailbox URL] [--store PATH] "
	      "[--config FILE]\n\n"
	      "Read the bounce mailbox once (default: herald.yaml's "
	      "bounces.mailbox, a\n"
	      "maildir:/path): record every bounce, complaint, auto-reply and "
	      "unsubscribe\n"
	      "request with its delivery, and act on it (a hard bounce, a "
	      "complaint or an\n"
	      "unsubscribe suppresses the address). Handled messages move to "
	      "cur/; nothing\n"
	      "is deleted. One line per event on stdout.\n",
	      f);
}

int cmd_bounces(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"store", required_argument, NULL, 'S'},
	    {"mailbox", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *storep = NULL, *url = NULL;
	struct config *cfg = NULL;
	struct verp *verp = NULL;
	struct mailbox *mb = NULL;
	const struct mailbox_backend *mbb;
	struct diag d = {0};
	struct store *st = NULL;
	struct inbox_opts io = {.report = bounces_report};
	struct inbox_counts ic;
	int ch, rc = EX_USAGE, n;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			config = optarg;
			break;
		case 'S':
			storep = optarg;
			break;
		case 'm':
			url = optarg;
			break;
		case 'h':
			bounces_usage(stdout);
			return 0;
		default:
			bounces_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc || strcmp(argv[optind], "fetch") != 0) {
		bounces_usage(stderr);
		return EX_USAGE;
	}
	rc = EX_CONFIG;
	cfg = config_load(config_path(config), &d);
	if (cfg == NULL)
		goto done;
	if (url == NULL)
		url = cfg->bounce_mailbox;
	if (url == NULL || (mbb = mailbox_backend_for(url)) == NULL) {
		diag_add(&d, cfg->file, 0, 0,
		         "no bounce mailbox: give --mailbox maildir:/path or "
		         "bounces.mailbox in herald.yaml");
		goto done;
	}
	if (cfg->bounce_domain != NULL) {
		verp =
		    verp_load(cfg->bounce_secret_file, cfg->bounce_secret_env,
		              cfg->bounce_domain, &d);
		if (verp == NULL)
			goto done;
	}
	rc = EX_TEMPFAIL;
	st = store_open(storep ? storep : cfg->store, &d);
	if (st == NULL)
		goto done;
	if ((mb = inbox_open(cfg, url, st, &d)) == NULL)
		goto done;
	io.verp = verp;
	io.soft_limit = cfg->soft_limit;
	io.soft_window = cfg->soft_window;
	n = inbox_pass(st, mb, &io, &ic, &d);
	if (n < 0)
		goto done;
	printf("handled %d message%s: %zu events, %zu matched to deliveries, "
	       "%zu suppressed, %zu unknown\n",
	       n, n == 1 ? "" : "s", ic.events, ic.matched, ic.suppressed,
	       ic.unknown);
	rc = d.errors > 0 ? EX_TEMPFAIL : 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	if (mb != NULL)
		mbb->close(mb);
	if (st != NULL)
		store_close(st);
	verp_free(verp);
	config_free(cfg);
	return rc;
}
