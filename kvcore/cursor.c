/*
 * cursor: walking keys in order.  A cursor steps through the rec database
 * and through the entries of buckets, so callers see full keys in bytewise
 * order; kvc_cursor_* show live records, kvc_rec_scan every record
 * (maint.c's walks), kvc_scan a key range, and kvc_list pages through a
 * prefix with Workers KV's limits and an opaque cursor (base64url of the
 * last key returned).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
		if (!kvc_is_bucket_key(c->k.mv_size)) {
			if (c->bucket_off == 0) {
				c->bucket_off = 1; /* consumed */
				memcpy(c->key, c->k.mv_data, c->k.mv_size);
				c->key_len = c->k.mv_size;
				*decode_err = kvc_rec_decode(c->d.mv_data, c->d.mv_size, rec);
				return 0;
			}
		} else {
			struct kvc_bucket_ent e;
			int rc = kvc_bucket_next(&c->d, &c->bucket_off, &e);
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

/*
 * Place @c on the first stored key at or after the stored key of @key
 * (empty: the first one); cur_entry then walks from there.
 * @return 0 (placed, or past the end: c->valid says which), -errno
 */
static int cur_position(kvc_cursor *c, const void *key, size_t key_len)
{
	MDB_val k = kvc_stored_key(key, key_len);
	int rc;
	if (k.mv_size == 0) {
		rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_FIRST);
	} else {
		c->k = k;
		rc = mdb_cursor_get(c->mc, &c->k, &c->d, MDB_SET_RANGE);
	}
	c->bucket_off = 0;
	c->valid = rc == 0;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : kvc_lmdb_err(c->txn, rc);
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
	int rc = cur_position(c, key, key_len);
	if (rc)
		return rc;
	struct kvc_record r;
	const void *fk = NULL;
	size_t fkn = 0;
	while ((rc = cur_next_live(c, &fk, &fkn, &r)) == 0) {
		if (kvc_key_order(fk, fkn, key, key_len) >= 0)
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
	rc = cur_position(c, NULL, 0);
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
	rc = cur_position(c, lo, lo_len);
	struct kvc_record r;
	int derr;
	while (!rc && (rc = cur_entry(c, &r, &derr)) == 0) {
		if (derr) {
			rc = derr;
			break;
		}
		if (kvc_key_order(c->key, c->key_len, lo, lo_len) < 0)
			continue;
		if (hi && kvc_key_order(c->key, c->key_len, hi, hi_len) >= 0)
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

int kvc_list_limit(int64_t limit, unsigned *ret_limit, char *msg, size_t msg_size)
{
	if (!msg)
		msg_size = 0;
	/* Workers KV's words; its name for the limit is key_count_limit. */
	if (limit < 0) {
		if (msg_size)
			snprintf(msg, msg_size,
				 "Invalid key_count_limit of %lld. Please specify an integer greater than 0.",
				 (long long)limit);
		return -EINVAL;
	}
	if (limit > KVC_LIST_LIMIT_MAX) {
		if (msg_size)
			snprintf(msg, msg_size,
				 "Invalid key_count_limit of %lld. Please specify an integer less than %u.",
				 (long long)limit, KVC_LIST_LIMIT_MAX);
		return -EINVAL;
	}
	*ret_limit = (unsigned)limit;
	return 0;
}

int kvc_list(kvc_txn *txn, const void *prefix, size_t prefix_len, const char *cursor,
	     unsigned limit,
	     int (*fn)(void *arg, const void *key, size_t key_len, const struct kvc_record *rec),
	     void *arg, char *ret_next)
{
	if (limit > KVC_LIST_LIMIT_MAX)
		return kvc_list_limit(limit, &limit, txn->errmsg, sizeof(txn->errmsg));
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
	if (!after || kvc_key_order(start, start_len, prefix, prefix_len) < 0) {
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
	if (!rc && after && kvc_key_order(k, kn, start, start_len) == 0)
		rc = kvc_cursor_next(c, &k, &kn, &r);
	while (!rc) {
		if (!kvc_key_has_prefix(k, kn, prefix, prefix_len))
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

