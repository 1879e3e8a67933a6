/*
 * sync_session: the protocol engine of kvsync (see sync_session.h and the
 * protocol section of docs/kvsync.md).
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
#include "session.h"

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

/* A differing range with at most this many records is settled by a key
 * list; a bigger one is cut into FANOUT pieces. */
#define LEAF_MAX 64u
#define FANOUT 16u
/* Digest questions in flight at once: enough to hide round trips. */
#define INFLIGHT_MAX 8u
#define POLL_MS 10
#define PING_MS 5000
#define WATCH_SILENCE_MS 60000

/* A record being received: key, metadata and value live in data[]. */
struct inrec {
	struct kvc_record rec;
	size_t key_len;
	size_t have; /* value bytes received so far */
	uint8_t outcome;
	uint8_t data[];
};

struct batch {
	struct inrec **v;
	size_t n, cap;
	size_t bytes;
	struct inrec *cur; /* still receiving its value; not in v */
};

/* A key range the digest driver still has to settle. */
struct drange {
	uint32_t id;
	uint64_t count;
	bool keylist; /* its key list was sent: waiting for KEYS_END */
	struct ks_range r;
	uint8_t buf[]; /* lo, then hi */
};

struct ks_sess {
	struct ks_conn *conn;
	kvc_store *store; /* opened by the server, lent to the client */
	struct ks_ident self, peer;
	bool client;
	const char *peer_word; /* how messages name the other side */
	int stop_fd;
	bool greeted; /* our magic (and HELLO) are out: frames may follow */
	/* the session running now */
	uint8_t op;
	uint32_t flags; /* enum ks_req_flags */
	uint64_t max_skew_ms;
	uint8_t plan_mode;
	uint64_t plan_after;
	uint32_t out_n;      /* records in the batch being sent */
	uint64_t out_bytes;
	uint32_t next_id;
	struct ks_stats st;
	/* presentation, client only */
	FILE *out;
	bool local_is_src, rsh, progress;
	struct kt_progress prog;
	/* the first failure */
	int code;
	bool from_peer; /* the failure is the peer's, reported by it */
	char err[768];
};

struct ks_client {
	struct ks_sess s;
	struct ks_client_opts o;
};

/* --------------------------------------------------------------- helpers */

static int exit_errno(int code)
{
	switch (code) {
	case KS_EXIT_USAGE: return -EINVAL;
	case KS_EXIT_STORE: return -EIO;
	case KS_EXIT_AUTH: return -EACCES;
	default: return -EPROTO;
	}
}

/* Record the first failure; later ones are its consequences. */
__attribute__((format(printf, 3, 4)))
static int fail(struct ks_sess *s, int code, const char *fmt, ...)
{
	if (!s->code) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->err, sizeof(s->err), fmt, ap);
		va_end(ap);
		s->code = code;
	}
	return exit_errno(code);
}

static int proto_fail(struct ks_sess *s, const char *why)
{
	return fail(s, KS_EXIT_PROTO, "protocol error: %s", why ? why : "malformed frame");
}

static int unexpected(struct ks_sess *s, const struct ks_frame *f, const char *when)
{
	if (!strcmp(ks_type_name(f->type), "unknown"))
		return fail(s, KS_EXIT_PROTO, "protocol error: unknown frame type %u %s",
			    f->type, when);
	return fail(s, KS_EXIT_PROTO, "protocol error: unexpected %s frame %s",
		    ks_type_name(f->type), when);
}

static int store_fail(struct ks_sess *s, int rc, const char *what)
{
	return fail(s, KS_EXIT_STORE, "%s: %s", what, strerror(-rc));
}

static void printable(char *out, size_t size, const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t j = 0;
	for (size_t i = 0; i < n && j + 1 < size; i++)
		out[j++] = c[i] >= 0x20 && c[i] != 0x7f ? (char)c[i] : '?';
	out[j] = 0;
}

static int peer_error(struct ks_sess *s, const struct ks_frame *f)
{
	struct ks_error e;
	const char *why = NULL;
	if (ks_dec_error(f, &e, &why))
		return proto_fail(s, why);
	char msg[KS_ERRMSG_MAX + 1];
	printable(msg, sizeof(msg), e.msg, e.msg_len);
	int rc = fail(s, e.code, "%s: %s", s->peer_word, msg);
	if (s->code == e.code)
		s->from_peer = true;
	return rc;
}

/* The peer went away while we wrote: it may have said why first. */
static int peer_parting(struct ks_sess *s)
{
	struct ks_frame f;
	for (int i = 0; i < 1024; i++) {
		if (ks_conn_recv(s->conn, 1000, &f))
			return 0;
		if (f.type == KS_ERROR)
			return peer_error(s, &f);
	}
	return 0;
}

static int conn_fail(struct ks_sess *s, int rc)
{
	switch (rc) {
	case -EINTR:
		return -EINTR;
	case -EPROTO:
		return proto_fail(s, ks_conn_why(s->conn));
	case -ETIMEDOUT:
		return fail(s, KS_EXIT_PROTO, "the %s stopped answering (timed out)", s->peer_word);
	case -EPIPE:
		/* The peer went away while we wrote: it may have said why. */
		rc = peer_parting(s);
		return rc ? rc : fail(s, KS_EXIT_PROTO, "connection closed by the %s", s->peer_word);
	case -ECONNRESET:
		return fail(s, KS_EXIT_PROTO, "connection closed by the %s", s->peer_word);
	default:
		return fail(s, KS_EXIT_PROTO, "connection error: %s", strerror(-rc));
	}
}

static int flush(struct ks_sess *s)
{
	int rc = ks_conn_flush(s->conn);
	return rc ? conn_fail(s, rc) : 0;
}

static int maybe_flush(struct ks_sess *s)
{
	int rc = ks_conn_maybe_flush(s->conn);
	return rc ? conn_fail(s, rc) : 0;
}

static struct ks_wbuf *out(struct ks_sess *s)
{
	return ks_conn_out(s->conn);
}

/* The next frame that is not a PING; an ERROR from the peer becomes our
 * failure. */
static int recv_frame(struct ks_sess *s, int timeout_ms, struct ks_frame *f)
{
	for (;;) {
		int rc = ks_conn_recv(s->conn, timeout_ms, f);
		if (rc)
			return conn_fail(s, rc);
		if (f->type == KS_ERROR)
			return peer_error(s, f);
		if (f->type != KS_PING)
			return 0;
		if (ks_dec_empty(f, NULL))
			return proto_fail(s, "PING with a payload");
	}
}

/*
 * Receive the next frame, which must be of @type; with @bye_ends, a BYE
 * instead (a client ending the connection between sessions) returns 1.
 * @return 0, 1 (BYE) or the failure
 */
static int recv_expect(struct ks_sess *s, int timeout_ms, uint8_t type, bool bye_ends,
		       struct ks_frame *f)
{
	int rc = recv_frame(s, timeout_ms, f);
	if (rc)
		return rc;
	if (bye_ends && f->type == KS_BYE)
		return 1;
	if (f->type != type) {
		char when[32];
		snprintf(when, sizeof(when), "instead of %s", ks_type_name(type));
		return unexpected(s, f, when);
	}
	return 0;
}

/* Tell the peer why we end the connection, unless it told us. */
static void tell_peer(struct ks_sess *s)
{
	/* Before our greeting, an ERROR frame would read as garbage. */
	if (!s->code || s->from_peer || !s->conn || !s->greeted)
		return;
	ks_enc_error(out(s), (uint8_t)s->code, s->err);
	ks_conn_flush(s->conn);
}

