/*
 * watch: the daemon's background threads.
 *
 *   watcher  keeps the kernel's caches coherent with the store.  Other
 *            processes (kvctl, kvsync, another mount) write the same store;
 *            every write gets a change-feed sequence number.  Five times a
 *            second the watcher compares the feed head with the last
 *            sequence it saw and, for each key changed since, invalidates
 *            the kernel's page cache and attributes of the key's inode and
 *            the directory entries naming the key and those of its parent
 *            directories that may have appeared or vanished, so the change
 *            shows in the mount well within a second however long
 *            cache_ttl is.  Changes this daemon made itself are
 *            invalidated too: harmless, and simpler than telling them
 *            apart.  It also publishes which changes have settled (see
 *            file.c) and hands the memory of forgotten inodes back to the
 *            system.
 *   reaper   removes expired records every reap_interval seconds; readers
 *            never see them anyway, and the removals reach the watcher
 *            through the feed like any other change.
 *   syncer   with sync=batch, flushes commits to disk every
 *            KFS_SYNC_MS (0.5 s), when there are any.
 *
 * Only the watcher talks to the kernel (fuse_lowlevel_notify_*), and it
 * holds no lock and no transaction while it does: the kernel may be
 * waiting, inside a request this daemon is serving, on the very directory
 * being invalidated.
 */
#include "kfs.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define WATCH_PERIOD_MS KVC_FEED_POLL_MS
#define FEED_BATCH 256
#define SEEN_SLOTS 4096 /* per batch: invalidations already sent */
/* Memory of this many forgotten inodes is worth handing back. */
#define TRIM_INODES 10000
/* Feed positions remembered, one per period, to know the settled one. */
#define SAMPLES (KFS_SETTLE_MS / WATCH_PERIOD_MS + 2)

static bool stopping(struct kfs *fs)
{
	pthread_mutex_lock(&fs->bg_lock);
	bool stop = fs->bg_stop;

	pthread_mutex_unlock(&fs->bg_lock);
	return stop;
}

/* Sleep @ms unless told to stop.  @return true when told to stop. */
static bool bg_wait(struct kfs *fs, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&fs->bg_lock);
	while (!fs->bg_stop) {
		if (pthread_cond_timedwait(&fs->bg_cond, &fs->bg_lock, &ts) == ETIMEDOUT)
			break;
	}
	bool stop = fs->bg_stop;

	pthread_mutex_unlock(&fs->bg_lock);
	return stop;
}

struct change {
	unsigned char *key;
	size_t len;
	bool live;
};

/* A small set of invalidations sent in this batch, so a bulk write under
 * one directory invalidates that directory's entry once, not per key. */
struct seen {
	uint64_t slot[SEEN_SLOTS];
};

static bool seen_add(struct seen *s, uint64_t ino, const char *name)
{
	uint64_t h = kfs_segment_hash(name, strlen(name)) ^ (ino * 0x9e3779b97f4a7c15ull);

	h |= 1; /* 0 marks a free slot */
	for (size_t i = 0; i < SEEN_SLOTS; i++) {
		uint64_t *p = &s->slot[(h + i) & (SEEN_SLOTS - 1)];

		if (*p == h)
			return false;
		if (*p == 0) {
			*p = h;
			return true;
		}
	}
	return true; /* full: just send it again */
}

static void inval_name(struct kfs *fs, struct seen *s, uint64_t parent, const char *name)
{
	if (parent && seen_add(s, parent, name))
		fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));
}

/* Whether the kernel's entry for directory @p (a prefix ending with the
 * separator) is still right after change @c: it knows the directory (holds
 * its inode) and the directory still exists.  Invalidating a directory's
 * entry makes the kernel forget every entry below it, so a write must not
 * do that to the directories it lands in. */
static bool dir_entry_holds(struct kfs *fs, const struct change *c, const void *p, size_t len)
{
	kvc_txn *txn;

	if (!kfs_inode_find(fs->inodes, KFS_DIR, p, len) &&
	    !kfs_inode_find(fs->inodes, KFS_ALIAS, p, len))
		return false;
	if (c->live)
		return true; /* a key was written under it */
	if (kvc_txn_begin(fs->store, KVC_TXN_READ, &txn) < 0)
		return false;
	bool exists = kfs_dir_exists(fs, txn, p, len);

	kvc_txn_abort(txn);
	return exists;
}

