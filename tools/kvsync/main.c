/*
 * kvsync: rsync-like replication between kvfs stores.
 *
 *   kvsync [OPTIONS] SRC DST           make DST hold every change of SRC
 *   kvsync [--max-skew MS] --server PATH    the far end of a remote-shell sync
 *   kvsync serve [--listen H:P] [--token-file F] [--max-skew MS] STORE   a daemon
 *
 * This file is the command line of a sync (getopt_long) and the dispatch
 * to the client, the --server end or the daemon; cli.h says where each
 * lives.  docs/kvsync.md is the manual.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvcore.h"
#include "auth.h"
#include "cli.h"
#include "net.h"
#include "session.h"

void usage(FILE *f)
{
	fputs("usage: kvsync [OPTIONS] SRC DST\n"
	      "       kvsync serve [--listen HOST:PORT] [--token-file FILE] [--max-skew MS] [LIMITS]\n"
	      "                    STORE\n"
	      "       kvsync [--max-skew MS] --server PATH\n"
	      "\n"
	      "SRC and DST: a STORE directory or kvfs mountpoint, [user@]host:PATH (through\n"
	      "a remote shell), or kvsync://host[:port] (a kvsync serve daemon).\n"
	      "\n"
	      "  --both             also send DST's changes to SRC\n"
	      "  --watch            stay connected, propagate each commit as it lands\n"
	      "  --check            compare both sides by digests, print differing keys;\n"
	      "                     exit 0 when converged, 1 when not\n"
	      "  --full             compare by digests even when an incremental sync would do\n"
	      "      --prefix P     only keys starting with P (repeatable: any of them)\n"
	      "      --include PATTERN, --exclude PATTERN  select keys by pattern (repeatable;\n"
	      "                     the first that matches decides; none: included).\n"
	      "                     * any run but ':', ** any run, ? [...] one byte, \\ escapes;\n"
	      "                     a pattern ending in ':' also takes every key under it\n"
	      "  -n, --dry-run      show what would be applied, change nothing\n"
	      "  -v, --verbose      a line per key: '+ KEY' applied, '= KEY' not newer,\n"
	      "                     '- KEY' deletion applied\n"
	      "  -i, --itemize-changes  the per-key lines of -v alone\n"
	      "  -a, --archive, -r, --recursive, -t, --times, -X, --xattrs\n"
	      "                     accepted for rsync's sake: every key, its ttl, times\n"
	      "                     and metadata are always synced\n"
	      "  -P, --progress     show progress (on a terminal)\n"
	      "      --stats        print rsync's summary lines at the end\n"
	      "      --max-skew MS  refuse records stamped more than MS ms ahead of the\n"
	      "                     receiving store's clock (default 86400000, one day;\n"
	      "                     0: no bound); a server (serve, --server) applies its\n"
	      "                     own --max-skew or the client's, whichever is smaller\n"
	      "  -e, --rsh CMD      remote shell for host:PATH (default ssh)\n"
	      "      --kvsync-path PROG  kvsync on the remote host (default kvsync)\n"
	      "      --token-file FILE   prove knowledge of this token to a daemon\n"
	      "      --timeout SECONDS   give up on a peer that neither sends nor reads\n"
	      "                     for this long (default " STRINGIFY(DEFAULT_TIMEOUT_S) "; 0: never)\n"
	      "  -z, --compress     compress the connection with zstd\n"
	      "      --bwlimit RATE write and read at most RATE KiB a second\n"
	      "                     (suffixes K, M, G; KB, MB, GB for 1000s; 0: no limit)\n"
	      "  -h, --help         this help\n"
	      "  -V, --version      print the version\n"
	      "\n"
	      "LIMITS of serve (after sshd's LoginGraceTime, MaxStartups, PerSourceMaxStartups):\n"
	      "      --login-grace-time SECONDS  a client must greet and prove the token\n"
	      "                     within this (default " STRINGIFY(DEFAULT_LOGIN_GRACE_S) ")\n"
	      "      --max-startups START:RATE:FULL  of the connections still in that\n"
	      "                     handshake: past START refuse RATE% of new ones, rising\n"
	      "                     to all at FULL (default " STRINGIFY(DEFAULT_STARTUPS_START) ":"
	      STRINGIFY(DEFAULT_STARTUPS_RATE) ":" STRINGIFY(DEFAULT_STARTUPS_FULL) ")\n"
	      "      --per-source-max-startups N  at most N of them from one address\n"
	      "                     (default " STRINGIFY(DEFAULT_PER_SOURCE) "; 0: no limit)\n"
	      "      --max-sessions N   clients served at once after the handshake\n"
	      "                     (default " STRINGIFY(DEFAULT_MAX_SESSIONS) ")\n"
	      "      --timeout SECONDS  as above\n"
	      "\n"
	      "Exit status: 0 done, 1 not converged (--check), 2 usage, 3 protocol or\n"
	      "connection error (a busy daemon too: try again later), 4 store error,\n"
	      "5 authentication failure.\n",
	      f);
}

__attribute__((format(printf, 1, 2)))
int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("kvsync: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kvsync --help'.\n", stderr);
	return KS_EXIT_USAGE;
}

int add_filter(struct cli *cli, int kind, const char *arg)
{
	static const char *const names[] = {"--prefix", "--include", "--exclude"};
	const char *why = NULL;
	int rc = kind ? ks_filter_add_rule(&cli->filter, (uint8_t)kind, arg, strlen(arg), &why)
		      : ks_filter_add_prefix(&cli->filter, arg, strlen(arg), &why);
	if (rc)
		return usage_error("%s '%s': %s", names[kind], arg, why);
	return 0;
}

bool parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	if (*s < '0' || *s > '9')
		return false; /* strtoull would take blanks, signs and wrap "-1" */
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*ret = v;
	return true;
}

