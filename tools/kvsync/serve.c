/*
 * serve: the far ends of a sync.  `kvsync --server PATH` answers one
 * client on stdin/stdout (under a remote shell).  `kvsync serve` is a
 * daemon: an accept loop that forks a process per connection, with sshd's
 * limits on connections still in the handshake (--login-grace-time,
 * --max-startups, --per-source-max-startups) and on sessions served at
 * once (--max-sessions), granted by the parent over a control pipe.
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
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "kvcore.h"
#include "auth.h"
#include "cli.h"
#include "net.h"
#include "session.h"

/* ------------------------------------------------------------- servers */

/* The remote shell authenticated the client: its greeting gets the I/O
 * timeout, as any other wait. */
int run_stdio_server(const char *arg, uint64_t max_skew_ms, int timeout_ms, uint64_t bwlimit)
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
				    .max_skew_ms = max_skew_ms, .bwlimit = bwlimit};
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
	/* The accept loop's poll set and the kid of each entry.  Kept here,
	 * not only in run_daemon's locals: a forked kid exits from deep in
	 * its session, and a sanitizer build's leak check finds them through
	 * this structure (on the stack), which a register would not show. */
	struct pollfd *poll;
	size_t *poll_kid;
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
	struct ks_wbuf b = KS_WBUF_INIT;
	ks_enc_magic(&b);
	ks_enc_error(&b, KS_EXIT_PROTO, msg);
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (!b.err && write(fd, b.buf.p, b.buf.len) < 0)
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

int run_daemon(int argc, char **argv)
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
	d.poll = calloc(lim.max_sessions + lim.full + 2, sizeof(*d.poll));
	d.poll_kid = calloc(lim.max_sessions + lim.full + 2, sizeof(*d.poll_kid));
	struct pollfd *p = d.poll;
	size_t *pk = d.poll_kid;
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
	int sfd = signals_take(true);
	if (sfd < 0) {
		fprintf(stderr, "kvsync: signalfd: %s\n", strerror(errno));
		close(lfd);
		code = KS_EXIT_PROTO;
		goto out_free;
	}
	fprintf(stderr, "kvsync: serving %s on %s%s\n", store, bound,
		d.token_key ? "" : " (no token: loopback clients only)");
	sd_notify(0, "READY=1"); /* listening: a Type=notify unit is up */
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
	sd_notify(0, "STOPPING=1");
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

/* The signals that end --watch and serve; SIGCHLD too for a daemon's kids. */
static void stop_signals(sigset_t *ret_mask, bool children)
{
	sigemptyset(ret_mask);
	sigaddset(ret_mask, SIGINT);
	sigaddset(ret_mask, SIGTERM);
	if (children)
		sigaddset(ret_mask, SIGCHLD);
}

int signals_take(bool children)
{
	sigset_t mask;
	stop_signals(&mask, children);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	return signalfd(-1, &mask, SFD_CLOEXEC);
}

/*
 * Leave the signal handling of --watch and serve: a signal still pending
 * (timeout(1) and terminals send a second one to the whole group) is
 * discarded instead of lingering blocked while the process exits.
 */
void signals_done(int sig_fd)
{
	if (sig_fd < 0)
		return;
	close(sig_fd);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigset_t mask;
	stop_signals(&mask, true);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
}
