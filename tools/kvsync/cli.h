/*
 * cli.h: what the parts of the kvsync command share (libkvsync, in
 * session.h and below, is the protocol; this is the program around it):
 *
 *   main.c     options of a sync and of --server, usage, the dispatch
 *   connect.c  SRC and DST as endpoints, and the one connection a sync
 *              runs over (a remote shell, a daemon, or a forked local peer)
 *   client.c   running a sync over it: --both, --watch, --check, --stats
 *   serve.c    the far ends: `kvsync --server` and the `kvsync serve`
 *              daemon with its limits and accept loop
 *
 * Functions return kvsync's exit codes (enum ks_exit) where they say so.
 */
#ifndef KVSYNC_CLI_H
#define KVSYNC_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "session.h"

#ifndef KVSYNC_VERSION
#define KVSYNC_VERSION "unknown"
#endif

#define DEFAULT_PORT "7310"
#define DEFAULT_LISTEN "127.0.0.1:" DEFAULT_PORT
/* Defaults of the daemon's limits (docs/kvsync.md, "Daemon"). */
#define DEFAULT_TIMEOUT_S 60     /* --timeout: I/O without progress */
#define DEFAULT_LOGIN_GRACE_S 10 /* --login-grace-time */
#define DEFAULT_STARTUPS_START 10 /* --max-startups 10:30:100 */
#define DEFAULT_STARTUPS_RATE 30
#define DEFAULT_STARTUPS_FULL 100
#define DEFAULT_PER_SOURCE 5     /* --per-source-max-startups */
#define DEFAULT_MAX_SESSIONS 64  /* --max-sessions */
/* How long a connection waits for the daemon to grant it a session. */
#define ADMIT_WAIT_MS 10000
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

enum ep_kind { EP_LOCAL, EP_RSH, EP_DAEMON };

struct endpoint {
	enum ep_kind kind;
	const char *arg;  /* as given */
	char *path;       /* EP_LOCAL: the store; EP_RSH: the remote PATH */
	char *userhost;   /* EP_RSH */
	char *host;       /* EP_DAEMON */
	char port[16];
};

struct cli {
	uint32_t req_flags;
	uint64_t max_skew_ms; /* --max-skew; 0: the operator lifted the bound */
	bool max_skew_set;
	bool both, watch, check, stats, progress;
	bool verbose;         /* -v itself (-i gives only its per-key lines) */
	bool compress;        /* -z */
	uint64_t bwlimit;     /* --bwlimit in bytes a second; 0: none */
	char noops[32];       /* rsync's options that change nothing: "-a, -t" */
	const char *rsh;
	const char *kvsync_path;
	const char *token_file;
	int timeout_ms;
	uint8_t token_key[KS_AUTH_KEY_LEN];
	bool have_token;
	struct endpoint src, dst;
	struct ks_filter filter; /* --prefix, --include, --exclude */
};

/* main.c: the command line */
/** Print the usage text on @f. */
void usage(FILE *f);
/** Print "kvsync: MESSAGE" and a hint on stderr.  @return KS_EXIT_USAGE */
__attribute__((format(printf, 1, 2)))
int usage_error(const char *fmt, ...);
/** A whole decimal number, digits only.  @return whether @s is one */
bool parse_u64(const char *s, uint64_t *ret);
/** Whole seconds, 0 .. 1 day, as milliseconds.  @return whether valid */
bool parse_seconds(const char *s, int *ret_ms);
/** Add --prefix (@kind 0) or an --include/--exclude rule to cli->filter.
 * @return 0, or KS_EXIT_USAGE with the message printed */
int add_filter(struct cli *cli, int kind, const char *arg);
/**
 * rsync's --bwlimit RATE: a number (a fraction too) with an optional
 * suffix K, M, G (or KiB...: 1024-based; KB...: 1000-based; B: bytes);
 * without one, KiB.  @return whether valid; *ret: bytes a second (0: none)
 */
bool parse_rate(const char *s, uint64_t *ret);

/* connect.c: SRC and DST, and the connection between them */
/** Read SRC or DST.  @return 0 or -errno (-EINVAL: not an endpoint) */
int parse_endpoint(const char *arg, struct endpoint *ep);
/** Free what parse_endpoint() allocated. */
void endpoint_release(struct endpoint *ep);
/** The --max-skew a server end applies of its own (@set: given). */
uint64_t own_skew(bool set, uint64_t ms);
/** Connect to @remote (or fork the local peer).  @return an exit code */
int connect_peer(const struct cli *cli, const struct endpoint *remote,
		 struct ks_conn **ret_conn);

/* client.c: a sync, --both, --watch, --check */
/** Run the sync @cli describes.  @return the exit code */
int run_client(struct cli *cli);

/* serve.c: the far ends: --server and the serve daemon */
/** `kvsync --server PATH`: serve one client on stdin/stdout.  @return the exit code */
int run_stdio_server(const char *arg, uint64_t max_skew_ms, int timeout_ms, uint64_t bwlimit);
/** `kvsync serve ...` (@argv[0] is "serve").  @return the exit code */
int run_daemon(int argc, char **argv);
/**
 * Block SIGINT and SIGTERM (and SIGCHLD with @children) and return a
 * signalfd that reads them, for --watch and serve.  @return the fd, or -1
 * with errno set
 */
int signals_take(bool children);
/** Leave the signal handling of --watch and serve (@sig_fd < 0: none). */
void signals_done(int sig_fd);

#endif
