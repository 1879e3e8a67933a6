/*
 * wbuf: the pending value of a file open for writing.  A value is
 * committed atomically, so the handles of an inode open for writing share
 * one write buffer, the inode's pending value (loaded from the value at
 * the first writable open, or taken from the vcache, emptied by O_TRUNC),
 * that write, pwrite, O_APPEND and ftruncate change, and that flush (every
 * close), fsync and release commit with one kvc_write: a reader of the
 * store sees the old value or the new one, never a mix.  Within the mount
 * the writers see each other's writes at once, as on any local
 * filesystem, and every attribute reply for the inode gives the pending
 * size (fstat, SEEK_END and O_APPEND agree with what was written).
 * Attributes and metadata set on the file meanwhile join that commit.
 *
 * A commit is conditional on the inode number the value had when the
 * buffer was loaded (KVC_IF_INO): if the key was removed or replaced
 * meanwhile, the commit stores nothing, as writes to an unlinked file go
 * nowhere.  fs->ns_lock makes the commit and a rename in this mount one
 * decision each: the commit reads the key of its inode and writes under
 * it while no rename or unlink runs, so data follows a file that mv moved.
 */
#include "kfs.h"
#include "wbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

static void wbuf_free(struct kfs_wbuf *wb)
{
	if (!wb)
		return;
	pthread_cond_destroy(&wb->changed);
	pthread_mutex_destroy(&wb->lock);
	free(wb->buf);
	free(wb->metadata);
	free(wb);
}

/* The pending value of @ino with a reference taken, or NULL. */
struct kfs_wbuf *kfs_wbuf_get(struct kfs *fs, uint64_t ino)
{
	return kfs_inode_wbuf_attach(fs->inodes, ino, NULL);
}

/* Drop a reference taken on @wb, the pending value of @ino.  The last
 * one offers a buffer that holds a stored version to the vcache. */
void kfs_wbuf_put(struct kfs *fs, uint64_t ino, struct kfs_wbuf *wb)
{
	if (!kfs_inode_wbuf_detach(fs->inodes, ino))
		return;
	enum kfs_kind kind;
	unsigned char key[KFS_KEYBUF];
	size_t len;

	/* Not for an inode the kernel has forgotten: none will open it. */
	if (!wb->dirty && !wb->failed && !wb->attr_set && wb->base_seq && wb->buf &&
	    kfs_inode_get(fs->inodes, ino, &kind, key, &len) == 0) {
		struct kfs_vversion v = { .ino = ino, .seq = wb->base_seq,
					  .store_ino = wb->store_ino };

		kfs_vcache_keep(fs->vcache, &v, wb->buf, wb->len, wb->cap);
		wb->buf = NULL;
	}
	wbuf_free(wb);
}

/* Make room for @need bytes; the buffer never grows past the value limit. */
static int reserve(struct kfs_wbuf *f, size_t need)
{
	if (need <= f->cap)
		return 0;
	if (need > KVC_VALUE_MAX)
		return -EFBIG;
	size_t cap = f->cap ? f->cap : 4096;

	while (cap < need)
		cap *= 2;
	if (cap > KVC_VALUE_MAX)
		cap = KVC_VALUE_MAX;
	unsigned char *b = realloc(f->buf, cap);

	if (!b)
		return -ENOMEM;
	f->buf = b;
	f->cap = cap;
	return 0;
}

/* Note that bytes [@lo, @hi) of @wb (locked) changed. */
static void wbuf_changed(struct kfs_wbuf *wb, size_t lo, size_t hi)
{
	if (wb->dirty_lo >= wb->dirty_hi) {
		wb->dirty_lo = lo;
		wb->dirty_hi = hi;
		return;
	}
	if (lo < wb->dirty_lo)
		wb->dirty_lo = lo;
	if (hi > wb->dirty_hi)
		wb->dirty_hi = hi;
}

/* Tell attribute replies what the pending value of @wb (locked) is. */
static void wbuf_publish(struct kfs *fs, struct kfs_wbuf *wb)
{
	struct kfs_pending p = {
		.len = wb->len,
		.mtime_ns = wb->mtime_ns,
		.ctime_ns = wb->attr_set ? wb->ctime_ns : 0,
		.has_mode = wb->attr_set & KVC_SET_MODE,
		.has_owner = wb->attr_set & KVC_SET_OWNER,
		.mode = wb->mode,
		.uid = wb->uid,
		.gid = wb->gid,
	};

	kfs_inode_set_pending(fs->inodes, wb->ino, &p);
}

