/*
 * transport_smtp — the SMTP transport: messages to a relay over libcurl's
 * multi interface, many in flight at once over a few reused connections,
 * all driven by the calling thread. herald runs it through
 * transport_smtp_pool.c: one of these per connection, each on its own
 * thread, because of the dot's blocking wait described below.
 *
 * One multi handle holds the connections (curl keeps idle ones in its
 * cache and hands them to the next transfer). Each message in flight is a
 * slot: a reused easy handle with the message's copy, its envelope and
 * what the relay said. There are at most max_connections slots, and the
 * multi allows that many connections to the relay, so a message never
 * waits inside curl for a connection: room() is the number of free slots.
 *
 * TLS policy (decided in smtp_open, shown by describe()):
 *   smtps://                     implicit TLS
 *   smtp:// to a literal loopback address (127.0.0.0/8, ::1)
 *                                STARTTLS when offered (a local relay such
 *                                as smtp-sink offers none); with AUTH
 *                                credentials required unless allow_plain
 *                                says a password in clear is meant
 *   smtp:// to any other host    STARTTLS required; with allow_plain,
 *                                STARTTLS when offered; with AUTH
 *                                credentials always required, so that a
 *                                password never crosses a network in clear
 * Certificates are always verified (peer and host name).
 *
 * Messages per connection. libcurl 7.88 does not say which connection a
 * transfer used (CURLINFO_CONN_ID is 8.2), but it calls the pre-request
 * callback at the start of every transfer, on a new or a reused
 * connection, with the connection's local address and port. Among the
 * open connections of one process to one relay, (local address, port)
 * names a connection. t->conns keeps a count per open connection: an
 * entry is made when a transfer's connection is new (the socket-option
 * callback saw the transfer open it; getsockname() tells which of its
 * sockets has that local end) and dropped when curl closes the socket
 * (the close-socket callback). The transfer that brings a connection to
 * max_per_connection is marked CURLOPT_FORBID_REUSE from the pre-request
 * callback (curl only stores the flag, and reads it when the transfer is
 * done), so curl ends the session with QUIT right after that message's
 * reply. The integration test counts smtp-sink's sessions to check it.
 *
 * With credentials, a relay that offers no AUTH curl can use (curl would
 * go on without) is a failure at stage AUTH, found in the pre-request
 * callback before MAIL FROM is sent.
 *
 * Where a message stopped (the stage) comes from the dialogue as the
 * reply lines arrive (CURLOPT_HEADERFUNCTION gets every reply line): the
 * pre-request callback ends the connection phase, and the replies after
 * it answer MAIL, RCPT, DATA and the final dot in that order, as curl
 * sends one recipient per message and never pipelines. smtp_phase() is
 * the only place that changes a slot's phase; with HERALD_SMTP_TRACE set
 * in the environment it prints every change to stderr.
 *
 * What libcurl 7.88 does that shapes this file:
 * - curl waits for the reply after the final dot, and for the reply to
 *   QUIT when it closes a connection (also after a refused MAIL, RCPT or
 *   DATA), blocking inside curl_multi_perform(): a relay slow to answer
 *   there stalls step(), and every other message, for up to the reply
 *   timeout. The QUIT reply reaches the header callback too; a refusal
 *   or the dot's reply "settles" the message so that it is not taken for
 *   the message's answer. What this file does about it:
 *   - QUIT's answer is not waited for (Postfix: smtp_skip_quit_response):
 *     where curl will close the connection next, its reading side is shut
 *     down first, so the QUIT goes out and the wait ends at once.
 *   - curl ends a transfer whose MAIL, RCPT or DATA reply timed out as a
 *     finished one, with a QUIT and a second blocking wait of the reply
 *     timeout, and does the same after a dot that timed out on a
 *     connection it then closes; this file keeps the connect, reply and
 *     dot timeouts itself (smtp_limit, smtp_expire) and shuts the
 *     connection down when one is over, so curl's QUIT fails at once.
 *   - While curl blocks for a dot's reply nothing else runs but its
 *     progress callback (at least once a second): the timeouts are kept
 *     from there too (curl's own connect timeout would wait for the
 *     dot's reply to end), so each ends at most about a second late. The
 *     dot's own wait cannot be shared.
 *   - curl keeps a connection whose dot timed out for the next message;
 *     smtp_collect() shuts it down, so curl finds it dead.
 * - A transfer removed from the multi before it is complete is ended as
 *   if it were: curl sends the final dot (a relay would take a message
 *   cut short) and waits for the reply. smtp_close() therefore shuts the
 *   connection down first, so that write fails at once.
 * - curl has one reply timeout (CURLOPT_SERVER_RESPONSE_TIMEOUT) and
 *   checks the low-speed limit also while it waits after the dot, so both
 *   are set to the larger of reply_timeout and dot_timeout, plus a second
 *   so that this file's own timeouts always end a wait first.
 * - curl copies the URL, MAIL FROM and credentials it is given; the
 *   recipient list is this file's (one curl_slist node per slot).
 *
 * Library code: returns 0 / -1 (or NULL) with the reason in a diag.
 */
#include "herald/log.h"
#include "herald/transport.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Defaults and limits, each with the reason for its value. */
static const struct {
	unsigned max_connections;    /* 8: the connections LIBRARIES.md
	                              * measured at 6,900-8,400 msg/s on
	                              * loopback; well below Postfix's
	                              * default concurrency per destination
	                              * (20), so one relay is not crowded */
	unsigned max_per_connection; /* 100: Postfix bounds a session's
	                              * reuse too (by time, and by count with
	                              * smtp_connection_reuse_count_limit);
	                              * a new session per 100 messages costs
	                              * under 1% and spreads load */
	unsigned connect_timeout;    /* 30 s: Postfix smtp_connect_timeout */
	unsigned reply_timeout;      /* 300 s: RFC 5321 4.5.3.2 (MAIL, RCPT:
	                              * 5 minutes); Postfix smtp_mail_timeout */
	unsigned dot_timeout;        /* 600 s: RFC 5321 4.5.3.2.6 (10 minutes
	                              * after the dot); Postfix
	                              * smtp_data_done_timeout */
	long idle_reuse;             /* 60 s: reuse an idle connection only
	                              * this long (CURLOPT_MAXAGE_CONN); servers
	                              * drop idle sessions after 5 minutes
	                              * (Postfix smtpd_timeout) */
	long keepalive;              /* 60 s: TCP keepalive idle and interval,
	                              * so a dead peer is noticed while a
	                              * connection waits in the cache */
	long upload_buffer;          /* 16384: below glibc's trim threshold,
	                              * no brk churn per message
	                              * (LIBRARIES.md) */
	size_t reply_max;            /* 4096 bytes of one reply kept: a reply
	                              * line is at most 512 (RFC 5321 4.5.3.1.5)
	                              * and the useful part comes first */
	size_t message_max;          /* 64 MiB: more than any relay takes
	                              * (Postfix message_size_limit is 10 MB,
	                              * big providers 25-50 MB) */
	size_t address_max;          /* 254: the longest usable address
	                              * (RFC 5321 path 256 minus <>) */
	size_t helo_max;             /* 255: a domain name (RFC 1035) */
} smtp_defaults = {
    .max_connections = TRANSPORT_DEFAULT_CONNECTIONS,
    .max_per_connection = TRANSPORT_DEFAULT_PER_CONNECTION,
    .connect_timeout = TRANSPORT_DEFAULT_CONNECT_TIMEOUT,
    .reply_timeout = TRANSPORT_DEFAULT_REPLY_TIMEOUT,
    .dot_timeout = TRANSPORT_DEFAULT_DOT_TIMEOUT,
    .idle_reuse = 60,
    .keepalive = 60,
    .upload_buffer = 16384,
    .reply_max = 4096,
    .message_max = 64u * 1024 * 1024,
    .address_max = 254,
    .helo_max = 255,
};

