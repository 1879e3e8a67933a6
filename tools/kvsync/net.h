/*
 * net: kvsync's connections and the transports that make them.
 *
 * A connection is a pair of file descriptors (one socket, or a pipe each
 * way to a remote shell) carrying frames.  Writes never deadlock against a
 * peer that is writing too: while a write would block, whatever the peer
 * sends is read into memory (up to a bound) so it can make progress.
 * Transports: a spawned command (the remote shell), a forked local peer
 * over a socketpair, TCP client and listener.
 */
#ifndef KVSYNC_SYNC_NET_H
#define KVSYNC_SYNC_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct ks_conn;

/** Milliseconds of CLOCK_MONOTONIC: what every deadline and timeout of
 *  the protocol is measured in. */
int64_t ks_mono_ms(void);

/**
 * Wrap descriptors in a connection (made non-blocking; owned from now on).
 * @param[in] child a process to reap when the connection closes, or 0
 * @return 0 or -ENOMEM (the descriptors are closed then)
 */
int ks_conn_new(int rfd, int wfd, pid_t child, struct ks_conn **ret_conn);

/**
 * Close the descriptors and reap the child (waiting at most a few seconds,
 * then killing it).  NULL is accepted.
 * @return the child's wait status, or 0 without a child
 */
int ks_conn_close(struct ks_conn *c);

/* A descriptor that becomes readable when the connection must give up
 * waiting (-1: none).  Not owned. */
void ks_conn_set_stop_fd(struct ks_conn *c, int fd);

/*
 * The connection's I/O timeout: a write that makes no progress for
 * @timeout_ms, and a read given a negative timeout that receives nothing
 * for that long, fail with -ETIMEDOUT.  0 or less: wait for ever (the
 * default).
 */
void ks_conn_set_timeout(struct ks_conn *c, int timeout_ms);

/*
 * --bwlimit: write at most @bytes_per_s bytes a second (averaged over a
 * tenth of a second) to the connection, and read at most as many (so
 * that TCP's flow control holds back a peer that has no limit of its
 * own); 0: no limit (the default).  Waits for it still watch the stop
 * descriptor, and a write's still reads the peer's input (at the rate).
 */
void ks_conn_set_bwlimit(struct ks_conn *c, uint64_t bytes_per_s);

/**
 * -z: from now on, both directions are a zstd stream (what is written is
 * compressed and flushed at every ks_conn_flush(); what is read is
 * decompressed, never more than the input bound at once).  Flushes first;
 * input already read past the last frame is taken as compressed.
 * @return 0, -ENOMEM, or a flush error
 */
int ks_conn_start_compress(struct ks_conn *c);

/* The buffer frames are encoded into; ks_conn_flush() sends it. */
struct ks_wbuf *ks_conn_out(struct ks_conn *c);

/** Send everything buffered.  @return 0, -EPIPE/-ECONNRESET (peer gone),
 *  -ETIMEDOUT (the peer stopped reading), -EINTR (stop), -EPROTO (peer
 *  flooded us), -ENOMEM, -EIO */
int ks_conn_flush(struct ks_conn *c);

/** Flush only when enough is buffered to be worth a write. */
int ks_conn_maybe_flush(struct ks_conn *c);

/* Whether ks_conn_maybe_flush() would write now. */
bool ks_conn_should_flush(const struct ks_conn *c);

/**
 * Read the 8 magic bytes.  What came instead is described in @junk (its
 * first line, made printable).
 * @param[in] timeout_ms -1: the connection's timeout
 * @return 0, -EBADMSG (something else came first), -ECONNRESET (closed
 *         first), -ETIMEDOUT, -EINTR
 */
int ks_conn_read_magic(struct ks_conn *c, int timeout_ms, char *junk, size_t junk_size);

/**
 * Flush, then receive the next frame.  The frame stays valid until the
 * next ks_conn_recv() on @c.
 * @param[in] timeout_ms -1: the connection's timeout (see ks_conn_set_timeout)
 * @return 0, -ECONNRESET (closed between frames), -EPROTO (malformed or
 *         truncated: ks_conn_why() says how), -ETIMEDOUT, -EINTR (stop),
 *         -ENOMEM, -EIO
 */
int ks_conn_recv(struct ks_conn *c, int timeout_ms, struct ks_frame *ret);

/**
 * Flush, then wait until a frame may be read.
 * @param[in] timeout_ms -1: the connection's timeout
 * @return 1 (input waiting, or the peer closed), 0 (timeout), -EINTR, or a
 *         flush error
 */
int ks_conn_wait(struct ks_conn *c, int timeout_ms);

/* Why the last -EPROTO happened (static text). */
const char *ks_conn_why(const struct ks_conn *c);

/* Bytes read from and written to the descriptors: what went over the
 * connection, compressed with -z. */
uint64_t ks_conn_bytes_in(const struct ks_conn *c);
uint64_t ks_conn_bytes_out(const struct ks_conn *c);

/**
 * Run @argv with pipes on its stdin and stdout (stderr is shared).
 * @return 0 or -errno (exec failures show as the child exiting 127)
 */
int ks_spawn(char *const argv[], pid_t *ret_pid, int *ret_rfd, int *ret_wfd);

/**
 * Fork a process that calls @fn(fd, @arg) on one end of a socketpair and
 * exits with its return value; the other end is returned.
 */
int ks_spawn_fn(int (*fn)(int fd, void *arg), void *arg, pid_t *ret_pid, int *ret_fd);

/**
 * Split "HOST:PORT", "[V6]:PORT", "HOST" (port @def_port) into parts.
 * @return 0 or -EINVAL; the caller frees *ret_host
 */
int ks_split_hostport(const char *s, const char *def_port, char **ret_host, char *ret_port,
		      size_t port_size);

/**
 * Connect over TCP, giving up after @timeout_ms (<= 0: the kernel's own
 * limit, minutes).  On failure @err says why.
 * @param[in] bwlimit --bwlimit in bytes a second (0: none): the socket's
 *            kernel buffers are made about a tenth of a second's worth
 * @return 0 or -errno (-ETIMEDOUT)
 */
int ks_tcp_connect(const char *host, const char *port, int timeout_ms, uint64_t bwlimit,
		   int *ret_fd, char *err, size_t err_size);

/**
 * Listen on TCP.  @bound gets "ADDR:PORT" as actually bound.
 * @return 0 or -errno
 */
int ks_tcp_listen(const char *host, const char *port, int *ret_fd, char *bound,
		  size_t bound_size, char *err, size_t err_size);

/*
 * Tune a connected TCP socket: no Nagle delay, and keep-alive probes that
 * find a peer gone without a word (a host powered off, a cable pulled)
 * within about two minutes, so neither side waits on it for ever.
 */
void ks_tcp_tune(int fd);

/* Whether the peer of a connected socket is a loopback address; @who
 * gets its printable address. */
bool ks_peer_is_loopback(int fd, char *who, size_t who_size);

#endif
