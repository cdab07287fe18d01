/*
 * bounce — one received message to one bounce event (see bounce.h).
 *
 * bounce_parse normalises the message and collects its parts in one walk
 * (bounce_mime.c), then classifies it here. A feedback report (ARF), or a
 * complaint in a provider's own form, is a complaint. A standard delivery
 * report (RFC 3464) names its recipients in its field blocks. Without
 * one, the formats that have no report part are read: Amazon SES
 * notifications (bounce_ses.c), the DragonFly Mail Agent's notice
 * (bounce_dma.c), X-Failed-Recipients, and the text the way Exim, qmail,
 * Postfix, Sendmail and most hosted services write it (bounce_text.c) —
 * the text only when the message looks like a bounce (from a mailer
 * daemon or postmaster, with a failure subject, or with words only a mail
 * system writes): a human reply quoting addresses must not suppress
 * anybody. Auto-replies and unsubscribe requests are answers to a release
 * (bounce_answer.c). Each recipient is then judged by the rule table
 * (bounce_rules.c), and the line of the message its verdict was read
 * from is found (the evidence).
 *
 * The reason vocabulary and what counts as hard follow the bounce corpus
 * in tests/data/bounces (expected.jsonl), except that reasons about the
 * sender's own reputation or set-up are "neither": herald never
 * suppresses a recipient because its own mail was blocked.
 *
 * bounce_int.h declares what the reader's files share, with the tunables;
 * bounce_str.c and bounce_addr.c hold their string and address helpers.
 */
#include "herald/bounce.h"

#include "bounce_int.h"

#include <libetpan/libetpan.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the event ---- */

int bounce_rcpt_add(struct bounce_event *ev, char *addr)
{
	struct bounce_rcpt *r;

	for (size_t i = 0; i < ev->nrcpt; i++)
		if (strcmp(ev->rcpt[i].address, addr) == 0) {
			free(addr);
			return 0;
		}
	if (ev->nrcpt >= BOUNCE_MAX_RCPT) {
		free(addr);
		return 0;
	}
	r = realloc(ev->rcpt, (ev->nrcpt + 1) * sizeof *r);
	if (r == NULL) {
		free(addr);
		return -1;
	}
	ev->rcpt = r;
	r = &ev->rcpt[ev->nrcpt++];
	memset(r, 0, sizeof *r);
	r->address = addr;
	r->hard = -1;
	return 1;
}

void bounce_event_free(struct bounce_event *ev)
{
	if (ev == NULL)
		return;
	for (size_t i = 0; i < ev->nrcpt; i++) {
		free(ev->rcpt[i].address);
		free(ev->rcpt[i].action);
		free(ev->rcpt[i].diagnostic);
		free(ev->rcpt[i].remote_mta);
		free(ev->rcpt[i].evidence);
	}
	free(ev->rcpt);
	free(ev->message_id);
	free(ev->verp_to);
	free(ev->orig_return_path);
	free(ev->orig_unsubscribe);
	free(ev->feedback_type);
	memset(ev, 0, sizeof *ev);
}

/* ---- the top-level header ---- */

/* A sender (address or display name) that is a mail system. */
static int is_daemon(const char *s)
{
	static const char *const names[] = {
	    "mailer-daemon", "mailer_daemon",   "mail-daemon",
	    "mailerdaemon",  "postmaster",      "post_master",
	    "mdaemon",       "bounce",          "mail delivery",
	    "mail.delivery", "delivery system", "delivery subsystem",
	    "mail administrator", "ndr administrator", "mail system",
	};

	if (s == NULL)
		return 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (bounce_str_casestr(s, names[i]) != NULL)
			return 1;
	return 0;
}

static const char *const failure_subjects[] = {
    "undeliver",
    "delivery fail",
    "delivery status",
    "delivery notification",
    "delivery problem",
    "delivery failure",
    "failure notice",
    "failed",
    "failure",
    "returned mail",
    "returned to sender",
    "return mail",
    "not delivered",
    "could not be delivered",
    "unzustellbar",
    "rejected",
    "nondeliverable",
    "non-deliverable",
    "non-delivery",
    "non remis",
    "mail error",
    "error sending",
    "warning: could not",
    "mail system error",
    "delayed mail",
    "delivery delayed",
    "bounce",
    "there was an error",
};

static int subject_has(const char *subj, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (bounce_str_casestr(subj, list[i]))
			return 1;
	return 0;
}

