/*
 * digest_driver: the digest comparison, for a receiver whose watermark is
 * of no use and for --check.  The driver asks the responder for digests of
 * key ranges, cuts a range that differs into FANOUT pieces until it holds
 * at most LEAF_MAX records, and settles such a range by a key list: the
 * responder answers which keys it wants (sync) or how they differ (check).
 * Up to INFLIGHT_MAX questions are in flight, to hide round trips.
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
	int rc = ks_range_split(s->store, kind, &r->r, s->filter, kvc_now_ns(), r->count, FANOUT, cut_at, &c);
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
	return rc ? sess_store_fail(s, rc, "cannot split a key range") : 0;
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
	struct ks_wbuf *b = sess_out(s);
	size_t mark = b->buf.len;
	struct listing li = {b, {0, 0, 0, 0}, false};
	ks_list_begin_keylist(b, &li.l, r->id, kind, &r->r);
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (!rc) {
		rc = ks_range_walk(txn, kind, &r->r, s->filter, kvc_now_ns(), list_one, &li);
		kvc_txn_abort(txn);
	}
	if (li.overflow) {
		b->buf.len = mark;
		return 1;
	}
	if (rc)
		return sess_store_fail(s, rc, "cannot list a key range");
	ks_list_end(b, &li.l);
	r->keylist = true;
	return sess_maybe_flush(s);
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
			return sess_store_fail(s, rc, "cannot read the store");
		for (; more && !sess_batch_full(s) && !ks_conn_should_flush(s->conn);
		     more = ks_want_next(l, &key, &key_len)) {
			struct kvc_record rec;
			rc = kvc_get(txn, key, key_len, KVC_GET_TOMBSTONES | KVC_GET_EXPIRED, &rec);
			if (rc == -ENOENT) {
				rc = 0; /* gone since the list was made */
				continue;
			}
			if (rc == -EINVAL || rc == -ENAMETOOLONG) {
				rc = sess_proto_fail(s, "the receiver asked for an invalid key");
				break;
			}
			if (rc) {
				rc = sess_store_fail(s, rc, "cannot read the store");
				break;
			}
			sess_encode_record(s, key, key_len, &rec);
		}
		kvc_txn_abort(txn);
		if (!rc)
			rc = sess_batch_full(s) ? sess_end_batch(s, false, 0) : sess_maybe_flush(s);
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
	sess_print_key(s->out, "* ", d->key, d->key_len, what);
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
 * Where the comparison starts: the whole key space, or with --prefix one
 * range [P, successor of P) per prefix (disjoint: none is a prefix of
 * another), pushed so the lowest comes off first.  @return 0 or -ENOMEM
 */
static int root_ranges(struct ks_sess *s, struct rstack *todo)
{
	uint32_t n = s->filter ? s->filter->n_prefixes : 0;
	if (!n) {
		struct drange *r = drange_new(NULL, 0, NULL, 0);
		if (!r || rstack_push(todo, r)) {
			free(r);
			return -ENOMEM;
		}
		return 0;
	}
	while (n--) {
		const struct ks_bytes *p = &s->filter->prefixes[n];
		uint8_t hi[KVC_KEY_MAX];
		size_t hi_len = 0;
		bool bounded = ks_prefix_successor(p->p, p->len, hi, &hi_len);
		struct drange *r = drange_new(p->p, p->len, bounded ? hi : NULL, hi_len);
		if (!r || rstack_push(todo, r)) {
			free(r);
			return -ENOMEM;
		}
	}
	return 0;
}

/*
 * The side holding the ranges' split points asks, range by range, whether
 * the other side's digest agrees; a differing range is cut until small,
 * then settled by a key list.  Ranges are handled depth first so what is
 * pending stays small (about FANOUT per level of depth).
 */
