/*
 * kvsync: rsync-like replication between kvfs stores.
 *
 *   kvsync [OPTIONS] SRC DST           make DST hold every change of SRC
 *   kvsync [--max-skew MS] --server PATH    the far end of a remote-shell sync
 *   kvsync serve [--listen H:P] [--token-file F] [--max-skew MS] STORE   a daemon
 *
 * This file is the command line: it parses options and endpoints, makes
 * the one connection a sync runs over (a remote shell, a TCP connection to
 * a daemon, or a forked peer over a socketpair when both stores are local,
 * so every sync speaks the same protocol), and hands it to sync_session.
 * It also runs the daemon's accept loop.  docs/kvsync.md is the manual.
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
#include "net.h"
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
	const char *rsh;
	const char *kvsync_path;
	const char *token_file;
	int timeout_ms;
	uint8_t token_key[KS_AUTH_KEY_LEN];
	bool have_token;
	struct endpoint src, dst;
};

static void usage(FILE *f)
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
	      "  -n, --dry-run      show what would be applied, change nothing\n"
	      "  -v, --verbose      a line per key: '+ KEY' applied, '= KEY' not newer,\n"
	      "                     '- KEY' deletion applied\n"
	      "  -P, --progress     show progress (on a terminal)\n"
	      "      --stats        print a summary at the end\n"
	      "      --max-skew MS  refuse records stamped more than MS ms ahead of the\n"
	      "                     receiving store's clock (default 86400000, one day;\n"
	      "                     0: no bound); a server (serve, --server) applies its\n"
	      "                     own --max-skew or the client's, whichever is smaller\n"
	      "  -e, --rsh CMD      remote shell for host:PATH (default ssh)\n"
	      "      --kvsync-path PROG  kvsync on the remote host (default kvsync)\n"
	      "      --token-file FILE   prove knowledge of this token to a daemon\n"
	      "      --timeout SECONDS   give up on a peer that neither sends nor reads\n"
	      "                     for this long (default " STRINGIFY(DEFAULT_TIMEOUT_S) "; 0: never)\n"
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
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("kvsync: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kvsync --help'.\n", stderr);
	return KS_EXIT_USAGE;
}

static bool parse_u64(const char *s, uint64_t *ret)
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
static bool parse_seconds(const char *s, int *ret_ms)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > 86400)
		return false;
	*ret_ms = (int)v * 1000;
	return true;
}

/* -------------------------------------------------------------- endpoints */

static int parse_endpoint(const char *arg, struct endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->arg = arg;
	if (!strncmp(arg, "kvsync://", 9)) {
		char *hp = strdup(arg + 9);
		if (!hp)
			return -ENOMEM;
		size_t n = strlen(hp);
		if (n && hp[n - 1] == '/')
			hp[n - 1] = 0;
		int rc = ks_split_hostport(hp, DEFAULT_PORT, &ep->host, ep->port, sizeof(ep->port));
		free(hp);
		if (rc)
			return rc;
		ep->kind = EP_DAEMON;
		return 0;
	}
	/* As rsync reads it: a colon before any slash names a host. */
	const char *colon = strchr(arg, ':');
	const char *slash = strchr(arg, '/');
	if (colon && (!slash || colon < slash)) {
		/* A host starting with '-' would reach the remote shell as
		 * an option of its own (ssh -oProxyCommand=...). */
		if (colon == arg || !colon[1] || arg[0] == '-')
			return -EINVAL;
		ep->kind = EP_RSH;
		ep->userhost = strndup(arg, (size_t)(colon - arg));
		ep->path = strdup(colon + 1);
		return ep->userhost && ep->path ? 0 : -ENOMEM;
	}
	ep->kind = EP_LOCAL;
	return ks_resolve_store(arg, &ep->path);
}

static void endpoint_release(struct endpoint *ep)
{
	free(ep->path);
	free(ep->userhost);
	free(ep->host);
}

/* Split a remote-shell command line on blanks, honouring quotes. */
static int split_words(const char *s, char ***ret_argv, size_t *ret_n, size_t extra)
{
	size_t cap = strlen(s) / 2 + 2 + extra;
	char **argv = calloc(cap, sizeof(*argv));
	char *word = malloc(strlen(s) + 1);
	size_t n = 0;
	if (!argv || !word)
		goto nomem;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		size_t w = 0;
		char quote = 0;
		for (; *s && (quote || (*s != ' ' && *s != '\t')); s++) {
			if (quote && *s == quote)
				quote = 0;
			else if (!quote && (*s == '\'' || *s == '"'))
				quote = *s;
			else if (*s == '\\' && quote != '\'' && s[1])
				word[w++] = *++s;
			else
				word[w++] = *s;
		}
		if (quote) {
			free(word);
			for (size_t i = 0; i < n; i++)
				free(argv[i]);
			free(argv);
			return -EINVAL;
		}
		argv[n] = strndup(word, w);
		if (!argv[n])
			goto nomem;
		n++;
	}
	free(word);
	*ret_argv = argv;
	*ret_n = n;
	return 0;
