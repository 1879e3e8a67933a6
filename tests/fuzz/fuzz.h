/*
 * fuzz.h: what every libFuzzer target here shares: the entry point
 * libFuzzer calls, and require(), which traps when a rule of the code
 * under test is broken, so libFuzzer keeps the input that broke it.
 */
#ifndef KVFS_FUZZ_H
#define KVFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define require(cond)                     \
	do {                              \
		if (!(cond))              \
			__builtin_trap(); \
	} while (0)

#endif
