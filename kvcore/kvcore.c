/*
 * kvcore: opening stores, transactions, and the record model: get, write,
 * delete, rename, cursors, lists, the change feed and last-writer-wins
 * application of peers' records.  Maintenance that scans (reap, GC, stats,
 * check) is in maint.c; metadata JSON rules are in json.c.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_MAP_SIZE (1ull << 30)
#define MAX_READERS 510u
#define MAX_GROWTHS 40

/*
 * Bytes of the data file kept allocated past the pages in use.  LMDB
 * writes copy-on-write, so even a delete needs fresh pages; on a full
 * filesystem they come from this reserve (LMDB appends past its last page,
 * into blocks the file already owns).  Writes other than deletes are
 * refused once the filesystem cannot top it up past half: the half left
 * holds the pages of dozens of deletes, and pages a delete frees are
 * reused by later transactions.
 */
#define SPACE_RESERVE (1ull << 20)
/* Map growth rounds the filesystem's capacity up to this. */
#define MAP_ROUND (1ull << 20)

/* ------------------------------------------------------------ utilities */

int kvc_set_errmsg(kvc_txn *txn, int err, const char *fmt, ...)
{
	if (txn) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(txn->errmsg, sizeof(txn->errmsg), fmt, ap);
		va_end(ap);
	}
	return err;
}

/* The bytes the filesystem under @s will still give an unprivileged
 * writer.  @return 0 or -errno */
static int fs_avail(const kvc_store *s, uint64_t *ret)
{
	struct statvfs v;
	if (statvfs(s->path, &v))
		return -errno;
	*ret = (uint64_t)v.f_bavail * v.f_frsize;
	return 0;
}

/* Whether the filesystem under @s has less room than the reserve: a write
 * that failed there failed for want of space. */
static bool store_fs_full(const kvc_store *s)
{
	uint64_t avail;
	return fs_avail(s, &avail) == 0 && avail < SPACE_RESERVE;
}

int kvc_space_refuse(kvc_txn *txn)
{
	return kvc_set_errmsg(txn, -ENOSPC,
			      "no space left on device (the store's filesystem is full)");
}

int kvc_lmdb_err(kvc_txn *txn, int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		if (txn)
			txn->map_full = true;
		return kvc_set_errmsg(txn, -ENOSPC, "store map is full");
	case MDB_TXN_FULL:
		return kvc_set_errmsg(txn, -ENOSPC, "transaction has too many changes");
	case MDB_READERS_FULL:
		return kvc_set_errmsg(txn, -EAGAIN, "too many concurrent readers");
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
	case MDB_INCOMPATIBLE:
		return kvc_set_errmsg(txn, -EPROTO, "not a store of a known format");
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return kvc_space_refuse(txn);
	case EIO:
		/* LMDB reports a short write as EIO: on a filesystem that is
		 * (nearly) full, that was the full disk. */
		if (txn && store_fs_full(txn->store))
			return kvc_space_refuse(txn);
		return kvc_set_errmsg(txn, -EIO, "store I/O error");
	case MDB_DBS_FULL:
	case MDB_TLS_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_PANIC:
		return kvc_set_errmsg(txn, -EIO, "store error: %s", mdb_strerror(rc));
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

int64_t kvc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool kvc_record_expired(const struct kvc_record *rec, int64_t now_ns)
{
	return rec->expiration > 0 && rec->expiration <= now_ns / 1000000000;
}

static uint16_t get_le16(const unsigned char *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t get_le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	/* Most keys are ASCII: test eight bytes at a time for a high bit. */
	while (i + 8 <= n) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		if (v & 0x8080808080808080ull)
			break;
		i += 8;
	}
	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t j = 1; j < len; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

static int key_check(kvc_txn *txn, const void *key, size_t key_len)
{
	if (key_len > KVC_KEY_MAX)
		return kvc_set_errmsg(txn, -ENAMETOOLONG,
				      "UTF-8 encoded length of %zu exceeds key length limit of %u.",
				      key_len, KVC_KEY_MAX);
	if (key_len == 0 || (key_len == 1 && memcmp(key, ".", 1) == 0) ||
	    (key_len == 2 && memcmp(key, "..", 2) == 0))
		return kvc_set_errmsg(txn, -EINVAL,
				      "Illegal key name \"%.*s\". Key names must not be empty, \".\" or \"..\".",
				      (int)key_len, (const char *)key);
	if (!utf8_valid(key, key_len))
		return kvc_set_errmsg(txn, -EINVAL, "Key is not valid UTF-8.");
	return 0;
}

int kvc_key_check(const void *key, size_t key_len)
{
	return key_check(NULL, key, key_len);
}

static int scratch_reserve(kvc_txn *txn, size_t need)
{
	if (need <= txn->scratch_cap)
		return 0;
	size_t cap = txn->scratch_cap ? txn->scratch_cap : 4096;
	while (cap < need)
		cap *= 2;
	void *p = realloc(txn->scratch, cap);
	if (!p)
		return -ENOMEM;
	txn->scratch = p;
	txn->scratch_cap = cap;
	return 0;
}

/* ------------------------------------------------------------- records */

int kvc_rec_decode(const void *data, size_t len, struct kvc_record *ret)
{
	const unsigned char *p = data;
	size_t hdr;
	if (len >= KVC_REC_HDR && p[0] == KVC_REC_VERSION)
		hdr = KVC_REC_HDR;
	else if (len >= KVC_REC_HDR_V1 && p[0] == 1)
		hdr = KVC_REC_HDR_V1;
	else
		return -EIO;
	size_t mlen = get_le16(p + 2);
	if (hdr + mlen > len)
		return -EIO;
	ret->flags = p[1];
	ret->ttl = get_le32(p + 4);
	ret->mode = get_le32(p + 8);
	ret->uid = get_le32(p + 12);
	ret->gid = get_le32(p + 16);
	ret->expiration = (int64_t)get_le64(p + 24);
	ret->mtime_ns = (int64_t)get_le64(p + 32);
	ret->ctime_ns = (int64_t)get_le64(p + 40);
	ret->hlc = get_le64(p + 48);
	ret->origin = get_le64(p + 56);
	ret->seq = get_le64(p + 64);
	ret->ino = hdr == KVC_REC_HDR ? get_le64(p + 72) : 0;
	ret->metadata = mlen ? (const char *)p + hdr : NULL;
	ret->metadata_len = mlen;
	ret->value = p + hdr + mlen;
	ret->value_len = len - hdr - mlen;
	return 0;
}

static size_t rec_encoded_len(const struct kvc_record *rec)
{
	return KVC_REC_HDR + rec->metadata_len + rec->value_len;
}

static void rec_encode(const struct kvc_record *rec, unsigned char *p)
{
	memset(p, 0, KVC_REC_HDR);
	p[0] = KVC_REC_VERSION;
	p[1] = (unsigned char)rec->flags;
	put_le16(p + 2, (uint16_t)rec->metadata_len);
	put_le32(p + 4, rec->ttl);
	put_le32(p + 8, rec->mode);
	put_le32(p + 12, rec->uid);
	put_le32(p + 16, rec->gid);
	put_le64(p + 24, (uint64_t)rec->expiration);
	put_le64(p + 32, (uint64_t)rec->mtime_ns);
	put_le64(p + 40, (uint64_t)rec->ctime_ns);
	put_le64(p + 48, rec->hlc);
	put_le64(p + 56, rec->origin);
	put_le64(p + 64, rec->seq);
	put_le64(p + 72, rec->ino);
	if (rec->metadata_len)
		memcpy(p + KVC_REC_HDR, rec->metadata, rec->metadata_len);
	if (rec->value_len)
		memcpy(p + KVC_REC_HDR + rec->metadata_len, rec->value, rec->value_len);
}

/* Bucket entries compare by (tail length, tail byte): "" < "\0" < ... < "\xff". */
static int tail_cmp(size_t a_len, unsigned a, size_t b_len, unsigned b)
{
	if (a_len != b_len)
		return a_len < b_len ? -1 : 1;
	return a_len ? (a < b ? -1 : a > b) : 0;
}

struct bucket_ent {
	size_t tail_len;
	unsigned tail;
	const unsigned char *rec;
	size_t rec_len;
};

/* Walk bucket entries: @off advances; @return 1 (entry), 0 (end), -EIO. */
static int bucket_next(const MDB_val *data, size_t *off, struct bucket_ent *ent)
{
	const unsigned char *p = data->mv_data;
	if (*off == data->mv_size)
		return 0;
	if (data->mv_size - *off < KVC_BUCKET_ENT_HDR)
		return -EIO;
	p += *off;
	ent->tail_len = p[0];
	ent->tail = p[1];
	ent->rec_len = get_le32(p + 2);
	if (ent->tail_len > 1 || ent->rec_len > data->mv_size - *off - KVC_BUCKET_ENT_HDR)
		return -EIO;
	ent->rec = p + KVC_BUCKET_ENT_HDR;
	*off += KVC_BUCKET_ENT_HDR + ent->rec_len;
	return 1;
}

static bool is_bucket_key(size_t stored_len)
{
	return stored_len == KVC_STORED_KEY_MAX;
}

int kvc_rec_locate(const void *key, size_t key_len, const MDB_val *data,
		   struct kvc_record *ret)
{
	if (!is_bucket_key(key_len < KVC_STORED_KEY_MAX ? key_len : KVC_STORED_KEY_MAX))
		return kvc_rec_decode(data->mv_data, data->mv_size, ret);
	size_t tail_len = key_len - KVC_STORED_KEY_MAX;
	unsigned tail = tail_len ? ((const unsigned char *)key)[KVC_STORED_KEY_MAX] : 0;
	size_t off = 0;
	struct bucket_ent e;
	int rc;
	while ((rc = bucket_next(data, &off, &e)) == 1) {
		int c = tail_cmp(e.tail_len, e.tail, tail_len, tail);
		if (c == 0)
			return kvc_rec_decode(e.rec, e.rec_len, ret);
		if (c > 0)
			break;
	}
	return rc < 0 ? rc : -ENOENT;
}

static MDB_val stored_key(const void *key, size_t key_len)
{
	MDB_val k = {key_len < KVC_STORED_KEY_MAX ? key_len : KVC_STORED_KEY_MAX, (void *)key};
	return k;
}

int kvc_rec_lookup(kvc_txn *txn, const void *key, size_t key_len, struct kvc_record *ret)
{
	MDB_val k = stored_key(key, key_len), d;
	int rc = mdb_get(txn->mdb, txn->store->rec, &k, &d);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	return kvc_rec_locate(key, key_len, &d, ret);
}

/* --------------------------------------------------------------- meta */

int kvc_meta_get_u64(kvc_txn *txn, const char *name, uint64_t *ret)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(txn->mdb, txn->store->meta, &k, &d);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	if (d.mv_size != 8)
		return -EIO;
	*ret = get_le64(d.mv_data);
	return 0;
}

int kvc_meta_put_u64(kvc_txn *txn, const char *name, uint64_t v)
{
	unsigned char buf[8];
	put_le64(buf, v);
	MDB_val k = {strlen(name), (void *)name}, d = {8, buf};
	return kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->meta, &k, &d, 0));
}