/* step()'s extra descriptors at most: the daemon's own (control socket,
 * timers), with room. */
#define SMTP_EXTRA_FDS_MAX 64

/* Where a message is in the dialogue: what it waits for, or sends. */
enum smtp_phase {
	PHASE_IDLE,    /* slot free */
	PHASE_CONNECT, /* connection, greeting, EHLO, STARTTLS */
	PHASE_AUTH,    /* AUTH sent (the EHLO reply said it comes next) */
	PHASE_MAIL,    /* connection ready, MAIL FROM sent */
	PHASE_RCPT,    /* RCPT TO sent */
	PHASE_DATA,    /* DATA sent */
	PHASE_BODY,    /* 354 received, the message is being sent */
	PHASE_DOT,     /* all of it handed to curl; the reply to the dot */
};

static const char *const smtp_phase_names[] = {
    "idle", "connect", "auth", "mail", "rcpt", "data", "body", "dot",
};

/* One open connection's count of messages (see the file comment). */
struct smtp_conn {
	int fd; /* its socket */
	char ip[INET6_ADDRSTRLEN];
	long port;
	unsigned messages;
};

/* Sockets one transfer may open while it connects (happy eyeballs tries
 * IPv6 and IPv4 at once). */
#define SMTP_CANDIDATES 4

struct smtp_transport;

/* One message in flight. */
struct smtp_slot {
	struct smtp_transport *t;
	CURL *easy;
	enum smtp_phase phase;
	bool fresh;   /* this transfer opened its connection */
	bool greeted; /* the greeting (the first 220) was seen */
	bool tls_up;  /* STARTTLS was accepted (a second 220) */
	bool auth_ok; /* a 235 was seen on this transfer's connection */
	bool no_auth; /* the relay offered no AUTH curl could use */
	bool settled; /* refused, or the dot answered: the replies after
	               * this (QUIT's, curl sends it when it closes) are
	               * not the message's */
	bool closing; /* CURLOPT_FORBID_REUSE set for this transfer */
	bool timed_out; /* smtp_expire() ended it: no reply in time */
	int fd;       /* the socket of this transfer's connection, or -1 */
	int cand[SMTP_CANDIDATES]; /* sockets this transfer opened */
	size_t ncand;
	struct transport_msg msg; /* handed to done; points into below */
	char sender[256];
	char rcpt[256];
	struct curl_slist rcpt_list; /* CURLOPT_MAIL_RCPT: one node, ours */
	char *data;
	size_t cap;
	size_t off; /* bytes of data handed to curl */
	/* The reply being read (cur) and the last complete one (last). */
	char *reply[2];
	size_t reply_len[2];
	int cur;
	int last_code;     /* code of the last complete reply, 0: none */
	bool last_refused; /* it was not the positive answer expected */
	char errbuf[CURL_ERROR_SIZE];
	struct timespec started;
	struct timespec waiting; /* since when it waits for a reply */
	struct transport_reply r;
	struct smtp_slot *next_free;
};

struct smtp_transport {
	struct transport base;
	transport_done_fn done;
	void *arg;
	CURLM *multi;
	char *url;      /* what curl connects to: scheme://host:port/helo */
	char *describe; /* for logs */
	char *user;
	char *password;
	char *ca_file;
	long use_ssl;
	bool smtps;
	bool auth;
	bool auth_needs_tls; /* AUTH on loopback without allow_plain */
	bool trace;
	unsigned max_connections, max_per_connection;
	long connect_timeout, response_timeout;
	long connect_ms, reply_ms, dot_ms; /* kept here too: smtp_limit */
	struct timespec last_check; /* of smtp_expire(), from progress */
	atomic_bool interrupted;    /* transport_smtp_interrupt */
	struct smtp_slot **slots; /* max_connections, created on demand */
	size_t nslots, nbusy;
	struct smtp_slot *free_slots;
	struct smtp_conn *conns;
	size_t nconns, conns_cap;
	struct curl_waitfd waitfds[SMTP_EXTRA_FDS_MAX];
};

static struct smtp_transport *smtp_of(struct transport *t)
{
	return (struct smtp_transport *)t;
}

static double smtp_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1000.0 +
	       (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The trace's clock: CLOCK_MONOTONIC seconds, as Python's
 * time.monotonic() gives them to the tests' servers. */
static double smtp_trace_clock(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* The ONLY way to change a slot's phase. */
static void smtp_phase(struct smtp_slot *s, enum smtp_phase to)
{
	if (s->t->trace && s->phase != to)
		fprintf(stderr,
		        "transport_smtp: %.3f id=%lld phase %s -> %s\n",
		        smtp_trace_clock(), (long long)s->msg.id,
		        smtp_phase_names[s->phase], smtp_phase_names[to]);
	s->phase = to;
}

/* -- reply timeouts ----------------------------------------------------- */

/* While a transfer sets up its connection, how long has the relay owed
 * it an answer, in ms; -1 when no socket of its own is connected yet.
 * The transfer's clock cannot say: curl may have opened the socket and
 * then blocked for another transfer's dot before connecting it, or not
 * read a greeting that came in time. The kernel can: for a connected
 * socket TCP_INFO gives the time since data last came in (or since the
 * connection was made) and since data last went out; the smaller is how
 * long the relay has been silent since the last thing either side said.
 * A socket still connecting is left to curl's own connect timeout. */
static double smtp_silence(const struct smtp_slot *s)
{
	double silent = -1;
	size_t j;

	for (j = 0; j < s->ncand; j++) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);
		uint32_t ms;

		memset(&ti, 0, sizeof(ti));
		if (getsockopt(s->cand[j], IPPROTO_TCP, TCP_INFO, &ti, &len) !=
		        0 ||
		    ti.tcpi_state != TCP_ESTABLISHED)
			continue;
		ms = ti.tcpi_last_data_recv < ti.tcpi_last_data_sent
		         ? ti.tcpi_last_data_recv
		         : ti.tcpi_last_data_sent;
		if (silent < 0 || (double)ms < silent)
			silent = (double)ms;
	}
	return silent;
}

/* Which timeout this file keeps for the slot now, in ms (0: none). curl
 * keeps its own, but
 * - a transfer that times out waiting for the reply to MAIL, RCPT or
 *   DATA curl ends as a finished one: it sends QUIT to the server that
 *   did not answer and waits, blocking every other message, up to the
 *   reply timeout again; curl's reply timeout is therefore the larger
 *   dot timeout, a backstop, and the reply timeout is kept here;
 * - after the dot's reply timed out on a connection it then closes
 *   (FORBID_REUSE), curl waits the whole timeout again for QUIT's reply;
 * - connecting (greeting, EHLO, STARTTLS, AUTH) curl ends after the
 *   connect timeout, but only when it runs the transfer: not while it
 *   blocks for another one's dot.
 * Kept here as well, each ends at most about a second late (see
 * smtp_progress). A refused or answered message waits for nothing more.
 * *waited: how long it has waited, in ms; < 0: not known, nothing to
 * end (see smtp_silence). */
