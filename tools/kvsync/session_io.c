/*
 * session_io: what every part of a session does the same way: record the
 * first failure with its exit code (later ones are its consequences) and
 * tell the peer why the connection ends; send and receive frames, turning
 * a connection's errors into messages that name the peer; and, for the
 * client, print keys and the progress line.
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
int sess_fail(struct ks_sess *s, int code, const char *fmt, ...)
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

int sess_proto_fail(struct ks_sess *s, const char *why)
{
	return sess_fail(s, KS_EXIT_PROTO, "protocol error: %s", why ? why : "malformed frame");
}

int sess_unexpected(struct ks_sess *s, const struct ks_frame *f, const char *when)
{
	if (!strcmp(ks_type_name(f->type), "unknown"))
		return sess_fail(s, KS_EXIT_PROTO, "protocol error: unknown frame type %u %s",
			    f->type, when);
	return sess_fail(s, KS_EXIT_PROTO, "protocol error: unexpected %s frame %s",
		    ks_type_name(f->type), when);
}

int sess_store_fail(struct ks_sess *s, int rc, const char *what)
{
	return sess_fail(s, KS_EXIT_STORE, "%s: %s", what, strerror(-rc));
}

void sess_printable(char *out, size_t size, const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t j = 0;
	for (size_t i = 0; i < n && j + 1 < size; i++)
		out[j++] = c[i] >= 0x20 && c[i] != 0x7f ? (char)c[i] : '?';
	out[j] = 0;
}

int sess_peer_error(struct ks_sess *s, const struct ks_frame *f)
{
	struct ks_error e;
	const char *why = NULL;
	if (ks_dec_error(f, &e, &why))
		return sess_proto_fail(s, why);
	char msg[KS_ERRMSG_MAX + 1];
	sess_printable(msg, sizeof(msg), e.msg, e.msg_len);
	/* A kvsync that predates filters refuses the flag that announces
	 * one: say so rather than leave the user to decode it. */
	const char *old = s->client && s->filter && e.code == KS_EXIT_PROTO &&
				  strstr(msg, "REQ with unknown flags")
			  ? "the server's kvsync does not support --prefix, --include or --exclude (upgrade it); "
			  : "";
	int rc = sess_fail(s, e.code, "%s%s: %s", old, s->peer_word, msg);
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
			return sess_peer_error(s, &f);
	}
	return 0;
}

int sess_conn_fail(struct ks_sess *s, int rc)
{
	switch (rc) {
	case -EINTR:
		return -EINTR;
	case -EPROTO:
		return sess_proto_fail(s, ks_conn_why(s->conn));
	case -ETIMEDOUT:
		return sess_fail(s, KS_EXIT_PROTO, "the %s stopped answering (timed out)", s->peer_word);
	case -EPIPE:
		/* The peer went away while we wrote: it may have said why. */
		rc = peer_parting(s);
		return rc ? rc : sess_fail(s, KS_EXIT_PROTO, "connection closed by the %s", s->peer_word);
	case -ECONNRESET:
		return sess_fail(s, KS_EXIT_PROTO, "connection closed by the %s", s->peer_word);
	default:
		return sess_fail(s, KS_EXIT_PROTO, "connection error: %s", strerror(-rc));
	}
}

int sess_flush(struct ks_sess *s)
{
	int rc = ks_conn_flush(s->conn);
	return rc ? sess_conn_fail(s, rc) : 0;
}

int sess_maybe_flush(struct ks_sess *s)
{
	int rc = ks_conn_maybe_flush(s->conn);
	return rc ? sess_conn_fail(s, rc) : 0;
}

struct ks_wbuf *sess_out(struct ks_sess *s)
{
	return ks_conn_out(s->conn);
}

/* The next frame that is not a PING; an ERROR from the peer becomes our
 * failure. */