/* What the top-level header t says of the message, and o of the
 * original, into *h (zeroed by the caller; free with head_free). Sets
 * *oom on out-of-memory. */
static void head_read(struct bounce_head *h, const struct bounce_top *t,
                      const struct bounce_orig *o, int *oom)
{
	char *v;

	h->subj = bounce_mime_top_get(t, T_SUBJECT, oom);
	if (h->subj != NULL)
		h->subj_dec = bounce_mime_decode_header(h->subj);
	h->from_raw = bounce_mime_top_get(t, T_FROM, oom);
	if (h->from_raw != NULL)
		h->from = bounce_addr_first(h->from_raw, oom);
	v = bounce_mime_top_get(t, T_TO, oom);
	if (v != NULL)
		h->to = bounce_addr_first(v, oom);
	free(v);
	h->ofrom = o->from;
	h->oto = o->to;
}

static void head_free(struct bounce_head *h)
{
	free(h->subj);
	free(h->subj_dec);
	free(h->from);
	free(h->from_raw);
	free(h->to);
}

int bounce_head_is_daemon(const struct bounce_head *h)
{
	return is_daemon(h->from_raw);
}

int bounce_head_subject_has(const struct bounce_head *h,
                            const char *const *list, size_t n)
{
	return (h->subj != NULL && subject_has(h->subj, list, n)) ||
	       (h->subj_dec != NULL && subject_has(h->subj_dec, list, n));
}

int bounce_head_is_failure(const struct bounce_head *h)
{
	return bounce_head_subject_has(h, failure_subjects,
	                               NELEM(failure_subjects));
}

/* ---- standard reports (RFC 3464 delivery status, RFC 5965 ARF) ---- */

/* The fields of a delivery-status block that herald reads. */
enum { D_FINAL, D_ORIGINAL, D_ACTION, D_STATUS, D_DIAG, D_MTA, ND };

/* A field of a report block, cleaned, after its "type;" when strip; NULL
 * if absent. Sets *oom on out-of-memory. */
static char *dsn_value(const struct bounce_hfield *f, int strip, int *oom)
{
	const char *v = f->val, *e, *semi;
	char *r;

	if (f->name == NULL || v == NULL)
		return NULL;
	e = v + f->nval;
	if (strip && (semi = memchr(v, ';', f->nval)) != NULL)
		v = semi + 1;
	r = bounce_str_clean(v, (size_t)(e - v));
	if (r == NULL)
		*oom = 1;
	return r;
}

/* One per-recipient field block of a delivery-status part. */
static int dsn_block(struct bounce_event *ev, const struct bounce_hfield *fs)
{
	int oom = 0, added;
	char *v, *addr;
	struct bounce_rcpt *r;

	v = dsn_value(&fs[D_FINAL], 0, &oom);
	if (v == NULL && !oom)
		v = dsn_value(&fs[D_ORIGINAL], 0, &oom);
	if (v == NULL)
		return oom ? -1 : 0;
	addr = bounce_addr_from(v, &oom);
	free(v);
	if (addr == NULL)
		return oom ? -1 : 0;
	added = bounce_rcpt_add(ev, addr);
	if (added <= 0)
		return added;
	r = &ev->rcpt[ev->nrcpt - 1];
	r->action = dsn_value(&fs[D_ACTION], 0, &oom);
	v = dsn_value(&fs[D_STATUS], 0, &oom);
	if (v != NULL) {
		bounce_rules_find_status(v, r->status);
		/* Oracle Messaging Server says which command in a comment:
		 * "5.0.0 (Remote SMTP server has rejected address)" */
		if (bounce_str_casestr(v, "server has rejected address") !=
		    NULL)
			r->command = "RCPT";
	}
	free(v);
	r->diagnostic = dsn_value(&fs[D_DIAG], 1, &oom);
	r->remote_mta = dsn_value(&fs[D_MTA], 1, &oom);
	return oom ? -1 : 0;
}

/* Every field block of a delivery-status part; block 0 is per-message,
 * the rest per recipient, but some MTAs merge them, so every block is
 * looked at. A block ends at a blank line or at a line that is not a
 * field. */