static long smtp_limit(const struct smtp_slot *s, double *waited)
{
	*waited = -1;
	if (s->settled) /* refused, or the dot answered: nothing to wait for */
		return 0;
	switch (s->phase) {
	case PHASE_CONNECT:
	case PHASE_AUTH:
		*waited = smtp_silence(s);
		return s->t->connect_ms;
	case PHASE_MAIL:
	case PHASE_RCPT:
	case PHASE_DATA:
		*waited = smtp_ms_since(&s->waiting);
		return s->t->reply_ms;
	case PHASE_DOT:
		*waited = smtp_ms_since(&s->waiting);
		return s->t->dot_ms;
	default:
		return 0;
	}
}

/* Has the slot's connection something to read (a reply, or its end)
 * that curl has not read yet? While curl blocks for another transfer, a
 * reply that came in time waits in the socket. */
static bool smtp_readable(const struct smtp_slot *s)
{
	struct pollfd p[SMTP_CANDIDATES + 1];
	nfds_t n = 0;
	size_t j;

	if (s->fd >= 0)
		p[n++] = (struct pollfd){.fd = s->fd, .events = POLLIN};
	for (j = 0; j < s->ncand; j++)
		if (s->cand[j] != s->fd)
			p[n++] = (struct pollfd){.fd = s->cand[j],
			                         .events = POLLIN};
	return n > 0 && poll(p, n, 0) > 0;
}

static void smtp_shutdown(struct smtp_slot *s, int how)
{
	size_t j;

	if (s->fd >= 0)
		shutdown(s->fd, how);
	for (j = 0; j < s->ncand; j++)
		if (s->cand[j] != s->fd)
			shutdown(s->cand[j], how);
}

/* End every transfer over its timeout (smtp_limit): its connection is
 * shut down, so curl sees it closed (and its QUIT fails at once instead
 * of waiting), and the reply says timeout. Only shutdown(2): safe from
 * inside curl's callbacks. Returns the milliseconds until the next one is
 * due, or -1. */
static long smtp_expire(struct smtp_transport *t)
{
	long next = -1;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &t->last_check);
	for (i = 0; i < t->nslots; i++) {
		struct smtp_slot *s = t->slots[i];
		double waited, limit;

		limit = (double)smtp_limit(s, &waited);
		if (limit <= 0 || waited < 0 || s->timed_out)
			continue;
		if (waited >= limit && !smtp_readable(s)) {
			s->timed_out = true;
			if (t->trace)
				fprintf(stderr,
				        "transport_smtp: %.3f id=%lld no reply "
				        "in phase %s after %.0f ms: closing\n",
				        smtp_trace_clock(), (long long)s->msg.id,
				        smtp_phase_names[s->phase], waited);
			smtp_shutdown(s, SHUT_RDWR);
		} else if (waited < limit) {
			long left = (long)(limit - waited) + 1;
			if (next < 0 || left < next)
				next = left;
		}
	}
	return next;
}

/* CURLOPT_XFERINFOFUNCTION: curl calls it at least once a second while it
 * blocks waiting for the reply after a dot (or to QUIT), when nothing
 * else runs: the timeouts (smtp_limit) are kept from here then. */
static int smtp_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                         curl_off_t ultotal, curl_off_t ulnow)
{
	struct smtp_slot *s = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (atomic_load(&s->t->interrupted))
		return 1; /* transport_smtp_interrupt: curl ends the transfer */
	if (smtp_ms_since(&s->t->last_check) >= 100.0)
		smtp_expire(s->t);
	return 0;
}

void transport_smtp_interrupt(struct transport *base)
{
	atomic_store(&smtp_of(base)->interrupted, true);
}

/* -- per-connection message counts ------------------------------------- */

/* Every socket curl opens goes through smtp_sockopt and every one it
 * closes through smtp_closesocket, so the descriptors kept here (slot fd
 * and cand, conns[].fd) are always open ones: never a number the process
 * has since reused for something else. */

static struct smtp_conn *smtp_conn_by_addr(struct smtp_transport *t,
                                           const char *ip, long port)
{
	size_t i;

	for (i = 0; i < t->nconns; i++)
		if (t->conns[i].port == port && strcmp(t->conns[i].ip, ip) == 0)
			return &t->conns[i];
	return NULL;
}

/* The socket among the transfer's own whose local end is ip:port. */
static int smtp_find_socket(const struct smtp_slot *s, const char *ip,
                            long port)
{
	size_t i;

	for (i = 0; i < s->ncand; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char buf[INET6_ADDRSTRLEN];
		const void *addr;
		long p;

		if (getsockname(s->cand[i], (struct sockaddr *)&ss, &len) != 0)
			continue;
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)&ss;
			addr = &a->sin_addr;
			p = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)&ss;
			addr = &a->sin6_addr;
			p = ntohs(a->sin6_port);
		} else {
			continue;
		}
		if (p == port &&
		    inet_ntop(ss.ss_family, addr, buf, sizeof(buf)) &&
		    strcmp(buf, ip) == 0)
			return s->cand[i];
	}
	return -1;
}

/* CURLOPT_SOCKOPTFUNCTION: this transfer opens a socket. */
static int smtp_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	struct smtp_slot *s = arg;

	if (purpose == CURLSOCKTYPE_IPCXN) {
		s->fresh = true;
		if (s->ncand < SMTP_CANDIDATES)
			s->cand[s->ncand++] = fd;
	}
	return CURL_SOCKOPT_OK;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl closes a socket; forget it
 * everywhere. */
static int smtp_closesocket(void *arg, curl_socket_t fd)
{
	struct smtp_transport *t = arg;
	size_t i, j;

	for (i = 0; i < t->nconns; i++)
		if (t->conns[i].fd == fd) {
			t->conns[i] = t->conns[--t->nconns];
			break;
		}
	for (i = 0; i < t->nslots; i++) {
		struct smtp_slot *s = t->slots[i];

		if (s->fd == fd)
			s->fd = -1;
		for (j = 0; j < s->ncand; j++)
			if (s->cand[j] == fd) {
				s->cand[j] = s->cand[--s->ncand];
				break;
			}
	}
	return close(fd);
}

/* CURLOPT_PREREQFUNCTION: the connection is ready (new or reused) and
 * MAIL FROM goes out next. Counts the message against its connection. */