/* Invalidate what the kernel may cache about key @k. */
static void invalidate(struct kfs *fs, struct seen *s, const struct change *c)
{
	const unsigned char *k = c->key;
	char sep = fs->cfg.sep;

	if (c->len < fs->root_len || memcmp(k, fs->root, fs->root_len) != 0)
		return; /* not under the mount's prefix */
	if (c->live)
		kfs_key_written(fs, k, c->len);

	uint64_t ino = kfs_inode_find(fs->inodes, KFS_FILE, k, c->len);

	if (ino) {
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
		/* The size the kernel holds is no longer known to be right. */
		kfs_inode_attr_sent(fs->inodes, ino, 0);
		if (c->live)
			return; /* a new version of a value the kernel knows by name */
	}

	/* Every level: the entry of the child segment in its parent, by its
	 * plain name and its alias (a new key may turn "s" from a directory
	 * into a file and the directory into "s:"), unless it names a
	 * directory the kernel knows and the change left in place. */
	size_t dir_end = fs->root_len;

	for (;;) {
		const unsigned char *q = memchr(k + dir_end, (unsigned char)sep, c->len - dir_end);
		size_t seg_end = q ? (size_t)(q - k) : c->len;
		char name[KFS_NAME_MAX + 1], alias[KFS_NAME_MAX + 1];

		if (q && dir_entry_holds(fs, c, k, seg_end + 1)) {
			dir_end = seg_end + 1;
			continue;
		}
		kfs_encode_segment(k + dir_end, seg_end - dir_end, sep, name);
		kfs_encode_alias(k + dir_end, seg_end - dir_end, sep, alias);
		for (enum kfs_kind kind = KFS_DIR; kind <= KFS_ALIAS; kind++) {
			uint64_t parent = kfs_inode_find(fs->inodes, kind, k, dir_end);

			inval_name(fs, s, parent, name);
			inval_name(fs, s, parent, alias);
		}
		if (!q)
			break;
		dir_end = seg_end + 1;
	}
}

struct batch {
	struct change *out;
	int n;
	int64_t now_ns;
};

/* Copy one change out of the feed's transaction. */
static int take_change(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct batch *b = arg;
	struct change *c = &b->out[b->n];

	c->key = malloc(key_len ? key_len : 1);
	if (!c->key)
		return -ENOMEM;
	memcpy(c->key, key, key_len);
	c->len = key_len;
	c->live = !(rec->flags & KVC_REC_TOMBSTONE) && !kvc_record_expired(rec, b->now_ns);
	b->n++;
	return 0;
}

/* Read up to FEED_BATCH changes after fs->feed_seen.
 * @return how many, or -errno */
static int read_changes(struct kfs *fs, struct change *out)
{
	struct batch b = {.out = out, .now_ns = kvc_now_ns()};
	uint64_t head, after = fs->feed_seen;
	int rc = kvc_feed_read(fs->store, &after, FEED_BATCH, KVC_GET_NO_VALUE, take_change, &b,
			       &head);

	if (rc == -ESTALE) {
		fs->feed_seen = head; /* the store was replaced */
		return 0;
	}
	if (rc < 0) {
		/* Read them all again next time. */
		while (b.n > 0)
			free(out[--b.n].key);
		return rc;
	}
	fs->feed_seen = after;
	return b.n;
}

/* The feed position the watcher reached at a moment. */
struct sample {
	int64_t at_ns;
	uint64_t seq;
};

/* Note that every change up to fs->feed_seen is invalidated now, and
 * publish the position reached KFS_SETTLE_MS ago or more. */
static void settle(struct kfs *fs, struct sample *ring, unsigned *count)
{
	int64_t now = kvc_now_ns();
	int64_t cut = now - (int64_t)KFS_SETTLE_MS * 1000000;
	uint64_t settled = 0;

	if (*count && ring[(*count - 1) % SAMPLES].seq > fs->feed_seen)
		*count = 0; /* the store was replaced: its sequences start over */
	ring[*count % SAMPLES] = (struct sample){ .at_ns = now, .seq = fs->feed_seen };
	++*count;
	for (unsigned i = 0; i < SAMPLES && i < *count; i++) {
		const struct sample *s = &ring[i];

		if (s->at_ns <= cut && s->seq > settled)
			settled = s->seq;
	}
	atomic_store(&fs->settled_seq, settled);
}

/* After the kernel forgot many inodes (a find over a large tree, then
 * memory pressure), give the memory they held back to the system: malloc
 * keeps freed memory for reuse, and a daemon's size is what operators
 * watch. */
