/*
 * inbox — one pass over the bounce mailbox (see inbox.h).
 */
#include "herald/inbox.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/libetpan.h>

#include "herald/bounce.h"

/* The largest message herald reads from the mailbox (bounce.c's cap). */
#define INBOX_MAX BOUNCE_MAX_SIZE

struct inbox_run {
	struct store *st;
	const struct verp *verp;
	const struct inbox_opts *o;
	struct inbox_counts *c;
	struct diag *d;
	const char *key; /* the message's key (mailbox.h), or NULL */
	unsigned part;   /* events of this message recorded so far */
};

static int inbox_record(struct inbox_run *br, struct store_event *ev,
                        const char *msgid)
{
	int64_t id = 0;
	bool sup = false;
	char *source = NULL;
	int rc;

	ev->soft_limit = br->o->soft_limit;
	ev->soft_window = br->o->soft_window;
	/* the message's key and the event's number in it: the store acts
	 * on each at most once, however often the message is read */
	if (br->key != NULL &&
	    asprintf(&source, "%s#%u", br->key, br->part++) < 0) {
		diag_add(br->d, NULL, 0, 0, "out of memory");
		return -1;
	}
	ev->source = source;
	rc = store_event_record(br->st, ev, &id, &sup, br->d);
	ev->source = NULL;
	free(source);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		br->c->again++;
		return 0;
	}
	br->c->events++;
	if (id != 0)
		br->c->matched++;
	if (sup)
		br->c->suppressed++;
	if (ev->kind == STORE_EVENT_UNKNOWN)
		br->c->unknown++;
	if (br->o->report != NULL)
		br->o->report(br->o->arg, msgid, ev, id, sup);
	return 0;
}

/* Is message_id the keyed Message-ID of the delivery of release to
 * email (message_id_for under the bounce secret)? The store asks, after
 * finding the delivery that carries it. */
static bool inbox_id_keyed(const void *arg, const char *release,
                           const char *email, const char *message_id)
{
	const char *at = strrchr(message_id, '@');
	char *seed = NULL, *id;
	bool ok;
	int n;

	if (at == NULL || release == NULL || email == NULL ||
	    (n = asprintf(&seed, "%s\n%s", release, email)) < 0)
		return false;
	id = verp_message_id(arg, seed, (size_t)n, at + 1);
	ok = id != NULL && strcmp(id, message_id) == 0;
	free(id);
	free(seed);
	return ok;
}

/* Does addr look like one of herald's return paths (bounces+ or
 * unsubscribe+ at the bounce domain), signed or not? */
static bool inbox_looks_verp(const struct verp *v, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const char *p = addr;
	size_t dl = strlen(verp_domain(v));

	while (*p == ' ' || *p == '<')
		p++;
	if (at == NULL || strncasecmp(at + 1, verp_domain(v), dl) != 0)
		return false;
	return strncasecmp(p, "bounces+", 8) == 0 ||
	       strncasecmp(p, "unsubscribe+", 12) == 0;
}

/* The address in the From field of a message (lowercased domain kept as
 * given), or NULL. */
static char *inbox_from(const char *msg, size_t len)
{
	struct mailimf_fields *f = NULL;
	size_t at = 0;
	char *out = NULL;

	if (mailimf_fields_parse(msg, len, &at, &f) != MAILIMF_NO_ERROR)
		return NULL;
	for (clistiter *it = clist_begin(f->fld_list); it != NULL;
	     it = clist_next(it)) {
		struct mailimf_field *fl = clist_content(it);
		struct mailimf_mailbox_list *ml;
		struct mailimf_mailbox *mbx;
		if (fl->fld_type != MAILIMF_FIELD_FROM ||
		    fl->fld_data.fld_from == NULL)
			continue;
		ml = fl->fld_data.fld_from->frm_mb_list;
		if (ml == NULL || clist_begin(ml->mb_list) == NULL)
			break;
		mbx = clist_content(clist_begin(ml->mb_list));
		if (mbx != NULL && mbx->mb_addr_spec != NULL)
			out = strdup(mbx->mb_addr_spec);
		break;
	}
	mailimf_fields_free(f);
	return out;
}

/* What a recipient's verdict was read from, as the store keeps it:
 * "line 23: Status: 5.1.1", or the text alone when it is not in the
 * message verbatim; NULL when the report gave none (or memory ran out:
 * the event is worth more than its evidence). */
static char *inbox_evidence(const struct bounce_rcpt *r)
{
	char where[32];

	if (r->evidence == NULL)
		return NULL;
	if (r->evidence_line == 0)
		return store_evidence(NULL, r->evidence);
	snprintf(where, sizeof(where), "line %u: ", r->evidence_line);
	return store_evidence(where, r->evidence);
}

static enum mailbox_verdict inbox_one(void *arg, const struct mailbox_msg *m)
{
	struct inbox_run *br = arg;
	struct bounce_event ev = {0};
	struct store_event se = {.kind = STORE_EVENT_UNKNOWN, .hard = -1};
	enum verp_kind vk = VERP_BOUNCES;
	char key[33] = "";
	char *from = NULL;
	bool verp_ok = false, orig_token = false;
	int rc = 0;

