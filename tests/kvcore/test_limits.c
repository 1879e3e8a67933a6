/*
 * test_limits: proves every Workers KV limit of PRODUCT.md section 2 at and
 * just past its boundary, through kvcore.h only: key length and validity,
 * value size, metadata size and JSON validity (and that metadata is stored
 * compact), expiration and ttl against min_ttl (per handle and per store),
 * the list limit, KVC_CREATE / KVC_MUST_EXIST, and the wording of
 * kvc_txn_errmsg().  Every refused write is also shown to leave the store
 * unchanged: the feed head does not move and the key stays absent (or keeps
 * its old value).  Prints TAP.
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

#define MIB (1024u * 1024u)

/*
 * Write @w to @key in a write transaction that is then committed anyway:
 * the refusal must leave nothing behind even when the caller commits.
 * Checks the return, the message (when @want_msg), that the feed head did
 * not move and, when @absent, that the key still reads as absent.
 */
static void refused(kvc_store *s, const void *key, size_t key_len, const struct kvc_write *w,
		    int want_rc, const char *want_msg, bool absent, const char *what)
{
	uint64_t head = kt_head(s);
	kvc_txn *txn;
	if (kvc_txn_begin(s, KVC_TXN_WRITE, &txn))
		bail_out("kvc_txn_begin write failed");
	int rc = kvc_write(txn, key, key_len, w);
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", kvc_txn_errmsg(txn));
	int crc = kvc_txn_commit(txn);
	is_int(rc, want_rc, "%s: refused with %s", what, kt_errname(want_rc));
	if (want_msg)
		is_str(msg, want_msg, "%s: kvc_txn_errmsg wording", what);
	else
		ok(msg[0] != 0, "%s: kvc_txn_errmsg says why (\"%s\")", what, msg);
	is_int(crc, 0, "%s: committing after the refusal succeeds", what);
	is_int((long long)kt_head(s), (long long)head, "%s: feed head unchanged", what);
	if (absent)
		ok(kt_absent(s, key, key_len), "%s: key still absent", what);
}

static void accepted(kvc_store *s, const void *key, size_t key_len, const struct kvc_write *w,
		     const char *what)
{
	uint64_t head = kt_head(s);
	char msg[256];
	int rc = kt_write(s, key, key_len, w, msg, sizeof(msg));
	if (!is_int(rc, 0, "%s: accepted", what))
		diag("  message: %s", msg);
	is_int((long long)kt_head(s), (long long)(head + 1), "%s: feed head moved by one", what);
}

