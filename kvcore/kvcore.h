/*
 * kvcore: the Workers-KV-style namespace engine over LMDB.
 *
 * A store is one directory holding one LMDB environment, one namespace.
 * kvcore is the only code that touches LMDB, and it owns every policy of the
 * data model: key/value/metadata limits, expiration and ttl with min_ttl,
 * mtime-based re-arming, hybrid-logical-clock stamping, tombstones, the
 * change feed and the last-writer-wins rule.  kvfs, kvctl and kvsync call it
 * and therefore cannot disagree.
 *
 * This header is the whole API; internal.h is what the modules share:
 *   store.c      opening and closing, the map and its growth, transactions,
 *                the space reserve, LMDB's codes as -errno
 *   group.c      kvc_write_txn: retry after growth, group commit
 *   record.c     record and bucket encoding, lookup and kvc_get, indexes,
 *                meta counters and the clock
 *   key.c        what a key may be, key order, UTF-8
 *   write.c      kvc_write, kvc_delete, kvc_rename*, expiry rules
 *   cursor.c     cursors, scans, kvc_list and its cursor
 *   replicate.c  the feed, last-writer-wins, kvc_apply, watermarks
 *   chunk.c      values of 256 KiB and more, stored in pieces
 *   maint.c      reaping, tombstone collection, statistics, the check
 *   json.c       metadata JSON: validation and the compact form
 *
 * Conventions:
 *  - Every function that can fail returns an int: >= 0 on success, -errno on
 *    failure.  Output parameters are named ret_* and written only on success.
 *  - Handles are opaque.  Free functions accept NULL.
 *  - kvcore never logs.  A write that fails validation leaves a human
 *    message (worded as Workers KV words it) in kvc_txn_errmsg().
 *  - Keys are byte strings of 1..KVC_KEY_MAX bytes of valid UTF-8, not "."
 *    or "..".  They are passed as (pointer, length) and never need a NUL.
 *
 * Thread safety: a kvc_store may be shared by any number of threads.  A
 * kvc_txn belongs to the thread that began it, which also ends it.  Only
 * one write transaction runs at a time across all processes using the
 * store (LMDB's writer lock); read transactions never block and never
 * block writers.
 *
 * One transaction per thread: a thread holds at most one transaction of a
 * store at a time.  It must not begin a second one, read or write (nor call
 * kvc_write_txn, kvc_reap, kvc_gc_tombstones, kvc_usage, kvc_stats,
 * kvc_check or kvc_store_set_min_ttl, which begin their own) while it
 * holds one: growing the map, whether this process grows it or adopts the
 * size another process gave it, waits until every transaction of the
 * handle has ended, and would wait forever for the one this thread still
 * holds.
 * kvc_txn_begin refuses such a second transaction with -EDEADLK (checked
 * in every build; a thread holding transactions of more than 8 stores at
 * once is checked for the first 8).  Callbacks that need to read while a
 * walk is running read through the walk's transaction.
 *
 * Space: a full filesystem is -ENOSPC with "no space left on device",
 * never -EIO; the store keeps what was committed.  The map grows when
 * LMDB's map is full, never past what the filesystem can hold.  The data
 * file keeps up to 1 MiB allocated past its last page: while the
 * filesystem cannot top that reserve up past half, every write other than
 * deletes (kvc_delete, tombstones from kvc_apply, kvc_reap,
 * kvc_gc_tombstones) is refused with -ENOSPC, so deletes still find
 * pages.  Writes work again as soon as space is freed: nothing to reopen.
 */
#ifndef KVCORE_H
#define KVCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVC_KEY_MAX 512u
#define KVC_VALUE_MAX (25u * 1024u * 1024u)
#define KVC_METADATA_MAX 1024u
#define KVC_LIST_LIMIT_MAX 1000u
#define KVC_MIN_TTL_DEFAULT 60u
#define KVC_TOMBSTONE_GRACE_DEFAULT (7u * 24u * 3600u)
/* Largest opaque list cursor kvc_list() produces, including the NUL. */
#define KVC_CURSOR_MAX 700u
/*
 * The range of a record's times.  mtime and ctime lie between the epoch and
 * KVC_TIME_AHEAD_MAX_S seconds (100 years) after the record's clock: a
 * local write clamps them into [0, now + 100 years] (as the kernel clamps a
 * timestamp into what a filesystem can hold), and kvc_apply refuses a peer's
 * record outside [0, its clock + 100 years].  Since a record's clock is at
 * least the wall clock when it was made, every record a store writes is one
 * its peers accept, and ceil(mtime) + ttl never overflows.
 */
#define KVC_TIME_AHEAD_MAX_S (36525ll * 24 * 3600) /* 100 years of 365.25 days */
/*
 * The latest clock a record may carry, in milliseconds: the last one
 * kvcore's own time (int64 nanoseconds, 2262-04-11) can reach.  No real
 * clock stamps beyond it, so kvc_apply refuses such a record whatever its
 * skew bound; the local clock therefore stays far below the 48 bits where
 * it would saturate.
 */
