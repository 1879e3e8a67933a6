/*
 * file: open files.  A value is committed atomically, so the handles of an
 * inode open for writing share one write buffer, the inode's pending value
 * (loaded from the value at the first writable open, emptied by O_TRUNC),
 * that write, pwrite, O_APPEND and ftruncate change, and that flush (every
 * close), fsync and release commit with one kvc_write: a reader of the
 * store sees the old value or the new one, never a mix.  Within the mount
 * the writers see each other's writes at once, as on any local
 * filesystem, and every attribute reply for the inode gives the pending
 * size (fstat, SEEK_END and O_APPEND agree with what was written).
 *
 * A commit is conditional on the inode number the value had when the
 * buffer was loaded (KVC_IF_INO): if the key was removed or replaced
 * meanwhile, the commit stores nothing, as writes to an unlinked file go
 * nowhere.  fs->ns_lock makes the commit and a rename in this mount one
 * decision each: the commit reads the key of its inode and writes under
 * it while no rename or unlink runs, so data follows a file that mv moved.
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

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

/* Values up to this size may be read through the page cache. */
#define KFS_CACHED_MAX (128u * 1024u)

/* The pending value of an inode, shared by its writable handles; owned
 * by them (the last to release frees it), found through the inode table. */
struct kfs_wbuf {
	pthread_mutex_t lock;     /* protects every field */
	uint64_t ino;             /* the inode (node id) */
	uint64_t store_ino;       /* the record's inode number at load */
	unsigned char *buf;
	size_t len, cap;
	bool dirty;               /* buf is not what the store holds */
	/* The stored version buf was loaded from or last committed as (0:
	 * unknown), and the bytes changed since: [dirty_lo, dirty_hi), and
	 * past the shorter of the two lengths.  A commit tells kvcore, which
	 * then rewrites only the pieces of a large value in that range. */
	uint64_t base_seq;
	size_t dirty_lo, dirty_hi;
	bool wrote;               /* write or ftruncate since the last commit */
	bool failed;              /* a write hit the size limit: never commit */
	int64_t mtime_ns;         /* last write, or a time set by utimens */
	bool privs_checked;       /* no set-ID bit to clear since the last
				     chmod or chown */
	/* Set on the file while it was being written, stored by the next
	 * commit: which of KVC_SET_MODE, _OWNER, _MTIME, _METADATA. */
	unsigned attr_set;
	uint32_t mode, uid, gid;  /* uid, gid UINT32_MAX: unchanged */
	char *metadata;           /* NULL: none (with KVC_SET_METADATA) */
	size_t metadata_len;
	int64_t ctime_ns;         /* of the last such change */
	unsigned handles;         /* writable handles sharing it */
	unsigned unflushed;       /* of them, those never flushed */
	pthread_cond_t changed;   /* signalled by writes, commits, releases */
};

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
static struct kfs_wbuf *wbuf_get(struct kfs *fs, uint64_t ino)
{
	return kfs_inode_wbuf_attach(fs->inodes, ino, NULL);
}

/* Drop a reference taken on @wb, the pending value of @ino.  The last
 * one offers a buffer that holds a stored version to the vcache. */
static void wbuf_put(struct kfs *fs, uint64_t ino, struct kfs_wbuf *wb)
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

static struct kfs_file *file_at(struct kfs_link *l)
{
	return (struct kfs_file *)l;
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
static int wbuf_resize(struct kfs *fs, struct kfs_wbuf *wb, uint64_t size)
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
	struct kvc_record whole;
	size_t len, cap;
	void *kept = kfs_vcache_take(fs->vcache, &v, &len, &cap);

	if (kept && len == rec->value_len) {
		wb->buf = kept;
		wb->len = len;
		wb->cap = cap;
		return 0;
	}
	free(kept);
	if (!rec->value && rec->value_len) {
		int rc = kvc_get(txn, key, key_len, 0, &whole);

		if (rc < 0)
			return rc;
		if (whole.seq != rec->seq || whole.value_len != rec->value_len)
			return -EIO; /* cannot be: one transaction */
		rec = &whole;
	}
	int rc = reserve(wb, rec->value_len);

	if (rc == 0 && rec->value_len) {
		memcpy(wb->buf, rec->value, rec->value_len);
		wb->len = rec->value_len;
	}
	return rc;
}

/*
 * Set up @f for writing: share the inode's pending value, or make it from
 * @rec, the record of @key as the open read it in @txn (perhaps without
 * its value).  O_TRUNC empties it (dirty: the close must store the empty
 * value, unless this very call created the key empty).
 */