static void test_keys(kvc_store *s)
{
	char key[600];
	struct kvc_write w = {.set = KVC_SET_VALUE, .value = "v", .value_len = 1};

	memset(key, 'k', sizeof(key));
	accepted(s, key, 512, &w, "key of 512 ASCII bytes");
	ok(kt_has(s, key, 512, "v", 1), "key of 512 ASCII bytes reads back");
	is_int(kvc_key_check(key, 512), 0, "kvc_key_check: 512 bytes is valid");
	refused(s, key, 513, &w, -ENAMETOOLONG,
		"UTF-8 encoded length of 513 exceeds key length limit of 512.", false,
		"key of 513 bytes");
	is_int(kvc_key_check(key, 513), -ENAMETOOLONG, "kvc_key_check: 513 bytes -ENAMETOOLONG");
	ok(kt_has(s, key, 512, "v", 1), "key of 513 bytes refused: its 512-byte prefix untouched");

	/* Multi-byte characters count in bytes, not characters. */
	char emoji[600];
	for (int i = 0; i < 128; i++)
		memcpy(emoji + 4 * i, "\xF0\x9F\x98\x80", 4);
	accepted(s, emoji, 512, &w, "key of 128 four-byte characters (512 bytes)");
	ok(kt_has(s, emoji, 512, "v", 1), "key of 128 four-byte characters reads back");
	memset(key, 'e', 511);
	memcpy(key + 511, "\xC3\xA9", 2);
	refused(s, key, 513, &w, -ENAMETOOLONG,
		"UTF-8 encoded length of 513 exceeds key length limit of 512.", false,
		"key of 511 ASCII + a two-byte character (513 bytes)");
	memcpy(key + 510, "\xC3\xA9", 2);
	accepted(s, key, 512, &w, "key of 510 ASCII + a two-byte character (512 bytes)");

	static const struct {
		const char *key;
		size_t len;
		const char *what;
	} bad[] = {
		{"", 0, "empty key"},
		{".", 1, "key \".\""},
		{"..", 2, "key \"..\""},
		{"\xFF", 1, "key with byte 0xFF"},
		{"a\x80", 2, "key with a stray continuation byte"},
		{"ab\xC3", 3, "key ending inside a two-byte character"},
		{"\xC0\xAF", 2, "key with an overlong encoding"},
		{"\xED\xA0\x80", 3, "key with a UTF-16 surrogate"},
		{"\xF4\x90\x80\x80", 4, "key with a code point above U+10FFFF"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		refused(s, bad[i].key, bad[i].len, &w, -EINVAL, NULL, false, bad[i].what);
		is_int(kvc_key_check(bad[i].key, bad[i].len), -EINVAL, "kvc_key_check: %s -EINVAL",
		       bad[i].what);
	}
	static const char *const good[] = {"...", ".a", "a.", "a..b", "/", "%", "\x01", "\x7F",
					   "\xC3\xA9", "\xE2\x82\xAC", "\xF4\x8F\xBF\xBF"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t n = strlen(good[i]);
		is_int(kvc_key_check(good[i], n), 0, "kvc_key_check: key #%zu (%zu bytes) is valid", i, n);
		is_int(kt_put(s, good[i], n, "g", 1), 0, "key #%zu (%zu bytes) can be written", i, n);
		ok(kt_has(s, good[i], n, "g", 1), "key #%zu reads back", i);
	}
	is_int(kt_put(s, "nul\0inside", 10, "z", 1), 0, "key with a NUL byte inside is written");
	ok(kt_has(s, "nul\0inside", 10, "z", 1) && kt_absent(s, "nul", 3),
	   "key with a NUL byte reads back and is distinct from its prefix");

	/* Reads and deletes check keys the same way. */
	kvc_txn *txn;
	struct kvc_record r;
	if (kvc_txn_begin(s, KVC_TXN_READ, &txn))
		bail_out("read txn");
	memset(key, 'k', sizeof(key));
	is_int(kvc_get(txn, key, 513, 0, &r), -ENAMETOOLONG, "get of a 513-byte key -ENAMETOOLONG");
	is_int(kvc_get(txn, "..", 2, 0, &r), -EINVAL, "get of \"..\" -EINVAL");
	is_int(kvc_get(txn, "\xFF", 1, 0, &r), -EINVAL, "get of invalid UTF-8 -EINVAL");
	is_int(kvc_write(txn, "x", 1, &w), -EBADF, "write in a read transaction -EBADF");
	kvc_txn_abort(txn);
	is_int(kt_delete(s, key, 513), -ENAMETOOLONG, "delete of a 513-byte key -ENAMETOOLONG");
	is_int(kt_delete(s, "", 0), -EINVAL, "delete of the empty key -EINVAL");
}

static void test_values(kvc_store *s)
{
	size_t max = KVC_VALUE_MAX;
	unsigned char *big = malloc(max + 1);
	if (!big)
		bail_out("out of memory");
	for (size_t i = 0; i < max + 1; i++)
		big[i] = (unsigned char)(i * 131 + (i >> 12));
	is_int(KVC_VALUE_MAX, 26214400, "KVC_VALUE_MAX is 25 MiB");

	struct kvc_write w = {.set = KVC_SET_VALUE, .value = big, .value_len = max};
	accepted(s, "big", 3, &w, "value of exactly 25 MiB");
	ok(kt_has(s, "big", 3, big, max), "value of 25 MiB reads back byte for byte");

	w.value_len = max + 1;
	refused(s, "big+1", 5, &w, -EFBIG, "Value length of 26214401 exceeds limit of 26214400.",
		true, "value of 25 MiB + 1");
	refused(s, "big", 3, &w, -EFBIG, "Value length of 26214401 exceeds limit of 26214400.",
		false, "value of 25 MiB + 1 over an existing key");
	ok(kt_has(s, "big", 3, big, max), "refused oversized overwrite keeps the old value");

	char msg[256];
	is_int(kt_write(s, "big+1", 5, &w, msg, sizeof(msg)), -EFBIG,
	       "value of 25 MiB + 1 through kvc_write_txn -EFBIG");
	is_str(msg, "Value length of 26214401 exceeds limit of 26214400.",
	       "kvc_write_txn copies the message of the refusal");

	w.value_len = 0;
	accepted(s, "empty", 5, &w, "empty value");
	ok(kt_has(s, "empty", 5, "", 0), "empty value reads back empty");
	is_int(kt_delete(s, "big", 3), 0, "the 25 MiB key can be deleted");
	free(big);
}

/* Compact object text {"k":"xxx..."} of exactly @n bytes. */
static char *meta_of(size_t n, bool spaced)
{
	char *m = malloc(n + 16);
	if (!m)
		bail_out("out of memory");
	size_t pad = n - 8, w = 0;
	w += (size_t)sprintf(m, spaced ? "{ \"k\" : \"" : "{\"k\":\"");
	memset(m + w, 'x', pad);
	w += pad;
	w += (size_t)sprintf(m + w, spaced ? "\" }\n" : "\"}");
	m[w] = 0;
	return m;
}

static void test_metadata(kvc_store *s)
{
	struct kt_rec k;
	struct kvc_write w = {.set = KVC_SET_VALUE | KVC_SET_METADATA, .value = "v", .value_len = 1};

	char *m1024 = meta_of(1024, false), *m1025 = meta_of(1025, false);
	char *s1024 = meta_of(1024, true);
	is_int((long long)strlen(m1024), 1024, "fixture: compact metadata of 1024 bytes");
	w.metadata = m1024;
	w.metadata_len = 1024;
	accepted(s, "m1024", 5, &w, "metadata of exactly 1024 compact bytes");
	if (!kt_get(s, "m1024", 5, 0, &k)) {
		ok(k.metadata && k.r.metadata_len == 1024 && !memcmp(k.metadata, m1024, 1024),
		   "metadata of 1024 bytes reads back unchanged");
		kt_rec_free(&k);
	} else {
		ok(false, "metadata of 1024 bytes reads back unchanged");
	}
	w.metadata = s1024;
	w.metadata_len = strlen(s1024);
	accepted(s, "s1024", 5, &w, "metadata over 1024 bytes as written but 1024 compact");
	ok(kt_get(s, "s1024", 5, 0, &k) == 0 && k.r.metadata_len == 1024 &&
		   !memcmp(k.metadata, m1024, 1024),
	   "spaced metadata is stored as its 1024-byte compact form");
	kt_rec_free(&k);

	w.metadata = m1025;
	w.metadata_len = 1025;
	refused(s, "m1025", 5, &w, -E2BIG, "Metadata length of 1025 exceeds limit of 1024.", true,
		"metadata of 1025 compact bytes");
	refused(s, "m1024", 5, &w, -E2BIG, "Metadata length of 1025 exceeds limit of 1024.", false,
		"metadata of 1025 bytes over an existing key");
	char *s1025 = meta_of(1025, true);
	w.metadata = s1025;
	w.metadata_len = strlen(s1025);
	refused(s, "s1025", 5, &w, -E2BIG, "Metadata length of 1025 exceeds limit of 1024.", true,
		"spaced metadata of 1025 compact bytes (the message gives the compact length)");
	free(s1025);
	ok(kt_get(s, "m1024", 5, 0, &k) == 0 && k.r.metadata_len == 1024,
	   "refused metadata keeps the old metadata");
	kt_rec_free(&k);

	static const char *const not_json[] = {"{a:1}", "{\"a\":1", "hello", "{} {}", "[1,]",
					       "{\"a\":1}x", "'s'"};
	for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
		w.metadata = not_json[i];
		w.metadata_len = strlen(not_json[i]);
		char what[64];
		snprintf(what, sizeof(what), "metadata '%s' (not JSON)", not_json[i]);
		refused(s, "badmeta", 7, &w, -EINVAL, NULL, true, what);
	}

	const struct kt_json_pair *compact = kt_compact_examples;
	for (size_t i = 0; i < sizeof(kt_compact_examples) / sizeof(kt_compact_examples[0]); i++) {
		w.metadata = compact[i].in;
		w.metadata_len = strlen(compact[i].in);
		char key[32];
		snprintf(key, sizeof(key), "compact%zu", i);
		is_int(kt_write(s, key, strlen(key), &w, NULL, 0), 0, "metadata %s accepted",
		       compact[i].out);
		if (!kt_get(s, key, strlen(key), 0, &k)) {
			is_str(k.metadata, compact[i].out, "metadata %s is stored compact",
			       compact[i].out);
			kt_rec_free(&k);
		} else {
			ok(false, "metadata %s is stored compact", compact[i].out);
		}
	}

	/* NULL metadata with KVC_SET_METADATA clears it; without the flag it stays. */
	struct kvc_write v = {.set = KVC_SET_VALUE, .value = "w", .value_len = 1};
	is_int(kt_write(s, "compact0", 8, &v, NULL, 0), 0, "value-only write to a key with metadata");
	ok(kt_get(s, "compact0", 8, 0, &k) == 0 && k.metadata && !strcmp(k.metadata, "{\"a\":1}"),
	   "a write without KVC_SET_METADATA keeps the metadata");
	kt_rec_free(&k);
	struct kvc_write clear = {.set = KVC_SET_METADATA, .metadata = NULL};
	is_int(kt_write(s, "compact0", 8, &clear, NULL, 0), 0, "KVC_SET_METADATA with NULL");
	ok(kt_get(s, "compact0", 8, 0, &k) == 0 && !k.metadata && k.r.metadata_len == 0 &&
		   !strcmp(k.value, "w"),
	   "KVC_SET_METADATA with NULL clears the metadata and keeps the value");
	kt_rec_free(&k);
	free(m1024);
	free(m1025);
	free(s1024);
}

