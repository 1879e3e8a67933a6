/*
 * digest: range digests, range splitting and range walks over a
 * store (see digest.h).  Everything goes through kvc_scan, which
 * includes tombstones and expired records; the digest kind decides which
 * of them count.
 */
#include "digest.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

uint8_t ks_record_state(const struct kvc_record *rec, int64_t now_ns)
{
	if (rec->flags & KVC_REC_TOMBSTONE)
		return KS_STATE_TOMBSTONE;
	if (kvc_record_expired(rec, now_ns))
		return KS_STATE_EXPIRED;
	return KS_STATE_LIVE;
}

struct walk {
	uint8_t kind;
	const struct ks_filter *flt;
	int64_t now_ns;
	int (*fn)(void *arg, const struct ks_key_ent *e);
	void *arg;
};

static int walk_one(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct walk *w = arg;
	if (!ks_filter_select(w->flt, key, key_len))
		return 0;
	struct ks_key_ent e = {
		.key = key,
		.key_len = key_len,
		.state = ks_record_state(rec, w->now_ns),
		.hlc = rec->hlc,
		.origin = rec->origin,
	};
	if (w->kind == KS_DIGEST_LIVE && e.state != KS_STATE_LIVE)
		return 0;
	return w->fn(w->arg, &e);
}

int ks_range_walk(kvc_txn *txn, uint8_t kind, const struct ks_range *r,
		  const struct ks_filter *flt, int64_t now_ns,
		  int (*fn)(void *arg, const struct ks_key_ent *e), void *arg)
{
	struct walk w = {kind, flt, now_ns, fn, arg};
	/* kvc_scan compares lo even when empty: never hand it NULL. */
	const void *lo = r->lo_len ? (const void *)r->lo : "";
	return kvc_scan(txn, lo, r->lo_len, r->hi, r->hi_len, walk_one, &w);
}

/* ks_range_walk in a read transaction of its own. */
static int walk_store(kvc_store *store, uint8_t kind, const struct ks_range *r,
		      const struct ks_filter *flt, int64_t now_ns, int (*fn)(void *arg, const struct ks_key_ent *e), void *arg)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = ks_range_walk(txn, kind, r, flt, now_ns, fn, arg);
	kvc_txn_abort(txn);
	return rc;
}

struct hashing {
	crypto_generichash_state st;
	uint64_t count;
};

static int hash_one(void *arg, const struct ks_key_ent *e)
{
	struct hashing *h = arg;
	uint8_t buf[2 + KVC_KEY_MAX + 17];
	size_t n = 0;
	buf[n++] = (uint8_t)(e->key_len >> 8);
	buf[n++] = (uint8_t)e->key_len;
	memcpy(buf + n, e->key, e->key_len);
	n += e->key_len;
	for (int i = 7; i >= 0; i--)
		buf[n++] = (uint8_t)(e->hlc >> (8 * i));
	for (int i = 7; i >= 0; i--)
		buf[n++] = (uint8_t)(e->origin >> (8 * i));
	buf[n++] = e->state == KS_STATE_TOMBSTONE;
	crypto_generichash_update(&h->st, buf, n);
	h->count++;
	return 0;
}

int ks_digest_range(kvc_store *store, uint8_t kind, const struct ks_range *r,
		    const struct ks_filter *flt, int64_t now_ns, uint64_t *ret_count, uint8_t ret_digest[KS_DIGEST_LEN])
{
	struct hashing h;
	h.count = 0;
	crypto_generichash_init(&h.st, NULL, 0, KS_DIGEST_LEN);
	int rc = walk_store(store, kind, r, flt, now_ns, hash_one, &h);
	if (rc)
		return rc;
	crypto_generichash_final(&h.st, ret_digest, KS_DIGEST_LEN);
	*ret_count = h.count;
	return 0;
}

struct splitting {
	uint64_t i, count;
	unsigned part, parts;
	int (*fn)(void *arg, const void *key, size_t key_len);
	void *arg;
};

static int split_one(void *arg, const struct ks_key_ent *e)
{
	struct splitting *s = arg;
	uint64_t i = s->i++;
	if (s->part >= s->parts)
		return 1; /* every cut made: stop the walk */
	if (i == 0 || i < s->count * s->part / s->parts)
		return 0;
	s->part++;
	return s->fn(s->arg, e->key, e->key_len);
}

int ks_range_split(kvc_store *store, uint8_t kind, const struct ks_range *r,
		   const struct ks_filter *flt, int64_t now_ns,
		   uint64_t count, unsigned parts,
		   int (*fn)(void *arg, const void *key, size_t key_len), void *arg)
{
	struct splitting s = {0, count, 1, parts, fn, arg};
	int rc = walk_store(store, kind, r, flt, now_ns, split_one, &s);
	return rc == 1 ? 0 : rc;
}

int ks_filter_fingerprint(const struct ks_filter *f, uint8_t ret[KS_FILTER_FP_LEN])
{
	uint8_t *canon = malloc(ks_filter_canon_len(f));
	if (!canon)
		return -ENOMEM;
	size_t n = ks_filter_canon(f, canon);
	crypto_generichash(ret, KS_FILTER_FP_LEN, canon, n, NULL, 0);
	free(canon);
	return 0;
}
