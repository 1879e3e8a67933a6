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
#include <errno.h>
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
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvcore.h"
#include "sync_auth.h"
#include "sync_net.h"
#include "sync_session.h"

#ifndef KVSYNC_VERSION
#define KVSYNC_VERSION "unknown"
#endif

#define DEFAULT_PORT "7310"
#define DEFAULT_LISTEN "127.0.0.1:" DEFAULT_PORT
#define GREET_TIMEOUT_MS 60000
#define MAX_CONNECTIONS 64
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
	uint8_t token_key[KS_AUTH_KEY_LEN];
	bool have_token;
	struct endpoint src, dst;
};

static void usage(FILE *f)
{
	fputs("usage: kvsync [OPTIONS] SRC DST\n"
	      "       kvsync serve [--listen HOST:PORT] [--token-file FILE] [--max-skew MS] STORE\n"
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
	      "  -h, --help         this help\n"
	      "  -V, --version      print the version\n"
	      "\n"
	      "Exit status: 0 done, 1 not converged (--check), 2 usage, 3 protocol or\n"
	      "connection error, 4 store error, 5 authentication failure.\n",
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

struct local_peer_arg {
	const char *store;
	uint64_t max_skew_ms; /* as ks_server_opts */
};

/* The forked peer of a local-to-local sync. */
static int local_peer(int fd, void *arg)
{
	const struct local_peer_arg *a = arg;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct ks_conn *conn;
	if (ks_conn_new(fd, fd, 0, &conn))
		return KS_EXIT_PROTO;
	/* The client prints whatever goes wrong here (it gets it as an
	 * ERROR frame): the same stderr must not show it twice. */
	struct ks_server_opts so = {.store_path = a->store, .stop_fd = -1,
				    .greet_timeout_ms = GREET_TIMEOUT_MS, .quiet = true,
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
		struct local_peer_arg a = {remote->path, own_skew(true, cli->max_skew_ms)};
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

static int run_stdio_server(const char *arg, uint64_t max_skew_ms)
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
				    .greet_timeout_ms = GREET_TIMEOUT_MS, .max_skew_ms = max_skew_ms};
	int code = ks_server_run(conn, &so);
	free(path);
	return code;
}

struct daemon {
	const char *store;
	const uint8_t *token_key;
	uint64_t max_skew_ms; /* as ks_server_opts */
	pid_t kids[MAX_CONNECTIONS];
	size_t nkids;
};

static void reap_kids(struct daemon *d)
{
	pid_t pid;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		for (size_t i = 0; i < d->nkids; i++) {
			if (d->kids[i] == pid) {
				d->kids[i] = d->kids[--d->nkids];
				break;
			}
		}
	}
}

/*
 * A client over the connection limit is told so rather than cut off: the
 * greeting and the ERROR frame fit in a new socket's buffer, so this does
 * not hold up the accept loop.  Exit 3 for the client: try again later.
 */
static void refuse_busy(int fd)
{
	char who[96];
	struct ks_conn *conn;

	ks_peer_is_loopback(fd, who, sizeof(who));
	if (ks_conn_new(fd, fd, 0, &conn))
		return;
	struct ks_server_opts so = {.refuse = "refused: the server is busy with "
					      STRINGIFY(MAX_CONNECTIONS) " connections; try again later",
				    .refuse_code = KS_EXIT_PROTO, .stop_fd = -1, .peer_name = who};
	ks_server_run(conn, &so);
}

static void serve_connection(struct daemon *d, int fd)
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
				    .refuse = why, .greet_timeout_ms = GREET_TIMEOUT_MS,
				    .stop_fd = -1, .peer_name = who, .max_skew_ms = d->max_skew_ms};
	exit(ks_server_run(conn, &so));
}

static int run_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"token-file", required_argument, NULL, 't'},
		{"max-skew", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *listen_at = DEFAULT_LISTEN, *token_file = NULL;
	uint64_t skew_ms = 0;
	bool skew_set = false;
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
		case 'h': usage(stdout); return KS_EXIT_OK;
		default:
			fputs("Try 'kvsync --help'.\n", stderr);
			return KS_EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return usage_error("serve takes one STORE");
	struct daemon d = {.nkids = 0, .max_skew_ms = own_skew(skew_set, skew_ms)};
	char *store;
	if (ks_resolve_store(argv[optind], &store))
		return KS_EXIT_STORE;
	d.store = store;
	uint8_t key[KS_AUTH_KEY_LEN];
	char err[512];
	if (token_file) {
		if (ks_token_load(token_file, key, err, sizeof(err))) {
			fprintf(stderr, "kvsync: %s\n", err);
			free(store);
			return KS_EXIT_AUTH;
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
		free(store);
		return KS_EXIT_STORE;
	}
	if (created)
		fprintf(stderr, "kvsync: created store %s\n", kvc_store_path(s));
	kvc_close(s);

	char *host;
	char port[16], bound[128];
	if (ks_split_hostport(listen_at, DEFAULT_PORT, &host, port, sizeof(port))) {
		free(store);
		return usage_error("bad --listen address '%s'", listen_at);
	}
	int lfd;
	rc = ks_tcp_listen(host, port, &lfd, bound, sizeof(bound), err, sizeof(err));
	free(host);
	if (rc) {
		fprintf(stderr, "kvsync: %s\n", err);
		free(store);
		return KS_EXIT_PROTO;
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
		free(store);
		return KS_EXIT_PROTO;
	}
	fprintf(stderr, "kvsync: serving %s on %s%s\n", store, bound,
		d.token_key ? "" : " (no token: loopback clients only)");
	bool running = true, fd_warned = false;
	while (running) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGCHLD)
				running = false;
			reap_kids(&d);
		}
		if (!running || !(p[0].revents & POLLIN))
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
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
		if (d.nkids >= MAX_CONNECTIONS) {
			refuse_busy(fd);
			continue;
		}
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			close(sfd);
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			serve_connection(&d, fd);
		}
		close(fd);
		if (pid > 0)
			d.kids[d.nkids++] = pid;
	}
	close(lfd);
	for (size_t i = 0; i < d.nkids; i++)
		kill(d.kids[i], SIGTERM);
	while (d.nkids) {
		pid_t pid = waitpid(-1, NULL, 0);
		if (pid < 0)
			break;
		for (size_t i = 0; i < d.nkids; i++) {
			if (d.kids[i] == pid) {
				d.kids[i] = d.kids[--d.nkids];
				break;
			}
		}
	}
	signals_done(sfd);
	sodium_memzero(key, sizeof(key));
	free(store);
	return KS_EXIT_OK;
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
	       O_TOKEN, O_SERVER, O_VERSION };
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
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{NULL, 0, NULL, 0},
	};
	struct cli cli = {.max_skew_ms = KS_MAX_SKEW_DEFAULT_MS, .rsh = "ssh",
			  .kvsync_path = "kvsync"};
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
		return run_stdio_server(server, own_skew(cli.max_skew_set, cli.max_skew_ms));
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
