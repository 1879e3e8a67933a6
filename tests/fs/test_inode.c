/*
 * test_inode: proves what fs/inode.h promises of the daemon's inode table,
 * through its public functions only: lookup references and freeing at
 * zero (never the root, never a directory), numbers never reused, lookup
 * by key and by number after file and prefix renames (a rename over an
 * existing inode detaches it with the attributes it had), unlinked
 * inodes, the page-cache open rules, writer and direct-reader counts, the
 * shared pending value and its attributes, and a table of tens of
 * thousands of inodes (its indexes double several times) checked entry by
 * entry.  Keys use ':' as the separator, as a default mount does.  Prints
 * TAP.
 */
#include "inode.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

#define GROW_N 40000 /* inodes for the growth test: the table starts at 256 buckets */

/* ---- helpers ---- */

static kfs_inodes *table_new(const char *root)
{
	kfs_inodes *t = NULL;

	if (kfs_inodes_new(root, strlen(root), &t) != 0 || !t)
		bail_out("kfs_inodes_new failed");
	return t;
}

/* One lookup reference on (@kind, @key); its number. */
static uint64_t ref(kfs_inodes *t, enum kfs_kind kind, const char *key)
{
	uint64_t ino = 0;

	if (kfs_inode_ref(t, kind, key, strlen(key), &ino) != 0)
		bail_out("kfs_inode_ref failed");
	return ino;
}

static uint64_t find(kfs_inodes *t, enum kfs_kind kind, const char *key)
{
	return kfs_inode_find(t, kind, key, strlen(key));
}

/* Whether inode @ino stands for (@kind, @key). */
static bool names(kfs_inodes *t, uint64_t ino, enum kfs_kind kind, const char *key)
{
	unsigned char buf[KVC_KEY_MAX + 1];
	enum kfs_kind k;
	size_t len = 0;

	if (kfs_inode_get(t, ino, &k, buf, &len) != 0)
		return false;
	return k == kind && len == strlen(key) && memcmp(buf, key, len) == 0;
}

static bool known(kfs_inodes *t, uint64_t ino)
{
	unsigned char buf[KVC_KEY_MAX + 1];
	enum kfs_kind k;
	size_t len;

	return kfs_inode_get(t, ino, &k, buf, &len) == 0;
}

static struct stat stat_of(mode_t mode, off_t size, nlink_t nlink)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = mode;
	st.st_size = size;
	st.st_nlink = nlink;
	st.st_uid = 1234;
	st.st_gid = 5678;
	st.st_mtim.tv_sec = 1700000000;
	return st;
}

/* ---- the root and the table ---- */

/* Runs @test on a new table with the empty mount prefix, then frees it. */
static void on_fresh_table(void (*test)(kfs_inodes *t))
{
	kfs_inodes *t = table_new("");

	test(t);
	kfs_inodes_free(t);
}

static void test_root(void)
{
	kfs_inodes *t = table_new("m:");
	unsigned char buf[KVC_KEY_MAX + 1];
	enum kfs_kind k = KFS_FILE;
	size_t len = 0;

	is_int(kfs_inodes_count(t), 1, "new table: holds the root alone");
	is_int(kfs_inode_get(t, KFS_ROOT_INO, &k, buf, &len), 0, "root: inode 1 is known");
	ok(k == KFS_DIR && len == 2 && memcmp(buf, "m:", 2) == 0,
	   "root: inode 1 is the directory of the mount prefix");
	is_int(find(t, KFS_DIR, "m:"), KFS_ROOT_INO, "root: found by its prefix");
	is_int(find(t, KFS_FILE, "m:"), 0, "root: found only as a directory, not as a file");

	ok(!kfs_inode_forget(t, KFS_ROOT_INO, 1), "root: a forget says it did not free it");
	kfs_inode_forget(t, KFS_ROOT_INO, UINT64_MAX);
	ok(names(t, KFS_ROOT_INO, KFS_DIR, "m:"), "root: never freed, however many forgets");
	is_int(kfs_inodes_count(t), 1, "root: still counted after forgets");
	is_int(ref(t, KFS_DIR, "m:"), KFS_ROOT_INO, "root: a lookup of its prefix gives inode 1");

	/* A prefix rename never re-keys the root, even one matching it. */
	kfs_inode_rename_prefix(t, "m:", 2, "n:", 2);
	ok(names(t, KFS_ROOT_INO, KFS_DIR, "m:"), "root: a prefix rename leaves its key");

	is_int(kfs_inode_get(t, 999, &k, buf, &len), -ESTALE, "get: unknown number is -ESTALE");
	ok(!kfs_inode_forget(t, 999, 1), "forget: an unknown number frees nothing");
	is_int(kfs_inodes_count(t), 1, "forget: unknown numbers are ignored");
	kfs_inodes_free(t);
	kfs_inodes_free(NULL); /* accepts NULL */
	ok(true, "free: accepts NULL");

	t = table_new("");
	ok(names(t, KFS_ROOT_INO, KFS_DIR, ""), "root: an empty mount prefix is its key");
	uint64_t a = ref(t, KFS_FILE, "a");

	kfs_inode_rename_prefix(t, "", 0, "x:", 2);
	ok(names(t, KFS_ROOT_INO, KFS_DIR, ""), "root: empty key kept through a prefix rename of \"\"");
	ok(names(t, a, KFS_FILE, "x:a"), "rename of prefix \"\": other inodes moved");
	kfs_inodes_free(t);
}