static void print_key(FILE *f, const char *prefix, const uint8_t *key, size_t n,
		      const char *suffix)
{
	/* --watch --both prints from two threads: keep each line whole. */
	flockfile(f);
	fputs(prefix, f);
	for (size_t i = 0; i < n; i++) {
		if (key[i] < 0x20 || key[i] == 0x7f || key[i] == '\\')
			fprintf(f, "\\x%02x", key[i]);
		else
			putc(key[i], f);
	}
	fputs(suffix, f);
	putc('\n', f);
	funlockfile(f);
}

static void progress(struct ks_sess *s, bool final)
{
	if (!s->progress)
		return;
	if (final)
		kt_progress_end(&s->prog);
	else
		kt_progress_update(&s->prog, s->st.records);
}

static void note_outcome(struct ks_sess *s, uint8_t outcome, const uint8_t *key, size_t n)
{
	if (!s->client || !(s->flags & KS_REQ_VERBOSE))
		return;
	static const char *const sym[] = {"= ", "+ ", "- "};
	print_key(s->out, sym[outcome], key, n, "");
}

static int load_identity(struct ks_sess *s)
{
	struct kvc_identity id;
	kvc_store_identity(s->store, &id);
	s->self.node = id.node_id;
	s->self.epoch = id.epoch;
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (!rc) {
		rc = kvc_feed_head(txn, &s->self.head);
		if (!rc)
			rc = kvc_gc_horizon(txn, &s->self.horizon);
		kvc_txn_abort(txn);
	}
	if (rc)
		return store_fail(s, rc, "cannot read the store's feed");
	if (s->self.horizon > s->self.head)
		s->self.horizon = s->self.head;
	return 0;
}

/* ---------------------------------------------------------------- sender */

static int end_batch(struct ks_sess *s, bool has_wm, uint64_t wm)
{
	if (!s->out_n && !has_wm)
		return 0;
	ks_enc_batch_end(out(s), has_wm, wm);
	s->out_n = 0;
	s->out_bytes = 0;
	return flush(s);
}

static bool batch_full(const struct ks_sess *s)
{
	return s->out_n >= KS_BATCH_RECORDS || s->out_bytes >= KS_BATCH_BYTES;
}

/*
 * Encode one record, value and all, without writing: the caller holds a
 * read transaction (the value points into it) and must end it before a
 * write that may wait for the peer (see feed_batch).  The buffer thus
 * holds at most one record past KS_FLUSH_AT, 25 MiB at worst.
 */
static void encode_record(struct ks_sess *s, const void *key, size_t key_len,
			  const struct kvc_record *rec)
{
	size_t first = rec->value_len < KS_CHUNK_MAX ? rec->value_len : KS_CHUNK_MAX;
	ks_enc_rec(out(s), key, key_len, rec, first);
	for (size_t off = first; off < rec->value_len;) {
		size_t n = rec->value_len - off;
		if (n > KS_CHUNK_MAX)
			n = KS_CHUNK_MAX;
		ks_enc_data(out(s), (const uint8_t *)rec->value + off, n);
		off += n;
	}
	s->out_n++;
	s->out_bytes += key_len + rec->value_len + rec->metadata_len + 64;
	s->st.records++;
	progress(s, false);
}

/* What the receiver says about the records it got. */
static int sender_input(struct ks_sess *s, const struct ks_frame *f)
{
	const char *why = NULL;
	uint64_t a, i;
	if (f->type == KS_ACK) {
		if (ks_dec_counts(f, &a, &i, &why))
			return proto_fail(s, why);
		if (s->client) {
			s->st.applied += a;
			s->st.ignored += i;
			progress(s, false);
		}
		return 0;
	}
	if (f->type == KS_RESULT) {
		uint8_t o;
		const uint8_t *key;
		size_t n;
		if (ks_dec_result(f, &o, &key, &n, &why))
			return proto_fail(s, why);
		if (s->client && o == KS_OUT_TOMBSTONE)
			s->st.tombstones++;
		note_outcome(s, o, key, n);
		return 0;
	}
	if (f->type == KS_BYE && !s->client)
		return 1;
	return unexpected(s, f, "from the receiver");
}

/* Handle whatever the receiver sent that is already here.
 * @return 0, 1 (the client said bye), or -errno */
static int sender_drain(struct ks_sess *s)
{
	for (;;) {
		int rc = ks_conn_wait(s->conn, 0);
		if (rc == 0)
			return 0;
		if (rc < 0)
			return conn_fail(s, rc);
		struct ks_frame f;
		rc = recv_frame(s, -1, &f);
		if (rc)
			return rc;
		rc = sender_input(s, &f);
		if (rc)
			return rc;
		if (s->client && s->out && f.type == KS_ACK)
			fflush(s->out);
	}
}

/*
 * One batch of the feed after *after.  No read transaction is held while
 * writing to the peer: a peer that stops reading would otherwise pin the
 * transaction's snapshot (and the pages it keeps from reuse) until the
 * I/O timeout, or for ever without one.  So each time enough is buffered
 * to be worth a write, the transaction ends, the write happens, and a new
 * one resumes the feed after the last sequence encoded.  Records that
 * change in between come again later in the feed, as across batches.
 * @return records sent, or -errno
 */
static int64_t feed_batch(struct ks_sess *s, uint64_t *after)
{
	uint64_t last = *after;
	int64_t n = 0;
	bool more = true;
	int rc = 0;
	while (more && !batch_full(s)) {
		kvc_txn *txn;
		rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
		if (rc)
			return store_fail(s, rc, "cannot read the change feed");
		while (!batch_full(s) && !ks_conn_should_flush(s->conn)) {
			const void *key;
			size_t key_len;
			struct kvc_record rec;
			rc = kvc_feed_next(txn, last, 0, &key, &key_len, &rec);
			if (rc == -ENOENT) {
				rc = 0;
				more = false;
				break;
			}
			if (rc) {
				rc = store_fail(s, rc, "cannot read the change feed");
				break;
			}
			encode_record(s, key, key_len, &rec);
			last = rec.seq;
			n++;
		}
		kvc_txn_abort(txn);
		if (!rc)
			rc = maybe_flush(s);
		if (rc)
			return rc;
	}
	if (n) {
		rc = end_batch(s, true, last);
		if (rc)
			return rc;
	}
	*after = last;
	return n;
}

static int drive_digest(struct ks_sess *s, uint8_t kind);

