/*
 * net: connections and transports for kvsync.
 *
 * Both directions of a connection may carry a lot at once (a sender
 * streaming records while the receiver answers), so a blocked write keeps
 * reading: whatever arrives is kept in memory until it is asked for.  The
 * protocol bounds how much a well-behaved peer sends ahead; a peer that
 * sends more than KS_IN_MAX without reading ends the connection.
 */
#include "net.h"

#include "common/buf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define KS_IN_MAX (64u * 1024u * 1024u)
#define KS_READ_CHUNK (256u * 1024u)
#define KS_FLUSH_AT (256u * 1024u)
/* -z: zstd level 1, fast enough for links of a few hundred Mbit/s (level 3
 * saved 2 % more bytes at half the speed: docs/performance.md); and the
 * largest window a peer's stream may ask the decompressor to keep (8 MiB;
 * the compressor keeps 512 KiB at level 1), so that a hostile
 * stream cannot make us allocate more. */
#define KS_ZSTD_LEVEL 1
#define KS_ZSTD_WINDOW_LOG_MAX 23

/* --bwlimit: a token bucket of bytes that may go one way now */
struct ks_bucket {
	double tokens;
	int64_t last_ms;
};

struct ks_conn {
	int rfd, wfd; /* equal for a socket */
	int stop_fd;  /* not owned; -1: none */
	int timeout_ms; /* longest wait without progress; -1: none */
	pid_t child;  /* reaped on close; 0: none */
	struct ks_wbuf out;
	size_t out_off;    /* bytes of out already written */
	uint8_t *in;       /* bytes read and not yet handed out */
	size_t in_start, in_len, in_cap;
	uint8_t *cur;      /* the frame last handed out */
	size_t cur_cap;
	bool eof;
	int write_err;     /* sticky once a write failed */
	int proto_err;     /* sticky -EPROTO once the stream is bad */
	const char *why;
	uint64_t bytes_in, bytes_out;
	/* -z: once started, what is written goes through zc into zout, and
	 * what is read goes through zd from zin into in. */
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
	uint8_t *zout;
	size_t zout_len, zout_cap, zout_off;
	uint8_t *zin;
	size_t zin_start, zin_len, zin_cap;
	bool z_more; /* the last decompression filled its output: more may wait */
	char why_buf[160];
	/* --bwlimit: the same rate for what this side writes and what it
	 * reads; reading slowly is what holds back a peer that was given no
	 * limit (a daemon), through TCP's flow control */
	uint64_t bw_rate; /* bytes per second; 0: no limit */
	struct ks_bucket bw_out, bw_in;
};

int64_t ks_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int ks_conn_new(int rfd, int wfd, pid_t child, struct ks_conn **ret_conn)
{
	struct ks_conn *c = calloc(1, sizeof(*c));
	/* The input buffer exists from the start: the readers look into it
	 * (by pointer and offset) before anything has arrived. */
	uint8_t *in = c ? malloc(KS_READ_CHUNK) : NULL;
	if (!in) {
		free(c);
		close(rfd);
		if (wfd != rfd)
			close(wfd);
		return -ENOMEM;
	}
	c->in = in;
	c->in_cap = KS_READ_CHUNK;
	c->rfd = rfd;
	c->wfd = wfd;
	c->stop_fd = -1;
	c->timeout_ms = -1;
	c->child = child;
	set_nonblock(rfd);
	set_nonblock(wfd);
	*ret_conn = c;
	return 0;
}

int ks_conn_close(struct ks_conn *c)
{
	if (!c)
		return 0;
	close(c->rfd);
	if (c->wfd != c->rfd)
		close(c->wfd);
	int status = 0;
	if (c->child > 0) {
		/* Closing its input ends a well-behaved child; give it a
		 * moment, then insist. */
		int64_t deadline = ks_mono_ms() + 5000;
		pid_t p;
		while ((p = waitpid(c->child, &status, WNOHANG)) == 0 && ks_mono_ms() < deadline)
			usleep(10000);
		if (p == 0) {
			kill(c->child, SIGTERM);
			waitpid(c->child, &status, 0);
		}
	}
	ks_wbuf_release(&c->out);
	ZSTD_freeCCtx(c->zc);
	ZSTD_freeDCtx(c->zd);
	free(c->zout);
	free(c->zin);
	free(c->in);
	free(c->cur);
	free(c);
	return status;
}

