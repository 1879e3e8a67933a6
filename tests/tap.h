/*
 * tap: a minimal Test Anything Protocol printer for the C unit tests.
 *
 * Each test program prints "ok N - what" / "not ok N - what" lines that
 * meson (protocol: 'tap') counts, and ends with done_testing(), whose value
 * is the exit status: 0 only when every check passed and the plan (if one
 * was declared) was met.  Header-only, so a test is one .c file; the
 * counters live in one static struct per program, which is all a test
 * process needs.  Output is unbuffered line by line, so a crash still shows
 * how far the test got, and a forked child that prints nothing leaves the
 * parent's count intact.
 *
 *	plan(n);                      optional; else done_testing() prints it
 *	ok(cond, "what %d", i);       one check; returns cond
 *	is_int(got, want, "what");    integers; prints both on failure
 *	is_str(got, want, "what");    NUL-terminated strings
 *	diag("note %s", s);           a comment line ("# note ...")
 *	skip(n, "why");               n checks skipped
 *	bail_out("why");              abort the whole program (TAP "Bail out!")
 *	return done_testing();
 */
#ifndef KVFS_TESTS_TAP_H
#define KVFS_TESTS_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tap_state {
	int planned; /* -1: no plan printed yet */
	int run;
	int failed;
};

static inline struct tap_state *tap_state(void)
{
	static struct tap_state st = {.planned = -1};
	return &st;
}

__attribute__((format(printf, 2, 0))) static inline void tap_vline(bool pass, const char *fmt,
								  va_list ap)
{
	struct tap_state *t = tap_state();
	t->run++;
	if (!pass)
		t->failed++;
	printf("%s %d - ", pass ? "ok" : "not ok", t->run);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

static inline void plan(int n)
{
	tap_state()->planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2))) static inline void diag(const char *fmt, ...)
{
	va_list ap;
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

__attribute__((format(printf, 2, 3))) static inline bool ok(bool pass, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tap_vline(pass, fmt, ap);
	va_end(ap);
	return pass;
}

__attribute__((format(printf, 3, 4))) static inline bool is_int(long long got, long long want,
								 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tap_vline(got == want, fmt, ap);
	va_end(ap);
	if (got != want)
		diag("  got %lld, want %lld", got, want);
	return got == want;
}

__attribute__((format(printf, 3, 4))) static inline bool is_str(const char *got, const char *want,
								 const char *fmt, ...)
{
	bool pass = got && want && strcmp(got, want) == 0;
	va_list ap;
	va_start(ap, fmt);
	tap_vline(pass, fmt, ap);
	va_end(ap);
	if (!pass)
		diag("  got \"%s\", want \"%s\"", got ? got : "(null)", want ? want : "(null)");
	return pass;
}

static inline void skip(int n, const char *why)
{
	struct tap_state *t = tap_state();
	for (int i = 0; i < n; i++) {
		t->run++;
		printf("ok %d # skip %s\n", t->run, why);
	}
	fflush(stdout);
}

__attribute__((noreturn)) static inline void bail_out(const char *why)
{
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(1);
}

/* Print the plan if none was given; @return the process exit status. */
static inline int done_testing(void)
{
	struct tap_state *t = tap_state();
	if (t->planned < 0)
		printf("1..%d\n", t->run);
	else if (t->planned != t->run)
		diag("planned %d checks, ran %d", t->planned, t->run);
	if (t->failed)
		diag("failed %d of %d checks", t->failed, t->run);
	fflush(stdout);
	return t->failed || (t->planned >= 0 && t->planned != t->run) ? 1 : 0;
}

#endif