#define KVC_HLC_MS_MAX 9223372036854ull

typedef struct kvc_store kvc_store;
typedef struct kvc_txn kvc_txn;
typedef struct kvc_cursor kvc_cursor;

/* ---------------------------------------------------------------- stores */

enum kvc_sync_mode {
	KVC_SYNC_ALWAYS = 0, /* every commit is on disk when it returns */
	KVC_SYNC_BATCH,      /* a commit's data is on disk when it returns,
				its meta page only after the next commit or
				kvc_store_sync(): a power loss can undo the
				last commit, never corrupt the store */
	KVC_SYNC_NONE,       /* nothing flushed until kvc_store_sync(): a
				process crash loses nothing, a power loss
				can corrupt the store */
};

/* Options for kvc_open(); zero-initialize and set what you need. */
struct kvc_open_opts {
	bool readonly;          /* open without write access */
	bool no_create;         /* fail with -ENOENT if the store does not exist */
	bool min_ttl_set;       /* use min_ttl below instead of the store's */
	uint32_t min_ttl;       /* seconds; applies to this handle only */
	enum kvc_sync_mode sync;
	uint64_t map_size;      /* initial LMDB map size in bytes; 0 = default */
	bool group_commit;      /* concurrent kvc_write_txn calls may share one
				   commit: see kvc_write_txn */
};

/**
 * Open (and on first use create) the store in directory @path.
 * @param[in] path      the STORE directory; created (mode 0755) if missing.
 *                      A new store is made only where there is nothing: a
 *                      missing path or an empty directory, never among
 *                      files that are not a store's
 * @param[in] opts      options, or NULL for defaults
 * @param[out] ret_store the handle; release with kvc_close()
 * @param[out] ret_created set to true when this call created the store (may be NULL)
 * @return 0, or -ENOENT (no_create and missing), -ENOTEMPTY (no store, and
 *         @path a directory of other files), -EACCES, -ENOTDIR,
 *         -EPROTO (a store of an unknown format version), -ENOMEM, -EIO
 */
int kvc_open(const char *path, const struct kvc_open_opts *opts,
	     kvc_store **ret_store, bool *ret_created);

/** Close the store.  All transactions and cursors must have ended. */
void kvc_close(kvc_store *store);

/**
 * Put every commit this handle made before the call on disk (for
 * KVC_SYNC_BATCH/NONE; at once when there is none not yet flushed).
 * Safe from any thread.  @return 0, -EIO or -ENOSPC
 */
int kvc_store_sync(kvc_store *store);

/** The absolute path of the store directory; valid while the store is open. */
const char *kvc_store_path(const kvc_store *store);

/** The min_ttl in force for this handle, in seconds. */
uint32_t kvc_store_min_ttl(const kvc_store *store);

/**
 * Set the store's persistent default min_ttl (used by handles that do not
 * override it).  @return 0, -EINVAL (0), -EROFS, -EIO
 */
int kvc_store_set_min_ttl(kvc_store *store, uint32_t min_ttl);

struct kvc_identity {
	uint64_t node_id; /* random, chosen when the store is created */
	uint64_t epoch;   /* random, chosen when the store is created; a peer
			     seeing a new epoch knows the store was replaced */
};
void kvc_store_identity(const kvc_store *store, struct kvc_identity *ret);

/* Cheap figures for statfs: no scan. */
struct kvc_usage {
	uint64_t map_size;  /* bytes of address space reserved */
	uint64_t map_used;  /* bytes in use */
	uint64_t records;   /* records stored, tombstones and expired ones included */
};
/** Fill @ret from LMDB's own counters.  @return 0 or -errno */
int kvc_usage(kvc_store *store, struct kvc_usage *ret);

struct kvc_stats {
	uint64_t keys;            /* live records (expired ones excluded) */
	uint64_t value_bytes;     /* sum of live value lengths */
	uint64_t expired_pending; /* expired, not yet reaped */
	uint64_t tombstones;
	uint64_t map_size;        /* bytes */
	uint64_t map_used;        /* bytes in use (pages * page size) */
	uint64_t feed_head;       /* last sequence number handed out */
	uint64_t gc_horizon;      /* highest sequence dropped by tombstone GC */
	uint64_t hlc;             /* last clock stamped */
	uint32_t min_ttl;
};
/** Scan the store and fill @ret.  Cost: linear in the store.  @return 0 or -errno */
int kvc_stats(kvc_store *store, struct kvc_stats *ret);

/* ---------------------------------------------------------- transactions */

enum {
	KVC_TXN_READ = 0,
	KVC_TXN_WRITE = 1,
};

/**
 * Begin a transaction.  A read transaction sees one consistent snapshot; a
 * write transaction is the only writer across every process on the store.
 * @return 0, -EROFS (write on a read-only handle), -EDEADLK (this thread
 *         already holds a transaction of @store: see "One transaction per
 *         thread" above), -EAGAIN (too many readers), -ENOMEM (also: an
 *         earlier resize could not map the store again; reopen it), -EIO
 */
