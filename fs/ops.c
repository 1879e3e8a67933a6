/*
 * ops: the FUSE requests about names and attributes: lookup, forget,
 * getattr, setattr, mkdir, rmdir, unlink, rename, readdir(plus), statfs,
 * and the ones kvfs refuses (symlink, link; mknod is file.c's).  Each handler
 * decodes its arguments, makes one kvcore call (a read transaction or one
 * kvc_write_txn) and sends exactly one reply; what a name means is ns.c's
 * business and every data-model rule is kvcore's.
 */
#include "kfs.h"

#include <errno.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

/* Copy a directory inode's prefix; -ENOTDIR for a file. */
static int dir_of(struct kfs *fs, fuse_ino_t ino, unsigned char *dir, size_t *ret_len)
{
	enum kfs_kind kind;
	int rc = kfs_ino(fs, ino, &kind, dir, ret_len);

	if (rc < 0)
		return rc;
	return kind == KFS_FILE ? -ENOTDIR : 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with open, so a truncating open is one commit. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Write-back caching would let the kernel hold writes past close;
	 * commits must happen at close/fsync. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void op_destroy(void *userdata)
{
	kfs_files_flush_all(userdata);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kfs *fs = kfs_from(req);
	unsigned char dir[KFS_KEYBUF];
	size_t dir_len;
	struct kfs_node node;
	struct fuse_entry_param e;
	kvc_txn *txn;
	int rc = dir_of(fs, parent, dir, &dir_len);

	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kfs_resolve(fs, txn, dir, dir_len, name, &node);
	if (rc == 0)
		rc = kfs_entry(fs, node.kind, node.key, node.key_len, &node.rec, &e);
	kvc_txn_abort(txn);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

/* The kernel forgets @ino @nlookup times; a value kept for the next
 * writer of a freed inode goes with it. */
static void forget_one(struct kfs *fs, uint64_t ino, uint64_t nlookup)
{
	enum kfs_kind kind;
	unsigned char key[KFS_KEYBUF];
	size_t len;

	kfs_inode_forget(fs->inodes, ino, nlookup);
	if (kfs_inode_get(fs->inodes, ino, &kind, key, &len) == -ESTALE)
		kfs_vcache_drop(fs->vcache, ino);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(kfs_from(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct kfs *fs = kfs_from(req);

	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Reply with the attributes @st of @ino, a file whose key is gone (open
 * but unlinked or replaced): nlink 0, and the pending size if any. */
static void reply_gone(fuse_req_t req, struct kfs *fs, fuse_ino_t ino, struct stat *st)
{
	struct kfs_pending p;

	if (kfs_inode_pending(fs->inodes, ino, &p)) {
		st->st_size = (off_t)p.len;
		st->st_blocks = (blkcnt_t)((p.len + 511) / 512);
		st->st_mtim.tv_sec = p.mtime_ns / 1000000000;
		st->st_mtim.tv_nsec = p.mtime_ns % 1000000000;
		kfs_pending_apply(&p, st);
	}
	fuse_reply_attr(req, st, 0);
}

/* setattr of a file whose key is gone: only the inode changes. */
static void setattr_gone(fuse_req_t req, struct kfs *fs, fuse_ino_t ino, struct stat *st,
			 const struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	int rc = 0;

	if (to_set & FUSE_SET_ATTR_SIZE)
		rc = fi && fi->fh ? kfs_file_truncate(fs, fi, (uint64_t)attr->st_size) : -ENOENT;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		st->st_mode = (st->st_mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		st->st_uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		st->st_gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &st->st_mtim);
	else if (to_set & FUSE_SET_ATTR_MTIME)
		st->st_mtim = attr->st_mtim;
	clock_gettime(CLOCK_REALTIME, &st->st_ctim);
	kfs_inode_set_gone_attr(fs->inodes, ino, st);
	reply_gone(req, fs, ino, st);
}

/* Reply with the attributes of @ino. */
static void reply_attr(fuse_req_t req, struct kfs *fs, fuse_ino_t ino)
{
	unsigned char key[KFS_KEYBUF];
	size_t len;
	enum kfs_kind kind;
	struct stat st;
	struct kvc_record rec;
	kvc_txn *txn;
	int rc = kfs_ino(fs, ino, &kind, key, &len);

	if (rc == 0 && kind != KFS_FILE) {
		kfs_stat_dir(fs, ino, key, len, &st);
		fuse_reply_attr(req, &st, kfs_cache_timeout(fs, NULL));
		return;
	}
	if (rc == 0 && kfs_inode_gone(fs->inodes, ino, &st)) {
		reply_gone(req, fs, ino, &st);
		return;
	}
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kvc_get(txn, key, len, KVC_GET_NO_VALUE, &rec);
	if (rc == 0) {
		kfs_stat_file(fs, ino, &rec, &st);
		double timeout = kfs_cache_timeout(fs, &rec);

		kvc_txn_abort(txn);
		fuse_reply_attr(req, &st, timeout);
		return;
	}
	kvc_txn_abort(txn);
	fuse_reply_err(req, -rc);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	reply_attr(req, kfs_from(req), ino);
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

struct setattr_arg {
	const unsigned char *key;
	size_t key_len;
	struct kvc_write w;
	bool truncate;
	uint64_t size;
	uint64_t from_seq, to_seq; /* out: the record's versions before and after */
};

/* One write: attributes, and for truncate(2) by path a resized value. */
static int setattr_fn(kvc_txn *txn, void *arg)
{
	struct setattr_arg *a = arg;
	struct kvc_write w = a->w;
	unsigned char *value = NULL;
	int rc;

	if (a->truncate) {
		struct kvc_record rec;

		if (a->size > KVC_VALUE_MAX)
			return -EFBIG;
		rc = kvc_get(txn, a->key, a->key_len, 0, &rec);
		if (rc < 0)
			return rc;
		/* A copy: the value is in pages this write may reuse. */
		value = calloc(1, a->size ? a->size : 1);
		if (!value)
			return -ENOMEM;
		memcpy(value, rec.value, rec.value_len < a->size ? rec.value_len : a->size);
		w.set |= KVC_SET_VALUE;
		w.value = value;
		w.value_len = a->size;
	}
	struct kvc_record rec;

	rc = kvc_get(txn, a->key, a->key_len, KVC_GET_NO_VALUE, &rec);
	if (rc == 0) {
		a->from_seq = rec.seq;
		rc = kvc_write(txn, a->key, a->key_len, &w);
	}
	if (rc == 0)
		rc = kvc_get(txn, a->key, a->key_len, KVC_GET_NO_VALUE, &rec);
	if (rc == 0)
		a->to_seq = rec.seq;
	free(value);
	return rc;
}

static void setattr_dir(fuse_req_t req, struct kfs *fs, fuse_ino_t ino, const unsigned char *p,
			size_t len, const struct stat *attr, int to_set)
{
	struct kfs_dir_attr a;
	struct stat st;

	if (to_set & FUSE_SET_ATTR_SIZE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	kfs_stat_dir(fs, ino, p, len, &st);
	a.mode = st.st_mode & 07777;
	a.uid = st.st_uid;
	a.gid = st.st_gid;
	a.mtime_ns = ts_ns(&st.st_mtim);
	a.ctime_ns = kvc_now_ns();
	if (to_set & FUSE_SET_ATTR_MODE)
		a.mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		a.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		a.gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		a.mtime_ns = kvc_now_ns();
	else if (to_set & FUSE_SET_ATTR_MTIME)
		a.mtime_ns = ts_ns(&attr->st_mtim);
	int rc = kfs_dirset_set_attr(fs->dirs, p, len, &a);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	kfs_stat_dir(fs, ino, p, len, &st);
	fuse_reply_attr(req, &st, kfs_cache_timeout(fs, NULL));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	unsigned char key[KFS_KEYBUF];
	size_t len;
	enum kfs_kind kind;
	int rc = kfs_ino(fs, ino, &kind, key, &len);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (kind != KFS_FILE) {
		setattr_dir(req, fs, ino, key, len, attr, to_set);
		return;
	}
	struct stat gone;

	if (kfs_inode_gone(fs->inodes, ino, &gone)) {
		setattr_gone(req, fs, ino, &gone, attr, to_set, fi);
		return;
	}

	struct setattr_arg a = { .key = key, .key_len = len };

	a.w.set = KVC_MUST_EXIST;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		/* ftruncate resizes the writers' shared buffer, which commits
		 * at close; truncate(2) by name of a file being written
		 * truncates that buffer and commits it. */
		if (attr->st_size < 0)
			rc = -EINVAL;
		else if (fi && fi->fh)
			rc = kfs_file_truncate(fs, fi, (uint64_t)attr->st_size);
		else
			rc = kfs_file_truncate_pending(fs, ino, (uint64_t)attr->st_size);
		if (rc == 0 && !(fi && fi->fh))
			a.truncate = true, a.size = (uint64_t)attr->st_size;
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		a.w.set |= KVC_SET_MODE;
		a.w.mode = attr->st_mode & 07777;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		a.w.set |= KVC_SET_OWNER;
		a.w.uid = (to_set & FUSE_SET_ATTR_UID) ? (uint32_t)attr->st_uid : UINT32_MAX;
		a.w.gid = (to_set & FUSE_SET_ATTR_GID) ? (uint32_t)attr->st_gid : UINT32_MAX;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		a.w.set |= KVC_SET_MTIME;
		a.w.mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? kvc_now_ns()
								 : ts_ns(&attr->st_mtim);
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		kfs_file_mode_changed(fs, ino);
	/* A file being written (cp -a and tar set attributes on the file they
	 * have open): the change joins the commit at its close. */
	bool joined = a.w.set != KVC_MUST_EXIST && !a.truncate &&
		      kfs_file_defer_attrs(fs, ino, &a.w);

	/* A pending value committed later must keep this mtime. */
	if (!joined && (a.w.set & KVC_SET_MTIME))
		kfs_file_set_mtime(fs, ino, a.w.mtime_ns);
	/* atime is not stored: a key has no access time. */
	if (!joined && (a.w.set != KVC_MUST_EXIST || a.truncate)) {
		rc = kvc_write_txn(fs->store, setattr_fn, &a, NULL, 0);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		/* A value kept for the next writer is still this one. */
		if (!a.truncate)
			kfs_vcache_rebase(fs->vcache, ino, a.from_seq, a.to_seq);
	}
	reply_attr(req, fs, ino);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct kfs *fs = kfs_from(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	unsigned char dir[KFS_KEYBUF];
	size_t dir_len;
	bool alias = false;
	kvc_txn *txn;
	int rc = dir_of(fs, parent, dir, &dir_len);

	if (rc == 0 && fs->cfg.ro)
		rc = -EROFS;
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	unsigned char p[KFS_KEYBUF];
	size_t len = 0;
	struct kvc_record rec;

	rc = kfs_new_name(fs, txn, dir, dir_len, name, p, &len, &alias);
	if (rc == 0) {
		/* The plain name of a key that exists is that file. */
		if (!alias && kvc_get(txn, p, len, KVC_GET_NO_VALUE, &rec) == 0)
			rc = -EEXIST;
		p[len++] = (unsigned char)fs->cfg.sep;
	}
	/* The prefix is itself a well-formed key when keys can live under it. */
	if (rc == 0)
		rc = kvc_key_check(p, len);
	if (rc == 0 && kfs_dir_exists(fs, txn, p, len))
		rc = -EEXIST;
	kvc_txn_abort(txn);

	struct kfs_dir_attr a = {
		.mode = mode & 07777,
		.uid = ctx->uid,
		.gid = ctx->gid,
		.mtime_ns = kvc_now_ns(),
	};
	struct fuse_entry_param e;

	a.ctime_ns = a.mtime_ns;
	if (rc == 0)
		rc = kfs_dirset_mkdir(fs->dirs, p, len, &a, alias);
	if (rc == 0)
		rc = kfs_entry(fs, alias ? KFS_ALIAS : KFS_DIR, p, len, NULL, &e);
	if (rc == 0)
		kfs_dir_touch(fs, parent, dir, dir_len);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

/*
 * A directory emptied through the mount (rm, mv of its last key) stays, as
 * an empty directory in memory, until rmdir: so rm -r, rsync --delete and
 * everything else that removes the contents and then the directory works.
 */
static void keep_dir(struct kfs *fs, const unsigned char *dir, size_t dir_len)
{
	struct kfs_dir_attr a;
	struct stat st;
	kvc_txn *txn;
	bool empty;

	if (dir_len == fs->root_len)
		return;
	/* The watcher may be about to report a key written here before the
	 * removal: decide on what the store holds, one decision at a time. */
	pthread_mutex_lock(&fs->keep_lock);
	if (kvc_txn_begin(fs->store, KVC_TXN_READ, &txn) < 0) {
		pthread_mutex_unlock(&fs->keep_lock);
		return;
	}
	empty = !kfs_dir_has_keys(txn, dir, dir_len);
	kvc_txn_abort(txn);
	if (empty) {
		kfs_stat_dir(fs, 0, dir, dir_len, &st);
		a.mode = st.st_mode & 07777;
		a.uid = st.st_uid;
		a.gid = st.st_gid;
		a.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		a.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
		kfs_dirset_mkdir(fs->dirs, dir, dir_len, &a, false); /* -EEXIST: already kept */
	}
	pthread_mutex_unlock(&fs->keep_lock);
}

static int delete_fn(kvc_txn *txn, void *arg)
{
	const struct kfs_node *n = arg;

	return kvc_delete(txn, n->key, n->key_len);
}

/* A value about to go, kept for the read-only handles still reading it. */
struct kept {
	uint64_t ino;              /* the kernel's inode of it; 0: none */
	struct kvc_record rec;     /* rec.value points into copy */
	void *copy;
};

/*
 * Before key @key (with record @rec, valid in the caller's transaction)
 * goes: what the kernel's inode of it (if any) keeps.  @ret_st gets the
 * attributes fstat will show, @ret_kept a copy of the value if a handle
 * may need one, which keep_for_readers gives them once the transaction
 * has ended (a handle's lock is never taken inside one: a reader holds it
 * across its own transaction).  @return whether the kernel holds the inode
 */
static bool before_gone(struct kfs *fs, kvc_txn *txn, const unsigned char *key, size_t len,
			const struct kvc_record *rec, struct stat *ret_st, struct kept *ret_kept)
{
	struct kvc_record whole;

	uint64_t ino = kfs_inode_find(fs->inodes, KFS_FILE, key, len);

	memset(ret_kept, 0, sizeof(*ret_kept));
	if (!ino)
		return false;
	kfs_stat_file(fs, ino, rec, ret_st);
	/* Page-cache handles hold their version already. */
	if (!kfs_inode_has_direct_reader(fs->inodes, ino))
		return true;
	if (!rec->value) {
		/* Looked up without its value (a large one is read whole). */
		if (kvc_get(txn, key, len, 0, &whole) < 0)
			return true;
		rec = &whole;
	}
	ret_kept->copy = malloc(rec->value_len ? rec->value_len : 1);
	if (ret_kept->copy) {
		memcpy(ret_kept->copy, rec->value, rec->value_len);
		ret_kept->ino = ino;
		ret_kept->rec = *rec;
		ret_kept->rec.value = ret_kept->copy;
	}
	return true;
}

/* Give the handles of before_gone's inode their copy, then free it. */
static void keep_for_readers(struct kfs *fs, struct kept *k)
{
	if (k->ino)
		kfs_files_keep(fs, k->ino, &k->rec);
	free(k->copy);
	k->copy = NULL;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kfs *fs = kfs_from(req);
	unsigned char dir[KFS_KEYBUF];
	size_t dir_len;
	struct kfs_node node;
	struct stat st;
	struct kept kept = {0};
	bool held = false;
	kvc_txn *txn;
	int rc = dir_of(fs, parent, dir, &dir_len);

	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kfs_resolve(fs, txn, dir, dir_len, name, &node);
	if (rc == 0 && node.kind != KFS_FILE)
		rc = -EISDIR;
	if (rc == 0)
		held = before_gone(fs, txn, node.key, node.key_len, &node.rec, &st, &kept);
	kvc_txn_abort(txn);
	keep_for_readers(fs, &kept);
	if (rc == 0) {
		pthread_rwlock_wrlock(&fs->ns_lock);
		rc = kvc_write_txn(fs->store, delete_fn, &node, NULL, 0);
		if (rc == 0)
			kfs_inode_unlinked(fs->inodes, node.key, node.key_len, held ? &st : NULL);
		pthread_rwlock_unlock(&fs->ns_lock);
	}
	if (rc == 0) {
		keep_dir(fs, dir, dir_len);
		kfs_dir_touch(fs, parent, dir, dir_len);
	}
	fuse_reply_err(req, -rc);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kfs *fs = kfs_from(req);
	unsigned char dir[KFS_KEYBUF];
	size_t dir_len;
	struct kfs_node node;
	kvc_txn *txn;
	int rc = dir_of(fs, parent, dir, &dir_len);

	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kfs_resolve(fs, txn, dir, dir_len, name, &node);
	if (rc == 0 && node.kind == KFS_FILE)
		rc = -ENOTDIR;
	if (rc == 0 && kfs_dir_has_keys(txn, node.key, node.key_len))
		rc = -ENOTEMPTY;
	kvc_txn_abort(txn);
	if (rc == 0 && kfs_dirset_has_children(fs->dirs, node.key, node.key_len))
		rc = -ENOTEMPTY;
	if (rc == 0)
		rc = kfs_dirset_rmdir(fs->dirs, node.key, node.key_len);
	if (rc == 0) {
		keep_dir(fs, dir, dir_len);
		kfs_dir_touch(fs, parent, dir, dir_len);
	}
	fuse_reply_err(req, -rc);
}

struct rename_arg {
	const unsigned char *from, *to;
	size_t from_len, to_len;
	bool noreplace;
	const unsigned char *to_file; /* for a directory: the key its plain name
					 would be a file of, or NULL */
	size_t to_file_len;
	uint64_t from_seq, to_seq; /* out (files): the versions before and after */
};

static int rename_file_fn(kvc_txn *txn, void *arg)
{
	struct rename_arg *a = arg;
	struct kvc_record rec;
	int rc = kvc_get(txn, a->from, a->from_len, KVC_GET_NO_VALUE, &rec);

	if (rc == 0) {
		a->from_seq = rec.seq;
		rc = kvc_rename(txn, a->from, a->from_len, a->to, a->to_len, a->noreplace);
	}
	if (rc == 0 && kvc_get(txn, a->to, a->to_len, KVC_GET_NO_VALUE, &rec) == 0)
		a->to_seq = rec.seq;
	return rc;
}

/*
 * Rename every key under prefix a->from to prefix a->to, in the one write
 * transaction kvc_write_txn gives: readers see the whole directory move or
 * none of it.  A directory that has no keys (made by mkdir) moves in the
 * daemon's memory alone.
 */
static int rename_dir_fn(kvc_txn *txn, void *arg)
{
	const struct rename_arg *a = arg;
	struct kvc_record rec;

	if (kfs_dir_has_keys(txn, a->to, a->to_len))
		return a->noreplace ? -EEXIST : -ENOTEMPTY;
	if (a->to_file && kvc_get(txn, a->to_file, a->to_file_len, KVC_GET_NO_VALUE, &rec) == 0)
		return -ENOTDIR; /* the plain name is taken by a file */
	int rc = kvc_rename_prefix(txn, a->from, a->from_len, a->to, a->to_len, NULL);

	return rc == -ENOENT ? 0 : rc;
}

/* A rename took an entry out of one directory and put one in another. */
static void renamed_in(struct kfs *fs, fuse_ino_t parent, const unsigned char *dir,
		       size_t dir_len, fuse_ino_t newparent, const unsigned char *ndir,
		       size_t ndir_len)
{
	kfs_dir_touch(fs, parent, dir, dir_len);
	if (newparent != parent)
		kfs_dir_touch(fs, newparent, ndir, ndir_len);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct kfs *fs = kfs_from(req);
	unsigned char dir[KFS_KEYBUF], ndir[KFS_KEYBUF], to[KFS_KEYBUF], to_file[KFS_KEYBUF];
	size_t dir_len, ndir_len, to_len;
	struct kfs_node node;
	struct stat replaced;
	bool to_alias = false, to_held = false;
	struct kept kept = {0};
	kvc_txn *txn;
	int rc = 0;

	/* Exchanging two keys and whiteouts have no meaning here. */
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		rc = -EINVAL;
	if (rc == 0)
		rc = dir_of(fs, parent, dir, &dir_len);
	if (rc == 0)
		rc = dir_of(fs, newparent, ndir, &ndir_len);
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kfs_resolve(fs, txn, dir, dir_len, name, &node);
	if (rc == 0)
		rc = kfs_new_name(fs, txn, ndir, ndir_len, newname, to, &to_len, &to_alias);
	if (rc == 0 && node.kind == KFS_FILE && !to_alias) {
		struct kvc_record trec;

		if (kvc_get(txn, to, to_len, KVC_GET_NO_VALUE, &trec) == 0)
			to_held = before_gone(fs, txn, to, to_len, &trec, &replaced, &kept);
	}
	kvc_txn_abort(txn);
	keep_for_readers(fs, &kept);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}

	struct rename_arg a = {
		.from = node.key,
		.from_len = node.key_len,
		.to = to,
		.noreplace = flags & RENAME_NOREPLACE,
	};

	if (node.kind == KFS_FILE) {
		if (to_alias) {
			fuse_reply_err(req, EISDIR); /* that name is always a directory */
			return;
		}
		a.to_len = to_len;
		pthread_rwlock_wrlock(&fs->ns_lock);
		uint64_t moved = kfs_inode_find(fs->inodes, KFS_FILE, node.key, node.key_len);

		rc = kvc_write_txn(fs->store, rename_file_fn, &a, NULL, 0);
		if (rc == 0)
			kfs_inode_rename_file(fs->inodes, node.key, node.key_len, to, to_len,
					      to_held ? &replaced : NULL);
		pthread_rwlock_unlock(&fs->ns_lock);
		if (rc == 0 && moved) /* its kept value is still this one */
			kfs_vcache_rebase(fs->vcache, moved, a.from_seq, a.to_seq);
		if (rc == 0) {
			kfs_key_written(fs, to, to_len);
			keep_dir(fs, dir, dir_len);
			renamed_in(fs, parent, dir, dir_len, newparent, ndir, ndir_len);
		}
		fuse_reply_err(req, -rc);
		return;
	}

	if (!to_alias) {
		memcpy(to_file, to, to_len);
		a.to_file = to_file;
		a.to_file_len = to_len;
	}
	to[to_len++] = (unsigned char)fs->cfg.sep;
	a.to_len = to_len;
	if (to_len == node.key_len && memcmp(to, node.key, to_len) == 0) {
		fuse_reply_err(req, 0);
		return;
	}
	if (to_len > node.key_len && memcmp(to, node.key, node.key_len) == 0)
		rc = -EINVAL; /* into itself */
	else if (to_len > KVC_KEY_MAX)
		rc = -ENAMETOOLONG;
	else if (kfs_dirset_has_children(fs->dirs, to, to_len))
		rc = -ENOTEMPTY;
	else if (a.noreplace && kfs_dirset_exists(fs->dirs, to, to_len))
		rc = -EEXIST;
	if (rc == 0) {
		pthread_rwlock_wrlock(&fs->ns_lock);
		rc = kvc_write_txn(fs->store, rename_dir_fn, &a, NULL, 0);
		if (rc == 0)
			kfs_inode_rename_prefix(fs->inodes, node.key, node.key_len, to, to_len);
		pthread_rwlock_unlock(&fs->ns_lock);
	}
	if (rc == 0) {
		kfs_dirset_rename(fs->dirs, node.key, node.key_len, to, to_len);
		/* Its new parents hold it now (not the moved prefix itself,
		 * which may be an empty directory). */
		kfs_key_written(fs, to, to_len - 1);
		keep_dir(fs, dir, dir_len);
		renamed_in(fs, parent, dir, dir_len, newparent, ndir, ndir_len);
	}
	fuse_reply_err(req, -rc);
}

/* Refused: a key holds a value, nothing else. */
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EPERM);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	fuse_reply_err(req, EINVAL);
}

/* An open directory: where the next readdir continues. */
struct kfs_dirh {
	struct kfs_link link;          /* on fs->dirhs; first, see dirh_at */
	pthread_mutex_t lock;          /* protects the fields below */
	off_t next_off;                /* index of the next entry */
	unsigned char bound[KFS_KEYBUF]; /* position of the next child */
	size_t bound_len;
};

static struct kfs_dirh *dirh_at(struct kfs_link *l)
{
	return (struct kfs_dirh *)l;
}

static void dirh_free(struct kfs *fs, struct kfs_dirh *h)
{
	kfs_link_remove(fs, &fs->dirhs, &h->link);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void kfs_dirhs_release_all(struct kfs *fs)
{
	while (fs->dirhs)
		dirh_free(fs, dirh_at(fs->dirhs));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	unsigned char dir[KFS_KEYBUF];
	size_t dir_len;
	int rc = dir_of(fs, ino, dir, &dir_len);
	struct kfs_dirh *h = NULL;

	if (rc == 0) {
		h = calloc(1, sizeof(*h));
		if (!h)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_init(&h->lock, NULL);
	kfs_link_add(fs, &fs->dirhs, &h->link);
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		dirh_free(fs, h);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs_dirh *h = (struct kfs_dirh *)(uintptr_t)fi->fh;

	if (h)
		dirh_free(kfs_from(req), h);
	fuse_reply_err(req, 0);
}

/* fsync of a directory: what was created, removed or renamed in it is on
 * disk (every change of the mount is a commit of the one store). */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -kvc_store_sync(kfs_from(req)->store));
}

/*
 * Entries 0 and 1 are "." and "..", then the children in key order.  The
 * offset of an entry is its index + 1.  A readdir continuing where the
 * previous one stopped re-seeks after the last child sent; any other
 * offset (rewinddir, seekdir) restarts and skips.
 */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_dirh *h = (struct kfs_dirh *)(uintptr_t)fi->fh;
	unsigned char dir[KFS_KEYBUF];
	size_t dir_len;
	struct kfs_child *c = NULL;
	char *buf = NULL;
	kvc_txn *txn = NULL;
	size_t used = 0;
	int rc = dir_of(fs, ino, dir, &dir_len);

	if (rc == 0) {
		buf = malloc(size ? size : 1);
		c = malloc(sizeof(*c));
		if (!buf || !c)
			rc = -ENOMEM;
	}
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0)
		goto out;

	pthread_mutex_lock(&h->lock);
	if (off == 0 || off != h->next_off) {
		h->next_off = 0;
		memcpy(h->bound, dir, dir_len);
		h->bound_len = dir_len;
	}
	while (rc == 0) {
		struct fuse_entry_param e;
		const char *name;
		bool skip = h->next_off < off;
		bool counted = false;
		size_t n;

		memset(&e, 0, sizeof(e));
		if (h->next_off < 2) {
			name = h->next_off == 0 ? "." : "..";
			e.attr.st_ino = kfs_st_ino_dir(h->next_off == 0 ? ino : KFS_ROOT_INO);
			e.attr.st_mode = S_IFDIR;
		} else {
			rc = kfs_next_child(fs, txn, dir, dir_len, h->bound, h->bound_len, c);
			if (rc < 0)
				break;
			name = c->name;
			if (skip) {
				/* nothing to send */
			} else if (plus) {
				rc = kfs_entry(fs, c->kind, c->key, c->key_len, &c->rec, &e);
				if (rc < 0)
					break;
				counted = true;
			} else {
				if (c->kind == KFS_FILE)
					e.attr.st_ino = kfs_st_ino_file(
						kfs_inode_find(fs->inodes, c->kind, c->key, c->key_len),
						c->rec.ino);
				else
					e.attr.st_ino = kfs_st_ino_dir(kfs_inode_dir_number(
						fs->inodes, c->kind, c->key, c->key_len));
				e.attr.st_mode = c->kind == KFS_FILE ? S_IFREG : S_IFDIR;
			}
		}
		if (!skip) {
			if (plus)
				n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
							   h->next_off + 1);
			else
				n = fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
						      h->next_off + 1);
			if (n > size - used) {
				if (counted)
					kfs_inode_forget(fs->inodes, e.ino, 1);
				break;
			}
			used += n;
		}
		if (h->next_off >= 2) {
			memcpy(h->bound, c->next, c->next_len);
			h->bound_len = c->next_len;
		}
		h->next_off++;
	}
	pthread_mutex_unlock(&h->lock);
	if (rc == -ENOENT)
		rc = 0;
out:
	/* Entries already counted must reach the kernel: send what fits. */
	if (rc < 0 && used == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, used);
	kvc_txn_abort(txn);
	free(buf);
	free(c);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

/*
 * The store grows into the free space of the filesystem under it, so that
 * is what df shows.  The number of keys is not shown: counting them costs
 * a scan of the store.
 */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct kfs *fs = kfs_from(req);
	struct statvfs under, st;
	struct kvc_usage use;
	int rc = kvc_usage(fs->store, &use);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (statvfs(kvc_store_path(fs->store), &under) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	memset(&st, 0, sizeof(st));
	double scale = (double)under.f_frsize / 4096.0;

	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = (fsblkcnt_t)((double)under.f_blocks * scale);
	st.f_bfree = (fsblkcnt_t)((double)under.f_bfree * scale);
	st.f_bavail = (fsblkcnt_t)((double)under.f_bavail * scale);
	/* Inodes are records (df -i): as many more fit as free blocks. */
	st.f_ffree = st.f_favail = st.f_bavail;
	st.f_files = use.records + st.f_ffree;
	st.f_namemax = KFS_NAME_MAX;
	fuse_reply_statfs(req, &st);
}

const struct fuse_lowlevel_ops kfs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = kfs_op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = kfs_op_open,
	.read = kfs_op_read,
	.write = kfs_op_write,
	.flush = kfs_op_flush,
	.release = kfs_op_release,
	.fsync = kfs_op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = kfs_op_setxattr,
	.getxattr = kfs_op_getxattr,
	.listxattr = kfs_op_listxattr,
	.removexattr = kfs_op_removexattr,
	.create = kfs_op_create,
};