/* ---- lookup references ---- */

static void test_refcount(kfs_inodes *t)
{
	uint64_t a = ref(t, KFS_FILE, "a");

	ok(a > KFS_ROOT_INO, "ref: a new file inode gets a number after the root's");
	is_int(ref(t, KFS_FILE, "a"), a, "ref: the same key gives the same inode");
	is_int(ref(t, KFS_FILE, "a"), a, "ref: a third reference, same inode");
	is_int(kfs_inodes_count(t), 2, "ref: one inode however many references");
	ok(names(t, a, KFS_FILE, "a"), "get: the number gives back kind and key");
	is_int(find(t, KFS_FILE, "a"), a, "find: the key gives back the number");

	uint64_t d = ref(t, KFS_DIR, "a:"), al = ref(t, KFS_ALIAS, "a:");

	ok(d != a && al != a && d != al, "ref: file, directory and alias of one name are three inodes");
	ok(names(t, al, KFS_ALIAS, "a:"), "get: the alias inode has kind KFS_ALIAS");
	is_int(find(t, KFS_DIR, "a"), 0, "find: kind and key must both match");

	ok(!kfs_inode_forget(t, a, 2), "forget: says so when it leaves the inode");
	ok(names(t, a, KFS_FILE, "a"), "forget: 3 references less 2 leaves the inode");
	ok(kfs_inode_forget(t, a, 1), "forget: says so when it frees the inode");
	ok(!known(t, a), "forget: a file inode is freed when its references reach zero");
	is_int(find(t, KFS_FILE, "a"), 0, "forget: the freed inode is not found by key");
	is_int(kfs_inodes_count(t), 3, "forget: the count drops with the freed inode");

	uint64_t b = ref(t, KFS_FILE, "b");

	kfs_inode_forget(t, b, 100);
	ok(!known(t, b), "forget: more than it holds frees it too");

	kfs_inode_forget(t, d, 1);
	ok(names(t, d, KFS_DIR, "a:"), "forget: a directory inode is kept at zero references");
	is_int(ref(t, KFS_DIR, "a:"), d, "forget: a kept directory keeps its number for the next lookup");
	kfs_inode_forget(t, al, 5);
	ok(names(t, al, KFS_ALIAS, "a:"), "forget: an alias inode is kept at zero references");
}

static void test_numbers_not_reused(kfs_inodes *t)
{
	uint64_t prev = ref(t, KFS_FILE, "k");
	bool fresh = true;

	for (int i = 0; i < 1000; i++) {
		kfs_inode_forget(t, prev, 1);
		uint64_t n = ref(t, KFS_FILE, "k");

		if (n <= prev)
			fresh = false;
		prev = n;
	}
	ok(fresh, "numbers: a key looked up again after a forget gets a new, higher number (1000 times)");

	uint64_t x = ref(t, KFS_FILE, "x");

	kfs_inode_forget(t, x, 1);
	uint64_t y = ref(t, KFS_FILE, "y");

	ok(y > x, "numbers: a freed number is not given to another key");
	is_int(kfs_inodes_count(t), 3, "numbers: the table holds only the live inodes");
}

static void test_dir_number(kfs_inodes *t)
{
	uint64_t d = kfs_inode_dir_number(t, KFS_DIR, "d:", 2);

	ok(d > KFS_ROOT_INO, "dir_number: makes an inode for readdir's d_ino");
	is_int(find(t, KFS_DIR, "d:"), d, "dir_number: the made inode is found by key");
	is_int(kfs_inode_dir_number(t, KFS_DIR, "d:", 2), d, "dir_number: asked again, the same number");
	is_int(ref(t, KFS_DIR, "d:"), d, "dir_number: a later lookup gets the same number");
	kfs_inode_forget(t, d, 1);
	ok(names(t, d, KFS_DIR, "d:"), "dir_number: took no reference of its own, dir kept anyway");
	is_int(kfs_inode_dir_number(t, KFS_DIR, "", 0), KFS_ROOT_INO, "dir_number: the root's prefix gives 1");
	uint64_t al = kfs_inode_dir_number(t, KFS_ALIAS, "d:", 2);

	ok(al != d && names(t, al, KFS_ALIAS, "d:"), "dir_number: the alias has its own number");
}

