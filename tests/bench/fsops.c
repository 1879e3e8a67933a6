/*
 * fsops: the syscall loops of the kvfs benchmark (bench_kvfs.sh).  Each
 * mode does one kind of filesystem work in a tight loop, timed with the
 * monotonic clock, and prints one figure on stdout: operations per second
 * or, for the sequential modes, MB/s (10^6 bytes).  It knows nothing of
 * kvfs: the same loop runs over a kvfs mount, a passthrough_ll mount and a
 * plain tmpfs, so the figures compare.
 *
 *   fsops read    ROOT LIST PASSES SIZE  open, read to end of file, close
 *   fsops stat    ROOT LIST PASSES SIZE  stat(2)
 *   fsops create  ROOT LIST SUFFIX SIZE  open(O_CREAT|O_TRUNC), write, close
 *                                        each path + SUFFIX
 *   fsops readdir DIR ITERATIONS ENTRIES opendir, readdir to the end, closedir
 *   fsops seqwrite FILE BYTES            write in 128 KiB blocks, close
 *   fsops seqread  FILE BYTES            read in 128 KiB blocks to the end
 *   fsops patch FILE COUNT LEN SEED      COUNT times: open, pwrite LEN bytes
 *                                        at a random offset inside the
 *                                        file, fsync, close (a small change
 *                                        to a large file, made durable)
 *   fsops mix DIR NOPS NPROC SEED        an fsstress-like load: NPROC
 *                                        processes, NOPS random operations
 *                                        each (see fo_mix below)
 *
 * SIZE is the size of every file, checked.
 * LIST holds one path a line, relative to ROOT (fsops works in ROOT, so no
 * path walks the directories above the mount).  The read and stat modes
 * make one untimed pass first, so the kernel's caches are as warm as they
 * get, then time PASSES passes.  Every result is checked (the bytes read
 * and written, the entries listed, the sizes stat shows): a loop that
 * silently failed would measure nothing.  Exit status 0 when every
 * operation did what was expected, 1 otherwise, 2 on wrong usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BLOCK (128u * 1024u)

struct fo_list {
	char **paths;
	size_t n;
	char *text;       /* the file's contents; paths point into it */
};

static double fo_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fo_usage(void);

static int fo_fail(const char *what, const char *path)
{
	fprintf(stderr, "fsops: %s '%s': %s\n", what, path, strerror(errno));
	return 1;
}

/* fo_fail for a failure on the open @fd, closed first (errno kept). */
static int fo_fail_close(int fd, const char *what, const char *path)
{
	int e = errno;

	close(fd);
	errno = e;
	return fo_fail(what, path);
}

static bool fo_number(const char *s, unsigned long long *ret)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);

	if (errno || end == s || *end)
		return false;
	*ret = v;
	return true;
}

/* Read LIST (one path a line) whole; the paths point into one buffer. */
static int fo_list_load(const char *file, struct fo_list *ret)
{
	FILE *f = fopen(file, "r");
	size_t cap = 0, len = 0;
	char *text = NULL;

	if (!f)
		return fo_fail("cannot open", file);
	for (;;) {
		if (len + 65536 + 1 > cap) {
			cap = cap ? cap * 2 : 1u << 20;
			char *t = realloc(text, cap);

			if (!t) {
				fclose(f);
				free(text);
				return fo_fail("out of memory reading", file);
			}
			text = t;
		}
		size_t got = fread(text + len, 1, 65536, f);

		len += got;
		if (got == 0)
			break;
	}
	fclose(f);
	text[len] = '\0';

	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	char **paths = calloc(n + 1, sizeof(*paths));

	if (!paths) {
		free(text);
		return fo_fail("out of memory reading", file);
	}
	n = 0;
	for (char *p = text, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p) - 1;
		else
			*nl = '\0';
		if (*p)
			paths[n++] = p;
	}
	if (n == 0) {
		free(paths);
		free(text);
		fprintf(stderr, "fsops: no paths in '%s'\n", file);
		return 1;
	}
	ret->paths = paths;
	ret->n = n;
	ret->text = text;
	return 0;
}

static void fo_list_release(struct fo_list *l)
{
	free(l->paths);
	free(l->text);
}

