/*
 * output: how kvctl reports and reads: its messages ("kvctl: ..." on
 * stderr, printed once by the command that handles the failure), keys as
 * messages show them, the final flush of stdout (a full disk is a
 * failure, not a truncated JSON), and the reader of values and bulk files.
 */
#include "kvctl.h"

#include "common/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int failure(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kvctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return EXIT_FAILURE;
}

int txn_failure(kvc_txn *txn, int rc)
{
	const char *m = kvc_txn_errmsg(txn);
	int status = failure("%s", *m ? m : strerror(-rc));
	kvc_txn_abort(txn);
	return status;
}

void print_key(FILE *f, const void *key, size_t len)
{
	const unsigned char *k = key;
	for (size_t i = 0; i < len; i++) {
		if (k[i] < 0x20 || k[i] == 0x7F)
			fprintf(f, "\\x%02x", k[i]);
		else
			fputc(k[i], f);
	}
}

int finish_stdout(int status)
{
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "kvctl: cannot write the output: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	return status;
}

void input_release(struct input *in)
{
	if (in->map_len)
		munmap(in->data, in->map_len);
	else
		free(in->data);
	memset(in, 0, sizeof(*in));
}

/* The most read(2) is asked for at once: the progress line moves between. */
#define READ_STEP (1u << 20)

int read_input(const char *path, size_t max, struct kt_progress *progress, struct input *ret)
{
	bool is_stdin = !path || !strcmp(path, "-");
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	struct input in = {0};
	struct stat st;
	int rc = 0;
	if (fd < 0)
		return -errno;
	bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (regular && (uint64_t)st.st_size > max &&
	    (uint64_t)st.st_size <= SIZE_MAX) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			in.data = m;
			in.len = in.map_len = (size_t)st.st_size;
			in.oversize = in.size_known = true;
			goto out;
		}
	}
	struct kt_buf buf = KT_BUF_INIT;
	if (progress)
		kt_progress_phase(progress, "reading", NULL,
				  regular ? (uint64_t)st.st_size : 0, true);
	for (;;) {
		if (buf.len > max)
			break; /* holds max + 1: enough to know */
		if (buf.len == buf.cap) {
			rc = kt_buf_grow(&buf, 1, 64 * 1024);
			if (rc)
				break;
		}
		size_t room = buf.cap - buf.len;
		if (room > max + 1 - buf.len)
			room = max + 1 - buf.len; /* never read past max + 1 */
		if (room > READ_STEP)
			room = READ_STEP;
		ssize_t r = read(fd, buf.p + buf.len, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0) {
			in.size_known = true;
			break;
		}
		buf.len += (size_t)r;
		if (progress)
			kt_progress_update(progress, buf.len);
	}
	in.data = buf.p;
	in.len = buf.len;
	in.oversize = in.len > max;
	if (in.oversize)
		in.size_known = false;
out:
	if (!is_stdin)
		close(fd);
	if (rc) {
		input_release(&in);
		return rc;
	}
	*ret = in;
	return 0;
}