static int smtp_prereq(void *arg, char *remote_ip, char *local_ip,
                       int remote_port, int local_port)
{
	struct smtp_slot *s = arg;
	struct smtp_transport *t = s->t;
	struct smtp_conn *c;

	(void)remote_ip;
	(void)remote_port;
	if (s->timed_out) {
		/* declared not ready in time (smtp_expire) after all: never
		 * go on to MAIL FROM with it */
		curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
		s->closing = true;
		return CURL_PREREQFUNC_ABORT;
	}
	if (s->fresh && t->auth && !s->auth_ok) {
		/* curl goes on without AUTH when the relay offers none it
		 * can use; the relay would then refuse recipients as if
		 * they were at fault. Close the connection, call it AUTH. */
		curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
		s->closing = true;
		s->no_auth = true;
		return CURL_PREREQFUNC_ABORT;
	}
	smtp_phase(s, PHASE_MAIL);
	clock_gettime(CLOCK_MONOTONIC, &s->waiting);
	c = smtp_conn_by_addr(t, local_ip, local_port);
	if (s->fresh) {
		int fd = smtp_find_socket(s, local_ip, local_port);

		if (c == NULL && fd >= 0 && t->nconns < t->conns_cap)
			c = &t->conns[t->nconns++];
		if (c != NULL) {
			c->fd = fd;
			snprintf(c->ip, sizeof(c->ip), "%s", local_ip);
			c->port = local_port;
			c->messages = 0;
		}
	}
	if (c == NULL) {
		/* Not identified (cannot happen while every socket passes
		 * the callbacks): this message closes its connection, so
		 * the bound holds all the same. */
		curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
		s->closing = true;
		return CURL_PREREQFUNC_OK;
	}
	s->fd = c->fd;
	c->messages++;
	if (t->trace)
		fprintf(stderr,
		        "transport_smtp: %.3f id=%lld connection %s:%ld %s, "
		        "message %u of at most %u\n",
		        smtp_trace_clock(), (long long)s->msg.id, local_ip,
		        (long)local_port, s->fresh ? "new" : "reused", c->messages,
		        t->max_per_connection);
	if (c->messages >= t->max_per_connection) {
		/* Safe from here: curl only stores the flag, and reads it
		 * when this transfer is done. */
		curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
		s->closing = true;
	}
	return CURL_PREREQFUNC_OK;
}

/* -- the dialogue ------------------------------------------------------- */

/* Does an EHLO reply (lines "250-WORD ...") have a line starting with
 * word? Compared as curl 7.88 does (case matters, "AUTH " with its
 * space, "STARTTLS" as a prefix), so this sees what curl sees. */
static bool smtp_ehlo_has(const char *reply, const char *word)
{
	size_t n = strlen(word);
	const char *p = reply;

	while (p != NULL) {
		if (p[0] && p[1] && p[2] && p[3] &&
		    strncmp(p + 4, word, n) == 0)
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

/* A complete reply (text in s->reply[s->cur]) arrived: was it the answer
 * that lets curl go on, and what does curl send next? */
static void smtp_reply_done(struct smtp_slot *s, int code)
{
	const char *text = s->reply[s->cur];
	int cls = code / 100;
	bool ok;

	switch (s->phase) {
	case PHASE_CONNECT:
		ok = cls == 2;
		if (code == 220) {
			s->tls_up = s->greeted;
			s->greeted = true;
		}
		/* After EHLO curl sends STARTTLS when offered and not yet on
		 * TLS, else AUTH when it has credentials and AUTH is
		 * offered (else it goes on without; see smtp_prereq). */
		if (code == 250 && s->t->auth && smtp_ehlo_has(text, "AUTH ") &&
		    (s->t->smtps || s->tls_up ||
		     (s->t->use_ssl != CURLUSESSL_ALL &&
		      !smtp_ehlo_has(text, "STARTTLS"))))
			smtp_phase(s, PHASE_AUTH);
		break;
	case PHASE_AUTH:
		ok = code == 334 || code == 235;
		s->auth_ok = code == 235;
		s->settled = !ok;
		break;
	case PHASE_MAIL:
		ok = cls == 2;
		if (ok)
			smtp_phase(s, PHASE_RCPT);
		s->settled = !ok;
		break;
	case PHASE_RCPT:
		ok = cls == 2;
		if (ok)
			smtp_phase(s, PHASE_DATA);
		s->settled = !ok;
		break;
	case PHASE_DATA:
		ok = code == 354;
		if (ok)
			smtp_phase(s, s->msg.len == 0 ? PHASE_DOT : PHASE_BODY);
		s->settled = !ok;
		break;
	case PHASE_BODY:
	case PHASE_DOT:
		ok = code == 250;
		smtp_phase(s, PHASE_DOT);
		s->settled = true;
		break;
	default:
		return;
	}
	/* curl sends QUIT next, after a refusal or when this transfer ends
	 * its connection, and blocks until the answer: like Postfix
	 * (smtp_skip_quit_response), do not wait for it. The QUIT still goes
	 * out; reading ends here. */
	if (s->fd >= 0 && s->settled &&
	    ((!ok && s->phase >= PHASE_MAIL && s->phase <= PHASE_DATA) ||
	     (s->phase == PHASE_DOT && s->closing)))
		shutdown(s->fd, SHUT_RD);
	clock_gettime(CLOCK_MONOTONIC, &s->waiting);
	s->last_code = code;
	s->last_refused = !ok;
	s->cur ^= 1;
	s->reply_len[s->cur] = 0;
	s->reply[s->cur][0] = '\0';
}

/* CURLOPT_HEADERFUNCTION: one line of a reply, with its CRLF. A reply
 * ends where curl's own reading ends it: a line of a code and a space,
 * or of a code alone. */
static size_t smtp_header(char *line, size_t size, size_t n, void *arg)
{
	struct smtp_slot *s = arg;
	size_t len = size * n, keep = len;
	size_t max = smtp_defaults.reply_max;
	char *buf = s->reply[s->cur];
	size_t *blen = &s->reply_len[s->cur];

	if (s->settled || s->phase == PHASE_IDLE)
		return len;
	while (keep > 0 && (line[keep - 1] == '\n' || line[keep - 1] == '\r'))
		keep--;
	if (*blen > 0 && *blen < max)
		buf[(*blen)++] = '\n';
	/* Reply text is untrusted: control characters (a NUL included)
	 * are escaped, and what is over the cap is dropped. */
	*blen += log_escape_to(buf + *blen, max - *blen, line, keep);
	buf[*blen] = '\0';
	if (len >= 4 && line[0] >= '0' && line[0] <= '9' && line[1] >= '0' &&
	    line[1] <= '9' && line[2] >= '0' && line[2] <= '9' &&
	    (line[3] == ' ' || len == 5))
		smtp_reply_done(s, (line[0] - '0') * 100 +
		                       (line[1] - '0') * 10 + (line[2] - '0'));
	return len;
}

/* CURLOPT_READFUNCTION: the message, from the slot's copy. */
static size_t smtp_read(char *buf, size_t size, size_t n, void *arg)
{
	struct smtp_slot *s = arg;
	size_t want = size * n, left = s->msg.len - s->off;

	if (want > left)
		want = left;
	memcpy(buf, s->data + s->off, want);
	s->off += want;
	if (s->off == s->msg.len && s->phase == PHASE_BODY) {
		smtp_phase(s, PHASE_DOT);
		clock_gettime(CLOCK_MONOTONIC, &s->waiting);
	}
	return want;
}

/* CURLOPT_WRITEFUNCTION: SMTP sends no body to us; discard anything. */
static size_t smtp_discard(char *buf, size_t size, size_t n, void *arg)
{
	(void)buf;
	(void)arg;
	return size * n;
}

/* -- results ------------------------------------------------------------ */

static bool smtp_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return true;
	default:
		return false;
	}
}

