/*
 * maint: the store's housekeeping: reaping expired records, collecting old
 * tombstones, statistics and the integrity check.  Reaping and collection
 * walk their own indexes from the oldest entry, so their cost follows the
 * number of records they remove, never the size of the namespace.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BATCH 1024u

struct idx_ent {
	uint64_t a, seq;
	size_t key_len;
	unsigned char key[KVC_KEY_MAX];
};

/*
 * Call @fn for each entry of index @dbi in order, until it returns
 * non-zero: 1 stops the walk, a -errno stops it and is returned.
 * @return 0, @fn's -errno, or LMDB's error worded in @txn
 */
static int idx_each(kvc_txn *txn, MDB_dbi dbi,
		    int (*fn)(void *arg, const MDB_val *k, const MDB_val *d), void *arg)
{
	MDB_cursor *mc;
	MDB_val k, d;
	int rc = mdb_cursor_open(txn->mdb, dbi, &mc);
	int stop = 0;

	if (rc)
		return kvc_lmdb_err(txn, rc);
	for (rc = mdb_cursor_get(mc, &k, &d, MDB_FIRST); rc == 0 && stop == 0;
	     rc = mdb_cursor_get(mc, &k, &d, MDB_NEXT))
		stop = fn(arg, &k, &d);
	mdb_cursor_close(mc);
	if (stop < 0)
		return stop;
	if (stop == 0 && rc != MDB_NOTFOUND)
		return kvc_lmdb_err(txn, rc);
	return 0;
}

struct collect {
	uint64_t limit;
	struct idx_ent *out;
	unsigned max, n;
};

static int collect_one(void *arg, const MDB_val *k, const MDB_val *d)
{
	struct collect *c = arg;

	if (k->mv_size != 16 || d->mv_size > KVC_KEY_MAX)
		return -EIO;
	uint64_t a = kvc_get_be64(k->mv_data);
	if (a >= c->limit)
		return 1;
	struct idx_ent *e = &c->out[c->n++];
	e->a = a;
	e->seq = kvc_get_be64((unsigned char *)k->mv_data + 8);
	e->key_len = d->mv_size;
	memcpy(e->key, d->mv_data, d->mv_size);
	return c->n == c->max;
}

/* Copy up to @max index entries whose first field is below @limit, so the
 * caller may change the index while working through them. */
static int idx_collect(kvc_txn *txn, MDB_dbi dbi, uint64_t limit, struct idx_ent *out,
		       unsigned max, unsigned *ret_n)
{
	struct collect c = { .limit = limit, .out = out, .max = max };
	int rc = max ? idx_each(txn, dbi, collect_one, &c) : 0;

	*ret_n = c.n;
	return rc;
}

struct sweep {
	uint64_t limit;  /* entries with first field below this go */
	uint64_t max;    /* 0 = no bound */
	uint64_t done;   /* removed so far (across batches) */
	unsigned batch;  /* removed in this transaction */
	bool more;       /* the batch was full: call again */
	struct idx_ent *ents;
};

/* One batch of the reaper: expired records become tombstones that keep
 * their clock and sequence, so no peer's stale copy can bring them back. */
static int reap_batch(kvc_txn *txn, void *arg)
{
	struct sweep *sw = arg;
	unsigned want = BATCH, n;
	if (sw->max && sw->max - sw->done < want)
		want = (unsigned)(sw->max - sw->done);
	sw->batch = 0;
	int rc = idx_collect(txn, txn->store->exp, sw->limit, sw->ents, want, &n);
	for (unsigned i = 0; !rc && i < n; i++) {
		struct idx_ent *e = &sw->ents[i];
		struct kvc_record old;
		rc = kvc_rec_lookup(txn, e->key, e->key_len, &old);
		if (rc == -ENOENT || (!rc && (old.seq != e->seq || !kvc_record_expired(&old, txn->now_ns) ||
					      (old.flags & KVC_REC_TOMBSTONE)))) {
			rc = kvc_idx_del(txn, txn->store->exp, e->a, e->seq);
			continue;
		}
		if (rc)
			break;
		struct kvc_record tomb = old;
		tomb.flags = KVC_REC_TOMBSTONE;
		kvc_rec_strip(&tomb);
		rc = kvc_rec_store(txn, e->key, e->key_len, &old, &tomb);
		sw->batch++;
	}
	sw->more = !rc && n == want;
	return rc;
}

