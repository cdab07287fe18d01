/*
 * fuzz — what every target in fuzz/ shares. A target is one file
 * fuzz_<target>.c defining LLVMFuzzerTestOneInput; it is built twice: by
 * clang with libFuzzer (scripts/fuzz, the fuzz/<target> tests) and by the
 * ordinary compiler with replay.c as its main, which runs it on the saved
 * regression inputs and seeds in every test run.
 *
 * A target calls FUZZ_CHECK on every promise the module's header makes
 * about its result; a broken promise aborts, which libFuzzer (and the
 * replay) reports as a crash with the input that caused it.
 */
#ifndef HERALD_FUZZ_H
#define HERALD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, what)                                                 \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: broken promise: %s\n",         \
			        __FILE__, __LINE__, (what));                   \
			abort();                                               \
		}                                                              \
	} while (0)

#endif
