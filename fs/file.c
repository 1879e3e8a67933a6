/*
 * file: open files.  A value is committed atomically, so a file open for
 * writing is a private buffer (loaded from the value unless O_TRUNC) that
 * write, pwrite, O_APPEND and ftruncate change, and that flush (every
 * close), fsync and release commit with one kvc_write: another reader sees
 * the old value or the new one, never a mix.
 *
 * Every open gives its reader one version from start to end.  Two ways:
 *
 * Page cache.  A read-only open of a settled value of up to
 * KFS_CACHED_MAX bytes reads through the kernel's page cache, kept across
 * opens while the value's version (its change sequence) is unchanged
 * (keep_cache), so a reread costs the open alone.  The kernel shares those
 * pages and its idea of the file size between all opens of the inode and
 * trusts them, so this is used only while they agree with one version:
 *  - the version was committed KFS_SETTLE_MS ago or more (the watcher
 *    tells), so a value being rewritten is read with direct I/O;
 *  - no handle that may write the inode is open in this mount (the kernel
 *    moves the size as such a handle writes);
 *  - no page-cache handle of another version is open;
 *  - the last attributes replied for the inode are of this version.
 * The handle copies its version at open, so whatever pages it fills later
 * are of the version whose size the kernel holds.  A new version makes the
 * next open drop the old pages.  What remains is a reader that opened a
 * settled value just before it changed, and fills pages after the new size
 * reached the kernel: -o direct_io rules that out too (docs/kvfs.md).
 *
 * Direct I/O, for everything else (and all opens with -o direct_io): every
 * read reaches the daemon, which ignores the kernel's size.  A value that
 * one reply covers (the kernel asks for 128 KiB or more at a time) is
 * served as it stands; a value that takes several replies is copied into
 * the handle at its first read, so a commit between two reads does not
 * show.  A handle open for writing reads its own buffer.
 *
 * Reads reply straight from the LMDB map, with no copy in the daemon, when
 * one reply covers the value.  A read transaction is begun per read:
 * kvcore keeps reset transactions in a pool, so that costs a renew, and no
 * transaction outlives a request (one kept per thread would stall the
 * store's map growth).
 */
#include "kfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* Values up to this size may be read through the page cache. */
#define KFS_CACHED_MAX (128u * 1024u)

struct kfs_file {
	struct kfs_link link;     /* on fs->files; first, see file_at */
	pthread_mutex_t lock;     /* protects every field but link */
	uint64_t ino;
	int flags;                /* open(2) flags */
	bool writable;
	bool cached;              /* read through the page cache */
	/* write side */
	unsigned char *buf;
	size_t len, cap;
	bool dirty;               /* buf is not what the store holds */
	bool wrote;               /* write or ftruncate since the last commit */
	unsigned flushes;         /* flush requests seen */
	bool failed;              /* a write hit the size limit: never commit */
	/* read side (read-only handles) */
	bool have_version;        /* a version was served: seq, vlen */
	uint64_t seq;
	size_t vlen;
	unsigned char *snap;      /* that version: page-cache handles, and direct
	                             ones whose value takes several reads */
};

static struct kfs_file *file_of(struct fuse_file_info *fi)
{
	return (struct kfs_file *)(uintptr_t)fi->fh;
}

static struct kfs_file *file_new(uint64_t ino, int flags)
{
	struct kfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	pthread_mutex_init(&f->lock, NULL);
	f->ino = ino;
	f->flags = flags;
	f->writable = (flags & O_ACCMODE) != O_RDONLY;
	return f;
}

static void file_free(struct kfs_file *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	free(f->buf);
	free(f->snap);
	free(f);
}

static struct kfs_file *file_at(struct kfs_link *l)
{
	return (struct kfs_file *)l;
}

/* Make room for @need bytes; the buffer never grows past the value limit. */
static int reserve(struct kfs_file *f, size_t need)
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

/* Set up @f for writing from @rec, the value as the open read it (valid
 * in the open's transaction): an empty buffer for O_TRUNC (dirty: the close
 * must store the empty value, unless this very call created the key
 * empty), else a copy of the value. */
static int prepare_writer(struct kfs *fs, struct kfs_file *f, const struct kvc_record *rec,
			  bool created)
{
	if (f->flags & O_TRUNC) {
		f->dirty = !created;
		if (f->dirty)
			kfs_inode_set_dirty(fs->inodes, f->ino, true);
		return 0;
	}
	int rc = reserve(f, rec->value_len);

	if (rc == 0 && rec->value_len) {
		memcpy(f->buf, rec->value, rec->value_len);
		f->len = rec->value_len;
	}
	return rc;
}

/* Decide how the kernel caches this open of @f (see the top of this
 * file); a page-cached read-only handle keeps its version of @rec. */
