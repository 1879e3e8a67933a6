/*
 * test_chunks: proves that large values, stored in chunks, read back
 * exactly and cost only the chunks a write changes.
 *
 *  - Sizes at every edge (just under the chunked threshold, at it, one
 *    byte either side of a chunk boundary, 25 MiB) read back byte for
 *    byte through kvc_get, a cursor, kvc_scan and kvc_feed_next; kvc_list
 *    and KVC_GET_NO_VALUE give the length without the bytes; kvc_stats
 *    counts the value's length, not its table's.
 *  - A write that changes 100 bytes of a 25 MiB value stores one new chunk
 *    (counted in the store's LMDB files, opened read-only beside it), a
 *    ttl or metadata change stores none, a value of zeros stores none, and
 *    every replaced or deleted chunk is gone (kvc_check counts the chunk
 *    database against the records' tables).
 *  - kvc_get_range reads any range (across chunk boundaries, in holes, past
 *    the end, of small values) as the whole value holds it.
 *  - A write naming the range it changed since a version (KVC_VALUE_SINCE)
 *    stores one chunk; naming a version no longer stored, its range is not
 *    trusted and a change outside it is stored too.
 *  - A read transaction begun before a partial write keeps reading the old
 *    value whole: one version per commit.
 *  - A rename keeps the value and its chunks; a delete, an expiry reaped
 *    and a peer's tombstone free them; a peer's large record applies and
 *    reads back.
 *  - A seeded random model: 400 operations (whole writes, partial
 *    patches, truncations, extensions, renames, deletes) on 4 keys, each
 *    checked against an in-memory copy, with kvc_check after every step.
 *  - A store of format 2 (no chunk database) opens read-only as it is and
 *    is upgraded to format 3 by a writable open.
 * Prints TAP.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

#define MIB (1024u * 1024u)
#define THRESHOLD (256u * 1024u) /* kvcore's KVC_CHUNKED_MIN */

/* The store's raw counts, read with LMDB while the store is closed. */
struct raw {
	uint64_t chunks;  /* entries in the chunk database */
	uint64_t taken;   /* the chunk id counter */
	uint64_t format;
	bool have_db;
};

static struct raw raw_counts(const char *path)
{
	struct raw r = {0};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, "format"}, d;
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
	    mdb_env_open(env, path, MDB_RDONLY, 0644) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
		bail_out("cannot open the store's LMDB environment");
	if (mdb_dbi_open(txn, "meta", 0, &dbi))
		bail_out("no meta database");
	if (!mdb_get(txn, dbi, &k, &d) && d.mv_size == 8)
		memcpy(&r.format, d.mv_data, 8);
	k = (MDB_val){5, "chunk"};
	if (!mdb_get(txn, dbi, &k, &d) && d.mv_size == 8)
		memcpy(&r.taken, d.mv_data, 8);
	MDB_dbi cd;
	MDB_stat st;
	if (!mdb_dbi_open(txn, "chunk", 0, &cd) && !mdb_stat(txn, cd, &st)) {
		r.have_db = true;
		r.chunks = st.ms_entries;
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return r;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)rnd();
}

static unsigned char *random_value(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);
	if (!p)
		bail_out("out of memory");
	fill(p, n);
	return p;
}

struct walk {
	const char *key;
	const unsigned char *want;
	size_t want_len;
	bool seen, same;
};

static int scan_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct walk *w = arg;
	if (key_len == strlen(w->key) && memcmp(key, w->key, key_len) == 0) {
		w->seen = true;
		w->same = rec->value && rec->value_len == w->want_len &&
			  memcmp(rec->value, w->want, w->want_len) == 0;
	}
	return 0;
}

static int list_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct walk *w = arg;
	if (key_len == strlen(w->key) && memcmp(key, w->key, key_len) == 0) {
		w->seen = true;
		w->same = rec->value_len == w->want_len;
	}
	return 0;
}