nomem:
	free(word);
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return -ENOMEM;
}

/* The remote shell runs its command through a shell: quote the path. */
static char *shell_quote(const char *s)
{
	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789_./-+,:@=%~") == strlen(s))
		return strdup(s);
	size_t n = 2;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *q = malloc(n + 1), *o = q;
	if (!q)
		return NULL;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = 0;
	return q;
}

/*
 * The server's own skew bound from its --max-skew: the default when not
 * given, none (UINT64_MAX) when its operator said 0.
 */
static uint64_t own_skew(bool set, uint64_t ms)
{
	if (!set)
		return 0;
	return ms ? ms : UINT64_MAX;
}

struct local_peer_args {
	const char *store;
	uint64_t max_skew_ms; /* as ks_server_opts */
	int timeout_ms;
};

/* The forked peer of a local-to-local sync. */
static int local_peer(int fd, void *arg)
{
	const struct local_peer_args *a = arg;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct ks_conn *conn;
	if (ks_conn_new(fd, fd, 0, &conn))
		return KS_EXIT_PROTO;
	/* The client prints whatever goes wrong here (it gets it as an
	 * ERROR frame): the same stderr must not show it twice. */
	struct ks_server_opts so = {.store_path = a->store, .stop_fd = -1,
				    .login_grace_ms = a->timeout_ms,
				    .timeout_ms = a->timeout_ms, .quiet = true,
				    .max_skew_ms = a->max_skew_ms};
	return ks_server_run(conn, &so);
}

/* Make the connection to the remote (or the forked local) side. */
static int connect_peer(const struct cli *cli, const struct endpoint *remote,
			struct ks_conn **ret_conn)
{
	int rc;
	if (remote->kind == EP_LOCAL) {
		pid_t pid;
		int fd;
		/* Both stores are the user's: the peer's bound is theirs. */
		struct local_peer_args a = {remote->path, own_skew(true, cli->max_skew_ms),
					     cli->timeout_ms};
		rc = ks_spawn_fn(local_peer, &a, &pid, &fd);
		if (rc) {
			fprintf(stderr, "kvsync: cannot start the local peer: %s\n", strerror(-rc));
			return KS_EXIT_PROTO;
		}
		return ks_conn_new(fd, fd, pid, ret_conn) ? KS_EXIT_PROTO : KS_EXIT_OK;
	}
	if (remote->kind == EP_DAEMON) {
		int fd;
		char err[256];
		rc = ks_tcp_connect(remote->host, remote->port, &fd, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "kvsync: %s\n", err);
			return KS_EXIT_PROTO;
		}
		return ks_conn_new(fd, fd, 0, ret_conn) ? KS_EXIT_PROTO : KS_EXIT_OK;
	}
	char **argv;
	size_t n;
	rc = split_words(cli->rsh, &argv, &n, 4);
	if (rc || n == 0) {
		if (!rc)
			free(argv);
		fprintf(stderr, "kvsync: cannot parse the remote shell command '%s'\n", cli->rsh);
		return KS_EXIT_USAGE;
	}
	char *path = shell_quote(remote->path);
	argv[n] = strdup(remote->userhost);
	argv[n + 1] = strdup(cli->kvsync_path);
	argv[n + 2] = strdup("--server");
	argv[n + 3] = path;
	argv[n + 4] = NULL;
	int code = KS_EXIT_OK;
	if (!argv[n] || !argv[n + 1] || !argv[n + 2] || !path) {
		code = KS_EXIT_PROTO;
	} else {
		pid_t pid;
		int rfd, wfd;
		rc = ks_spawn(argv, &pid, &rfd, &wfd);
		if (rc) {
			fprintf(stderr, "kvsync: cannot run %s: %s\n", argv[0], strerror(-rc));
			code = KS_EXIT_PROTO;
		} else if (ks_conn_new(rfd, wfd, pid, ret_conn)) {
			code = KS_EXIT_PROTO;
		}
	}
	for (size_t i = 0; i < n + 4; i++)
		free(argv[i]);
	free(argv);
	return code;
}

static void signals_done(int sig_fd);

/* ------------------------------------------------------------- client */

struct side_run {
	struct ks_client *client;
	uint8_t op;
	int code;
	int done_fd; /* written when the run ends */
};