int kvc_txn_begin(kvc_store *store, int kind, kvc_txn **ret_txn);

/**
 * Commit and free.  Nothing is stored unless it returns 0 (kvc_txn_commit
 * never leaves a partial commit).  -ENOSPC is either LMDB's map being full
 * (kvc_write_txn grows it and retries; a caller of kvc_txn_commit can only
 * retry through kvc_write_txn) or the filesystem being full.  Committing a
 * read transaction just ends it.
 * @return 0, -ENOSPC, -EIO
 */
int kvc_txn_commit(kvc_txn *txn);

/** Abandon and free; changes of a write transaction are discarded. */
void kvc_txn_abort(kvc_txn *txn);

/**
 * The message of the last failed call on @txn, worded as Workers KV words
 * it where Workers KV has one ("Value length of 26214401 exceeds limit of
 * 26214400."), otherwise a short description; "" if none.  Valid until the
 * next call on @txn or its end.
 */
const char *kvc_txn_errmsg(const kvc_txn *txn);

/**
 * Run @fn inside a write transaction, committing when it returns >= 0 and
 * retrying from the start when the map had to grow.  This is the way to
 * write: it hides map growth from the caller.  @fn must be idempotent
 * across retries (it is called again on a fresh transaction).  The map
 * grows only while the filesystem under the store has room for it; a
 * write that cannot fit fails with -ENOSPC and stores nothing.  The caller
 * must hold no transaction of @store (see "One transaction per thread").
 *
 * With group_commit (kvc_open_opts), calls that arrive while another
 * commits are run together next: one write transaction, each @fn in a
 * nested transaction of its own (a failing @fn undoes only its own
 * writes), one commit and so one flush for all.  Each caller still gets
 * its own result, once the shared commit is done.  @fn may then run on
 * another caller's thread: it must use only @txn and @arg, and take no
 * lock its own caller may hold.
 * @param[out] errmsg if non-NULL and the call fails, the message of the
 *                    failure (the txn's, or of the commit, or of the map
 *                    growth) is copied here (at most @errmsg_size bytes,
 *                    NUL-terminated)
 * @return what @fn returned, or the commit's -errno: -ENOSPC when the
 *         store's filesystem is full, -EDEADLK
 */
int kvc_write_txn(kvc_store *store, int (*fn)(kvc_txn *txn, void *arg), void *arg,
		  char *errmsg, size_t errmsg_size);

/* --------------------------------------------------------------- records */

enum kvc_record_flags {
	KVC_REC_TOMBSTONE = 1u << 0,
	KVC_REC_HAS_MODE = 1u << 1,  /* mode holds a value set by chmod/put */
	KVC_REC_HAS_OWNER = 1u << 2, /* uid/gid hold values set by chown/put */
};

/*
 * A record as stored.  Pointers (value, metadata) point into the LMDB map:
 * zero copy, valid only until the transaction that produced them ends or
 * writes to the same key.
 */
struct kvc_record {
	const void *value;
	size_t value_len;
	const char *metadata;  /* compact JSON, not NUL-terminated; NULL = none */
	size_t metadata_len;
	int64_t expiration;    /* absolute Unix seconds; 0 = none */
	uint32_t ttl;          /* seconds; 0 = none.  When set, expiration ==
				  mtime (rounded up to a second) + ttl */
	uint32_t flags;        /* enum kvc_record_flags */
	uint32_t mode;         /* permission bits (07777) */
	uint32_t uid, gid;
	int64_t mtime_ns;      /* last write or touch, ns since the epoch */
	int64_t ctime_ns;      /* last change of value, metadata or attributes */
	uint64_t hlc;          /* hybrid logical clock of the last change:
				  48 bits of milliseconds, 16 bits of counter */
	uint64_t origin;       /* node id of the store that made the change */
	uint64_t seq;          /* local change-feed sequence of the last change */
	uint64_t ino;          /* inode number: given when the key is created
				  here (or first arrives from a peer), kept by
				  every later write and by kvc_rename, never
				  reused by the store; 0 for tombstones (and
				  records of a format 1 store opened read-only) */
};

enum kvc_get_flags {
	KVC_GET_TOMBSTONES = 1u << 0, /* return tombstones too (flags say so) */
	KVC_GET_EXPIRED = 1u << 1,    /* return expired records too */
	KVC_GET_NO_VALUE = 1u << 2,   /* the value may be left out (value NULL,
					 value_len its length): for callers
					 that need the other fields only */
};

/**
 * Look a key up.  @flags: enum kvc_get_flags.  A large value is stored in
 * pieces: it is read whole into memory @txn owns until it ends, unless
 * KVC_GET_NO_VALUE says it is not needed.
 * @param[out] ret_rec the record; pointers valid until @txn ends or
 *                     writes this key
 * @return 0, -ENOENT (absent, deleted or expired), -EINVAL / -ENAMETOOLONG
 *         (not a valid key), -EIO
 */
