/*
 * file: open files: open, create, read, flush, fsync and release.  The
 * handles of an inode open for writing share one pending value (wbuf.c),
 * which flush (every close), fsync and release commit; this file decides
 * how each handle reads and how the kernel caches it.
 *
 * Handles open for writing read and write through the kernel's page cache
 * (so mmap works on them, shared and writable too), unless a read-only
 * page-cache handle of the inode is open (its pages hold a committed
 * version): then they use direct I/O, and so do writers opened after them
 * until the last one closes.  (The kernel asks for security.capability
 * before each write through the page cache, a round trip direct I/O does
 * not cost; write-only handles could take direct I/O, but a reader-writer
 * opened beside one could then not be mapped.)
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
 *    tells), so a value being rewritten is read with direct I/O (a
 *    writer's O_TRUNC open sets the kernel's size to 0 whatever the
 *    other opens of the inode read);
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
#include "wbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

/* Values up to this size may be read through the page cache. */
#define KFS_CACHED_MAX (128u * 1024u)

/* How long a read-only open waits for a truncation to be published. */
#define KFS_TRUNC_WAIT_MS 100

struct kfs_file {
	struct kfs_link link;     /* on fs->files; first, see file_at */
	pthread_mutex_t lock;     /* protects every field but link */
	uint64_t ino;
	int flags;                /* open(2) flags */
	bool writable;
	bool cached;              /* read through the page cache */
	bool direct_reader;       /* counted by kfs_inode_direct_reader */
	/* write side */
	struct kfs_wbuf *wb;      /* the inode's pending value */
	bool joined;              /* counted in wb->handles */
	unsigned flushes;         /* flush requests seen */
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
	free(f->snap);
	free(f);
}

static struct kfs_file *file_at(struct kfs_link *l)
{
	return (struct kfs_file *)l;
}

/* Decide how the kernel caches this open of @f (see the top of this
 * file); a page-cached read-only handle keeps its version of @rec. */
static int set_caching(struct kfs *fs, struct kfs_file *f, struct fuse_file_info *fi,
		       const struct kvc_record *rec)
{
	bool keep;

	if (f->writable) {
		/* Counted before the value is read (see kfs_op_open). */
		fi->direct_io = !f->cached;
		return 0;
	}
	if (fs->cfg.direct_io || rec->value_len > KFS_CACHED_MAX || !rec->value ||
	    rec->seq > atomic_load(&fs->settled_seq) ||
	    !kfs_inode_cache_open(fs->inodes, f->ino, rec->seq, &keep)) {
		fi->direct_io = 1;
		f->direct_reader = true;
		kfs_inode_direct_reader(fs->inodes, f->ino, true);
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
		kfs_inode_writer_close(fs->inodes, f->ino, f->cached);
	else if (f->cached)
		kfs_inode_cache_close(fs->inodes, f->ino);
	else if (f->direct_reader)
		kfs_inode_direct_reader(fs->inodes, f->ino, false);
	if (f->wb && f->joined) {
		/* An open that did not reach the kernel. */
		pthread_mutex_lock(&f->wb->lock);
		f->wb->handles--;
		f->wb->unflushed--;
		pthread_cond_broadcast(&f->wb->changed);
		pthread_mutex_unlock(&f->wb->lock);
	}
	if (f->wb)
		kfs_wbuf_put(fs, f->ino, f->wb);
	file_free(f);
}

/* Count @f as a writer of its inode, choosing its caching. */
static void writer_open(struct kfs *fs, struct kfs_file *f)
{
	f->cached = kfs_inode_writer_open(fs->inodes, f->ino, !fs->cfg.direct_io);
}

/* Make @f, an open of @rec (the record of @key read in @txn, without its
 * value), ready: its caching, and for a writer the pending value. */
static int file_setup(struct kfs *fs, struct kfs_file *f, struct fuse_file_info *fi,
		      kvc_txn *txn, const unsigned char *key, size_t key_len,
		      const struct kvc_record *rec)
{
	int rc = set_caching(fs, f, fi, rec);

	if (rc == 0 && f->writable)
		rc = kfs_wbuf_open(fs, f->ino, f->flags & O_TRUNC, txn, key, key_len, rec, &f->wb);
	return rc;
}

/* Count @f among the writers of its pending value and apply its O_TRUNC.
 * Called with no transaction open: a commit holds the value's lock
 * across a write transaction, so taking it inside one inverts the order. */
static void writer_join(struct kfs *fs, struct kfs_file *f, bool created)
{
	kfs_wbuf_join(fs, f->wb, f->flags & O_TRUNC, created);
	f->joined = true;
}

/*
 * A truncation with nothing written is committed when the last writable
 * handle is released, which the kernel sends after close(2) has returned
 * (an earlier commit would show readers of "cmd > f" an empty value
 * before cmd writes).  A read-only open in that window, after every
 * writer flushed, waits a little for the release or for the data, so a
 * program that empties a file by open(O_TRUNC) and close and then reads
 * it sees it empty.
 */
static void wait_truncation(struct kfs *fs, uint64_t ino)
{
	struct kfs_wbuf *wb = kfs_wbuf_get(fs, ino);
	struct timespec until;

	if (!wb)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += KFS_TRUNC_WAIT_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&wb->lock);
	while (wb->dirty && !wb->wrote && wb->unflushed == 0 && wb->handles > 0 &&
	       pthread_cond_timedwait(&wb->changed, &wb->lock, &until) == 0)
		;
	pthread_mutex_unlock(&wb->lock);
	kfs_wbuf_put(fs, ino, wb);
}

void kfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key k;
	struct kvc_record rec;
	kvc_txn *txn;
	struct kfs_file *f = NULL;
	int rc = kfs_ino(fs, ino, &k);

	if (rc == 0 && k.kind != KFS_FILE)
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
	/* Counted before the value is read: from here on, read-only opens
	 * of the inode do not use the page cache. */
	if (f->writable)
		writer_open(fs, f);
	else
		wait_truncation(fs, ino);
	/* The value is read later, and only if needed: a large one may come
	 * from the vcache, or be read in pieces. */
	rc = kfs_record_begin(fs, k.key, k.len, &txn, &rec);
	if (rc == 0) {
		rc = file_setup(fs, f, fi, txn, k.key, k.len, &rec);
		kvc_txn_abort(txn);
	}
	if (rc == 0 && f->writable)
		writer_join(fs, f, false);
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

/*
 * Make the key of file @name in directory @parent, empty, unless it
 * exists (then -EEXIST if @excl): the key exists from create on, so ls
 * shows it at once.  The owner is stored only when it is not the mount's
 * default.  @return 0 (*ret_created says whether this call made it) or
 * -errno
 */
static int make_key(fuse_req_t req, struct kfs *fs, fuse_ino_t parent, const char *name,
		    mode_t mode, bool excl, unsigned char *key, size_t *ret_len,
		    bool *ret_created)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct kfs_key dir;
	size_t key_len = 0;
	bool alias = false;
	kvc_txn *txn;
	int rc = kfs_new_begin(fs, parent, &dir, &txn);

	if (rc < 0)
		return rc;
	rc = kfs_new_name(fs, txn, dir.key, dir.len, name, key, &key_len, &alias);
	kvc_txn_abort(txn);
	if (rc == 0 && alias)
		rc = -EISDIR; /* a name ending with the separator is a directory */
	if (rc < 0)
		return rc;

	struct create_arg a = {
		.key = key,
		.key_len = key_len,
		.excl = excl,
	};

	a.w.set = KVC_CREATE | KVC_SET_MODE;
	a.w.mode = mode & 07777;
	if (ctx->uid != fs->cfg.uid || ctx->gid != fs->cfg.gid) {
		a.w.set |= KVC_SET_OWNER;
		a.w.uid = ctx->uid;
		a.w.gid = ctx->gid;
	}
	rc = kvc_write_txn(fs->store, create_fn, &a, NULL, 0);
	if (rc < 0)
		return rc;
	kfs_key_written(fs, key, key_len);
	if (a.created)
		kfs_dir_touch(fs, parent, dir.key, dir.len);
	*ret_len = key_len;
	*ret_created = a.created;
	return 0;
}

/* The entry of @key, just made: a read transaction, left open in
 * *@ret_txn for the caller to end, the key's record (without its value)
 * and the kernel's entry, which holds a lookup reference.
 * @return 0, or -errno with no transaction open */
static int made_entry(struct kfs *fs, const unsigned char *key, size_t key_len,
		      kvc_txn **ret_txn, struct kvc_record *rec, struct fuse_entry_param *e)
{
	kvc_txn *txn;
	int rc = kfs_record_begin(fs, key, key_len, &txn, rec);

	if (rc < 0)
		return rc;
	rc = kfs_entry(fs, KFS_FILE, key, key_len, rec, e);
	if (rc < 0) {
		kvc_txn_abort(txn);
		return rc;
	}
	*ret_txn = txn;
	return 0;
}