static int sweep_run(kvc_store *store, int (*fn)(kvc_txn *, void *), struct sweep *sw)
{
	sw->ents = malloc(sizeof(*sw->ents) * BATCH);
	if (!sw->ents)
		return -ENOMEM;
	int rc;
	do {
		rc = kvc_write_txn(store, fn, sw, NULL, 0);
		if (!rc)
			sw->done += sw->batch;
	} while (!rc && sw->more && (!sw->max || sw->done < sw->max));
	free(sw->ents);
	return rc;
}

int kvc_reap(kvc_store *store, uint64_t max, uint64_t *ret_reaped)
{
	if (!store)
		return -EINVAL;
	struct sweep sw = {
		/* expiration <= now: every entry below now + 1 */
		.limit = (uint64_t)(kvc_now_ns() / 1000000000) + 1,
		.max = max,
	};
	int rc = sweep_run(store, reap_batch, &sw);
	if (!rc && ret_reaped)
		*ret_reaped = sw.done;
	return rc;
}

static int gc_batch(kvc_txn *txn, void *arg)
{
	struct sweep *sw = arg;
	unsigned n;
	uint64_t horizon;
	sw->batch = 0;
	int rc = kvc_gc_horizon(txn, &horizon);
	if (!rc)
		rc = idx_collect(txn, txn->store->tomb, sw->limit, sw->ents, BATCH, &n);
	uint64_t new_horizon = horizon;
	for (unsigned i = 0; !rc && i < n; i++) {
		struct idx_ent *e = &sw->ents[i];
		struct kvc_record old;
		rc = kvc_rec_lookup(txn, e->key, e->key_len, &old);
		if (rc == -ENOENT || (!rc && (old.seq != e->seq || !(old.flags & KVC_REC_TOMBSTONE)))) {
			rc = kvc_idx_del(txn, txn->store->tomb, e->a, e->seq);
			continue;
		}
		if (rc)
			break;
		rc = kvc_rec_store(txn, e->key, e->key_len, &old, NULL);
		if (old.seq > new_horizon)
			new_horizon = old.seq;
		sw->batch++;
	}
	if (!rc && new_horizon != horizon)
		rc = kvc_meta_put_u64(txn, "gc_horizon", new_horizon);
	sw->more = !rc && n == BATCH;
	return rc;
}

int kvc_gc_tombstones(kvc_store *store, uint64_t grace_s, uint64_t *ret_collected)
{
	if (!store)
		return -EINVAL;
	uint64_t now_ms = (uint64_t)(kvc_now_ns() / 1000000);
	uint64_t cut_ms = grace_s * 1000 > now_ms ? 0 : now_ms - grace_s * 1000;
	/* Tombstones are ordered by clock: every clock below (cut_ms + 1) << 16. */
	struct sweep sw = {.limit = (cut_ms + 1) << 16};
	int rc = sweep_run(store, gc_batch, &sw);
	if (!rc && ret_collected)
		*ret_collected = sw.done;
	return rc;
}

int kvc_next_expiration(kvc_txn *txn, int64_t *ret_expiration)
{
	MDB_cursor *mc;
	int rc = mdb_cursor_open(txn->mdb, txn->store->exp, &mc);
	if (rc)
		return kvc_lmdb_err(txn, rc);
	MDB_val k, d;
	rc = mdb_cursor_get(mc, &k, &d, MDB_FIRST);
	mdb_cursor_close(mc);
	if (rc == MDB_NOTFOUND) {
		*ret_expiration = 0;
		return 0;
	}
	if (rc)
		return kvc_lmdb_err(txn, rc);
	if (k.mv_size != 16)
		return -EIO;
	*ret_expiration = (int64_t)kvc_get_be64(k.mv_data);
	return 0;
}

/* The map's size and the bytes of it in use, read in a transaction of
 * @store (which keeps the map from being resized meanwhile). */
static void map_usage(kvc_store *store, uint64_t *ret_size, uint64_t *ret_used)
{
	MDB_envinfo info;
	MDB_stat ms;
	mdb_env_info(store->env, &info);
	mdb_env_stat(store->env, &ms);
	*ret_size = info.me_mapsize;
	*ret_used = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
}

