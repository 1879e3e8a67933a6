/*
 * connect: SRC and DST as endpoints (a local STORE, [user@]host:PATH, or
 * kvsync://host[:port]), and the one connection a sync runs over: a
 * remote shell running `kvsync --server`, a TCP connection to a daemon, or
 * a forked peer over a socketpair when both stores are local, so every
 * sync speaks the same protocol.
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

/* -------------------------------------------------------------- endpoints */

int parse_endpoint(const char *arg, struct endpoint *ep)
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

void endpoint_release(struct endpoint *ep)
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
uint64_t own_skew(bool set, uint64_t ms)
{
	if (!set)
		return 0;
	return ms ? ms : UINT64_MAX;
}

struct local_peer_args {
	const char *store;
	uint64_t max_skew_ms; /* as ks_server_opts */
	int timeout_ms;
	uint64_t bwlimit;
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
				    .max_skew_ms = a->max_skew_ms, .bwlimit = a->bwlimit};
	return ks_server_run(conn, &so);
}

/* Make the connection to the remote (or the forked local) side. */
int connect_peer(const struct cli *cli, const struct endpoint *remote,
			struct ks_conn **ret_conn)
{
	int rc;
	if (remote->kind == EP_LOCAL) {
		pid_t pid;
		int fd;
		/* Both stores are the user's: the peer's bound is theirs. */
		struct local_peer_args a = {remote->path, own_skew(true, cli->max_skew_ms),
					     cli->timeout_ms, cli->bwlimit};
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
		rc = ks_tcp_connect(remote->host, remote->port, cli->timeout_ms, cli->bwlimit, &fd,
				    err, sizeof(err));
		if (rc) {
			fprintf(stderr, "kvsync: %s\n", err);
			return KS_EXIT_PROTO;
		}
		return ks_conn_new(fd, fd, 0, ret_conn) ? KS_EXIT_PROTO : KS_EXIT_OK;
	}
	char **argv;
	size_t n;
	rc = split_words(cli->rsh, &argv, &n, 6);
	if (rc || n == 0) {
		if (!rc)
			free(argv);
		fprintf(stderr, "kvsync: cannot parse the remote shell command '%s'\n", cli->rsh);
		return KS_EXIT_USAGE;
	}
	char *path = shell_quote(remote->path);
	/* --bwlimit goes to the far end too, which sends a pull's records
	 * (as rsync passes it on); only when given, so that a remote kvsync
	 * without the option is still usable. */
	char rate[32];
	snprintf(rate, sizeof(rate), "%" PRIu64 "B", cli->bwlimit);
	size_t k = n;
	argv[k++] = strdup(remote->userhost);
	argv[k++] = strdup(cli->kvsync_path);
	if (cli->bwlimit) {
		argv[k++] = strdup("--bwlimit");
		argv[k++] = strdup(rate);
	}
	argv[k++] = strdup("--server");
	argv[k++] = path;
	argv[k] = NULL;
	int code = KS_EXIT_OK;
	bool nomem = false;
	for (size_t i = n; i < k; i++)
		nomem = nomem || !argv[i];
	if (nomem) {
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
	for (size_t i = 0; i < k; i++)
		free(argv[i]);
	free(argv);
	return code;
}

void signals_done(int sig_fd);