int kvc_get(kvc_txn *txn, const void *key, size_t key_len, unsigned flags,
	    struct kvc_record *ret_rec);

/**
 * Read bytes [@off, @off + @len) of the value of live key @key into @buf:
 * of a large value only the pieces that hold them, with no copy in
 * between.  For readers that want part of a value, or all of it in
 * memory of their own.
 * @param[out] ret_n   bytes copied: fewer than @len at the value's end, 0
 *                     past it
 * @param[out] ret_rec (may be NULL) the record, its value left out (as
 *                     with KVC_GET_NO_VALUE)
 * @return 0, -ENOENT (absent, deleted or expired), -EINVAL /
 *         -ENAMETOOLONG (not a valid key), -EIO
 */
int kvc_get_range(kvc_txn *txn, const void *key, size_t key_len, size_t off, void *buf,
		  size_t len, size_t *ret_n, struct kvc_record *ret_rec);

/* Which fields of struct kvc_write a write sets. */
enum kvc_write_set {
	KVC_SET_VALUE = 1u << 0,      /* value/value_len (re-arms the ttl) */
	KVC_SET_METADATA = 1u << 1,   /* metadata/metadata_len; NULL clears */
	KVC_SET_EXPIRATION = 1u << 2, /* expiration; clears the ttl; 0 clears */
	KVC_SET_TTL = 1u << 3,        /* ttl; sets expiration = mtime + ttl; 0 clears */
	KVC_SET_MODE = 1u << 4,       /* mode */
	KVC_SET_OWNER = 1u << 5,      /* uid, gid (UINT32_MAX keeps one) */
	KVC_SET_MTIME = 1u << 6,      /* mtime_ns (re-arms the ttl); clamped
					 into [0, now + KVC_TIME_AHEAD_MAX_S] */
	KVC_CREATE = 1u << 7,         /* fail with -EEXIST if the key is live */
	KVC_MUST_EXIST = 1u << 8,     /* fail with -ENOENT if it is not */
	KVC_SET_CTIME = 1u << 9,      /* ctime_ns as given (else: now), clamped
					 as mtime_ns */
	KVC_IF_INO = 1u << 10,        /* fail with -ESTALE unless the key is live
					 with inode number ino: a writer of an
					 open file never brings back a key that
					 was removed or replaced meanwhile */
	KVC_VALUE_SINCE = 1u << 11,   /* with KVC_SET_VALUE: the caller promises
					 the value differs from the stored
					 version base_seq only in bytes
					 [changed_lo, changed_hi) and past the
					 shorter length.  While that version is
					 stored, the pieces of a large value
					 outside the range are kept without
					 comparing them; otherwise ignored */
};

/*
 * A change to one key.  Fields not named in @set keep their stored values
 * (or defaults for a new key: empty value, no metadata, no expiry, no
 * mode/owner).  Writing a value or an mtime re-arms a ttl.  metadata is
 * any JSON text; kvcore validates it and stores it compact.
 */
struct kvc_write {
	unsigned set; /* enum kvc_write_set */
	const void *value;
	size_t value_len;
	const char *metadata;
	size_t metadata_len;
	int64_t expiration;
	uint32_t ttl;
	uint32_t mode;
	uint32_t uid, gid;
	int64_t mtime_ns; /* with KVC_SET_MTIME; else the write's time */
	int64_t ctime_ns; /* with KVC_SET_CTIME */
	uint64_t ino;     /* with KVC_IF_INO */
	uint64_t base_seq;               /* with KVC_VALUE_SINCE */
	size_t changed_lo, changed_hi;   /* with KVC_VALUE_SINCE */
};

/**
 * Create or change a key, stamping a new clock and sequence number.
 * Validation happens before anything is written: on failure the store is
 * unchanged and kvc_txn_errmsg() says why.
 * @return 0, -EINVAL (bad key, expiration or ttl below min_ttl, metadata
 *         not JSON), -ENAMETOOLONG (key over 512 bytes), -EFBIG (value
 *         over 25 MiB), -E2BIG (metadata over 1024 bytes), -EEXIST
 *         (KVC_CREATE), -ENOENT (KVC_MUST_EXIST), -ESTALE (KVC_IF_INO),
 *         -EBADF (read txn),
 *         -ENOSPC (no room: see kvc_txn_commit and "Space" above), -EIO
 */
int kvc_write(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_write *w);

/**
 * kvc_write of @w to @key in a write transaction of its own, through
 * kvc_write_txn (group commit, map growth, @errmsg as there).
 * @return kvc_write's result, or the commit's -errno
 */
int kvc_write_one(kvc_store *store, const void *key, size_t key_len, const struct kvc_write *w,
		  char *errmsg, size_t errmsg_size);

