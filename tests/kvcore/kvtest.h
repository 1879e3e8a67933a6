/*
 * kvtest: what the kvcore unit tests share: a fresh store directory per
 * test (removed at the end), and one-call wrappers over kvcore.h for the
 * common steps (write one key in its own transaction, read one key into
 * owned memory, the feed head, an integrity check).  Everything goes
 * through the public API only; a wrapper that cannot do its step returns
 * the -errno so the test can assert on it.
 */
#ifndef KVFS_TESTS_KVTEST_H
#define KVFS_TESTS_KVTEST_H

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvcore.h"
#include "tap.h"

/* A scratch directory under /tmp; stores go in subdirectories of it. */
struct kt_dir {
	char path[64];
};

static inline void kt_dir_make(struct kt_dir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/kvcore-test.XXXXXX");
	if (!mkdtemp(d->path))
		bail_out("mkdtemp failed");
}

static inline int kt_rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static inline void kt_dir_remove(struct kt_dir *d)
{
	if (d->path[0])
		nftw(d->path, kt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	d->path[0] = 0;
}

/* @ret gets "<dir>/<name>" (a store path that does not exist yet). */
static inline const char *kt_dir_sub(const struct kt_dir *d, const char *name, char *ret,
				     size_t size)
{
	snprintf(ret, size, "%s/%s", d->path, name);
	return ret;
}

/* The symbolic name of a -errno, for check names. */
static inline const char *kt_errname(int rc)
{
	switch (rc) {
	case 0: return "0";
	case -ENOENT: return "-ENOENT";
	case -EINVAL: return "-EINVAL";
	case -ENAMETOOLONG: return "-ENAMETOOLONG";
	case -EFBIG: return "-EFBIG";
	case -E2BIG: return "-E2BIG";
	case -EEXIST: return "-EEXIST";
	case -EBADF: return "-EBADF";
	case -ENODATA: return "-ENODATA";
	case -ERANGE: return "-ERANGE";
	case -ENOSPC: return "-ENOSPC";
	case -EROFS: return "-EROFS";
	case -EIO: return "-EIO";
	default: return "another -errno";
	}
}

static inline kvc_store *kt_open(const char *path, const struct kvc_open_opts *opts)
{
	kvc_store *s = NULL;
	int rc = kvc_open(path, opts, &s, NULL);
	if (rc) {
		diag("kvc_open %s: %s", path, strerror(-rc));
		bail_out("cannot open a store");
	}
	return s;
}

/* Open with min_ttl 1, as tests of expiry do. */
static inline kvc_store *kt_open_ttl1(const char *path)
{
	struct kvc_open_opts o = {.min_ttl_set = true, .min_ttl = 1};
	return kt_open(path, &o);
}

/* A new scratch directory @d and the store "<d>/store" in it, opened with
 * @opts (NULL: the defaults); @ret_path (may be NULL) gets its path
 * (@size bytes), to reopen it. */
static inline kvc_store *kt_dir_store(struct kt_dir *d, const struct kvc_open_opts *opts,
				      char *ret_path, size_t size)
{
	char path[128];
	kt_dir_make(d);
	if (!ret_path) {
		ret_path = path;
		size = sizeof(path);
	}
	return kt_open(kt_dir_sub(d, "store", ret_path, size), opts);
}

struct kt_write_arg {
	const void *key;
	size_t key_len;
	const struct kvc_write *w;
};

static inline int kt_write_fn(kvc_txn *txn, void *arg)
{
	struct kt_write_arg *a = arg;
	return kvc_write(txn, a->key, a->key_len, a->w);
}

/* One kvc_write in its own transaction; on failure kvc_txn_errmsg() is
 * copied to @errmsg (@errmsg_size bytes; may be NULL). */
static inline int kt_write(kvc_store *s, const void *key, size_t key_len,
			   const struct kvc_write *w, char *errmsg, size_t errmsg_size)
{
	struct kt_write_arg a = {key, key_len, w};
	if (errmsg && errmsg_size)
		errmsg[0] = 0;
	return kvc_write_txn(s, kt_write_fn, &a, errmsg, errmsg_size);
}

static inline int kt_put(kvc_store *s, const void *key, size_t key_len, const void *value,
			 size_t value_len)
{
	struct kvc_write w = {.set = KVC_SET_VALUE, .value = value, .value_len = value_len};
	return kt_write(s, key, key_len, &w, NULL, 0);
}

struct kt_apply_arg {
	const char *key;
	const struct kvc_record *rec;
	uint64_t max_skew_ms;
};

static inline int kt_apply_fn(kvc_txn *txn, void *arg)
{
	struct kt_apply_arg *a = arg;
	return kvc_apply(txn, a->key, strlen(a->key), a->rec, a->max_skew_ms);
}

/* kvc_apply of @rec to @key (a NUL-terminated key) in its own transaction;
 * on failure the message goes to @errmsg (may be NULL). */
static inline int kt_apply(kvc_store *s, const char *key, const struct kvc_record *rec,
			   uint64_t max_skew_ms, char *errmsg, size_t errmsg_size)
{
	struct kt_apply_arg a = {key, rec, max_skew_ms};
	if (errmsg && errmsg_size)
		errmsg[0] = 0;
	return kvc_write_txn(s, kt_apply_fn, &a, errmsg, errmsg_size);
}

static inline int kt_puts(kvc_store *s, const char *key, const char *value)
{
	return kt_put(s, key, strlen(key), value, strlen(value));
}

static inline int kt_delete_fn(kvc_txn *txn, void *arg)
{
	struct kt_write_arg *a = arg;
	return kvc_delete(txn, a->key, a->key_len);
}

static inline int kt_delete(kvc_store *s, const void *key, size_t key_len)
{
	struct kt_write_arg a = {key, key_len, NULL};
	return kvc_write_txn(s, kt_delete_fn, &a, NULL, 0);
}

/* A record read into owned memory (kt_rec_free releases it). */
struct kt_rec {
	struct kvc_record r; /* value/metadata point at the copies below */
	char *value;         /* NUL-terminated copy */
	char *metadata;      /* NUL-terminated copy, NULL when none */
};

static inline void kt_rec_free(struct kt_rec *k)
{
	free(k->value);
	free(k->metadata);
	memset(k, 0, sizeof(*k));
}

static inline int kt_get(kvc_store *s, const void *key, size_t key_len, unsigned flags,
			 struct kt_rec *ret)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(s, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	struct kvc_record r;
	rc = kvc_get(txn, key, key_len, flags, &r);
	if (!rc) {
		memset(ret, 0, sizeof(*ret));
		ret->r = r;
		ret->value = malloc(r.value_len + 1);
		if (!ret->value)
			bail_out("out of memory");
		if (r.value_len)
			memcpy(ret->value, r.value, r.value_len);
		ret->value[r.value_len] = 0;
		ret->r.value = ret->value;
		if (r.metadata) {
			ret->metadata = malloc(r.metadata_len + 1);
			if (!ret->metadata)
				bail_out("out of memory");
			memcpy(ret->metadata, r.metadata, r.metadata_len);
			ret->metadata[r.metadata_len] = 0;
			ret->r.metadata = ret->metadata;
		}
	}
	kvc_txn_abort(txn);
	return rc;
}

/* Whether @key reads back (plain get) with exactly @value. */
static inline bool kt_has(kvc_store *s, const void *key, size_t key_len, const void *value,
			  size_t value_len)
{
	struct kt_rec k;
	if (kt_get(s, key, key_len, 0, &k))
		return false;
	bool same = k.r.value_len == value_len && memcmp(k.value, value, value_len) == 0;
	kt_rec_free(&k);
	return same;
}

static inline bool kt_absent(kvc_store *s, const void *key, size_t key_len)
{
	struct kt_rec k;
	int rc = kt_get(s, key, key_len, 0, &k);
	if (!rc)
		kt_rec_free(&k);
	return rc == -ENOENT;
}

/* JSON texts and their compact form: what kvc_json_compact makes of them
 * (test_meta) and how a write stores them as metadata (test_limits). */
static const struct kt_json_pair {
	const char *in, *out;
} kt_compact_examples[] = {
	{.in = "{ \"a\" : 1 }", .out = "{\"a\":1}"},
	{.in = "{\"b\":2, \"a\":1}", .out = "{\"b\":2,\"a\":1}"},
	{.in = "\n[ 1 ,\t2 ,\r\n3 ]\n", .out = "[1,2,3]"},
	{.in = "{\"k\": \" spaced  value \"}", .out = "{\"k\":\" spaced  value \"}"},
	{.in = "{\"e\" : \"a\\\"b \\\\ \"}", .out = "{\"e\":\"a\\\"b \\\\ \"}"},
	{.in = "  \"text\"  ", .out = "\"text\""},
	{.in = "null", .out = "null"},
	{.in = "{}", .out = "{}"},
	{.in = "[ ]", .out = "[]"},
	{.in = "{\n\t\"a b\" : \" x  y \",\r\n \"c\" : [ 1 , 2 ] }", .out = "{\"a b\":\" x  y \",\"c\":[1,2]}"},
	{.in = " [ true , null ] ", .out = "[true,null]"},
	{.in = "\"just a string\"", .out = "\"just a string\""},
	{.in = " 42 ", .out = "42"},
	{.in = "{\"q\":\"say \\\" { , } \"}", .out = "{\"q\":\"say \\\" { , } \"}"},
};

/* The record of @key with its value and metadata left out (they do not
 * outlive the read); a zeroed record when it cannot be read. */
static inline struct kvc_record kt_rec_of(kvc_store *s, const char *key, unsigned flags)
{
	struct kt_rec k;
	struct kvc_record r;
	memset(&r, 0, sizeof(r));
	if (kt_get(s, key, strlen(key), flags, &k))
		return r;
	r = k.r;
	r.value = NULL;
	r.metadata = NULL;
	kt_rec_free(&k);
	return r;
}

/* A read transaction on @s: a test cannot go on without one. */
static inline kvc_txn *kt_read_txn(kvc_store *s)
{
	kvc_txn *txn;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("read txn");
	return txn;
}

/* Writes keys "<prefix>00000".."<prefix>(n-1)", each holding its own name:
 * kvc_write_txn(s, kt_batch_fn, &(struct kt_batch){prefix, n}, ...). */
struct kt_batch {
	const char *prefix;
	unsigned n;
};

static inline int kt_batch_fn(kvc_txn *txn, void *arg)
{
	struct kt_batch *a = arg;
	for (unsigned i = 0; i < a->n; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "%s%05u", a->prefix, i);
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = key, .value_len = (size_t)n};
		int rc = kvc_write(txn, key, (size_t)n, &w);
		if (rc)
			return rc;
	}
	return 0;
}

