/*
 * cmd_miniflare: import a namespace from wrangler's local state (Miniflare,
 * `wrangler ... --local --persist-to DIR`) and export one to it, so a
 * namespace moves between `wrangler dev` and a kvfs store with its values,
 * metadata and expirations exact.  miniflare.h says where the files are.
 *
 * import reads the namespace's SQLite database read-only in one read
 * transaction (a consistent snapshot even while wrangler runs: Miniflare's
 * databases are in WAL mode, where a reader never blocks or is blocked by
 * the writer) and writes every live entry in ONE kvcore write transaction:
 * all or nothing, kvcore's rules applied to each key.  Local states are
 * developer data (thousands of keys, not millions), so one transaction
 * costs little and a refused key leaves the store as it was.  Entries whose
 * expiration has passed are skipped and counted, as Miniflare would not
 * return them.  Keys of the store that are not in the state are kept: an
 * import merges.
 *
 * export makes the namespace in the state exactly the store's live keys
 * (or those under --prefix): its rows are replaced, other namespaces are
 * not touched.  New values go into new blob files first (ids Miniflare
 * could have made, so nothing else can name them), flushed to disk, and
 * only then does one SQLite transaction replace the rows; the old blobs
 * are removed after it commits.  A crash leaves either the old rows or
 * the new ones, at worst with blob files nothing refers to, which
 * Miniflare also leaves behind and ignores.  A namespace the state does
 * not have yet gets a database built beside its final name and renamed
 * into place.  An existing database is changed in place rather than
 * replaced by a renamed file: workerd leaves its write-ahead log beside the
 * database after it exits, and SQLite would apply that log to a new file
 * put under the same name.
 */
#include "kvctl.h"
#include "miniflare.h"

#include "common/buf.h"
#include "common/bulk.h"
#include "common/progress.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Miniflare's table, exactly as its KeyValueStorage creates it. */
static const char mf_schema[] =
	"CREATE TABLE IF NOT EXISTS _mf_entries (\n"
	"  key TEXT PRIMARY KEY,\n"
	"  blob_id TEXT NOT NULL,\n"
	"  expiration INTEGER,\n"
	"  metadata TEXT\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS _mf_entries_expiration_idx ON _mf_entries(expiration);\n";

/* ------------------------------------------------------------- the state */

/* The namespace ids that have a blob directory in @kv_dir, for a message. */
static void list_namespaces(const char *kv_dir, char *out, size_t size)
{
	size_t used = 0;
	out[0] = 0;
	DIR *d = opendir(kv_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, MF_KV_UNIQUE_KEY))
			continue;
		int n = snprintf(out + used, size - used, "%s'%s'", used ? ", " : "", e->d_name);
		if (n < 0 || (size_t)n >= size - used) {
			out[used] = 0;
			break;
		}
		used += (size_t)n;
	}
	closedir(d);
}

/* Check the namespace id and find the paths of its files under @dir. */
static int state_paths(const char *dir, const char *ns, struct mf_paths *ret)
{
	if (mf_namespace_check(ns))
		return failure("invalid namespace id '%s': expected 1 to 255 letters, digits, "
			       "'-', '_' or '.'", ns);
	int rc = mf_paths_get(dir, ns, ret);
	if (rc == -ENAMETOOLONG)
		return failure("Miniflare state path '%s' is too long", dir);
	if (rc)
		return failure("cannot derive the files of namespace '%s': %s", ns, strerror(-rc));
	return 0;
}

