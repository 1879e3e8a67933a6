/*
 * cachestat: how many pages of a file the kernel has not yet written to
 * its disk, from cachestat(2) (Linux 6.5 and later), for the tests that
 * prove what is durable (tests/fs/dirtypages.c, tests/kvcore/test_durable.c).
 */
#ifndef KVFS_TESTS_CACHESTAT_H
#define KVFS_TESTS_CACHESTAT_H

#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same number on every architecture */
#endif

struct kt_cachestat_range {
	uint64_t off, len; /* len 0: to the end of the file */
};

struct kt_cachestat {
	uint64_t cache, dirty, writeback, evicted, recently_evicted;
};

/* The pages not yet on disk (dirty or under writeback) among the folios of
 * @fd's bytes [off, off+len) (len 0: to the end); -1 with errno set if the
 * call fails (ENOSYS: the kernel has no cachestat). */
static inline long long kt_unwritten(int fd, uint64_t off, uint64_t len)
{
	struct kt_cachestat_range r = {off, len};
	struct kt_cachestat s;

	if (syscall(__NR_cachestat, fd, &r, &s, 0) != 0)
		return -1;
	return (long long)(s.dirty + s.writeback);
}

#endif