/* ---- renames ---- */

static void test_rename_file(kfs_inodes *t)
{
	uint64_t a = ref(t, KFS_FILE, "d:a");

	kfs_inode_rename_file(t, "d:a", 3, "e:b", 3, NULL);
	ok(names(t, a, KFS_FILE, "e:b"), "rename_file: the number now stands for the new key");
	is_int(find(t, KFS_FILE, "e:b"), a, "rename_file: found by its new key");
	is_int(find(t, KFS_FILE, "d:a"), 0, "rename_file: not found by its old key");
	ok(!kfs_inode_gone(t, a, &(struct stat){0}), "rename_file: the renamed inode is not detached");

	/* Over an existing inode: that one is detached with its attributes. */
	uint64_t c = ref(t, KFS_FILE, "c");
	struct stat was = stat_of(S_IFREG | 0640, 4096, 1), got;

	kfs_inode_rename_file(t, "e:b", 3, "c", 1, &was);
	is_int(find(t, KFS_FILE, "c"), a, "rename_file over an inode: the key finds the moved inode");
	ok(names(t, a, KFS_FILE, "c"), "rename_file over an inode: the moved inode has the key");
	ok(known(t, c), "rename_file over an inode: the replaced inode lives while referenced");
	memset(&got, 0, sizeof(got));
	ok(kfs_inode_gone(t, c, &got), "rename_file over an inode: the replaced inode is detached");
	ok(got.st_mode == was.st_mode && got.st_size == was.st_size && got.st_uid == was.st_uid &&
		   got.st_gid == was.st_gid && got.st_mtim.tv_sec == was.st_mtim.tv_sec,
	   "rename_file over an inode: the detached inode keeps the attributes it had");
	is_int(got.st_nlink, 0, "rename_file over an inode: the detached inode has st_nlink 0");
	ok(!kfs_inode_gone(t, a, &got), "rename_file over an inode: the moved inode is not detached");

	/* The replaced key is free for a new inode; the old one stays apart. */
	kfs_inode_rename_file(t, "c", 1, "f", 1, NULL);
	uint64_t c2 = ref(t, KFS_FILE, "c");

	ok(c2 != c && c2 != a, "rename_file over an inode: a new file at the key is a new inode");
	kfs_inode_forget(t, c, 1);
	ok(!known(t, c), "rename_file over an inode: the detached inode is freed at zero references");
	ok(names(t, c2, KFS_FILE, "c"), "rename_file over an inode: freeing it leaves the new one");

	/* A key the kernel holds no inode of, renamed over one it holds. */
	uint64_t g = ref(t, KFS_FILE, "g");

	kfs_inode_rename_file(t, "nobody", 6, "g", 1, NULL);
	ok(kfs_inode_gone(t, g, &got) && got.st_nlink == 0,
	   "rename_file of an unheld key over an inode: that inode is detached (NULL attributes)");
	is_int(find(t, KFS_FILE, "g"), 0, "rename_file of an unheld key: nothing found at the new key");

	/* Directories of the same name are not files. */
	uint64_t dir = ref(t, KFS_DIR, "f:");

	kfs_inode_rename_file(t, "f", 1, "h", 1, NULL);
	ok(names(t, dir, KFS_DIR, "f:"), "rename_file: a directory inode is not touched");
	ok(names(t, a, KFS_FILE, "h"), "rename_file: the file inode moved again");
}

