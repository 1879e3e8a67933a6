/*
 * test_feed: proves tombstones and the change feed.  A deleted key is gone
 * for get, kvc_list and cursors but readable with KVC_GET_TOMBSTONES and
 * counted by kvc_stats; deleting a key that is not live returns -ENOENT and
 * writes nothing.  Every write and delete moves kvc_feed_head by exactly
 * one; kvc_feed_next walks changes in sequence order with one entry per key
 * (a key written three times appears once, at its latest sequence), and
 * tombstones are in it.  kvc_gc_tombstones keeps young tombstones under the
 * default grace, collects them with grace 0, drops their feed entries and
 * raises kvc_gc_horizon to the highest sequence dropped.  kvc_feed_read,
 * the follower of the feed, takes the changes after a sequence in order,
 * at most max of them, stops where its callback says (a refused change is
 * not taken), moves the caller's position to the last change taken or to
 * the head, and refuses a position past the head with -ESTALE.  Prints TAP.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

struct feed_ent {
	char key[64];
	uint64_t seq;
	uint32_t flags;
};

/* The whole feed after @after, in the order kvc_feed_next gives it. */
static int feed_all(kvc_store *s, uint64_t after, struct feed_ent *out, size_t max,
		    size_t *ret_n, bool *ret_ordered)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(s, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	size_t n = 0;
	bool ordered = true;
	const void *k;
	size_t kn;
	struct kvc_record r;
	while ((rc = kvc_feed_next(txn, after, 0, &k, &kn, &r)) == 0) {
		if (r.seq <= after)
			ordered = false;
		if (n < max) {
			snprintf(out[n].key, sizeof(out[n].key), "%.*s", (int)kn, (const char *)k);
			out[n].seq = r.seq;
			out[n].flags = r.flags;
		}
		n++;
		if (r.seq <= after)
			break; /* would loop forever */
		after = r.seq;
	}
	kvc_txn_abort(txn);
	*ret_n = n;
	*ret_ordered = ordered;
	return rc == -ENOENT ? 0 : rc;
}

static const struct feed_ent *find(const struct feed_ent *f, size_t n, const char *key)
{
	const struct feed_ent *hit = NULL;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(f[i].key, key)) {
			if (hit)
				return NULL; /* twice: callers treat as not found once */
			hit = &f[i];
		}
	return hit;
}

static uint64_t seq_of(kvc_store *s, const char *key, unsigned flags)
{
	return kt_rec_of(s, key, flags).seq;
}

struct three {
	int n;
};

static int three_fn(kvc_txn *txn, void *arg)
{
	uint64_t h0, h;
	int rc = kvc_feed_head(txn, &h0);
	for (int i = 0; !rc && i < 3; i++) {
		char k[16];
		int n = snprintf(k, sizeof(k), "batch%d", i);
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = k, .value_len = (size_t)n};
		rc = kvc_write(txn, k, (size_t)n, &w);
	}
	if (!rc)
		rc = kvc_feed_head(txn, &h);
	if (!rc)
		((struct three *)arg)->n = (int)(h - h0);
	return rc;
}

