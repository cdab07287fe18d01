/*
 * harden — what herald and heraldd do first: they hold secrets in memory
 * (the relay's and the mailbox's passwords, DKIM keys, the return-path
 * secret), so a crash must not write them into a core file, and no other
 * process of the same user may read their memory through ptrace or
 * /proc/PID/mem.
 */
#ifndef HERALD_HARDEN_H
#define HERALD_HARDEN_H

/* No core files (RLIMIT_CORE 0) and not dumpable (PR_SET_DUMPABLE 0).
 * Returns 0, or -1 with errno when the system refused (the caller goes
 * on: this is a defence in depth, not a condition to run). */
int harden_process(void);

#endif