/* Whole seconds, 0 .. 1 day, as milliseconds. */
bool parse_seconds(const char *s, int *ret_ms)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > 86400)
		return false;
	*ret_ms = (int)v * 1000;
	return true;
}

bool parse_rate(const char *s, uint64_t *ret)
{
	char *end;
	if ((*s < '0' || *s > '9') && *s != '.')
		return false;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !(v >= 0))
		return false;
	double unit = 1024; /* rsync's default: KiB/s */
	if (*end) {
		static const char units[] = "bkmg";
		const char *u = strchr(units, end[0] | 0x20);
		if (!u || !end[0])
			return false;
		int power = (int)(u - units);
		const char *rest = end + 1;
		bool decimal = false;
		if (power && (rest[0] | 0x20) == 'i' && (rest[1] | 0x20) == 'b')
			rest += 2;
		else if (power && (rest[0] | 0x20) == 'b')
			decimal = true, rest++;
		if (*rest)
			return false;
		unit = 1;
		for (int i = 0; i < power; i++)
			unit *= decimal ? 1000 : 1024;
	}
	double bytes = v * unit;
	if (bytes > 1e15) /* a petabyte a second: as good as none */
		return false;
	*ret = (uint64_t)(bytes + 0.5);
	if (!*ret && bytes > 0)
		*ret = 1;
	return true;
}

/* rsync's -a, -r, -t, -X: kvsync always does what they ask for. */
static void note_noop(struct cli *cli, const char *opt)
{
	size_t n = strlen(cli->noops);
	if (strstr(cli->noops, opt) || n + strlen(opt) + 3 > sizeof(cli->noops))
		return;
	snprintf(cli->noops + n, sizeof(cli->noops) - n, "%s%s", n ? ", " : "", opt);
}

