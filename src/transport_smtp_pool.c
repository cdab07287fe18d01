/*
 * transport_smtp_pool — the SMTP transport herald uses: one worker thread
 * per connection to the relay, each driving its own copy of the
 * single-threaded transport in transport_smtp.c (one curl multi handle,
 * one connection, reused for up to max_per_connection messages).
 *
 * Why threads: libcurl 7.88 (Debian 12) waits for the reply to a message's
 * final dot blocking every transfer of its multi handle, so with one
 * multi for all connections they took turns there, and a relay taking a
 * second per dot got one message a second whatever max_connections said
 * (bench/deliver: 1.00 msg/s against smtp-source's 7.94 over 8 sessions).
 * With a multi per thread, a dot's wait holds up only its own connection.
 *
 * The interface stays the caller's single-threaded one (transport.h):
 * submit(), room(), in_flight(), step(), close() and the done callback all
 * run on the caller's thread. A worker gets one message at a time: submit
 * copies the message into an idle worker's job and wakes it through its
 * pipe; the worker hands it to its transport and runs that transport's
 * step() (waiting on the pipe too); the worker's done callback copies the
 * reply into the job and wakes the caller's step() through the results
 * pipe, which calls the caller's done. A worker is busy from submit until
 * the caller's done has returned, so room() is the number of idle workers.
 * close() interrupts the workers' transports (a worker blocked in libcurl
 * for a dot's reply gets out within about a second), stops the workers,
 * and closes their transports on the caller's thread; every message in
 * flight is done with "aborted", as transport.h promises.
 *
 * Workers block every signal: the daemon's handlers run on its own thread.
 * Library code: 0 / -1 (or NULL) with the reason in a struct diag.
 */
#include "herald/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Limits, each with the reason for its value. */
enum {
	/* the caller's extra descriptors step() waits on beside the results
	 * pipe (heraldd passes three: signals, control socket, mailbox) */
	POOL_EXTRA_FDS_MAX = 8,
};

enum pool_state {
	JOB_IDLE,    /* no message: room for one */
	JOB_WAITING, /* submitted, not yet handed to the worker's transport */
	JOB_SENDING, /* in the worker's transport */
	JOB_DONE,    /* the reply is in, for the caller's step() */
};

struct pool_worker {
	struct smtp_pool *p;
	struct transport *t; /* transport_smtp_multi_backend, 1 connection */
	pthread_t thread;
	bool started;
	int wake[2]; /* caller -> worker: a job, or stop */
	/* The job, under p->lock once the worker runs. */
	enum pool_state state;
	struct transport_msg msg; /* the caller's id and user */
	char *sender, *rcpt, *data; /* copies: the caller may free its own */
	size_t len;
	struct transport_reply r; /* r.text: a copy, freed after done */
	char fault[256]; /* the worker's transport failed itself, or "" */
};

struct smtp_pool {
	struct transport base;
	transport_done_fn done;
	void *arg;
	pthread_mutex_t lock;
	bool stop;
	int results[2]; /* workers -> caller: a job is done */
	struct pool_worker *w;
	size_t nw, busy;
};

static struct smtp_pool *pool_of(struct transport *t)
{
	return (struct smtp_pool *)t;
}

static void pool_poke(int fd)
{
	ssize_t n;

	/* a full pipe already wakes its reader */
	do
		n = write(fd, "x", 1);
	while (n < 0 && errno == EINTR);
}

static void pool_drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* The worker transport's done callback (on the worker's thread, or on
 * the caller's from close): the reply into the job. */
static void pool_worker_done(void *arg, const struct transport_msg *m,
                             const struct transport_reply *r)
{
	struct pool_worker *w = arg;
	char *text = r->text != NULL ? strdup(r->text) : NULL;

	(void)m;
	pthread_mutex_lock(&w->p->lock);
	w->r = *r;
	w->r.text = text;
	if (r->text != NULL && text == NULL) {
		/* keep the facts; the text is lost to memory */
		snprintf(w->r.error_text, sizeof(w->r.error_text),
		         "out of memory copying the reply");
	}
	w->state = JOB_DONE;
	pthread_mutex_unlock(&w->p->lock);
	pool_poke(w->p->results[1]);
}

static void *pool_worker_run(void *arg)
{
	struct pool_worker *w = arg;
	struct smtp_pool *p = w->p;

	for (;;) {
		struct diag d = {0};
		bool readable = false, take = false, stop;

		pthread_mutex_lock(&p->lock);
		stop = p->stop;
		if (!stop && w->state == JOB_WAITING) {
			w->state = JOB_SENDING;
			take = true;
		}
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		if (take) {
			struct transport_msg m = {.id = w->msg.id,
			                          .sender = w->sender,
			                          .rcpt = w->rcpt,
			                          .data = w->data,
			                          .len = w->len};

			if (w->t->ops->submit(w->t, &m, &d) < 0) {
				struct transport_reply r = {
				    .stage = TRANSPORT_LOCAL};

				snprintf(r.error_text, sizeof(r.error_text),
				         "%s", diag_first(&d));
				diag_clear(&d);
				pool_worker_done(w, &m, &r);
			}
		}
		if (w->t->ops->step(w->t, -1, &w->wake[0], 1, &readable, &d) <
		    0) {
			pthread_mutex_lock(&p->lock);
			snprintf(w->fault, sizeof(w->fault), "%s",
			         diag_first(&d));
			pthread_mutex_unlock(&p->lock);
			diag_clear(&d);
			pool_poke(p->results[1]);
			/* not a spin: a failing step has waited (or the
			 * transport is broken and stop comes next) */
			usleep(100 * 1000);
		}
		if (readable)
			pool_drain(w->wake[0]);
	}
	return NULL;
}