/* Open the namespace's database of state @dir read-only. */
static int state_open_read(const char *dir, const char *ns, const struct mf_paths *p,
			   sqlite3 **ret)
{
	struct stat st;
	if (stat(dir, &st))
		return failure("cannot read Miniflare state '%s': %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return failure("cannot read Miniflare state '%s': %s", dir, strerror(ENOTDIR));
	if (stat(p->kv_dir, &st))
		return failure("'%s' holds no Miniflare KV state (no %s: %s)", dir, p->kv_dir,
			       strerror(errno));
	if (stat(p->db, &st)) {
		int err = errno;
		char found[1024];
		list_namespaces(p->kv_dir, found, sizeof(found));
		if (err == ENOENT)
			return failure("no namespace '%s' in Miniflare state '%s' (no %s)%s%s", ns,
				       dir, p->db, found[0] ? "; namespaces there: " : "", found);
		return failure("cannot read '%s': %s", p->db, strerror(err));
	}
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(p->db, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		failure("cannot open '%s': %s", p->db, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return EXIT_FAILURE;
	}
	sqlite3_busy_timeout(db, 10000);
	*ret = db;
	return 0;
}

/* The failure of a SQLite call on @db about file @path: said as @what,
 * unless the file is not a database of Miniflare's shape at all. */
static int db_failure(sqlite3 *db, const char *path, const char *what)
{
	int code = sqlite3_errcode(db);
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT || code == SQLITE_ERROR)
		what = "not a Miniflare KV database:";
	return failure("%s '%s': %s", what, path, sqlite3_errmsg(db));
}

/* ---------------------------------------------------------------- import */

struct import_ctx {
	sqlite3_stmt *rows;
	const struct mf_paths *paths;
	const char *ns;
	int64_t now_ms;
	uint32_t min_ttl;
	struct kt_progress *progress;
	uint64_t done, imported, expired;
	char msg[MSG_MAX];
};

/* The message of the entry at the current row failing with @why. */
static int import_fail(struct import_ctx *c, const void *key, size_t key_len, int rc,
		       const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int import_fail(struct import_ctx *c, const void *key, size_t key_len, int rc,
		       const char *fmt, ...)
{
	char shown[100], why[MSG_MAX - 200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(c->msg, sizeof(c->msg), "key '%s' of namespace '%s': %s",
		 kt_bulk_show_key(key, key_len, shown, sizeof(shown)), c->ns, why);
	return rc;
}

/*
 * Read the value in blob file @id into a new buffer.
 * @return 0, -ENOENT (missing), -EFBIG (over 25 MiB: *ret_len its size),
 *         -ENOMEM, -errno of the read
 */
static int read_blob(const struct mf_paths *p, const char *id, unsigned char **ret,
		     size_t *ret_len, char *path, size_t path_size)
{
	snprintf(path, path_size, "%s/%s", p->blobs_dir, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	unsigned char *buf = NULL;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out_close;
	}
	if (kvc_value_len_check((uint64_t)st.st_size, NULL, 0)) {
		*ret_len = (size_t)st.st_size;
		rc = -EFBIG;
		goto out_close;
	}
	size_t len = (size_t)st.st_size, got = 0;
	buf = malloc(len ? len : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out_close;
	}
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO; /* shrank while read */
			goto out_close;
		}
		got += (size_t)n;
	}
	*ret = buf;
	*ret_len = len;
	buf = NULL;
out_close:
	free(buf);
	close(fd);
	return rc;
}

/* Import the row at @c->rows.  @return 0, or -errno with c->msg set */
static int import_row(kvc_txn *txn, struct import_ctx *c)
{
	sqlite3_stmt *s = c->rows;
	/* Types first: a value's type is undefined after a conversion. */
	int key_type = sqlite3_column_type(s, 0), exp_type = sqlite3_column_type(s, 2);
	int meta_type = sqlite3_column_type(s, 3);
	if (key_type == SQLITE_NULL)
		return import_fail(c, "", 0, -EINVAL, "a row has no key");
	const void *key = sqlite3_column_blob(s, 0);
	size_t key_len = (size_t)sqlite3_column_bytes(s, 0);
	if (!key)
		key = "";
	const void *blob_id = sqlite3_column_blob(s, 1);
	size_t blob_id_len = (size_t)sqlite3_column_bytes(s, 1);
	if (!mf_blob_id_valid(blob_id, blob_id_len))
		return import_fail(c, key, key_len, -EINVAL,
				   "its blob id is not one Miniflare makes (hex digits)");
	char id[MF_BLOB_ID_MAX + 1];
	memcpy(id, blob_id, blob_id_len);
	id[blob_id_len] = 0;

	int64_t expiration = 0; /* Unix seconds, 0 = none */
	if (exp_type == SQLITE_INTEGER || exp_type == SQLITE_FLOAT) {
		int64_t ms;
		if (exp_type == SQLITE_INTEGER) {
			ms = sqlite3_column_int64(s, 2);
		} else {
			double d = sqlite3_column_double(s, 2);
			if (!(d > -9e18 && d < 9e18))
				return import_fail(c, key, key_len, -EINVAL,
						   "its expiration is out of range");
			ms = (int64_t)floor(d);
		}
		/* Miniflare: expired once expiration <= now; it reports floor(ms / 1000) s. */
		if (ms / 1000 <= c->now_ms / 1000) {
			c->expired++;
			return 0;
		}
		expiration = ms / 1000;
	} else if (exp_type != SQLITE_NULL) {
		return import_fail(c, key, key_len, -EINVAL, "its expiration is not a number");
	}
	const char *metadata = NULL;
	size_t metadata_len = 0;
	if (meta_type != SQLITE_NULL) {
		metadata = (const char *)sqlite3_column_text(s, 3);
		metadata_len = (size_t)sqlite3_column_bytes(s, 3);
		if (!metadata)
			return import_fail(c, key, key_len, -ENOMEM, "%s", strerror(ENOMEM));
	}

	unsigned char *value = NULL;
	size_t value_len = 0;
	char path[sizeof(c->paths->blobs_dir) + MF_BLOB_ID_MAX + 2];
	int rc = read_blob(c->paths, id, &value, &value_len, path, sizeof(path));
	if (rc == -ENOENT)
		return import_fail(c, key, key_len, rc, "its value's file %s is missing", path);
	if (rc == -EFBIG) {
		char why[128];
		kvc_value_len_check(value_len, why, sizeof(why));
		return import_fail(c, key, key_len, rc, "%s", why);
	}
	if (rc)
		return import_fail(c, key, key_len, rc, "cannot read its value's file %s: %s", path,
				   strerror(-rc));
	struct kvc_write w = {
		.set = KVC_SET_VALUE | KVC_SET_METADATA | KVC_SET_EXPIRATION,
		.value = value,
		.value_len = value_len,
		.metadata = metadata,
		.metadata_len = metadata_len,
		.expiration = expiration,
	};
	rc = kvc_write(txn, key, key_len, &w);
	free(value);
	if (rc == -EINVAL && expiration && expiration < c->now_ms / 1000 + c->min_ttl)
		return import_fail(c, key, key_len, rc,
				   "%s (it expires in %" PRId64 " s; `kvctl --min-ttl 1` imports it)",
				   kvc_txn_errmsg(txn), expiration - c->now_ms / 1000);
	if (rc)
		return import_fail(c, key, key_len, rc, "%s",
				   *kvc_txn_errmsg(txn) ? kvc_txn_errmsg(txn) : strerror(-rc));
	c->imported++;
	return 0;
}

/* Every row, in one write transaction; run again from the first row when
 * kvcore grows the map and retries. */
static int import_fn(kvc_txn *txn, void *arg)
{
	struct import_ctx *c = arg;
	c->msg[0] = 0;
	c->done = c->imported = c->expired = 0;
	sqlite3_reset(c->rows);
	int rc, src;
	while ((src = sqlite3_step(c->rows)) == SQLITE_ROW) {
		rc = import_row(txn, c);
		if (rc)
			return rc;
		kt_progress_update(c->progress, ++c->done);
	}
	if (src != SQLITE_DONE) {
		snprintf(c->msg, sizeof(c->msg), "cannot read '%.1500s': %.400s", c->paths->db,
			 sqlite3_errmsg(sqlite3_db_handle(c->rows)));
		return -EIO;
	}
	kt_progress_wait(c->progress, "committing"); /* one commit for all of it */
	return 0;
}

int cmd_import(kvc_store *store, const struct args *a)
{
	struct mf_paths paths;
	sqlite3 *db = NULL;
	sqlite3_stmt *count = NULL, *rows = NULL;
	int status = state_paths(a->from_miniflare, a->namespace, &paths);
	if (status)
		return status;
	status = state_open_read(a->from_miniflare, a->namespace, &paths, &db);
	if (status)
		return status;
	/* One snapshot for the count and the rows, and for every retry. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM _mf_entries", -1, &count, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(count) != SQLITE_ROW) {
		status = db_failure(db, paths.db, "cannot read");
		goto out;
	}
	uint64_t total = (uint64_t)sqlite3_column_int64(count, 0);
	if (sqlite3_prepare_v2(db,
			       "SELECT key, blob_id, expiration, metadata FROM _mf_entries"
			       " ORDER BY key",
			       -1, &rows, NULL) != SQLITE_OK) {
		status = db_failure(db, paths.db, "cannot read");
		goto out;
	}
	struct kt_progress progress;
	struct import_ctx c = {
		.rows = rows,
		.paths = &paths,
		.ns = a->namespace,
		.now_ms = kvc_now_ns() / 1000000,
		.min_ttl = kvc_store_min_ttl(store),
		.progress = &progress,
	};
	char msg[MSG_MAX] = "";
	kt_progress_init(&progress, STDERR_FILENO, "import", "keys", total);
	int rc = kvc_write_txn(store, import_fn, &c, msg, sizeof(msg));
	kt_progress_end(&progress);
	if (rc) {
		status = failure("%s", c.msg[0] ? c.msg : msg[0] ? msg : strerror(-rc));
		fputs("kvctl: nothing was imported\n", stderr);
		goto out;
	}
	fprintf(stderr, "Success! Imported %" PRIu64 " key%s from namespace '%s'", c.imported,
		c.imported == 1 ? "" : "s", a->namespace);
	if (c.expired)
		fprintf(stderr, " (%" PRIu64 " expired entr%s skipped)", c.expired,
			c.expired == 1 ? "y" : "ies");
	fputc('\n', stderr);
	status = 0;
out:
	sqlite3_finalize(count);
	sqlite3_finalize(rows);
	sqlite3_close(db); /* ends the read transaction; never a write */
	return status;
}

/* ---------------------------------------------------------------- export */

/* mkdir -p @path (mode 0755): the parent first when it is missing.
 * @return 0 or -errno (-ENOTDIR when @path is something else) */
static int make_dirs(const char *path)
{
	if (mkdir(path, 0755) == 0)
		return 0;
	if (errno == ENOENT) {
		char parent[PATH_MAX];
		const char *slash = strrchr(path, '/');
		size_t n = slash ? (size_t)(slash - path) : 0;
		if (n == 0 || n >= sizeof(parent))
			return -ENOENT;
		memcpy(parent, path, n);
		parent[n] = 0;
		int rc = make_dirs(parent);
		if (rc)
			return rc;
		if (mkdir(path, 0755) == 0)
			return 0;
	}
	if (errno != EEXIST)
		return -errno;
	struct stat st;
	if (stat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Blob ids, growing: those written by this export, or the rows' old ones. */
struct id_list {
	char (*ids)[MF_BLOB_ID_MAX + 1];
	size_t n, cap;
};

static int id_list_add(struct id_list *l, const void *id, size_t len)
{
	void *p = kt_array_grow(l->ids, sizeof(*l->ids), l->n + 1, &l->cap, 256);
	if (!p)
		return -ENOMEM;
	l->ids = p;
	memcpy(l->ids[l->n], id, len);
	l->ids[l->n][len] = 0;
	l->n++;
	return 0;
}

/* Remove the blob files named in @l (those that are gone are fine). */
static void id_list_unlink(const struct id_list *l, int blobs_fd)
{
	for (size_t i = 0; i < l->n; i++)
		unlinkat(blobs_fd, l->ids[i], 0);
}

/* Write @len bytes of @value to a new blob file @id.  @return 0 or -errno */
static int write_blob(int blobs_fd, const char *id, const void *value, size_t len)
{
	int fd = openat(blobs_fd, id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	const unsigned char *b = value;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, b + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			unlinkat(blobs_fd, id, 0);
			return -err;
		}
		done += (size_t)n;
	}
	if (close(fd)) {
		int err = errno;
		unlinkat(blobs_fd, id, 0);
		return -err;
	}
	return 0;
}

/* Where an export writes its database: the final one, or a new one beside it. */
struct export_db {
	sqlite3 *db;
	bool fresh;     /* the namespace had no database: tmp is renamed to it */
	char tmp[sizeof(((struct mf_paths *)0)->db) + 16];
	struct id_list old; /* blob ids of the rows replaced */
};

/* Open (or create beside) the namespace's database, begin the write
 * transaction, and take the rows to replace.  @return 0 or EXIT_FAILURE */
static int export_db_open(const struct mf_paths *p, struct export_db *e)
{
	struct stat st;
	e->fresh = stat(p->db, &st) && errno == ENOENT;
	const char *path = p->db;
	int flags = SQLITE_OPEN_READWRITE;
	if (e->fresh) {
		snprintf(e->tmp, sizeof(e->tmp), "%s.kvctl-new", p->db);
		/* What a crashed export left. */
		unlink(e->tmp);
		char side[sizeof(e->tmp) + 8];
		snprintf(side, sizeof(side), "%s-journal", e->tmp);
		unlink(side);
		snprintf(side, sizeof(side), "%s-wal", e->tmp);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", e->tmp);
		unlink(side);
		path = e->tmp;
		flags |= SQLITE_OPEN_CREATE;
	}
	int rc = sqlite3_open_v2(path, &e->db, flags, NULL);
	if (rc != SQLITE_OK)
		return failure("cannot open '%s': %s", path,
			       e->db ? sqlite3_errmsg(e->db) : sqlite3_errstr(rc));
	sqlite3_busy_timeout(e->db, 10000);
	/* Miniflare's databases are in WAL mode; a new one is made alike. */
	if (e->fresh && sqlite3_exec(e->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL))
		return db_failure(e->db, path, "cannot create");
	if (sqlite3_exec(e->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) ||
	    sqlite3_exec(e->db, mf_schema, NULL, NULL, NULL))
		return db_failure(e->db, path, e->fresh ? "cannot create" : "cannot change");
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(e->db, "DELETE FROM _mf_entries RETURNING blob_id", -1, &s, NULL))
		return db_failure(e->db, path, "cannot change");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const void *id = sqlite3_column_blob(s, 0);
		size_t len = (size_t)sqlite3_column_bytes(s, 0);
		/* An id that could name another file is not ours to remove. */
		if (mf_blob_id_valid(id, len) && id_list_add(&e->old, id, len)) {
			sqlite3_finalize(s);
			return failure("%s", strerror(ENOMEM));
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_failure(e->db, path, "cannot change");
	return 0;
}

/* Commit: the database (after the blobs are on disk), then its name.  A
 * failure leaves no row naming a blob of this export. */
/* Commit the rows; a failure ends @progress before its message. */
static int export_db_commit(const struct mf_paths *p, struct export_db *e,
			    struct kt_progress *progress)
{
	const char *path = e->fresh ? e->tmp : p->db;
	if (sqlite3_exec(e->db, "COMMIT", NULL, NULL, NULL)) {
		kt_progress_end(progress);
		return db_failure(e->db, path, "cannot write");
	}
	/* The last connection of a WAL database checkpoints it into the file;
	 * the rows are committed whatever the close says. */
	sqlite3_close(e->db);
	e->db = NULL;
	if (!e->fresh)
		return 0;
	int fd = open(e->tmp, O_RDONLY | O_CLOEXEC), err = 0;
	if (fd < 0 || fsync(fd))
		err = errno;
	if (fd >= 0)
		close(fd);
	if (!err && rename(e->tmp, p->db))
		err = errno;
	if (err) {
		unlink(e->tmp);
		kt_progress_end(progress);
		return failure("cannot put the new database in place as '%s': %s", p->db,
			       strerror(err));
	}
	fd = open(p->object_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

/* Undo what is not committed: the transaction or the new file. */
static void export_db_release(struct export_db *e)
{
	if (e->db) {
		sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(e->db);
		if (e->fresh)
			unlink(e->tmp);
	}
	free(e->old.ids);
}

struct export_rows {
	sqlite3 *db;
	sqlite3_stmt *ins;
	int blobs_fd;
	struct id_list *written;
	char msg[MSG_MAX]; /* why it stopped, printed once the progress line is gone */
};

/* One key: a new blob with its value, and its row. */
static int export_row(void *arg, const void *k, size_t kn, const struct kvc_record *rec)
{
	struct export_rows *x = arg;
	char id[MF_BLOB_ID_HEX + 1], shown[100];
	int rc = mf_blob_id_new(id);

	if (!rc)
		rc = write_blob(x->blobs_fd, id, rec->value, rec->value_len);
	if (!rc)
		rc = id_list_add(x->written, id, strlen(id));
	if (rc) {
		snprintf(x->msg, sizeof(x->msg), "cannot write the value of key '%s': %s",
			 kt_bulk_show_key(k, kn, shown, sizeof(shown)), strerror(-rc));
		return rc;
	}
	sqlite3_reset(x->ins);
	sqlite3_bind_text(x->ins, 1, k, (int)kn, SQLITE_TRANSIENT);
	sqlite3_bind_text(x->ins, 2, id, -1, SQLITE_TRANSIENT);
	if (rec->expiration)
		sqlite3_bind_int64(x->ins, 3, rec->expiration * 1000);
	else
		sqlite3_bind_null(x->ins, 3);
	if (rec->metadata)
		sqlite3_bind_text(x->ins, 4, rec->metadata, (int)rec->metadata_len,
				  SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(x->ins, 4);
	if (sqlite3_step(x->ins) != SQLITE_DONE) {
		snprintf(x->msg, sizeof(x->msg), "cannot write the Miniflare database: %s",
			 sqlite3_errmsg(x->db));
		return -EIO;
	}
	return 0;
}

/* Each live key under the prefix: a new blob and a row, counted on
 * @progress (which the caller ends on success; a failure ends it before
 * its message). */
static int export_rows(kvc_store *store, const struct args *a, sqlite3 *db, int blobs_fd,
		       struct kt_progress *progress, struct id_list *written, uint64_t *ret_n)
{
	struct export_rows x = {.db = db, .blobs_fd = blobs_fd, .written = written};

	if (sqlite3_prepare_v2(db,
			       "INSERT INTO _mf_entries (key, blob_id, expiration, metadata)"
			       " VALUES (?1, ?2, ?3, ?4)",
			       -1, &x.ins, NULL)) {
		kt_progress_end(progress);
		return failure("cannot write the Miniflare database: %s", sqlite3_errmsg(db));
	}

	int rc = export_each(store, a->prefix ? a->prefix : "", progress, export_row, &x);
	*ret_n = progress->done;
	if (!rc)
		kt_progress_set_total(progress, progress->done, false);
	sqlite3_finalize(x.ins);
	if (rc)
		kt_progress_end(progress);
	if (rc && x.msg[0])
		return failure("%s", x.msg);
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	return 0;
}

int cmd_export_miniflare(kvc_store *store, const struct args *a)
{
	struct mf_paths paths;
	struct export_db e = {0};
	struct id_list written = {0};
	int blobs_fd = -1, rc;
	uint64_t n = 0;
	int status = state_paths(a->to_miniflare, a->namespace, &paths);
	if (status)
		return status;
	if ((rc = make_dirs(paths.object_dir)) || (rc = make_dirs(paths.blobs_dir)))
		return failure("cannot make Miniflare state '%s': %s", a->to_miniflare,
			       strerror(-rc));
	blobs_fd = open(paths.blobs_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (blobs_fd < 0)
		return failure("cannot open '%s': %s", paths.blobs_dir, strerror(errno));
	status = export_db_open(&paths, &e);
	struct kt_progress progress;
	export_progress_init(store, a, &progress);
	if (!status)
		status = export_rows(store, a, e.db, blobs_fd, &progress, &written, &n);
	/* The blobs are on disk before any row that names them is: a wait
	 * as long as the blobs are large, then the database's commit. */
	if (!status)
		kt_progress_wait(&progress, "syncing");
	if (!status && syncfs(blobs_fd)) {
		int err = errno;
		kt_progress_end(&progress);
		status = failure("cannot write '%s': %s", paths.blobs_dir, strerror(err));
	}
	if (!status) {
		kt_progress_wait(&progress, "committing");
		status = export_db_commit(&paths, &e, &progress);
	}
	kt_progress_end(&progress);
	if (status) {
		export_db_release(&e); /* before the blobs: no row may name a removed one */
		id_list_unlink(&written, blobs_fd);
		fprintf(stderr, "kvctl: namespace '%s' of '%s' is unchanged\n", a->namespace,
			a->to_miniflare);
	} else {
		id_list_unlink(&e.old, blobs_fd);
		export_db_release(&e);
		fprintf(stderr, "Success! Exported %" PRIu64 " key%s to namespace '%s' of '%s'\n", n,
			n == 1 ? "" : "s", a->namespace, a->to_miniflare);
	}
	free(written.ids);
	close(blobs_fd);
	return status;
}