/* --------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "kvsync: cannot initialise libsodium\n");
		return KS_EXIT_PROTO;
	}
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return run_daemon(argc - 1, argv + 1);

	enum { O_BOTH = 256, O_WATCH, O_CHECK, O_FULL, O_STATS, O_SKEW, O_KVSYNC_PATH,
	       O_TOKEN, O_SERVER, O_VERSION, O_TIMEOUT, O_PREFIX, O_INCLUDE, O_EXCLUDE,
	       O_BWLIMIT };
	static const struct option opts[] = {
		{"both", no_argument, NULL, O_BOTH},
		{"watch", no_argument, NULL, O_WATCH},
		{"check", no_argument, NULL, O_CHECK},
		{"full", no_argument, NULL, O_FULL},
		{"dry-run", no_argument, NULL, 'n'},
		{"verbose", no_argument, NULL, 'v'},
		{"progress", no_argument, NULL, 'P'},
		{"stats", no_argument, NULL, O_STATS},
		{"max-skew", required_argument, NULL, O_SKEW},
		{"rsh", required_argument, NULL, 'e'},
		{"kvsync-path", required_argument, NULL, O_KVSYNC_PATH},
		{"token-file", required_argument, NULL, O_TOKEN},
		{"server", required_argument, NULL, O_SERVER},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"prefix", required_argument, NULL, O_PREFIX},
		{"include", required_argument, NULL, O_INCLUDE},
		{"exclude", required_argument, NULL, O_EXCLUDE},
		{"archive", no_argument, NULL, 'a'},
		{"recursive", no_argument, NULL, 'r'},
		{"times", no_argument, NULL, 't'},
		{"xattrs", no_argument, NULL, 'X'},
		{"itemize-changes", no_argument, NULL, 'i'},
		{"compress", no_argument, NULL, 'z'},
		{"bwlimit", required_argument, NULL, O_BWLIMIT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{NULL, 0, NULL, 0},
	};
	struct cli cli = {.max_skew_ms = KS_MAX_SKEW_DEFAULT_MS, .rsh = "ssh",
			  .kvsync_path = "kvsync", .timeout_ms = DEFAULT_TIMEOUT_S * 1000};
	const char *server = NULL;
	int c;
	static char prog[] = "kvsync"; /* getopt names argv[0] in its messages */
	argv[0] = prog;
	while ((c = getopt_long(argc, argv, "nvPe:hVartXiz", opts, NULL)) != -1) {
		switch (c) {
		case O_BOTH: cli.both = true; break;
		case O_WATCH: cli.watch = true; break;
		case O_CHECK: cli.check = true; break;
		case O_FULL: cli.req_flags |= KS_REQ_FULL; break;
		case 'n': cli.req_flags |= KS_REQ_DRY_RUN; break;
		case 'v':
			cli.req_flags |= KS_REQ_VERBOSE;
			cli.verbose = true;
			break;
		case 'i': cli.req_flags |= KS_REQ_VERBOSE; break;
		case 'a': note_noop(&cli, "-a"); break;
		case 'r': note_noop(&cli, "-r"); break;
		case 't': note_noop(&cli, "-t"); break;
		case 'X': note_noop(&cli, "-X"); break;
		case 'z': cli.compress = true; break;
		case O_BWLIMIT:
			if (!parse_rate(optarg, &cli.bwlimit))
				return usage_error("--bwlimit takes a rate such as 512, 1.5M or 100KB, not '%s'",
						   optarg);
			break;
		case 'P': cli.progress = true; break;
		case O_STATS: cli.stats = true; break;
		case O_SKEW:
			if (!parse_u64(optarg, &cli.max_skew_ms))
				return usage_error("--max-skew takes milliseconds, not '%s'", optarg);
			cli.max_skew_set = true;
			break;
		case 'e': cli.rsh = optarg; break;
		case O_KVSYNC_PATH: cli.kvsync_path = optarg; break;
		case O_TOKEN: cli.token_file = optarg; break;
		case O_SERVER: server = optarg; break;
		case O_TIMEOUT:
			if (!parse_seconds(optarg, &cli.timeout_ms))
				return usage_error("--timeout takes seconds, not '%s'", optarg);
			break;
		case O_PREFIX:
		case O_INCLUDE:
		case O_EXCLUDE:
			if (add_filter(&cli, c == O_PREFIX ? 0 : c == O_INCLUDE ? KS_RULE_INCLUDE
										  : KS_RULE_EXCLUDE,
				       optarg))
				return KS_EXIT_USAGE;
			break;
		case 'h': usage(stdout); return KS_EXIT_OK;
		case 'V':
		case O_VERSION:
			printf("kvsync %s (protocol %u)\n", KVSYNC_VERSION, KS_PROTO_VERSION);
			return KS_EXIT_OK;
		default:
			fputs("Try 'kvsync --help'.\n", stderr);
			return KS_EXIT_USAGE;
		}
	}
	if (server) {
		if (optind != argc)
			return usage_error("--server takes no other arguments");
		if (!ks_filter_empty(&cli.filter))
			return usage_error("--server takes its filter from the client");
		return run_stdio_server(server, own_skew(cli.max_skew_set, cli.max_skew_ms),
					cli.timeout_ms, cli.bwlimit);
	}
	if (argc - optind != 2)
		return usage_error("expected SRC and DST");
	if (cli.check && cli.watch)
		return usage_error("--check and --watch do not go together");
	if (cli.watch && (cli.req_flags & KS_REQ_DRY_RUN))
		return usage_error("--dry-run and --watch do not go together");
	if (cli.watch)
		cli.req_flags |= KS_REQ_WATCH;
	if (cli.verbose && cli.noops[0])
		fprintf(stderr, "kvsync: %s %s no effect: every key, ttl and metadata is always synced\n",
			cli.noops, strchr(cli.noops, ',') ? "have" : "has");
	cli.progress = cli.progress && isatty(2);
	if (parse_endpoint(argv[optind], &cli.src) || parse_endpoint(argv[optind + 1], &cli.dst)) {
		endpoint_release(&cli.src);
		endpoint_release(&cli.dst);
		return usage_error("bad SRC or DST");
	}
	if (cli.token_file) {
		char err[512];
		if (ks_token_load(cli.token_file, cli.token_key, err, sizeof(err))) {
			fprintf(stderr, "kvsync: %s\n", err);
			endpoint_release(&cli.src);
			endpoint_release(&cli.dst);
			return KS_EXIT_AUTH;
		}
		cli.have_token = true;
	}
	int code = run_client(&cli);
	sodium_memzero(cli.token_key, sizeof(cli.token_key));
	endpoint_release(&cli.src);
	endpoint_release(&cli.dst);
	return code;
}
