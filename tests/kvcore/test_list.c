/*
 * test_list: proves Workers KV list paging on kvc_list: a prefix selects
 * exactly the keys starting with it (the key equal to the prefix included,
 * neighbours just outside excluded), pages of any limit concatenate to the
 * full listing, the last page says the listing is complete, and a listing
 * that runs while keys are inserted (before and after the cursor) and
 * deleted between pages never returns a key twice and never misses a key
 * that was present throughout.  Malformed cursors are refused with -EINVAL
 * and the callback's non-zero return stops a page.  Prints TAP.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

#define SPAN 4000 /* key numbers 0..SPAN-1 under "p:" */

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint32_t rnd(uint32_t n)
{
	return kt_rnd(&rng, n);
}

static size_t pkey(unsigned i, char *out)
{
	return (size_t)sprintf(out, "p:%05u", i);
}

static int put_fn(kvc_txn *txn, void *arg)
{
	const char *const *keys = arg;
	for (size_t i = 0; keys[i]; i++) {
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = "x", .value_len = 1};
		int rc = kvc_write(txn, keys[i], strlen(keys[i]), &w);
		if (rc)
			return rc;
	}
	return 0;
}

struct range {
	unsigned from, to, step;
};

static int put_range_fn(kvc_txn *txn, void *arg)
{
	struct range *r = arg;
	for (unsigned i = r->from; i < r->to; i += r->step) {
		char k[16];
		size_t n = pkey(i, k);
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = k, .value_len = n};
		int rc = kvc_write(txn, k, n, &w);
		if (rc)
			return rc;
	}
	return 0;
}

static int stop_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	return ++(*(unsigned *)arg) == 3 ? 42 : 0;
}

static void test_prefix_and_pages(kvc_store *s)
{
	static const char *const outside[] = {"p", "p;", "p9", "o:99999", "q:", "q:00000",
					      "P:00001", NULL};
	is_int(kvc_write_txn(s, put_fn, (void *)outside, NULL, 0), 0, "fixture: keys just outside p:");
	static const char *const exact[] = {"p:", NULL};
	is_int(kvc_write_txn(s, put_fn, (void *)exact, NULL, 0), 0, "fixture: the key equal to the prefix");
	struct range r = {0, SPAN, 2};
	is_int(kvc_write_txn(s, put_range_fn, &r, NULL, 0), 0, "fixture: 2000 keys under p:");

	struct kt_keys want = {0};
	kt_keys_add(&want, "p:", 2);
	for (unsigned i = 0; i < SPAN; i += 2) {
		char k[16];
		kt_keys_add(&want, k, pkey(i, k));
	}
	static const unsigned limits[] = {1, 3, 100, 999, 1000, 0};
	for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
		struct kt_keys got = {0};
		unsigned pages = 0, lim = limits[l] ? limits[l] : 1000;
		is_int(kt_list_all(s, "p:", 2, limits[l], &got, &pages), 0, "prefix p:, limit %u: listing runs",
		       limits[l]);
		ok(kt_keys_equal(&got, &want),
		   "prefix p:, limit %u: pages concatenate to exactly the keys under p:", limits[l]);
		unsigned full = (unsigned)((want.n + lim - 1) / lim);
		/* An exact multiple may need one more (empty) page to say "complete". */
		ok(pages == full || pages == full + 1, "prefix p:, limit %u: %u pages for %zu keys",
		   limits[l], pages, want.n);
		kt_keys_free(&got);
	}
	kt_keys_free(&want);

	struct kt_keys got = {0};
	is_int(kt_list_all(s, "", 0, 0, &got, NULL), 0, "empty prefix lists everything");
	is_int((long long)got.n, 2001 + 7, "empty prefix: every key of the store");
	kt_keys_free(&got);
	is_int(kt_list_all(s, "p:0001", 6, 0, &got, NULL), 0, "prefix p:0001 runs");
	is_int((long long)got.n, 5, "prefix p:0001: p:00010..p:00018, the even ones");
	kt_keys_free(&got);
	is_int(kt_list_all(s, "zz", 2, 0, &got, NULL), 0, "a prefix matching nothing runs");
	is_int((long long)got.n, 0, "a prefix matching nothing lists nothing");
	kt_keys_free(&got);

	kvc_txn *txn = kt_read_txn(s);
	char next[KVC_CURSOR_MAX];
	unsigned n = 0;
	is_int(kt_list_count(txn, "zz", NULL, 10, &n, next), 0, "empty listing");
	is_str(next, "", "an empty listing is complete");
	n = 0;
	is_int(kvc_list(txn, "p:", 2, NULL, 100, stop_fn, &n, next), 42,
	       "a non-zero return from the callback stops the page and is returned");
	is_int(n, 3, "the callback is not called after it said stop");

	/* A cursor for a position past the last key: an empty, complete page. */
	char last[KVC_CURSOR_MAX];
	is_int(kt_list_count(txn, "p:0399", NULL, 4, &n, last), 0, "page of 4 under p:0399");
	ok(n == 4 && last[0], "page of 4 of 5 keys gives a cursor");
	is_int(kt_list_count(txn, "p:0399", last, 4, &n, next), 0, "the page after it");
	ok(n == 1 && next[0] == 0, "the page after holds the last key and is complete");
	kvc_txn_abort(txn);
}

