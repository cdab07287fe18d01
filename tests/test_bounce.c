/*
 * bounce tests: messages built inline — a standard DSN (with folded
 * fields), an ARF complaint, an auto-reply, a human reply, CR-only and
 * LF-only line ends, a leading mbox "From " line, a message one byte over
 * the size limit, garbage — the reason classifier and its hardness,
 * replies asking to be unsubscribed (and those that do not), refusals at
 * DATA and MAIL FROM, and a text bounce naming thousands of addresses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/bounce.h"

/* A standard RFC 3464 report; Diagnostic-Code is folded. */
#define DSN                                                                    \
	"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"          \
	"To: bounces+abc@news.example.org\n"                                   \
	"Subject: Undelivered Mail Returned to Sender\n"                       \
	"MIME-Version: 1.0\n"                                                  \
	"Content-Type: multipart/report; report-type=delivery-status;\n"       \
	"\tboundary=\"XX\"\n"                                                  \
	"\n"                                                                   \
	"--XX\n"                                                               \
	"Content-Type: text/plain\n"                                           \
	"\n"                                                                   \
	"Your message could not be delivered.\n"                               \
	"--XX\n"                                                               \
	"Content-Type: message/delivery-status\n"                              \
	"\n"                                                                   \
	"Reporting-MTA: dns; mx.example.net\n"                                 \
	"\n"                                                                   \
	"Final-Recipient: rfc822; Jane@Example.COM\n"                          \
	"Original-Recipient: rfc822;jane@example.com\n"                        \
	"Action: failed\n"                                                     \
	"Status: 5.1.1\n"                                                      \
	"Remote-MTA: dns; mx.example.com\n"                                    \
	"Diagnostic-Code: smtp; 550 5.1.1 <jane@example.com>: Recipient\n"     \
	"    address rejected: User unknown in virtual mailbox table\n"        \
	"\n"                                                                   \
	"Final-Recipient: rfc822; full@example.com\n"                          \
	"Action: delayed\n"                                                    \
	"Status: 4.2.2\n"                                                      \
	"\n"                                                                   \
	"--XX\n"                                                               \
	"Content-Type: text/rfc822-headers\n"                                  \
	"\n"                                                                   \
	"From: News <news@news.example.org>\n"                                 \
	"To: jane@example.com\n"                                               \
	"Message-ID: <1234.abcd@news.example.org>\n"                           \
	"Subject: Our release\n"                                               \
	"\n"                                                                   \
	"--XX--\n"

