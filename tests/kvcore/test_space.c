/*
 * test_space: kvcore on a full filesystem, through LMDB's own map-full
 * path.  The test mounts a 16 MiB tmpfs in a mount namespace of its own
 * (so nothing is left mounted however it ends; needs root, else it fails
 * unless KVFS_ALLOW_SKIP=1) and opens a store there with a 1 MiB map, so
 * every big write first fills the map: kvc_write_txn must grow the map
 * only as far as the filesystem can hold, report a write that cannot fit
 * as -ENOSPC "no space left on device" (never crash, never -EIO), keep
 * what was committed, let a delete through, and take writes again once
 * space is freed, on the same handle.  A resize that LMDB cannot map
 * (it unmaps first, so the environment is left with no map) fails that
 * write with -ENOMEM and the handle keeps working.  Also the rule of one
 * transaction per thread: a second begin on the same store is -EDEADLK,
 * on another store it is fine.
 *
 * To make a resize fail this test stands in for one LMDB function, so it
 * includes lmdb.h; the product's code outside kvcore never does.
 */
#include <dlfcn.h>
#include <lmdb.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "kvtest.h"

#define MIB (1024u * 1024u)

/* Set: the next resize asks LMDB for a map no address space holds. */
static bool fail_next_resize;

int mdb_env_set_mapsize(MDB_env *env, size_t size)
{
	static int (*real)(MDB_env *, size_t);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_env_set_mapsize");
	if (fail_next_resize && size) {
		fail_next_resize = false;
		size = (size_t)1 << 62;
	}
	return real(env, size);
}

/* A 16 MiB tmpfs on a fresh directory, in a private mount namespace. */
static bool small_fs(struct kt_dir *d)
{
	kt_dir_make(d);
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", d->path, "tmpfs", 0, "size=16m")) {
		diag("cannot mount a tmpfs (needs root): %s", strerror(errno));
		return false;
	}
	return true;
}

static int put_n(kvc_store *s, const char *key, size_t n, unsigned char fill, char *msg,
		 size_t msg_size)
{
	unsigned char *v = malloc(n);
	if (!v)
		bail_out("out of memory");
	memset(v, fill, n);
	struct kvc_write w = {.set = KVC_SET_VALUE, .value = v, .value_len = n};
	int rc = kt_write(s, key, strlen(key), &w, msg, msg_size);
	free(v);
	return rc;
}

static bool has_n(kvc_store *s, const char *key, size_t n, unsigned char fill)
{
	unsigned char *v = malloc(n);
	if (!v)
		bail_out("out of memory");
	memset(v, fill, n);
	bool same = kt_has(s, key, strlen(key), v, n);
	free(v);
	return same;
}

static void test_map_full(const struct kt_dir *d)
{
	char path[128], msg[256] = "", filler[160];
	struct kvc_open_opts o = {.map_size = MIB, .sync = KVC_SYNC_NONE};
	kvc_store *s = kt_open(kt_dir_sub(d, "store", path, sizeof(path)), &o);
	is_int(put_n(s, "six", 6 * MIB, 'a', NULL, 0), 0,
	       "a 6 MiB value grows the 1 MiB map and is stored");
	int rc = put_n(s, "twelve", 12 * MIB, 'b', msg, sizeof(msg));
	is_int(rc, -ENOSPC, "a 12 MiB value more than the 16 MiB filesystem holds: -ENOSPC (%s)",
	       kt_errname(rc));
	ok(!strncmp(msg, "no space left on device", 23), "its message says so (\"%s\")", msg);
	struct kvc_usage u;
	is_int(kvc_usage(s, &u), 0, "kvc_usage");
	ok(u.map_size <= 32 * MIB, "the map stayed within the filesystem (%llu bytes)",
	   (unsigned long long)u.map_size);
	ok(has_n(s, "six", 6 * MIB, 'a'), "the 6 MiB value reads back");
	ok(kt_absent(s, "twelve", 6), "the failed key is absent");
	is_int(kt_check(s), 0, "kvc_check finds nothing");

	/* Fill what is left with a file: now even the filesystem is full. */
	snprintf(filler, sizeof(filler), "%s/filler", d->path);
	FILE *f = fopen(filler, "w");
	static char zero[65536];
	while (f && fwrite(zero, 1, sizeof(zero), f) == sizeof(zero))
		;
	if (f)
		fclose(f);
	rc = put_n(s, "four", 4 * MIB, 'c', msg, sizeof(msg));
	is_int(rc, -ENOSPC, "on the full filesystem a 4 MiB value: -ENOSPC (%s)", kt_errname(rc));
	is_int(kt_delete(s, "six", 3), 0, "a delete works on the full filesystem");
	is_int(kt_check(s), 0, "kvc_check finds nothing after the delete");
	unlink(filler);
	is_int(put_n(s, "four", 4 * MIB, 'c', msg, sizeof(msg)), 0,
	       "with space freed the 4 MiB value is stored by the same handle (%s)", msg);
	ok(has_n(s, "four", 4 * MIB, 'c'), "and reads back");
	is_int(kt_check(s), 0, "kvc_check finds nothing at the end");
	kvc_close(s);
}

