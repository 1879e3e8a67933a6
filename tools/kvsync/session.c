/*
 * session: the protocol engine of kvsync (see session.h and the protocol
 * section of docs/kvsync.md): the handshake, the client's sessions and the
 * server.  session_int.h lists the files the engine is split into.
 *
 * Roles.  In a sync session one side is the sender and the other the
 * receiver, whichever of them is the client.  The receiver says which
 * watermark it holds for the sender; the sender answers with a plan:
 * records after that watermark in feed order, or (when the watermark is
 * unusable: below the sender's GC horizon, past its head, unknown while the
 * receiver already holds records, or --full) a digest comparison that finds
 * the ranges where the receiver lacks something and ships only that.
 *
 * Safety.  The receiver keeps a batch in memory until the sender closes it
 * and applies it in one write transaction together with the watermark, so
 * a connection that breaks (or turns hostile) in the middle of a batch
 * leaves nothing of that batch behind.  kvc_apply decides each record by
 * last-writer-wins; an absent key is never taken for a deleted one.
 */
#include "session_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/progress.h"
#include "digest.h"

/* ---------------------------------------------------------- handshake */

static int send_magic(struct ks_sess *s)
{
	ks_enc_magic(sess_out(s));
	s->greeted = true; /* an ERROR frame may follow the magic */
	return ks_conn_flush(s->conn); /* the caller decides what a failure means */
}

static int send_hello(struct ks_sess *s, uint32_t flags, uint8_t nonce[KS_NONCE_LEN])
{
	struct ks_hello h = {.version = KS_PROTO_VERSION, .flags = flags};
	randombytes_buf(h.nonce, KS_NONCE_LEN);
	memcpy(nonce, h.nonce, KS_NONCE_LEN);
	ks_enc_hello(sess_out(s), &h);
	return ks_conn_flush(s->conn);
}

/* -z: both directions are compressed from here on. */
static int start_compress(struct ks_sess *s)
{
	int rc = ks_conn_start_compress(s->conn);
	return rc ? sess_conn_fail(s, rc) : 0;
}

static int recv_hello(struct ks_sess *s, int timeout_ms, struct ks_hello *h)
{
	struct ks_frame f;
	const char *why = NULL;
	int rc = sess_recv_expect(s, timeout_ms, KS_HELLO, false, &f);
	if (rc)
		return rc;
	if (ks_dec_hello(&f, h, &why))
		return sess_proto_fail(s, why);
	if (h->version != KS_PROTO_VERSION)
		return sess_fail(s, KS_EXIT_PROTO,
			    "protocol error: the %s speaks protocol version %u, this kvsync speaks %u",
			    s->peer_word, h->version, KS_PROTO_VERSION);
	if (((h->flags & KS_HELLO_SERVER) != 0) != s->client)
		return sess_proto_fail(s, s->client ? "the peer is not a kvsync server" :
						 "the peer greeted as a server");
	return 0;
}

/* Whether the server's answer to -z (KS_HELLO_COMPRESS) is what we asked. */
static int check_compress(struct ks_client *c, const struct ks_hello *sh)
{
	bool agreed = (sh->flags & KS_HELLO_COMPRESS) != 0;
	if (agreed && !c->o.compress)
		return sess_proto_fail(&c->s, "the server compresses unasked");
	if (!agreed && c->o.compress)
		return sess_fail(&c->s, KS_EXIT_PROTO,
			    "the server's kvsync does not know -z (compression): drop -z, or upgrade it");
	return 0;
}

/* Whether both ends opened the one store (identities known). */
static int same_store(struct ks_sess *s)
{
	if (s->peer.node == s->self.node && s->peer.epoch == s->self.epoch)
		return sess_fail(s, KS_EXIT_USAGE, "SRC and DST are the same store");
	return 0;
}

static int recv_ident(struct ks_sess *s, int timeout_ms)
{
	struct ks_frame f;
	const char *why = NULL;
	int rc = sess_recv_expect(s, timeout_ms, KS_IDENT, false, &f);
	if (rc)
		return rc;
	if (ks_dec_ident(&f, &s->peer, &why))
		return sess_proto_fail(s, why);
	return same_store(s);
}

