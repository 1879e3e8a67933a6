/*
 * test_replication: proves what replication relies on.  The hybrid logical
 * clock stamped on each change strictly increases across writes, across
 * close and reopen, and never goes back, even after a peer's record from
 * the future was applied; every local change carries this store's node id,
 * and the node id and epoch persist.  kvc_apply implements last-writer-wins
 * on (hlc, origin): newer wins, older and equal are ignored (0), an equal
 * clock with a greater origin wins, a peer's tombstone deletes, an older
 * write never resurrects over a newer tombstone, an expired record is not
 * applied over an absent key, a clock too far ahead is -ERANGE, and the
 * local clock advances past every clock offered.  Watermarks round-trip,
 * follow their transaction and persist.  Prints TAP.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

static uint64_t hlc_of(kvc_store *s, const char *key, unsigned flags)
{
	return kt_rec_of(s, key, flags).hlc;
}

static uint64_t now_ms(void)
{
	return (uint64_t)(kvc_now_ns() / 1000000);
}

static struct kvc_record peer_rec(const char *value, uint64_t hlc, uint64_t origin)
{
	struct kvc_record r = {
		.value = value,
		.value_len = strlen(value),
		.hlc = hlc,
		.origin = origin,
		.mtime_ns = 1600000000123456789ll,
		.ctime_ns = 1600000000123456789ll,
	};
	return r;
}

static void test_hlc(const struct kt_dir *d)
{
	char path[128], other[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "hlc", path, sizeof(path)), NULL);
	struct kvc_identity id, id2;
	kvc_store_identity(s, &id);
	ok(id.node_id != 0 && id.epoch != 0, "a new store has a non-zero node id and epoch");

	uint64_t prev = 0;
	bool rising = true, origin_ok = true, near_now = true;
	for (int i = 0; i < 300; i++) {
		char key[16];
		snprintf(key, sizeof(key), "h%d", i % 7);
		if (kt_puts(s, key, key))
			bail_out("write");
		struct kt_rec r;
		if (kt_get(s, key, strlen(key), 0, &r))
			bail_out("read");
		rising &= r.r.hlc > prev;
		origin_ok &= r.r.origin == id.node_id;
		uint64_t ms = r.r.hlc >> 16, now = now_ms();
		near_now &= ms + 5000 > now && ms <= now + 5000;
		prev = r.r.hlc;
		kt_rec_free(&r);
	}
	ok(rising, "the clock strictly increases over 300 writes in quick succession");
	ok(origin_ok, "every local change's origin is this store's node id");
	ok(near_now, "the clock's upper 48 bits are wall-clock milliseconds");
	is_int((long long)kt_stats(s).hlc, (long long)prev, "kvc_stats reports the last clock stamped");
	uint64_t h6 = hlc_of(s, "h6", 0);
	is_int(kt_delete(s, "h6", 2), 0, "delete h6");
	ok(hlc_of(s, "h6", KVC_GET_TOMBSTONES) > prev, "a delete is stamped with a newer clock");
	ok(h6 < prev, "fixture: h6 was not the last write");
	prev = hlc_of(s, "h6", KVC_GET_TOMBSTONES);
	kvc_close(s);

	s = kt_open(path, NULL);
	kvc_store_identity(s, &id2);
	ok(id2.node_id == id.node_id && id2.epoch == id.epoch, "node id and epoch persist across reopen");
	is_int(kt_puts(s, "after", "x"), 0, "write after reopen");
	ok(hlc_of(s, "after", 0) > prev, "the clock keeps increasing across close and reopen");

	kvc_store *o = kt_open(kt_dir_sub(d, "other", other, sizeof(other)), NULL);
	kvc_store_identity(o, &id2);
	ok(id2.node_id != id.node_id && id2.epoch != id.epoch, "another store has its own node id and epoch");
	kvc_close(o);

	/* A peer's record stamped a minute ahead: the local clock follows. */
	uint64_t future = (now_ms() + 60000) << 16 | 7;
	struct kvc_record fr = peer_rec("f", future, id.node_id ^ 0x5555);
	is_int(kt_apply(s, "future", &fr, 0, NULL, 0), 1, "a record a minute ahead applies with no skew bound");
	is_int(kt_puts(s, "next", "x"), 0, "local write after it");
	ok(hlc_of(s, "next", 0) > future, "the local clock advanced past the applied record's clock");
	uint64_t last = hlc_of(s, "next", 0);
	kvc_close(s);
	s = kt_open(path, NULL);
	is_int(kt_puts(s, "next2", "x"), 0, "local write after reopen");
	ok(hlc_of(s, "next2", 0) > last, "the clock never goes back, also across reopen");

	/* An ignored record still moves the clock (here: expired over an absent key). */
	uint64_t far = (now_ms() + 120000) << 16;
	struct kvc_record ex = peer_rec("e", far, 99);
	ex.expiration = 1000;
	uint64_t head = kt_head(s);
	is_int(kt_apply(s, "expired-peer", &ex, 0, NULL, 0), 0, "an expired record over an absent key is ignored");
	struct kt_rec r;
	is_int(kt_get(s, "expired-peer", 12, KVC_GET_EXPIRED | KVC_GET_TOMBSTONES, &r), -ENOENT,
	       "the ignored expired record was not stored at all");
	is_int((long long)kt_head(s), (long long)head, "the ignored record wrote nothing to the feed");
	is_int(kt_puts(s, "next3", "x"), 0, "local write after the ignored record");
	ok(hlc_of(s, "next3", 0) > far, "the local clock advanced past the ignored record's clock too");
	is_int(kt_check(s), 0, "kvc_check finds nothing on the clock store");
	kvc_close(s);
}

