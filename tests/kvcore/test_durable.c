/*
 * test_durable: proves that kvc_store_sync keeps its promise while other
 * threads call it too: when it returns 0, every commit of the handle made
 * before the call is on disk.  With KVC_SYNC_BATCH a commit leaves its
 * meta page unwritten; one thread commits and syncs in a loop and after
 * each sync counts the pages of data.mdb the kernel has not written
 * (cachestat(2), Linux 6.5+), while another thread syncs the same handle
 * as fast as it can, as the kvfs daemon's flusher does beside an fsync.
 * Every count must be 0.  (Two syncs that flushed the same commits once
 * both took them off a counter, which wrapped, and a later sync then
 * believed everything was on disk and did nothing.)
 * Prints TAP; skips when the kernel has no cachestat.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cachestat.h"
#include "kvtest.h"

#define ROUNDS 2000

struct flusher {
	kvc_store *s;
	atomic_bool stop;
	unsigned long syncs;
	int rc;
};

static void *flusher_main(void *arg)
{
	struct flusher *f = arg;
	while (!atomic_load(&f->stop)) {
		int rc = kvc_store_sync(f->s);
		if (rc && !f->rc)
			f->rc = rc;
		f->syncs++;
	}
	return NULL;
}

int main(void)
{
	struct kt_dir d;
	char path[128], data[160];
	kt_dir_make(&d);
	kt_dir_sub(&d, "s", path, sizeof(path));
	struct kvc_open_opts o = {.sync = KVC_SYNC_BATCH};
	kvc_store *s = kt_open(path, &o);
	snprintf(data, sizeof(data), "%s/data.mdb", path);
	int fd = open(data, O_RDONLY);
	if (fd < 0)
		bail_out("cannot open data.mdb");
	if (kt_unwritten(fd, 0, 0) < 0) {
		printf("1..0 # SKIP cachestat(2) is missing (Linux 6.5 or later needed)\n");
		close(fd);
		kvc_close(s);
		kt_dir_remove(&d);
		return 0;
	}
	is_int(kt_puts(s, "warm", "up"), 0, "a first commit");
	is_int(kvc_store_sync(s), 0, "a sync alone");
	is_int(kt_unwritten(fd, 0, 0), 0, "leaves no page unwritten");

	struct flusher f = {.s = s};
	pthread_t t;
	if (pthread_create(&t, NULL, flusher_main, &f))
		bail_out("thread");
	int bad = -1, failed = 0;
	long long left = 0;
	for (int i = 0; i < ROUNDS && bad < 0; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i % 50);
		int rc = kt_puts(s, key, "value");
		if (!rc)
			rc = kvc_store_sync(s);
		if (rc) {
			failed = rc;
			bad = i;
		} else if ((left = kt_unwritten(fd, 0, 0)) != 0) {
			bad = i;
		}
	}
	atomic_store(&f.stop, true);
	pthread_join(t, NULL);
	is_int(failed, 0, "every commit and sync worked");
	if (bad >= 0 && !failed)
		diag("round %d: %lld pages unwritten after kvc_store_sync returned", bad, left);
	is_int(bad, -1,
	       "%d commits, each followed by kvc_store_sync beside a thread syncing the "
	       "same handle (%lu times): no page is left unwritten", ROUNDS, f.syncs);
	is_int(f.rc, 0, "the other thread's syncs worked");
	close(fd);
	kvc_close(s);
	kt_dir_remove(&d);
	return done_testing();
}
