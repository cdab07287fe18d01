/*
 * mailbox_imap — reads bounces from an IMAP folder (see mailbox.h), with
 * libetpan's low-level IMAP client (mailimap).
 *
 *   imaps://user@host:port/Folder   TLS from the first byte (port 993)
 *   imap://user@host:port/Folder    STARTTLS, required (port 143); only
 *                                   a literal loopback address with
 *                                   allow_plain may go without TLS, and
 *                                   only when the server offers none
 *
 * libetpan does not check the server's certificate. After the handshake
 * (implicit TLS or STARTTLS), and before LOGIN, imap_verify() checks the
 * chain the server sent against the configured CA file (or the system's
 * trust store) and the host name (or IP address) with GnuTLS: a server
 * that cannot prove who it is never sees the password, nor any other
 * byte: on any failure before the checks pass the socket is cut before
 * libetpan's cleanup could say goodbye (imap_drop). SNI is sent for a
 * host name, never for a literal address (RFC 6066).
 *
 * A pass: SELECT the folder, list the messages above the last UID handled
 * (UID FETCH last+1:* (UID RFC822.SIZE FLAGS); "n:*" always matches the
 * highest message, so UIDs <= last are dropped here), then for each, oldest
 * first, fetch BODY.PEEK[] (nothing is marked \Seen by reading) unless
 * RFC822.SIZE is above the limit, hand it to the callback, and when the
 * callback has handled it: move it to move_to (MOVE, else UID COPY +
 * \Deleted + UID EXPUNGE with UIDPLUS, else COPY + \Deleted + EXPUNGE),
 * or flag it \Seen (and \Deleted + expunged only with delete: true);
 * then record the new last UID in the store. The place is kept per
 * mailbox URL with the folder's UIDVALIDITY; when UIDVALIDITY changes,
 * the folder is read from the start again (in the keep-and-flag mode,
 * messages already \Seen are then taken as handled).
 *
 * Exactly once. The callback records events in the store, each in its own
 * transaction, and the last UID is saved after the message was moved or
 * flagged; a crash or a lost connection between the two would read the
 * message again on the next pass. So every message carries a key that
 * names it on every pass, "URL;UIDVALIDITY=v/;UID=u" (RFC 5092), and the
 * store records an event with that key (and the event's number within the
 * message) at most once, in the same transaction that acts on it
 * (store.h event_record). Read again, the message changes nothing, is
 * moved or flagged, and the place moves on: nothing is lost (the place
 * only moves past handled messages) and nothing is acted on twice. Keys
 * rather than Message-IDs: a bounce may legitimately arrive twice.
 *
 * The connection stays open between passes (heraldd); any failure drops
 * it and the next pass starts a new one. With IDLE, the daemon polls the
 * socket between passes (imap_idle) and the next fetch ends the IDLE.
 *
 * Errors name the server and the step ("mailbox imaps://u@h:993/INBOX:
 * LOGIN refused: ..."); the password is never in one, nor in the trace
 * (HERALD_IMAP_TRACE, through opts->trace), where LOGIN is redacted.
 *
 * Library code: 0 / -1 with the reason in a struct diag.
 */
#include "herald/mailbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/libetpan.h>

#include "herald/store.h"

/* Tunables, each with why. */
static const struct {
	unsigned timeout;   /* seconds for one network step (connect, a
	                     * reply): a server that is up answers in far
	                     * less; heraldd must not hang on one that is
	                     * not */
	unsigned max_chain; /* certificates a server may send: real chains
	                     * are 2-4 long */
	uint16_t port_imaps, port_imap; /* RFC 8314, RFC 3501 */
} imap_defaults = {MAILBOX_DEFAULT_TIMEOUT, 16, 993, 143};

struct imap_box {
	struct mailbox base;
	char *url; /* as configured: names the place in the store */
	char *user, *host, *folder, *port_s;
	bool imaps, host_is_ip, loopback;
	char *password, *ca_file, *move_to;
	bool delete_handled, allow_plain, idle_ok;
	unsigned timeout;
	struct store *st;
	void (*trace)(void *arg, const char *line);
	void *trace_arg;
	/* the connection (NULL: none) and what it knows */
	mailimap *imap;
	bool idling, in_login, target_ready;
	bool trusted; /* the server passed every check: it may hear from us */
	bool cap_move, cap_uidplus, cap_idle;
	uint32_t listed; /* the highest UID the last pass listed */
};

/* ---- the URL ----------------------------------------------------------- */

/* Decode %XX in place; -1 for a bad escape or a control character. */
static int imap_unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		unsigned v;
		if (*s == '%') {
			if (sscanf(s + 1, "%2x", &v) != 1 || s[1] == '\0' ||
			    s[2] == '\0')
				return -1;
			s += 2;
		} else {
			v = (unsigned char)*s;
		}
		if (v < 0x20 || v == 0x7f)
			return -1;
		*out++ = (char)v;
	}
	*out = '\0';
	return 0;
}

