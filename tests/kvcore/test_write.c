/*
 * test_write: proves the write paths beyond one key: kvc_rename moves
 * value, metadata, times, mode and owner and removes the source (refusing
 * with -EEXIST under noreplace), kvc_rename_prefix moves a whole prefix or
 * nothing; kvc_write_txn hides map growth (a store opened with a 1 MiB map
 * takes 50 MiB in many transactions, and a value larger than the map); one
 * transaction takes 10,000 puts; every sync mode opens, writes and reads
 * back after reopen; a read-only handle refuses writes.  Prints TAP.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

#define MIB (1024u * 1024u)

struct rename_arg {
	const void *from;
	size_t from_len;
	const void *to;
	size_t to_len;
	bool noreplace;
	uint64_t moved;
};

static int rename_fn(kvc_txn *txn, void *arg)
{
	struct rename_arg *a = arg;
	return kvc_rename(txn, a->from, a->from_len, a->to, a->to_len, a->noreplace);
}

static int do_rename(kvc_store *s, const char *from, const char *to, bool noreplace)
{
	struct rename_arg a = {from, strlen(from), to, strlen(to), noreplace, 0};
	return kvc_write_txn(s, rename_fn, &a, NULL, 0);
}

static int rename_prefix_fn(kvc_txn *txn, void *arg)
{
	struct rename_arg *a = arg;
	return kvc_rename_prefix(txn, a->from, a->from_len, a->to, a->to_len, &a->moved);
}

static void test_rename(kvc_store *s)
{
	struct kvc_write w = {
		.set = KVC_SET_VALUE | KVC_SET_METADATA | KVC_SET_MODE | KVC_SET_OWNER | KVC_SET_MTIME,
		.value = "payload", .value_len = 7,
		.metadata = "{\"a\":1}", .metadata_len = 7,
		.mode = 0604, .uid = 1001, .gid = 2002,
		.mtime_ns = 1500000000000000042ll,
	};
	is_int(kt_write(s, "from", 4, &w, NULL, 0), 0, "fixture: from with value, metadata, mode, owner, mtime");
	struct kt_rec src, r;
	if (kt_get(s, "from", 4, 0, &src))
		bail_out("from");
	is_int(do_rename(s, "from", "to", false), 0, "kvc_rename from -> to");
	is_int(kt_get(s, "from", 4, 0, &r), -ENOENT, "after rename the source is gone");
	ok(kt_get(s, "from", 4, KVC_GET_TOMBSTONES, &r) == 0 && (r.r.flags & KVC_REC_TOMBSTONE),
	   "the source leaves a tombstone");
	kt_rec_free(&r);
	if (kt_get(s, "to", 2, 0, &r))
		bail_out("to");
	ok(!strcmp(r.value, "payload"), "the value moved");
	ok(r.metadata && !strcmp(r.metadata, "{\"a\":1}"), "the metadata moved");
	ok(r.r.mode == 0604 && (r.r.flags & KVC_REC_HAS_MODE), "the mode moved");
	ok(r.r.uid == 1001 && r.r.gid == 2002 && (r.r.flags & KVC_REC_HAS_OWNER), "the owner moved");
	is_int(r.r.mtime_ns, src.r.mtime_ns, "the mtime moved");
	ok(r.r.hlc > src.r.hlc, "the destination has a new clock");
	kt_rec_free(&r);
	kt_rec_free(&src);

	is_int(kt_puts(s, "x", "X"), 0, "fixture: x");
	is_int(kt_puts(s, "y", "Y"), 0, "fixture: y");
	uint64_t head = kt_head(s);
	is_int(do_rename(s, "x", "y", true), -EEXIST, "kvc_rename onto a live key with noreplace -EEXIST");
	ok(kt_has(s, "x", 1, "X", 1) && kt_has(s, "y", 1, "Y", 1), "the refused rename changed neither key");
	is_int((long long)kt_head(s), (long long)head, "the refused rename wrote nothing");
	is_int(do_rename(s, "x", "y", false), 0, "kvc_rename onto a live key without noreplace");
	ok(kt_absent(s, "x", 1) && kt_has(s, "y", 1, "X", 1), "the destination was replaced, the source removed");
	is_int(do_rename(s, "y", "from", true), 0, "kvc_rename with noreplace onto a deleted key");
	ok(kt_has(s, "from", 4, "X", 1), "the deleted destination was taken");
	is_int(do_rename(s, "nope", "z", false), -ENOENT, "kvc_rename of a missing key -ENOENT");
	is_int(do_rename(s, "from", "..", false), -EINVAL, "kvc_rename to an invalid key -EINVAL");
	ok(kt_has(s, "from", 4, "X", 1), "the failed rename kept the source");

	/* Two 512-byte keys that share their first 511 bytes. */
	char a[512], b[512];
	memset(a, 'r', 512);
	memcpy(b, a, 512);
	b[511] = 's';
	is_int(kt_put(s, a, 512, "long", 4), 0, "fixture: a 512-byte key");
	struct rename_arg ra = {a, 512, b, 512, true, 0};
	is_int(kvc_write_txn(s, rename_fn, &ra, NULL, 0), 0, "kvc_rename between 512-byte keys sharing 511 bytes");
	ok(kt_absent(s, a, 512) && kt_has(s, b, 512, "long", 4), "the long key moved within its bucket");
	ra.from = b;
	ra.to = a;
	ra.to_len = 511;
	is_int(kvc_write_txn(s, rename_fn, &ra, NULL, 0), 0, "kvc_rename of a 512-byte key to its 511-byte prefix");
	ok(kt_absent(s, b, 512) && kt_has(s, a, 511, "long", 4), "the key moved to its prefix");

	/* A directory rename. */
	static const char *const keys[] = {"dir:a", "dir:b", "dir:sub:c", "dirx", "new:b"};
	for (size_t i = 0; i < 5; i++)
		kt_puts(s, keys[i], keys[i]);
	struct rename_arg pa = {"dir:", 4, "new:", 4, false, 0};
	is_int(kvc_write_txn(s, rename_prefix_fn, &pa, NULL, 0), 0, "kvc_rename_prefix dir: -> new:");
	is_int((long long)pa.moved, 3, "three keys moved");
	ok(kt_has(s, "new:a", 5, "dir:a", 5) && kt_has(s, "new:b", 5, "dir:b", 5) &&
		   kt_has(s, "new:sub:c", 9, "dir:sub:c", 9),
	   "every key under dir: is under new: (new:b replaced)");
	ok(kt_absent(s, "dir:a", 5) && kt_absent(s, "dir:sub:c", 9) && kt_has(s, "dirx", 4, "dirx", 4),
	   "nothing left under dir:, dirx (outside the prefix) kept");
	struct rename_arg none = {"dir:", 4, "other:", 6, false, 0};
	is_int(kvc_write_txn(s, rename_prefix_fn, &none, NULL, 0), -ENOENT, "kvc_rename_prefix of an empty prefix -ENOENT");
	char longto[512];
	memset(longto, 'L', sizeof(longto));
	kt_puts(s, "new:sub:c2", "v");
	struct rename_arg toolong = {"new:", 4, longto, 508, false, 0};
	head = kt_head(s);
	is_int(kvc_write_txn(s, rename_prefix_fn, &toolong, NULL, 0), -ENAMETOOLONG,
	       "kvc_rename_prefix that would make a 514-byte key -ENAMETOOLONG");
	ok(kt_has(s, "new:a", 5, "dir:a", 5) && (long long)kt_head(s) == (long long)head,
	   "the refused prefix rename moved nothing");
}

