/*
 * store: a store's life and its transactions: opening (creating a new
 * store, checking or upgrading an old one) and closing, the LMDB
 * environment and the growth and resizing of its map, the pool of read
 * transactions, begin/commit/abort, the space reserve that keeps deletes
 * possible on a full filesystem, and the one place LMDB's codes become
 * -errno.  Committing writes through kvc_write_txn (retry after growth,
 * group commit) is group.c; what a transaction reads and writes is
 * record.c and the modules above it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_MAP_SIZE (1ull << 30)
#define MAX_READERS 510u

/*
 * Bytes of the data file kept allocated past the pages in use.  LMDB
 * writes copy-on-write, so even a delete needs fresh pages; on a full
 * filesystem they come from this reserve (LMDB appends past its last page,
 * into blocks the file already owns).  Writes other than deletes are
 * refused once the filesystem cannot top it up past half: the half left
 * holds the pages of dozens of deletes, and pages a delete frees are
 * reused by later transactions.
 */
#define SPACE_RESERVE (1ull << 20)
/* Map growth rounds the filesystem's capacity up to this. */
#define MAP_ROUND (1ull << 20)

/* ------------------------------------------------------------- errors */

int kvc_set_errmsg(kvc_txn *txn, int err, const char *fmt, ...)
{
	if (txn) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(txn->errmsg, sizeof(txn->errmsg), fmt, ap);
		va_end(ap);
	}
	return err;
}

/* The bytes the filesystem under @s will still give an unprivileged
 * writer.  @return 0 or -errno */
static int fs_avail(const kvc_store *s, uint64_t *ret)
{
	struct statvfs v;
	if (statvfs(s->path, &v))
		return -errno;
	*ret = (uint64_t)v.f_bavail * v.f_frsize;
	return 0;
}

/* Whether the filesystem under @s has less room than the reserve: a write
 * that failed there failed for want of space. */
static bool store_fs_full(const kvc_store *s)
{
	uint64_t avail;
	return fs_avail(s, &avail) == 0 && avail < SPACE_RESERVE;
}

int kvc_space_refuse(kvc_txn *txn)
{
	return kvc_set_errmsg(txn, -ENOSPC,
			      "no space left on device (the store's filesystem is full)");
}

