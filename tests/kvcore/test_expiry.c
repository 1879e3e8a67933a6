/*
 * test_expiry: proves expiration and ttl: an expired key vanishes at once
 * for get, kvc_list and cursors, before any reaping; kvc_stats counts it as
 * expired_pending; kvc_reap removes exactly the expired records (and with a
 * bound, at most that many), leaving tombstones that keep their clock;
 * writing a value or an mtime re-arms a ttl (expiration = mtime rounded up
 * + ttl); setting an expiration clears the ttl and setting a ttl replaces
 * the expiration; kvc_next_expiration follows the earliest pending one.
 * Reaping 100 expired keys among 10,000 others is checked functionally
 * (exact count, clean kvc_check); timing is the benchmark's business.
 * Stores use min_ttl 1; the test sleeps once, about two seconds.  Prints TAP.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

#define NBIG 10000
#define NEXP 100

static int64_t ceil_sec(int64_t ns)
{
	return (ns + 999999999) / 1000000000;
}

static int put_ttl(kvc_store *s, const char *key, uint32_t ttl)
{
	struct kvc_write w = {.set = KVC_SET_VALUE | KVC_SET_TTL, .value = key,
			      .value_len = strlen(key), .ttl = ttl};
	return kt_write(s, key, strlen(key), &w, NULL, 0);
}

static int64_t expiration_of(kvc_store *s, const char *key, unsigned flags)
{
	struct kt_rec r;
	if (kt_get(s, key, strlen(key), flags, &r))
		return -1;
	int64_t e = r.r.expiration;
	kt_rec_free(&r);
	return e;
}

static int64_t next_expiration(kvc_store *s)
{
	kvc_txn *txn;
	int64_t e = -1;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		return -1;
	if (kvc_next_expiration(txn, &e))
		e = -1;
	kvc_txn_abort(txn);
	return e;
}

struct big {
	unsigned from, to;
	uint32_t ttl;
	const char *prefix;
};

static int big_fn(kvc_txn *txn, void *arg)
{
	struct big *b = arg;
	for (unsigned i = b->from; i < b->to; i++) {
		char k[32];
		int n = snprintf(k, sizeof(k), "%s%05u", b->prefix, i);
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = k, .value_len = (size_t)n};
		if (b->ttl) {
			w.set |= KVC_SET_TTL;
			w.ttl = b->ttl;
		}
		int rc = kvc_write(txn, k, (size_t)n, &w);
		if (rc)
			return rc;
	}
	return 0;
}

static bool in_listing(kvc_store *s, const char *key, bool by_cursor)
{
	struct kt_keys all = {0};
	int rc = by_cursor ? kt_cursor_all(s, &all) : kt_list_all(s, "", 0, 0, &all, NULL);
	bool found = false;
	for (size_t i = 0; !rc && i < all.n; i++)
		if (all.len[i] == strlen(key) && !memcmp(all.key[i], key, all.len[i]))
			found = true;
	kt_keys_free(&all);
	return found;
}

static void test_rearm(kvc_store *s)
{
	struct kt_rec r;
	is_int(put_ttl(s, "r", 100), 0, "write with ttl 100");
	if (kt_get(s, "r", 1, 0, &r))
		bail_out("r");
	is_int(r.r.ttl, 100, "ttl 100 is stored");
	is_int(r.r.expiration, ceil_sec(r.r.mtime_ns) + 100, "expiration = mtime (rounded up) + ttl");
	int64_t first = r.r.expiration;
	kt_rec_free(&r);

	int64_t later = kvc_now_ns() + 50 * 1000000000ll + 123;
	struct kvc_write m = {.set = KVC_SET_MTIME, .mtime_ns = later};
	is_int(kt_write(s, "r", 1, &m, NULL, 0), 0, "KVC_SET_MTIME 50 s ahead (a touch)");
	if (kt_get(s, "r", 1, 0, &r))
		bail_out("r");
	is_int(r.r.mtime_ns, later, "KVC_SET_MTIME stores the mtime given");
	is_int(r.r.expiration, ceil_sec(later) + 100, "KVC_SET_MTIME re-arms: expiration = mtime + ttl");
	ok(r.r.expiration >= first + 49, "the touch moved the expiration forward");
	is_int(r.r.ttl, 100, "a touch keeps the ttl");
	ok(!strcmp(r.value, "r"), "a touch keeps the value");
	kt_rec_free(&r);

	/* Setting an expiration clears the ttl; a value write then does not
	 * move it. */
	int64_t abs_exp = kvc_now_ns() / 1000000000 + 5000;
	struct kvc_write e = {.set = KVC_SET_EXPIRATION, .expiration = abs_exp};
	is_int(kt_write(s, "r", 1, &e, NULL, 0), 0, "KVC_SET_EXPIRATION on a ttl key");
	if (kt_get(s, "r", 1, 0, &r))
		bail_out("r");
	is_int(r.r.ttl, 0, "setting an expiration clears the ttl");
	is_int(r.r.expiration, abs_exp, "the expiration is the one given");
	kt_rec_free(&r);
	struct kvc_write v = {.set = KVC_SET_VALUE, .value = "v2", .value_len = 2};
	is_int(kt_write(s, "r", 1, &v, NULL, 0), 0, "value write to a key with an expiration");
	is_int(expiration_of(s, "r", 0), abs_exp, "an absolute expiration is not re-armed by a write");

	/* Setting a ttl replaces the expiration. */
	struct kvc_write t = {.set = KVC_SET_TTL, .ttl = 300};
	is_int(kt_write(s, "r", 1, &t, NULL, 0), 0, "KVC_SET_TTL on a key with an expiration");
	if (kt_get(s, "r", 1, 0, &r))
		bail_out("r");
	is_int(r.r.ttl, 300, "the ttl is set");
	is_int(r.r.expiration, ceil_sec(r.r.mtime_ns) + 300, "setting a ttl sets expiration = mtime + ttl");
	kt_rec_free(&r);
	t.ttl = 0;
	is_int(kt_write(s, "r", 1, &t, NULL, 0), 0, "KVC_SET_TTL 0");
	if (kt_get(s, "r", 1, 0, &r))
		bail_out("r");
	ok(r.r.ttl == 0 && r.r.expiration == 0, "ttl 0 clears the ttl and the expiration");
	kt_rec_free(&r);
	is_int(kt_write(s, "r", 1, &e, NULL, 0), 0, "an expiration again");
	e.expiration = 0;
	is_int(kt_write(s, "r", 1, &e, NULL, 0), 0, "KVC_SET_EXPIRATION 0");
	is_int(expiration_of(s, "r", 0), 0, "expiration 0 clears the expiration");

	struct kvc_record rec = {.expiration = 100};
	ok(!kvc_record_expired(&rec, 99999999999ll), "kvc_record_expired: not before its second");
	ok(kvc_record_expired(&rec, 100000000000ll), "kvc_record_expired: expired at its second");
	rec.expiration = 0;
	ok(!kvc_record_expired(&rec, INT64_MAX), "kvc_record_expired: expiration 0 never expires");
}