int ks_client_new(struct ks_conn *conn, const struct ks_client_opts *o,
		  struct ks_client **ret_client)
{
	struct ks_client *c = calloc(1, sizeof(*c));
	if (!c) {
		ks_conn_close(conn);
		return -ENOMEM;
	}
	c->o = *o;
	struct ks_sess *s = &c->s;
	s->conn = conn;
	s->client = true;
	s->peer_word = "server";
	s->stop_fd = o->stop_fd;
	s->out = o->out ? o->out : stdout;
	s->local_is_src = o->local_is_src;
	s->rsh = o->rsh;
	s->progress = o->progress;
	s->caught_up = o->caught_up;
	s->caught_up_arg = o->caught_up_arg;
	kt_progress_init(&s->prog, 2, "kvsync", "records", 0);
	ks_conn_set_stop_fd(conn, o->stop_fd);
	ks_conn_set_timeout(conn, o->timeout_ms);
	ks_conn_set_bwlimit(conn, o->bwlimit);
	*ret_client = c;
	return 0;
}

void ks_client_free(struct ks_client *c)
{
	if (!c)
		return;
	ks_conn_close(c->s.conn);
	free(c);
}

const char *ks_client_error(const struct ks_client *c)
{
	return c->s.err;
}

void ks_client_stats(const struct ks_client *c, struct ks_stats *ret)
{
	*ret = c->s.st;
	ret->bytes_in = ks_conn_bytes_in(c->s.conn);
	ret->bytes_out = ks_conn_bytes_out(c->s.conn);
}

void ks_client_peer(const struct ks_client *c, struct ks_ident *ret)
{
	*ret = c->s.peer;
}

static int client_auth(struct ks_client *c, const struct ks_hello *sh, const uint8_t *cn)
{
	struct ks_sess *s = &c->s;
	const uint8_t *key = c->o.token_key;
	if ((sh->flags & KS_HELLO_TOKEN) && !key)
		return sess_fail(s, KS_EXIT_AUTH, "the server requires a token: give --token-file");
	if (!key)
		return 0;
	if (!(sh->flags & KS_HELLO_TOKEN)) {
		/* A server that greets and then refuses us (a kvsync before
		 * refusals went without a HELLO) has an ERROR on its way:
		 * its reason, busy for one, tells more than ours. */
		struct ks_frame f;
		if (ks_conn_wait(s->conn, 200) == 1 && !ks_conn_recv(s->conn, 0, &f) &&
		    f.type == KS_ERROR)
			return sess_peer_error(s, &f);
		return sess_fail(s, KS_EXIT_AUTH,
			    "the server has no token and cannot prove who it is; refusing it");
	}
	uint8_t mac[KS_MAC_LEN];
	ks_auth_mac(key, false, sh->nonce, cn, mac);
	ks_enc_auth(sess_out(s), mac);
	struct ks_frame f;
	const char *why = NULL;
	int rc = sess_recv_expect(s, -1, KS_AUTH, false, &f);
	if (rc)
		return rc;
	if (ks_dec_auth(&f, mac, &why))
		return sess_proto_fail(s, why);
	if (!ks_auth_check(key, true, sh->nonce, cn, mac))
		return sess_fail(s, KS_EXIT_AUTH, "the server could not prove it knows the token");
	return 0;
}

