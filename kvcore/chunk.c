/*
 * chunk: large values stored in pieces, so that a write changing part of a
 * value writes only the pieces it changed.
 *
 * A value of KVC_CHUNKED_MIN bytes or more is not stored inside its record.
 * The record (internal flag KVC_REC_CHUNKED) holds a table in its place:
 *
 *   0 u64 value_len  8 u32 chunk_size  12 u32 zero  16 u64 id[n]
 *
 * (little-endian, n = ceil(value_len / chunk_size)), and the chunk
 * database maps each id (be64) to chunk_size bytes of the value, the last
 * chunk to the rest.  Id 0 stands for a chunk of zeros and is not stored,
 * so the holes of a sparse file cost nothing.  Ids come from the store's
 * "chunk" counter, are never reused, and each stored chunk belongs to
 * exactly one record.
 *
 * A write that replaces a chunked value compares the new value with the
 * old one chunk by chunk and keeps the ids of the chunks that did not
 * change: a small pwrite into a 25 MiB file commits one chunk and a new
 * table, not 25 MiB.  The commit is still one atomic version: chunks are
 * never changed in place, so LMDB's snapshot keeps the old ones for
 * readers of the old version, and the old version's chunks the new one
 * does not keep are deleted in the same transaction.
 *
 * chunk_size is 16 pages less LMDB's page header, so that a chunk fills
 * its overflow pages exactly; each table records the size it was cut
 * with.  Readers get the value whole, read into memory the transaction
 * (kvc_get, kvc_feed_next) or the cursor (kvc_cursor_*, kvc_scan) owns,
 * unless they ask for no value (KVC_GET_NO_VALUE).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* LMDB's page header, which the first page of an overflow run carries. */
#define LMDB_PAGE_HDR 16u
#define CHUNK_PAGES 16u

/* Values read whole for kvc_get and kvc_feed_next, freed with the txn. */
struct kvc_valbuf {
	struct kvc_valbuf *next;
	unsigned char data[];
};

uint32_t kvc_chunk_size_for(unsigned page_size)
{
	return CHUNK_PAGES * page_size - LMDB_PAGE_HDR;
}

int kvc_chunk_table(const struct kvc_record *rec, struct kvc_chunks *ret)
{
	const unsigned char *p = rec->value;
	if (rec->value_len < KVC_CHUNK_TABLE_HDR)
		return -EIO;
	uint64_t len = kvc_get_le64(p);
	uint32_t size = kvc_get_le32(p + 8);
	if (len > KVC_VALUE_MAX || size < 4096)
		return -EIO;
	uint64_t n = (len + size - 1) / size;
	if (rec->value_len != KVC_CHUNK_TABLE_HDR + 8 * n)
		return -EIO;
	ret->value_len = (size_t)len;
	ret->chunk_size = size;
	ret->n = (size_t)n;
	ret->ids = p + KVC_CHUNK_TABLE_HDR;
	return 0;
}

uint64_t kvc_chunk_id(const struct kvc_chunks *t, size_t i)
{
	return kvc_get_le64(t->ids + 8 * i);
}

size_t kvc_rec_value_len(const struct kvc_record *rec)
{
	struct kvc_chunks t;
	if (!(rec->flags & KVC_REC_CHUNKED))
		return rec->value_len;
	return kvc_chunk_table(rec, &t) ? 0 : t.value_len;
}

