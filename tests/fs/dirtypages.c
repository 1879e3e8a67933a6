/*
 * dirtypages: how many pages of a file the kernel has not yet written to
 * its disk, for the durability tests (test_durability.sh): a store whose
 * data.mdb has none holds, on disk, everything committed to it.
 *
 *	dirtypages FILE [SKIP]
 *
 * Prints one number, the pages of FILE that are dirty or under writeback,
 * from cachestat(2) (Linux 6.5 and later); with SKIP, leaving out those
 * of the folios that hold the first SKIP bytes (a store's two meta pages
 * are its first 8192 bytes).  The kernel counts whole folios, which may
 * span several pages.  Exit 0; 1 if FILE cannot be opened or the call
 * fails; 3 if the kernel has no cachestat(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same number on every architecture */
#endif

struct range {
	uint64_t off, len; /* len 0: to the end of the file */
};

struct stat_pages {
	uint64_t cache, dirty, writeback, evicted, recently_evicted;
};

/* The pages not yet on disk among the folios of @fd's bytes [off,
 * off+len) (len 0: to the end); -1 with errno set if the call fails. */
static long long unwritten(int fd, uint64_t off, uint64_t len)
{
	struct range r = {off, len};
	struct stat_pages s;

	if (syscall(__NR_cachestat, fd, &r, &s, 0) != 0)
		return -1;
	return (long long)(s.dirty + s.writeback);
}

int main(int argc, char **argv)
{
	char *end = NULL;
	unsigned long long skip = 0;

	if (argc == 3) {
		errno = 0;
		skip = strtoull(argv[2], &end, 10);
	}
	if (argc < 2 || argc > 3 || (argc == 3 && (errno || !*argv[2] || *end))) {
		fprintf(stderr, "usage: dirtypages FILE [SKIP]\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "dirtypages: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	long long n = unwritten(fd, 0, 0);
	long long head = n >= 0 && skip ? unwritten(fd, 0, skip) : 0;
	int err = errno;
	close(fd);
	if (n < 0 || head < 0) {
		fprintf(stderr, "dirtypages: cachestat: %s\n", strerror(err));
		return err == ENOSYS ? 3 : 1;
	}
	printf("%lld\n", n - head);
	return 0;
}
