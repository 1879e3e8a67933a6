/*
 * receiver: the side of a sync session that applies records.  A batch is
 * held in memory until the sender closes it, then applied by kvc_apply
 * (last-writer-wins is kvcore's) in one write transaction together with
 * the sender's watermark, so a connection that breaks mid-batch leaves
 * nothing of it behind; with -n it is judged by kvc_apply_would instead.
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
		return sess_fail(s, KS_EXIT_STORE, "out of memory");
	b->v = v;
	b->v[b->n++] = r;
	b->bytes += r->key_len + r->rec.value_len + r->rec.metadata_len + 64;
	s->st.records++;
	s->prog_bytes += r->key_len + r->rec.value_len + r->rec.metadata_len;
	s->st.bytes += r->key_len + r->rec.value_len + r->rec.metadata_len;
	sess_progress(s, false);
	return 0;
}

static int recv_rec(struct ks_sess *s, struct batch *b, const struct ks_frame *f)
{
	struct ks_rec x;
	const char *why = NULL;
	if (b->cur)
		return sess_proto_fail(s, "a record began before the previous value was complete");
	/* What a sender may put in one batch, plus the record that closes it. */
	if (b->n >= KS_BATCH_RECORDS || b->bytes >= KS_BATCH_BYTES)
		return sess_proto_fail(s, "batch over the size limits");
	if (ks_dec_rec(f, &x, &why))
		return sess_proto_fail(s, why);
	if (kvc_key_check(x.key, x.key_len))
		return sess_proto_fail(s, "record with an invalid key");
	/* A filtered sync keeps its promise here too: a key the filter passes
	 * over is never written, whatever the sender does. */
	if (!ks_filter_select(s->filter, x.key, x.key_len))
		return sess_proto_fail(s, "record with a key the filter does not select");
	struct inrec *r = malloc(sizeof(*r) + x.key_len + x.rec.metadata_len + x.rec.value_len);
	if (!r)
		return sess_fail(s, KS_EXIT_STORE, "out of memory for a value of %zu bytes",
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
		return sess_proto_fail(s, "DATA without a record");
	if (ks_dec_data(f, &data, &n, &why))
		return sess_proto_fail(s, why);
	struct inrec *r = b->cur;
	if (n > r->rec.value_len - r->have)
		return sess_proto_fail(s, "more value bytes than the record announced");
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
	/* A filtered sync applied only what its filter selects: it keeps the
	 * watermark of that scope and leaves the one that promises all. */
	if (a->has_wm)
		return kvc_watermark_set_scoped(txn, a->s->peer.node, a->s->peer.epoch,
						a->s->filter ? a->s->filter_fp : NULL, a->wm);
	return 0;
}

/* -n: decide as kvc_apply would, change nothing. */
static int judge_batch(struct ks_sess *s, struct batch *b)
{
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (rc)
		return sess_store_fail(s, rc, "cannot read the store");
	for (size_t i = 0; i < b->n; i++) {
		struct inrec *r = b->v[i];
		bool tomb = r->rec.flags & KVC_REC_TOMBSTONE;
		rc = kvc_apply_would(txn, r->data, r->key_len, &r->rec, s->max_skew_ms);
		if (rc < 0) {
			/* The real run would refuse the batch: say so, as it would. */
			char key[80], msg[256];
			sess_printable(key, sizeof(key), r->data, r->key_len < 60 ? r->key_len : 60);
			snprintf(msg, sizeof(msg), "%s", kvc_txn_errmsg(txn));
			kvc_txn_abort(txn);
			if (rc == -ERANGE)
				return sess_fail(s, KS_EXIT_STORE,
					    "record '%s' from the %s: %s (see --max-skew); nothing of its batch would be applied",
					    key, s->peer_word, msg);
			if (rc == -EINVAL || rc == -E2BIG || rc == -EFBIG || rc == -ENAMETOOLONG)
				return sess_fail(s, KS_EXIT_PROTO, "protocol error: invalid record '%s': %s",
					    key, msg[0] ? msg : strerror(-rc));
			return sess_store_fail(s, rc, "cannot read the store");
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
				sess_printable(key, sizeof(key), r->data, r->key_len < 60 ? r->key_len : 60);
			}
			if (rc == -ERANGE)
				return sess_fail(s, KS_EXIT_STORE,
					    "record '%s' from the %s: %s (see --max-skew); nothing of its batch was applied",
					    key, s->peer_word, msg);
			if (a.bad != SIZE_MAX && (rc == -EINVAL || rc == -E2BIG || rc == -EFBIG ||
						  rc == -ENAMETOOLONG))
				return sess_fail(s, KS_EXIT_PROTO,
					    "protocol error: invalid record '%s': %s", key,
					    msg[0] ? msg : strerror(-rc));
			return sess_fail(s, KS_EXIT_STORE, "cannot apply a batch: %s",
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
			sess_note_outcome(s, r->outcome, r->data, r->key_len);
		} else if (s->flags & KS_REQ_VERBOSE) {
			ks_enc_result(sess_out(s), r->outcome, r->data, r->key_len);
			rc = sess_maybe_flush(s);
			if (rc)
				return rc;
		}
	}
	s->st.applied += applied;
	s->st.ignored += ignored;
	if (s->client && s->out)
		fflush(s->out);
	sess_progress(s, false);
	batch_clear(b);
	ks_enc_counts(sess_out(s), KS_ACK, applied, ignored);
	return sess_flush(s);
}

