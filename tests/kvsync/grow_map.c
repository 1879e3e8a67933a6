/*
 * grow_map: an LD_PRELOAD shim for the kvsync tests that has another
 * process grow a store's map while kvsync is inside a transaction, the way
 * a busy writer does in production, but at a chosen moment.
 *
 *	GROW_MAP_SMALL=N  a map of N bytes replaces kvcore's default of 1 GiB
 *	                  when a store is opened (LMDB raises it to the data's
 *	                  size), so another process's writes soon outgrow it
 *	GROW_MAP_COUNT=F  every cursor opened (a cursor lives inside a
 *	                  transaction: kvc_scan walks with one) appends a byte
 *	                  to file F, so the count is shared by kvsync and the
 *	                  peer it forks
 *	GROW_MAP_AT=N     at the Nth cursor counted in F,
 *	GROW_MAP_CMD=C    run the shell command C first and wait for it (it
 *	                  writes to the stores from another process)
 *
 * It stands in for two of LMDB's own functions, so it speaks LMDB's types;
 * the product's code never does.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int mdb_env_set_mapsize(MDB_env *env, size_t size)
{
	static int (*real)(MDB_env *, size_t);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_env_set_mapsize");
	const char *small = getenv("GROW_MAP_SMALL");
	if (small && size == (size_t)1 << 30)
		size = strtoull(small, NULL, 10);
	return real(env, size);
}

/* Count this cursor in the shared file.  @return the count, 0 if none. */
static unsigned long count_cursor(void)
{
	const char *path = getenv("GROW_MAP_COUNT");
	int fd = path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
	struct stat st;
	unsigned long n = 0;
	if (fd >= 0 && write(fd, "c", 1) == 1 && !fstat(fd, &st))
		n = (unsigned long)st.st_size;
	if (fd >= 0)
		close(fd);
	return n;
}

int mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor)
{
	static int (*real)(MDB_txn *, MDB_dbi, MDB_cursor **);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_cursor_open");
	const char *at = getenv("GROW_MAP_AT"), *cmd = getenv("GROW_MAP_CMD");
	if (at && cmd && count_cursor() == strtoul(at, NULL, 10)) {
		if (system(cmd) != 0) {
			/* the test sees no growth in its mark and says so */
		}
	}
	return real(txn, dbi, cursor);
}
