/*
 * test_records: proves that a peer's record whose fields disagree cannot
 * get into a store, that clocks saturate instead of wrapping, and that
 * local writes with extreme times stay inside the range peers accept.
 *
 *  - Every hostile record (a clock of 2^64 - 1, a clock 100 years ahead, a
 *    negative expiration, a ttl whose expiration is not mtime + ttl, a ttl
 *    with mtime INT64_MAX, an mtime or ctime before 1970 or far past the
 *    record's clock, and the older checks: flags, metadata, mode, no clock
 *    or origin) is refused by kvc_apply with -EINVAL or -ERANGE and a
 *    message, kvc_apply_would gives the same answer and the same message,
 *    over an absent key and over a stored one, and the store is unchanged:
 *    same feed head, same clock, kvc_check clean, later writes stamped
 *    above every earlier clock.
 *  - Records at the edges of the rules (mtime 0, mtime exactly 100 years
 *    after the clock, a consistent ttl) are accepted by both; a tombstone's
 *    expiry fields are dropped, not judged.
 *  - A store whose clock is at its largest value (one poisoned by an older
 *    kvcore) keeps stamping that value: it never wraps to 0.
 *  - KVC_SET_MTIME (a touch) with INT64_MAX, 9223372036 s and INT64_MIN on
 *    a key with a ttl clamps the mtime into [0, now + 100 years] with a
 *    positive expiration = ceil(mtime) + ttl, kvc_check stays clean, and the
 *    record replicates to another store through kvc_apply.
 *  - kvc_check's progress: called first with 0, then with a growing count,
 *    its total fixed and known before the first record (records, feed,
 *    expiry and tombstone entries, and the chunks of large values: no scan
 *    before the check), last with
 *    done = total in a sound store; its record count is the records'.
 * Prints TAP.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

#define DAY_MS 86400000ull
#define NS 1000000000ll

static int would(kvc_store *s, const char *key, const struct kvc_record *rec, uint64_t skew,
		 char *msg, size_t msg_size)
{
	kvc_txn *txn;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("txn");
	int rc = kvc_apply_would(txn, key, strlen(key), rec, skew);
	snprintf(msg, msg_size, "%s", kvc_txn_errmsg(txn));
	kvc_txn_abort(txn);
	return rc;
}

static uint64_t now_ms(void)
{
	return (uint64_t)(kvc_now_ns() / 1000000);
}

/* A sane peer record stamped now. */
static struct kvc_record peer_rec(void)
{
	int64_t now = kvc_now_ns();
	struct kvc_record r = {
		.value = "peer",
		.value_len = 4,
		.hlc = now_ms() << 16,
		.origin = 0x5eed,
		.mtime_ns = now,
		.ctime_ns = now,
	};
	return r;
}

struct bad {
	const char *what;
	struct kvc_record rec;
	uint64_t skew;
	int want;
};

/* In a list of cases: the record base with the assignments to r made. */
#define BASE_WITH(...) (r = base, __VA_ARGS__, r)

static struct kvc_record with_ttl(struct kvc_record r, uint32_t ttl, int64_t mtime_ns,
				  int64_t expiration)
{
	r.ttl = ttl;
	r.mtime_ns = mtime_ns;
	r.expiration = expiration;
	return r;
}