void ks_conn_set_stop_fd(struct ks_conn *c, int fd)
{
	c->stop_fd = fd;
}

void ks_conn_set_timeout(struct ks_conn *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : -1;
}

void ks_conn_set_bwlimit(struct ks_conn *c, uint64_t bytes_per_s)
{
	c->bw_rate = bytes_per_s;
	c->bw_out.tokens = c->bw_in.tokens = 0;
	c->bw_out.last_ms = c->bw_in.last_ms = ks_mono_ms();
}

int ks_conn_start_compress(struct ks_conn *c)
{
	if (c->zc)
		return 0;
	int rc = ks_conn_flush(c);
	if (rc)
		return rc;
	c->zc = ZSTD_createCCtx();
	c->zd = ZSTD_createDCtx();
	/* What was read past the last frame is already compressed. */
	size_t cap = c->in_len > KS_READ_CHUNK ? c->in_len : KS_READ_CHUNK;
	c->zin = malloc(cap);
	if (!c->zc || !c->zd || !c->zin)
		return -ENOMEM;
	c->zin_cap = cap;
	memcpy(c->zin, c->in + c->in_start, c->in_len);
	c->zin_len = c->in_len;
	c->zin_start = 0;
	c->in_start = c->in_len = 0;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, KS_ZSTD_LEVEL)) ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(c->zd, ZSTD_d_windowLogMax,
						KS_ZSTD_WINDOW_LOG_MAX)))
		return -EINVAL;
	return 0;
}

struct ks_wbuf *ks_conn_out(struct ks_conn *c)
{
	return &c->out;
}

const char *ks_conn_why(const struct ks_conn *c)
{
	return c->why ? c->why : "malformed input";
}

uint64_t ks_conn_bytes_in(const struct ks_conn *c)
{
	return c->bytes_in;
}

uint64_t ks_conn_bytes_out(const struct ks_conn *c)
{
	return c->bytes_out;
}

static int proto_fail(struct ks_conn *c, const char *why)
{
	c->why = why;
	c->proto_err = -EPROTO;
	return -EPROTO;
}

/* Room for one more read (KS_READ_CHUNK) at the end of the input buffer,
 * which never grows past KS_IN_MAX.  @return 0 or -errno */
static int input_room(struct ks_conn *c)
{
	if (c->in_start + c->in_len + KS_READ_CHUNK > c->in_cap) {
		if (c->in_start) {
			memmove(c->in, c->in + c->in_start, c->in_len);
			c->in_start = 0;
		}
		if (c->in_len + KS_READ_CHUNK > c->in_cap) {
			if (c->in_len + KS_READ_CHUNK > KS_IN_MAX)
				return proto_fail(c, "peer sent too much without reading");
			uint8_t *p = kt_array_grow(c->in, 1, c->in_len + KS_READ_CHUNK, &c->in_cap,
						   2 * KS_READ_CHUNK);
			if (!p)
				return -ENOMEM;
			c->in = p;
		}
	}
	return 0;
}

/*
 * --bwlimit: how many bytes may be written (@b: bw_out) or read (bw_in)
 * now (all of @want when there is no limit), refilling the bucket by the
 * time passed; 0 with *ret_wait_ms the time until enough is there.  The
 * bucket holds a tenth of a second's worth (at least a byte, at most
 * 4 MiB), so the rate holds over any stretch longer than that; a write or
 * read waits for 64 KiB at most, so the waits stay short.
 */
static size_t bw_allow(const struct ks_conn *c, struct ks_bucket *b, size_t want, int *ret_wait_ms)
{
	*ret_wait_ms = 0;
	if (!c->bw_rate)
		return want;
	int64_t now = ks_mono_ms();
	double cap = (double)c->bw_rate / 10;
	if (cap < 1)
		cap = 1;
	if (cap > 4194304)
		cap = 4194304;
	b->tokens += (double)(now - b->last_ms) * (double)c->bw_rate / 1000;
	b->last_ms = now;
	if (b->tokens > cap)
		b->tokens = cap;
	double need = (double)want;
	if (need > cap)
		need = cap;
	if (need > 65536)
		need = 65536;
	if (b->tokens >= need) {
		double n = b->tokens < (double)want ? b->tokens : (double)want;
		return (size_t)n;
	}
	double ms = (need - b->tokens) * 1000 / (double)c->bw_rate;
	*ret_wait_ms = ms > 1000 ? 1000 : (int)ms + 1;
	return 0;
}

