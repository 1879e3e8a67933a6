/*
 * test_order: proves that keys list in bytewise order whatever their length
 * and characters, with kvc_list, kvc_cursor_* and kvc_scan, compared
 * against qsort() with memcmp.  The key set is built to hit the store's
 * hard case (LMDB takes 511-byte keys, kvcore takes 512): families of 511-
 * and 512-byte keys sharing their first 511 bytes, 511-byte keys sharing
 * their first 510, 510-byte keys that are prefixes of them, long keys whose
 * 511th byte falls inside a multi-byte character, NUL and DEL bytes, plus
 * random keys of multi-byte UTF-8.  Each key is then read, overwritten and
 * deleted on its own, and its neighbours must not notice.  Prints TAP.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

struct key {
	unsigned char b[KVC_KEY_MAX];
	size_t n;
	int state; /* 0 original value, 1 overwritten, 2 deleted */
};

struct keyset {
	struct key *k;
	size_t n, cap;
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
	return kt_rnd(&rng, n);
}

static void add(struct keyset *s, const void *b, size_t n)
{
	if (kvc_key_check(b, n))
		bail_out("fixture produced an invalid key");
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->k = realloc(s->k, s->cap * sizeof(*s->k));
		if (!s->k)
			bail_out("out of memory");
	}
	memcpy(s->k[s->n].b, b, n);
	s->k[s->n].n = n;
	s->k[s->n].state = 0;
	s->n++;
}

static int key_qsort_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	return kt_key_cmp(x->b, x->n, y->b, y->n);
}

/* Sort and drop duplicates. */
static void normalize(struct keyset *s)
{
	qsort(s->k, s->n, sizeof(*s->k), key_qsort_cmp);
	size_t w = 0;
	for (size_t i = 0; i < s->n; i++)
		if (w == 0 || key_qsort_cmp(&s->k[w - 1], &s->k[i]) != 0)
			s->k[w++] = s->k[i];
	s->n = w;
}

static const char *const chars[] = {
	"a", "b", "z", "A", "0", ":", "/", " ", "~", "\x01", "\x7F", "\xC2\x80", "\xC3\xA9",
	"\xDF\xBF", "\xE0\xA0\x80", "\xE2\x82\xAC", "\xEF\xBF\xBF", "\xF0\x90\x80\x80",
	"\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",
};

/* Append random characters to @b (at @n) up to exactly @len bytes, ASCII
 * where a multi-byte character would not fit. */
static size_t fill_random(unsigned char *b, size_t n, size_t len)
{
	while (n < len) {
		const char *c = chars[rnd(sizeof(chars) / sizeof(chars[0]))];
		size_t cn = strlen(c);
		if (n + cn > len) {
			c = "m";
			cn = 1;
		}
		memcpy(b + n, c, cn);
		n += cn;
	}
	return n;
}

static void build_keys(struct keyset *s)
{
	unsigned char b[KVC_KEY_MAX + 8];

	/* Random keys of every length class, multi-byte characters included. */
	static const size_t lens[] = {1, 2, 3, 5, 16, 100, 255, 256, 400, 509, 510, 511, 512};
	for (int i = 0; i < 400; i++) {
		size_t len = lens[rnd(sizeof(lens) / sizeof(lens[0]))];
		add(s, b, fill_random(b, 0, len));
	}

	/* Families around one 511-byte base: the base, 512-byte keys sharing
	 * its 511 bytes (tails NUL, control, ASCII, DEL), 511-byte keys
	 * sharing its first 510 bytes, and its prefixes. */
	for (int f = 0; f < 12; f++) {
		unsigned char base[KVC_KEY_MAX];
		/* Families 0-5 share their first 400 bytes, so they interleave. */
		size_t n = 0;
		if (f < 6) {
			memset(base, 'q', 400);
			n = 400;
		}
		n = fill_random(base, n, 505);
		for (; n < 511; n++)
			base[n] = (unsigned char)('a' + rnd(26));
		add(s, base, 511);
		static const unsigned char tails[] = {0x00, 0x01, 0x1F, ' ', '0', 'A', 'Z', 'a',
						      'm', 'z', '~', 0x7F};
		for (size_t t = 0; t < sizeof(tails); t++) {
			memcpy(b, base, 511);
			b[511] = tails[t];
			add(s, b, 512);
		}
		for (int t = 0; t < 8; t++) {
			memcpy(b, base, 510);
			b[510] = (unsigned char)(0x20 + rnd(0x5F));
			add(s, b, 511);
			b[511] = (unsigned char)(0x20 + rnd(0x5F));
			add(s, b, 512);
		}
		static const size_t cuts[] = {510, 509, 400, 100, 1};
		for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++)
			if (kvc_key_check(base, cuts[c]) == 0)
				add(s, base, cuts[c]);
	}

	/* 512-byte keys whose 511th byte is inside a character, so the
	 * stored 511 bytes are not UTF-8 and only the tail completes it. */
	memset(b, 'w', 512);
	for (unsigned t = 0x80; t <= 0xBF; t += 0x0D) {
		b[510] = 0xC3;
		b[511] = (unsigned char)t;
		add(s, b, 512);
		b[509] = 0xE2;
		b[510] = 0x82;
		add(s, b, 512);
		b[508] = 0xF0;
		b[509] = 0x9F;
		b[510] = 0x98;
		add(s, b, 512);
		memset(b + 508, 'w', 4);
	}
	add(s, b, 510);
	b[510] = 'v';
	add(s, b, 511);
	b[510] = 'x';
	add(s, b, 511);
	b[511] = 'x';
	add(s, b, 512);
	normalize(s);
}

