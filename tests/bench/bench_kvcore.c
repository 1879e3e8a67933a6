/*
 * bench_kvcore: what kvcore costs over the LMDB it is built on.  One run,
 * one process, measures kvcore and raw LMDB doing the same work and prints
 * each figure with the ratio kvcore / raw LMDB and the goal it is held to:
 *   1. point get of 100-byte values, 100k keys, random order, 1000 gets per
 *      read transaction;
 *   2. batched put of 100k keys with 100-byte values, one transaction;
 *   3. list of 1000 keys under a prefix in a 1M-key store (kvc_list against
 *      an LMDB cursor walking MDB_SET_RANGE + MDB_NEXT);
 *   4. reap of 10k expired keys in a 1M-key store against the same in a
 *      20k-key store (kvcore only: the ratio of the two times shows the
 *      reaper's cost follows the expired count, not the namespace).
 * Both sides get the same machine settings: no fsync (kvcore
 * KVC_SYNC_NONE is MDB_NOSYNC | MDB_NOMETASYNC), MDB_NOTLS, one named
 * database, the same map size, the same keys in the same order.
 * `--quick` runs tiny sizes as a smoke test; the figures are then
 * meaningless.  No figure is asserted: the exit status says only whether
 * every operation succeeded.
 *
 * This file is the one place outside kvcore/ that includes <lmdb.h>: the
 * raw LMDB side is the peer the figures are measured against.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvcore.h"

#define VALUE_SIZE 100
#define MAP_SIZE (4ull << 30)
#define GETS_PER_TXN 1000u
#define LIST_PAGE 1000u
#define REPEAT 3 /* each figure is the best of this many runs */

struct sizes {
	unsigned keys;       /* (1) and (2) */
	unsigned get_passes; /* (1): gets = keys * passes */
	unsigned prefixes;   /* (3): store of prefixes * LIST_PAGE keys */
	unsigned lists;      /* (3): listings timed */
	unsigned expired;    /* (4): expired keys in each store */
	unsigned small;      /* (4): unexpired keys in the small store */
};

static const struct sizes full = {100000, 10, 1000, 2000, 10000, 10000};
static const struct sizes quick = {2000, 2, 20, 50, 500, 500};

struct bench {
	struct sizes sz;
	char dir[64];
	uint64_t *order;   /* a random permutation of 0..keys-1 */
	unsigned char value[VALUE_SIZE];
	uint64_t sink;     /* keeps reads from being optimized away */
	int failures;
};

/* ------------------------------------------------------------ utilities */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x853C49E6748FEA9Bull;

