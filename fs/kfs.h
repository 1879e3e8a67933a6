/*
 * kfs: what the modules of the kvfs daemon share.
 *
 * One struct kfs holds the whole state of a mount and hangs off the FUSE
 * session's userdata (kfs_from(req)); there are no mutable globals.  The
 * modules are:
 *   main.c   the command line, mounting, the session loop;
 *   state.c  making and releasing struct kfs, opening the store, logging,
 *            the lists of open handles;
 *   ns.c     the namespace: what a name in a directory denotes, and the
 *            children of a directory in order (keys <-> paths);
 *   ops.c    the request table; lookup, forget, getattr, setattr, statfs;
 *   names.c  changes of names: mkdir, unlink, rmdir, rename;
 *   dir.c    open directories and their listings;
 *   file.c   open files: open, create, read, flush, fsync, release;
 *   wbuf.c   the pending value of a file being written, and its commit;
 *   vcache.c values kept for the next writer of the same version;
 *   inode.c, dirset.c  the inode table and the directories without keys;
 *   xattr.c  extended attributes (metadata, ttl, expiration);
 *   watch.c  background threads: change-feed watcher, reaper, syncer.
 *
 * Locks, in the order they may be taken:
 *   kfs->files_lock -> a file handle's or write buffer's lock (committing
 *                      all at unmount, keeping versions at unlink)
 *   kfs->keep_lock -> a read transaction, the dirset's lock (deciding
 *                      whether a directory is empty)
 *   a write buffer's lock -> kfs->ns_lock (a commit)
 *   a file or directory handle's lock, a write buffer's lock, ns_lock
 *                      -> the inode table's lock, the dirset's lock
 *   the inode table's and the dirset's locks are leaves.
 * The table's and the dirset's locks are never held across a kvcore call, a
 * FUSE reply or a notification; a handle's or write buffer's lock is held
 * across its own commit and reads.  ns_lock is held exclusively by unlink
 * and rename around their write and the inode table's update, shared by a
 * commit around reading its key and writing it.
 *
 * Notifications: the watcher thread invalidates entries and pages.  A
 * request handler only ever invalidates an inode's attributes (offset -1),
 * which takes no lock a pending request could hold.
 */
#ifndef KFS_KFS_H
#define KFS_KFS_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "codec.h"
#include "dirset.h"
#include "inode.h"
#include "vcache.h"
#include "kvcore.h"

/* Room for a directory prefix plus a whole segment plus a separator and a
 * byte: every key, prefix and seek bound the daemon builds fits. */
#define KFS_KEYBUF (2u * KVC_KEY_MAX + 4u)

struct kfs_config {
	char *store;            /* STORE as given */
	char *mountpoint;
	char sep;               /* key separator */
	unsigned min_ttl;
	bool min_ttl_set;
	unsigned reap_interval; /* seconds; 0 = never */
	bool ro;
	bool create;            /* -o create: make the store if missing */
	bool nonempty;          /* -o nonempty: mount over a directory's files */
	unsigned uid, gid;      /* owner of keys that have none */
	unsigned umask;         /* for keys without a mode, and directories */
	char *prefix;           /* prefix=P as given, or NULL */
	double cache_ttl;       /* entry/attr timeout, seconds */
	bool direct_io;         /* never read through the page cache */
	enum kvc_sync_mode sync;
	bool fsname_given;
	bool subtype_given;
};

struct kfs;
struct kfs_file;

/* A place on one of the daemon's lists of open handles, which unmount
 * walks to commit and free what the kernel did not release. */
struct kfs_link {
	struct kfs_link *prev, *next;
};

/** Put @l at the head of list @head / take it off; both lock files_lock. */
void kfs_link_add(struct kfs *fs, struct kfs_link **head, struct kfs_link *l);
void kfs_link_remove(struct kfs *fs, struct kfs_link **head, struct kfs_link *l);

/* A value version this long committed may be read through the page cache. */
#define KFS_SETTLE_MS 1000
/* With sync=batch, the flusher puts commits on disk this often (when there
 * are any): a closed file is on disk within a second. */
#define KFS_SYNC_MS 500
struct kfs_dirh;

struct kfs {
	struct kfs_config cfg;
	kvc_store *store;
	struct fuse_session *se;
	unsigned char root[KVC_KEY_MAX + 1]; /* the root directory's prefix */
	size_t root_len;
	int64_t start_ns;       /* times of directories nobody touched */
	bool use_syslog;        /* daemonized: log to syslog, not stderr */
	kfs_inodes *inodes;
	kfs_dirset *dirs;
	kfs_vcache *vcache;   /* values kept for the next writer */