static void *side_thread(void *arg)
{
	struct side_run *r = arg;
	r->code = ks_client_session(r->client, r->op);
	uint64_t one = 1;
	if (write(r->done_fd, &one, sizeof(one)) < 0)
		r->code = r->code ? r->code : KS_EXIT_PROTO;
	return NULL;
}

static int worst(int a, int b)
{
	return a > b ? a : b;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_stats(const struct cli *cli, struct ks_client **clients, size_t n,
			double seconds)
{
	struct ks_stats sum = {0, 0, 0, 0, 0, 0, 0};
	for (size_t i = 0; i < n; i++) {
		struct ks_stats st;
		if (!clients[i])
			continue;
		ks_client_stats(clients[i], &st);
		sum.records += st.records;
		sum.applied += st.applied;
		sum.ignored += st.ignored;
		sum.tombstones += st.tombstones;
		sum.differ += st.differ;
		sum.bytes_in += st.bytes_in;
		sum.bytes_out += st.bytes_out;
	}
	if (cli->check)
		printf("keys differing: %" PRIu64 "\n", sum.differ);
	printf("records sent: %" PRIu64 "\n"
	       "records applied: %" PRIu64 "\n"
	       "records ignored: %" PRIu64 "\n"
	       "tombstones applied: %" PRIu64 "\n"
	       "bytes sent: %" PRIu64 "\n"
	       "bytes received: %" PRIu64 "\n"
	       "seconds: %.3f\n",
	       sum.records, sum.applied, sum.ignored, sum.tombstones, sum.bytes_out,
	       sum.bytes_in, seconds);
	fflush(stdout);
}

/* --watch --both: one connection each way, both until a signal or a failure. */
static int watch_both(struct ks_client **clients, const uint8_t ops[2], int sig_fd, int stop_fd)
{
	int done_fd = eventfd(0, EFD_CLOEXEC);
	if (done_fd < 0) {
		fprintf(stderr, "kvsync: eventfd: %s\n", strerror(errno));
		return KS_EXIT_PROTO;
	}
	struct side_run runs[2];
	pthread_t th[2];
	size_t started = 0;
	int code = KS_EXIT_OK;
	for (size_t i = 0; i < 2; i++) {
		runs[i] = (struct side_run){clients[i], ops[i], KS_EXIT_OK, done_fd};
		if (pthread_create(&th[i], NULL, side_thread, &runs[i])) {
			code = KS_EXIT_PROTO;
			break;
		}
		started++;
	}
	if (started == 2) {
		struct pollfd p[2] = {{.fd = sig_fd, .events = POLLIN},
				      {.fd = done_fd, .events = POLLIN}};
		while (poll(p, 2, -1) < 0 && errno == EINTR)
			;
	}
	/* Either side ending (or a signal) ends both. */
	uint64_t one = 1;
	if (write(stop_fd, &one, sizeof(one)) < 0)
		code = KS_EXIT_PROTO;
	for (size_t i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		code = worst(code, runs[i].code);
	}
	close(done_fd);
	return code;
}

static int run_client(struct cli *cli)
{
	const struct endpoint *local, *remote;
	bool local_is_src;
	if (cli->src.kind != EP_LOCAL && cli->dst.kind != EP_LOCAL)
		return usage_error("SRC and DST cannot both be remote");
	if (cli->src.kind == EP_LOCAL) {
		local = &cli->src;
		remote = &cli->dst;
		local_is_src = true;
	} else {
		local = &cli->dst;
		remote = &cli->src;
		local_is_src = false;
	}
	uint8_t forward = local_is_src ? KS_OP_PUSH : KS_OP_PULL;
	uint8_t backward = local_is_src ? KS_OP_PULL : KS_OP_PUSH;
	bool writes = !cli->check && !(cli->req_flags & KS_REQ_DRY_RUN);
	/* The destination is created if missing; a source never is. */
	uint32_t open_flags = 0;
	bool remote_receives = writes && (local_is_src || cli->both);
	if (remote_receives)
		open_flags |= KS_OPEN_WRITE | (local_is_src ? KS_OPEN_CREATE : 0);

	signal(SIGPIPE, SIG_IGN);
	int sig_fd = -1, stop_fd = -1;
	if (cli->watch) {
		sigset_t mask;
		sigemptyset(&mask);
		sigaddset(&mask, SIGINT);
		sigaddset(&mask, SIGTERM);
		sigprocmask(SIG_BLOCK, &mask, NULL);
		sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
		if (sig_fd < 0) {
			fprintf(stderr, "kvsync: signalfd: %s\n", strerror(errno));
			return KS_EXIT_PROTO;
		}
		stop_fd = sig_fd;
		if (cli->both) {
			stop_fd = eventfd(0, EFD_CLOEXEC);
			if (stop_fd < 0) {
				fprintf(stderr, "kvsync: eventfd: %s\n", strerror(errno));
				close(sig_fd);
				return KS_EXIT_PROTO;
			}
		}
	}

	/*
	 * The local store is opened (and created) once to fail early, then
	 * closed while the peers are started: a forked peer must not inherit
	 * an open store.  Then it is opened for good.
	 */
	size_t nconn = cli->watch && cli->both ? 2 : 1;
	struct ks_conn *conns[2] = {NULL, NULL};
	struct ks_client *clients[2] = {NULL, NULL};
	kvc_store *store = NULL;
	bool local_receives = writes && (!local_is_src || cli->both);
	struct kvc_open_opts oo = {.no_create = !(local_receives && !local_is_src)};
	bool created = false;
	int code = KS_EXIT_OK;
	int rc = kvc_open(local->path, &oo, &store, &created);
	if (rc) {
		fprintf(stderr, "kvsync: cannot open store %s: %s\n", local->path,
			rc == -ENOENT ? "no such store" : strerror(-rc));
		code = KS_EXIT_STORE;
	} else if (created) {
		fprintf(stderr, "kvsync: created store %s\n", kvc_store_path(store));
	}
	kvc_close(store);
	store = NULL;
	for (size_t i = 0; i < nconn && !code; i++)
		code = connect_peer(cli, remote, &conns[i]);

	double t0 = now_s();
	if (!code) {
		oo.no_create = true;
		rc = kvc_open(local->path, &oo, &store, NULL);
		if (rc) {
			fprintf(stderr, "kvsync: cannot open store %s: %s\n", local->path,
				strerror(-rc));
			code = KS_EXIT_STORE;
		}
	}
	for (size_t i = 0; i < nconn; i++) {
		if (code) {
			ks_conn_close(conns[i]);
			continue;
		}
		struct ks_client_opts o = {
			.req_flags = cli->req_flags,
			.max_skew_ms = cli->max_skew_ms,
			.open_flags = open_flags,
			.local_is_src = local_is_src,
			.rsh = remote->kind == EP_RSH,
			.progress = cli->progress && nconn == 1,
			.want_results = cli->stats,
			.token_key = cli->have_token ? cli->token_key : NULL,
			.timeout_ms = cli->timeout_ms,
			.stop_fd = stop_fd,
			.out = stdout,
		};
		if (ks_client_new(conns[i], store, &o, &clients[i])) {
			code = KS_EXIT_PROTO;
			continue;
		}
		code = ks_client_handshake(clients[i]);
		if (code)
			fprintf(stderr, "kvsync: %s\n", ks_client_error(clients[i]));
	}

	if (!code) {
		struct ks_client *c = clients[0];
		if (cli->check) {
			code = ks_client_session(c, KS_OP_CHECK);
		} else if (nconn == 2) {
			uint8_t ops[2] = {forward, backward};
			code = watch_both(clients, ops, sig_fd, stop_fd);
		} else {
			code = ks_client_session(c, forward);
			if (!code && cli->both && !cli->watch)
				code = ks_client_session(c, backward);
		}
		for (size_t i = 0; i < nconn; i++) {
			const char *err = ks_client_error(clients[i]);
			if (code > KS_EXIT_DIFFER && err[0])
				fprintf(stderr, "kvsync: %s\n", err);
			if (code != KS_EXIT_PROTO)
				ks_client_bye(clients[i]);
		}
		if (code == KS_EXIT_DIFFER)
			fprintf(stderr, "kvsync: SRC and DST differ\n");
		if (cli->stats)
			print_stats(cli, clients, nconn, now_s() - t0);
	}
	for (size_t i = 0; i < nconn; i++)
		ks_client_free(clients[i]);
	kvc_close(store);
	if (stop_fd >= 0 && stop_fd != sig_fd)
		close(stop_fd);
	signals_done(sig_fd);
	return code;
}

/* ------------------------------------------------------------- servers */

/* The remote shell authenticated the client: its greeting gets the I/O
 * timeout, as any other wait. */
static int run_stdio_server(const char *arg, uint64_t max_skew_ms, int timeout_ms)
{
	/* The protocol owns the original stdin and stdout; anything printed
	 * by accident goes to stderr instead of corrupting the stream. */
	signal(SIGPIPE, SIG_IGN);
	int rfd = dup(0), wfd = dup(1);
	if (rfd < 0 || wfd < 0) {
		fprintf(stderr, "kvsync: dup: %s\n", strerror(errno));
		return KS_EXIT_PROTO;
	}
	if (dup2(2, 1) < 0) {
		fprintf(stderr, "kvsync: dup2: %s\n", strerror(errno));
		return KS_EXIT_PROTO;
	}
	FILE *devnull = freopen("/dev/null", "r", stdin);
	(void)devnull;
	char *path;
	if (ks_resolve_store(arg, &path)) {
		fprintf(stderr, "kvsync: out of memory\n");
		return KS_EXIT_PROTO;
	}
	struct ks_conn *conn;
	if (ks_conn_new(rfd, wfd, 0, &conn)) {
		free(path);
		return KS_EXIT_PROTO;
	}
	struct ks_server_opts so = {.store_path = path, .stop_fd = -1,
				    .login_grace_ms = timeout_ms, .timeout_ms = timeout_ms,
				    .max_skew_ms = max_skew_ms};
	int code = ks_server_run(conn, &so);
	free(path);
	return code;
}

/*
 * The daemon's limits.  A connection is "starting" until its client has
 * proved the token (or, without one, greeted); then it is a session.
 * Starting connections are bounded as sshd bounds them (MaxStartups,
 * PerSourceMaxStartups) and each has login_grace_ms to finish, so clients
 * that never finish cannot take the places of sessions, which have a
 * limit of their own.
 */
struct limits {
	int login_grace_ms;
	int timeout_ms;
	unsigned start, rate, full; /* --max-startups START:RATE:FULL */
	unsigned per_source;        /* 0: no limit */
	unsigned max_sessions;
};

struct kid {
	pid_t pid;
	int ctl;       /* our end of its control socket; -1 once it closed */
	bool session;  /* admitted: holds one of max_sessions */
	char addr[INET6_ADDRSTRLEN]; /* where it came from, without the port */
};

struct daemon {
	const char *store;
	const uint8_t *token_key;
	uint64_t max_skew_ms; /* as ks_server_opts */
	struct limits lim;
	struct kid *kids; /* max_sessions + full of them */
	size_t nkids, sessions;
	int64_t refused_logged_ms;
	unsigned long refused_quiet; /* refusals not logged since */
};

static void kid_remove(struct daemon *d, size_t i)
{
	if (d->kids[i].ctl >= 0)
		close(d->kids[i].ctl);
	if (d->kids[i].session)
		d->sessions--;
	d->kids[i] = d->kids[--d->nkids];
}

static void reap_kids(struct daemon *d)
{
	pid_t pid;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		for (size_t i = 0; i < d->nkids; i++) {
			if (d->kids[i].pid == pid) {
				kid_remove(d, i);
				break;
			}
		}
	}
}