/* Every way of reading @key gives @want. */
static void reads_back(kvc_store *s, const char *key, const unsigned char *want, size_t n,
		       const char *what)
{
	ok(kt_has(s, key, strlen(key), want, n), "%s: kvc_get reads it back", what);
	kvc_txn *txn;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("txn");
	struct kvc_record r;
	int rc = kvc_get(txn, key, strlen(key), KVC_GET_NO_VALUE, &r);
	ok(rc == 0 && r.value_len == n && (n >= THRESHOLD ? r.value == NULL : r.value != NULL),
	   "%s: KVC_GET_NO_VALUE gives the length%s", what,
	   n >= THRESHOLD ? " and no bytes" : " (a small value comes anyway)");
	kvc_cursor *c;
	const void *k;
	size_t kn;
	rc = kvc_cursor_open(txn, 0, &c);
	if (!rc)
		rc = kvc_cursor_seek(c, key, strlen(key), &k, &kn, &r);
	ok(rc == 0 && r.value_len == n && memcmp(r.value, want, n) == 0,
	   "%s: a cursor reads it back", what);
	kvc_cursor_close(c);
	struct walk w = {.key = key, .want = want, .want_len = n};
	rc = kvc_scan(txn, NULL, 0, NULL, 0, scan_fn, &w);
	ok(rc == 0 && w.seen && w.same, "%s: kvc_scan reads it back", what);
	w.seen = w.same = false;
	char next[KVC_CURSOR_MAX];
	rc = kvc_list(txn, key, strlen(key), NULL, 0, list_fn, &w, next);
	ok(rc == 0 && w.seen && w.same, "%s: kvc_list gives its length", what);
	uint64_t head = 0;
	kvc_feed_head(txn, &head);
	bool fed = false;
	if (kvc_feed_next(txn, head - 1, 0, &k, &kn, &r) == 0)
		fed = kn == strlen(key) && r.value_len == n && memcmp(r.value, want, n) == 0;
	ok(fed, "%s: kvc_feed_next reads it back", what);
	kvc_txn_abort(txn);
}

static void test_sizes(const struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "sizes", path, sizeof(path)), NULL);
	/* A chunk is 16 pages less LMDB's 16-byte page header. */
	size_t chunk = 16u * (size_t)sysconf(_SC_PAGESIZE) - 16u;
	size_t sizes[] = {THRESHOLD - 1, THRESHOLD, 5 * chunk - 1, 5 * chunk, 5 * chunk + 1,
			  KVC_VALUE_MAX};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char what[64];
		snprintf(what, sizeof(what), "a value of %zu bytes", sizes[i]);
		unsigned char *v = random_value(sizes[i]);
		is_int(kt_put(s, "big", 3, v, sizes[i]), 0, "%s is written", what);
		reads_back(s, "big", v, sizes[i], what);
		struct kvc_stats st = kt_stats(s);
		is_int((long long)st.value_bytes, (long long)sizes[i],
		       "%s: kvc_stats counts its length", what);
		is_int(kt_check(s), 0, "%s: kvc_check is clean", what);
		free(v);
	}
	unsigned char *over = random_value(KVC_VALUE_MAX + 1u);
	is_int(kt_put(s, "big", 3, over, KVC_VALUE_MAX + 1u), -EFBIG,
	       "a value over 25 MiB is refused");
	free(over);
	kvc_close(s);
}

struct put_arg {
	kvc_store *s;
	const char *key;
	const void *v;
	size_t n;
	int rc;
};

static void *put_thread(void *arg)
{
	struct put_arg *a = arg;
	a->rc = kt_put(a->s, a->key, strlen(a->key), a->v, a->n);
	return NULL;
}

