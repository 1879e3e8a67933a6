/*
 * client: runs a sync over the connection connect.c made: one session
 * each way with --both (two threads and two connections under --watch, so
 * both directions follow their feeds at once), --check's comparison, and
 * the --stats summary.  Signals end a --watch cleanly.
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
#include <systemd/sd-daemon.h>

#include "kvcore.h"
#include "auth.h"
#include "cli.h"
#include "net.h"
#include "session.h"

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

/* @n with rsync's thousands separators: 1,234,567. */
static const char *commas(char *buf, size_t size, uint64_t n)
{
	char digits[32];
	int len = snprintf(digits, sizeof(digits), "%" PRIu64, n);
	size_t j = 0;
	for (int i = 0; i < len && j + 2 < size; i++) {
		if (i && (len - i) % 3 == 0)
			buf[j++] = ',';
		buf[j++] = digits[i];
	}
	buf[j] = 0;
	return buf;
}

/* @x with two decimals and thousands separators, as rsync's bytes/sec. */
static const char *commas2(char *buf, size_t size, double x)
{
	uint64_t cents = x > 0 ? (uint64_t)(x * 100 + 0.5) : 0;
	char whole[32];
	snprintf(buf, size, "%s.%02u", commas(whole, sizeof(whole), cents / 100),
		 (unsigned)(cents % 100));
	return buf;
}

/*
 * --stats: rsync's summary lines, in its wording and number format, where
 * a line means the same for keys as for files; "files" become "keys"
 * where the count is of records (docs/kvsync.md, "--stats").
 */
static void print_stats(const struct cli *cli, struct ks_client **clients, size_t n,
			double seconds)
{
	struct ks_stats sum = {0};
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
		sum.bytes += st.bytes;
		sum.bytes_in += st.bytes_in;
		sum.bytes_out += st.bytes_out;
	}
	char a[32], b[32], c[48];
	if (cli->check)
		printf("Number of keys differing: %s\n", commas(a, sizeof(a), sum.differ));
	printf("Number of keys transferred: %s\n", commas(a, sizeof(a), sum.records));
	printf("Number of keys applied: %s\n", commas(a, sizeof(a), sum.applied));
	printf("Number of keys ignored: %s\n", commas(a, sizeof(a), sum.ignored));
	printf("Number of deleted keys: %s\n", commas(a, sizeof(a), sum.tombstones));
	printf("Total transferred size: %s bytes\n", commas(a, sizeof(a), sum.bytes));
	printf("Literal data: %s bytes\n", commas(a, sizeof(a), sum.bytes));
	printf("Total bytes sent: %s\n", commas(a, sizeof(a), sum.bytes_out));
	printf("Total bytes received: %s\n", commas(a, sizeof(a), sum.bytes_in));
	uint64_t wire = sum.bytes_in + sum.bytes_out;
	printf("\nsent %s bytes  received %s bytes  %s bytes/sec\n",
	       commas(a, sizeof(a), sum.bytes_out), commas(b, sizeof(b), sum.bytes_in),
	       commas2(c, sizeof(c), seconds > 0 ? (double)wire / seconds : (double)wire));
	printf("total size is %s  speedup is %s\n", commas(a, sizeof(a), sum.bytes),
	       commas2(b, sizeof(b), wire ? (double)sum.bytes / (double)wire : 0));
	fflush(stdout);
}

/*
 * --watch under systemd (Type=notify): READY=1 once every direction has
 * caught up with what its sender held at the start, so a unit ordered
 * after this one finds DST holding SRC's records.
 */
struct readiness {
	unsigned want, have;
	pthread_mutex_t lock;
};

static void caught_up(void *arg)
{
	struct readiness *r = arg;
	pthread_mutex_lock(&r->lock);
	if (++r->have == r->want)
		sd_notify(0, "READY=1");
	pthread_mutex_unlock(&r->lock);
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

int run_client(struct cli *cli)
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
		sig_fd = signals_take(false);
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
	 * The local store is opened once to fail early (a SRC that is not
	 * there), then closed while the peers are started: a forked peer must
	 * not inherit an open store.  A missing DST is not created yet:
	 * nothing local is made before the peer has proved who it is (a
	 * refused token, an unreachable host, a remote shell that fails leave
	 * no store behind).  It is opened (created) for good after the
	 * handshake.
	 */
	size_t nconn = cli->watch && cli->both ? 2 : 1;
	struct ks_conn *conns[2] = {NULL, NULL};
	struct ks_client *clients[2] = {NULL, NULL};
	kvc_store *store = NULL;
	bool local_receives = writes && (!local_is_src || cli->both);
	bool may_create = local_receives && !local_is_src;
	struct kvc_open_opts oo = {.no_create = true};
	int code = KS_EXIT_OK;
	int rc = kvc_open(local->path, &oo, &store, NULL);
	if (rc == -ENOENT && may_create) {
		rc = 0; /* created after the handshake */
	} else if (rc) {
		fprintf(stderr, "kvsync: cannot open store %s: %s\n", local->path,
			ks_store_open_error(rc));
		code = KS_EXIT_STORE;
	}
	kvc_close(store);
	store = NULL;
	for (size_t i = 0; i < nconn && !code; i++)
		code = connect_peer(cli, remote, &conns[i]);

	struct readiness ready = {.want = (unsigned)(cli->both ? 2 : 1),
				  .lock = PTHREAD_MUTEX_INITIALIZER};
	double t0 = now_s();
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
			.filter = &cli->filter,
			.summary = cli->verbose,
			.compress = cli->compress,
			.bwlimit = cli->bwlimit,
			.caught_up = cli->watch ? caught_up : NULL,
			.caught_up_arg = &ready,
		};
		if (ks_client_new(conns[i], &o, &clients[i])) {
			code = KS_EXIT_PROTO;
			continue;
		}
		code = ks_client_handshake(clients[i]);
		if (code)
			fprintf(stderr, "kvsync: %s\n", ks_client_error(clients[i]));
	}
	if (!code) {
		/* The peer is who we asked for: now the local store may be made. */
		bool created = false;
		oo.no_create = !may_create;
		rc = kvc_open(local->path, &oo, &store, &created);
		if (rc) {
			fprintf(stderr, "kvsync: cannot open store %s: %s\n", local->path,
				ks_store_open_error(rc));
			code = KS_EXIT_STORE;
		} else if (created) {
			fprintf(stderr, "kvsync: created store %s\n", kvc_store_path(store));
		}
	}
	for (size_t i = 0; i < nconn && !code; i++) {
		code = ks_client_open(clients[i], store);
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
		if (cli->watch && code == KS_EXIT_OK)
			sd_notify(0, "STOPPING=1"); /* a --watch ends well only on a signal */
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
