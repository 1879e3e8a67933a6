/*
 * cmd_watch: kvctl STORE watch [--prefix P] [--since SEQ] [--values], the
 * store's change feed as it grows, one JSON object a line:
 *
 *   {"seq":N,"key":K,"op":"put"|"delete","expiration":T|null,"metadata":M|null}
 *
 * with "value" (base64, null for a delete) under --values.  It follows the
 * feed as the mount's watcher does (kvc_feed_read every KVC_FEED_POLL_MS),
 * so a commit by any process shows within about 0.2 s.
 *
 * What a watcher sees is what the feed holds: one entry per key, at the
 * sequence of its latest change.  A watcher that falls behind (or resumes
 * with --since) sees each changed key once, in its latest state, never
 * the writes in between; nothing after SEQ is lost and nothing printed
 * comes again when it resumes with the last seq it printed.  Expiring
 * changes no sequence (every replica expires a key by itself; reaping
 * keeps the sequence): a watcher that read a put before its expiration
 * has the expiration in that line and prints nothing more when it
 * passes; one that reads the key's entry after shows it as a delete, at
 * the same seq.  Tombstones older than
 * the grace period are collected: resuming from before the collection
 * horizon may miss deletes, which the watcher is told on stderr.
 *
 * Lines go out after the read transaction ends, so a reader that stops
 * reading pins no snapshot of the store; each batch is written at once,
 * never held in a stdio buffer.  SIGINT, SIGTERM and a closed pipe end
 * the watch with status 0.
 */
#include "kvctl.h"

#include "common/json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* Changes a read transaction hands out at most, and the output it may
 * gather (a change past it ends the batch), so memory stays bounded. */
#define WATCH_BATCH 256u
#define WATCH_BATCH_BYTES (4u << 20)

struct watch_ctx {
	const char *prefix;
	size_t prefix_len;
	bool values;
	FILE *out;      /* the batch's lines, in memory */
	uint64_t bytes; /* written to @out so far */
	int64_t now_ns; /* when the batch is read */
};

/* One change as one line in the batch.  @return 0, or 1 when the batch is full */
static int watch_line(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct watch_ctx *c = arg;
	if (key_len < c->prefix_len || memcmp(key, c->prefix, c->prefix_len))
		return 0; /* taken, not shown */
	/* Expiring is no change in the feed (the key keeps the sequence of
	 * its put, reaped or not): an expired key is shown as it is now. */
	bool put = !(rec->flags & KVC_REC_TOMBSTONE) && !kvc_record_expired(rec, c->now_ns);
	FILE *f = c->out;
	fprintf(f, "{\"seq\":%" PRIu64 ",\"key\":", rec->seq);
	kt_json_string(f, key, key_len);
	fprintf(f, ",\"op\":\"%s\",\"expiration\":", put ? "put" : "delete");
	if (put && rec->expiration)
		fprintf(f, "%" PRId64, rec->expiration);
	else
		fputs("null", f);
	fputs(",\"metadata\":", f);
	if (put && rec->metadata)
		fwrite(rec->metadata, 1, rec->metadata_len, f);
	else
		fputs("null", f);
	if (c->values) {
		fputs(",\"value\":", f);
		if (put)
			kt_json_base64(f, rec->value, rec->value_len);
		else
			fputs("null", f);
	}
	fputs("}\n", f);
	long at = ftell(f);
	if (at < 0)
		return -ENOMEM;
	c->bytes = (uint64_t)at;
	return c->bytes >= WATCH_BATCH_BYTES ? 1 : 0;
}

/*
 * Write @len bytes to stdout, waiting for room while watching @sig_fd: a
 * reader that stops reading must not keep a signal from ending the watch.
 * @return 0, 1 (a signal came), -EPIPE (the reader is gone) or -errno
 */