static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static void shuffle(uint64_t *a, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rnd(i + 1);
		uint64_t t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

static size_t point_key(uint64_t i, char *out)
{
	return (size_t)sprintf(out, "key:%010" PRIu64, i);
}

/* Keys of the list store: LIST_PAGE keys under each prefix "pNNNN/". */
static size_t list_key(unsigned prefix, unsigned i, char *out)
{
	return (size_t)sprintf(out, "p%04u/%06u", prefix, i);
}

static size_t list_prefix(unsigned prefix, char *out)
{
	return (size_t)sprintf(out, "p%04u/", prefix);
}

static void fail(struct bench *b, const char *what, int rc)
{
	fprintf(stderr, "bench_kvcore: %s: %s\n", what, rc < 0 ? strerror(-rc) : mdb_strerror(rc));
	b->failures++;
}

static const char *human(double v, char *buf, size_t size)
{
	if (v >= 1e6)
		snprintf(buf, size, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, size, "%.1fk", v / 1e3);
	else
		snprintf(buf, size, "%.1f", v);
	return buf;
}

/* "10k" for multiples of 1000, else the number. */
static const char *count(unsigned v, char *buf, size_t size)
{
	if (v >= 1000 && v % 1000 == 0)
		snprintf(buf, size, "%uk", v / 1000);
	else
		snprintf(buf, size, "%u", v);
	return buf;
}

static void report(const char *what, const char *unit, double kv, double raw, double goal)
{
	char a[32], c[32];
	double ratio = raw > 0 ? kv / raw : 0;
	if (goal <= 0) {
		printf("%s: kvcore %s %s, raw LMDB %s %s, ratio %.2f (no goal: measured)\n", what,
		       human(kv, a, sizeof(a)), unit, human(raw, c, sizeof(c)), unit, ratio);
		return;
	}
	printf("%s: kvcore %s %s, raw LMDB %s %s, ratio %.2f (goal >= %.1f: %s)\n", what,
	       human(kv, a, sizeof(a)), unit, human(raw, c, sizeof(c)), unit, ratio, goal,
	       ratio >= goal ? "met" : "NOT met");
	fflush(stdout);
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

/* ------------------------------------------------------------- raw LMDB */

struct raw {
	MDB_env *env;
	MDB_dbi dbi;
};

static int raw_open(struct raw *r, const char *path)
{
	int rc = mdb_env_create(&r->env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(r->env, 8);
	mdb_env_set_mapsize(r->env, MAP_SIZE);
	if (mkdir(path, 0755) && errno != EEXIST)
		return errno;
	rc = mdb_env_open(r->env, path, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS, 0644);
	if (rc)
		return rc;
	MDB_txn *txn;
	rc = mdb_txn_begin(r->env, NULL, 0, &txn);
	if (rc)
		return rc;
	rc = mdb_dbi_open(txn, "rec", MDB_CREATE, &r->dbi);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

static void raw_close(struct raw *r)
{
	if (r->env)
		mdb_env_close(r->env);
	r->env = NULL;
}

/* --------------------------------------------------------------- kvcore */

static int kv_open(kvc_store **ret, const char *path, bool min_ttl_1)
{
	struct kvc_open_opts o = {.sync = KVC_SYNC_NONE, .map_size = MAP_SIZE};
	if (min_ttl_1) {
		o.min_ttl_set = true;
		o.min_ttl = 1;
	}
	return kvc_open(path, &o, ret, NULL);
}

struct put_arg {
	struct bench *b;
	const uint64_t *ids; /* point keys, or NULL for list keys */
	unsigned from, to;   /* index range into ids or list key numbers */
	uint32_t ttl;
	const char *suffix;  /* appended to list keys (expiring copies) */
	unsigned stride;     /* list key number = index * stride (0: 1) */
	const char *cluster; /* instead of list keys: cluster + index */
};

static size_t arg_key(const struct put_arg *a, unsigned i, char *out)
{
	if (a->ids)
		return point_key(a->ids[i], out);
	if (a->cluster)
		return (size_t)sprintf(out, "%s%06u", a->cluster, i);
	unsigned k = i * (a->stride ? a->stride : 1);
	size_t n = list_key(k / LIST_PAGE, k % LIST_PAGE, out);
	if (a->suffix)
		n += (size_t)sprintf(out + n, "%s", a->suffix);
	return n;
}

static int kv_put_fn(kvc_txn *txn, void *arg)
{
	struct put_arg *a = arg;
	for (unsigned i = a->from; i < a->to; i++) {
		char key[64];
		size_t n = arg_key(a, i, key);
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = a->b->value,
				      .value_len = VALUE_SIZE};
		if (a->ttl) {
			w.set |= KVC_SET_TTL;
			w.ttl = a->ttl;
		}
		int rc = kvc_write(txn, key, n, &w);
		if (rc)
			return rc;
	}
	return 0;
}

static int raw_put(struct raw *r, struct put_arg *a)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(r->env, NULL, 0, &txn);
	if (rc)
		return rc;
	for (unsigned i = a->from; !rc && i < a->to; i++) {
		char key[64];
		MDB_val k = {arg_key(a, i, key), key}, d = {VALUE_SIZE, a->b->value};
		rc = mdb_put(txn, r->dbi, &k, &d, 0);
	}
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

/* ------------------------------------------------------- (1) and (2) */

/* @n gets in the order of @ord (cycled), GETS_PER_TXN per read txn, on
 * kvcore (@s) or raw LMDB (@r).  @return seconds taken. */
static double point_gets(struct bench *b, kvc_store *s, struct raw *r, const uint64_t *ord,
			 uint64_t n)
{
	double t0 = now_s();
	uint64_t done = 0;
	int rc;
	while (done < n && !b->failures) {
		if (s) {
			kvc_txn *txn;
			if ((rc = kvc_txn_begin(s, KVC_TXN_READ, &txn))) {
				fail(b, "kvc_txn_begin", rc);
				break;
			}
			for (unsigned i = 0; i < GETS_PER_TXN && done < n; i++, done++) {
				char key[32];
				size_t kn = point_key(ord[done % b->sz.keys], key);
				struct kvc_record rec;
				rc = kvc_get(txn, key, kn, 0, &rec);
				if (rc || rec.value_len != VALUE_SIZE) {
					fail(b, "kvc_get", rc ? rc : -EIO);
					break;
				}
				b->sink += ((const unsigned char *)rec.value)[done % VALUE_SIZE];
			}
			kvc_txn_abort(txn);
		} else {
			MDB_txn *txn;
			if ((rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn))) {
				fail(b, "mdb_txn_begin", rc);
				break;
			}
			for (unsigned i = 0; i < GETS_PER_TXN && done < n; i++, done++) {
				char key[32];
				MDB_val k = {point_key(ord[done % b->sz.keys], key), key}, d;
				rc = mdb_get(txn, r->dbi, &k, &d);
				if (rc || d.mv_size != VALUE_SIZE) {
					fail(b, "mdb_get", rc ? rc : EIO);
					break;
				}
				b->sink += ((const unsigned char *)d.mv_data)[done % VALUE_SIZE];
			}
			mdb_txn_abort(txn);
		}
	}
	return now_s() - t0;
}

static double min_d(double a, double b)
{
	return a < b ? a : b;
}

static void bench_point(struct bench *b)
{
	kvc_store *s = NULL;
	struct raw r = {0};
	double t_kv = 1e9, t_raw = 1e9;
	int rc;

	/* (2) batched put: same keys, same random order, one txn each, into
	 * fresh stores; best of REPEAT.  The last pair is kept for (1). */
	struct put_arg pa = {b, b->order, 0, b->sz.keys, 0, NULL, 0, NULL};
	for (int rep = 0; rep < REPEAT && !b->failures; rep++) {
		char kpath[128], rpath[128];
		snprintf(kpath, sizeof(kpath), "%s/point-kvcore-%d", b->dir, rep);
		snprintf(rpath, sizeof(rpath), "%s/point-raw-%d", b->dir, rep);
		kvc_close(s);
		raw_close(&r);
		if ((rc = kv_open(&s, kpath, false))) {
			fail(b, "kvc_open", rc);
			return;
		}
		if ((rc = raw_open(&r, rpath))) {
			fail(b, "raw open", rc);
			goto out;
		}
		double t0 = now_s();
		if ((rc = kvc_write_txn(s, kv_put_fn, &pa, NULL, 0)))
			fail(b, "kvcore batched put", rc);
		t_kv = min_d(t_kv, now_s() - t0);
		t0 = now_s();
		if ((rc = raw_put(&r, &pa)))
			fail(b, "raw batched put", rc);
		t_raw = min_d(t_raw, now_s() - t0);
	}
	if (b->failures)
		goto out;
	char what[96], n[16];
	snprintf(what, sizeof(what), "batched put %s x %uB, one txn", count(b->sz.keys, n, sizeof(n)),
		 VALUE_SIZE);
	report(what, "puts/s", b->sz.keys / t_kv, b->sz.keys / t_raw, 0.6);

	/* (1) point get: another random order, GETS_PER_TXN per read txn. */
	uint64_t *ord = malloc(sizeof(*ord) * b->sz.keys);
	if (!ord) {
		fail(b, "malloc", -ENOMEM);
		goto out;
	}
	memcpy(ord, b->order, sizeof(*ord) * b->sz.keys);
	shuffle(ord, b->sz.keys);
	uint64_t gets = (uint64_t)b->sz.keys * b->sz.get_passes;

	/* A first untimed pass on each side maps the pages, so neither side
	 * is charged for page faults; then the best of REPEAT. */
	point_gets(b, s, NULL, ord, b->sz.keys);
	point_gets(b, NULL, &r, ord, b->sz.keys);
	t_kv = t_raw = 1e9;
	for (int rep = 0; rep < REPEAT; rep++) {
		t_kv = min_d(t_kv, point_gets(b, s, NULL, ord, gets));
		t_raw = min_d(t_raw, point_gets(b, NULL, &r, ord, gets));
	}
	snprintf(what, sizeof(what), "point get %uB, %s keys, random order", VALUE_SIZE,
		 count(b->sz.keys, n, sizeof(n)));
	report(what, "gets/s", (double)gets / t_kv, (double)gets / t_raw, 0.8);
	free(ord);
out:
	kvc_close(s);
	raw_close(&r);
}

/* --------------------------------------------------------------- (3) list */

struct list_acc {
	unsigned n;
	uint64_t sink;
};

static int list_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct list_acc *a = arg;
	a->n++;
	a->sink += key_len + rec->value_len;
	return 0;
}

/* Write @total keys made as @how says to @s (and @r), in transactions of
 * 100k. */
static void fill(struct bench *b, kvc_store *s, struct raw *r, unsigned total,
		 const struct put_arg *how)
{
	for (unsigned from = 0; from < total && !b->failures; from += 100000) {
		struct put_arg pa = *how;
		pa.b = b;
		pa.from = from;
		pa.to = from + 100000 < total ? from + 100000 : total;
		int rc = kvc_write_txn(s, kv_put_fn, &pa, NULL, 0);
		if (rc)
			fail(b, "kvcore fill", rc);
		if (r && (rc = raw_put(r, &pa)))
			fail(b, "raw fill", rc);
	}
}

/* One listing of LIST_PAGE keys under prefix number @which.  @return the
 * number of keys listed, or -errno / an LMDB code negated. */
static int list_once(struct bench *b, kvc_store *s, struct raw *r, unsigned which)
{
	char p[32], next[KVC_CURSOR_MAX];
	size_t pn = list_prefix(which, p);
	int rc;
	if (s) {
		kvc_txn *txn;
		if ((rc = kvc_txn_begin(s, KVC_TXN_READ, &txn)))
			return rc;
		struct list_acc acc = {0, 0};
		rc = kvc_list(txn, p, pn, NULL, LIST_PAGE, list_fn, &acc, next);
		kvc_txn_abort(txn);
		b->sink += acc.sink;
		return rc ? rc : (int)acc.n;
	}
	MDB_txn *txn;
	MDB_cursor *c;
	if ((rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn)))
		return -rc;
	if ((rc = mdb_cursor_open(txn, r->dbi, &c))) {
		mdb_txn_abort(txn);
		return -rc;
	}
	int got = 0;
	MDB_val k = {pn, p}, d;
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	while (!rc && got < (int)LIST_PAGE && k.mv_size >= pn && !memcmp(k.mv_data, p, pn)) {
		got++;
		b->sink += k.mv_size + d.mv_size;
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc && rc != MDB_NOTFOUND ? -rc : got;
}

static void bench_list(struct bench *b, kvc_store *s, struct raw *r)
{
	unsigned *which = malloc(sizeof(*which) * b->sz.lists);
	if (!which) {
		fail(b, "malloc", -ENOMEM);
		return;
	}
	for (unsigned i = 0; i < b->sz.lists; i++)
		which[i] = (unsigned)rnd(b->sz.prefixes);

	/* Pass 0 maps the pages untimed; then the best of REPEAT. */
	double t[2] = {1e9, 1e9};
	for (int pass = 0; pass <= REPEAT && !b->failures; pass++) {
		for (int side = 0; side < 2 && !b->failures; side++) {
			double t0 = now_s();
			for (unsigned i = 0; i < b->sz.lists; i++) {
				int got = list_once(b, side ? NULL : s, side ? r : NULL, which[i]);
				if (got != (int)LIST_PAGE) {
					fail(b, side ? "raw LMDB list" : "kvc_list", got < 0 ? got : -EIO);
					break;
				}
			}
			if (pass)
				t[side] = min_d(t[side], now_s() - t0);
		}
	}
	free(which);
	char what[96], n[16];
	snprintf(what, sizeof(what), "list %u keys under a prefix, %s-key store", LIST_PAGE,
		 count(b->sz.prefixes * LIST_PAGE, n, sizeof(n)));
	report(what, "keys/s", (double)b->sz.lists * LIST_PAGE / t[0],
	       (double)b->sz.lists * LIST_PAGE / t[1], 0);
}

/* ------------------------------------------------------------- (4) reap */

static double timed_reap(struct bench *b, kvc_store *s, uint64_t want)
{
	uint64_t n = 0;
	double t0 = now_s();
	int rc = kvc_reap(s, want, &n);
	double t = now_s() - t0;
	if (rc)
		fail(b, "kvc_reap", rc);
	else if (n != want) {
		fprintf(stderr, "bench_kvcore: reaped %" PRIu64 ", expected %" PRIu64 "\n", n, want);
		b->failures++;
	}
	return t;
}

int main(int argc, char **argv)
{
	struct bench b = {.sz = full};
	bool is_quick = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			b.sz = quick;
			is_quick = true;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			return 2;
		}
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(b.dir, sizeof(b.dir), "%s/kvcore-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(b.dir)) {
		perror("mkdtemp");
		return 1;
	}
	for (int i = 0; i < VALUE_SIZE; i++)
		b.value[i] = (unsigned char)('a' + i % 26);
	b.order = malloc(sizeof(*b.order) * b.sz.keys);
	if (!b.order)
		return 1;
	for (unsigned i = 0; i < b.sz.keys; i++)
		b.order[i] = i;
	shuffle(b.order, b.sz.keys);

	printf("kvcore benchmark (%s sizes), %ld CPUs, stores under %s\n", is_quick ? "quick" : "full",
	       sysconf(_SC_NPROCESSORS_ONLN), b.dir);
	printf("settings, both sides: no fsync (kvcore KVC_SYNC_NONE = raw MDB_NOSYNC|MDB_NOMETASYNC), "
	       "MDB_NOTLS, one named database, map %llu MiB, %u-byte values, keys of 12-14 bytes, "
	       "%u gets per read txn, each figure the best of %d runs\n",
	       (unsigned long long)(MAP_SIZE >> 20), VALUE_SIZE, GETS_PER_TXN, REPEAT);
	if (is_quick)
		printf("quick sizes: a smoke run, the figures mean nothing\n");
	fflush(stdout);
	double t_start = now_s();

	bench_point(&b);

	/* (3): the big store, on both sides; kvcore's is reused for (4). */
	char kpath[128], rpath[128], cpath[128], spath[128];
	snprintf(kpath, sizeof(kpath), "%s/list-kvcore", b.dir);
	snprintf(rpath, sizeof(rpath), "%s/list-raw", b.dir);
	snprintf(cpath, sizeof(cpath), "%s/reap-small-clustered", b.dir);
	snprintf(spath, sizeof(spath), "%s/reap-small-spread", b.dir);
	kvc_store *big = NULL, *small_c = NULL, *small_s = NULL;
	struct raw r = {0};
	unsigned big_n = b.sz.prefixes * LIST_PAGE;
	const struct put_arg plain = {0};
	int rc = kv_open(&big, kpath, true);
	if (rc)
		fail(&b, "kvc_open", rc);
	if (!rc && (rc = raw_open(&r, rpath)))
		fail(&b, "raw open", rc);
	if (!b.failures) {
		fill(&b, big, &r, big_n, &plain);
		bench_list(&b, big, &r);
	}
	raw_close(&r);

	/*
	 * (4): 10k expired keys, in two layouts: clustered (one contiguous key
	 * range, "x/NNNNNN", the same pages in both stores) and spread (one
	 * next to every n-th key of the store, so in the big store each one
	 * sits on a leaf page of its own).  The big store holds both sets,
	 * the clustered one written first so it expires first; each small
	 * store holds 10k unexpired keys and one set.  One sleep for all.
	 */
	if (!b.failures && ((rc = kv_open(&small_c, cpath, true)) || (rc = kv_open(&small_s, spath, true))))
		fail(&b, "kvc_open", rc);
	const struct put_arg clustered = {.ttl = 1, .cluster = "x/"};
	const struct put_arg spread_big = {.ttl = 1, .suffix = "~x", .stride = big_n / b.sz.expired};
	const struct put_arg spread_small = {.ttl = 1, .suffix = "~x", .stride = b.sz.small / b.sz.expired};
	fill(&b, big, NULL, b.sz.expired, &clustered);
	fill(&b, big, NULL, b.sz.expired, &spread_big);
	fill(&b, small_c, NULL, b.sz.small, &plain);
	fill(&b, small_c, NULL, b.sz.expired, &clustered);
	fill(&b, small_s, NULL, b.sz.small, &plain);
	fill(&b, small_s, NULL, b.sz.expired, &spread_small);
	if (!b.failures) {
		sleep(2);
		char n1[16], n2[16], n3[16];
		count(b.sz.expired, n1, sizeof(n1));
		count(big_n + 2 * b.sz.expired, n2, sizeof(n2));
		count(b.sz.small + b.sz.expired, n3, sizeof(n3));

		double t_big = timed_reap(&b, big, b.sz.expired);
		double t_small = timed_reap(&b, small_c, b.sz.expired);
		/* The first batch reaped must have been the clustered set. */
		kvc_txn *txn;
		struct kvc_record rec;
		char key[32];
		bool split = !kvc_txn_begin(big, KVC_TXN_READ, &txn);
		if (split) {
			sprintf(key, "x/%06u", b.sz.expired - 1);
			split = kvc_get(txn, key, strlen(key), KVC_GET_EXPIRED, &rec) == -ENOENT;
			size_t kn = list_key(0, 0, key);
			strcpy(key + kn, "~x");
			split = split && kvc_get(txn, key, kn + 2, KVC_GET_EXPIRED, &rec) == 0;
			kvc_txn_abort(txn);
		}
		double ratio = t_small > 0 ? t_big / t_small : 0;
		printf("reap %s expired, clustered keys: %s-key store %.1f ms, %s-key store %.1f ms, "
		       "ratio %.2f (goal <= 2.0: %s)\n",
		       n1, n2, t_big * 1e3, n3, t_small * 1e3, ratio, ratio <= 2.0 ? "met" : "NOT met");
		if (!split)
			printf("  (note: the first reap did not take exactly the clustered set)\n");
		t_big = timed_reap(&b, big, b.sz.expired);
		t_small = timed_reap(&b, small_s, b.sz.expired);
		ratio = t_small > 0 ? t_big / t_small : 0;
		printf("reap %s expired, spread keys: %s-key store %.1f ms, %s-key store %.1f ms, "
		       "ratio %.2f (for information: in the big store every reaped key dirties its "
		       "own leaf page)\n",
		       n1, n2, t_big * 1e3, n3, t_small * 1e3, ratio);
	}
	printf("total %.1f s\n", now_s() - t_start);
	kvc_close(big);
	kvc_close(small_c);
	kvc_close(small_s);
	nftw(b.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(b.order);
	if (b.sink == 42)
		printf("\n"); /* uses the sink */
	return b.failures ? 1 : 0;
}