static int meta_load(kvc_txn *txn)
{
	if (txn->meta_loaded)
		return 0;
	int rc = kvc_meta_get_u64(txn, "seq", &txn->seq);
	if (rc == -ENOENT)
		txn->seq = 0;
	else if (rc)
		return rc;
	rc = kvc_meta_get_u64(txn, "hlc", &txn->hlc);
	if (rc == -ENOENT)
		txn->hlc = 0;
	else if (rc)
		return rc;
	/* Inode numbers start at 2: kvfs gives its root directory 1. */
	rc = kvc_meta_get_u64(txn, "ino", &txn->ino);
	if (rc == -ENOENT)
		txn->ino = 1;
	else if (rc)
		return rc;
	rc = kvc_meta_get_u64(txn, "chunk", &txn->chunk);
	if (rc == -ENOENT)
		txn->chunk = 0;
	else if (rc)
		return rc;
	txn->meta_loaded = true;
	return 0;
}

/*
 * The next clock: past both the wall clock and every clock seen.  At the
 * largest value it saturates: a clock that wrapped to 0 would lose every
 * conflict and read as "no clock".  kvc_apply keeps peers' clocks far
 * below it (KVC_HLC_MS_MAX), so only a store damaged by other means gets
 * there.
 */
static int hlc_stamp(kvc_txn *txn, uint64_t *ret)
{
	int rc = meta_load(txn);
	if (rc)
		return rc;
	uint64_t now_ms = (uint64_t)(kvc_now_ns() / 1000000);
	uint64_t l = txn->hlc >> 16, c = txn->hlc & 0xFFFF;
	if (now_ms > l) {
		l = now_ms;
		c = 0;
	} else if (c < 0xFFFF) {
		c++;
	} else if (l < 0xFFFFFFFFFFFFull) {
		l++;
		c = 0;
	}
	txn->hlc = l << 16 | c;
	txn->meta_dirty = true;
	*ret = txn->hlc;
	return 0;
}

int kvc_counter_next(kvc_txn *txn, uint64_t *counter, uint64_t *ret)
{
	int rc = meta_load(txn);
	if (rc)
		return rc;
	*ret = ++*counter;
	txn->meta_dirty = true;
	return 0;
}

/* A new inode number: never one a record of this store had before. */
static int next_ino(kvc_txn *txn, uint64_t *ret)
{
	return kvc_counter_next(txn, &txn->ino, ret);
}

static int next_seq(kvc_txn *txn, uint64_t *ret)
{
	return kvc_counter_next(txn, &txn->seq, ret);
}

/* ------------------------------------------------------------- indexes */

static int idx_put(kvc_txn *txn, MDB_dbi dbi, uint64_t a, uint64_t b, const void *key,
		   size_t key_len)
{
	unsigned char kb[16];
	kvc_put_be64(kb, a);
	kvc_put_be64(kb + 8, b);
	MDB_val k = {16, kb}, d = {key_len, (void *)key};
	return kvc_lmdb_err(txn, mdb_put(txn->mdb, dbi, &k, &d, 0));
}

static int idx_del(kvc_txn *txn, MDB_dbi dbi, uint64_t a, uint64_t b)
{
	unsigned char kb[16];
	kvc_put_be64(kb, a);
	kvc_put_be64(kb + 8, b);
	MDB_val k = {16, kb};
	int rc = kvc_lmdb_err(txn, mdb_del(txn->mdb, dbi, &k, NULL));
	return rc == -ENOENT ? 0 : rc;
}

static int feed_put(kvc_txn *txn, uint64_t seq, const void *key, size_t key_len)
{
	unsigned char kb[8];
	kvc_put_be64(kb, seq);
	MDB_val k = {8, kb}, d = {key_len, (void *)key};
	/* Sequences only grow, so every entry lands at the end. */
	return kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->feed, &k, &d, MDB_APPEND));
}

static int feed_del(kvc_txn *txn, uint64_t seq)
{
	unsigned char kb[8];
	kvc_put_be64(kb, seq);
	MDB_val k = {8, kb};
	int rc = kvc_lmdb_err(txn, mdb_del(txn->mdb, txn->store->feed, &k, NULL));
	return rc == -ENOENT ? 0 : rc;
}

static int indexes_drop(kvc_txn *txn, const struct kvc_record *old, bool keep_feed)
{
	kvc_store *s = txn->store;
	int rc = 0;
	if (!keep_feed)
		rc = feed_del(txn, old->seq);
	if (!rc && old->expiration && !(old->flags & KVC_REC_TOMBSTONE))
		rc = idx_del(txn, s->exp, (uint64_t)old->expiration, old->seq);
	if (!rc && (old->flags & KVC_REC_TOMBSTONE))
		rc = idx_del(txn, s->tomb, old->hlc, old->seq);
	return rc;
}

static int indexes_add(kvc_txn *txn, const void *key, size_t key_len,
		       const struct kvc_record *rec, bool keep_feed)
{
	kvc_store *s = txn->store;
	int rc = 0;
	if (!keep_feed)
		rc = feed_put(txn, rec->seq, key, key_len);
	if (!rc && rec->expiration && !(rec->flags & KVC_REC_TOMBSTONE))
		rc = idx_put(txn, s->exp, (uint64_t)rec->expiration, rec->seq, key, key_len);
	if (!rc && (rec->flags & KVC_REC_TOMBSTONE))
		rc = idx_put(txn, s->tomb, rec->hlc, rec->seq, key, key_len);
	return rc;
}

/* Rewrite the bucket at @k with @key's entry replaced by @rec (or removed). */
static int bucket_store(kvc_txn *txn, MDB_val *k, const void *key, size_t key_len,
			const struct kvc_record *rec)
{
	MDB_val old = {0, NULL};
	int rc = mdb_get(txn->mdb, txn->store->rec, k, &old);
	if (rc && rc != MDB_NOTFOUND)
		return kvc_lmdb_err(txn, rc);
	size_t tail_len = key_len - KVC_STORED_KEY_MAX;
	unsigned tail = tail_len ? ((const unsigned char *)key)[KVC_STORED_KEY_MAX] : 0;
	size_t need = old.mv_size + (rec ? KVC_BUCKET_ENT_HDR + rec_encoded_len(rec) : 0);
	/* The old bucket may live in pages this transaction rewrites: copy out. */
	rc = scratch_reserve(txn, need);
	if (rc)
		return rc;
	unsigned char *out = txn->scratch, *w = out;
	size_t off = 0;
	struct bucket_ent e;
	bool placed = false;
	while ((rc = bucket_next(&old, &off, &e)) == 1) {
		int c = tail_cmp(e.tail_len, e.tail, tail_len, tail);
		if (c >= 0 && !placed) {
			if (rec) {
				w[0] = (unsigned char)tail_len;
				w[1] = (unsigned char)tail;
				put_le32(w + 2, (uint32_t)rec_encoded_len(rec));
				rec_encode(rec, w + KVC_BUCKET_ENT_HDR);
				w += KVC_BUCKET_ENT_HDR + rec_encoded_len(rec);
			}
			placed = true;
			if (c == 0)
				continue;
		}
		memcpy(w, e.rec - KVC_BUCKET_ENT_HDR, KVC_BUCKET_ENT_HDR + e.rec_len);
		w += KVC_BUCKET_ENT_HDR + e.rec_len;
	}
	if (rc < 0)
		return rc;
	if (!placed && rec) {
		w[0] = (unsigned char)tail_len;
		w[1] = (unsigned char)tail;
		put_le32(w + 2, (uint32_t)rec_encoded_len(rec));
		rec_encode(rec, w + KVC_BUCKET_ENT_HDR);
		w += KVC_BUCKET_ENT_HDR + rec_encoded_len(rec);
	}
	if (w == out) {
		rc = mdb_del(txn->mdb, txn->store->rec, k, NULL);
		return rc == MDB_NOTFOUND ? 0 : kvc_lmdb_err(txn, rc);
	}
	MDB_val d = {(size_t)(w - out), out};
	return kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->rec, k, &d, 0));
}

int kvc_rec_store(kvc_txn *txn, const void *key, size_t key_len,
		  const struct kvc_record *old, const struct kvc_record *rec)
{
	bool keep_feed = old && rec && old->seq == rec->seq;
	struct kvc_chunk_list taken = {0};
	struct kvc_record split;
	void *table = NULL;
	int rc = kvc_chunks_taken(old, &taken);
	if (!rc && rec && !(rec->flags & KVC_REC_CHUNKED) && rec->value_len >= KVC_CHUNKED_MIN) {
		rc = kvc_chunk_split(txn, old, rec, &split, &table);
		rec = &split;
	}
	if (!rc && old)
		rc = indexes_drop(txn, old, keep_feed);
	if (rc)
		goto out;
	MDB_val k = stored_key(key, key_len);
	if (is_bucket_key(k.mv_size)) {
		rc = bucket_store(txn, &k, key, key_len, rec);
	} else if (!rec) {
		rc = mdb_del(txn->mdb, txn->store->rec, &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : kvc_lmdb_err(txn, rc);
	} else {
		MDB_val d = {rec_encoded_len(rec), NULL};
		rc = kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->rec, &k, &d, MDB_RESERVE));
		if (!rc)
			rec_encode(rec, d.mv_data);
	}
	if (!rc && rec)
		rc = indexes_add(txn, key, key_len, rec, keep_feed);
	if (!rc)
		rc = kvc_chunks_release(txn, &taken, rec);
out:
	kvc_chunk_list_release(&taken);
	free(table);
	return rc;
}

/* -------------------------------------------------------------- stores */

static int random_u64(uint64_t *ret)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		return -EIO;
	*ret = v ? v : 1;
	return 0;
}

static int open_dbs(kvc_store *s, MDB_txn *t, unsigned flags);

/* Create and open the environment of @s with a map of @map_size bytes (0:
 * the size the store last had).  @return 0 or -errno (s->env may be set) */