int sess_recv_frame(struct ks_sess *s, int timeout_ms, struct ks_frame *f)
{
	for (;;) {
		int rc = ks_conn_recv(s->conn, timeout_ms, f);
		if (rc)
			return sess_conn_fail(s, rc);
		if (f->type == KS_ERROR)
			return sess_peer_error(s, f);
		if (f->type != KS_PING)
			return 0;
		if (ks_dec_empty(f, NULL))
			return sess_proto_fail(s, "PING with a payload");
	}
}

/*
 * Receive the next frame, which must be of @type; with @bye_ends, a BYE
 * instead (a client ending the connection between sessions) returns 1.
 * @return 0, 1 (BYE) or the failure
 */
int sess_recv_expect(struct ks_sess *s, int timeout_ms, uint8_t type, bool bye_ends,
		       struct ks_frame *f)
{
	int rc = sess_recv_frame(s, timeout_ms, f);
	if (rc)
		return rc;
	if (bye_ends && f->type == KS_BYE)
		return 1;
	if (f->type != type) {
		char when[32];
		snprintf(when, sizeof(when), "instead of %s", ks_type_name(type));
		return sess_unexpected(s, f, when);
	}
	return 0;
}

/* Tell the peer why we end the connection, unless it told us. */
void sess_tell_peer(struct ks_sess *s)
{
	/* Before our greeting, an ERROR frame would read as garbage. */
	if (!s->code || s->from_peer || !s->conn || !s->greeted)
		return;
	ks_enc_error(sess_out(s), (uint8_t)s->code, s->err);
	ks_conn_flush(s->conn);
}

void sess_print_key(FILE *f, const char *prefix, const uint8_t *key, size_t n,
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

void sess_progress(struct ks_sess *s, bool final)
{
	if (!s->progress)
		return;
	uint64_t done = s->st.records - s->prog_records0;
	if (final) {
		s->prog.done = done;
		s->prog.bytes = s->prog_bytes;
		kt_progress_end(&s->prog);
	} else {
		kt_progress_update_bytes(&s->prog, done, s->prog_bytes);
	}
}

/*
 * The plan tells both sides how far the feed goes: head - after sequence
 * numbers at most, fewer when a key changed more than once (the feed keeps
 * its last change only), so an upper bound; none for a digest comparison.
 */
void sess_progress_plan(struct ks_sess *s, const struct ks_plan *plan)
{
	if (!s->progress || plan->mode != KS_PLAN_FEED || plan->head <= plan->after)
		return;
	kt_progress_set_total(&s->prog, plan->head - plan->after, true);
}

/* The receiver holds what the sender held when the session began: say so
 * once (--watch readiness). */
void sess_caught_up(struct ks_sess *s)
{
	if (s->caught || !s->caught_up)
		return;
	s->caught = true;
	s->caught_up(s->caught_up_arg);
}

void sess_note_outcome(struct ks_sess *s, uint8_t outcome, const uint8_t *key, size_t n)
{
	if (!s->client || !(s->flags & KS_REQ_VERBOSE))
		return;
	static const char *const sym[] = {"= ", "+ ", "- "};
	sess_print_key(s->out, sym[outcome], key, n, "");
}

int sess_load_identity(struct ks_sess *s)
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
		return sess_store_fail(s, rc, "cannot read the store's feed");
	if (s->self.horizon > s->self.head)
		s->self.horizon = s->self.head;
	return 0;
}

/* Run the session under filter @f (NULL or empty: none), its fingerprint
 * computed once: a 16-byte BLAKE2b of ks_filter_canon's bytes.
 * @return 0 or -ENOMEM (the session has failed) */
int sess_set_filter(struct ks_sess *s, const struct ks_filter *f)
{
	s->filter = ks_filter_empty(f) ? NULL : f;
	memset(s->filter_fp, 0, sizeof(s->filter_fp));
	if (!s->filter)
		return 0;
	if (ks_filter_fingerprint(f, s->filter_fp)) {
		s->filter = NULL;
		return sess_fail(s, KS_EXIT_STORE, "out of memory");
	}
	return 0;
}