static void test_rename_prefix(kfs_inodes *t)
{
	uint64_t d = ref(t, KFS_DIR, "d:");
	uint64_t dal = ref(t, KFS_ALIAS, "d:");
	uint64_t f = ref(t, KFS_FILE, "d:f");
	uint64_t sub = ref(t, KFS_DIR, "d:s:");
	uint64_t deep = ref(t, KFS_FILE, "d:s:g");
	uint64_t sib = ref(t, KFS_FILE, "dx:f");   /* same bytes, not under "d:" */
	uint64_t sibdir = ref(t, KFS_DIR, "dd:");
	uint64_t plain = ref(t, KFS_FILE, "d");     /* the file beside the directory */

	kfs_inode_rename_prefix(t, "d:", 2, "n:m:", 4);
	ok(names(t, d, KFS_DIR, "n:m:"), "rename_prefix: the directory itself is re-keyed");
	ok(names(t, dal, KFS_ALIAS, "n:m:"), "rename_prefix: its alias inode is re-keyed");
	ok(names(t, f, KFS_FILE, "n:m:f"), "rename_prefix: a file in it is re-keyed");
	ok(names(t, sub, KFS_DIR, "n:m:s:"), "rename_prefix: a subdirectory is re-keyed");
	ok(names(t, deep, KFS_FILE, "n:m:s:g"), "rename_prefix: a file two levels down is re-keyed");
	is_int(find(t, KFS_FILE, "n:m:s:g"), deep, "rename_prefix: found by its new key");
	is_int(find(t, KFS_FILE, "d:s:g"), 0, "rename_prefix: not found by its old key");
	is_int(find(t, KFS_DIR, "d:"), 0, "rename_prefix: the old prefix has no directory inode");
	ok(names(t, sib, KFS_FILE, "dx:f"), "rename_prefix: a key sharing bytes but not the prefix stays");
	ok(names(t, sibdir, KFS_DIR, "dd:"), "rename_prefix: a sibling directory stays");
	ok(names(t, plain, KFS_FILE, "d"), "rename_prefix: the file named like the directory stays");
	is_int(kfs_inodes_count(t), 9, "rename_prefix: no inode made or lost");

	/* Shorter target, and inodes already at the target are detached. */
	uint64_t old = ref(t, KFS_FILE, "z:f");
	uint64_t olddir = ref(t, KFS_DIR, "z:");
	struct stat got;

	kfs_inode_rename_prefix(t, "n:m:", 4, "z:", 2);
	ok(names(t, f, KFS_FILE, "z:f"), "rename_prefix over inodes: the moved file has the key");
	is_int(find(t, KFS_FILE, "z:f"), f, "rename_prefix over inodes: the key finds the moved file");
	ok(kfs_inode_gone(t, old, &got) && got.st_nlink == 0,
	   "rename_prefix over inodes: the file it replaced is detached");
	is_int(find(t, KFS_DIR, "z:"), d, "rename_prefix over inodes: the key finds the moved directory");
	ok(known(t, olddir), "rename_prefix over inodes: the replaced directory inode still answers");
	ok(!kfs_inode_gone(t, f, &got), "rename_prefix: a moved file is not detached");
	ok(names(t, deep, KFS_FILE, "z:s:g"), "rename_prefix to a shorter prefix: deep file re-keyed");

	/* A moved key longer than KVC_KEY_MAX cannot exist: left detached. */
	char big[KVC_KEY_MAX + 1];

	memset(big, 'p', KVC_KEY_MAX - 1);
	big[KVC_KEY_MAX - 1] = ':';
	big[KVC_KEY_MAX] = '\0';
	kfs_inode_rename_prefix(t, "z:", 2, big, KVC_KEY_MAX);
	is_int(find(t, KFS_DIR, big), d, "rename_prefix to KVC_KEY_MAX: a key that fits moves");
	is_int(find(t, KFS_FILE, "z:f"), 0, "rename_prefix past KVC_KEY_MAX: not found by the old key");
	ok(known(t, f), "rename_prefix past KVC_KEY_MAX: a key too long leaves the inode detached, not freed");
	char toolong[KVC_KEY_MAX + 4];

	memcpy(toolong, big, KVC_KEY_MAX);
	memcpy(toolong + KVC_KEY_MAX, "f", 2);
	is_int(find(t, KFS_FILE, toolong), 0, "rename_prefix past KVC_KEY_MAX: no inode has the too-long key");
	ok(known(t, deep), "rename_prefix past KVC_KEY_MAX: a deeper one answers too (its key fits a get buffer)");
	is_int(kfs_inodes_count(t), 11, "rename_prefix past KVC_KEY_MAX: no inode lost");
}

/* ---- unlinked inodes ---- */