static int write_out(int sig_fd, const char *data, size_t len)
{
	while (len) {
		struct pollfd p[2] = {{.fd = sig_fd, .events = POLLIN},
				      {.fd = STDOUT_FILENO, .events = POLLOUT}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents)
			return 1;
		if (!p[1].revents)
			continue;
		/* POLLOUT on a pipe promises room for PIPE_BUF bytes: a
		 * larger write could block past a signal. */
		ssize_t n = write(STDOUT_FILENO, data, len < PIPE_BUF ? len : PIPE_BUF);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Block SIGINT and SIGTERM and return a descriptor that reads them, or -1. */
static int take_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -1;
	/* A reader that went away is an end, not a death. */
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC);
}

/* Where the watch starts: --since, or the feed head now; and the
 * collection horizon, past which deletes may be missing. */
static int watch_start(kvc_store *store, const struct args *a, uint64_t *ret_after)
{
	kvc_txn *txn = NULL;
	uint64_t head, horizon;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (!rc)
		rc = kvc_feed_head(txn, &head);
	if (!rc)
		rc = kvc_gc_horizon(txn, &horizon);
	if (rc)
		return txn ? txn_failure(txn, rc) : failure("cannot read the store: %s", strerror(-rc));
	kvc_txn_abort(txn);
	uint64_t after = a->since ? (uint64_t)a->since_n : head;
	if (after > head)
		return failure("--since %" PRIu64 " is past the store's last change (seq %" PRIu64
			       "): not a seq of this store",
			       after, head);
	/* From 0 the feed is the whole state: a key deleted and collected
	 * was never shown, so nothing is missing. */
	if (after && after < horizon)
		fprintf(stderr,
			"kvctl: deletes up to seq %" PRIu64 " were collected (tombstones older than "
			"%u days): keys deleted since seq %" PRIu64 " may not show; list the store "
			"to know which remain\n",
			horizon, KVC_TOMBSTONE_GRACE_DEFAULT / (24u * 3600u), after);
	/* Where a watch that printed nothing resumes from. */
	fprintf(stderr, "since: %" PRIu64 "\n", after);
	*ret_after = after;
	return 0;
}

int cmd_watch(kvc_store *store, const struct args *a)
{
	int sig_fd = take_signals();
	if (sig_fd < 0)
		return failure("cannot take signals: %s", strerror(errno));
	uint64_t after;
	int status = watch_start(store, a, &after);
	struct watch_ctx c = {
		.prefix = a->prefix ? a->prefix : "",
		.prefix_len = a->prefix ? strlen(a->prefix) : 0,
		.values = a->opts & OPT_VALUES,
	};
	char *buf = NULL;
	size_t len = 0;
	while (!status) {
		c.out = open_memstream(&buf, &len);
		if (!c.out) {
			status = failure("%s", strerror(errno));
			break;
		}
		c.bytes = 0;
		c.now_ns = kvc_now_ns();
		int n = kvc_feed_read(store, &after, WATCH_BATCH, c.values ? 0 : KVC_GET_NO_VALUE,
				      watch_line, &c, NULL);
		bool failed = fclose(c.out) != 0;
		c.out = NULL;
		if (n < 0 || failed) {
			status = failure("cannot read the change feed: %s",
					 strerror(n < 0 ? -n : ENOMEM));
			break;
		}
		int rc = write_out(sig_fd, buf, len);
		free(buf);
		buf = NULL;
		if (rc == 1 || rc == -EPIPE)
			break; /* asked to stop, or nobody reads */
		if (rc < 0) {
			status = failure("cannot write the output: %s", strerror(-rc));
			break;
		}
		if (n == (int)WATCH_BATCH || c.bytes >= WATCH_BATCH_BYTES)
			continue; /* more may be waiting */
		/* Sleep until the next poll of the feed, a signal, or the
		 * reader closing its end of a pipe (POLLERR: nothing waits to
		 * be written that would tell). */
		struct pollfd p[2] = {{.fd = sig_fd, .events = POLLIN},
				      {.fd = STDOUT_FILENO, .events = 0}};
		rc = poll(p, 2, KVC_FEED_POLL_MS);
		if (rc > 0 && (p[0].revents || (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))))
			break;
		if (rc < 0 && errno != EINTR) {
			status = failure("poll: %s", strerror(errno));
			break;
		}
	}
	free(buf);
	close(sig_fd);
	return status;
}
