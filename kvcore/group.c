/*
 * group: kvc_write_txn, the way writers commit.  A call runs its function
 * in a write transaction and commits it; when LMDB finds the map full, the
 * map grows (store.c) and the call runs again.  With group commit (a
 * store opened with group_commit), calls that arrive while one commits
 * queue up and share the next transaction, each in a nested transaction
 * of its own, so one flush serves every caller that waited for it and a
 * failing call undoes only its own writes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Map growths one call waits through before it gives up. */
#define MAX_GROWTHS 40

/* kvc_write_txn for one caller: its own transaction and commit. */
static int write_txn_alone(kvc_store *store, int (*fn)(kvc_txn *txn, void *arg), void *arg,
			   char *errmsg, size_t errmsg_size)
{
	int rc;
	for (int attempt = 0; attempt < MAX_GROWTHS; attempt++) {
		kvc_txn *txn;
		rc = kvc_txn_begin(store, KVC_TXN_WRITE, &txn);
		if (rc)
			break;
		rc = fn(txn, arg);
		if (rc < 0) {
			mdb_txn_abort(txn->mdb);
			txn->mdb = NULL;
		} else {
			int crc = kvc_txn_commit_keep(txn);
			if (crc)
				rc = crc;
		}
		bool full = txn->map_full;
		if (rc < 0 && errmsg && errmsg_size)
			snprintf(errmsg, errmsg_size, "%s", txn->errmsg);
		kvc_txn_free(txn);
		if (!(rc == -ENOSPC && full))
			return rc;
		int grc = kvc_store_grow(store);
		if (grc) {
			rc = grc;
			if (errmsg && errmsg_size)
				snprintf(errmsg, errmsg_size, "%s", kvc_growth_errmsg(grc));
			break;
		}
	}
	return rc;
}

/* A call of kvc_write_txn waiting for, or in, a shared transaction. */
struct kvc_group_req {
	int (*fn)(kvc_txn *txn, void *arg);
	void *arg;
	int rc;
	bool ran;               /* rc is its result (but for a failed commit) */
	bool full;              /* the map was full: run it again after growth */
	bool done;              /* its result is final; protected by group_lock */
	char errmsg[sizeof(((kvc_txn *)0)->errmsg)];
	struct kvc_group_req *next;
};

/* Run @r's fn in a transaction nested in @txn: what a failing fn wrote is
 * undone, the others' writes stay. */
static void group_run_one(kvc_txn *txn, struct kvc_group_req *r)
{
	MDB_txn *parent = txn->mdb, *child;
	uint64_t seq = txn->seq, hlc = txn->hlc, ino = txn->ino, chunk = txn->chunk;
	bool meta_dirty = txn->meta_dirty, meta_loaded = txn->meta_loaded;
	int rc = mdb_txn_begin(txn->store->env, parent, 0, &child);

	txn->errmsg[0] = 0;
	txn->map_full = false;
	if (rc) {
		rc = kvc_lmdb_err(txn, rc);
	} else {
		txn->mdb = child;
		rc = r->fn(txn, r->arg);
		if (rc >= 0) {
			int c = mdb_txn_commit(child);
			if (c)
				rc = kvc_lmdb_err(txn, c);
		} else {
			mdb_txn_abort(child);
		}
		txn->mdb = parent;
	}
	if (rc < 0) {
		/* The counters are written back at the commit: forget what
		 * the undone writes took. */
		txn->seq = seq, txn->hlc = hlc, txn->ino = ino, txn->chunk = chunk;
		txn->meta_dirty = meta_dirty, txn->meta_loaded = meta_loaded;
	}
	r->rc = rc;
	r->full = rc == -ENOSPC && txn->map_full;
	r->ran = !r->full;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", txn->errmsg);
	txn->map_full = false;
}

/* Give every call of @batch without a result @rc and @msg. */
static void group_fail(struct kvc_group_req *batch, int rc, const char *msg)
{
	for (struct kvc_group_req *r = batch; r; r = r->next) {
		if (r->ran)
			continue;
		r->rc = rc;
		r->ran = true;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	}
}

/* Run the calls of @batch in one shared transaction, in queue order; when
 * one finds the map full, none is kept: the map grows and all run again (a
 * nested transaction that failed for want of pages is not trusted to have
 * left its parent whole). */
