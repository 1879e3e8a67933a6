/*
 * apply: a bulk file into a store, in one transaction (apply.h).
 */
#include "apply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct apply {
	const struct kt_bulk *b;
	enum kt_bulk_format fmt;
	struct kt_progress *progress;
	char msg[KT_APPLY_ERRMSG_MAX];
};

/* The message of entry @i failing with @why (empty: the errno's). */
static int entry_fail(struct apply *a, size_t i, const char *why, int rc)
{
	char shown[100];
	const struct kt_bulk_entry *e = &a->b->entries[i];

	kt_bulk_show_key(e->key, e->key_len, shown, sizeof(shown));
	snprintf(a->msg, sizeof(a->msg), "bulk entry %zu (key '%s'): %s", i, shown,
		 why && *why ? why : strerror(-rc));
	return rc;
}

static int put_one(kvc_txn *txn, struct apply *a, size_t i)
{
	const struct kt_bulk_entry *e = &a->b->entries[i];
	struct kvc_write w = {
		.set = KVC_SET_VALUE | KVC_SET_METADATA,
		.value = e->value ? (const void *)e->value : "",
		.value_len = e->value_len,
		.metadata = e->metadata,
		.metadata_len = e->metadata_len,
	};
	char why[256];
	int rc = kvc_write_set_expiry(&w, e->has_expiration, e->expiration, e->has_ttl, e->ttl,
				      why, sizeof(why));

	if (rc)
		return entry_fail(a, i, why, rc);
	rc = kvc_write(txn, e->key, e->key_len, &w);
	return rc ? entry_fail(a, i, kvc_txn_errmsg(txn), rc) : 0;
}

static int delete_one(kvc_txn *txn, struct apply *a, size_t i)
{
	const struct kt_bulk_entry *e = &a->b->entries[i];
	int rc = kvc_delete(txn, e->key, e->key_len);

	return rc && rc != -ENOENT ? entry_fail(a, i, kvc_txn_errmsg(txn), rc) : 0;
}

/* The transaction's body; kvc_write_txn may run it again (map growth). */
static int apply_fn(kvc_txn *txn, void *arg)
{
	struct apply *a = arg;
	uint64_t bytes = 0; /* of the values put, for the line's bytes/s */

	a->msg[0] = 0;
	for (size_t i = 0; i < a->b->count; i++) {
		int rc = a->fmt == KT_BULK_PUT ? put_one(txn, a, i) : delete_one(txn, a, i);

		if (rc)
			return rc;
		if (!a->progress)
			continue;
		if (a->fmt == KT_BULK_PUT) {
			bytes += a->b->entries[i].value_len;
			kt_progress_update_bytes(a->progress, i + 1, bytes);
		} else {
			kt_progress_update(a->progress, i + 1);
		}
	}
	/* One commit (with its fsync) for all of it: as long as the writes
	 * for a large file, and nothing to count. */
	if (a->progress)
		kt_progress_wait(a->progress, "committing");
	return 0;
}

int kt_bulk_apply(kvc_store *store, const struct kt_bulk *b, enum kt_bulk_format fmt,
		  struct kt_progress *progress, char *errmsg, size_t errmsg_size)
{
	struct apply a = {
		.b = b, .fmt = fmt, .progress = progress,
	};
	char store_msg[512] = "";
	int rc = kvc_write_txn(store, apply_fn, &a, store_msg, sizeof(store_msg));

	if (rc && errmsg_size)
		snprintf(errmsg, errmsg_size, "%s",
			 a.msg[0] ? a.msg : store_msg[0] ? store_msg : strerror(-rc));
	return rc;
}
