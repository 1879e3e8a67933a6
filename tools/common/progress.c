/*
 * progress: draws and rate-limits the terminal progress line described in
 * progress.h.  Writes go straight to the descriptor with write(2): the line
 * must appear at once, and stdio buffering of stderr is the caller's
 * business, not ours.
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_NS 100000000 /* 100 ms: about ten updates a second */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			return; /* a progress line is not worth failing for */
		s += w;
		n -= (size_t)w;
	}
}

void kt_progress_init(struct kt_progress *p, int fd, const char *what, const char *unit,
		      uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->enabled = isatty(fd) == 1;
	p->what = what;
	p->unit = unit;
	p->total = total;
	p->last_ns = INT64_MIN;
}

static void draw(struct kt_progress *p)
{
	char line[160];
	int n;
	if (p->total)
		n = snprintf(line, sizeof(line), "\r\033[K%s: %llu/%llu %s (%llu%%)", p->what,
			     (unsigned long long)p->done, (unsigned long long)p->total,
			     p->unit, (unsigned long long)(p->done * 100 / p->total));
	else
		n = snprintf(line, sizeof(line), "\r\033[K%s: %llu %s", p->what,
			     (unsigned long long)p->done, p->unit);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	put_all(p->fd, line, (size_t)n);
	p->drawn = true;
}

void kt_progress_update(struct kt_progress *p, uint64_t done)
{
	p->done = done;
	if (!p->enabled)
		return;
	int64_t now = mono_ns();
	if (p->last_ns != INT64_MIN && now - p->last_ns < REDRAW_NS)
		return;
	p->last_ns = now;
	draw(p);
}

void kt_progress_end(struct kt_progress *p)
{
	if (p->enabled && p->drawn)
		put_all(p->fd, "\r\033[K", 4);
	p->drawn = false;
}
