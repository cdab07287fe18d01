/*
 * dkim_sign — herald's DKIM signer as a filter, so that an independent
 * verifier (tests/test_dkim_verify.py) can check what herald's dkim module
 * produces, and so that signing speed can be measured on real messages.
 *
 *   dkim_sign KEYFILE DOMAIN SELECTOR < message > signed-message
 *   dkim_sign --record KEYFILE DOMAIN SELECTOR      (the DNS TXT record)
 *   dkim_sign --bench N KEYFILE DOMAIN SELECTOR < message
 *
 * The message is read as bytes and must have CRLF line endings; the signed
 * message is the DKIM-Signature field, CRLF, then the message unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "herald/dkim.h"

/* More than any press release with attachments herald would send. */
#define DKIM_SIGN_INPUT_MAX (64u * 1024 * 1024)

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap), *nb;

	while (buf != NULL) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f) || n > DKIM_SIGN_INPUT_MAX)
				break;
			*len = n;
			return buf;
		}
		if (n == cap) {
			if (cap > DKIM_SIGN_INPUT_MAX)
				break;
			cap *= 2;
			nb = realloc(buf, cap);
			if (nb == NULL)
				break;
			buf = nb;
		}
	}
	free(buf);
	return NULL;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct diag d = {0};
	struct dkim_signer *s = NULL;
	char *msg = NULL, *out = NULL;
	size_t len = 0;
	long bench = 0;
	int record = 0, rc = EX_DATAERR;

	if (argc == 5 && strcmp(argv[1], "--record") == 0) {
		record = 1;
		argv++;
	} else if (argc == 6 && strcmp(argv[1], "--bench") == 0) {
		bench = strtol(argv[2], NULL, 10);
		if (bench <= 0)
			goto usage;
		argv += 2;
	} else if (argc != 4) {
		goto usage;
	}
	s = dkim_signer_load(argv[1], argv[2], argv[3], &d);
	if (s == NULL)
		goto fail;
	if (record) {
		out = dkim_dns_record(s, &d);
		if (out == NULL)
			goto fail;
		printf("%s\n", out);
		rc = fflush(stdout) == 0 ? 0 : EX_IOERR;
		goto done;
	}
	msg = read_all(stdin, &len);
	if (msg == NULL) {
		fprintf(stderr, "dkim_sign: cannot read the message (over "
		                "64 MiB, or a read error)\n");
		rc = EX_IOERR;
		goto done;
	}
	if (bench > 0) {
		double t0 = now_seconds(), t;
		for (long i = 0; i < bench; i++) {
			out = dkim_sign(s, msg, len, time(NULL), &d);
			if (out == NULL)
				goto fail;
			free(out);
		}
		out = NULL;
		t = now_seconds() - t0;
		printf("%s: %ld messages of %zu bytes in %.3f s: %.0f "
		       "messages/s\n",
		       dkim_signer_alg(s) == DKIM_RSA_SHA256 ? "rsa-sha256"
		                                             : "ed25519-sha256",
		       bench, len, t, (double)bench / t);
		rc = 0;
		goto done;
	}
	out = dkim_sign(s, msg, len, time(NULL), &d);
	if (out == NULL)
		goto fail;
	if (fputs(out, stdout) == EOF || fputs("\r\n", stdout) == EOF ||
	    fwrite(msg, 1, len, stdout) != len || fflush(stdout) != 0) {
		rc = EX_IOERR;
		goto done;
	}
	rc = 0;
	goto done;
usage:
	fprintf(
	    stderr,
	    "usage: dkim_sign KEYFILE DOMAIN SELECTOR < message\n"
	    "       dkim_sign --record KEYFILE DOMAIN SELECTOR\n"
	    "       dkim_sign --bench N KEYFILE DOMAIN SELECTOR < message\n");
	return EX_USAGE;
fail:
	diag_print(&d, stderr);
done:
	free(out);
	free(msg);
	dkim_signer_free(s);
	diag_clear(&d);
	return rc;
}