/*
 * A connection asks (one byte 'A' on its control socket) for a session
 * once its client is authenticated; it gets 'Y' or, with max_sessions
 * taken, 'N'.  End of file: it is exiting (waitpid will tell).
 */
static void answer_kid(struct daemon *d, struct kid *k)
{
	char c;
	ssize_t n = read(k->ctl, &c, 1);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n != 1 || c != 'A' || k->session) {
		close(k->ctl);
		k->ctl = -1;
		return;
	}
	char yes = d->sessions < d->lim.max_sessions ? 'Y' : 'N';
	if (yes == 'Y') {
		k->session = true;
		d->sessions++;
	}
	if (write(k->ctl, &yes, 1) != 1) {
		close(k->ctl);
		k->ctl = -1;
	}
}

/* In the connection's process: the daemon's answer to 'A'. */
static const char *ask_admission(void *arg)
{
	static const char busy[] = "busy, try again later (all sessions are taken)";
	int ctl = *(int *)arg;
	char c = 'A';
	if (write(ctl, &c, 1) != 1)
		return busy;
	struct pollfd p = {.fd = ctl, .events = POLLIN};
	int n;
	while ((n = poll(&p, 1, ADMIT_WAIT_MS)) < 0 && errno == EINTR)
		;
	if (n != 1 || read(ctl, &c, 1) != 1 || c != 'Y')
		return busy;
	return NULL;
}

