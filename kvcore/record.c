/*
 * record: a key's record in the store.  Encoding and decoding records,
 * the buckets that hold the keys of 511 and 512 bytes (see internal.h),
 * lookup by key (kvc_rec_lookup, and kvc_get for callers), storing a
 * record with its feed, expiry and tombstone index entries kept in step
 * (kvc_rec_store), the meta database and the counters and clock a write
 * transaction hands out, and the format 1 upgrade that rewrites every
 * record.  Every module that reads or writes records goes through here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

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
	size_t mlen = kvc_get_le16(p + 2);
	if (hdr + mlen > len)
		return -EIO;
	ret->flags = p[1];
	ret->ttl = kvc_get_le32(p + 4);
	ret->mode = kvc_get_le32(p + 8);
	ret->uid = kvc_get_le32(p + 12);
	ret->gid = kvc_get_le32(p + 16);
	ret->expiration = (int64_t)kvc_get_le64(p + 24);
	ret->mtime_ns = (int64_t)kvc_get_le64(p + 32);
	ret->ctime_ns = (int64_t)kvc_get_le64(p + 40);
	ret->hlc = kvc_get_le64(p + 48);
	ret->origin = kvc_get_le64(p + 56);
	ret->seq = kvc_get_le64(p + 64);
	ret->ino = hdr == KVC_REC_HDR ? kvc_get_le64(p + 72) : 0;
	ret->metadata = mlen ? (const char *)p + hdr : NULL;
	ret->metadata_len = mlen;
	ret->value = p + hdr + mlen;
	ret->value_len = len - hdr - mlen;
	return 0;
}

void kvc_rec_encode(const struct kvc_record *rec, unsigned char *p)
{
	memset(p, 0, KVC_REC_HDR);
	p[0] = KVC_REC_VERSION;
	p[1] = (unsigned char)rec->flags;
	kvc_put_le16(p + 2, (uint16_t)rec->metadata_len);
	kvc_put_le32(p + 4, rec->ttl);
	kvc_put_le32(p + 8, rec->mode);
	kvc_put_le32(p + 12, rec->uid);
	kvc_put_le32(p + 16, rec->gid);
	kvc_put_le64(p + 24, (uint64_t)rec->expiration);
	kvc_put_le64(p + 32, (uint64_t)rec->mtime_ns);
	kvc_put_le64(p + 40, (uint64_t)rec->ctime_ns);
	kvc_put_le64(p + 48, rec->hlc);
	kvc_put_le64(p + 56, rec->origin);
	kvc_put_le64(p + 64, rec->seq);
	kvc_put_le64(p + 72, rec->ino);
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

int kvc_bucket_next(const MDB_val *data, size_t *off, struct kvc_bucket_ent *ent)
{
	const unsigned char *p = data->mv_data;
	if (*off == data->mv_size)
		return 0;
	if (data->mv_size - *off < KVC_BUCKET_ENT_HDR)
		return -EIO;
	p += *off;
	ent->tail_len = p[0];
	ent->tail = p[1];
	ent->rec_len = kvc_get_le32(p + 2);
	if (ent->tail_len > 1 || ent->rec_len > data->mv_size - *off - KVC_BUCKET_ENT_HDR)
		return -EIO;
	ent->rec = p + KVC_BUCKET_ENT_HDR;
	*off += KVC_BUCKET_ENT_HDR + ent->rec_len;
	return 1;
}

int kvc_rec_locate(const void *key, size_t key_len, const MDB_val *data,
		   struct kvc_record *ret)
{
	if (!kvc_is_bucket_key(key_len < KVC_STORED_KEY_MAX ? key_len : KVC_STORED_KEY_MAX))
		return kvc_rec_decode(data->mv_data, data->mv_size, ret);
	size_t tail_len = key_len - KVC_STORED_KEY_MAX;
	unsigned tail = tail_len ? ((const unsigned char *)key)[KVC_STORED_KEY_MAX] : 0;
	size_t off = 0;
	struct kvc_bucket_ent e;
	int rc;
	while ((rc = kvc_bucket_next(data, &off, &e)) == 1) {
		int c = tail_cmp(e.tail_len, e.tail, tail_len, tail);
		if (c == 0)
			return kvc_rec_decode(e.rec, e.rec_len, ret);
		if (c > 0)
			break;
	}
	return rc < 0 ? rc : -ENOENT;
}

int kvc_rec_lookup(kvc_txn *txn, const void *key, size_t key_len, struct kvc_record *ret)
{
	MDB_val k = kvc_stored_key(key, key_len), d;
	int rc = mdb_get(txn->mdb, txn->store->rec, &k, &d);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	return kvc_rec_locate(key, key_len, &d, ret);
}

int kvc_rec_copy_out(const struct kvc_record *src, struct kvc_record *ret, void **ret_copy)
{
	size_t n = src->metadata_len + src->value_len;
	char *copy = malloc(n ? n : 1);
	if (!copy)
		return -ENOMEM;
	if (src->metadata_len)
		memcpy(copy, src->metadata, src->metadata_len);
	if (src->value_len)
		memcpy(copy + src->metadata_len, src->value, src->value_len);
	*ret = *src;
	ret->metadata = src->metadata_len ? copy : NULL;
	ret->value = copy + src->metadata_len;
	*ret_copy = copy;
	return 0;
}

/* --------------------------------------------------------------- meta */