/**
 * kvc_delete of @key in a write transaction of its own, as kvc_write_one.
 * Deleting a key that is not there succeeds, as in Workers KV.
 * @return 0, or kvc_delete's or the commit's -errno
 */
int kvc_delete_one(kvc_store *store, const void *key, size_t key_len, char *errmsg,
		   size_t errmsg_size);

/**
 * Fill the expiry of a put (KVC_SET_EXPIRATION, and KVC_SET_TTL with a
 * ttl) from what a client was given, with Workers KV's rules: a ttl
 * (which wins over an expiration) of 1..UINT32_MAX seconds, an expiration
 * of at least 1; neither given clears the key's expiry, as a put does.
 * The store's min_ttl is not checked here: kvc_write holds a ttl to it
 * (and an expiration to now + min_ttl) when it writes, in the store the
 * write goes to.
 * @param[in,out] w        the write; changed only on success
 * @param[out]    msg      on failure, Workers KV's message (NULL: none)
 * @return 0, -EINVAL (ttl below 1 or above UINT32_MAX, expiration below 1)
 *
 * kvc_write's messages for an expiry are Workers KV's too: an expiration
 * not after now is "Invalid expiration of T. Please specify integer
 * greater than the current number of seconds since the UNIX epoch.", one
 * within min_ttl of now "... Expiration times must be at least 60 seconds
 * in the future.", a ttl below min_ttl "... Expiration TTL must be at
 * least 60."
 */
int kvc_write_set_expiry(struct kvc_write *w, bool has_expiration, int64_t expiration,
			 bool has_ttl, int64_t ttl, char *msg, size_t msg_size);

/**
 * Check the length of a value before it is all in hand (a server refusing
 * an upload from its announced length, or as soon as it grows past the
 * limit), with the message kvc_write would give.
 * @param[out] msg on failure, Workers KV's message (NULL: none)
 * @return 0, -EFBIG (over KVC_VALUE_MAX)
 */
int kvc_value_len_check(uint64_t value_len, char *msg, size_t msg_size);

/**
 * Delete a key, leaving a tombstone for replication.
 * @return 0, -ENOENT (it was not live; nothing written), -EINVAL,
 *         -ENAMETOOLONG, -EBADF, -ENOSPC, -EIO
 */
int kvc_delete(kvc_txn *txn, const void *key, size_t key_len);

/**
 * Rename a live key: @to gets @from's value, metadata, times, mode, owner
 * and inode number (and replaces any live @to); @from is deleted.  Both keys get new
 * clocks.  @return 0, -ENOENT (@from not live), -EEXIST (@to live and
 * @noreplace), key errors, -EBADF, -ENOSPC, -EIO
 */
int kvc_rename(kvc_txn *txn, const void *from, size_t from_len, const void *to,
	       size_t to_len, bool noreplace);

/**
 * Rename every live key under prefix @from to the same key under prefix @to
 * (a directory rename), in this transaction: all or nothing.  Keys are
 * checked first: if any new key would be invalid or over 512 bytes,
 * nothing is written.  Live keys already under @to are replaced where a
 * moved key lands on them and kept otherwise.
 * @param[out] ret_moved number of keys moved (may be NULL)
 * @return 0, -ENOENT (no live key under @from), -ENAMETOOLONG, -EINVAL,
 *         -EBADF, -ENOMEM, -ENOSPC, -EIO
 */
int kvc_rename_prefix(kvc_txn *txn, const void *from, size_t from_len, const void *to,
		      size_t to_len, uint64_t *ret_moved);

/**
 * Check a key without touching the store.
 * @return 0, -EINVAL (empty, ".", "..", not UTF-8), -ENAMETOOLONG
 */
int kvc_key_check(const void *key, size_t key_len);

/**
 * kvc_key_check, with the message a write of the key would leave in
 * kvc_txn_errmsg ("Key name cannot be empty.", "\".\" is not allowed as a
 * key name.", "UTF-8 encoded length of 513 exceeds key length limit of
 * 512."): for a client that refuses a key before any transaction.
 * @param[out] msg on failure, the message (at most @msg_size bytes,
 *                 NUL-terminated); may be NULL
 * @return 0, -EINVAL, -ENAMETOOLONG
 */
int kvc_key_check_msg(const void *key, size_t key_len, char *msg, size_t msg_size);

/**
 * The store's key order, which lists, cursors and scans follow (and
 * kvsync's key ranges): bytewise with bytes unsigned, and on a common
 * prefix the shorter key first.
 * @return < 0, 0 or > 0 as @a sorts before, with or after @b
 */
int kvc_key_cmp(const void *a, size_t an, const void *b, size_t bn);

/**
 * Whether @len bytes at @s are valid UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF), the rule keys are held to and
 * the test of whether a value is text.  @s may be NULL when @len is 0.
 */
bool kvc_utf8_valid(const void *s, size_t len);

/* ----------------------------------------------------------------- lists */

