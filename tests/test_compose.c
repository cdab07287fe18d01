/*
 * compose tests: what a journalist's mail client relies on, checked on the
 * bytes — CRLF only, 7-bit only, line lengths, the header fields and their
 * order, deterministic boundaries, RFC 2231 file names — and that no value
 * with a CR, LF or NUL can add a header field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/compose.h"

static const char text[] = "Hello,\nthis is the release.\n.\nFrom here on "
                           "a line that is long enough to need a soft line "
                           "break in quoted-printable encoding, which "
                           "limits lines to 76 characters.\n";
static const char html[] = "<p>Hello</p>\n";

static struct compose_message base(void)
{
	struct compose_message m = {
	    .from = {"Coalition Press Office", "press@coalition.example.org"},
	    .to = {"Anna Ivanova", "anna@example.org"},
	    .reply_to = {"Natalia Arno", "natalia@example.org"},
	    .subject = "Report launch",
	    .date = 1557136800, /* 2019-05-06 10:00:00 UTC */
	    .message_id = "abc123@coalition.example.org",
	    .language = "en",
	    .text = text,
	    .text_len = sizeof(text) - 1,
	    .html = html,
	    .html_len = sizeof(html) - 1,
	};
	return m;
}

static char *build(const struct compose_message *m, size_t *len)
{
	struct diag d = {0};
	char *out = NULL;
	int rc = compose_build(m, &out, len, &d);

	if (rc != 0)
		fail_msg("compose failed: %s", diag_first(&d));
	diag_clear(&d);
	return out;
}

/* Every line ends in CRLF, is 7-bit, and within limits. */
static void check_wire(const char *msg, size_t len)
{
	size_t line = 0, start = 0;
	bool in_header = true;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];
		if (c >= 0x80 || c == 0)
			fail_msg("byte 0x%02x at %zu", c, i);
		if (c == '\r' && (i + 1 >= len || msg[i + 1] != '\n'))
			fail_msg("bare CR at %zu", i);
		if (c == '\n') {
			size_t n;
			if (i == 0 || msg[i - 1] != '\r')
				fail_msg("bare LF at %zu", i);
			n = i - 1 - start;
			line++;
			if (in_header && n > 78)
				fail_msg("header line %zu is %zu long", line,
				         n);
			if (n > 998)
				fail_msg("line %zu is %zu long", line, n);
			if (in_header && n == 0)
				in_header = false;
			start = i + 1;
		}
	}
	assert_false(in_header);
}

static void test_header_fields(void **state)
{
	struct compose_message m = base();
	size_t len;
	char *msg;

	(void)state;
	msg = build(&m, &len);
	check_wire(msg, len);
	assert_non_null(strstr(msg, "From: Coalition Press Office "
	                            "<press@coalition.example.org>\r\n"));
	assert_non_null(strstr(msg, "To: Anna Ivanova <anna@example.org>\r\n"));
	assert_non_null(
	    strstr(msg, "Reply-To: Natalia Arno <natalia@example.org>\r\n"));
	assert_non_null(strstr(msg, "Subject: Report launch\r\n"));
	assert_non_null(
	    strstr(msg, "Date: Mon, 06 May 2019 10:00:00 +0000\r\n"));
	assert_non_null(
	    strstr(msg, "Message-ID: <abc123@coalition.example.org>\r\n"));
	assert_non_null(strstr(msg, "MIME-Version: 1.0\r\n"));
	assert_non_null(strstr(msg, "Content-Language: en\r\n"));
	assert_non_null(strstr(msg, "Precedence: bulk\r\n"));
	assert_non_null(
	    strstr(msg, "X-Auto-Response-Suppress: OOF, AutoReply\r\n"));
	assert_non_null(strstr(msg, "Content-Type: multipart/alternative;"));
	assert_non_null(strstr(msg, "Content-Type: text/plain; "
	                            "charset=\"UTF-8\"\r\n"
	                            "Content-Transfer-Encoding: "
	                            "quoted-printable\r\n"));
	assert_non_null(strstr(msg, "Content-Type: text/html; "));
	/* nothing of the machine's own name leaks into the header */
	assert_null(strstr(msg, "localhost"));
	free(msg);
}