int kvc_usage(kvc_store *store, struct kvc_usage *ret)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	MDB_stat ms;
	rc = kvc_lmdb_err(txn, mdb_stat(txn->mdb, store->rec, &ms));
	if (!rc) {
		map_usage(store, &ret->map_size, &ret->map_used);
		ret->records = ms.ms_entries;
	}
	kvc_txn_abort(txn);
	return rc;
}

/* ---------------------------------------------------------------- stats */

/* A scan's state: the figures, and the one clock reading every record's
 * expiry is judged by: the transaction's, as its cursors judge liveness, so
 * the counts agree with what a listing of that snapshot shows. */
struct stats_scan {
	struct kvc_stats st;
	int64_t now_ns;
};

static int stats_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec,
		    int decode_err)
{
	struct stats_scan *sc = arg;
	struct kvc_stats *st = &sc->st;
	if (decode_err)
		return 0;
	if (rec->flags & KVC_REC_TOMBSTONE) {
		st->tombstones++;
	} else if (kvc_record_expired(rec, sc->now_ns)) {
		st->expired_pending++;
	} else {
		st->keys++;
		st->value_bytes += kvc_rec_value_len(rec);
	}
	return 0;
}

int kvc_stats(kvc_store *store, struct kvc_stats *ret)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	struct stats_scan sc = {.st = {.min_ttl = store->min_ttl}, .now_ns = txn->now_ns};
	struct kvc_stats *st = &sc.st;
	rc = kvc_rec_scan(txn, stats_fn, &sc);
	if (!rc)
		rc = kvc_feed_head(txn, &st->feed_head);
	if (!rc)
		rc = kvc_gc_horizon(txn, &st->gc_horizon);
	if (!rc)
		rc = kvc_meta_get_or(txn, "hlc", 0, &st->hlc);
	if (!rc)
		map_usage(store, &st->map_size, &st->map_used);
	kvc_txn_abort(txn);
	if (!rc)
		*ret = *st;
	return rc;
}

/* ---------------------------------------------------------------- check */

struct check {
	kvc_txn *txn;
	void (*fn)(void *arg, const char *problem);
	kvc_check_progress_fn *progress;
	void *arg;
	uint64_t done, total; /* entries checked, of the snapshot's count */
	uint64_t problems;
	uint64_t head;
	uint64_t records, expiring, tombstones;
	unsigned char prev[KVC_KEY_MAX];
	size_t prev_len;
	bool have_prev;
	uint64_t chunks; /* stored chunks the records name */
};

__attribute__((format(printf, 2, 3))) static void problem(struct check *ck, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ck->problems++;
	if (ck->fn)
		ck->fn(ck->arg, buf);
}

/* Printable rendering of a key for messages. */
static const char *show(const void *key, size_t n, char *buf, size_t size)
{
	const unsigned char *p = key;
	size_t w = 0;
	for (size_t i = 0; i < n && w + 5 < size; i++) {
		if (p[i] >= 0x20 && p[i] != 0x7F && p[i] != '\\')
			buf[w++] = (char)p[i];
		else
			w += (size_t)snprintf(buf + w, size - w, "\\x%02x", p[i]);
	}
	buf[w] = 0;
	return buf;
}

/* @n more entries checked: tell the caller each time the count passes a
 * multiple of KVC_CHECK_PROGRESS_EVERY. */
static void advance(struct check *ck, uint64_t n)
{
	uint64_t before = ck->done / KVC_CHECK_PROGRESS_EVERY;
	ck->done += n;
	if (ck->progress && ck->done / KVC_CHECK_PROGRESS_EVERY != before)
		ck->progress(ck->arg, ck->done, ck->total);
}

/* The entries of the databases the check walks, from LMDB's counters. */
static int check_total(kvc_txn *txn, uint64_t *ret)
{
	kvc_store *store = txn->store;
	const MDB_dbi dbs[] = {store->feed, store->feed, store->exp, store->tomb, store->chunk};
	size_t ndbs = sizeof(dbs) / sizeof(dbs[0]) - !store->have_chunk_db;
	uint64_t n = 0;
	for (size_t i = 0; i < ndbs; i++) {
		MDB_stat st;
		int rc = mdb_stat(txn->mdb, dbs[i], &st);
		if (rc)
			return kvc_lmdb_err(txn, rc);
		n += st.ms_entries;
	}
	*ret = n;
	return 0;
}

