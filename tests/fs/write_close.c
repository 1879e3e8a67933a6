/*
 * write_close: write a file and report which call failed, for the mount
 * tests of errors that surface late (a kvfs commit happens at close or
 * fsync, not at write).
 *
 *	write_close FILE BYTES [fsync]
 *
 * Creates FILE (truncating), writes BYTES bytes in 64 KiB writes, fsyncs
 * if asked, and closes.  Exit 0 when every call succeeded; otherwise 1
 * with "write|fsync|close: <strerror>" on stderr, naming the first call
 * that failed (the file is still closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failed(const char *call, int err)
{
	fprintf(stderr, "%s: %s\n", call, strerror(err));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: write_close FILE BYTES [fsync]\n");
		return 2;
	}
	long long left = atoll(argv[2]);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return failed("open", errno);
	static char buf[65536];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 1);
	int rc = 0;
	while (left > 0) {
		size_t n = left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf);
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			rc = failed("write", errno);
			break;
		}
		left -= w;
	}
	if (!rc && argc == 4 && fsync(fd))
		rc = failed("fsync", errno);
	if (close(fd) && !rc)
		rc = failed("close", errno);
	return rc;
}
