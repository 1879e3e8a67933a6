/*
 * fsx: a model-based random file system exerciser for kvfs mounts, in the
 * spirit of xfstests' ltp/fsx and ltp/fsstress.
 *
 *   fsx [--seed N] [--ops N] [--files N] [--handles N] [--maxlen BYTES]
 *       [--verify-every N] [--ignore CHECKS] [-v] DIR
 *   fsx --race [--threads N] [--seed N] [--ops ROUNDS] [-v] DIR
 *
 * Default mode: a seeded random mix of open (O_RDWR, O_RDWR|O_APPEND,
 * O_WRONLY, O_RDONLY; O_CREAT, sometimes O_TRUNC), close, write and pwrite
 * at random offsets (holes too), O_APPEND writes, read and pread,
 * truncate and ftruncate (grow and shrink), fstat, stat, lseek(SEEK_END),
 * fsync, fdatasync, rename (to a fresh name and over a live file), unlink
 * (also of open files) and mmap(MAP_SHARED, PROT_READ), over up to --files
 * live files with up to --handles open handles each.  Every result is
 * checked against an in-memory model with ext4's semantics: all handles
 * of a file share its data; a size is right at once in fstat, stat and
 * SEEK_END; st_ino stays while a file exists (across close, reopen and
 * rename) and no two live files share one; an unlinked open file answers
 * fstat with st_nlink 0 and keeps reading and writing until its last
 * close, and its name never comes back.  A fresh O_RDONLY open is made only
 * while no handle of the file may write (kvfs publishes at close: PRODUCT.md
 * section 3.2), and an O_RDONLY handle is not read from once the file
 * changed after it was opened.  Every --verify-every ops and at the end all
 * handles are closed and every file is checked by stat and a fresh read,
 * and DIR is listed: exactly the live files carrying this run's prefix.
 *
 * Race mode: --threads/2 pairs of threads, --ops rounds each with fresh
 * names.  Thread A creates f, signals B, writes and closes; B unlinks f
 * or renames it to g meanwhile.  Afterwards f must not exist, and after a
 * rename g must hold exactly A's data.  Violations are counted.
 *
 * Runs are deterministic for a seed (splitmix64 seeds a xoshiro256**; no
 * rand()).  The first failure prints the seed, the op number, the last ops
 * on that file, what the model expected and what came back, and exits 1;
 * --ignore size,ino,... turns those checks' failures into counted warnings
 * (to see what else fails).  Exit 0: every check held; 1: a check failed;
 * 2: usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the generator: xoshiro256** seeded by splitmix64 ---- */

