/*
 * internal: what the kvcore modules share and nothing outside kvcore sees.
 *
 * Store layout (one LMDB environment, six named databases):
 *   rec   stored key -> record (or a bucket of records, see below)
 *   exp   be64 expiration | be64 seq -> key     records that will expire
 *   tomb  be64 hlc | be64 seq -> key            tombstones, oldest first
 *   feed  be64 seq -> key                       the change feed, one per key
 *   meta  name -> value                         format, identity, counters
 *   chunk be64 id -> piece of a large value     see chunk.c (format 3)
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
 * Flags bit 7 (KVC_REC_CHUNKED, never shown outside kvcore): the value
 * bytes are a chunk table (chunk.c), the value itself is in the chunk
 * database.  Format 3 stores may hold such records; a format 2 store
 * opened for writing becomes format 3 (nothing else changes).
 * Version 1 (format 1 stores) has no ino: its header ends at 72.  A
 * writable open of a format 1 store rewrites every record as version 2,
 * giving each live one an inode number.
 * Bucket: entries of  u8 tail_len | u8 tail | u32 record_len | record,
 *   sorted by (tail_len, tail).
 */
#ifndef KVCORE_INTERNAL_H
#define KVCORE_INTERNAL_H

#include <endian.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kvcore.h"

#define KVC_FORMAT_VERSION 3u
#define KVC_REC_VERSION 2u
#define KVC_REC_HDR 80u
#define KVC_REC_HDR_V1 72u
#define KVC_STORED_KEY_MAX 511u /* Debian's LMDB key limit */
#define KVC_BUCKET_ENT_HDR 6u
#define KVC_POOL_MAX 64u

#define KVC_REC_CHUNKED 0x80u
/* Values of this many bytes or more are stored in chunks (chunk.c). */
#define KVC_CHUNKED_MIN (256u * 1024u)
#define KVC_CHUNK_TABLE_HDR 16u

struct kvc_valbuf;