static int dsn_parse(struct bounce_event *ev, const char *s, size_t n)
{
	static const char *const names[ND] = {
	    "Final-Recipient", "Original-Recipient", "Action",
	    "Status",          "Diagnostic-Code",    "Remote-MTA"};
	const char *p = s, *e = s + n;
	size_t blocks = 0;

	while (p < e && blocks++ < BOUNCE_MAX_RCPT + 1) {
		struct bounce_hfield fs[ND], f;

		memset(fs, 0, sizeof fs);
		while (bounce_mime_field_line(&p, e, &f) == 1)
			for (size_t k = 0; k < ND; k++)
				if (fs[k].name == NULL &&
				    bounce_mime_field_is(&f, names[k])) {
					fs[k] = f;
					break;
				}
		if (dsn_block(ev, fs) < 0)
			return -1;
	}
	return 0;
}

/* Whether the delivery-status part s[0..n) was written by Amazon SES
 * receiving itself: its Reporting-MTA is inbound-smtp.REGION.
 * amazonaws.com (as a Remote-MTA, SES is only the server another MTA
 * talked to). */
static bool ses_reported(const char *s, size_t n)
{
	const char *p = s, *e = s + n;
	struct bounce_hfield f;

	while (p < e)
		if (bounce_mime_field_line(&p, e, &f) == 1 &&
		    bounce_mime_field_is(&f, "Reporting-MTA")) {
			const char *m =
			    memmem(f.val, f.nval, "inbound-smtp.", 13);

			return m != NULL &&
			       memmem(m, f.nval - (size_t)(m - f.val),
			              ".amazonaws.com", 14) != NULL;
		}
	return false;
}

/* ARF, or a complaint in the form some services send without it. */
static int classify_complaint(struct bounce_event *ev, struct bounce_scan *sc,
                              const struct bounce_orig *o,
                              const struct bounce_head *h, int *oom)
{
	char *v;

	if (sc->arf == NULL && !sc->report_arf &&
	    !(h->subj != NULL &&
	      bounce_str_casestr(h->subj, "complaint about message from") !=
	          NULL))
		return 0;
	ev->kind = BOUNCE_COMPLAINT;
	if (sc->arf != NULL) {
		struct mailimf_fields *f = NULL;

		if (bounce_mime_fields_parse(sc->arf, sc->narf, &f) == 0) {
			ev->feedback_type =
			    bounce_mime_fields_get(f, "Feedback-Type", oom);
			v = bounce_mime_fields_get(f, "Original-Rcpt-To", oom);
			if (v == NULL && !*oom)
				v = bounce_mime_fields_get(
				    f, "Removal-Recipient", oom);
			mailimf_fields_free(f);
			if (v != NULL) {
				char *a = bounce_addr_from(v, oom);

				free(v);
				if (a != NULL && bounce_rcpt_add(ev, a) < 0)
					*oom = 1;
			}
		}
	}
	if (ev->nrcpt == 0 && o->hmx != NULL && !*oom) {
		char *a = bounce_addr_from(o->hmx, oom);

		if (a != NULL && bounce_rcpt_add(ev, a) < 0)
			*oom = 1;
	}
	if (ev->nrcpt == 0 && h->oto != NULL && !*oom) {
		char *c = bounce_addr_from(h->oto, oom);

		if (c != NULL && bounce_rcpt_add(ev, c) < 0)
			*oom = 1;
	}
	for (size_t i = 0; i < ev->nrcpt; i++) {
		ev->rcpt[i].reason = "feedback";
		ev->rcpt[i].hard = -1;
	}
	return 1;
}

/* ---- classification ---- */

/* Fill ev from the parsed message; -1 on out-of-memory. */
static int classify(struct bounce_event *ev, const struct bounce_top *top,
                    struct bounce_scan *sc)
{
	struct bounce_orig o = {0};
	struct bounce_head h = {0};
	struct bounce_selves self = {{0}};
	size_t cut = sc->ntext;
	const char *notice = NULL;
	bool service_rule = false;
	char *v;
	int oom = 0, weak = 0;

	v = bounce_mime_top_get(top, T_DELIVERED_TO, &oom);
	if (v == NULL && !oom)
		v = bounce_mime_top_get(top, T_X_ORIGINAL_TO, &oom);
	if (v != NULL) {
		ev->verp_to = bounce_addr_from(v, &oom);
		free(v);
	} else if (!oom && (v = bounce_mime_top_get(top, T_TO, &oom)) != NULL) {
		ev->verp_to = bounce_addr_first(v, &oom);
		free(v);
	}