/* Wait until the wall clock is early in a second, so "now" seen by the
 * test and by the next transaction are the same Unix second. */
static int64_t early_in_second(void)
{
	for (;;) {
		int64_t ns = kvc_now_ns();
		if (ns % 1000000000 < 500000000)
			return ns / 1000000000;
		kt_sleep_ms(50);
	}
}

static void test_expiry_limits(kvc_store *s)
{
	is_int(kvc_store_min_ttl(s), 60, "a new store's min_ttl is 60 s (KVC_MIN_TTL_DEFAULT)");
	struct kt_rec k;
	struct kvc_write w = {.set = KVC_SET_VALUE | KVC_SET_TTL, .value = "t", .value_len = 1};

	w.ttl = 60;
	accepted(s, "ttl60", 5, &w, "ttl of exactly min_ttl (60)");
	if (!kt_get(s, "ttl60", 5, 0, &k)) {
		is_int(k.r.ttl, 60, "ttl 60 reads back");
		is_int(k.r.expiration, (k.r.mtime_ns + 999999999) / 1000000000 + 60,
		       "ttl 60: expiration = mtime (rounded up) + 60");
		kt_rec_free(&k);
	}
	w.ttl = 59;
	refused(s, "ttl59", 5, &w, -EINVAL,
		"Invalid expiration_ttl of 59. Expiration TTL must be at least 60.", true,
		"ttl of min_ttl - 1 (59)");
	w.ttl = 30;
	refused(s, "ttl30", 5, &w, -EINVAL,
		"Invalid expiration_ttl of 30. Expiration TTL must be at least 60.", true,
		"ttl of 30");
	w.ttl = 1;
	refused(s, "ttl60", 5, &w, -EINVAL,
		"Invalid expiration_ttl of 1. Expiration TTL must be at least 60.", false,
		"ttl of 1 over an existing key");
	ok(kt_get(s, "ttl60", 5, 0, &k) == 0 && k.r.ttl == 60, "refused ttl keeps the old ttl");
	kt_rec_free(&k);

	struct kvc_write e = {.set = KVC_SET_VALUE | KVC_SET_EXPIRATION, .value = "e",
			      .value_len = 1};
	int64_t now = early_in_second();
	e.expiration = now + 60;
	accepted(s, "exp60", 5, &e, "expiration of exactly now + min_ttl");
	if (!kt_get(s, "exp60", 5, 0, &k)) {
		is_int(k.r.expiration, now + 60, "expiration reads back as given");
		is_int(k.r.ttl, 0, "an expiration carries no ttl");
		kt_rec_free(&k);
	}
	now = early_in_second();
	e.expiration = now + 59;
	refused(s, "exp59", 5, &e, -EINVAL, NULL, true, "expiration of now + min_ttl - 1");
	e.expiration = 1;
	refused(s, "exp1", 4, &e, -EINVAL, NULL, true, "expiration in the past (1970)");
	char msg[256];
	kt_write(s, "exp1", 4, &e, msg, sizeof(msg));
	ok(strncmp(msg, "Invalid expiration of 1.", 24) == 0,
	   "expiration message names the value as Workers KV does (\"%s\")", msg);
}

