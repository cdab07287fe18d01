/*
 * poller — heraldd's reading of the bounce mailbox on a schedule or on
 * IMAP IDLE (see poller.h). inbox.c does the pass (parse, match, record);
 * this file says when, keeps the mailbox open between passes, and backs
 * off from a failing one.
 */
#include "herald/poller.h"

#include "herald/inbox.h"
#include "herald/log.h"

void poller_init(struct poller *p, FILE *log)
{
	*p = (struct poller){.log = log, .fd = -1};
}

static void poller_report(void *arg, const char *msg_id,
                          const struct store_event *ev, int64_t delivery_id,
                          bool suppressed)
{
	struct poller *p = arg;

	log_line(p->log,
	         "mailbox: %s message=%s delivery=%lld to=<%s> status=%s "
	         "reason=%s%s",
	         store_event_kind_name(ev->kind), msg_id,
	         (long long)delivery_id, ev->email ? ev->email : "-",
	         ev->status ? ev->status : "-", ev->reason ? ev->reason : "-",
	         suppressed ? " suppressed" : "");
}

void poller_close(struct poller *p)
{
	if (p->mb != NULL)
		p->mb->ops->close(p->mb);
	p->mb = NULL;
	p->cfg = NULL;
	p->fd = -1;
}

void poller_wake(struct poller *p)
{
	p->woken = true;
}

/* The IDLE is renewed (with a pass) before the 29 minutes after which a
 * server may end it (RFC 2177); config.c gives every setting its value,
 * defaults included. */
void poller_run(struct poller *p, const struct config *c, struct store *st,
                const struct verp *verp, bool idle, time_t now)
{
	unsigned poll = c->bounce_poll;
	unsigned wait;
	bool woken = p->woken;
	int rc, fd = -1;
	struct inbox_opts io = {.verp = verp,
	                        .soft_limit = c->soft_limit,
	                        .soft_window = c->soft_window,
	                        .report = poller_report,
	                        .arg = p};
	struct inbox_counts ic;
	struct diag d = {0};

	p->woken = false;
	/* reloaded: the settings may have changed. A new config is made
	 * while the old one still lives, so its address always differs. */
	if (p->mb != NULL && p->cfg != c)
		poller_close(p);
	if (c->bounce_mailbox == NULL)
		return;
	if (p->fd >= 0) {
		time_t renew = (time_t)c->bounce_imap.idle_renew;
		if (!woken && now - p->idle_since < renew)
			return;
	} else if (now - p->last < (time_t)poll || now < p->retry_at) {
		return;
	}
	p->last = now;
	p->fd = -1;
	if (p->mb == NULL) {
		if ((p->mb = inbox_open(c, c->bounce_mailbox, st, &d)) == NULL)
			goto fail;
		p->cfg = c;
	}
	if (inbox_pass(st, p->mb, &io, &ic, &d) < 0)
		goto fail;
	if (p->failures > 0)
		log_line(p->log, "mailbox: %s read again after %u failure%s",
		         c->bounce_mailbox, p->failures,
		         p->failures == 1 ? "" : "s");
	p->failures = 0;
	diag_clear(&d);
	if (p->mb->ops->idle != NULL && idle) {
		if ((rc = p->mb->ops->idle(p->mb, &fd, &d)) < 0)
			goto fail;
		if (rc > 0)
			p->last = 0; /* mail came meanwhile */
		else if (fd >= 0) {
			p->fd = fd;
			p->idle_since = now;
		}
	}
	diag_clear(&d);
	return;
fail:
	log_diag(p->log, &d);
	poller_close(p);
	p->failures++;
	wait = poll << (p->failures < 7 ? p->failures - 1 : 6);
	if (wait > POLLER_MAX_BACKOFF)
		wait = POLLER_MAX_BACKOFF;
	p->retry_at = now + wait;
	log_line(p->log, "mailbox: %s: failure %u, next try in %u s",
	         c->bounce_mailbox, p->failures, wait);
}
