/*
 * cmd_store: the commands of the whole store: export (the namespace as a
 * bulk put file, from one snapshot), reap (expired keys, then tombstones
 * past the grace period), stats and check.
 */
#include "kvctl.h"

#include "common/bulk.h"
#include "common/progress.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

/* Keys handed out for reaping per batch: the progress line moves between. */
#define REAP_BATCH 1000u

int export_each(kvc_store *store, const char *prefix, struct kt_progress *progress,
		export_fn *fn, void *arg)
{
	size_t prefix_len = strlen(prefix);
	kvc_txn *txn;
	kvc_cursor *cur;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);

	if (rc)
		return rc;
	rc = kvc_cursor_open(txn, 0, &cur);
	if (rc) {
		kvc_txn_abort(txn);
		return rc;
	}
	const void *k;
	size_t kn;
	struct kvc_record rec;
	uint64_t n = 0;
	rc = kvc_cursor_seek(cur, prefix, prefix_len, &k, &kn, &rec);
	while (!rc && kn >= prefix_len && !memcmp(k, prefix, prefix_len)) {
		rc = fn(arg, k, kn, &rec);
		if (rc)
			break;
		kt_progress_update(progress, ++n);
		rc = kvc_cursor_next(cur, &k, &kn, &rec);
	}
	kvc_cursor_close(cur);
	kvc_txn_abort(txn);
	return rc == -ENOENT ? 0 : rc;
}

void export_progress_init(kvc_store *store, const struct args *a, struct kt_progress *progress)
{
	kt_progress_init(progress, STDERR_FILENO, "export", "keys", 0);
	/* LMDB's own entry count costs nothing, where counting the live keys
	 * would be a scan as long as the export: an estimate, since it counts
	 * tombstones and expired records too (and long keys sharing a bucket
	 * as one).  Under a prefix it says nothing of the part exported. */
	struct kvc_usage u;
	if ((!a->prefix || !*a->prefix) && !kvc_usage(store, &u))
		kt_progress_set_total(progress, u.records, true);
}

struct export_json {
	uint64_t n;
};

/* One key as a bulk-put entry on stdout. */
static int export_entry(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct export_json *x = arg;

	fputs(x->n++ ? ",\n" : "[\n", stdout);
	kt_bulk_write_put_entry(stdout, key, key_len, rec->value, rec->value_len, rec->expiration,
				rec->ttl, rec->metadata, rec->metadata_len);
	return ferror(stdout) ? -EIO : 0;
}

int cmd_export(kvc_store *store, const struct args *a)
{
	if (a->to_miniflare)
		return cmd_export_miniflare(store, a);

	struct kt_progress progress;
	struct export_json x = {0};

	export_progress_init(store, a, &progress);
	progress.enabled = progress.enabled && !isatty(STDOUT_FILENO); /* data on the screen */
	int rc = export_each(store, a->prefix ? a->prefix : "", &progress, export_entry, &x);
	if (!rc)
		kt_progress_set_total(&progress, progress.done, false);
	kt_progress_end(&progress);
	if (rc && ferror(stdout))
		return finish_stdout(EXIT_FAILURE); /* says why the output failed */
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	fputs(x.n ? "\n]\n" : "[]\n", stdout);
	return finish_stdout(0);
}

int cmd_reap(kvc_store *store, const struct args *a)
{
	int rc;
	struct kt_progress progress;
	uint64_t total = 0, n;
	kt_progress_init(&progress, STDERR_FILENO, "reap (expired keys)", "keys", 0);
	/* In batches, so the progress line moves and no transaction is huge. */
	do {
		n = 0;
		rc = kvc_reap(store, REAP_BATCH, &n);
		total += n;
		kt_progress_update(&progress, total);
	} while (!rc && n >= REAP_BATCH);
	if (rc) {
		kt_progress_end(&progress);
		return failure("reap failed after %" PRIu64 " keys: %s", total, strerror(-rc));
	}
	/* Tombstones past the grace period have served replication.  Their
	 * collection reports nothing and lasts as long as they are many. */
	uint64_t collected = 0;
	kt_progress_wait(&progress, "collecting old tombstones");
	rc = kvc_gc_tombstones(store, KVC_TOMBSTONE_GRACE_DEFAULT, &collected);
	kt_progress_end(&progress);
	printf("reaped %" PRIu64 " expired key%s\n", total, total == 1 ? "" : "s");
	if (rc)
		return failure("collecting old tombstones failed: %s", strerror(-rc));
	if (collected)
		printf("collected %" PRIu64 " tombstone%s older than %u days\n", collected,
		       collected == 1 ? "" : "s", KVC_TOMBSTONE_GRACE_DEFAULT / (24u * 3600u));
	return finish_stdout(0);
}

