/*
 * herald bounces fetch — one pass over the bounce mailbox: every message
 * becomes an event (bounce per failed recipient, complaint, auto-reply,
 * unsubscribe request, or unknown), matched to its delivery by the signed
 * return path first, then by the returned Message-ID, then by address,
 * and recorded with the raw message; the store acts on it (bounced,
 * complained, suppressed). Handled messages are moved, never deleted.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "herald/bounce.h"
#include "herald/config.h"
#include "herald/mailbox.h"
#include "herald/store.h"
#include "herald/verp.h"
#include "herald_cli.h"

/* The largest message herald reads from the mailbox (bounce.c's cap). */
#define BOUNCES_MAX BOUNCE_MAX_SIZE

struct bounces_run {
	struct store *st;
	const struct verp *verp;
	size_t events, matched, suppressed, unknown;
	struct diag *d;
};

static const char *bounces_kind_name(enum store_event_kind k)
{
	static const char *const n[] = {"bounce", "complaint", "autoreply",
	                                "unsubscribe", "unknown"};
	return n[k];
}

static int bounces_record(struct bounces_run *br, struct store_event *ev,
                          const char *msgid)
{
	int64_t id = 0;
	bool sup = false;

	if (store_ops(br->st)->event_record(br->st, ev, &id, &sup, br->d) < 0)
		return -1;
	br->events++;
	if (id != 0)
		br->matched++;
	if (sup)
		br->suppressed++;
	if (ev->kind == STORE_EVENT_UNKNOWN)
		br->unknown++;
	printf("%s message=%s to=<%s> status=%s reason=%s delivery=%lld%s\n",
	       bounces_kind_name(ev->kind), msgid, ev->email ? ev->email : "-",
	       ev->status ? ev->status : "-", ev->reason ? ev->reason : "-",
	       (long long)id, sup ? " suppressed" : "");
	return 0;
}

/* Does addr look like one of herald's return paths (bounces+ or
 * unsubscribe+ at the bounce domain), signed or not? */
static bool bounces_looks_verp(const struct verp *v, const char *addr)
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

static enum mailbox_verdict bounces_one(void *arg, const struct mailbox_msg *m)
{
	struct bounces_run *br = arg;
	struct bounce_event ev = {0};
	struct store_event se = {.kind = STORE_EVENT_UNKNOWN, .hard = -1};
	enum verp_kind vk = VERP_BOUNCES;
	char key[33] = "";
	bool verp_ok = false;
	int rc = 0;

	if (m->data == NULL) {
		/* refused by size: kept in the mailbox's cur/, noted */
		se.diagnostic = "refused: larger than herald reads";
		return bounces_record(br, &se, m->id) < 0 ? MAILBOX_STOP
		                                          : MAILBOX_HANDLED;
	}
	se.raw = m->data;
	se.rawlen = m->len;
	if (bounce_parse(m->data, m->len, &ev, br->d) < 0) {
		se.diagnostic = "refused: the message could not be read";
		return bounces_record(br, &se, m->id) < 0 ? MAILBOX_STOP
		                                          : MAILBOX_HANDLED;
	}
	if (br->verp != NULL && ev.verp_to != NULL) {
		if (verp_check(br->verp, ev.verp_to, &vk, key) == 0) {
			verp_ok = true;
		} else if (bounces_looks_verp(br->verp, ev.verp_to)) {
			/* one of our return paths with a wrong signature: a
			 * forgery (or damage) must change nothing */
			struct store_event fe = {.kind = STORE_EVENT_UNKNOWN,
			                         .hard = -1,
			                         .diagnostic =
			                             "forged or damaged return "
			                             "path: nothing done",
			                         .raw = m->data,
			                         .rawlen = m->len};
			rc = bounces_record(br, &fe, m->id);
			bounce_event_free(&ev);
			return rc < 0 ? MAILBOX_STOP : MAILBOX_HANDLED;
		}
	}
	se.message_key = verp_ok ? key : NULL;
	se.message_id = ev.message_id;
	if (verp_ok && vk == VERP_UNSUBSCRIBE) {
		/* mail to a delivery's unsubscribe address: whatever it says */
		se.kind = STORE_EVENT_UNSUBSCRIBE;
		rc = bounces_record(br, &se, m->id);
	} else if (ev.kind == BOUNCE_DSN && ev.nrcpt > 0) {
		for (size_t i = 0; i < ev.nrcpt && rc == 0; i++) {
			const struct bounce_rcpt *r = &ev.rcpt[i];
			se.kind = STORE_EVENT_BOUNCE;
			se.email = r->address;
			se.status = r->status[0] ? r->status : NULL;
			se.reason = r->reason;
			se.hard = r->hard;
			se.diagnostic = r->diagnostic;
			rc = bounces_record(br, &se, m->id);
		}
	} else if (ev.kind == BOUNCE_COMPLAINT) {
		se.kind = STORE_EVENT_COMPLAINT;
		se.email = ev.nrcpt > 0 ? ev.rcpt[0].address : NULL;
		se.reason = "feedback";
		rc = bounces_record(br, &se, m->id);
	} else {
		se.kind = ev.kind == BOUNCE_AUTOREPLY ? STORE_EVENT_AUTOREPLY
		                                      : STORE_EVENT_UNKNOWN;
		rc = bounces_record(br, &se, m->id);
	}
	bounce_event_free(&ev);
	/* not recorded (the store is busy or full): leave it new */
	return rc < 0 ? MAILBOX_STOP : MAILBOX_HANDLED;
}