/* @return 0, 1 (the client said bye), -EINTR (stop), or -errno */
static int run_sender(struct ks_sess *s)
{
	struct ks_frame f;
	struct ks_start st;
	const char *why = NULL;
	int rc = recv_expect(s, -1, KS_START, !s->client, &f);
	if (rc)
		return rc;
	if (ks_dec_start(&f, &st, &why))
		return proto_fail(s, why);
	rc = load_identity(s);
	if (rc)
		return rc;
	uint64_t head = s->self.head;
	bool digest = (s->flags & KS_REQ_FULL) ||
		      (st.watermark && st.watermark < s->self.horizon) ||
		      st.watermark > head ||
		      (!st.watermark && !(st.flags & KS_START_EMPTY) && head);
	struct ks_plan plan = {digest ? KS_PLAN_DIGEST : KS_PLAN_FEED, st.watermark, head};
	s->plan_mode = plan.mode;
	s->plan_after = plan.after;
	ks_enc_plan(out(s), &plan);
	rc = flush(s);
	if (rc)
		return rc;
	s->out_n = 0;
	s->out_bytes = 0;
	uint64_t after = st.watermark;
	if (digest) {
		rc = drive_digest(s, KS_DIGEST_ALL);
		if (!rc)
			rc = end_batch(s, head > 0, head);
		if (rc)
			return rc;
		after = head;
	}
	bool watch = s->flags & KS_REQ_WATCH;
	int64_t last_sent = ks_mono_ms();
	for (;;) {
		int64_t n = feed_batch(s, &after);
		if (n < 0)
			return (int)n;
		rc = sender_drain(s);
		if (rc)
			return rc;
		if (n) {
			last_sent = ks_mono_ms();
			continue;
		}
		if (!watch)
			break;
		if (ks_mono_ms() - last_sent >= PING_MS) {
			ks_enc_empty(out(s), KS_PING);
			last_sent = ks_mono_ms();
		}
		rc = ks_conn_wait(s->conn, POLL_MS);
		if (rc < 0)
			return conn_fail(s, rc);
	}
	ks_enc_u64(out(s), KS_DONE, after);
	for (;;) {
		rc = recv_frame(s, -1, &f);
		if (rc)
			return rc;
		if (f.type == KS_FIN) {
			uint64_t a, i;
			if (ks_dec_counts(&f, &a, &i, &why))
				return proto_fail(s, why);
			return 0;
		}
		rc = sender_input(s, &f);
		if (rc)
			return rc;
	}
}

/* ------------------------------------------------------- digest driver */

static struct drange *drange_new(const uint8_t *lo, size_t lo_len, const uint8_t *hi,
				 size_t hi_len)
{
	struct drange *r = calloc(1, sizeof(*r) + lo_len + hi_len + 1);
	if (!r)
		return NULL;
	if (lo_len)
		memcpy(r->buf, lo, lo_len);
	r->r.lo = r->buf;
	r->r.lo_len = lo_len;
	if (hi) {
		memcpy(r->buf + lo_len, hi, hi_len);
		r->r.hi = r->buf + lo_len;
		r->r.hi_len = hi_len;
	}
	return r;
}

struct rstack {
	struct drange **v;
	size_t n, cap;
};

static int rstack_push(struct rstack *st, struct drange *r)
{
	struct drange **v = kt_array_grow(st->v, sizeof(*v), st->n + 1, &st->cap, 64);
	if (!v)
		return -ENOMEM;
	st->v = v;
	st->v[st->n++] = r;
	return 0;
}

static void rstack_release(struct rstack *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->v[i]);
	free(st->v);
}

struct cuts {
	struct drange *parent;
	struct rstack pieces; /* in ascending order */
	const uint8_t *lo;
	size_t lo_len;
};

static int cut_at(void *arg, const void *key, size_t key_len)
{
	struct cuts *c = arg;
	struct drange *r = drange_new(c->lo, c->lo_len, key, key_len);
	if (!r || rstack_push(&c->pieces, r)) {
		free(r);
		return -ENOMEM;
	}
	c->lo = r->r.hi;
	c->lo_len = r->r.hi_len;
	return 0;
}

/* Cut @r into pieces and push them so the lowest comes off first. */
static int split_range(struct ks_sess *s, uint8_t kind, struct drange *r, struct rstack *todo)
{
	struct cuts c = {r, {NULL, 0, 0}, r->r.lo, r->r.lo_len};
	int rc = ks_range_split(s->store, kind, &r->r, kvc_now_ns(), r->count, FANOUT, cut_at, &c);
	struct drange *last = NULL;
	if (!rc) {
		last = drange_new(c.lo, c.lo_len, r->r.hi, r->r.hi_len);
		rc = last ? rstack_push(&c.pieces, last) : -ENOMEM;
		if (rc)
			free(last);
	}
	while (!rc && c.pieces.n) {
		rc = rstack_push(todo, c.pieces.v[c.pieces.n - 1]);
		if (!rc)
			c.pieces.n--;
	}
	rstack_release(&c.pieces);
	return rc ? store_fail(s, rc, "cannot split a key range") : 0;
}

struct listing {
	struct ks_wbuf *b;
	struct ks_list l;
	bool overflow;
};

static int list_one(void *arg, const struct ks_key_ent *e)
{
	struct listing *li = arg;
	if (!ks_list_room(li->b, &li->l, e->key_len)) {
		li->overflow = true;
		return 1;
	}
	return ks_list_add_key(li->b, &li->l, e);
}

/* Send the key list of a small range.  @return 0, 1 (it grew too big for
 * one list: split it instead), or -errno */
static int send_keylist(struct ks_sess *s, uint8_t kind, struct drange *r)
{
	struct ks_wbuf *b = out(s);
	size_t mark = b->len;
	struct listing li = {b, {0, 0, 0, 0}, false};
	ks_list_begin_keylist(b, &li.l, r->id, kind, &r->r);
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (!rc) {
		rc = ks_range_walk(txn, kind, &r->r, kvc_now_ns(), list_one, &li);
		kvc_txn_abort(txn);
	}
	if (li.overflow) {
		b->len = mark;
		return 1;
	}
	if (rc)
		return store_fail(s, rc, "cannot list a key range");
	ks_list_end(b, &li.l);
	r->keylist = true;
	return maybe_flush(s);
}

/* The records the receiver asked for; as in feed_batch, no read
 * transaction is held across a write. */
static int send_wanted(struct ks_sess *s, struct ks_list_rd *l)
{
	const uint8_t *key;
	size_t key_len;
	bool more = ks_want_next(l, &key, &key_len);
	int rc = 0;
	while (more) {
		kvc_txn *txn;
		rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
		if (rc)
			return store_fail(s, rc, "cannot read the store");
		for (; more && !batch_full(s) && !ks_conn_should_flush(s->conn);
		     more = ks_want_next(l, &key, &key_len)) {
			struct kvc_record rec;
			rc = kvc_get(txn, key, key_len, KVC_GET_TOMBSTONES | KVC_GET_EXPIRED, &rec);
			if (rc == -ENOENT) {
				rc = 0; /* gone since the list was made */
				continue;
			}
			if (rc == -EINVAL || rc == -ENAMETOOLONG) {
				rc = proto_fail(s, "the receiver asked for an invalid key");
				break;
			}
			if (rc) {
				rc = store_fail(s, rc, "cannot read the store");
				break;
			}
			encode_record(s, key, key_len, &rec);
		}
		kvc_txn_abort(txn);
		if (!rc)
			rc = batch_full(s) ? end_batch(s, false, 0) : maybe_flush(s);
		if (rc)
			return rc;
	}
	return 0;
}

static const char *state_word(uint8_t st)
{
	switch (st) {
	case KS_STATE_LIVE: return "live";
	case KS_STATE_TOMBSTONE: return "deleted";
	case KS_STATE_EXPIRED: return "expired";
	default: return "absent";
	}
}

/* Our own state of @key, for the --check report, read through @txn when
 * the caller holds one (a second transaction in this thread could wait
 * forever on a map resize: kvcore.h), else in a transaction of its own. */