	if (sc->text != NULL)
		cut = bounce_text_cut(sc->text, sc->ntext);
	if (sc->orig == NULL && sc->text != NULL)
		bounce_text_original(sc, cut);
	if (sc->orig != NULL &&
	    bounce_mime_orig_read(sc->orig, sc->norig, &o) < 0)
		oom = 1;
	ev->message_id = o.mid;
	o.mid = NULL;
	ev->orig_return_path = o.rp;
	o.rp = NULL;
	ev->orig_unsubscribe = o.lu;
	o.lu = NULL;
	head_read(&h, top, &o, &oom);
	self.a[0] = ev->verp_to;
	self.a[1] = h.from;
	self.a[2] = h.to;
	self.a[3] = h.ofrom;

	if (classify_complaint(ev, sc, &o, &h, &oom))
		goto done;

	if (sc->dsn == NULL && sc->text != NULL &&
	    bounce_ses_read(ev, sc->text, sc->ntext, &oom)) {
		if (ev->kind == BOUNCE_COMPLAINT)
			goto done;
		goto rcpts;
	}
	if (sc->dsn == NULL && sc->text != NULL &&
	    bounce_dma_read(ev, sc->text, cut, &oom) && ev->nrcpt > 0)
		goto rcpts;
	if (sc->dsn != NULL && dsn_parse(ev, sc->dsn, sc->ndsn) < 0)
		oom = 1;
	/* a report pasted into the text */
	if (ev->nrcpt == 0 && sc->text != NULL && !oom) {
		const char *f =
		    bounce_str_casestr(sc->text, "\nFinal-Recipient:");

		if (f != NULL &&
		    dsn_parse(ev, f + 1,
		              sc->ntext - (size_t)(f + 1 - sc->text)) < 0)
			oom = 1;
	}
	if (ev->nrcpt > 0) {
		ev->kind = BOUNCE_DSN;
		if (sc->text != NULL && !oom &&
		    bounce_text_rcpts(ev, sc->text, cut, &self, 1) < 0)
			oom = 1;
		goto rcpts;
	}

	v = bounce_mime_top_get(top, T_AUTO_SUBMITTED, &oom);
	h.strong = sc->report_dsn || bounce_head_is_daemon(&h) ||
	           bounce_head_is_failure(&h) ||
	           (v != NULL && bounce_str_casestr(v, "failure") != NULL);
	free(v);

	/* Auto-replies before the text scan: their text quotes addresses. */
	if (!h.strong && bounce_answer_is_autoreply(top, &h, &oom)) {
		ev->kind = BOUNCE_AUTOREPLY;
		if (h.from != NULL) {
			char *a = bounce_addr_from(h.from, &oom);

			if (a != NULL && bounce_rcpt_add(ev, a) < 0)
				oom = 1;
			if (ev->nrcpt > 0) {
				ev->rcpt[0].reason = "vacation";
				ev->rcpt[0].hard = -1;
			}
		}
		if (ev->message_id == NULL)
			ev->message_id = bounce_answer_replied_id(top, &oom);
		goto done;
	}