int ks_client_handshake(struct ks_client *c)
{
	struct ks_sess *s = &c->s;
	uint8_t nonce[KS_NONCE_LEN];
	uint32_t hflags = (c->o.token_key ? KS_HELLO_TOKEN : 0) |
			  (c->o.compress ? KS_HELLO_COMPRESS : 0);
	int rc = send_magic(s);
	if (!rc)
		rc = send_hello(s, hflags, nonce);
	if (rc == -EPIPE)
		rc = 0; /* the answer (or its absence) tells more */
	else if (rc)
		rc = sess_conn_fail(s, rc);
	if (rc)
		goto out;
	char junk[100];
	rc = ks_conn_read_magic(s->conn, -1, junk, sizeof(junk));
	if (rc == -EBADMSG) {
		if (s->rsh)
			rc = sess_fail(s, KS_EXIT_PROTO,
				  "remote shell printed '%s' before the protocol started; check the remote login scripts",
				  junk);
		else
			rc = sess_fail(s, KS_EXIT_PROTO,
				  "protocol error: the peer is not a kvsync server (it sent '%s')", junk);
		goto out;
	}
	if (rc == -ECONNRESET) {
		rc = sess_fail(s, KS_EXIT_PROTO, "connection closed before the protocol started%s",
			  s->rsh ? " (did the remote command run? see --kvsync-path)" : "");
		goto out;
	}
	if (rc) {
		rc = sess_conn_fail(s, rc);
		goto out;
	}
	struct ks_hello sh;
	rc = recv_hello(s, -1, &sh);
	if (!rc)
		rc = check_compress(c, &sh);
	/* The server compresses after its last handshake frame: its HELLO,
	 * or its AUTH when it holds a token. */
	bool z = c->o.compress;
	if (!rc && z && !(sh.flags & KS_HELLO_TOKEN))
		rc = start_compress(s);
	if (!rc)
		rc = client_auth(c, &sh, nonce);
	if (!rc && z && (sh.flags & KS_HELLO_TOKEN))
		rc = start_compress(s);
	/* The server opens its store and says which it is; ours is told
	 * once it is open (ks_client_open), which the server waits for.  The
	 * self identity is not known yet: no same-store check here. */
	if (!rc) {
		struct ks_frame f;
		const char *why = NULL;
		ks_enc_open(sess_out(s), c->o.open_flags);
		rc = sess_recv_expect(s, -1, KS_IDENT, false, &f);
		if (!rc && ks_dec_ident(&f, &s->peer, &why))
			rc = sess_proto_fail(s, why);
	}
out:
	if (rc)
		sess_tell_peer(s);
	return rc ? s->code : KS_EXIT_OK;
}

int ks_client_open(struct ks_client *c, kvc_store *store)
{
	struct ks_sess *s = &c->s;
	s->store = store;
	/* Read our store only now: a store that cannot be read is then told
	 * to the server as an error, not left for it to guess. */
	int rc = sess_load_identity(s);
	if (!rc)
		rc = same_store(s);
	if (!rc) {
		struct ks_ident me = s->self;
		ks_enc_ident(sess_out(s), &me);
		rc = sess_flush(s);
	}
	if (rc)
		sess_tell_peer(s);
	return rc ? s->code : KS_EXIT_OK;
}