struct chunk_arg {
	unsigned first, count;
	size_t size;
};

static void fill_value(unsigned char *buf, size_t size, unsigned id)
{
	uint32_t x = id * 2654435761u + 1;
	for (size_t i = 0; i < size; i += 4) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		memcpy(buf + i, &x, size - i < 4 ? size - i : 4);
	}
}

static int chunk_fn(kvc_txn *txn, void *arg)
{
	struct chunk_arg *a = arg;
	unsigned char *buf = malloc(a->size);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	for (unsigned i = a->first; !rc && i < a->first + a->count; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "grow:%04u", i);
		fill_value(buf, a->size, i);
		struct kvc_write w = {.set = KVC_SET_VALUE, .value = buf, .value_len = a->size};
		rc = kvc_write(txn, key, (size_t)n, &w);
	}
	free(buf);
	return rc;
}

static void test_map_growth(const struct kt_dir *d)
{
	char path[128];
	struct kvc_open_opts o = {.map_size = MIB, .sync = KVC_SYNC_NONE};
	kvc_store *s = kt_open(kt_dir_sub(d, "grow", path, sizeof(path)), &o);
	struct kvc_usage u;
	is_int(kvc_usage(s, &u), 0, "kvc_usage");
	ok(u.map_size <= 2 * MIB, "the store starts with a map of about 1 MiB (%llu bytes)",
	   (unsigned long long)u.map_size);

	const size_t size = 256 * 1024;
	const unsigned total = 200, per = 2; /* 200 x 256 KiB = 50 MiB */
	int rc = 0;
	unsigned txns = 0;
	for (unsigned i = 0; i < total && !rc; i += per, txns++) {
		struct chunk_arg a = {i, per, size};
		rc = kvc_write_txn(s, chunk_fn, &a, NULL, 0);
	}
	is_int(rc, 0, "50 MiB written in %u transactions through a 1 MiB initial map", txns);
	is_int(kvc_usage(s, &u), 0, "kvc_usage after growth");
	ok(u.map_size >= 50 * MIB, "the map grew to hold it (%llu bytes)", (unsigned long long)u.map_size);

	unsigned char *want = malloc(size);
	if (!want)
		bail_out("out of memory");
	unsigned bad = 0;
	for (unsigned i = 0; i < total; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "grow:%04u", i);
		fill_value(want, size, i);
		bad += !kt_has(s, key, (size_t)n, want, size);
	}
	is_int(bad, 0, "all 200 values of 256 KiB read back byte for byte");

	/* One value larger than the map has grown so far by itself. */
	struct chunk_arg big = {9000, 1, 24 * MIB};
	is_int(kvc_write_txn(s, chunk_fn, &big, NULL, 0), 0, "a 24 MiB value in one transaction");
	is_int(kt_check(s), 0, "kvc_check finds nothing on the grown store");
	kvc_close(s);

	/* Reopen asking for 1 MiB again: the store keeps its size. */
	s = kt_open(path, &o);
	bad = 0;
	for (unsigned i = 0; i < total; i += 37) {
		char key[32];
		int n = snprintf(key, sizeof(key), "grow:%04u", i);
		fill_value(want, size, i);
		bad += !kt_has(s, key, (size_t)n, want, size);
	}
	is_int(bad, 0, "after reopening with map_size 1 MiB the values still read back");
	struct chunk_arg more = {total, per, size};
	is_int(kvc_write_txn(s, chunk_fn, &more, NULL, 0), 0, "and the store takes more writes");
	is_int(kt_check(s), 0, "kvc_check finds nothing after reopen");
	free(want);
	kvc_close(s);
}