static bool imap_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* scheme://user@host[:port][/folder] into mb. */
static int imap_parse_url(struct imap_box *mb, const char *url, struct diag *d)
{
	const char *p = strstr(url, "://") + 3;
	const char *slash = strchr(p, '/');
	size_t alen = slash ? (size_t)(slash - p) : strlen(p);
	char *auth = strndup(p, alen), *at, *hp, *colon;
	struct in6_addr a6;
	struct in_addr a4;
	unsigned long port;
	char *end;
	int rc = -1;

	if (auth == NULL)
		goto oom;
	mb->imaps = strncmp(url, "imaps://", 8) == 0;
	at = strrchr(auth, '@');
	if (at == NULL || at == auth) {
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: give the user to log in as "
		         "(imaps://user@host/Folder)",
		         url);
		goto done;
	}
	*at = '\0';
	if (strchr(auth, ':') != NULL) {
		diag_add(d, NULL, 0, 0,
		         "mailbox URL: a password does not belong in the URL; "
		         "give it in bounces.imap.password_file or "
		         "password_env");
		goto done;
	}
	if ((mb->user = strdup(auth)) == NULL)
		goto oom;
	hp = at + 1;
	if (*hp == '[') {
		char *rb = strchr(hp, ']');
		if (rb == NULL)
			goto bad;
		mb->host = strndup(hp + 1, (size_t)(rb - hp - 1));
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] != '\0' && colon == NULL)
			goto bad;
	} else {
		colon = strchr(hp, ':');
		mb->host =
		    colon ? strndup(hp, (size_t)(colon - hp)) : strdup(hp);
	}
	if (mb->host == NULL)
		goto oom;
	if (mb->host[0] == '\0' || strpbrk(mb->host, " \t\r\n/?#%") != NULL)
		goto bad;
	port = mb->imaps ? imap_defaults.port_imaps : imap_defaults.port_imap;
	if (colon != NULL) {
		port = strtoul(colon + 1, &end, 10);
		if (end == colon + 1 || *end != '\0' || port == 0 ||
		    port > 65535)
			goto bad;
	}
	if (asprintf(&mb->port_s, "%lu", port) < 0) {
		mb->port_s = NULL;
		goto oom;
	}
	mb->host_is_ip = inet_pton(AF_INET, mb->host, &a4) == 1 ||
	                 inet_pton(AF_INET6, mb->host, &a6) == 1;
	mb->loopback = imap_is_loopback(mb->host);
	mb->folder =
	    strdup(slash != NULL && slash[1] != '\0' ? slash + 1 : "INBOX");
	if (mb->folder == NULL)
		goto oom;
	if (imap_unescape(mb->user) < 0 || imap_unescape(mb->folder) < 0 ||
	    mb->user[0] == '\0')
		goto bad;
	rc = 0;
	goto done;
bad:
	diag_add(d, NULL, 0, 0,
	         "mailbox %s is not an IMAP URL herald understands: want "
	         "imaps://user@host:port/Folder (or imap:// for STARTTLS; "
	         "%%40 for an @ in the user)",
	         url);
	goto done;
oom:
	diag_add(d, NULL, 0, 0, "mailbox %s: out of memory", url);
done:
	free(auth);
	return rc;
}

/* ---- diagnostics -------------------------------------------------------- */

