/*
 * test_progress_format: the text of the progress line (common/progress.c)
 * from given counts and clock values: done/total, the percentage, the rate
 * in units/s and bytes/s, the ETA while running and the elapsed time at the
 * end; an estimated total shown as "~N" and dropped once the work passes
 * it; short numbers; a line cut to the buffer, never overrun; the steps
 * of an operation (a named step counted in bytes, a wait that shows no
 * rate, and a final line timed from the start of the whole operation).  The drawing
 * itself (terminal only, ten frames a second at most) is tested through
 * the real tools in test_progress.sh.
 */
#include "common/progress.h"
#include "tap.h"

#include <string.h>

#define S 1000000000LL /* one second, in ns */

/* A display as kt_progress_init leaves it, started at time 0, never drawn. */
static struct kt_progress display(const char *what, const char *unit, uint64_t total)
{
	struct kt_progress p;
	memset(&p, 0, sizeof(p));
	p.fd = -1;
	p.what = what;
	p.unit = unit;
	p.total = total;
	p.start_ns = 0;
	return p;
}

static const char *fmt(const struct kt_progress *p, int64_t now, bool final)
{
	static char buf[256];
	size_t n = kt_progress_format(buf, sizeof(buf), p, now, final);
	if (n != strlen(buf))
		return "(length returned is not the string's)";
	return buf;
}

static void test_known_total(void)
{
	struct kt_progress p = display("bulk put", "keys", 10000);
	is_str(fmt(&p, 0, false), "bulk put: 0/10000 keys 0% ETA -:--:--",
	       "nothing done, no time gone: no rate, no ETA yet");
	p.done = 4000;
	is_str(fmt(&p, 2 * S, false), "bulk put: 4000/10000 keys 40% 2.00k keys/s ETA 0:00:03",
	       "4000 of 10000 in 2 s: 40%%, 2000/s, 3 s to go");
	p.has_bytes = true;
	p.bytes = 3 * 1024 * 1024;
	p.bytes_first = true;
	is_str(fmt(&p, 2 * S, false),
	       "bulk put: 3.00 MiB 4000/10000 keys 40% 2.00k keys/s 1.50 MiB/s ETA 0:00:03",
	       "bytes_first: the bytes done lead, as rsync's progress2");
	p.bytes_first = false;
	is_str(fmt(&p, 2 * S, false),
	       "bulk put: 4000/10000 keys 40% 2.00k keys/s 1.50 MiB/s ETA 0:00:03",
	       "with bytes counted: bytes/s in binary units");
	p.done = 10000;
	p.bytes = 512;
	is_str(fmt(&p, 5 * S, true), "bulk put: 10000/10000 keys 100% 2.00k keys/s 102 B/s in 0:00:05",
	       "the final line: total/total, 100%%, the elapsed time instead of the ETA");
	p = display("import", "keys", 3);
	p.done = 1;
	is_str(fmt(&p, 3600 * S + 30 * S, false),
	       "import: 1/3 keys 33% 0.00 keys/s ETA 2:01:00",
	       "a slow rate: the ETA in hours (2 left at 1 per 3630 s)");
	p = display("import", "keys", UINT64_MAX);
	p.done = 1;
	is_str(fmt(&p, 1000 * S, false),
	       "import: 1/18446744073709551615 keys 0% 0.00 keys/s ETA 99999:00:00",
	       "a crawl against a huge total: the ETA is bounded, not overflowed");
}

static void test_unknown_total(void)
{
	struct kt_progress p = display("reap", "keys", 0);
	p.done = 1500;
	is_str(fmt(&p, S / 2, false), "reap: 1500 keys 3.00k keys/s",
	       "no total: the count and the rate, no percentage, no ETA");
	is_str(fmt(&p, 61 * S, true), "reap: 1500 keys 24.6 keys/s in 0:01:01",
	       "no total, final: the elapsed time");
}