/* Bytes of chunk @i of a value of @len cut in @size. */
static size_t chunk_len(size_t len, uint32_t size, size_t i)
{
	size_t off = i * size;
	return len - off < size ? len - off : size;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* The stored bytes of chunk @id, which must have @len of them. */
static int chunk_get(kvc_txn *txn, uint64_t id, size_t len, const void **ret)
{
	unsigned char kb[8];
	kvc_put_be64(kb, id);
	MDB_val k = {8, kb}, d;
	if (!txn->store->have_chunk_db)
		return kvc_set_errmsg(txn, -EIO, "the store was upgraded while open: reopen it");
	int rc = mdb_get(txn->mdb, txn->store->chunk, &k, &d);
	if (rc == MDB_NOTFOUND)
		return kvc_set_errmsg(txn, -EIO, "chunk %llu of a value is missing",
				      (unsigned long long)id);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	if (d.mv_size != len)
		return kvc_set_errmsg(txn, -EIO, "chunk %llu of a value has the wrong size",
				      (unsigned long long)id);
	*ret = d.mv_data;
	return 0;
}

int kvc_chunk_read_range(kvc_txn *txn, const struct kvc_chunks *t, size_t off, void *out,
			 size_t len)
{
	unsigned char *w = out;
	while (len) {
		size_t i = off / t->chunk_size, in = off % t->chunk_size;
		size_t n = chunk_len(t->value_len, t->chunk_size, i);
		size_t take = n - in < len ? n - in : len;
		uint64_t id = kvc_chunk_id(t, i);
		const void *src;
		if (id == 0) {
			memset(w, 0, take);
		} else {
			int rc = chunk_get(txn, id, n, &src);
			if (rc)
				return rc;
			memcpy(w, (const unsigned char *)src + in, take);
		}
		w += take;
		off += take;
		len -= take;
	}
	return 0;
}

int kvc_chunk_split(kvc_txn *txn, const struct kvc_record *old, const struct kvc_record *rec,
		    struct kvc_record *ret, void **ret_table)
{
	struct kvc_chunks ot = {0};
	if (old && (old->flags & KVC_REC_CHUNKED)) {
		int rc = kvc_chunk_table(old, &ot);
		if (rc)
			return rc;
	}
	uint32_t size = txn->store->chunk_size;
	size_t n = (rec->value_len + size - 1) / size;
	unsigned char *table = malloc(KVC_CHUNK_TABLE_HDR + 8 * n);
	if (!table)
		return -ENOMEM;
	kvc_put_le64(table, rec->value_len);
	kvc_put_le32(table + 8, size);
	kvc_put_le32(table + 12, 0);
	const unsigned char *v = rec->value;
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		size_t len = chunk_len(rec->value_len, size, i);
		const unsigned char *piece = v + i * size;
		uint64_t id = 0;
		if (all_zero(piece, len))
			goto put;
		/* The old chunk at the same place, if it holds these bytes:
		 * known to when the writer says nothing changed there. */
		if (ot.chunk_size == size && i < ot.n &&
		    chunk_len(ot.value_len, size, i) == len && (id = kvc_chunk_id(&ot, i))) {
			size_t lo = i * size;
			if (txn->same_outside && (lo + len <= txn->same_lo || lo >= txn->same_hi))
				goto put;
			const void *have;
			rc = chunk_get(txn, id, len, &have);
			if (rc)
				break;
			if (memcmp(have, piece, len) == 0)
				goto put;
		}
		rc = kvc_counter_next(txn, &txn->chunk, &id);
		if (rc)
			break;
		unsigned char kb[8];
		kvc_put_be64(kb, id);
		MDB_val k = {8, kb}, d = {len, NULL};
		rc = kvc_lmdb_err(txn, mdb_put(txn->mdb, txn->store->chunk, &k, &d,
					       MDB_RESERVE | MDB_APPEND));
		if (rc)
			break;
		memcpy(d.mv_data, piece, len);
put:
		kvc_put_le64(table + KVC_CHUNK_TABLE_HDR + 8 * i, id);
	}
	if (rc) {
		free(table);
		return rc;
	}
	*ret = *rec;
	ret->flags |= KVC_REC_CHUNKED;
	ret->value = table;
	ret->value_len = KVC_CHUNK_TABLE_HDR + 8 * n;
	*ret_table = table;
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The ids of @rec's stored chunks, sorted, in *ret (caller frees). */
static int sorted_ids(const struct kvc_record *rec, uint64_t **ret, size_t *ret_n)
{
	struct kvc_chunks t;
	*ret = NULL;
	*ret_n = 0;
	if (!rec || !(rec->flags & KVC_REC_CHUNKED))
		return 0;
	int rc = kvc_chunk_table(rec, &t);
	if (rc)
		return rc;
	uint64_t *ids = malloc((t.n ? t.n : 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < t.n; i++) {
		uint64_t id = kvc_chunk_id(&t, i);
		if (id)
			ids[m++] = id;
	}
	qsort(ids, m, sizeof(*ids), id_cmp);
	*ret = ids;
	*ret_n = m;
	return 0;
}

int kvc_chunks_taken(const struct kvc_record *old, struct kvc_chunk_list *ret)
{
	return sorted_ids(old, &ret->ids, &ret->n);
}

int kvc_chunks_release(kvc_txn *txn, struct kvc_chunk_list *old, const struct kvc_record *rec)
{
	uint64_t *keep;
	size_t nkeep, j = 0;
	int rc = sorted_ids(rec, &keep, &nkeep);
	for (size_t i = 0; !rc && i < old->n; i++) {
		while (j < nkeep && keep[j] < old->ids[i])
			j++;
		if (j < nkeep && keep[j] == old->ids[i])
			continue;
		unsigned char kb[8];
		kvc_put_be64(kb, old->ids[i]);
		MDB_val k = {8, kb};
		rc = mdb_del(txn->mdb, txn->store->chunk, &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : kvc_lmdb_err(txn, rc);
	}
	free(keep);
	return rc;
}

void kvc_chunk_list_release(struct kvc_chunk_list *l)
{
	free(l->ids);
	l->ids = NULL;
	l->n = 0;
}

int kvc_rec_publish(kvc_txn *txn, struct kvc_record *rec, unsigned flags, void **buf,
		    size_t *cap)
{
	if (!(rec->flags & KVC_REC_CHUNKED))
		return 0;
	struct kvc_chunks t;
	int rc = kvc_chunk_table(rec, &t);
	if (rc)
		return rc;
	rec->flags &= ~KVC_REC_CHUNKED;
	if (flags & KVC_GET_NO_VALUE) {
		rec->value = NULL;
		rec->value_len = t.value_len;
		return 0;
	}
	if (t.value_len > *cap) {
		void *p = realloc(*buf, t.value_len);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = t.value_len;
	}
	rc = kvc_chunk_read_range(txn, &t, 0, *buf, t.value_len);
	if (rc)
		return rc;
	rec->value = *buf;
	rec->value_len = t.value_len;
	return 0;
}

int kvc_rec_publish_txn(kvc_txn *txn, struct kvc_record *rec, unsigned flags)
{
	if (!(rec->flags & KVC_REC_CHUNKED) || (flags & KVC_GET_NO_VALUE)) {
		void *none = NULL;
		size_t cap = 0;
		return kvc_rec_publish(txn, rec, flags, &none, &cap);
	}
	struct kvc_chunks t;
	int rc = kvc_chunk_table(rec, &t);
	if (rc)
		return rc;
	struct kvc_valbuf *b = malloc(sizeof(*b) + (t.value_len ? t.value_len : 1));
	if (!b)
		return -ENOMEM;
	void *data = b->data;
	size_t cap = t.value_len;
	rc = kvc_rec_publish(txn, rec, flags, &data, &cap);
	if (rc) {
		free(b);
		return rc;
	}
	b->next = txn->values;
	txn->values = b;
	return 0;
}

void kvc_txn_values_free(kvc_txn *txn)
{
	while (txn->values) {
		struct kvc_valbuf *b = txn->values;
		txn->values = b->next;
		free(b);
	}
}

int kvc_chunk_check(kvc_txn *txn, const struct kvc_record *rec, uint64_t *ret_chunks)
{
	struct kvc_chunks t;
	int rc = kvc_chunk_table(rec, &t);
	if (rc)
		return rc;
	uint64_t n = 0;
	for (size_t i = 0; i < t.n; i++) {
		uint64_t id = kvc_chunk_id(&t, i);
		const void *p;
		if (!id)
			continue;
		rc = chunk_get(txn, id, chunk_len(t.value_len, t.chunk_size, i), &p);
		if (rc)
			return rc;
		n++;
	}
	*ret_chunks = n;
	return 0;
}