static void test_apply(const struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "apply", path, sizeof(path)), NULL);
	struct kvc_identity id;
	kvc_store_identity(s, &id);
	const uint64_t P = 1000;
	uint64_t H = (now_ms() + 100) << 16;
	struct kt_rec r;

	struct kvc_record v1 = peer_rec("v1", H, P);
	v1.metadata = "{\"m\":1}";
	v1.metadata_len = 7;
	v1.flags = KVC_REC_HAS_MODE | KVC_REC_HAS_OWNER;
	v1.mode = 0640;
	v1.uid = 1234;
	v1.gid = 5678;
	v1.ttl = 0;
	uint64_t head = kt_head(s);
	is_int(kt_apply(s, "k", &v1, 0, NULL, 0), 1, "apply over an absent key: applied (1)");
	is_int((long long)kt_head(s), (long long)head + 1, "an applied record takes one new local sequence");
	if (!kt_get(s, "k", 1, 0, &r)) {
		ok(!strcmp(r.value, "v1") && r.metadata && !strcmp(r.metadata, "{\"m\":1}"),
		   "the applied record's value and metadata are stored");
		ok(r.r.hlc == H && r.r.origin == P, "the applied record keeps the peer's hlc and origin");
		ok(r.r.mode == 0640 && r.r.uid == 1234 && r.r.gid == 5678 &&
			   (r.r.flags & (KVC_REC_HAS_MODE | KVC_REC_HAS_OWNER)) ==
				   (KVC_REC_HAS_MODE | KVC_REC_HAS_OWNER),
		   "the applied record keeps the peer's mode and owner");
		ok(r.r.mtime_ns == v1.mtime_ns, "the applied record keeps the peer's mtime");
		is_int((long long)r.r.seq, (long long)head + 1, "the applied record has the new local sequence");
		kt_rec_free(&r);
	} else {
		ok(false, "the applied record is stored");
	}

	struct kvc_record old = peer_rec("old", H - 1, P);
	head = kt_head(s);
	is_int(kt_apply(s, "k", &old, 0, NULL, 0), 0, "an older clock is ignored (0)");
	ok(kt_has(s, "k", 1, "v1", 2), "the ignored older record changed nothing");
	is_int((long long)kt_head(s), (long long)head, "an ignored record writes nothing to the feed");
	struct kvc_record same = peer_rec("same", H, P);
	is_int(kt_apply(s, "k", &same, 0, NULL, 0), 0, "the same (hlc, origin) is ignored (0)");
	ok(kt_has(s, "k", 1, "v1", 2), "the ignored equal record changed nothing");
	struct kvc_record bigger = peer_rec("bigger", H, P + 1);
	is_int(kt_apply(s, "k", &bigger, 0, NULL, 0), 1, "an equal clock with a greater origin wins");
	ok(kt_has(s, "k", 1, "bigger", 6), "the greater origin's value is stored");
	struct kvc_record smaller = peer_rec("smaller", H, P);
	is_int(kt_apply(s, "k", &smaller, 0, NULL, 0), 0, "an equal clock with a smaller origin loses");
	ok(kt_has(s, "k", 1, "bigger", 6), "the smaller origin's value was not stored");
	struct kvc_record newer = peer_rec("newer", H + 1, 1);
	is_int(kt_apply(s, "k", &newer, 0, NULL, 0), 1, "a newer clock wins even from a smaller origin");
	ok(kt_has(s, "k", 1, "newer", 5), "the newer value is stored");

	struct kvc_record tomb = peer_rec("", H + 2, P);
	tomb.flags = KVC_REC_TOMBSTONE;
	is_int(kt_apply(s, "k", &tomb, 0, NULL, 0), 1, "a newer tombstone from a peer applies");
	is_int(kt_get(s, "k", 1, 0, &r), -ENOENT, "the peer's tombstone deleted the key");
	ok(hlc_of(s, "k", KVC_GET_TOMBSTONES) == H + 2, "the tombstone keeps the peer's clock");
	struct kvc_record zombie = peer_rec("zombie", H + 1, P + 100);
	is_int(kt_apply(s, "k", &zombie, 0, NULL, 0), 0, "an older write over a newer tombstone is ignored");
	is_int(kt_get(s, "k", 1, 0, &r), -ENOENT, "the older write did not resurrect the key");
	struct kvc_record tie = peer_rec("tie", H + 2, P - 1);
	is_int(kt_apply(s, "k", &tie, 0, NULL, 0), 0, "a write at the tombstone's clock with a smaller origin loses");
	struct kvc_record back = peer_rec("back", H + 3, P);
	is_int(kt_apply(s, "k", &back, 0, NULL, 0), 1, "a write newer than the tombstone applies");
	ok(kt_has(s, "k", 1, "back", 4), "the newer write brings the key back");

	/* Against local writes. */
	is_int(kt_puts(s, "local", "mine"), 0, "a local write");
	uint64_t lh = hlc_of(s, "local", 0);
	ok(lh > H + 3, "the local write's clock is past every applied clock");
	struct kvc_record stale = peer_rec("stale", lh - 1, UINT64_MAX);
	is_int(kt_apply(s, "local", &stale, 0, NULL, 0), 0, "a peer's record older than a local write is ignored");
	ok(kt_has(s, "local", 5, "mine", 4), "the local write stands");
	struct kvc_record win = peer_rec("theirs", lh + 1, 1);
	is_int(kt_apply(s, "local", &win, 0, NULL, 0), 1, "a peer's record newer than a local write wins");
	ok(kt_has(s, "local", 5, "theirs", 6), "the peer's value replaced the local one");

	/* Skew bound. */
	uint64_t hour = (now_ms() + 3600000) << 16;
	struct kvc_record ahead = peer_rec("ahead", hour, P);
	head = kt_head(s);
	uint64_t clock = kt_stats(s).hlc;
	is_int(kt_apply(s, "ahead", &ahead, 60000, NULL, 0), -ERANGE, "a record an hour ahead with max skew 60 s -ERANGE");
	ok(kt_absent(s, "ahead", 5), "the refused record was not stored");
	is_int((long long)kt_head(s), (long long)head, "the refusal wrote nothing to the feed");
	ok(kt_stats(s).hlc < hour && kt_stats(s).hlc == clock,
	   "a refused record does not drag the local clock forward");
	{
		kvc_txn *txn;
		ok(kvc_txn_begin(s, KVC_TXN_READ, &txn) == 0, "a read transaction for a dry run");
		is_int(kvc_apply_would(txn, "ahead", 5, &ahead, 60000), -ERANGE,
		       "kvc_apply_would foresees the skew refusal");
		ok(strstr(kvc_txn_errmsg(txn), "ahead of the local clock") != NULL,
		   "... with kvc_apply's message");
		is_int(kvc_apply_would(txn, "ahead", 5, &ahead, 0), 1,
		       "... and with no bound, that the record would apply");
		kvc_txn_abort(txn);
	}
	ahead.hlc = (now_ms() + 10000) << 16;
	is_int(kt_apply(s, "ahead", &ahead, 60000, NULL, 0), 1, "a record 10 s ahead within max skew 60 s applies");
	ahead.hlc = (now_ms() + 20000) << 16;
	is_int(kt_apply(s, "ahead", &ahead, UINT64_MAX, NULL, 0), 1,
	       "the largest skew bound does not overflow into refusing a record");
	ahead.hlc = (now_ms() + 30000) << 16;
	is_int(kt_apply(s, "ahead", &ahead, UINT64_MAX - 1000, NULL, 0), 1,
	       "nor does a bound just under it");

	/* Expired records. */
	struct kvc_record exp = peer_rec("exp", H + 10, P);
	exp.expiration = kvc_now_ns() / 1000000000 - 10;
	head = kt_head(s);
	is_int(kt_apply(s, "exp-absent", &exp, 0, NULL, 0), 0, "an expired record over an absent key is ignored");
	is_int(kt_get(s, "exp-absent", 10, KVC_GET_EXPIRED, &r), -ENOENT, "... and not stored");
	is_int((long long)kt_head(s), (long long)head, "... and not in the feed");
	struct kvc_record live = peer_rec("live", H + 9, P);
	is_int(kt_apply(s, "exp-present", &live, 0, NULL, 0), 1, "fixture: a live record from the peer");
	is_int(kt_apply(s, "exp-present", &exp, 0, NULL, 0), 1, "a newer expired record over a present key applies");
	is_int(kt_get(s, "exp-present", 11, 0, &r), -ENOENT, "the key is now expired for readers");

	/* Validation as for kvc_write. */
	struct kvc_record bad = peer_rec("b", H + 20, P);
	is_int(kt_apply(s, "..", &bad, 0, NULL, 0), -EINVAL, "apply with an invalid key -EINVAL");
	char longkey[600];
	memset(longkey, 'L', 513);
	longkey[513] = 0;
	is_int(kt_apply(s, longkey, &bad, 0, NULL, 0), -ENAMETOOLONG, "apply with a 513-byte key -ENAMETOOLONG");
	bad.metadata = "{not json";
	bad.metadata_len = 9;
	is_int(kt_apply(s, "badmeta", &bad, 0, NULL, 0), -EINVAL, "apply with metadata that is not JSON -EINVAL");
	ok(kt_absent(s, "badmeta", 7), "the invalid record was not stored");

	kvc_txn *txn;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("txn");
	is_int(kvc_apply(txn, "k", 1, &back, 0), -EBADF, "kvc_apply in a read transaction -EBADF");
	kvc_txn_abort(txn);
	is_int(kt_check(s), 0, "kvc_check finds nothing on the apply store");
	kvc_close(s);
}

