/*
 * kvapi: the Workers KV part of the Cloudflare API v4 over local stores.
 *
 *   kvapi [--listen HOST:PORT] [--token-file F] [--memory-max SIZE]
 *         [--per-address-max N] [-v] ROOT
 *
 * This file reads the command line, opens ROOT's namespaces, starts the
 * server, says READY=1 to systemd (Type=notify) once the socket listens,
 * and waits for SIGTERM or SIGINT, on which it stops taking connections,
 * lets the requests in flight finish and closes the stores.
 * Log: one line per event on stderr ("kvapi: ..."); -v adds one per request.
 * Exit status: 0 after a signal, 1 when it cannot start, 2 usage.
 */
#include "kvapi.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#ifndef KVAPI_VERSION
#define KVAPI_VERSION "unknown"
#endif

#define DEFAULT_LISTEN "127.0.0.1:8787"
#define TOKEN_MAX 4096

static const char usage_text[] =
	"Usage: kvapi [--listen HOST:PORT] [--token-file F] [--memory-max SIZE]\n"
	"             [--per-address-max N] [-v] ROOT\n"
	"\n"
	"Serve the Workers KV part of the Cloudflare API v4 over the stores under ROOT,\n"
	"one per namespace (ROOT/<namespace id>), at\n"
	"http://HOST:PORT/client/v4/accounts/<account>/storage/kv/namespaces...\n"
	"\n"
	"Options:\n"
	"  --listen HOST:PORT  address to listen on (default " DEFAULT_LISTEN "; port 0\n"
	"                      picks a free port, shown in the log)\n"
	"  --token-file F      require 'Authorization: Bearer TOKEN', TOKEN being the\n"
	"                      first line of F; without it only loopback clients are\n"
	"                      served\n"
	"  --memory-max SIZE   bytes held at once for request bodies and replies, all\n"
	"                      requests together (K, M, G: powers of 1024; default\n"
	"                      1G, at least 200M); past it requests get 503\n"
	"  --per-address-max N connections at once from one client address (1 to\n"
	"                      256, the limit of all; default 64); past it a new\n"
	"                      connection is closed at once\n"
	"  -v, --verbose       log one line per request\n"
	"  -h, --help          show this help\n"
	"  --version           show the version\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kvapi: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kvapi --help'.\n", stderr);
	return 2;
}