/* open, read until end of file, close: as cat does. */
static int fo_read_one(const char *path, char *buf, size_t bufsz, unsigned long long size)
{
	int fd = open(path, O_RDONLY);
	unsigned long long total = 0;
	ssize_t got;

	if (fd < 0)
		return fo_fail("cannot open", path);
	while ((got = read(fd, buf, bufsz)) > 0)
		total += (unsigned long long)got;
	if (got < 0)
		return fo_fail_close(fd, "cannot read", path);
	if (close(fd) != 0)
		return fo_fail("cannot close", path);
	if (total != size) {
		fprintf(stderr, "fsops: '%s': read %llu bytes, expected %llu\n", path, total, size);
		return 1;
	}
	return 0;
}

static int fo_stat_one(const char *path, unsigned long long size)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return fo_fail("cannot stat", path);
	if (!S_ISREG(st.st_mode) || (unsigned long long)st.st_size != size) {
		fprintf(stderr, "fsops: '%s': not a regular file of %llu bytes\n", path, size);
		return 1;
	}
	return 0;
}

/* One untimed pass, then @passes timed ones. */
static int fo_passes(const struct fo_list *l, unsigned long long passes, bool reading,
		     unsigned long long size)
{
	char buf[65536];
	double t0 = 0;

	for (unsigned long long p = 0; p <= passes; p++) {
		if (p == 1)
			t0 = fo_now();
		for (size_t i = 0; i < l->n; i++) {
			int rc = reading ? fo_read_one(l->paths[i], buf, sizeof(buf), size)
					 : fo_stat_one(l->paths[i], size);

			if (rc)
				return rc;
		}
	}
	double dt = fo_now() - t0;

	printf("%.1f\n", (double)l->n * (double)passes / dt);
	return 0;
}

static int fo_create(const struct fo_list *l, const char *suffix, unsigned long long size)
{
	char *data = malloc(size ? size : 1);
	char path[4096];

	if (!data)
		return fo_fail("out of memory for", "data");
	for (unsigned long long i = 0; i < size; i++)
		data[i] = i + 1 == size ? '\n' : (char)('a' + i % 26);
	double t0 = fo_now();

	for (size_t i = 0; i < l->n; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s%s", l->paths[i], suffix) >= sizeof(path)) {
			fprintf(stderr, "fsops: path too long: '%s'\n", l->paths[i]);
			free(data);
			return 1;
		}
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0) {
			free(data);
			return fo_fail("cannot create", path);
		}
		ssize_t put = write(fd, data, size);

		if (put < 0 || (unsigned long long)put != size) {
			int e = put < 0 ? errno : EIO;

			close(fd);
			free(data);
			errno = e;
			return fo_fail("cannot write", path);
		}
		if (close(fd) != 0) {
			free(data);
			return fo_fail("cannot close", path);
		}
	}
	double dt = fo_now() - t0;

	free(data);
	printf("%.1f\n", (double)l->n / dt);
	return 0;
}

static int fo_readdir(const char *dir, unsigned long long iterations, unsigned long long entries)
{
	double t0 = fo_now();

	for (unsigned long long it = 0; it < iterations; it++) {
		DIR *d = opendir(dir);
		unsigned long long n = 0;
		struct dirent *de;

		if (!d)
			return fo_fail("cannot open directory", dir);
		errno = 0;
		while ((de = readdir(d)))
			n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
		if (errno) {
			int e = errno;

			closedir(d);
			errno = e;
			return fo_fail("cannot read directory", dir);
		}
		closedir(d);
		if (n != entries) {
			fprintf(stderr, "fsops: '%s': %llu entries, expected %llu\n", dir, n, entries);
			return 1;
		}
	}
	double dt = fo_now() - t0;

	printf("%.1f\n", (double)iterations / dt);
	return 0;
}