static void test_min_ttl(const struct kt_dir *d)
{
	char path[128];
	kt_dir_sub(d, "minttl", path, sizeof(path));
	kvc_store *def = kt_open(path, NULL);
	kvc_store *one = kt_open_ttl1(path);
	struct kvc_write w = {.set = KVC_SET_VALUE | KVC_SET_TTL, .value = "t", .value_len = 1,
			      .ttl = 1};

	is_int(kvc_store_min_ttl(one), 1, "opts.min_ttl_set: the handle's min_ttl is 1");
	is_int(kvc_store_min_ttl(def), 60, "another handle without the option keeps 60");
	is_int(kt_write(one, "a", 1, &w, NULL, 0), 0, "ttl 1 accepted on the min_ttl 1 handle");
	char msg[256];
	is_int(kt_write(def, "b", 1, &w, msg, sizeof(msg)), -EINVAL,
	       "ttl 1 refused on the default handle of the same store");
	is_str(msg, "Invalid expiration_ttl of 1. Expiration TTL must be at least 60.",
	       "the default handle's message names its own min_ttl");
	is_int(kt_stats(one).min_ttl, 1, "kvc_stats reports the handle's min_ttl");

	is_int(kvc_store_set_min_ttl(def, 0), -EINVAL, "kvc_store_set_min_ttl(0) -EINVAL");
	is_int(kvc_store_set_min_ttl(def, 30), 0, "kvc_store_set_min_ttl(30)");
	is_int(kvc_store_min_ttl(def), 30, "the setting handle now uses 30");
	w.ttl = 29;
	is_int(kt_write(def, "c", 1, &w, msg, sizeof(msg)), -EINVAL, "ttl 29 refused at min_ttl 30");
	is_str(msg, "Invalid expiration_ttl of 29. Expiration TTL must be at least 30.",
	       "message at min_ttl 30");
	w.ttl = 30;
	is_int(kt_write(def, "c", 1, &w, NULL, 0), 0, "ttl 30 accepted at min_ttl 30");
	is_int(kvc_store_min_ttl(one), 1,
	       "a handle that overrides min_ttl keeps its own after kvc_store_set_min_ttl");
	kvc_close(def);
	kvc_close(one);

	kvc_store *again = kt_open(path, NULL);
	is_int(kvc_store_min_ttl(again), 30, "the store's min_ttl of 30 persists across reopen");
	w.ttl = 29;
	is_int(kt_write(again, "d", 1, &w, NULL, 0), -EINVAL, "after reopen ttl 29 is refused");
	struct kvc_open_opts o = {.min_ttl_set = true, .min_ttl = 5};
	kvc_store *five = kt_open(path, &o);
	is_int(kvc_store_min_ttl(five), 5, "opts.min_ttl overrides the persisted store min_ttl");
	w.ttl = 5;
	is_int(kt_write(five, "d", 1, &w, NULL, 0), 0, "ttl 5 accepted on the min_ttl 5 handle");
	is_int(kvc_store_set_min_ttl(five, 45), 0, "an overriding handle sets the store's min_ttl");
	is_int(kvc_store_min_ttl(five), 5, "a handle that overrides min_ttl keeps its override after setting the store's");
	is_int(kt_check(again), 0, "kvc_check finds nothing on the min_ttl store");
	kvc_close(again);
	kvc_close(five);
	again = kt_open(path, NULL);
	is_int(kvc_store_min_ttl(again), 45, "a store min_ttl set through an overriding handle persists");
	kvc_close(again);
}