/* A kvc_list or kvc_scan callback counting the keys in *(unsigned *)@arg. */
static inline int kt_count_fn(void *arg, const void *key, size_t key_len,
			      const struct kvc_record *rec)
{
	(*(unsigned *)arg)++;
	return 0;
}

/* One kvc_list page of up to @limit keys under @prefix from @cursor, its
 * keys counted in @ret_n (from 0); @next as for kvc_list. */
static inline int kt_list_count(kvc_txn *txn, const char *prefix, const char *cursor,
				unsigned limit, unsigned *ret_n, char *next)
{
	*ret_n = 0;
	return kvc_list(txn, prefix, strlen(prefix), cursor, limit, kt_count_fn, ret_n, next);
}

/* A xorshift64 step: the next of a test's repeatable pseudo-random
 * numbers below @n, from the state at @rng. */
static inline uint32_t kt_rnd(uint64_t *rng, uint32_t n)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	return (uint32_t)(*rng % n);
}

static inline uint64_t kt_head(kvc_store *s)
{
	kvc_txn *txn;
	uint64_t seq = UINT64_MAX;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		return UINT64_MAX;
	if (kvc_feed_head(txn, &seq))
		seq = UINT64_MAX;
	kvc_txn_abort(txn);
	return seq;
}

static inline void kt_check_diag(void *arg, const char *problem)
{
	unsigned *shown = arg;
	if ((*shown)++ < 20)
		diag("check: %s", problem);
}

