/*
 * fail_txn: an LD_PRELOAD shim for the kvsync tests that makes one read
 * transaction fail to start, as LMDB does when its reader table is full
 * (MDB_READERS_FULL), so the tests can walk kvsync's store error paths.
 *
 *	FAIL_TXN_AT=N   the Nth read transaction begun or renewed in each
 *	                process fails; the others run normally
 *	FAIL_TXN_MARK=F a line is appended to file F each time one fails, so
 *	                a test knows when N has passed every transaction
 *
 * It stands in for two of LMDB's own functions, so it is the one piece of
 * test code that speaks LMDB's types; the product's code never does.
 * A forked process inherits the count its parent had reached.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdlib.h>
#include <unistd.h>

static unsigned long started;

/* Whether the read transaction starting now is the one to fail. */
static int fail_this_one(void)
{
	const char *at = getenv("FAIL_TXN_AT");
	if (!at || ++started != strtoul(at, NULL, 10))
		return 0;
	const char *mark = getenv("FAIL_TXN_MARK");
	int fd = mark ? open(mark, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
	if (fd >= 0) {
		if (write(fd, "failed\n", 7) < 0) {
			/* the test then sees no mark and stops early: harmless */
		}
		close(fd);
	}
	return 1;
}

int mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn)
{
	static int (*real)(MDB_env *, MDB_txn *, unsigned int, MDB_txn **);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_txn_begin");
	if ((flags & MDB_RDONLY) && fail_this_one())
		return MDB_READERS_FULL;
	return real(env, parent, flags, txn);
}

int mdb_txn_renew(MDB_txn *txn)
{
	static int (*real)(MDB_txn *);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_txn_renew");
	if (fail_this_one())
		return MDB_READERS_FULL;
	return real(txn);
}
