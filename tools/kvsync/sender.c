/*
 * sender: the side of a sync session that ships records.  It answers the
 * receiver's watermark with a plan, then streams the change feed after it
 * in batches (each closed with the watermark it reaches), or drives a
 * digest comparison when the watermark is unusable.  With --watch it keeps
 * following the feed, pinging the receiver through quiet periods.
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

/* ---------------------------------------------------------------- sender */

int sess_end_batch(struct ks_sess *s, bool has_wm, uint64_t wm)
{
	if (!s->out_n && !has_wm)
		return 0;
	ks_enc_batch_end(sess_out(s), has_wm, wm);
	s->batches_out++;
	s->out_n = 0;
	s->out_bytes = 0;
	return sess_flush(s);
}

bool sess_batch_full(const struct ks_sess *s)
{
	return s->out_n >= KS_BATCH_RECORDS || s->out_bytes >= KS_BATCH_BYTES;
}

/*
 * Encode one record, value and all, without writing: the caller holds a
 * read transaction (the value points into it) and must end it before a
 * write that may wait for the peer (see feed_batch).  The buffer thus
 * holds at most one record past KS_FLUSH_AT, 25 MiB at worst.
 */
void sess_encode_record(struct ks_sess *s, const void *key, size_t key_len,
			  const struct kvc_record *rec)
{
	size_t first = rec->value_len < KS_CHUNK_MAX ? rec->value_len : KS_CHUNK_MAX;
	ks_enc_rec(sess_out(s), key, key_len, rec, first);
	for (size_t off = first; off < rec->value_len;) {
		size_t n = rec->value_len - off;
		if (n > KS_CHUNK_MAX)
			n = KS_CHUNK_MAX;
		ks_enc_data(sess_out(s), (const uint8_t *)rec->value + off, n);
		off += n;
	}
	s->out_n++;
	s->out_bytes += key_len + rec->value_len + rec->metadata_len + 64;
	s->st.records++;
	s->prog_bytes += key_len + rec->value_len + rec->metadata_len;
	s->st.bytes += key_len + rec->value_len + rec->metadata_len;
	sess_progress(s, false);
}

/* What the receiver says about the records it got. */
int sess_sender_input(struct ks_sess *s, const struct ks_frame *f)
{
	const char *why = NULL;
	uint64_t a, i;
	if (f->type == KS_ACK) {
		if (ks_dec_counts(f, &a, &i, &why))
			return sess_proto_fail(s, why);
		s->acks_in++;
		if (s->client) {
			s->st.applied += a;
			s->st.ignored += i;
			sess_progress(s, false);
		}
		return 0;
	}
	if (f->type == KS_RESULT) {
		uint8_t o;
		const uint8_t *key;
		size_t n;
		if (ks_dec_result(f, &o, &key, &n, &why))
			return sess_proto_fail(s, why);
		if (s->client && o == KS_OUT_TOMBSTONE)
			s->st.tombstones++;
		sess_note_outcome(s, o, key, n);
		return 0;
	}
	if (f->type == KS_BYE && !s->client)
		return 1;
	return sess_unexpected(s, f, "from the receiver");
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
			return sess_conn_fail(s, rc);
		struct ks_frame f;
		rc = sess_recv_frame(s, -1, &f);
		if (rc)
			return rc;
		rc = sess_sender_input(s, &f);
		if (rc)
			return rc;
		if (s->client && s->out && f.type == KS_ACK)
			fflush(s->out);
	}
}

/* Encode one change of the feed; stop the read transaction once enough is
 * buffered to be worth a write. */
static int encode_change(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct ks_sess *s = arg;
	if (!ks_filter_select(s->filter, key, key_len))
		return 0; /* passed over, and the watermark moves past it */
	sess_encode_record(s, key, key_len, rec);
	return sess_batch_full(s) || ks_conn_should_flush(s->conn) ? 1 : 0;
}

/*
 * One batch of the feed after *after.  No read transaction is held while
 * writing to the peer: a peer that stops reading would otherwise pin the
 * transaction's snapshot (and the pages it keeps from reuse) until the
 * I/O timeout, or for ever without one.  So each time enough is buffered
 * to be worth a write, the transaction ends (kvc_feed_read, stopped by
 * encode_change), the write happens, and a new one resumes the feed after
 * the last sequence encoded.  Records that change in between come again
 * later in the feed, as across batches.
 * @return records sent, or -errno
 */
int64_t sess_feed_batch(struct ks_sess *s, uint64_t *after)
{
	uint64_t last = *after;
	uint64_t records0 = s->st.records;
	int rc;
	while (!sess_batch_full(s)) {
		uint64_t head;
		rc = kvc_feed_read(s->store, &last, 0, 0, encode_change, s, &head);
		if (rc < 0)
			return sess_store_fail(s, rc, "cannot read the change feed");
		rc = sess_maybe_flush(s);
		if (rc)
			return rc;
		if (last >= head)
			break; /* the whole feed is read */
	}
	/* Records sent, or none but a watermark that moved (a filter passed
	 * over all it read, or the feed held only entries GC had collected):
	 * an empty batch carries it, so the next sync does not read the same
	 * changes again, and a receiver under --watch learns that it has
	 * caught up (READY=1) even when nothing was there to send. */
	int64_t n = (int64_t)(s->st.records - records0);
	if (n || last > *after) {
		rc = sess_end_batch(s, true, last);
		if (rc)
			return rc;
	}
	*after = last;
	return n;
}

int sess_drive_digest(struct ks_sess *s, uint8_t kind);

/* @return 0, 1 (the client said bye), -EINTR (stop), or -errno */
int sess_run_sender(struct ks_sess *s)
{
	struct ks_frame f;
	struct ks_start st;
	const char *why = NULL;
	int rc = sess_recv_expect(s, -1, KS_START, !s->client, &f);
	if (rc)
		return rc;
	if (ks_dec_start(&f, &st, &why))
		return sess_proto_fail(s, why);
	rc = sess_load_identity(s);
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
	sess_progress_plan(s, &plan);
	ks_enc_plan(sess_out(s), &plan);
	rc = sess_flush(s);
	if (rc)
		return rc;
	s->out_n = 0;
	s->out_bytes = 0;
	uint64_t after = st.watermark;
	if (digest) {
		rc = sess_drive_digest(s, KS_DIGEST_ALL);
		if (!rc)
			rc = sess_end_batch(s, head > 0, head);
		if (rc)
			return rc;
		after = head;
	}
	bool watch = s->flags & KS_REQ_WATCH;
	int64_t last_sent = ks_mono_ms();
	for (;;) {
		int64_t n = sess_feed_batch(s, &after);
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
		/* The feed is read through and every batch committed. */
		if (s->acks_in == s->batches_out)
			sess_caught_up(s);
		if (ks_mono_ms() - last_sent >= PING_MS) {
			ks_enc_empty(sess_out(s), KS_PING);
			last_sent = ks_mono_ms();
		}
		rc = ks_conn_wait(s->conn, POLL_MS);
		if (rc < 0)
			return sess_conn_fail(s, rc);
	}
	ks_enc_u64(sess_out(s), KS_DONE, after);
	for (;;) {
		rc = sess_recv_frame(s, -1, &f);
		if (rc)
			return rc;
		if (f.type == KS_FIN) {
			uint64_t a, i;
			if (ks_dec_counts(&f, &a, &i, &why))
				return sess_proto_fail(s, why);
			return 0;
		}
		rc = sess_sender_input(s, &f);
		if (rc)
			return rc;
	}
}