static uint8_t local_state(struct ks_sess *s, kvc_txn *txn, const uint8_t *key, size_t key_len)
{
	kvc_txn *own = NULL;
	uint8_t st = KS_STATE_ABSENT;
	if (!txn && kvc_txn_begin(s->store, KVC_TXN_READ, &own))
		return st;
	struct kvc_record rec;
	if (!kvc_get(txn ? txn : own, key, key_len, KVC_GET_TOMBSTONES | KVC_GET_EXPIRED, &rec))
		st = ks_record_state(&rec, kvc_now_ns());
	kvc_txn_abort(own);
	return st;
}

static void report_diff(struct ks_sess *s, const struct ks_diff_ent *d)
{
	uint8_t mine = d->a_state;
	if (mine != KS_STATE_LIVE)
		mine = local_state(s, NULL, d->key, d->key_len);
	uint8_t src = s->local_is_src ? mine : d->b_state;
	uint8_t dst = s->local_is_src ? d->b_state : mine;
	char what[96];
	if (src == KS_STATE_LIVE && dst == KS_STATE_LIVE) {
		uint64_t sh = s->local_is_src ? d->a_hlc : d->b_hlc;
		uint64_t so = s->local_is_src ? d->a_origin : d->b_origin;
		uint64_t dh = s->local_is_src ? d->b_hlc : d->a_hlc;
		uint64_t dor = s->local_is_src ? d->b_origin : d->a_origin;
		bool src_newer = kvc_version_cmp(sh, so, dh, dor) > 0;
		snprintf(what, sizeof(what), " (SRC: %s, DST: %s)", src_newer ? "newer" : "older",
			 src_newer ? "older" : "newer");
	} else {
		snprintf(what, sizeof(what), " (SRC: %s, DST: %s)", state_word(src),
			 state_word(dst));
	}
	s->st.differ++;
	print_key(s->out, "* ", d->key, d->key_len, what);
}

static struct drange *take_inflight(struct drange **fl, size_t *n, uint32_t id, bool remove)
{
	for (size_t i = 0; i < *n; i++) {
		struct drange *r = fl[i];
		if (r->id != id)
			continue;
		if (remove)
			fl[i] = fl[--*n];
		return r;
	}
	return NULL;
}

/*
 * The side holding the ranges' split points asks, range by range, whether
 * the other side's digest agrees; a differing range is cut until small,
 * then settled by a key list.  Ranges are handled depth first so what is
 * pending stays small (about FANOUT per level of depth).
 */
static int drive_digest(struct ks_sess *s, uint8_t kind)
{
	struct rstack todo = {NULL, 0, 0};
	struct drange *fl[INFLIGHT_MAX];
	size_t nfl = 0;
	const char *why = NULL;
	int rc = 0;
	struct drange *root = drange_new(NULL, 0, NULL, 0);
	if (!root || rstack_push(&todo, root)) {
		free(root);
		return fail(s, KS_EXIT_STORE, "out of memory");
	}
	while (!rc && (todo.n || nfl)) {
		while (!rc && nfl < INFLIGHT_MAX && todo.n) {
			struct drange *r = todo.v[--todo.n];
			struct ks_digest d = {.kind = kind, .range = r->r};
			rc = ks_digest_range(s->store, kind, &r->r, kvc_now_ns(), &d.count, d.digest);
			if (rc) {
				rc = store_fail(s, rc, "cannot digest a key range");
				free(r);
				break;
			}
			if (kind == KS_DIGEST_ALL && d.count == 0) {
				free(r); /* nothing here the receiver could lack */
				continue;
			}
			r->id = d.id = ++s->next_id;
			r->count = d.count;
			ks_enc_digest(out(s), &d);
			fl[nfl++] = r;
			rc = maybe_flush(s);
		}
		if (rc || !nfl)
			continue;
		struct ks_frame f;
		rc = recv_frame(s, -1, &f);
		if (rc)
			break;
		if (f.type == KS_DIGEST_R) {
			struct ks_digest_r dr;
			if (ks_dec_digest_r(&f, &dr, &why)) {
				rc = proto_fail(s, why);
				break;
			}
			struct drange *r = take_inflight(fl, &nfl, dr.id, false);
			if (!r || r->keylist) {
				rc = proto_fail(s, "DIGEST_R for a range not asked about");
				break;
			}
			if (dr.same) {
				take_inflight(fl, &nfl, dr.id, true);
				free(r);
				continue;
			}
			rc = r->count <= LEAF_MAX ? send_keylist(s, kind, r) : 1;
			if (rc == 1) {
				take_inflight(fl, &nfl, dr.id, true);
				rc = split_range(s, kind, r, &todo);
				free(r);
			}
		} else if (f.type == KS_KEYS || f.type == KS_KEYS_END) {
			struct ks_list_rd l;
			uint32_t id;
			if (f.type == KS_KEYS ? ks_dec_keys(&f, &l, &why) : ks_dec_keys_end(&f, &id, &why)) {
				rc = proto_fail(s, why);
				break;
			}
			if (f.type == KS_KEYS)
				id = l.id;
			struct drange *r = take_inflight(fl, &nfl, id, f.type == KS_KEYS_END);
			if (!r || !r->keylist) {
				rc = proto_fail(s, "KEYS for a range without a key list");
				break;
			}
			if (f.type == KS_KEYS_END) {
				free(r);
			} else if (kind == KS_DIGEST_ALL) {
				if (l.kind != KS_KEYS_WANT) {
					rc = proto_fail(s, "KEYS of the wrong kind");
					break;
				}
				rc = send_wanted(s, &l);
			} else {
				struct ks_diff_ent d;
				if (l.kind != KS_KEYS_DIFF) {
					rc = proto_fail(s, "KEYS of the wrong kind");
					break;
				}
				while (ks_diff_next(&l, &d))
					report_diff(s, &d);
			}
		} else if (kind == KS_DIGEST_ALL) {
			rc = sender_input(s, &f);
		} else {
			rc = unexpected(s, &f, "during the digest comparison");
		}
	}
	for (size_t i = 0; i < nfl; i++)
		free(fl[i]);
	rstack_release(&todo);
	return rc;
}

/* ----------------------------------------------------- digest responder */

static int answer_digest(struct ks_sess *s, const struct ks_frame *f, uint8_t kind)
{
	struct ks_digest d;
	const char *why = NULL;
	if (ks_dec_digest(f, &d, &why))
		return proto_fail(s, why);
	if (d.kind != kind)
		return proto_fail(s, "DIGEST of the wrong kind for this session");
	struct ks_digest_r r = {d.id, 0, 0};
	uint8_t mine[KS_DIGEST_LEN];
	int rc = ks_digest_range(s->store, kind, &d.range, kvc_now_ns(), &r.count, mine);
	if (rc)
		return store_fail(s, rc, "cannot digest a key range");
	r.same = r.count == d.count && !memcmp(mine, d.digest, KS_DIGEST_LEN);
	ks_enc_digest_r(out(s), &r);
	return maybe_flush(s);
}

/* Answer entries go out in KEYS frames, as many as they need. */
struct answer {
	struct ks_sess *s;
	struct ks_list l;
	uint32_t id;
	uint8_t kind;
	bool open;
	/* check: the key list being merged with our own records, read in txn */
	kvc_txn *txn;
	struct ks_list_rd theirs;
	struct ks_key_ent next;
	bool have_next;
};

static int answer_room(struct answer *a, size_t key_len)
{
	struct ks_wbuf *b = out(a->s);
	if (a->open && ks_list_room(b, &a->l, key_len))
		return 0;
	if (a->open) {
		ks_list_end(b, &a->l);
		int rc = maybe_flush(a->s);
		if (rc)
			return rc;
	}
	ks_list_begin_keys(b, &a->l, a->id, a->kind);
	a->open = true;
	return 0;
}