/* A key's value tells which key (and which version) it belongs to. */
static size_t value_of(const struct key *k, int version, unsigned char *out)
{
	out[0] = (unsigned char)('0' + version);
	memcpy(out + 1, k->b, k->n);
	return k->n + 1;
}

struct write_arg {
	struct keyset *s;
	size_t *order;
	size_t from, to;
	int version;
};

static int write_fn(kvc_txn *txn, void *arg)
{
	struct write_arg *a = arg;
	unsigned char v[KVC_KEY_MAX + 1];
	for (size_t i = a->from; i < a->to; i++) {
		struct key *k = &a->s->k[a->order[i]];
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = v,
				      .value_len = value_of(k, a->version, v)};
		int rc = kvc_write(txn, k->b, k->n, &w);
		if (rc)
			return rc;
	}
	return 0;
}

/* The expected live listing: every key not deleted, in sorted order. */
static void expected_live(const struct keyset *s, struct kt_keys *ret)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->k[i].state != 2)
			kt_keys_add(ret, s->k[i].b, s->k[i].n);
}

static bool strictly_sorted(const struct kt_keys *k)
{
	for (size_t i = 1; i < k->n; i++)
		if (kt_key_cmp(k->key[i - 1], k->len[i - 1], k->key[i], k->len[i]) >= 0)
			return false;
	return true;
}

static void check_listings(kvc_store *st, const struct keyset *s, const char *when)
{
	struct kt_keys want = {0}, got = {0};
	expected_live(s, &want);

	is_int(kt_cursor_all(st, &got), 0, "%s: cursor walk runs", when);
	ok(strictly_sorted(&got), "%s: cursor walk is strictly increasing (memcmp)", when);
	ok(kt_keys_equal(&got, &want), "%s: cursor walk equals qsort/memcmp order (%zu keys)", when,
	   want.n);
	kt_keys_free(&got);

	static const unsigned limits[] = {0, 7, 1000};
	for (size_t l = 0; l < 3; l++) {
		unsigned pages = 0;
		is_int(kt_list_all(st, "", 0, limits[l], &got, &pages), 0,
		       "%s: kvc_list pages of limit %u run", when, limits[l]);
		ok(kt_keys_equal(&got, &want),
		   "%s: kvc_list pages of limit %u concatenate to the sorted listing (%u pages)",
		   when, limits[l], pages);
		kt_keys_free(&got);
	}
	kt_keys_free(&want);
}

static void check_prefix(kvc_store *st, const struct keyset *s, const void *prefix, size_t pn,
			 const char *what)
{
	struct kt_keys want = {0}, got = {0};
	for (size_t i = 0; i < s->n; i++)
		if (s->k[i].state != 2 && s->k[i].n >= pn && !memcmp(s->k[i].b, prefix, pn))
			kt_keys_add(&want, s->k[i].b, s->k[i].n);
	is_int(kt_list_all(st, prefix, pn, 5, &got, NULL), 0, "prefix %s: kvc_list runs", what);
	ok(want.n > 0 && kt_keys_equal(&got, &want), "prefix %s: exactly the %zu keys under it, in order",
	   what, want.n);
	kt_keys_free(&want);
	kt_keys_free(&got);
}

