/*
 * ns: the namespace as the kernel sees it, derived from the keys.
 *
 * A directory is a prefix ending with the separator (the root's is the
 * mount prefix).  A name in directory D decodes to a segment s (fs/codec.h)
 * and denotes the file D+s when that key is live, else the directory
 * D+s+sep when a live key lies under it or mkdir made it.  When both exist
 * the plain name is the file and "s" + separator (the alias) the
 * directory; the alias always means the directory, and exists whenever
 * the directory or the key D+s does.  An empty directory made by
 * "mkdir s:" is known by its alias only, until a key is written under it:
 * the plain name stays free for the file s (as rsync needs when it copies
 * a key that is also a prefix: it makes "s:" first, then writes "s").
 *
 * Children are produced in key order by seeking, never by scanning: after a
 * file child the next seek starts just past its key, after a directory
 * child just past its whole subtree (D+s followed by the byte after the
 * separator), so listing a directory costs one seek per child however many
 * keys lie below.  Directories made by mkdir (fs/dirset.h) are merged in
 * at their position.
 */
#include "kfs.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static bool starts_with(const void *k, size_t klen, const void *p, size_t plen)
{
	return klen >= plen && memcmp(k, p, plen) == 0;
}

static int bytes_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

/* Length of the segment of @key that starts at @from (up to the next
 * separator or the end). */
static size_t seg_len(const unsigned char *key, size_t len, size_t from, char sep)
{
	const unsigned char *q = memchr(key + from, (unsigned char)sep, len - from);

	return q ? (size_t)(q - key) - from : len - from;
}

bool kfs_dir_has_keys(kvc_txn *txn, const void *p, size_t len)
{
	kvc_cursor *cur;
	const void *k;
	size_t klen;
	bool found = false;

	if (kvc_cursor_open(txn, KVC_GET_NO_VALUE, &cur) < 0)
		return false;
	if (kvc_cursor_seek(cur, p, len, &k, &klen, NULL) == 0)
		found = starts_with(k, klen, p, len);
	kvc_cursor_close(cur);
	return found;
}

void kfs_key_written(struct kfs *fs, const void *key, size_t len)
{
	const unsigned char *k = key;
	kvc_txn *txn;

	if (!kfs_dirset_has_empty(fs->dirs))
		return;
	pthread_mutex_lock(&fs->keep_lock);
	if (kvc_txn_begin(fs->store, KVC_TXN_READ, &txn) == 0) {
		for (size_t i = 0; i < len; i++) {
			if (k[i] == (unsigned char)fs->cfg.sep &&
			    kfs_dirset_empty(fs->dirs, k, i + 1) && kfs_dir_has_keys(txn, k, i + 1))
				kfs_dirset_filled(fs->dirs, k, i + 1);
		}
		kvc_txn_abort(txn);
	}
	pthread_mutex_unlock(&fs->keep_lock);
}

bool kfs_dir_exists(struct kfs *fs, kvc_txn *txn, const void *p, size_t len)
{
	if (len == fs->root_len && memcmp(p, fs->root, len) == 0)
		return true;
	return kfs_dir_has_keys(txn, p, len) || kfs_dirset_exists(fs->dirs, p, len);
}

struct hash_match {
	const unsigned char *head;
	size_t head_len;
	uint64_t hash;
	unsigned char *out;
	size_t *ret_len;
};

static bool match_dirset_child(void *arg, const void *seg, size_t len)
{
	struct hash_match *m = arg;

	if (len < m->head_len || memcmp(seg, m->head, m->head_len) != 0 ||
	    kfs_segment_hash(seg, len) != m->hash)
		return false;
	memcpy(m->out, seg, len);
	*m->ret_len = len;
	return true;
}

/*
 * Find the child segment of @dir that starts with @head and hashes to
 * @hash.  Only the children starting with @head are visited, one seek
 * each.
 */