/*
 * A cursor walks live records in bytewise key order, skipping tombstones
 * and expired records.  Key and record pointers are valid until the next
 * call on the cursor, or the transaction's end.  @flags: 0, or
 * KVC_GET_NO_VALUE (as for kvc_get; walks that need no values should say
 * so: a large value is read whole for each record otherwise).
 * @return 0, -EINVAL (unknown flag), -ENOMEM, -EIO
 */
int kvc_cursor_open(kvc_txn *txn, unsigned flags, kvc_cursor **ret_cur);
void kvc_cursor_close(kvc_cursor *cur);

/**
 * Position at the first live key >= @key (@key_len may be 0: the first key)
 * and return it.  @key may be any byte string (not validated).
 * @return 0, -ENOENT (none), -EIO
 */
int kvc_cursor_seek(kvc_cursor *cur, const void *key, size_t key_len,
		    const void **ret_key, size_t *ret_key_len, struct kvc_record *ret_rec);

/** Advance to the next live key.  @return 0, -ENOENT (end), -EIO */
int kvc_cursor_next(kvc_cursor *cur, const void **ret_key, size_t *ret_key_len,
		    struct kvc_record *ret_rec);

/**
 * Turn the list limit a client gave into kvc_list's @limit, with Workers
 * KV's rules: 0 (the default, 1000) up to 1000 as given.
 * @param[out] ret_limit the limit for kvc_list, written only on success
 * @param[out] msg       on failure, Workers KV's message ("Invalid
 *                       key_count_limit of 1001. Please specify an integer
 *                       less than 1000."); may be NULL
 * @return 0, -EINVAL (below 0 or over 1000)
 */
int kvc_list_limit(int64_t limit, unsigned *ret_limit, char *msg, size_t msg_size);

/**
 * One page of a Workers KV list: live keys starting with @prefix, in
 * bytewise order, after the position in @cursor (NULL or "" = from the
 * start), at most @limit of them (0 = 1000).  @fn is called for each key
 * with its record, whose value is left out (as with KVC_GET_NO_VALUE);
 * a non-zero return from @fn stops the listing and is returned.
 * @param[out] ret_next  the cursor of the next page ("" when the listing is
 *                       complete); a buffer of KVC_CURSOR_MAX bytes
 * @return 0, -EINVAL (limit over 1000, malformed cursor), -EIO, or @fn's value
 */
int kvc_list(kvc_txn *txn, const void *prefix, size_t prefix_len, const char *cursor,
	     unsigned limit,
	     int (*fn)(void *arg, const void *key, size_t key_len, const struct kvc_record *rec),
	     void *arg, char *ret_next);

/* ---------------------------------------------------------------- expiry */

/** Current time in ns as kvcore sees it (CLOCK_REALTIME). */
int64_t kvc_now_ns(void);

/** Whether @rec is expired at @now_ns. */
bool kvc_record_expired(const struct kvc_record *rec, int64_t now_ns);

/**
 * Remove up to @max (0 = no bound) records whose expiration has passed, in
 * one write transaction per batch; cost proportional to the number removed.
 * A reaped record becomes a tombstone carrying its last clock, so a stale
 * copy on a peer can never bring it back.
 * @param[out] ret_reaped number removed (may be NULL)
 * @return 0 or -errno
 */
int kvc_reap(kvc_store *store, uint64_t max, uint64_t *ret_reaped);

/**
 * The earliest pending expiration in Unix seconds, or 0 if none.  Lets a
 * daemon sleep until something expires.  @return 0 or -errno
 */
int kvc_next_expiration(kvc_txn *txn, int64_t *ret_expiration);

/* ----------------------------------------------------------- replication */

/** The sequence number of the last change (0 for a new store). */
int kvc_feed_head(kvc_txn *txn, uint64_t *ret_seq);

/**
 * The first change with sequence > @after, live, expired or tombstone
 * (flags tell).  There is one entry per key: a key changed twice appears
 * once, at its latest sequence.  @flags: 0 or KVC_GET_NO_VALUE.
 * @param[out] ret_rec pointers valid until @txn ends or writes this key
 * @return 0, -ENOENT (no later change), -EINVAL (unknown flag), -EIO
 */
int kvc_feed_next(kvc_txn *txn, uint64_t after, unsigned flags, const void **ret_key,
		  size_t *ret_key_len, struct kvc_record *ret_rec);

/*
 * Following the feed.  A follower (the mount's watcher, kvctl watch) keeps
 * the last sequence it took and, every KVC_FEED_POLL_MS, reads the changes
 * after it with kvc_feed_read: a read transaction costs a few microseconds
 * and no writer waits for it, so polling the head is the wake-up, with
 * nothing for writers in other processes to signal.
 */
#define KVC_FEED_POLL_MS 200