static int set_caching(struct kfs *fs, struct kfs_file *f, struct fuse_file_info *fi,
		       const struct kvc_record *rec)
{
	bool keep;

	if (f->writable || fs->cfg.direct_io || rec->value_len > KFS_CACHED_MAX ||
	    rec->seq > atomic_load(&fs->settled_seq) ||
	    !kfs_inode_cache_open(fs->inodes, f->ino, rec->seq, &keep)) {
		fi->direct_io = 1;
	} else {
		f->cached = true;
		f->snap = malloc(rec->value_len ? rec->value_len : 1);
		if (!f->snap)
			return -ENOMEM;
		memcpy(f->snap, rec->value, rec->value_len);
		f->have_version = true;
		f->seq = rec->seq;
		f->vlen = rec->value_len;
		fi->keep_cache = keep;
	}
	/* A read-only handle has nothing to commit: spare close a round trip. */
	if (!f->writable)
		fi->noflush = 1;
	return 0;
}

/* Forget @f, an open that did not reach the kernel or was released. */
static void file_close(struct kfs *fs, struct kfs_file *f)
{
	kfs_link_remove(fs, &fs->files, &f->link);
	if (f->writable)
		kfs_inode_writers(fs->inodes, f->ino, -1);
	if (f->cached)
		kfs_inode_cache_close(fs->inodes, f->ino);
	file_free(f);
}

void kfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	unsigned char key[KFS_KEYBUF];
	size_t len;
	enum kfs_kind kind;
	struct kvc_record rec;
	kvc_txn *txn;
	struct kfs_file *f = NULL;
	int rc = kfs_ino(fs, ino, &kind, key, &len);

	if (rc == 0 && kind != KFS_FILE)
		rc = -EISDIR;
	if (rc == 0 && fs->cfg.ro && (fi->flags & O_ACCMODE) != O_RDONLY)
		rc = -EROFS;
	if (rc == 0) {
		f = file_new(ino, fi->flags);
		if (!f)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* Counted before the value is read: from here on, opens of the
	 * inode do not use the page cache. */
	if (f->writable)
		kfs_inode_writers(fs->inodes, ino, +1);
	rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc == 0) {
		rc = kvc_get(txn, key, len, 0, &rec);
		if (rc == 0)
			rc = set_caching(fs, f, fi, &rec);
		if (rc == 0 && f->writable)
			rc = prepare_writer(fs, f, &rec, false);
		kvc_txn_abort(txn);
	}
	if (rc < 0) {
		file_close(fs, f);
		fuse_reply_err(req, -rc);
		return;
	}
	kfs_link_add(fs, &fs->files, &f->link);
	fi->fh = (uintptr_t)f;
	if (fuse_reply_open(req, fi) != 0)
		file_close(fs, f);
}

struct create_arg {
	const unsigned char *key;
	size_t key_len;
	struct kvc_write w;
	bool excl;
	bool created;
};

static int create_fn(kvc_txn *txn, void *arg)
{
	struct create_arg *a = arg;
	int rc = kvc_write(txn, a->key, a->key_len, &a->w);

	a->created = rc == 0;
	if (rc == -EEXIST && !a->excl)
		rc = 0; /* open the existing key */
	return rc;
}

void kfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		   struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	unsigned char dir[KFS_KEYBUF], key[KFS_KEYBUF];
	size_t dir_len, key_len = 0;
	enum kfs_kind kind;
	bool alias = false;
	struct fuse_entry_param e;
	struct kvc_record rec;
	kvc_txn *txn;
	struct kfs_file *f = NULL;
	int rc = kfs_ino(fs, parent, &kind, dir, &dir_len);

	if (rc == 0 && kind == KFS_FILE)
		rc = -ENOTDIR;
	if (rc == 0 && fs->cfg.ro)
		rc = -EROFS;
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kfs_new_name(fs, txn, dir, dir_len, name, key, &key_len, &alias);
	kvc_txn_abort(txn);
	if (rc == 0 && alias)
		rc = -EISDIR; /* a name ending with the separator is a directory */
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}

	/* The key exists from create on (empty), so ls shows it at once.
	 * The owner is stored only when it is not the mount's default. */
	struct create_arg a = {
		.key = key,
		.key_len = key_len,
		.excl = fi->flags & O_EXCL,
	};

	a.w.set = KVC_CREATE | KVC_SET_MODE;
	a.w.mode = mode & 07777;
	if (ctx->uid != fs->cfg.uid || ctx->gid != fs->cfg.gid) {
		a.w.set |= KVC_SET_OWNER;
		a.w.uid = ctx->uid;
		a.w.gid = ctx->gid;
	}
	rc = kvc_write_txn(fs->store, create_fn, &a, NULL, 0);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	kfs_dirset_key_written(fs->dirs, key, key_len);

	rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kvc_get(txn, key, key_len, 0, &rec);
	if (rc == 0)
		rc = kfs_entry(fs, KFS_FILE, key, key_len, &rec, &e);
	if (rc < 0) {
		kvc_txn_abort(txn);
		fuse_reply_err(req, -rc);
		return;
	}
	f = file_new(e.ino, fi->flags);
	if (!f)
		rc = -ENOMEM;
	else if (f->writable)
		kfs_inode_writers(fs->inodes, e.ino, +1);
	if (rc == 0)
		rc = set_caching(fs, f, fi, &rec);
	if (rc == 0 && f->writable)
		rc = prepare_writer(fs, f, &rec, a.created);
	kvc_txn_abort(txn);
	if (rc == 0) {
		kfs_link_add(fs, &fs->files, &f->link);
		fi->fh = (uintptr_t)f;
		if (fuse_reply_create(req, &e, fi) == 0)
			return;
	} else {
		fuse_reply_err(req, -rc);
	}
	if (f)
		file_close(fs, f);
	kfs_inode_forget(fs->inodes, e.ino, 1); /* the kernel did not get the entry */
}