static int env_open(kvc_store *s, size_t map_size)
{
	int rc = mdb_env_create(&s->env);
	if (rc) {
		s->env = NULL;
		return kvc_lmdb_err(NULL, rc);
	}
	if ((rc = mdb_env_set_maxdbs(s->env, 8)) ||
	    (rc = mdb_env_set_maxreaders(s->env, MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(s->env, map_size)) ||
	    (rc = mdb_env_open(s->env, s->path, s->env_flags, 0644)))
		return kvc_lmdb_err(NULL, rc);
	return 0;
}

/*
 * LMDB unmaps before it maps again, and a map it could not get leaves the
 * environment with none: open it anew at @size, the size it had (0: what
 * the store says), and find the databases again.  Called as map_resize is.
 * @return 0, or -ENOMEM (the handle is lost)
 */
static int env_reopen(kvc_store *s, size_t size)
{
	mdb_env_close(s->env);
	s->env = NULL;
	MDB_txn *t = NULL;
	int rc = env_open(s, size);
	if (!rc)
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (!rc) {
		rc = open_dbs(s, t, 0);
		if (rc)
			mdb_txn_abort(t);
		else
			rc = mdb_txn_commit(t);
	}
	if (rc) {
		s->map_lost = true;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Resize the map to @size (0: adopt the size another process gave it).
 * Called with resize_lock held exclusively and no transaction of @s live.
 * If LMDB cannot map the new size, the environment is opened anew at the
 * size it had, so the handle keeps working.
 * @return 0, -ENOMEM (could not map the new size), -errno
 */
static int map_resize(kvc_store *s, uint64_t size)
{
	pthread_mutex_lock(&s->pool_lock);
	while (s->npool)
		mdb_txn_abort(s->pool[--s->npool]);
	pthread_mutex_unlock(&s->pool_lock);
	MDB_envinfo info;
	size_t old = mdb_env_info(s->env, &info) ? 0 : info.me_mapsize;
	int rc = mdb_env_set_mapsize(s->env, (size_t)size);
	if (!rc)
		return 0;
	/* EINVAL comes before the unmap (a write txn live, which cannot be
	 * here); any other failure is mapping's, with the map gone (even
	 * mdb_env_info would read it). */
	if (rc == EINVAL)
		return -EINVAL;
	env_reopen(s, old);
	return -ENOMEM;
}

/*
 * The transactions this thread holds, one slot per store.  A second
 * transaction on a store in the same thread could wait forever: a map
 * resize (ours or one adopted from another process) waits for every
 * transaction of the handle to end, this thread's first one included, and
 * a waiting resize blocks new transactions.  kvc_txn_begin refuses it with
 * -EDEADLK instead, always: the check costs a few compares, and a refusal
 * names the bug where a hang would hide it.  A thread holding transactions
 * on more than HELD_MAX stores at once goes unchecked for the rest.
 */
#define HELD_MAX 8
static __thread const kvc_store *held[HELD_MAX];

static bool held_by_thread(const kvc_store *s)
{
	for (unsigned i = 0; i < HELD_MAX; i++)
		if (held[i] == s)
			return true;
	return false;
}

static void held_set(const kvc_store *from, const kvc_store *to)
{
	for (unsigned i = 0; i < HELD_MAX; i++) {
		if (held[i] == from) {
			held[i] = to;
			return;
		}
	}
}

static int txn_begin_raw(kvc_store *s, bool write, MDB_txn **ret)
{
	for (;;) {
		MDB_txn *t = NULL;
		int rc = 0;
		if (s->map_lost)
			return ENOMEM;
		if (!write) {
			pthread_mutex_lock(&s->pool_lock);
			if (s->npool)
				t = s->pool[--s->npool];
			pthread_mutex_unlock(&s->pool_lock);
		}
		if (t) {
			rc = mdb_txn_renew(t);
			if (rc)
				mdb_txn_abort(t);
		} else {
			rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t);
		}
		if (rc != MDB_MAP_RESIZED) {
			if (rc == 0)
				*ret = t;
			return rc;
		}
		/* Another process grew the map: adopt its size, with no txn
		 * live (the caller holds no other one: see held above). */
		pthread_rwlock_unlock(&s->resize_lock);
		pthread_rwlock_wrlock(&s->resize_lock);
		rc = s->map_lost ? -ENOMEM : map_resize(s, 0);
		pthread_rwlock_unlock(&s->resize_lock);
		pthread_rwlock_rdlock(&s->resize_lock);
		if (rc)
			return -rc;
	}
}

/*
 * Keep SPACE_RESERVE bytes of the data file allocated past the pages in
 * use, topped up once half is used, so most commits need only the fstat.
 * Called in a write transaction (no other writer can move the last page).
 * @return 0, or -ENOSPC when the filesystem cannot give the reserve back
 */
static int space_reserve(kvc_store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	int fd;
	struct stat fst;
	if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st) ||
	    mdb_env_get_fd(s->env, &fd) || fstat(fd, &fst))
		return 0; /* cannot tell: the commit will find out */
	off_t used = (off_t)((info.me_last_pgno + 1) * st.ms_psize);
	if (fst.st_size >= used + (off_t)SPACE_RESERVE / 2)
		return 0;
	return posix_fallocate(fd, used, SPACE_RESERVE) ? -ENOSPC : 0;
}

int kvc_txn_begin(kvc_store *store, int kind, kvc_txn **ret_txn)
{
	if (!store || !ret_txn)
		return -EINVAL;
	if (kind == KVC_TXN_WRITE && store->readonly)
		return -EROFS;
	if (held_by_thread(store))
		return -EDEADLK;
	kvc_txn *txn = calloc(1, sizeof(*txn));
	if (!txn)
		return -ENOMEM;
	txn->store = store;
	txn->write = kind == KVC_TXN_WRITE;
	pthread_rwlock_rdlock(&store->resize_lock);
	int rc = txn_begin_raw(store, txn->write, &txn->mdb);
	if (rc) {
		pthread_rwlock_unlock(&store->resize_lock);
		free(txn);
		return kvc_lmdb_err(NULL, rc);
	}
	held_set(NULL, store);
	if (txn->write)
		txn->low_space = space_reserve(store) < 0;
	txn->now_ns = kvc_now_ns();
	*ret_txn = txn;
	return 0;
}

static void txn_free(kvc_txn *txn)
{
	held_set(txn->store, NULL);
	pthread_rwlock_unlock(&txn->store->resize_lock);
	kvc_txn_values_free(txn);
	free(txn->scratch);
	free(txn);
}