/* The changes that joined the commit are stored, or will never be. */
static void wbuf_attrs_done(struct kfs_wbuf *wb)
{
	wb->attr_set = 0;
	free(wb->metadata);
	wb->metadata = NULL;
	wb->metadata_len = 0;
}

/* Truncate @wb (locked) to @size bytes. */
int kfs_wbuf_resize(struct kfs *fs, struct kfs_wbuf *wb, uint64_t size)
{
	int rc = size > KVC_VALUE_MAX ? -EFBIG : reserve(wb, (size_t)size);

	if (rc < 0)
		return rc;
	if (size > wb->len)
		memset(wb->buf + wb->len, 0, (size_t)size - wb->len);
	if (size != wb->len)
		wbuf_changed(wb, size < wb->len ? (size_t)size : wb->len,
			     size < wb->len ? wb->len : (size_t)size);
	wb->len = (size_t)size;
	wb->dirty = wb->wrote = true;
	wb->failed = false; /* cut back under the limit: a value again */
	wb->mtime_ns = kvc_now_ns();
	wbuf_publish(fs, wb);
	return 0;
}

/*
 * Load the value of @rec (key @key, read in @txn, perhaps without its
 * value) into @wb: the copy the last writer of this very version left in
 * the vcache, or the stored bytes.
 */
static int wbuf_load(struct kfs *fs, struct kfs_wbuf *wb, kvc_txn *txn, const unsigned char *key,
		     size_t key_len, const struct kvc_record *rec)
{
	struct kfs_vversion v = { .ino = wb->ino, .seq = rec->seq, .store_ino = rec->ino };
	size_t len, cap;
	void *kept = kfs_vcache_take(fs->vcache, &v, &len, &cap);

	if (kept && len == rec->value_len) {
		wb->buf = kept;
		wb->len = len;
		wb->cap = cap;
		return 0;
	}
	free(kept);
	int rc = reserve(wb, rec->value_len);

	if (rc < 0 || !rec->value_len)
		return rc;
	if (rec->value) {
		memcpy(wb->buf, rec->value, rec->value_len);
	} else {
		/* Read straight into the buffer (a large value). */
		rc = kvc_get_range(txn, key, key_len, 0, wb->buf, rec->value_len, &len, NULL);
		if (rc == 0 && len != rec->value_len)
			rc = -EIO; /* cannot be: one transaction */
		if (rc < 0)
			return rc;
	}
	wb->len = rec->value_len;
	return 0;
}

int kfs_wbuf_open(struct kfs *fs, uint64_t ino, bool truncating, kvc_txn *txn,
		  const unsigned char *key, size_t key_len, const struct kvc_record *rec,
		  struct kfs_wbuf **ret)
{
	struct kfs_wbuf *wb = kfs_wbuf_get(fs, ino);
	int rc = 0;

	if (!wb) {
		struct kfs_wbuf *fresh = calloc(1, sizeof(*fresh));

		if (!fresh)
			return -ENOMEM;
		pthread_mutex_init(&fresh->lock, NULL);
		pthread_cond_init(&fresh->changed, NULL);
		fresh->ino = ino;
		fresh->store_ino = rec->ino;
		fresh->mtime_ns = rec->mtime_ns;
		fresh->base_seq = rec->seq;
		if (!truncating)
			rc = wbuf_load(fs, fresh, txn, key, key_len, rec);
		if (rc < 0) {
			wbuf_free(fresh);
			return rc;
		}
		wb = kfs_inode_wbuf_attach(fs->inodes, ino, fresh);
		if (wb != fresh)
			wbuf_free(fresh); /* another writer made it first */
		if (!wb)
			return -ESTALE;
	}
	*ret = wb;
	return 0;
}

void kfs_wbuf_join(struct kfs *fs, struct kfs_wbuf *wb, bool truncating, bool created)
{
	pthread_mutex_lock(&wb->lock);
	wb->handles++;
	wb->unflushed++;
	if (truncating && (wb->len || !created)) {
		wbuf_changed(wb, 0, wb->len);
		wb->len = 0;
		wb->dirty = true;
		wb->failed = false;
		wb->mtime_ns = kvc_now_ns();
	}
	wbuf_publish(fs, wb);
	pthread_mutex_unlock(&wb->lock);
}

