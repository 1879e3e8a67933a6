/*
 * posixops: run a script of file system calls, one per argument, and print
 * what the calls that observe something return, one line each, so a shell
 * test can compare what a program sees of its own file with what ext4
 * would show.  Descriptors are kept in slots; "open" fills the next one and
 * makes it current, "use N" switches.
 *
 *   open PATH FLAGS   FLAGS: r (read), w (write), rw, plus a (append),
 *                     c (create 0644), t (truncate), x (exclusive)
 *   use N | close | fsync | fdatasync
 *   write STR | pwrite OFF STR | ftruncate N | truncate PATH N  (STR
 *                     without spaces)
 *   read N | pread OFF N       print the bytes read (\xNN for non-print)
 *   seek_end                   print lseek(fd, 0, SEEK_END)
 *   fstat | stat PATH          print "size=S nlink=N ino=I mode=M"
 *   mmap N                     print the first N bytes of a MAP_SHARED,
 *                              PROT_READ mapping of the current descriptor
 *   unlink PATH | rename FROM TO | sleep MS
 *
 * A failing call prints "NAME: strerror" and the script goes on; the exit
 * status is 0 unless the script itself is malformed (2).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 16

static int fds[SLOTS];
static int cur = -1, nslots;

static void print_bytes(const unsigned char *p, ssize_t n)
{
	for (ssize_t i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			putchar(p[i]);
		else
			printf("\\x%02x", p[i]);
	}
	putchar('\n');
}

static void print_stat(const struct stat *st)
{
	printf("size=%lld nlink=%lu ino=%llu mode=%o\n", (long long)st->st_size,
	       (unsigned long)st->st_nlink, (unsigned long long)st->st_ino,
	       (unsigned)(st->st_mode & 07777));
}

static int open_flags(const char *s)
{
	int acc = O_RDONLY, extra = 0;

	if (strchr(s, 'r') && strchr(s, 'w'))
		acc = O_RDWR;
	else if (strchr(s, 'w'))
		acc = O_WRONLY;
	if (strchr(s, 'a'))
		extra |= O_APPEND;
	if (strchr(s, 'c'))
		extra |= O_CREAT;
	if (strchr(s, 't'))
		extra |= O_TRUNC;
	if (strchr(s, 'x'))
		extra |= O_EXCL;
	return acc | extra;
}

static void fail(const char *what)
{
	printf("%s: %s\n", what, strerror(errno));
}

static void need(int n, int want, const char *cmd)
{
	if (n != want) {
		fprintf(stderr, "posixops: %s takes %d argument(s)\n", cmd, want - 1);
		exit(2);
	}
	if (strcmp(cmd, "open") && strcmp(cmd, "truncate") && strcmp(cmd, "stat") &&
	    strcmp(cmd, "unlink") && strcmp(cmd, "rename") && strcmp(cmd, "sleep") &&
	    strcmp(cmd, "use") && cur < 0) {
		fprintf(stderr, "posixops: %s needs an open descriptor\n", cmd);
		exit(2);
	}
}

static void run(char *line)
{
	char *words[4] = {0};
	int n = 0;
	char *save = NULL;

	for (char *w = strtok_r(line, " ", &save); w && n < 4; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	if (n == 0)
		return;
	const char *c = words[0];
	unsigned char buf[1 << 16];
	struct stat st;

	if (!strcmp(c, "open")) {
		need(n, 3, c);
		if (nslots == SLOTS) {
			fprintf(stderr, "posixops: too many descriptors\n");
			exit(2);
		}
		int fd = open(words[1], open_flags(words[2]), 0644);

		if (fd < 0) {
			fail("open");
			return;
		}
		fds[nslots] = fd;
		cur = nslots++;
	} else if (!strcmp(c, "use")) {
		need(n, 2, c);
		cur = atoi(words[1]);
		if (cur < 0 || cur >= nslots)
			exit(2);
	} else if (!strcmp(c, "close")) {
		need(n, 1, c);
		if (close(fds[cur]) != 0)
			fail("close");
		fds[cur] = -1;
	} else if (!strcmp(c, "fsync") || !strcmp(c, "fdatasync")) {
		need(n, 1, c);
		if ((c[1] == 's' ? fsync(fds[cur]) : fdatasync(fds[cur])) != 0)
			fail(c);
	} else if (!strcmp(c, "write")) {
		need(n, 2, c);
		if (write(fds[cur], words[1], strlen(words[1])) < 0)
			fail("write");
	} else if (!strcmp(c, "pwrite")) {
		need(n, 3, c);
		if (pwrite(fds[cur], words[2], strlen(words[2]), atoll(words[1])) < 0)
			fail("pwrite");
	} else if (!strcmp(c, "ftruncate")) {
		need(n, 2, c);
		if (ftruncate(fds[cur], atoll(words[1])) != 0)
			fail("ftruncate");
	} else if (!strcmp(c, "truncate")) {
		need(n, 3, c);
		if (truncate(words[1], atoll(words[2])) != 0)
			fail("truncate");
	} else if (!strcmp(c, "read") || !strcmp(c, "pread")) {
		int p = c[0] == 'p';
		need(n, p ? 3 : 2, c);
		size_t want = (size_t)atoll(words[p ? 2 : 1]);
		ssize_t r = p ? pread(fds[cur], buf, want < sizeof(buf) ? want : sizeof(buf),
				      atoll(words[1]))
			      : read(fds[cur], buf, want < sizeof(buf) ? want : sizeof(buf));
		if (r < 0)
			fail(c);
		else
			print_bytes(buf, r);
	} else if (!strcmp(c, "seek_end")) {
		need(n, 1, c);
		off_t o = lseek(fds[cur], 0, SEEK_END);

		if (o < 0)
			fail("lseek");
		else
			printf("%lld\n", (long long)o);
	} else if (!strcmp(c, "fstat")) {
		need(n, 1, c);
		if (fstat(fds[cur], &st) != 0)
			fail("fstat");
		else
			print_stat(&st);
	} else if (!strcmp(c, "stat")) {
		need(n, 2, c);
		if (stat(words[1], &st) != 0)
			fail("stat");
		else
			print_stat(&st);
	} else if (!strcmp(c, "mmap")) {
		need(n, 2, c);
		size_t len = (size_t)atoll(words[1]);
		void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fds[cur], 0);

		if (m == MAP_FAILED) {
			fail("mmap");
		} else {
			print_bytes(m, (ssize_t)len);
			munmap(m, len);
		}
	} else if (!strcmp(c, "unlink")) {
		need(n, 2, c);
		if (unlink(words[1]) != 0)
			fail("unlink");
	} else if (!strcmp(c, "rename")) {
		need(n, 3, c);
		if (rename(words[1], words[2]) != 0)
			fail("rename");
	} else if (!strcmp(c, "sleep")) {
		need(n, 2, c);
		struct timespec ts = { atoi(words[1]) / 1000, (atoi(words[1]) % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	} else {
		fprintf(stderr, "posixops: unknown command '%s'\n", c);
		exit(2);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		char *line = strdup(argv[i]);

		if (!line)
			return 2;
		run(line);
		free(line);
	}
	return 0;
}