/* Copy every change of @src after @after to @dst through its feed. */
struct sync_arg {
	kvc_store *src;
	uint64_t applied;
};

static int sync_fn(kvc_txn *dtx, void *arg)
{
	struct sync_arg *a = arg;
	struct kvc_identity id;
	kvc_store_identity(a->src, &id);
	uint64_t after;
	int rc = kvc_watermark_get(dtx, id.node_id, id.epoch, &after);
	if (rc)
		return rc;
	kvc_txn *stx;
	if ((rc = kvc_txn_begin(a->src, KVC_TXN_READ, &stx)))
		return rc;
	a->applied = 0;
	const void *k;
	size_t kn;
	struct kvc_record r;
	while ((rc = kvc_feed_next(stx, after, 0, &k, &kn, &r)) == 0) {
		rc = kvc_apply(dtx, k, kn, &r, 0);
		if (rc < 0)
			break;
		a->applied += (uint64_t)rc;
		after = r.seq;
	}
	kvc_txn_abort(stx);
	if (rc != -ENOENT)
		return rc;
	return kvc_watermark_set(dtx, id.node_id, id.epoch, after);
}

static int wm_set_fn(kvc_txn *txn, void *arg)
{
	const uint64_t *v = arg;
	int rc = kvc_watermark_set(txn, v[0], v[1], v[2]);
	uint64_t got = 0;
	if (!rc)
		rc = kvc_watermark_get(txn, v[0], v[1], &got);
	if (!rc && got != v[2])
		rc = -EIO;
	if (!rc && v[3])
		rc = -ECANCELED; /* abandon the transaction on purpose */
	return rc;
}