static void txn_end_read(kvc_txn *txn)
{
	kvc_store *s = txn->store;
	mdb_txn_reset(txn->mdb);
	pthread_mutex_lock(&s->pool_lock);
	if (s->npool < KVC_POOL_MAX) {
		s->pool[s->npool++] = txn->mdb;
		txn->mdb = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	if (txn->mdb)
		mdb_txn_abort(txn->mdb);
}

void kvc_txn_abort(kvc_txn *txn)
{
	if (!txn)
		return;
	if (txn->write)
		mdb_txn_abort(txn->mdb);
	else
		txn_end_read(txn);
	txn_free(txn);
}

/* Commit, leaving @txn allocated so its flags and message can be read.
 * The MDB_txn is gone either way. */
static int txn_commit_keep(kvc_txn *txn)
{
	int rc = 0;
	if (txn->meta_dirty) {
		rc = kvc_meta_put_u64(txn, "seq", txn->seq);
		if (!rc)
			rc = kvc_meta_put_u64(txn, "hlc", txn->hlc);
		if (!rc)
			rc = kvc_meta_put_u64(txn, "ino", txn->ino);
		if (!rc && txn->chunk)
			rc = kvc_meta_put_u64(txn, "chunk", txn->chunk);
	}
	if (rc)
		mdb_txn_abort(txn->mdb);
	else
		rc = kvc_lmdb_err(txn, mdb_txn_commit(txn->mdb));
	if (rc == 0 && txn->store->sync != KVC_SYNC_ALWAYS)
		atomic_fetch_add(&txn->store->unsynced, 1);
	txn->mdb = NULL;
	return rc;
}

int kvc_txn_commit(kvc_txn *txn)
{
	if (!txn)
		return -EINVAL;
	if (!txn->write) {
		kvc_txn_abort(txn);
		return 0;
	}
	int rc = txn_commit_keep(txn);
	txn_free(txn);
	return rc;
}

const char *kvc_txn_errmsg(const kvc_txn *txn)
{
	return txn ? txn->errmsg : "";
}

/*
 * Grow the map after LMDB said MDB_MAP_FULL: double it, but never past
 * what the filesystem under the store can hold (the data file plus the
 * filesystem's free space), which also keeps the request within what the
 * address space can map.
 * @return 0 (grown: retry), -ENOSPC (the filesystem has no room for a
 *         bigger store), -ENOMEM (the map was lost), -errno
 */
static int store_grow(kvc_store *s)
{
	pthread_rwlock_wrlock(&s->resize_lock);
	MDB_envinfo info;
	int fd;
	struct stat fst;
	uint64_t avail = 0;
	int rc = s->map_lost ? -ENOMEM : 0;
	if (!rc && (mdb_env_info(s->env, &info) || mdb_env_get_fd(s->env, &fd)))
		rc = -EIO;
	if (!rc && fstat(fd, &fst))
		rc = -errno;
	if (!rc)
		rc = fs_avail(s, &avail);
	if (!rc) {
		uint64_t cap = (uint64_t)fst.st_size + avail;
		cap = (cap + MAP_ROUND - 1) / MAP_ROUND * MAP_ROUND;
		uint64_t want = info.me_mapsize * 2;
		if (want > cap)
			want = cap;
		rc = want > info.me_mapsize ? map_resize(s, want) : -ENOSPC;
	}
	pthread_rwlock_unlock(&s->resize_lock);
	return rc;
}

/* The message of a map growth that failed with @grc. */
static const char *growth_errmsg(int grc)
{
	return grc == -ENOSPC ? "no space left on device (the store's filesystem is full)"
			      : "the store's map could not be resized";
}

/* kvc_write_txn for one caller: its own transaction and commit. */
static int write_txn_alone(kvc_store *store, int (*fn)(kvc_txn *txn, void *arg), void *arg,
			   char *errmsg, size_t errmsg_size)
{
	int rc;
	for (int attempt = 0; attempt < MAX_GROWTHS; attempt++) {
		kvc_txn *txn;
		rc = kvc_txn_begin(store, KVC_TXN_WRITE, &txn);
		if (rc)
			break;
		rc = fn(txn, arg);
		if (rc < 0) {
			mdb_txn_abort(txn->mdb);
			txn->mdb = NULL;
		} else {
			int crc = txn_commit_keep(txn);
			if (crc)
				rc = crc;
		}
		bool full = txn->map_full;
		if (rc < 0 && errmsg && errmsg_size)
			snprintf(errmsg, errmsg_size, "%s", txn->errmsg);
		txn_free(txn);
		if (!(rc == -ENOSPC && full))
			return rc;
		int grc = store_grow(store);
		if (grc) {
			rc = grc;
			if (errmsg && errmsg_size)
				snprintf(errmsg, errmsg_size, "%s", growth_errmsg(grc));
			break;
		}
	}
	return rc;
}

/* A call of kvc_write_txn waiting for, or in, a shared transaction. */
struct kvc_group_req {
	int (*fn)(kvc_txn *txn, void *arg);
	void *arg;
	int rc;
	bool ran;               /* rc is its result (but for a failed commit) */
	bool full;              /* the map was full: run it again after growth */
	bool done;              /* its result is final; protected by group_lock */
	char errmsg[sizeof(((kvc_txn *)0)->errmsg)];
	struct kvc_group_req *next;
};

/* Run @r's fn in a transaction nested in @txn: what a failing fn wrote is
 * undone, the others' writes stay. */
static void group_run_one(kvc_txn *txn, struct kvc_group_req *r)
{
	MDB_txn *parent = txn->mdb, *child;
	uint64_t seq = txn->seq, hlc = txn->hlc, ino = txn->ino, chunk = txn->chunk;
	bool meta_dirty = txn->meta_dirty, meta_loaded = txn->meta_loaded;
	int rc = mdb_txn_begin(txn->store->env, parent, 0, &child);

	txn->errmsg[0] = 0;
	txn->map_full = false;
	if (rc) {
		rc = kvc_lmdb_err(txn, rc);
	} else {
		txn->mdb = child;
		rc = r->fn(txn, r->arg);
		if (rc >= 0) {
			int c = mdb_txn_commit(child);
			if (c)
				rc = kvc_lmdb_err(txn, c);
		} else {
			mdb_txn_abort(child);
		}
		txn->mdb = parent;
	}
	if (rc < 0) {
		/* The counters are written back at the commit: forget what
		 * the undone writes took. */
		txn->seq = seq, txn->hlc = hlc, txn->ino = ino, txn->chunk = chunk;
		txn->meta_dirty = meta_dirty, txn->meta_loaded = meta_loaded;
	}
	r->rc = rc;
	r->full = rc == -ENOSPC && txn->map_full;
	r->ran = !r->full;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", txn->errmsg);
	txn->map_full = false;
}

/* Give every call of @batch without a result @rc and @msg. */
static void group_fail(struct kvc_group_req *batch, int rc, const char *msg)
{
	for (struct kvc_group_req *r = batch; r; r = r->next) {
		if (r->ran)
			continue;
		r->rc = rc;
		r->ran = true;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	}
}

/* Run the calls of @batch in one shared transaction, in queue order; when
 * one finds the map full, none is kept: the map grows and all run again (a
 * nested transaction that failed for want of pages is not trusted to have
 * left its parent whole). */
static void group_run(kvc_store *store, struct kvc_group_req *batch)
{
	for (int attempt = 0; attempt < MAX_GROWTHS; attempt++) {
		kvc_txn *txn;
		int rc = kvc_txn_begin(store, KVC_TXN_WRITE, &txn);
		bool any = false, full = false;

		if (rc) {
			group_fail(batch, rc, strerror(-rc));
			return;
		}
		for (struct kvc_group_req *r = batch; r && !full; r = r->next) {
			if (r->ran)
				continue;
			group_run_one(txn, r);
			any |= r->rc >= 0;
			full |= r->full;
		}
		int crc = 0;
		if (any && !full) {
			crc = txn_commit_keep(txn);
			full = crc == -ENOSPC && txn->map_full;
		} else {
			mdb_txn_abort(txn->mdb);
			txn->mdb = NULL;
		}
		for (struct kvc_group_req *r = batch; r; r = r->next) {
			if (full) {
				/* Nothing was kept: every call runs again, in
				 * the same order, so each result is of one
				 * serial history. */
				r->ran = r->full = false;
			} else if (crc && r->ran && r->rc >= 0) {
				r->rc = crc;
				snprintf(r->errmsg, sizeof(r->errmsg), "%s", txn->errmsg);
			}
		}
		txn_free(txn);
		if (!full)
			return;
		int grc = store_grow(store);
		if (grc) {
			group_fail(batch, grc, growth_errmsg(grc));
			return;
		}
	}
	group_fail(batch, -ENOSPC, growth_errmsg(-ENOSPC));
}

/*
 * Group commit: a call joins the queue; if no transaction is running, it
 * takes the whole queue and runs it (group_run), else it waits.  Calls
 * that arrive while one group commits form the next group, so under load
 * each flush serves every caller that waited for it, and a lone caller
 * waits for nobody.
 */
static int write_txn_grouped(kvc_store *store, int (*fn)(kvc_txn *txn, void *arg), void *arg,
			     char *errmsg, size_t errmsg_size)
{
	struct kvc_group_req me = { .fn = fn, .arg = arg };

	pthread_mutex_lock(&store->group_lock);
	*store->group_tail = &me;
	store->group_tail = &me.next;
	while (!me.done && store->group_busy)
		pthread_cond_wait(&store->group_done, &store->group_lock);
	if (!me.done) {
		struct kvc_group_req *batch = store->group_head;

		store->group_head = NULL;
		store->group_tail = &store->group_head;
		store->group_busy = true;
		pthread_mutex_unlock(&store->group_lock);
		group_run(store, batch);
		pthread_mutex_lock(&store->group_lock);
		for (struct kvc_group_req *r = batch, *next; r; r = next) {
			next = r->next; /* r may go once done is seen */
			r->done = true;
		}
		store->group_busy = false;
		pthread_cond_broadcast(&store->group_done);
	}
	pthread_mutex_unlock(&store->group_lock);
	if (me.rc < 0 && errmsg && errmsg_size)
		snprintf(errmsg, errmsg_size, "%s", me.errmsg);
	return me.rc;
}

int kvc_write_txn(kvc_store *store, int (*fn)(kvc_txn *txn, void *arg), void *arg,
		  char *errmsg, size_t errmsg_size)
{
	if (errmsg && errmsg_size)
		errmsg[0] = 0;
	if (store->readonly)
		return -EROFS;
	if (held_by_thread(store))
		return -EDEADLK;
	int rc = store->group ? write_txn_grouped(store, fn, arg, errmsg, errmsg_size)
			      : write_txn_alone(store, fn, arg, errmsg, errmsg_size);
	if (errmsg && errmsg_size && rc < 0 && !errmsg[0])
		snprintf(errmsg, errmsg_size, "%s", strerror(-rc));
	return rc;
}

static int open_dbs(kvc_store *s, MDB_txn *t, unsigned flags)
{
	int rc;
	if ((rc = mdb_dbi_open(t, "rec", flags, &s->rec)) ||
	    (rc = mdb_dbi_open(t, "exp", flags, &s->exp)) ||
	    (rc = mdb_dbi_open(t, "tomb", flags, &s->tomb)) ||
	    (rc = mdb_dbi_open(t, "feed", flags, &s->feed)) ||
	    (rc = mdb_dbi_open(t, "meta", flags, &s->meta)))
		return rc;
	/* Stores before format 3 have no chunk database; a read-only handle
	 * of one goes without (none of its records is chunked). */
	rc = mdb_dbi_open(t, "chunk", flags, &s->chunk);
	s->have_chunk_db = rc == 0;
	if (rc == MDB_NOTFOUND && !(flags & MDB_CREATE))
		rc = 0;
	if (rc)
		return rc;
	MDB_stat st;
	rc = mdb_env_stat(s->env, &st);
	if (!rc)
		s->chunk_size = kvc_chunk_size_for(st.ms_psize);
	return rc;
}

struct key_list {
	unsigned char *buf; /* u16 length, then the key, for each key */
	size_t len, cap;
};

static int collect_key(void *arg, const void *key, size_t key_len,
		       const struct kvc_record *rec, int decode_err)
{
	struct key_list *l = arg;
	if (decode_err)
		return decode_err;
	if (l->len + 2 + key_len > l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		unsigned char *p = realloc(l->buf, cap);
		if (!p)
			return -ENOMEM;
		l->buf = p;
		l->cap = cap;
	}
	put_le16(l->buf + l->len, (uint16_t)key_len);
	memcpy(l->buf + l->len + 2, key, key_len);
	l->len += 2 + key_len;
	return 0;
}

/*
 * Format 1 -> 2: rewrite every record as version 2, giving each one that
 * is not a tombstone an inode number, in key order.  Sequences, clocks and
 * times are kept: this is no change a peer needs to see.
 */
static int upgrade_v1(kvc_txn *txn)
{
	struct key_list l = {0};
	int rc = kvc_rec_scan(txn, collect_key, &l);
	for (size_t off = 0; !rc && off < l.len;) {
		size_t key_len = get_le16(l.buf + off);
		const unsigned char *key = l.buf + off + 2;
		struct kvc_record old, rec;
		off += 2 + key_len;
		rc = kvc_rec_lookup(txn, key, key_len, &old);
		if (rc)
			break;
		if (old.ino)
			continue;
		/* Copy: storing the longer record moves bytes in the page. */
		size_t n = old.metadata_len + old.value_len;
		char *copy = malloc(n ? n : 1);
		if (!copy) {
			rc = -ENOMEM;
			break;
		}
		memcpy(copy, old.metadata ? old.metadata : "", old.metadata_len);
		memcpy(copy + old.metadata_len, old.value, old.value_len);
		rec = old;
		rec.metadata = old.metadata_len ? copy : NULL;
		rec.value = copy + old.metadata_len;
		if (!(old.flags & KVC_REC_TOMBSTONE))
			rc = next_ino(txn, &rec.ino);
		if (!rc)
			rc = kvc_rec_store(txn, key, key_len, &old, &rec);
		free(copy);
	}
	free(l.buf);
	if (!rc)
		rc = kvc_meta_put_u64(txn, "ino", txn->ino);
	if (!rc)
		rc = kvc_meta_put_u64(txn, "format", KVC_FORMAT_VERSION);
	return rc;
}

/* Create the databases and identity of a new store, or check an old one's. */
static int store_init(kvc_store *s, const struct kvc_open_opts *o)
{
	kvc_txn txn = {.store = s, .write = !s->readonly};
	int rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn.mdb);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map since we opened: adopt its size. */
		rc = map_resize(s, 0);
		if (rc)
			return rc;
		rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn.mdb);
	}
	if (rc)
		return kvc_lmdb_err(NULL, rc);
	rc = open_dbs(s, txn.mdb, s->readonly ? 0 : MDB_CREATE);
	if (rc) {
		rc = rc == MDB_NOTFOUND ? -EPROTO : kvc_lmdb_err(NULL, rc);
		goto out_abort;
	}
	uint64_t format = 0, min_ttl = KVC_MIN_TTL_DEFAULT;
	rc = kvc_meta_get_u64(&txn, "format", &format);
	if (rc == -ENOENT && !s->readonly) {
		if ((rc = random_u64(&s->id.node_id)) || (rc = random_u64(&s->id.epoch)) ||
		    (rc = kvc_meta_put_u64(&txn, "format", KVC_FORMAT_VERSION)) ||
		    (rc = kvc_meta_put_u64(&txn, "node_id", s->id.node_id)) ||
		    (rc = kvc_meta_put_u64(&txn, "epoch", s->id.epoch)) ||
		    (rc = kvc_meta_put_u64(&txn, "min_ttl", KVC_MIN_TTL_DEFAULT)))
			goto out_abort;
		format = KVC_FORMAT_VERSION;
	} else if (rc) {
		rc = rc == -ENOENT ? -EPROTO : rc;
		goto out_abort;
	}
	if (format == 1 && !s->readonly) {
		rc = upgrade_v1(&txn);
		if (rc)
			goto out_abort;
	} else if (format == 2 && !s->readonly) {
		/* Format 3 adds the chunk database, made by open_dbs. */
		rc = kvc_meta_put_u64(&txn, "format", KVC_FORMAT_VERSION);
		if (rc)
			goto out_abort;
	} else if (format < 1 || format > KVC_FORMAT_VERSION) {
		rc = -EPROTO;
		goto out_abort;
	}
	if ((rc = kvc_meta_get_u64(&txn, "node_id", &s->id.node_id)) ||
	    (rc = kvc_meta_get_u64(&txn, "epoch", &s->id.epoch)))
		goto out_abort;
	rc = kvc_meta_get_u64(&txn, "min_ttl", &min_ttl);
	if (rc && rc != -ENOENT)
		goto out_abort;
	s->min_ttl_override = o && o->min_ttl_set;
	s->min_ttl = s->min_ttl_override ? o->min_ttl : (uint32_t)min_ttl;
	rc = kvc_lmdb_err(NULL, mdb_txn_commit(txn.mdb));
	return rc;
out_abort:
	mdb_txn_abort(txn.mdb);
	return rc;
}