int ks_client_session(struct ks_client *c, uint8_t op)
{
	struct ks_sess *s = &c->s;
	struct ks_req q = {op, c->o.req_flags, c->o.max_skew_ms};
	s->op = op;
	s->flags = q.flags;
	s->max_skew_ms = q.max_skew_ms;
	/* Outcomes of pushed records are known only from the receiver's
	 * RESULT frames; the local -v printing still follows s->flags. */
	if (op == KS_OP_PUSH && c->o.want_results)
		q.flags |= KS_REQ_VERBOSE;
	s->plan_mode = 0;
	s->next_id = 0;
	s->caught = false;
	s->batches_out = s->acks_in = 0;
	/* A display of its own per session: its clock, its counts, its total. */
	kt_progress_init(&s->prog, 2,
			 op == KS_OP_CHECK ? "comparing"
			 : (op == KS_OP_PUSH) == s->local_is_src ? "SRC -> DST"
								  : "DST -> SRC",
			 "records", 0);
	s->prog.bytes_first = true; /* bytes done first, as rsync's progress2 */
	s->prog_records0 = s->st.records;
	s->prog_bytes = 0;
	struct ks_stats before = s->st;
	int rc = sess_set_filter(s, c->o.filter);
	if (rc)
		return s->code;
	if (s->filter)
		q.flags |= KS_REQ_FILTER;
	ks_enc_req(sess_out(s), &q);
	if (s->filter)
		ks_enc_filter(sess_out(s), s->filter);
	switch (op) {
	case KS_OP_PUSH:
		rc = sess_run_sender(s);
		break;
	case KS_OP_PULL:
		rc = sess_run_receiver(s);
		break;
	default:
		rc = sess_run_check_driver(s);
		break;
	}
	/* Done: what was sent is the whole, whatever the plan's bound said. */
	if (!rc && s->prog.approximate)
		kt_progress_set_total(&s->prog, s->st.records - s->prog_records0, false);
	sess_progress(s, true);
	if (s->out)
		fflush(s->out);
	if (rc == -EINTR)
		return KS_EXIT_OK;
	if (rc) {
		sess_tell_peer(s);
		return s->code ? s->code : KS_EXIT_PROTO;
	}
	if (c->o.summary && op != KS_OP_CHECK) {
		bool to_dst = (op == KS_OP_PUSH) == s->local_is_src;
		char how[64];
		if (s->plan_mode == KS_PLAN_DIGEST)
			snprintf(how, sizeof(how), "by digest comparison");
		else
			snprintf(how, sizeof(how), "after %llu", (unsigned long long)s->plan_after);
		fprintf(stderr, "kvsync: %s: %llu records %s, %llu applied, %llu ignored\n",
			to_dst ? "SRC -> DST" : "DST -> SRC",
			(unsigned long long)(s->st.records - before.records), how,
			(unsigned long long)(s->st.applied - before.applied),
			(unsigned long long)(s->st.ignored - before.ignored));
	}
	if (op == KS_OP_CHECK && s->st.differ > before.differ)
		return KS_EXIT_DIFFER;
	return KS_EXIT_OK;
}

void ks_client_bye(struct ks_client *c)
{
	ks_enc_empty(sess_out(&c->s), KS_BYE);
	ks_conn_flush(c->s.conn);
}

const char *ks_store_open_error(int rc)
{
	if (rc == -ENOENT)
		return "no such store";
	if (rc == -ENOTEMPTY)
		return "not a store: a directory of other files";
	return strerror(-rc);
}

/* ------------------------------------------------------------- server */

static int server_auth(struct ks_sess *s, const struct ks_server_opts *o,
		       const struct ks_hello *ch, const uint8_t *sn, int timeout)
{
	if (!o->token_key)
		return 0;
	if (!(ch->flags & KS_HELLO_TOKEN))
		return sess_fail(s, KS_EXIT_AUTH, "authentication failed: the client has no token");
	struct ks_frame f;
	uint8_t mac[KS_MAC_LEN];
	const char *why = NULL;
	int rc = sess_recv_expect(s, timeout, KS_AUTH, false, &f);
	if (rc)
		return rc;
	if (ks_dec_auth(&f, mac, &why))
		return sess_proto_fail(s, why);
	if (!ks_auth_check(o->token_key, false, sn, ch->nonce, mac))
		return sess_fail(s, KS_EXIT_AUTH, "authentication failed: wrong token");
	ks_auth_mac(o->token_key, true, sn, ch->nonce, mac);
	ks_enc_auth(sess_out(s), mac);
	return sess_flush(s);
}

static int server_open(struct ks_sess *s, const struct ks_server_opts *o, int timeout)
{
	struct ks_frame f;
	uint32_t flags;
	const char *why = NULL;
	int rc = sess_recv_expect(s, timeout, KS_OPEN, false, &f);
	if (rc)
		return rc;
	if (ks_dec_open(&f, &flags, &why))
		return sess_proto_fail(s, why);
	struct kvc_open_opts oo = {.no_create = !(flags & KS_OPEN_CREATE)};
	bool created = false;
	rc = kvc_open(o->store_path, &oo, &s->store, &created);
	if (rc)
		return sess_fail(s, KS_EXIT_STORE, "cannot open store %s: %s", o->store_path,
			    ks_store_open_error(rc));
	if (created)
		fprintf(stderr, "kvsync: created store %s\n", kvc_store_path(s->store));
	rc = sess_load_identity(s);
	if (rc)
		return rc;
	ks_enc_ident(sess_out(s), &s->self);
	return recv_ident(s, timeout);
}