/* Replace every copy of the password in s with asterisks. */
static void smtp_redact(const struct smtp_transport *t, char *s)
{
	size_t n;
	char *p;

	if (s == NULL || t->password == NULL || t->password[0] == '\0')
		return;
	n = strlen(t->password);
	while ((p = strstr(s, t->password)) != NULL)
		memset(p, '*', n);
}

static void smtp_fill_reply(struct smtp_slot *s, CURLcode rc)
{
	struct transport_reply *r = &s->r;
	char *last = s->reply[s->cur ^ 1];
	double ms = smtp_ms_since(&s->started);

	memset(r, 0, sizeof(*r));
	r->duration_ms = ms < 0 ? 0 : ms > UINT_MAX ? UINT_MAX : (unsigned)ms;
	r->error = (int)rc;
	if (rc == CURLE_OK) {
		r->stage = TRANSPORT_DONE;
		r->code = s->last_code;
		r->text = last;
	} else {
		switch (s->phase) {
		case PHASE_IDLE:
		case PHASE_CONNECT:
			r->stage = TRANSPORT_CONNECT;
			break;
		case PHASE_AUTH:
			r->stage = TRANSPORT_AUTH;
			break;
		case PHASE_MAIL:
			r->stage = TRANSPORT_MAIL;
			break;
		case PHASE_RCPT:
			r->stage = TRANSPORT_RCPT;
			break;
		case PHASE_DATA:
		case PHASE_BODY:
			r->stage = TRANSPORT_DATA;
			break;
		case PHASE_DOT:
			r->stage = TRANSPORT_DOT;
			break;
		}
		if (rc == CURLE_ABORTED_BY_CALLBACK &&
		    atomic_load(&s->t->interrupted))
			r->stage = TRANSPORT_LOCAL;
		else if (rc == CURLE_LOGIN_DENIED || s->no_auth)
			r->stage = TRANSPORT_AUTH;
		else if (rc == CURLE_OUT_OF_MEMORY || rc == CURLE_READ_ERROR ||
		         rc == CURLE_FAILED_INIT ||
		         rc == CURLE_BAD_FUNCTION_ARGUMENT)
			r->stage = TRANSPORT_LOCAL;
		/* Only a refusal's code and text are the relay's answer; the
		 * last positive reply before a failure (a 220 to STARTTLS
		 * before a certificate problem) is not. */
		if (s->last_refused) {
			r->code = s->last_code;
			r->text = last;
		}
		/* After a refusal the refusal is the answer: curl may still
		 * call it a timeout when it got to the transfer only after
		 * blocking for another one's dot. */
		r->timeout = s->timed_out || (rc == CURLE_OPERATION_TIMEDOUT &&
		                              !s->last_refused);
		r->tls = smtp_tls_error(rc);
		r->conn_lost =
		    !s->last_refused && !s->timed_out &&
		    (rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
		     rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE);
		if (rc == CURLE_ABORTED_BY_CALLBACK &&
		    r->stage == TRANSPORT_LOCAL)
			/* as smtp_close says it (transport.h) */
			snprintf(r->error_text, sizeof(r->error_text),
			         "aborted");
		else if (s->timed_out && (r->stage == TRANSPORT_CONNECT ||
		                          r->stage == TRANSPORT_AUTH))
			snprintf(r->error_text, sizeof(r->error_text),
			         "no answer from the relay within %ld s while "
			         "connecting (greeting, EHLO, STARTTLS%s)",
			         s->t->connect_timeout,
			         r->stage == TRANSPORT_AUTH ? ", AUTH" : "");
		else if (s->timed_out && r->stage == TRANSPORT_DOT)
			snprintf(r->error_text, sizeof(r->error_text),
			         "no reply to the final dot within %ld s",
			         s->t->dot_ms / 1000);
		else if (s->timed_out)
			snprintf(r->error_text, sizeof(r->error_text),
			         "no reply to %s within %ld s",
			         r->stage == TRANSPORT_MAIL   ? "MAIL FROM"
			         : r->stage == TRANSPORT_RCPT ? "RCPT TO"
			                                      : "DATA",
			         s->t->reply_ms / 1000);
		else if (s->no_auth)
			snprintf(r->error_text, sizeof(r->error_text),
			         "the relay offered no AUTH PLAIN or LOGIN, "
			         "but credentials are configured");
		else if (rc == CURLE_USE_SSL_FAILED && s->t->auth_needs_tls)
			snprintf(r->error_text, sizeof(r->error_text),
			         "the relay offers no STARTTLS: AUTH would send "
			         "the password in clear; set relay.allow_plain: "
			         "true to allow that on a loopback address");
		else
			snprintf(r->error_text, sizeof(r->error_text), "%s",
			         s->errbuf[0] ? s->errbuf
			                      : curl_easy_strerror(rc));
		smtp_redact(s->t, r->error_text);
	}
	if (r->text != NULL && r->text[0] == '\0')
		r->text = NULL;
	smtp_redact(s->t, r->text);
	transport_parse_reply(r->text, r->status, r->queue_id);
}

/* Give the slot back, after its done callback has returned. */
static void smtp_release(struct smtp_transport *t, struct smtp_slot *s)
{
	smtp_phase(s, PHASE_IDLE);
	s->next_free = t->free_slots;
	t->free_slots = s;
	t->nbusy--;
}

/* Every finished transfer: its reply to done. */
static void smtp_collect(struct smtp_transport *t)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(t->multi, &left)) != NULL) {
		struct smtp_slot *s = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &s);
		/* curl keeps a connection whose dot went unanswered (it
		 * timed out) for the next message, which would then wait on a
		 * server that stopped talking. Only a connection that ended
		 * in a clean answer is used again. */
		if (m->data.result != CURLE_OK && !s->last_refused &&
		    s->fd >= 0)
			shutdown(s->fd, SHUT_RDWR);
		curl_multi_remove_handle(t->multi, m->easy_handle);
		smtp_fill_reply(s, m->data.result);
		t->done(t->arg, &s->msg, &s->r);
		smtp_release(t, s);
	}
}

/* -- slots -------------------------------------------------------------- */

static void smtp_slot_free(struct smtp_slot *s)
{
	if (s == NULL)
		return;
	if (s->easy != NULL)
		curl_easy_cleanup(s->easy);
	free(s->data);
	free(s->reply[0]);
	free(s->reply[1]);
	free(s);
}