/* mkdir -p: a store may be named in a directory that does not exist yet. */
static int mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int kvc_open(const char *path, const struct kvc_open_opts *opts, kvc_store **ret_store,
	     bool *ret_created)
{
	struct kvc_open_opts none = {0};
	const struct kvc_open_opts *o = opts ? opts : &none;
	if (!path || !*path || !ret_store)
		return -EINVAL;
	if (o->min_ttl_set && o->min_ttl == 0)
		return -EINVAL;

	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (exists && !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!exists) {
		if (o->no_create || o->readonly)
			return -ENOENT;
		int rc = mkdir_parents(path);
		if (rc)
			return rc;
	}
	char data_path[PATH_MAX];
	snprintf(data_path, sizeof(data_path), "%s/data.mdb", path);
	bool created = access(data_path, F_OK) != 0;
	if (created && (o->no_create || o->readonly))
		return -ENOENT;

	kvc_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->readonly = o->readonly;
	s->sync = o->sync;
	s->group = o->group_commit && !o->readonly;
	pthread_mutex_init(&s->pool_lock, NULL);
	pthread_mutex_init(&s->group_lock, NULL);
	pthread_cond_init(&s->group_done, NULL);
	s->group_tail = &s->group_head;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->resize_lock, &ra);
	pthread_rwlockattr_destroy(&ra);

	int rc = -ENOMEM;
	s->path = realpath(path, NULL);
	if (!s->path) {
		rc = -errno;
		goto out_free;
	}
	s->env_flags = MDB_NOTLS;
	if (o->readonly)
		s->env_flags |= MDB_RDONLY;
	/* batch: the data pages of a commit reach the disk before its meta
	 * page is written, so a power loss can undo the last commits but
	 * never tear the tree (LMDB's NOMETASYNC); none: nothing is flushed,
	 * and a power loss can leave a meta page pointing at pages that never
	 * reached the disk (see docs/kvfs.md, "Durability"). */
	if (o->sync == KVC_SYNC_BATCH)
		s->env_flags |= MDB_NOMETASYNC;
	else if (o->sync == KVC_SYNC_NONE)
		s->env_flags |= MDB_NOSYNC | MDB_NOMETASYNC;
	rc = env_open(s, o->map_size ? o->map_size : DEFAULT_MAP_SIZE);
	if (rc)
		goto out_free;
	int dead;
	mdb_reader_check(s->env, &dead);
	rc = store_init(s, o);
	if (rc)
		goto out_free;
	if (ret_created)
		*ret_created = created;
	*ret_store = s;
	return 0;
out_free:
	kvc_close(s);
	return rc;
}

void kvc_close(kvc_store *s)
{
	if (!s)
		return;
	while (s->npool)
		mdb_txn_abort(s->pool[--s->npool]);
	if (s->env) {
		if (s->sync != KVC_SYNC_ALWAYS)
			kvc_store_sync(s); /* only if a commit is unflushed */
		mdb_env_close(s->env);
	}
	pthread_rwlock_destroy(&s->resize_lock);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->group_lock);
	pthread_cond_destroy(&s->group_done);
	free(s->path);
	free(s);
}

int kvc_store_sync(kvc_store *store)
{
	if (store->readonly)
		return 0;
	/* Read before the flush, taken off after it: a commit counted later
	 * is flushed by a later call, and a caller that finds the count at
	 * zero knows every commit before its call is on disk. */
	uint_fast64_t n = atomic_load(&store->unsynced);
	if (n == 0)
		return 0;
	pthread_rwlock_rdlock(&store->resize_lock);
	int rc = store->map_lost ? -ENOMEM : kvc_lmdb_err(NULL, mdb_env_sync(store->env, 1));
	pthread_rwlock_unlock(&store->resize_lock);
	if (rc == 0)
		atomic_fetch_sub(&store->unsynced, n);
	return rc;
}

const char *kvc_store_path(const kvc_store *store)
{
	return store->path;
}

uint32_t kvc_store_min_ttl(const kvc_store *store)
{
	return store->min_ttl;
}

static int set_min_ttl_fn(kvc_txn *txn, void *arg)
{
	return kvc_meta_put_u64(txn, "min_ttl", *(uint32_t *)arg);
}

int kvc_store_set_min_ttl(kvc_store *store, uint32_t min_ttl)
{
	if (min_ttl == 0)
		return -EINVAL;
	int rc = kvc_write_txn(store, set_min_ttl_fn, &min_ttl, NULL, 0);
	if (!rc && !store->min_ttl_override)
		store->min_ttl = min_ttl;
	return rc;
}

void kvc_store_identity(const kvc_store *store, struct kvc_identity *ret)
{
	*ret = store->id;
}

/* ---------------------------------------------------------------- reads */

int kvc_get(kvc_txn *txn, const void *key, size_t key_len, unsigned flags,
	    struct kvc_record *ret_rec)
{
	int rc = key_check(txn, key, key_len);
	if (rc)
		return rc;
	/* The common case, a plain record: visibility from the header, then
	 * one decode straight into ret_rec. */
	MDB_val k = stored_key(key, key_len), d;
	rc = mdb_get(txn->mdb, txn->store->rec, &k, &d);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	const unsigned char *p = d.mv_data;
	if (!is_bucket_key(k.mv_size) && d.mv_size >= KVC_REC_HDR) {
		uint32_t f = p[1];
		int64_t exp = (int64_t)get_le64(p + 24);
		if ((f & KVC_REC_TOMBSTONE) && !(flags & KVC_GET_TOMBSTONES))
			return -ENOENT;
		if (!(f & KVC_REC_TOMBSTONE) && !(flags & KVC_GET_EXPIRED) && exp > 0 &&
		    exp <= txn->now_ns / 1000000000)
			return -ENOENT;
		struct kvc_record r;
		rc = kvc_rec_decode(p, d.mv_size, &r);
		if (!rc && (r.flags & KVC_REC_CHUNKED))
			rc = kvc_rec_publish_txn(txn, &r, flags);
		if (!rc)
			*ret_rec = r;
		return rc;
	}
	struct kvc_record r;
	rc = kvc_rec_locate(key, key_len, &d, &r);
	if (rc)
		return rc;
	if ((r.flags & KVC_REC_TOMBSTONE) && !(flags & KVC_GET_TOMBSTONES))
		return -ENOENT;
	if (!(r.flags & KVC_REC_TOMBSTONE) && !(flags & KVC_GET_EXPIRED) &&
	    kvc_record_expired(&r, txn->now_ns))
		return -ENOENT;
	rc = kvc_rec_publish_txn(txn, &r, flags);
	if (!rc)
		*ret_rec = r;
	return rc;
}

/* ---------------------------------------------------------------- writes */

/* The latest mtime or ctime a record written at @now_ns may hold. */
static int64_t time_limit(int64_t now_ns)
{
	const int64_t ahead = KVC_TIME_AHEAD_MAX_S * 1000000000;
	return now_ns > INT64_MAX - ahead ? INT64_MAX : now_ns + ahead;
}

static int64_t time_clamp(int64_t ns, int64_t now_ns)
{
	int64_t hi = time_limit(now_ns);
	return ns < 0 ? 0 : ns > hi ? hi : ns;
}

static int validate_write(kvc_txn *txn, const struct kvc_write *w, char *meta_buf,
			  size_t *ret_meta_len)
{
	uint32_t min_ttl = txn->store->min_ttl;
	if ((w->set & KVC_SET_VALUE) && w->value_len > KVC_VALUE_MAX)
		return kvc_set_errmsg(txn, -EFBIG, "Value length of %zu exceeds limit of %u.",
				      w->value_len, KVC_VALUE_MAX);
	if ((w->set & KVC_SET_METADATA) && w->metadata) {
		/* The limit applies to the compact form: compact all of it to
		 * tell how long it is, then keep it if it fits. */
		char *buf = meta_buf;
		if (w->metadata_len > KVC_METADATA_MAX) {
			buf = malloc(w->metadata_len + 1);
			if (!buf)
				return -ENOMEM;
		}
		int n = kvc_json_compact(w->metadata, w->metadata_len, buf, w->metadata_len + 1);
		if (n > (int)KVC_METADATA_MAX)
			kvc_set_errmsg(txn, -E2BIG, "Metadata length of %d exceeds limit of %u.", n,
				       KVC_METADATA_MAX);
		else if (n >= 0 && buf != meta_buf)
			memcpy(meta_buf, buf, (size_t)n + 1);
		if (buf != meta_buf)
			free(buf);
		if (n > (int)KVC_METADATA_MAX)
			return -E2BIG;
		if (n < 0)
			return kvc_set_errmsg(txn, -EINVAL, "Metadata is not valid JSON.");
		*ret_meta_len = (size_t)n;
	}
	if ((w->set & KVC_SET_TTL) && w->ttl && w->ttl < min_ttl)
		return kvc_set_errmsg(txn, -EINVAL,
				      "Invalid expiration_ttl of %u. Expiration TTL must be at least %u.",
				      w->ttl, min_ttl);
	if ((w->set & KVC_SET_EXPIRATION) && w->expiration &&
	    w->expiration < txn->now_ns / 1000000000 + (int64_t)min_ttl)
		return kvc_set_errmsg(txn, -EINVAL,
				      "Invalid expiration of %lld. Expiration times must be at least %u seconds in the future.",
				      (long long)w->expiration, min_ttl);
	if ((w->set & KVC_SET_MODE) && (w->mode & ~07777u))
		return kvc_set_errmsg(txn, -EINVAL, "invalid mode %o", w->mode);
	return 0;
}

/* Stamp @rec as a fresh local change and store it over @old. */
static int commit_local(kvc_txn *txn, const void *key, size_t key_len,
			const struct kvc_record *old, struct kvc_record *rec)
{
	int rc = hlc_stamp(txn, &rec->hlc);
	if (!rc)
		rc = next_seq(txn, &rec->seq);
	if (rc)
		return rc;
	rec->origin = txn->store->id.node_id;
	return kvc_rec_store(txn, key, key_len, old, rec);
}

/*
 * Compose the record a write makes: @live is the key's live record or NULL.
 * Kept fields of @live point into pages the write may rewrite, so kept
 * metadata is copied into @meta and a kept value into *ret_kept (the
 * caller frees it).
 */