/* kvc_check, its problems shown as diagnostics.  @return problems or -errno. */
static inline long long kt_check(kvc_store *s)
{
	unsigned shown = 0;
	uint64_t problems = 0;
	int rc = kvc_check(s, kt_check_diag, NULL, &shown, &problems, NULL);
	return rc ? rc : (long long)problems;
}

/* The check "kvc_check finds no problem in @s", named @what, then close @s. */
static inline void kt_check_close(kvc_store *s, const char *what)
{
	is_int(kt_check(s), 0, "%s", what);
	kvc_close(s);
}

static inline struct kvc_stats kt_stats(kvc_store *s)
{
	struct kvc_stats st;
	memset(&st, 0, sizeof(st));
	int rc = kvc_stats(s, &st);
	if (rc) {
		diag("kvc_stats: %s", strerror(-rc));
		memset(&st, 0xff, sizeof(st));
	}
	return st;
}

/* Sleep until kvcore's clock is past Unix second @sec (plus a margin). */
static inline void kt_sleep_past(int64_t sec)
{
	int64_t target = sec * 1000000000 + 50000000;
	for (;;) {
		int64_t now = kvc_now_ns();
		if (now >= target)
			return;
		int64_t d = target - now;
		struct timespec ts = {d / 1000000000, d % 1000000000};
		nanosleep(&ts, NULL);
	}
}