static void test_hostile(const struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "hostile", path, sizeof(path)), NULL);
	is_int(kt_puts(s, "held", "mine"), 0, "fixture: a key the store holds");

	const uint64_t now = now_ms();
	const int64_t now_ns = kvc_now_ns();
	const int64_t ahead_ns = KVC_TIME_AHEAD_MAX_S * NS;
	struct kvc_record base = peer_rec();
	struct kvc_record r;
	struct bad cases[32];
	size_t n = 0;

	cases[n++] = (struct bad){"a clock of 2^64 - 1, no skew bound",
				  BASE_WITH(r.hlc = UINT64_MAX), 0, -EINVAL};
	cases[n++] = (struct bad){"a clock past 2262, no skew bound",
				  BASE_WITH(r.hlc = (KVC_HLC_MS_MAX + 1) << 16), 0, -EINVAL};
	cases[n++] = (struct bad){"a clock 100 years ahead, a bound of 1 day",
				  BASE_WITH(r.hlc = (now + 100 * 365 * DAY_MS) << 16), DAY_MS, -ERANGE};
	cases[n++] = (struct bad){"expiration -5", BASE_WITH(r.expiration = -5), 0, -EINVAL};
	cases[n++] = (struct bad){"expiration INT64_MIN",
				  BASE_WITH(r.expiration = INT64_MIN), 0, -EINVAL};
	cases[n++] = (struct bad){"ttl 2^32 - 1 with mtime INT64_MAX",
				  with_ttl(base, UINT32_MAX, INT64_MAX, 0), 0, -EINVAL};
	/* What the old ceil_sec made of it, wrapped into a negative number. */
	cases[n++] = (struct bad){"ttl 2^32 - 1 with mtime INT64_MAX and a wrapped expiration",
				  with_ttl(base, UINT32_MAX, INT64_MAX,
					   (int64_t)((uint64_t)INT64_MAX + 999999999u) / NS +
						   (int64_t)UINT32_MAX),
				  0, -EINVAL};
	cases[n++] = (struct bad){"a ttl without an expiration", with_ttl(base, 600, now_ns, 0), 0,
				  -EINVAL};
	cases[n++] = (struct bad){"a ttl whose expiration is not mtime + ttl",
				  with_ttl(base, 600, now_ns, now_ns / NS + 5000), 0, -EINVAL};
	cases[n++] = (struct bad){"mtime before 1970", BASE_WITH(r.mtime_ns = -1), 0, -EINVAL};
	cases[n++] = (struct bad){"mtime INT64_MIN", BASE_WITH(r.mtime_ns = INT64_MIN), 0, -EINVAL};
	cases[n++] = (struct bad){"mtime 100 years and a second after its clock",
				  BASE_WITH(r.mtime_ns = (int64_t)((now + 1) * 1000000) + ahead_ns + NS), 0, -EINVAL};
	cases[n++] = (struct bad){"ctime INT64_MAX", BASE_WITH(r.ctime_ns = INT64_MAX), 0, -EINVAL};
	cases[n++] = (struct bad){"ctime before 1970", BASE_WITH(r.ctime_ns = -NS), 0, -EINVAL};
	cases[n++] = (struct bad){"unknown flags", BASE_WITH(r.flags = 1u << 7), 0, -EINVAL};
	cases[n++] = (struct bad){"metadata that is not compact",
				  BASE_WITH(r.metadata = "{ \"a\": 1 }", r.metadata_len = strlen(r.metadata)), 0, -EINVAL};
	cases[n++] = (struct bad){"a mode beyond 07777", BASE_WITH(r.mode = 010000), 0, -EINVAL};
	cases[n++] = (struct bad){"no clock", BASE_WITH(r.hlc = 0), 0, -EINVAL};
	cases[n++] = (struct bad){"no origin", BASE_WITH(r.origin = 0), 0, -EINVAL};

	uint64_t head = kt_head(s), clock = kt_stats(s).hlc;
	for (size_t i = 0; i < n; i++) {
		const char *keys[2] = {"absent", "held"};
		for (int k = 0; k < 2; k++) {
			char am[256], wm[256];
			int arc = kt_apply(s, keys[k], &cases[i].rec, cases[i].skew, am, sizeof(am));
			int wrc = would(s, keys[k], &cases[i].rec, cases[i].skew, wm, sizeof(wm));
			is_int(arc, cases[i].want, "%s over %s key: kvc_apply says %s",
			       cases[i].what, k ? "a held" : "an absent", kt_errname(cases[i].want));
			is_int(wrc, arc, "%s over %s key: kvc_apply_would says the same",
			       cases[i].what, k ? "a held" : "an absent");
			ok(am[0] && strcmp(am, wm) == 0, "%s: both give the message '%s'",
			   cases[i].what, am);
		}
	}
	is_int((long long)kt_head(s), (long long)head, "no refused record reached the feed");
	is_int((long long)kt_stats(s).hlc, (long long)clock, "no refused record moved the clock");
	ok(kt_has(s, "held", 4, "mine", 4) && kt_absent(s, "absent", 6),
	   "the held key is unchanged, the absent one still absent");
	is_int(kt_check(s), 0, "kvc_check is clean after every refusal");
	is_int(kt_puts(s, "later", "x"), 0, "a local write after them");
	struct kt_rec got;
	if (kt_get(s, "later", 5, 0, &got))
		bail_out("read later");
	ok(got.r.hlc > clock && (got.r.hlc >> 16) <= now_ms() + 1000,
	   "is stamped above the old clock and near the wall clock");
	kt_rec_free(&got);

	/* Records at the edges of the rules are accepted by both. */
	struct bad good[8];
	size_t g = 0;
	good[g++] = (struct bad){"mtime and ctime at the epoch",
				  BASE_WITH(r.mtime_ns = 0, r.ctime_ns = 0), DAY_MS, 1};
	good[g++] = (struct bad){"mtime exactly 100 years after its clock",
				  BASE_WITH(r.mtime_ns = (int64_t)((base.hlc >> 16) + 1) * 1000000 + ahead_ns), DAY_MS, 1};
	good[g++] = (struct bad){"a ttl with expiration = ceil(mtime) + ttl",
				 with_ttl(base, 600, now_ns + 1, (now_ns + 1) / NS + 1 + 600), DAY_MS, 1};
	good[g++] = (struct bad){"a tombstone with stray expiry fields",
				  BASE_WITH(r.flags = KVC_REC_TOMBSTONE, r.value_len = 0, r.expiration = -5, r.ttl = 7), DAY_MS, 1};
	for (size_t i = 0; i < g; i++) {
		char key[32], am[256], wm[256];
		snprintf(key, sizeof(key), "edge%zu", i);
		good[i].rec.hlc += i; /* each its own version */
		int wrc = would(s, key, &good[i].rec, good[i].skew, wm, sizeof(wm));
		int arc = kt_apply(s, key, &good[i].rec, good[i].skew, am, sizeof(am));
		is_int(arc, 1, "%s: applied", good[i].what);
		is_int(wrc, 1, "%s: kvc_apply_would foresaw it", good[i].what);
	}
	struct kt_rec t;
	if (kt_get(s, "edge3", 5, KVC_GET_TOMBSTONES, &t))
		bail_out("read edge3");
	ok(t.r.expiration == 0 && t.r.ttl == 0, "the tombstone was stored without them");
	kt_rec_free(&t);
	is_int(kt_check(s), 0, "kvc_check is clean after the edge records");
	kvc_close(s);
}