static int answer_end(struct answer *a)
{
	struct ks_wbuf *b = out(a->s);
	if (a->open)
		ks_list_end(b, &a->l);
	ks_enc_keys_end(b, a->id);
	return maybe_flush(a->s);
}

static int want_keys(struct ks_sess *s, struct ks_list_rd *l)
{
	struct answer a = {.s = s, .id = l->id, .kind = KS_KEYS_WANT};
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (rc)
		return store_fail(s, rc, "cannot read the store");
	struct ks_key_ent e;
	while (!rc && ks_keylist_next(l, &e)) {
		struct kvc_record mine;
		int g = kvc_get(txn, e.key, e.key_len, KVC_GET_TOMBSTONES | KVC_GET_EXPIRED, &mine);
		bool want = false;
		if (g == -ENOENT)
			want = e.state != KS_STATE_EXPIRED; /* kvc_apply would drop it */
		else if (g == -EINVAL || g == -ENAMETOOLONG)
			want = false; /* not a key this store can hold */
		else if (g)
			rc = store_fail(s, g, "cannot read the store");
		else
			want = kvc_version_cmp(e.hlc, e.origin, mine.hlc, mine.origin) > 0;
		if (rc || !want)
			continue;
		rc = answer_room(&a, e.key_len);
		if (!rc)
			rc = ks_list_add_want(out(s), &a.l, e.key, e.key_len);
	}
	kvc_txn_abort(txn);
	return rc ? rc : answer_end(&a);
}

static int diff_add(struct answer *a, const struct ks_diff_ent *d)
{
	int rc = answer_room(a, d->key_len);
	return rc ? rc : ks_list_add_diff(out(a->s), &a->l, d);
}

/* Their live key with no live counterpart here. */
static int diff_theirs(struct answer *a, const struct ks_key_ent *e)
{
	struct ks_diff_ent d = {e->key, e->key_len, KS_STATE_LIVE, KS_STATE_ABSENT,
				e->hlc, e->origin, 0, 0};
	d.b_state = local_state(a->s, a->txn, e->key, e->key_len);
	return diff_add(a, &d);
}

static int merge_one(void *arg, const struct ks_key_ent *mine)
{
	struct answer *a = arg;
	int rc = 0;
	while (!rc && a->have_next &&
	       ks_key_cmp(a->next.key, a->next.key_len, mine->key, mine->key_len) < 0) {
		rc = diff_theirs(a, &a->next);
		a->have_next = ks_keylist_next(&a->theirs, &a->next);
	}
	if (rc)
		return rc;
	if (a->have_next && !ks_key_cmp(a->next.key, a->next.key_len, mine->key, mine->key_len)) {
		bool same = a->next.hlc == mine->hlc && a->next.origin == mine->origin;
		struct ks_diff_ent d = {mine->key, mine->key_len, KS_STATE_LIVE, KS_STATE_LIVE,
					a->next.hlc, a->next.origin, mine->hlc, mine->origin};
		a->have_next = ks_keylist_next(&a->theirs, &a->next);
		return same ? 0 : diff_add(a, &d);
	}
	/* Live here only: the other side looks its own state up. */
	struct ks_diff_ent d = {mine->key, mine->key_len, KS_STATE_ABSENT, KS_STATE_LIVE,
				0, 0, mine->hlc, mine->origin};
	return diff_add(a, &d);
}

static int diff_keys(struct ks_sess *s, struct ks_list_rd *l)
{
	struct answer a = {.s = s, .id = l->id, .kind = KS_KEYS_DIFF, .theirs = *l};
	a.have_next = ks_keylist_next(&a.theirs, &a.next);
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &a.txn);
	if (rc)
		return store_fail(s, rc, "cannot read the store");
	rc = ks_range_walk(a.txn, KS_DIGEST_LIVE, &l->range, kvc_now_ns(), merge_one, &a);
	if (rc < 0 && !s->code)
		rc = store_fail(s, rc, "cannot list a key range");
	while (!rc && a.have_next) {
		rc = diff_theirs(&a, &a.next);
		a.have_next = ks_keylist_next(&a.theirs, &a.next);
	}
	kvc_txn_abort(a.txn);
	return rc ? rc : answer_end(&a);
}

static int answer_keylist(struct ks_sess *s, const struct ks_frame *f, uint8_t kind)
{
	struct ks_list_rd l;
	const char *why = NULL;
	if (ks_dec_keylist(f, &l, &why))
		return proto_fail(s, why);
	if (l.kind != kind)
		return proto_fail(s, "KEYLIST of the wrong kind for this session");
	return kind == KS_DIGEST_ALL ? want_keys(s, &l) : diff_keys(s, &l);
}

/* -------------------------------------------------------------- receiver */

static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i]);
	b->n = 0;
	b->bytes = 0;
	free(b->cur);
	b->cur = NULL;
}

static void batch_release(struct batch *b)
{
	batch_clear(b);
	free(b->v);
	b->v = NULL;
	b->cap = 0;
}

static int batch_add(struct ks_sess *s, struct batch *b, struct inrec *r)
{
	struct inrec **v = kt_array_grow(b->v, sizeof(*v), b->n + 1, &b->cap, 64);
	if (!v)
		return fail(s, KS_EXIT_STORE, "out of memory");
	b->v = v;
	b->v[b->n++] = r;
	b->bytes += r->key_len + r->rec.value_len + r->rec.metadata_len + 64;
	s->st.records++;
	progress(s, false);
	return 0;
}

static int recv_rec(struct ks_sess *s, struct batch *b, const struct ks_frame *f)
{
	struct ks_rec x;
	const char *why = NULL;
	if (b->cur)
		return proto_fail(s, "a record began before the previous value was complete");
	/* What a sender may put in one batch, plus the record that closes it. */
	if (b->n >= KS_BATCH_RECORDS || b->bytes >= KS_BATCH_BYTES)
		return proto_fail(s, "batch over the size limits");
	if (ks_dec_rec(f, &x, &why))
		return proto_fail(s, why);
	if (kvc_key_check(x.key, x.key_len))
		return proto_fail(s, "record with an invalid key");
	struct inrec *r = malloc(sizeof(*r) + x.key_len + x.rec.metadata_len + x.rec.value_len);
	if (!r)
		return fail(s, KS_EXIT_STORE, "out of memory for a value of %zu bytes",
			    x.rec.value_len);
	r->rec = x.rec;
	r->key_len = x.key_len;
	r->outcome = KS_OUT_IGNORED;
	memcpy(r->data, x.key, x.key_len);
	uint8_t *meta = r->data + x.key_len;
	if (x.rec.metadata_len)
		memcpy(meta, x.rec.metadata, x.rec.metadata_len);
	r->rec.metadata = x.rec.metadata_len ? (const char *)meta : NULL;
	uint8_t *value = meta + x.rec.metadata_len;
	if (x.data_len)
		memcpy(value, x.data, x.data_len);
	r->rec.value = value;
	r->have = x.data_len;
	if (r->have < r->rec.value_len) {
		b->cur = r;
		return 0;
	}
	return batch_add(s, b, r);
}

