/*
 * apply: a parsed bulk file written into a store, the one way kvctl's bulk
 * put/delete and kvapi's bulk routes do it, so the two cannot disagree on
 * what an entry means.  Every entry goes in one write transaction: all or
 * none.  kvcore applies the data model's rules and words their messages.
 */
#ifndef KVTOOLS_APPLY_H
#define KVTOOLS_APPLY_H

#include <stddef.h>

#include "kvcore.h"
#include "bulk.h"
#include "progress.h"

/* Large enough for any message kt_bulk_apply() writes. */
#define KT_APPLY_ERRMSG_MAX 768u

/**
 * Apply @b to @store: for KT_BULK_PUT each entry's value, metadata and
 * expiry (kvcore's ttl and expiration rules); for KT_BULK_KEYS a delete of
 * each key (a missing key is not an error, as in Workers KV).
 * @param[in] progress  updated after each entry; NULL for none
 * @param[out] errmsg   on failure, "bulk entry N (key 'K'): why", or the
 *                      store's own message (e.g. the disk is full)
 * @return 0, or a -errno of kvcore's (nothing was written)
 */
int kt_bulk_apply(kvc_store *store, const struct kt_bulk *b, enum kt_bulk_format fmt,
		  struct kt_progress *progress, char *errmsg, size_t errmsg_size);

#endif