static void test_unlinked(kfs_inodes *t)
{
	uint64_t a = ref(t, KFS_FILE, "a");
	struct stat was = stat_of(S_IFREG | 0600, 77, 1), got;

	ok(!kfs_inode_gone(t, a, &got), "unlinked: a live inode is not gone");
	ok(!kfs_inode_set_gone_attr(t, a, &was), "set_gone_attr: refused for a live inode");
	kfs_inode_unlinked(t, "a", 1, &was);
	memset(&got, 0, sizeof(got));
	ok(kfs_inode_gone(t, a, &got), "unlinked: the inode is gone");
	ok(got.st_size == 77 && got.st_mode == (S_IFREG | 0600) && got.st_uid == 1234,
	   "unlinked: it keeps the attributes it had, for fstat of open files");
	is_int(got.st_nlink, 0, "unlinked: with st_nlink 0");
	is_int(find(t, KFS_FILE, "a"), 0, "unlinked: not found by its key");
	ok(names(t, a, KFS_FILE, "a"), "unlinked: still answers by number while referenced");

	struct stat chmod_ = stat_of(S_IFREG | 0400, 77, 3);

	ok(kfs_inode_set_gone_attr(t, a, &chmod_), "set_gone_attr: accepted for a detached inode");
	ok(kfs_inode_gone(t, a, &got) && got.st_mode == (S_IFREG | 0400) && got.st_nlink == 0,
	   "set_gone_attr: fchmod of an unlinked open file shows, st_nlink stays 0");

	uint64_t a2 = ref(t, KFS_FILE, "a");

	ok(a2 != a, "unlinked: a new file of the same key is a new inode");
	ok(!kfs_inode_gone(t, a2, &got), "unlinked: the new inode is not gone");
	kfs_inode_unlinked(t, "nothing", 7, &was);
	ok(!kfs_inode_gone(t, a2, &got), "unlinked: of a key without an inode changes nothing");

	kfs_inode_forget(t, a, 1);
	ok(!known(t, a), "unlinked: freed at zero references");
	ok(!kfs_inode_gone(t, a, &got), "gone: false for a freed number");
	ok(!kfs_inode_set_gone_attr(t, a, &was), "set_gone_attr: false for a freed number");

	uint64_t b = ref(t, KFS_FILE, "b");

	kfs_inode_unlinked(t, "b", 1, NULL);
	ok(kfs_inode_gone(t, b, &got) && got.st_nlink == 0, "unlinked with NULL attributes: gone, st_nlink 0");
	uint64_t dir = ref(t, KFS_DIR, "b:");

	kfs_inode_unlinked(t, "b:", 2, NULL);
	ok(!kfs_inode_gone(t, dir, &got) && find(t, KFS_DIR, "b:") == dir,
	   "unlinked: only file inodes are detached");
	is_int(kfs_inodes_count(t), 4, "unlinked: the count holds root, a2, b and the directory");
}

/* ---- the page cache, writers and readers ---- */

static void test_cache_open(kfs_inodes *t)
{
	uint64_t a = ref(t, KFS_FILE, "a");
	bool keep = true;

	ok(!kfs_inode_cache_open(t, a, 5, &keep), "cache_open: refused before attributes of version 5 were sent");
	kfs_inode_attr_sent(t, a, 4);
	ok(!kfs_inode_cache_open(t, a, 5, &keep), "cache_open: refused when the kernel's attributes are of another version");
	kfs_inode_attr_sent(t, a, 5);
	ok(kfs_inode_cache_open(t, a, 5, &keep), "cache_open: allowed when the attributes are of that version");
	ok(!keep, "cache_open: the first open does not keep pages (none of that version known)");
	ok(kfs_inode_cache_open(t, a, 5, &keep), "cache_open: a second handle of the same version");
	ok(keep, "cache_open: the kernel's pages are of that version: keep_cache");

	/* Another version while a page-cache handle is open. */
	kfs_inode_attr_sent(t, a, 6);
	ok(!kfs_inode_cache_open(t, a, 6, &keep),
	   "cache_open: refused while a page-cache handle of another version is open");
	kfs_inode_cache_close(t, a);
	ok(!kfs_inode_cache_open(t, a, 6, &keep), "cache_open: still refused with one such handle left");
	kfs_inode_cache_close(t, a);
	ok(kfs_inode_cache_open(t, a, 6, &keep), "cache_open: allowed once those handles closed");
	ok(!keep, "cache_open: a new version does not keep the old pages");
	kfs_inode_cache_close(t, a);
	kfs_inode_cache_close(t, a); /* one too many: must not wrap */
	ok(kfs_inode_cache_open(t, a, 6, &keep) && keep,
	   "cache_close: more closes than opens do not wrap the count; pages of 6 kept");
	kfs_inode_cache_close(t, a);

	/* An invalidation: the kernel's attributes are unknown. */
	kfs_inode_attr_sent(t, a, 0);
	ok(!kfs_inode_cache_open(t, a, 6, &keep), "cache_open: refused after attr_sent(0) (invalidated)");

	/* A writer. */
	kfs_inode_attr_sent(t, a, 6);
	bool cached = kfs_inode_writer_open(t, a, true);

	ok(!kfs_inode_cache_open(t, a, 6, &keep), "cache_open: refused while a writer is open");
	kfs_inode_writer_close(t, a, cached);
	ok(kfs_inode_cache_open(t, a, 6, &keep), "cache_open: allowed after the writer closed");
	ok(!keep, "cache_open: after a writer the pages are not of a committed version, not kept");
	kfs_inode_cache_close(t, a);

	cached = kfs_inode_writer_open(t, a, false);
	ok(!cached, "writer_open: a writer that may not cache gets direct I/O");
	ok(!kfs_inode_cache_open(t, a, 6, &keep), "cache_open: refused while a direct writer is open");
	kfs_inode_writer_close(t, a, cached);
	ok(kfs_inode_cache_open(t, a, 6, &keep), "cache_open: allowed after the direct writer closed");
	kfs_inode_cache_close(t, a);

	keep = true;
	ok(!kfs_inode_cache_open(t, 12345, 6, &keep), "cache_open: refused for an unknown number");
	ok(!keep, "cache_open: keep is false when refused");
}