/* Timed from open to close: on kvfs the close commits the value. */
static int fo_seqwrite(const char *file, unsigned long long bytes)
{
	static char block[SEQ_BLOCK];

	for (size_t i = 0; i < sizeof(block); i++)
		block[i] = (char)('a' + i % 26);
	double t0 = fo_now();
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return fo_fail("cannot create", file);
	for (unsigned long long done = 0; done < bytes;) {
		size_t step = bytes - done < SEQ_BLOCK ? (size_t)(bytes - done) : SEQ_BLOCK;
		ssize_t put = write(fd, block, step);

		if (put <= 0) {
			int e = put < 0 ? errno : EIO;

			close(fd);
			errno = e;
			return fo_fail("cannot write", file);
		}
		done += (unsigned long long)put;
	}
	if (close(fd) != 0)
		return fo_fail("cannot close", file);
	double dt = fo_now() - t0;

	printf("%.1f\n", (double)bytes / 1e6 / dt);
	return 0;
}

static int fo_seqread(const char *file, unsigned long long bytes)
{
	static char block[SEQ_BLOCK];
	unsigned long long total = 0;
	ssize_t got;
	double t0 = fo_now();
	int fd = open(file, O_RDONLY);

	if (fd < 0)
		return fo_fail("cannot open", file);
	while ((got = read(fd, block, sizeof(block))) > 0)
		total += (unsigned long long)got;
	if (got < 0)
		return fo_fail_close(fd, "cannot read", file);
	close(fd);
	double dt = fo_now() - t0;

	if (total != bytes) {
		fprintf(stderr, "fsops: '%s': read %llu bytes, expected %llu\n", file, total, bytes);
		return 1;
	}
	printf("%.1f\n", (double)bytes / 1e6 / dt);
	return 0;
}

/* ------------------------------------------------------------------ mix
 *
 * An fsstress-like load, for filesystems where fsstress itself is not at
 * hand (Debian does not package it).  NPROC processes each work in their
 * own subdirectory DIR/pN and do NOPS operations chosen at random, with
 * fsstress's weights for the operations that apply to kvfs:
 *
 *   creat 4, write 4, chown 3, truncate 2, rename 2, mkdir 2, setxattr 2,
 *   read 1, unlink 1, rmdir 1, stat 1, getdents 1, fsync 1, fdatasync 1,
 *   chmod 1 (fsstress's setattr, weight 0 there)
 *
 * Left out: link, symlink and mknod (kvfs answers EPERM by contract), and
 * fsstress's XFS ioctls, O_DIRECT, mmap, aio and fallocate operations.  As
 * in fsstress, every operation on a file opens it, does one call and
 * closes it; a write or truncate lands at a random offset below the file's
 * size plus 1 MiB, at most 25 MiB (so files grow sparse), a write or read
 * is 1 byte to 64 KiB long; chown gives the file to our own uid and gid;
 * setxattr sets user.mixN on a regular file (a kvfs directory has no
 * xattrs); a rename moves a file or directory to a new name in a random
 * directory.  An operation that needs a file or directory when the process
 * has none creates one instead.
 *
 * Each process owns its subdirectory, so it knows what every call must
 * return: it keeps a model of its tree (names, types, sizes) and checks
 * every result against it: success, or the errno a correct filesystem
 * gives in that case (ENOTEMPTY or EEXIST for rmdir of a non-empty
 * directory, EINVAL for a rename of a directory into itself), the size
 * stat shows, the bytes a read returns, the entries getdents lists.  The
 * first unexpected result is reported and ends that process; the exit
 * status is then 1.  Prints operations per second over all processes.
 */

#define MIX_MAX_SIZE (25ull << 20)
#define MIX_GROW (1ull << 20)
#define MIX_IO_MAX (64u * 1024u)

enum mix_op {
	MIX_CREAT, MIX_WRITE, MIX_CHOWN, MIX_TRUNCATE, MIX_RENAME, MIX_MKDIR,
	MIX_SETXATTR, MIX_READ, MIX_UNLINK, MIX_RMDIR, MIX_STAT, MIX_GETDENTS,
	MIX_FSYNC, MIX_FDATASYNC, MIX_CHMOD, MIX_NOPS
};

