/*
 * herald-web — the public unsubscribe page (/u/TOKEN), /healthz,
 * /metrics and the admin console (web.users log in): a thin main over
 * web.c. Reads herald.yaml without the relay's
 * and the mailbox's passwords (CONFIG_NO_SECRETS) and never a DKIM key;
 * the bounce secret it does read, to check tokens. Runs in the
 * foreground (contrib/herald-web.service), logs to stderr through log.h,
 * and stops on SIGTERM or SIGINT. herald-web(8) describes it; its options
 * are the table in main(), each of them in the page.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "herald/config.h"
#include "herald/harden.h"
#include "herald/log.h"
#include "herald/store.h"
#include "herald/verp.h"
#include "herald/web.h"

static void usage(FILE *f)
{
	fputs("usage: herald-web [--config FILE] [--listen ADDRESS:PORT]\n"
	      "       herald-web --version\n\n"
	      "Serve the public unsubscribe page (/u/TOKEN, the link in "
	      "List-Unsubscribe),\n"
	      "/healthz, /metrics, and the admin console at / for "
	      "web.users. HTTPS with\n"
	      "web.tls_cert and web.tls_key; plain HTTP only on a loopback "
	      "address.\n"
	      "SIGTERM stops it.\n\n"
	      "  --config FILE          herald.yaml (default: $HERALD_CONFIG, "
	      "else ./herald.yaml)\n"
	      "  --listen ADDRESS:PORT  where to listen (default: the "
	      "config's web.listen)\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"listen", required_argument, NULL, 'l'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_arg = NULL, *listen = NULL, *path;
	struct config *cfg = NULL;
	struct store *st = NULL;
	struct verp *verp = NULL;
	struct web *w = NULL;
	struct diag d = {0};
	struct web_opts o = {.log = stderr};
	sigset_t set;
	int ch, sig, rc = EX_CONFIG;
	bool refused = false;

	/* the bounce secret is read into memory: no core file, no ptrace */
	(void)harden_process();

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_arg = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'V':
			printf("herald-web %s\n", HERALD_VERSION);
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
	path = config_path(config_arg);
	if ((cfg = config_load_flags(path, CONFIG_NO_SECRETS, &d)) == NULL)
		goto fail;
	o.listen = listen ? listen : cfg->web_listen;
	o.tls_cert = cfg->web_tls_cert;
	o.tls_key = cfg->web_tls_key;
	o.users = cfg->web_users;
	o.nusers = cfg->nweb_users;
	o.session_idle = cfg->web_session_idle;
	o.https_outside = cfg->web_base_url != NULL &&
	                  strncmp(cfg->web_base_url, "https://", 8) == 0;
	if (cfg->nweb_users == 0)
		log_line(stderr, "herald-web: no web.users in %s: no one can "
		                 "log in to the admin pages (herald passwd "
		                 "makes a password_hash)",
		         path ? path : "the defaults");
	if (cfg->bounce_domain != NULL) {
		verp =
		    verp_load(cfg->bounce_secret_file, cfg->bounce_secret_env,
		              cfg->bounce_domain, &d);
		if (verp == NULL)
			goto fail;
	} else {
		log_line(stderr,
		         "herald-web: no bounces.domain in %s: every "
		         "unsubscribe link answers 404",
		         path ? path : "the defaults");
	}
	if ((st = store_open_flags(cfg->store, 0, &d)) == NULL) {
		rc = EX_UNAVAILABLE;
		goto fail;
	}
	o.st = st;
	o.verp = verp;
	/* signals are taken by sigwait below, in this thread only: block
	 * them before the server's thread starts, which inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((w = web_start(&o, &refused, &d)) == NULL) {
		rc = refused ? EX_CONFIG : EX_UNAVAILABLE;
		goto fail;
	}
	log_line(stderr, "herald-web started listen=%s port=%u tls=%s",
	         o.listen, (unsigned)web_port(w),
	         o.tls_cert != NULL ? "yes" : "no");
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		log_line(stderr, "herald-web: SIGHUP ignored (restart to "
		                 "reload the config)");
	}
	log_line(stderr, "herald-web stopping signal=%s",
	         sig == SIGTERM ? "TERM" : "INT");
	web_stop(w);
	store_close(st);
	verp_free(verp);
	config_free(cfg);
	return 0;
fail:
	log_diag(stderr, &d);
	diag_clear(&d);
	store_close(st);
	verp_free(verp);
	config_free(cfg);
	return rc;
}
