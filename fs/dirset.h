/*
 * dirset: what the daemon remembers about directories.
 *
 * Directories are derived from keys and have nothing stored of their own.
 * Two things still need a home, in the daemon's memory only:
 *   - empty directories made by mkdir, until a key is written under them
 *     (then they are derived) or they are removed;
 *   - attributes given to a directory by chmod, chown or touch, so that
 *     rsync -a and cp -a can set them and see them set (a second rsync has
 *     nothing to do).
 * Both are lost when the daemon exits.  Entries are directory prefixes
 * (ending with the separator), kept sorted, so a directory's children and
 * a subtree are contiguous ranges.
 *
 * Locking: a mutex inside the set protects it; never held across a kvcore
 * call.
 */
#ifndef KFS_DIRSET_H
#define KFS_DIRSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct kfs_dirset kfs_dirset;

/* Attributes of a directory. */
struct kfs_dir_attr {
	uint32_t mode; /* permission bits */
	uint32_t uid, gid;
	int64_t mtime_ns, ctime_ns;
};

/** A set for keys split by @sep.  @return 0, -ENOMEM */
int kfs_dirset_new(char sep, kfs_dirset **ret);
void kfs_dirset_free(kfs_dirset *s);

/**
 * Make prefix @p an empty directory with attributes @attr.  @by_alias: it
 * was made by its alias name ("mkdir seg:"), which leaves the plain name
 * free for a file (see kfs_dirset_by_alias).
 * @return 0, -EEXIST (already an empty directory), -ENOMEM
 */
int kfs_dirset_mkdir(kfs_dirset *s, const void *p, size_t len, const struct kfs_dir_attr *attr,
		     bool by_alias);

/** Whether @p is an empty directory made by its alias name. */
bool kfs_dirset_by_alias(kfs_dirset *s, const void *p, size_t len);

/**
 * Whether a directory made by mkdir is at or below prefix @p, so that @p
 * exists as a directory without any key.
 */
bool kfs_dirset_exists(kfs_dirset *s, const void *p, size_t len);

/** Whether an empty directory made by mkdir lies strictly below @p. */
bool kfs_dirset_has_children(kfs_dirset *s, const void *p, size_t len);

/**
 * Forget directory @p (rmdir): its entry and attributes.
 * @return 0, -ENOENT (not a directory made by mkdir)
 */
int kfs_dirset_rmdir(kfs_dirset *s, const void *p, size_t len);

/** Whether any directory is remembered as empty (made by mkdir, or kept
 *  when emptied through the mount). */
bool kfs_dirset_has_empty(kfs_dirset *s);

/** Whether directory @p is remembered as empty. */
bool kfs_dirset_empty(kfs_dirset *s, const void *p, size_t len);

/** Directory @p has keys now: it is derived from them and stops being
 *  remembered as empty (its attributes stay). */
void kfs_dirset_filled(kfs_dirset *s, const void *p, size_t len);

/**
 * The attributes of directory @p if any were set (by mkdir or setattr).
 * @return true and *ret filled, or false
 */
bool kfs_dirset_attr(kfs_dirset *s, const void *p, size_t len, struct kfs_dir_attr *ret);

/** Remember attributes @attr for directory @p.  @return 0, -ENOMEM */
int kfs_dirset_set_attr(kfs_dirset *s, const void *p, size_t len, const struct kfs_dir_attr *attr);

/**
 * The first child directory made by mkdir of directory @dir whose position
 * (dir + child + separator) is >= @bound.
 * @param[out] seg      a buffer of at least 512 bytes: the child's segment
 * @param[out] ret_len  its length
 * @return true if there is one
 */
bool kfs_dirset_next_child(kfs_dirset *s, const void *dir, size_t dir_len, const void *bound,
			   size_t bound_len, void *seg, size_t *ret_len);

/**
 * Call @fn for each child segment of @dir made by mkdir (for resolving a
 * hashed name); stops when @fn returns true.
 * @return true if @fn did
 */
bool kfs_dirset_each_child(kfs_dirset *s, const void *dir, size_t dir_len,
			   bool (*fn)(void *arg, const void *seg, size_t len), void *arg);

/** Move every entry under prefix @from to prefix @to (directory rename),
 *  replacing entries under @to.  @return 0, -ENOMEM */
int kfs_dirset_rename(kfs_dirset *s, const void *from, size_t from_len, const void *to,
		      size_t to_len);

#endif