/**
 * Read the changes after *@after, in sequence order, from one read
 * transaction (ended before returning): @fn gets each change's key and
 * record as kvc_feed_next gives them (live, expired or tombstone; the
 * pointers valid during the call only).  One entry per key: a key changed
 * several times since *@after comes once, in its latest state.
 * Tombstones collected by kvc_gc_tombstones are no longer in the feed
 * (kvc_gc_horizon says up to where).  A feed that fails to move forward
 * (kvc_check reports it) ends the read at the head, so a follower never
 * loops on it.
 * @param[in,out] after the last sequence the caller has taken; moved to
 *                      the last change @fn took, or to the head when every
 *                      change up to it was read
 * @param[in] max       at most this many changes (0 = no bound)
 * @param[in] flags     0 or KVC_GET_NO_VALUE
 * @param[in] fn        returns 0 to go on, 1 to stop after this change, or
 *                      -errno to stop before it (the change is not taken:
 *                      *@after stays before it)
 * @param[out] ret_head (may be NULL) the feed head that transaction saw;
 *                      written on success and with -ESTALE
 * @return the number of changes @fn took, -ESTALE (*@after is past the
 *         head: not a sequence of this store, or the store was replaced;
 *         nothing read), -EINVAL, -EDEADLK, -EAGAIN, -EIO, or @fn's -errno
 */
int kvc_feed_read(kvc_store *store, uint64_t *after, unsigned max, unsigned flags,
		  int (*fn)(void *arg, const void *key, size_t key_len,
			    const struct kvc_record *rec),
		  void *arg, uint64_t *ret_head);

/**
 * The last-writer-wins order of two versions of a key: by hybrid logical
 * clock, then by origin node id.  kvc_apply applies a peer's record only
 * when it compares greater.  @return < 0, 0 (the same version), > 0
 */
int kvc_version_cmp(uint64_t hlc_a, uint64_t origin_a, uint64_t hlc_b, uint64_t origin_b);

/**
 * Offer a record received from a peer.  Applied only if (hlc, origin) is
 * greater than what the store holds for the key (tombstones included);
 * the local clock advances past @rec->hlc either way.  The applied record
 * keeps the peer's hlc, origin, times, mode and owner and gets a new local
 * sequence.  An expired record is not applied over an absent key.
 * The key, value, metadata and mode are validated as for kvc_write; ttl
 * and expiration are not held to min_ttl (the origin accepted them, and a
 * replica must agree with it), but the record's fields must agree: no
 * negative expiration, a ttl only with expiration == ceil(mtime) + ttl,
 * mtime and ctime within [0, clock + KVC_TIME_AHEAD_MAX_S], a clock and an
 * origin, a clock no later than KVC_HLC_MS_MAX.  A tombstone's value,
 * metadata, expiration and ttl are dropped, not checked.  -ERANGE for an
 * hlc more than @max_skew_ms ahead of the local clock (0 = no bound; any
 * bound works, UINT64_MAX included).  kvc_apply_would makes the same checks.
 * @return 1 applied, 0 ignored (not newer), -ERANGE (clock too far ahead),
 *         -EINVAL (fields that disagree, bad key, metadata or mode),
 *         -ENAMETOOLONG, -EFBIG, -E2BIG, -EBADF (read txn), -ENOSPC, -EIO;
 *         kvc_txn_errmsg() says why
 */
int kvc_apply(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_record *rec,
	      uint64_t max_skew_ms);

/**
 * Walk every record with @lo <= key < @hi in bytewise order (@hi NULL: to
 * the end; @lo_len 0: from the start), tombstones and expired records
 * included (their flags and expiration tell).  For digest comparison and
 * repair between peers.  Pointers in @rec are valid during the call only.
 * A non-zero return from @fn stops the walk and is returned.
 * @return 0, -EIO, or @fn's value
 */
int kvc_scan(kvc_txn *txn, const void *lo, size_t lo_len, const void *hi, size_t hi_len,
	     int (*fn)(void *arg, const void *key, size_t key_len, const struct kvc_record *rec),
	     void *arg);

/**
 * What kvc_apply would decide for @rec under @max_skew_ms, without
 * writing: for dry runs.  Works in a read transaction.  It refuses exactly
 * the records kvc_apply refuses (one function checks for both).
 * @return 1 (would apply), 0 (would ignore), or the -errno kvc_apply would
 *         return, with its message in kvc_txn_errmsg; -EIO
 */
int kvc_apply_would(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_record *rec,
		    uint64_t max_skew_ms);

/** Watermark of peer @peer_node at @peer_epoch: the last feed sequence of
 * that peer applied here.  @return 0 (0 if unknown) or -errno */
int kvc_watermark_get(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch, uint64_t *ret_seq);
/** Set it, in the same transaction as the records applied. */
int kvc_watermark_set(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch, uint64_t seq);
/* The bytes of a watermark's scope: the fingerprint of a filter. */
#define KVC_WM_SCOPE_LEN 16
/**
 * A watermark scoped by @scope (KVC_WM_SCOPE_LEN bytes; NULL: the
 * unfiltered one of kvc_watermark_get): the last sequence of the peer up
 * to which every change the scope selects is applied here.  A replicator
 * that applies only some of a peer's changes keeps this one, and leaves
 * the unfiltered watermark, which promises all of them, alone.
 * Scoped watermarks are kept apart from the others (kvc_watermark_each
 * does not report them).  @return 0 (0 if unknown) or -errno
 */