/* HOST:PORT, [V6]:PORT.  @return 0 or -EINVAL */
static int parse_listen(const char *s, char *host, size_t host_size, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return -EINVAL;
	const char *h = s;
	size_t hl = (size_t)(colon - s);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	int64_t p;
	if (hl == 0 || hl >= host_size || ka_parse_int(colon + 1, &p) || p < 0 || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (uint16_t)p;
	return 0;
}

/* The token: the first line of @path, without its newline. */
static int read_token(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		return -ENODATA;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	if (n == 0 || n > TOKEN_MAX) {
		free(line);
		return -ENODATA;
	}
	*ret = line;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_VERSION = 256, O_LISTEN, O_TOKEN, O_MEMORY, O_PER_ADDRESS };
	static const struct option opts[] = {
		{"listen", required_argument, NULL, O_LISTEN},
		{"token-file", required_argument, NULL, O_TOKEN},
		{"memory-max", required_argument, NULL, O_MEMORY},
		{"per-address-max", required_argument, NULL, O_PER_ADDRESS},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{NULL, 0, NULL, 0},
	};
	const char *listen = DEFAULT_LISTEN, *token_file = NULL, *memory_max = NULL;
	const char *per_address = NULL;
	struct ka_server srv = {.per_address_max = KA_PER_ADDRESS_DEFAULT};
	int c;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: listen = optarg; break;
		case O_TOKEN: token_file = optarg; break;
		case O_MEMORY: memory_max = optarg; break;
		case O_PER_ADDRESS: per_address = optarg; break;
		case 'v': srv.verbose++; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case O_VERSION: printf("kvapi %s\n", KVAPI_VERSION); return 0;
		default: fputs("Try 'kvapi --help'.\n", stderr); return 2;
		}
	}
	if (optind != argc - 1)
		return usage_error("expected ROOT%s", optind < argc ? " and nothing after it" : "");
	const char *root = argv[optind];
	char host[256];
	uint16_t port;
	if (parse_listen(listen, host, sizeof(host), &port))
		return usage_error("--listen takes HOST:PORT, not '%s'", listen);
	uint64_t mem_max = KA_MEMORY_DEFAULT;
	char shown[32];
	if (memory_max && ka_size_parse(memory_max, &mem_max))
		return usage_error("--memory-max takes a size such as 512M or 2G, not '%s'",
				   memory_max);
	if (mem_max < KA_MEMORY_MIN)
		return usage_error("--memory-max must be at least %s: a bulk body of the "
				   "largest size and its parsed copy",
				   ka_size_show(KA_MEMORY_MIN, shown, sizeof(shown)));
	int64_t n;
	if (per_address && (ka_parse_int(per_address, &n) || n < 1 || n > KA_CONNECTIONS_MAX))
		return usage_error("--per-address-max takes a number from 1 to %u, not '%s'",
				   KA_CONNECTIONS_MAX, per_address);
	if (per_address)
		srv.per_address_max = (unsigned)n;
	if (sodium_init() < 0) {
		fprintf(stderr, "kvapi: cannot initialize libsodium\n");
		return 1;
	}
	char *token = NULL;
	if (token_file) {
		int rc = read_token(token_file, &token);
		if (rc) {
			fprintf(stderr, "kvapi: cannot read a token from %s: %s\n", token_file,
				rc == -ENODATA ? "no token on its first line" : strerror(-rc));
			return 1;
		}
		srv.token = token;
		srv.token_len = strlen(token);
	}
	pthread_mutex_init(&srv.log_lock, NULL);
	int rc = ka_budget_init(&srv.mem, mem_max, KA_MEMORY_WAIT_MS);
	if (rc) {
		fprintf(stderr, "kvapi: cannot set up the memory budget: %s\n", strerror(-rc));
		free(token);
		return 1;
	}
	rc = ka_registry_open(root, &srv.reg);
	if (rc) {
		fprintf(stderr, "kvapi: cannot serve %s: %s\n", root,
			rc == -EBADMSG ? "namespaces.json is not a JSON object" : strerror(-rc));
		free(token);
		return 1;
	}

	/* Every thread, MHD's included, inherits this mask: the signals
	 * come to sigwait below and nowhere else. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	char bound[300], err[512];
	struct MHD_Daemon *d = ka_server_start(&srv, host, port, bound, sizeof(bound), err,
					       sizeof(err));
	if (!d) {
		fprintf(stderr, "kvapi: %s\n", err);
		ka_registry_close(srv.reg);
		free(token);
		return 1;
	}
	ka_log(&srv,
	       "serving %s on %s (%s; memory for bodies and replies: %s; connections: %u, %u"
	       " from one address)",
	       root, bound, token ? "token required" : "loopback clients only",
	       ka_size_show(mem_max, shown, sizeof(shown)), KA_CONNECTIONS_MAX,
	       srv.per_address_max);
	sd_notify(0, "READY=1");

	int sig = 0;
	while (sigwait(&stop, &sig))
		;
	sd_notify(0, "STOPPING=1");
	ka_log(&srv, "%s: stopping", strsignal(sig));
	MHD_stop_daemon(d);
	/* Every request and reply is gone: the whole budget must be back. */
	uint64_t left = ka_budget_used(&srv.mem);
	if (left)
		ka_log(&srv, "bug: %llu bytes of the memory budget were not given back",
		       (unsigned long long)left);
	ka_registry_close(srv.reg);
	free(token);
	ka_log(&srv, "stopped");
	ka_budget_destroy(&srv.mem);
	pthread_mutex_destroy(&srv.log_lock);
	return 0;
}
