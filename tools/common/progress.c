/*
 * progress: draws and rate-limits the terminal progress line described in
 * progress.h.  Writes go straight to the descriptor with write(2): the line
 * must appear at once, and stdio buffering of stderr is the caller's
 * business, not ours.  The rate is the average since init (what the
 * operator wants for the ETA of a steady bulk operation; a sliding window
 * would only make the ETA jump).
 */
#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The longest ETA shown: 99999 hours, past which it means "not soon". */
#define ETA_MAX_S (99999ull * 3600)

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

static void draw(struct kt_progress *p, int64_t now, bool final);

void kt_progress_init(struct kt_progress *p, int fd, const char *what, const char *unit,
		      uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->enabled = isatty(fd) == 1;
	p->what = what;
	p->unit = unit;
	p->total = total;
	p->start_ns = p->op_start_ns = mono_ns();
	p->last_ns = INT64_MIN;
}

void kt_progress_phase(struct kt_progress *p, const char *phase, const char *unit,
		       uint64_t total, bool bytes)
{
	p->phase = phase;
	p->wait = NULL;
	p->unit = unit;
	p->count_bytes = bytes;
	p->total = total;
	p->approximate = false;
	p->done = p->bytes = 0;
	p->has_bytes = false;
	p->start_ns = mono_ns();
	if (p->enabled) /* at once, as the operation's first frame is */
		draw(p, p->start_ns, false);
}

void kt_progress_set_total(struct kt_progress *p, uint64_t total, bool approximate)
{
	p->total = total;
	p->approximate = approximate;
}

const char *kt_progress_human(char *buf, size_t size, double n, bool binary)
{
	static const char *const dec[] = {"", "k", "M", "G", "T", "P"};
	static const char *const bin[] = {" ", " Ki", " Mi", " Gi", " Ti", " Pi"};
	double step = binary ? 1024 : 1000;
	unsigned i = 0;
	if (n < 0)
		n = 0;
	while (n >= step && i < 5) {
		n /= step;
		i++;
	}
	const char *sfx = binary ? bin[i] : dec[i];
	if (n < 10)
		snprintf(buf, size, "%.2f%s", n, sfx);
	else if (n < 100)
		snprintf(buf, size, "%.1f%s", n, sfx);
	else
		snprintf(buf, size, "%.0f%s", n, sfx);
	return buf;
}

/* Append to @buf at *@n, keeping it terminated; a line cut short is fine. */
__attribute__((format(printf, 4, 5)))
static void add(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
	if (*n + 1 >= size)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(buf + *n, size - *n, fmt, ap);
	va_end(ap);
	if (w > 0)
		*n = *n + (size_t)w < size ? *n + (size_t)w : size - 1;
}

/* h:mm:ss of @s seconds (hours grow as needed). */
static void hms(char *buf, size_t size, uint64_t s)
{
	snprintf(buf, size, "%llu:%02u:%02u", (unsigned long long)(s / 3600),
		 (unsigned)(s / 60 % 60), (unsigned)(s % 60));
}

/* @n as the line shows a count: bytes in binary units ("41.2 MiB"), else
 * the number itself. */
static const char *count(char *buf, size_t size, const struct kt_progress *p, uint64_t n)
{
	if (!p->count_bytes) {
		snprintf(buf, size, "%llu", (unsigned long long)n);
		return buf;
	}
	char h[32];
	snprintf(buf, size, "%sB", kt_progress_human(h, sizeof(h), (double)n, true));
	return buf;
}