static int find_hashed(struct kfs *fs, kvc_txn *txn, const unsigned char *dir, size_t dir_len,
		       const unsigned char *head, size_t head_len, uint64_t hash,
		       unsigned char *out, size_t *ret_len)
{
	unsigned char bound[KFS_KEYBUF];
	size_t bound_len = dir_len + head_len;
	char sep = fs->cfg.sep;
	kvc_cursor *cur;
	int rc = kvc_cursor_open(txn, KVC_GET_NO_VALUE, &cur);

	if (rc < 0)
		return rc;
	memcpy(bound, dir, dir_len);
	memcpy(bound + dir_len, head, head_len);
	for (;;) {
		const unsigned char *k;
		size_t klen;

		rc = kvc_cursor_seek(cur, bound, bound_len, (const void **)&k, &klen, NULL);
		if (rc < 0)
			break;
		if (!starts_with(k, klen, dir, dir_len) ||
		    !starts_with(k + dir_len, klen - dir_len, head, head_len)) {
			rc = -ENOENT;
			break;
		}
		size_t n = seg_len(k, klen, dir_len, sep);

		if (kfs_segment_hash(k + dir_len, n) == hash) {
			memcpy(out, k + dir_len, n);
			*ret_len = n;
			rc = 0;
			break;
		}
		memcpy(bound, k, dir_len + n);
		bound_len = dir_len + n;
		if (dir_len + n == klen)
			bound[bound_len++] = 0;                      /* past the file */
		else
			bound[bound_len++] = (unsigned char)(sep + 1); /* past the subtree */
	}
	kvc_cursor_close(cur);
	if (rc == -ENOENT) {
		struct hash_match m = { head, head_len, hash, out, ret_len };

		if (kfs_dirset_each_child(fs->dirs, dir, dir_len, match_dirset_child, &m))
			rc = 0;
	}
	return rc;
}

int kfs_name_seg(struct kfs *fs, kvc_txn *txn, const void *dir, size_t dir_len,
		 const char *name, struct kfs_seg *ret)
{
	char out[KFS_NAME_MAX];
	size_t len;
	enum kfs_name_kind kind;
	uint64_t hash = 0;
	int rc = kfs_decode_name(name, strlen(name), fs->cfg.sep, out, &len, &kind, &hash);

	if (rc < 0)
		return rc;
	ret->alias = kind == KFS_NAME_ALIAS || kind == KFS_NAME_HASHED_ALIAS;
	if (kind == KFS_NAME_SEGMENT || kind == KFS_NAME_ALIAS) {
		memcpy(ret->seg, out, len);
		ret->len = len;
		return 0;
	}
	return find_hashed(fs, txn, dir, dir_len, (const unsigned char *)out, len, hash,
			   ret->seg, &ret->len);
}

int kfs_new_name(struct kfs *fs, kvc_txn *txn, const void *dir, size_t dir_len,
		 const char *name, unsigned char *ret_key, size_t *ret_len, bool *ret_alias)
{
	struct kfs_seg s;
	int rc = kfs_name_seg(fs, txn, dir, dir_len, name, &s);

	if (rc == -ENOENT)
		return -EINVAL;
	if (rc < 0)
		return rc;
	memcpy(ret_key, dir, dir_len);
	memcpy(ret_key + dir_len, s.seg, s.len);
	*ret_len = dir_len + s.len;
	*ret_alias = s.alias;
	return 0;
}

/* Whether key @k of @klen bytes is live (used to decide a directory's name). */
static bool key_live(kvc_txn *txn, const void *k, size_t klen)
{
	struct kvc_record rec;

	return kvc_get(txn, k, klen, KVC_GET_NO_VALUE, &rec) == 0;
}

int kfs_resolve(struct kfs *fs, kvc_txn *txn, const void *dir, size_t dir_len,
		const char *name, struct kfs_node *ret)
{
	struct kfs_seg s;
	int rc = kfs_name_seg(fs, txn, dir, dir_len, name, &s);

	if (rc < 0)
		return rc;
	memcpy(ret->key, dir, dir_len);
	memcpy(ret->key + dir_len, s.seg, s.len);
	ret->key_len = dir_len + s.len;
	if (!s.alias) {
		rc = kvc_get(txn, ret->key, ret->key_len, KVC_GET_NO_VALUE, &ret->rec);
		if (rc == 0) {
			ret->kind = KFS_FILE;
			return 0;
		}
		/* An invalid key (the root's "%", a key over the limit) is
		 * simply not a file; the directory may still exist. */
		if (rc != -ENOENT && rc != -EINVAL && rc != -ENAMETOOLONG)
			return rc;
	}
	/* The alias of a live key is its (maybe empty) directory, so that
	 * "s:/child" can be written whatever exists; with neither a key nor a
	 * directory it is absent, so "mkdir s:" can make it. */
	bool is_key = s.alias && key_live(txn, ret->key, ret->key_len);

	ret->key[ret->key_len++] = (unsigned char)fs->cfg.sep;
	if (!is_key && !kfs_dir_exists(fs, txn, ret->key, ret->key_len))
		return -ENOENT;
	/* An empty directory made as "s:" leaves the plain name to a file
	 * (rsync makes the directory "2:" before it writes the file "2"). */
	if (!s.alias && kfs_dirset_by_alias(fs->dirs, ret->key, ret->key_len) &&
	    !kfs_dir_has_keys(txn, ret->key, ret->key_len))
		return -ENOENT;
	ret->kind = s.alias ? KFS_ALIAS : KFS_DIR;
	return 0;
}

