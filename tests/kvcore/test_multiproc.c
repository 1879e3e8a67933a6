/*
 * test_multiproc: proves that several processes may write one store at
 * once.  Two forked children each open the store themselves (with a 1 MiB
 * map, so both must grow it while the other is writing) and write 2,000
 * keys of their own plus 200 writes to 20 shared keys, one transaction per
 * write, while the parent keeps reading.  Afterwards every key is present
 * with the right value, the feed has one entry per key, the head counts
 * every write once, the clocks rise with the sequence numbers, and
 * kvc_check reports no problem.  Prints TAP (children print nothing).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvtest.h"

#define CHILDREN 2
#define OWN 2000
#define SHARED_WRITES 200
#define SHARED_KEYS 20
#define VALUE_SIZE 2048

static size_t own_key(int child, unsigned i, char *out)
{
	return (size_t)sprintf(out, "c%d:%05u", child, i);
}

static void own_value(int child, unsigned i, unsigned char *out)
{
	memset(out, 'a' + child, VALUE_SIZE);
	memcpy(out, &i, sizeof(i));
}

/* A child: write, one transaction per key; exit status says how it went. */
static int child_main(const char *path, int child)
{
	struct kvc_open_opts o = {.map_size = 1024 * 1024, .sync = KVC_SYNC_BATCH};
	kvc_store *s = NULL;
	int rc = kvc_open(path, &o, &s, NULL);
	if (rc) {
		fprintf(stderr, "child %d: kvc_open: %s\n", child, strerror(-rc));
		return 2;
	}
	unsigned char v[VALUE_SIZE];
	unsigned shared = 0;
	for (unsigned i = 0; i < OWN; i++) {
		char key[32];
		size_t n = own_key(child, i, key);
		own_value(child, i, v);
		if (kt_put(s, key, n, v, VALUE_SIZE))
			return 3;
		if (i % (OWN / SHARED_WRITES) == 0) {
			char sk[32], sv[32];
			int kn = snprintf(sk, sizeof(sk), "shared:%02u", shared % SHARED_KEYS);
			int vn = snprintf(sv, sizeof(sv), "c%d:%u", child, shared);
			if (kt_put(s, sk, (size_t)kn, sv, (size_t)vn))
				return 4;
			shared++;
		}
	}
	if (shared != SHARED_WRITES || kvc_store_sync(s))
		return 5;
	kvc_close(s);
	return 0;
}

struct feed_stats {
	uint64_t entries, last_seq;
	bool ordered;
};

static int feed_count(kvc_store *s, struct feed_stats *ret)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(s, KVC_TXN_READ, &txn);
	if (rc)
		return rc;
	struct feed_stats fs = {0, 0, true};
	const void *k;
	size_t kn;
	struct kvc_record r;
	uint64_t after = 0, prev_hlc = 0;
	while ((rc = kvc_feed_next(txn, after, 0, &k, &kn, &r)) == 0) {
		if (r.seq <= after || r.hlc <= prev_hlc) {
			fs.ordered = false;
			break;
		}
		prev_hlc = r.hlc;
		after = r.seq;
		fs.entries++;
	}
	fs.last_seq = after;
	kvc_txn_abort(txn);
	*ret = fs;
	return rc == -ENOENT ? 0 : rc;
}

int main(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	char path[128];
	kt_dir_sub(&d, "store", path, sizeof(path));
	/* Create the store first; children open it on their own, never an
	 * environment inherited across fork. */
	kvc_close(kt_open(path, NULL));

	pid_t pid[CHILDREN];
	for (int c = 0; c < CHILDREN; c++) {
		fflush(stdout);
		pid[c] = fork();
		if (pid[c] < 0)
			bail_out("fork failed");
		if (pid[c] == 0)
			_exit(child_main(path, c));
	}

	/* Read while they write: each snapshot lists in order, no errors. */
	kvc_store *s = kt_open(path, NULL);
	int running = CHILDREN, status[CHILDREN] = {0};
	unsigned snapshots = 0, bad_snapshots = 0;
	while (running) {
		struct kt_keys all = {0};
		int rc = kt_cursor_all(s, &all);
		bool sorted = rc == 0;
		for (size_t i = 1; sorted && i < all.n; i++)
			sorted = kt_key_cmp(all.key[i - 1], all.len[i - 1], all.key[i], all.len[i]) < 0;
		bad_snapshots += !sorted;
		snapshots++;
		kt_keys_free(&all);
		for (int c = 0; c < CHILDREN; c++) {
			if (pid[c] > 0 && waitpid(pid[c], &status[c], WNOHANG) == pid[c]) {
				pid[c] = 0;
				running--;
			}
		}
		kt_sleep_ms(20);
	}
	for (int c = 0; c < CHILDREN; c++)
		ok(WIFEXITED(status[c]) && WEXITSTATUS(status[c]) == 0,
		   "child %d wrote its keys through its own kvc_open (exit status %d)", c,
		   WIFEXITED(status[c]) ? WEXITSTATUS(status[c]) : -1);
	is_int(bad_snapshots, 0, "%u reads during the writes each saw an ordered snapshot", snapshots);
	kvc_close(s);

	s = kt_open(path, NULL);
	unsigned char v[VALUE_SIZE];
	unsigned missing = 0;
	for (int c = 0; c < CHILDREN; c++) {
		for (unsigned i = 0; i < OWN; i++) {
			char key[32];
			size_t n = own_key(c, i, key);
			own_value(c, i, v);
			missing += !kt_has(s, key, n, v, VALUE_SIZE);
		}
	}
	is_int(missing, 0, "every one of the %d own keys is present with its value", CHILDREN * OWN);
	unsigned shared_ok = 0;
	for (unsigned k = 0; k < SHARED_KEYS; k++) {
		char sk[32];
		int kn = snprintf(sk, sizeof(sk), "shared:%02u", k);
		struct kt_rec r;
		if (!kt_get(s, sk, (size_t)kn, 0, &r)) {
			shared_ok += r.value[0] == 'c' && (r.value[1] == '0' || r.value[1] == '1');
			kt_rec_free(&r);
		}
	}
	is_int(shared_ok, SHARED_KEYS, "every shared key holds a value one of the children wrote");

	struct feed_stats fs = {0};
	is_int(feed_count(s, &fs), 0, "the feed walks");
	ok(fs.ordered, "along the feed, sequences and clocks both rise");
	is_int((long long)fs.entries, CHILDREN * OWN + SHARED_KEYS, "the feed has one entry per key");
	uint64_t writes = CHILDREN * (OWN + SHARED_WRITES);
	is_int((long long)kt_head(s), (long long)writes, "the feed head counts each of the %llu writes once",
	       (unsigned long long)writes);
	struct kvc_stats st = kt_stats(s);
	is_int((long long)st.keys, CHILDREN * OWN + SHARED_KEYS, "kvc_stats counts every key");
	is_int(kt_check(s), 0, "kvc_check reports 0 problems after two concurrent writers");
	kvc_close(s);
	kt_dir_remove(&d);
	return done_testing();
}