static int compose(kvc_txn *txn, const struct kvc_write *w, const struct kvc_record *live,
		   char *meta, size_t meta_len, struct kvc_record *rec, void **ret_kept)
{
	int64_t now = txn->now_ns;
	*ret_kept = NULL;
	if (live) {
		*rec = *live;
		if (!(w->set & KVC_SET_METADATA) && rec->metadata_len) {
			memcpy(meta, rec->metadata, rec->metadata_len);
			meta_len = rec->metadata_len;
		}
		if (!(w->set & KVC_SET_VALUE) && rec->value_len) {
			void *kept = malloc(rec->value_len);
			if (!kept)
				return -ENOMEM;
			memcpy(kept, rec->value, rec->value_len);
			rec->value = kept;
			*ret_kept = kept;
		}
	} else {
		memset(rec, 0, sizeof(*rec));
		rec->mtime_ns = now;
		rec->value = "";
		int rc = next_ino(txn, &rec->ino);
		if (rc)
			return rc;
	}
	rec->metadata = meta_len ? meta : NULL;
	rec->metadata_len = meta_len;
	bool rearm = !live;
	if (w->set & KVC_SET_VALUE) {
		rec->flags &= ~KVC_REC_CHUNKED;
		rec->value = w->value_len ? w->value : "";
		rec->value_len = w->value_len;
		rec->mtime_ns = now;
		rearm = true;
	}
	if (w->set & KVC_SET_MTIME) {
		rec->mtime_ns = w->mtime_ns;
		rearm = true;
	}
	if (w->set & KVC_SET_MODE) {
		rec->mode = w->mode;
		rec->flags |= KVC_REC_HAS_MODE;
	}
	if (w->set & KVC_SET_OWNER) {
		if (!(rec->flags & KVC_REC_HAS_OWNER))
			rec->uid = rec->gid = 0;
		if (w->uid != UINT32_MAX)
			rec->uid = w->uid;
		if (w->gid != UINT32_MAX)
			rec->gid = w->gid;
		rec->flags |= KVC_REC_HAS_OWNER;
	}
	if (w->set & KVC_SET_EXPIRATION) {
		rec->expiration = w->expiration;
		rec->ttl = 0;
	}
	if (w->set & KVC_SET_TTL) {
		rec->ttl = w->ttl;
		if (!w->ttl)
			rec->expiration = 0;
		rearm = true;
	}
	/* Times out of range (touch -d @9223372036, or a date before 1970)
	 * are clamped, kept ones too: every record written is then one a
	 * peer's kvc_apply accepts, and a ttl's expiration stays positive. */
	int64_t mtime = time_clamp(rec->mtime_ns, now);
	rearm = rearm || mtime != rec->mtime_ns;
	rec->mtime_ns = mtime;
	if (rec->ttl && rearm)
		rec->expiration = kvc_ceil_sec(rec->mtime_ns) + rec->ttl;
	rec->ctime_ns = time_clamp((w->set & KVC_SET_CTIME) ? w->ctime_ns : now, now);
	return 0;
}

/*
 * The fast path of a write to a key that is not stored yet: one B-tree
 * search instead of a lookup and a put.  @return 1 (written), 0 (the key
 * is stored: its raw record is in *ret_old), or -errno.
 */
static int try_insert(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_write *w,
		      char *meta, size_t meta_len, struct kvc_record *ret_old)
{
	struct kvc_record rec;
	void *kept;
	int rc = meta_load(txn);
	if (rc)
		return rc;
	uint64_t seq = txn->seq, hlc = txn->hlc, ino = txn->ino;
	bool dirty = txn->meta_dirty;
	rc = compose(txn, w, NULL, meta, meta_len, &rec, &kept);
	if (rc)
		return rc;
	if ((rc = hlc_stamp(txn, &rec.hlc)) || (rc = next_seq(txn, &rec.seq)))
		return rc;
	rec.origin = txn->store->id.node_id;
	MDB_val k = {key_len, (void *)key}, d = {rec_encoded_len(&rec), NULL};
	rc = mdb_put(txn->mdb, txn->store->rec, &k, &d, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc == MDB_KEYEXIST) {
		/* Not a new key after all: give the numbers back. */
		txn->seq = seq;
		txn->hlc = hlc;
		txn->ino = ino;
		txn->meta_dirty = dirty;
		return kvc_rec_decode(d.mv_data, d.mv_size, ret_old);
	}
	if (rc)
		return kvc_lmdb_err(txn, rc);
	rec_encode(&rec, d.mv_data);
	rc = indexes_add(txn, key, key_len, &rec, false);
	return rc ? rc : 1;
}

int kvc_write(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_write *w)
{
	if (!txn || !w)
		return -EINVAL;
	if (!txn->write)
		return -EBADF;
	txn->errmsg[0] = 0;
	int rc = key_check(txn, key, key_len);
	if (rc)
		return rc;
	char meta[KVC_METADATA_MAX + 1];
	size_t meta_len = 0;
	rc = validate_write(txn, w, meta, &meta_len);
	if (rc)
		return rc;
	if (txn->low_space)
		return kvc_space_refuse(txn);

	struct kvc_record old, rec;
	if (!(w->set & (KVC_MUST_EXIST | KVC_IF_INO)) &&
	    !((w->set & KVC_SET_VALUE) && w->value_len >= KVC_CHUNKED_MIN) &&
	    !is_bucket_key(stored_key(key, key_len).mv_size)) {
		rc = try_insert(txn, key, key_len, w, meta, meta_len, &old);
		if (rc)
			return rc < 0 ? rc : 0;
	} else {
		rc = kvc_rec_lookup(txn, key, key_len, &old);
		if (rc && rc != -ENOENT)
			return rc;
	}
	bool have_old = rc == 0;
	bool live = have_old && kvc_rec_live(&old, txn->now_ns);
	if ((w->set & KVC_CREATE) && live)
		return kvc_set_errmsg(txn, -EEXIST, "key exists");
	if ((w->set & KVC_MUST_EXIST) && !live)
		return kvc_set_errmsg(txn, -ENOENT, "key not found");
	if ((w->set & KVC_IF_INO) && (!live || old.ino != w->ino))
		return kvc_set_errmsg(txn, -ESTALE, "key was removed or replaced");
	void *kept;
	rc = compose(txn, w, live ? &old : NULL, meta, meta_len, &rec, &kept);
	/* The writer's promise holds only against the version it names. */
	txn->same_outside = live && (w->set & KVC_SET_VALUE) && (w->set & KVC_VALUE_SINCE) &&
			    old.seq == w->base_seq && w->changed_lo <= w->changed_hi;
	txn->same_lo = w->changed_lo;
	txn->same_hi = w->changed_hi;
	if (!rc)
		rc = commit_local(txn, key, key_len, have_old ? &old : NULL, &rec);
	txn->same_outside = false;
	free(kept);
	return rc;
}

int kvc_delete(kvc_txn *txn, const void *key, size_t key_len)
{
	if (!txn)
		return -EINVAL;
	if (!txn->write)
		return -EBADF;
	txn->errmsg[0] = 0;
	int rc = key_check(txn, key, key_len);
	if (rc)
		return rc;
	struct kvc_record old;
	rc = kvc_rec_lookup(txn, key, key_len, &old);
	if (rc)
		return rc;
	if (!kvc_rec_live(&old, txn->now_ns))
		return -ENOENT;
	struct kvc_record tomb = {
		.flags = KVC_REC_TOMBSTONE,
		.value = "",
		.mtime_ns = txn->now_ns,
		.ctime_ns = txn->now_ns,
	};
	return commit_local(txn, key, key_len, &old, &tomb);
}

int kvc_rename(kvc_txn *txn, const void *from, size_t from_len, const void *to,
	       size_t to_len, bool noreplace)
{
	if (!txn)
		return -EINVAL;
	if (!txn->write)
		return -EBADF;
	txn->errmsg[0] = 0;
	int rc = key_check(txn, from, from_len);
	if (!rc)
		rc = key_check(txn, to, to_len);
	if (rc)
		return rc;
	if (txn->low_space)
		return kvc_space_refuse(txn);
	struct kvc_record src, dst;
	rc = kvc_rec_lookup(txn, from, from_len, &src);
	if (rc)
		return rc;
	if (!kvc_rec_live(&src, txn->now_ns))
		return -ENOENT;
	if (from_len == to_len && memcmp(from, to, from_len) == 0)
		return 0;
	rc = kvc_rec_lookup(txn, to, to_len, &dst);
	if (rc && rc != -ENOENT)
		return rc;
	bool have_dst = rc == 0;
	if (have_dst && noreplace && kvc_rec_live(&dst, txn->now_ns))
		return -EEXIST;

	/* The source's bytes live in pages the writes below may move. */
	size_t n = src.metadata_len + src.value_len;
	char *copy = malloc(n ? n : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, src.metadata ? src.metadata : "", src.metadata_len);
	memcpy(copy + src.metadata_len, src.value, src.value_len);
	struct kvc_record moved = src;
	moved.metadata = src.metadata_len ? copy : NULL;
	moved.value = copy + src.metadata_len;
	moved.ctime_ns = txn->now_ns;

	rc = commit_local(txn, to, to_len, have_dst ? &dst : NULL, &moved);
	if (!rc) {
		/* Re-read: the first write may have moved the source's pages. */
		rc = kvc_rec_lookup(txn, from, from_len, &src);
		struct kvc_record tomb = {
			.flags = KVC_REC_TOMBSTONE,
			.value = "",
			.mtime_ns = txn->now_ns,
			.ctime_ns = txn->now_ns,
		};
		/* Its chunks are the destination's now: not released. */
		src.flags &= ~KVC_REC_CHUNKED;
		if (!rc)
			rc = commit_local(txn, from, from_len, &src, &tomb);
	}
	free(copy);
	return rc;
}

struct moved_key {
	size_t len;
	unsigned char key[KVC_KEY_MAX];
};

int kvc_rename_prefix(kvc_txn *txn, const void *from, size_t from_len, const void *to,
		      size_t to_len, uint64_t *ret_moved)
{
	if (!txn)
		return -EINVAL;
	if (!txn->write)
		return -EBADF;
	txn->errmsg[0] = 0;
	if (txn->low_space)
		return kvc_space_refuse(txn);
	/* Collect first: renaming while a cursor walks the keys would move
	 * pages under it. */
	struct moved_key *keys = NULL;
	size_t n = 0, cap = 0;
	kvc_cursor *c;
	int rc = kvc_cursor_open(txn, KVC_GET_NO_VALUE, &c);
	if (rc)
		return rc;
	const void *k;
	size_t kn;
	for (rc = kvc_cursor_seek(c, from, from_len, &k, &kn, NULL); !rc;
	     rc = kvc_cursor_next(c, &k, &kn, NULL)) {
		if (kn < from_len || (from_len && memcmp(k, from, from_len) != 0))
			break;
		size_t new_len = kn - from_len + to_len;
		if (new_len > KVC_KEY_MAX) {
			rc = kvc_set_errmsg(txn, -ENAMETOOLONG,
					    "UTF-8 encoded length of %zu exceeds key length limit of %u.",
					    new_len, KVC_KEY_MAX);
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			void *p = realloc(keys, cap * sizeof(*keys));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			keys = p;
		}
		if (to_len)
			memcpy(keys[n].key, to, to_len);
		memcpy(keys[n].key + to_len, (const unsigned char *)k + from_len, kn - from_len);
		keys[n].len = new_len;
		rc = key_check(txn, keys[n].key, new_len);
		if (rc)
			break;
		n++;
	}
	kvc_cursor_close(c);
	if (rc == -ENOENT)
		rc = 0;
	if (!rc && n == 0)
		rc = -ENOENT;
	unsigned char old_key[KVC_KEY_MAX];
	for (size_t i = 0; !rc && i < n; i++) {
		size_t old_len = keys[i].len - to_len + from_len;
		if (from_len)
			memcpy(old_key, from, from_len);
		memcpy(old_key + from_len, keys[i].key + to_len, keys[i].len - to_len);
		rc = kvc_rename(txn, old_key, old_len, keys[i].key, keys[i].len, false);
	}
	free(keys);
	if (!rc && ret_moved)
		*ret_moved = n;
	return rc;
}

/* --------------------------------------------------------------- cursors */