static bool idx_has(kvc_txn *txn, MDB_dbi dbi, uint64_t a, uint64_t seq, const void *key,
		    size_t key_len)
{
	unsigned char kb[16];
	kvc_idx_key(kb, a, seq);
	MDB_val k = {16, kb}, d;
	if (mdb_get(txn->mdb, dbi, &k, &d))
		return false;
	return d.mv_size == key_len && memcmp(d.mv_data, key, key_len) == 0;
}

static int check_rec(void *arg, const void *key, size_t key_len, const struct kvc_record *rec,
		     int decode_err)
{
	struct check *ck = arg;
	kvc_txn *txn = ck->txn;
	char kbuf[KVC_KEY_MAX * 4 + 1];
	const char *name = show(key, key_len, kbuf, sizeof(kbuf));
	advance(ck, 1);
	if (ck->have_prev) {
		if (kvc_key_order(ck->prev, ck->prev_len, key, key_len) >= 0)
			problem(ck, "key '%s' is out of order", name);
	}
	memcpy(ck->prev, key, key_len);
	ck->prev_len = key_len;
	ck->have_prev = true;
	if (decode_err) {
		problem(ck, "record of key '%s' cannot be decoded", name);
		return 0;
	}
	ck->records++;
	if (kvc_key_check(key, key_len))
		problem(ck, "key '%s' is not a valid key", name);
	if (rec->seq == 0 || rec->seq > ck->head)
		problem(ck, "key '%s' has sequence %llu beyond the feed head %llu", name,
			(unsigned long long)rec->seq, (unsigned long long)ck->head);
	unsigned char sk[8];
	kvc_put_be64(sk, rec->seq);
	MDB_val k = {8, sk}, d;
	if (mdb_get(txn->mdb, txn->store->feed, &k, &d) || d.mv_size != key_len ||
	    memcmp(d.mv_data, key, key_len))
		problem(ck, "key '%s' is missing from the change feed at %llu", name,
			(unsigned long long)rec->seq);
	bool tomb = rec->flags & KVC_REC_TOMBSTONE;
	if (tomb) {
		ck->tombstones++;
		if (!idx_has(txn, txn->store->tomb, rec->hlc, rec->seq, key, key_len))
			problem(ck, "tombstone of key '%s' is missing from the tombstone index", name);
		if (rec->value_len || rec->metadata_len)
			problem(ck, "tombstone of key '%s' carries data", name);
	} else if (rec->expiration) {
		ck->expiring++;
		if (!idx_has(txn, txn->store->exp, (uint64_t)rec->expiration, rec->seq, key, key_len))
			problem(ck, "key '%s' is missing from the expiry index", name);
	}
	if (!tomb && rec->expiration < 0)
		problem(ck, "key '%s' has a negative expiration", name);
	if (rec->ttl && rec->expiration != kvc_ceil_sec(rec->mtime_ns) + rec->ttl)
		problem(ck, "key '%s' has a ttl but its expiration is not mtime + ttl", name);
	if (rec->flags & KVC_REC_CHUNKED) {
		uint64_t n = 0;
		if (kvc_chunk_check(txn, rec, &n))
			problem(ck, "key '%s' has a chunked value that cannot be read: %s", name,
				txn->errmsg[0] ? txn->errmsg : "malformed chunk table");
		ck->chunks += n;
		advance(ck, n); /* a large value's chunks are most of its check */
		txn->errmsg[0] = 0;
	} else if (rec->value_len > KVC_VALUE_MAX) {
		problem(ck, "key '%s' has a value over the limit", name);
	}
	if (rec->metadata_len) {
		char meta[KVC_METADATA_MAX + 1];
		int n = kvc_json_compact(rec->metadata, rec->metadata_len, meta, sizeof(meta));
		if (n < 0 || (size_t)n != rec->metadata_len)
			problem(ck, "key '%s' has metadata that is not compact JSON", name);
	}
	if (!rec->hlc || !rec->origin)
		problem(ck, "key '%s' has no clock or origin", name);
	return 0;
}

struct check_idx {
	struct check *ck;
	MDB_dbi dbi;
	const char *what;
	uint64_t n;
};