/* kfs_inode_writer_open of @ino, checked: whether it lets the writer use
 * the page cache is @want.  @return what it said, for the close. */
static bool writer_open_is(kfs_inodes *t, uint64_t ino, bool may_cache, bool want,
			   const char *what)
{
	bool cached = kfs_inode_writer_open(t, ino, may_cache);

	ok(cached == want, "%s", what);
	return cached;
}

static void test_writers(kfs_inodes *t)
{
	uint64_t a = ref(t, KFS_FILE, "a");
	bool keep;

	bool w1 = writer_open_is(t, a, true, true, "writer_open: the first writer that may cache uses the page cache");
	bool w2 = writer_open_is(t, a, true, true, "writer_open: a second writer that may cache shares the page cache");
	bool w3 = writer_open_is(t, a, false, false, "writer_open: a writer that may not cache is direct");
	bool w4 = writer_open_is(t, a, true, false, "writer_open: while a direct writer is open, a new writer is direct too");
	kfs_inode_writer_close(t, a, w4);
	kfs_inode_writer_close(t, a, w3);
	bool w5 = writer_open_is(t, a, true, true, "writer_close: once the direct writers closed, writers may cache again");
	kfs_inode_writer_close(t, a, w5);
	kfs_inode_writer_close(t, a, w2);
	kfs_inode_writer_close(t, a, w1);

	kfs_inode_attr_sent(t, a, 3);
	ok(kfs_inode_cache_open(t, a, 3, &keep), "writers: all closed, a reader may cache");
	bool w6 = writer_open_is(t, a, true, false, "writer_open: while a read-only page-cache handle is open, the writer is direct");
	kfs_inode_cache_close(t, a);
	bool w7 = writer_open_is(t, a, true, false, "writer_open: a direct writer still open keeps the next writer direct");
	kfs_inode_writer_close(t, a, w7);
	kfs_inode_writer_close(t, a, w6);
	bool w8 = writer_open_is(t, a, true, true, "writer_open: reader and direct writer closed, the writer caches");
	kfs_inode_writer_close(t, a, w8);
	ok(!kfs_inode_writer_open(t, 4242, true), "writer_open: false for an unknown number");
	kfs_inode_writer_close(t, 4242, false); /* ignored */

	/* Direct readers. */
	ok(!kfs_inode_has_direct_reader(t, a), "direct_reader: none at first");
	kfs_inode_direct_reader(t, a, true);
	kfs_inode_direct_reader(t, a, true);
	ok(kfs_inode_has_direct_reader(t, a), "direct_reader: counted when opened");
	kfs_inode_direct_reader(t, a, false);
	ok(kfs_inode_has_direct_reader(t, a), "direct_reader: one of two closed, one still open");
	kfs_inode_direct_reader(t, a, false);
	ok(!kfs_inode_has_direct_reader(t, a), "direct_reader: none once both closed");
	kfs_inode_direct_reader(t, a, false);
	ok(!kfs_inode_has_direct_reader(t, a), "direct_reader: a close too many does not wrap");
	kfs_inode_direct_reader(t, a, true);
	ok(kfs_inode_has_direct_reader(t, a), "direct_reader: counted again after the extra close");
	ok(!kfs_inode_has_direct_reader(t, 4242), "direct_reader: false for an unknown number");
}

/* ---- the shared pending value ---- */

