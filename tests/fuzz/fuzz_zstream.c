/*
 * fuzz_zstream: libFuzzer target for kvsync's decompressing reader (-z,
 * tools/kvsync/net.c): the input is what a hostile peer sends once
 * compression has started.  An input whose first byte is odd is first
 * compressed with zstd, so that the frames inside a well-formed stream are
 * explored too; an even one goes on the wire as it is (a corrupt stream,
 * a bomb, a window too large).  Every frame read must be within the
 * protocol's bound, and every failure one of the documented ones: a
 * protocol error with its reason, or the end of the stream.  ASan catches
 * reads out of bounds, and the input buffer's bound keeps a bomb's memory
 * in check (libFuzzer's -rss_limit_mb traps otherwise).
 */
#include "fuzz.h"
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include "kvsync/net.h"

/* A descriptor that reads back @n bytes of @p, then the end. */
static int stream_of(const uint8_t *p, size_t n)
{
	int fd = memfd_create("zstream", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, p + off, n - off);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	uint8_t *packed = NULL;
	if (data[0] & 1) {
		size_t cap = ZSTD_compressBound(n);
		packed = malloc(cap ? cap : 1);
		require(packed != NULL);
		size_t z = ZSTD_compress(packed, cap, in, n, 1);
		require(!ZSTD_isError(z));
		in = packed;
		n = z;
	}
	int rfd = stream_of(in, n);
	int wfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	free(packed);
	require(rfd >= 0 && wfd >= 0);
	struct ks_conn *c;
	require(ks_conn_new(rfd, wfd, 0, &c) == 0);
	require(ks_conn_start_compress(c) == 0);
	for (;;) {
		struct ks_frame f;
		int rc = ks_conn_recv(c, 0, &f);
		if (rc) {
			require(rc == -EPROTO || rc == -ECONNRESET);
			if (rc == -EPROTO)
				require(ks_conn_why(c)[0] != 0);
			break;
		}
		require(f.len + 1 <= KS_FRAME_MAX);
	}
	ks_conn_close(c);
	return 0;
}