	/* Non-standard bounces. */
	v = bounce_mime_top_get(top, T_X_FAILED_RECIPIENTS, &oom);
	if (v != NULL) {
		char *save = NULL;

		h.strong = 1;
		for (char *t = strtok_r(v, ", ", &save); t != NULL;
		     t = strtok_r(NULL, ", ", &save)) {
			char *a = bounce_addr_from(t, &oom);

			if (a != NULL && bounce_rcpt_add(ev, a) < 0)
				oom = 1;
		}
		free(v);
	}
	if (sc->text != NULL && !h.strong)
		weak = bounce_text_is_notice(sc->text, cut, &oom);
	if (!h.strong && !weak) {
		if (sc->text != NULL &&
		    bounce_answer_is_unsubscribe(h.subj_dec != NULL ? h.subj_dec
		                                                    : h.subj,
		                                 sc->text, sc->nfirst)) {
			ev->kind = BOUNCE_UNSUBSCRIBE;
			if (h.from != NULL) {
				char *a = bounce_addr_from(h.from, &oom);

				if (a != NULL && bounce_rcpt_add(ev, a) < 0)
					oom = 1;
			}
			for (size_t i = 0; i < ev->nrcpt; i++)
				ev->rcpt[i].reason = "unsubscribe";
			free(ev->message_id);
			ev->message_id = bounce_answer_replied_id(top, &oom);
		}
		goto done;
	}
	if (sc->text != NULL && !oom &&
	    bounce_text_rcpts(ev, sc->text, cut, &self, ev->nrcpt > 0) < 0)
		oom = 1;
	/* A mail system's report naming nobody in a form we know: the
	 * returned original says whom it was for (herald sends one
	 * recipient per message). */
	if (ev->nrcpt == 0 && h.strong && h.oto != NULL && !oom) {
		char *a = bounce_addr_from(h.oto, &oom);

		if (a != NULL && bounce_text_is_self(&self, a))
			free(a);
		else if (a != NULL && bounce_rcpt_add(ev, a) < 0)
			oom = 1;
	}
	if (ev->nrcpt > 0)
		ev->kind = BOUNCE_DSN;
rcpts:
	/* Amazon SES receiving (Reporting-MTA inbound-smtp.REGION.
	 * amazonaws.com) keeps no mailboxes: its reports come from a
	 * receipt rule's bounce action, in the words the rule was given.
	 * Only a report SES wrote itself: SES named as the Remote-MTA
	 * refused RCPT TO in the reporting MTA's session, before any rule
	 * ran (no rule covers that recipient). */
	if (sc->dsn != NULL)
		service_rule = ses_reported(sc->dsn, sc->ndsn);
	/* what the notice to the sender says beside a report about one
	 * recipient (about several, it may speak of another) */
	if (ev->nrcpt == 1 && sc->dsn != NULL && sc->text != NULL) {
		char *c = bounce_str_ndup(sc->text, cut < BOUNCE_NOTICE_WINDOW
		                                        ? cut
		                                        : BOUNCE_NOTICE_WINDOW);
		char *l = c != NULL ? bounce_str_lower(c, BOUNCE_NOTICE_WINDOW)
		                    : NULL;

		notice = l != NULL ? bounce_rules_phrase_reason(l) : NULL;
		free(l);
		free(c);
	}
	for (size_t i = 0; i < ev->nrcpt && !oom; i++) {
		struct bounce_rcpt *r = &ev->rcpt[i];

		/* no explanation of its own: the text's */
		if (r->diagnostic == NULL && sc->text != NULL) {
			char *c =
			    bounce_str_ndup(sc->text, cut < BOUNCE_DIAG_WINDOW
			                                  ? cut
			                                  : BOUNCE_DIAG_WINDOW);

			r->diagnostic =
			    c != NULL ? bounce_str_clean(c, strlen(c)) : NULL;
			free(c);
			if (r->diagnostic == NULL)
				oom = 1;
		}
		bounce_rules_classify(r, notice, service_rule);
	}
	/* a report that every recipient was delivered (a success DSN asked
	 * for with NOTIFY=SUCCESS, "Action: deliverable") is no bounce */
	if (ev->kind == BOUNCE_DSN && !oom) {
		size_t ok = 0;

		for (size_t i = 0; i < ev->nrcpt; i++)
			ok += ev->rcpt[i].reason != NULL &&
			      strcmp(ev->rcpt[i].reason, "delivered") == 0;
		if (ok == ev->nrcpt)
			ev->kind = BOUNCE_NONE;
	}
done:
	bounce_mime_orig_free(&o);
	head_free(&h);
	return oom ? -1 : 0;
}

/* ---- evidence ---- */

/* The line of buf (CRLF line ends) holding needle[0..n), or NULL; *no
 * is its number (1 = the first line of buf). Of the first few lines that
 * hold it, a report's Diagnostic-Code field is preferred to the notice
 * that repeats it. */
static const char *line_of(const char *buf, size_t len, const char *needle,
                           size_t n, unsigned *no)
{
	const char *first = NULL, *at = buf;
	unsigned first_no = 0, k = 1;
	const char *scanned = buf;

	for (int tries = 0; tries < 8 && n > 0; tries++) {
		const char *start;

		at = memmem(at, len - (size_t)(at - buf), needle, n);
		if (at == NULL)
			break;
		/* count the lines up to this one, from where the last
		 * count stopped */
		start = scanned;
		for (const char *c = scanned;
		     (c = memchr(c, '\n', (size_t)(at - c))) != NULL; c++) {
			k++;
			start = c + 1;
		}
		scanned = start;
		if (first == NULL) {
			first = start;
			first_no = k;
		}
		if ((size_t)(at - start) >= 16 &&
		    strncasecmp(start, "Diagnostic-Code:", 16) == 0) {
			*no = k;
			return start;
		}
		at += n;
	}
	*no = first_no;
	return first;
}

