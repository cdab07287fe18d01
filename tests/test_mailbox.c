/*
 * mailbox tests: a Maildir pass sees new messages oldest first, moves
 * what was handled into cur/ with the Seen flag, leaves the rest new,
 * refuses oversized messages without reading them, and deletes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "herald/mailbox.h"

static char root[] = "/tmp/herald-mbox-XXXXXX";

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/new/%s", root, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int count(const char *sub)
{
	char cmd[300];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls %s/%s | wc -l", root, sub);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

struct seen {
	char order[8][64];
	size_t n;
	size_t big;
};

static enum mailbox_verdict look(void *arg, const struct mailbox_msg *m)
{
	struct seen *s = arg;

	if (m->data == NULL) {
		s->big++;
		return MAILBOX_HANDLED;
	}
	snprintf(s->order[s->n++], 64, "%s", m->id);
	/* the one that says "later" stays new */
	return strstr(m->data, "later") ? MAILBOX_KEEP : MAILBOX_HANDLED;
}

static void test_maildir_pass(void **state)
{
	struct diag d = {0};
	struct seen s = {0};
	struct mailbox *mb;
	char url[64], big[5000];

	(void)state;
	assert_non_null(mkdtemp(root));
	for (const char *sub = "new\0cur\0tmp\0"; *sub; sub += 4) {
		char p[128];
		snprintf(p, sizeof(p), "%s/%s", root, sub);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	put("1700000002.M1P1.host", "Subject: second\r\n\r\nlater\r\n");
	put("1700000001.M1P1.host", "Subject: first\r\n\r\nbody\r\n");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put("1700000003.M1P1.host", big);
	snprintf(url, sizeof(url), "maildir:%s", root);
	assert_ptr_equal(mailbox_backend_for(url), &mailbox_maildir_backend);
	assert_ptr_equal(mailbox_backend_for("imap://x"),
	                 &mailbox_imap_backend);
	assert_ptr_equal(mailbox_backend_for("imaps://x"),
	                 &mailbox_imap_backend);
	assert_null(mailbox_backend_for("pop3://x"));
	/* an empty Maildir: nothing to do (the sanitizers watch the empty
	 * list) */
	{
		char empty[] = "/tmp/herald-mbox-empty-XXXXXX", eu[64];
		struct mailbox *em;
		assert_non_null(mkdtemp(empty));
		for (const char *sub = "new\0cur\0tmp\0"; *sub; sub += 4) {
			char p[128];
			snprintf(p, sizeof(p), "%s/%s", empty, sub);
			assert_int_equal(mkdir(p, 0700), 0);
		}
		snprintf(eu, sizeof(eu), "maildir:%s", empty);
		em = mailbox_maildir_backend.open(eu, NULL, &d);
		assert_non_null(em);
		assert_int_equal(em->ops->fetch(em, 4096, look, &s, &d), 0);
		assert_int_equal(s.n, 0);
		em->ops->close(em);
		snprintf(eu, sizeof(eu), "rm -rf %s", empty);
		assert_int_equal(system(eu), 0);
	}
	mb = mailbox_maildir_backend.open(url, NULL, &d);
	assert_non_null(mb);
	assert_int_equal(mb->ops->fetch(mb, 4096, look, &s, &d), 2);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.order[0], "1700000001.M1P1.host");
	assert_string_equal(s.order[1], "1700000002.M1P1.host");
	assert_int_equal(s.big, 1); /* refused by size, unread */
	assert_int_equal(count("new"), 1);
	assert_int_equal(count("cur"), 2);
	{
		char p[256];
		snprintf(p, sizeof(p), "%s/cur/1700000001.M1P1.host:2,S", root);
		assert_int_equal(access(p, F_OK), 0);
	}
	/* a second pass sees only what was kept */
	memset(&s, 0, sizeof(s));
	assert_int_equal(mb->ops->fetch(mb, 4096, look, &s, &d), 0);
	assert_int_equal(s.n, 1);
	mb->ops->close(mb);
	assert_null(
	    mailbox_maildir_backend.open("maildir:/nonexistent", NULL, &d));
	assert_non_null(strstr(diag_first(&d), "is not a Maildir"));
	diag_clear(&d);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_maildir_pass),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
