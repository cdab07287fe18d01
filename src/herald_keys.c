/*
 * herald keygen — a new DKIM signing key: written 0600 (its directory
 * 0700) whatever the umask, never over an existing file, followed by the
 * DNS record to publish and the lines for herald.yaml.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "herald/diag.h"
#include "herald/dkim.h"
#include "herald_cli.h"

static void keygen_usage(FILE *f)
{
	fputs("usage: herald keygen --domain DOMAIN --selector SELECTOR\n"
	      "                     [--algorithm ed25519|rsa] [--bits N] "
	      "[--out PATH]\n\n"
	      "Make a DKIM signing key for DOMAIN (the domain of the "
	      "release's From\n"
	      "address, or a parent of it) and print the DNS TXT record to "
	      "publish at\n"
	      "SELECTOR._domainkey.DOMAIN and the lines for herald.yaml. The "
	      "key file is\n"
	      "created 0600 (a missing directory 0700) and never overwrites "
	      "one that exists.\n"
	      "Default: rsa with 2048 bits, which every receiver checks; "
	      "ed25519 keys are\n"
	      "small but not yet checked everywhere, so sign with both. "
	      "Default PATH:\n"
	      "keys/DOMAIN.SELECTOR.key.\n",
	      f);
}

/* The record as DNS zone text: strings of at most 255 characters. */
static void keygen_print_txt(const char *name, const char *rec)
{
	size_t len = strlen(rec);

	printf("%s. IN TXT (", name);
	for (size_t at = 0; at < len; at += 255)
		printf(" \"%.*s\"", (int)(len - at > 255 ? 255 : len - at),
		       rec + at);
	printf(" )\n");
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"domain", required_argument, NULL, 'd'},
	    {"selector", required_argument, NULL, 's'},
	    {"algorithm", required_argument, NULL, 'a'},
	    {"bits", required_argument, NULL, 'b'},
	    {"out", required_argument, NULL, 'o'},
	    {"config", required_argument, NULL, 'C'}, /* as every command */
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *domain = NULL, *selector = NULL, *alg = "rsa", *out = NULL;
	char *path = NULL, *rec = NULL, *name = NULL, *end;
	unsigned long bits = 2048;
	struct dkim_signer *s = NULL;
	struct diag d = {0};
	enum dkim_alg a;
	int ch, rc = EX_USAGE;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			domain = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		case 'a':
			alg = optarg;
			break;
		case 'b':
			bits = strtoul(optarg, &end, 10);
			if (*end != '\0' || bits > 16384) {
				fprintf(stderr,
				        "herald keygen: --bits %s: not a number "
				        "of bits\n",
				        optarg);
				return EX_USAGE;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'C':
			break;
		case 'h':
			keygen_usage(stdout);
			return 0;
		default:
			keygen_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc || domain == NULL || selector == NULL) {
		keygen_usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(alg, "rsa") == 0)
		a = DKIM_RSA_SHA256;
	else if (strcmp(alg, "ed25519") == 0)
		a = DKIM_ED25519_SHA256;
	else {
		fprintf(stderr, "herald keygen: --algorithm is rsa or ed25519\n");
		return EX_USAGE;
	}
	if (out == NULL) {
		if (asprintf(&path, "keys/%s.%s.key", domain, selector) < 0) {
			fputs("herald keygen: out of memory\n", stderr);
			return EX_OSERR;
		}
		out = path;
	}
	rc = EX_CANTCREAT;
	if (dkim_key_generate(out, a, (unsigned)bits, &d) < 0)
		goto done;
	/* load it as heraldd will: the same checks of name, mode and size */
	rc = EX_SOFTWARE;
	if ((s = dkim_signer_load(out, domain, selector, &d)) == NULL ||
	    (rec = dkim_dns_record(s, &d)) == NULL ||
	    asprintf(&name, "%s._domainkey.%s", selector, domain) < 0)
		goto done;
	printf("wrote %s (%s, readable by its owner only)\n\n"
	       "Publish this DNS record:\n\n",
	       out, a == DKIM_RSA_SHA256 ? "rsa" : "ed25519");
	keygen_print_txt(name, rec);
	printf("\nand add the key to herald.yaml:\n\n"
	       "dkim:\n  - {domain: %s, selector: %s, key: %s}\n",
	       domain, selector, out);
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	dkim_signer_free(s);
	free(rec);
	free(name);
	free(path);
	return rc;
}