static void test_lost_map(void)
{
	struct kt_dir d;
	char path[128];
	kt_dir_make(&d);
	struct kvc_open_opts o = {.map_size = MIB, .sync = KVC_SYNC_NONE};
	kvc_store *s = kt_open(kt_dir_sub(&d, "store", path, sizeof(path)), &o);
	is_int(put_n(s, "a", 256 * 1024, 'a', NULL, 0), 0, "a 256 KiB value fits the 1 MiB map");
	fail_next_resize = true;
	int rc = put_n(s, "b", 2 * MIB, 'b', NULL, 0);
	is_int(rc, -ENOMEM, "a write whose map growth cannot be mapped fails: -ENOMEM (%s)",
	       kt_errname(rc));
	ok(has_n(s, "a", 256 * 1024, 'a'), "the same handle still reads the store");
	is_int(put_n(s, "b", 2 * MIB, 'b', NULL, 0), 0, "and grows its map for the next write");
	ok(has_n(s, "b", 2 * MIB, 'b'), "which reads back");
	is_int(kvc_store_sync(s), 0, "kvc_store_sync works");
	is_int(kt_check(s), 0, "kvc_check finds nothing");
	kvc_close(s);
	kt_dir_remove(&d);
}

static void test_one_txn_per_thread(const struct kt_dir *d)
{
	char pa[128], pb[128];
	kvc_store *a = kt_open(kt_dir_sub(d, "a", pa, sizeof(pa)), NULL);
	kvc_store *b = kt_open(kt_dir_sub(d, "b", pb, sizeof(pb)), NULL);
	kvc_txn *t1 = NULL, *t2 = NULL;
	is_int(kvc_txn_begin(a, KVC_TXN_READ, &t1), 0, "a read transaction begins");
	is_int(kvc_txn_begin(a, KVC_TXN_READ, &t2), -EDEADLK,
	       "a second read transaction on the same store in the same thread: -EDEADLK");
	is_int(kvc_txn_begin(a, KVC_TXN_WRITE, &t2), -EDEADLK,
	       "a write transaction while holding a read one: -EDEADLK");
	is_int(kt_puts(a, "k", "v"), -EDEADLK, "kvc_write_txn while holding one: -EDEADLK");
	is_int(kvc_txn_begin(b, KVC_TXN_READ, &t2), 0,
	       "a transaction on another store may be held at the same time");
	kvc_txn_abort(t2);
	kvc_txn_abort(t1);
	is_int(kt_puts(a, "k", "v"), 0, "once it ended, a write works");
	is_int(kvc_txn_begin(a, KVC_TXN_READ, &t1), 0, "and so does a new read transaction");
	kvc_txn_abort(t1);
	kvc_close(a);
	kvc_close(b);
}

int main(void)
{
	struct kt_dir d;
	if (!small_fs(&d)) {
		const char *skip_ok = getenv("KVFS_ALLOW_SKIP");
		kt_dir_remove(&d);
		if (skip_ok && !strcmp(skip_ok, "1")) {
			printf("1..0 # skip cannot mount a tmpfs\n");
			return 0;
		}
		bail_out("cannot mount a tmpfs");
	}
	test_map_full(&d);
	test_lost_map();
	test_one_txn_per_thread(&d);
	umount2(d.path, MNT_DETACH);
	kt_dir_remove(&d);
	return done_testing();
}