static void test_list_limit(kvc_store *s)
{
	struct kt_batch f = {"L:", 1500};
	is_int(kvc_write_txn(s, kt_batch_fn, &f, NULL, 0), 0, "fixture: 1500 keys under L:");
	kvc_txn *txn = kt_read_txn(s);
	char next[KVC_CURSOR_MAX];
	unsigned n;
	is_int(kt_list_count(txn, "L:", NULL, 1000, &n, next), 0, "list limit 1000 accepted");
	is_int(n, 1000, "list limit 1000 returns 1000 keys");
	ok(next[0] != 0, "list limit 1000 of 1500 keys gives a next cursor");
	int rc = kt_list_count(txn, "L:", NULL, 1001, &n, next);
	is_int(rc, -EINVAL, "list limit 1001 -EINVAL");
	is_int(n, 0, "list limit 1001 calls back for no key");
	ok(kvc_txn_errmsg(txn)[0] != 0, "list limit 1001 leaves a message (\"%s\")",
	   kvc_txn_errmsg(txn));
	is_int(kt_list_count(txn, "L:", "", 0, &n, next), 0, "list limit 0 accepted");
	is_int(n, 1000, "list limit 0 means the default 1000");
	char second[KVC_CURSOR_MAX];
	memcpy(second, next, sizeof(second));
	is_int(kt_list_count(txn, "L:", second, 0, &n, next), 0, "second page");
	is_int(n, 500, "second page holds the remaining 500");
	is_str(next, "", "the last page's next cursor is empty (list complete)");
	is_int(kt_list_count(txn, "L:", NULL, 1, &n, next), 0, "list limit 1 accepted");
	is_int(n, 1, "list limit 1 returns one key");
	is_int(kt_list_count(txn, "L:", NULL, 1500 - 1000, &n, next), 0, "list limit 500");
	is_int(n, 500, "list limit 500 returns 500");
	kvc_txn_abort(txn);
}

