/*
 * digest: range digests over a store, for kvsync's way back (a peer
 * whose watermark is gone) and for --check.
 *
 * A range is [lo, hi) in bytewise key order.  Its digest is BLAKE2b over
 * the (key, hlc, origin, tombstone flag) of the records in it, so two
 * stores that hold the same versions of the same keys in a range agree on
 * its digest whatever their local sequence numbers.  ks_digest_range and
 * ks_range_split run in a read transaction of their own; ks_range_walk in
 * the caller's, so its callback can look keys up in the same snapshot
 * (a thread holds at most one transaction per store: kvcore.h).
 * Each takes the session's filter (NULL: none): only the records of the
 * keys it selects count, are split on and are walked, on both sides.
 */
#ifndef KVSYNC_SYNC_DIGEST_H
#define KVSYNC_SYNC_DIGEST_H

#include <stdint.h>

#include "kvcore.h"
#include "proto.h"

/* What a record is to a reader at @now_ns (enum ks_key_state). */
uint8_t ks_record_state(const struct kvc_record *rec, int64_t now_ns);

/**
 * Digest the records of @kind (enum ks_digest_kind) in @r.
 * @param[out] ret_count  the number of records digested
 * @return 0 or -errno
 */
int ks_digest_range(kvc_store *store, uint8_t kind, const struct ks_range *r,
		    const struct ks_filter *flt, int64_t now_ns, uint64_t *ret_count, uint8_t ret_digest[KS_DIGEST_LEN]);

/**
 * Call @fn with the keys that cut @r into @parts pieces of about equal
 * record counts (@count is the range's count), in ascending order.
 * @return 0, -errno, or @fn's non-zero value
 */
int ks_range_split(kvc_store *store, uint8_t kind, const struct ks_range *r,
		   const struct ks_filter *flt, int64_t now_ns,
		   uint64_t count, unsigned parts,
		   int (*fn)(void *arg, const void *key, size_t key_len), void *arg);

/**
 * Call @fn with the entry of each record of @kind in @r, in key order,
 * within @txn (a read transaction the caller began and ends).  @fn may
 * read through @txn; it must not begin a transaction on the same store.
 * @return 0, -errno, or @fn's non-zero value
 */
int ks_range_walk(kvc_txn *txn, uint8_t kind, const struct ks_range *r,
		  const struct ks_filter *flt, int64_t now_ns,
		  int (*fn)(void *arg, const struct ks_key_ent *e), void *arg);

/**
 * The fingerprint of filter @f (not NULL), the scope of the watermark a
 * sync under it keeps: a 16-byte BLAKE2b of ks_filter_canon's bytes.
 * @return 0 or -ENOMEM
 */
int ks_filter_fingerprint(const struct ks_filter *f, uint8_t ret[KS_FILTER_FP_LEN]);

#endif
