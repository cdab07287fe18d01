/*
 * recorder — heraldd's pending results and their grouped commit (see
 * recorder.h). deliver.c hands over each attempt when the relay answers;
 * here it waits with its log line until the batch is committed, and the
 * line is written only after the commit. A store that refuses the commit
 * pauses the loop's claims and sends (ENOSPC is temporary: defer, never
 * drop) until a try succeeds.
 */
#include "herald/recorder.h"

#include <stdlib.h>
#include <string.h>

#include "herald/log.h"

/* An attempt waiting for its commit, and its log line. */
struct recorder_pending {
	struct store_attempt a;
	char *relay, *status, *text, *queue_id;
	char *evidence;
	char *line;
};

static double recorder_ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

void recorder_init(struct recorder *r, struct store *st, FILE *log,
                   size_t batch)
{
	memset(r, 0, sizeof(*r));
	r->st = st;
	r->log = log;
	r->batch = batch;
}

static void recorder_pending_free(struct recorder_pending *p)
{
	free(p->relay);
	free(p->status);
	free(p->text);
	free(p->queue_id);
	free(p->evidence);
	free(p->line);
}

/* A refusal as the server wrote it, on one line ("550 5.1.1 <x>: User
 * unknown"): the code and status put before the text unless it starts
 * with them. The evidence kept with the suppression it causes. */
static char *recorder_reply_line(int code, const char *status, const char *text)
{
	char lead[48] = "";
	int n;

	if (text == NULL)
		text = "";
	n = snprintf(lead, sizeof(lead), "%d", code);
	if (code == 0 || (strncmp(text, lead, (size_t)n) == 0 &&
	                  (text[n] == ' ' || text[n] == '-')))
		lead[0] = '\0';
	else if (status != NULL && *status != '\0' &&
	         strncmp(text, status, strlen(status)) != 0)
		snprintf(lead, sizeof(lead), "%d %s ", code, status);
	else
		snprintf(lead, sizeof(lead), "%d ", code);
	return store_evidence(lead, text);
}

void recorder_add(struct recorder *r, const struct recorder_attempt *ra)
{
	const struct transport_reply *rep = ra->rep;
	const struct trouble_decision *dec = ra->dec;
	struct recorder_pending *p, *v;
	double delay = recorder_ms_since(ra->started) / 1e3;

	v = realloc(r->pending, (r->n + 1) * sizeof(*v));
	if (v == NULL)
		return; /* the lease brings the delivery back */
	r->pending = v;
	p = &r->pending[r->n];
	memset(p, 0, sizeof(*p));
	p->relay = ra->relay ? strdup(ra->relay) : NULL;
	p->status = rep->status[0] ? strdup(rep->status) : NULL;
	p->text = rep->text            ? strdup(rep->text)
	          : rep->error_text[0] ? strdup(rep->error_text)
	                               : NULL;
	p->queue_id = rep->queue_id[0] ? strdup(rep->queue_id) : NULL;
	if (dec->bad_address != NULL)
		p->evidence =
		    recorder_reply_line(rep->code, p->status, p->text);
	p->a = (struct store_attempt){
	    .delivery_id = ra->delivery,
	    .at = time(NULL),
	    .relay = p->relay,
	    .code = rep->code,
	    .status = p->status,
	    .text = p->text,
	    .queue_id = p->queue_id,
	    .duration_ms = rep->duration_ms,
	    .result = ra->result,
	    .next_at = dec->next_at,
	    .counts = ra->counts,
	    .bad_address = dec->bad_address,
	    .rule = dec->bad_address ? dec->rule : NULL,
	    .evidence = p->evidence,
	};
	p->line = log_attempt_line(&(struct log_attempt){
	    .release = (long long)ra->release,
	    .delivery = (long long)ra->delivery,
	    .to = ra->to,
	    .relay = p->relay,
	    .attempt = ra->attempt,
	    .code = rep->code,
	    .status = p->status,
	    .result =
	        ra->counts ? store_state_name(ra->result) : "relay-deferred",
	    .delay = delay,
	    .queue_id = p->queue_id,
	    .reason = dec->reason,
	    .reply = p->text,
	});
	if (r->n == 0)
		clock_gettime(CLOCK_MONOTONIC, &r->first);
	r->n++;
}

bool recorder_due(const struct recorder *r, size_t in_flight)
{
	return r->backoff == 0 && (r->n >= r->batch ||
	                           (r->n > 0 && (recorder_ms_since(&r->first) >=
	                                             RECORDER_FLUSH_MS ||
	                                         in_flight == 0)));
}

int recorder_wait_ms(const struct recorder *r)
{
	double left;

	if (r->n == 0)
		return -1;
	left = RECORDER_FLUSH_MS - recorder_ms_since(&r->first);
	return left < 1 ? 1 : (int)left;
}

/* If the commit fails (disk full), nothing is logged as done and the
 * attempts stay pending, to be committed when the store takes writes
 * again (the deliveries stay `sending` meanwhile: nothing else sends
 * them). */
int recorder_flush(struct recorder *r)
{
	struct store_attempt *a;
	struct diag d = {0};

	if (r->n == 0)
		return 0;
	a = calloc(r->n, sizeof(*a));
	if (a == NULL)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		a[i] = r->pending[i].a;
	if (store_record(r->st, a, r->n, &d) < 0) {
		log_line(r->log,
		         "cannot record %zu attempts yet (kept until the "
		         "store takes writes again):",
		         r->n);
		log_diag(r->log, &d);
		free(a);
		return -1;
	}
	for (size_t i = 0; i < r->n; i++)
		log_line(r->log, "%s", r->pending[i].line);
	for (size_t i = 0; i < r->n; i++)
		recorder_pending_free(&r->pending[i]);
	free(a);
	r->n = 0;
	return 0;
}

void recorder_flush_last(struct recorder *r)
{
	if (recorder_flush(r) == 0)
		return;
	log_line(r->log,
	         "%zu attempts were not recorded: their deliveries go "
	         "again when their lease runs out",
	         r->n);
	for (size_t i = 0; i < r->n; i++)
		recorder_pending_free(&r->pending[i]);
	r->n = 0;
}

/* Sending on would hand the relay messages whose results cannot be
 * recorded. */
void recorder_pause(struct recorder *r, time_t now, size_t in_flight)
{
	unsigned b = r->backoff;

	b = b == 0 ? RECORDER_RETRY_MIN : b * 2;
	if (b > RECORDER_RETRY_MAX)
		b = RECORDER_RETRY_MAX;
	if (r->backoff == 0)
		log_line(r->log,
		         "store: a write failed: claiming and sending "
		         "paused (%zu in flight, %zu results waiting)",
		         in_flight, r->n);
	r->backoff = b;
	r->paused_until = now + b;
	log_line(r->log, "store: trying again in %u s", b);
}

void recorder_resume(struct recorder *r, size_t recorded)
{
	log_line(r->log,
	         "store: takes writes again: %zu results recorded, "
	         "sending resumes",
	         recorded);
	r->backoff = 0;
}

void recorder_free(struct recorder *r)
{
	free(r->pending);
	r->pending = NULL;
	r->n = 0;
}
