/*
 * write: local changes.  kvc_write validates a write (limits, metadata
 * JSON, ttl and expiration against min_ttl, mode), composes the record it
 * makes from the live one (kept fields, re-armed ttl, clamped times) and
 * stores it as a fresh local change with a new clock and sequence;
 * kvc_delete leaves a tombstone; kvc_rename and kvc_rename_prefix move
 * keys as a tombstone and a new record each.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int64_t time_clamp(int64_t ns, int64_t now_ns)
{
	int64_t hi = kvc_time_limit(now_ns);
	return ns < 0 ? 0 : ns > hi ? hi : ns;
}

int kvc_write_start(kvc_txn *txn)
{
	if (!txn)
		return -EINVAL;
	if (!txn->write)
		return -EBADF;
	txn->errmsg[0] = 0;
	return 0;
}

int kvc_value_len_check(uint64_t value_len, char *msg, size_t msg_size)
{
	if (value_len <= KVC_VALUE_MAX)
		return 0;
	if (msg && msg_size)
		snprintf(msg, msg_size, "Value length of %" PRIu64 " exceeds limit of %u.",
			 value_len, KVC_VALUE_MAX);
	return -EFBIG;
}

int kvc_value_check(kvc_txn *txn, size_t value_len)
{
	return kvc_value_len_check(value_len, txn->errmsg, sizeof(txn->errmsg));
}

int kvc_mode_check(kvc_txn *txn, uint32_t mode)
{
	if (mode & ~07777u)
		return kvc_set_errmsg(txn, -EINVAL, "invalid mode %o", mode);
	return 0;
}

static int validate_write(kvc_txn *txn, const struct kvc_write *w, char *meta_buf,
			  size_t *ret_meta_len)
{
	uint32_t min_ttl = txn->store->min_ttl;
	int rc = (w->set & KVC_SET_VALUE) ? kvc_value_check(txn, w->value_len) : 0;
	if (rc)
		return rc;
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
	int64_t now_s = txn->now_ns / 1000000000;
	if ((w->set & KVC_SET_EXPIRATION) && w->expiration && w->expiration <= now_s)
		return kvc_set_errmsg(txn, -EINVAL,
				      "Invalid expiration of %lld. Please specify integer greater than the current number of seconds since the UNIX epoch.",
				      (long long)w->expiration);
	if ((w->set & KVC_SET_EXPIRATION) && w->expiration &&
	    w->expiration < now_s + (int64_t)min_ttl)
		return kvc_set_errmsg(txn, -EINVAL,
				      "Invalid expiration of %lld. Expiration times must be at least %u seconds in the future.",
				      (long long)w->expiration, min_ttl);
	return (w->set & KVC_SET_MODE) ? kvc_mode_check(txn, w->mode) : 0;
}

/* Workers KV's message for a ttl or expiration out of range, into @msg. */
__attribute__((format(printf, 3, 4))) static int expiry_refuse(char *msg, size_t msg_size,
							     const char *fmt, ...)
{
	if (msg && msg_size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, msg_size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int kvc_write_set_expiry(struct kvc_write *w, bool has_expiration, int64_t expiration,
			 bool has_ttl, int64_t ttl, char *msg, size_t msg_size)
{
	if (!w)
		return -EINVAL;
	if (has_ttl && ttl < 1)
		return expiry_refuse(msg, msg_size,
				     "Invalid expiration_ttl of %" PRId64
				     ". Please specify integer greater than 0.",
				     ttl);
	if (has_ttl && ttl > UINT32_MAX)
		return expiry_refuse(msg, msg_size,
				     "Invalid expiration_ttl of %" PRId64
				     ". Expiration TTL must be at most %" PRIu32 ".",
				     ttl, UINT32_MAX);
	if (!has_ttl && has_expiration && expiration < 1)
		return expiry_refuse(msg, msg_size,
				     "Invalid expiration of %" PRId64
				     ". Please specify integer greater than the current number of"
				     " seconds since the UNIX epoch.",
				     expiration);
	/* Always KVC_SET_EXPIRATION: a put without either clears the expiry
	 * the key had. */
	w->set |= KVC_SET_EXPIRATION;
	w->expiration = !has_ttl && has_expiration ? expiration : 0;
	if (has_ttl) {
		w->set |= KVC_SET_TTL;
		w->ttl = (uint32_t)ttl;
	}
	return 0;
}

/* The tombstone a local delete leaves, stamped with the txn's time. */
static void local_tombstone(const kvc_txn *txn, struct kvc_record *ret)
{
	*ret = (struct kvc_record){
		.flags = KVC_REC_TOMBSTONE,
		.value = "",
		.mtime_ns = txn->now_ns,
		.ctime_ns = txn->now_ns,
	};
}

/* Stamp @rec as a fresh local change and store it over @old. */
static int commit_local(kvc_txn *txn, const void *key, size_t key_len,
			const struct kvc_record *old, struct kvc_record *rec)
{
	int rc = kvc_hlc_stamp(txn, &rec->hlc);
	if (!rc)
		rc = kvc_next_seq(txn, &rec->seq);
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
		int rc = kvc_next_ino(txn, &rec->ino);
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
	int rc = kvc_meta_load(txn);
	if (rc)
		return rc;
	uint64_t seq = txn->seq, hlc = txn->hlc, ino = txn->ino;
	bool dirty = txn->meta_dirty;
	rc = compose(txn, w, NULL, meta, meta_len, &rec, &kept);
	if (rc)
		return rc;
	if ((rc = kvc_hlc_stamp(txn, &rec.hlc)) || (rc = kvc_next_seq(txn, &rec.seq)))
		return rc;
	rec.origin = txn->store->id.node_id;
	MDB_val k = {key_len, (void *)key}, d = {kvc_rec_encoded_len(&rec), NULL};
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
	kvc_rec_encode(&rec, d.mv_data);
	rc = kvc_indexes_add(txn, key, key_len, &rec, false);
	return rc ? rc : 1;
}

int kvc_write(kvc_txn *txn, const void *key, size_t key_len, const struct kvc_write *w)
{
	int rc = w ? kvc_write_start(txn) : -EINVAL;
	if (!rc)
		rc = kvc_key_check_txn(txn, key, key_len);
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
	    !kvc_is_bucket_key(kvc_stored_key(key, key_len).mv_size)) {
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
	int rc = kvc_write_start(txn);
	if (!rc)
		rc = kvc_key_check_txn(txn, key, key_len);
	if (rc)
		return rc;
	struct kvc_record old;
	rc = kvc_rec_lookup(txn, key, key_len, &old);
	if (rc)
		return rc;
	if (!kvc_rec_live(&old, txn->now_ns))
		return -ENOENT;
	struct kvc_record tomb;
	local_tombstone(txn, &tomb);
	return commit_local(txn, key, key_len, &old, &tomb);
}

int kvc_rename(kvc_txn *txn, const void *from, size_t from_len, const void *to,
	       size_t to_len, bool noreplace)
{
	int rc = kvc_write_start(txn);
	if (!rc)
		rc = kvc_key_check_txn(txn, from, from_len);
	if (!rc)
		rc = kvc_key_check_txn(txn, to, to_len);
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
	struct kvc_record moved;
	void *copy;
	rc = kvc_rec_copy_out(&src, &moved, &copy);
	if (rc)
		return rc;
	moved.ctime_ns = txn->now_ns;

	rc = commit_local(txn, to, to_len, have_dst ? &dst : NULL, &moved);
	if (!rc) {
		/* Re-read: the first write may have moved the source's pages. */
		rc = kvc_rec_lookup(txn, from, from_len, &src);
		struct kvc_record tomb;
		local_tombstone(txn, &tomb);
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
	int rc = kvc_write_start(txn);
	if (rc)
		return rc;
	if (txn->low_space)
		return kvc_space_refuse(txn);
	/* Collect first: renaming while a cursor walks the keys would move
	 * pages under it. */
	struct moved_key *keys = NULL;
	size_t n = 0, cap = 0;
	kvc_cursor *c;
	rc = kvc_cursor_open(txn, KVC_GET_NO_VALUE, &c);
	if (rc)
		return rc;
	const void *k;
	size_t kn;
	for (rc = kvc_cursor_seek(c, from, from_len, &k, &kn, NULL); !rc;
	     rc = kvc_cursor_next(c, &k, &kn, NULL)) {
		if (!kvc_key_has_prefix(k, kn, from, from_len))
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
		rc = kvc_key_check_txn(txn, keys[n].key, new_len);
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

