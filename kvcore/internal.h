/*
 * internal: what the kvcore modules share and nothing outside kvcore sees.
 *
 * Store layout (one LMDB environment, five named databases):
 *   rec   stored key -> record (or a bucket of records, see below)
 *   exp   be64 expiration | be64 seq -> key     records that will expire
 *   tomb  be64 hlc | be64 seq -> key            tombstones, oldest first
 *   feed  be64 seq -> key                       the change feed, one per key
 *   meta  name -> value                         format, identity, counters
 *
 * LMDB (as Debian builds it) takes keys of at most 511 bytes, but keys may
 * have 512.  A key of 511 or 512 bytes is stored under its first 511 bytes
 * in a bucket: a small sorted table of (tail, record) entries, where the
 * tail is the key's remaining 0 or 1 byte.  Truncation keeps bytewise order
 * between buckets and plain keys, and the bucket keeps it inside, so a
 * cursor walks every key in order.  Only keys longer than 510 bytes pay.
 *
 * Record (all integers little-endian, version 2):
 *   0 u8 version  1 u8 flags  2 u16 metadata_len  4 u32 ttl  8 u32 mode
 *   12 u32 uid  16 u32 gid  20 u32 reserved  24 i64 expiration
 *   32 i64 mtime_ns  40 i64 ctime_ns  48 u64 hlc  56 u64 origin  64 u64 seq
 *   72 u64 ino  80 metadata bytes, then value bytes
 * Version 1 (format 1 stores) has no ino: its header ends at 72.  A
 * writable open of a format 1 store rewrites every record as version 2,
 * giving each live one an inode number.
 * Bucket: entries of  u8 tail_len | u8 tail | u32 record_len | record,
 *   sorted by (tail_len, tail).
 */
#ifndef KVCORE_INTERNAL_H
#define KVCORE_INTERNAL_H

#include <lmdb.h>
#include <stdatomic.h>
#include <pthread.h>

#include "kvcore.h"

#define KVC_FORMAT_VERSION 2u
#define KVC_REC_VERSION 2u
#define KVC_REC_HDR 80u
#define KVC_REC_HDR_V1 72u
#define KVC_STORED_KEY_MAX 511u /* Debian's LMDB key limit */
#define KVC_BUCKET_ENT_HDR 6u
#define KVC_POOL_MAX 64u

struct kvc_store {
	MDB_env *env;
	MDB_dbi rec, exp, tomb, feed, meta;
	char *path;
	bool readonly;
	uint32_t min_ttl;
	bool min_ttl_override; /* min_ttl came from the open options */
	enum kvc_sync_mode sync;
	struct kvc_identity id;
	/* Held shared by every transaction of this handle, exclusively while
	 * the map is resized: LMDB requires no live transaction then. */
	pthread_rwlock_t resize_lock;
	unsigned env_flags; /* what mdb_env_open was given */
	/* A resize could not map the store again, nor could the environment
	 * be opened anew: every later transaction fails with -ENOMEM instead
	 * of touching the missing map.  Written under resize_lock held
	 * exclusively. */
	bool map_lost;
	pthread_mutex_t pool_lock;
	MDB_txn *pool[KVC_POOL_MAX]; /* reset read txns; protected by pool_lock */
	unsigned npool;              /* protected by pool_lock */
	/* Commits of this handle not yet known to be wholly on disk (the
	 * meta page of the last one, in KVC_SYNC_BATCH): kvc_store_sync
	 * flushes only when there are some. */
	atomic_uint_fast64_t unsynced;
	/* Group commit (kvc_write_txn): the calls waiting for the next shared
	 * transaction, and whether one runs.  Protected by group_lock. */
	bool group;
	pthread_mutex_t group_lock;
	pthread_cond_t group_done;
	struct kvc_group_req *group_head, **group_tail;
	bool group_busy;
};

struct kvc_txn {
	kvc_store *store;
	MDB_txn *mdb;
	bool write;
	bool map_full;   /* an LMDB call said MDB_MAP_FULL */
	bool low_space;  /* write txn: the filesystem could not give the store
			    its reserve back; only deletes may write */
	bool meta_dirty; /* seq/hlc changed: written back at commit */
	bool meta_loaded;
	uint64_t seq;    /* last sequence handed out (write txns) */
	uint64_t hlc;    /* last clock stamped (write txns) */
	uint64_t ino;    /* last inode number handed out (write txns) */
	int64_t now_ns;  /* the transaction's notion of now */
	void *scratch;   /* growable buffer for building records */
	size_t scratch_cap;
	char errmsg[256];
};

/* LMDB's codes become -errno here and nowhere else.  The filesystem's
 * ENOSPC, EDQUOT and EFBIG (and EIO from a short write on a full
 * filesystem) become -ENOSPC with "no space left on device". */
int kvc_lmdb_err(kvc_txn *txn, int rc);

/* -ENOSPC for a write refused because the store's filesystem is full. */
int kvc_space_refuse(kvc_txn *txn);

int kvc_set_errmsg(kvc_txn *txn, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void kvc_put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static inline uint64_t kvc_get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Decode one record's bytes.  @return 0 or -EIO (malformed). */
int kvc_rec_decode(const void *data, size_t len, struct kvc_record *ret);

/* Find the record of full key @key inside the stored data at its stored key
 * (a plain record, or a bucket).  @return 0, -ENOENT, -EIO */
int kvc_rec_locate(const void *key, size_t key_len, const MDB_val *data,
		   struct kvc_record *ret);

/* Raw lookup, tombstones and expired records included.  @return 0, -ENOENT, -EIO */
int kvc_rec_lookup(kvc_txn *txn, const void *key, size_t key_len, struct kvc_record *ret);

/* Replace the record of @key with @rec (NULL: remove it entirely), keeping
 * the indexes in step with @old (the raw record now stored, or NULL). */
int kvc_rec_store(kvc_txn *txn, const void *key, size_t key_len,
		  const struct kvc_record *old, const struct kvc_record *rec);

/* Meta database access. */
int kvc_meta_get_u64(kvc_txn *txn, const char *name, uint64_t *ret);
int kvc_meta_put_u64(kvc_txn *txn, const char *name, uint64_t v);

/* Iterate every (full key, record) in the rec database, in key order,
 * tombstones and expired records included.  @fn returns non-zero to stop. */
int kvc_rec_scan(kvc_txn *txn,
		 int (*fn)(void *arg, const void *key, size_t key_len,
			   const struct kvc_record *rec, int decode_err),
		 void *arg);

/* Seconds of @ns rounded up, for any int64 (no overflow near INT64_MAX). */
static inline int64_t kvc_ceil_sec(int64_t ns)
{
	return ns / 1000000000 + (ns % 1000000000 > 0);
}

/* Whether @rec would be visible to readers at @now_ns. */
static inline bool kvc_rec_live(const struct kvc_record *rec, int64_t now_ns)
{
	return !(rec->flags & KVC_REC_TOMBSTONE) && !kvc_record_expired(rec, now_ns);
}

#endif