int kvc_lmdb_err(kvc_txn *txn, int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		if (txn)
			txn->map_full = true;
		return kvc_set_errmsg(txn, -ENOSPC, "store map is full");
	case MDB_TXN_FULL:
		return kvc_set_errmsg(txn, -ENOSPC, "transaction has too many changes");
	case MDB_READERS_FULL:
		return kvc_set_errmsg(txn, -EAGAIN, "too many concurrent readers");
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
	case MDB_INCOMPATIBLE:
		return kvc_set_errmsg(txn, -EPROTO, "not a store of a known format");
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return kvc_space_refuse(txn);
	case EIO:
		/* LMDB reports a short write as EIO: on a filesystem that is
		 * (nearly) full, that was the full disk. */
		if (txn && store_fs_full(txn->store))
			return kvc_space_refuse(txn);
		return kvc_set_errmsg(txn, -EIO, "store I/O error");
	case MDB_DBS_FULL:
	case MDB_TLS_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_PANIC:
		return kvc_set_errmsg(txn, -EIO, "store error: %s", mdb_strerror(rc));
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/* ------------------------------------------------------------ the map */

static int open_dbs(kvc_store *s, MDB_txn *t, unsigned flags);

/* Create and open the environment of @s with a map of @map_size bytes (0:
 * the size the store last had).  @return 0 or -errno (s->env may be set) */
static int env_open(kvc_store *s, size_t map_size)
{
	int rc = mdb_env_create(&s->env);
	if (rc) {
		s->env = NULL;
		return kvc_lmdb_err(NULL, rc);
	}
	if ((rc = mdb_env_set_maxdbs(s->env, 8)) ||
	    (rc = mdb_env_set_maxreaders(s->env, MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(s->env, map_size)) ||
	    (rc = mdb_env_open(s->env, s->path, s->env_flags, 0644)))
		return kvc_lmdb_err(NULL, rc);
	return 0;
}

/*
 * LMDB unmaps before it maps again, and a map it could not get leaves the
 * environment with none: open it anew at @size, the size it had (0: what
 * the store says), and find the databases again.  Called as map_resize is.
 * @return 0, or -ENOMEM (the handle is lost)
 */
static int env_reopen(kvc_store *s, size_t size)
{
	mdb_env_close(s->env);
	s->env = NULL;
	MDB_txn *t = NULL;
	int rc = env_open(s, size);
	if (!rc)
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (!rc) {
		rc = open_dbs(s, t, 0);
		if (rc)
			mdb_txn_abort(t);
		else
			rc = mdb_txn_commit(t);
	}
	if (rc) {
		s->map_lost = true;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Resize the map to @size (0: adopt the size another process gave it).
 * Called with resize_lock held exclusively and no transaction of @s live.
 * If LMDB cannot map the new size, the environment is opened anew at the
 * size it had, so the handle keeps working.
 * @return 0, -ENOMEM (could not map the new size), -errno
 */
static int map_resize(kvc_store *s, uint64_t size)
{
	pthread_mutex_lock(&s->pool_lock);
	while (s->npool)
		mdb_txn_abort(s->pool[--s->npool]);
	pthread_mutex_unlock(&s->pool_lock);
	MDB_envinfo info;
	size_t old = mdb_env_info(s->env, &info) ? 0 : info.me_mapsize;
	int rc = mdb_env_set_mapsize(s->env, (size_t)size);
	if (!rc)
		return 0;
	/* EINVAL comes before the unmap (a write txn live, which cannot be
	 * here); any other failure is mapping's, with the map gone (even
	 * mdb_env_info would read it). */
	if (rc == EINVAL)
		return -EINVAL;
	env_reopen(s, old);
	return -ENOMEM;
}

/*
 * Grow the map after LMDB said MDB_MAP_FULL: double it, but never past
 * what the filesystem under the store can hold (the data file plus the
 * filesystem's free space), which also keeps the request within what the
 * address space can map.
 * @return 0 (grown: retry), -ENOSPC (the filesystem has no room for a
 *         bigger store), -ENOMEM (the map was lost), -errno
 */
int kvc_store_grow(kvc_store *s)
{
	pthread_rwlock_wrlock(&s->resize_lock);
	MDB_envinfo info;
	int fd;
	struct stat fst;
	uint64_t avail = 0;
	int rc = s->map_lost ? -ENOMEM : 0;
	if (!rc && (mdb_env_info(s->env, &info) || mdb_env_get_fd(s->env, &fd)))
		rc = -EIO;
	if (!rc && fstat(fd, &fst))
		rc = -errno;
	if (!rc)
		rc = fs_avail(s, &avail);
	if (!rc) {
		uint64_t cap = (uint64_t)fst.st_size + avail;
		cap = (cap + MAP_ROUND - 1) / MAP_ROUND * MAP_ROUND;
		uint64_t want = info.me_mapsize * 2;
		if (want > cap)
			want = cap;
		rc = want > info.me_mapsize ? map_resize(s, want) : -ENOSPC;
	}
	pthread_rwlock_unlock(&s->resize_lock);
	return rc;
}

/* The message of a map growth that failed with @grc. */
const char *kvc_growth_errmsg(int grc)
{
	return grc == -ENOSPC ? "no space left on device (the store's filesystem is full)"
			      : "the store's map could not be resized";
}

/* ------------------------------------------------------- transactions */

/*
 * The transactions this thread holds, one slot per store.  A second
 * transaction on a store in the same thread could wait forever: a map
 * resize (ours or one adopted from another process) waits for every
 * transaction of the handle to end, this thread's first one included, and
 * a waiting resize blocks new transactions.  kvc_txn_begin refuses it with
 * -EDEADLK instead, always: the check costs a few compares, and a refusal
 * names the bug where a hang would hide it.  A thread holding transactions
 * on more than HELD_MAX stores at once goes unchecked for the rest.
 */
#define HELD_MAX 8
static __thread const kvc_store *held[HELD_MAX];

bool kvc_held_by_thread(const kvc_store *s)
{
	for (unsigned i = 0; i < HELD_MAX; i++)
		if (held[i] == s)
			return true;
	return false;
}

static void held_set(const kvc_store *from, const kvc_store *to)
{
	for (unsigned i = 0; i < HELD_MAX; i++) {
		if (held[i] == from) {
			held[i] = to;
			return;
		}
	}
}

static int txn_begin_raw(kvc_store *s, bool write, MDB_txn **ret)
{
	for (;;) {
		MDB_txn *t = NULL;
		int rc = 0;
		if (s->map_lost)
			return ENOMEM;
		if (!write) {
			pthread_mutex_lock(&s->pool_lock);
			if (s->npool)
				t = s->pool[--s->npool];
			pthread_mutex_unlock(&s->pool_lock);
		}
		if (t) {
			rc = mdb_txn_renew(t);
			if (rc)
				mdb_txn_abort(t);
		} else {
			rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t);
		}
		if (rc != MDB_MAP_RESIZED) {
			if (rc == 0)
				*ret = t;
			return rc;
		}
		/* Another process grew the map: adopt its size, with no txn
		 * live (the caller holds no other one: see held above). */
		pthread_rwlock_unlock(&s->resize_lock);
		pthread_rwlock_wrlock(&s->resize_lock);
		rc = s->map_lost ? -ENOMEM : map_resize(s, 0);
		pthread_rwlock_unlock(&s->resize_lock);
		pthread_rwlock_rdlock(&s->resize_lock);
		if (rc)
			return -rc;
	}
}

/*
 * Keep SPACE_RESERVE bytes of the data file allocated past the pages in
 * use, topped up once half is used, so most commits need only the fstat.
 * Called in a write transaction (no other writer can move the last page).
 * @return 0, or -ENOSPC when the filesystem cannot give the reserve back
 */
static int space_reserve(kvc_store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	int fd;
	struct stat fst;
	if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st) ||
	    mdb_env_get_fd(s->env, &fd) || fstat(fd, &fst))
		return 0; /* cannot tell: the commit will find out */
	off_t used = (off_t)((info.me_last_pgno + 1) * st.ms_psize);
	if (fst.st_size >= used + (off_t)SPACE_RESERVE / 2)
		return 0;
	return posix_fallocate(fd, used, SPACE_RESERVE) ? -ENOSPC : 0;
}

int kvc_txn_begin(kvc_store *store, int kind, kvc_txn **ret_txn)
{
	if (!store || !ret_txn)
		return -EINVAL;
	if (kind == KVC_TXN_WRITE && store->readonly)
		return -EROFS;
	if (kvc_held_by_thread(store))
		return -EDEADLK;
	kvc_txn *txn = calloc(1, sizeof(*txn));
	if (!txn)
		return -ENOMEM;
	txn->store = store;
	txn->write = kind == KVC_TXN_WRITE;
	pthread_rwlock_rdlock(&store->resize_lock);
	int rc = txn_begin_raw(store, txn->write, &txn->mdb);
	if (rc) {
		pthread_rwlock_unlock(&store->resize_lock);
		free(txn);
		return kvc_lmdb_err(NULL, rc);
	}
	held_set(NULL, store);
	if (txn->write)
		txn->low_space = space_reserve(store) < 0;
	txn->now_ns = kvc_now_ns();
	*ret_txn = txn;
	return 0;
}

void kvc_txn_free(kvc_txn *txn)
{
	held_set(txn->store, NULL);
	pthread_rwlock_unlock(&txn->store->resize_lock);
	kvc_txn_values_free(txn);
	free(txn->scratch);
	free(txn);
}

static void txn_end_read(kvc_txn *txn)
{
	kvc_store *s = txn->store;
	mdb_txn_reset(txn->mdb);
	pthread_mutex_lock(&s->pool_lock);
	if (s->npool < KVC_POOL_MAX) {
		s->pool[s->npool++] = txn->mdb;
		txn->mdb = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	if (txn->mdb)
		mdb_txn_abort(txn->mdb);
}

void kvc_txn_abort(kvc_txn *txn)
{
	if (!txn)
		return;
	if (txn->write)
		mdb_txn_abort(txn->mdb);
	else
		txn_end_read(txn);
	kvc_txn_free(txn);
}

/* Commit, leaving @txn allocated so its flags and message can be read.
 * The MDB_txn is gone either way. */
int kvc_txn_commit_keep(kvc_txn *txn)
{
	int rc = 0;
	if (txn->meta_dirty) {
		rc = kvc_meta_put_u64(txn, "seq", txn->seq);
		if (!rc)
			rc = kvc_meta_put_u64(txn, "hlc", txn->hlc);
		if (!rc)
			rc = kvc_meta_put_u64(txn, "ino", txn->ino);
		if (!rc && txn->chunk)
			rc = kvc_meta_put_u64(txn, "chunk", txn->chunk);
	}
	if (rc)
		mdb_txn_abort(txn->mdb);
	else
		rc = kvc_lmdb_err(txn, mdb_txn_commit(txn->mdb));
	if (rc == 0 && txn->store->sync != KVC_SYNC_ALWAYS)
		atomic_fetch_add(&txn->store->committed, 1);
	txn->mdb = NULL;
	return rc;
}

int kvc_txn_commit(kvc_txn *txn)
{
	if (!txn)
		return -EINVAL;
	if (!txn->write) {
		kvc_txn_abort(txn);
		return 0;
	}
	int rc = kvc_txn_commit_keep(txn);
	kvc_txn_free(txn);
	return rc;
}

const char *kvc_txn_errmsg(const kvc_txn *txn)
{
	return txn ? txn->errmsg : "";
}

/* ------------------------------------------------------------ opening */

static int random_u64(uint64_t *ret)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		return -EIO;
	*ret = v ? v : 1;
	return 0;
}

static int open_dbs(kvc_store *s, MDB_txn *t, unsigned flags)
{
	int rc;
	if ((rc = mdb_dbi_open(t, "rec", flags, &s->rec)) ||
	    (rc = mdb_dbi_open(t, "exp", flags, &s->exp)) ||
	    (rc = mdb_dbi_open(t, "tomb", flags, &s->tomb)) ||
	    (rc = mdb_dbi_open(t, "feed", flags, &s->feed)) ||
	    (rc = mdb_dbi_open(t, "meta", flags, &s->meta)))
		return rc;
	/* Stores before format 3 have no chunk database; a read-only handle
	 * of one goes without (none of its records is chunked). */
	rc = mdb_dbi_open(t, "chunk", flags, &s->chunk);
	s->have_chunk_db = rc == 0;
	if (rc == MDB_NOTFOUND && !(flags & MDB_CREATE))
		rc = 0;
	if (rc)
		return rc;
	MDB_stat st;
	rc = mdb_env_stat(s->env, &st);
	if (!rc)
		s->chunk_size = kvc_chunk_size_for(st.ms_psize);
	return rc;
}

/* Create the databases and identity of a new store, or check an old one's. */
static int store_init(kvc_store *s, const struct kvc_open_opts *o)
{
	kvc_txn txn = {.store = s, .write = !s->readonly};
	int rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn.mdb);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map since we opened: adopt its size. */
		rc = map_resize(s, 0);
		if (rc)
			return rc;
		rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn.mdb);
	}
	if (rc)
		return kvc_lmdb_err(NULL, rc);
	rc = open_dbs(s, txn.mdb, s->readonly ? 0 : MDB_CREATE);
	if (rc) {
		rc = rc == MDB_NOTFOUND ? -EPROTO : kvc_lmdb_err(NULL, rc);
		goto out_abort;
	}
	uint64_t format = 0, min_ttl = KVC_MIN_TTL_DEFAULT;
	rc = kvc_meta_get_u64(&txn, "format", &format);
	if (rc == -ENOENT && !s->readonly) {
		if ((rc = random_u64(&s->id.node_id)) || (rc = random_u64(&s->id.epoch)) ||
		    (rc = kvc_meta_put_u64(&txn, "format", KVC_FORMAT_VERSION)) ||
		    (rc = kvc_meta_put_u64(&txn, "node_id", s->id.node_id)) ||
		    (rc = kvc_meta_put_u64(&txn, "epoch", s->id.epoch)) ||
		    (rc = kvc_meta_put_u64(&txn, "min_ttl", KVC_MIN_TTL_DEFAULT)))
			goto out_abort;
		format = KVC_FORMAT_VERSION;
	} else if (rc) {
		rc = rc == -ENOENT ? -EPROTO : rc;
		goto out_abort;
	}
	if (format == 1 && !s->readonly) {
		rc = kvc_upgrade_v1(&txn);
		if (rc)
			goto out_abort;
	} else if (format == 2 && !s->readonly) {
		/* Format 3 adds the chunk database, made by open_dbs. */
		rc = kvc_meta_put_u64(&txn, "format", KVC_FORMAT_VERSION);
		if (rc)
			goto out_abort;
	} else if (format < 1 || format > KVC_FORMAT_VERSION) {
		rc = -EPROTO;
		goto out_abort;
	}
	if ((rc = kvc_meta_get_u64(&txn, "node_id", &s->id.node_id)) ||
	    (rc = kvc_meta_get_u64(&txn, "epoch", &s->id.epoch)))
		goto out_abort;
	rc = kvc_meta_get_u64(&txn, "min_ttl", &min_ttl);
	if (rc && rc != -ENOENT)
		goto out_abort;
	s->min_ttl_override = o && o->min_ttl_set;
	s->min_ttl = s->min_ttl_override ? o->min_ttl : (uint32_t)min_ttl;
	rc = kvc_lmdb_err(NULL, mdb_txn_commit(txn.mdb));
	return rc;