static int recv_data(struct ks_sess *s, struct batch *b, const struct ks_frame *f)
{
	const uint8_t *data;
	size_t n;
	const char *why = NULL;
	if (!b->cur)
		return proto_fail(s, "DATA without a record");
	if (ks_dec_data(f, &data, &n, &why))
		return proto_fail(s, why);
	struct inrec *r = b->cur;
	if (n > r->rec.value_len - r->have)
		return proto_fail(s, "more value bytes than the record announced");
	memcpy((uint8_t *)r->rec.value + r->have, data, n);
	r->have += n;
	if (r->have < r->rec.value_len)
		return 0;
	b->cur = NULL;
	return batch_add(s, b, r);
}

struct applying {
	struct ks_sess *s;
	struct batch *b;
	bool has_wm;
	uint64_t wm;
	size_t bad; /* the record kvc_apply refused */
};

/* Idempotent: a retry starts from a fresh transaction and redoes all. */
static int apply_fn(kvc_txn *txn, void *arg)
{
	struct applying *a = arg;
	a->bad = SIZE_MAX;
	for (size_t i = 0; i < a->b->n; i++) {
		struct inrec *r = a->b->v[i];
		int rc = kvc_apply(txn, r->data, r->key_len, &r->rec, a->s->max_skew_ms);
		if (rc < 0) {
			a->bad = i;
			return rc;
		}
		r->outcome = rc == 0 ? KS_OUT_IGNORED :
			     (r->rec.flags & KVC_REC_TOMBSTONE) ? KS_OUT_TOMBSTONE : KS_OUT_APPLIED;
	}
	if (a->has_wm)
		return kvc_watermark_set(txn, a->s->peer.node, a->s->peer.epoch, a->wm);
	return 0;
}

/* -n: decide as kvc_apply would, change nothing. */
static int judge_batch(struct ks_sess *s, struct batch *b)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (rc)
		return store_fail(s, rc, "cannot read the store");
	for (size_t i = 0; i < b->n; i++) {
		struct inrec *r = b->v[i];
		bool tomb = r->rec.flags & KVC_REC_TOMBSTONE;
		rc = kvc_apply_would(txn, r->data, r->key_len, &r->rec, s->max_skew_ms);
		if (rc < 0) {
			/* The real run would refuse the batch: say so, as it would. */
			char key[80], msg[256];
			printable(key, sizeof(key), r->data, r->key_len < 60 ? r->key_len : 60);
			snprintf(msg, sizeof(msg), "%s", kvc_txn_errmsg(txn));
			kvc_txn_abort(txn);
			if (rc == -ERANGE)
				return fail(s, KS_EXIT_STORE,
					    "record '%s' from the %s: %s (see --max-skew); nothing of its batch would be applied",
					    key, s->peer_word, msg);
			if (rc == -EINVAL || rc == -E2BIG || rc == -EFBIG || rc == -ENAMETOOLONG)
				return fail(s, KS_EXIT_PROTO, "protocol error: invalid record '%s': %s",
					    key, msg[0] ? msg : strerror(-rc));
			return store_fail(s, rc, "cannot read the store");
		}
		r->outcome = rc != 1 ? KS_OUT_IGNORED : tomb ? KS_OUT_TOMBSTONE : KS_OUT_APPLIED;
	}
	kvc_txn_abort(txn);
	return 0;
}

static int commit_batch(struct ks_sess *s, struct batch *b, bool has_wm, uint64_t wm)
{
	int rc;
	if (s->flags & KS_REQ_DRY_RUN) {
		rc = judge_batch(s, b);
	} else {
		struct applying a = {s, b, has_wm, wm, SIZE_MAX};
		char msg[256] = "";
		rc = kvc_write_txn(s->store, apply_fn, &a, msg, sizeof(msg));
		if (rc < 0) {
			char key[80] = "";
			if (a.bad != SIZE_MAX) {
				struct inrec *r = b->v[a.bad];
				printable(key, sizeof(key), r->data, r->key_len < 60 ? r->key_len : 60);
			}
			if (rc == -ERANGE)
				return fail(s, KS_EXIT_STORE,
					    "record '%s' from the %s: %s (see --max-skew); nothing of its batch was applied",
					    key, s->peer_word, msg);
			if (a.bad != SIZE_MAX && (rc == -EINVAL || rc == -E2BIG || rc == -EFBIG ||
						  rc == -ENAMETOOLONG))
				return fail(s, KS_EXIT_PROTO,
					    "protocol error: invalid record '%s': %s", key,
					    msg[0] ? msg : strerror(-rc));
			return fail(s, KS_EXIT_STORE, "cannot apply a batch: %s",
				    msg[0] ? msg : strerror(-rc));
		}
	}
	if (rc)
		return rc;
	uint64_t applied = 0, ignored = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct inrec *r = b->v[i];
		if (r->outcome == KS_OUT_IGNORED)
			ignored++;
		else
			applied++;
		if (s->client) {
			if (r->outcome == KS_OUT_TOMBSTONE)
				s->st.tombstones++;
			note_outcome(s, r->outcome, r->data, r->key_len);
		} else if (s->flags & KS_REQ_VERBOSE) {
			ks_enc_result(out(s), r->outcome, r->data, r->key_len);
			rc = maybe_flush(s);
			if (rc)
				return rc;
		}
	}
	s->st.applied += applied;
	s->st.ignored += ignored;
	if (s->client && s->out)
		fflush(s->out);
	progress(s, false);
	batch_clear(b);
	ks_enc_counts(out(s), KS_ACK, applied, ignored);
	return flush(s);
}

/* @return 0, 1 (the client said bye), -EINTR (stop), or -errno */
static int run_receiver(struct ks_sess *s)
{
	struct ks_start st = {0, 0, 0};
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (!rc) {
		rc = kvc_watermark_get(txn, s->peer.node, s->peer.epoch, &st.watermark);
		if (!rc)
			rc = kvc_feed_head(txn, &st.head);
		kvc_txn_abort(txn);
	}
	if (rc)
		return store_fail(s, rc, "cannot read the watermark");
	if (!st.head)
		st.flags |= KS_START_EMPTY;
	ks_enc_start(out(s), &st);

	struct ks_frame f;
	struct ks_plan plan;
	const char *why = NULL;
	rc = recv_expect(s, -1, KS_PLAN, !s->client, &f);
	if (rc)
		return rc;
	if (ks_dec_plan(&f, &plan, &why))
		return proto_fail(s, why);
	s->plan_mode = plan.mode;
	s->plan_after = plan.after;

	struct batch b = {NULL, 0, 0, 0, NULL};
	int timeout = (s->flags & KS_REQ_WATCH) ? WATCH_SILENCE_MS : -1;
	for (;;) {
		rc = recv_frame(s, timeout, &f);
		if (rc)
			break;
		switch (f.type) {
		case KS_REC:
			rc = recv_rec(s, &b, &f);
			break;
		case KS_DATA:
			rc = recv_data(s, &b, &f);
			break;
		case KS_BATCH_END: {
			bool has_wm;
			uint64_t wm;
			if (b.cur)
				rc = proto_fail(s, "BATCH_END in the middle of a value");
			else if (ks_dec_batch_end(&f, &has_wm, &wm, &why))
				rc = proto_fail(s, why);
			else
				rc = commit_batch(s, &b, has_wm, wm);
			break;
		}
		case KS_DIGEST:
		case KS_KEYLIST:
			if (plan.mode != KS_PLAN_DIGEST)
				rc = unexpected(s, &f, "in an incremental sync");
			else if (f.type == KS_DIGEST)
				rc = answer_digest(s, &f, KS_DIGEST_ALL);
			else
				rc = answer_keylist(s, &f, KS_DIGEST_ALL);
			break;
		case KS_DONE:
			if (b.cur || b.n) {
				rc = proto_fail(s, "DONE with records outside a batch");
				break;
			}
			if (ks_dec_u64(&f, &plan.head, &why)) {
				rc = proto_fail(s, why);
				break;
			}
			ks_enc_counts(out(s), KS_FIN, s->st.applied, s->st.ignored);
			rc = flush(s);
			batch_release(&b);
			return rc;
		case KS_BYE:
			if (!s->client) {
				batch_release(&b);
				return 1;
			}
			rc = unexpected(s, &f, "from the server");
			break;
		default:
			rc = unexpected(s, &f, "in a sync session");
			break;
		}
		if (rc)
			break;
	}
	/* Whatever of a batch arrived before the failure is dropped here:
	 * only whole batches are ever applied. */
	batch_release(&b);
	return rc;
}

