/*
 * heraldd — the delivery daemon: a thin main over deliver.c. Runs in the
 * foreground (systemd starts it; see contrib/heraldd.service) and logs to
 * stderr through log.h alone: key=value, time= first, one line per
 * attempt (recorder.c), per mailbox event (poller.c), per control request
 * (control.c) and per change of the loop's state (deliver.c). heraldd(8)
 * describes it; its options are the table in main(), each of them in the
 * page.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <curl/curl.h>

#include "herald/deliver.h"
#include "herald/harden.h"
#include "herald/log.h"

static void usage(FILE *f)
{
	fputs("usage: heraldd [--config FILE] [--store PATH] [--relay URL] "
	      "[--drain]\n"
	      "       heraldd --version\n\n"
	      "Deliver queued releases: claim due deliveries from the store, "
	      "build each\n"
	      "journalist's message, send it through the relay, retry what "
	      "failed for a\n"
	      "while, record every attempt. Runs in the foreground; SIGTERM "
	      "stops it\n"
	      "gracefully, SIGHUP reloads the config.\n\n"
	      "  --config FILE  herald.yaml (default: $HERALD_CONFIG, else "
	      "./herald.yaml)\n"
	      "  --store PATH   the store (default: the config's, else "
	      "herald.db)\n"
	      "  --relay URL    smtp://host:port (STARTTLS required unless "
	      "on loopback),\n"
	      "                 smtps://host:port, or maildir:/path (the "
	      "default:\n"
	      "                 maildir:herald-outbox)\n"
	      "  --drain        deliver what can go now, waiting for rate "
	      "limits and\n"
	      "                 relay pauses, then exit: 0 when nothing is "
	      "left, 75 when\n"
	      "                 work waits for a later run (a paused release, "
	      "an embargo,\n"
	      "                 a retry)\n"
	      "  --version      print heraldd's version and exit\n"
	      "  -h, --help     this help\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"store", required_argument, NULL, 's'},
	    {"relay", required_argument, NULL, 'r'},
	    {"drain", no_argument, NULL, 'd'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct deliver_opts o = {.log = stderr};
	int ch, rc;

	/* secrets are read into memory: no core file, no ptrace */
	(void)harden_process();

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.config_path = optarg;
			break;
		case 's':
			o.store_path = optarg;
			break;
		case 'r':
			o.relay_url = optarg;
			break;
		case 'd':
			o.drain = true;
			break;
		case 'V':
			printf("heraldd %s\n", HERALD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_line(stderr, "cannot initialise libcurl");
		return EX_SOFTWARE;
	}
	rc = deliver_run(&o);
	curl_global_cleanup();
	return rc;
}
