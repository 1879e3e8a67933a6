/*
 * ops: the table of FUSE requests, and those about one name or inode:
 * init, lookup, forget, getattr, setattr, statfs, and the ones kvfs
 * refuses (symlink, link, readlink).  Changes of names are names.c's,
 * directory listings dir.c's, files file.c's, xattrs xattr.c's.  Each
 * handler decodes its arguments, makes one kvcore call (a read
 * transaction or one kvc_write_txn) and sends exactly one reply; what a
 * name means is ns.c's business and every data-model rule is kvcore's.
 */
#include "kfs.h"

#include <errno.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

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
	struct kfs_key dir;
	struct kfs_node node;
	struct fuse_entry_param e;
	kvc_txn *txn;
	int rc = kfs_name_begin(fs, parent, name, &dir, &txn, &node);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
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
	if (kfs_inode_forget(fs->inodes, ino, nlookup))
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
	struct kfs_key k;
	struct stat st;
	struct kvc_record rec;
	kvc_txn *txn;
	int rc = kfs_ino(fs, ino, &k);

	if (rc == 0 && k.kind != KFS_FILE) {
		kfs_stat_dir(fs, ino, k.key, k.len, &st);
		fuse_reply_attr(req, &st, kfs_cache_timeout(fs, NULL));
		return;
	}
	if (rc == 0 && kfs_inode_gone(fs->inodes, ino, &st)) {
		reply_gone(req, fs, ino, &st);
		return;
	}
	if (rc == 0)
		rc = kfs_record_begin(fs, k.key, k.len, &txn, &rec);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	kfs_stat_file(fs, ino, &rec, &st);
	double timeout = kfs_cache_timeout(fs, &rec);

	kvc_txn_abort(txn);
	fuse_reply_attr(req, &st, timeout);
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
		size_t n;

		if (a->size > KVC_VALUE_MAX)
			return -EFBIG;
		/* A copy: the value is in pages this write may reuse. */
		value = calloc(1, a->size ? a->size : 1);
		if (!value)
			return -ENOMEM;
		rc = kvc_get_range(txn, a->key, a->key_len, 0, value, a->size, &n, NULL);
		if (rc < 0) {
			free(value);
			return rc;
		}
		w.set |= KVC_SET_VALUE;
		w.value = value;
		w.value_len = a->size;
	}
	rc = kfs_write_versions(txn, a->key, a->key_len, &w, &a->from_seq, &a->to_seq);
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
	struct kfs_key k;
	int rc = kfs_ino(fs, ino, &k);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (k.kind != KFS_FILE) {
		setattr_dir(req, fs, ino, k.key, k.len, attr, to_set);
		return;
	}
	struct stat gone;

	if (kfs_inode_gone(fs->inodes, ino, &gone)) {
		setattr_gone(req, fs, ino, &gone, attr, to_set, fi);
		return;
	}

	struct setattr_arg a = { .key = k.key, .key_len = k.len };

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
	.mkdir = kfs_op_mkdir,
	.unlink = kfs_op_unlink,
	.rmdir = kfs_op_rmdir,
	.symlink = op_symlink,
	.rename = kfs_op_rename,
	.link = op_link,
	.open = kfs_op_open,
	.read = kfs_op_read,
	.write = kfs_op_write,
	.flush = kfs_op_flush,
	.release = kfs_op_release,
	.fsync = kfs_op_fsync,
	.opendir = kfs_op_opendir,
	.readdir = kfs_op_readdir,
	.readdirplus = kfs_op_readdirplus,
	.releasedir = kfs_op_releasedir,
	.fsyncdir = kfs_op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = kfs_op_setxattr,
	.getxattr = kfs_op_getxattr,
	.listxattr = kfs_op_listxattr,
	.removexattr = kfs_op_removexattr,
	.create = kfs_op_create,
};