/*
 * The bound a server applies to a push: its own, or the client's when that
 * is smaller.  A client asking for none (0) gets the server's: only the
 * server's operator can lift it (UINT64_MAX, which no clock reaches).
 */
static uint64_t skew_bound(uint64_t own_ms, uint64_t client_ms)
{
	uint64_t own = own_ms ? own_ms : KS_MAX_SKEW_DEFAULT_MS;
	uint64_t client = client_ms ? client_ms : UINT64_MAX;
	return client < own ? client : own;
}

/* The filter of the session @q opens: the FILTER frame that follows a REQ
 * flagged for one, or none. */
static int server_filter(struct ks_sess *s, const struct ks_req *q)
{
	ks_filter_free(s->filter_owned);
	s->filter_owned = NULL;
	s->filter = NULL;
	if (!(q->flags & KS_REQ_FILTER))
		return 0;
	struct ks_frame f;
	struct ks_filter *x = malloc(sizeof(*x));
	const char *why = NULL;
	if (!x)
		return sess_fail(s, KS_EXIT_STORE, "out of memory");
	int rc = sess_recv_expect(s, -1, KS_FILTER, false, &f);
	if (!rc && ks_dec_filter(&f, x, &why))
		rc = sess_proto_fail(s, why);
	if (!rc && ks_filter_dup(x, &s->filter_owned))
		rc = sess_fail(s, KS_EXIT_STORE, "out of memory");
	free(x);
	return rc ? rc : sess_set_filter(s, s->filter_owned);
}