/* Each recipient's evidence: the line of the message its verdict was
 * read from (the diagnostic's first words, else its Status field), as it
 * stands there, with its number; where no such line is there verbatim
 * (an encoded part, a diagnostic pasted together from several lines),
 * the diagnostic as read and line 0. from_line: the message began with
 * an mbox "From " line, which buf no longer holds. Returns -1 on
 * out-of-memory. */
static int evidence_find(struct bounce_event *ev, const char *buf, size_t len,
                         int from_line)
{
	for (size_t i = 0; i < ev->nrcpt; i++) {
		struct bounce_rcpt *r = &ev->rcpt[i];
		char key[64];
		const char *line = NULL, *d = r->diagnostic;
		size_t n = 0, cap;
		unsigned no = 0;

		if (r->rule == NULL)
			continue;
		/* a verdict the status made: its Status line */
		if (r->status[0] != '\0' &&
		    (strcmp(r->rule, "status") == 0 ||
		     strcmp(r->rule, "temporary") == 0)) {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			if (k > 0 && (size_t)k < sizeof key)
				line = line_of(buf, len, key, (size_t)k, &no);
		}
		if (line == NULL && d != NULL && d[0] != '\0') {
			/* its first words: the reader unfolds long lines */
			while (n < 40 && d[n] != '\0')
				n++;
			/* whole words: a fold may follow any of them */
			if (d[n] != '\0')
				while (n > 0 && d[n] != ' ')
					n--;
			if (n >= 8)
				line = line_of(buf, len, d, n, &no);
		}
		if (line == NULL && r->status[0] != '\0') {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			if (k > 0 && (size_t)k < sizeof key)
				line = line_of(buf, len, key, (size_t)k, &no);
		}
		if (line != NULL) {
			const char *e = line;

			while (e < buf + len && *e != '\r' && *e != '\n')
				e++;
			cap = (size_t)(e - line);
			if (cap > BOUNCE_EVIDENCE_MAX)
				cap = BOUNCE_EVIDENCE_MAX;
			r->evidence = bounce_str_clean(line, cap);
			r->evidence_line = no + (from_line ? 1u : 0u);
		} else if (d != NULL) {
			cap = strlen(d);
			r->evidence = bounce_str_clean(
			    d, cap > BOUNCE_EVIDENCE_MAX ? BOUNCE_EVIDENCE_MAX
			                                 : cap);
		} else if (r->status[0] != '\0') {
			int k = snprintf(key, sizeof key, "Status: %s",
			                 r->status);

			r->evidence =
			    k > 0 ? bounce_str_ndup(key, (size_t)k) : NULL;
		} else {
			continue;
		}
		if (r->evidence == NULL)
			return -1;
	}
	return 0;
}

int bounce_parse(const char *msg, size_t len, struct bounce_event *ev,
                 struct diag *d)
{
	struct bounce_top top;
	struct bounce_scan sc = {0};
	size_t n = 0, hl, body;
	char *buf = NULL;
	int rc = -1;

	memset(ev, 0, sizeof *ev);
	if (len > BOUNCE_MAX_SIZE) {
		diag_add(
		    d, NULL, 0, 0,
		    "bounce: message of %zu bytes refused: larger than the "
		    "%u-byte limit",
		    len, BOUNCE_MAX_SIZE);
		return -1;
	}
	buf = bounce_mime_normalise(msg, len, &n);
	if (buf == NULL)
		goto oom;
	if (n == 0) {
		rc = 0; /* nothing: not a bounce */
		goto out;
	}
	hl = bounce_mime_head_len(buf, n, &body);
	bounce_mime_top_read(buf, hl, &top);
	if (bounce_mime_walk(&sc, buf, n, 0, "text/plain") < 0)
		goto oom;
	if (sc.text == NULL && sc.dsn == NULL && sc.arf == NULL &&
	    bounce_mime_text_append(&sc, buf + body, n - body) < 0)
		goto oom; /* no part made sense (a boundary that never
		             occurs): the raw body */
	if (classify(ev, &top, &sc) < 0 ||
	    evidence_find(ev, buf, n,
	                  len >= 5 && memcmp(msg, "From ", 5) == 0) < 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	diag_add(d, NULL, 0, 0, "bounce: out of memory");
	bounce_event_free(ev);
	rc = -1;
out:
	free(buf);
	free(sc.dsn_own);
	free(sc.arf_own);
	free(sc.orig_own);
	free(sc.text);
	return rc;
}