/* Set the stored clock of a closed store, as an older kvcore could have. */
static void poison_clock(const char *path, uint64_t hlc)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char v[8];
	for (int i = 0; i < 8; i++)
		v[i] = (unsigned char)(hlc >> (8 * i));
	MDB_val k = {3, "hlc"}, d = {8, v};
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) || mdb_env_open(env, path, 0, 0644) ||
	    mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "meta", 0, &dbi) ||
	    mdb_put(txn, dbi, &k, &d, 0) || mdb_txn_commit(txn))
		bail_out("cannot poison the clock");
	mdb_env_close(env);
}

static void test_saturation(const struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "saturate", path, sizeof(path)), NULL);
	is_int(kt_puts(s, "a", "1"), 0, "fixture: a first write");
	kvc_close(s);
	poison_clock(path, UINT64_MAX - 1);
	s = kt_open(path, NULL);
	const char *keys[3] = {"b", "c", "d"};
	uint64_t want[3] = {UINT64_MAX, UINT64_MAX, UINT64_MAX};
	for (int i = 0; i < 3; i++) {
		is_int(kt_puts(s, keys[i], "x"), 0, "a write on a clock at its largest value");
		struct kt_rec r;
		if (kt_get(s, keys[i], 1, 0, &r))
			bail_out("read");
		ok(r.r.hlc == want[i], "is stamped 2^64 - 1: the clock saturates, it does not wrap");
		kt_rec_free(&r);
	}
	is_int(kt_check(s), 0, "kvc_check finds no record without a clock");
	kvc_close(s);

	/* With no skew bound, the latest clock accepted leaves room to grow. */
	s = kt_open(kt_dir_sub(d, "saturate2", path, sizeof(path)), NULL);
	struct kvc_record r = peer_rec();
	r.hlc = KVC_HLC_MS_MAX << 16 | 0xFFFF;
	char msg[256];
	is_int(kt_apply(s, "max", &r, 0, msg, sizeof(msg)), 1,
	       "a clock at KVC_HLC_MS_MAX applies with no skew bound");
	is_int(kt_puts(s, "next", "x"), 0, "a local write after it");
	struct kt_rec got;
	if (kt_get(s, "next", 4, 0, &got))
		bail_out("read");
	ok(got.r.hlc > r.hlc, "is stamped above it");
	kt_rec_free(&got);
	is_int(kt_check(s), 0, "kvc_check is clean");
	kvc_close(s);
}