static int prepare_writer(struct kfs *fs, struct kfs_file *f, kvc_txn *txn,
			  const unsigned char *key, size_t key_len, const struct kvc_record *rec)
{
	struct kfs_wbuf *wb = wbuf_get(fs, f->ino);
	int rc = 0;

	if (!wb) {
		struct kfs_wbuf *fresh = calloc(1, sizeof(*fresh));

		if (!fresh)
			return -ENOMEM;
		pthread_mutex_init(&fresh->lock, NULL);
		pthread_cond_init(&fresh->changed, NULL);
		fresh->ino = f->ino;
		fresh->store_ino = rec->ino;
		fresh->mtime_ns = rec->mtime_ns;
		fresh->base_seq = rec->seq;
		if (!(f->flags & O_TRUNC))
			rc = wbuf_load(fs, fresh, txn, key, key_len, rec);
		if (rc < 0) {
			wbuf_free(fresh);
			return rc;
		}
		wb = kfs_inode_wbuf_attach(fs->inodes, f->ino, fresh);
		if (wb != fresh)
			wbuf_free(fresh); /* another writer made it first */
		if (!wb)
			return -ESTALE;
	}
	f->wb = wb;
	return 0;
}

/* Count @f among the writers of its pending value and apply its O_TRUNC.
 * Called with no transaction open: a commit holds the value's lock
 * across a write transaction, so taking it inside one inverts the order. */
static void join_writer(struct kfs *fs, struct kfs_file *f, bool created)
{
	struct kfs_wbuf *wb = f->wb;

	pthread_mutex_lock(&wb->lock);
	wb->handles++;
	wb->unflushed++;
	f->joined = true;
	if ((f->flags & O_TRUNC) && (wb->len || !created)) {
		wbuf_changed(wb, 0, wb->len);
		wb->len = 0;
		wb->dirty = true;
		wb->failed = false;
		wb->mtime_ns = kvc_now_ns();
	}
	wbuf_publish(fs, wb);
	pthread_mutex_unlock(&wb->lock);
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
		wbuf_put(fs, f->ino, f->wb);
	file_free(f);
}

/* Count @f as a writer of its inode, choosing its caching. */
static void writer_open(struct kfs *fs, struct kfs_file *f)
{
	f->cached = kfs_inode_writer_open(fs->inodes, f->ino, !fs->cfg.direct_io);
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
	struct kfs_wbuf *wb = wbuf_get(fs, ino);
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
	wbuf_put(fs, ino, wb);
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
	/* Counted before the value is read: from here on, read-only opens
	 * of the inode do not use the page cache. */
	if (f->writable)
		writer_open(fs, f);
	else
		wait_truncation(fs, ino);
	rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc == 0) {
		/* The value is read later, and only if needed: a large one
		 * may come from the vcache, or be read in pieces. */
		rc = kvc_get(txn, key, len, KVC_GET_NO_VALUE, &rec);
		if (rc == 0)
			rc = set_caching(fs, f, fi, &rec);
		if (rc == 0 && f->writable)
			rc = prepare_writer(fs, f, txn, key, len, &rec);
		kvc_txn_abort(txn);
	}
	if (rc == 0 && f->writable)
		join_writer(fs, f, false);
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
	unsigned char dir[KFS_KEYBUF];
	size_t dir_len, key_len = 0;
	enum kfs_kind kind;
	bool alias = false;
	kvc_txn *txn;
	int rc = kfs_ino(fs, parent, &kind, dir, &dir_len);

	if (rc == 0 && kind == KFS_FILE)
		rc = -ENOTDIR;
	if (rc == 0 && fs->cfg.ro)
		rc = -EROFS;
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0)
		return rc;
	rc = kfs_new_name(fs, txn, dir, dir_len, name, key, &key_len, &alias);
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
		kfs_dir_touch(fs, parent, dir, dir_len);
	*ret_len = key_len;
	*ret_created = a.created;
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
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kvc_get(txn, key, key_len, KVC_GET_NO_VALUE, &rec);
	if (rc == 0)
		rc = kfs_entry(fs, KFS_FILE, key, key_len, &rec, &e);
	kvc_txn_abort(txn);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (fuse_reply_entry(req, &e) != 0)
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

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kvc_get(txn, key, key_len, KVC_GET_NO_VALUE, &rec);
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
		writer_open(fs, f);
	if (rc == 0)
		rc = set_caching(fs, f, fi, &rec);
	if (rc == 0 && f->writable)
		rc = prepare_writer(fs, f, txn, key, key_len, &rec);
	kvc_txn_abort(txn);
	if (rc == 0 && f->writable)
		join_writer(fs, f, created);
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
	unsigned char key[KFS_KEYBUF];
	size_t len;
	enum kfs_kind kind;

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
	struct mode_arg a = { .key = key, .store_ino = wb->store_ino };
	int rc = kfs_ino(fs, wb->ino, &kind, key, &len);

	if (rc == 0 && wb->store_ino) {
		a.key_len = len;
		rc = kvc_write_txn(fs->store, clear_privs_fn, &a, NULL, 0);
	}
	pthread_rwlock_unlock(&fs->ns_lock);
	if (rc < 0)
		wb->privs_checked = false; /* try again at the next write */
	else if (a.changed)
		attrs_changed(fs, wb->ino);
}

void kfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_file *f = file_of(fi);
	struct kfs_wbuf *wb = f->wb;
	int rc = 0;

	if (!wb) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	pthread_mutex_lock(&wb->lock);
	/* The kernel's idea of the end is ours (every attribute reply gives
	 * the pending size), but another writer may have moved it since. */
	if (f->flags & O_APPEND && !fi->writepage)
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
		if (!fi->writepage)
			clear_privs(req, fs, wb);
	}
	pthread_mutex_unlock(&wb->lock);
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
	rc = wbuf_resize(fs, f->wb, size);
	pthread_mutex_unlock(&f->wb->lock);
	return rc;
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
static int commit(struct kfs *fs, struct kfs_wbuf *wb)
{
	unsigned char key[KFS_KEYBUF];
	size_t len;
	enum kfs_kind kind;
	struct commit_arg a = { .key = key };
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
	rc = kfs_ino(fs, wb->ino, &kind, key, &len);
	if (rc == 0) {
		a.key_len = len;
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
	kfs_key_written(fs, key, len);
	attrs_changed(fs, wb->ino); /* the size was right; the ctime is not */
	return 0;
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
		rc = commit(fs, f->wb);
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
		rc = commit(fs, f->wb);
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
			rc = commit(fs, f->wb);
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
		int rc = commit(fs, f->wb);

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
			wbuf_put(fs, f->ino, f->wb);
		file_free(f);
	}
	pthread_mutex_unlock(&fs->files_lock);
}

int kfs_file_set_mtime(struct kfs *fs, uint64_t ino, int64_t mtime_ns)
{
	struct kfs_wbuf *wb = wbuf_get(fs, ino);

	if (!wb)
		return 0;
	pthread_mutex_lock(&wb->lock);
	wb->mtime_ns = mtime_ns;
	wbuf_publish(fs, wb);
	pthread_mutex_unlock(&wb->lock);
	wbuf_put(fs, ino, wb);
	return 1;
}

void kfs_file_mode_changed(struct kfs *fs, uint64_t ino)
{
	struct kfs_wbuf *wb = wbuf_get(fs, ino);

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	wb->privs_checked = false;
	pthread_mutex_unlock(&wb->lock);
	wbuf_put(fs, ino, wb);
}

/* The pending value of @ino, locked, if a writable handle of it has not
 * been closed yet: a change made now is stored by the commit at that
 * close.  NULL otherwise. */
static struct kfs_wbuf *being_written(struct kfs *fs, uint64_t ino)
{
	struct kfs_wbuf *wb = wbuf_get(fs, ino);

	if (!wb)
		return NULL;
	pthread_mutex_lock(&wb->lock);
	if (wb->unflushed > 0)
		return wb;
	pthread_mutex_unlock(&wb->lock);
	wbuf_put(fs, ino, wb);
	return NULL;
}

static void done_writing(struct kfs *fs, uint64_t ino, struct kfs_wbuf *wb)
{
	pthread_mutex_unlock(&wb->lock);
	wbuf_put(fs, ino, wb);
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
	struct kfs_wbuf *wb = wbuf_get(fs, ino);
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
	wbuf_put(fs, ino, wb);
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
	int rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);

	if (rc == 0) {
		rc = kvc_get(txn, key, key_len, KVC_GET_NO_VALUE, &rec);
		if (rc == 0 && (wb->attr_set & KVC_SET_METADATA)) {
			rec.metadata = wb->metadata;
			rec.metadata_len = wb->metadata_len;
		}
		if (rc == 0)
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
	struct kfs_wbuf *wb = wbuf_get(fs, ino);
	int rc;

	if (!wb)
		return 0;
	pthread_mutex_lock(&wb->lock);
	rc = wbuf_resize(fs, wb, size);
	/* truncate(2) by name takes effect at once, as a commit. */
	if (rc == 0)
		rc = commit(fs, wb);
	pthread_mutex_unlock(&wb->lock);
	wbuf_put(fs, ino, wb);
	return rc < 0 ? rc : 1;
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