/* Set an option that cannot fail but for a bug or out of memory. */
#define SMTP_SETOPT(easy, opt, val)                                            \
	do {                                                                   \
		CURLcode rc_ = curl_easy_setopt((easy), (opt), (val));         \
		if (rc_ != CURLE_OK) {                                         \
			diag_add(d, NULL, 0, 0, "smtp transport: %s: %s",      \
			         #opt, curl_easy_strerror(rc_));               \
			goto fail;                                             \
		}                                                              \
	} while (0)

static struct smtp_slot *smtp_slot_new(struct smtp_transport *t, struct diag *d)
{
	struct smtp_slot *s = calloc(1, sizeof(*s));
	CURL *e;

	if (s == NULL)
		goto oom;
	s->t = t;
	s->fd = -1;
	s->reply[0] = malloc(smtp_defaults.reply_max + 1);
	s->reply[1] = malloc(smtp_defaults.reply_max + 1);
	s->easy = e = curl_easy_init();
	if (s->reply[0] == NULL || s->reply[1] == NULL || e == NULL)
		goto oom;
	s->reply[0][0] = s->reply[1][0] = '\0';
	s->rcpt_list.data = s->rcpt;
	s->rcpt_list.next = NULL;
	s->msg.sender = s->sender;
	s->msg.rcpt = s->rcpt;

	SMTP_SETOPT(e, CURLOPT_URL, t->url);
	SMTP_SETOPT(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	SMTP_SETOPT(e, CURLOPT_PRIVATE, (void *)s);
	SMTP_SETOPT(e, CURLOPT_NOSIGNAL, 1L);
	SMTP_SETOPT(e, CURLOPT_UPLOAD, 1L);
	SMTP_SETOPT(e, CURLOPT_UPLOAD_BUFFERSIZE, smtp_defaults.upload_buffer);
	SMTP_SETOPT(e, CURLOPT_READFUNCTION, smtp_read);
	SMTP_SETOPT(e, CURLOPT_READDATA, (void *)s);
	SMTP_SETOPT(e, CURLOPT_HEADERFUNCTION, smtp_header);
	SMTP_SETOPT(e, CURLOPT_HEADERDATA, (void *)s);
	SMTP_SETOPT(e, CURLOPT_WRITEFUNCTION, smtp_discard);
	SMTP_SETOPT(e, CURLOPT_PREREQFUNCTION, smtp_prereq);
	SMTP_SETOPT(e, CURLOPT_PREREQDATA, (void *)s);
	SMTP_SETOPT(e, CURLOPT_SOCKOPTFUNCTION, smtp_sockopt);
	SMTP_SETOPT(e, CURLOPT_SOCKOPTDATA, (void *)s);
	SMTP_SETOPT(e, CURLOPT_CLOSESOCKETFUNCTION, smtp_closesocket);
	SMTP_SETOPT(e, CURLOPT_CLOSESOCKETDATA, (void *)t);
	SMTP_SETOPT(e, CURLOPT_ERRORBUFFER, s->errbuf);
	SMTP_SETOPT(e, CURLOPT_NOPROGRESS, 0L);
	SMTP_SETOPT(e, CURLOPT_XFERINFOFUNCTION, smtp_progress);
	SMTP_SETOPT(e, CURLOPT_XFERINFODATA, (void *)s);
	SMTP_SETOPT(e, CURLOPT_MAIL_RCPT, &s->rcpt_list);
	SMTP_SETOPT(e, CURLOPT_USE_SSL, t->use_ssl);
	SMTP_SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
	SMTP_SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
	SMTP_SETOPT(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (t->ca_file != NULL)
		SMTP_SETOPT(e, CURLOPT_CAINFO, t->ca_file);
	if (t->auth) {
		SMTP_SETOPT(e, CURLOPT_USERNAME, t->user);
		SMTP_SETOPT(e, CURLOPT_PASSWORD, t->password);
		/* The mechanisms that rest on TLS (which AUTH requires here)
		 * and need nothing but the password; not the digest ones
		 * relays advertise but often break. */
		SMTP_SETOPT(e, CURLOPT_LOGIN_OPTIONS, "AUTH=PLAIN;AUTH=LOGIN");
		SMTP_SETOPT(e, CURLOPT_SASL_IR, 1L);
	}
	SMTP_SETOPT(e, CURLOPT_CONNECTTIMEOUT, t->connect_timeout);
	SMTP_SETOPT(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, t->response_timeout);
	SMTP_SETOPT(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SMTP_SETOPT(e, CURLOPT_LOW_SPEED_TIME, t->response_timeout);
	SMTP_SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
	SMTP_SETOPT(e, CURLOPT_TCP_KEEPIDLE, smtp_defaults.keepalive);
	SMTP_SETOPT(e, CURLOPT_TCP_KEEPINTVL, smtp_defaults.keepalive);
	SMTP_SETOPT(e, CURLOPT_MAXAGE_CONN, smtp_defaults.idle_reuse);
	return s;
oom:
	diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
fail:
	smtp_slot_free(s);
	return NULL;
}

/* -- the backend -------------------------------------------------------- */

/* An envelope address curl can send as it is: curl puts it verbatim
 * into MAIL FROM:<...> / RCPT TO:<...>. */
static int smtp_check_address(const char *what, const char *a, bool empty_ok,
                              struct diag *d)
{
	const unsigned char *p;
	size_t len;

	if (a == NULL)
		a = "";
	len = strlen(a);
	if (len == 0 && !empty_ok) {
		diag_add(d, NULL, 0, 0, "smtp transport: empty %s", what);
		return -1;
	}
	if (len > smtp_defaults.address_max) {
		diag_add(d, NULL, 0, 0,
		         "smtp transport: %s is %zu characters, more than %zu",
		         what, len, smtp_defaults.address_max);
		return -1;
	}
	for (p = (const unsigned char *)a; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>') {
			diag_add(d, NULL, 0, 0,
			         "smtp transport: %s has a %s at offset %zu: "
			         "refused before sending",
			         what,
			         *p == ' '                ? "space"
			         : *p == '<' || *p == '>' ? "'<' or '>'"
			                                  : "control character",
			         (size_t)(p - (const unsigned char *)a));
			return -1;
		}
	return 0;
}

int transport_smtp_check(const struct transport_msg *m, struct diag *d)
{
	if (smtp_check_address("envelope sender", m->sender, true, d) < 0 ||
	    smtp_check_address("envelope recipient", m->rcpt, false, d) < 0)
		return -1;
	if (m->len > smtp_defaults.message_max) {
		diag_add(d, NULL, 0, 0,
		         "smtp transport: the message is %zu bytes, more than "
		         "the limit of %zu",
		         m->len, smtp_defaults.message_max);
		return -1;
	}
	if (m->len > 0 && m->data == NULL) {
		diag_add(d, NULL, 0, 0, "smtp transport: message without data");
		return -1;
	}
	return 0;
}

static int smtp_submit(struct transport *base, const struct transport_msg *m,
                       struct diag *d)
{
	struct smtp_transport *t = smtp_of(base);
	struct smtp_slot *s;
	CURLMcode mc;
	CURLcode rc;

	if (transport_smtp_check(m, d) < 0)
		return -1;
	s = t->free_slots;
	if (s == NULL) {
		if (t->nslots >= t->max_connections) {
			diag_add(d, NULL, 0, 0,
			         "smtp transport: no room: %zu messages in "
			         "flight",
			         t->nbusy);
			return -1;
		}
		s = smtp_slot_new(t, d);
		if (s == NULL)
			return -1;
		t->slots[t->nslots++] = s;
	} else {
		t->free_slots = s->next_free;
	}
	s->next_free = NULL;

	if (s->cap < m->len) {
		char *nd = realloc(s->data, m->len);
		if (nd == NULL) {
			diag_add(d, NULL, 0, 0,
			         "smtp transport: out of memory for a message "
			         "of %zu bytes",
			         m->len);
			goto fail;
		}
		s->data = nd;
		s->cap = m->len;
	}
	if (m->len > 0)
		memcpy(s->data, m->data, m->len);
	snprintf(s->sender, sizeof(s->sender), "%s",
	         m->sender ? m->sender : "");
	snprintf(s->rcpt, sizeof(s->rcpt), "%s", m->rcpt);
	s->msg.id = m->id;
	s->msg.data = s->data;
	s->msg.len = m->len;
	s->msg.user = m->user;
	s->off = 0;
	s->fresh = false;
	s->fd = -1;
	s->ncand = 0;
	s->greeted = false;
	s->tls_up = false;
	s->auth_ok = false;
	s->no_auth = false;
	s->settled = false;
	s->timed_out = false;
	s->last_code = 0;
	s->last_refused = false;
	s->cur = 0;
	s->reply_len[0] = s->reply_len[1] = 0;
	s->reply[0][0] = s->reply[1][0] = '\0';
	s->errbuf[0] = '\0';

	rc = curl_easy_setopt(s->easy, CURLOPT_MAIL_FROM, s->sender);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(s->easy, CURLOPT_INFILESIZE_LARGE,
		                      (curl_off_t)m->len);
	if (rc == CURLE_OK && s->closing) {
		rc = curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 0L);
		s->closing = false;
	}
	if (rc != CURLE_OK) {
		diag_add(d, NULL, 0, 0, "smtp transport: %s",
		         curl_easy_strerror(rc));
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &s->started);
	s->waiting = s->started;
	smtp_phase(s, PHASE_CONNECT);
	mc = curl_multi_add_handle(t->multi, s->easy);
	if (mc != CURLM_OK) {
		diag_add(d, NULL, 0, 0, "smtp transport: %s",
		         curl_multi_strerror(mc));
		smtp_phase(s, PHASE_IDLE);
		goto fail;
	}
	t->nbusy++;
	return 0;
fail:
	s->next_free = t->free_slots;
	t->free_slots = s;
	return -1;
}

static size_t smtp_in_flight(const struct transport *base)
{
	return ((const struct smtp_transport *)base)->nbusy;
}

static size_t smtp_room(const struct transport *base)
{
	const struct smtp_transport *t = (const struct smtp_transport *)base;

	return t->max_connections - t->nbusy;
}

static int smtp_step(struct transport *base, int timeout_ms,
                     const int *extra_fds, size_t nextra, bool *readable,
                     struct diag *d)
{
	struct smtp_transport *t = smtp_of(base);
	CURLMcode mc;
	int numfds = 0, running = 0;
	long due;
	size_t i;

	if (nextra > SMTP_EXTRA_FDS_MAX) {
		diag_add(d, NULL, 0, 0,
		         "smtp transport: %zu extra descriptors, more than %d",
		         nextra, SMTP_EXTRA_FDS_MAX);
		return -1;
	}
	for (i = 0; i < nextra; i++) {
		t->waitfds[i].fd = extra_fds[i];
		t->waitfds[i].events = CURL_WAIT_POLLIN;
		t->waitfds[i].revents = 0;
	}
	due = smtp_expire(t);
	if (due >= 0 && (timeout_ms < 0 || due < timeout_ms))
		timeout_ms = (int)due;
	mc = curl_multi_poll(t->multi, t->waitfds, (unsigned)nextra,
	                     timeout_ms < 0 ? INT_MAX : timeout_ms, &numfds);
	if (mc != CURLM_OK) {
		diag_add(d, NULL, 0, 0, "smtp transport: waiting: %s",
		         curl_multi_strerror(mc));
		return -1;
	}
	for (i = 0; i < nextra; i++)
		readable[i] = t->waitfds[i].revents != 0;
	smtp_expire(t);
	mc = curl_multi_perform(t->multi, &running);
	if (mc != CURLM_OK) {
		diag_add(d, NULL, 0, 0, "smtp transport: %s",
		         curl_multi_strerror(mc));
		return -1;
	}
	smtp_collect(t);
	return 0;
}

static void smtp_close(struct transport *base)
{
	struct smtp_transport *t = smtp_of(base);
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nslots; i++) {
		struct smtp_slot *s = t->slots[i];

		size_t j;

		if (s->phase == PHASE_IDLE)
			continue;
		/* curl 7.88 ends a removed SMTP transfer as if it were
		 * complete: it sends the final dot (the relay would take a
		 * message cut short) and waits for the reply. A connection
		 * shut down first makes that write fail at once. */
		if (s->fd >= 0)
			shutdown(s->fd, SHUT_RDWR);
		for (j = 0; j < s->ncand; j++)
			shutdown(s->cand[j], SHUT_RDWR);
		curl_multi_remove_handle(t->multi, s->easy);
		memset(&s->r, 0, sizeof(s->r));
		s->r.stage = TRANSPORT_LOCAL;
		s->r.duration_ms = (unsigned)smtp_ms_since(&s->started);
		snprintf(s->r.error_text, sizeof(s->r.error_text), "aborted");
		t->done(t->arg, &s->msg, &s->r);
		smtp_release(t, s);
	}
	for (i = 0; i < t->nslots; i++)
		smtp_slot_free(t->slots[i]);
	t->nslots = 0;
	/* Ends the cached connections (QUIT) through smtp_closesocket,
	 * which still needs t, but no slot. curl would wait for each QUIT's
	 * answer with its own default of 120 s, not the relay settings: the
	 * QUITs go out, their answers are not read. */
	for (i = 0; i < t->nconns; i++)
		if (t->conns[i].fd >= 0)
			shutdown(t->conns[i].fd, SHUT_RD);
	if (t->multi != NULL)
		curl_multi_cleanup(t->multi);
	free(t->slots);
	free(t->conns);
	free(t->url);
	free(t->describe);
	free(t->user);
	if (t->password != NULL) {
		explicit_bzero(t->password, strlen(t->password));
		free(t->password);
	}
	free(t->ca_file);
	free(t);
	curl_global_cleanup();
}

static const char *smtp_describe(const struct transport *base)
{
	return ((const struct smtp_transport *)base)->describe;
}

/* Is host (as curl's URL parser gives it, IPv6 in brackets) a literal
 * loopback address? Names, "localhost" included, are not: what a name
 * resolves to can change. */
static bool smtp_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char buf[INET6_ADDRSTRLEN];
	size_t n = strlen(host);

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (n > 2 && n - 2 < sizeof(buf) && host[0] == '[' &&
	    host[n - 1] == ']') {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return false;
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return false;
}

/* The EHLO name as a URL path: curl URL-decodes the path into EHLO. */
static char *smtp_helo_path(const char *helo, struct diag *d)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(helo), i, o = 0;
	char *out;

	if (n == 0 || n > smtp_defaults.helo_max) {
		diag_add(d, NULL, 0, 0,
		         "relay: the EHLO name must be 1 to %zu characters",
		         smtp_defaults.helo_max);
		return NULL;
	}
	out = malloc(3 * n + 1);
	if (out == NULL) {
		diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)helo[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-') {
			out[o++] = (char)c;
		} else if (c == '[' || c == ']' || c == ':') {
			/* address literals: [192.0.2.1], [IPv6:...] */
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			diag_add(d, NULL, 0, 0,
			         "relay: EHLO name \"%s\" has a character a "
			         "domain name cannot have",
			         helo);
			free(out);
			return NULL;
		}
	}
	out[o] = '\0';
	return out;
}