static int pool_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
		fds[0] = fds[1] = -1;
		return -1;
	}
	return 0;
}

static void pool_free_job(struct pool_worker *w)
{
	free(w->sender);
	free(w->rcpt);
	free(w->data);
	free(w->r.text);
	w->sender = w->rcpt = w->data = NULL;
	w->r.text = NULL;
	w->len = 0;
}

static void pool_close(struct transport *base);

static struct transport *pool_open(const struct transport_config *cfg,
                                   transport_done_fn done, void *arg,
                                   struct diag *d)
{
	struct smtp_pool *p = calloc(1, sizeof(*p));
	struct transport_config one;
	sigset_t all, old;
	size_t i;

	if (p == NULL) {
		diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
		return NULL;
	}
	p->base.ops = &transport_smtp_backend;
	p->done = done;
	p->arg = arg;
	p->results[0] = p->results[1] = -1;
	pthread_mutex_init(&p->lock, NULL);
	p->nw = cfg->max_connections ? cfg->max_connections
	                             : TRANSPORT_DEFAULT_CONNECTIONS;
	if (p->nw > TRANSPORT_MAX_CONNECTIONS) {
		diag_add(d, NULL, 0, 0,
		         "relay.max_connections: %zu is more than %d", p->nw,
		         TRANSPORT_MAX_CONNECTIONS);
		p->nw = 0;
		goto fail;
	}
	p->w = calloc(p->nw, sizeof(*p->w));
	if (p->w == NULL) {
		diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
		p->nw = 0;
		goto fail;
	}
	for (i = 0; i < p->nw; i++) { /* what pool_close may see */
		p->w[i].p = p;
		p->w[i].wake[0] = p->w[i].wake[1] = -1;
	}
	if (pool_pipe(p->results) < 0) {
		diag_add(d, NULL, 0, 0, "smtp transport: %s", strerror(errno));
		goto fail;
	}
	one = *cfg;
	one.max_connections = 1;
	for (i = 0; i < p->nw; i++) {
		struct pool_worker *w = &p->w[i];

		if (pool_pipe(w->wake) < 0) {
			diag_add(d, NULL, 0, 0, "smtp transport: %s",
			         strerror(errno));
			goto fail;
		}
		w->t = transport_smtp_multi_backend.open(
		    &one, pool_worker_done, w, d);
		if (w->t == NULL)
			goto fail;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < p->nw; i++) {
		int e = pthread_create(&p->w[i].thread, NULL, pool_worker_run,
		                       &p->w[i]);
		if (e != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			diag_add(d, NULL, 0, 0,
			         "smtp transport: cannot start a thread: %s",
			         strerror(e));
			goto fail;
		}
		p->w[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return &p->base;
fail:
	pool_close(&p->base);
	return NULL;
}

static int pool_submit(struct transport *base, const struct transport_msg *m,
                       struct diag *d)
{
	struct smtp_pool *p = pool_of(base);
	struct pool_worker *w = NULL;
	char *sender, *rcpt, *data;
	size_t i;

	if (transport_smtp_check(m, d) < 0)
		return -1;
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->nw && w == NULL; i++)
		if (p->w[i].state == JOB_IDLE) /* only the caller sets IDLE */
			w = &p->w[i];
	pthread_mutex_unlock(&p->lock);
	if (w == NULL) {
		diag_add(d, NULL, 0, 0,
		         "smtp transport: no room: %zu messages in flight",
		         p->busy);
		return -1;
	}
	sender = strdup(m->sender != NULL ? m->sender : "");
	rcpt = strdup(m->rcpt != NULL ? m->rcpt : "");
	data = malloc(m->len ? m->len : 1);
	if (sender == NULL || rcpt == NULL || data == NULL) {
		free(sender);
		free(rcpt);
		free(data);
		diag_add(d, NULL, 0, 0, "smtp transport: out of memory");
		return -1;
	}
	if (m->len > 0)
		memcpy(data, m->data, m->len);
	pthread_mutex_lock(&p->lock);
	w->msg = *m;
	w->sender = sender;
	w->rcpt = rcpt;
	w->data = data;
	w->len = m->len;
	w->state = JOB_WAITING;
	pthread_mutex_unlock(&p->lock);
	p->busy++;
	pool_poke(w->wake[1]);
	return 0;
}

static size_t pool_in_flight(const struct transport *base)
{
	return ((const struct smtp_pool *)base)->busy;
}

static size_t pool_room(const struct transport *base)
{
	const struct smtp_pool *p = (const struct smtp_pool *)base;

	return p->nw - p->busy;
}

/* Every finished job to the caller's done; a worker's fault into d.
 * Returns -1 when a worker's transport failed itself. */
static int pool_collect(struct smtp_pool *p, struct diag *d)
{
	int rc = 0;
	size_t i;

	for (i = 0; i < p->nw; i++) {
		struct pool_worker *w = &p->w[i];
		struct transport_msg m;
		struct transport_reply r;
		bool done;

		pthread_mutex_lock(&p->lock);
		done = w->state == JOB_DONE;
		if (done) {
			m = w->msg;
			m.sender = w->sender;
			m.rcpt = w->rcpt;
			m.data = w->data;
			m.len = w->len;
			r = w->r;
		}
		if (w->fault[0] != '\0') {
			diag_add(d, NULL, 0, 0, "%s", w->fault);
			w->fault[0] = '\0';
			rc = -1;
		}
		pthread_mutex_unlock(&p->lock);
		if (!done)
			continue;
		/* the worker touches the job again only once it is
		 * WAITING: safe to use and free outside the lock */
		p->done(p->arg, &m, &r);
		pthread_mutex_lock(&p->lock);
		pool_free_job(w);
		w->state = JOB_IDLE;
		pthread_mutex_unlock(&p->lock);
		p->busy--;
	}
	return rc;
}

static int pool_step(struct transport *base, int timeout_ms,
                     const int *extra_fds, size_t nextra, bool *readable,
                     struct diag *d)
{
	struct smtp_pool *p = pool_of(base);
	struct pollfd fds[POOL_EXTRA_FDS_MAX + 1];
	size_t i;
	int n;