struct repl_arg {
	kvc_store *src;
	const char *key;
	int rc;
};

/* Replicate one key from another store, as a sync would. */
static int repl_fn(kvc_txn *txn, void *arg)
{
	struct repl_arg *a = arg;
	kvc_txn *rt;
	int rc = kvc_txn_begin(a->src, KVC_TXN_READ, &rt);
	if (rc)
		return rc;
	struct kvc_record r;
	rc = kvc_get(rt, a->key, strlen(a->key), KVC_GET_EXPIRED, &r);
	if (!rc)
		rc = kvc_apply(txn, a->key, strlen(a->key), &r, DAY_MS);
	kvc_txn_abort(rt);
	a->rc = rc;
	return rc;
}

static void test_extreme_mtime(const struct kt_dir *d)
{
	char path[128], peer[128];
	kvc_store *s = kt_open_ttl1(kt_dir_sub(d, "touch", path, sizeof(path)));
	kvc_store *p = kt_open_ttl1(kt_dir_sub(d, "touch-peer", peer, sizeof(peer)));
	const struct {
		const char *what;
		int64_t mtime_ns;
	} cases[] = {
		{"INT64_MAX", INT64_MAX},
		{"9223372036 s (touch -d @9223372036)", 9223372036ll * NS},
		{"INT64_MIN", INT64_MIN},
		{"-1 ns", -1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char key[16];
		snprintf(key, sizeof(key), "t%zu", i);
		struct kvc_write w = {.set = KVC_SET_VALUE | KVC_SET_TTL, .value = "v",
				      .value_len = 1, .ttl = 3600};
		is_int(kt_write(s, key, strlen(key), &w, NULL, 0), 0, "fixture: a key with a ttl");
		int64_t before = kvc_now_ns();
		struct kvc_write m = {.set = KVC_SET_MTIME, .mtime_ns = cases[i].mtime_ns};
		is_int(kt_write(s, key, strlen(key), &m, NULL, 0), 0, "KVC_SET_MTIME %s",
		       cases[i].what);
		int64_t after = kvc_now_ns();
		struct kt_rec r;
		if (kt_get(s, key, strlen(key), KVC_GET_EXPIRED, &r))
			bail_out("read");
		if (cases[i].mtime_ns > 0) {
			ok(r.r.mtime_ns >= before + KVC_TIME_AHEAD_MAX_S * NS &&
				   r.r.mtime_ns <= after + KVC_TIME_AHEAD_MAX_S * NS,
			   "%s: the mtime is clamped to now + 100 years", cases[i].what);
		} else {
			is_int(r.r.mtime_ns, 0, "%s: the mtime is clamped to the epoch", cases[i].what);
		}
		ok(r.r.expiration > 0, "%s: the expiration is positive (%lld)", cases[i].what,
		   (long long)r.r.expiration);
		is_int(r.r.expiration, r.r.mtime_ns / NS + (r.r.mtime_ns % NS > 0) + 3600,
		       "%s: the expiration is ceil(mtime) + ttl", cases[i].what);
		kt_rec_free(&r);
		struct repl_arg a = {s, key, 0};
		kvc_write_txn(p, repl_fn, &a, NULL, 0);
		ok(a.rc >= 0, "%s: the record replicates to a peer (kvc_apply says %d)",
		   cases[i].what, a.rc);
	}
	struct kvc_write c = {.set = KVC_SET_CTIME, .ctime_ns = INT64_MIN};
	is_int(kt_write(s, "t0", 2, &c, NULL, 0), 0, "KVC_SET_CTIME INT64_MIN");
	struct kt_rec r;
	if (kt_get(s, "t0", 2, 0, &r))
		bail_out("read");
	is_int(r.r.ctime_ns, 0, "the ctime is clamped to the epoch");
	kt_rec_free(&r);
	kt_check_close(s, "kvc_check is clean on the touched store");
	kt_check_close(p, "kvc_check is clean on its peer");
}

struct progress_calls {
	unsigned n;
	uint64_t first_done, last_done, total;
	bool growing, same_total;
};

static void check_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress_calls *c = arg;
	if (c->n == 0) {
		c->first_done = done;
		c->total = total;
		c->growing = c->same_total = true;
	} else {
		c->growing = c->growing && done >= c->last_done;
		c->same_total = c->same_total && total == c->total;
	}
	c->last_done = done;
	c->n++;
}

