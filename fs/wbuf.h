/*
 * wbuf: the pending value that the writable handles of one inode share
 * (see wbuf.c), between file.c, which owns the handles, and wbuf.c.
 * Lock order: a handle's lock, then its wbuf's lock, then a write
 * transaction (a commit holds the wbuf's lock across one).
 */
#ifndef KFS_WBUF_H
#define KFS_WBUF_H

#include "kfs.h"

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

/** The pending value of @ino with a reference taken, or NULL. */
struct kfs_wbuf *kfs_wbuf_get(struct kfs *fs, uint64_t ino);

/** Drop a reference taken on @wb, the pending value of @ino.  The last
 *  one frees it, offering a buffer that holds a stored version to the
 *  vcache. */
void kfs_wbuf_put(struct kfs *fs, uint64_t ino, struct kfs_wbuf *wb);

/**
 * Take a reference on the pending value of @ino, or make it from @rec,
 * the record of @key as an open read it in @txn (perhaps without its
 * value), unless @truncating (O_TRUNC: it starts empty).
 * @return 0 with *@ret, -ESTALE (the inode is gone), -ENOMEM, -EIO
 */
int kfs_wbuf_open(struct kfs *fs, uint64_t ino, bool truncating, kvc_txn *txn,
		  const unsigned char *key, size_t key_len, const struct kvc_record *rec,
		  struct kfs_wbuf **ret);

/** Count one more handle of @wb; @truncating empties it (dirty, unless
 *  the open just @created the key empty).  No transaction may be open. */
void kfs_wbuf_join(struct kfs *fs, struct kfs_wbuf *wb, bool truncating, bool created);

/**
 * Write @size bytes at @off (@append: at the end) into @wb.  @by_caller:
 * a write(2) rather than the kernel's writeback, which clears set-ID bits
 * as the kernel does.  @return 0, -EINVAL, -EFBIG (past 25 MiB: the
 * value is never stored, unless truncated back), -ENOMEM
 */
int kfs_wbuf_write(fuse_req_t req, struct kfs *fs, struct kfs_wbuf *wb, const char *data,
		   size_t size, off_t off, bool append, bool by_caller);

/** Truncate or extend @wb (locked) to @size bytes.  @return 0, -EFBIG, -ENOMEM */
int kfs_wbuf_resize(struct kfs *fs, struct kfs_wbuf *wb, uint64_t size);

/** Commit @wb (locked) if it holds anything unstored.  @return 0 (also
 *  when the key was removed meanwhile: the value is dropped) or -errno */
int kfs_wbuf_commit(struct kfs *fs, struct kfs_wbuf *wb);

#endif