static const struct {
	const char *name;
	unsigned weight;
} mix_ops[MIX_NOPS] = {
	[MIX_CREAT] = { "creat", 4 },       [MIX_WRITE] = { "write", 4 },
	[MIX_CHOWN] = { "chown", 3 },       [MIX_TRUNCATE] = { "truncate", 2 },
	[MIX_RENAME] = { "rename", 2 },     [MIX_MKDIR] = { "mkdir", 2 },
	[MIX_SETXATTR] = { "setxattr", 2 }, [MIX_READ] = { "read", 1 },
	[MIX_UNLINK] = { "unlink", 1 },     [MIX_RMDIR] = { "rmdir", 1 },
	[MIX_STAT] = { "stat", 1 },         [MIX_GETDENTS] = { "getdents", 1 },
	[MIX_FSYNC] = { "fsync", 1 },       [MIX_FDATASYNC] = { "fdatasync", 1 },
	[MIX_CHMOD] = { "chmod", 1 },
};

/* One name in a process's tree; entry 0 is the process's directory ("."). */
struct mix_ent {
	char *path;                /* relative to the process's directory */
	bool dir;
	unsigned long long size;   /* of a file */
};

struct mix {
	struct mix_ent *ents;
	size_t n, cap;
	uint64_t rng;
	unsigned long long names; /* the next new name's number */
	unsigned proc;
	char *buf;                /* MIX_IO_MAX bytes, for writes and reads */
};

/* splitmix64: the same sequence for the same seed on every machine. */
static uint64_t mix_rand(struct mix *m)
{
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned long long mix_below(struct mix *m, unsigned long long n)
{
	return n ? mix_rand(m) % n : 0;
}

static int mix_report(const struct mix *m, const char *op, const char *path, const char *what)
{
	fprintf(stderr, "fsops mix: p%u: %s '%s': %s\n", m->proc, op, path, what);
	return 1;
}

/* Check a call's outcome: @rc < 0 means it failed with errno; @want is 0
 * for success or the errno expected, @alt a second acceptable errno. */
static int mix_expect(const struct mix *m, const char *op, const char *path, int rc, int want,
		      int alt)
{
	char what[160];
	int e = errno;

	if (rc >= 0 && want == 0)
		return 0;
	if (rc < 0 && want != 0 && (e == want || (alt && e == alt)))
		return 0;
	if (rc >= 0)
		snprintf(what, sizeof(what), "succeeded, expected %s", strerror(want));
	else if (want == 0)
		snprintf(what, sizeof(what), "%s", strerror(e));
	else
		snprintf(what, sizeof(what), "%s, expected %s", strerror(e), strerror(want));
	return mix_report(m, op, path, what);
}

static int mix_add(struct mix *m, char *path, bool dir)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct mix_ent *e = realloc(m->ents, cap * sizeof(*e));

		if (!e) {
			mix_report(m, "model", path, "out of memory");
			free(path);
			return 1;
		}
		m->ents = e;
		m->cap = cap;
	}
	m->ents[m->n++] = (struct mix_ent){ .path = path, .dir = dir };
	return 0;
}

static void mix_drop(struct mix *m, size_t i)
{
	free(m->ents[i].path);
	m->ents[i] = m->ents[--m->n];
}

/* Is @path inside directory @dir (at any depth)? */
static bool mix_within(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	if (!strcmp(dir, "."))
		return strcmp(path, ".") != 0;
	return !strncmp(path, dir, len) && path[len] == '/';
}

/* Is @path a direct child of directory @dir? */
static bool mix_child(const char *path, const char *dir)
{
	const char *slash = strrchr(path, '/');

	if (!strcmp(dir, "."))
		return strcmp(path, ".") && !slash;
	return slash && (size_t)(slash - path) == strlen(dir) && !strncmp(path, dir, strlen(dir));
}

static size_t mix_children(const struct mix *m, const char *dir)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += mix_child(m->ents[i].path, dir);
	return n;
}

/* A random entry: files, directories or both; the process's own
 * directory only when @root.  -1 when there is none. */
static ssize_t mix_pick(struct mix *m, bool files, bool dirs, bool root)
{
	size_t n = 0;

	for (size_t i = root ? 0 : 1; i < m->n; i++)
		n += m->ents[i].dir ? dirs : files;
	if (n == 0)
		return -1;
	n = mix_below(m, n);
	for (size_t i = root ? 0 : 1; i < m->n; i++)
		if ((m->ents[i].dir ? dirs : files) && n-- == 0)
			return (ssize_t)i;
	return -1;
}