/*
 * Tell a client we will not serve it, without waiting on it: the magic and
 * an ERROR frame (no HELLO, so the client reads the ERROR first: exit 3
 * and the message) fit in a new socket's buffer.  What the client already
 * sent is read first, so the close ends with FIN, not with a reset that
 * could discard the message before the client reads it.
 */
static void refuse_now(struct daemon *d, int fd, const char *who, const char *msg)
{
	struct ks_wbuf b = {NULL, 0, 0, 0};
	ks_enc_magic(&b);
	ks_enc_error(&b, KS_EXIT_PROTO, msg);
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (!b.err && write(fd, b.p, b.len) < 0)
		(void)0; /* the client went away: nothing to tell */
	ks_wbuf_release(&b);
	shutdown(fd, SHUT_WR);
	char junk[4096];
	for (int i = 0; i < 16 && read(fd, junk, sizeof(junk)) > 0; i++)
		;
	close(fd);
	/* A flood must not flood the log too: one line a second at most. */
	int64_t now = ks_mono_ms();
	if (now - d->refused_logged_ms < 1000) {
		d->refused_quiet++;
		return;
	}
	if (d->refused_quiet)
		fprintf(stderr, "kvsync: %s: refused: %s (and %lu more refused since)\n", who, msg,
			d->refused_quiet);
	else
		fprintf(stderr, "kvsync: %s: refused: %s\n", who, msg);
	d->refused_logged_ms = now;
	d->refused_quiet = 0;
}