static void test_estimate(void)
{
	struct kt_progress p = display("export", "keys", 0);
	kt_progress_set_total(&p, 200, true);
	p.done = 50;
	is_str(fmt(&p, S, false), "export: 50/~200 keys 25% 50.0 keys/s ETA 0:00:03",
	       "an estimated total is shown as ~N");
	p.done = 201;
	is_str(fmt(&p, S, false), "export: 201 keys 201 keys/s",
	       "once the work passes the estimate, there is no total");
	kt_progress_set_total(&p, 201, false);
	is_str(fmt(&p, S, true), "export: 201/201 keys 100% 201 keys/s in 0:00:01",
	       "the real total set at the end: N/N");
}

static void test_steps(void)
{
	struct kt_progress p = display("bulk put", "keys", 0);
	kt_progress_phase(&p, "reading", NULL, 90 * 1024 * 1024, true);
	p.start_ns = 0;
	p.done = 45 * 1024 * 1024;
	is_str(fmt(&p, S / 2, false), "bulk put: reading 45.0 MiB/90.0 MiB 50% 90.0 MiB/s ETA 0:00:01",
	       "a step counted in bytes: its name, bytes of the size in binary units, bytes/s");
	kt_progress_phase(&p, "reading", NULL, 0, true);
	p.start_ns = 0;
	p.done = 1536;
	is_str(fmt(&p, S, false), "bulk put: reading 1.50 KiB 1.50 KiB/s",
	       "bytes with no total (a pipe): the count and the rate");
	kt_progress_phase(&p, NULL, "keys", 10000, false);
	is_int((long long)p.done, 0, "a new step starts from nothing done");
	p.start_ns = 2 * S;
	p.done = 5000;
	is_str(fmt(&p, 3 * S, false), "bulk put: 5000/10000 keys 50% 5.00k keys/s ETA 0:00:01",
	       "the main work: no step name, its rate and ETA from its own start");
	p.done = 10000;
	p.wait = "committing";
	is_str(fmt(&p, 4 * S, false), "bulk put: 10000/10000 keys 100%, committing...",
	       "a wait: the counts so far and what runs, no stale rate or ETA");
	p.wait = NULL;
	is_str(fmt(&p, 5 * S, true), "bulk put: 10000/10000 keys 100% 2.00k keys/s in 0:00:05",
	       "the final line: the whole operation's time and rate, from init");
	kt_progress_phase(&p, "parsing", NULL, 2048, true);
	p.start_ns = 0;
	p.done = 1024;
	is_str(fmt(&p, S, true), "bulk put: parsing 1.00 KiB/2.00 KiB 50% 1.00 KiB/s in 0:00:01",
	       "a final line in a step (a failed parse) says where it stopped");
}

static void test_human(void)
{
	char b[32];
	is_str(kt_progress_human(b, sizeof(b), 999, false), "999", "under 1000 as is");
	is_str(kt_progress_human(b, sizeof(b), 12345, false), "12.3k", "thousands: k");
	is_str(kt_progress_human(b, sizeof(b), 4.56e6, false), "4.56M", "millions: M");
	is_str(kt_progress_human(b, sizeof(b), 250e9, false), "250G", "three digits kept");
	is_str(kt_progress_human(b, sizeof(b), 1023, true), "1023 ", "bytes under 1 KiB");
	is_str(kt_progress_human(b, sizeof(b), 1536, true), "1.50 Ki", "bytes: binary prefixes");
	is_str(kt_progress_human(b, sizeof(b), -5, false), "0.00", "a negative rate is none");
}

static void test_truncation(void)
{
	struct kt_progress p = display("a label far longer than the buffer it is written to",
				       "keys", 10);
	p.done = 5;
	char buf[16];
	memset(buf, 'x', sizeof(buf));
	size_t n = kt_progress_format(buf, 10, &p, S, false);
	ok(n == 9 && buf[9] == 0 && buf[10] == 'x', "a line cut to the buffer, terminated, no overrun");
	ok(kt_progress_format(buf, 0, &p, S, false) == 0, "an empty buffer gets nothing");
}

int main(void)
{
	test_known_total();
	test_unknown_total();
	test_estimate();
	test_steps();
	test_human();
	test_truncation();
	return done_testing();
}