static uint64_t wm_get(kvc_store *s, uint64_t node, uint64_t epoch)
{
	kvc_txn *txn;
	uint64_t v = UINT64_MAX;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		return v;
	if (kvc_watermark_get(txn, node, epoch, &v))
		v = UINT64_MAX;
	kvc_txn_abort(txn);
	return v;
}

/* Collects what kvc_watermark_each reports, as "node/epoch=seq " text. */
static int wm_each_fn(void *arg, uint64_t node, uint64_t epoch, uint64_t seq)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%llu/%llu=%llu ", (unsigned long long)node,
		 (unsigned long long)epoch, (unsigned long long)seq);
	return 0;
}

static int wm_stop_fn(void *arg, uint64_t node, uint64_t epoch, uint64_t seq)
{
	(*(unsigned *)arg)++;
	return 7;
}

static const uint8_t scope_a[KVC_WM_SCOPE_LEN] = "filter-a-scope!";
static const uint8_t scope_b[KVC_WM_SCOPE_LEN] = "filter-b-scope!";

static int wm_scoped_set_fn(kvc_txn *txn, void *arg)
{
	const uint64_t *v = arg;
	return kvc_watermark_set_scoped(txn, 77, 88, v[0] ? scope_b : scope_a, v[1]);
}

static uint64_t wm_scoped_get(kvc_store *s, const uint8_t *scope)
{
	kvc_txn *txn;
	uint64_t v = UINT64_MAX;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		return v;
	if (kvc_watermark_get_scoped(txn, 77, 88, scope, &v))
		v = UINT64_MAX;
	kvc_txn_abort(txn);
	return v;
}