static void test_long_key_cursor(kvc_store *s)
{
	/* The largest cursor: after a 512-byte key of four-byte characters. */
	char key[KVC_KEY_MAX];
	for (int i = 0; i < 128; i++)
		memcpy(key + 4 * i, "\xF4\x8F\xBF\xBF", 4);
	is_int(kt_put(s, key, 512, "v", 1), 0, "fixture: 512-byte key of U+10FFFF");
	key[511] = (char)0xBE;
	is_int(kt_put(s, key, 512, "v", 1), 0, "fixture: its neighbour");
	kvc_txn *txn = kt_read_txn(s);
	char next[KVC_CURSOR_MAX + 64];
	memset(next, 'Z', sizeof(next));
	unsigned n = 0;
	is_int(kt_list_count(txn, "\xF4", NULL, 1, &n, next), 0, "page of one 512-byte key");
	size_t len = strnlen(next, sizeof(next));
	ok(len > 0 && len < KVC_CURSOR_MAX, "its cursor fits in KVC_CURSOR_MAX (%zu bytes + NUL)", len);
	char cur[KVC_CURSOR_MAX];
	memcpy(cur, next, len + 1);
	is_int(kt_list_count(txn, "\xF4", cur, 1, &n, next), 0, "the next page");
	is_int(n, 1, "the next page holds the other 512-byte key");
	kvc_txn_abort(txn);
}

static void test_malformed(kvc_store *s)
{
	static const char *const bad[] = {"garbage!", "1", "x", "1@@@@", "1A", "2AAAA", "1AAA=",
					  "1 AAA", "1AA\xC3\xA9", NULL};
	kvc_txn *txn = kt_read_txn(s);
	char next[KVC_CURSOR_MAX];
	for (size_t i = 0; bad[i]; i++) {
		unsigned n = 0;
		is_int(kt_list_count(txn, "p:", bad[i], 10, &n, next), -EINVAL,
		       "malformed cursor \"%s\" -EINVAL", bad[i]);
		is_int(n, 0, "malformed cursor \"%s\": no key listed", bad[i]);
	}
	/* Longer than any cursor kvc_list produces. */
	char huge[2 * KVC_CURSOR_MAX];
	huge[0] = '1';
	memset(huge + 1, 'A', sizeof(huge) - 2);
	huge[sizeof(huge) - 1] = 0;
	unsigned n = 0;
	is_int(kt_list_count(txn, "p:", huge, 10, &n, next), -EINVAL,
	       "cursor of %zu bytes -EINVAL", sizeof(huge) - 1);
	kvc_txn_abort(txn);
}

struct seen {
	struct kt_keys keys;
};

static int collect_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	kt_keys_add(arg, key, key_len);
	return 0;
}

static int key_num(const void *key, size_t len)
{
	char digits[6];
	if (len != 7 || memcmp(key, "p:", 2))
		return -1;
	memcpy(digits, (const char *)key + 2, 5);
	digits[5] = 0;
	return atoi(digits);
}

struct mutate {
	const unsigned *ins;
	size_t nins;
	const unsigned *del;
	size_t ndel;
};

static int mutate_fn(kvc_txn *txn, void *arg)
{
	struct mutate *m = arg;
	for (size_t i = 0; i < m->nins; i++) {
		char k[16];
		size_t n = pkey(m->ins[i], k);
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = "n", .value_len = 1};
		int rc = kvc_write(txn, k, n, &w);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < m->ndel; i++) {
		char k[16];
		size_t n = pkey(m->del[i], k);
		int rc = kvc_delete(txn, k, n);
		if (rc && rc != -ENOENT)
			return rc;
	}
	return 0;
}

/*
 * Page through p: while inserting and deleting between pages.  present[i]
 * tracks the key p:i now; ever[i] whether it was present at any time,
 * throughout[i] whether it was present at every moment.
 */