static void test_partial(const struct kt_dir *d)
{
	char path[128];
	kt_dir_sub(d, "partial", path, sizeof(path));
	kvc_store *s = kt_open(path, NULL);
	size_t n = KVC_VALUE_MAX;
	unsigned char *v = random_value(n);
	is_int(kt_put(s, "k", 1, v, n), 0, "a 25 MiB value is written");
	kvc_close(s);
	struct raw a = raw_counts(path);
	is_int((long long)a.format, 3, "the store is of format 3");
	ok(a.chunks > 300, "the value is stored as %llu chunks", (unsigned long long)a.chunks);

	s = kt_open(path, NULL);
	/* A reader of the old version, begun before the patch. */
	kvc_txn *old_txn;
	if (kvc_txn_begin(s, KVC_TXN_READ, &old_txn))
		bail_out("txn");
	struct kvc_record before;
	is_int(kvc_get(old_txn, "k", 1, 0, &before), 0, "a reader reads the value");
	unsigned char *was = malloc(n);
	if (!was)
		bail_out("out of memory");
	memcpy(was, v, n);
	fill(v + 10 * MIB, 100);
	/* From another thread: this one holds the reader's transaction. */
	struct put_arg pa = {s, "k", v, n, -1};
	pthread_t t;
	if (pthread_create(&t, NULL, put_thread, &pa) || pthread_join(t, NULL))
		bail_out("thread");
	is_int(pa.rc, 0, "100 bytes in its middle are rewritten");
	struct kvc_record again;
	is_int(kvc_get(old_txn, "k", 1, 0, &again), 0, "the earlier reader reads again");
	ok(again.value_len == n && memcmp(again.value, was, n) == 0 &&
	   memcmp(before.value, was, n) == 0,
	   "a reader that began before the write sees the old value whole");
	kvc_txn_abort(old_txn);
	reads_back(s, "k", v, n, "the patched value");

	struct kvc_write meta = {.set = KVC_SET_METADATA | KVC_SET_TTL,
				 .metadata = "{\"a\":1}", .metadata_len = 7, .ttl = 3600};
	is_int(kt_write(s, "k", 1, &meta, NULL, 0), 0, "its metadata and ttl are changed");
	ok(kt_has(s, "k", 1, v, n), "the value is unchanged by it");
	kvc_close(s);
	struct raw b = raw_counts(path);
	is_int((long long)(b.taken - a.taken), 1,
	       "the patch and the metadata change stored one new chunk between them");
	is_int((long long)b.chunks, (long long)a.chunks, "and freed the chunk it replaced");

	/* KVC_VALUE_SINCE: the writer names what changed since a version. */
	s = kt_open(path, NULL);
	struct kt_rec cur;
	if (kt_get(s, "k", 1, 0, &cur))
		bail_out("get");
	uint64_t seq = cur.r.seq;
	kt_rec_free(&cur);
	fill(v + 5 * MIB, 100);
	struct kvc_write since = {.set = KVC_SET_VALUE | KVC_VALUE_SINCE, .value = v, .value_len = n,
				  .base_seq = seq, .changed_lo = 5 * MIB,
				  .changed_hi = 5 * MIB + 100};
	is_int(kt_write(s, "k", 1, &since, NULL, 0), 0,
	       "a write naming its changed range and base version");
	ok(kt_has(s, "k", 1, v, n), "it reads back");
	/* A stale base: the range is not to be trusted, and is not. */
	fill(v + 20 * MIB, 100);
	since.base_seq = seq;
	is_int(kt_write(s, "k", 1, &since, NULL, 0), 0,
	       "a write naming a range that misses a change, from an older version");
	ok(kt_has(s, "k", 1, v, n), "every change is stored: the promise of a stale base is ignored");
	is_int(kt_check(s), 0, "kvc_check is clean");
	kvc_close(s);
	struct raw b2 = raw_counts(path);
	is_int((long long)(b2.taken - b.taken), 2, "each write stored only the chunk it changed");
	b = b2;

	s = kt_open(path, NULL);
	memset(v, 0, n);
	is_int(kt_put(s, "k", 1, v, n), 0, "25 MiB of zeros are written");
	ok(kt_has(s, "k", 1, v, n), "they read back");
	is_int(kt_check(s), 0, "kvc_check is clean");
	kvc_close(s);
	struct raw c = raw_counts(path);
	is_int((long long)c.chunks, 0, "zeros take no chunk");
	is_int((long long)(c.taken - b.taken), 0, "and no chunk id");

	s = kt_open(path, NULL);
	fill(v + 3 * MIB, 1);
	fill(v + n - 1, 1);
	is_int(kt_put(s, "k", 1, v, n), 0, "a sparse value: two bytes set in zeros");
	ok(kt_has(s, "k", 1, v, n), "it reads back");
	kvc_close(s);
	c = raw_counts(path);
	is_int((long long)c.chunks, 2, "it takes two chunks");
	free(v);
	free(was);
}