/* kvc_cursor_seek(probe) must land on the first live key >= probe. */
static void check_seeks(kvc_store *st, const struct keyset *s)
{
	kvc_txn *txn;
	kvc_cursor *c;
	if (kvc_txn_begin(st, KVC_TXN_READ, &txn) || kvc_cursor_open(txn, 0, &c))
		bail_out("cursor");
	size_t bad_exact = 0, bad_probe = 0, probes = 0;
	for (size_t i = 0; i < s->n; i++) {
		const void *k;
		size_t kn;
		int rc = kvc_cursor_seek(c, s->k[i].b, s->k[i].n, &k, &kn, NULL);
		if (rc || kn != s->k[i].n || memcmp(k, s->k[i].b, kn))
			bad_exact++;
	}
	ok(bad_exact == 0, "kvc_cursor_seek to each of %zu keys lands on it (%zu misses)", s->n,
	   bad_exact);

	/* Probes: each key with its last byte bumped or cut, or extended past
	 * 512 bytes; any byte string is allowed as a seek target. */
	unsigned char p[KVC_KEY_MAX + 2];
	for (size_t i = 0; i < s->n; i++) {
		for (int v = 0; v < 3; v++) {
			size_t pn = s->k[i].n;
			memcpy(p, s->k[i].b, pn);
			if (v == 0 && p[pn - 1] < 0xFF)
				p[pn - 1]++;
			else if (v == 1)
				pn--;
			else if (v == 2) {
				memset(p + pn, 0xFF, 2);
				pn += 2;
			}
			size_t lo = 0, hi = s->n;
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;
				if (kt_key_cmp(s->k[mid].b, s->k[mid].n, p, pn) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			const void *k;
			size_t kn;
			int rc = kvc_cursor_seek(c, p, pn, &k, &kn, NULL);
			probes++;
			if (lo == s->n ? rc != -ENOENT
				       : (rc || kn != s->k[lo].n || memcmp(k, s->k[lo].b, kn))) {
				if (bad_probe++ < 5)
					diag("  probe of %zu bytes near key %zu: rc %d", pn, i, rc);
			}
		}
	}
	ok(bad_probe == 0, "kvc_cursor_seek to %zu probes between keys lands on the next key (%zu misses)",
	   probes, bad_probe);

	/* Seek then walk: next after a seek continues in order. */
	const void *k;
	size_t kn, walked = 0;
	size_t start = s->n / 3;
	int rc = kvc_cursor_seek(c, s->k[start].b, s->k[start].n, &k, &kn, NULL);
	size_t i = start;
	while (!rc && i < s->n && kn == s->k[i].n && !memcmp(k, s->k[i].b, kn)) {
		walked++;
		i++;
		rc = kvc_cursor_next(c, &k, &kn, NULL);
	}
	ok(i == s->n && rc == -ENOENT, "kvc_cursor_next after a seek walks the rest in order (%zu)",
	   walked);
	kvc_cursor_close(c);
	kvc_txn_abort(txn);
}

static bool values_right(kvc_store *st, const struct keyset *s, size_t *ret_bad)
{
	unsigned char v[KVC_KEY_MAX + 1];
	size_t bad = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct key *k = &s->k[i];
		bool good;
		if (k->state == 2)
			good = kt_absent(st, k->b, k->n);
		else
			good = kt_has(st, k->b, k->n, v, value_of(k, k->state, v));
		if (!good && bad++ < 5)
			diag("  key %zu of %zu bytes (state %d) reads wrong", i, k->n, k->state);
	}
	*ret_bad = bad;
	return bad == 0;
}

struct scan_acc {
	struct kt_keys keys;
	size_t tombstones;
};

static int scan_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct scan_acc *a = arg;
	kt_keys_add(&a->keys, key, key_len);
	if (rec->flags & KVC_REC_TOMBSTONE)
		a->tombstones++;
	return 0;
}