static void imap_trace_fn(mailimap *s, int type, const char *str, size_t size,
                          void *arg)
{
	struct imap_box *mb = arg;
	const char *dir;
	char *line = NULL;
	int n;

	(void)s;
	switch (type) {
	case MAILSTREAM_LOG_TYPE_DATA_RECEIVED:
		dir = "S:";
		break;
	case MAILSTREAM_LOG_TYPE_DATA_SENT:
	case MAILSTREAM_LOG_TYPE_DATA_SENT_PRIVATE:
		dir = "C:";
		/* the password: whatever is sent while LOGIN goes out */
		if (mb->in_login ||
		    type == MAILSTREAM_LOG_TYPE_DATA_SENT_PRIVATE) {
			str = "(LOGIN redacted)";
			size = strlen(str);
		}
		break;
	default:
		return;
	}
	while (size > 0 && (str[size - 1] == '\n' || str[size - 1] == '\r'))
		size--;
	if (size > 400)
		size = 400; /* a trace of a message body is no use */
	n = asprintf(&line, "imap %s %s %.*s", mb->host, dir, (int)size, str);
	if (n < 0)
		return;
	for (char *c = line; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	mb->trace(mb->trace_arg, line);
	free(line);
}

/* The server's words for the last refusal, if any. */
static const char *imap_said(const struct imap_box *mb)
{
	if (mb->imap != NULL && mb->imap->imap_response != NULL &&
	    mb->imap->imap_response[0] != '\0')
		return mb->imap->imap_response;
	return NULL;
}

static void imap_drop(struct imap_box *mb)
{
	/* libetpan's cleanup says goodbye (LOGOUT, then TLS close_notify).
	 * A server that failed its checks gets not one byte more: cut the
	 * socket first, so that every write of the cleanup fails. */
	if (mb->imap != NULL && !mb->trusted && mb->imap->imap_stream != NULL) {
		mailstream_low *low = mailstream_get_low(mb->imap->imap_stream);
		int fd = low != NULL ? mailstream_low_get_fd(low) : -1;
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
	}
	if (mb->imap != NULL)
		mailimap_free(mb->imap); /* closes the stream */
	mb->imap = NULL;
	mb->trusted = false;
	mb->idling = false;
	mb->target_ready = false;
}

/* Report that step failed with libetpan's r, and drop the connection. */
static int imap_fail(struct imap_box *mb, const char *step, int r,
                     struct diag *d)
{
	const char *said = imap_said(mb);

	switch (r) {
	case MAILIMAP_ERROR_STREAM:
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: %s: the connection to %s:%s was lost or "
		         "timed out (%u s); will try again",
		         mb->url, step, mb->host, mb->port_s, mb->timeout);
		break;
	case MAILIMAP_ERROR_PARSE:
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: %s: the server's reply could not be read",
		         mb->url, step);
		break;
	case MAILIMAP_ERROR_MEMORY:
		diag_add(d, NULL, 0, 0, "mailbox %s: %s: out of memory",
		         mb->url, step);
		break;
	default:
		diag_add(d, NULL, 0, 0, "mailbox %s: %s refused%s%s", mb->url,
		         step, said ? ": " : "", said ? said : "");
		break;
	}
	imap_drop(mb);
	return -1;
}

/* ---- connecting ---------------------------------------------------------- */

/* A TCP connection within the timeout, in blocking mode (as libetpan's
 * streams want it). */
static int imap_tcp(struct imap_box *mb, struct diag *d)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL, *ai;
	int fd = -1, err = 0, rc;

	if (mb->host_is_ip)
		hints.ai_flags |= AI_NUMERICHOST;
	rc = getaddrinfo(mb->host, mb->port_s, &hints, &res);
	if (rc != 0) {
		diag_add(d, NULL, 0, 0, "mailbox %s: cannot find %s: %s",
		         mb->url, mb->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t len = sizeof(err);

		fd = socket(ai->ai_family,
		            ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			if (errno != EINPROGRESS) {
				err = errno;
				goto next;
			}
			pfd.fd = fd;
			pfd.events = POLLOUT;
			rc = poll(&pfd, 1, (int)mb->timeout * 1000);
			if (rc == 0) {
				err = ETIMEDOUT;
				goto next;
			}
			if (rc < 0 ||
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) <
			        0 ||
			    err != 0) {
				if (err == 0)
					err = errno;
				goto next;
			}
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
			err = errno;
			goto next;
		}
		freeaddrinfo(res);
		return fd;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	diag_add(d, NULL, 0, 0, "mailbox %s: cannot connect to %s port %s: %s",
	         mb->url, mb->host, mb->port_s, strerror(err ? err : EIO));
	return -1;
}

/* libetpan calls this before the handshake: SNI for a host name. */
static void imap_tls_setup(struct mailstream_ssl_context *ctx, void *arg)
{
	struct imap_box *mb = arg;

	if (!mb->host_is_ip)
		mailstream_ssl_set_server_name(ctx, mb->host);
}

/* Is the server who the URL names? The chain it sent, against the CA
 * file (or the system's trust store), for TLS server use, and the host
 * name or address in its certificate. */