static void test_batch(kvc_store *s)
{
	uint64_t head = kt_head(s);
	struct kt_batch a = {"batch:", 10000};
	is_int(kvc_write_txn(s, kt_batch_fn, &a, NULL, 0), 0, "10,000 puts in one kvc_write_txn");
	is_int((long long)kt_head(s), (long long)head + 10000, "the feed head moved by 10,000");
	unsigned bad = 0;
	for (unsigned i = 0; i < 10000; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "batch:%05u", i);
		bad += !kt_has(s, key, (size_t)n, key, (size_t)n);
	}
	is_int(bad, 0, "all 10,000 batched keys read back");
	struct kt_keys all = {0};
	is_int(kt_list_all(s, "batch:", 6, 0, &all, NULL), 0, "list the batch");
	is_int((long long)all.n, 10000, "the batch lists 10,000 keys");
	kt_keys_free(&all);
}

static void test_sync_modes(const struct kt_dir *d)
{
	static const struct {
		enum kvc_sync_mode mode;
		const char *name;
	} modes[] = {{KVC_SYNC_ALWAYS, "always"}, {KVC_SYNC_BATCH, "batch"}, {KVC_SYNC_NONE, "none"}};
	for (size_t i = 0; i < 3; i++) {
		char path[128];
		struct kvc_open_opts o = {.sync = modes[i].mode};
		kvc_store *s = NULL;
		is_int(kvc_open(kt_dir_sub(d, modes[i].name, path, sizeof(path)), &o, &s, NULL), 0,
		       "sync %s: the store opens", modes[i].name);
		if (!s)
			continue;
		struct kt_batch a = {"s:", 100};
		is_int(kvc_write_txn(s, kt_batch_fn, &a, NULL, 0), 0, "sync %s: 100 keys in one transaction", modes[i].name);
		is_int(kt_puts(s, "single", modes[i].name), 0, "sync %s: one more write", modes[i].name);
		is_int(kvc_store_sync(s), 0, "sync %s: kvc_store_sync", modes[i].name);
		kvc_close(s);
		s = kt_open(path, NULL);
		ok(kt_has(s, "s:00000", 7, "s:00000", 7) && kt_has(s, "s:00099", 7, "s:00099", 7) &&
			   kt_has(s, "single", 6, modes[i].name, strlen(modes[i].name)),
		   "sync %s: the writes read back after reopen", modes[i].name);
		is_int(kt_check(s), 0, "sync %s: kvc_check finds nothing", modes[i].name);
		kvc_close(s);
	}
}

static uint64_t ino_of(kvc_store *s, const char *key)
{
	struct kt_rec r;
	if (kt_get(s, key, strlen(key), 0, &r))
		return 0;
	uint64_t ino = r.r.ino;
	kt_rec_free(&r);
	return ino;
}