int main(void)
{
	struct kt_dir d;
	char path[128];
	kvc_store *st = kt_dir_store(&d, NULL, path, sizeof(path));

	struct keyset s = {0};
	build_keys(&s);
	size_t n512 = 0, n511 = 0, n510 = 0;
	for (size_t i = 0; i < s.n; i++) {
		n512 += s.k[i].n == 512;
		n511 += s.k[i].n == 511;
		n510 += s.k[i].n == 510;
	}
	diag("%zu keys: %zu of 512 bytes, %zu of 511, %zu of 510", s.n, n512, n511, n510);
	ok(n512 >= 200 && n511 >= 100 && n510 >= 12, "fixture has many 510-, 511- and 512-byte keys");

	/* Write in random order, a few keys per transaction. */
	size_t *order = malloc(s.n * sizeof(*order));
	if (!order)
		bail_out("out of memory");
	for (size_t i = 0; i < s.n; i++)
		order[i] = i;
	for (size_t i = s.n - 1; i > 0; i--) {
		size_t j = rnd((uint32_t)i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	int rc = 0;
	for (size_t i = 0; i < s.n && !rc; i += 37) {
		struct write_arg a = {&s, order, i, i + 37 < s.n ? i + 37 : s.n, 0};
		rc = kvc_write_txn(st, write_fn, &a, NULL, 0);
	}
	is_int(rc, 0, "all %zu keys written in random order", s.n);

	size_t bad;
	bool right;
	right = values_right(st, &s, &bad);
	ok(right, "every key reads back its own value (%zu wrong)", bad);
	check_listings(st, &s, "after writing");
	check_seeks(st, &s);

	/* Prefixes that cut through the long-key families. */
	const struct key *base = NULL;
	for (size_t i = 0; i < s.n && !base; i++)
		if (s.k[i].n == 511 && s.k[i].b[0] == 'q')
			base = &s.k[i];
	if (!base)
		bail_out("no family base");
	check_prefix(st, &s, base->b, 400, "of 400 bytes shared by six families");
	check_prefix(st, &s, base->b, 510, "of 510 bytes");
	check_prefix(st, &s, base->b, 511, "of 511 bytes (a bucket)");
	check_prefix(st, &s, base->b, 505, "of 505 bytes");
	unsigned char wp[512];
	memset(wp, 'w', sizeof(wp));
	check_prefix(st, &s, wp, 508, "of 508 'w' (keys split inside characters)");
	wp[510] = 0xC3;
	check_prefix(st, &s, wp, 511, "ending in a lead byte");

	/* Overwrite every third key, one at a time; neighbours keep theirs. */
	rc = 0;
	size_t changed = 0;
	for (size_t i = 0; i < s.n && !rc; i += 3) {
		size_t one = i;
		struct write_arg a = {&s, &one, 0, 1, 1};
		rc = kvc_write_txn(st, write_fn, &a, NULL, 0);
		s.k[i].state = 1;
		changed++;
	}
	is_int(rc, 0, "overwrote %zu keys one at a time", changed);
	right = values_right(st, &s, &bad);
	ok(right, "overwritten keys read new values, others old (%zu wrong)",
	   bad);

	/* Delete every other key (in sorted order, so whole buckets thin out). */
	uint64_t head = kt_head(st);
	rc = 0;
	size_t deleted = 0;
	for (size_t i = 1; i < s.n && !rc; i += 2) {
		rc = kt_delete(st, s.k[i].b, s.k[i].n);
		s.k[i].state = 2;
		deleted++;
	}
	is_int(rc, 0, "deleted %zu keys one at a time", deleted);
	is_int((long long)kt_head(st), (long long)(head + deleted), "each delete moved the feed head by one");
	right = values_right(st, &s, &bad);
	ok(right, "deleted keys are absent, the rest intact (%zu wrong)", bad);
	size_t tomb_ok = 0;
	for (size_t i = 1; i < s.n; i += 2) {
		struct kt_rec r;
		if (!kt_get(st, s.k[i].b, s.k[i].n, KVC_GET_TOMBSTONES, &r)) {
			tomb_ok += (r.r.flags & KVC_REC_TOMBSTONE) != 0;
			kt_rec_free(&r);
		}
	}
	is_int((long long)tomb_ok, (long long)deleted, "each deleted key reads as a tombstone with KVC_GET_TOMBSTONES");
	check_listings(st, &s, "after deletes");

	struct scan_acc acc = {0};
	kvc_txn *txn;
	if (kvc_txn_begin(st, KVC_TXN_READ, &txn))
		bail_out("read txn");
	is_int(kvc_scan(txn, "", 0, NULL, 0, scan_fn, &acc), 0, "kvc_scan runs");
	kvc_txn_abort(txn);
	struct kt_keys all = {0};
	for (size_t i = 0; i < s.n; i++)
		kt_keys_add(&all, s.k[i].b, s.k[i].n);
	ok(kt_keys_equal(&acc.keys, &all), "kvc_scan walks live keys and tombstones in bytewise order");
	is_int((long long)acc.tombstones, (long long)deleted, "kvc_scan flags every tombstone");
	kt_keys_free(&acc.keys);
	kt_keys_free(&all);

	/* Bring back every fourth deleted key. */
	rc = 0;
	for (size_t i = 1; i < s.n && !rc; i += 8) {
		size_t one = i;
		struct write_arg a = {&s, &one, 0, 1, 0};
		rc = kvc_write_txn(st, write_fn, &a, NULL, 0);
		s.k[i].state = 0;
	}
	is_int(rc, 0, "re-wrote some deleted keys");
	right = values_right(st, &s, &bad);
	ok(right, "re-written keys are back, the rest unchanged (%zu wrong)", bad);
	check_listings(st, &s, "after re-writes");

	size_t live = 0;
	for (size_t i = 0; i < s.n; i++)
		live += s.k[i].state != 2;
	is_int((long long)kt_stats(st).keys, (long long)live, "kvc_stats counts the live keys");
	is_int(kt_check(st), 0, "kvc_check finds nothing on the ordering store");
	kvc_close(st);

	st = kt_open(path, NULL);
	check_listings(st, &s, "after reopen");
	is_int(kt_check(st), 0, "kvc_check finds nothing after reopen");
	kvc_close(st);

	free(order);
	free(s.k);
	kt_dir_remove(&d);
	return done_testing();
}