/* What is left until @deadline (-1: none) as a timeout for ks_conn_recv. */
static int left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - ks_mono_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * Everything before the client is known: its magic, HELLO and token proof.
 * One deadline covers all of it, however the client spreads its bytes, so
 * a client that trickles its greeting holds a connection for at most
 * login_grace_ms (sshd's LoginGraceTime).
 */
static int server_greet(struct ks_sess *s, const struct ks_server_opts *o)
{
	int64_t deadline = o->login_grace_ms > 0 ? ks_mono_ms() + o->login_grace_ms : -1;
	char junk[100];
	int rc = ks_conn_read_magic(s->conn, left_ms(deadline), junk, sizeof(junk));
	if (rc == -EBADMSG)
		return sess_fail(s, KS_EXIT_PROTO,
			    "protocol error: the client did not greet as kvsync (it sent '%s')", junk);
	if (rc == -ECONNRESET)
		return sess_fail(s, KS_EXIT_PROTO, "connection closed before the protocol started");
	if (rc == -ETIMEDOUT)
		return sess_fail(s, KS_EXIT_PROTO, "the client did not finish the handshake within %d ms",
			    o->login_grace_ms);
	if (rc)
		return sess_conn_fail(s, rc);
	struct ks_hello ch;
	uint8_t nonce[KS_NONCE_LEN];
	rc = recv_hello(s, left_ms(deadline), &ch);
	if (!rc) {
		uint32_t hflags = KS_HELLO_SERVER | (o->token_key ? KS_HELLO_TOKEN : 0) |
				  (ch.flags & KS_HELLO_COMPRESS);
		rc = send_hello(s, hflags, nonce);
		if (rc)
			rc = sess_conn_fail(s, rc);
	}
	if (!rc)
		rc = server_auth(s, o, &ch, nonce, left_ms(deadline));
	/* -z: compressed both ways after our last handshake frame. */
	if (!rc && (ch.flags & KS_HELLO_COMPRESS))
		rc = start_compress(s);
	if (rc && s->code == KS_EXIT_PROTO && deadline >= 0 && ks_mono_ms() >= deadline) {
		/* Not "stopped answering": it may have been sending all along. */
		s->code = 0;
		rc = sess_fail(s, KS_EXIT_PROTO, "the client did not finish the handshake within %d ms",
			  o->login_grace_ms);
	}
	return rc;
}

int ks_server_run(struct ks_conn *conn, const struct ks_server_opts *o)
{
	struct ks_sess sess;
	struct ks_sess *s = &sess;
	memset(s, 0, sizeof(*s));
	s->conn = conn;
	s->peer_word = "client";
	s->stop_fd = o->stop_fd;
	ks_conn_set_stop_fd(conn, o->stop_fd);
	ks_conn_set_bwlimit(conn, o->bwlimit);
	/* Writes in the handshake are tiny; a client that does not even
	 * read those gets no more time than one that does not send. */
	ks_conn_set_timeout(conn, o->login_grace_ms);
	int rc;
	if (o->refuse) {
		/* No HELLO: the client's first frame is the ERROR, whatever
		 * it would have made of our greeting (a client holding a
		 * token would take a HELLO without one for an impostor). */
		ks_enc_magic(sess_out(s));
		s->greeted = true;
		rc = sess_fail(s, o->refuse_code ? o->refuse_code : KS_EXIT_AUTH, "%s", o->refuse);
		goto out;
	}
	/* A client that gave up early may have said why: a failed write
	 * is reported only if reading finds nothing better.  The HELLO
	 * follows the client's, whose -z it answers. */
	send_magic(s);
	rc = server_greet(s, o);
	const char *busy = !rc && o->admit ? o->admit(o->admit_arg) : NULL;
	if (busy)
		rc = sess_fail(s, KS_EXIT_PROTO, "%s", busy);
	ks_conn_set_timeout(conn, o->timeout_ms);
	if (!rc)
		rc = server_open(s, o, -1);
	while (!rc) {
		struct ks_frame f;
		struct ks_req q;
		const char *why = NULL;
		rc = sess_recv_frame(s, -1, &f);
		if (rc)
			break;
		if (f.type == KS_BYE)
			break;
		if (f.type != KS_REQ) {
			rc = sess_unexpected(s, &f, "instead of REQ");
			break;
		}
		if (ks_dec_req(&f, &q, &why)) {
			rc = sess_proto_fail(s, why);
			break;
		}
		rc = server_filter(s, &q);
		if (rc)
			break;
		s->op = q.op;
		s->flags = q.flags;
		s->max_skew_ms = skew_bound(o->max_skew_ms, q.max_skew_ms);
		s->next_id = 0;
		if (q.op == KS_OP_PUSH)
			rc = sess_run_receiver(s);
		else if (q.op == KS_OP_PULL)
			rc = sess_run_sender(s);
		else
			rc = sess_run_check_responder(s);
		if (rc == 1)
			rc = 0; /* bye in the middle of a --watch */
		if (!rc && (q.flags & KS_REQ_WATCH))
			break;
	}
out:
	if (rc == -EINTR) {
		rc = 0;
	} else if (rc && s->code) {
		sess_tell_peer(s);
		if (!s->from_peer && !o->quiet) {
			if (o->peer_name)
				fprintf(stderr, "kvsync: %s: %s\n", o->peer_name, s->err);
			else
				fprintf(stderr, "kvsync: %s\n", s->err);
		}
	}
	ks_filter_free(s->filter_owned);
	kvc_close(s->store);
	ks_conn_close(conn);
	return rc ? (s->code ? s->code : KS_EXIT_PROTO) : KS_EXIT_OK;
}

int ks_resolve_store(const char *arg, char **ret_path)
{
	char buf[4096];
	ssize_t n = lgetxattr(arg, "user.kv.store", buf, sizeof(buf) - 1);
	char *p;
	if (n > 0) {
		buf[n] = 0;
		p = strdup(buf);
	} else {
		p = strdup(arg);
	}
	if (!p)
		return -ENOMEM;
	*ret_path = p;
	return 0;
}