/* @return 0, 1 (the client said bye), -EINTR (stop), or -errno */
int sess_run_receiver(struct ks_sess *s)
{
	struct ks_start st = {0, 0, 0};
	kvc_txn *txn;
	int rc = kvc_txn_begin(s->store, KVC_TXN_READ, &txn);
	if (!rc) {
		rc = kvc_watermark_get(txn, s->peer.node, s->peer.epoch, &st.watermark);
		/* All changes up to the unfiltered watermark are here, so the
		 * selected ones too: start from the further of the two. */
		uint64_t scoped = 0;
		if (!rc && s->filter)
			rc = kvc_watermark_get_scoped(txn, s->peer.node, s->peer.epoch,
						      s->filter_fp, &scoped);
		if (scoped > st.watermark)
			st.watermark = scoped;
		if (!rc)
			rc = kvc_feed_head(txn, &st.head);
		kvc_txn_abort(txn);
	}
	if (rc)
		return sess_store_fail(s, rc, "cannot read the watermark");
	if (!st.head)
		st.flags |= KS_START_EMPTY;
	ks_enc_start(sess_out(s), &st);

	struct ks_frame f;
	struct ks_plan plan;
	const char *why = NULL;
	rc = sess_recv_expect(s, -1, KS_PLAN, !s->client, &f);
	if (rc)
		return rc;
	if (ks_dec_plan(&f, &plan, &why))
		return sess_proto_fail(s, why);
	s->plan_mode = plan.mode;
	s->plan_after = plan.after;
	s->plan_head = plan.head;
	sess_progress_plan(s, &plan);
	if ((plan.mode == KS_PLAN_FEED && plan.head <= plan.after) || !plan.head)
		sess_caught_up(s); /* nothing to catch up with */

	struct batch b = {NULL, 0, 0, 0, NULL};
	int timeout = (s->flags & KS_REQ_WATCH) ? WATCH_SILENCE_MS : -1;
	for (;;) {
		rc = sess_recv_frame(s, timeout, &f);
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
				rc = sess_proto_fail(s, "BATCH_END in the middle of a value");
			else if (ks_dec_batch_end(&f, &has_wm, &wm, &why))
				rc = sess_proto_fail(s, why);
			else
				rc = commit_batch(s, &b, has_wm, wm);
			if (!rc && has_wm && wm >= s->plan_head)
				sess_caught_up(s);
			break;
		}
		case KS_DIGEST:
		case KS_KEYLIST:
			if (plan.mode != KS_PLAN_DIGEST)
				rc = sess_unexpected(s, &f, "in an incremental sync");
			else if (f.type == KS_DIGEST)
				rc = sess_answer_digest(s, &f, KS_DIGEST_ALL);
			else
				rc = sess_answer_keylist(s, &f, KS_DIGEST_ALL);
			break;
		case KS_DONE:
			if (b.cur || b.n) {
				rc = sess_proto_fail(s, "DONE with records outside a batch");
				break;
			}
			if (ks_dec_u64(&f, &plan.head, &why)) {
				rc = sess_proto_fail(s, why);
				break;
			}
			ks_enc_counts(sess_out(s), KS_FIN, s->st.applied, s->st.ignored);
			rc = sess_flush(s);
			batch_release(&b);
			return rc;
		case KS_BYE:
			if (!s->client) {
				batch_release(&b);
				return 1;
			}
			rc = sess_unexpected(s, &f, "from the server");
			break;
		default:
			rc = sess_unexpected(s, &f, "in a sync session");
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