/* kvc_get_range of [@off, @off + @len) gives what @want holds there. */
static bool range_ok(kvc_store *s, const char *key, const unsigned char *want, size_t n,
		     size_t off, size_t len)
{
	kvc_txn *txn;
	struct kvc_record r;
	size_t got = SIZE_MAX, expect = off >= n ? 0 : (n - off < len ? n - off : len);
	unsigned char *buf = malloc(len ? len : 1);
	if (!buf || kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("range");
	int rc = kvc_get_range(txn, key, strlen(key), off, buf, len, &got, &r);
	kvc_txn_abort(txn);
	bool same = rc == 0 && got == expect && r.value_len == n && !(n >= THRESHOLD && r.value) &&
		    memcmp(buf, want + (off < n ? off : n), expect) == 0;
	if (!same)
		diag("range %zu+%zu of %zu bytes: rc %d, got %zu", off, len, n, rc, got);
	free(buf);
	return same;
}

static void test_ranges(const struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "ranges", path, sizeof(path)), NULL);
	size_t chunk = 16u * (size_t)sysconf(_SC_PAGESIZE) - 16u;
	size_t n = 40 * chunk + 123;
	unsigned char *v = random_value(n);
	memset(v + 3 * chunk, 0, 5 * chunk); /* a hole: chunks of zeros */
	is_int(kt_put(s, "r", 1, v, n), 0, "a value of %zu bytes with a hole is written", n);
	struct { size_t off, len; const char *what; } cases[] = {
		{0, 100, "the start"},
		{chunk - 10, 20, "across a chunk boundary"},
		{2 * chunk + 5, 7 * chunk, "across the hole, several chunks"},
		{4 * chunk, 100, "inside the hole"},
		{n - 50, 100, "past the end: short"},
		{n, 10, "at the end: nothing"},
		{n + 1000, 10, "beyond the end: nothing"},
		{0, n, "the whole value"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(range_ok(s, "r", v, n, cases[i].off, cases[i].len), "kvc_get_range: %s",
		   cases[i].what);
	is_int(kt_puts(s, "small", "hello, world"), 0, "a small value is written");
	ok(range_ok(s, "small", (const unsigned char *)"hello, world", 12, 7, 100),
	   "kvc_get_range of a small value");
	is_int(kt_delete(s, "r", 1), 0, "the large one is deleted");
	kvc_txn *txn;
	size_t got;
	unsigned char b[8];
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("txn");
	is_int(kvc_get_range(txn, "r", 1, 0, b, sizeof(b), &got, NULL), -ENOENT,
	       "kvc_get_range of a deleted key: -ENOENT");
	kvc_txn_abort(txn);
	free(v);
	kvc_close(s);
}

static int rename_fn(kvc_txn *txn, void *arg)
{
	const char **names = arg;
	return kvc_rename(txn, names[0], strlen(names[0]), names[1], strlen(names[1]), false);
}

static void test_lifecycle(const struct kt_dir *d)
{
	char path[128];
	kt_dir_sub(d, "life", path, sizeof(path));
	kvc_store *s = kt_open_ttl1(path);
	size_t n = 3 * MIB;
	unsigned char *v = random_value(n), *w = random_value(n);
	is_int(kt_put(s, "a", 1, v, n), 0, "a 3 MiB value is written to a");
	is_int(kt_put(s, "b", 1, w, n), 0, "another to b");
	const char *names[2] = {"a", "b"};
	is_int(kvc_write_txn(s, rename_fn, names, NULL, 0), 0, "a is renamed over b");
	ok(kt_has(s, "b", 1, v, n) && kt_absent(s, "a", 1), "b holds a's value, a is gone");
	is_int(kt_check(s), 0, "kvc_check is clean: b's old chunks are freed, a's kept");
	is_int(kt_delete(s, "b", 1), 0, "b is deleted");
	is_int(kt_check(s), 0, "kvc_check is clean after the delete");
	kvc_close(s);
	is_int((long long)raw_counts(path).chunks, 0, "no chunk is left");

	s = kt_open_ttl1(path);
	struct kvc_write e = {.set = KVC_SET_VALUE | KVC_SET_TTL, .value = v, .value_len = n,
			      .ttl = 1};
	is_int(kt_write(s, "e", 1, &e, NULL, 0), 0, "a value with a ttl of 1 s is written");
	kt_sleep_past(kvc_now_ns() / 1000000000 + 2);
	uint64_t reaped = 0;
	is_int(kvc_reap(s, 0, &reaped), 0, "it is reaped once expired");
	is_int((long long)reaped, 1, "one record was reaped");
	is_int(kt_check(s), 0, "kvc_check is clean after the reap");
	kvc_close(s);
	is_int((long long)raw_counts(path).chunks, 0, "the reaped value's chunks are freed");

	/* A peer's large record, then its tombstone. */
	s = kt_open(path, NULL);
	int64_t now = kvc_now_ns();
	struct kvc_record pr = {.value = w, .value_len = n, .mtime_ns = now, .ctime_ns = now,
				.hlc = (uint64_t)(now / 1000000) << 16, .origin = 77};
	is_int(kt_apply(s, "p", &pr, 0, NULL, 0), 1, "a peer's 3 MiB record applies");
	ok(kt_has(s, "p", 1, w, n), "it reads back");
	kvc_txn *txn;
	struct kvc_record got;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("txn");
	ok(kvc_get(txn, "p", 1, 0, &got) == 0 && got.flags == 0,
	   "the record read shows no internal flag (a peer would refuse it)");
	kvc_txn_abort(txn);
	struct kvc_record pt = {.flags = KVC_REC_TOMBSTONE, .value = "", .mtime_ns = now,
				.ctime_ns = now, .hlc = pr.hlc + 1, .origin = 77};
	is_int(kt_apply(s, "p", &pt, 0, NULL, 0), 1, "the peer's tombstone applies");
	is_int(kt_check(s), 0, "kvc_check is clean");
	kvc_close(s);
	is_int((long long)raw_counts(path).chunks, 0, "the tombstoned value's chunks are freed");
	free(v);
	free(w);
}

#define MODEL_KEYS 4
#define MODEL_OPS 400
#define MODEL_MAX (2 * MIB)

static void test_model(const struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "model", path, sizeof(path)), NULL);
	unsigned char *model[MODEL_KEYS] = {0};
	size_t len[MODEL_KEYS] = {0};
	bool live[MODEL_KEYS] = {0};
	const char *keys[MODEL_KEYS] = {"m0", "m1", "m2", "m3"};
	unsigned char *buf = malloc(MODEL_MAX);
	if (!buf)
		bail_out("out of memory");
	int bad = -1;
	rng = 20261129;
	for (int op = 0; op < MODEL_OPS && bad < 0; op++) {
		unsigned k = (unsigned)(rnd() % MODEL_KEYS), kind = (unsigned)(rnd() % 6);
		int rc = 0;
		if (kind == 0 || !live[k]) { /* a whole new value */
			size_t n = (size_t)(rnd() % MODEL_MAX);
			fill(buf, n);
			rc = kt_put(s, keys[k], 2, buf, n);
			free(model[k]);
			model[k] = malloc(n ? n : 1);
			memcpy(model[k], buf, n);
			len[k] = n;
			live[k] = true;
		} else if (kind <= 2) { /* a patch: some bytes changed or appended */
			size_t off = (size_t)(rnd() % (len[k] + 1)), m = 1 + (size_t)(rnd() % 70000);
			size_t n = off + m > len[k] ? off + m : len[k];
			if (n > MODEL_MAX)
				n = MODEL_MAX, m = n - off;
			unsigned char *p = realloc(model[k], n);
			memset(p + len[k], 0, n - len[k]);
			fill(p + off, m);
			model[k] = p;
			len[k] = n;
			rc = kt_put(s, keys[k], 2, p, n);
		} else if (kind == 3) { /* truncate or extend with zeros */
			size_t n = (size_t)(rnd() % MODEL_MAX);
			unsigned char *p = realloc(model[k], n ? n : 1);
			if (n > len[k])
				memset(p + len[k], 0, n - len[k]);
			model[k] = p;
			len[k] = n;
			rc = kt_put(s, keys[k], 2, p, n);
		} else if (kind == 4) { /* rename to another key */
			unsigned t = (k + 1 + (unsigned)(rnd() % (MODEL_KEYS - 1))) % MODEL_KEYS;
			const char *names[2] = {keys[k], keys[t]};
			rc = kvc_write_txn(s, rename_fn, names, NULL, 0);
			free(model[t]);
			model[t] = model[k];
			len[t] = len[k];
			live[t] = true;
			model[k] = NULL;
			live[k] = false;
		} else { /* delete */
			rc = kt_delete(s, keys[k], 2);
			free(model[k]);
			model[k] = NULL;
			live[k] = false;
		}
		if (rc) {
			diag("operation %d (kind %u on %s): %s", op, kind, keys[k], strerror(-rc));
			bad = op;
			break;
		}
		for (unsigned i = 0; i < MODEL_KEYS && bad < 0; i++) {
			bool same = live[i] ? kt_has(s, keys[i], 2, model[i], len[i])
					    : kt_absent(s, keys[i], 2);
			if (!same) {
				diag("after operation %d (kind %u on %s), %s differs from the model",
				     op, kind, keys[k], keys[i]);
				bad = op;
			}
		}
		if (bad < 0 && kt_check(s) != 0) {
			diag("after operation %d, kvc_check finds problems", op);
			bad = op;
		}
	}
	is_int(bad, -1, "%d random operations on 4 keys agree with the model, kvc_check clean",
	       MODEL_OPS);
	for (unsigned i = 0; i < MODEL_KEYS; i++)
		free(model[i]);
	free(buf);
	kvc_close(s);
}

