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
#include <sys/stat.h>
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

static int fo_fail(const char *what, const char *path)
{
	fprintf(stderr, "fsops: %s '%s': %s\n", what, path, strerror(errno));
	return 1;
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
	if (got < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return fo_fail("cannot read", path);
	}
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
	if (got < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return fo_fail("cannot read", file);
	}
	close(fd);
	double dt = fo_now() - t0;

	if (total != bytes) {
		fprintf(stderr, "fsops: '%s': read %llu bytes, expected %llu\n", file, total, bytes);
		return 1;
	}
	printf("%.1f\n", (double)bytes / 1e6 / dt);
	return 0;
}

static int fo_usage(void)
{
	fputs("usage: fsops read ROOT LIST PASSES SIZE\n"
	      "       fsops stat ROOT LIST PASSES SIZE\n"
	      "       fsops create ROOT LIST SUFFIX SIZE\n"
	      "       fsops readdir DIR ITERATIONS ENTRIES\n"
	      "       fsops seqwrite FILE BYTES\n"
	      "       fsops seqread FILE BYTES\n", stderr);
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
	return fo_usage();
}