/* mknod of a regular file (tar --xattrs makes files so, to set their
 * attributes before writing): create without open.  Anything else is a
 * device node, a FIFO or a socket, which a key cannot hold. */
void kfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct kfs *fs = kfs_from(req);
	unsigned char key[KFS_KEYBUF];
	size_t key_len;
	bool created;
	struct fuse_entry_param e;
	struct kvc_record rec;
	kvc_txn *txn;
	int rc = S_ISREG(mode) ? 0 : -EPERM;

	(void)rdev;
	if (rc == 0)
		rc = make_key(req, fs, parent, name, mode, true, key, &key_len, &created);
	if (rc == 0)
		rc = made_entry(fs, key, key_len, &txn, &rec, &e);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	kvc_txn_abort(txn);
	if (fuse_reply_entry(req, &e) != 0)
		kfs_inode_forget(fs->inodes, e.ino, 1);
}

void kfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		   struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	unsigned char key[KFS_KEYBUF];
	size_t key_len = 0;
	bool created = false;
	struct fuse_entry_param e;
	struct kvc_record rec;
	kvc_txn *txn;
	struct kfs_file *f = NULL;
	int rc = make_key(req, fs, parent, name, mode, fi->flags & O_EXCL, key, &key_len, &created);

	if (rc == 0)
		rc = made_entry(fs, key, key_len, &txn, &rec, &e);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	f = file_new(e.ino, fi->flags);
	if (!f)
		rc = -ENOMEM;
	else if (f->writable)
		writer_open(fs, f);
	if (rc == 0)
		rc = file_setup(fs, f, fi, txn, key, key_len, &rec);
	kvc_txn_abort(txn);
	if (rc == 0 && f->writable)
		writer_join(fs, f, created);
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
	struct kfs_key k;
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
	int rc = kfs_ino(fs, f->ino, &k);

	/* Without the value: a small one comes anyway, a large one is read
	 * once into the snapshot below. */
	if (rc == 0)
		rc = kfs_record_begin(fs, k.key, k.len, &txn, &rec);
	if (rc == -ENOENT) {
		/* Deleted since open: nothing left to read. */
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (!rec.value || (!f->have_version && !(off == 0 && size >= rec.value_len))) {
		/* Several reads will be needed: keep this version. */
		size_t n = rec.value_len;

		f->snap = malloc(rec.value_len ? rec.value_len : 1);
		rc = f->snap ? 0 : -ENOMEM;
		if (rc == 0 && rec.value)
			memcpy(f->snap, rec.value, rec.value_len);
		else if (rc == 0)
			rc = kvc_get_range(txn, k.key, k.len, 0, f->snap, rec.value_len, &n, NULL);
		if (rc == 0 && n != rec.value_len)
			rc = -EIO; /* cannot be: one transaction */
		if (rc < 0) {
			free(f->snap);
			f->snap = NULL;
			kvc_txn_abort(txn);
			fuse_reply_err(req, -rc);
			return;
		}
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

	if (f->wb) {
		/* See your own writes, and the other writers'. */
		pthread_mutex_lock(&f->wb->lock);
		reply_slice(req, f->wb->buf, f->wb->len, size, off);
		pthread_mutex_unlock(&f->wb->lock);
		return;
	}
	pthread_mutex_lock(&f->lock);
	read_committed(req, fs, f, size, off);
	pthread_mutex_unlock(&f->lock);
}

void kfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	struct kfs_file *f = file_of(fi);
	int rc;

	if (!f->wb) {
		fuse_reply_err(req, EBADF);
		return;
	}
	rc = kfs_wbuf_write(req, kfs_from(req), f->wb, data, size, off,
			    (f->flags & O_APPEND) && !fi->writepage, !fi->writepage);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

int kfs_file_truncate(struct kfs *fs, struct fuse_file_info *fi, uint64_t size)
{
	struct kfs_file *f = file_of(fi);
	int rc;

	if (!f->wb)
		return -EBADF;
	pthread_mutex_lock(&f->wb->lock);
	rc = kfs_wbuf_resize(fs, f->wb, size);
	pthread_mutex_unlock(&f->wb->lock);
	return rc;
}

/*
 * flush comes with every close(2) of a descriptor of the open file.  The
 * shell's "cmd > f" opens f, dup2s it to 1 and closes the original before
 * anything is written: committing the O_TRUNC truncation then would show
 * readers an empty value until the data comes.  So a flush commits what
 * was written since the last commit, and a truncation alone only from the
 * second flush of the truncating handle on (": > f" closes twice) or at
 * the release of the last writable handle.  The release of another one
 * (a previous "cmd > f" whose release the kernel sends late) must not
 * commit the truncation of the next.
 */
void kfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);
	int rc = 0;

	if (!f->wb) {
		fuse_reply_err(req, 0);
		return;
	}
	pthread_mutex_lock(&f->wb->lock);
	if (f->wb->wrote || f->wb->attr_set || (f->flushes > 0 && (f->flags & O_TRUNC)))
		rc = kfs_wbuf_commit(fs, f->wb);
	if (f->flushes++ == 0)
		f->wb->unflushed--;
	pthread_cond_broadcast(&f->wb->changed);
	pthread_mutex_unlock(&f->wb->lock);
	fuse_reply_err(req, -rc);
}

void kfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);
	int rc = 0;

	if (f->wb) {
		pthread_mutex_lock(&f->wb->lock);
		rc = kfs_wbuf_commit(fs, f->wb);
		pthread_mutex_unlock(&f->wb->lock);
	}
	/* With sync=batch or none a commit is not yet wholly on disk. */
	if (rc == 0 && fs->cfg.sync != KVC_SYNC_ALWAYS)
		rc = kvc_store_sync(fs->store);
	fuse_reply_err(req, -rc);
}

void kfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);

	if (f->wb) {
		pthread_mutex_lock(&f->wb->lock);
		int rc = 0;

		if (f->wb->wrote || f->wb->attr_set || f->wb->handles == 1)
			rc = kfs_wbuf_commit(fs, f->wb);
		f->wb->handles--;
		if (f->flushes == 0)
			f->wb->unflushed--;
		f->joined = false;
		pthread_cond_broadcast(&f->wb->changed);
		if (rc < 0)
			kfs_log(fs, LOG_ERR, "lost a write at close of inode %llu: %s",
				(unsigned long long)f->ino, strerror(-rc));
		pthread_mutex_unlock(&f->wb->lock);
	}
	/* The kernel may release a handle as soon as it has the reply of its
	 * last read, while the reading thread still returns from sending it
	 * (and a sanitizer looks at the buffer it sent): wait for it. */
	pthread_mutex_lock(&f->lock);
	pthread_mutex_unlock(&f->lock);
	file_close(fs, f);
	fuse_reply_err(req, 0);
}

void kfs_files_flush_all(struct kfs *fs)
{
	pthread_mutex_lock(&fs->files_lock);
	for (struct kfs_link *l = fs->files; l; l = l->next) {
		struct kfs_file *f = file_at(l);

		if (!f->wb)
			continue;
		pthread_mutex_lock(&f->wb->lock);
		int rc = kfs_wbuf_commit(fs, f->wb);

		if (rc < 0)
			kfs_log(fs, LOG_ERR, "lost a write at unmount of inode %llu: %s",
				(unsigned long long)f->ino, strerror(-rc));
		pthread_mutex_unlock(&f->wb->lock);
	}
	pthread_mutex_unlock(&fs->files_lock);
}

void kfs_files_release_all(struct kfs *fs)
{
	pthread_mutex_lock(&fs->files_lock);
	while (fs->files) {
		struct kfs_file *f = file_at(fs->files);

		fs->files = f->link.next;
		if (f->wb)
			kfs_wbuf_put(fs, f->ino, f->wb);
		file_free(f);
	}
	pthread_mutex_unlock(&fs->files_lock);
}

void kfs_files_keep(struct kfs *fs, uint64_t ino, const struct kvc_record *rec)
{
	pthread_mutex_lock(&fs->files_lock);
	for (struct kfs_link *l = fs->files; l; l = l->next) {
		struct kfs_file *f = file_at(l);

		if (f->ino != ino || f->writable)
			continue;
		pthread_mutex_lock(&f->lock);
		if (!f->snap) {
			f->snap = malloc(rec->value_len ? rec->value_len : 1);
			if (f->snap) {
				memcpy(f->snap, rec->value, rec->value_len);
				f->have_version = true;
				f->seq = rec->seq;
				f->vlen = rec->value_len;
			}
		}
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_unlock(&fs->files_lock);
}