static void test_wbuf(kfs_inodes *t)
{
	uint64_t a = ref(t, KFS_FILE, "a");
	int buf1, buf2; /* the table never looks inside: any address serves */
	struct kfs_pending p, got;

	ok(kfs_inode_wbuf_attach(t, a, NULL) == NULL, "wbuf_attach: NULL with none shared and none given");
	ok(!kfs_inode_wbuf_detach(t, a), "wbuf_detach: nothing to drop when none is shared");
	ok(kfs_inode_wbuf_attach(t, a, &buf1) == &buf1, "wbuf_attach: the given value becomes the shared one");
	ok(kfs_inode_wbuf_attach(t, a, &buf2) == &buf1, "wbuf_attach: a second writer gets the shared one, not its own");
	ok(kfs_inode_wbuf_attach(t, a, NULL) == &buf1, "wbuf_attach: with NULL, the shared one");

	ok(!kfs_inode_pending(t, a, &got), "pending: none until set");
	memset(&p, 0, sizeof(p));
	p.len = 123456789012ull;
	p.mtime_ns = 1700000000123456789ll;
	p.ctime_ns = 1700000001000000000ll;
	p.has_mode = true;
	p.mode = 0751;
	p.has_owner = true;
	p.uid = 1001;
	p.gid = 1002;
	kfs_inode_set_pending(t, a, &p);
	memset(&got, 0, sizeof(got));
	ok(kfs_inode_pending(t, a, &got), "pending: set while a value is shared");
	ok(got.len == p.len && got.mtime_ns == p.mtime_ns && got.ctime_ns == p.ctime_ns &&
		   got.has_mode && got.mode == 0751 && got.has_owner && got.uid == 1001 &&
		   got.gid == 1002,
	   "pending: size, mtime, ctime, mode and owner read back as set");
	p.len = 5;
	p.has_mode = false;
	kfs_inode_set_pending(t, a, &p);
	ok(kfs_inode_pending(t, a, &got) && got.len == 5 && !got.has_mode,
	   "pending: a later set replaces the earlier");

	ok(!kfs_inode_wbuf_detach(t, a), "wbuf_detach: 3 references, the first drop is not the last");
	ok(!kfs_inode_wbuf_detach(t, a), "wbuf_detach: nor the second");
	ok(kfs_inode_pending(t, a, &got), "pending: kept while a writer still shares the value");
	ok(kfs_inode_wbuf_detach(t, a), "wbuf_detach: the third drop is the last; the caller frees");
	ok(!kfs_inode_pending(t, a, &got), "pending: cleared with the last reference");
	ok(kfs_inode_wbuf_attach(t, a, NULL) == NULL, "wbuf_attach: after the last drop, the inode points to none");
	ok(kfs_inode_wbuf_attach(t, a, &buf2) == &buf2, "wbuf_attach: a new value can be shared afterwards");

	/* The kernel forgets the inode while a writer shares its value. */
	ok(!kfs_inode_forget(t, a, 1), "wbuf: a forget while the value is shared frees nothing");
	ok(names(t, a, KFS_FILE, "a"), "wbuf: a forgotten inode lives while its value is shared");
	is_int(kfs_inodes_count(t), 2, "wbuf: it is still counted");
	ok(kfs_inode_wbuf_detach(t, a), "wbuf: the last drop after the forget");
	ok(!known(t, a), "wbuf: the inode is freed with the last drop");
	is_int(kfs_inodes_count(t), 1, "wbuf: the count drops with it");

	/* The same, for an unlinked inode. */
	uint64_t b = ref(t, KFS_FILE, "b");

	kfs_inode_wbuf_attach(t, b, &buf1);
	kfs_inode_unlinked(t, "b", 1, NULL);
	kfs_inode_forget(t, b, 1);
	ok(known(t, b), "wbuf: an unlinked, forgotten inode lives while its value is shared");
	ok(kfs_inode_wbuf_detach(t, b) && !known(t, b), "wbuf: and is freed with the last drop");

	ok(kfs_inode_wbuf_attach(t, 4242, &buf1) == NULL, "wbuf_attach: NULL for an unknown number");
	ok(!kfs_inode_wbuf_detach(t, 4242), "wbuf_detach: false for an unknown number");
	kfs_inode_set_pending(t, 4242, &p);
	ok(!kfs_inode_pending(t, 4242, &got), "pending: false for an unknown number");
}

/* ---- growth ---- */

static void key_of(char *buf, size_t cap, int i)
{
	/* Spread over 100 directories, as a big tree is. */
	snprintf(buf, cap, "g%02d:file-%06d", i % 100, i);
}

