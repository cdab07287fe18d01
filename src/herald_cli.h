/*
 * herald_cli — what the herald command's files share: loading a release
 * with its lists and config, the recipients taken once across lists, and
 * the command line of the commands that work on a release. Private to the
 * herald binary (not part of the library).
 */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "herald/coalition.h"
#include "herald/config.h"
#include "herald/contacts.h"
#include "herald/diag.h"
#include "herald/dkim.h"
#include "herald/i18n.h"
#include "herald/release.h"
#include "herald/store.h"
#include "herald/verp.h"

/* Everything a command works on, loaded together so that one run reports
 * the problems of every file. */
struct cli_inputs {
	struct config *config;
	struct dkim_signer **signers;
	size_t nsigners;
	struct verp *verp; /* herald.yaml's bounces section, or NULL */
	struct release *rel;
	struct coalition *coal;
	struct contacts **lists;
	size_t nlists;
};

/* One recipient, taken once across all lists (the first entry wins). */
struct cli_recipient {
	const struct journalist *j;
	struct i18n_choice choice;
};

/* The command line of the commands that read a release and lists. */
enum {
	CLI_RECIPIENT = 1, /* --recipient EMAIL */
	CLI_FORMAT = 2,    /* --format text|html */
	CLI_OUT = 4,       /* --out DIR */
	CLI_AT = 8,        /* --at TIME (queue) */
	CLI_PROOF = 16,    /* --proof-to EMAIL, --relay URL (proof) */
	CLI_STORE = 32,    /* --store PATH */
	CLI_QUEUE = 64,    /* --only-new, --embargo-passed (queue) */
};

struct cli_opts {
	const char *cmd;
	const char *dir;
	char **lists;
	size_t nlists;
	const char *coalition;
	const char *config;
	const char *recipient;
	const char *format;
	const char *out;
	const char *store;
	const char *at;
	const char *relay;
	char **proof_to;
	size_t nproof;
	bool only_new;               /* queue: only addresses not yet sent to */
	const char *embargo_passed; /* queue: "send", or NULL */
};

void cli_inputs_free(struct cli_inputs *in);
int cli_load(struct cli_inputs *in, const struct cli_opts *o, struct diag *d);
/* The config and what it names (DKIM keys, the bounce secret), into a
 * zeroed in; 0 when all loaded. */
int cli_load_config(struct cli_inputs *in, const struct cli_opts *o,
                    struct diag *d);
/* cli_load without the journalist lists (check reads them with cli_walk;
 * queue loads the release from its snapshot). */
int cli_load_release(struct cli_inputs *in, const struct cli_opts *o,
                     struct diag *d);
size_t cli_recipients(const struct cli_inputs *in, struct cli_recipient **out,
                      struct diag *d);
void cli_usage_common(FILE *f);
int cli_parse(int argc, char **argv, struct cli_opts *o, unsigned allowed,
              void (*usage)(FILE *));
const struct cli_recipient *cli_find(const struct cli_recipient *v, size_t n,
                                     const struct cli_opts *o);
/* Write a new file at path through a temporary file made O_EXCL and
 * O_NOFOLLOW, then rename. -1 with errno on failure (ELOOP: path is a
 * symbolic link, left as it is); nothing is left half-written. */
int cli_write_file(const char *path, const char *data, size_t len);

/* A progress line on stderr when it is a terminal, for work that takes
 * more than a few seconds; nothing otherwise. */
struct cli_progress {
	const char *cmd;
	double start, last; /* seconds (CLOCK_MONOTONIC) */
	bool tty, shown;
};
void cli_progress_start(struct cli_progress *p, const char *cmd);
void cli_progress(struct cli_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cli_progress_end(struct cli_progress *p);

/*
 * What check and queue do with the lists: read them one journalist at a
 * time (memory does not grow with them), each address once across the
 * lists (repeats are warnings), and check every recipient's message as it
 * comes. The message check builds one whole message (rendered, composed,
 * signed) for each form a message can take: language, locale, time zone
 * and which optional fields the journalist has; rendering in strict mode
 * succeeds or fails by those alone. Every recipient's own values then go
 * through what can refuse them: their context and subject rendered, the
 * Subject and To headers encoded. So every recipient counted in `checked`
 * has a message that builds, without building a million of them.
 */
struct cli_walk {
	/* called for each recipient in list order (ok: its message
	 * checks); non-zero stops the walk and is returned */
	int (*fn)(void *arg, const struct journalist *j,
	          const struct i18n_choice *c, bool ok);
	void *arg;
	struct cli_progress *progress; /* or NULL */
	/* results */
	size_t entries;    /* entries in the lists, valid or not */
	size_t recipients; /* distinct addresses among the valid entries */
	size_t checked;    /* recipients whose message checks */
	size_t built;      /* whole messages built (one per form) */
	size_t *size;      /* per language, the largest message built; the
	                    * caller's array, or NULL */
};
/* Problems to d. Returns 0, fn's non-zero result, or -1 on out of memory
 * (in d). The message check needs in->rel and in->coal; without them the
 * lists are only checked. */
int cli_walk(struct cli_inputs *in, const struct cli_opts *o,
             struct cli_walk *w, struct diag *d);

/* Output helpers of the admin commands: a JSON string (quoted, escaped),
 * an RFC 4180 CSV field (always quoted), the width to fit tables to (the
 * terminal's, else COLUMNS, else 80; 0 when the output is not a terminal
 * or wide is set: then nothing is cut), a time as ISO 8601 UTC ("-" for
 * 0). */
/* The store of --store PATH, else of the config (--config FILE, else
 * $HERALD_CONFIG, else ./herald.yaml), which is read without its secrets:
 * whoever may read the store need not read the relay's password. flags:
 * STORE_OPEN_CREATE for a command that writes and may start a store (it
 * then says on stderr that it made one, and where). 0 with *out set, or
 * the exit status after putting the reason in d: EX_NOINPUT no store
 * there, EX_NOPERM not allowed, EX_CONFIG a config with errors or a path
 * that is no store, EX_CANTCREAT a store that cannot be made,
 * EX_TEMPFAIL anything that may pass (busy, disk full, I/O). */
int cli_open_store(const char *cmd, const char *config, const char *store,
                   unsigned flags, struct store **out, struct diag *d);
/* --since TIME of the admin commands: a time as for queue --at, or -1h,
 * -2d before now. -1 after saying why on stderr. */
int cli_since(const char *cmd, const char *s, time_t *out);
void cli_json_str(const char *s);
/* cli_json_str, or null when s is NULL or empty. */
void cli_json_opt(const char *s);
/* One CSV cell (RFC 4180, always quoted), for every CSV herald writes: a
 * cell starting with = + - @ TAB CR or ' gets a leading ' so that no
 * spreadsheet runs it as a formula (cli_csv_guarded says which). A
 * reader takes one leading ' off a cell whose next character is one of
 * those. */
void cli_csv_str(const char *s);
bool cli_csv_guarded(const char *s);
unsigned cli_width(bool wide);
void cli_time(time_t t, char *buf, size_t size);
/* Print s in at most width columns (0: all of it), line ends and tabs as
 * spaces, other control characters escaped (log_escape), cut with "..."
 * when it does not fit; then pad to pad columns when pad > 0. Columns are
 * counted as characters of UTF-8. */
void cli_cell(const char *s, unsigned width, unsigned pad);

int cmd_queue(int argc, char **argv);
int cmd_proof(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_bounces(int argc, char **argv);
int cmd_suppress(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_store(int argc, char **argv);

#endif