/* sshd's random early drop: past @start starting connections, refuse a
 * new one with probability rate%, rising linearly to 100% at @full. */
static bool early_drop(const struct limits *l, size_t starting)
{
	if (starting >= l->full)
		return true;
	if (starting < l->start)
		return false;
	unsigned p = l->rate + (unsigned)((100 - l->rate) * (starting - l->start) /
					  (l->full - l->start));
	return randombytes_uniform(100) < p;
}

/* Why a new connection from @addr is refused, or NULL to serve it. */
static const char *admit_connection(const struct daemon *d, const char *addr)
{
	size_t starting = d->nkids - d->sessions, from_addr = 0;
	if (d->sessions >= d->lim.max_sessions)
		return "busy, try again later (all sessions are taken)";
	if (early_drop(&d->lim, starting))
		return "busy, try again later (too many connections in their handshake)";
	for (size_t i = 0; i < d->nkids; i++)
		if (!d->kids[i].session && !strcmp(d->kids[i].addr, addr))
			from_addr++;
	if (d->lim.per_source && from_addr >= d->lim.per_source)
		return "busy, try again later (too many connections in their handshake from this address)";
	return NULL;
}

static void serve_connection(struct daemon *d, int fd, int ctl)
{
	char who[96];
	bool loopback = ks_peer_is_loopback(fd, who, sizeof(who));
	const char *why = NULL;
	if (!d->token_key && !loopback)
		why = "refused: this server has no --token-file and accepts only loopback clients";
	ks_tcp_tune(fd);
	struct ks_conn *conn;
	if (ks_conn_new(fd, fd, 0, &conn))
		exit(KS_EXIT_PROTO);
	struct ks_server_opts so = {.store_path = d->store, .token_key = d->token_key,
				    .refuse = why, .login_grace_ms = d->lim.login_grace_ms,
				    .timeout_ms = d->lim.timeout_ms, .admit = ask_admission,
				    .admit_arg = &ctl, .stop_fd = -1, .peer_name = who,
				    .max_skew_ms = d->max_skew_ms};
	exit(ks_server_run(conn, &so));
}

/* Start a process for the connection @fd from @addr. */
static void start_kid(struct daemon *d, int fd, const char *addr, int lfd, int sfd)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		close(fd);
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(lfd);
		close(sfd);
		close(sv[0]);
		/* The other connections' control sockets are not ours. */
		for (size_t i = 0; i < d->nkids; i++)
			if (d->kids[i].ctl >= 0)
				close(d->kids[i].ctl);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		serve_connection(d, fd, sv[1]);
	}
	close(fd);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return;
	}
	struct kid *k = &d->kids[d->nkids++];
	*k = (struct kid){.pid = pid, .ctl = sv[0], .session = false};
	snprintf(k->addr, sizeof(k->addr), "%s", addr);
}

/*
 * The unit of --per-source-max-startups: an IPv4 address, or an IPv6 /64
 * (one host commonly holds a whole /64, so counting its addresses one by
 * one would let it open as many handshakes as it likes).
 */
static void peer_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
	snprintf(out, size, "?");
	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)size);
	} else if (ss->ss_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&a))
			memset(a.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a, out, (socklen_t)size);
	}
}

static bool parse_count(const char *s, unsigned max, unsigned *ret)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > max)
		return false;
	*ret = (unsigned)v;
	return true;
}