static int imap_verify(struct imap_box *mb, struct diag *d)
{
	carray *chain = mailstream_get_certificate_chain(mb->imap->imap_stream);
	gnutls_x509_crt_t crts[16];
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_typed_vdata_st vd = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
	                            .data = (void *)GNUTLS_KP_TLS_WWW_SERVER};
	unsigned n = 0, status = 0;
	int rc = -1, r;

	if (chain == NULL || carray_count(chain) == 0) {
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: the server sent no certificate", mb->url);
		goto done;
	}
	for (unsigned i = 0;
	     i < carray_count(chain) && n < imap_defaults.max_chain &&
	     n < sizeof(crts) / sizeof(crts[0]);
	     i++) {
		MMAPString *der = carray_get(chain, i);
		gnutls_datum_t dt = {(unsigned char *)der->str,
		                     (unsigned)der->len};
		if (gnutls_x509_crt_init(&crts[n]) < 0)
			goto done;
		if (gnutls_x509_crt_import(crts[n], &dt, GNUTLS_X509_FMT_DER) <
		    0) {
			gnutls_x509_crt_deinit(crts[n]);
			diag_add(d, NULL, 0, 0,
			         "mailbox %s: the server's certificate could "
			         "not be read",
			         mb->url);
			goto done;
		}
		n++;
	}
	if (gnutls_x509_trust_list_init(&tl, 0) < 0)
		goto done;
	if (mb->ca_file != NULL) {
		r = gnutls_x509_trust_list_add_trust_file(
		    tl, mb->ca_file, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
		if (r <= 0) {
			diag_add(d, NULL, 0, 0,
			         "mailbox %s: no CA certificate could be read "
			         "from ca_file %s",
			         mb->url, mb->ca_file);
			goto done;
		}
	} else if (gnutls_x509_trust_list_add_system_trust(tl, 0, 0) <= 0) {
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: the system's CA certificates could not "
		         "be read; give bounces.imap.ca_file",
		         mb->url);
		goto done;
	}
	r = gnutls_x509_trust_list_verify_crt2(tl, crts, n, &vd, 1, 0, &status,
	                                       NULL);
	if (r < 0 || status != 0) {
		gnutls_datum_t out = {NULL, 0};
		if (r < 0 || gnutls_certificate_verification_status_print(
		                 status, GNUTLS_CRT_X509, &out, 0) < 0)
			out.data = NULL;
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: the server's certificate is not trusted "
		         "(%s); nothing was sent, not even the user name. Give "
		         "bounces.imap.ca_file the CA that issued it",
		         mb->url,
		         out.data ? (const char *)out.data
		                  : gnutls_strerror(r));
		gnutls_free(out.data);
		goto done;
	}
	if (!gnutls_x509_crt_check_hostname2(crts[0], mb->host, 0)) {
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: the server's certificate is not for %s; "
		         "nothing was sent, not even the user name",
		         mb->url, mb->host);
		goto done;
	}
	rc = 0;
done:
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 1);
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	if (chain != NULL)
		mailstream_certificate_chain_free(chain);
	return rc;
}

static int imap_capabilities(struct imap_box *mb, struct diag *d)
{
	struct mailimap_capability_data *cap = NULL;
	int r = mailimap_capability(mb->imap, &cap);

	if (r != MAILIMAP_NO_ERROR)
		return imap_fail(mb, "CAPABILITY", r, d);
	mailimap_capability_data_free(cap);
	mb->cap_move = mailimap_has_extension(mb->imap, "MOVE");
	mb->cap_uidplus = mailimap_has_extension(mb->imap, "UIDPLUS");
	mb->cap_idle = mailimap_has_idle(mb->imap);
	return 0;
}

/* Connect, TLS, check the certificate, LOGIN. */
static int imap_connect(struct imap_box *mb, struct diag *d)
{
	mailstream *stream;
	int fd, r;

	mb->trusted = false;
	if ((fd = imap_tcp(mb, d)) < 0)
		return -1;
	if ((mb->imap = mailimap_new(0, NULL)) == NULL) {
		close(fd);
		diag_add(d, NULL, 0, 0, "mailbox %s: out of memory", mb->url);
		return -1;
	}
	mailimap_set_timeout(mb->imap, mb->timeout);
	if (mb->trace != NULL)
		mailimap_set_logger(mb->imap, imap_trace_fn, mb);
	if (mb->imaps)
		stream = mailstream_ssl_open_with_callback_timeout(
		    fd, mb->timeout, imap_tls_setup, mb);
	else
		stream = mailstream_socket_open_timeout(fd, mb->timeout);
	if (stream == NULL) {
		close(fd);
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: %s with %s:%s failed (is it an %s port?)",
		         mb->url,
		         mb->imaps ? "the TLS handshake" : "connecting",
		         mb->host, mb->port_s, mb->imaps ? "imaps" : "imap");
		imap_drop(mb);
		return -1;
	}
	r = mailimap_connect(mb->imap, stream);
	if (r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED &&
	    r != MAILIMAP_NO_ERROR_AUTHENTICATED)
		return imap_fail(mb, "the greeting", r, d);
	if (mb->imaps && imap_verify(mb, d) < 0) {
		imap_drop(mb);
		return -1;
	}
	if (imap_capabilities(mb, d) < 0)
		return -1;
	if (!mb->imaps) {
		if (mailimap_has_extension(mb->imap, "STARTTLS")) {
			r = mailimap_socket_starttls_with_callback(
			    mb->imap, imap_tls_setup, mb);
			if (r != MAILIMAP_NO_ERROR)
				return imap_fail(mb, "STARTTLS", r, d);
			mailstream_low_set_timeout(
			    mailstream_get_low(mb->imap->imap_stream),
			    mb->timeout);
			if (imap_verify(mb, d) < 0) {
				imap_drop(mb);
				return -1;
			}
			/* what was said before TLS counts for nothing */
			if (imap_capabilities(mb, d) < 0)
				return -1;
		} else if (!(mb->loopback && mb->allow_plain)) {
			diag_add(d, NULL, 0, 0,
			         "mailbox %s: the server offers no STARTTLS, "
			         "and herald never sends a password in clear "
			         "text (allow_plain is for a loopback address "
			         "only); use imaps://",
			         mb->url);
			imap_drop(mb);
			return -1;
		}
	}
	/* TLS is up and checked (or plain text is allowed here): from now on
	 * the server is the one configured, and hears a goodbye. */
	mb->trusted = true;
	if (r != MAILIMAP_NO_ERROR_AUTHENTICATED) {
		mb->in_login = true;
		r = mailimap_login(mb->imap, mb->user, mb->password);
		mb->in_login = false;
		if (r != MAILIMAP_NO_ERROR) {
			char *step = NULL;
			int rc;
			if (asprintf(&step, "LOGIN as %s", mb->user) < 0)
				step = NULL;
			rc = imap_fail(mb, step ? step : "LOGIN", r, d);
			free(step);
			return rc;
		}
		/* the server may say more once it knows who we are */
		if (imap_capabilities(mb, d) < 0)
			return -1;
	}
	return 0;
}