struct kvc_cursor {
	kvc_txn *txn;
	MDB_cursor *mc;
	MDB_val k, d;          /* the current stored key and its data */
	size_t bucket_off;     /* next entry offset when d is a bucket */
	bool valid;
	unsigned char key[KVC_KEY_MAX]; /* the current full key */
	size_t key_len;
	unsigned flags;        /* KVC_GET_NO_VALUE or 0 */
	void *value;           /* the current chunked value, read whole */
	size_t value_cap;
};

int kvc_cursor_open(kvc_txn *txn, unsigned flags, kvc_cursor **ret_cur)
{
	if (flags & ~(unsigned)KVC_GET_NO_VALUE)
		return -EINVAL;
	kvc_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int rc = mdb_cursor_open(txn->mdb, txn->store->rec, &c->mc);
	if (rc) {
		free(c);
		return kvc_lmdb_err(txn, rc);
	}
	c->txn = txn;
	c->flags = flags;
	*ret_cur = c;
	return 0;
}

void kvc_cursor_close(kvc_cursor *cur)
{
	if (!cur)
		return;
	mdb_cursor_close(cur->mc);
	free(cur->value);
	free(cur);
}

/*
 * Produce the entry at the current position (any kind), stepping through
 * buckets.  @return 0 (entry in cur->key and *rec), -ENOENT at the end.
 */
static int cur_entry(kvc_cursor *c, struct kvc_record *rec, int *decode_err)
{
	for (;;) {
		if (!c->valid)
			return -ENOENT;
		*decode_err = 0;
		if (!is_bucket_key(c->k.mv_size)) {
			if (c->bucket_off == 0) {
				c->bucket_off = 1; /* consumed */
				memcpy(c->key, c->k.mv_data, c->k.mv_size);
				c->key_len = c->k.mv_size;
				*decode_err = kvc_rec_decode(c->d.mv_data, c->d.mv_size, rec);
				return 0;
			}
		} else {
			struct bucket_ent e;
			int rc = bucket_next(&c->d, &c->bucket_off, &e);
			if (rc == 1) {
				memcpy(c->key, c->k.mv_data, KVC_STORED_KEY_MAX);
				c->key_len = KVC_STORED_KEY_MAX;
				if (e.tail_len)
					c->key[c->key_len++] = (unsigned char)e.tail;
				*decode_err = kvc_rec_decode(e.rec, e.rec_len, rec);
				return 0;
			}
			if (rc < 0) {
				*decode_err = rc;
				memcpy(c->key, c->k.mv_data, KVC_STORED_KEY_MAX);
				c->key_len = KVC_STORED_KEY_MAX;
				c->bucket_off = c->d.mv_size;
				return 0;
			}
		}
		int rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_NEXT);
		c->bucket_off = 0;
		if (rc) {
			c->valid = false;
			return rc == MDB_NOTFOUND ? -ENOENT : kvc_lmdb_err(c->txn, rc);
		}
	}
}

static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	size_t m = an < bn ? an : bn;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

static int cur_next_live(kvc_cursor *c, const void **ret_key, size_t *ret_key_len,
			 struct kvc_record *ret_rec)
{
	struct kvc_record r;
	int derr, rc;
	while ((rc = cur_entry(c, &r, &derr)) == 0) {
		if (derr)
			continue; /* undecodable: invisible; kvc_check reports it */
		if (!kvc_rec_live(&r, c->txn->now_ns))
			continue;
		if (ret_rec) {
			rc = kvc_rec_publish(c->txn, &r, c->flags, &c->value, &c->value_cap);
			if (rc)
				return rc;
		}
		*ret_key = c->key;
		*ret_key_len = c->key_len;
		if (ret_rec)
			*ret_rec = r;
		return 0;
	}
	return rc;
}

int kvc_cursor_seek(kvc_cursor *c, const void *key, size_t key_len, const void **ret_key,
		    size_t *ret_key_len, struct kvc_record *ret_rec)
{
	MDB_val k = stored_key(key, key_len);
	int rc;
	if (k.mv_size == 0)
		rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_FIRST);
	else {
		c->k = k;
		rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_SET_RANGE);
	}
	c->bucket_off = 0;
	c->valid = rc == 0;
	if (rc && rc != MDB_NOTFOUND)
		return kvc_lmdb_err(c->txn, rc);
	struct kvc_record r;
	const void *fk = NULL;
	size_t fkn = 0;
	while ((rc = cur_next_live(c, &fk, &fkn, &r)) == 0) {
		if (key_cmp(fk, fkn, key, key_len) >= 0)
			break;
	}
	if (rc)
		return rc;
	*ret_key = fk;
	*ret_key_len = fkn;
	if (ret_rec)
		*ret_rec = r;
	return 0;
}

int kvc_cursor_next(kvc_cursor *c, const void **ret_key, size_t *ret_key_len,
		    struct kvc_record *ret_rec)
{
	return cur_next_live(c, ret_key, ret_key_len, ret_rec);
}

int kvc_rec_scan(kvc_txn *txn,
		 int (*fn)(void *arg, const void *key, size_t key_len,
			   const struct kvc_record *rec, int decode_err),
		 void *arg)
{
	kvc_cursor *c;
	int rc = kvc_cursor_open(txn, 0, &c);
	if (rc)
		return rc;
	rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_FIRST);
	c->valid = rc == 0;
	rc = rc == MDB_NOTFOUND ? 0 : kvc_lmdb_err(txn, rc);
	struct kvc_record r;
	int derr;
	while (!rc && (rc = cur_entry(c, &r, &derr)) == 0)
		rc = fn(arg, c->key, c->key_len, &r, derr);
	kvc_cursor_close(c);
	return rc == -ENOENT ? 0 : rc;
}

int kvc_scan(kvc_txn *txn, const void *lo, size_t lo_len, const void *hi, size_t hi_len,
	     int (*fn)(void *arg, const void *key, size_t key_len, const struct kvc_record *rec),
	     void *arg)
{
	kvc_cursor *c;
	int rc = kvc_cursor_open(txn, 0, &c);
	if (rc)
		return rc;
	MDB_val k = stored_key(lo, lo_len);
	if (k.mv_size == 0) {
		rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_FIRST);
	} else {
		c->k = k;
		rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_SET_RANGE);
	}
	c->valid = rc == 0;
	rc = rc == MDB_NOTFOUND ? 0 : kvc_lmdb_err(txn, rc);
	struct kvc_record r;
	int derr;
	while (!rc && (rc = cur_entry(c, &r, &derr)) == 0) {
		if (derr) {
			rc = derr;
			break;
		}
		if (key_cmp(c->key, c->key_len, lo, lo_len) < 0)
			continue;
		if (hi && key_cmp(c->key, c->key_len, hi, hi_len) >= 0)
			break;
		rc = kvc_rec_publish(txn, &r, 0, &c->value, &c->value_cap);
		if (!rc)
			rc = fn(arg, c->key, c->key_len, &r);
	}
	kvc_cursor_close(c);
	return rc == -ENOENT ? 0 : rc;
}

/* ------------------------------------------------------------------ list */

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* A cursor is "1" followed by the base64url of the last key returned. */
static void cursor_encode(const unsigned char *key, size_t n, char *out)
{
	char *w = out;
	*w++ = '1';
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)key[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)key[i + 1] << 8;
		if (i + 2 < n)
			v |= key[i + 2];
		*w++ = b64url[v >> 18 & 63];
		*w++ = b64url[v >> 12 & 63];
		if (i + 1 < n)
			*w++ = b64url[v >> 6 & 63];
		if (i + 2 < n)
			*w++ = b64url[v & 63];
	}
	*w = 0;
}

static int cursor_decode(const char *s, unsigned char *out, size_t *ret_len)
{
	size_t n = strlen(s), len = 0;
	if (n < 2 || s[0] != '1' || n - 1 > (KVC_KEY_MAX * 4 + 2) / 3 || (n - 1) % 4 == 1)
		return -EINVAL;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 1; i < n; i++) {
		const char *p = memchr(b64url, s[i], 64);
		if (!p || !s[i])
			return -EINVAL;
		acc = acc << 6 | (uint32_t)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (len == KVC_KEY_MAX)
				return -EINVAL;
			out[len++] = (unsigned char)(acc >> bits);
		}
	}
	if (acc & ((1u << bits) - 1))
		return -EINVAL; /* non-canonical trailing bits */
	*ret_len = len;
	return 0;
}

int kvc_list(kvc_txn *txn, const void *prefix, size_t prefix_len, const char *cursor,
	     unsigned limit,
	     int (*fn)(void *arg, const void *key, size_t key_len, const struct kvc_record *rec),
	     void *arg, char *ret_next)
{
	if (limit > KVC_LIST_LIMIT_MAX)
		return kvc_set_errmsg(txn, -EINVAL,
				      "Invalid limit of %u. Please specify an integer between 1 and %u.",
				      limit, KVC_LIST_LIMIT_MAX);
	if (limit == 0)
		limit = KVC_LIST_LIMIT_MAX;
	unsigned char start[KVC_KEY_MAX];
	size_t start_len = 0;
	bool after = false;
	if (cursor && *cursor) {
		if (cursor_decode(cursor, start, &start_len))
			return kvc_set_errmsg(txn, -EINVAL, "Invalid cursor.");
		after = true;
	}
	if (!after || key_cmp(start, start_len, prefix, prefix_len) < 0) {
		start_len = prefix_len < KVC_KEY_MAX ? prefix_len : KVC_KEY_MAX;
		if (start_len)
			memcpy(start, prefix, start_len);
		after = false;
	}
	kvc_cursor *c;
	int rc = kvc_cursor_open(txn, KVC_GET_NO_VALUE, &c);
	if (rc)
		return rc;
	const void *k;
	size_t kn;
	struct kvc_record r;
	unsigned n = 0;
	ret_next[0] = 0;
	rc = kvc_cursor_seek(c, start, start_len, &k, &kn, &r);
	if (!rc && after && key_cmp(k, kn, start, start_len) == 0)
		rc = kvc_cursor_next(c, &k, &kn, &r);
	while (!rc) {
		if (kn < prefix_len || (prefix_len && memcmp(k, prefix, prefix_len) != 0))
			break;
		if (n == limit) {
			/* More remain: resume after the last key returned. */
			cursor_encode(start, start_len, ret_next);
			break;
		}
		rc = fn(arg, k, kn, &r);
		if (rc)
			break;
		memcpy(start, k, kn);
		start_len = kn;
		n++;
		rc = kvc_cursor_next(c, &k, &kn, &r);
	}
	kvc_cursor_close(c);
	return rc == -ENOENT ? 0 : rc;
}

/* ----------------------------------------------------------- replication */

int kvc_feed_head(kvc_txn *txn, uint64_t *ret_seq)
{
	if (txn->write) {
		int rc = meta_load(txn);
		if (!rc)
			*ret_seq = txn->seq;
		return rc;
	}
	int rc = kvc_meta_get_u64(txn, "seq", ret_seq);
	if (rc == -ENOENT) {
		*ret_seq = 0;
		rc = 0;
	}
	return rc;
}

