/*
 * vcache: committed values kept after their last writer closed, so the
 * next writable open of the same version does not read it again.
 *
 * A writer's pending value starts as a copy of the stored value (file.c):
 * for a large file that copy costs more than the small write a program
 * opens it for (an editor's save, a log append, a database page).  When
 * the last writable handle of a file is released with everything
 * committed, its buffer is offered here, named by the inode and the
 * version (the record's change sequence and inode number) it holds.  The
 * next writable open takes it back only if the record it reads is that
 * same version; any change in between (in this mount, by kvctl, by a
 * peer) gives the record a new sequence, and the copy is not used.
 *
 * Bounded: at most KFS_VCACHE_ENTRIES buffers and KFS_VCACHE_BYTES bytes;
 * the oldest goes first.  Only values of KFS_VCACHE_MIN bytes or more are
 * kept: smaller ones cost little to read again.  Thread-safe (one mutex,
 * never held across a kvcore call).
 */
#ifndef KFS_VCACHE_H
#define KFS_VCACHE_H

#include <stddef.h>
#include <stdint.h>

#define KFS_VCACHE_ENTRIES 256u
#define KFS_VCACHE_BYTES (256u * 1024u * 1024u)
#define KFS_VCACHE_MIN (64u * 1024u)

typedef struct kfs_vcache kfs_vcache;

/* The version a kept buffer holds. */
struct kfs_vversion {
	uint64_t ino;       /* the FUSE inode */
	uint64_t seq;       /* the record's change sequence */
	uint64_t store_ino; /* the record's inode number */
};

/** @return 0, -ENOMEM */
int kfs_vcache_new(kfs_vcache **ret);
/** Free the cache and every buffer in it.  Accepts NULL. */
void kfs_vcache_free(kfs_vcache *c);

/**
 * Offer @buf (@len bytes used of @cap, from malloc) holding version @v.
 * The cache takes ownership whatever it decides (it may free @buf at once).
 */
void kfs_vcache_keep(kfs_vcache *c, const struct kfs_vversion *v, void *buf, size_t len,
		     size_t cap);

/**
 * Take back the buffer of @v->ino if it holds exactly version @v: the
 * caller owns it then.  Any other buffer of that inode is freed.
 * @return the buffer (with *ret_len, *ret_cap), or NULL
 */
void *kfs_vcache_take(kfs_vcache *c, const struct kfs_vversion *v, size_t *ret_len,
		      size_t *ret_cap);

/**
 * The record of @ino changed from version @from_seq to @to_seq without a
 * change of value (a chmod, chown, utimens, xattr change or rename of a
 * closed file): a buffer kept for @from_seq holds version @to_seq too.
 */
void kfs_vcache_rebase(kfs_vcache *c, uint64_t ino, uint64_t from_seq, uint64_t to_seq);

/** Forget the buffer of inode @ino, if any (the kernel forgot the inode). */
void kfs_vcache_drop(kfs_vcache *c, uint64_t ino);

#endif