int kvc_meta_read(kvc_txn *txn, const void *name, size_t name_len, uint64_t *ret)
{
	MDB_val k = {name_len, (void *)name}, d;
	int rc = mdb_get(txn->mdb, txn->store->meta, &k, &d);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	if (d.mv_size != 8)
		return -EIO;
	*ret = kvc_get_le64(d.mv_data);
	return 0;
}

int kvc_meta_write(kvc_txn *txn, const void *name, size_t name_len, uint64_t v)
{
	unsigned char buf[8];
	kvc_put_le64(buf, v);
	MDB_val k = {name_len, (void *)name}, d = {8, buf};
	return kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->meta, &k, &d, 0));
}

int kvc_meta_read_or(kvc_txn *txn, const void *name, size_t name_len, uint64_t dflt,
		     uint64_t *ret)
{
	int rc = kvc_meta_read(txn, name, name_len, ret);
	if (rc == -ENOENT) {
		*ret = dflt;
		rc = 0;
	}
	return rc;
}

int kvc_meta_load(kvc_txn *txn)
{
	if (txn->meta_loaded)
		return 0;
	int rc;
	/* Inode numbers start at 2: kvfs gives its root directory 1. */
	if ((rc = kvc_meta_get_or(txn, "seq", 0, &txn->seq)) ||
	    (rc = kvc_meta_get_or(txn, "hlc", 0, &txn->hlc)) ||
	    (rc = kvc_meta_get_or(txn, "ino", 1, &txn->ino)) ||
	    (rc = kvc_meta_get_or(txn, "chunk", 0, &txn->chunk)))
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
int kvc_hlc_stamp(kvc_txn *txn, uint64_t *ret)
{
	int rc = kvc_meta_load(txn);
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
	int rc = kvc_meta_load(txn);
	if (rc)
		return rc;
	*ret = ++*counter;
	txn->meta_dirty = true;
	return 0;
}

/* ------------------------------------------------------------- indexes */

/*
 * Put (@key given) or delete (@key NULL) the entry of @rec in index @dbi
 * (the feed, keyed by sequence, or exp/tomb, keyed by their field and
 * sequence), one function for both so that an entry is always removed
 * under the key it was added with.  Deleting an entry that is not there
 * is no error.
 */
static int index_set(kvc_txn *txn, MDB_dbi dbi, const struct kvc_record *rec, const void *key,
		     size_t key_len)
{
	kvc_store *s = txn->store;
	unsigned char kb[16];
	MDB_val k = {16, kb};
	unsigned flags = 0;
	if (dbi == s->feed) {
		kvc_put_be64(kb, rec->seq);
		k.mv_size = 8;
		flags = MDB_APPEND; /* sequences only grow: every entry lands at the end */
	} else {
		kvc_idx_key(kb, dbi == s->exp ? (uint64_t)rec->expiration : rec->hlc, rec->seq);
	}
	if (key) {
		MDB_val d = {key_len, (void *)key};
		return kvc_lmdb_err(txn, mdb_put(txn->mdb, dbi, &k, &d, flags));
	}
	int rc = kvc_lmdb_err(txn, mdb_del(txn->mdb, dbi, &k, NULL));
	return rc == -ENOENT ? 0 : rc;
}

/* Add (@key given) or drop (NULL) every index entry @rec has. */
static int indexes_set(kvc_txn *txn, const struct kvc_record *rec, bool keep_feed,
		       const void *key, size_t key_len)
{
	kvc_store *s = txn->store;
	int rc = 0;
	if (!keep_feed)
		rc = index_set(txn, s->feed, rec, key, key_len);
	if (!rc && rec->expiration && !(rec->flags & KVC_REC_TOMBSTONE))
		rc = index_set(txn, s->exp, rec, key, key_len);
	if (!rc && (rec->flags & KVC_REC_TOMBSTONE))
		rc = index_set(txn, s->tomb, rec, key, key_len);
	return rc;
}

int kvc_indexes_add(kvc_txn *txn, const void *key, size_t key_len,
		    const struct kvc_record *rec, bool keep_feed)
{
	return indexes_set(txn, rec, keep_feed, key, key_len);
}

int kvc_idx_del(kvc_txn *txn, MDB_dbi dbi, uint64_t a, uint64_t seq)
{
	unsigned char kb[16];
	kvc_idx_key(kb, a, seq);
	MDB_val k = {16, kb};
	int rc = kvc_lmdb_err(txn, mdb_del(txn->mdb, dbi, &k, NULL));
	return rc == -ENOENT ? 0 : rc;
}

/* Write the bucket entry of @rec at @w.  @return the end of the entry */
static unsigned char *bucket_put(unsigned char *w, size_t tail_len, unsigned tail,
				 const struct kvc_record *rec)
{
	size_t len = kvc_rec_encoded_len(rec);
	w[0] = (unsigned char)tail_len;
	w[1] = (unsigned char)tail;
	kvc_put_le32(w + 2, (uint32_t)len);
	kvc_rec_encode(rec, w + KVC_BUCKET_ENT_HDR);
	return w + KVC_BUCKET_ENT_HDR + len;
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
	size_t need = old.mv_size + (rec ? KVC_BUCKET_ENT_HDR + kvc_rec_encoded_len(rec) : 0);
	/* The old bucket may live in pages this transaction rewrites: copy out. */
	rc = scratch_reserve(txn, need);
	if (rc)
		return rc;
	unsigned char *out = txn->scratch, *w = out;
	size_t off = 0;
	struct kvc_bucket_ent e;
	bool placed = false;
	while ((rc = kvc_bucket_next(&old, &off, &e)) == 1) {
		int c = tail_cmp(e.tail_len, e.tail, tail_len, tail);
		if (c >= 0 && !placed) {
			if (rec)
				w = bucket_put(w, tail_len, tail, rec);
			placed = true;
			if (c == 0)
				continue;
		}
		memcpy(w, e.rec - KVC_BUCKET_ENT_HDR, KVC_BUCKET_ENT_HDR + e.rec_len);
		w += KVC_BUCKET_ENT_HDR + e.rec_len;
	}
	if (rc < 0)
		return rc;
	if (!placed && rec)
		w = bucket_put(w, tail_len, tail, rec);
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
		rc = indexes_set(txn, old, keep_feed, NULL, 0);
	if (rc)
		goto out;
	MDB_val k = kvc_stored_key(key, key_len);
	if (kvc_is_bucket_key(k.mv_size)) {
		rc = bucket_store(txn, &k, key, key_len, rec);
	} else if (!rec) {
		rc = mdb_del(txn->mdb, txn->store->rec, &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : kvc_lmdb_err(txn, rc);
	} else {
		MDB_val d = {kvc_rec_encoded_len(rec), NULL};
		rc = kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->rec, &k, &d, MDB_RESERVE));
		if (!rc)
			kvc_rec_encode(rec, d.mv_data);
	}
	if (!rc && rec)
		rc = kvc_indexes_add(txn, key, key_len, rec, keep_feed);
	if (!rc)
		rc = kvc_chunks_release(txn, &taken, rec);
out:
	kvc_chunk_list_release(&taken);
	free(table);
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
	kvc_put_le16(l->buf + l->len, (uint16_t)key_len);
	memcpy(l->buf + l->len + 2, key, key_len);
	l->len += 2 + key_len;
	return 0;
}