out_abort:
	mdb_txn_abort(txn.mdb);
	return rc;
}

/* Whether directory @path holds nothing but what an interrupted first
 * open may have left (LMDB's lock file).  @return 1, 0, or -errno */
static int dir_is_bare(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int bare = 1;
	struct dirent *e;
	while (bare && (e = readdir(d)))
		bare = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		       !strcmp(e->d_name, "lock.mdb");
	closedir(d);
	return bare;
}

/* mkdir -p: a store may be named in a directory that does not exist yet. */
static int mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int kvc_open(const char *path, const struct kvc_open_opts *opts, kvc_store **ret_store,
	     bool *ret_created)
{
	struct kvc_open_opts none = {0};
	const struct kvc_open_opts *o = opts ? opts : &none;
	if (!path || !*path || !ret_store)
		return -EINVAL;
	if (o->min_ttl_set && o->min_ttl == 0)
		return -EINVAL;

	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (exists && !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!exists) {
		if (o->no_create || o->readonly)
			return -ENOENT;
		int rc = mkdir_parents(path);
		if (rc)
			return rc;
	}
	char data_path[PATH_MAX];
	snprintf(data_path, sizeof(data_path), "%s/data.mdb", path);
	bool created = access(data_path, F_OK) != 0;
	if (created && (o->no_create || o->readonly))
		return -ENOENT;
	if (created && exists) {
		/* A new store only where there is nothing: a STORE mistyped as
		 * a directory of other files (/var/lib) is never filled. */
		int rc = dir_is_bare(path);
		if (rc <= 0)
			return rc < 0 ? rc : -ENOTEMPTY;
	}

	kvc_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->readonly = o->readonly;
	s->sync = o->sync;
	s->group = o->group_commit && !o->readonly;
	pthread_mutex_init(&s->pool_lock, NULL);
	pthread_mutex_init(&s->group_lock, NULL);
	pthread_cond_init(&s->group_done, NULL);
	s->group_tail = &s->group_head;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->resize_lock, &ra);
	pthread_rwlockattr_destroy(&ra);

	int rc = -ENOMEM;
	s->path = realpath(path, NULL);
	if (!s->path) {
		rc = -errno;
		goto out_free;
	}
	s->env_flags = MDB_NOTLS;
	if (o->readonly)
		s->env_flags |= MDB_RDONLY;
	/* batch: the data pages of a commit reach the disk before its meta
	 * page is written, so a power loss can undo the last commits but
	 * never tear the tree (LMDB's NOMETASYNC); none: nothing is flushed,
	 * and a power loss can leave a meta page pointing at pages that never
	 * reached the disk (see docs/kvfs.md, "Durability"). */
	if (o->sync == KVC_SYNC_BATCH)
		s->env_flags |= MDB_NOMETASYNC;
	else if (o->sync == KVC_SYNC_NONE)
		s->env_flags |= MDB_NOSYNC | MDB_NOMETASYNC;
	rc = env_open(s, o->map_size ? o->map_size : DEFAULT_MAP_SIZE);
	if (rc)
		goto out_free;
	int dead;
	mdb_reader_check(s->env, &dead);
	rc = store_init(s, o);
	if (rc)
		goto out_free;
	if (ret_created)
		*ret_created = created;
	*ret_store = s;
	return 0;