int kfs_next_child(struct kfs *fs, kvc_txn *txn, const void *dir_, size_t dir_len,
		   const void *bound, size_t bound_len, struct kfs_child *ret)
{
	const unsigned char *dir = dir_;
	char sep = fs->cfg.sep;
	kvc_cursor *cur;
	const unsigned char *k = NULL;
	size_t klen = 0;
	struct kvc_record rec;
	bool have_kv = false;
	int rc = kvc_cursor_open(txn, KVC_GET_NO_VALUE, &cur);

	if (rc < 0)
		return rc;
	rc = kvc_cursor_seek(cur, bound, bound_len, (const void **)&k, &klen, &rec);
	if (rc == 0)
		have_kv = starts_with(k, klen, dir, dir_len);
	else if (rc != -ENOENT)
		goto out;

	/* The candidate from the keys: a file (position = key) or a
	 * directory (position = prefix). */
	size_t n = have_kv ? seg_len(k, klen, dir_len, sep) : 0;
	bool kv_file = have_kv && dir_len + n == klen;
	unsigned char mseg[KFS_KEYBUF];
	size_t mlen = 0;
	bool have_mk = kfs_dirset_next_child(fs->dirs, dir, dir_len, bound, bound_len, mseg, &mlen);

	if (have_mk && have_kv) {
		/* Compare positions: dir+mseg+sep against the key's. */
		unsigned char pos[KFS_KEYBUF];
		size_t pos_len = dir_len + mlen + 1;

		memcpy(pos, dir, dir_len);
		memcpy(pos + dir_len, mseg, mlen);
		pos[dir_len + mlen] = (unsigned char)sep;
		int c = bytes_cmp(pos, pos_len, k, kv_file ? klen : dir_len + n + 1);

		if (c >= 0)
			have_mk = false; /* the key comes first, or it is the same directory */
		else
			have_kv = false;
	}
	if (!have_kv && !have_mk) {
		rc = -ENOENT;
		goto out;
	}

	const unsigned char *seg = have_kv ? k + dir_len : mseg;
	size_t slen = have_kv ? n : mlen;

	memcpy(ret->key, dir, dir_len);
	memcpy(ret->key + dir_len, seg, slen);
	ret->key_len = dir_len + slen;
	memcpy(ret->next, ret->key, ret->key_len);
	ret->next_len = ret->key_len;
	if (have_kv && kv_file) {
		ret->kind = KFS_FILE;
		ret->rec = rec;
		kfs_encode_segment(seg, slen, sep, ret->name);
		ret->next[ret->next_len++] = 0;
	} else {
		/* A directory: shown as its alias when the key dir+seg is a
		 * file too (that file came just before, at its own position),
		 * or when it is an empty directory made by its alias name. */
		unsigned char p[KFS_KEYBUF];

		memcpy(p, ret->key, ret->key_len);
		p[ret->key_len] = (unsigned char)sep;
		if (key_live(txn, ret->key, ret->key_len) ||
		    (!have_kv && kfs_dirset_by_alias(fs->dirs, p, ret->key_len + 1))) {
			ret->kind = KFS_ALIAS;
			kfs_encode_alias(seg, slen, sep, ret->name);
		} else {
			ret->kind = KFS_DIR;
			kfs_encode_segment(seg, slen, sep, ret->name);
		}
		ret->key[ret->key_len++] = (unsigned char)sep;
		ret->next[ret->next_len++] = (unsigned char)(sep + 1);
	}
	rc = 0;
out:
	kvc_cursor_close(cur);
	return rc;
}

static void set_time(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_sec--;
		ts->tv_nsec += 1000000000;
	}
}