static void test_next_expiration(const struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open_ttl1(kt_dir_sub(d, "next", path, sizeof(path)));
	is_int(next_expiration(s), 0, "kvc_next_expiration is 0 with nothing expiring");
	is_int(kt_puts(s, "plain", "p"), 0, "fixture: a key without expiry");
	is_int(next_expiration(s), 0, "a key without expiry does not count");
	int64_t now = kvc_now_ns() / 1000000000;
	struct kvc_write e = {.set = KVC_SET_EXPIRATION, .expiration = now + 500};
	is_int(kt_write(s, "a", 1, &e, NULL, 0), 0, "fixture: a expires in 500 s");
	e.expiration = now + 200;
	is_int(kt_write(s, "b", 1, &e, NULL, 0), 0, "fixture: b expires in 200 s");
	is_int(put_ttl(s, "c", 300), 0, "fixture: c has ttl 300");
	is_int(next_expiration(s), now + 200, "kvc_next_expiration gives the earliest (b)");
	is_int(kt_delete(s, "b", 1), 0, "delete b");
	is_int(next_expiration(s), expiration_of(s, "c", 0), "after deleting b: c's expiration");
	struct kvc_write t = {.set = KVC_SET_TTL, .ttl = 0};
	is_int(kt_write(s, "c", 1, &t, NULL, 0), 0, "clear c's ttl");
	is_int(next_expiration(s), now + 500, "after clearing c's ttl: a's expiration");
	e.expiration = now + 100;
	is_int(kt_write(s, "a", 1, &e, NULL, 0), 0, "move a's expiration earlier");
	is_int(next_expiration(s), now + 100, "kvc_next_expiration follows the change");
	is_int(kt_check(s), 0, "kvc_check finds nothing on the next-expiration store");
	kvc_close(s);
}

