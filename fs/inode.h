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
 * Inodes are found by (kind, key) and by number.  Numbers are never reused
 * within a mount (a 64-bit counter), so the generation is always 0.
 *
 * Besides the mapping, a file inode carries the little state that is shared
 * by all open handles of the file: the change sequence of the value the
 * kernel may hold in its page cache, whether a write buffer is pending, an
 * mtime set while one is (so cp -a's futimens before close survives the
 * commit), and whether the key was unlinked while open.
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
 * Drop @n lookup references (FUSE forget); the inode is freed at zero.
 * The root is never freed.  Unknown numbers are ignored.
 */
void kfs_inode_forget(kfs_inodes *t, uint64_t ino, uint64_t n);

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
 * store.  An inode that had key @to is detached (its key was replaced).
 */
void kfs_inode_rename_file(kfs_inodes *t, const void *from, size_t from_len, const void *to,
			   size_t to_len);

/**
 * Re-key every inode whose key starts with @from (a directory prefix) to
 * start with @to instead, after a directory rename.  Cost: linear in the
 * table.
 */
void kfs_inode_rename_prefix(kfs_inodes *t, const void *from, size_t from_len,
			     const void *to, size_t to_len);

/** Detach the file inode of @key: the key is gone, open writers of it
 *  must not bring it back. */
void kfs_inode_unlinked(kfs_inodes *t, const void *key, size_t key_len);

/** Whether @ino was detached by kfs_inode_unlinked or a rename over it. */
bool kfs_inode_is_unlinked(kfs_inodes *t, uint64_t ino);

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

/** Note that attributes of value version @seq of @ino were replied; 0 when
 *  the kernel's copy is no longer known (after an invalidation). */
void kfs_inode_attr_sent(kfs_inodes *t, uint64_t ino, uint64_t seq);

/** Count a handle of @ino that may write opening (+1) or released (-1). */
void kfs_inode_writers(kfs_inodes *t, uint64_t ino, int delta);

/** Record whether a write buffer of @ino is pending (not committed); a
 *  write also cancels a pending mtime. */
void kfs_inode_set_dirty(kfs_inodes *t, uint64_t ino, bool dirty);

/** Remember an mtime set while a write buffer of @ino is pending. */
void kfs_inode_set_pending_mtime(kfs_inodes *t, uint64_t ino, int64_t mtime_ns);

/** Take (and clear) the pending mtime.  @return true if there was one. */
bool kfs_inode_take_pending_mtime(kfs_inodes *t, uint64_t ino, int64_t *ret_mtime_ns);

#endif