/* ---- one pass ----------------------------------------------------------- */

struct imap_item {
	uint32_t uid, size;
	bool seen;
};

static int imap_item_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct imap_item *)a)->uid;
	uint32_t y = ((const struct imap_item *)b)->uid;

	return x < y ? -1 : x > y;
}

/* UID, RFC822.SIZE and \Seen of every message above last. */
static int imap_list(struct imap_box *mb, uint32_t last, struct imap_item **out,
                     size_t *n, struct diag *d)
{
	struct mailimap_set *set = mailimap_set_new_interval(last + 1, 0);
	struct mailimap_fetch_type *ft =
	    mailimap_fetch_type_new_fetch_att_list_empty();
	clist *res = NULL;
	struct imap_item *v = NULL;
	size_t cap = 0;
	int r;

	*out = NULL;
	*n = 0;
	if (set == NULL || ft == NULL ||
	    mailimap_fetch_type_new_fetch_att_list_add(
	        ft, mailimap_fetch_att_new_uid()) != MAILIMAP_NO_ERROR ||
	    mailimap_fetch_type_new_fetch_att_list_add(
	        ft, mailimap_fetch_att_new_rfc822_size()) !=
	        MAILIMAP_NO_ERROR ||
	    mailimap_fetch_type_new_fetch_att_list_add(
	        ft, mailimap_fetch_att_new_flags()) != MAILIMAP_NO_ERROR) {
		r = MAILIMAP_ERROR_MEMORY;
		goto done;
	}
	r = mailimap_uid_fetch(mb->imap, set, ft, &res);
	if (r != MAILIMAP_NO_ERROR)
		goto done;
	for (clistiter *c = clist_begin(res); c != NULL; c = clist_next(c)) {
		struct mailimap_msg_att *ma = clist_content(c);
		struct imap_item it = {0};
		for (clistiter *a = clist_begin(ma->att_list); a != NULL;
		     a = clist_next(a)) {
			struct mailimap_msg_att_item *x = clist_content(a);
			if (x->att_type == MAILIMAP_MSG_ATT_ITEM_STATIC) {
				struct mailimap_msg_att_static *s =
				    x->att_data.att_static;
				if (s->att_type == MAILIMAP_MSG_ATT_UID)
					it.uid = s->att_data.att_uid;
				else if (s->att_type ==
				         MAILIMAP_MSG_ATT_RFC822_SIZE)
					it.size = s->att_data.att_rfc822_size;
			} else if (x->att_type ==
			               MAILIMAP_MSG_ATT_ITEM_DYNAMIC &&
			           x->att_data.att_dyn->att_list != NULL) {
				clist *fl = x->att_data.att_dyn->att_list;
				for (clistiter *f = clist_begin(fl); f != NULL;
				     f = clist_next(f)) {
					struct mailimap_flag_fetch *ff =
					    clist_content(f);
					if (ff->fl_type ==
					        MAILIMAP_FLAG_FETCH_OTHER &&
					    ff->fl_flag->fl_type ==
					        MAILIMAP_FLAG_SEEN)
						it.seen = true;
				}
			}
		}
		/* "last+1:*" matches the highest message even when its
		 * UID is lower (RFC 3501 6.4.8): not new */
		if (it.uid <= last)
			continue;
		if (*n == cap) {
			struct imap_item *nv =
			    realloc(v, (cap ? cap * 2 : 16) * sizeof(*v));
			if (nv == NULL) {
				r = MAILIMAP_ERROR_MEMORY;
				goto done;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		v[(*n)++] = it;
	}
	if (*n > 1)
		qsort(v, *n, sizeof(*v), imap_item_cmp);
	*out = v;
	v = NULL;
done:
	free(v);
	if (res != NULL)
		mailimap_fetch_list_free(res);
	if (ft != NULL)
		mailimap_fetch_type_free(ft);
	if (set != NULL)
		mailimap_set_free(set);
	if (r != MAILIMAP_NO_ERROR) {
		*n = 0;
		return imap_fail(mb, "listing new messages (UID FETCH)", r, d);
	}
	return 0;
}

/* BODY.PEEK[] of uid into *res; *data NULL when the message is gone. */
static int imap_body(struct imap_box *mb, uint32_t uid, clist **res,
                     const char **data, size_t *len, struct diag *d)
{
	struct mailimap_set *set = mailimap_set_new_single(uid);
	struct mailimap_fetch_type *ft =
	    mailimap_fetch_type_new_fetch_att_list_empty();
	struct mailimap_section *sec = mailimap_section_new(NULL);
	struct mailimap_fetch_att *fa =
	    sec ? mailimap_fetch_att_new_body_peek_section(sec) : NULL;
	int r;

	*res = NULL;
	*data = NULL;
	*len = 0;
	if (fa == NULL && sec != NULL)
		mailimap_section_free(sec);
	if (set == NULL || ft == NULL || fa == NULL ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft, fa) !=
	        MAILIMAP_NO_ERROR) {
		if (fa != NULL)
			mailimap_fetch_att_free(fa);
		r = MAILIMAP_ERROR_MEMORY;
		goto done;
	}
	r = mailimap_uid_fetch(mb->imap, set, ft, res);
	if (r != MAILIMAP_NO_ERROR)
		goto done;
	for (clistiter *c = clist_begin(*res); c != NULL; c = clist_next(c)) {
		struct mailimap_msg_att *ma = clist_content(c);
		uint32_t got = 0;
		const char *body = NULL;
		size_t blen = 0;
		for (clistiter *a = clist_begin(ma->att_list); a != NULL;
		     a = clist_next(a)) {
			struct mailimap_msg_att_item *x = clist_content(a);
			struct mailimap_msg_att_static *s;
			if (x->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
				continue;
			s = x->att_data.att_static;
			if (s->att_type == MAILIMAP_MSG_ATT_UID)
				got = s->att_data.att_uid;
			else if (s->att_type == MAILIMAP_MSG_ATT_BODY_SECTION &&
			         s->att_data.att_body_section != NULL) {
				body =
				    s->att_data.att_body_section->sec_body_part;
				blen = s->att_data.att_body_section->sec_length;
			}
		}
		if (got == uid && body != NULL) {
			*data = body;
			*len = blen;
		}
	}
done:
	if (ft != NULL)
		mailimap_fetch_type_free(ft);
	if (set != NULL)
		mailimap_set_free(set);
	if (r != MAILIMAP_NO_ERROR) {
		char step[64];
		snprintf(step, sizeof(step), "fetching UID %u", uid);
		if (*res != NULL)
			mailimap_fetch_list_free(*res);
		*res = NULL;
		return imap_fail(mb, step, r, d);
	}
	return 0;
}

/* STORE +FLAGS.SILENT (\Seen [\Deleted]) on uid. */
static int imap_flag(struct imap_box *mb, struct mailimap_set *set,
                     bool deleted)
{
	struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
	struct mailimap_store_att_flags *sa;
	int r;

	if (fl == NULL)
		return MAILIMAP_ERROR_MEMORY;
	if (mailimap_flag_list_add(fl, mailimap_flag_new_seen()) != 0 ||
	    (deleted &&
	     mailimap_flag_list_add(fl, mailimap_flag_new_deleted()) != 0)) {
		mailimap_flag_list_free(fl);
		return MAILIMAP_ERROR_MEMORY;
	}
	if ((sa = mailimap_store_att_flags_new_add_flags_silent(fl)) == NULL) {
		mailimap_flag_list_free(fl);
		return MAILIMAP_ERROR_MEMORY;
	}
	r = mailimap_uid_store(mb->imap, set, sa);
	mailimap_store_att_flags_free(sa);
	return r;
}

/* The folder for handled mail exists (created once per connection). */
static int imap_target(struct imap_box *mb, struct diag *d)
{
	clist *list = NULL;
	int r;

	if (mb->target_ready)
		return 0;
	r = mailimap_list(mb->imap, "", mb->move_to, &list);
	if (r != MAILIMAP_NO_ERROR)
		return imap_fail(mb, "LIST of move_to", r, d);
	if (list == NULL || clist_count(list) == 0) {
		r = mailimap_create(mb->imap, mb->move_to);
		if (r != MAILIMAP_NO_ERROR) {
			char *step = NULL;
			if (asprintf(&step, "CREATE %s (move_to)",
			             mb->move_to) < 0)
				step = NULL;
			if (list != NULL)
				mailimap_list_result_free(list);
			imap_fail(mb, step ? step : "CREATE", r, d);
			free(step);
			return -1;
		}
	}
	if (list != NULL)
		mailimap_list_result_free(list);
	mb->target_ready = true;
	return 0;
}

/* A handled message: moved, or flagged (and maybe expunged). */
static int imap_dispose(struct imap_box *mb, uint32_t uid, struct diag *d)
{
	struct mailimap_set *set = mailimap_set_new_single(uid);
	bool expunge = mb->move_to != NULL || mb->delete_handled;
	const char *step = "STORE \\Seen";
	int r = MAILIMAP_NO_ERROR;

	if (set == NULL) {
		diag_add(d, NULL, 0, 0, "mailbox %s: out of memory", mb->url);
		return -1;
	}
	if (mb->move_to != NULL) {
		if (imap_target(mb, d) < 0) {
			mailimap_set_free(set);
			return -1;
		}
		if (mb->cap_move) {
			step = "UID MOVE";
			r = mailimap_uid_move(mb->imap, set, mb->move_to);
			expunge = false;
		} else {
			step = "UID COPY";
			r = mailimap_uid_copy(mb->imap, set, mb->move_to);
		}
	}
	if (r == MAILIMAP_NO_ERROR && (mb->move_to == NULL || expunge)) {
		r = imap_flag(mb, set, expunge);
		step = expunge ? "STORE \\Deleted" : "STORE \\Seen";
	}
	if (r == MAILIMAP_NO_ERROR && expunge) {
		/* UID EXPUNGE touches only this message; plain EXPUNGE
		 * would also take what others marked \Deleted */
		step = mb->cap_uidplus ? "UID EXPUNGE" : "EXPUNGE";
		r = mb->cap_uidplus ? mailimap_uid_expunge(mb->imap, set)
		                    : mailimap_expunge(mb->imap);
	}
	mailimap_set_free(set);
	if (r != MAILIMAP_NO_ERROR) {
		char what[96];
		snprintf(what, sizeof(what), "%s of handled UID %u", step, uid);
		return imap_fail(mb, what, r, d);
	}
	return 0;
}

/* Connected, not idling, the folder selected; its UIDVALIDITY. */
static int imap_ready(struct imap_box *mb, uint32_t *uidvalidity,
                      uint32_t *exists, struct diag *d)
{
	int r;

	if (mb->imap != NULL && mb->idling) {
		mb->idling = false;
		if (mailimap_idle_done(mb->imap) != MAILIMAP_NO_ERROR)
			imap_drop(mb); /* the server ended it: start again */
	}
	if (mb->imap == NULL && imap_connect(mb, d) < 0)
		return -1;
	r = mailimap_select(mb->imap, mb->folder);
	if (r != MAILIMAP_NO_ERROR) {
		char *step = NULL;
		if (asprintf(&step, "SELECT %s", mb->folder) < 0)
			step = NULL;
		imap_fail(mb, step ? step : "SELECT", r, d);
		free(step);
		return -1;
	}
	if (mb->imap->imap_selection_info == NULL) {
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: the server gave no UIDVALIDITY", mb->url);
		imap_drop(mb);
		return -1;
	}
	*uidvalidity = mb->imap->imap_selection_info->sel_uidvalidity;
	*exists = mb->imap->imap_selection_info->sel_exists;
	return 0;
}

static int imap_fetch(struct mailbox *base, size_t max_bytes, mailbox_fn fn,
                      void *arg, struct diag *d)
{
	struct imap_box *mb = (struct imap_box *)base;
	struct imap_item *items = NULL;
	uint32_t uv = 0, exists = 0, saved_uv = 0, last = 0;
	size_t n = 0;
	bool rescan, stuck = false;
	int handled = 0;

	if (store_imap_place_get(mb->st, mb->url, &saved_uv, &last, d) < 0)
		return -1;
	if (imap_ready(mb, &uv, &exists, d) < 0)
		return -1;
	rescan = saved_uv != uv;
	if (rescan)
		last = 0; /* a new folder, or UIDs renumbered */
	if (exists > 0 && last < UINT32_MAX &&
	    imap_list(mb, last, &items, &n, d) < 0)
		return -1;
	mb->listed = n > 0 ? items[n - 1].uid : last;
	for (size_t i = 0; i < n; i++) {
		struct mailbox_msg m = {0};
		clist *res = NULL;
		char *key = NULL;
		enum mailbox_verdict v;

		if (rescan && mb->move_to == NULL && items[i].seen) {
			/* flagged by an earlier herald (or read by someone):
			 * without our place, taken as handled */
			if (!stuck && store_imap_place_set(mb->st, mb->url, uv,
			                                   items[i].uid, d) < 0)
				goto fail;
			continue;
		}
		if (asprintf(&key, "%s;UIDVALIDITY=%u/;UID=%u", mb->url, uv,
		             items[i].uid) < 0) {
			diag_add(d, NULL, 0, 0, "mailbox %s: out of memory",
			         mb->url);
			goto fail;
		}
		m.id = m.key = key;
		if (items[i].size > max_bytes) {
			m.len = items[i].size; /* refused by size, unread */
		} else {
			if (imap_body(mb, items[i].uid, &res, &m.data, &m.len,
			              d) < 0) {
				free(key);
				goto fail;
			}
			if (m.data == NULL) { /* expunged meanwhile */
				mailimap_fetch_list_free(res);
				free(key);
				continue;
			}
		}
		v = fn(arg, &m);
		if (res != NULL)
			mailimap_fetch_list_free(res);
		free(key);
		if (v == MAILBOX_STOP)
			break;
		if (v == MAILBOX_KEEP) {
			/* read again next pass: the place stays before it */
			stuck = true;
			continue;
		}
		if (imap_dispose(mb, items[i].uid, d) < 0)
			goto fail;
		handled++;
		if (!stuck && store_imap_place_set(mb->st, mb->url, uv,
		                                   items[i].uid, d) < 0)
			goto fail;
	}
	if (rescan && n == 0 && !stuck &&
	    store_imap_place_set(mb->st, mb->url, uv, 0, d) < 0)
		goto fail;
	free(items);
	return handled;
fail:
	free(items);
	return -1;
}

static int imap_idle(struct mailbox *base, int *fd, struct diag *d)
{
	struct imap_box *mb = (struct imap_box *)base;
	int r;

	*fd = -1;
	if (!mb->idle_ok || mb->imap == NULL || !mb->cap_idle)
		return 0;
	if (mb->idling) {
		*fd = mailimap_idle_get_fd(mb->imap);
		return 0;
	}
	/* mail that came during the pass was announced then (EXISTS in the
	 * replies to our commands), not again in IDLE: look first */
	if (mb->imap->imap_selection_info != NULL &&
	    mb->imap->imap_selection_info->sel_exists > 0 &&
	    mb->listed < UINT32_MAX) {
		struct imap_item *items = NULL;
		size_t n = 0;
		if (imap_list(mb, mb->listed, &items, &n, d) < 0)
			return -1;
		free(items);
		if (n > 0)
			return 1;
	}
	r = mailimap_idle(mb->imap);
	if (r != MAILIMAP_NO_ERROR)
		return imap_fail(mb, "IDLE", r, d);
	mb->idling = true;
	/* what came with the server's "+ idling" is already read: the
	 * socket will not say so */
	if (mb->imap->imap_stream->read_buffer_len > 0)
		return 1;
	*fd = mailimap_idle_get_fd(mb->imap);
	return 0;
}

static void imap_close(struct mailbox *base)
{
	struct imap_box *mb = (struct imap_box *)base;

	if (mb == NULL)
		return;
	if (mb->imap != NULL) {
		if (mb->idling)
			mailimap_idle_done(mb->imap);
		mailimap_logout(mb->imap); /* courtesy: the result is moot */
	}
	imap_drop(mb);
	if (mb->password != NULL) {
		explicit_bzero(mb->password, strlen(mb->password));
		free(mb->password);
	}
	free(mb->url);
	free(mb->user);
	free(mb->host);
	free(mb->port_s);
	free(mb->folder);
	free(mb->ca_file);
	free(mb->move_to);
	free(mb);
}

static struct mailbox *imap_open(const char *url, const struct mailbox_opts *o,
                                 struct diag *d)
{
	struct imap_box *mb = calloc(1, sizeof(*mb));

	if (mb == NULL) {
		diag_add(d, NULL, 0, 0, "mailbox %s: out of memory", url);
		return NULL;
	}
	mb->base.ops = &mailbox_imap_backend;
	if ((mb->url = strdup(url)) == NULL) {
		diag_add(d, NULL, 0, 0, "mailbox %s: out of memory", url);
		goto fail;
	}
	if (imap_parse_url(mb, url, d) < 0)
		goto fail;
	if (o == NULL || o->st == NULL || o->password == NULL) {
		diag_add(d, NULL, 0, 0,
		         "mailbox %s: give the password in "
		         "bounces.imap.password_file or password_env",
		         url);
		goto fail;
	}
	mb->st = o->st;
	mb->password = strdup(o->password);
	mb->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	mb->move_to = o->move_to ? strdup(o->move_to) : NULL;
	if (mb->password == NULL || (o->ca_file && mb->ca_file == NULL) ||
	    (o->move_to && mb->move_to == NULL)) {
		diag_add(d, NULL, 0, 0, "mailbox %s: out of memory", url);
		goto fail;
	}
	mb->delete_handled = o->delete_handled && o->move_to == NULL;
	mb->allow_plain = o->allow_plain;
	mb->idle_ok = o->idle;
	mb->timeout = o->timeout ? o->timeout : imap_defaults.timeout;
	mb->trace = o->trace;
	mb->trace_arg = o->trace_arg;
	/* libetpan writes to the socket with send(..., 0): a server that
	 * hangs up must not kill the process */
	signal(SIGPIPE, SIG_IGN);
	return &mb->base;
fail:
	imap_close(&mb->base);
	return NULL;
}

const struct mailbox_backend mailbox_imap_backend = {
    .name = "imap",
    .open = imap_open,
    .fetch = imap_fetch,
    .idle = imap_idle,
    .close = imap_close,
};
