/*
 * inode: the daemon's inode table.
 *
 * The kernel names files by inode number; the store names them by key.
 * This table maps one to the other for every inode the kernel holds a
 * lookup reference on.  An inode is one of three kinds:
 *   KFS_FILE   the key itself;
 *   KFS_DIR    a directory, named by its prefix (the key bytes up to and
 *              including the trailing separator; the root's is the mount
 *              prefix, possibly empty);
 *   KFS_ALIAS  the same directory reached by its alias name "seg:".  It
 *              lists the same children but has an inode number of its own,
 *              because the kernel refuses two names for one directory inode.
 * Inodes are found by (kind, key) and by number.  These numbers are the
 * FUSE node ids, never reused within a mount (a 64-bit counter), so the
 * generation is always 0.  They are not what stat shows: a file's st_ino
 * comes from its record (kfs_stat_file), stable for the key's life.  A
 * file inode is freed when the kernel forgets it; a directory inode is
 * kept for the mount's life, so its number (and st_ino) stays the same.
 *
 * Besides the mapping, a file inode carries the little state that is shared
 * by all open handles of the file: the change sequence of the value the
 * kernel may hold in its page cache, the pending value its writers share
 * (file.c's write buffer, with its size and mtime for attribute replies),
 * and, once the key was unlinked or replaced while the kernel still held
 * the inode, the attributes it had.
 *
 * Locking: one mutex inside the table protects everything in it.  It is
 * never held across a kvcore call or a FUSE reply; callers get copies.
 * Lock order: a file handle's lock, then the table's.
 */
#ifndef KFS_INODE_H
#define KFS_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kvcore.h"

#define KFS_ROOT_INO 1u

enum kfs_kind {
	KFS_FILE = 0,
	KFS_DIR = 1,
	KFS_ALIAS = 2,
};

typedef struct kfs_inodes kfs_inodes;

/**
 * Create a table whose root (inode 1, KFS_DIR) has key @root_key.
 * @return 0, -ENOMEM
 */
int kfs_inodes_new(const void *root_key, size_t root_len, kfs_inodes **ret);

/** Free the table and every inode in it.  Accepts NULL. */
void kfs_inodes_free(kfs_inodes *t);

/** How many inodes the table holds (the root included). */
size_t kfs_inodes_count(kfs_inodes *t);

/**
 * Find or create the inode of (@kind, @key) and add one lookup reference,
 * as a successful lookup, create, mkdir or readdirplus entry does.
 * @param[out] ret_ino its number
 * @return 0, -ENOMEM
 */
int kfs_inode_ref(kfs_inodes *t, enum kfs_kind kind, const void *key, size_t key_len,
		  uint64_t *ret_ino);

/**
 * Drop @n lookup references (FUSE forget); the inode is freed at zero
 * (unless its writers still share a pending value: then at their last
 * release).  The root is never freed.  Unknown numbers are ignored.
 * @return whether this call freed it
 */
bool kfs_inode_forget(kfs_inodes *t, uint64_t ino, uint64_t n);

/**
 * Copy what inode @ino stands for.
 * @param[out] ret_kind its kind
 * @param[out] key      a buffer of at least KVC_KEY_MAX + 1 bytes
 * @param[out] ret_len  the key's length
 * @return 0, -ESTALE (unknown number)
 */
int kfs_inode_get(kfs_inodes *t, uint64_t ino, enum kfs_kind *ret_kind, void *key,
		  size_t *ret_len);

/** The number of the inode of (@kind, @key), or 0 if the kernel holds none. */
uint64_t kfs_inode_find(kfs_inodes *t, enum kfs_kind kind, const void *key, size_t key_len);

/**
 * Give the file inode of key @from the key @to, after a rename in the
 * store.  An inode that had key @to is detached (its key was replaced)
 * and keeps @replaced (may be NULL) as its attributes.
 */
void kfs_inode_rename_file(kfs_inodes *t, const void *from, size_t from_len, const void *to,
			   size_t to_len, const struct stat *replaced);

/**
 * Re-key every inode whose key starts with @from (a directory prefix) to
 * start with @to instead, after a directory rename.  Cost: linear in the
 * table.
 */
