/*
 * herald config — the settings of herald.yaml as herald uses them, as
 * Postfix's postconf prints its parameters: every setting, one
 * "name = value" line each, in the order of herald.yaml(5), with the
 * file's value or else the default. `--defaults` prints the defaults
 * alone (postconf -d). Both come from config.c's one table of settings, so
 * what is printed is what herald and heraldd use.
 *
 * The secrets the file names (password_file, password_env, secret_file,
 * secret_env) are shown as (set) or (unset) and not read: an operator who
 * may read herald.yaml but not the password files can still check it, and
 * the output can go into a ticket.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <sysexits.h>

#include "herald/config.h"
#include "herald/diag.h"
#include "herald_cli.h"

static void config_usage(FILE *f)
{
	fputs("usage: herald config [--config FILE]\n"
	      "       herald config --defaults\n\n"
	      "Print every setting of herald.yaml as herald uses it, one "
	      "\"name = value\"\n"
	      "line each: the file's value, else the default. Secrets are "
	      "shown as (set)\n"
	      "or (unset) and not read. --defaults prints the defaults "
	      "alone.\n\n"
	      "  --config FILE  herald.yaml (default: $HERALD_CONFIG, else "
	      "./herald.yaml,\n"
	      "                 else none: the defaults)\n"
	      "  --defaults     the default of every setting\n"
	      "  -h, --help     this help\n"
	      "Exit status: 0 printed, 78 the config has errors "
	      "(file:line:column on\n"
	      "stderr), 64 wrong usage.\n",
	      f);
}

int cmd_config(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"defaults", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	bool defaults = false;
	struct config *c;
	struct diag d = {0};
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			file = optarg;
			break;
		case 'd':
			defaults = true;
			break;
		case 'h':
			config_usage(stdout);
			return 0;
		default:
			config_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc || (defaults && file != NULL)) {
		config_usage(stderr);
		return EX_USAGE;
	}
	c = config_load_flags(defaults ? NULL : config_path(file),
	                      CONFIG_NO_SECRETS, &d);
	diag_print(&d, stderr);
	diag_clear(&d);
	if (c == NULL)
		return EX_CONFIG;
	rc = config_print(c, stdout) == 0 ? 0 : EX_IOERR;
	if (rc != 0)
		perror("herald config: stdout");
	config_free(c);
	return rc;
}