	pthread_rwlock_t ns_lock; /* see the lock order above */
	/* Held while the store is read to decide that a directory is empty
	 * (kept) or no longer is (kfs_key_written): the two decisions are
	 * made one after the other, each on what the store holds then. */
	pthread_mutex_t keep_lock;
	pthread_mutex_t files_lock;
	struct kfs_link *files;  /* open files; protected by files_lock */
	struct kfs_link *dirhs;  /* open directories; protected by files_lock */

	pthread_mutex_t bg_lock;
	pthread_cond_t bg_cond;  /* signalled when bg_stop is set */
	bool bg_stop;            /* protected by bg_lock */
	pthread_t watcher, reaper, syncer;
	bool watcher_on, reaper_on, syncer_on;
	uint64_t feed_seen;      /* watcher thread only */
	/* Every change up to this sequence was committed and invalidated at
	 * least KFS_SETTLE_MS ago (set by the watcher; see file.c). */
	_Atomic uint64_t settled_seq;
};

static inline struct kfs *kfs_from(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ------------------------------------------------------------ state.c */

/** Log a message (stderr in the foreground, syslog when daemonized). */
void kfs_log(const struct kfs *fs, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Open the store at @path with the mount's options into fs->store; a
 *  failure is logged, saying why (no store there, not a store, ...).
 *  @param may_create  make a new store if @path is missing or an empty
 *                     directory (-o create); never among other files
 *  @return 0 or -errno */
int kfs_store_open(struct kfs *fs, const char *path, bool may_create);

/** Whether the directory @path holds no entry.  @return 1 empty, 0 not,
 *  or -errno (opendir's) */
int kfs_dir_is_empty(const char *path);

/** Make the mount's tables, locks and caches (fs->cfg and fs->root set).
 *  @return 0, -ENOMEM */
int kfs_state_init(struct kfs *fs);

/** Release what kfs_state_init made, committing and freeing the handles
 *  the kernel did not release.  Safe after a failed or no init. */
void kfs_state_release(struct kfs *fs);

/* --------------------------------------------------------------- ns.c */

/* What an inode stands for: a file's key, or a directory's prefix. */
struct kfs_key {
	enum kfs_kind kind;
	size_t len;
	unsigned char key[KFS_KEYBUF];
};

/* What a name in a directory denotes. */
struct kfs_node {
	enum kfs_kind kind;              /* KFS_FILE, KFS_DIR or KFS_ALIAS */
	unsigned char key[KFS_KEYBUF];   /* the key, or the directory prefix */
	size_t key_len;
	struct kvc_record rec;           /* KFS_FILE: valid until the txn ends */
};

/* A decoded name, with a hashed name already resolved to its segment. */
struct kfs_seg {
	unsigned char seg[KFS_KEYBUF];
	size_t len;
	bool alias;                      /* the name can only be a directory */
};

/**
 * Decode @name in directory @dir into a whole segment; a hashed name is
 * looked up among the directory's children in @txn.
 * @return 0, -ENOENT (a hashed name of no child), -EINVAL, -ENAMETOOLONG
 */
int kfs_name_seg(struct kfs *fs, kvc_txn *txn, const void *dir, size_t dir_len,
		 const char *name, struct kfs_seg *ret);

/**
 * The key (or, with *@ret_alias, the directory prefix without its
 * separator) that @name would give a new child of @dir.  A hashed name
 * denotes an existing child only, so one that names none is -EINVAL.
 * @param[out] ret_key KFS_KEYBUF bytes
 * @return 0, -EINVAL, -ENAMETOOLONG
 */
int kfs_new_name(struct kfs *fs, kvc_txn *txn, const void *dir, size_t dir_len,
		 const char *name, unsigned char *ret_key, size_t *ret_len, bool *ret_alias);

/**
 * Resolve @name in directory @dir: the file if dir+seg is a live key
 * (unless the name is an alias), else the directory if dir+seg+sep is one.
 * An alias also resolves (to an empty directory) when dir+seg is a key.
 * @return 0, -ENOENT, -EINVAL, -ENAMETOOLONG, or a kvcore error
 */
int kfs_resolve(struct kfs *fs, kvc_txn *txn, const void *dir, size_t dir_len,
		const char *name, struct kfs_node *ret);

/** Whether directory prefix @p exists (a live key under it, or mkdir). */
bool kfs_dir_exists(struct kfs *fs, kvc_txn *txn, const void *p, size_t len);

/** Whether any live key lies under prefix @p. */
bool kfs_dir_has_keys(kvc_txn *txn, const void *p, size_t len);

/**
 * A key was written (by this daemon, or by anyone as the watcher learns
 * from the feed, maybe late): the directories containing it that are
 * remembered as empty and have keys now stop being remembered so.  A
 * directory emptied and kept since the write stays kept.
 */
void kfs_key_written(struct kfs *fs, const void *key, size_t len);

/* One child of a directory, as readdir shows it. */
struct kfs_child {
	enum kfs_kind kind;
	char name[KFS_NAME_MAX + 1];
	unsigned char key[KFS_KEYBUF];   /* key, or directory prefix */
	size_t key_len;
	struct kvc_record rec;           /* KFS_FILE: valid until the txn ends */
	unsigned char next[KFS_KEYBUF];  /* bound of the following child */
	size_t next_len;
};

/**
 * The first child of directory @dir at or after position @bound (the
 * directory's own prefix for the first child, then ret->next), in key
 * order: a file's position is its key, a directory's its prefix.  Cost: a
 * seek, plus a lookup for a directory; a child's subtree is never walked.
 * @return 0, -ENOENT (no more), or a kvcore error
 */
int kfs_next_child(struct kfs *fs, kvc_txn *txn, const void *dir, size_t dir_len,
		   const void *bound, size_t bound_len, struct kfs_child *ret);

/** Put the mode and owner of pending @p into @st. */
void kfs_pending_apply(const struct kfs_pending *p, struct stat *st);

/** Fill @st for file inode @ino from @rec, attributes the caller replies
 *  to the kernel with (noted by kfs_inode_attr_sent); the size, mtime,
 *  mode and owner of a pending value of the inode win over the record's. */
void kfs_stat_file(struct kfs *fs, uint64_t ino, const struct kvc_record *rec,
		   struct stat *st);

/** Fill @st for directory inode @ino of prefix @p. */
void kfs_stat_dir(struct kfs *fs, uint64_t ino, const void *p, size_t len, struct stat *st);

/** The st_ino of file inode @ino whose record has inode number
 *  @store_ino, and of directory inode @ino: never the same number. */
uint64_t kfs_st_ino_file(uint64_t ino, uint64_t store_ino);
uint64_t kfs_st_ino_dir(uint64_t ino);

/** An entry was added to or removed from directory @p (inode @ino, 0 if
 *  unknown): its mtime and ctime become now, and the kernel's copy of its
 *  attributes is dropped. */
void kfs_dir_touch(struct kfs *fs, uint64_t ino, const void *p, size_t len);

/** How long the kernel may cache an entry/attributes of @rec (NULL: a
 *  directory): cache_ttl, but never past the key's expiration. */
double kfs_cache_timeout(const struct kfs *fs, const struct kvc_record *rec);

/**
 * Look the inode up and take a lookup reference: fill @e for
 * fuse_reply_entry/create or a readdirplus entry.
 * @return 0, -ENOMEM
 */
int kfs_entry(struct kfs *fs, enum kfs_kind kind, const void *key, size_t key_len,
	      const struct kvc_record *rec, struct fuse_entry_param *e);

/** Copy what inode @ino is into @ret.  @return 0, -ESTALE */
int kfs_ino(struct kfs *fs, fuse_ino_t ino, struct kfs_key *ret);

/**
 * The start of every request about a name: the prefix of directory inode
 * @parent into @dir, a read transaction, and what
 * @name denotes in it (kfs_resolve).
 * @return 0 with *@ret_txn open (the caller ends it), or -errno (-ENOENT,
 *         -ENOTDIR, -ENAMETOOLONG, -ESTALE, ...) with none open
 */
int kfs_name_begin(struct kfs *fs, fuse_ino_t parent, const char *name, struct kfs_key *dir,
		   kvc_txn **ret_txn, struct kfs_node *ret);

/**
 * The start of every request that makes a name in directory @parent: its
 * prefix into @dir and a read transaction to choose the name in.
 * @return 0 with *@ret_txn open (the caller ends it), or -errno (-ENOTDIR,
 *         -EROFS, -ESTALE, ...) with none open
 */
int kfs_new_begin(struct kfs *fs, fuse_ino_t parent, struct kfs_key *dir, kvc_txn **ret_txn);

/**
 * Begin a read transaction and read the record of file @key, without its
 * value (kvc_get's KVC_GET_NO_VALUE).
 * @return 0 with *@ret_txn open (the caller ends it), or -errno (-ENOENT:
 *         the key is gone) with none open
 */
int kfs_record_begin(struct kfs *fs, const void *key, size_t len, kvc_txn **ret_txn,
		     struct kvc_record *ret);

/**
 * kvc_write of @w to @key in @txn, giving the record's version (change
 * sequence) before in *@ret_from and after in *@ret_to: a write that
 * leaves the value as it is moves a kept copy of it (kfs_vcache_rebase).
 * @return kvc_write's result (-ENOENT if the key is not live)
 */
int kfs_write_versions(kvc_txn *txn, const unsigned char *key, size_t len,
		       const struct kvc_write *w, uint64_t *ret_from, uint64_t *ret_to);

/** Copy the prefix of directory inode @ino (as kfs_ino).
 *  @return 0, -ENOTDIR (a file), -ESTALE */
int kfs_dir_of(struct kfs *fs, fuse_ino_t ino, struct kfs_key *dir);

/* -------------------------------------------------------------- ops.c */

extern const struct fuse_lowlevel_ops kfs_ops;

/* ------------------------------------------------------------ names.c */

void kfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void kfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void kfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void kfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		   const char *newname, unsigned int flags);

/* -------------------------------------------------------------- dir.c */

void kfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void kfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi);
void kfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/** Free the directory handles the kernel never released. */
void kfs_dirhs_release_all(struct kfs *fs);