uint64_t kfs_st_ino_file(uint64_t ino, uint64_t store_ino)
{
	/* Even numbers for files, odd ones for directories.  A record
	 * without a number (a format 1 store mounted read-only) gets one
	 * from the node id, far above what a store hands out. */
	return store_ino ? store_ino * 2 : (ino | (UINT64_C(1) << 61)) * 2;
}

uint64_t kfs_st_ino_dir(uint64_t ino)
{
	return ino * 2 - 1; /* the root (node 1) is 1 */
}

void kfs_stat_file(struct kfs *fs, uint64_t ino, const struct kvc_record *rec, struct stat *st)
{
	/* The writers' pending size, while they have one: the kernel's file
	 * size is theirs (SEEK_END, O_APPEND, fstat).  Readers of the
	 * committed value use direct I/O meanwhile, which ignores it.  And
	 * the mode, owner and times set since, which their commit stores. */
	struct kfs_pending p = {
		.len = rec->value_len,
		.mtime_ns = rec->mtime_ns,
	};
	bool pending = kfs_inode_pending(fs->inodes, ino, &p);
	int64_t ctime_ns = rec->ctime_ns > p.mtime_ns ? rec->ctime_ns : p.mtime_ns;

	memset(st, 0, sizeof(*st));
	st->st_ino = kfs_st_ino_file(ino, rec->ino);
	st->st_mode = S_IFREG | ((rec->flags & KVC_REC_HAS_MODE) ? rec->mode & 07777
							       : 0666 & ~fs->cfg.umask);
	st->st_nlink = 1;
	st->st_uid = (rec->flags & KVC_REC_HAS_OWNER) ? rec->uid : fs->cfg.uid;
	st->st_gid = (rec->flags & KVC_REC_HAS_OWNER) ? rec->gid : fs->cfg.gid;
	if (pending) {
		kfs_pending_apply(&p, st);
		if (p.ctime_ns > ctime_ns)
			ctime_ns = p.ctime_ns;
	}
	st->st_size = (off_t)p.len;
	/* stdio sizes its buffers by this: one request per 128 KiB, not 4 KiB. */
	st->st_blksize = 128 * 1024;
	st->st_blocks = (blkcnt_t)((p.len + 511) / 512);
	set_time(&st->st_mtim, p.mtime_ns);
	set_time(&st->st_atim, p.mtime_ns);
	set_time(&st->st_ctim, ctime_ns);
	/* These attributes are for the kernel: their size decides whether
	 * opens of this version may use the page cache (see file.c). */
	kfs_inode_attr_sent(fs->inodes, ino, rec->seq);
}

void kfs_pending_apply(const struct kfs_pending *p, struct stat *st)
{
	if (p->has_mode)
		st->st_mode = (st->st_mode & S_IFMT) | (p->mode & 07777);
	if (p->has_owner && p->uid != UINT32_MAX)
		st->st_uid = p->uid;
	if (p->has_owner && p->gid != UINT32_MAX)
		st->st_gid = p->gid;
}

void kfs_stat_dir(struct kfs *fs, uint64_t ino, const void *p, size_t len, struct stat *st)
{
	struct kfs_dir_attr a;

	if (!kfs_dirset_attr(fs->dirs, p, len, &a)) {
		a.mode = 0777 & ~fs->cfg.umask;
		a.uid = fs->cfg.uid;
		a.gid = fs->cfg.gid;
		a.mtime_ns = a.ctime_ns = fs->start_ns;
	}
	memset(st, 0, sizeof(*st));
	st->st_ino = kfs_st_ino_dir(ino);
	st->st_mode = S_IFDIR | (a.mode & 07777);
	/* 1, not 2 + subdirectories: counting them would cost a listing, and
	 * 1 tells find and fts not to infer leaf directories from it. */
	st->st_nlink = 1;
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_blksize = 4096;
	set_time(&st->st_mtim, a.mtime_ns);
	set_time(&st->st_atim, a.mtime_ns);
	set_time(&st->st_ctim, a.ctime_ns);
}