static void test_create_must_exist(kvc_store *s)
{
	struct kvc_write w = {.set = KVC_SET_VALUE, .value = "one", .value_len = 3};
	is_int(kt_write(s, "c1", 2, &w, NULL, 0), 0, "fixture: c1");
	struct kvc_write c = {.set = KVC_SET_VALUE | KVC_CREATE, .value = "two", .value_len = 3};
	refused(s, "c1", 2, &c, -EEXIST, NULL, false, "KVC_CREATE on a live key");
	ok(kt_has(s, "c1", 2, "one", 3), "KVC_CREATE refused: old value kept");
	accepted(s, "c2", 2, &c, "KVC_CREATE on a new key");
	ok(kt_has(s, "c2", 2, "two", 3), "KVC_CREATE wrote the new key");

	struct kvc_write m = {.set = KVC_SET_VALUE | KVC_MUST_EXIST, .value = "three",
			      .value_len = 5};
	refused(s, "c3", 2, &m, -ENOENT, NULL, true, "KVC_MUST_EXIST on a missing key");
	accepted(s, "c1", 2, &m, "KVC_MUST_EXIST on a live key");
	ok(kt_has(s, "c1", 2, "three", 5), "KVC_MUST_EXIST changed the live key");

	is_int(kt_delete(s, "c2", 2), 0, "fixture: delete c2");
	refused(s, "c2", 2, &m, -ENOENT, NULL, true, "KVC_MUST_EXIST on a deleted key");
	accepted(s, "c2", 2, &c, "KVC_CREATE over a tombstone");
	ok(kt_has(s, "c2", 2, "two", 3), "KVC_CREATE over a tombstone brings the key back");
}

int main(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	char path[128];
	bool created = false;
	kvc_store *s = NULL;
	is_int(kvc_open(kt_dir_sub(&d, "store", path, sizeof(path)), NULL, &s, &created), 0,
	       "kvc_open creates a store in a missing directory");
	ok(created, "kvc_open says it created the store");
	if (!s)
		bail_out("no store");

	test_keys(s);
	test_values(s);
	test_metadata(s);
	test_expiry_limits(s);
	test_list_limit(s);
	test_create_must_exist(s);
	is_int(kt_check(s), 0, "kvc_check finds nothing on the limits store");
	kvc_close(s);

	created = true;
	is_int(kvc_open(path, NULL, &s, &created), 0, "the store reopens");
	ok(!created, "reopening does not say created");
	is_int(kt_check(s), 0, "kvc_check finds nothing after reopen");
	kvc_close(s);
	struct kvc_open_opts nc = {.no_create = true};
	kt_dir_sub(&d, "missing", path, sizeof(path));
	is_int(kvc_open(path, &nc, &s, NULL), -ENOENT, "no_create on a missing store -ENOENT");

	/* A new store only where there is nothing. */
	char file[PATH_MAX + 16];
	kt_dir_sub(&d, "foreign", path, sizeof(path));
	mkdir(path, 0755);
	snprintf(file, sizeof(file), "%s/notes.txt", path);
	FILE *f = fopen(file, "w");
	fputs("not a store\n", f);
	fclose(f);
	is_int(kvc_open(path, NULL, &s, NULL), -ENOTEMPTY,
	       "a directory of other files is not made a store (-ENOTEMPTY)");
	snprintf(file, sizeof(file), "%s/data.mdb", path);
	ok(access(file, F_OK) != 0, "... and nothing is written into it");
	kt_dir_sub(&d, "bare", path, sizeof(path));
	mkdir(path, 0755);
	snprintf(file, sizeof(file), "%s/lock.mdb", path);
	fclose(fopen(file, "w"));
	created = false;
	is_int(kvc_open(path, NULL, &s, &created), 0,
	       "a directory holding only a lock file (an interrupted first open) is made one");
	ok(created, "... and says created");
	kvc_close(s);

	test_min_ttl(&d);
	kt_dir_remove(&d);
	return done_testing();
}