/* ------------------------------------------------------------- file.c */

void kfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		   struct fuse_file_info *fi);
void kfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi);
void kfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi);
void kfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void kfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void kfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void kfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/**
 * ftruncate through an open handle: resize its write buffer.
 * @return 0, -EFBIG, -ENOMEM, -EBADF (not open for writing)
 */
int kfs_file_truncate(struct kfs *fs, struct fuse_file_info *fi, uint64_t size);

/** utimens while @ino has a pending value: the commit keeps @mtime_ns.
 *  @return 1 if it has one, 0 if not */
int kfs_file_set_mtime(struct kfs *fs, uint64_t ino, int64_t mtime_ns);

/**
 * chmod, chown or utimens (@w: KVC_SET_MODE, KVC_SET_OWNER with
 * UINT32_MAX for "unchanged", KVC_SET_MTIME) of @ino while it is being
 * written (a writable handle has not yet been closed): the change joins
 * the value's commit at that close, and attribute replies show it
 * meanwhile.  @return 1 if it joined, 0 if the caller must commit it
 */
int kfs_file_defer_attrs(struct kfs *fs, uint64_t ino, const struct kvc_write *w);

/**
 * The metadata of @ino as its writers will commit it, if a change to it
 * joined their commit: a copy in @buf (KVC_METADATA_MAX bytes), *ret_len
 * bytes, *ret_none when there is to be none.  Take it before beginning a
 * transaction.  @return 1 if there is such a change, 0 if not
 */