/* Inode numbers: what kvfs shows as st_ino and what a writer's commit is
 * conditional on. */
static void test_inode_numbers(kvc_store *s)
{
	is_int(kt_puts(s, "ino:a", "1"), 0, "fixture: ino:a");
	is_int(kt_puts(s, "ino:b", "2"), 0, "fixture: ino:b");
	uint64_t a = ino_of(s, "ino:a"), b = ino_of(s, "ino:b");
	ok(a >= 2 && b >= 2 && a != b, "a new key gets a number of its own (%" PRIu64 ", %" PRIu64 ")", a, b);
	is_int(kt_puts(s, "ino:a", "changed"), 0, "rewrite ino:a");
	ok(ino_of(s, "ino:a") == a, "a write keeps the number");
	is_int(do_rename(s, "ino:a", "ino:c", false), 0, "rename ino:a -> ino:c");
	ok(ino_of(s, "ino:c") == a, "a rename carries the number");
	is_int(do_rename(s, "ino:b", "ino:c", false), 0, "rename ino:b over ino:c");
	ok(ino_of(s, "ino:c") == b, "a rename over a key carries the moved key's number");

	struct kvc_write w = {.set = KVC_SET_VALUE | KVC_IF_INO, .value = "w", .value_len = 1, .ino = a};
	is_int(kt_write(s, "ino:c", 5, &w, NULL, 0), -ESTALE,
	       "a write conditional on a replaced file's number is refused");
	ok(kt_has(s, "ino:c", 5, "2", 1), "and leaves the key alone");
	w.ino = b;
	is_int(kt_write(s, "ino:c", 5, &w, NULL, 0), 0, "a write conditional on the live number lands");
	is_int(kt_delete(s, "ino:c", 5), 0, "delete ino:c");
	is_int(kt_write(s, "ino:c", 5, &w, NULL, 0), -ESTALE,
	       "a write conditional on a deleted file's number does not bring the key back");
	is_int(kt_get(s, "ino:c", 5, 0, &(struct kt_rec){0}), -ENOENT, "ino:c stays deleted");
	is_int(kt_puts(s, "ino:c", "again"), 0, "recreate ino:c");
	uint64_t c = ino_of(s, "ino:c");
	ok(c != a && c != b && c > b, "a recreated key gets a new number, never an old one");
}

static void test_readonly(const char *path)
{
	struct kvc_open_opts o = {.readonly = true};
	kvc_store *s = kt_open(path, &o);
	kvc_txn *txn = NULL;
	is_int(kvc_txn_begin(s, KVC_TXN_WRITE, &txn), -EROFS, "a read-only handle refuses a write transaction");
	is_int(kt_puts(s, "ro", "x"), -EROFS, "a read-only handle refuses kvc_write_txn");
	is_int(kvc_store_set_min_ttl(s, 10), -EROFS, "a read-only handle refuses kvc_store_set_min_ttl");
	ok(kt_has(s, "from", 4, "X", 1), "a read-only handle reads");
	kvc_close(s);
}

/* kvc_write_one and kvc_delete_one: one write, one transaction each. */
static void test_one(kvc_store *s)
{
	struct kvc_write w = {.set = KVC_SET_VALUE, .value = "v1", .value_len = 2};
	char msg[256] = "x";
	uint64_t head = kt_head(s);

	is_int(kvc_write_one(s, "one:a", 5, &w, msg, sizeof(msg)), 0, "kvc_write_one stores a key");
	ok(kt_has(s, "one:a", 5, "v1", 2) && kt_head(s) == head + 1,
	   "the key reads back, one commit later");
	is_int(kvc_write_one(s, "..", 2, &w, msg, sizeof(msg)), -EINVAL,
	       "kvc_write_one refuses a key kvcore refuses");
	is_str(msg, "\"..\" is not allowed as a key name.", "with kvcore's message");
	is_int(kvc_delete_one(s, "one:a", 5, NULL, 0), 0, "kvc_delete_one deletes it");
	ok(kt_absent(s, "one:a", 5), "the key is gone");
	is_int(kvc_delete_one(s, "one:never", 9, NULL, 0), 0,
	       "kvc_delete_one of a key never written succeeds, as in Workers KV");
}

int main(void)
{
	struct kt_dir d;
	char path[128];
	kvc_store *s = kt_dir_store(&d, NULL, path, sizeof(path));
	test_rename(s);
	test_batch(s);
	test_inode_numbers(s);
	test_one(s);
	kt_check_close(s, "kvc_check finds nothing on the rename/batch store");
	test_readonly(path);
	test_map_growth(&d);
	test_sync_modes(&d);
	kt_dir_remove(&d);
	return done_testing();
}