static int check_entry(void *arg, const MDB_val *k, const MDB_val *d)
{
	struct check_idx *ci = arg;
	struct check *ck = ci->ck;
	kvc_txn *txn = ck->txn;
	const char *what = ci->what;
	char kbuf[KVC_KEY_MAX * 4 + 1];
	bool feed = ci->dbi == txn->store->feed;

	ci->n++;
	advance(ck, 1);
	if (k->mv_size != (feed ? 8u : 16u) || d->mv_size == 0 || d->mv_size > KVC_KEY_MAX) {
		problem(ck, "malformed %s entry", what);
		return 0;
	}
	const char *name = show(d->mv_data, d->mv_size, kbuf, sizeof(kbuf));
	uint64_t a = kvc_get_be64(k->mv_data);
	uint64_t seq = feed ? a : kvc_get_be64((unsigned char *)k->mv_data + 8);
	struct kvc_record r;
	if (kvc_rec_lookup(txn, d->mv_data, d->mv_size, &r)) {
		problem(ck, "%s entry %llu names key '%s', which has no record", what,
			(unsigned long long)seq, name);
		return 0;
	}
	bool tomb = r.flags & KVC_REC_TOMBSTONE;
	if (r.seq != seq)
		problem(ck, "%s entry %llu names key '%s', whose sequence is %llu", what,
			(unsigned long long)seq, name, (unsigned long long)r.seq);
	else if (ci->dbi == txn->store->exp && (tomb || (uint64_t)r.expiration != a))
		problem(ck, "expiry entry of key '%s' does not match its record", name);
	else if (ci->dbi == txn->store->tomb && (!tomb || r.hlc != a))
		problem(ck, "tombstone entry of key '%s' does not match its record", name);
	return 0;
}

/* Every entry of an index must point at a record that points back. */
static int check_index(struct check *ck, MDB_dbi dbi, const char *what, uint64_t *ret_n)
{
	struct check_idx ci = { .ck = ck, .dbi = dbi, .what = what };
	int rc = idx_each(ck->txn, dbi, check_entry, &ci);

	*ret_n = ci.n;
	return rc;
}

int kvc_check(kvc_store *store, void (*fn)(void *arg, const char *problem),
	      kvc_check_progress_fn *progress, void *arg, uint64_t *ret_problems,
	      uint64_t *ret_records)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	struct check ck = {.txn = txn, .fn = fn, .progress = progress, .arg = arg};
	uint64_t nfeed = 0, nexp = 0, ntomb = 0, hlc = 0;
	rc = kvc_feed_head(txn, &ck.head);
	if (!rc)
		rc = check_total(txn, &ck.total);
	if (!rc && progress)
		progress(arg, 0, ck.total);
	if (!rc)
		rc = kvc_rec_scan(txn, check_rec, &ck);
	if (!rc)
		rc = check_index(&ck, store->feed, "feed", &nfeed);
	if (!rc)
		rc = check_index(&ck, store->exp, "expiry", &nexp);
	if (!rc)
		rc = check_index(&ck, store->tomb, "tombstone", &ntomb);
	if (!rc) {
		if (nfeed != ck.records)
			problem(&ck, "the feed has %llu entries for %llu records",
				(unsigned long long)nfeed, (unsigned long long)ck.records);
		if (nexp != ck.expiring)
			problem(&ck, "the expiry index has %llu entries for %llu expiring records",
				(unsigned long long)nexp, (unsigned long long)ck.expiring);
		if (ntomb != ck.tombstones)
			problem(&ck, "the tombstone index has %llu entries for %llu tombstones",
				(unsigned long long)ntomb, (unsigned long long)ck.tombstones);
		if (kvc_meta_get_u64(txn, "hlc", &hlc) == 0 && ck.records && hlc == 0)
			problem(&ck, "the store clock was never advanced");
		MDB_stat st = {0};
		if (store->have_chunk_db && mdb_stat(txn->mdb, store->chunk, &st) == 0 &&
		    st.ms_entries != ck.chunks)
			problem(&ck, "the chunk database has %llu chunks for %llu named by records",
				(unsigned long long)st.ms_entries, (unsigned long long)ck.chunks);
	}
	kvc_txn_abort(txn);
	if (!rc && progress)
		progress(arg, ck.done, ck.total);
	if (!rc && ret_problems)
		*ret_problems = ck.problems;
	if (!rc && ret_records)
		*ret_records = ck.records;
	return rc;
}