int kvc_feed_next(kvc_txn *txn, uint64_t after, unsigned flags, const void **ret_key,
		  size_t *ret_key_len, struct kvc_record *ret_rec)
{
	if (flags & ~(unsigned)KVC_GET_NO_VALUE)
		return -EINVAL;
	MDB_cursor *mc;
	int rc = mdb_cursor_open(txn->mdb, txn->store->feed, &mc);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	unsigned char kb[8];
	if (after == UINT64_MAX) {
		mdb_cursor_close(mc);
		return -ENOENT;
	}
	kvc_put_be64(kb, after + 1);
	MDB_val k = {8, kb}, d;
	rc = mdb_cursor_get(mc, &k, &d, MDB_SET_RANGE);
	mdb_cursor_close(mc);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	struct kvc_record r;
	rc = kvc_rec_lookup(txn, d.mv_data, d.mv_size, &r);
	if (rc == -ENOENT)
		rc = -EIO; /* a feed entry without its record */
	if (!rc)
		rc = kvc_rec_publish_txn(txn, &r, flags);
	if (rc)
		return rc;
	*ret_key = d.mv_data;
	*ret_key_len = d.mv_size;
	*ret_rec = r;
	return 0;
}

int kvc_version_cmp(uint64_t hlc_a, uint64_t origin_a, uint64_t hlc_b, uint64_t origin_b)
{
	if (hlc_a != hlc_b)
		return hlc_a < hlc_b ? -1 : 1;
	if (origin_a != origin_b)
		return origin_a < origin_b ? -1 : 1;
	return 0;
}

/* The last-writer-wins rule: does a peer's @rec replace @mine (NULL: absent)? */
static bool peer_wins(kvc_txn *txn, const struct kvc_record *mine, const struct kvc_record *rec)
{
	if (mine)
		return kvc_version_cmp(rec->hlc, rec->origin, mine->hlc, mine->origin) > 0;
	/* Nothing here: a write that has already expired would be invisible
	 * at once; only a tombstone is worth keeping. */
	return (rec->flags & KVC_REC_TOMBSTONE) || !kvc_record_expired(rec, txn->now_ns);
}

/* Refuse a record stamped more than @max_skew_ms ahead of the local clock
 * (0: no bound).  Compared as a distance, so no bound overflows. */
static int skew_check(kvc_txn *txn, const struct kvc_record *rec, uint64_t max_skew_ms)
{
	uint64_t now_ms = (uint64_t)(kvc_now_ns() / 1000000), at_ms = rec->hlc >> 16;

	if (max_skew_ms && at_ms > now_ms && at_ms - now_ms > max_skew_ms)
		return kvc_set_errmsg(txn, -ERANGE, "record clock is %llu ms ahead of the local clock",
				      (unsigned long long)(at_ms - now_ms));
	return 0;
}

/*
 * Refuse a peer's record whose fields disagree with each other or with any
 * clock.  The bound on times follows the record's own clock (which the
 * skew check holds to the local one): a record a store wrote itself always
 * passes, because its clock was at least the wall clock when compose()
 * clamped its times.
 */
static int times_check(kvc_txn *txn, const struct kvc_record *rec)
{
	uint64_t at_ms = rec->hlc >> 16;
	if (at_ms > KVC_HLC_MS_MAX)
		return kvc_set_errmsg(txn, -EINVAL,
				      "record clock of %llu ms is beyond any real clock",
				      (unsigned long long)at_ms);
	/* Whole milliseconds of the clock, rounded up: the write that made
	 * the record clamped against a time within that millisecond. */
	int64_t hi = at_ms >= KVC_HLC_MS_MAX ? INT64_MAX
					     : time_limit((int64_t)(at_ms + 1) * 1000000);
	if (rec->mtime_ns < 0 || rec->mtime_ns > hi)
		return kvc_set_errmsg(txn, -EINVAL,
				      "record mtime of %lld ns is outside 1970 .. its clock + %lld s",
				      (long long)rec->mtime_ns, (long long)KVC_TIME_AHEAD_MAX_S);
	if (rec->ctime_ns < 0 || rec->ctime_ns > hi)
		return kvc_set_errmsg(txn, -EINVAL,
				      "record ctime of %lld ns is outside 1970 .. its clock + %lld s",
				      (long long)rec->ctime_ns, (long long)KVC_TIME_AHEAD_MAX_S);
	if (rec->flags & KVC_REC_TOMBSTONE)
		return 0; /* its expiry is dropped */
	if (rec->expiration < 0)
		return kvc_set_errmsg(txn, -EINVAL, "record expiration of %lld is negative",
				      (long long)rec->expiration);
	if (rec->ttl && rec->expiration != kvc_ceil_sec(rec->mtime_ns) + rec->ttl)
		return kvc_set_errmsg(txn, -EINVAL,
				      "record expiration of %lld is not its mtime + ttl of %u",
				      (long long)rec->expiration, rec->ttl);
	return 0;
}

/* Everything kvc_apply and kvc_apply_would refuse, in one place. */
static int apply_check(kvc_txn *txn, const void *key, size_t key_len,
		       const struct kvc_record *rec, uint64_t max_skew_ms)
{
	int rc = key_check(txn, key, key_len);
	if (rc)
		return rc;
	if (rec->value_len > KVC_VALUE_MAX)
		return kvc_set_errmsg(txn, -EFBIG, "Value length of %zu exceeds limit of %u.",
				      rec->value_len, KVC_VALUE_MAX);
	if (rec->flags & ~(uint32_t)(KVC_REC_TOMBSTONE | KVC_REC_HAS_MODE | KVC_REC_HAS_OWNER))
		return kvc_set_errmsg(txn, -EINVAL, "unknown record flags");
	char meta[KVC_METADATA_MAX + 1];
	if (rec->metadata_len) {
		int n = kvc_json_compact(rec->metadata, rec->metadata_len, meta, sizeof(meta));
		if (n < 0 || (size_t)n != rec->metadata_len ||
		    memcmp(meta, rec->metadata, rec->metadata_len))
			return kvc_set_errmsg(txn, n == -E2BIG ? -E2BIG : -EINVAL,
					      "record metadata is not compact JSON");
	}
	if (rec->mode & ~07777u)
		return kvc_set_errmsg(txn, -EINVAL, "invalid mode %o", rec->mode);
	if (rec->hlc == 0 || rec->origin == 0)
		return kvc_set_errmsg(txn, -EINVAL, "record without a clock or origin");
	rc = times_check(txn, rec);
	if (!rc)
		rc = skew_check(txn, rec, max_skew_ms);
	return rc;
}

int kvc_apply_would(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_record *rec,
		    uint64_t max_skew_ms)
{
	if (!txn || !rec)
		return -EINVAL;
	txn->errmsg[0] = 0;
	int rc = apply_check(txn, key, key_len, rec, max_skew_ms);
	if (rc)
		return rc;
	struct kvc_record mine;
	rc = kvc_rec_lookup(txn, key, key_len, &mine);
	if (rc && rc != -ENOENT)
		return rc;
	return peer_wins(txn, rc == 0 ? &mine : NULL, rec) ? 1 : 0;
}

int kvc_apply(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_record *rec,
	      uint64_t max_skew_ms)
{
	if (!txn || !rec)
		return -EINVAL;
	if (!txn->write)
		return -EBADF;
	txn->errmsg[0] = 0;
	int rc = apply_check(txn, key, key_len, rec, max_skew_ms);
	if (rc)
		return rc;
	bool tomb = rec->flags & KVC_REC_TOMBSTONE;
	if (txn->low_space && !tomb)
		return kvc_space_refuse(txn);
	rc = meta_load(txn);
	if (rc)
		return rc;
	if (rec->hlc > txn->hlc) {
		txn->hlc = rec->hlc;
		txn->meta_dirty = true;
	}

	struct kvc_record old;
	rc = kvc_rec_lookup(txn, key, key_len, &old);
	if (rc && rc != -ENOENT)
		return rc;
	bool have_old = rc == 0;
	if (!peer_wins(txn, have_old ? &old : NULL, rec))
		return 0;
	struct kvc_record in = *rec;
	if (tomb) {
		in.value = "";
		in.value_len = 0;
		in.metadata = NULL;
		in.metadata_len = 0;
		in.expiration = 0;
		in.ttl = 0;
		in.ino = 0;
	} else if (have_old && kvc_rec_live(&old, txn->now_ns) && old.ino) {
		in.ino = old.ino; /* the same key, changed elsewhere: the same file */
	} else {
		rc = next_ino(txn, &in.ino);
		if (rc)
			return rc;
	}
	rc = next_seq(txn, &in.seq);
	if (rc)
		return rc;
	rc = kvc_rec_store(txn, key, key_len, have_old ? &old : NULL, &in);
	return rc ? rc : 1;
}

static void watermark_key(unsigned char *kb, uint64_t node, uint64_t epoch)
{
	memcpy(kb, "wm:", 3);
	kvc_put_be64(kb + 3, node);
	kvc_put_be64(kb + 11, epoch);
}

int kvc_watermark_get(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch, uint64_t *ret_seq)
{
	unsigned char kb[19];
	watermark_key(kb, peer_node, peer_epoch);
	MDB_val k = {sizeof(kb), kb}, d;
	int rc = mdb_get(txn->mdb, txn->store->meta, &k, &d);
	if (rc == MDB_NOTFOUND) {
		*ret_seq = 0;
		return 0;
	}
	if (rc)
		return kvc_lmdb_err(txn, rc);
	if (d.mv_size != 8)
		return -EIO;
	*ret_seq = get_le64(d.mv_data);
	return 0;
}

int kvc_watermark_set(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch, uint64_t seq)
{
	if (!txn->write)
		return -EBADF;
	unsigned char kb[19], vb[8];
	watermark_key(kb, peer_node, peer_epoch);
	put_le64(vb, seq);
	MDB_val k = {sizeof(kb), kb}, d = {8, vb};
	return kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->meta, &k, &d, 0));
}

int kvc_watermark_each(kvc_txn *txn,
		       int (*fn)(void *arg, uint64_t peer_node, uint64_t peer_epoch, uint64_t seq),
		       void *arg)
{
	if (!txn || !fn)
		return -EINVAL;
	MDB_cursor *mc;
	int rc = mdb_cursor_open(txn->mdb, txn->store->meta, &mc);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	MDB_val k = {3, "wm:"}, d;
	int mrc = mdb_cursor_get(mc, &k, &d, MDB_SET_RANGE);
	rc = 0;
	while (!rc && mrc == 0 && k.mv_size >= 3 && memcmp(k.mv_data, "wm:", 3) == 0) {
		const unsigned char *kb = k.mv_data;
		if (k.mv_size != 19 || d.mv_size != 8)
			rc = -EIO;
		else
			rc = fn(arg, kvc_get_be64(kb + 3), kvc_get_be64(kb + 11), get_le64(d.mv_data));
		if (!rc)
			mrc = mdb_cursor_get(mc, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(mc);
	if (!rc && mrc && mrc != MDB_NOTFOUND)
		rc = kvc_lmdb_err(txn, mrc);
	return rc;
}

int kvc_gc_horizon(kvc_txn *txn, uint64_t *ret_seq)
{
	int rc = kvc_meta_get_u64(txn, "gc_horizon", ret_seq);
	if (rc == -ENOENT) {
		*ret_seq = 0;
		rc = 0;
	}
	return rc;
}