/* ------------------------------------------------------------- check */

static int run_check_responder(struct ks_sess *s)
{
	for (;;) {
		struct ks_frame f;
		int rc = recv_frame(s, -1, &f);
		if (rc)
			return rc;
		if (f.type == KS_DIGEST) {
			rc = answer_digest(s, &f, KS_DIGEST_LIVE);
		} else if (f.type == KS_KEYLIST) {
			rc = answer_keylist(s, &f, KS_DIGEST_LIVE);
		} else if (f.type == KS_DONE) {
			ks_enc_counts(out(s), KS_FIN, 0, 0);
			return flush(s);
		} else if (f.type == KS_BYE) {
			return 1;
		} else {
			rc = unexpected(s, &f, "in a check session");
		}
		if (rc)
			return rc;
	}
}

static int run_check_driver(struct ks_sess *s)
{
	int rc = drive_digest(s, KS_DIGEST_LIVE);
	if (rc)
		return rc;
	ks_enc_u64(out(s), KS_DONE, 0);
	struct ks_frame f;
	rc = recv_expect(s, -1, KS_FIN, false, &f);
	if (rc)
		return rc;
	if (s->out)
		fflush(s->out);
	return 0;
}

/* ---------------------------------------------------------- handshake */

static int send_greeting(struct ks_sess *s, uint32_t flags, uint8_t nonce[KS_NONCE_LEN])
{
	struct ks_hello h = {.version = KS_PROTO_VERSION, .flags = flags};
	randombytes_buf(h.nonce, KS_NONCE_LEN);
	memcpy(nonce, h.nonce, KS_NONCE_LEN);
	ks_enc_magic(out(s));
	ks_enc_hello(out(s), &h);
	s->greeted = true;
	return ks_conn_flush(s->conn); /* the caller decides what a failure means */
}

static int recv_hello(struct ks_sess *s, int timeout_ms, struct ks_hello *h)
{
	struct ks_frame f;
	const char *why = NULL;
	int rc = recv_expect(s, timeout_ms, KS_HELLO, false, &f);
	if (rc)
		return rc;
	if (ks_dec_hello(&f, h, &why))
		return proto_fail(s, why);
	if (h->version != KS_PROTO_VERSION)
		return fail(s, KS_EXIT_PROTO,
			    "protocol error: the %s speaks protocol version %u, this kvsync speaks %u",
			    s->peer_word, h->version, KS_PROTO_VERSION);
	if (((h->flags & KS_HELLO_SERVER) != 0) != s->client)
		return proto_fail(s, s->client ? "the peer is not a kvsync server" :
						 "the peer greeted as a server");
	return 0;
}

static int recv_ident(struct ks_sess *s, int timeout_ms)
{
	struct ks_frame f;
	const char *why = NULL;
	int rc = recv_expect(s, timeout_ms, KS_IDENT, false, &f);
	if (rc)
		return rc;
	if (ks_dec_ident(&f, &s->peer, &why))
		return proto_fail(s, why);
	if (s->peer.node == s->self.node && s->peer.epoch == s->self.epoch)
		return fail(s, KS_EXIT_USAGE, "SRC and DST are the same store");
	return 0;
}

int ks_client_new(struct ks_conn *conn, kvc_store *store, const struct ks_client_opts *o,
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
	s->store = store;
	s->client = true;
	s->peer_word = "server";
	s->stop_fd = o->stop_fd;
	s->out = o->out ? o->out : stdout;
	s->local_is_src = o->local_is_src;
	s->rsh = o->rsh;
	s->progress = o->progress;
	kt_progress_init(&s->prog, 2, "kvsync", "records", 0);
	ks_conn_set_stop_fd(conn, o->stop_fd);
	ks_conn_set_timeout(conn, o->timeout_ms);
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
		return fail(s, KS_EXIT_AUTH, "the server requires a token: give --token-file");
	if (!key)
		return 0;
	if (!(sh->flags & KS_HELLO_TOKEN)) {
		/* A server that greets and then refuses us (a kvsync before
		 * refusals went without a HELLO) has an ERROR on its way:
		 * its reason, busy for one, tells more than ours. */
		struct ks_frame f;
		if (ks_conn_wait(s->conn, 200) == 1 && !ks_conn_recv(s->conn, 0, &f) &&
		    f.type == KS_ERROR)
			return peer_error(s, &f);
		return fail(s, KS_EXIT_AUTH,
			    "the server has no token and cannot prove who it is; refusing it");
	}
	uint8_t mac[KS_MAC_LEN];
	ks_auth_mac(key, false, sh->nonce, cn, mac);
	ks_enc_auth(out(s), mac);
	struct ks_frame f;
	const char *why = NULL;
	int rc = recv_expect(s, -1, KS_AUTH, false, &f);
	if (rc)
		return rc;
	if (ks_dec_auth(&f, mac, &why))
		return proto_fail(s, why);
	if (!ks_auth_check(key, true, sh->nonce, cn, mac))
		return fail(s, KS_EXIT_AUTH, "the server could not prove it knows the token");
	return 0;
}

