/*
 * names: the FUSE requests that change names: mkdir, unlink, rmdir and
 * rename.  A file is a key, a directory a prefix (or an empty directory
 * the dirset remembers), so each is one kvcore write (kvc_delete,
 * kvc_rename, kvc_rename_prefix) under fs->ns_lock, and then the inode
 * table, the dirset and the kernel's caches are told.  A file that goes
 * away while the kernel still holds it keeps its attributes for fstat, and
 * its readers keep their version.
 */
#include "kfs.h"

#include <errno.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>

void kfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct kfs *fs = kfs_from(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct kfs_key dir;
	bool alias = false;
	kvc_txn *txn;
	int rc = kfs_new_begin(fs, parent, &dir, &txn);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	unsigned char p[KFS_KEYBUF];
	size_t len = 0;
	struct kvc_record rec;

	rc = kfs_new_name(fs, txn, dir.key, dir.len, name, p, &len, &alias);
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
		kfs_dir_touch(fs, parent, dir.key, dir.len);
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
	uint64_t ino = kfs_inode_find(fs->inodes, KFS_FILE, key, len);
	size_t n = rec->value_len;

	memset(ret_kept, 0, sizeof(*ret_kept));
	if (!ino)
		return false;
	kfs_stat_file(fs, ino, rec, ret_st);
	/* Page-cache handles hold their version already. */
	if (!kfs_inode_has_direct_reader(fs->inodes, ino))
		return true;
	ret_kept->copy = malloc(rec->value_len ? rec->value_len : 1);
	if (ret_kept->copy && rec->value)
		memcpy(ret_kept->copy, rec->value, rec->value_len);
	else if (ret_kept->copy && /* looked up without its value (a large one) */
		 (kvc_get_range(txn, key, len, 0, ret_kept->copy, n, &n, NULL) < 0 ||
		  n != rec->value_len)) {
		free(ret_kept->copy);
		ret_kept->copy = NULL;
	}
	if (ret_kept->copy) {
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

void kfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key dir;
	struct kfs_node node;
	struct stat st;
	struct kept kept = {0};
	bool held = false;
	kvc_txn *txn;
	int rc = kfs_name_begin(fs, parent, name, &dir, &txn, &node);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (node.kind != KFS_FILE)
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
		keep_dir(fs, dir.key, dir.len);
		kfs_dir_touch(fs, parent, dir.key, dir.len);
	}
	fuse_reply_err(req, -rc);
}

void kfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key dir;
	struct kfs_node node;
	kvc_txn *txn;
	int rc = kfs_name_begin(fs, parent, name, &dir, &txn, &node);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (node.kind == KFS_FILE)
		rc = -ENOTDIR;
	if (rc == 0 && kfs_dir_has_keys(txn, node.key, node.key_len))
		rc = -ENOTEMPTY;
	kvc_txn_abort(txn);
	if (rc == 0 && kfs_dirset_has_children(fs->dirs, node.key, node.key_len))
		rc = -ENOTEMPTY;
	if (rc == 0)
		rc = kfs_dirset_rmdir(fs->dirs, node.key, node.key_len);
	if (rc == 0) {
		keep_dir(fs, dir.key, dir.len);
		kfs_dir_touch(fs, parent, dir.key, dir.len);
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

void kfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key from_dir, to_dir;
	unsigned char to[KFS_KEYBUF], to_file[KFS_KEYBUF];
	size_t to_len;
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
		rc = kfs_dir_of(fs, parent, &from_dir);
	if (rc == 0)
		rc = kfs_dir_of(fs, newparent, &to_dir);
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = kfs_resolve(fs, txn, from_dir.key, from_dir.len, name, &node);
	if (rc == 0)
		rc = kfs_new_name(fs, txn, to_dir.key, to_dir.len, newname, to, &to_len, &to_alias);
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
			keep_dir(fs, from_dir.key, from_dir.len);
			renamed_in(fs, parent, from_dir.key, from_dir.len, newparent, to_dir.key, to_dir.len);
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
		keep_dir(fs, from_dir.key, from_dir.len);
		renamed_in(fs, parent, from_dir.key, from_dir.len, newparent, to_dir.key, to_dir.len);
	}
	fuse_reply_err(req, -rc);
}