int main(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	char path[128], bigpath[128];
	kvc_store *s = kt_open_ttl1(kt_dir_sub(&d, "store", path, sizeof(path)));
	kvc_store *big = kt_open_ttl1(kt_dir_sub(&d, "big", bigpath, sizeof(bigpath)));

	test_rearm(s);
	test_next_expiration(&d);

	/* Phase 1: write what will expire, in both stores, then sleep once. */
	static const char *const doomed[] = {"e:1", "e:2", "e:3", "e:4", "e:5"};
	for (int i = 0; i < 5; i++)
		is_int(put_ttl(s, doomed[i], 1), 0, "write %s with ttl 1", doomed[i]);
	int64_t now = kvc_now_ns() / 1000000000;
	struct kvc_write x = {.set = KVC_SET_VALUE | KVC_SET_EXPIRATION, .value = "x",
			      .value_len = 1, .expiration = now + 2};
	is_int(kt_write(s, "x:1", 3, &x, NULL, 0), 0, "write x:1 with expiration now + 2");
	is_int(put_ttl(s, "keep", 3600), 0, "write keep with ttl 3600");
	is_int(kt_puts(s, "plain", "p"), 0, "write plain without expiry");
	is_int(put_ttl(s, "rearm", 100), 0, "write rearm with ttl 100");
	int64_t rearm_before = expiration_of(s, "rearm", 0);

	struct big fill = {0, NBIG, 0, "k:"};
	is_int(kvc_write_txn(big, big_fn, &fill, NULL, 0), 0, "big store: %d keys without expiry", NBIG);
	struct big doom = {0, NEXP, 1, "z:"};
	is_int(kvc_write_txn(big, big_fn, &doom, NULL, 0), 0, "big store: %d keys with ttl 1", NEXP);

	ok(expiration_of(s, "e:1", 0) > 0 && in_listing(s, "e:1", false) && in_listing(s, "e:1", true),
	   "before expiry: a ttl-1 key is visible to get, list and cursor");
	struct kvc_stats st = kt_stats(s);
	is_int((long long)st.expired_pending, 0, "before expiry: expired_pending is 0");
	is_int((long long)st.keys, 10, "before expiry: kvc_stats counts 10 live keys");
	int64_t last = expiration_of(s, "x:1", 0);
	for (int i = 0; i < 5; i++)
		if (expiration_of(s, doomed[i], 0) > last)
			last = expiration_of(s, doomed[i], 0);
	int64_t big_last = expiration_of(big, "z:00099", 0);
	is_int(next_expiration(s), expiration_of(s, "e:1", 0), "kvc_next_expiration gives e:1's expiration");

	kt_sleep_past(last > big_last ? last : big_last);

	/* Phase 2: expired, not yet reaped. */
	for (int i = 0; i < 5; i++) {
		struct kt_rec r;
		is_int(kt_get(s, doomed[i], 3, 0, &r), -ENOENT, "expired %s: get -ENOENT before reaping",
		       doomed[i]);
	}
	struct kt_rec r;
	is_int(kt_get(s, "x:1", 3, 0, &r), -ENOENT, "key past its absolute expiration: get -ENOENT");
	ok(!in_listing(s, "e:1", false) && !in_listing(s, "x:1", false),
	   "expired keys are absent from kvc_list before reaping");
	ok(!in_listing(s, "e:2", true) && !in_listing(s, "x:1", true),
	   "expired keys are absent from a cursor walk before reaping");
	ok(in_listing(s, "keep", false) && in_listing(s, "plain", true), "unexpired keys still listed");
	if (!is_int(kt_get(s, "e:3", 3, KVC_GET_EXPIRED, &r), 0, "KVC_GET_EXPIRED still returns e:3"))
		memset(&r, 0, sizeof(r));
	ok(r.value && !strcmp(r.value, "e:3") && kvc_record_expired(&r.r, kvc_now_ns()),
	   "KVC_GET_EXPIRED: the record is intact and kvc_record_expired says so");
	kt_rec_free(&r);
	st = kt_stats(s);
	is_int((long long)st.expired_pending, 6, "kvc_stats: expired_pending counts the 6 expired keys");
	is_int((long long)st.keys, 4, "kvc_stats: keys counts only the 4 live keys");

	uint64_t head = kt_head(s);
	is_int(kt_delete(s, "e:5", 3), -ENOENT, "delete of an expired key -ENOENT");
	is_int((long long)kt_head(s), (long long)head, "delete of an expired key writes nothing");
	struct kvc_write c = {.set = KVC_SET_VALUE | KVC_CREATE, .value = "new", .value_len = 3};
	is_int(kt_write(s, "e:4", 3, &c, NULL, 0), 0, "KVC_CREATE over an expired key succeeds");
	ok(kt_has(s, "e:4", 3, "new", 3), "the re-created key is live with its new value");
	is_int(expiration_of(s, "e:4", 0), 0, "the re-created key has no expiry");

	struct kvc_write v = {.set = KVC_SET_VALUE, .value = "again", .value_len = 5};
	is_int(kt_write(s, "rearm", 5, &v, NULL, 0), 0, "value write to the ttl-100 key after the sleep");
	if (!kt_get(s, "rearm", 5, 0, &r)) {
		ok(r.r.expiration > rearm_before, "a value write re-arms the ttl: expiration moved forward");
		is_int(r.r.expiration, ceil_sec(r.r.mtime_ns) + 100, "re-armed expiration = new mtime + ttl");
		kt_rec_free(&r);
	}

	struct kvc_record before;
	kvc_txn *txn;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn) || kvc_get(txn, "e:1", 3, KVC_GET_EXPIRED, &before))
		bail_out("e:1");
	uint64_t e1_hlc = before.hlc, e1_origin = before.origin;
	kvc_txn_abort(txn);

	/* Phase 3: reap. */
	uint64_t reaped = 999;
	is_int(kvc_reap(s, 0, &reaped), 0, "kvc_reap runs");
	is_int((long long)reaped, 5, "kvc_reap removes exactly the 5 still-expired records");
	st = kt_stats(s);
	is_int((long long)st.expired_pending, 0, "after reaping: expired_pending is 0");
	is_int((long long)st.keys, 5, "after reaping: the 5 live keys remain");
	is_int((long long)st.tombstones, 5, "after reaping: each reaped record is a tombstone");
	ok(kt_has(s, "keep", 4, "keep", 4) && kt_has(s, "plain", 5, "p", 1) && kt_has(s, "e:4", 3, "new", 3),
	   "after reaping: unexpired keys intact");
	if (!kt_get(s, "e:1", 3, KVC_GET_TOMBSTONES, &r)) {
		ok(r.r.flags & KVC_REC_TOMBSTONE, "a reaped key reads as a tombstone");
		ok(r.r.hlc == e1_hlc && r.r.origin == e1_origin,
		   "a reaped key's tombstone keeps the record's last clock and origin");
		kt_rec_free(&r);
	} else {
		ok(false, "a reaped key reads as a tombstone");
	}
	reaped = 999;
	is_int(kvc_reap(s, 0, &reaped), 0, "kvc_reap again");
	is_int((long long)reaped, 0, "a second kvc_reap finds nothing");
	int64_t keep_exp = expiration_of(s, "keep", 0), rearm_exp = expiration_of(s, "rearm", 0);
	is_int(next_expiration(s), keep_exp < rearm_exp ? keep_exp : rearm_exp,
	       "after reaping kvc_next_expiration gives the earliest unexpired one");
	is_int(kt_check(s), 0, "kvc_check finds nothing after reaping");

	/* The big store: 100 expired among 10,000 live keys. */
	st = kt_stats(big);
	is_int((long long)st.expired_pending, NEXP, "big store: 100 expired pending among 10,000");
	reaped = 0;
	is_int(kvc_reap(big, 30, &reaped), 0, "big store: kvc_reap with max 30");
	is_int((long long)reaped, 30, "kvc_reap with max 30 removes exactly 30");
	is_int((long long)kt_stats(big).expired_pending, NEXP - 30, "70 remain pending");
	is_int(kvc_reap(big, 0, &reaped), 0, "big store: kvc_reap without a bound");
	is_int((long long)reaped, NEXP - 30, "kvc_reap removes exactly the 70 remaining (100 in all)");
	is_int((long long)kt_stats(big).tombstones, NEXP, "big store: 100 tombstones, one per reaped key");
	st = kt_stats(big);
	is_int((long long)st.keys, NBIG, "big store: all 10,000 unexpired keys remain");
	is_int((long long)st.expired_pending, 0, "big store: none pending");
	ok(kt_has(big, "k:00000", 7, "k:00000", 7) && kt_has(big, "k:09999", 7, "k:09999", 7),
	   "big store: unexpired keys read back");
	is_int(kt_check(big), 0, "kvc_check finds nothing on the big store after reaping");

	kvc_close(s);
	kvc_close(big);
	kt_dir_remove(&d);
	return done_testing();
}