size_t kt_progress_format(char *buf, size_t size, const struct kt_progress *p, int64_t now_ns,
			  bool final)
{
	if (!size)
		return 0;
	size_t n = 0;
	char h[32], t[32], c[48];

	/* An estimate that the work has passed is no total at all. */
	bool total = p->total && !(p->approximate && p->done > p->total);
	/* The final line is the whole operation's; a step's line its own. */
	int64_t since = final ? p->op_start_ns : p->start_ns;
	double elapsed = now_ns > since ? (double)(now_ns - since) / 1e9 : 0;
	double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
	const char *unit = p->unit ? p->unit : "";

	add(buf, size, &n, "%s: ", p->what);
	if (p->phase) /* on a final line too: where a failed operation stopped */
		add(buf, size, &n, "%s ", p->phase);
	if (p->has_bytes && p->bytes_first)
		add(buf, size, &n, "%sB ", kt_progress_human(h, sizeof(h), (double)p->bytes, true));
	add(buf, size, &n, "%s", count(c, sizeof(c), p, p->done));
	if (total) {
		double pct = (double)p->done * 100 / (double)p->total;
		add(buf, size, &n, "/%s%s", p->approximate ? "~" : "",
		    count(c, sizeof(c), p, p->total));
		if (!p->count_bytes)
			add(buf, size, &n, " %s", unit);
		add(buf, size, &n, " %u%%", (unsigned)(pct > 100 ? 100 : pct));
	} else if (!p->count_bytes) {
		add(buf, size, &n, " %s", unit);
	}
	if (p->wait && !final) {
		add(buf, size, &n, ", %s...", p->wait);
		return n;
	}
	if (elapsed > 0 && (p->done || final)) {
		if (p->count_bytes)
			add(buf, size, &n, " %sB/s", kt_progress_human(h, sizeof(h), rate, true));
		else
			add(buf, size, &n, " %s %s/s", kt_progress_human(h, sizeof(h), rate, false),
			    unit);
		if (p->has_bytes)
			add(buf, size, &n, " %sB/s",
			    kt_progress_human(h, sizeof(h), (double)p->bytes / elapsed, true));
	}
	if (final) {
		hms(t, sizeof(t), (uint64_t)(elapsed + 0.5));
		add(buf, size, &n, " in %s", t);
	} else if (total) {
		if (rate > 0 && p->done <= p->total) {
			double eta = (double)(p->total - p->done) / rate + 0.5;
			/* a crawl's ETA must stay a number uint64_t holds */
			hms(t, sizeof(t), eta < ETA_MAX_S ? (uint64_t)eta : ETA_MAX_S);
			add(buf, size, &n, " ETA %s", t);
		} else {
			add(buf, size, &n, " ETA -:--:--");
		}
	}
	return n;
}

static void draw(struct kt_progress *p, int64_t now, bool final)
{
	char line[256];
	memcpy(line, "\r\033[K", 4);
	size_t n = 4 + kt_progress_format(line + 4, sizeof(line) - 5, p, now, final);
	if (final)
		line[n++] = '\n';
	put_all(p->fd, line, n);
	p->last_ns = now;
}

void kt_progress_wait(struct kt_progress *p, const char *what)
{
	p->wait = what;
	if (p->enabled)
		draw(p, mono_ns(), false);
}

void kt_progress_update(struct kt_progress *p, uint64_t done)
{
	p->done = done;
	p->wait = NULL;
	if (!p->enabled)
		return;
	int64_t now = mono_ns();
	if (p->last_ns != INT64_MIN && now - p->last_ns < KT_PROGRESS_REDRAW_NS)
		return;
	draw(p, now, false);
}

void kt_progress_update_bytes(struct kt_progress *p, uint64_t done, uint64_t bytes)
{
	p->has_bytes = true;
	p->bytes = bytes;
	kt_progress_update(p, done);
}

void kt_progress_clear(struct kt_progress *p)
{
	if (!p->enabled || p->last_ns == INT64_MIN)
		return;
	put_all(p->fd, "\r\033[K", 4);
	p->last_ns = INT64_MIN;
}

void kt_progress_drop(struct kt_progress *p)
{
	kt_progress_clear(p);
	p->enabled = false;
}

void kt_progress_end(struct kt_progress *p)
{
	if (p->enabled)
		draw(p, mono_ns(), true);
	p->enabled = false; /* once: a second end draws nothing */
}