static void test_growth(void)
{
	kfs_inodes *t = table_new("");
	uint64_t *ino = calloc(GROW_N, sizeof(*ino));
	char key[64];
	int bad = 0;

	if (!ino)
		bail_out("out of memory");
	for (int i = 0; i < GROW_N; i++) {
		key_of(key, sizeof(key), i);
		ino[i] = ref(t, KFS_FILE, key);
	}
	is_int(kfs_inodes_count(t), GROW_N + 1, "growth: %d inodes and the root counted", GROW_N);
	for (int i = 0; i < GROW_N; i++) {
		key_of(key, sizeof(key), i);
		if (find(t, KFS_FILE, key) != ino[i] || !names(t, ino[i], KFS_FILE, key))
			bad++;
		if (i > 0 && ino[i] <= ino[i - 1])
			bad++;
	}
	is_int(bad, 0, "growth: every inode found by key and by number, numbers increasing");

	/* Forget every odd one; the even ones answer, the odd ones do not. */
	for (int i = 1; i < GROW_N; i += 2)
		kfs_inode_forget(t, ino[i], 1);
	bad = 0;
	for (int i = 0; i < GROW_N; i++) {
		key_of(key, sizeof(key), i);
		bool live = i % 2 == 0;

		if (known(t, ino[i]) != live || (find(t, KFS_FILE, key) == ino[i]) != live)
			bad++;
	}
	is_int(bad, 0, "growth: after forgetting half, exactly the other half answers");
	is_int(kfs_inodes_count(t), GROW_N / 2 + 1, "growth: the count is half plus the root");

	/* Rename one directory of the big table: its inodes move, none else. */
	kfs_inode_rename_prefix(t, "g08:", 4, "moved:", 6);
	bad = 0;
	for (int i = 0; i < GROW_N; i += 2) {
		char want[96];

		key_of(key, sizeof(key), i);
		if (i % 100 == 8)
			snprintf(want, sizeof(want), "moved:%s", key + 4);
		else
			snprintf(want, sizeof(want), "%s", key);
		if (!names(t, ino[i], KFS_FILE, want) || find(t, KFS_FILE, want) != ino[i])
			bad++;
	}
	is_int(bad, 0, "growth: a prefix rename in the big table moves exactly its inodes");

	/* New numbers after all of that are still fresh. */
	uint64_t next = ref(t, KFS_FILE, "after");

	ok(next > ino[GROW_N - 1], "growth: a new inode's number is above every earlier one");
	for (int i = 0; i < GROW_N; i += 2)
		kfs_inode_forget(t, ino[i], 1);
	kfs_inode_forget(t, next, 1);
	is_int(kfs_inodes_count(t), 1, "growth: all forgotten, the root is left");
	free(ino);
	kfs_inodes_free(t);

	/* Freeing a full table frees every inode (the leak checker sees). */
	t = table_new("");
	for (int i = 0; i < GROW_N / 4; i++) {
		key_of(key, sizeof(key), i);
		ref(t, i % 3 ? KFS_FILE : KFS_DIR, key);
	}
	kfs_inodes_free(t);
	ok(true, "growth: a table of %d inodes freed whole", GROW_N / 4);
}

/* ---- threads ---- */

#define THREADS 4
#define PER_THREAD 5000

static void *hammer(void *arg)
{
	kfs_inodes *t = arg;
	char key[64];
	uint64_t prev = 0;
	long bad = 0;

	/* Each thread looks up and forgets its own keys, and a shared one. */
	for (int i = 0; i < PER_THREAD; i++) {
		uint64_t a, s;

		snprintf(key, sizeof(key), "t%p:%d", (void *)pthread_self(), i % 50);
		if (kfs_inode_ref(t, KFS_FILE, key, strlen(key), &a) != 0 ||
		    kfs_inode_ref(t, KFS_FILE, "shared", 6, &s) != 0)
			return (void *)1;
		if (a <= KFS_ROOT_INO || a == prev)
			bad++;
		prev = a;
		kfs_inode_forget(t, a, 1);
		kfs_inode_forget(t, s, 1);
	}
	return (void *)bad;
}

static void test_threads(kfs_inodes *t)
{
	pthread_t th[THREADS];
	long bad = 0;
	uint64_t keep = ref(t, KFS_FILE, "shared");

	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&th[i], NULL, hammer, t) != 0)
			bail_out("pthread_create failed");
	for (int i = 0; i < THREADS; i++) {
		void *r;

		pthread_join(th[i], &r);
		bad += (long)r;
	}
	is_int(bad, 0, "threads: %d threads looking up and forgetting got fresh numbers", THREADS);
	is_int(kfs_inodes_count(t), 2, "threads: afterwards only the root and the held key remain");
	ok(find(t, KFS_FILE, "shared") == keep, "threads: the held inode kept its number throughout");
}

int main(void)
{
	test_root();
	on_fresh_table(test_refcount);
	on_fresh_table(test_numbers_not_reused);
	on_fresh_table(test_dir_number);
	on_fresh_table(test_rename_file);
	on_fresh_table(test_rename_prefix);
	on_fresh_table(test_unlinked);
	on_fresh_table(test_cache_open);
	on_fresh_table(test_writers);
	on_fresh_table(test_wbuf);
	test_growth();
	on_fresh_table(test_threads);
	return done_testing();
}