static void bounces_usage(FILE *f)
{
	fputs("usage: herald bounces fetch [--mailbox URL] [--store PATH] "
	      "[--config FILE]\n\n"
	      "Read the bounce mailbox once (default: herald.yaml's "
	      "bounces.mailbox, a\n"
	      "maildir:/path): record every bounce, complaint, auto-reply and "
	      "unsubscribe\n"
	      "request with its delivery, and act on it (a hard bounce, a "
	      "complaint or an\n"
	      "unsubscribe suppresses the address). Handled messages move to "
	      "cur/; nothing\n"
	      "is deleted. One line per event on stdout.\n",
	      f);
}

int cmd_bounces(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"store", required_argument, NULL, 'S'},
	    {"mailbox", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *storep = NULL, *url = NULL;
	struct config *cfg = NULL;
	struct verp *verp = NULL;
	struct mailbox *mb = NULL;
	const struct mailbox_backend *mbb;
	struct diag d = {0};
	struct bounces_run br = {.d = &d};
	int ch, rc = EX_USAGE, n;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			config = optarg;
			break;
		case 'S':
			storep = optarg;
			break;
		case 'm':
			url = optarg;
			break;
		case 'h':
			bounces_usage(stdout);
			return 0;
		default:
			bounces_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc || strcmp(argv[optind], "fetch") != 0) {
		bounces_usage(stderr);
		return EX_USAGE;
	}
	rc = EX_CONFIG;
	cfg = config_load(config_path(config), &d);
	if (cfg == NULL)
		goto done;
	if (url == NULL)
		url = cfg->bounce_mailbox;
	if (url == NULL || (mbb = mailbox_backend_for(url)) == NULL) {
		diag_add(&d, cfg->file, 0, 0,
		         "no bounce mailbox: give --mailbox maildir:/path or "
		         "bounces.mailbox in herald.yaml");
		goto done;
	}
	if (cfg->bounce_domain != NULL) {
		verp =
		    verp_load(cfg->bounce_secret_file, cfg->bounce_secret_env,
		              cfg->bounce_domain, &d);
		if (verp == NULL)
			goto done;
	}
	rc = EX_TEMPFAIL;
	br.st = store_open(storep ? storep : cfg->store, &d);
	br.verp = verp;
	if (br.st == NULL)
		goto done;
	if ((mb = mbb->open(url, &d)) == NULL)
		goto done;
	n = mbb->fetch(mb, BOUNCES_MAX, bounces_one, &br, &d);
	if (n < 0)
		goto done;
	printf("handled %d message%s: %zu events, %zu matched to deliveries, "
	       "%zu suppressed, %zu unknown\n",
	       n, n == 1 ? "" : "s", br.events, br.matched, br.suppressed,
	       br.unknown);
	rc = d.errors > 0 ? EX_TEMPFAIL : 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	if (mb != NULL)
		mbb->close(mb);
	if (br.st != NULL)
		store_close(br.st);
	verp_free(verp);
	config_free(cfg);
	return rc;
}
