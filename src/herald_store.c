/*
 * herald store — the store itself, for operators:
 *
 *   herald store migrate [--config FILE | --store STORE]
 *       bring a PostgreSQL store's schema up to this herald's version (an
 *       empty database gets the whole schema; heraldd refuses to start on
 *       an older one and names this command). A SQLite store is brought up
 *       to date whenever it is opened; migrate does so and says it.
 *   herald store copy FROM TO
 *       copy a whole store into a new, empty one (SQLite -> PostgreSQL,
 *       PostgreSQL -> SQLite, or the same kind): all or nothing, rows
 *       counted on both sides before the target commits. FROM is only
 *       read. Stop heraldd first: what it records during the copy would
 *       not be in the copy.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "herald/diag.h"
#include "herald/store.h"
#include "herald_cli.h"

struct store_cmd {
	const char *config, *store;
};

static void store_usage(FILE *f)
{
	fputs("usage: herald store migrate [--config FILE | --store STORE]\n"
	      "       herald store copy FROM TO\n"
	      "\n"
	      "migrate  bring the store's schema up to this herald's (a "
	      "PostgreSQL store:\n"
	      "         heraldd refuses an older one until this is run)\n"
	      "copy     copy a whole store into a new, empty one, all or "
	      "nothing (a SQLite\n"
	      "         file or a postgresql:// address each; stop heraldd "
	      "first)\n",
	      f);
}

/* The exit status for a store that did not open (errno: its kind). */
static int store_exit(int kind, bool create)
{
	switch (kind) {
	case ENOENT:
		return create ? EX_CANTCREAT : EX_NOINPUT;
	case EACCES:
		return EX_NOPERM;
	case EINVAL:
		return EX_CONFIG;
	default:
		return EX_TEMPFAIL;
	}
}

static int store_migrate(const struct store_cmd *o)
{
	struct diag d;
	struct store *st = NULL;
	int rc;

	diag_init(&d);
	rc = cli_open_store("store migrate", o->config, o->store,
	                    STORE_OPEN_CREATE | STORE_OPEN_MIGRATE, &st, &d);
	if (rc == 0)
		printf("the store's schema is up to date\n");
	diag_print(&d, stderr);
	diag_clear(&d);
	store_close(st);
	return rc;
}

static int store_copy_cmd(const char *from_path, const char *to_path)
{
	struct store *from = NULL, *to = NULL;
	struct store_copied copied;
	struct diag d;
	int rc;

	diag_init(&d);
	if (strcmp(from_path, to_path) == 0) {
		fprintf(stderr, "herald store copy: FROM and TO are the same "
		                "store\n");
		return EX_USAGE;
	}
	if ((from = store_open_flags(from_path, 0, &d)) == NULL) {
		rc = store_exit(errno, false);
		goto done;
	}
	if ((to = store_open_flags(to_path, STORE_OPEN_CREATE, &d)) == NULL) {
		rc = store_exit(errno, true);
		goto done;
	}
	if (store_copy(from, to, &copied, &d) < 0) {
		rc = errno == EEXIST ? EX_CANTCREAT : EX_TEMPFAIL;
		goto done;
	}
	for (size_t t = 0; t < store_ntables; t++)
		printf("%-14s %zu\n", store_tables[t].name, copied.rows[t]);
	printf("copied into %s; every table's rows counted on both sides\n",
	       to_path);
	rc = 0;
done:
	diag_print(&d, stderr);
	diag_clear(&d);
	store_close(to);
	store_close(from);
	return rc;
}

int cmd_store(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'C'},
	    {"store", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct store_cmd o = {0};
	const char *sub = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
	int ch, nargs;
	char **args;

	optind = sub != NULL ? 2 : 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			o.config = optarg;
			break;
		case 'S':
			o.store = optarg;
			break;
		case 'h':
			store_usage(stdout);
			return 0;
		default:
			store_usage(stderr);
			return EX_USAGE;
		}
	}
	args = argv + optind;
	nargs = argc - optind;
	if (sub != NULL && strcmp(sub, "migrate") == 0 && nargs == 0)
		return store_migrate(&o);
	if (sub != NULL && strcmp(sub, "copy") == 0 && nargs == 2 &&
	    o.config == NULL && o.store == NULL)
		return store_copy_cmd(args[0], args[1]);
	fprintf(stderr, "herald store: unknown subcommand or arguments\n");
	store_usage(stderr);
	return EX_USAGE;
}