static inline void kt_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Collect the live keys of a store with a kvc_cursor walk, in its order. */
struct kt_keys {
	size_t n, cap;
	unsigned char **key;
	size_t *len;
};

static inline void kt_keys_add(struct kt_keys *k, const void *key, size_t len)
{
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 64;
		k->key = realloc(k->key, k->cap * sizeof(*k->key));
		k->len = realloc(k->len, k->cap * sizeof(*k->len));
		if (!k->key || !k->len)
			bail_out("out of memory");
	}
	k->key[k->n] = malloc(len ? len : 1);
	if (!k->key[k->n])
		bail_out("out of memory");
	memcpy(k->key[k->n], key, len);
	k->len[k->n] = len;
	k->n++;
}

static inline void kt_keys_free(struct kt_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->key[i]);
	free(k->key);
	free(k->len);
	memset(k, 0, sizeof(*k));
}

static inline int kt_list_fn(void *arg, const void *key, size_t key_len,
			     const struct kvc_record *rec)
{
	kt_keys_add(arg, key, key_len);
	return 0;
}

/* Every live key through kvc_cursor_seek("") + kvc_cursor_next. */
static inline int kt_cursor_all(kvc_store *s, struct kt_keys *ret)
{
	kvc_txn *txn;
	kvc_cursor *c;
	int rc = kvc_txn_begin(s, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = kvc_cursor_open(txn, 0, &c);
	if (rc) {
		kvc_txn_abort(txn);
		return rc;
	}
	const void *k;
	size_t kn;
	struct kvc_record r;
	for (rc = kvc_cursor_seek(c, "", 0, &k, &kn, &r); !rc; rc = kvc_cursor_next(c, &k, &kn, &r))
		kt_keys_add(ret, k, kn);
	kvc_cursor_close(c);
	kvc_txn_abort(txn);
	return rc == -ENOENT ? 0 : rc;
}

/* Every live key under @prefix through kvc_list pages of @limit. */
static inline int kt_list_all(kvc_store *s, const void *prefix, size_t prefix_len,
			      unsigned limit, struct kt_keys *ret, unsigned *ret_pages)
{
	char cursor[KVC_CURSOR_MAX] = "", next[KVC_CURSOR_MAX];
	unsigned pages = 0;
	for (;;) {
		kvc_txn *txn;
		int rc = kvc_txn_begin(s, KVC_TXN_READ, &txn);
		if (rc)
			return rc;
		rc = kvc_list(txn, prefix, prefix_len, cursor, limit, kt_list_fn, ret, next);
		kvc_txn_abort(txn);
		if (rc)
			return rc;
		pages++;
		if (!next[0])
			break;
		if (pages > 1000000)
			return -ELOOP;
		memcpy(cursor, next, sizeof(cursor));
	}
	if (ret_pages)
		*ret_pages = pages;
	return 0;
}

/* Bytewise order, a shorter key before any key it is a prefix of. */
static inline int kt_key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

/* Whether two key lists are equal element by element; the first
 * difference is shown as a diagnostic. */
static inline bool kt_keys_equal(const struct kt_keys *a, const struct kt_keys *b)
{
	size_t n = a->n < b->n ? a->n : b->n;
	for (size_t i = 0; i < n; i++) {
		if (a->len[i] != b->len[i] || memcmp(a->key[i], b->key[i], a->len[i])) {
			diag("  first difference at %zu: lengths %zu and %zu", i, a->len[i],
			     b->len[i]);
			return false;
		}
	}
	if (a->n != b->n)
		diag("  %zu keys vs %zu keys", a->n, b->n);
	return a->n == b->n;
}

#endif