int sess_drive_digest(struct ks_sess *s, uint8_t kind)
{
	struct rstack todo = {NULL, 0, 0};
	struct drange *fl[INFLIGHT_MAX];
	size_t nfl = 0;
	const char *why = NULL;
	int rc = 0;
	if (root_ranges(s, &todo)) {
		rstack_release(&todo);
		return sess_fail(s, KS_EXIT_STORE, "out of memory");
	}
	while (!rc && (todo.n || nfl)) {
		while (!rc && nfl < INFLIGHT_MAX && todo.n) {
			struct drange *r = todo.v[--todo.n];
			struct ks_digest d = {.kind = kind, .range = r->r};
			rc = ks_digest_range(s->store, kind, &r->r, s->filter, kvc_now_ns(), &d.count, d.digest);
			if (rc) {
				rc = sess_store_fail(s, rc, "cannot digest a key range");
				free(r);
				break;
			}
			if (kind == KS_DIGEST_ALL && d.count == 0) {
				free(r); /* nothing here the receiver could lack */
				continue;
			}
			r->id = d.id = ++s->next_id;
			r->count = d.count;
			ks_enc_digest(sess_out(s), &d);
			fl[nfl++] = r;
			rc = sess_maybe_flush(s);
		}
		if (rc || !nfl)
			continue;
		struct ks_frame f;
		rc = sess_recv_frame(s, -1, &f);
		if (rc)
			break;
		if (f.type == KS_DIGEST_R) {
			struct ks_digest_r dr;
			if (ks_dec_digest_r(&f, &dr, &why)) {
				rc = sess_proto_fail(s, why);
				break;
			}
			struct drange *r = take_inflight(fl, &nfl, dr.id, false);
			if (!r || r->keylist) {
				rc = sess_proto_fail(s, "DIGEST_R for a range not asked about");
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
				rc = sess_proto_fail(s, why);
				break;
			}
			if (f.type == KS_KEYS)
				id = l.id;
			struct drange *r = take_inflight(fl, &nfl, id, f.type == KS_KEYS_END);
			if (!r || !r->keylist) {
				rc = sess_proto_fail(s, "KEYS for a range without a key list");
				break;
			}
			if (f.type == KS_KEYS_END) {
				free(r);
			} else if (kind == KS_DIGEST_ALL) {
				if (l.kind != KS_KEYS_WANT) {
					rc = sess_proto_fail(s, "KEYS of the wrong kind");
					break;
				}
				rc = send_wanted(s, &l);
			} else {
				struct ks_diff_ent d;
				if (l.kind != KS_KEYS_DIFF) {
					rc = sess_proto_fail(s, "KEYS of the wrong kind");
					break;
				}
				while (ks_diff_next(&l, &d))
					report_diff(s, &d);
			}
		} else if (kind == KS_DIGEST_ALL) {
			rc = sess_sender_input(s, &f);
		} else {
			rc = sess_unexpected(s, &f, "during the digest comparison");
		}
	}
	for (size_t i = 0; i < nfl; i++)
		free(fl[i]);
	rstack_release(&todo);
	return rc;
}

/* ----------------------------------------------------- digest responder */

int sess_answer_digest(struct ks_sess *s, const struct ks_frame *f, uint8_t kind)
{
	struct ks_digest d;
	const char *why = NULL;
	if (ks_dec_digest(f, &d, &why))
		return sess_proto_fail(s, why);
	if (d.kind != kind)
		return sess_proto_fail(s, "DIGEST of the wrong kind for this session");
	struct ks_digest_r r = {d.id, 0, 0};
	uint8_t mine[KS_DIGEST_LEN];
	int rc = ks_digest_range(s->store, kind, &d.range, s->filter, kvc_now_ns(), &r.count, mine);
	if (rc)
		return sess_store_fail(s, rc, "cannot digest a key range");
	r.same = r.count == d.count && !memcmp(mine, d.digest, KS_DIGEST_LEN);
	ks_enc_digest_r(sess_out(s), &r);
	return sess_maybe_flush(s);
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
	struct ks_wbuf *b = sess_out(a->s);
	if (a->open && ks_list_room(b, &a->l, key_len))
		return 0;
	if (a->open) {
		ks_list_end(b, &a->l);
		int rc = sess_maybe_flush(a->s);
		if (rc)
			return rc;
	}
	ks_list_begin_keys(b, &a->l, a->id, a->kind);
	a->open = true;
	return 0;
}

