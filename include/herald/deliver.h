/*
 * deliver — heraldd's engine: one event loop over the transport (libcurl's
 * multi interface or a Maildir), timers and the control socket. It claims
 * due deliveries from the store, builds each journalist's message from the
 * release's snapshot, hands it to the relay, lets trouble.c decide what
 * the reply means, and hands every attempt to the recorder (recorder.h),
 * which commits them in few transactions and only then logs them: nothing
 * is reported sent before the store has committed it. The control socket
 * is control.h's, the bounce mailbox poller.h's, every line log.h's.
 *
 * Signals: SIGTERM/SIGINT stop claiming, let messages in flight finish
 * within the grace period, give the rest back, and return; SIGHUP reloads
 * the config (DKIM keys, retry policy; the relay when idle).
 *
 * Daemon code: returns a <sysexits.h> status; problems are reported to the
 * log stream with the place they come from.
 */
#ifndef HERALD_DELIVER_H
#define HERALD_DELIVER_H

#include <stdbool.h>
#include <stdio.h>

struct deliver_opts {
	const char *config_path; /* NULL: config_path(NULL) */
	const char *store_path;  /* NULL: the config's */
	const char *relay_url;   /* NULL: the config's */
	bool drain;              /* exit when nothing is due or in flight */
	FILE *log;               /* one key=value line per attempt */
};

/* Run until stopped (or drained). Returns 0, or EX_CONFIG / EX_DATAERR /
 * EX_CANTCREAT / EX_SOFTWARE / EX_TEMPFAIL with the reason logged. */
int deliver_run(const struct deliver_opts *o);

#endif