static void trim(struct kfs *fs, size_t *peak)
{
	size_t n = kfs_inodes_count(fs->inodes);

	if (n > *peak) {
		*peak = n;
	} else if (*peak - n >= TRIM_INODES && n < *peak / 2) {
		malloc_trim(0);
		*peak = n;
	}
}

static void *watcher_main(void *arg)
{
	struct kfs *fs = arg;
	struct change *batch = calloc(FEED_BATCH, sizeof(*batch));
	struct seen *seen = malloc(sizeof(*seen));
	struct sample ring[SAMPLES];
	unsigned samples = 0;
	size_t peak = 0;
	bool reported = false;

	if (!batch || !seen) {
		kfs_log(fs, LOG_ERR, "watcher: out of memory; changes by other processes "
			"show after cache_ttl only");
		goto out;
	}
	while (!bg_wait(fs, WATCH_PERIOD_MS)) {
		int n;

		do {
			n = read_changes(fs, batch);
			if (n < 0) {
				if (!reported)
					kfs_log(fs, LOG_WARNING, "watcher: reading the change feed: %s",
						strerror(-n));
				reported = true;
				break;
			}
			memset(seen, 0, sizeof(*seen));
			for (int i = 0; i < n; i++) {
				if (!stopping(fs))
					invalidate(fs, seen, &batch[i]);
				free(batch[i].key);
			}
		} while (n == FEED_BATCH && !stopping(fs));
		if (n >= 0)
			settle(fs, ring, &samples);
		trim(fs, &peak);
	}
out:
	free(batch);
	free(seen);
	return NULL;
}

static void *reaper_main(void *arg)
{
	struct kfs *fs = arg;

	while (!bg_wait(fs, (long)fs->cfg.reap_interval * 1000)) {
		uint64_t n = 0;
		int rc = kvc_reap(fs->store, 0, &n);

		if (rc < 0)
			kfs_log(fs, LOG_WARNING, "reaping expired keys: %s", strerror(-rc));
		rc = kvc_gc_tombstones(fs->store, KVC_TOMBSTONE_GRACE_DEFAULT, &n);
		if (rc < 0)
			kfs_log(fs, LOG_WARNING, "collecting old tombstones: %s", strerror(-rc));
	}
	return NULL;
}

/* sync=batch: a commit is on disk within KFS_SYNC_MS plus one flush. */
static void *syncer_main(void *arg)
{
	struct kfs *fs = arg;

	while (!bg_wait(fs, KFS_SYNC_MS)) {
		int rc = kvc_store_sync(fs->store);

		if (rc < 0)
			kfs_log(fs, LOG_WARNING, "flushing the store: %s", strerror(-rc));
	}
	return NULL;
}

int kfs_bg_start(struct kfs *fs)
{
	sigset_t all, old;
	int rc = 0;

	kvc_txn *txn;

	/* Start following the feed from now. */
	rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0)
		return rc;
	rc = kvc_feed_head(txn, &fs->feed_seen);
	kvc_txn_abort(txn);
	if (rc < 0)
		return rc;

	/* Signals go to the session's threads, which know how to end it. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = -pthread_create(&fs->watcher, NULL, watcher_main, fs);
	fs->watcher_on = rc == 0;
	if (rc == 0 && !fs->cfg.ro && fs->cfg.reap_interval) {
		rc = -pthread_create(&fs->reaper, NULL, reaper_main, fs);
		fs->reaper_on = rc == 0;
	}
	if (rc == 0 && fs->cfg.sync == KVC_SYNC_BATCH) {
		rc = -pthread_create(&fs->syncer, NULL, syncer_main, fs);
		fs->syncer_on = rc == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void kfs_bg_halt(struct kfs *fs)
{
	pthread_mutex_lock(&fs->bg_lock);
	fs->bg_stop = true;
	pthread_cond_broadcast(&fs->bg_cond);
	pthread_mutex_unlock(&fs->bg_lock);
}

void kfs_bg_stop(struct kfs *fs)
{
	kfs_bg_halt(fs);
	if (fs->watcher_on)
		pthread_join(fs->watcher, NULL);
	if (fs->reaper_on)
		pthread_join(fs->reaper, NULL);
	if (fs->syncer_on)
		pthread_join(fs->syncer, NULL);
	fs->watcher_on = fs->reaper_on = fs->syncer_on = false;
}