static void test_concurrent_paging(kvc_store *s)
{
	static bool present[SPAN], ever[SPAN], throughout[SPAN];
	for (unsigned i = 0; i < SPAN; i++) {
		char k[16];
		size_t n = pkey(i, k);
		present[i] = !kt_absent(s, k, n);
		ever[i] = throughout[i] = present[i];
	}
	char cursor[KVC_CURSOR_MAX] = "", next[KVC_CURSOR_MAX];
	struct kt_keys got = {0};
	int pages = 0, rc = 0, last = -1;
	size_t inserted = 0, removed = 0;
	do {
		kvc_txn *txn;
		if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
			bail_out("read txn");
		size_t before = got.n;
		rc = kvc_list(txn, "p:", 2, cursor, 37, collect_fn, &got, next);
		kvc_txn_abort(txn);
		if (rc)
			break;
		pages++;
		if (got.n > before)
			last = key_num(got.key[got.n - 1], got.len[got.n - 1]);
		memcpy(cursor, next, sizeof(cursor));

		/* Between pages: insert 6 keys (3 before, 3 after the cursor)
		 * and delete 4 (2 each side; and sometimes the key the cursor
		 * stands on). */
		unsigned ins[6], del[5];
		size_t ndel = 0;
		for (int j = 0; j < 6; j++) {
			unsigned lo = j < 3 ? 0 : (unsigned)(last + 1);
			unsigned hi = j < 3 ? (unsigned)(last + 1) : SPAN;
			if (lo >= hi || last < 0)
				lo = 0, hi = SPAN;
			ins[j] = lo + rnd(hi - lo);
		}
		for (int j = 0; j < 4; j++) {
			unsigned lo = j < 2 ? 0 : (unsigned)(last + 1);
			unsigned hi = j < 2 ? (unsigned)(last + 1) : SPAN;
			if (lo >= hi || last < 0)
				lo = 0, hi = SPAN;
			del[ndel++] = lo + rnd(hi - lo);
		}
		if (last >= 0 && pages % 3 == 0)
			del[ndel++] = (unsigned)last;
		struct mutate m = {ins, 6, del, ndel};
		if (kvc_write_txn(s, mutate_fn, &m, NULL, 0))
			bail_out("mutation between pages failed");
		for (int j = 0; j < 6; j++) {
			inserted += !present[ins[j]];
			present[ins[j]] = ever[ins[j]] = true;
		}
		for (size_t j = 0; j < ndel; j++) {
			bool was = present[del[j]];
			/* An insert and a delete of one key in one txn: the delete ran last. */
			removed += was;
			present[del[j]] = false;
			throughout[del[j]] = false;
		}
	} while (cursor[0] && pages < 10000);
	is_int(rc, 0, "paging while mutating: every page lists");
	diag("%d pages, %zu keys returned, %zu inserted and %zu deleted between pages", pages,
	     got.n, inserted, removed);

	bool sorted = true;
	for (size_t i = 1; i < got.n; i++)
		if (kt_key_cmp(got.key[i - 1], got.len[i - 1], got.key[i], got.len[i]) >= 0)
			sorted = false;
	ok(sorted, "paging while mutating: keys strictly increase across pages (none twice)");
	static bool returned[SPAN];
	size_t phantom = 0, missed = 0;
	for (size_t i = 0; i < got.n; i++) {
		int k = key_num(got.key[i], got.len[i]);
		if (k < 0) {
			if (!(got.len[i] == 2 && !memcmp(got.key[i], "p:", 2)))
				phantom++;
			continue;
		}
		if (!ever[k])
			phantom++;
		returned[k] = true;
	}
	size_t held = 0;
	for (unsigned i = 0; i < SPAN; i++) {
		held += throughout[i];
		if (throughout[i] && !returned[i]) {
			if (missed++ < 5)
				diag("  missed p:%05u", i);
		}
	}
	is_int((long long)missed, 0, "paging while mutating: all %zu keys present throughout were listed",
	       held);
	is_int((long long)phantom, 0, "paging while mutating: no key listed that never existed");
	kt_keys_free(&got);

	struct kt_keys now = {0}, want = {0};
	is_int(kt_list_all(s, "p:", 2, 0, &now, NULL), 0, "listing after the mutations");
	kt_keys_add(&want, "p:", 2);
	for (unsigned i = 0; i < SPAN; i++) {
		char k[16];
		if (present[i])
			kt_keys_add(&want, k, pkey(i, k));
	}
	ok(kt_keys_equal(&now, &want), "a fresh listing shows exactly the keys present now");
	kt_keys_free(&now);
	kt_keys_free(&want);
}

int main(void)
{
	struct kt_dir d;
	kvc_store *s = kt_dir_store(&d, NULL, NULL, 0);

	test_prefix_and_pages(s);
	test_long_key_cursor(s);
	test_malformed(s);
	test_concurrent_paging(s);
	is_int(kt_check(s), 0, "kvc_check finds nothing on the list store");
	kvc_close(s);
	kt_dir_remove(&d);
	return done_testing();
}