struct fsx_rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct fsx_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct fsx_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* A number in [0, n); n > 0. */
static uint64_t rng_below(struct fsx_rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

/* ---- the model ---- */

#define LOG_LEN 20
#define NAME_MAX_LEN 64

struct fsx_logent {
	uint64_t op;
	char text[120];
};

/* One file (an inode): its content, its name while linked. */
struct fsx_obj {
	bool used;
	bool linked;
	char name[NAME_MAX_LEN];
	uint8_t *data;
	size_t len;
	ino_t ino;
	bool ino_known;
	int nhandles;
	int nwriters;
	struct fsx_logent log[LOG_LEN];
	int log_next;
	uint64_t log_count;
};

enum fsx_mode { H_RDONLY, H_RDWR, H_APPEND, H_WRONLY };

static const char *const mode_name[] = { "rdonly", "rdwr", "rdwr|append", "wronly" };

struct fsx_handle {
	bool used;
	int fd;
	int obj;
	enum fsx_mode mode;
	off_t pos;
	/* O_RDONLY only: the file changed since the open, so under
	 * close-to-open the handle may show either content. */
	bool stale;
};

/* Check categories, for --ignore. */
enum fsx_check { C_CONTENT, C_SIZE, C_INO, C_NLINK, C_NAME, C_READDIR, C_MMAP, C_ERRNO, C_COUNT };

static const char *const check_name[C_COUNT] = {
	"content", "size", "ino", "nlink", "name", "readdir", "mmap", "errno",
};

struct fsx {
	const char *dir;
	int dirfd;
	uint64_t seed;
	uint64_t nops;
	int nfiles;
	int nhandles_per;
	size_t maxlen;
	uint64_t verify_every;
	bool verbose;
	bool ignore[C_COUNT];
	uint64_t ignored[C_COUNT];

	struct fsx_rng rng;
	uint64_t op;
	char prefix[32];
	uint64_t name_counter;

	struct fsx_obj *objs;
	int nobjs;
	struct fsx_handle *handles;
	int nhslots;

	uint8_t *buf;  /* maxlen + slack: what a write sends */
	uint8_t *rbuf; /* what a read returns */

	char dead[64][NAME_MAX_LEN]; /* recently removed names */
	int ndead;

	uint64_t stats[32];
};

/* ---- reporting ---- */

static void obj_log(struct fsx *x, struct fsx_obj *o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void obj_log(struct fsx *x, struct fsx_obj *o, const char *fmt, ...)
{
	struct fsx_logent *e = &o->log[o->log_next];
	va_list ap;

	e->op = x->op;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	o->log_next = (o->log_next + 1) % LOG_LEN;
	o->log_count++;
	if (x->verbose)
		printf("%" PRIu64 ": %s: %s\n", x->op, o->name, e->text);
}

static void print_log(const struct fsx_obj *o)
{
	int n = o->log_count < LOG_LEN ? (int)o->log_count : LOG_LEN;

	fprintf(stderr, "fsx: last %d ops on this file (of %" PRIu64 "):\n", n, o->log_count);
	for (int i = 0; i < n; i++) {
		const struct fsx_logent *e = &o->log[(o->log_next - n + i + LOG_LEN) % LOG_LEN];

		fprintf(stderr, "  op %" PRIu64 ": %s\n", e->op, e->text);
	}
}

static void hexdump(const char *what, const uint8_t *p, size_t n, size_t base, size_t mark)
{
	fprintf(stderr, "  %-9s", what);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, base + i == mark ? "[%02x]" : " %02x ", p[i]);
	fputc('\n', stderr);
}

/*
 * A check failed: print the seed, the op, the message and the file's log;
 * exit 1 unless the category is ignored.
 */
static void fail(struct fsx *x, struct fsx_obj *o, enum fsx_check c, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void fail(struct fsx *x, struct fsx_obj *o, enum fsx_check c, const char *fmt, ...)
{
	va_list ap;

	if (x->ignore[c] && x->ignored[c]++ > 0)
		return;
	fprintf(stderr, "fsx: seed %" PRIu64 ": op %" PRIu64 ": %s check failed%s: ", x->seed,
		x->op, check_name[c], x->ignore[c] ? " (ignored from now on)" : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (o) {
		fprintf(stderr, "fsx: file %s%s, model length %zu\n", o->name,
			o->linked ? "" : " (unlinked)", o->len);
		print_log(o);
	}
	if (x->ignore[c])
		return;
	fprintf(stderr, "fsx: rerun: fsx --seed %" PRIu64 " --ops %" PRIu64 " --files %d "
		"--handles %d --maxlen %zu -v DIR\n", x->seed, x->op, x->nfiles, x->nhandles_per,
		x->maxlen);
	exit(1);
}

/* Compare n bytes read at offset off with the model; report the first
 * difference with the bytes around it. */
static void check_bytes(struct fsx *x, struct fsx_obj *o, enum fsx_check c, const char *what,
			size_t off, const uint8_t *got, size_t n)
{
	const uint8_t *want = o->data + off;
	size_t i, from, to;

	if (memcmp(got, want, n) == 0)
		return;
	if (x->ignore[c] && x->ignored[c] > 0) {
		x->ignored[c]++; /* reported once already */
		return;
	}
	for (i = 0; got[i] == want[i]; i++)
		;
	from = i >= 8 ? i - 8 : 0;
	to = i + 8 <= n ? i + 8 : n;
	fprintf(stderr, "fsx: %s: first difference at file offset %zu (0x%zx) of [%zu, %zu)\n",
		what, off + i, off + i, off, off + n);
	hexdump("expected", want + from, to - from, off + from, off + i);
	hexdump("actual", got + from, to - from, off + from, off + i);
	fail(x, o, c, "%s: %zu bytes at %zu differ from the model", what, n, off);
}

/* ---- model helpers ---- */

static struct fsx_obj *obj_of(struct fsx *x, struct fsx_handle *h)
{
	return &x->objs[h->obj];
}

static void model_resize(struct fsx *x, struct fsx_obj *o, size_t len)
{
	if (len > o->len)
		memset(o->data + o->len, 0, len - o->len);
	o->len = len;
}

static void model_write(struct fsx_obj *o, size_t off, const uint8_t *p, size_t n)
{
	if (off > o->len)
		memset(o->data + o->len, 0, off - o->len);
	memcpy(o->data + off, p, n);
	if (off + n > o->len)
		o->len = off + n;
}

/* The bytes a write sends: never 0 (so holes show), and a pattern that
 * depends on the op, so a stale or misplaced write shows. */
static void fill(struct fsx *x, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x->buf[i] = (uint8_t)(((x->op * 7 + off + i) % 255) + 1);
}

static int live_count(const struct fsx *x)
{
	int n = 0;

	for (int i = 0; i < x->nobjs; i++)
		n += x->objs[i].used && x->objs[i].linked;
	return n;
}

/* Whether a linked file of the model has this name. */
static bool name_live(const struct fsx *x, const char *name)
{
	for (int i = 0; i < x->nobjs; i++)
		if (x->objs[i].used && x->objs[i].linked && strcmp(x->objs[i].name, name) == 0)
			return true;
	return false;
}

static void remember_dead(struct fsx *x, const char *name)
{
	snprintf(x->dead[x->ndead % 64], NAME_MAX_LEN, "%s", name);
	x->ndead++;
}

static void obj_free_if_gone(struct fsx *x, struct fsx_obj *o)
{
	if (o->used && !o->linked && o->nhandles == 0) {
		free(o->data);
		o->data = NULL;
		o->used = false;
	}
}

static struct fsx_obj *obj_new(struct fsx *x)
{
	struct fsx_obj *o = NULL;

	for (int i = 0; i < x->nobjs; i++)
		if (!x->objs[i].used) {
			o = &x->objs[i];
			break;
		}
	if (!o) {
		fprintf(stderr, "fsx: out of file slots\n");
		exit(1);
	}
	memset(o, 0, sizeof(*o));
	o->used = true;
	o->linked = true;
	o->data = malloc(x->maxlen + 1);
	if (!o->data) {
		fprintf(stderr, "fsx: out of memory\n");
		exit(1);
	}
	snprintf(o->name, sizeof(o->name), "%s%" PRIu64, x->prefix, x->name_counter++);
	return o;
}

/* Objects and handles are picked uniformly among those a filter accepts;
 * the filter gets the candidate and an argument. */
typedef bool (*fsx_obj_filter)(const struct fsx *x, const struct fsx_obj *o, const void *arg);
typedef bool (*fsx_handle_filter)(const struct fsx *x, const struct fsx_handle *h,
				  const void *arg);

/* Defines @name: a random used element of x->@array (x->@count of them)
 * that filter accepts (any used one if NULL), or NULL.  Reservoir sampling:
 * one draw per candidate, each equally likely. */
#define DEFINE_PICK(name, type, array, count, filter_type)                              \
	static type *name(struct fsx *x, filter_type filter, const void *arg)              \
	{                                                                                  \
		type *pick = NULL;                                                         \
		uint64_t seen = 0;                                                         \
		for (int i = 0; i < x->count; i++) {                                       \
			type *e = &x->array[i];                                            \
			if (e->used && (!filter || filter(x, e, arg)) &&                   \
			    rng_below(&x->rng, ++seen) == 0)                               \
				pick = e;                                                  \
		}                                                                          \
		return pick;                                                               \
	}

DEFINE_PICK(pick_obj, struct fsx_obj, objs, nobjs, fsx_obj_filter)
DEFINE_PICK(pick_handle, struct fsx_handle, handles, nhslots, fsx_handle_filter)

static bool linked_but(const struct fsx *x, const struct fsx_obj *o, const void *but)
{
	return o->linked && o != but;
}

static bool openable(const struct fsx *x, const struct fsx_obj *o, const void *arg)
{
	return o->linked && o->nhandles < x->nhandles_per;
}

static bool handle_of(const struct fsx *x, const struct fsx_handle *h, const void *o)
{
	return &x->objs[h->obj] == o;
}

static void check_ino(struct fsx *x, struct fsx_obj *o, ino_t ino, const char *how)
{
	if (o->ino_known && o->ino != ino)
		fail(x, o, C_INO, "%s: st_ino %ju, was %ju", how, (uintmax_t)ino,
		     (uintmax_t)o->ino);
	for (int i = 0; i < x->nobjs; i++) {
		struct fsx_obj *p = &x->objs[i];

		if (p != o && p->used && p->ino_known && p->ino == ino)
			fail(x, o, C_INO, "%s: st_ino %ju is also that of live file %s%s", how,
			     (uintmax_t)ino, p->name, p->linked ? "" : " (unlinked, open)");
	}
	o->ino = ino;
	o->ino_known = true;
}

static void check_stat(struct fsx *x, struct fsx_obj *o, const struct stat *st, const char *how)
{
	if ((size_t)st->st_size != o->len)
		fail(x, o, C_SIZE, "%s: st_size %jd, model %zu", how, (intmax_t)st->st_size, o->len);
	if (st->st_nlink != (o->linked ? 1u : 0u))
		fail(x, o, C_NLINK, "%s: st_nlink %ju, want %d", how, (uintmax_t)st->st_nlink,
		     o->linked ? 1 : 0);
	check_ino(x, o, st->st_ino, how);
}

static void check_gone(struct fsx *x, struct fsx_obj *o, const char *name, const char *how)
{
	struct stat st;

	if (fstatat(x->dirfd, name, &st, 0) == 0)
		fail(x, o, C_NAME, "%s: %s exists (size %jd), should be gone", how, name,
		     (intmax_t)st.st_size);
	else if (errno != ENOENT)
		fail(x, o, C_ERRNO, "%s: stat %s: %s, want ENOENT", how, name, strerror(errno));
}

/* ---- the operations ---- */

enum fsx_op {
	OP_OPEN, OP_CLOSE, OP_WRITE, OP_PWRITE, OP_APPEND, OP_READ, OP_PREAD, OP_FTRUNCATE,
	OP_TRUNCATE, OP_FSTAT, OP_STAT, OP_SEEK_END, OP_FSYNC, OP_RENAME, OP_RENAME_OVER,
	OP_UNLINK, OP_MMAP, OP_COUNT
};

static const char *const op_name[OP_COUNT] = {
	"open", "close", "write", "pwrite", "append", "read", "pread", "ftruncate",
	"truncate", "fstat", "stat", "seek_end", "fsync", "rename", "rename_over",
	"unlink", "mmap",
};

static const unsigned op_weight[OP_COUNT] = {
	[OP_OPEN] = 10, [OP_CLOSE] = 8, [OP_WRITE] = 12, [OP_PWRITE] = 12, [OP_APPEND] = 6,
	[OP_READ] = 8, [OP_PREAD] = 10, [OP_FTRUNCATE] = 5, [OP_TRUNCATE] = 3,
	[OP_FSTAT] = 5, [OP_STAT] = 5, [OP_SEEK_END] = 4, [OP_FSYNC] = 3, [OP_RENAME] = 3,
	[OP_RENAME_OVER] = 2, [OP_UNLINK] = 3, [OP_MMAP] = 2,
};

static bool readable(const struct fsx_handle *h)
{
	return h->mode == H_RDWR || h->mode == H_APPEND || (h->mode == H_RDONLY && !h->stale);
}

static bool writable(const struct fsx_handle *h)
{
	return h->mode != H_RDONLY;
}

static int handles_in_use(const struct fsx *x)
{
	int n = 0;

	for (int i = 0; i < x->nhslots; i++)
		n += x->handles[i].used;
	return n;
}

/* The file changed: its O_RDONLY handles may now show either content. */
static void mark_changed(struct fsx *x, struct fsx_obj *o)
{
	for (int i = 0; i < x->nhslots; i++) {
		struct fsx_handle *h = &x->handles[i];

		if (h->used && &x->objs[h->obj] == o && h->mode == H_RDONLY)
			h->stale = true;
	}
}

static void do_fstat(struct fsx *x, struct fsx_handle *h, const char *after)
{
	struct fsx_obj *o = obj_of(x, h);
	struct stat st;
	char how[96];

	snprintf(how, sizeof(how), "fstat of fd %d (%s)%s%s", h->fd, mode_name[h->mode],
		 after ? " after " : "", after ? after : "");
	if (fstat(h->fd, &st) < 0) {
		fail(x, o, C_ERRNO, "%s: %s", how, strerror(errno));
		return;
	}
	check_stat(x, o, &st, how);
}

/* Read [off, off + n) through h (pread when off >= 0, else read at the
 * position) and check it. */
static void read_check(struct fsx *x, struct fsx_handle *h, off_t off, size_t n, bool positional)
{
	struct fsx_obj *o = obj_of(x, h);
	size_t want = (size_t)off >= o->len ? 0 : o->len - (size_t)off;
	size_t got = 0;
	char what[96];

	if (want > n)
		want = n;
	snprintf(what, sizeof(what), "%s of %zu at %jd through fd %d (%s)",
		 positional ? "pread" : "read", n, (intmax_t)off, h->fd, mode_name[h->mode]);
	obj_log(x, o, "%s: expect %zu bytes", what, want);
	if (!positional && lseek(h->fd, off, SEEK_SET) != off) {
		fail(x, o, C_ERRNO, "%s: lseek: %s", what, strerror(errno));
		return;
	}
	while (got < n) {
		ssize_t r = positional ? pread(h->fd, x->rbuf + got, n - got, off + (off_t)got)
				       : read(h->fd, x->rbuf + got, n - got);

		if (r < 0) {
			fail(x, o, C_ERRNO, "%s: %s", what, strerror(errno));
			return;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (!positional)
		h->pos = off + (off_t)got;
	if (got != want) {
		fail(x, o, C_SIZE, "%s: returned %zu bytes, model has %zu", what, got, want);
		if (got > want)
			got = want;
	}
	check_bytes(x, o, C_CONTENT, what, (size_t)off, x->rbuf, got);
}

static void write_all(struct fsx *x, struct fsx_handle *h, const char *what, off_t off,
		      size_t n, bool positional)
{
	struct fsx_obj *o = obj_of(x, h);
	size_t done = 0;

	while (done < n) {
		ssize_t r = positional ? pwrite(h->fd, x->buf + done, n - done, off + (off_t)done)
				       : write(h->fd, x->buf + done, n - done);

		if (r <= 0) {
			fail(x, o, C_ERRNO, "%s: %s", what, r < 0 ? strerror(errno) : "wrote 0");
			return;
		}
		done += (size_t)r;
	}
}

/* An offset and a length for a write that stays within maxlen: mostly
 * within or just past the data, sometimes far past it (a hole). */
static void pick_extent(struct fsx *x, const struct fsx_obj *o, size_t *ret_off, size_t *ret_n)
{
	size_t span = o->len + o->len / 4 + 1;
	size_t off, n, room;

	if (span > x->maxlen)
		span = x->maxlen;
	off = rng_below(&x->rng, 8) == 0 ? rng_below(&x->rng, x->maxlen)
					  : rng_below(&x->rng, span);
	room = x->maxlen - off;
	n = rng_below(&x->rng, 4) == 0 ? rng_below(&x->rng, x->maxlen / 4 + 1)
				       : rng_below(&x->rng, 4096) + 1;
	if (n > room)
		n = room;
	if (n == 0 && room > 0)
		n = 1;
	*ret_off = off;
	*ret_n = n;
}

static void op_write(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	bool positional = op == OP_PWRITE;
	struct fsx_obj *o = obj_of(x, h);
	size_t off, n;
	char what[96];

	pick_extent(x, o, &off, &n);
	if (h->mode == H_APPEND) {
		/* O_APPEND: the data lands at EOF whatever the offset (on
		 * Linux also for pwrite). */
		if (o->len + n > x->maxlen)
			n = x->maxlen - o->len;
	}
	snprintf(what, sizeof(what), "%s of %zu at %zu through fd %d (%s)",
		 positional ? "pwrite" : "write", n, off, h->fd, mode_name[h->mode]);
	obj_log(x, o, "%s, length before %zu", what, o->len);
	if (!positional && lseek(h->fd, (off_t)off, SEEK_SET) != (off_t)off) {
		fail(x, o, C_ERRNO, "%s: lseek: %s", what, strerror(errno));
		return;
	}
	if (h->mode == H_APPEND)
		off = o->len;
	fill(x, off, n);
	write_all(x, h, what, (off_t)off, n, positional);
	model_write(o, off, x->buf, n);
	if (!positional)
		h->pos = (off_t)(off + n);
	mark_changed(x, o);
	do_fstat(x, h, what);
}

static void op_append(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	struct fsx_obj *o = obj_of(x, h);
	size_t n = rng_below(&x->rng, 2048) + 1;
	off_t end;
	char what[96];

	if (o->len + n > x->maxlen)
		n = x->maxlen - o->len;
	snprintf(what, sizeof(what), "append of %zu through fd %d (%s)", n, h->fd,
		 mode_name[h->mode]);
	obj_log(x, o, "%s at %zu", what, o->len);
	if (h->mode != H_APPEND) {
		/* The plain way: seek to the end, then write. */
		end = lseek(h->fd, 0, SEEK_END);
		if (end != (off_t)o->len)
			fail(x, o, C_SIZE, "%s: lseek(SEEK_END) returned %jd, model %zu", what,
			     (intmax_t)end, o->len);
		if (lseek(h->fd, (off_t)o->len, SEEK_SET) < 0)
			fail(x, o, C_ERRNO, "%s: lseek: %s", what, strerror(errno));
	}
	fill(x, o->len, n);
	write_all(x, h, what, 0, n, false);
	model_write(o, o->len, x->buf, n);
	h->pos = (off_t)o->len;
	mark_changed(x, o);
	do_fstat(x, h, what);
}

static void op_read(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	bool positional = op == OP_PREAD;
	struct fsx_obj *o = obj_of(x, h);
	size_t span = o->len + 64;
	size_t off = rng_below(&x->rng, span);
	size_t n = rng_below(&x->rng, 4) == 0 ? rng_below(&x->rng, x->maxlen) + 1
					      : rng_below(&x->rng, 8192) + 1;

	read_check(x, h, (off_t)off, n, positional);
}

static size_t pick_size(struct fsx *x, const struct fsx_obj *o)
{
	switch (rng_below(&x->rng, 4)) {
	case 0:
		return 0;
	case 1:
		return o->len ? rng_below(&x->rng, o->len) : 0; /* shrink */
	default:
		return rng_below(&x->rng, x->maxlen + 1); /* anything, grow too */
	}
}

static void op_ftruncate(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	struct fsx_obj *o = obj_of(x, h);
	size_t len = pick_size(x, o);
	char what[96];

	snprintf(what, sizeof(what), "ftruncate to %zu through fd %d (%s)", len, h->fd,
		 mode_name[h->mode]);
	obj_log(x, o, "%s, length before %zu", what, o->len);
	if (ftruncate(h->fd, (off_t)len) < 0)
		fail(x, o, C_ERRNO, "%s: %s", what, strerror(errno));
	model_resize(x, o, len);
	mark_changed(x, o);
	do_fstat(x, h, what);
}

static void stat_path(struct fsx *x, struct fsx_obj *o, const char *after)
{
	struct stat st;
	char how[128];

	snprintf(how, sizeof(how), "stat %s%s%s", o->name, after ? " after " : "",
		 after ? after : "");
	if (fstatat(x->dirfd, o->name, &st, 0) < 0) {
		fail(x, o, C_NAME, "%s: %s", how, strerror(errno));
		return;
	}
	check_stat(x, o, &st, how);
}

static void op_truncate(struct fsx *x, struct fsx_obj *o)
{
	size_t len = pick_size(x, o);
	char what[96], path[4096];

	snprintf(what, sizeof(what), "truncate %s to %zu", o->name, len);
	snprintf(path, sizeof(path), "%s/%s", x->dir, o->name);
	obj_log(x, o, "%s, length before %zu", what, o->len);
	if (truncate(path, (off_t)len) < 0)
		fail(x, o, C_ERRNO, "%s: %s", what, strerror(errno));
	model_resize(x, o, len);
	mark_changed(x, o);
	stat_path(x, o, what);
}

static void op_seek_end(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	struct fsx_obj *o = obj_of(x, h);
	off_t end = lseek(h->fd, 0, SEEK_END);

	obj_log(x, o, "lseek(SEEK_END) on fd %d (%s): expect %zu", h->fd, mode_name[h->mode],
		o->len);
	if (end < 0)
		fail(x, o, C_ERRNO, "lseek(SEEK_END) on fd %d: %s", h->fd, strerror(errno));
	else if ((size_t)end != o->len)
		fail(x, o, C_SIZE, "lseek(SEEK_END) on fd %d (%s) returned %jd, model %zu", h->fd,
		     mode_name[h->mode], (intmax_t)end, o->len);
	h->pos = (off_t)o->len;
}

static void op_fsync(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	struct fsx_obj *o = obj_of(x, h);
	bool data = rng_below(&x->rng, 2);

	obj_log(x, o, "%s fd %d (%s)", data ? "fdatasync" : "fsync", h->fd, mode_name[h->mode]);
	if ((data ? fdatasync(h->fd) : fsync(h->fd)) < 0)
		fail(x, o, C_ERRNO, "%s fd %d: %s", data ? "fdatasync" : "fsync", h->fd,
		     strerror(errno));
	do_fstat(x, h, data ? "fdatasync" : "fsync");
}

static void op_mmap(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	struct fsx_obj *o = obj_of(x, h);
	struct stat st;
	void *p;

	obj_log(x, o, "mmap(MAP_SHARED, PROT_READ) of %zu through fd %d (%s)", o->len, h->fd,
		mode_name[h->mode]);
	/* Mapping past EOF would raise SIGBUS: check the size first. */
	if (fstat(h->fd, &st) < 0) {
		fail(x, o, C_ERRNO, "fstat before mmap: %s", strerror(errno));
		return;
	}
	if ((size_t)st.st_size != o->len) {
		fail(x, o, C_SIZE, "fstat before mmap: st_size %jd, model %zu",
		     (intmax_t)st.st_size, o->len);
		return;
	}
	if (o->len == 0)
		return;
	p = mmap(NULL, o->len, PROT_READ, MAP_SHARED, h->fd, 0);
	if (p == MAP_FAILED) {
		if (errno == ENODEV && h->mode == H_RDONLY)
			return;
		fail(x, o, C_MMAP, "mmap(MAP_SHARED, PROT_READ) of fd %d (%s): %s", h->fd,
		     mode_name[h->mode], strerror(errno));
		return;
	}
	check_bytes(x, o, C_CONTENT, "mmap", 0, p, o->len);
	munmap(p, o->len);
}

static void close_handle(struct fsx *x, struct fsx_handle *h)
{
	struct fsx_obj *o = obj_of(x, h);
	char what[96];

	snprintf(what, sizeof(what), "close fd %d (%s)", h->fd, mode_name[h->mode]);
	obj_log(x, o, "%s", what);
	if (close(h->fd) < 0)
		fail(x, o, C_ERRNO, "%s: %s", what, strerror(errno));
	h->used = false;
	o->nhandles--;
	if (writable(h))
		o->nwriters--;
	if (o->linked) {
		stat_path(x, o, what);
	} else if (o->nhandles == 0 && !name_live(x, o->name)) {
		/* The last close of an unlinked file: its name stays gone
		 * (unless a rename put another file there). */
		check_gone(x, o, o->name, what);
	}
	obj_free_if_gone(x, o);
}

static void op_open(struct fsx *x)
{
	int nh = handles_in_use(x);
	struct fsx_handle *h = NULL;
	struct fsx_obj *o;
	enum fsx_mode mode;
	bool create, trunc = false, excl = false;
	int flags;
	char what[96];

	if (nh >= x->nhslots)
		return;
	for (int i = 0; i < x->nhslots; i++)
		if (!x->handles[i].used) {
			h = &x->handles[i];
			break;
		}
	o = pick_obj(x, openable, NULL);
	create = live_count(x) < x->nfiles && (!o || rng_below(&x->rng, 4) == 0);
	if (!o && !create)
		return;
	if (create) {
		o = obj_new(x);
		excl = rng_below(&x->rng, 2);
		mode = (enum fsx_mode)(H_RDWR + rng_below(&x->rng, 3));
	} else {
		mode = (enum fsx_mode)rng_below(&x->rng, 4);
		if (mode == H_RDONLY && o->nwriters > 0)
			mode = H_RDWR;
		trunc = mode != H_RDONLY && rng_below(&x->rng, 8) == 0;
	}
	flags = mode == H_RDONLY ? O_RDONLY : mode == H_WRONLY ? O_WRONLY : O_RDWR;
	if (mode == H_APPEND)
		flags |= O_APPEND;
	if (create || (mode != H_RDONLY && rng_below(&x->rng, 2)))
		flags |= O_CREAT;
	if (excl)
		flags |= O_EXCL;
	if (trunc)
		flags |= O_TRUNC;
	snprintf(what, sizeof(what), "open %s%s%s%s", mode_name[mode],
		 flags & O_CREAT ? "|creat" : "", excl ? "|excl" : "", trunc ? "|trunc" : "");
	obj_log(x, o, "%s", what);
	h->fd = openat(x->dirfd, o->name, flags | O_CLOEXEC, 0644);
	if (h->fd < 0) {
		fail(x, o, C_ERRNO, "%s %s: %s", what, o->name, strerror(errno));
		if (create) {
			o->linked = false;
			obj_free_if_gone(x, o);
		}
		return;
	}
	h->used = true;
	h->obj = (int)(o - x->objs);
	h->mode = mode;
	h->pos = 0;
	h->stale = false;
	o->nhandles++;
	if (writable(h)) {
		o->nwriters++;
		mark_changed(x, o); /* other O_RDONLY handles: close-to-open */
	}
	if (trunc)
		model_resize(x, o, 0);
	do_fstat(x, h, what);
	if (mode == H_RDONLY && o->len > 0) /* a fresh open shows the committed content */
		read_check(x, h, 0, o->len + 1, true);
}

static void op_rename(struct fsx *x, struct fsx_obj *o, struct fsx_obj *target)
{
	char from[NAME_MAX_LEN], to[NAME_MAX_LEN], what[160];

	snprintf(from, sizeof(from), "%s", o->name);
	if (target)
		snprintf(to, sizeof(to), "%s", target->name);
	else
		snprintf(to, sizeof(to), "%s%" PRIu64, x->prefix, x->name_counter++);
	snprintf(what, sizeof(what), "rename %s to %s%s", from, to,
		 target ? " (over a live file)" : "");
	obj_log(x, o, "%s", what);
	if (target)
		obj_log(x, target, "%s: replaced", what);
	if (renameat(x->dirfd, from, x->dirfd, to) < 0) {
		fail(x, o, C_ERRNO, "%s: %s", what, strerror(errno));
		return;
	}
	snprintf(o->name, sizeof(o->name), "%s", to);
	remember_dead(x, from);
	check_gone(x, o, from, what);
	if (target) {
		target->linked = false;
		if (target->nhandles == 0)
			obj_free_if_gone(x, target);
	}
	stat_path(x, o, what);
	if (target && target->used) {
		/* An open handle of the replaced file still answers. */
		struct fsx_handle *h = pick_handle(x, handle_of, target);

		if (h)
			do_fstat(x, h, what);
	}
}

static void op_unlink(struct fsx *x, struct fsx_obj *o)
{
	char what[96];

	snprintf(what, sizeof(what), "unlink %s (%d handles open)", o->name, o->nhandles);
	obj_log(x, o, "%s", what);
	if (unlinkat(x->dirfd, o->name, 0) < 0) {
		fail(x, o, C_ERRNO, "%s: %s", what, strerror(errno));
		return;
	}
	o->linked = false;
	remember_dead(x, o->name);
	check_gone(x, o, o->name, what);
	if (o->nhandles > 0) {
		do_fstat(x, pick_handle(x, handle_of, o), what);
	}
	obj_free_if_gone(x, o);
}

/* Close every handle, then check every file by stat and a fresh read, and
 * the listing of DIR. */
static void verify_all(struct fsx *x)
{
	size_t plen = strlen(x->prefix);
	int listed = 0, live = 0;
	DIR *d;
	struct dirent *de;

	for (int i = 0; i < x->nhslots; i++)
		if (x->handles[i].used)
			close_handle(x, &x->handles[i]);
	for (int i = 0; i < x->nobjs; i++) {
		struct fsx_obj *o = &x->objs[i];
		struct fsx_handle h = { .used = true, .mode = H_RDONLY, .obj = i };

		if (!o->used)
			continue;
		live++;
		obj_log(x, o, "verify: stat, open rdonly, read %zu", o->len);
		stat_path(x, o, "verify");
		h.fd = openat(x->dirfd, o->name, O_RDONLY | O_CLOEXEC);
		if (h.fd < 0) {
			fail(x, o, C_NAME, "verify: open %s: %s", o->name, strerror(errno));
			continue;
		}
		read_check(x, &h, 0, o->len + 1, true);
		close(h.fd);
	}
	for (int i = 0; i < x->ndead && i < 64; i++)
		check_gone(x, NULL, x->dead[i], "verify: a removed name");
	d = fdopendir(dup(x->dirfd));
	if (!d) {
		fail(x, NULL, C_ERRNO, "opendir %s: %s", x->dir, strerror(errno));
		return;
	}
	rewinddir(d); /* the dup shares the offset of the last listing */
	while ((de = readdir(d))) {
		bool known = false;

		if (strncmp(de->d_name, x->prefix, plen) != 0)
			continue;
		listed++;
		for (int i = 0; i < x->nobjs; i++)
			known |= x->objs[i].used && strcmp(x->objs[i].name, de->d_name) == 0;
		if (!known)
			fail(x, NULL, C_READDIR, "verify: readdir of %s lists %s, which the model "
			     "does not have", x->dir, de->d_name);
	}
	closedir(d);
	if (listed != live)
		fail(x, NULL, C_READDIR, "verify: readdir of %s lists %d files, the model has %d",
		     x->dir, listed, live);
}

static bool can_read(const struct fsx *x, const struct fsx_handle *h, const void *arg)
{
	return readable(h);
}

static bool can_write(const struct fsx *x, const struct fsx_handle *h, const void *arg)
{
	return writable(h);
}

/* fstat and SEEK_END: any handle that has not gone stale. */
static bool can_size(const struct fsx *x, const struct fsx_handle *h, const void *arg)
{
	return writable(h) || !h->stale;
}

static void op_close(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	close_handle(x, h);
}

static void op_fstat(struct fsx *x, struct fsx_handle *h, enum fsx_op op)
{
	obj_log(x, obj_of(x, h), "fstat fd %d", h->fd);
	do_fstat(x, h, NULL);
}

/* The operations on an open handle: which handles each may be given (NULL:
 * any), and what it does with the one picked. */
static const struct {
	fsx_handle_filter filter;
	void (*run)(struct fsx *x, struct fsx_handle *h, enum fsx_op op);
} handle_ops[OP_COUNT] = {
	[OP_CLOSE] = {NULL, op_close},
	[OP_WRITE] = {can_write, op_write},
	[OP_PWRITE] = {can_write, op_write},
	[OP_APPEND] = {can_write, op_append},
	[OP_READ] = {can_read, op_read},
	[OP_PREAD] = {can_read, op_read},
	[OP_FTRUNCATE] = {can_write, op_ftruncate},
	[OP_FSTAT] = {can_size, op_fstat},
	[OP_SEEK_END] = {can_size, op_seek_end},
	[OP_FSYNC] = {can_write, op_fsync},
	[OP_MMAP] = {can_read, op_mmap},
};

static void one_op(struct fsx *x)
{
	unsigned total = 0, w;
	enum fsx_op op;
	struct fsx_handle *h = NULL;
	struct fsx_obj *o;

	for (int i = 0; i < OP_COUNT; i++)
		total += op_weight[i];
	w = (unsigned)rng_below(&x->rng, total);
	for (op = 0; w >= op_weight[op]; op++)
		w -= op_weight[op];
	x->stats[op]++;
	if (handle_ops[op].run) {
		if ((h = pick_handle(x, handle_ops[op].filter, NULL)))
			handle_ops[op].run(x, h, op);
		return;
	}
	switch (op) {
	case OP_OPEN:
		op_open(x);
		return;
	case OP_TRUNCATE:
	case OP_STAT:
	case OP_UNLINK:
	case OP_RENAME:
		o = pick_obj(x, linked_but, NULL);
		if (!o)
			break;
		if (op == OP_TRUNCATE) {
			op_truncate(x, o);
		} else if (op == OP_STAT) {
			obj_log(x, o, "stat");
			stat_path(x, o, NULL);
		} else if (op == OP_UNLINK) {
			op_unlink(x, o);
		} else {
			op_rename(x, o, NULL);
		}
		break;
	case OP_RENAME_OVER: {
		struct fsx_obj *a = pick_obj(x, linked_but, NULL);
		struct fsx_obj *b = a ? pick_obj(x, linked_but, a) : NULL;

		if (b)
			op_rename(x, a, b);
		break;
	}
	default: /* the operations on a handle, done above */
		break;
	}
}

/* Unlinks the entries of the directory whose names start with @prefix,
 * naming each on stderr with @report unless it is NULL.  @return how many,
 * or -1 when the directory cannot be read. */
static long remove_prefixed(struct fsx *x, const char *prefix, const char *report)
{
	size_t plen = strlen(prefix);
	long n = 0;
	struct dirent *de;
	DIR *d = fdopendir(dup(x->dirfd));

	if (!d) {
		fprintf(stderr, "fsx: opendir %s: %s\n", x->dir, strerror(errno));
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		if (report)
			fprintf(stderr, "fsx: %s %s\n", de->d_name, report);
		unlinkat(x->dirfd, de->d_name, 0);
		n++;
	}
	closedir(d);
	return n;
}

static int run_model(struct fsx *x)
{
	snprintf(x->prefix, sizeof(x->prefix), "fsx%" PRIu64 ".", x->seed);
	/* Leftovers of an earlier run with this seed would break the listing
	 * check: remove them. */
	if (remove_prefixed(x, x->prefix, NULL) < 0)
		return 1;

	rng_seed(&x->rng, x->seed);
	x->nobjs = x->nfiles * (x->nhandles_per + 1) + 1;
	x->objs = calloc((size_t)x->nobjs, sizeof(*x->objs));
	x->nhslots = x->nfiles * x->nhandles_per;
	x->handles = calloc((size_t)x->nhslots, sizeof(*x->handles));
	x->buf = malloc(x->maxlen + 1);
	x->rbuf = malloc(x->maxlen + 2);
	if (!x->objs || !x->handles || !x->buf || !x->rbuf) {
		fprintf(stderr, "fsx: out of memory\n");
		return 1;
	}
	for (x->op = 1; x->op <= x->nops; x->op++) {
		one_op(x);
		if (x->op % x->verify_every == 0)
			verify_all(x);
	}
	verify_all(x);
	/* Clean up: a passing run leaves DIR as it found it. */
	for (int i = 0; i < x->nobjs; i++)
		if (x->objs[i].used) {
			unlinkat(x->dirfd, x->objs[i].name, 0);
			free(x->objs[i].data);
		}
	bool any_ignored = false;

	for (int c = 0; c < C_COUNT; c++)
		any_ignored |= x->ignored[c] > 0;
	printf("fsx: seed %" PRIu64 ": %" PRIu64 " ops %s (ops drawn: ", x->seed, x->nops,
	       any_ignored ? "done, with ignored failures" : "ok");
	for (int i = 0; i < OP_COUNT; i++)
		printf("%s%s %" PRIu64, i ? ", " : "", op_name[i], x->stats[i]);
	printf(")\n");
	free(x->objs);
	free(x->handles);
	free(x->buf);
	free(x->rbuf);
	for (int c = 0; c < C_COUNT; c++)
		if (x->ignored[c])
			printf("fsx: %s check failed %" PRIu64 " times (ignored)\n", check_name[c],
			       x->ignored[c]);
	return any_ignored ? 1 : 0;
}

/* ---- race mode ---- */

struct fsx_pair {
	struct fsx *x;
	int id;
	struct fsx_rng rng;
	sem_t opened;
	pthread_barrier_t done;
	char f[NAME_MAX_LEN];
	char g[NAME_MAX_LEN + 8];
	bool rename; /* this round: rename f to g, else unlink f */
	int b_errno; /* B's unlink/rename failed with this */
	uint64_t rounds;
	uint64_t unlinks;        /* rounds that unlinked (the others renamed) */
	uint64_t unlink_back;    /* f exists after an unlink raced the close */
	uint64_t rename_back;    /* f exists after a rename raced the close */
	uint64_t rename_lost;    /* g missing or not A's data */
	uint64_t op_errors;      /* a syscall failed */
	uint64_t rounds_when[3]; /* rounds by when B went: after the create, */
	uint64_t back_when[3];   /* before the close, after it; came back */
	bool failed_once;
};

static void race_note(struct fsx_pair *p, uint64_t round, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void race_note(struct fsx_pair *p, uint64_t round, const char *fmt, ...)
{
	va_list ap;

	if (!p->x->verbose && p->failed_once)
		return;
	p->failed_once = true;
	flockfile(stderr);
	fprintf(stderr, "fsx: race pair %d round %" PRIu64 ": ", p->id, round);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

/* Thread B: unlink or rename f once A has created it. */
static void *race_b(void *arg)
{
	struct fsx_pair *p = arg;
	int dirfd = p->x->dirfd;

	for (uint64_t r = 0; r < p->rounds; r++) {
		sem_wait(&p->opened);
		p->b_errno = 0;
		if ((p->rename ? renameat(dirfd, p->f, dirfd, p->g) : unlinkat(dirfd, p->f, 0)) < 0)
			p->b_errno = errno;
		pthread_barrier_wait(&p->done);
		pthread_barrier_wait(&p->done); /* A has checked */
	}
	return NULL;
}

/* Thread A: create f, let B go, write, close; then check. */
static void *race_a(void *arg)
{
	struct fsx_pair *p = arg;
	struct fsx *x = p->x;
	size_t cap = 65536;
	uint8_t *data = malloc(cap), *back = malloc(cap + 1);

	if (!data || !back) {
		fprintf(stderr, "fsx: out of memory\n");
		exit(1);
	}
	for (uint64_t r = 0; r < p->rounds; r++) {
		size_t n = rng_below(&p->rng, 4) ? rng_below(&p->rng, 4096) + 1
						 : rng_below(&p->rng, cap) + 1;
		struct stat st;
		ssize_t got = 0;
		int when, fd;

		snprintf(p->f, sizeof(p->f), "race%" PRIu64 ".%d.%" PRIu64, x->seed, p->id, r);
		snprintf(p->g, sizeof(p->g), "%s.moved", p->f);
		p->rename = rng_below(&p->rng, 2);
		p->unlinks += !p->rename;
		when = (int)rng_below(&p->rng, 3);
		p->rounds_when[when]++;
		for (size_t i = 0; i < n; i++)
			data[i] = (uint8_t)((r * 13 + i) % 255 + 1);
		fd = openat(x->dirfd, p->f, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			race_note(p, r, "create %s: %s", p->f, strerror(errno));
			p->op_errors++;
		}
		/* B goes right after the create (racing the write and the
		 * close), right before the close, or right after close
		 * returned (racing the daemon's handling of the release). */
		if (when == 0)
			sem_post(&p->opened);
		if (fd >= 0 && write(fd, data, n) != (ssize_t)n) {
			race_note(p, r, "write %s: %s", p->f, strerror(errno));
			p->op_errors++;
		}
		if (when == 1)
			sem_post(&p->opened);
		if (fd >= 0 && close(fd) < 0) {
			race_note(p, r, "close %s: %s", p->f, strerror(errno));
			p->op_errors++;
		}
		if (when == 2)
			sem_post(&p->opened);
		pthread_barrier_wait(&p->done);
		if (p->b_errno) {
			race_note(p, r, "%s %s: %s", p->rename ? "rename" : "unlink", p->f,
				  strerror(p->b_errno));
			p->op_errors++;
		}
		if (fstatat(x->dirfd, p->f, &st, 0) == 0) {
			race_note(p, r, "%s came back (size %jd) after %s raced the close", p->f,
				  (intmax_t)st.st_size, p->rename ? "rename" : "unlink");
			p->back_when[when]++;
			if (p->rename)
				p->rename_back++;
			else
				p->unlink_back++;
			unlinkat(x->dirfd, p->f, 0);
		}
		if (p->rename && !p->b_errno) {
			int gfd = openat(x->dirfd, p->g, O_RDONLY | O_CLOEXEC);

			got = -1;
			if (gfd >= 0) {
				got = 0;
				for (ssize_t k; (size_t)got <= cap &&
				     (k = read(gfd, back + got, cap + 1 - (size_t)got)) > 0;)
					got += k;
				close(gfd);
			}
			if (gfd < 0 || (size_t)got != n || memcmp(back, data, n) != 0) {
				race_note(p, r, "%s after the rename: %s (%zd bytes, want %zu)", p->g,
					  gfd < 0 ? strerror(errno) : "wrong data", got, n);
				p->rename_lost++;
			}
			unlinkat(x->dirfd, p->g, 0);
		}
		pthread_barrier_wait(&p->done);
	}
	free(data);
	free(back);
	return NULL;
}

/* Every name a round made was removed after its check: one still listed
 * came back later (a commit that landed after the check).  Counts and
 * removes them. */
static uint64_t race_leftovers(struct fsx *x)
{
	char prefix[32];
	long n;

	snprintf(prefix, sizeof(prefix), "race%" PRIu64 ".", x->seed);
	n = remove_prefixed(x, prefix, "is listed after the last round");
	return n < 0 ? 1 : (uint64_t)n;
}

static int run_race(struct fsx *x, int nthreads)
{
	int npairs = nthreads / 2 > 0 ? nthreads / 2 : 1;
	struct fsx_pair *pairs = calloc((size_t)npairs, sizeof(*pairs));
	pthread_t *tids = calloc((size_t)npairs * 2, sizeof(*tids));
	uint64_t back_u = 0, back_r = 0, lost = 0, errs = 0, unlinks = 0;
	uint64_t rounds_when[3] = { 0 }, back_when[3] = { 0 };

	if (!pairs || !tids) {
		fprintf(stderr, "fsx: out of memory\n");
		return 1;
	}
	for (int i = 0; i < npairs; i++) {
		struct fsx_pair *p = &pairs[i];

		p->x = x;
		p->id = i;
		p->rounds = x->nops;
		rng_seed(&p->rng, x->seed * 1000003 + (uint64_t)i);
		sem_init(&p->opened, 0, 0);
		pthread_barrier_init(&p->done, NULL, 2);
		if (pthread_create(&tids[2 * i], NULL, race_a, p) ||
		    pthread_create(&tids[2 * i + 1], NULL, race_b, p)) {
			fprintf(stderr, "fsx: cannot start threads\n");
			return 1;
		}
	}
	for (int i = 0; i < npairs * 2; i++)
		pthread_join(tids[i], NULL);
	for (int i = 0; i < npairs; i++) {
		struct fsx_pair *p = &pairs[i];

		unlinks += p->unlinks;
		for (int w = 0; w < 3; w++) {
			rounds_when[w] += p->rounds_when[w];
			back_when[w] += p->back_when[w];
		}
		back_u += p->unlink_back;
		back_r += p->rename_back;
		lost += p->rename_lost;
		errs += p->op_errors;
		sem_destroy(&p->opened);
		pthread_barrier_destroy(&p->done);
	}
	uint64_t total = x->nops * (uint64_t)npairs;
	uint64_t late = race_leftovers(x);

	printf("fsx: race seed %" PRIu64 ": %d pairs, %" PRIu64 " rounds (%" PRIu64 " unlink, %"
	       PRIu64 " rename)\n", x->seed, npairs, total, unlinks, total - unlinks);
	printf("fsx: removed by unlink, came back: %" PRIu64 " of %" PRIu64 "\n", back_u, unlinks);
	printf("fsx: renamed away, came back under the old name: %" PRIu64 " of %" PRIu64 "\n",
	       back_r, total - unlinks);
	printf("fsx: renamed, new name missing or without the writer's data: %" PRIu64 " of %"
	       PRIu64 "\n", lost, total - unlinks);
	printf("fsx: came back, by when the removal went: after the create %" PRIu64 " of %"
	       PRIu64 ", before the close %" PRIu64 " of %" PRIu64 ", after the close %" PRIu64
	       " of %" PRIu64 "\n", back_when[0], rounds_when[0], back_when[1], rounds_when[1],
	       back_when[2], rounds_when[2]);
	printf("fsx: removed names back in the listing at the end: %" PRIu64 "\n", late);
	printf("fsx: failed system calls: %" PRIu64 "\n", errs);
	free(pairs);
	free(tids);
	return back_u || back_r || lost || late || errs ? 1 : 0;
}

/* ---- command line ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: fsx [--seed N] [--ops N] [--files N] [--handles N] [--maxlen BYTES]\n"
		"           [--verify-every N] [--ignore CHECK,...] [-v] DIR\n"
		"       fsx --race [--threads N] [--seed N] [--ops ROUNDS] [-v] DIR\n"
		"checks: content size ino nlink name readdir mmap errno\n");
	exit(2);
}

static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "fsx: --%s: '%s' is not a number in [%" PRIu64 ", %" PRIu64 "]\n",
			opt, s, min, max);
		exit(2);
	}
	return v;
}

static void parse_ignore(struct fsx *x, char *list)
{
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		int c;

		for (c = 0; c < C_COUNT && strcmp(tok, check_name[c]) != 0; c++)
			;
		if (c == C_COUNT) {
			fprintf(stderr, "fsx: --ignore: unknown check '%s'\n", tok);
			exit(2);
		}
		x->ignore[c] = true;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'o' },
		{ "files", required_argument, NULL, 'f' },
		{ "handles", required_argument, NULL, 'h' },
		{ "maxlen", required_argument, NULL, 'm' },
		{ "verify-every", required_argument, NULL, 'V' },
		{ "ignore", required_argument, NULL, 'i' },
		{ "race", no_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct fsx x = {
		.seed = 1, .nops = 10000, .nfiles = 4, .nhandles_per = 3,
		.maxlen = 256 * 1024, .verify_every = 500,
	};
	bool race = false;
	int nthreads = 8, c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 's': x.seed = parse_num("seed", optarg, 0, UINT64_MAX); break;
		case 'o': x.nops = parse_num("ops", optarg, 1, UINT64_MAX / 2); break;
		case 'f': x.nfiles = (int)parse_num("files", optarg, 1, 1000); break;
		case 'h': x.nhandles_per = (int)parse_num("handles", optarg, 1, 100); break;
		case 'm': x.maxlen = parse_num("maxlen", optarg, 16, 25 * 1024 * 1024); break;
		case 'V': x.verify_every = parse_num("verify-every", optarg, 1, UINT64_MAX); break;
		case 'i': parse_ignore(&x, optarg); break;
		case 'r': race = true; break;
		case 't': nthreads = (int)parse_num("threads", optarg, 2, 256); break;
		case 'v': x.verbose = true; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	x.dir = argv[optind];
	x.dirfd = open(x.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (x.dirfd < 0) {
		fprintf(stderr, "fsx: %s: %s\n", x.dir, strerror(errno));
		return 1;
	}
	c = race ? run_race(&x, nthreads) : run_model(&x);
	close(x.dirfd);
	return c;
}