int kvc_watermark_get_scoped(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch,
			     const uint8_t *scope, uint64_t *ret_seq);
/** Set it, in the same transaction as the records applied. */
int kvc_watermark_set_scoped(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch,
			     const uint8_t *scope, uint64_t seq);
/**
 * Call @fn for every watermark held, by peer node id then epoch: which
 * peers this store has received changes from, and up to where.  A non-zero
 * return from @fn stops the walk and is returned.  @return 0, -EIO or @fn's
 */
int kvc_watermark_each(kvc_txn *txn,
		       int (*fn)(void *arg, uint64_t peer_node, uint64_t peer_epoch, uint64_t seq),
		       void *arg);

/**
 * Drop tombstones older than @grace_s seconds (and their feed entries),
 * raising the GC horizon.  @return 0 or -errno
 */
int kvc_gc_tombstones(kvc_store *store, uint64_t grace_s, uint64_t *ret_collected);

/** The highest sequence dropped by GC: a peer whose watermark is below it
 * needs a digest comparison, not an incremental sync. */
int kvc_gc_horizon(kvc_txn *txn, uint64_t *ret_seq);

/* ------------------------------------------------------------- integrity */

/** How often kvc_check reports its progress: every this many entries. */
#define KVC_CHECK_PROGRESS_EVERY 1024u

/**
 * What kvc_check has done, for a progress display: @done entries checked
 * of @total.  The entries are the records and the chunks of their large
 * values, then those of the change feed, the expiry index and the
 * tombstone index; @total is their sum as LMDB counts them in the check's
 * snapshot (no scan: the feed's count stands for the records', one entry
 * each in a sound store), fixed for the whole check.  In a store with
 * problems @done may end short of @total or pass it.
 */
typedef void kvc_check_progress_fn(void *arg, uint64_t done, uint64_t total);

/**
 * Verify the store: every record decodes, every expiry, tombstone and feed
 * entry matches a record and every record has its entries, sequences are
 * unique and below the head.  All in one read transaction.
 * @param[in] fn        (may be NULL) called with a message for each problem
 * @param[in] progress  (may be NULL) called once before the first entry,
 *                      each time @done passes a multiple of
 *                      KVC_CHECK_PROGRESS_EVERY, and once
 *                      after the last; while the check's transaction is
 *                      open, so it must not begin one of this store
 * @param[in] arg       passed to both
 * @param[out] ret_problems (may be NULL) number of problems found
 * @param[out] ret_records  (may be NULL) number of records checked: keys,
 *                          expired ones and tombstones
 * @return 0 (ran; see ret_problems) or -errno
 */
int kvc_check(kvc_store *store, void (*fn)(void *arg, const char *problem),
	      kvc_check_progress_fn *progress, void *arg, uint64_t *ret_problems,
	      uint64_t *ret_records);

/* ------------------------------------------------------------- metadata */

/**
 * Validate JSON text and write its compact form into @out (NUL-terminated).
 * @return the compact length, -EINVAL (not JSON), -E2BIG (compact form
 *         over @out_size - 1 bytes)
 */
int kvc_json_compact(const char *json, size_t json_len, char *out, size_t out_size);

/**
 * Read field @name of the metadata object as an xattr value: a string field
 * is its raw text (JSON-quoted if that raw text would parse as other
 * JSON); anything else its compact JSON.
 * @param[out] out  a buffer of @out_size bytes (not NUL-terminated)
 * @return the value's length (which may exceed @out_size: then nothing
 *         useful was written), -ENODATA (no such field or no object)
 */
int kvc_meta_field_get(const char *metadata, size_t metadata_len, const char *name,
		       char *out, size_t out_size);

/**
 * Set (value non-NULL) or remove (value NULL) field @name of the metadata
 * object: a value that parses as JSON is stored as that JSON, anything else
 * as a JSON string.  Metadata that is absent becomes an object; metadata
 * that is not an object cannot take fields.
 * @param[out] out compact JSON of the new metadata (NUL-terminated);
 *                 the empty string when removing the last field
 * @return its length, -ENODATA (remove of a missing field), -EINVAL
 *         (metadata not an object), -E2BIG (result over @out_size - 1)
 */
int kvc_meta_field_set(const char *metadata, size_t metadata_len, const char *name,
		       const char *value, size_t value_len, char *out, size_t out_size);

/**
 * List the field names of the metadata object: calls @fn for each.
 * @return 0, or -EINVAL (not an object; fn not called)
 */
int kvc_meta_fields(const char *metadata, size_t metadata_len,
		    void (*fn)(void *arg, const char *name), void *arg);

#endif