/* A new name in a random directory: "DIR/fN" or "DIR/dN". */
static char *mix_new_name(struct mix *m, char kind)
{
	const char *dir = m->ents[mix_pick(m, false, true, true)].path;
	char *path;

	if (!strcmp(dir, "."))
		return asprintf(&path, "%c%llx", kind, m->names++) < 0 ? NULL : path;
	return asprintf(&path, "%s/%c%llx", dir, kind, m->names++) < 0 ? NULL : path;
}

static int mix_creat(struct mix *m, bool dir)
{
	char *path = mix_new_name(m, dir ? 'd' : 'f');
	int rc;

	if (!path)
		return mix_report(m, dir ? "mkdir" : "creat", "", "out of memory");
	if (dir) {
		rc = mix_expect(m, "mkdir", path, mkdir(path, 0755), 0, 0);
	} else {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

		rc = mix_expect(m, "creat", path, fd, 0, 0);
		if (!rc)
			rc = mix_expect(m, "close", path, close(fd), 0, 0);
	}
	if (rc) {
		free(path);
		return rc;
	}
	return mix_add(m, path, dir);
}

/* open, pwrite or ftruncate at a random offset, close. */
static int mix_write(struct mix *m, struct mix_ent *e, bool truncating)
{
	unsigned long long lim = e->size + MIX_GROW;
	const char *op = truncating ? "truncate" : "write";

	if (lim > MIX_MAX_SIZE)
		lim = MIX_MAX_SIZE;
	unsigned long long off = mix_below(m, lim);
	size_t len = 1 + (size_t)mix_below(m, MIX_IO_MAX);
	int fd = open(e->path, O_WRONLY);
	int rc = mix_expect(m, op, e->path, fd, 0, 0);

	if (rc)
		return rc;
	if (truncating) {
		rc = mix_expect(m, op, e->path, ftruncate(fd, (off_t)off), 0, 0);
		if (!rc)
			e->size = off;
	} else {
		memset(m->buf, 'a' + (int)(off % 26), len);
		ssize_t put = pwrite(fd, m->buf, len, (off_t)off);

		rc = mix_expect(m, op, e->path, put < 0 ? -1 : 0, 0, 0);
		if (!rc && (size_t)put != len)
			rc = mix_report(m, op, e->path, "short write");
		if (!rc && off + len > e->size)
			e->size = off + len;
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return mix_expect(m, "close", e->path, close(fd), 0, 0);
}

static int mix_read(struct mix *m, const struct mix_ent *e)
{
	unsigned long long off = mix_below(m, e->size);
	size_t len = 1 + (size_t)mix_below(m, MIX_IO_MAX);
	size_t want = e->size == 0 ? 0 : (size_t)(e->size - off < len ? e->size - off : len);
	int fd = open(e->path, O_RDONLY);
	int rc = mix_expect(m, "read", e->path, fd, 0, 0);

	if (rc)
		return rc;
	ssize_t got = pread(fd, m->buf, len, (off_t)off);

	rc = mix_expect(m, "read", e->path, got < 0 ? -1 : 0, 0, 0);
	if (!rc && (size_t)got != want) {
		char what[96];

		snprintf(what, sizeof(what), "%zd bytes at %llu, expected %zu", got, off, want);
		rc = mix_report(m, "read", e->path, what);
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return mix_expect(m, "close", e->path, close(fd), 0, 0);
}

static int mix_sync(struct mix *m, const struct mix_ent *e, bool data_only)
{
	const char *op = data_only ? "fdatasync" : "fsync";
	int fd = open(e->path, O_WRONLY);
	int rc = mix_expect(m, op, e->path, fd, 0, 0);

	if (rc)
		return rc;
	rc = mix_expect(m, op, e->path, data_only ? fdatasync(fd) : fsync(fd), 0, 0);
	if (rc) {
		close(fd);
		return rc;
	}
	return mix_expect(m, "close", e->path, close(fd), 0, 0);
}

static int mix_stat(struct mix *m, const struct mix_ent *e)
{
	struct stat st;
	int rc = mix_expect(m, "stat", e->path, stat(e->path, &st), 0, 0);
	char what[96];

	if (rc)
		return rc;
	if (e->dir && !S_ISDIR(st.st_mode))
		return mix_report(m, "stat", e->path, "not a directory");
	if (!e->dir && (!S_ISREG(st.st_mode) || (unsigned long long)st.st_size != e->size)) {
		snprintf(what, sizeof(what), "mode %o size %lld, expected a file of %llu bytes",
			 (unsigned)st.st_mode, (long long)st.st_size, e->size);
		return mix_report(m, "stat", e->path, what);
	}
	return 0;
}

static int mix_getdents(struct mix *m, const struct mix_ent *e)
{
	DIR *d = opendir(e->path);
	size_t n = 0, want = mix_children(m, e->path);
	struct dirent *de;
	char what[96];

	if (mix_expect(m, "getdents", e->path, d ? 0 : -1, 0, 0))
		return 1;
	errno = 0;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	int rc = mix_expect(m, "getdents", e->path, errno ? -1 : 0, 0, 0);

	closedir(d);
	if (!rc && n != want) {
		snprintf(what, sizeof(what), "%zu entries, expected %zu", n, want);
		rc = mix_report(m, "getdents", e->path, what);
	}
	return rc;
}

/* Rename entry @i to a new name; a directory moved into itself must fail. */
static int mix_rename(struct mix *m, size_t i)
{
	char *to = mix_new_name(m, m->ents[i].dir ? 'd' : 'f');
	const char *from = m->ents[i].path;

	if (!to)
		return mix_report(m, "rename", from, "out of memory");
	if (m->ents[i].dir && mix_within(to, from)) {
		int rc = mix_expect(m, "rename", from, rename(from, to), EINVAL, 0);

		free(to);
		return rc;
	}
	if (mix_expect(m, "rename", from, rename(from, to), 0, 0)) {
		free(to);
		return 1;
	}
	/* Everything below a renamed directory moves with it. */
	size_t flen = strlen(from);

	for (size_t j = 0; j < m->n; j++) {
		if (j == i || !mix_within(m->ents[j].path, from))
			continue;
		char *p;

		if (asprintf(&p, "%s%s", to, m->ents[j].path + flen) < 0) {
			free(to);
			return mix_report(m, "rename", from, "out of memory");
		}
		free(m->ents[j].path);
		m->ents[j].path = p;
	}
	free(m->ents[i].path);
	m->ents[i].path = to;
	return 0;
}

static int mix_one(struct mix *m, enum mix_op op)
{
	bool files = op != MIX_MKDIR && op != MIX_RMDIR, dirs = false, root = false;
	ssize_t i;

	switch (op) {
	case MIX_STAT: case MIX_CHOWN: case MIX_CHMOD:
		dirs = root = true;
		break;
	case MIX_GETDENTS:
		files = false;
		dirs = root = true;
		break;
	case MIX_RENAME:
		dirs = true;
		break;
	case MIX_RMDIR:
		dirs = true;
		break;
	case MIX_CREAT: case MIX_MKDIR:
		return mix_creat(m, op == MIX_MKDIR);
	default:
		break;
	}
	i = mix_pick(m, files, dirs, root);
	if (i < 0)
		return mix_creat(m, op == MIX_RMDIR);

	struct mix_ent *e = &m->ents[i];

	switch (op) {
	case MIX_WRITE:
		return mix_write(m, e, false);
	case MIX_TRUNCATE:
		return mix_write(m, e, true);
	case MIX_READ:
		return mix_read(m, e);
	case MIX_FSYNC: case MIX_FDATASYNC:
		return mix_sync(m, e, op == MIX_FDATASYNC);
	case MIX_STAT:
		return mix_stat(m, e);
	case MIX_GETDENTS:
		return mix_getdents(m, e);
	case MIX_RENAME:
		return mix_rename(m, (size_t)i);
	case MIX_UNLINK:
		if (mix_expect(m, "unlink", e->path, unlink(e->path), 0, 0))
			return 1;
		mix_drop(m, (size_t)i);
		return 0;
	case MIX_RMDIR:
		if (mix_children(m, e->path))
			return mix_expect(m, "rmdir", e->path, rmdir(e->path), ENOTEMPTY, EEXIST);
		if (mix_expect(m, "rmdir", e->path, rmdir(e->path), 0, 0))
			return 1;
		mix_drop(m, (size_t)i);
		return 0;
	case MIX_CHOWN:
		return mix_expect(m, "chown", e->path, chown(e->path, geteuid(), getegid()), 0, 0);
	case MIX_CHMOD: {
		mode_t mode = (mode_t)mix_below(m, 01000) | (e->dir ? 0700 : 0600);

		return mix_expect(m, "chmod", e->path, chmod(e->path, mode), 0, 0);
	}
	case MIX_SETXATTR: {
		char name[32], value[32];

		snprintf(name, sizeof(name), "user.mix%llu", mix_below(m, 8));
		int len = snprintf(value, sizeof(value), "v%llu", mix_below(m, 1000000));

		return mix_expect(m, "setxattr", e->path,
				  setxattr(e->path, name, value, (size_t)len, 0), 0, 0);
	}
	default:
		return mix_report(m, "model", e->path, "unknown operation");
	}
}

/* One process: NOPS operations in DIR/pPROC, counting those done in
 * *@ret_done.  Returns the exit status. */
static int mix_proc(const char *dir, unsigned proc, unsigned long long nops,
		    unsigned long long seed, unsigned long long *ret_done)
{
	struct mix m = { .proc = proc, .rng = seed * 1000003ull + proc };
	char sub[32];
	unsigned total = 0;
	int rc = 0;

	for (int o = 0; o < MIX_NOPS; o++)
		total += mix_ops[o].weight;
	snprintf(sub, sizeof(sub), "p%u", proc);
	if (chdir(dir) != 0)
		return fo_fail("cannot enter", dir);
	if (mkdir(sub, 0755) != 0 && errno != EEXIST)
		return fo_fail("cannot create", sub);
	if (chdir(sub) != 0)
		return fo_fail("cannot enter", sub);
	m.buf = malloc(MIX_IO_MAX);
	char *root = strdup(".");

	if (!m.buf || !root) {
		free(m.buf);
		free(root);
		return mix_report(&m, "model", ".", "out of memory");
	}
	if (mix_add(&m, root, true)) {
		free(m.buf);
		return 1;
	}
	for (unsigned long long k = 0; k < nops && !rc; k++) {
		unsigned r = (unsigned)mix_below(&m, total);
		int op = 0;

		while (r >= mix_ops[op].weight)
			r -= mix_ops[op++].weight;
		rc = mix_one(&m, op);
		if (!rc)
			*ret_done = k + 1;
	}
	for (size_t i = 0; i < m.n; i++)
		free(m.ents[i].path);
	free(m.ents);
	free(m.buf);
	return rc;
}

/* The figure counts the operations done: a process that met an unexpected
 * result stops, and the others go on. */
static int fo_mix(const char *dir, unsigned long long nops, unsigned long long nproc,
		  unsigned long long seed)
{
	/* Each process's count of operations done, shared with the parent. */
	unsigned long long *done = mmap(NULL, nproc * sizeof(*done), PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned long long total = 0;
	int rc = 0;

	if (done == MAP_FAILED)
		return fo_fail("cannot map counters for", dir);
	fflush(NULL);
	double t0 = fo_now();

	for (unsigned long long p = 0; p < nproc; p++) {
		pid_t pid = fork();

		if (pid < 0) {
			rc = fo_fail("cannot fork for", dir);
			break;
		}
		if (pid == 0)
			_exit(mix_proc(dir, (unsigned)p, nops, seed, &done[p]));
	}
	for (;;) {
		int status;
		pid_t pid = wait(&status);

		if (pid < 0)
			break;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = 1;
	}
	double dt = fo_now() - t0;

	for (unsigned long long p = 0; p < nproc; p++)
		total += done[p];
	munmap(done, nproc * sizeof(*done));
	printf("%.1f\n", (double)total / dt);
	return rc;
}

/* The patch mode: small durable changes to an existing file, each
 * checked by reading it back after the close. */
static int fo_patch(const char *file, unsigned long long count, unsigned long long len,
		    unsigned long long seed)
{
	struct stat st;
	char buf[4096], back[4096];
	uint64_t rng = seed;

	if (len == 0 || len > sizeof(buf))
		return fo_usage();
	if (stat(file, &st) != 0)
		return fo_fail("cannot stat", file);
	if ((unsigned long long)st.st_size < len) {
		fprintf(stderr, "fsops: '%s' is smaller than %llu bytes\n", file, len);
		return 1;
	}
	double t0 = fo_now();

	for (unsigned long long i = 0; i < count; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		off_t off = (off_t)((rng >> 16) % ((unsigned long long)st.st_size - len + 1));

		for (size_t j = 0; j < len; j++)
			buf[j] = (char)(rng >> (8 * (j % 8)));
		int fd = open(file, O_WRONLY);

		if (fd < 0)
			return fo_fail("cannot open", file);
		if (pwrite(fd, buf, len, off) != (ssize_t)len || fsync(fd) != 0)
			return fo_fail_close(fd, "cannot pwrite and fsync", file);
		if (close(fd) != 0)
			return fo_fail("cannot close", file);
		if (i + 1 == count) {
			fd = open(file, O_RDONLY);
			if (fd < 0 || pread(fd, back, len, off) != (ssize_t)len ||
			    memcmp(back, buf, len) != 0) {
				if (fd >= 0)
					close(fd);
				fprintf(stderr, "fsops: '%s': the last patch does not read back\n",
					file);
				return 1;
			}
			close(fd);
		}
	}
	double dt = fo_now() - t0;

	printf("%.1f\n", (double)count / dt);
	return 0;
}

static int fo_usage(void)
{
	fputs("usage: fsops read ROOT LIST PASSES SIZE\n"
	      "       fsops stat ROOT LIST PASSES SIZE\n"
	      "       fsops create ROOT LIST SUFFIX SIZE\n"
	      "       fsops readdir DIR ITERATIONS ENTRIES\n"
	      "       fsops seqwrite FILE BYTES\n"
	      "       fsops seqread FILE BYTES\n"
	      "       fsops patch FILE COUNT LEN SEED\n"
	      "       fsops mix DIR NOPS NPROC SEED\n", stderr);
	return 2;
}

/* The list modes: work in ROOT on the paths of LIST. */
static int fo_list_mode(const char *mode, char **argv)
{
	struct fo_list l;
	unsigned long long passes = 0, size;
	int rc;

	if (!fo_number(argv[3], &size))
		return fo_usage();
	if (strcmp(mode, "create") && (!fo_number(argv[2], &passes) || passes == 0))
		return fo_usage();
	rc = fo_list_load(argv[1], &l);
	if (rc)
		return rc;
	if (chdir(argv[0]) != 0) {
		fo_list_release(&l);
		return fo_fail("cannot enter", argv[0]);
	}
	if (!strcmp(mode, "create"))
		rc = fo_create(&l, argv[2], size);
	else
		rc = fo_passes(&l, passes, !strcmp(mode, "read"), size);
	fo_list_release(&l);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned long long a, b;

	if (argc < 2)
		return fo_usage();
	const char *mode = argv[1];

	if (!strcmp(mode, "read") || !strcmp(mode, "stat") || !strcmp(mode, "create"))
		return argc == 6 ? fo_list_mode(mode, argv + 2) : fo_usage();
	if (!strcmp(mode, "readdir")) {
		if (argc != 5 || !fo_number(argv[3], &a) || !fo_number(argv[4], &b) || a == 0)
			return fo_usage();
		return fo_readdir(argv[2], a, b);
	}
	if (!strcmp(mode, "seqwrite") || !strcmp(mode, "seqread")) {
		if (argc != 4 || !fo_number(argv[3], &a))
			return fo_usage();
		return mode[3] == 'w' ? fo_seqwrite(argv[2], a) : fo_seqread(argv[2], a);
	}
	if (!strcmp(mode, "patch")) {
		unsigned long long len, seed;

		if (argc != 6 || !fo_number(argv[3], &a) || !fo_number(argv[4], &len) ||
		    !fo_number(argv[5], &seed) || a == 0)
			return fo_usage();
		return fo_patch(argv[2], a, len, seed);
	}
	if (!strcmp(mode, "mix")) {
		unsigned long long seed;

		if (argc != 6 || !fo_number(argv[3], &a) || !fo_number(argv[4], &b) ||
		    !fo_number(argv[5], &seed) || a == 0 || b == 0 || b > 64)
			return fo_usage();
		return fo_mix(argv[2], a, b, seed);
	}
	return fo_usage();
}