static void test_feed(kvc_store *s)
{
	struct feed_ent f[64];
	size_t n;
	bool ordered;
	is_int((long long)kt_head(s), 0, "a new store's feed head is 0");
	is_int(feed_all(s, 0, f, 64, &n, &ordered), 0, "kvc_feed_next on a new store");
	is_int((long long)n, 0, "a new store's feed is empty");

	uint64_t head = 0;
	bool step = true;
	static const char *const ops[] = {"+a", "+b", "+a", "+c", "-b", "+a", "+d", "-d", "+d", "+b"};
	uint64_t seq_at[10];
	for (size_t i = 0; i < 10; i++) {
		const char *key = ops[i] + 1;
		int rc = ops[i][0] == '+' ? kt_puts(s, key, ops[i]) : kt_delete(s, key, 1);
		uint64_t h = kt_head(s);
		if (rc || h != head + 1) {
			step = false;
			diag("  op %s: rc %d, head %llu after %llu", ops[i], rc, (unsigned long long)h,
			     (unsigned long long)head);
		}
		head = h;
		seq_at[i] = h;
	}
	ok(step, "each of 10 writes and deletes moves the feed head by exactly one");

	struct three t = {0};
	is_int(kvc_write_txn(s, three_fn, &t, NULL, 0), 0, "three writes in one transaction");
	is_int(t.n, 3, "kvc_feed_head inside the write transaction counts its own writes");
	is_int((long long)kt_head(s), (long long)(head + 3), "three writes in one transaction move the head by three");
	head += 3;

	is_int(feed_all(s, 0, f, 64, &n, &ordered), 0, "kvc_feed_next walks the feed");
	ok(ordered, "kvc_feed_next gives strictly increasing sequences");
	is_int((long long)n, 7, "one feed entry per key: a b c d batch0 batch1 batch2");
	const struct feed_ent *a = find(f, n, "a"), *b = find(f, n, "b"), *d = find(f, n, "d");
	ok(a && a->seq == seq_at[5], "a, written three times, appears once at its latest sequence");
	ok(b && b->seq == seq_at[9] && !(b->flags & KVC_REC_TOMBSTONE),
	   "b, deleted then written, appears once as live at its latest sequence");
	ok(d && d->seq == seq_at[8], "d, written, deleted, written, appears once at its latest sequence");
	is_int((long long)seq_of(s, "a", 0), (long long)seq_at[5], "a's record carries the same sequence");
	bool fed_last = n > 0 && f[n - 1].seq == head;
	ok(fed_last, "the last feed entry has the head's sequence");

	is_int(kt_delete(s, "c", 1), 0, "delete c");
	head++;
	is_int(feed_all(s, head - 1, f, 64, &n, &ordered), 0, "feed after the previous head");
	ok(n == 1 && !strcmp(f[0].key, "c") && (f[0].flags & KVC_REC_TOMBSTONE) && f[0].seq == head,
	   "the tombstone of c is in the feed, flagged, at the head's sequence");
	is_int(feed_all(s, 0, f, 64, &n, &ordered), 0, "whole feed again");
	is_int((long long)n, 7, "the delete moved c's entry rather than adding one");
	is_int(feed_all(s, head, f, 64, &n, &ordered), 0, "feed after the head");
	is_int((long long)n, 0, "nothing after the head");
	is_int(feed_all(s, seq_at[5], f, 64, &n, &ordered), 0, "feed from the middle");
	ok(n > 0 && f[0].seq > seq_at[5] && ordered, "kvc_feed_next(after) starts past @after");
}