	br->key = m->key;
	br->part = 0;
	if (m->data == NULL) {
		/* refused by size: kept in the mailbox's cur/, noted */
		se.diagnostic = "refused: larger than herald reads";
		return inbox_record(br, &se, m->id) < 0 ? MAILBOX_STOP
		                                        : MAILBOX_HANDLED;
	}
	se.raw = m->data;
	se.rawlen = m->len;
	if (bounce_parse(m->data, m->len, &ev, br->d) < 0) {
		se.diagnostic = "refused: the message could not be read";
		return inbox_record(br, &se, m->id) < 0 ? MAILBOX_STOP
		                                        : MAILBOX_HANDLED;
	}
	if (br->verp != NULL && ev.verp_to != NULL) {
		if (verp_check(br->verp, ev.verp_to, &vk, key) == 0) {
			verp_ok = true;
		} else if (inbox_looks_verp(br->verp, ev.verp_to)) {
			/* one of our return paths with a wrong signature: a
			 * forgery (or damage) must change nothing */
			struct store_event fe = {.kind = STORE_EVENT_UNKNOWN,
			                         .hard = -1,
			                         .diagnostic =
			                             "forged or damaged return "
			                             "path: nothing done",
			                         .raw = m->data,
			                         .rawlen = m->len};
			rc = inbox_record(br, &fe, m->id);
			bounce_event_free(&ev);
			return rc < 0 ? MAILBOX_STOP : MAILBOX_HANDLED;
		}
	}
	/* a complaint from a feedback loop arrives at an address of the
	 * sender's, not at the return path: the token is in the returned
	 * original's Return-Path or List-Unsubscribe (only ever evidence of
	 * which delivery, never an unsubscribe request by itself) */
	if (br->verp != NULL && !verp_ok) {
		const char *in[] = {ev.orig_return_path, ev.orig_unsubscribe};
		const enum verp_kind want[] = {VERP_BOUNCES,
		                               VERP_UNSUBSCRIBE};
		for (size_t i = 0; i < 2 && !verp_ok; i++) {
			enum verp_kind k;
			if (in[i] != NULL &&
			    verp_check(br->verp, in[i], &k, key) == 0 &&
			    k == want[i])
				verp_ok = orig_token = true;
		}
	}
	se.message_key = verp_ok ? key : NULL;
	se.message_id = ev.message_id;
	if (br->verp != NULL) {
		se.id_keyed = inbox_id_keyed;
		se.id_keyed_arg = br->verp;
	}
	if (verp_ok && !orig_token && vk == VERP_UNSUBSCRIBE) {
		/* mail to a delivery's unsubscribe address: whatever it says */
		se.kind = STORE_EVENT_UNSUBSCRIBE;
		rc = inbox_record(br, &se, m->id);
	} else if (ev.kind == BOUNCE_DSN && ev.nrcpt > 0) {
		for (size_t i = 0; i < ev.nrcpt && rc == 0; i++) {
			const struct bounce_rcpt *r = &ev.rcpt[i];
			char *evidence = inbox_evidence(r);
			se.kind = STORE_EVENT_BOUNCE;
			se.email = r->address;
			se.status = r->status[0] ? r->status : NULL;
			se.reason = r->reason;
			se.hard = r->hard;
			se.diagnostic = r->diagnostic;
			se.rule = r->rule;
			se.evidence = evidence;
			rc = inbox_record(br, &se, m->id);
			se.evidence = NULL;
			free(evidence);
		}
	} else if (ev.kind == BOUNCE_UNSUBSCRIBE) {
		/* a journalist's reply asking to be left alone: about the
		 * address it came from (which anyone can write), tied to the
		 * delivery by the Message-ID it answers or by that address,
		 * for review: it waits for an admin (policy.c) */
		from = ev.nrcpt > 0 ? NULL : inbox_from(m->data, m->len);
		se.kind = STORE_EVENT_UNSUBSCRIBE;
		se.email = ev.nrcpt > 0 ? ev.rcpt[0].address : from;
		se.reason = "reply";
		if (se.email != NULL)
			rc = inbox_record(br, &se, m->id);
		else {
			se.kind = STORE_EVENT_UNKNOWN;
			se.diagnostic = "an unsubscribe reply without a sender";
			rc = inbox_record(br, &se, m->id);
		}
		free(from);
	} else if (ev.kind == BOUNCE_COMPLAINT) {
		se.kind = STORE_EVENT_COMPLAINT;
		se.email = ev.nrcpt > 0 ? ev.rcpt[0].address : NULL;
		se.reason = "feedback";
		rc = inbox_record(br, &se, m->id);
	} else {
		se.kind = ev.kind == BOUNCE_AUTOREPLY ? STORE_EVENT_AUTOREPLY
		                                      : STORE_EVENT_UNKNOWN;
		rc = inbox_record(br, &se, m->id);
	}
	bounce_event_free(&ev);
	/* not recorded (the store is busy or full): leave it new */
	return rc < 0 ? MAILBOX_STOP : MAILBOX_HANDLED;
}

static void inbox_trace(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "%s\n", line);
}

struct mailbox *inbox_open(const struct config *cfg, const char *url,
                           struct store *st, struct diag *d)
{
	const struct config_imap *im = &cfg->bounce_imap;
	struct mailbox_opts o = {.st = st,
	                         .password = im->password,
	                         .ca_file = im->ca_file,
	                         .move_to = im->move_to,
	                         .delete_handled = im->delete_handled,
	                         .allow_plain = im->allow_plain,
	                         .idle = im->idle,
	                         .timeout = im->timeout};

	if (getenv("HERALD_IMAP_TRACE") != NULL)
		o.trace = inbox_trace;
	return mailbox_open(url, &o, d);
}

int inbox_pass(struct store *st, struct mailbox *mb, const struct inbox_opts *o,
               struct inbox_counts *c, struct diag *d)
{
	struct inbox_run br = {st, o->verp, o, c, d, NULL, 0};

	memset(c, 0, sizeof(*c));
	return mb->ops->fetch(mb, INBOX_MAX, inbox_one, &br, d);
}