static char *smtp_strdup(const char *s, struct diag *d)
{
	char *c = s ? strdup(s) : NULL;

	if (s != NULL && c == NULL)
		diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
	return c;
}

/* Split the relay URL; refuse what herald does not take from it. */
static int smtp_parse_url(const char *url, char **scheme, char **host,
                          char **port, struct diag *d)
{
	CURLU *u = curl_url();
	CURLUcode uc;
	char *part = NULL;
	int rv = -1;

	*scheme = *host = *port = NULL;
	if (u == NULL) {
		diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
		return -1;
	}
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc != CURLUE_OK) {
		diag_add(d, NULL, 0, 0, "relay URL: %s", curl_url_strerror(uc));
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_OPTIONS, &part, 0) == CURLUE_OK) {
		/* not echoed: it may hold a password */
		diag_add(d, NULL, 0, 0,
		         "relay URL: has a user or password in it; give the "
		         "user in the relay settings and the password in a "
		         "file or the environment");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
		diag_add(d, NULL, 0, 0,
		         "relay URL: want scheme://host[:port], without a "
		         "query or fragment");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_PATH, &part, 0) == CURLUE_OK &&
	    strcmp(part, "/") != 0 && part[0] != '\0') {
		diag_add(d, NULL, 0, 0,
		         "relay URL: want scheme://host[:port] without a "
		         "path; the EHLO name is set in the relay settings");
		goto fail;
	}
	curl_free(part);
	part = NULL;
	if (curl_url_get(u, CURLUPART_SCHEME, scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) !=
	        CURLUE_OK) {
		diag_add(d, NULL, 0, 0, "relay URL: want scheme://host[:port]");
		goto fail;
	}
	rv = 0;