static void test_format2(const struct kt_dir *d)
{
	char path[128];
	kt_dir_sub(d, "f2", path, sizeof(path));
	kvc_store *s = kt_open(path, NULL);
	is_int(kt_puts(s, "x", "small"), 0, "a small value is written");
	kvc_close(s);
	/* Make it a store of format 2, as earlier kvcore wrote them. */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, chunk;
	unsigned char two[8] = {2};
	MDB_val k = {6, "format"}, v = {8, two};
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) || mdb_env_open(env, path, 0, 0644) ||
	    mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "meta", 0, &meta) ||
	    mdb_put(txn, meta, &k, &v, 0) || mdb_dbi_open(txn, "chunk", 0, &chunk) ||
	    mdb_drop(txn, chunk, 1) || mdb_txn_commit(txn))
		bail_out("cannot make a format 2 store");
	mdb_env_close(env);
	struct raw r = raw_counts(path);
	ok(r.format == 2 && !r.have_db, "the store is of format 2 without a chunk database");
	struct kvc_open_opts ro = {.readonly = true};
	kvc_store *rs = NULL;
	is_int(kvc_open(path, &ro, &rs, NULL), 0, "it opens read-only");
	ok(rs && kt_has(rs, "x", 1, "small", 5), "and reads");
	kvc_close(rs);
	r = raw_counts(path);
	ok(r.format == 2 && !r.have_db, "a read-only open leaves it as it was");
	s = kt_open(path, NULL);
	unsigned char *big = random_value(MIB);
	is_int(kt_put(s, "y", 1, big, MIB), 0, "a writable open takes a large value");
	ok(kt_has(s, "x", 1, "small", 5) && kt_has(s, "y", 1, big, MIB), "both read back");
	is_int(kt_check(s), 0, "kvc_check is clean");
	kvc_close(s);
	r = raw_counts(path);
	ok(r.format == 3 && r.have_db && r.chunks > 0, "the store is now of format 3, with chunks");
	free(big);
}

int main(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	test_sizes(&d);
	test_ranges(&d);
	test_partial(&d);
	test_lifecycle(&d);
	test_model(&d);
	test_format2(&d);
	kt_dir_remove(&d);
	return done_testing();
}