/* A filtered replicator's watermarks: one per scope, apart from the
 * unfiltered one and from kvc_watermark_each's walk. */
static void test_scoped_watermarks(kvc_store *b)
{
	is_int((long long)wm_scoped_get(b, scope_a), 0, "a scope never set reads 0");
	uint64_t sa[2] = {0, 1000}, sb[2] = {1, 7};
	is_int(kvc_write_txn(b, wm_scoped_set_fn, sa, NULL, 0), 0, "a scoped watermark set");
	is_int(kvc_write_txn(b, wm_scoped_set_fn, sb, NULL, 0), 0, "another scope's set");
	is_int((long long)wm_scoped_get(b, scope_a), 1000, "each scope reads back its own");
	is_int((long long)wm_scoped_get(b, scope_b), 7, "... both of them");
	is_int((long long)wm_get(b, 77, 88), 43, "the unfiltered watermark is untouched");
	is_int((long long)wm_scoped_get(b, NULL), 43, "a NULL scope is the unfiltered one");
	kvc_txn *txn;
	char seen[256] = "";
	ok(kvc_txn_begin(b, KVC_TXN_READ, &txn) == 0, "a read transaction for the peers");
	is_int(kvc_watermark_each(txn, wm_each_fn, seen), 0, "kvc_watermark_each still walks");
	is_str(seen, "5/18446744073709551615=6 77/88=43 ", "... the unfiltered watermarks only");
	kvc_txn_abort(txn);
}