int kfs_file_pending_metadata(struct kfs *fs, uint64_t ino, char *buf, size_t *ret_len,
			      bool *ret_none);

/**
 * Change the metadata of @ino while it is being written: @edit computes
 * the new metadata from the record @rec (the committed one, with the
 * metadata pending from earlier changes) into @buf (KVC_METADATA_MAX
 * bytes), returning its length, 0 for none, or -errno; the result joins
 * the writers' commit.  @return 1 if it joined, 0 if @ino is not being
 * written (the caller commits), -errno from @edit or reading the record
 */
int kfs_file_defer_metadata(struct kfs *fs, uint64_t ino, const unsigned char *key,
			    size_t key_len,
			    int (*edit)(const struct kvc_record *rec, char *buf, void *arg),
			    void *arg);

/** chmod or chown of @ino: its writers check the set-ID bits again. */
void kfs_file_mode_changed(struct kfs *fs, uint64_t ino);

/**
 * truncate(2) by name of @ino while it has a pending value: truncate that
 * and commit it.  @return 1 (done), 0 (no pending value), -errno
 */
int kfs_file_truncate_pending(struct kfs *fs, uint64_t ino, uint64_t size);

/** @ino's key is about to go: give its open read-only handles that have
 *  no copy of their version a copy of @rec, so they keep reading. */
void kfs_files_keep(struct kfs *fs, uint64_t ino, const struct kvc_record *rec);

/** Commit every open write buffer (at unmount). */
void kfs_files_flush_all(struct kfs *fs);

/** Free the handles the kernel never released (the daemon is ending). */
void kfs_files_release_all(struct kfs *fs);

/* ------------------------------------------------------------ xattr.c */

void kfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		     size_t size, int flags);
void kfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void kfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void kfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ------------------------------------------------------------ watch.c */

/** Start the watcher, reaper and syncer threads.  @return 0 or -errno */
int kfs_bg_start(struct kfs *fs);

/** Tell them to stop, without waiting: the watcher sends no more
 *  notifications. */
void kfs_bg_halt(struct kfs *fs);

/** Stop them and wait for them.  Safe if they never started. */
void kfs_bg_stop(struct kfs *fs);

#endif
