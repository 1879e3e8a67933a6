/*
 * test_group: group commit (kvc_open_opts.group_commit).  Eight threads
 * write through one handle at once, in a store whose 1 MiB map must grow
 * many times meanwhile, so calls share transactions and some shared
 * transactions run out of map and are run again.  Among the calls: ones
 * that write and then fail (their writes must vanish, the others' of the
 * same transaction stay), ones that write two keys (both or neither), and
 * exclusive creates of keys shared by all threads (exactly one wins each).
 * Afterwards every key holds what its last successful call wrote, no
 * failed call left a trace, the feed counts every successful write once,
 * kvc_check finds nothing, and calls did run on other callers' threads
 * (the transactions were shared).  Prints TAP.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "kvtest.h"

#define THREADS 8
#define CALLS 300
#define SHARED 16

struct call {
	pthread_t caller;
	int thread;
	unsigned i;
	atomic_uint *foreign; /* calls run on another caller's thread */
};

static size_t own_key(int t, unsigned i, char *out)
{
	return (size_t)sprintf(out, "t%d:k%04u", t, i);
}

/* Sizes from 10 bytes to 40 KiB: the small map keeps filling up. */
static size_t own_value(int t, unsigned i, unsigned char *out)
{
	size_t n = 10 + (size_t)((i * 7919u + (unsigned)t * 104729u) % 40000u);
	memset(out, 'a' + t, n);
	memcpy(out, &i, sizeof(i));
	return n;
}

static void note_thread(const struct call *c)
{
	if (!pthread_equal(c->caller, pthread_self()))
		atomic_fetch_add(c->foreign, 1);
}

/* Write the call's own key (and, every 11th call, a second one). */
static int put_fn(kvc_txn *txn, void *arg)
{
	const struct call *c = arg;
	unsigned char v[40010];
	char key[32];
	size_t kn = own_key(c->thread, c->i, key);
	struct kvc_write w = {.set = KVC_SET_VALUE, .value = v};
	note_thread(c);
	w.value_len = own_value(c->thread, c->i, v);
	int rc = kvc_write(txn, key, kn, &w);
	if (rc == 0 && c->i % 11 == 0) {
		key[kn] = '+';
		rc = kvc_write(txn, key, kn + 1, &w);
	}
	return rc;
}

/* Write the call's key, then fail: nothing may remain. */
static int fail_fn(kvc_txn *txn, void *arg)
{
	const struct call *c = arg;
	char key[32];
	size_t kn = own_key(c->thread, c->i, key);
	struct kvc_write w = {.set = KVC_SET_VALUE, .value = "doomed", .value_len = 6};
	note_thread(c);
	int rc = kvc_write(txn, key, kn, &w);
	return rc < 0 ? rc : -EEXIST;
}

/* Create shared key c->i % SHARED unless it exists. */
static int create_fn(kvc_txn *txn, void *arg)
{
	const struct call *c = arg;
	char key[32], val[32];
	int kn = snprintf(key, sizeof(key), "shared:%02u", c->i % SHARED);
	int vn = snprintf(val, sizeof(val), "t%d", c->thread);
	struct kvc_write w = {.set = KVC_SET_VALUE | KVC_CREATE, .value = val,
			      .value_len = (size_t)vn};
	note_thread(c);
	return kvc_write(txn, key, (size_t)kn, &w);
}

struct worker {
	kvc_store *s;
	int thread;
	atomic_uint *foreign;
	unsigned errors;      /* unexpected results */
	unsigned puts, extra; /* successful writes of own keys */
	unsigned created;     /* shared keys this thread created */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (unsigned i = 0; i < CALLS; i++) {
		struct call c = {pthread_self(), w->thread, i, w->foreign};
		int rc;
		if (i % 7 == 3) {
			rc = kvc_write_txn(w->s, fail_fn, &c, NULL, 0);
			if (rc != -EEXIST)
				w->errors++;
		} else if (i % 5 == 1) {
			rc = kvc_write_txn(w->s, create_fn, &c, NULL, 0);
			if (rc == 0)
				w->created++;
			else if (rc != -EEXIST)
				w->errors++;
		} else {
			rc = kvc_write_txn(w->s, put_fn, &c, NULL, 0);
			if (rc == 0) {
				w->puts++;
				w->extra += i % 11 == 0;
			} else {
				w->errors++;
			}
		}
	}
	return NULL;
}

int main(void)
{
	struct kt_dir d;
	struct kvc_open_opts o = {.map_size = 1024 * 1024, .sync = KVC_SYNC_BATCH,
				  .group_commit = true};
	kvc_store *s = kt_dir_store(&d, &o, NULL, 0);

	atomic_uint foreign = 0;
	struct worker w[THREADS];
	pthread_t tid[THREADS];
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct worker){.s = s, .thread = t, .foreign = &foreign};
		if (pthread_create(&tid[t], NULL, worker_main, &w[t]))
			bail_out("pthread_create");
	}
	unsigned errors = 0, puts = 0, extra = 0, created = 0;
	for (int t = 0; t < THREADS; t++) {
		pthread_join(tid[t], NULL);
		errors += w[t].errors;
		puts += w[t].puts;
		extra += w[t].extra;
		created += w[t].created;
	}
	is_int(errors, 0, "every call got the result its function decided");
	ok(atomic_load(&foreign) > 0, "calls ran in transactions led by other threads (%u)",
	   atomic_load(&foreign));
	is_int(created, SHARED, "each shared key was created by exactly one call");

	unsigned wrong = 0, leftovers = 0;
	unsigned char v[40010];
	for (int t = 0; t < THREADS; t++) {
		for (unsigned i = 0; i < CALLS; i++) {
			char key[32];
			size_t kn = own_key(t, i, key);
			if (i % 7 == 3 || i % 5 == 1) {
				leftovers += !kt_absent(s, key, kn);
				continue;
			}
			size_t vn = own_value(t, i, v);
			wrong += !kt_has(s, key, kn, v, vn);
			if (i % 11 == 0) {
				key[kn] = '+';
				wrong += !kt_has(s, key, kn + 1, v, vn);
			}
		}
	}
	is_int(wrong, 0, "every successful call's keys hold its values");
	is_int(leftovers, 0, "no failed call left a key behind");
	is_int((long long)kt_head(s), (long long)(puts + extra + created),
	       "the feed counts every successful write once");
	is_int(kt_check(s), 0, "kvc_check finds no problem");
	kvc_close(s);
	kt_dir_remove(&d);
	return done_testing();
}
