/*
 * dir: open directories and their listings (opendir, readdir,
 * readdirplus, releasedir, fsyncdir).  A listing walks the keys under the
 * directory's prefix and the dirset's empty directories together, in key
 * order (ns.c's kfs_next_child), resuming after the position of the last
 * name it gave, so names added or removed meanwhile do not make it repeat
 * or skip the others.
 */
#include "kfs.h"

#include <errno.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>

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

void kfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key dir;
	int rc = kfs_dir_of(fs, ino, &dir);
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

void kfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs_dirh *h = (struct kfs_dirh *)(uintptr_t)fi->fh;

	if (h)
		dirh_free(kfs_from(req), h);
	fuse_reply_err(req, 0);
}

/* fsync of a directory: what was created, removed or renamed in it is on
 * disk (every change of the mount is a commit of the one store). */
void kfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
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
	struct kfs_key dir;
	struct kfs_child *c = NULL;
	char *buf = NULL;
	kvc_txn *txn = NULL;
	size_t used = 0;
	int rc = kfs_dir_of(fs, ino, &dir);

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
		memcpy(h->bound, dir.key, dir.len);
		h->bound_len = dir.len;
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
			rc = kfs_next_child(fs, txn, dir.key, dir.len, h->bound, h->bound_len, c);
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

void kfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

void kfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}
