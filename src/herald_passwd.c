/*
 * herald passwd — an argon2id hash for a herald-web user (web.users in
 * herald.yaml): the password from standard input, the hash on standard
 * output. On a terminal the password is asked for on stderr without echo,
 * twice; from a pipe its first line is taken, so scripts can say
 * `printf '%s\n' "$pw" | herald passwd`. passwd.c holds the parameters.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "herald/diag.h"
#include "herald/passwd.h"
#include "herald_cli.h"

static void passwd_usage(FILE *f)
{
	fputs("usage: herald passwd\n\n"
	      "Read a password from standard input (on a terminal: asked "
	      "for twice, not\n"
	      "echoed) and print its argon2id hash for a web.users entry's "
	      "password_hash\n"
	      "in herald.yaml. From a pipe the first line is the password.\n"
	      "Exit status: 0 printed, 65 an empty or too long password or "
	      "two that differ,\n"
	      "74 standard input could not be read.\n",
	      f);
}

/* One line of f into buf (size bytes): its length without the line end,
 * -1 when nothing could be read, -2 when it does not fit. */
static long passwd_line(FILE *f, char *buf, size_t size)
{
	size_t n = 0;
	int c;
	bool any = false;

	while ((c = getc(f)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (n + 1 >= size) {
			/* read the rest of the line: nothing is left for the
			 * shell to run */
			while ((c = getc(f)) != EOF && c != '\n')
				;
			return -2;
		}
		buf[n++] = (char)c;
	}
	if (!any)
		return ferror(f) ? -1 : 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (long)n;
}

/* Ask on the terminal, without echo. */
static long passwd_ask(const char *prompt, char *buf, size_t size)
{
	struct termios old, quiet;
	bool restore = false;
	long n;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	n = passwd_line(stdin, buf, size);
	if (restore)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return n;
}

int cmd_passwd(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char pw[PASSWD_MAX + 2], again[PASSWD_MAX + 2];
	char out[PASSWD_ENCODED_MAX];
	struct diag d = {0};
	bool tty = isatty(STDIN_FILENO) == 1;
	long n, m;
	int ch, rc = EX_DATAERR;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			passwd_usage(stdout);
			return 0;
		default:
			passwd_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		passwd_usage(stderr);
		return EX_USAGE;
	}
	n = tty ? passwd_ask("Password: ", pw, sizeof(pw))
	        : passwd_line(stdin, pw, sizeof(pw));
	if (n == -1) {
		fprintf(stderr, "herald passwd: reading standard input: %s\n",
		        strerror(errno));
		rc = EX_IOERR;
		goto done;
	}
	if (n == -2 || n > PASSWD_MAX) {
		fprintf(stderr,
		        "herald passwd: the password is longer than %d bytes\n",
		        PASSWD_MAX);
		goto done;
	}
	if (n == 0) {
		fputs("herald passwd: the password is empty: give one (on a "
		      "pipe, its first line)\n",
		      stderr);
		goto done;
	}
	if (tty) {
		m = passwd_ask("Again: ", again, sizeof(again));
		if (m != n || memcmp(pw, again, (size_t)n) != 0) {
			fputs("herald passwd: the two passwords differ\n",
			      stderr);
			goto done;
		}
	}
	if (passwd_hash(pw, (size_t)n, out, sizeof(out), &d) < 0) {
		diag_print(&d, stderr);
		rc = EX_SOFTWARE;
		goto done;
	}
	puts(out);
	rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
done:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(again, sizeof(again));
	diag_clear(&d);
	return rc;
}