static int answer_end(struct answer *a)
{
	struct ks_wbuf *b = sess_out(a->s);
	if (a->open)
		ks_list_end(b, &a->l);
	ks_enc_keys_end(b, a->id);
	return sess_maybe_flush(a->s);
}

static int want_keys(struct ks_sess *s, struct ks_list_rd *l)
{
	struct answer a = {.s = s, .id = l->id, .kind = KS_KEYS_WANT};
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (rc)
		return sess_store_fail(s, rc, "cannot read the store");
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
			rc = sess_store_fail(s, g, "cannot read the store");
		else
			want = kvc_version_cmp(e.hlc, e.origin, mine.hlc, mine.origin) > 0;
		if (rc || !want)
			continue;
		rc = answer_room(&a, e.key_len);
		if (!rc)
			rc = ks_list_add_want(sess_out(s), &a.l, e.key, e.key_len);
	}
	kvc_txn_abort(txn);
	return rc ? rc : answer_end(&a);
}

static int diff_add(struct answer *a, const struct ks_diff_ent *d)
{
	int rc = answer_room(a, d->key_len);
	return rc ? rc : ks_list_add_diff(sess_out(a->s), &a->l, d);
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
	       kvc_key_cmp(a->next.key, a->next.key_len, mine->key, mine->key_len) < 0) {
		rc = diff_theirs(a, &a->next);
		a->have_next = ks_keylist_next(&a->theirs, &a->next);
	}
	if (rc)
		return rc;
	if (a->have_next && !kvc_key_cmp(a->next.key, a->next.key_len, mine->key, mine->key_len)) {
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
		return sess_store_fail(s, rc, "cannot read the store");
	rc = ks_range_walk(a.txn, KS_DIGEST_LIVE, &l->range, s->filter, kvc_now_ns(), merge_one, &a);
	if (rc < 0 && !s->code)
		rc = sess_store_fail(s, rc, "cannot list a key range");
	while (!rc && a.have_next) {
		rc = diff_theirs(&a, &a.next);
		a.have_next = ks_keylist_next(&a.theirs, &a.next);
	}
	kvc_txn_abort(a.txn);
	return rc ? rc : answer_end(&a);
}

int sess_answer_keylist(struct ks_sess *s, const struct ks_frame *f, uint8_t kind)
{
	struct ks_list_rd l;
	const char *why = NULL;
	if (ks_dec_keylist(f, &l, &why))
		return sess_proto_fail(s, why);
	if (l.kind != kind)
		return sess_proto_fail(s, "KEYLIST of the wrong kind for this session");
	return kind == KS_DIGEST_ALL ? want_keys(s, &l) : diff_keys(s, &l);
}

/* ------------------------------------------------------------- check */

int sess_run_check_responder(struct ks_sess *s)
{
	for (;;) {
		struct ks_frame f;
		int rc = sess_recv_frame(s, -1, &f);
		if (rc)
			return rc;
		if (f.type == KS_DIGEST) {
			rc = sess_answer_digest(s, &f, KS_DIGEST_LIVE);
		} else if (f.type == KS_KEYLIST) {
			rc = sess_answer_keylist(s, &f, KS_DIGEST_LIVE);
		} else if (f.type == KS_DONE) {
			ks_enc_counts(sess_out(s), KS_FIN, 0, 0);
			return sess_flush(s);
		} else if (f.type == KS_BYE) {
			return 1;
		} else {
			rc = sess_unexpected(s, &f, "in a check session");
		}
		if (rc)
			return rc;
	}
}

int sess_run_check_driver(struct ks_sess *s)
{
	int rc = sess_drive_digest(s, KS_DIGEST_LIVE);
	if (rc)
		return rc;
	ks_enc_u64(sess_out(s), KS_DONE, 0);
	struct ks_frame f;
	rc = sess_recv_expect(s, -1, KS_FIN, false, &f);
	if (rc)
		return rc;
	if (s->out)
		fflush(s->out);
	return 0;
}