/* START:RATE:FULL, or a single N meaning N:100:N, as sshd reads it. */
static bool parse_startups(const char *s, struct limits *l)
{
	char buf[64];
	if (strlen(s) >= sizeof(buf))
		return false;
	snprintf(buf, sizeof(buf), "%s", s);
	char *rest = buf, *f[4] = {NULL, NULL, NULL, NULL};
	size_t n = 0;
	while (rest && n < 4)
		f[n++] = strsep(&rest, ":");
	if (rest || (n != 1 && n != 3))
		return false;
	unsigned start, rate = 100, full;
	if (!parse_count(f[0], 10000, &start))
		return false;
	full = start;
	if (n == 3 && (!parse_count(f[1], 100, &rate) || !parse_count(f[2], 10000, &full)))
		return false;
	if (full < 1 || start > full || (start == full && rate != 100))
		return false;
	l->start = start;
	l->rate = rate;
	l->full = full;
	return true;
}

static int run_daemon(int argc, char **argv)
{
	enum { O_GRACE = 256, O_STARTUPS, O_PER_SOURCE, O_SESSIONS, O_TIMEOUT };
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"token-file", required_argument, NULL, 't'},
		{"max-skew", required_argument, NULL, 's'},
		{"login-grace-time", required_argument, NULL, O_GRACE},
		{"max-startups", required_argument, NULL, O_STARTUPS},
		{"per-source-max-startups", required_argument, NULL, O_PER_SOURCE},
		{"max-sessions", required_argument, NULL, O_SESSIONS},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *listen_at = DEFAULT_LISTEN, *token_file = NULL;
	uint64_t skew_ms = 0;
	bool skew_set = false;
	struct limits lim = {
		.login_grace_ms = DEFAULT_LOGIN_GRACE_S * 1000,
		.timeout_ms = DEFAULT_TIMEOUT_S * 1000,
		.start = DEFAULT_STARTUPS_START,
		.rate = DEFAULT_STARTUPS_RATE,
		.full = DEFAULT_STARTUPS_FULL,
		.per_source = DEFAULT_PER_SOURCE,
		.max_sessions = DEFAULT_MAX_SESSIONS,
	};
	int c;
	static char prog[] = "kvsync serve"; /* getopt names argv[0] in its messages */
	argv[0] = prog;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_at = optarg; break;
		case 't': token_file = optarg; break;
		case 's':
			if (!parse_u64(optarg, &skew_ms))
				return usage_error("--max-skew takes milliseconds, not '%s'", optarg);
			skew_set = true;
			break;
		case O_GRACE:
			if (!parse_seconds(optarg, &lim.login_grace_ms) || !lim.login_grace_ms)
				return usage_error("--login-grace-time takes seconds (1 or more), not '%s'",
						   optarg);
			break;
		case O_STARTUPS:
			if (!parse_startups(optarg, &lim))
				return usage_error("--max-startups takes START:RATE:FULL (START <= FULL, "
						   "RATE <= 100), not '%s'", optarg);
			break;
		case O_PER_SOURCE:
			if (!parse_count(optarg, 10000, &lim.per_source))
				return usage_error("--per-source-max-startups takes a count, not '%s'",
						   optarg);
			break;
		case O_SESSIONS:
			if (!parse_count(optarg, 10000, &lim.max_sessions) || !lim.max_sessions)
				return usage_error("--max-sessions takes a count (1 or more), not '%s'",
						   optarg);
			break;
		case O_TIMEOUT:
			if (!parse_seconds(optarg, &lim.timeout_ms))
				return usage_error("--timeout takes seconds, not '%s'", optarg);
			break;
		case 'h': usage(stdout); return KS_EXIT_OK;
		default:
			fputs("Try 'kvsync --help'.\n", stderr);
			return KS_EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return usage_error("serve takes one STORE");
	struct daemon d = {.lim = lim, .max_skew_ms = own_skew(skew_set, skew_ms)};
	d.kids = calloc(lim.max_sessions + lim.full, sizeof(*d.kids));
	struct pollfd *p = calloc(lim.max_sessions + lim.full + 2, sizeof(*p));
	size_t *pk = calloc(lim.max_sessions + lim.full + 2, sizeof(*pk));
	char *store = NULL;
	if (!d.kids || !p || !pk || ks_resolve_store(argv[optind], &store)) {
		fprintf(stderr, "kvsync: out of memory\n");
		free(d.kids);
		free(p);
		free(pk);
		return KS_EXIT_STORE;
	}
	d.store = store;
	uint8_t key[KS_AUTH_KEY_LEN];
	char err[512];
	int code = KS_EXIT_OK;
	if (token_file) {
		if (ks_token_load(token_file, key, err, sizeof(err))) {
			fprintf(stderr, "kvsync: %s\n", err);
			code = KS_EXIT_AUTH;
			goto out_free;
		}
		d.token_key = key;
	}
	/* Open once to create the store and fail early; each connection
	 * opens its own handle in its own process. */
	kvc_store *s;
	bool created = false;
	int rc = kvc_open(store, NULL, &s, &created);
	if (rc) {
		fprintf(stderr, "kvsync: cannot open store %s: %s\n", store, strerror(-rc));
		code = KS_EXIT_STORE;
		goto out_free;
	}
	if (created)
		fprintf(stderr, "kvsync: created store %s\n", kvc_store_path(s));
	kvc_close(s);

	char *host;
	char port[16], bound[128];
	if (ks_split_hostport(listen_at, DEFAULT_PORT, &host, port, sizeof(port))) {
		code = usage_error("bad --listen address '%s'", listen_at);
		goto out_free;
	}
	int lfd;
	rc = ks_tcp_listen(host, port, &lfd, bound, sizeof(bound), err, sizeof(err));
	free(host);
	if (rc) {
		fprintf(stderr, "kvsync: %s\n", err);
		code = KS_EXIT_PROTO;
		goto out_free;
	}
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "kvsync: signalfd: %s\n", strerror(errno));
		close(lfd);
		code = KS_EXIT_PROTO;
		goto out_free;
	}
	fprintf(stderr, "kvsync: serving %s on %s%s\n", store, bound,
		d.token_key ? "" : " (no token: loopback clients only)");
	bool running = true, fd_warned = false;
	while (running) {
		/* admit_connection() keeps d.nkids within max_sessions + full. */
		size_t np = 0;
		p[np++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		p[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		for (size_t i = 0; i < d.nkids; i++) {
			if (d.kids[i].ctl < 0)
				continue;
			pk[np] = i;
			p[np++] = (struct pollfd){.fd = d.kids[i].ctl, .events = POLLIN};
		}
		if (poll(p, np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (size_t j = 2; j < np; j++) {
			if (!p[j].revents)
				continue;
			answer_kid(&d, &d.kids[pk[j]]);
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGCHLD)
				running = false;
			reap_kids(&d);
		}
		if (!running || !(p[0].revents & POLLIN))
			continue;
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors or memory: the pending connection stays
			 * readable, so wait a little instead of spinning on it. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (!fd_warned)
					fprintf(stderr, "kvsync: accept: %s; retrying\n", strerror(errno));
				fd_warned = true;
				poll(NULL, 0, 100);
			}
			continue;
		}
		fd_warned = false;
		reap_kids(&d);
		char addr[INET6_ADDRSTRLEN], who[96];
		peer_addr(&ss, addr, sizeof(addr));
		const char *why = admit_connection(&d, addr);
		if (why) {
			ks_peer_is_loopback(fd, who, sizeof(who));
			refuse_now(&d, fd, who, why);
			continue;
		}
		start_kid(&d, fd, addr, lfd, sfd);
	}
	close(lfd);
	for (size_t i = 0; i < d.nkids; i++)
		kill(d.kids[i].pid, SIGTERM);
	while (d.nkids) {
		pid_t pid = waitpid(-1, NULL, 0);
		if (pid < 0)
			break;
		for (size_t i = 0; i < d.nkids; i++) {
			if (d.kids[i].pid == pid) {
				kid_remove(&d, i);
				break;
			}
		}
	}
	signals_done(sfd);
out_free:
	sodium_memzero(key, sizeof(key));
	free(store);
	free(d.kids);
	free(p);
	free(pk);
	return code;
}