static void group_run(kvc_store *store, struct kvc_group_req *batch)
{
	for (int attempt = 0; attempt < MAX_GROWTHS; attempt++) {
		kvc_txn *txn;
		int rc = kvc_txn_begin(store, KVC_TXN_WRITE, &txn);
		bool any = false, full = false;

		if (rc) {
			group_fail(batch, rc, strerror(-rc));
			return;
		}
		for (struct kvc_group_req *r = batch; r && !full; r = r->next) {
			if (r->ran)
				continue;
			group_run_one(txn, r);
			any |= r->rc >= 0;
			full |= r->full;
		}
		int crc = 0;
		if (any && !full) {
			crc = kvc_txn_commit_keep(txn);
			full = crc == -ENOSPC && txn->map_full;
		} else {
			mdb_txn_abort(txn->mdb);
			txn->mdb = NULL;
		}
		for (struct kvc_group_req *r = batch; r; r = r->next) {
			if (full) {
				/* Nothing was kept: every call runs again, in
				 * the same order, so each result is of one
				 * serial history. */
				r->ran = r->full = false;
			} else if (crc && r->ran && r->rc >= 0) {
				r->rc = crc;
				snprintf(r->errmsg, sizeof(r->errmsg), "%s", txn->errmsg);
			}
		}
		kvc_txn_free(txn);
		if (!full)
			return;
		int grc = kvc_store_grow(store);
		if (grc) {
			group_fail(batch, grc, kvc_growth_errmsg(grc));
			return;
		}
	}
	group_fail(batch, -ENOSPC, kvc_growth_errmsg(-ENOSPC));
}

/*
 * Group commit: a call joins the queue; if no transaction is running, it
 * takes the whole queue and runs it (group_run), else it waits.  Calls
 * that arrive while one group commits form the next group, so under load
 * each flush serves every caller that waited for it, and a lone caller
 * waits for nobody.
 */
static int write_txn_grouped(kvc_store *store, int (*fn)(kvc_txn *txn, void *arg), void *arg,
			     char *errmsg, size_t errmsg_size)
{
	struct kvc_group_req me = { .fn = fn, .arg = arg };

	pthread_mutex_lock(&store->group_lock);
	*store->group_tail = &me;
	store->group_tail = &me.next;
	while (!me.done && store->group_busy)
		pthread_cond_wait(&store->group_done, &store->group_lock);
	if (!me.done) {
		struct kvc_group_req *batch = store->group_head;

		store->group_head = NULL;
		store->group_tail = &store->group_head;
		store->group_busy = true;
		pthread_mutex_unlock(&store->group_lock);
		group_run(store, batch);
		pthread_mutex_lock(&store->group_lock);
		for (struct kvc_group_req *r = batch, *next; r; r = next) {
			next = r->next; /* r may go once done is seen */
			r->done = true;
		}
		store->group_busy = false;
		pthread_cond_broadcast(&store->group_done);
	}
	pthread_mutex_unlock(&store->group_lock);
	if (me.rc < 0 && errmsg && errmsg_size)
		snprintf(errmsg, errmsg_size, "%s", me.errmsg);
	return me.rc;
}

int kvc_write_txn(kvc_store *store, int (*fn)(kvc_txn *txn, void *arg), void *arg,
		  char *errmsg, size_t errmsg_size)
{
	if (errmsg && errmsg_size)
		errmsg[0] = 0;
	if (store->readonly)
		return -EROFS;
	if (kvc_held_by_thread(store))
		return -EDEADLK;
	int rc = store->group ? write_txn_grouped(store, fn, arg, errmsg, errmsg_size)
			      : write_txn_alone(store, fn, arg, errmsg, errmsg_size);
	if (errmsg && errmsg_size && rc < 0 && !errmsg[0])
		snprintf(errmsg, errmsg_size, "%s", strerror(-rc));
	return rc;
}

struct one {
	const void *key;
	size_t key_len;
	const struct kvc_write *w; /* NULL: a delete */
};

static int one_fn(kvc_txn *txn, void *arg)
{
	struct one *o = arg;

	if (o->w)
		return kvc_write(txn, o->key, o->key_len, o->w);
	int rc = kvc_delete(txn, o->key, o->key_len);
	return rc == -ENOENT ? 0 : rc;
}

int kvc_write_one(kvc_store *store, const void *key, size_t key_len, const struct kvc_write *w,
		  char *errmsg, size_t errmsg_size)
{
	struct one o = {key, key_len, w};

	return kvc_write_txn(store, one_fn, &o, errmsg, errmsg_size);
}

int kvc_delete_one(kvc_store *store, const void *key, size_t key_len, char *errmsg,
		   size_t errmsg_size)
{
	struct one o = {key, key_len, NULL};

	return kvc_write_txn(store, one_fn, &o, errmsg, errmsg_size);
}
