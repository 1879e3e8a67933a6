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
#include <unistd.h>

#include "cachestat.h"

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
	long long n = kt_unwritten(fd, 0, 0);
	long long head = n >= 0 && skip ? kt_unwritten(fd, 0, skip) : 0;
	int err = errno;
	close(fd);
	if (n < 0 || head < 0) {
		fprintf(stderr, "dirtypages: cachestat: %s\n", strerror(err));
		return err == ENOSYS ? 3 : 1;
	}
	printf("%lld\n", n - head);
	return 0;
}