int ks_client_handshake(struct ks_client *c)
{
	struct ks_sess *s = &c->s;
	uint8_t nonce[KS_NONCE_LEN];
	/* Greet first: a store that cannot be read is then told to the
	 * server as an error, not left for it to guess. */
	int rc = send_greeting(s, c->o.token_key ? KS_HELLO_TOKEN : 0, nonce);
	if (rc == -EPIPE)
		rc = 0; /* the answer (or its absence) tells more */
	else if (rc)
		rc = conn_fail(s, rc);
	if (!rc)
		rc = load_identity(s);
	if (rc)
		goto out;
	char junk[100];
	rc = ks_conn_read_magic(s->conn, -1, junk, sizeof(junk));
	if (rc == -EBADMSG) {
		if (s->rsh)
			rc = fail(s, KS_EXIT_PROTO,
				  "remote shell printed '%s' before the protocol started; check the remote login scripts",
				  junk);
		else
			rc = fail(s, KS_EXIT_PROTO,
				  "protocol error: the peer is not a kvsync server (it sent '%s')", junk);
		goto out;
	}
	if (rc == -ECONNRESET) {
		rc = fail(s, KS_EXIT_PROTO, "connection closed before the protocol started%s",
			  s->rsh ? " (did the remote command run? see --kvsync-path)" : "");
		goto out;
	}
	if (rc) {
		rc = conn_fail(s, rc);
		goto out;
	}
	struct ks_hello sh;
	rc = recv_hello(s, -1, &sh);
	if (!rc)
		rc = client_auth(c, &sh, nonce);
	if (rc)
		goto out;
	struct ks_ident me = s->self;
	ks_enc_open(out(s), c->o.open_flags);
	ks_enc_ident(out(s), &me);
	rc = recv_ident(s, -1);
out:
	if (rc)
		tell_peer(s);
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
	if (op == KS_OP_CHECK)
		s->prog.what = "comparing";
	else
		s->prog.what = (op == KS_OP_PUSH) == s->local_is_src ? "SRC -> DST" : "DST -> SRC";
	struct ks_stats before = s->st;
	ks_enc_req(out(s), &q);
	int rc;
	switch (op) {
	case KS_OP_PUSH:
		rc = run_sender(s);
		break;
	case KS_OP_PULL:
		rc = run_receiver(s);
		break;
	default:
		rc = run_check_driver(s);
		break;
	}
	progress(s, true);
	if (s->out)
		fflush(s->out);
	if (rc == -EINTR)
		return KS_EXIT_OK;
	if (rc) {
		tell_peer(s);
		return s->code ? s->code : KS_EXIT_PROTO;
	}
	if ((s->flags & KS_REQ_VERBOSE) && op != KS_OP_CHECK) {
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
	ks_enc_empty(out(&c->s), KS_BYE);
	ks_conn_flush(c->s.conn);
}

/* ------------------------------------------------------------- server */

static int server_auth(struct ks_sess *s, const struct ks_server_opts *o,
		       const struct ks_hello *ch, const uint8_t *sn, int timeout)
{
	if (!o->token_key)
		return 0;
	if (!(ch->flags & KS_HELLO_TOKEN))
		return fail(s, KS_EXIT_AUTH, "authentication failed: the client has no token");
	struct ks_frame f;
	uint8_t mac[KS_MAC_LEN];
	const char *why = NULL;
	int rc = recv_expect(s, timeout, KS_AUTH, false, &f);
	if (rc)
		return rc;
	if (ks_dec_auth(&f, mac, &why))
		return proto_fail(s, why);
	if (!ks_auth_check(o->token_key, false, sn, ch->nonce, mac))
		return fail(s, KS_EXIT_AUTH, "authentication failed: wrong token");
	ks_auth_mac(o->token_key, true, sn, ch->nonce, mac);
	ks_enc_auth(out(s), mac);
	return flush(s);
}

static int server_open(struct ks_sess *s, const struct ks_server_opts *o, int timeout)
{
	struct ks_frame f;
	uint32_t flags;
	const char *why = NULL;
	int rc = recv_expect(s, timeout, KS_OPEN, false, &f);
	if (rc)
		return rc;
	if (ks_dec_open(&f, &flags, &why))
		return proto_fail(s, why);
	struct kvc_open_opts oo = {.no_create = !(flags & KS_OPEN_CREATE)};
	bool created = false;
	rc = kvc_open(o->store_path, &oo, &s->store, &created);
	if (rc)
		return fail(s, KS_EXIT_STORE, "cannot open store %s: %s", o->store_path,
			    rc == -ENOENT ? "no such store" : strerror(-rc));
	if (created)
		fprintf(stderr, "kvsync: created store %s\n", kvc_store_path(s->store));
	rc = load_identity(s);
	if (rc)
		return rc;
	ks_enc_ident(out(s), &s->self);
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
static int server_greet(struct ks_sess *s, const struct ks_server_opts *o,
			const uint8_t *nonce)
{
	int64_t deadline = o->login_grace_ms > 0 ? ks_mono_ms() + o->login_grace_ms : -1;
	char junk[100];
	int rc = ks_conn_read_magic(s->conn, left_ms(deadline), junk, sizeof(junk));
	if (rc == -EBADMSG)
		return fail(s, KS_EXIT_PROTO,
			    "protocol error: the client did not greet as kvsync (it sent '%s')", junk);
	if (rc == -ECONNRESET)
		return fail(s, KS_EXIT_PROTO, "connection closed before the protocol started");
	if (rc == -ETIMEDOUT)
		return fail(s, KS_EXIT_PROTO, "the client did not finish the handshake within %d ms",
			    o->login_grace_ms);
	if (rc)
		return conn_fail(s, rc);
	struct ks_hello ch;
	rc = recv_hello(s, left_ms(deadline), &ch);
	if (!rc)
		rc = server_auth(s, o, &ch, nonce, left_ms(deadline));
	if (rc && s->code == KS_EXIT_PROTO && deadline >= 0 && ks_mono_ms() >= deadline) {
		/* Not "stopped answering": it may have been sending all along. */
		s->code = 0;
		rc = fail(s, KS_EXIT_PROTO, "the client did not finish the handshake within %d ms",
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
	/* Writes in the handshake are tiny; a client that does not even
	 * read those gets no more time than one that does not send. */
	ks_conn_set_timeout(conn, o->login_grace_ms);
	int rc;
	if (o->refuse) {
		/* No HELLO: the client's first frame is the ERROR, whatever
		 * it would have made of our greeting (a client holding a
		 * token would take a HELLO without one for an impostor). */
		ks_enc_magic(out(s));
		s->greeted = true;
		rc = fail(s, o->refuse_code ? o->refuse_code : KS_EXIT_AUTH, "%s", o->refuse);
		goto out;
	}
	uint8_t nonce[KS_NONCE_LEN];
	uint32_t hflags = KS_HELLO_SERVER | (o->token_key ? KS_HELLO_TOKEN : 0);
	/* A client that gave up early may have said why: a failed write
	 * is reported only if reading finds nothing better. */
	send_greeting(s, hflags, nonce);
	rc = server_greet(s, o, nonce);
	const char *busy = !rc && o->admit ? o->admit(o->admit_arg) : NULL;
	if (busy)
		rc = fail(s, KS_EXIT_PROTO, "%s", busy);
	ks_conn_set_timeout(conn, o->timeout_ms);
	if (!rc)
		rc = server_open(s, o, -1);
	while (!rc) {
		struct ks_frame f;
		struct ks_req q;
		const char *why = NULL;
		rc = recv_frame(s, -1, &f);
		if (rc)
			break;
		if (f.type == KS_BYE)
			break;
		if (f.type != KS_REQ) {
			rc = unexpected(s, &f, "instead of REQ");
			break;
		}
		if (ks_dec_req(&f, &q, &why)) {
			rc = proto_fail(s, why);
			break;
		}
		s->op = q.op;
		s->flags = q.flags;
		s->max_skew_ms = skew_bound(o->max_skew_ms, q.max_skew_ms);
		s->next_id = 0;
		if (q.op == KS_OP_PUSH)
			rc = run_receiver(s);
		else if (q.op == KS_OP_PULL)
			rc = run_sender(s);
		else
			rc = run_check_responder(s);
		if (rc == 1)
			rc = 0; /* bye in the middle of a --watch */
		if (!rc && (q.flags & KS_REQ_WATCH))
			break;
	}
out:
	if (rc == -EINTR) {
		rc = 0;
	} else if (rc && s->code) {
		tell_peer(s);
		if (!s->from_peer && !o->quiet) {
			if (o->peer_name)
				fprintf(stderr, "kvsync: %s: %s\n", o->peer_name, s->err);
			else
				fprintf(stderr, "kvsync: %s\n", s->err);
		}
	}
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