/* One peer of "peers" in stats.  Node ids and epochs are 64-bit random
 * numbers, beyond what a JSON number holds exactly: hex strings. */
static int peer_fn(void *arg, uint64_t node, uint64_t epoch, uint64_t seq)
{
	unsigned *n = arg;
	printf("%s\n    { \"node_id\": \"%016" PRIx64 "\", \"epoch\": \"%016" PRIx64
	       "\", \"watermark\": %" PRIu64 " }",
	       (*n)++ ? "," : "", node, epoch, seq);
	return 0;
}

int cmd_stats(kvc_store *store, const struct args *a)
{
	int rc;
	struct kvc_stats st;
	struct kvc_identity id;
	rc = kvc_stats(store, &st);
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	kvc_store_identity(store, &id);
	printf("{\n"
	       "  \"keys\": %" PRIu64 ",\n"
	       "  \"bytes\": %" PRIu64 ",\n"
	       "  \"expired_pending\": %" PRIu64 ",\n"
	       "  \"tombstones\": %" PRIu64 ",\n"
	       "  \"map_size\": %" PRIu64 ",\n"
	       "  \"map_used\": %" PRIu64 ",\n"
	       "  \"feed_head\": %" PRIu64 ",\n"
	       "  \"gc_horizon\": %" PRIu64 ",\n"
	       "  \"min_ttl\": %" PRIu32 ",\n"
	       "  \"node_id\": \"%016" PRIx64 "\",\n"
	       "  \"epoch\": \"%016" PRIx64 "\",\n"
	       "  \"peers\": [",
	       st.keys, st.value_bytes, st.expired_pending, st.tombstones, st.map_size,
	       st.map_used, st.feed_head, st.gc_horizon, st.min_ttl, id.node_id, id.epoch);
	/* The peers in a snapshot of their own: kvc_stats has ended its own. */
	kvc_txn *txn;
	unsigned peers = 0;
	rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc == 0) {
		rc = kvc_watermark_each(txn, peer_fn, &peers);
		kvc_txn_abort(txn);
	}
	if (rc) {
		fputs("]\n}\n", stdout);
		return failure("cannot read the store's watermarks: %s", strerror(-rc));
	}
	fputs(peers ? "\n  ]\n}\n" : "]\n}\n", stdout);
	return finish_stdout(0);
}

/* A problem on stdout, on a line of its own: the progress line (stderr,
 * perhaps the same screen) is erased first and drawn again below it. */
static void check_problem(void *arg, const char *problem)
{
	struct kt_progress *progress = arg;
	fflush(stdout);
	kt_progress_clear(progress);
	printf("%s\n", problem);
	fflush(stdout);
}

/* kvc_check's progress: its total is LMDB's count of what it walks, exact
 * in a sound store, so no scan is needed before the check to know it. */
static void check_progress(void *arg, uint64_t done, uint64_t total)
{
	struct kt_progress *progress = arg;
	progress->total = total;
	kt_progress_update(progress, done);
}

int cmd_check(kvc_store *store, const struct args *a)
{
	(void)a;
	struct kt_progress progress;
	kt_progress_init(&progress, STDERR_FILENO, "check", "entries", 0);
	uint64_t problems = 0, records = 0;
	int rc = kvc_check(store, check_problem, check_progress, &progress, &problems, &records);
	if (!rc) /* a store with problems may end off its count */
		kt_progress_set_total(&progress, progress.done, false);
	kt_progress_end(&progress);
	if (rc)
		return failure("check failed: %s", strerror(-rc));
	if (problems) {
		finish_stdout(0);
		return failure("check found %" PRIu64 " problem%s", problems,
			       problems == 1 ? "" : "s");
	}
	printf("ok: %" PRIu64 " records checked\n", records);
	return finish_stdout(0);
}