static void test_tombstones(kvc_store *s)
{
	is_int(kt_puts(s, "t1", "1"), 0, "fixture: t1");
	is_int(kt_puts(s, "t2", "2"), 0, "fixture: t2");
	is_int(kt_puts(s, "t3", "3"), 0, "fixture: t3");
	struct kt_rec r;
	if (kt_get(s, "t2", 2, 0, &r))
		bail_out("t2");
	uint64_t live_hlc = r.r.hlc;
	kt_rec_free(&r);
	struct kvc_stats st0 = kt_stats(s);

	is_int(kt_delete(s, "t2", 2), 0, "delete t2");
	uint64_t head = kt_head(s);
	is_int(kt_get(s, "t2", 2, 0, &r), -ENOENT, "a deleted key: get -ENOENT");
	struct kt_keys all = {0};
	kt_list_all(s, "t", 1, 0, &all, NULL);
	ok(all.n == 2 && all.len[1] == 2 && !memcmp(all.key[1], "t3", 2), "a deleted key is not listed");
	kt_keys_free(&all);
	kt_cursor_all(s, &all);
	bool in_walk = false;
	for (size_t i = 0; i < all.n; i++)
		in_walk |= all.len[i] == 2 && !memcmp(all.key[i], "t2", 2);
	ok(!in_walk, "a deleted key is skipped by a cursor walk");
	kt_keys_free(&all);

	struct kvc_identity id;
	kvc_store_identity(s, &id);
	if (!is_int(kt_get(s, "t2", 2, KVC_GET_TOMBSTONES, &r), 0, "KVC_GET_TOMBSTONES reads the tombstone"))
		bail_out("no tombstone");
	ok(r.r.flags & KVC_REC_TOMBSTONE, "the tombstone is flagged KVC_REC_TOMBSTONE");
	ok(r.r.value_len == 0 && r.r.metadata == NULL, "the tombstone holds no value or metadata");
	ok(r.r.hlc > live_hlc, "the tombstone has a newer clock than the record it replaced");
	is_int((long long)r.r.seq, (long long)head, "the tombstone has the head's sequence");
	ok(r.r.origin == id.node_id, "the tombstone's origin is this store's node id");
	uint64_t tomb_seq = r.r.seq;
	kt_rec_free(&r);
	struct kvc_stats st = kt_stats(s);
	is_int((long long)st.tombstones, (long long)st0.tombstones + 1, "kvc_stats counts the tombstone");
	is_int((long long)st.keys, (long long)st0.keys - 1, "kvc_stats no longer counts the key as live");

	is_int(kt_delete(s, "t2", 2), -ENOENT, "delete of a deleted key -ENOENT");
	is_int((long long)kt_head(s), (long long)head, "... and writes nothing (head unchanged)");
	is_int(kt_delete(s, "never", 5), -ENOENT, "delete of a key that never existed -ENOENT");
	is_int((long long)kt_head(s), (long long)head, "... and writes nothing (head unchanged)");
	ok(kt_get(s, "never", 5, KVC_GET_TOMBSTONES, &r) == -ENOENT,
	   "delete of a missing key leaves no tombstone");

	/* GC: the default grace keeps it, grace 0 collects it. */
	kvc_txn *txn;
	uint64_t horizon = 99, got = 99;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("txn");
	is_int(kvc_gc_horizon(txn, &horizon), 0, "kvc_gc_horizon reads");
	kvc_txn_abort(txn);
	is_int((long long)horizon, 0, "the GC horizon starts at 0");
	is_int(kvc_gc_tombstones(s, KVC_TOMBSTONE_GRACE_DEFAULT, &got), 0, "GC with the default grace");
	is_int((long long)got, 0, "a fresh tombstone is kept under the 7-day grace");
	kt_sleep_ms(20);
	is_int(kvc_gc_tombstones(s, 0, &got), 0, "GC with grace 0");
	is_int((long long)got, (long long)st.tombstones, "grace 0 collects every tombstone");
	is_int(kt_get(s, "t2", 2, KVC_GET_TOMBSTONES, &r), -ENOENT, "a collected tombstone is gone");
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("txn");
	is_int(kvc_gc_horizon(txn, &horizon), 0, "kvc_gc_horizon after GC");
	const void *k;
	size_t kn;
	struct kvc_record fr;
	int rc = kvc_feed_next(txn, tomb_seq - 1, 0, &k, &kn, &fr);
	ok(rc == -ENOENT || fr.seq != tomb_seq, "the collected tombstone's feed entry is gone");
	kvc_txn_abort(txn);
	is_int((long long)horizon, (long long)tomb_seq, "the GC horizon is the highest collected sequence (t2's tombstone)");
	st = kt_stats(s);
	is_int((long long)st.tombstones, 0, "kvc_stats: no tombstones after GC");
	is_int((long long)st.gc_horizon, (long long)tomb_seq, "kvc_stats reports the GC horizon");
	is_int((long long)kt_head(s), (long long)head, "GC does not move the feed head");
	is_int(kt_check(s), 0, "kvc_check finds nothing after GC");

	/* Many tombstones: the horizon is the highest sequence dropped. */
	uint64_t high = 0;
	for (int i = 0; i < 50; i++) {
		char key[16];
		snprintf(key, sizeof(key), "g%02d", i);
		kt_puts(s, key, "g");
	}
	for (int i = 0; i < 50; i += 2) {
		char key[16];
		snprintf(key, sizeof(key), "g%02d", i);
		kt_delete(s, key, 3);
		high = kt_head(s);
	}
	is_int((long long)kt_stats(s).tombstones, 25, "25 more tombstones");
	kt_sleep_ms(20);
	is_int(kvc_gc_tombstones(s, 0, &got), 0, "GC of 25 tombstones");
	is_int((long long)got, 25, "GC collects exactly the 25");
	is_int((long long)kt_stats(s).gc_horizon, (long long)high, "the horizon rises to the highest sequence dropped");
	is_int((long long)kt_stats(s).keys, (long long)st.keys + 25, "the 25 live g keys remain");
	is_int(kt_puts(s, "t2", "again"), 0, "a key whose tombstone was collected can be written again");
	ok(kt_has(s, "t2", 2, "again", 5), "... and reads back");
}