void kfs_inode_rename_prefix(kfs_inodes *t, const void *from, size_t from_len,
			     const void *to, size_t to_len);

/** Detach the file inode of @key, which was deleted: it keeps @gone (may
 *  be NULL) as its attributes, with st_nlink 0, for fstat of open files. */
void kfs_inode_unlinked(kfs_inodes *t, const void *key, size_t key_len, const struct stat *gone);

/** If @ino was detached (unlinked or replaced), copy its last attributes.
 *  @return true if it was */
bool kfs_inode_gone(kfs_inodes *t, uint64_t ino, struct stat *ret);

/** Change the attributes of detached inode @ino (fchmod of an unlinked
 *  open file).  @return false if @ino is not detached */
bool kfs_inode_set_gone_attr(kfs_inodes *t, uint64_t ino, const struct stat *st);

/**
 * Decide whether a read-only open of value version @seq of @ino may go
 * through the kernel's page cache: only when no handle that may write it
 * is open in this mount, no page-cache handle of another version is, and
 * the kernel's attributes (its file size) are of that same version.  On
 * true the open is counted until kfs_inode_cache_close, and *@ret_keep
 * tells whether the pages the kernel holds are of that version too
 * (keep_cache).
 */
bool kfs_inode_cache_open(kfs_inodes *t, uint64_t ino, uint64_t seq, bool *ret_keep);

/** A page-cache handle of @ino was released. */
void kfs_inode_cache_close(kfs_inodes *t, uint64_t ino);

/** A read-only handle of @ino that reads without the page cache was opened
 *  (@open) or released.  Such a handle may hold no copy of its version. */
void kfs_inode_direct_reader(kfs_inodes *t, uint64_t ino, bool open);

/** Whether a handle counted by kfs_inode_direct_reader is open. */
bool kfs_inode_has_direct_reader(kfs_inodes *t, uint64_t ino);

/** Note that attributes of value version @seq of @ino were replied; 0 when
 *  the kernel's copy is no longer known (after an invalidation). */
void kfs_inode_attr_sent(kfs_inodes *t, uint64_t ino, uint64_t seq);

/**
 * A handle of @ino that may write is opening: decide whether it uses the
 * page cache (@may_cache, and no read-only page-cache handle or direct
 * writer is open; the kernel's pages then follow the writers' shared
 * value).  @return true for the page cache
 */
bool kfs_inode_writer_open(kfs_inodes *t, uint64_t ino, bool may_cache);

/** A handle opened by kfs_inode_writer_open (returning @cached) closed. */
void kfs_inode_writer_close(kfs_inodes *t, uint64_t ino, bool cached);

/**
 * Share the pending value of @ino: take a reference on the one its writers
 * share, or make @wbuf (if non-NULL) that value.  The table never looks
 * inside it; file.c owns it.
 * @return the shared value (@wbuf, another one, or NULL)
 */
void *kfs_inode_wbuf_attach(kfs_inodes *t, uint64_t ino, void *wbuf);

/** Drop a reference.  @return true if it was the last: the caller frees
 *  the value (the inode no longer points to it). */
bool kfs_inode_wbuf_detach(kfs_inodes *t, uint64_t ino);

/* What attribute replies say of a file while its writers have a pending
 * value: its size and mtime, and the mode, owner and ctime set on it
 * since the last commit (those join the next commit). */
struct kfs_pending {
	uint64_t len;
	int64_t mtime_ns;
	int64_t ctime_ns;      /* 0: none since the last commit */
	bool has_mode, has_owner;
	uint32_t mode, uid, gid;
};

/** Set what attribute replies say of @ino while it has a pending value. */
void kfs_inode_set_pending(kfs_inodes *t, uint64_t ino, const struct kfs_pending *p);

/** What kfs_inode_set_pending set.  @return false if @ino has no pending
 *  value */
bool kfs_inode_pending(kfs_inodes *t, uint64_t ino, struct kfs_pending *ret);

/** The number of the directory inode of (@kind, @key), made (without a
 *  lookup reference) if the table has none: for readdir's d_ino.
 *  @return it, or 0 when out of memory */
uint64_t kfs_inode_dir_number(kfs_inodes *t, enum kfs_kind kind, const void *key, size_t key_len);

#endif