/*
 * Format 1 -> 2: rewrite every record as version 2, giving each one that
 * is not a tombstone an inode number, in key order.  Sequences, clocks and
 * times are kept: this is no change a peer needs to see.
 */
int kvc_upgrade_v1(kvc_txn *txn)
{
	struct key_list l = {0};
	int rc = kvc_rec_scan(txn, collect_key, &l);
	for (size_t off = 0; !rc && off < l.len;) {
		size_t key_len = kvc_get_le16(l.buf + off);
		const unsigned char *key = l.buf + off + 2;
		struct kvc_record old, rec;
		off += 2 + key_len;
		rc = kvc_rec_lookup(txn, key, key_len, &old);
		if (rc)
			break;
		if (old.ino)
			continue;
		/* Copy: storing the longer record moves bytes in the page. */
		void *copy;
		rc = kvc_rec_copy_out(&old, &rec, &copy);
		if (rc)
			break;
		if (!(old.flags & KVC_REC_TOMBSTONE))
			rc = kvc_next_ino(txn, &rec.ino);
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

/* ---------------------------------------------------------------- reads */

/* kvc_get without its last step: the record as stored (a chunked value
 * is still its table). */
static int get_stored(kvc_txn *txn, const void *key, size_t key_len, unsigned flags,
		      struct kvc_record *ret_rec)
{
	int rc = kvc_key_check_txn(txn, key, key_len);
	if (rc)
		return rc;
	/* The common case, a plain record: visibility from the header, then
	 * one decode straight into ret_rec. */
	MDB_val k = kvc_stored_key(key, key_len), d;
	rc = mdb_get(txn->mdb, txn->store->rec, &k, &d);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	const unsigned char *p = d.mv_data;
	if (!kvc_is_bucket_key(k.mv_size) && d.mv_size >= KVC_REC_HDR) {
		uint32_t f = p[1];
		int64_t exp = (int64_t)kvc_get_le64(p + 24);
		if ((f & KVC_REC_TOMBSTONE) && !(flags & KVC_GET_TOMBSTONES))
			return -ENOENT;
		if (!(f & KVC_REC_TOMBSTONE) && !(flags & KVC_GET_EXPIRED) && exp > 0 &&
		    exp <= txn->now_ns / 1000000000)
			return -ENOENT;
		return kvc_rec_decode(p, d.mv_size, ret_rec);
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
	*ret_rec = r;
	return 0;
}

int kvc_get(kvc_txn *txn, const void *key, size_t key_len, unsigned flags,
	    struct kvc_record *ret_rec)
{
	struct kvc_record r;
	int rc = get_stored(txn, key, key_len, flags, &r);
	if (!rc)
		rc = kvc_rec_publish_txn(txn, &r, flags);
	if (!rc)
		*ret_rec = r;
	return rc;
}

int kvc_get_range(kvc_txn *txn, const void *key, size_t key_len, size_t off, void *buf,
		  size_t len, size_t *ret_n, struct kvc_record *ret_rec)
{
	struct kvc_record r;
	struct kvc_chunks t;
	int rc = get_stored(txn, key, key_len, 0, &r);
	if (rc)
		return rc;
	bool chunked = r.flags & KVC_REC_CHUNKED;
	if (chunked && (rc = kvc_chunk_table(&r, &t)))
		return rc;
	size_t vlen = chunked ? t.value_len : r.value_len;
	size_t n = off >= vlen ? 0 : (vlen - off < len ? vlen - off : len);
	if (n && chunked)
		rc = kvc_chunk_read_range(txn, &t, off, buf, n);
	else if (n)
		memcpy(buf, (const unsigned char *)r.value + off, n);
	if (!rc && ret_rec)
		rc = kvc_rec_publish_txn(txn, &r, KVC_GET_NO_VALUE);
	if (rc)
		return rc;
	if (ret_rec)
		*ret_rec = r;
	*ret_n = n;
	return 0;
}