/*
 * Leave the signal handling of --watch and serve: a signal still pending
 * (timeout(1) and terminals send a second one to the whole group) is
 * discarded instead of lingering blocked while the process exits.
 */
static void signals_done(int sig_fd)
{
	if (sig_fd < 0)
		return;
	close(sig_fd);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
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
	       O_TOKEN, O_SERVER, O_VERSION, O_TIMEOUT };
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
	while ((c = getopt_long(argc, argv, "nvPe:hV", opts, NULL)) != -1) {
		switch (c) {
		case O_BOTH: cli.both = true; break;
		case O_WATCH: cli.watch = true; break;
		case O_CHECK: cli.check = true; break;
		case O_FULL: cli.req_flags |= KS_REQ_FULL; break;
		case 'n': cli.req_flags |= KS_REQ_DRY_RUN; break;
		case 'v': cli.req_flags |= KS_REQ_VERBOSE; break;
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
		return run_stdio_server(server, own_skew(cli.max_skew_set, cli.max_skew_ms),
					cli.timeout_ms);
	}
	if (argc - optind != 2)
		return usage_error("expected SRC and DST");
	if (cli.check && cli.watch)
		return usage_error("--check and --watch do not go together");
	if (cli.watch && (cli.req_flags & KS_REQ_DRY_RUN))
		return usage_error("--dry-run and --watch do not go together");
	if (cli.watch)
		cli.req_flags |= KS_REQ_WATCH;
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