struct taken {
	char keys[16][16];
	uint64_t seqs[16];
	int n;
	int stop_at;  /* return 1 when this many are taken */
	int refuse_at; /* return -EPERM for the change at this index */
};

static int take_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct taken *t = arg;
	if (t->n == t->refuse_at)
		return -EPERM;
	snprintf(t->keys[t->n], sizeof(t->keys[0]), "%.*s", (int)key_len, (const char *)key);
	t->seqs[t->n] = rec->seq;
	t->n++;
	return t->n == t->stop_at ? 1 : 0;
}

static void test_feed_read(struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "follow", path, sizeof(path)), NULL);
	uint64_t after = 0, head = 77;
	struct taken t = {.stop_at = -1, .refuse_at = -1};
	is_int(kvc_feed_read(s, &after, 0, 0, take_fn, &t, &head), 0, "an empty feed: nothing taken");
	ok(after == 0 && head == 0, "an empty feed: position and head 0");
	for (int i = 0; i < 5; i++) {
		char k[8];
		snprintf(k, sizeof(k), "f%d", i);
		kt_puts(s, k, "v");
	}
	kt_puts(s, "f1", "again"); /* f1 moves to seq 6 */
	kt_delete(s, "f3", 2);     /* f3 moves to seq 7 */
	is_int(kvc_feed_read(s, &after, 2, 0, take_fn, &t, &head), 2, "max 2: two taken");
	ok(after == 3 && head == 7 && t.seqs[0] == 1 && t.seqs[1] == 3,
	   "in seq order, one entry a key: f0@1, f2@3; position 3, head 7 (got %llu)",
	   (unsigned long long)after);
	t.stop_at = 3;
	is_int(kvc_feed_read(s, &after, 0, KVC_GET_NO_VALUE, take_fn, &t, NULL), 1,
	       "a callback returning 1 stops after that change");
	ok(after == 5 && !strcmp(t.keys[2], "f4"), "f4@5 taken, position 5");
	t.stop_at = -1;
	t.refuse_at = 4;
	is_int(kvc_feed_read(s, &after, 0, 0, take_fn, &t, NULL), -EPERM,
	       "a callback's -errno is returned");
	ok(after == 6 && !strcmp(t.keys[3], "f1"), "the changes before it stay taken: position 6");
	t.refuse_at = -1;
	is_int(kvc_feed_read(s, &after, 0, 0, take_fn, &t, &head), 1, "the refused change comes again");
	ok(after == 7 && !strcmp(t.keys[4], "f3"), "f3's delete at 7: position 7");
	is_int(kvc_feed_read(s, &after, 0, 0, take_fn, &t, &head), 0, "at the head: nothing");
	uint64_t past = 8;
	head = 0;
	is_int(kvc_feed_read(s, &past, 0, 0, take_fn, &t, &head), -ESTALE,
	       "a position past the head is -ESTALE");
	ok(past == 8 && head == 7, "which leaves the position and gives the head");
	is_int(kvc_feed_read(s, &after, 0, 0x100, take_fn, &t, NULL), -EINVAL, "an unknown flag");
	kvc_close(s);
}

int main(void)
{
	struct kt_dir d;
	char path[128];
	kvc_store *s = kt_dir_store(&d, NULL, path, sizeof(path));
	test_feed(s);
	test_tombstones(s);
	test_feed_read(&d);
	uint64_t horizon = kt_stats(s).gc_horizon;
	is_int(kt_check(s), 0, "kvc_check finds nothing on the feed store");
	kvc_close(s);
	s = kt_open(path, NULL);
	is_int((long long)kt_stats(s).gc_horizon, (long long)horizon, "the GC horizon persists across reopen");
	kt_check_close(s, "kvc_check finds nothing after reopen");
	kt_dir_remove(&d);
	return done_testing();
}
