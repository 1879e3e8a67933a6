/*
 * replicate: what kvsync builds on.  The change feed (one entry per key,
 * at the key's latest sequence), the version order and last-writer-wins
 * rule, kvc_apply and kvc_apply_would with the checks a peer's record must
 * pass, the watermarks that remember how far each peer's feed was
 * applied, and the gc horizon below which tombstones may be gone.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

int kvc_feed_head(kvc_txn *txn, uint64_t *ret_seq)
{
	if (txn->write) {
		int rc = kvc_meta_load(txn);
		if (!rc)
			*ret_seq = txn->seq;
		return rc;
	}
	return kvc_meta_get_or(txn, "seq", 0, ret_seq);
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

int kvc_feed_read(kvc_store *store, uint64_t *after, unsigned max, unsigned flags,
		  int (*fn)(void *arg, const void *key, size_t key_len,
			    const struct kvc_record *rec),
		  void *arg, uint64_t *ret_head)
{
	if (!store || !after || !fn || (flags & ~(unsigned)KVC_GET_NO_VALUE))
		return -EINVAL;
	if (max == 0 || max > INT_MAX)
		max = INT_MAX;
	kvc_txn *txn;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	uint64_t head, at = *after;
	rc = kvc_feed_head(txn, &head);
	if (rc)
		goto out_abort_txn;
	if (at > head) {
		rc = -ESTALE;
		goto out_head;
	}
	unsigned n = 0;
	while (at < head && n < max) {
		const void *key;
		size_t key_len;
		struct kvc_record rec;
		rc = kvc_feed_next(txn, at, flags, &key, &key_len, &rec);
		if (rc == -ENOENT) {
			/* The last changes were collected tombstones. */
			rc = 0;
			at = head;
			break;
		}
		if (rc)
			break; /* what fn took stays taken */
		if (rec.seq <= at || rec.seq > head) {
			/* Never loop on a feed that does not move forward
			 * (kvc_check reports it): go on from the head. */
			at = head;
			break;
		}
		rc = fn(arg, key, key_len, &rec);
		if (rc < 0)
			break;
		at = rec.seq;
		n++;
		if (rc > 0) {
			rc = 0;
			break;
		}
	}
	*after = at;
	if (rc == 0)
		rc = (int)n;
out_head:
	if (ret_head && (rc >= 0 || rc == -ESTALE))
		*ret_head = head;
out_abort_txn:
	kvc_txn_abort(txn);
	return rc;
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
					     : kvc_time_limit((int64_t)(at_ms + 1) * 1000000);
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
	int rc = kvc_key_check_txn(txn, key, key_len);
	if (rc)
		return rc;
	rc = kvc_value_check(txn, rec->value_len);
	if (rc)
		return rc;
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
	rc = kvc_mode_check(txn, rec->mode);
	if (rc)
		return rc;
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
	int rc = rec ? kvc_write_start(txn) : -EINVAL;
	if (!rc)
		rc = apply_check(txn, key, key_len, rec, max_skew_ms);
	if (rc)
		return rc;
	bool tomb = rec->flags & KVC_REC_TOMBSTONE;
	if (txn->low_space && !tomb)
		return kvc_space_refuse(txn);
	rc = kvc_meta_load(txn);
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
		kvc_rec_strip(&in);
	} else if (have_old && kvc_rec_live(&old, txn->now_ns) && old.ino) {
		in.ino = old.ino; /* the same key, changed elsewhere: the same file */
	} else {
		rc = kvc_next_ino(txn, &in.ino);
		if (rc)
			return rc;
	}
	rc = kvc_next_seq(txn, &in.seq);
	if (rc)
		return rc;
	rc = kvc_rec_store(txn, key, key_len, have_old ? &old : NULL, &in);
	return rc ? rc : 1;
}

/* "wm:" node epoch, or "wf:" node epoch scope for a scoped watermark: a
 * prefix of its own, so walks over "wm:" never meet one.  @return its length */
static size_t watermark_key(unsigned char *kb, uint64_t node, uint64_t epoch,
			    const uint8_t *scope)
{
	memcpy(kb, scope ? "wf:" : "wm:", 3);
	kvc_put_be64(kb + 3, node);
	kvc_put_be64(kb + 11, epoch);
	if (!scope)
		return 19;
	memcpy(kb + 19, scope, KVC_WM_SCOPE_LEN);
	return 19 + KVC_WM_SCOPE_LEN;
}

int kvc_watermark_get_scoped(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch,
			     const uint8_t *scope, uint64_t *ret_seq)
{
	unsigned char kb[19 + KVC_WM_SCOPE_LEN];
	size_t n = watermark_key(kb, peer_node, peer_epoch, scope);
	return kvc_meta_read_or(txn, kb, n, 0, ret_seq);
}

int kvc_watermark_set_scoped(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch,
			     const uint8_t *scope, uint64_t seq)
{
	if (!txn->write)
		return -EBADF;
	unsigned char kb[19 + KVC_WM_SCOPE_LEN];
	size_t n = watermark_key(kb, peer_node, peer_epoch, scope);
	return kvc_meta_write(txn, kb, n, seq);
}

int kvc_watermark_get(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch, uint64_t *ret_seq)
{
	return kvc_watermark_get_scoped(txn, peer_node, peer_epoch, NULL, ret_seq);
}

int kvc_watermark_set(kvc_txn *txn, uint64_t peer_node, uint64_t peer_epoch, uint64_t seq)
{
	return kvc_watermark_set_scoped(txn, peer_node, peer_epoch, NULL, seq);
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
			rc = fn(arg, kvc_get_be64(kb + 3), kvc_get_be64(kb + 11), kvc_get_le64(d.mv_data));
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
	return kvc_meta_get_or(txn, "gc_horizon", 0, ret_seq);
}