fail:
	curl_free(part);
	if (rv < 0) {
		curl_free(*scheme);
		curl_free(*host);
		curl_free(*port);
		*scheme = *host = *port = NULL;
	}
	curl_url_cleanup(u);
	return rv;
}

static struct transport *smtp_open(const struct transport_config *cfg,
                                   transport_done_fn done, void *arg,
                                   struct diag *d)
{
	struct smtp_transport *t = NULL;
	char *scheme = NULL, *host = NULL, *port = NULL, *helo = NULL;
	const char *tls_text;
	bool smtps, loopback;
	unsigned reply, dot;
	int n;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		diag_add(d, NULL, 0, 0, "smtp transport: libcurl init failed");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
		curl_global_cleanup();
		return NULL;
	}
	t->base.ops = &transport_smtp_multi_backend;
	t->done = done;
	t->arg = arg;
	t->trace = getenv("HERALD_SMTP_TRACE") != NULL;
	if (smtp_parse_url(cfg->url, &scheme, &host, &port, d) < 0)
		goto fail;
	t->smtps = smtps = strcmp(scheme, "smtps") == 0;
	if (!smtps && strcmp(scheme, "smtp") != 0) {
		diag_add(d, NULL, 0, 0,
		         "relay URL: scheme %s is not smtp or smtps", scheme);
		goto fail;
	}
	if ((cfg->user != NULL) != (cfg->password != NULL) ||
	    (cfg->user != NULL && cfg->user[0] == '\0')) {
		diag_add(d, NULL, 0, 0,
		         "relay: AUTH needs both a user and a password");
		goto fail;
	}
	t->auth = cfg->user != NULL;
	loopback = smtp_is_loopback(host);
	if (smtps) {
		t->use_ssl = CURLUSESSL_ALL;
		tls_text = "TLS";
	} else if (t->auth && !loopback) {
		t->use_ssl = CURLUSESSL_ALL;
		tls_text = "STARTTLS required (AUTH)";
	} else if (t->auth && !cfg->allow_plain) {
		/* Even on loopback a password goes in clear only when the
		 * operator said so: a relay that stopped offering STARTTLS
		 * must not get it by default. */
		t->use_ssl = CURLUSESSL_ALL;
		t->auth_needs_tls = true;
		tls_text = "STARTTLS required (AUTH; relay.allow_plain not set)";
	} else if (loopback || cfg->allow_plain) {
		t->use_ssl = CURLUSESSL_TRY;
		tls_text = loopback ? "STARTTLS if offered (loopback)"
		                    : "STARTTLS if offered (allow_plain)";
	} else {
		t->use_ssl = CURLUSESSL_ALL;
		tls_text = "STARTTLS required";
	}
	if (cfg->helo != NULL && (helo = smtp_helo_path(cfg->helo, d)) == NULL)
		goto fail;
	n = asprintf(&t->url, "%s://%s:%s/%s", scheme, host, port,
	             helo ? helo : "");
	if (n < 0) {
		t->url = NULL;
		goto oom;
	}
	n = asprintf(&t->describe, "%s://%s:%s %s%s%s", scheme, host, port,
	             tls_text, t->auth ? " user=" : "",
	             t->auth ? cfg->user : "");
	if (n < 0) {
		t->describe = NULL;
		goto oom;
	}
	t->user = smtp_strdup(cfg->user, d);
	t->password = smtp_strdup(cfg->password, d);
	t->ca_file = smtp_strdup(cfg->ca_file, d);
	if ((cfg->user && !t->user) || (cfg->password && !t->password) ||
	    (cfg->ca_file && !t->ca_file))
		goto fail;

	t->max_connections = cfg->max_connections
	                         ? cfg->max_connections
	                         : smtp_defaults.max_connections;
	t->max_per_connection = cfg->max_per_connection
	                            ? cfg->max_per_connection
	                            : smtp_defaults.max_per_connection;
	t->connect_timeout = cfg->connect_timeout
	                         ? cfg->connect_timeout
	                         : smtp_defaults.connect_timeout;
	reply = cfg->reply_timeout ? cfg->reply_timeout
	                           : smtp_defaults.reply_timeout;
	dot = cfg->dot_timeout ? cfg->dot_timeout : smtp_defaults.dot_timeout;
	/* curl has one reply timeout: the larger, so the dot's reply gets
	 * its time (see the file comment), and a second more: this file's
	 * own timeouts must come first. At the same moment curl's could win
	 * the race, end the transfer itself and wait for QUIT's reply
	 * (a hang ended a second late in reliability/faults, where the reply
	 * and dot timeouts are equal). */
	t->response_timeout = (reply > dot ? reply : dot) + 1;
	t->reply_ms = (long)reply * 1000;
	t->connect_ms = t->connect_timeout * 1000;
	t->dot_ms = (long)dot * 1000;

	t->slots = calloc(t->max_connections, sizeof(*t->slots));
	/* open connections: at most max_connections, plus the ones curl is
	 * closing */
	t->conns_cap = 2 * (size_t)t->max_connections + 8;
	t->conns = calloc(t->conns_cap, sizeof(*t->conns));
	t->multi = curl_multi_init();
	if (t->slots == NULL || t->conns == NULL || t->multi == NULL)
		goto oom;
	if (curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	                      (long)t->max_connections) != CURLM_OK ||
	    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS,
	                      (long)t->max_connections) != CURLM_OK) {
		diag_add(d, NULL, 0, 0, "smtp transport: multi options");
		goto fail;
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	free(helo);
	return &t->base;
oom:
	diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
fail:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	free(helo);
	smtp_close(&t->base);
	return NULL;
}

const struct transport_backend transport_smtp_multi_backend = {
    .name = "smtp",
    .open = smtp_open,
    .submit = smtp_submit,
    .in_flight = smtp_in_flight,
    .room = smtp_room,
    .step = smtp_step,
    .close = smtp_close,
    .describe = smtp_describe,
};