struct kvc_store {
	MDB_env *env;
	MDB_dbi rec, exp, tomb, feed, meta, chunk;
	bool have_chunk_db; /* false only in a read-only handle of an older format */
	uint32_t chunk_size; /* of the chunks this handle cuts */
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
	/* Commits of this handle (not with KVC_SYNC_ALWAYS), counted after
	 * each, and how many of them the last finished flush covered:
	 * kvc_store_sync flushes only when synced < committed.  Two numbers
	 * that only grow, so flushes racing each other cannot miscount. */
	atomic_uint_fast64_t committed, synced;
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
	uint64_t chunk;  /* last chunk id handed out (write txns) */
	struct kvc_valbuf *values; /* chunked values read whole for callers */
	/* Set by kvc_write for the store of one value (KVC_VALUE_SINCE, its
	 * base version stored): bytes outside [lo, hi) equal the stored ones. */
	bool same_outside;
	size_t same_lo, same_hi;
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

/* ----- store.c: the store, its map and its transactions. */

/* Whether this thread holds a transaction of @s (kvc_txn_begin refuses a
 * second one with -EDEADLK: see kvcore.h, "One transaction per thread"). */
bool kvc_held_by_thread(const kvc_store *s);

/* Commit, leaving @txn allocated so its flags and message can be read.
 * The MDB_txn is gone either way.  @return 0 or -errno */
int kvc_txn_commit_keep(kvc_txn *txn);

/* Release @txn, its MDB_txn already committed, aborted or pooled. */
void kvc_txn_free(kvc_txn *txn);

/*
 * Grow the map after LMDB said MDB_MAP_FULL: double it, but never past
 * what the filesystem under the store can hold.  Called with no
 * transaction of this thread live.
 * @return 0 (grown: retry), -ENOSPC (the filesystem has no room for a
 *         bigger store), -ENOMEM (the map was lost), -errno
 */
int kvc_store_grow(kvc_store *s);

/* The message of a map growth that failed with @grc. */
const char *kvc_growth_errmsg(int grc);

/* ----- byte order: records and meta values are little-endian, index keys
 * big-endian (so that LMDB's bytewise order is numeric order). */

static inline uint16_t kvc_get_le16(const unsigned char *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t kvc_get_le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t kvc_get_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void kvc_put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void kvc_put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void kvc_put_le64(unsigned char *p, uint64_t v)
{
	kvc_put_le32(p, (uint32_t)v);
	kvc_put_le32(p + 4, (uint32_t)(v >> 32));
}

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

/* The key of an exp or tomb index entry: be64 @a (expiration or clock),
 * then be64 @seq. */
static inline void kvc_idx_key(unsigned char kb[16], uint64_t a, uint64_t seq)
{
	kvc_put_be64(kb, a);
	kvc_put_be64(kb + 8, seq);
}

/* ----- key.c */

/* kvc_key_check, leaving the message in @txn (NULL: none). */
int kvc_key_check_txn(kvc_txn *txn, const void *key, size_t key_len);

/* Whether @key (@len bytes) starts with @prefix (@plen bytes). */
static inline bool kvc_key_has_prefix(const void *key, size_t len, const void *prefix, size_t plen)
{
	return len >= plen && (!plen || memcmp(key, prefix, plen) == 0);
}

/* kvc_key_cmp, inlined where cursors compare keys per entry. */
static inline int kvc_key_order(const void *a, size_t an, const void *b, size_t bn)
{
	size_t m = an < bn ? an : bn;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

/* ----- write.c: the checks local writes and peers' records share. */

/* The start of every call that writes in @txn: -EINVAL (NULL), -EBADF (a
 * read txn); clears the txn's message. */
int kvc_write_start(kvc_txn *txn);

/* A value's length against KVC_VALUE_MAX.  @return 0 or -EFBIG */
int kvc_value_check(kvc_txn *txn, size_t value_len);

/* A mode: permission and set-ID bits only.  @return 0 or -EINVAL */
int kvc_mode_check(kvc_txn *txn, uint32_t mode);

/* ----- record.c: records, buckets, indexes, meta, counters. */

/* The stored key of full key @key: its first KVC_STORED_KEY_MAX bytes. */
static inline MDB_val kvc_stored_key(const void *key, size_t key_len)
{
	MDB_val k = {key_len < KVC_STORED_KEY_MAX ? key_len : KVC_STORED_KEY_MAX, (void *)key};
	return k;
}

/* Whether a stored key of @stored_len bytes holds a bucket. */
static inline bool kvc_is_bucket_key(size_t stored_len)
{
	return stored_len == KVC_STORED_KEY_MAX;
}

/* One entry of a bucket; rec points into the bucket's bytes. */
struct kvc_bucket_ent {
	size_t tail_len;
	unsigned tail;
	const unsigned char *rec;
	size_t rec_len;
};

/* Walk bucket entries: @off advances; @return 1 (entry), 0 (end), -EIO. */
int kvc_bucket_next(const MDB_val *data, size_t *off, struct kvc_bucket_ent *ent);

/* The bytes @rec takes encoded (the current record version). */
static inline size_t kvc_rec_encoded_len(const struct kvc_record *rec)
{
	return KVC_REC_HDR + rec->metadata_len + rec->value_len;
}

/* Encode @rec into @p, kvc_rec_encoded_len(@rec) bytes. */
void kvc_rec_encode(const struct kvc_record *rec, unsigned char *p);

/* *@ret becomes @src with its metadata and value copied into *@ret_copy
 * (the caller frees it): @src points into pages the next write of the
 * transaction may move.  @return 0 or -ENOMEM */
int kvc_rec_copy_out(const struct kvc_record *src, struct kvc_record *ret, void **ret_copy);

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

/* The u64 under meta key @name (@name_len bytes; watermark keys are not
 * strings).  @return 0, -ENOENT, -EIO (not 8 bytes), -errno */
int kvc_meta_read(kvc_txn *txn, const void *name, size_t name_len, uint64_t *ret);
int kvc_meta_write(kvc_txn *txn, const void *name, size_t name_len, uint64_t v);

static inline int kvc_meta_get_u64(kvc_txn *txn, const char *name, uint64_t *ret)
{
	return kvc_meta_read(txn, name, strlen(name), ret);
}

static inline int kvc_meta_put_u64(kvc_txn *txn, const char *name, uint64_t v)
{
	return kvc_meta_write(txn, name, strlen(name), v);
}

/* kvc_meta_read, with @dflt for a value the store never wrote. */
int kvc_meta_read_or(kvc_txn *txn, const void *name, size_t name_len, uint64_t dflt,
		     uint64_t *ret);

static inline int kvc_meta_get_or(kvc_txn *txn, const char *name, uint64_t dflt, uint64_t *ret)
{
	return kvc_meta_read_or(txn, name, strlen(name), dflt, ret);
}

/* Take the next value of store counter @counter (txn->seq, ->ino or
 * ->chunk), written back at commit: never one handed out before. */
int kvc_counter_next(kvc_txn *txn, uint64_t *counter, uint64_t *ret);

/* A new inode number: never one a record of this store had before. */
static inline int kvc_next_ino(kvc_txn *txn, uint64_t *ret)
{
	return kvc_counter_next(txn, &txn->ino, ret);
}

/* A new sequence number: the change feed's next position. */
static inline int kvc_next_seq(kvc_txn *txn, uint64_t *ret)
{
	return kvc_counter_next(txn, &txn->seq, ret);
}

/* Read the store's counters and clock into @txn, once per transaction.
 * @return 0 or -errno */
int kvc_meta_load(kvc_txn *txn);

/* Stamp the next clock: past both the wall clock and every clock seen
 * (saturating at the largest).  @return 0 or -errno */
int kvc_hlc_stamp(kvc_txn *txn, uint64_t *ret);

/* Add the feed (unless @keep_feed), expiry and tombstone index entries of
 * @rec, just stored under @key.  @return 0 or -errno */
int kvc_indexes_add(kvc_txn *txn, const void *key, size_t key_len,
		    const struct kvc_record *rec, bool keep_feed);

/* Delete the exp or tomb index entry (@a, @seq), if there is one: for
 * maint.c's sweeps, which drop entries whose record moved on. */
int kvc_idx_del(kvc_txn *txn, MDB_dbi dbi, uint64_t a, uint64_t seq);

/* Format 1 -> 2 in @txn (store.c's open): every record rewritten as
 * version 2, the live ones given inode numbers.  @return 0 or -errno */
int kvc_upgrade_v1(kvc_txn *txn);

/* ----- chunk.c: large values in pieces.  Records passed to these come
 * straight from the store (kvc_rec_lookup), internal flag included. */

/* A record's chunk table, read in place. */
struct kvc_chunks {
	size_t value_len;
	uint32_t chunk_size;
	size_t n;                 /* chunks */
	const unsigned char *ids; /* n little-endian u64, 0 = zeros */
};

/* A copy of the ids a record's chunks have, sorted (kvc_chunks_taken). */
struct kvc_chunk_list {
	uint64_t *ids;
	size_t n;
};

uint32_t kvc_chunk_size_for(unsigned page_size);

/* Parse @rec's chunk table.  @return 0 or -EIO (malformed) */
int kvc_chunk_table(const struct kvc_record *rec, struct kvc_chunks *ret);
uint64_t kvc_chunk_id(const struct kvc_chunks *t, size_t i);

/* The length of the value of a record from the store, chunked or not. */
size_t kvc_rec_value_len(const struct kvc_record *rec);

/* Read bytes [@off, @off + @len) of the value of @t into @out; the range
 * must lie inside the value. */
int kvc_chunk_read_range(kvc_txn *txn, const struct kvc_chunks *t, size_t off, void *out,
			 size_t len);

/*
 * Store the value of @rec (not chunked, KVC_CHUNKED_MIN bytes or more) as
 * chunks, keeping those of @old (the record stored now, or NULL) that hold
 * the same bytes at the same place.  *@ret becomes @rec with its table as
 * value; *@ret_table holds it (the caller frees it after storing *@ret).
 */
int kvc_chunk_split(kvc_txn *txn, const struct kvc_record *old, const struct kvc_record *rec,
		    struct kvc_record *ret, void **ret_table);

/* Copy the chunk ids of @old (NULL or not chunked: none), before writes
 * move its table; kvc_chunks_release then deletes those that the record
 * that replaces it does not keep. */
int kvc_chunks_taken(const struct kvc_record *old, struct kvc_chunk_list *ret);
int kvc_chunks_release(kvc_txn *txn, struct kvc_chunk_list *old, const struct kvc_record *rec);
void kvc_chunk_list_release(struct kvc_chunk_list *l);

/*
 * Make a record from the store what callers see: the internal flag off, a
 * chunked value read whole into *@buf (grown to *@cap as needed), or with
 * KVC_GET_NO_VALUE left out (value NULL, value_len its length).
 * kvc_rec_publish_txn reads it into memory @txn frees when it ends.
 */
int kvc_rec_publish(kvc_txn *txn, struct kvc_record *rec, unsigned flags, void **buf,
		    size_t *cap);
int kvc_rec_publish_txn(kvc_txn *txn, struct kvc_record *rec, unsigned flags);
void kvc_txn_values_free(kvc_txn *txn);

/* Whether every chunk of chunked @rec is stored with its size; their
 * count in *ret_chunks.  @return 0, -EIO (kvc_txn_errmsg says which) */
int kvc_chunk_check(kvc_txn *txn, const struct kvc_record *rec, uint64_t *ret_chunks);

/* Iterate every (full key, record) in the rec database, in key order,
 * tombstones and expired records included.  @fn returns non-zero to stop. */
int kvc_rec_scan(kvc_txn *txn,
		 int (*fn)(void *arg, const void *key, size_t key_len,
			   const struct kvc_record *rec, int decode_err),
		 void *arg);

/* The latest mtime or ctime a record written at @now_ns may hold
 * (write.c clamps to it, replicate.c checks peers' records against it). */
static inline int64_t kvc_time_limit(int64_t now_ns)
{
	const int64_t ahead = KVC_TIME_AHEAD_MAX_S * 1000000000;
	return now_ns > INT64_MAX - ahead ? INT64_MAX : now_ns + ahead;
}

/* Seconds of @ns rounded up, for any int64 (no overflow near INT64_MAX). */
static inline int64_t kvc_ceil_sec(int64_t ns)
{
	return ns / 1000000000 + (ns % 1000000000 > 0);
}

/* Drop from tombstone @rec what a tombstone does not carry: value,
 * metadata, expiry and inode number (flags are the caller's). */
static inline void kvc_rec_strip(struct kvc_record *rec)
{
	rec->value = "";
	rec->value_len = 0;
	rec->metadata = NULL;
	rec->metadata_len = 0;
	rec->expiration = 0;
	rec->ttl = 0;
	rec->ino = 0;
}

/* Whether @rec would be visible to readers at @now_ns. */
static inline bool kvc_rec_live(const struct kvc_record *rec, int64_t now_ns)
{
	return !(rec->flags & KVC_REC_TOMBSTONE) && !kvc_record_expired(rec, now_ns);
}

#endif
