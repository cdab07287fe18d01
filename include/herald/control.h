/*
 * control — how herald and the heraldd of a store reach each other: each
 * heraldd's control socket (control_listen, control_serve), herald's
 * client of it (control_call, control_tell), and which heraldd of a store
 * are still running (control_alive). One protocol, both sides, here.
 *
 * The protocol: a client connects to a heraldd's Unix-domain stream
 * socket, sends one request line and reads one reply line.
 *
 *   wake          work may be due: look now       "ok"
 *   ping          is anybody there                "pong"
 *   pause ID      release ID was paused           "ok dropped=N in_flight=M"
 *   cancel ID     release ID was cancelled        "ok dropped=N in_flight=M"
 *   (anything else)                               "error WHY"
 *
 * For pause and cancel, heraldd gives back at once what it claimed of the
 * release and has not handed to a relay (dropped), and says how many of
 * its messages are on relay connections (in_flight): those may still be
 * delivered. Only a peer of the daemon's own user is served (SO_PEERCRED);
 * others are refused and the daemon logs them.
 *
 * Sockets: each heraldd listens on its own. The first takes the
 * configured `control` path (default: the store's path with .sock); one
 * started while another heraldd answers there takes that path with
 * .PID added, and leaves the first one's alone. The store's daemons table
 * records each heraldd's socket, so herald tells every heraldd of a store
 * that runs on this host (control_tell).
 *
 * Library code: the server functions return 0 / -1 with the reason in a
 * struct diag; control_call returns -1 with errno. Nothing here allocates
 * what the caller must free, but control_tell's own copies.
 */
#ifndef HERALD_CONTROL_H
#define HERALD_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "herald/diag.h"
#include "herald/store.h"

enum {
	/* how long heraldd waits for the request line of a connection of
	 * its own user (its loop waits meanwhile) */
	CONTROL_REQUEST_MS = 500,
	/* how long herald waits for the answers to a pause or cancel, all
	 * heraldd together: a loop busy with a claim or a commit answers
	 * within a second; a heraldd that does not answer in this time is
	 * treated as not listening, and the store's change alone applies */
	CONTROL_REPLY_MS = 5000,
	/* a heraldd renews its heartbeat in the store this often (at the
	 * latest; with its leases when they are renewed more often) */
	CONTROL_HEARTBEAT = 10,
	/* a heraldd whose heartbeat is older is gone: six beats missed is no
	 * busy loop (a claim, a store's busy timeout of 10 s) but a dead or
	 * stopped process, on this host or another */
	CONTROL_STALE = 60,
};

/* What a request asks. */
enum control_verb {
	CONTROL_WAKE,
	CONTROL_PING,
	CONTROL_PAUSE,
	CONTROL_CANCEL,
};

struct control_request {
	enum control_verb verb;
	int64_t release_id; /* pause and cancel */
};

/* Parse one request line (without its newline); -1 when it is none. */
int control_parse(const char *line, struct control_request *rq);

/* ---- heraldd's side ---------------------------------------------------- */

/* Listen on path (created 0600; a socket left by a heraldd that died is
 * replaced). Returns the listening socket (non-blocking), -1 with the
 * reason in d, or -2 when a heraldd answers on path already: it is left
 * as it is. */
int control_listen(const char *path, struct diag *d);

/* Answers pause and cancel (and is told wake): writes the reply line
 * without its newline into reply (size bytes, at least 64). */
typedef void (*control_handler)(void *arg, const struct control_request *rq,
                                char *reply, size_t size);
/* Serve the connections waiting on fd: read each one's request (waiting
 * up to CONTROL_REQUEST_MS), answer ping itself and the others through
 * fn, refuse peers of another user, each refusal a line in log (log.h;
 * NULL: not logged). */
void control_serve(int fd, control_handler fn, FILE *log, void *arg);

/* heraldd's socket: listen on *path, or, when another heraldd of the
 * store answers there (taken: the daemons table says a running one has
 * it; or it answers a ping), on this heraldd's own beside it
 * (control_own_path), which then replaces *path (malloc'd, freed here);
 * that is logged to log. Both are reached by herald pause and cancel
 * through the daemons table. The listening socket, or -1 (d). */
int control_open(char **path, bool taken, FILE *log, struct diag *d);

/* Close the listening socket and remove its path (fd -1: nothing). */
void control_close(int fd, const char *path);

/* The socket of a heraldd that finds path taken: path.PID (malloc'd, the
 * caller frees), or NULL when memory runs out. */
char *control_own_path(const char *path, long pid);

/* ---- herald's side ----------------------------------------------------- */

/* Send request (one line, without newline) to the socket at path and, when
 * reply is not NULL, read the one-line answer into it (without newline)
 * within wait_ms. 0, or -1 with errno: ENOENT or ECONNREFUSED nobody
 * listens, ETIMEDOUT no answer in time, EPROTO no line. */
int control_call(const char *path, const char *request, char *reply,
                 size_t size, int wait_ms);

/* Wake a heraldd of the store whose control socket is path: the one
 * there, or else one listening on its own socket beside it (path.PID).
 * 0 when one took the wake-up, -1 (errno) when none listens. */
int control_wake(const char *path);

/* What control_tell learnt of one heraldd. */
enum control_told {
	CONTROL_ANSWERED,   /* reply holds its answer */
	CONTROL_NO_ANSWER,  /* it runs but did not answer (its socket gone,
	                     * or busy past CONTROL_REPLY_MS) */
	CONTROL_OTHER_HOST, /* it runs on another host: not reachable */
};

/* Send request to every heraldd of the store that is running (as
 * control_alive judges), waiting up to CONTROL_REPLY_MS for all; fn is
 * called for each with what came of it (reply NULL but when answered).
 * Returns how many answered, or -1 when the store cannot be read. */
int control_tell(struct store *st, const char *request,
                 void (*fn)(void *arg, const struct store_daemon *dm,
                            enum control_told told, const char *reply),
                 void *arg, struct diag *d);

/* ---- who is running ---------------------------------------------------- */

/* Every row of the store's daemons table, running or not, copied into
 * *v (*n rows; free with control_daemons_free). 0, or -1 with the reason
 * in d when the store cannot be read or memory runs out (*v NULL). */
int control_daemons(struct store *st, struct store_daemon **v, size_t *n,
                    struct diag *d);
void control_daemons_free(struct store_daemon *v, size_t n);

/* This host's name (gethostname), as the daemons table records it. */
const char *control_host(void);

/* Is the heraldd of this daemons row still running? No when its row says
 * it ended, when its heartbeat is older than CONTROL_STALE, or, on this
 * host, when its pid is this process's or no process's, or its heartbeat
 * is older than this host's boot. */
bool control_alive(const struct store_daemon *dm, time_t now);

#endif