static void test_same_input_same_bytes(void **state)
{
	struct compose_message m = base();
	size_t l1, l2;
	char *a, *b;

	(void)state;
	a = build(&m, &l1);
	b = build(&m, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(a, b, l1);
	free(b);
	m.message_id = "other@coalition.example.org";
	b = build(&m, &l2);
	/* boundaries follow the Message-ID */
	assert_true(l1 != l2 || memcmp(a, b, l1) != 0);
	free(a);
	free(b);
}

static void test_header_injection_refused(void **state)
{
	static const char *const bad[] = {
	    "Anna\r\nBcc: victim@example.org",
	    "Anna\nBcc: victim@example.org",
	    "Anna\rBcc: victim@example.org",
	    "Anna\tIvanova",
	};
	struct diag d = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct compose_message m = base();
		char *out = NULL;
		size_t len = 0;

		m.to.name = bad[i];
		assert_int_equal(compose_build(&m, &out, &len, &d), -1);
		assert_null(out);
		m = base();
		m.subject = bad[i];
		assert_int_equal(compose_build(&m, &out, &len, &d), -1);
		assert_null(out);
		m = base();
		m.from.name = bad[i];
		assert_int_equal(compose_build(&m, &out, &len, &d), -1);
		assert_null(out);
	}
	{
		struct compose_message m = base();
		char *out = NULL;
		size_t len = 0;
		m.to.addr = "anna@example.org>\r\nBcc: <victim@example.org";
		assert_int_equal(compose_build(&m, &out, &len, &d), -1);
		m = base();
		m.message_id = "x@y>\r\nBcc: victim@example.org";
		assert_int_equal(compose_build(&m, &out, &len, &d), -1);
		m = base();
		m.language = "en\r\nBcc: victim@example.org";
		assert_int_equal(compose_build(&m, &out, &len, &d), -1);
	}
	assert_true(d.errors >= 15);
	diag_clear(&d);
}

static void test_extra_fields_checked(void **state)
{
	struct compose_message m = base();
	const char *good[] = {"List-Unsubscribe: <mailto:u@example.org>",
	                      "X-Long: one\r\n two"};
	const char *bad[] = {"X-Evil: a\r\nBcc: b@example.org"};
	struct diag d = {0};
	size_t len;
	char *msg;

	(void)state;
	m.extra = good;
	m.nextra = 2;
	msg = build(&m, &len);
	assert_non_null(strstr(msg, "\r\nX-Long: one\r\n two\r\n"));
	free(msg);
	m.extra = bad;
	m.nextra = 1;
	msg = NULL;
	assert_int_equal(compose_build(&m, &msg, &len, &d), -1);
	diag_clear(&d);
}

static void test_attachments(void **state)
{
	static const char pdf[] = "%PDF-1.4\n\x01\x02\xff binary\r\n";
	struct compose_attachment att[] = {
	    {.filename = "report.pdf",
	     .content_type = "application/pdf",
	     .data = pdf,
	     .len = sizeof(pdf) - 1},
	    {.filename = "Доклад о политических заключённых Кремля — "
	                 "полный текст.pdf",
	     .ascii_filename = "report-ru.pdf",
	     .content_type = "application/pdf",
	     .data = pdf,
	     .len = sizeof(pdf) - 1},
	};
	struct compose_message m = base();
	size_t len;
	char *msg;

	(void)state;
	m.attachments = att;
	m.nattachments = 2;
	msg = build(&m, &len);
	check_wire(msg, len);
	assert_non_null(strstr(msg, "Content-Type: multipart/mixed;"));
	assert_non_null(strstr(msg, "filename=\"report.pdf\""));
	assert_non_null(strstr(msg, "Content-Transfer-Encoding: base64"));
	/* the long non-ASCII name: RFC 2231 continuations, unquoted */
	assert_non_null(strstr(msg, "filename*0*=UTF-8''%D0%94"));
	assert_non_null(strstr(msg, "filename*1*=%"));
	assert_null(strstr(msg, "filename*0*=\""));
	assert_non_null(strstr(msg, "name=\"report-ru.pdf\""));
	free(msg);
}

static void test_message_id_and_types(void **state)
{
	char *a = compose_message_id("x\nanna@example.org", 17, "example.org");
	char *b = compose_message_id("x\nanna@example.org", 17, "example.org");
	char *c = compose_message_id("x\nboris@example.org", 18, "example.org");

	(void)state;
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), 32 + strlen("@example.org"));
	free(a);
	free(b);
	free(c);
	assert_string_equal(compose_content_type("Report.PDF"),
	                    "application/pdf");
	assert_string_equal(compose_content_type("card.vcf"), "text/vcard");
	assert_string_equal(compose_content_type("noext"),
	                    "application/octet-stream");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_fields),
	    cmocka_unit_test(test_same_input_same_bytes),
	    cmocka_unit_test(test_header_injection_refused),
	    cmocka_unit_test(test_extra_fields_checked),
	    cmocka_unit_test(test_attachments),
	    cmocka_unit_test(test_message_id_and_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