/* Reply with @data[off, off + size) clipped to @len. */
static void reply_slice(fuse_req_t req, const void *data, size_t len, size_t size, off_t off)
{
	if ((uint64_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, (const char *)data + off,
			       size < len - (size_t)off ? size : len - (size_t)off);
}

static void read_committed(fuse_req_t req, struct kfs *fs, struct kfs_file *f, size_t size,
			   off_t off)
{
	unsigned char key[KFS_KEYBUF];
	size_t len;
	enum kfs_kind kind;
	struct kvc_record rec;
	kvc_txn *txn;

	if (f->snap) {
		reply_slice(req, f->snap, f->vlen, size, off);
		return;
	}
	if (f->have_version && (uint64_t)off >= f->vlen) {
		fuse_reply_buf(req, NULL, 0); /* the end of the version served */
		return;
	}
	int rc = kfs_ino(fs, f->ino, &kind, key, &len);

	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kvc_get(txn, key, len, 0, &rec);
	if (rc == -ENOENT) {
		/* Deleted since open: nothing left to read. */
		kvc_txn_abort(txn);
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (rc < 0) {
		kvc_txn_abort(txn);
		fuse_reply_err(req, -rc);
		return;
	}
	if (!f->have_version && !(off == 0 && size >= rec.value_len)) {
		/* Several reads will be needed: keep this version. */
		f->snap = malloc(rec.value_len ? rec.value_len : 1);
		if (!f->snap) {
			kvc_txn_abort(txn);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(f->snap, rec.value, rec.value_len);
		f->have_version = true;
		f->seq = rec.seq;
		f->vlen = rec.value_len;
		kvc_txn_abort(txn);
		reply_slice(req, f->snap, f->vlen, size, off);
		return;
	}
	if (!f->have_version) {
		f->have_version = true;
		f->seq = rec.seq;
		f->vlen = rec.value_len;
	}
	/* Zero copy: the reply is written straight from the map. */
	reply_slice(req, rec.value, rec.value_len, size, off);
	kvc_txn_abort(txn);
}

void kfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);

	pthread_mutex_lock(&f->lock);
	if (f->writable)
		reply_slice(req, f->buf, f->len, size, off); /* see your own writes */
	else
		read_committed(req, fs, f, size, off);
	pthread_mutex_unlock(&f->lock);
}

void kfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);
	int rc = 0;

	if (!f->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (f->flags & O_APPEND)
		off = (off_t)f->len;
	if (off < 0)
		rc = -EINVAL;
	else if ((uint64_t)off + size > KVC_VALUE_MAX)
		rc = -EFBIG;
	else
		rc = reserve(f, (size_t)off + size);
	if (rc == -EFBIG)
		f->failed = true; /* the value is over the limit: store nothing */
	if (rc == 0) {
		if ((size_t)off > f->len)
			memset(f->buf + f->len, 0, (size_t)off - f->len);
		memcpy(f->buf + off, data, size);
		if ((size_t)off + size > f->len)
			f->len = (size_t)off + size;
		f->dirty = f->wrote = true;
		kfs_inode_set_dirty(fs->inodes, f->ino, true);
	}
	pthread_mutex_unlock(&f->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

int kfs_file_truncate(struct kfs *fs, struct fuse_file_info *fi, uint64_t size)
{
	struct kfs_file *f = file_of(fi);
	int rc;

	if (!f->writable)
		return -EBADF;
	pthread_mutex_lock(&f->lock);
	rc = size > KVC_VALUE_MAX ? -EFBIG : reserve(f, (size_t)size);
	if (rc == 0) {
		if (size > f->len)
			memset(f->buf + f->len, 0, (size_t)size - f->len);
		f->len = (size_t)size;
		f->dirty = f->wrote = true;
		f->failed = false; /* cut back under the limit: a value again */
		kfs_inode_set_dirty(fs->inodes, f->ino, true);
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

struct commit_arg {
	const unsigned char *key;
	size_t key_len;
	struct kvc_write w;
};

static int commit_fn(kvc_txn *txn, void *arg)
{
	const struct commit_arg *a = arg;

	return kvc_write(txn, a->key, a->key_len, &a->w);
}

/* Store the buffer of @f (locked) as the value, in one write. */
static int commit(struct kfs *fs, struct kfs_file *f)
{
	unsigned char key[KFS_KEYBUF];
	size_t len;
	enum kfs_kind kind;
	struct commit_arg a = { .key = key };
	int rc;

	if (!f->writable || !f->dirty || f->failed)
		return 0;
	if (kfs_inode_is_unlinked(fs->inodes, f->ino)) {
		/* Removed while open: like writes to an unlinked file. */
		f->dirty = false;
		kfs_inode_set_dirty(fs->inodes, f->ino, false);
		return 0;
	}
	rc = kfs_ino(fs, f->ino, &kind, key, &len);
	if (rc < 0)
		return rc;
	a.key_len = len;
	a.w.set = KVC_SET_VALUE;
	a.w.value = f->buf;
	a.w.value_len = f->len;
	if (kfs_inode_take_pending_mtime(fs->inodes, f->ino, &a.w.mtime_ns))
		a.w.set |= KVC_SET_MTIME;
	rc = kvc_write_txn(fs->store, commit_fn, &a, NULL, 0);
	if (rc < 0) {
		if (a.w.set & KVC_SET_MTIME)
			kfs_inode_set_pending_mtime(fs->inodes, f->ino, a.w.mtime_ns);
		return rc;
	}
	f->dirty = f->wrote = false;
	kfs_inode_set_dirty(fs->inodes, f->ino, false);
	kfs_dirset_key_written(fs->dirs, key, len);
	return 0;
}

/*
 * flush comes with every close(2) of a descriptor of the open file.  The
 * shell's "cmd > f" opens f, dup2s it to 1 and closes the original before
 * anything is written: committing the O_TRUNC truncation then would show
 * readers an empty value until the data comes.  So a flush commits what
 * was written since the last commit, and a truncation alone only from the
 * second flush on (": > f" closes twice) or at release.
 */
void kfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);

	pthread_mutex_lock(&f->lock);
	bool due = f->wrote || f->flushes > 0;
	int rc = due ? commit(fs, f) : 0;

	f->flushes++;
	pthread_mutex_unlock(&f->lock);
	fuse_reply_err(req, -rc);
}

void kfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);

	pthread_mutex_lock(&f->lock);
	int rc = commit(fs, f);

	pthread_mutex_unlock(&f->lock);
	/* With sync=batch or none a commit is not yet on disk; fsync is. */
	if (rc == 0 && fs->cfg.sync != KVC_SYNC_ALWAYS)
		rc = kvc_store_sync(fs->store);
	fuse_reply_err(req, -rc);
}

void kfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);

	pthread_mutex_lock(&f->lock);
	int rc = commit(fs, f);

	if (rc < 0)
		kfs_log(fs, LOG_ERR, "lost a write at close of inode %llu: %s",
			(unsigned long long)f->ino, strerror(-rc));
	if (f->dirty || f->failed)
		kfs_inode_set_dirty(fs->inodes, f->ino, false);
	pthread_mutex_unlock(&f->lock);
	file_close(fs, f);
	fuse_reply_err(req, 0);
}

void kfs_files_flush_all(struct kfs *fs)
{
	pthread_mutex_lock(&fs->files_lock);
	for (struct kfs_link *l = fs->files; l; l = l->next) {
		struct kfs_file *f = file_at(l);

		pthread_mutex_lock(&f->lock);
		int rc = commit(fs, f);

		if (rc < 0)
			kfs_log(fs, LOG_ERR, "lost a write at unmount of inode %llu: %s",
				(unsigned long long)f->ino, strerror(-rc));
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_unlock(&fs->files_lock);
}

void kfs_files_release_all(struct kfs *fs)
{
	pthread_mutex_lock(&fs->files_lock);
	while (fs->files) {
		struct kfs_file *f = file_at(fs->files);

		fs->files = f->link.next;
		file_free(f);
	}
	pthread_mutex_unlock(&fs->files_lock);
}