static void test_watermarks_and_sync(const struct kt_dir *d)
{
	char ap[128], bp[128];
	kvc_store *a = kt_open(kt_dir_sub(d, "wa", ap, sizeof(ap)), NULL);
	kvc_store *b = kt_open(kt_dir_sub(d, "wb", bp, sizeof(bp)), NULL);

	is_int((long long)wm_get(b, 77, 88), 0, "an unknown peer's watermark is 0");
	uint64_t set[4] = {77, 88, 42, 0};
	is_int(kvc_write_txn(b, wm_set_fn, set, NULL, 0), 0,
	       "kvc_watermark_set, read back in the same transaction");
	is_int((long long)wm_get(b, 77, 88), 42, "the watermark reads back after commit");
	is_int((long long)wm_get(b, 77, 89), 0, "another epoch of the same peer has its own watermark");
	is_int((long long)wm_get(b, 78, 88), 0, "another peer has its own watermark");
	uint64_t abandoned[4] = {77, 88, 99, 1};
	is_int(kvc_write_txn(b, wm_set_fn, abandoned, NULL, 0), -ECANCELED, "a transaction setting 99 is abandoned");
	is_int((long long)wm_get(b, 77, 88), 42, "the abandoned transaction's watermark was not kept");
	set[2] = 43;
	is_int(kvc_write_txn(b, wm_set_fn, set, NULL, 0), 0, "watermark set to 43");
	uint64_t other[4] = {5, UINT64_MAX, 6, 0};
	is_int(kvc_write_txn(b, wm_set_fn, other, NULL, 0), 0, "a second peer's watermark set");
	{
		kvc_txn *txn;
		char seen[256] = "";
		unsigned calls = 0;
		ok(kvc_txn_begin(b, KVC_TXN_READ, &txn) == 0, "a read transaction for the peers");
		is_int(kvc_watermark_each(txn, wm_each_fn, seen), 0, "kvc_watermark_each walks them");
		is_str(seen, "5/18446744073709551615=6 77/88=43 ",
		       "every peer once, by node id, with its epoch and watermark");
		is_int(kvc_watermark_each(txn, wm_stop_fn, &calls), 7,
		       "a non-zero return stops the walk and is returned");
		is_int(calls, 1, "... after the first peer");
		kvc_txn_abort(txn);
	}
	test_scoped_watermarks(b);

	/* A small sync through the feed, with the watermark in the same txn. */
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "s%02d", i);
		kt_puts(a, k, k);
	}
	kt_delete(a, "s05", 3);
	struct sync_arg sa = {a, 0};
	is_int(kvc_write_txn(b, sync_fn, &sa, NULL, 0), 0, "sync a -> b through a's feed");
	is_int((long long)sa.applied, 20, "20 changes applied (19 keys and a tombstone)");
	struct kvc_identity ida;
	kvc_store_identity(a, &ida);
	is_int((long long)wm_get(b, ida.node_id, ida.epoch), (long long)kt_head(a),
	       "b's watermark for a is a's feed head");
	ok(kt_has(b, "s00", 3, "s00", 3) && kt_has(b, "s19", 3, "s19", 3) && kt_absent(b, "s05", 3),
	   "b holds a's keys and a's delete");
	is_int((long long)kt_head(b), 20, "records applied from a peer get b's own sequences");
	kt_puts(a, "s00", "changed");
	is_int(kvc_write_txn(b, sync_fn, &sa, NULL, 0), 0, "incremental sync");
	is_int((long long)sa.applied, 1, "the incremental sync applies only the one new change");
	ok(kt_has(b, "s00", 3, "changed", 7), "the change arrived");
	is_int(kvc_write_txn(b, sync_fn, &sa, NULL, 0), 0, "sync with nothing new");
	is_int((long long)sa.applied, 0, "nothing applied when nothing changed");
	kvc_close(b);

	b = kt_open(bp, NULL);
	is_int((long long)wm_get(b, 77, 88), 43, "watermarks persist across reopen");
	is_int((long long)wm_get(b, ida.node_id, ida.epoch), (long long)kt_head(a),
	       "the sync watermark persists across reopen");
	/* kvc_scan from the start (lo NULL, as a digest walk begins) and a range. */
	kvc_txn *txn;
	unsigned n = 0;
	if (kvc_txn_begin(a, KVC_TXN_READ, &txn))
		bail_out("txn");
	is_int(kvc_scan(txn, NULL, 0, NULL, 0, kt_count_fn, &n), 0, "kvc_scan with lo NULL walks from the start");
	is_int(n, 20, "kvc_scan sees all 20 records, the tombstone included");
	n = 0;
	is_int(kvc_scan(txn, "s05", 3, "s10", 3, kt_count_fn, &n), 0, "kvc_scan of [s05, s10)");
	is_int(n, 5, "kvc_scan of [s05, s10) sees s05..s09");
	kvc_txn_abort(txn);
	kt_check_close(a, "kvc_check finds nothing on the sync source");
	kt_check_close(b, "kvc_check finds nothing on the sync target");
}

int main(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	test_hlc(&d);
	test_apply(&d);
	test_watermarks_and_sync(&d);
	kt_dir_remove(&d);
	return done_testing();
}