static void test_check_progress(const struct kt_dir *d)
{
	char path[128], key[16];
	kvc_store *s = kt_open(kt_dir_sub(d, "progress", path, sizeof(path)), NULL);
	/* 3000 records: 200 with a ttl (expiry entries), 500 deleted
	 * (tombstones). */
	for (int i = 0; i < 3000; i++) {
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = "v", .value_len = 1};
		snprintf(key, sizeof(key), "k%04d", i);
		if (kvc_write_set_expiry(&w, false, 0, i < 200, 3600, NULL, 0) ||
		    kt_write(s, key, strlen(key), &w, NULL, 0))
			bail_out("fixture write");
	}
	for (int i = 2500; i < 3000; i++) {
		snprintf(key, sizeof(key), "k%04d", i);
		if (kt_delete(s, key, strlen(key)))
			bail_out("fixture delete");
	}
	struct progress_calls c = {0};
	uint64_t problems = 1, records = 0;
	is_int(kvc_check(s, NULL, check_progress, &c, &problems, &records), 0,
	       "check with progress: runs");
	ok(problems == 0 && records == 3000, "check: no problem, 3000 records (%llu, %llu)",
	   (unsigned long long)problems, (unsigned long long)records);
	is_int(c.first_done, 0, "progress: first called with nothing done");
	is_int((long long)c.total, 2 * 3000 + 200 + 500,
	       "progress: the total is records + feed + expiry + tombstone entries");
	ok(c.growing && c.same_total, "progress: the count grows, the total stays");
	is_int((long long)c.last_done, (long long)c.total, "progress: last called with all done");
	is_int(c.n, 2 + 6700 / KVC_CHECK_PROGRESS_EVERY,
	       "progress: once at the start, every KVC_CHECK_PROGRESS_EVERY, once at the end");
	is_int(kvc_check(s, NULL, NULL, NULL, NULL, NULL), 0, "check: every out parameter may be NULL");
	kvc_close(s);

	/* A large value's chunks are counted: most of its check is theirs. */
	s = kt_open(kt_dir_sub(d, "progress-chunks", path, sizeof(path)), NULL);
	size_t big_len = 4u << 20;
	char *big = malloc(big_len);
	if (big)
		memset(big, 'b', big_len); /* zeros would be holes, no chunks */
	if (!big || kt_put(s, "big", 3, big, big_len))
		bail_out("fixture big value");
	free(big);
	c = (struct progress_calls){0};
	is_int(kvc_check(s, NULL, check_progress, &c, &problems, &records), 0,
	       "check of a chunked value: runs");
	ok(c.total > 2 && c.last_done == c.total && records == 1,
	   "progress: record, feed entry and %llu chunks, all done at the end",
	   (unsigned long long)(c.total - 2));
	kvc_close(s);
}

int main(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	test_hostile(&d);
	test_saturation(&d);
	test_extreme_mtime(&d);
	test_check_progress(&d);
	kt_dir_remove(&d);
	return done_testing();
}