/* The kernel's attributes of @ino are out of date: ask it to drop them,
 * so the next stat shows the committed size and ctime at once.  Only the
 * attributes: dropping pages would wait on page locks a reader holds. */
static void attrs_changed(struct kfs *fs, uint64_t ino)
{
	kfs_inode_attr_sent(fs->inodes, ino, 0);
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

struct mode_arg {
	const unsigned char *key;
	size_t key_len;
	uint64_t store_ino;
	bool changed;
};

/* @mode after a write by anyone but root: without set-user-ID, and
 * without set-group-ID when the group may execute (as the kernel does). */
static uint32_t mode_after_write(uint32_t mode)
{
	if (mode & S_IXGRP)
		return mode & ~(uint32_t)(S_ISUID | S_ISGID);
	return mode & ~(uint32_t)S_ISUID;
}

static int clear_privs_fn(kvc_txn *txn, void *arg)
{
	struct mode_arg *a = arg;
	struct kvc_record rec;
	int rc = kvc_get(txn, a->key, a->key_len, KVC_GET_NO_VALUE, &rec);

	a->changed = false;
	if (rc < 0 || rec.ino != a->store_ino)
		return rc == -ENOENT ? 0 : rc;
	uint32_t mode = mode_after_write(rec.mode);

	if (!(rec.flags & KVC_REC_HAS_MODE))
		return 0;
	if (mode == rec.mode)
		return 0;
	struct kvc_write w = {
		.set = KVC_SET_MODE | KVC_IF_INO,
		.mode = mode,
		.ino = a->store_ino,
	};
	a->changed = true;
	return kvc_write(txn, a->key, a->key_len, &w);
}

/*
 * A write by anyone but root clears set-user-ID (and set-group-ID of a
 * group-executable file), as the kernel does for local filesystems.  The
 * kernel does it itself for writes through the page cache; this covers
 * direct I/O.  Checked once per pending value until the next chmod or
 * chown, so ordinary writes cost nothing.  @wb is locked.
 */
static void clear_privs(fuse_req_t req, struct kfs *fs, struct kfs_wbuf *wb)
{
	struct kfs_key k;

	if (wb->privs_checked || fuse_req_ctx(req)->uid == 0)
		return;
	wb->privs_checked = true;
	if (wb->attr_set & KVC_SET_MODE) {
		/* A chmod waiting for the commit: clear its bits. */
		wb->mode = mode_after_write(wb->mode);
		wbuf_publish(fs, wb);
		return;
	}
	pthread_rwlock_rdlock(&fs->ns_lock);
	struct mode_arg a = { .key = k.key, .store_ino = wb->store_ino };
	int rc = kfs_ino(fs, wb->ino, &k);

	if (rc == 0 && wb->store_ino) {
		a.key_len = k.len;
		rc = kvc_write_txn(fs->store, clear_privs_fn, &a, NULL, 0);
	}
	pthread_rwlock_unlock(&fs->ns_lock);
	if (rc < 0)
		wb->privs_checked = false; /* try again at the next write */
	else if (a.changed)
		attrs_changed(fs, wb->ino);
}

struct commit_arg {
	const unsigned char *key;
	size_t key_len;
	struct kvc_write w;
	uint64_t seq; /* out: the version the commit stored */
};

static int commit_fn(kvc_txn *txn, void *arg)
{
	struct commit_arg *a = arg;
	struct kvc_record rec;
	int rc = kvc_write(txn, a->key, a->key_len, &a->w);

	if (rc == 0)
		rc = kvc_get(txn, a->key, a->key_len, KVC_GET_NO_VALUE, &rec);
	if (rc == 0)
		a->seq = rec.seq;
	return rc;
}

/*
 * Store the pending value @wb (locked) with one write, conditional on the
 * record still being the one it was loaded from.  A key removed or
 * replaced since is left alone and the value dropped, as data written to
 * an unlinked file is.  ns_lock (shared) keeps a rename or unlink in this
 * mount from running between reading the inode's key and the write.
 */
int kfs_wbuf_commit(struct kfs *fs, struct kfs_wbuf *wb)
{
	struct kfs_key k;
	struct commit_arg a = { .key = k.key };
	bool value = wb->dirty && !wb->failed;
	int rc;

	if (!value && !wb->attr_set)
		return 0;
	a.w.set = wb->store_ino ? KVC_IF_INO : KVC_MUST_EXIST;
	if (value) {
		a.w.set |= KVC_SET_VALUE | KVC_SET_MTIME;
		a.w.value = wb->buf;
		a.w.value_len = wb->len;
		if (wb->base_seq) {
			a.w.set |= KVC_VALUE_SINCE;
			a.w.base_seq = wb->base_seq;
			a.w.changed_lo = wb->dirty_lo < wb->dirty_hi ? wb->dirty_lo : 0;
			a.w.changed_hi = wb->dirty_lo < wb->dirty_hi ? wb->dirty_hi : 0;
		}
	}
	a.w.set |= wb->attr_set;
	a.w.mtime_ns = wb->mtime_ns;
	a.w.mode = wb->mode;
	a.w.uid = wb->uid;
	a.w.gid = wb->gid;
	a.w.metadata = wb->metadata;
	a.w.metadata_len = wb->metadata_len;
	a.w.ino = wb->store_ino;
	pthread_rwlock_rdlock(&fs->ns_lock);
	rc = kfs_ino(fs, wb->ino, &k);
	if (rc == 0) {
		a.key_len = k.len;
		rc = kvc_write_txn(fs->store, commit_fn, &a, NULL, 0);
	}
	pthread_rwlock_unlock(&fs->ns_lock);
	if (rc == -ESTALE || rc == -ENOENT) {
		wb->dirty = wb->wrote = false; /* removed while open */
		wb->base_seq = 0;
		wbuf_attrs_done(wb);
		wbuf_publish(fs, wb);
		return 0;
	}
	if (rc < 0)
		return rc;
	if (value)
		wb->dirty = wb->wrote = false;
	wb->base_seq = a.seq;
	wb->dirty_lo = wb->dirty_hi = 0;
	wbuf_attrs_done(wb);
	wbuf_publish(fs, wb);
	kfs_key_written(fs, k.key, k.len);
	attrs_changed(fs, wb->ino); /* the size was right; the ctime is not */
	return 0;
}

int kfs_file_set_mtime(struct kfs *fs, uint64_t ino, int64_t mtime_ns)
{
	struct kfs_wbuf *wb = kfs_wbuf_get(fs, ino);

	if (!wb)
		return 0;
	pthread_mutex_lock(&wb->lock);
	wb->mtime_ns = mtime_ns;
	wbuf_publish(fs, wb);
	pthread_mutex_unlock(&wb->lock);
	kfs_wbuf_put(fs, ino, wb);
	return 1;
}

void kfs_file_mode_changed(struct kfs *fs, uint64_t ino)
{
	struct kfs_wbuf *wb = kfs_wbuf_get(fs, ino);

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	wb->privs_checked = false;
	pthread_mutex_unlock(&wb->lock);
	kfs_wbuf_put(fs, ino, wb);
}

/* The pending value of @ino, locked, if a writable handle of it has not
 * been closed yet: a change made now is stored by the commit at that
 * close.  NULL otherwise. */
static struct kfs_wbuf *being_written(struct kfs *fs, uint64_t ino)
{
	struct kfs_wbuf *wb = kfs_wbuf_get(fs, ino);

	if (!wb)
		return NULL;
	pthread_mutex_lock(&wb->lock);
	if (wb->unflushed > 0)
		return wb;
	pthread_mutex_unlock(&wb->lock);
	kfs_wbuf_put(fs, ino, wb);
	return NULL;
}

static void done_writing(struct kfs *fs, uint64_t ino, struct kfs_wbuf *wb)
{
	pthread_mutex_unlock(&wb->lock);
	kfs_wbuf_put(fs, ino, wb);
}

int kfs_file_defer_attrs(struct kfs *fs, uint64_t ino, const struct kvc_write *w)
{
	struct kfs_wbuf *wb = being_written(fs, ino);

	if (!wb)
		return 0;
	if (!(wb->attr_set & KVC_SET_OWNER))
		wb->uid = wb->gid = UINT32_MAX;
	if (w->set & KVC_SET_MODE)
		wb->mode = w->mode;
	if ((w->set & KVC_SET_OWNER) && w->uid != UINT32_MAX)
		wb->uid = w->uid;
	if ((w->set & KVC_SET_OWNER) && w->gid != UINT32_MAX)
		wb->gid = w->gid;
	if (w->set & KVC_SET_MTIME)
		wb->mtime_ns = w->mtime_ns;
	wb->attr_set |= w->set & (KVC_SET_MODE | KVC_SET_OWNER | KVC_SET_MTIME);
	wb->ctime_ns = kvc_now_ns();
	wbuf_publish(fs, wb);
	done_writing(fs, ino, wb);
	return 1;
}

int kfs_file_pending_metadata(struct kfs *fs, uint64_t ino, char *buf, size_t *ret_len,
			      bool *ret_none)
{
	struct kfs_wbuf *wb = kfs_wbuf_get(fs, ino);
	int r = 0;

	if (!wb)
		return 0;
	pthread_mutex_lock(&wb->lock);
	if (wb->attr_set & KVC_SET_METADATA) {
		*ret_none = !wb->metadata;
		*ret_len = wb->metadata_len;
		if (wb->metadata_len)
			memcpy(buf, wb->metadata, wb->metadata_len);
		r = 1;
	}
	pthread_mutex_unlock(&wb->lock);
	kfs_wbuf_put(fs, ino, wb);
	return r;
}

int kfs_file_defer_metadata(struct kfs *fs, uint64_t ino, const unsigned char *key,
			    size_t key_len,
			    int (*edit)(const struct kvc_record *rec, char *buf, void *arg),
			    void *arg)
{
	struct kfs_wbuf *wb = being_written(fs, ino);
	struct kvc_record rec;
	kvc_txn *txn;
	char buf[KVC_METADATA_MAX + 1];

	if (!wb)
		return 0;
	/* The value's lock before a transaction, as a commit takes them. */
	int rc = kfs_record_begin(fs, key, key_len, &txn, &rec);

	if (rc == 0) {
		if (wb->attr_set & KVC_SET_METADATA) {
			rec.metadata = wb->metadata;
			rec.metadata_len = wb->metadata_len;
		}
		rc = edit(&rec, buf, arg);
		kvc_txn_abort(txn);
	}
	char *copy = NULL;

	if (rc > 0) {
		copy = malloc((size_t)rc);
		if (!copy)
			rc = -ENOMEM;
		else
			memcpy(copy, buf, (size_t)rc);
	}
	if (rc >= 0) {
		free(wb->metadata);
		wb->metadata = copy;
		wb->metadata_len = rc > 0 ? (size_t)rc : 0;
		wb->attr_set |= KVC_SET_METADATA;
		wb->ctime_ns = kvc_now_ns();
		wbuf_publish(fs, wb);
		rc = 1;
	}
	done_writing(fs, ino, wb);
	return rc;
}

int kfs_file_truncate_pending(struct kfs *fs, uint64_t ino, uint64_t size)
{
	struct kfs_wbuf *wb = kfs_wbuf_get(fs, ino);
	int rc;

	if (!wb)
		return 0;
	pthread_mutex_lock(&wb->lock);
	rc = kfs_wbuf_resize(fs, wb, size);
	/* truncate(2) by name takes effect at once, as a commit. */
	if (rc == 0)
		rc = kfs_wbuf_commit(fs, wb);
	pthread_mutex_unlock(&wb->lock);
	kfs_wbuf_put(fs, ino, wb);
	return rc < 0 ? rc : 1;
}

int kfs_wbuf_write(fuse_req_t req, struct kfs *fs, struct kfs_wbuf *wb, const char *data,
		   size_t size, off_t off, bool append, bool by_caller)
{
	int rc = 0;

	if (size == 0)
		return 0;
	pthread_mutex_lock(&wb->lock);
	/* The kernel's idea of the end is ours (every attribute reply gives
	 * the pending size), but another writer may have moved it since. */
	if (append)
		off = (off_t)wb->len;
	if (off < 0)
		rc = -EINVAL;
	else if ((uint64_t)off + size > KVC_VALUE_MAX)
		rc = -EFBIG;
	else
		rc = reserve(wb, (size_t)off + size);
	if (rc == -EFBIG)
		wb->failed = true; /* the value is over the limit: store nothing */
	if (rc == 0) {
		if ((size_t)off > wb->len)
			memset(wb->buf + wb->len, 0, (size_t)off - wb->len);
		memcpy(wb->buf + off, data, size);
		wbuf_changed(wb, (size_t)off < wb->len ? (size_t)off : wb->len, (size_t)off + size);
		if ((size_t)off + size > wb->len)
			wb->len = (size_t)off + size;
		wb->dirty = wb->wrote = true;
		wb->mtime_ns = kvc_now_ns();
		wbuf_publish(fs, wb);
		pthread_cond_broadcast(&wb->changed);
		if (by_caller)
			clear_privs(req, fs, wb);
	}
	pthread_mutex_unlock(&wb->lock);
	return rc;
}