/* --bwlimit: @n bytes went through, taken from bucket @b. */
static void bw_take(const struct ks_conn *c, struct ks_bucket *b, size_t n)
{
	if (c->bw_rate)
		b->tokens -= (double)n;
}

/* One read() of @cap bytes at most into @p, fewer (none) when --bwlimit's
 * bucket holds fewer: the bytes on the connection, compressed with -z.
 * @return bytes read (0: none yet, or the end, which sets eof) or -errno */
static ssize_t read_raw(struct ks_conn *c, uint8_t *p, size_t cap)
{
	int bw_wait;
	size_t allow = bw_allow(c, &c->bw_in, cap, &bw_wait);
	if (!allow)
		return 0; /* the callers' waits sleep for the bucket */
	ssize_t n = read(c->rfd, p, allow);
	if (n > 0) {
		c->bytes_in += (uint64_t)n;
		bw_take(c, &c->bw_in, (size_t)n);
		return n;
	}
	if (n == 0) {
		c->eof = true;
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	if (errno == ECONNRESET) {
		c->eof = true;
		return 0;
	}
	return -errno;
}

/*
 * -z: read what has come and decompress into the input buffer, as much as
 * it has room for.  The room is the bound: however much a hostile stream
 * would expand to, no more than KS_IN_MAX of it is ever held, and a frame
 * longer than the protocol allows is refused by the frame decoder as soon
 * as its length is seen.
 */
static int fill_compressed(struct ks_conn *c)
{
	int rc = input_room(c);
	if (rc)
		return rc;
	if (!c->z_more && !c->eof) {
		if (c->zin_start) {
			memmove(c->zin, c->zin + c->zin_start, c->zin_len);
			c->zin_start = 0;
		}
		if (c->zin_len < c->zin_cap) {
			ssize_t n = read_raw(c, c->zin + c->zin_len, c->zin_cap - c->zin_len);
			if (n < 0)
				return (int)n;
			c->zin_len += (size_t)n;
		}
	}
	if (!c->zin_len && !c->z_more)
		return 0;
	ZSTD_inBuffer ib = {c->zin + c->zin_start, c->zin_len, 0};
	ZSTD_outBuffer ob = {c->in + c->in_start + c->in_len,
			     c->in_cap - c->in_start - c->in_len, 0};
	size_t r = ZSTD_decompressStream(c->zd, &ob, &ib);
	if (ZSTD_isError(r)) {
		snprintf(c->why_buf, sizeof(c->why_buf), "bad compressed stream: %s",
			 ZSTD_getErrorName(r));
		return proto_fail(c, c->why_buf);
	}
	c->zin_start += ib.pos;
	c->zin_len -= ib.pos;
	c->in_len += ob.pos;
	c->z_more = ob.pos == ob.size;
	if (!ib.pos && !ob.pos && c->zin_len == c->zin_cap)
		return proto_fail(c, "bad compressed stream: no progress");
	return 0;
}

/* One read() into the input buffer.  @return 0 (maybe nothing read) or -errno */
static int fill_input(struct ks_conn *c)
{
	if (c->zd)
		return fill_compressed(c);
	if (c->eof)
		return 0;
	int rc = input_room(c);
	if (rc)
		return rc;
	ssize_t n = read_raw(c, c->in + c->in_start + c->in_len,
			     c->in_cap - c->in_start - c->in_len);
	if (n < 0)
		return (int)n;
	c->in_len += (size_t)n;
	return 0;
}

/* Whether input is already waiting inside the decompressor (a poll on the
 * descriptor would not see it). */
static bool input_pending(const struct ks_conn *c)
{
	return c->zd && (c->z_more || c->zin_len);
}

/* Whether the peer's stream has ended and everything of it is in in[]. */
static bool input_ended(const struct ks_conn *c)
{
	return c->eof && !input_pending(c);
}

static bool stop_requested(const struct pollfd *p)
{
	return p->fd >= 0 && (p->revents & (POLLIN | POLLHUP | POLLERR));
}

static int flush_out(struct ks_conn *c);

int ks_conn_flush(struct ks_conn *c)
{
	if (c->write_err)
		return c->write_err;
	int rc = flush_out(c);
	if (rc && rc != -EINTR)
		c->write_err = rc;
	return rc;
}

/*
 * A peer that stops reading must not hold us (and whatever we hold: a read
 * transaction, a daemon slot) for ever: after timeout_ms without a byte
 * written, give up.  What the peer sends meanwhile does not count as
 * progress, or a peer that only talks would keep us waiting.
 */
/* -z: compress everything buffered into zout, flushed so that the peer
 * can decode all of it now.  @return 0 or -errno */
static int compress_out(struct ks_conn *c)
{
	ZSTD_inBuffer ib = {c->out.buf.p, c->out.buf.len, 0};
	for (;;) {
		size_t need = c->zout_len + ZSTD_CStreamOutSize();
		if (need > c->zout_cap) {
			uint8_t *p = kt_array_grow(c->zout, 1, need, &c->zout_cap, need);
			if (!p)
				return -ENOMEM;
			c->zout = p;
		}
		ZSTD_outBuffer ob = {c->zout + c->zout_len, c->zout_cap - c->zout_len, 0};
		size_t left = ZSTD_compressStream2(c->zc, &ob, &ib, ZSTD_e_flush);
		if (ZSTD_isError(left))
			return -EIO;
		c->zout_len += ob.pos;
		if (!left && ib.pos == ib.size)
			break;
	}
	c->out.buf.len = 0;
	c->out_off = 0;
	return 0;
}

/*
 * A peer that stops reading must not hold us (and whatever we hold: a read
 * transaction, a daemon slot) for ever: after timeout_ms without a byte
 * written, give up.  What the peer sends meanwhile does not count as
 * progress, or a peer that only talks would keep us waiting.  A wait for
 * --bwlimit is ours, not the peer's: it does not count either.
 */
static int flush_out(struct ks_conn *c)
{
	if (c->out.err)
		return c->out.err;
	if (c->zc && c->out.buf.len) {
		int rc = compress_out(c);
		if (rc)
			return rc;
	}
	uint8_t *buf = c->zc ? c->zout : c->out.buf.p;
	size_t len = c->zc ? c->zout_len : c->out.buf.len;
	size_t *off = c->zc ? &c->zout_off : &c->out_off;
	int64_t deadline = c->timeout_ms < 0 ? -1 : ks_mono_ms() + c->timeout_ms;
	while (*off < len) {
		int bw_wait;
		size_t allow = bw_allow(c, &c->bw_out, len - *off, &bw_wait);
		ssize_t n = -1;
		errno = EAGAIN;
		if (allow)
			n = write(c->wfd, buf + *off, allow);
		if (n > 0) {
			*off += (size_t)n;
			c->bytes_out += (uint64_t)n;
			bw_take(c, &c->bw_out, (size_t)n);
			if (deadline >= 0)
				deadline = ks_mono_ms() + c->timeout_ms;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno;
		/* Reading goes on at the read bucket's pace: the peer, blocked
		 * writing to us, still progresses, and a readable descriptor
		 * is not polled (which would spin) while the bucket is empty. */
		int rd_wait = 0;
		if (!c->eof)
			bw_allow(c, &c->bw_in, KS_READ_CHUNK, &rd_wait);
		struct pollfd p[3] = {
			{.fd = bw_wait ? -1 : c->wfd, .events = POLLOUT},
			{.fd = c->eof || rd_wait ? -1 : c->rfd, .events = POLLIN},
			{.fd = c->stop_fd, .events = POLLIN},
		};
		int wait = -1;
		if (bw_wait) {
			wait = bw_wait;
		} else if (deadline >= 0) {
			int64_t left = deadline - ks_mono_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > 1000000 ? 1000000 : (int)left;
		}
		if (rd_wait && (wait < 0 || rd_wait < wait))
			wait = rd_wait;
		if (bw_wait && deadline >= 0)
			deadline += wait;
		int ready = poll(p, 3, wait);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (ready == 0)
			continue; /* the deadline is checked above */
		if (stop_requested(&p[2]))
			return -EINTR;
		if (p[1].revents) {
			int rc = fill_input(c);
			if (rc)
				return rc;
		}
		if (p[0].revents & (POLLERR | POLLHUP) && !(p[0].revents & POLLOUT))
			return -EPIPE;
	}
	if (c->zc) {
		c->zout_len = 0;
		c->zout_off = 0;
	} else {
		c->out.buf.len = 0;
		c->out_off = 0;
	}
	return 0;
}

bool ks_conn_should_flush(const struct ks_conn *c)
{
	return c->out.buf.len >= KS_FLUSH_AT;
}

int ks_conn_maybe_flush(struct ks_conn *c)
{
	if (c->out.err)
		return c->out.err;
	return c->out.buf.len >= KS_FLUSH_AT ? ks_conn_flush(c) : 0;
}

/*
 * --bwlimit: sleep until the read bucket allows a read (at once without a
 * limit, or when it holds enough), still woken by the stop descriptor.
 * The wait is ours, not the peer's: it moves @deadline (-1: none) on by
 * as long.  @return 0 or -EINTR (stop)
 */
static int wait_read_bucket(struct ks_conn *c, int64_t *deadline)
{
	for (;;) {
		int bw_wait;
		bw_allow(c, &c->bw_in, KS_READ_CHUNK, &bw_wait);
		if (!bw_wait)
			return 0;
		struct pollfd p = {.fd = c->stop_fd, .events = POLLIN};
		int64_t before = ks_mono_ms();
		int n = poll(&p, 1, bw_wait);
		if (*deadline >= 0)
			*deadline += ks_mono_ms() - before;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && stop_requested(&p))
			return -EINTR;
	}
}

/*
 * Wait until input is readable (and, with --bwlimit, may be read: that
 * wait moves @deadline on).  A deadline already past still looks once
 * (poll with no wait): a sender checking for acknowledgements between
 * batches must see what has arrived, or the receiver, unable to send them,
 * would stop reading.  @return 1, 0 (timeout), -EINTR (stop)
 */
static int wait_input(struct ks_conn *c, int64_t *deadline)
{
	for (;;) {
		int rc = wait_read_bucket(c, deadline);
		if (rc)
			return rc;
		int timeout = -1;
		if (*deadline >= 0) {
			int64_t left = *deadline - ks_mono_ms();
			timeout = left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd p[2] = {
			{.fd = c->rfd, .events = POLLIN},
			{.fd = c->stop_fd, .events = POLLIN},
		};
		int n = poll(p, 2, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (stop_requested(&p[1]))
			return -EINTR;
		if (n > 0)
			return 1;
		if (timeout == 0)
			return 0;
	}
}

/* A negative timeout means the connection's own (maybe none). */
static int64_t deadline_of(const struct ks_conn *c, int timeout_ms)
{
	if (timeout_ms < 0)
		timeout_ms = c->timeout_ms;
	return timeout_ms < 0 ? -1 : ks_mono_ms() + timeout_ms;
}

static void describe_junk(const uint8_t *p, size_t n, char *junk, size_t junk_size)
{
	size_t j = 0;
	if (!junk_size)
		return;
	for (size_t i = 0; i < n && j + 4 < junk_size; i++) {
		if (p[i] == '\n' || p[i] == '\r') {
			if (j)
				break;
			continue;
		}
		junk[j++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
		if (j >= 60) {
			memcpy(junk + j, "...", 3);
			j += 3;
			break;
		}
	}
	junk[j] = 0;
}

int ks_conn_read_magic(struct ks_conn *c, int timeout_ms, char *junk, size_t junk_size)
{
	int64_t deadline = deadline_of(c, timeout_ms);
	for (;;) {
		size_t have = c->in_len < KS_MAGIC_LEN ? c->in_len : KS_MAGIC_LEN;
		const uint8_t *p = c->in + c->in_start;
		if (have && memcmp(p, KS_MAGIC, have) != 0)
			break;
		if (have == KS_MAGIC_LEN) {
			c->in_start += KS_MAGIC_LEN;
			c->in_len -= KS_MAGIC_LEN;
			return 0;
		}
		if (c->eof) {
			if (c->in_len)
				break;
			return -ECONNRESET;
		}
		int rc = wait_input(c, &deadline);
		if (rc <= 0)
			return rc ? rc : -ETIMEDOUT;
		rc = fill_input(c);
		if (rc)
			return rc;
	}
	/* Something else came first: collect its first line (briefly) so the
	 * message can quote it. */
	int64_t until = ks_mono_ms() + 300;
	while (!c->eof && c->in_len < 200 && !memchr(c->in + c->in_start, '\n', c->in_len)) {
		if (wait_input(c, &until) <= 0 || fill_input(c))
			break;
	}
	describe_junk(c->in + c->in_start, c->in_len, junk, junk_size);
	return -EBADMSG;
}

int ks_conn_recv(struct ks_conn *c, int timeout_ms, struct ks_frame *ret)
{
	if (c->proto_err)
		return c->proto_err;
	/* After a failed write, what the peer sent (maybe an ERROR saying
	 * why it went away) can still be read. */
	int rc = c->write_err ? 0 : ks_conn_flush(c);
	if (rc)
		return rc;
	int64_t deadline = deadline_of(c, timeout_ms);
	for (;;) {
		struct ks_frame f;
		size_t size;
		const char *why = NULL;
		rc = ks_frame_decode(c->in + c->in_start, c->in_len, &f, &size, &why);
		if (rc == 0) {
			/* Copy it out: later reads may move the input buffer
			 * while the caller still uses the frame. */
			uint8_t *p = kt_array_grow(c->cur, 1, size, &c->cur_cap, KS_READ_CHUNK);
			if (!p)
				return -ENOMEM;
			c->cur = p;
			memcpy(c->cur, c->in + c->in_start, size);
			c->in_start += size;
			c->in_len -= size;
			if (c->in_len == 0)
				c->in_start = 0;
			ret->type = f.type;
			ret->payload = c->cur + KS_FRAME_LEN_SIZE + 1;
			ret->len = f.len;
			return 0;
		}
		if (rc == -EPROTO)
			return proto_fail(c, why);
		if (input_ended(c)) {
			if (c->in_len == 0)
				return -ECONNRESET;
			return proto_fail(c, "connection closed in the middle of a frame");
		}
		rc = input_pending(c) ? 1 : wait_input(c, &deadline);
		if (rc <= 0)
			return rc ? rc : -ETIMEDOUT;
		rc = fill_input(c);
		if (rc)
			return rc;
	}
}

int ks_conn_wait(struct ks_conn *c, int timeout_ms)
{
	int rc = c->write_err ? 0 : ks_conn_flush(c);
	if (rc)
		return rc;
	if (input_ended(c) || c->proto_err)
		return 1;
	struct ks_frame f;
	size_t size;
	if (ks_frame_decode(c->in + c->in_start, c->in_len, &f, &size, NULL) != -EAGAIN)
		return 1;
	int64_t deadline = deadline_of(c, timeout_ms);
	for (;;) {
		rc = input_pending(c) ? 1 : wait_input(c, &deadline);
		if (rc <= 0)
			return rc;
		rc = fill_input(c);
		if (rc)
			return rc;
		if (input_ended(c) ||
		    ks_frame_decode(c->in + c->in_start, c->in_len, &f, &size, NULL) != -EAGAIN)
			return 1;
	}
}

/* ---------------------------------------------------------- transports */

int ks_spawn(char *const argv[], pid_t *ret_pid, int *ret_rfd, int *ret_wfd)
{
	int to_child[2], from_child[2];
	if (pipe2(to_child, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(from_child, O_CLOEXEC) < 0) {
		int err = -errno;
		close(to_child[0]);
		close(to_child[1]);
		return err;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(to_child[0]);
		close(to_child[1]);
		close(from_child[0]);
		close(from_child[1]);
		return err;
	}
	if (pid == 0) {
		if (dup2(to_child[0], 0) < 0 || dup2(from_child[1], 1) < 0)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "kvsync: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(to_child[0]);
	close(from_child[1]);
	*ret_pid = pid;
	*ret_rfd = from_child[0];
	*ret_wfd = to_child[1];
	return 0;
}

int ks_spawn_fn(int (*fn)(int fd, void *arg), void *arg, pid_t *ret_pid, int *ret_fd)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (pid == 0) {
		close(sv[0]);
		exit(fn(sv[1], arg));
	}
	close(sv[1]);
	*ret_pid = pid;
	*ret_fd = sv[0];
	return 0;
}

int ks_split_hostport(const char *s, const char *def_port, char **ret_host, char *ret_port,
		      size_t port_size)
{
	const char *host = s, *host_end, *port = NULL;
	if (*s == '[') {
		host = s + 1;
		host_end = strchr(host, ']');
		if (!host_end)
			return -EINVAL;
		if (host_end[1] == ':')
			port = host_end + 2;
		else if (host_end[1])
			return -EINVAL;
	} else {
		host_end = strrchr(s, ':');
		if (host_end && strchr(s, ':') != host_end)
			host_end = NULL; /* a bare IPv6 address: no port */
		if (host_end)
			port = host_end + 1;
		else
			host_end = s + strlen(s);
	}
	if (!port)
		port = def_port;
	if (host_end == host || !*port || strlen(port) >= port_size ||
	    strspn(port, "0123456789") != strlen(port))
		return -EINVAL;
	char *h = strndup(host, (size_t)(host_end - host));
	if (!h)
		return -ENOMEM;
	*ret_host = h;
	snprintf(ret_port, port_size, "%s", port);
	return 0;
}

void ks_tcp_tune(int fd)
{
	/* First probe after 60 s of silence, then every 10 s; 6 unanswered
	 * probes end the connection. */
	int one = 1, idle = 60, intvl = 10, cnt = 6;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* connect() that gives up after @timeout_ms (<= 0: the kernel's own).
 * @return 0 or an errno */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	if (timeout_ms <= 0)
		return connect(fd, sa, len) == 0 ? 0 : errno;
	set_nonblock(fd);
	int err = 0;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return errno;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int64_t deadline = ks_mono_ms() + timeout_ms;
		for (;;) {
			int64_t left = deadline - ks_mono_ms();
			if (left <= 0)
				return ETIMEDOUT;
			int n = poll(&p, 1, (int)left);
			if (n > 0)
				break;
			if (n < 0 && errno != EINTR)
				return errno;
		}
		socklen_t elen = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return errno;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return err;
}

/*
 * --bwlimit: kernel buffers of about a tenth of a second's worth on each
 * side of the socket.  This side reads at the rate, but a peer given no
 * limit (a daemon) writes as fast as the buffers between us take: with
 * the default ones (128 KiB, growing to MiB) it would see a burst first
 * and the rate only later, and its progress (and ours, pushing) would
 * count bytes still in flight.  Before connect, as the window scale is
 * settled then.  Only for rates whose tenth of a second is below the
 * kernel's default receive buffer: a size set by hand stops the kernel's
 * own tuning and is capped by net.core.rmem_max (208 KiB by default),
 * which would hold a fast link below its rate.  A tenth of a second also
 * bounds the window: a link whose round trip is longer gets less than
 * the rate.
 */
#define KS_SOCKBUF_TUNED_MAX (128u * 1024u)

static void limit_socket_buffers(int fd, uint64_t bwlimit)
{
	uint64_t want = bwlimit / 10;
	if (!bwlimit || want >= KS_SOCKBUF_TUNED_MAX)
		return;
	/* The kernel raises a size below its minimum to that. */
	int size = (int)want;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

int ks_tcp_connect(const char *host, const char *port, int timeout_ms, uint64_t bwlimit,
		   int *ret_fd, char *err, size_t err_size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		snprintf(err, err_size, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	int last = ECONNREFUSED;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		limit_socket_buffers(fd, bwlimit);
		last = connect_within(fd, a->ai_addr, a->ai_addrlen, timeout_ms);
		if (last == 0) {
			ks_tcp_tune(fd);
			freeaddrinfo(res);
			*ret_fd = fd;
			return 0;
		}
		close(fd);
	}
	freeaddrinfo(res);
	snprintf(err, err_size, "cannot connect to %s port %s: %s", host, port,
		 last == ETIMEDOUT ? "timed out" : strerror(last));
	return -last;
}

static void sockaddr_text(const struct sockaddr *sa, char *out, size_t size)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		port = ntohs(in->sin_port);
		snprintf(out, size, "%s:%u", addr, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		port = ntohs(in6->sin6_port);
		snprintf(out, size, "[%s]:%u", addr, port);
	} else {
		snprintf(out, size, "(local)");
	}
}

int ks_tcp_listen(const char *host, const char *port, int *ret_fd, char *bound,
		  size_t bound_size, char *err, size_t err_size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC,
				 .ai_flags = AI_PASSIVE};
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		snprintf(err, err_size, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	int last = EADDRNOTAVAIL;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
				sockaddr_text((struct sockaddr *)&ss, bound, bound_size);
			freeaddrinfo(res);
			*ret_fd = fd;
			return 0;
		}
		last = errno;
		close(fd);
	}
	freeaddrinfo(res);
	snprintf(err, err_size, "cannot listen on %s port %s: %s", host, port, strerror(last));
	return -last;
}

bool ks_peer_is_loopback(int fd, char *who, size_t who_size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	snprintf(who, who_size, "?");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	sockaddr_text((struct sockaddr *)&ss, who, who_size);
	if (ss.ss_family == AF_UNIX)
		return true;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}