void kfs_dir_touch(struct kfs *fs, uint64_t ino, const void *p, size_t len)
{
	struct kfs_dir_attr a;
	struct stat st;

	kfs_stat_dir(fs, 0, p, len, &st);
	a.mode = st.st_mode & 07777;
	a.uid = st.st_uid;
	a.gid = st.st_gid;
	a.mtime_ns = a.ctime_ns = kvc_now_ns();
	kfs_dirset_set_attr(fs->dirs, p, len, &a); /* -ENOMEM: the times stay */
	if (!fs->se)
		return;
	uint64_t dir = kfs_inode_find(fs->inodes, KFS_DIR, p, len);
	uint64_t alias = kfs_inode_find(fs->inodes, KFS_ALIAS, p, len);

	if (ino && ino != dir && ino != alias)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	if (dir)
		fuse_lowlevel_notify_inval_inode(fs->se, dir, -1, 0);
	if (alias)
		fuse_lowlevel_notify_inval_inode(fs->se, alias, -1, 0);
}

double kfs_cache_timeout(const struct kfs *fs, const struct kvc_record *rec)
{
	double t = fs->cfg.cache_ttl;

	if (rec && rec->expiration) {
		double left = (double)rec->expiration - (double)kvc_now_ns() / 1e9;

		if (left < t)
			t = left > 0 ? left : 0;
	}
	return t;
}

int kfs_entry(struct kfs *fs, enum kfs_kind kind, const void *key, size_t key_len,
	      const struct kvc_record *rec, struct fuse_entry_param *e)
{
	uint64_t ino;
	int rc = kfs_inode_ref(fs->inodes, kind, key, key_len, &ino);

	if (rc < 0)
		return rc;
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	if (kind == KFS_FILE)
		kfs_stat_file(fs, ino, rec, &e->attr);
	else
		kfs_stat_dir(fs, ino, key, key_len, &e->attr);
	e->attr_timeout = e->entry_timeout = kfs_cache_timeout(fs, kind == KFS_FILE ? rec : NULL);
	return 0;
}

int kfs_ino(struct kfs *fs, fuse_ino_t ino, struct kfs_key *ret)
{
	return kfs_inode_get(fs->inodes, ino, &ret->kind, ret->key, &ret->len);
}

int kfs_dir_of(struct kfs *fs, fuse_ino_t ino, struct kfs_key *dir)
{
	int rc = kfs_ino(fs, ino, dir);

	if (rc < 0)
		return rc;
	return dir->kind == KFS_FILE ? -ENOTDIR : 0;
}

int kfs_name_begin(struct kfs *fs, fuse_ino_t parent, const char *name, struct kfs_key *dir,
		   kvc_txn **ret_txn, struct kfs_node *ret)
{
	kvc_txn *txn;
	int rc = kfs_dir_of(fs, parent, dir);

	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);
	if (rc < 0)
		return rc;
	rc = kfs_resolve(fs, txn, dir->key, dir->len, name, ret);
	if (rc < 0) {
		kvc_txn_abort(txn);
		return rc;
	}
	*ret_txn = txn;
	return 0;
}

int kfs_new_begin(struct kfs *fs, fuse_ino_t parent, struct kfs_key *dir, kvc_txn **ret_txn)
{
	int rc = kfs_dir_of(fs, parent, dir);

	if (rc == 0 && fs->cfg.ro)
		rc = -EROFS;
	if (rc == 0)
		rc = kvc_txn_begin(fs->store, KVC_TXN_READ, ret_txn);
	return rc;
}

int kfs_record_begin(struct kfs *fs, const void *key, size_t len, kvc_txn **ret_txn,
		     struct kvc_record *ret)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(fs->store, KVC_TXN_READ, &txn);

	if (rc < 0)
		return rc;
	rc = kvc_get(txn, key, len, KVC_GET_NO_VALUE, ret);
	if (rc < 0) {
		kvc_txn_abort(txn);
		return rc;
	}
	*ret_txn = txn;
	return 0;
}

int kfs_write_versions(kvc_txn *txn, const unsigned char *key, size_t len,
		       const struct kvc_write *w, uint64_t *ret_from, uint64_t *ret_to)
{
	struct kvc_record rec;
	int rc = kvc_get(txn, key, len, KVC_GET_NO_VALUE, &rec);

	if (rc == 0) {
		*ret_from = rec.seq;
		rc = kvc_write(txn, key, len, w);
	}
	if (rc == 0)
		rc = kvc_get(txn, key, len, KVC_GET_NO_VALUE, &rec);
	if (rc == 0)
		*ret_to = rec.seq;
	return rc;
}