out_free:
	kvc_close(s);
	return rc;
}

void kvc_close(kvc_store *s)
{
	if (!s)
		return;
	while (s->npool)
		mdb_txn_abort(s->pool[--s->npool]);
	if (s->env) {
		if (s->sync != KVC_SYNC_ALWAYS)
			kvc_store_sync(s); /* only if a commit is unflushed */
		mdb_env_close(s->env);
	}
	pthread_rwlock_destroy(&s->resize_lock);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->group_lock);
	pthread_cond_destroy(&s->group_done);
	free(s->path);
	free(s);
}

int kvc_store_sync(kvc_store *store)
{
	if (store->readonly)
		return 0;
	/* Read before the flush, recorded after it: the commits counted by
	 * then are on disk.  A caller that finds synced at committed knows
	 * every commit before its call is; a commit counted later is flushed
	 * by a later call.  synced only moves up, whichever flush ends last. */
	uint_fast64_t n = atomic_load(&store->committed);
	if (atomic_load(&store->synced) >= n)
		return 0;
	pthread_rwlock_rdlock(&store->resize_lock);
	int rc = store->map_lost ? -ENOMEM : kvc_lmdb_err(NULL, mdb_env_sync(store->env, 1));
	pthread_rwlock_unlock(&store->resize_lock);
	uint_fast64_t had = atomic_load(&store->synced);
	while (rc == 0 && had < n && !atomic_compare_exchange_weak(&store->synced, &had, n))
		;
	return rc;
}

const char *kvc_store_path(const kvc_store *store)
{
	return store->path;
}

uint32_t kvc_store_min_ttl(const kvc_store *store)
{
	return store->min_ttl;
}

static int set_min_ttl_fn(kvc_txn *txn, void *arg)
{
	return kvc_meta_put_u64(txn, "min_ttl", *(uint32_t *)arg);
}

int kvc_store_set_min_ttl(kvc_store *store, uint32_t min_ttl)
{
	if (min_ttl == 0)
		return -EINVAL;
	int rc = kvc_write_txn(store, set_min_ttl_fn, &min_ttl, NULL, 0);
	if (!rc && !store->min_ttl_override)
		store->min_ttl = min_ttl;
	return rc;
}

void kvc_store_identity(const kvc_store *store, struct kvc_identity *ret)
{
	*ret = store->id;
}