	if (nextra > POOL_EXTRA_FDS_MAX) {
		diag_add(d, NULL, 0, 0,
		         "smtp transport: %zu extra descriptors, more than %d",
		         nextra, POOL_EXTRA_FDS_MAX);
		return -1;
	}
	fds[0] = (struct pollfd){.fd = p->results[0], .events = POLLIN};
	for (i = 0; i < nextra; i++)
		fds[i + 1] = (struct pollfd){.fd = extra_fds[i],
		                             .events = POLLIN};
	n = poll(fds, nextra + 1, timeout_ms < 0 ? -1 : timeout_ms);
	if (n < 0 && errno != EINTR) {
		diag_add(d, NULL, 0, 0, "smtp transport: waiting: %s",
		         strerror(errno));
		return -1;
	}
	for (i = 0; i < nextra; i++)
		readable[i] = n > 0 && fds[i + 1].revents != 0;
	if (n > 0 && fds[0].revents != 0)
		pool_drain(p->results[0]);
	return pool_collect(p, d);
}

static void pool_close(struct transport *base)
{
	struct smtp_pool *p = pool_of(base);
	struct diag d = {0};
	size_t i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	/* a worker may be inside libcurl, blocked for a dot's reply (up to
	 * the dot timeout): interrupted, it is out within about a second */
	for (i = 0; i < p->nw; i++)
		if (p->w[i].started) {
			transport_smtp_interrupt(p->w[i].t);
			pool_poke(p->w[i].wake[1]);
		}
	for (i = 0; i < p->nw; i++)
		if (p->w[i].started)
			pthread_join(p->w[i].thread, NULL);
	/* On this thread now: each transport ends what it has in flight
	 * ("aborted", through pool_worker_done); a job not yet handed over
	 * is aborted here the same way. */
	for (i = 0; i < p->nw; i++) {
		struct pool_worker *w = &p->w[i];

		if (w->t != NULL)
			w->t->ops->close(w->t);
		if (w->state == JOB_WAITING) {
			struct transport_reply r = {.stage = TRANSPORT_LOCAL};

			snprintf(r.error_text, sizeof(r.error_text), "aborted");
			pool_worker_done(w, &w->msg, &r);
		}
	}
	pool_collect(p, &d);
	diag_clear(&d);
	for (i = 0; i < p->nw; i++) {
		pool_free_job(&p->w[i]);
		if (p->w[i].wake[0] >= 0)
			close(p->w[i].wake[0]);
		if (p->w[i].wake[1] >= 0)
			close(p->w[i].wake[1]);
	}
	if (p->results[0] >= 0)
		close(p->results[0]);
	if (p->results[1] >= 0)
		close(p->results[1]);
	pthread_mutex_destroy(&p->lock);
	free(p->w);
	free(p);
}

static const char *pool_describe(const struct transport *base)
{
	const struct smtp_pool *p = (const struct smtp_pool *)base;

	return p->w[0].t->ops->describe(p->w[0].t);
}

const struct transport_backend transport_smtp_backend = {
    .name = "smtp",
    .open = pool_open,
    .submit = pool_submit,
    .in_flight = pool_in_flight,
    .room = pool_room,
    .step = pool_step,
    .close = pool_close,
    .describe = pool_describe,
};