static char *replace_eol(const char *s, const char *eol)
{
	size_t n = 0, el = strlen(eol);
	char *out = malloc(strlen(s) * el + 1);

	assert_non_null(out);
	for (; *s != '\0'; s++) {
		if (*s == '\n') {
			memcpy(out + n, eol, el);
			n += el;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
	return out;
}

/* The number of the line of msg where what begins (LF, CRLF or CR line
 * ends), 1 for the first. */
static unsigned line_number(const char *msg, const char *what)
{
	const char *at = strstr(msg, what);
	unsigned n = 1;

	assert_non_null(at);
	for (const char *c = msg; c < at; c++)
		if (*c == '\n' || (*c == '\r' && c[1] != '\n'))
			n++;
	return n;
}

static void check_dsn(const char *msg)
{
	struct bounce_event ev;
	struct diag d = {0};

	assert_int_equal(bounce_parse(msg, strlen(msg), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_DSN);
	assert_int_equal(ev.nrcpt, 2);
	assert_string_equal(ev.rcpt[0].address, "jane@example.com");
	assert_string_equal(ev.rcpt[0].action, "failed");
	assert_string_equal(ev.rcpt[0].status, "5.1.1");
	assert_int_equal(ev.rcpt[0].code, 550);
	assert_string_equal(ev.rcpt[0].remote_mta, "mx.example.com");
	/* unfolded, "smtp;" stripped */
	assert_string_equal(ev.rcpt[0].diagnostic,
	                    "550 5.1.1 <jane@example.com>: Recipient address "
	                    "rejected: User unknown in virtual mailbox table");
	assert_string_equal(ev.rcpt[0].reason, "userunknown");
	assert_int_equal(ev.rcpt[0].hard, 1);
	/* the verdict names its rule and the line it was read from, as it
	 * stands in the message, with its number there */
	assert_string_equal(ev.rcpt[0].rule, "status+text");
	assert_non_null(ev.rcpt[0].why);
	assert_string_equal(ev.rcpt[0].evidence,
	                    "Diagnostic-Code: smtp; 550 5.1.1 <jane@example.com>: "
	                    "Recipient");
	assert_string_equal(ev.rcpt[1].evidence, "Status: 4.2.2");
	assert_int_equal(ev.rcpt[0].evidence_line,
	                 line_number(msg, "Diagnostic-Code:"));
	assert_string_equal(ev.rcpt[1].address, "full@example.com");
	assert_string_equal(ev.rcpt[1].status, "4.2.2");
	assert_string_equal(ev.rcpt[1].reason, "mailboxfull");
	assert_int_equal(ev.rcpt[1].hard, 0);
	assert_string_equal(ev.message_id, "1234.abcd@news.example.org");
	assert_string_equal(ev.verp_to, "bounces+abc@news.example.org");
	bounce_event_free(&ev);
	assert_int_equal(d.errors, 0);
	diag_clear(&d);
}

static void test_dsn_lf(void **state)
{
	(void)state;
	check_dsn(DSN);
}

static void test_dsn_crlf(void **state)
{
	char *m = replace_eol(DSN, "\r\n");

	(void)state;
	check_dsn(m);
	free(m);
}

static void test_dsn_cr(void **state)
{
	char *m = replace_eol(DSN, "\r");

	(void)state;
	check_dsn(m);
	free(m);
}

static void test_dsn_mbox(void **state)
{
	const char *from = "From MAILER-DAEMON  Tue Jan  2 03:04:05 2024\n";
	char *m = malloc(strlen(from) + sizeof DSN);

	(void)state;
	assert_non_null(m);
	memcpy(m, from, strlen(from));
	memcpy(m + strlen(from), DSN, sizeof DSN);
	check_dsn(m);
	free(m);
}

static void test_arf(void **state)
{
	const char *m = "From: feedback@isp.example\r\n"
	                "To: abuse+x@news.example.org\r\n"
	                "Subject: complaint\r\n"
	                "MIME-Version: 1.0\r\n"
	                "Content-Type: multipart/report; "
	                "report-type=feedback-report; boundary=b\r\n"
	                "\r\n"
	                "--b\r\n"
	                "Content-Type: text/plain\r\n"
	                "\r\n"
	                "This is an abuse report.\r\n"
	                "--b\r\n"
	                "Content-Type: message/feedback-report\r\n"
	                "\r\n"
	                "Feedback-Type: abuse\r\n"
	                "User-Agent: isp/1.0\r\n"
	                "Version: 1\r\n"
	                "\r\n"
	                "--b\r\n"
	                "Content-Type: message/rfc822\r\n"
	                "\r\n"
	                "From: news@news.example.org\r\n"
	                "To: Reader <Reader@Isp.Example>\r\n"
	                "Message-ID: <rel-7@news.example.org>\r\n"
	                "Subject: hello\r\n"
	                "\r\n"
	                "body\r\n"
	                "--b--\r\n";
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_int_equal(bounce_parse(m, strlen(m), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_COMPLAINT);
	assert_string_equal(ev.feedback_type, "abuse");
	assert_int_equal(ev.nrcpt, 1);
	assert_string_equal(ev.rcpt[0].address, "reader@isp.example");
	assert_string_equal(ev.rcpt[0].reason, "feedback");
	assert_int_equal(ev.rcpt[0].hard, -1);
	assert_string_equal(ev.message_id, "rel-7@news.example.org");
	bounce_event_free(&ev);
	diag_clear(&d);
}

static void test_autoreply(void **state)
{
	const char *m = "From: Jane <jane@example.com>\n"
	                "To: news@news.example.org\n"
	                "Auto-Submitted: auto-replied\n"
	                "Subject: Automatic reply: Our release\n"
	                "\n"
	                "I am away until Monday; write to bob@example.com.\n";
	const char *m2 = "From: Hans <hans@example.de>\n"
	                 "To: news@news.example.org\n"
	                 "Subject: Abwesenheitsnotiz\n"
	                 "\n"
	                 "Ich bin nicht da.\n";
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_int_equal(bounce_parse(m, strlen(m), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_AUTOREPLY);
	assert_int_equal(ev.nrcpt, 1);
	assert_string_equal(ev.rcpt[0].address, "jane@example.com");
	assert_string_equal(ev.rcpt[0].reason, "vacation");
	assert_int_equal(ev.rcpt[0].hard, -1);
	bounce_event_free(&ev);
	assert_int_equal(bounce_parse(m2, strlen(m2), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_AUTOREPLY);
	bounce_event_free(&ev);
	diag_clear(&d);
}

/* A person replying and quoting addresses is not a bounce. */
static void test_human_reply(void **state)
{
	const char *m = "From: Jane <jane@example.com>\n"
	                "To: news@news.example.org\n"
	                "Subject: Re: Our release\n"
	                "\n"
	                "bob@example.com\n"
	                "  550 5.1.1 user unknown\n";
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_int_equal(bounce_parse(m, strlen(m), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_NONE);
	assert_int_equal(ev.nrcpt, 0);
	bounce_event_free(&ev);
	diag_clear(&d);
}

/* Exim's text bounce. */
static void test_exim_text(void **state)
{
	const char *m =
	    "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\n"
	    "To: bounces@news.example.org\n"
	    "X-Failed-Recipients: gone@example.com\n"
	    "Auto-Submitted: auto-replied\n"
	    "Subject: Mail delivery failed: returning message to sender\n"
	    "\n"
	    "A message that you sent could not be delivered to one or "
	    "more of its\nrecipients. This is a permanent error. The "
	    "following address(es) failed:\n\n"
	    "  gone@example.com\n"
	    "    SMTP error from remote mail server after RCPT "
	    "TO:<gone@example.com>:\n"
	    "    host mx.example.com [192.0.2.1]: 550 5.1.1 No such user\n"
	    "\n"
	    "------ This is a copy of the message, including all the "
	    "headers. ------\n"
	    "Message-Id: <x@news.example.org>\n"
	    "From: news@news.example.org\n";
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_int_equal(bounce_parse(m, strlen(m), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_DSN);
	assert_int_equal(ev.nrcpt, 1);
	assert_string_equal(ev.rcpt[0].address, "gone@example.com");
	assert_string_equal(ev.rcpt[0].status, "5.1.1");
	assert_int_equal(ev.rcpt[0].code, 550);
	assert_string_equal(ev.rcpt[0].reason, "userunknown");
	bounce_event_free(&ev);
	diag_clear(&d);
}

/* msg is a bounce about one recipient, address; with rule, its verdict
 * is hard by rule. */
static void check_one(const char *msg, const char *address, int hard,
                      const char *rule)
{
	struct bounce_event ev;
	struct diag d = {0};

	assert_int_equal(bounce_parse(msg, strlen(msg), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_DSN);
	assert_int_equal(ev.nrcpt, 1);
	assert_string_equal(ev.rcpt[0].address, address);
	if (rule != NULL) {
		assert_int_equal(ev.rcpt[0].hard, hard);
		assert_string_equal(ev.rcpt[0].rule, rule);
	}
	bounce_event_free(&ev);
	diag_clear(&d);
}

/* An address at the end of a sentence: its full stop is not part of the
 * domain (it once made the address unreadable). */
static void test_text_full_stop(void **state)
{
	const char *m =
	    "From: mailer-daemon@mx.example.net\n"
	    "To: bounces@news.example.org\n"
	    "Subject: There was an error sending your mail\n"
	    "\n"
	    "We could not deliver your message.\n"
	    "The following recipients returned permanent errors: "
	    "jane@mail.example.com. Reason: the server refused it.\n";

	(void)state;
	check_one(m, "jane@mail.example.com", 0, NULL);
}

/* A NUL byte, in the message or in a decoded text part, is read as a
 * space (normalise): a Sendmail line with one between the reply code and
 * the address still names its recipient. */
static void test_nul_bytes(void **state)
{
	static const char head[] =
	    "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
	    "To: bounces@news.example.org\n"
	    "Subject: Returned mail: see transcript for details\n";
	static const char raw[] =
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain\n\n"
	    "   ----- Transcript of session follows -----\n"
	    "550 5.1.1\0<ghost@example.com>... User unknown\n";
	static const char b64[] =
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain\n"
	    "Content-Transfer-Encoding: base64\n\n"
	    /* "   ----- Transcript of session follows -----\r\n"
	     * "550 5.1.1\0<ghost@example.com>... User unknown\r\n" */
	    "ICAgLS0tLS0gVHJhbnNjcmlwdCBvZiBzZXNzaW9uIGZvbGxvd3MgLS0tLS0NCjU1"
	    "MCA1LjEuMQA8Z2hvc3RAZXhhbXBsZS5jb20+Li4uIFVzZXIgdW5rbm93bg0K\n";
	const struct {
		const char *body;
		size_t n;
	} cases[] = {{raw, sizeof raw - 1}, {b64, sizeof b64 - 1}};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t hn = sizeof head - 1, n = hn + cases[i].n;
		char *m = malloc(n);
		struct bounce_event ev;
		struct diag d = {0};

		assert_non_null(m);
		memcpy(m, head, hn);
		memcpy(m + hn, cases[i].body, cases[i].n);
		assert_int_equal(bounce_parse(m, n, &ev, &d), 0);
		assert_int_equal(ev.kind, BOUNCE_DSN);
		assert_int_equal(ev.nrcpt, 1);
		assert_string_equal(ev.rcpt[0].address, "ghost@example.com");
		assert_string_equal(ev.rcpt[0].status, "5.1.1");
		assert_int_equal(ev.rcpt[0].code, 550);
		bounce_event_free(&ev);
		diag_clear(&d);
		free(m);
	}
}

static void test_too_large(void **state)
{
	size_t n = (size_t)BOUNCE_MAX_SIZE + 1;
	char *m = malloc(n);
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_non_null(m);
	memset(m, 'a', n);
	assert_int_equal(bounce_parse(m, n, &ev, &d), -1);
	assert_int_equal(d.errors, 1);
	assert_non_null(strstr(diag_first(&d), "larger than"));
	assert_int_equal(ev.nrcpt, 0);
	free(m);
	diag_clear(&d);
	/* exactly the limit is parsed */
	m = calloc(1, BOUNCE_MAX_SIZE);
	assert_non_null(m);
	assert_int_equal(bounce_parse(m, BOUNCE_MAX_SIZE, &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_NONE);
	bounce_event_free(&ev);
	free(m);
	diag_clear(&d);
}

static void test_garbage(void **state)
{
	static const char *const msgs[] = {
	    "",
	    "\n",
	    "\r\r\r",
	    "From ",
	    "no colon here at all\n\n\n",
	    "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=z\n\n--z\nContent-Type: message/delivery-status\n\n"
	    "Final-Recipient: rfc822;\nStatus: 5.\n\n--z",
	    "Content-Type: message/delivery-status\n\n:::\n\n\n:\n",
	    "Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--\n",
	    "Subject: =?utf-8?B?////?=\nFrom: <@>\n\n@@@ a@ @b 5.5.5.5.5\n",
	};
	unsigned char rnd[4096];
	uint32_t x = 12345;
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
		assert_int_equal(
		    bounce_parse(msgs[i], strlen(msgs[i]), &ev, &d), 0);
		assert_true(ev.kind == BOUNCE_NONE || ev.nrcpt > 0);
		bounce_event_free(&ev);
	}
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof rnd; i++) {
			x = x * 1103515245u + 12345u;
			rnd[i] = (unsigned char)(x >> 16);
		}
		assert_int_equal(bounce_parse((char *)rnd, sizeof rnd, &ev, &d),
		                 0);
		bounce_event_free(&ev);
	}
	assert_int_equal(d.errors, 0);
	diag_clear(&d);
}

/* kind and message_id of one message given inline */
static enum bounce_kind kind_of(const char *m, char **mid)
{
	struct bounce_event ev;
	struct diag d = {0};
	enum bounce_kind k;

	assert_int_equal(bounce_parse(m, strlen(m), &ev, &d), 0);
	k = ev.kind;
	if (mid != NULL)
		*mid = ev.message_id != NULL ? strdup(ev.message_id) : NULL;
	if (k == BOUNCE_UNSUBSCRIBE) {
		assert_int_equal(ev.nrcpt, 1);
		assert_string_equal(ev.rcpt[0].address, "jane@example.com");
		assert_int_equal(ev.rcpt[0].hard, -1);
	}
	bounce_event_free(&ev);
	diag_clear(&d);
	return k;
}

#define REPLY_HEAD                                                             \
	"From: Jane <jane@example.com>\n"                                      \
	"To: news+unsubscribe@news.example.org\n"                              \
	"In-Reply-To: <0123456789abcdef0123456789abcdef@news.example.org>\n"   \
	"References: <x@elsewhere> "                                           \
	"<0123456789abcdef0123456789abcdef@news.example.org>\n"

static void test_unsubscribe(void **state)
{
	/* the subject alone, in the languages herald writes and its
	 * journalists reply in; RFC 2047 encoded or not */
	static const char *const subjects[] = {
	    "Unsubscribe",
	    "RE: unsubscribe me please",
	    "Remove me!",
	    "STOP",
	    "=?UTF-8?B?0J7RgtC/0LjRiNC40YLQtSDQvNC10L3Rjw==?=", /* Отпишите меня */
	    "=?UTF-8?B?0JLRltC00L/QuNGI0ZbRgtGMINC80LXQvdC1?=", /* Відпишіть мене */
	    "Re: Darme de baja, por favor",
	    "=?UTF-8?Q?D=C3=A9sabonnez-moi?=",
	    "=?UTF-8?B?2KXZhNi62KfYoSDYp9mE2KfYtNiq2LHYp9mD?=", /* إلغاء الاشتراك */
	    "Abmelden bitte",
	};
	char m[1024], *mid = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
		snprintf(m, sizeof m,
		         REPLY_HEAD "Subject: %s\n\nSent from my phone\n",
		         subjects[i]);
		assert_int_equal(kind_of(m, &mid), BOUNCE_UNSUBSCRIBE);
		assert_non_null(mid);
		/* herald's own Message-ID, not the first reference */
		assert_string_equal(
		    mid, "0123456789abcdef0123456789abcdef@news.example.org");
		free(mid);
	}
	/* the first line of the reply's own text, the quote below */
	assert_int_equal(
	    kind_of(REPLY_HEAD "Subject: Re: Our release\n"
	                       "Content-Type: text/plain; charset=utf-8\n\n"
	                       "\n  \xd0\xbe\xd1\x82\xd0\xbf\xd0\xb8\xd1\x81\xd0"
	                       "\xba\xd0\xb0.\n\n"
	                       "> On Monday News wrote:\n> Our release\n",
	            NULL),
	    BOUNCE_UNSUBSCRIBE);
	/* a first line quoted is not the reply's own */
	assert_int_equal(kind_of(REPLY_HEAD "Subject: Re: Our release\n\n"
	                                    "> unsubscribe\n"
	                                    "Thanks, a great report.\n",
	                         NULL),
	                 BOUNCE_NONE);
}

static void test_unsubscribe_not(void **state)
{
	(void)state;
	/* mentioning unsubscribing in a longer text is not asking */
	assert_int_equal(
	    kind_of(REPLY_HEAD "Subject: Re: Our release\n\n"
	                       "I will not unsubscribe, but please send me "
	                       "the full report.\n",
	            NULL),
	    BOUNCE_NONE);
	assert_int_equal(kind_of(REPLY_HEAD
	                         "Subject: How do I unsubscribe from this?\n\n"
	                         "Hello\n",
	                         NULL),
	                 BOUNCE_NONE);
	/* an auto-reply that says stop is still an auto-reply */
	assert_int_equal(kind_of(REPLY_HEAD "Auto-Submitted: auto-replied\n"
	                                    "Subject: Out of office\n\n"
	                                    "stop\n",
	                         NULL),
	                 BOUNCE_AUTOREPLY);
	/* a bounce whose text begins with "unsubscribe" is a bounce */
	assert_int_equal(
	    kind_of("From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
	            "To: bounces+abc@news.example.org\n"
	            "Subject: Unsubscribe\n\n"
	            "unsubscribe\n"
	            "<bob@example.com>: 550 5.1.1 user unknown\n",
	            NULL),
	    BOUNCE_DSN);
}

/* A Sendmail-style text bounce, a refusal at DATA and one at MAIL FROM:
 * none of them hard. */
static void test_text_stage(void **state)
{
	static const char *const m[] = {
	    "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
	    "To: bounces+abc@news.example.org\n"
	    "Subject: Undelivered Mail Returned to Sender\n\n"
	    "This is the mail system at host mx.example.net.\n\n"
	    "<bob@example.com>: host mx.example.com[192.0.2.1] said: 550\n"
	    "    5.1.1 Unknown user bob@example.com (in reply to end of DATA\n"
	    "    command)\n",
	    "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\n"
	    "To: bounces+abc@news.example.org\n"
	    "Subject: Mail delivery failed: returning message to sender\n\n"
	    "  bob@example.com\n"
	    "    SMTP error from remote mail server after MAIL FROM:<x@y.org>:\n"
	    "    553 5.1.0 sender domain does not exist\n",
	};
	static const char *const reason[] = {"filtered", "rejected"};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct bounce_event ev;
		struct diag d = {0};

		assert_int_equal(bounce_parse(m[i], strlen(m[i]), &ev, &d), 0);
		assert_int_equal(ev.kind, BOUNCE_DSN);
		assert_int_equal(ev.nrcpt, 1);
		assert_string_equal(ev.rcpt[0].address, "bob@example.com");
		assert_string_equal(ev.rcpt[0].reason, reason[i]);
		assert_int_not_equal(ev.rcpt[0].hard, 1);
		bounce_event_free(&ev);
		diag_clear(&d);
	}
}

/* A text bounce with many recipients on many lines stays linear and
 * capped. */
/* Hostile structure at the size limit: thousands of delimiter lines, near
 * misses of the boundary, nested multiparts, a header without end, a
 * report of many blocks. Nothing is timed: a parser that did quadratic
 * work on any of them would not finish within the test's timeout (under
 * ASan too). */
static void fill(char *m, size_t *n, size_t cap, const char *unit)
{
	size_t k = strlen(unit);

	while (*n + k < cap) {
		memcpy(m + *n, unit, k);
		*n += k;
	}
}

static void test_hostile_structure(void **state)
{
	static const char *const heads[] = {
	    /* many parts: the part cap */
	    "Content-Type: multipart/mixed; boundary=b\n\n",
	    /* nested multiparts, each with its own boundary */
	    "Content-Type: multipart/mixed; boundary=b\n\n",
	    /* a header that never ends */
	    "Subject: x\n",
	    /* a report of many blocks: the recipient cap */
	    "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n",
	    /* near misses of the boundary, and one original that never
	     * ends its header */
	    "Content-Type: multipart/mixed; boundary=bb\n\n--bb\n"
	    "Content-Type: message/rfc822\n\n",
	};
	static const char *const units[] = {
	    "--b\nContent-Type: text/plain\n\nx\n",
	    "--b\nContent-Type: multipart/mixed; boundary=b\n\n",
	    "X-Long: a\n continued\n",
	    "Final-Recipient: rfc822; u@example.com\nStatus: 5.1.1\n\n",
	    "--b\n--bx\nTo: x\n-\n",
	};
	size_t cap = BOUNCE_MAX_SIZE;
	char *m = malloc(cap);

	(void)state;
	assert_non_null(m);
	for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		struct bounce_event ev;
		struct diag d = {0};
		size_t n = 0;

		n = (size_t)snprintf(m, cap,
		                     "From: MAILER-DAEMON@mx.example.net\n"
		                     "Subject: failure notice\n%s",
		                     heads[i]);
		fill(m, &n, cap, units[i]);
		assert_int_equal(bounce_parse(m, n, &ev, &d), 0);
		assert_true(ev.nrcpt <= 1000);
		bounce_event_free(&ev);
		diag_clear(&d);
	}
	free(m);
}

/* Text bounces whose explanation is not on the lines after the
 * recipient's: before them (MailMarshal), or a Sendmail transcript where
 * the next coded lines belong to the next recipient; and a reply about
 * another address than the recipient's. */
static void test_text_context(void **state)
{
	static const char *const msgs[] = {
	    "From: MAILER-DAEMON@mx.example.net\n"
	    "Subject: Undeliverable mail\n\n"
	    "Could not be delivered because of\n\n550 5.1.1 User unknown\n\n"
	    "The following recipients were affected:\n"
	    "    ann@example.com\n\n\nAdditional Information\n",
	    "From: MAILER-DAEMON@mx.example.net\n"
	    "Subject: Returned mail: see transcript for details\n\n"
	    "554 <bob@example.edu>... Remote protocol error: Connection "
	    "reset by peer\n"
	    "550 example.org (smtp)... 550 Host unknown\n"
	    "554 <cat@example.org>... 550 Host unknown\n",
	    "From: MAILER-DAEMON@mx.example.net\n"
	    "Subject: Returned mail\n"
	    "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n"
	    "Final-Recipient: rfc822; dan@example.jp\nAction: failed\n"
	    "Status: 5.2.1\nDiagnostic-Code: smtp; 550 5.2.1 "
	    "<alias@example.jp>... User Unknown\n--b--\n",
	};
	static const char *const want[][2] = {
	    {"ann@example.com", "userunknown"},
	    {"bob@example.edu", "networkerror"},
	    {"dan@example.jp", "filtered"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
		struct bounce_event ev;
		struct diag d = {0};

		assert_int_equal(bounce_parse(msgs[i], strlen(msgs[i]), &ev, &d),
		                 0);
		assert_int_equal(ev.kind, BOUNCE_DSN);
		assert_true(ev.nrcpt >= 1);
		assert_string_equal(ev.rcpt[0].address, want[i][0]);
		assert_string_equal(ev.rcpt[0].reason, want[i][1]);
		assert_true(ev.rcpt[0].hard != 1 || i == 0);
		bounce_event_free(&ev);
		diag_clear(&d);
	}
}

static void test_text_many(void **state)
{
	size_t cap = 2u * 1024u * 1024u, n = 0;
	char *m = malloc(cap);
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_non_null(m);
	n += (size_t)snprintf(m, cap,
	                      "From: MAILER-DAEMON@mx.example.net\n"
	                      "Subject: failure notice\n\n");
	for (size_t i = 0; n + 64 < cap; i++)
		n += (size_t)snprintf(m + n, cap - n,
		                      "<u%zu@example.com>: 550 no such user\n", i);
	assert_int_equal(bounce_parse(m, n, &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_DSN);
	assert_true(ev.nrcpt > 0 && ev.nrcpt <= 1000);
	bounce_event_free(&ev);
	diag_clear(&d);
	free(m);
}

static void test_reason(void **state)
{
	(void)state;
	assert_string_equal(bounce_reason("5.1.1", 550, NULL), "userunknown");
	assert_string_equal(bounce_reason("5.1.2", 0, NULL), "hostunknown");
	assert_string_equal(bounce_reason("5.2.2", 552, NULL), "mailboxfull");
	assert_string_equal(bounce_reason("4.2.2", 452, NULL), "mailboxfull");
	assert_string_equal(bounce_reason("5.3.4", 0, NULL), "mesgtoobig");
	assert_string_equal(bounce_reason("4.4.7", 0, NULL), "expired");
	assert_string_equal(
	    bounce_reason("5.7.1", 550, "blocked using zen.spamhaus.org"),
	    "blocked");
	assert_string_equal(
	    bounce_reason("5.7.1", 550, "Message rejected as spam"),
	    "spamdetected");
	assert_string_equal(bounce_reason("5.7.1", 550, "SPF check failed"),
	                    "authfailure");
	assert_string_equal(bounce_reason(NULL, 0, NULL), "undefined");
	assert_int_equal(bounce_reason_hard("userunknown"), 1);
	assert_int_equal(bounce_reason_hard("hostunknown"), 1);
	assert_int_equal(bounce_reason_hard("mailboxfull"), 0);
	assert_int_equal(bounce_reason_hard("expired"), 0);
	assert_int_equal(bounce_reason_hard("blocked"), -1);
	assert_int_equal(bounce_reason_hard("spamdetected"), -1);
	assert_int_equal(bounce_reason_hard("authfailure"), -1);
	assert_int_equal(bounce_reason_hard("feedback"), -1);
	assert_int_equal(bounce_reason_hard(NULL), -1);
}


/* A report about one recipient: its Action, Status and Diagnostic-Code
 * lines (NULL: none) and the notice to the sender above it. */
/* (not inlined: gcc 12 then takes the returned buffer for the address
 * of a local and warns of a dangling pointer) */
__attribute__((noinline)) static char *
report_action(const char *notice, const char *action, const char *status,
              const char *diag)
{
	char *m = NULL;
	int n = asprintf(
	    &m,
	    "From: MAILER-DAEMON@mx.example.net\n"
	    "To: bounces+abc@news.example.org\n"
	    "Subject: Undelivered Mail Returned to Sender\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"XX\"\n"
	    "\n"
	    "--XX\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "%s\n"
	    "--XX\n"
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "\n"
	    "Final-Recipient: rfc822; jane@example.com\n"
	    "Action: %s\n"
	    "%s%s%s"
	    "%s%s%s"
	    "\n"
	    "--XX--\n",
	    notice, action, status ? "Status: " : "", status ? status : "",
	    status ? "\n" : "", diag ? "Diagnostic-Code: smtp; " : "",
	    diag ? diag : "", diag ? "\n" : "");

	assert_true(n > 0);
	return m;
}

static char *report(const char *notice, const char *status, const char *diag)
{
	return report_action(notice, "failed", status, diag);
}

static void check_verdict(const char *name, const char *notice,
                          const char *status, const char *diag, int hard,
                          const char *rule, const char *command)
{
	char *m = report(notice, status, diag);
	struct bounce_event ev;
	struct diag d = {0};

	assert_int_equal(bounce_parse(m, strlen(m), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_DSN);
	assert_int_equal(ev.nrcpt, 1);
	if (ev.rcpt[0].hard != hard || strcmp(ev.rcpt[0].rule, rule) != 0)
		fail_msg("%s: %d by %s, expected %d by %s", name,
		         ev.rcpt[0].hard, ev.rcpt[0].rule, hard, rule);
	if (command == NULL ? ev.rcpt[0].command != NULL
	                    : ev.rcpt[0].command == NULL ||
	                          strcmp(ev.rcpt[0].command, command) != 0)
		fail_msg("%s: command %s, expected %s", name,
		         ev.rcpt[0].command ? ev.rcpt[0].command : "(none)",
		         command ? command : "(none)");
	bounce_event_free(&ev);
	diag_clear(&d);
	free(m);
}

static void test_verdicts(void **state)
{
	(void)state;
	check_verdict("5.1.1 and Postfix's words", "Sorry.", "5.1.1",
	              "550 5.1.1 <jane@example.com>: Recipient address "
	              "rejected: User unknown in local recipient table",
	              1, "status+text", "RCPT");
	check_verdict("a notice of a full disk beside 5.1.1",
	              "Your message was automatically rejected:\nNot enough "
	              "disk space",
	              "5.1.1", "550 5.1.1 <jane@example.com>... User Unknown", 0,
	              "notice-disagrees", "RCPT");
	check_verdict("Oracle Messaging Server's status comment",
	              "Sorry.", "5.0.0 (Remote SMTP server has rejected address)",
	              "550 <x@other.example>: User unknown", 1, "rcpt+text",
	              "RCPT");
	check_verdict("Sendmail's reply naming the recipient", "Sorry.", NULL,
	              "550 <jane@example.com>... User unknown", 1, "rcpt+text",
	              "RCPT");
	/* a bare address first is no proof of RCPT TO: filter gateways
	 * write that form too */
	check_verdict("a reply naming the bare recipient", "Sorry.", NULL,
	              "550 jane@example.com... No such user", 0, "text-only",
	              NULL);
	check_verdict("words alone", "Sorry.", "5.0.0", "550 User unknown", 0,
	              "text-only", NULL);
	check_verdict("Gmail's sentence", "Sorry.", "5.0.0",
	              "The email account that you tried to reach does not "
	              "exist.",
	              1, "mta-text", NULL);
	check_verdict("5.2.1 with user-unknown words", "Sorry.", "5.2.1",
	              "550 5.2.1 <jane@example.com>... User Unknown", 0,
	              "status-disagrees", "RCPT");
	check_verdict("policy", "Sorry.", "5.7.1",
	              "550 5.7.1 <jane@example.com>: Recipient address "
	              "rejected: rejected for policy reasons",
	              -1, "sender-side", "RCPT");
	check_verdict("greylisting given up", "Sorry.", "4.7.1",
	              "450 4.7.1 <jane@example.com>: Recipient address "
	              "rejected: Greylisted, see http://postgrey.example/",
	              0, "temporary", "RCPT");
	check_verdict("mailbox full", "Sorry.", "5.2.2",
	              "552 5.2.2 <jane@example.com>: mailbox full", 0,
	              "recipient-side", "RCPT");
	check_verdict("refused after the message", "Sorry.", "5.1.1",
	              "550 5.1.1 Mailbox does not exist (in reply to end of "
	              "DATA command)",
	              0, "after-data", "DATA");
	/* a known MTA's sentence, but the report says it came after the
	 * message: the server had accepted the address, a filter speaks */
	check_verdict("Gmail's sentence after DATA", "Sorry.", "5.0.0",
	              "550 The email account that you tried to reach does not "
	              "exist. (in reply to end of DATA command)",
	              0, "after-data", "DATA");
	/* Google Workspace's reply for an address its domain does not
	 * have: "#5.1.0" before the words, and nothing else */
	check_verdict("Google Workspace's #5.1.0", "Sorry.", "5.0.0",
	              "550 #5.1.0 Address rejected.", 1, "mta-text", NULL);
	check_verdict("5.1.0 address rejected, not Google's form", "Sorry.",
	              "5.0.0", "550 5.1.0 Address rejected.", 0,
	              "recipient-side", NULL);
	/* Orange and La Poste: the bilingual sentence of their 416 code */
	check_verdict("Orange's invalid recipient", "Sorry.", "5.0.0",
	              "550 5.5.0 Adresse destinataire invalide. Invalid "
	              "recipient. LPN007_416",
	              1, "mta-text", NULL);
	check_verdict("invalid recipient, another server", "Sorry.", "5.0.0",
	              "550 5.5.0 Invalid recipient", 0, "text-only", NULL);
	/* Exchange Online Protection's directory-based edge blocking: the
	 * recipient is not in the organisation's directory (5.4.1 is
	 * Microsoft's documented status for it) */
	check_verdict("Exchange Online's directory-based edge blocking",
	              "Sorry.", "5.4.1",
	              "550 5.4.1 Recipient address rejected: Access denied. "
	              "AS(201806281) "
	              "[BN8NAM12FT042.eop-nam12.prod.protection.outlook.com]",
	              1, "rcpt+text", "RCPT");
	check_verdict("5.4.1 access denied from another server", "Sorry.",
	              "5.4.1",
	              "550 5.4.1 Recipient address rejected: Access denied",
	              0, "status-disagrees", "RCPT");
	check_verdict("access denied with 5.7.1", "Sorry.", "5.7.1",
	              "550 5.7.1 Recipient address rejected: Access denied "
	              "[mx.protection.outlook.com]",
	              0, "status-disagrees", "RCPT");
}

/* A report that the message was delivered is no bounce. */
static void test_success_report(void **state)
{
	char *m = report_action("Delivered.", "relayed", "2.0.0",
	                        "250 2.0.0 Ok: queued");
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_int_equal(bounce_parse(m, strlen(m), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_NONE);
	bounce_event_free(&ev);
	diag_clear(&d);
	free(m);
}

/* The DragonFly Mail Agent's notice: no report part, the recipient, the
 * command and the reply in its own sentences. */
static void test_dma(void **state)
{
	static const char msg[] =
	    "Received: from MAILER-DAEMON\n"
	    "\tid e0728\n"
	    "\tby news.example.org (DragonFly Mail Agent v0.13);\n"
	    "\tTue, 11 Jun 2024 18:31:33 +0900\n"
	    "From: MAILER-DAEMON <>\n"
	    "To: bounces+abc@news.example.org\n"
	    "Subject: Mail delivery failed\n"
	    "\n"
	    "This is the DragonFly Mail Agent v0.13 at news.example.org.\n"
	    "\n"
	    "There was an error delivering your mail to <Jane@example.com>.\n"
	    "\n"
	    "mx.example.com [192.0.2.25] did not like our RCPT TO:\n"
	    "550 5.1.1 <jane@example.com>: Recipient address rejected: User "
	    "unknown in local recipient table\n"
	    "\n"
	    "There was an error delivering your mail to <bob@example.net>.\n"
	    "\n"
	    "Could not deliver for the last 432000 seconds. Giving up.\n"
	    "\n"
	    "Message headers follow.\n"
	    "\n"
	    "Subject: Our release\n"
	    "To: <jane@example.com>\n";
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_int_equal(bounce_parse(msg, strlen(msg), &ev, &d), 0);
	assert_int_equal(ev.kind, BOUNCE_DSN);
	assert_int_equal(ev.nrcpt, 2);
	assert_string_equal(ev.rcpt[0].address, "jane@example.com");
	assert_string_equal(ev.rcpt[0].command, "RCPT");
	assert_string_equal(ev.rcpt[0].status, "5.1.1");
	assert_int_equal(ev.rcpt[0].hard, 1);
	assert_string_equal(ev.rcpt[0].rule, "status+text");
	assert_int_equal(ev.rcpt[0].evidence_line, 14);
	assert_string_equal(ev.rcpt[1].address, "bob@example.net");
	assert_null(ev.rcpt[1].command);
	assert_int_equal(ev.rcpt[1].hard, 0);
	assert_string_equal(ev.rcpt[1].evidence,
	                    "Could not deliver for the last 432000 seconds. "
	                    "Giving up.");
	bounce_event_free(&ev);
	diag_clear(&d);
}

/* Amazon SES receiving writes reports from a receipt rule's bounce
 * action: "5.1.1 Mailbox does not exist" there proves nothing. */
static void test_ses_receiving(void **state)
{
	char *m = report("Sorry.", "5.1.1", "550 5.1.1 Mailbox does not exist");
	char *r = strstr(m, "mx.example.net\n\nFinal"), *m2 = NULL;
	struct bounce_event ev;
	struct diag d = {0};

	(void)state;
	assert_non_null(r);
	*r = '\0';
	assert_true(asprintf(&m2, "%sinbound-smtp.us-west-2.amazonaws.com%s", m,
	                     r + strlen("mx.example.net")) > 0);
	assert_int_equal(bounce_parse(m2, strlen(m2), &ev, &d), 0);
	assert_int_equal(ev.nrcpt, 1);
	assert_int_equal(ev.rcpt[0].hard, 0);
	assert_string_equal(ev.rcpt[0].rule, "service-rule");
	bounce_event_free(&ev);
	diag_clear(&d);
	free(m);
	free(m2);
}

/* Amazon SES receiving refused RCPT TO in another MTA's session (SES is
 * its Remote-MTA, not its Reporting-MTA): no receipt rule covers the
 * recipient, no rule's bounce action wrote the words. */
static void test_ses_remote(void **state)
{
	static const char msg[] =
	    "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
	    "To: bounces+abc@news.example.org\n"
	    "Subject: Returned mail: see transcript for details\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"XX\"\n"
	    "\n"
	    "--XX\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "   ----- The following addresses had permanent fatal errors "
	    "-----\n"
	    "<jane@example.com>\n"
	    "    (reason: 550 5.1.1 Requested action not taken: mailbox "
	    "unavailable)\n"
	    "--XX\n"
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "\n"
	    "Final-Recipient: RFC822; jane@example.com\n"
	    "Action: failed\n"
	    "Status: 5.1.1\n"
	    "Remote-MTA: DNS; inbound-smtp.eu-west-1.amazonaws.com\n"
	    "Diagnostic-Code: SMTP; 550 5.1.1 Requested action not taken: "
	    "mailbox unavailable\n"
	    "\n"
	    "--XX--\n";

	(void)state;
	check_one(msg, "jane@example.com", 1, "status+text");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verdicts),
	    cmocka_unit_test(test_success_report),
	    cmocka_unit_test(test_dma),
	    cmocka_unit_test(test_ses_receiving),
	    cmocka_unit_test(test_ses_remote),
	    cmocka_unit_test(test_dsn_lf),
	    cmocka_unit_test(test_dsn_crlf),
	    cmocka_unit_test(test_dsn_cr),
	    cmocka_unit_test(test_dsn_mbox),
	    cmocka_unit_test(test_arf),
	    cmocka_unit_test(test_autoreply),
	    cmocka_unit_test(test_human_reply),
	    cmocka_unit_test(test_exim_text),
	    cmocka_unit_test(test_text_full_stop),
	    cmocka_unit_test(test_nul_bytes),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_reason),
	    cmocka_unit_test(test_unsubscribe),
	    cmocka_unit_test(test_unsubscribe_not),
	    cmocka_unit_test(test_text_stage),
	    cmocka_unit_test(test_text_many),
	    cmocka_unit_test(test_hostile_structure),
	    cmocka_unit_test(test_text_context),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
