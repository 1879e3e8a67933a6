/*
 * gc_tombstones: a test helper that collects the tombstones of a store
 * older than a grace period, as a store's maintenance would after 7 days,
 * so the tests can put a peer behind the GC horizon without waiting.
 *
 *	gc_tombstones STORE GRACE_SECONDS
 *
 * prints "collected N, horizon H" and exits 0, or 1 on a store error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvcore.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: gc_tombstones STORE GRACE_SECONDS\n");
		return 2;
	}
	struct kvc_open_opts o = {.no_create = true};
	kvc_store *s;
	int rc = kvc_open(argv[1], &o, &s, NULL);
	if (rc) {
		fprintf(stderr, "gc_tombstones: cannot open %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	uint64_t collected = 0, horizon = 0;
	rc = kvc_gc_tombstones(s, strtoull(argv[2], NULL, 10), &collected);
	kvc_txn *txn;
	if (!rc && !(rc = kvc_txn_begin(s, KVC_TXN_READ, &txn))) {
		rc = kvc_gc_horizon(txn, &horizon);
		kvc_txn_abort(txn);
	}
	kvc_close(s);
	if (rc) {
		fprintf(stderr, "gc_tombstones: %s\n", strerror(-rc));
		return 1;
	}
	printf("collected %" PRIu64 ", horizon %" PRIu64 "\n", collected, horizon);
	return 0;
}
