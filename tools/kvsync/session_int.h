/*
 * session_int.h: the inside of the session engine (session.h is its
 * outside), shared by the files it is split into:
 *
 *   session.c        the handshake, the client's sessions, the server
 *   session_io.c     failures, frames in and out, the client's output
 *   sender.c         the sender: the feed, or the records a digest asks for
 *   receiver.c       the receiver: batches applied with the watermark
 *   digest_driver.c  the digest comparison (driver and responder), --check
 *
 * Not for use outside tools/kvsync.  Every function here works on one
 * struct ks_sess, in its connection's thread.
 */
#ifndef KVSYNC_SESSION_INT_H
#define KVSYNC_SESSION_INT_H

#include "session.h"

#include "common/progress.h"

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
	/* the session's filter (NULL: none): the client's is lent by its
	 * options, the server's decoded from FILTER and owned */
	const struct ks_filter *filter;
	struct ks_filter *filter_owned;
	uint8_t filter_fp[KS_FILTER_FP_LEN]; /* its fingerprint: the scope of
						its watermark */
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
	uint64_t prog_records0; /* st.records when the session began */
	uint64_t prog_bytes;    /* key, value and metadata bytes this session */
	/* --watch readiness, client only: called once a session when the
	 * receiver holds what the sender held at its start */
	void (*caught_up)(void *arg);
	void *caught_up_arg;
	bool caught;
	uint64_t plan_head;     /* the sender's head when the session began */
	uint64_t batches_out, acks_in; /* sender: batches closed, and acknowledged */
	/* the first failure */
	int code;
	bool from_peer; /* the failure is the peer's, reported by it */
	char err[768];
};

struct ks_client {
	struct ks_sess s;
	struct ks_client_opts o;
};

/* session_io.c: failures (the first is kept, with its exit code), frames  * in and out, and what the client prints */
__attribute__((format(printf, 3, 4)))
int sess_fail(struct ks_sess *s, int code, const char *fmt, ...);
int sess_proto_fail(struct ks_sess *s, const char *why);
int sess_unexpected(struct ks_sess *s, const struct ks_frame *f, const char *when);
int sess_store_fail(struct ks_sess *s, int rc, const char *what);
void sess_printable(char *out, size_t size, const void *p, size_t n);
int sess_peer_error(struct ks_sess *s, const struct ks_frame *f);
int sess_conn_fail(struct ks_sess *s, int rc);
int sess_flush(struct ks_sess *s);
int sess_maybe_flush(struct ks_sess *s);
struct ks_wbuf *sess_out(struct ks_sess *s);
int sess_recv_frame(struct ks_sess *s, int timeout_ms, struct ks_frame *f);
int sess_recv_expect(struct ks_sess *s, int timeout_ms, uint8_t type, bool bye_ends,
		       struct ks_frame *f);
void sess_tell_peer(struct ks_sess *s);
void sess_print_key(FILE *f, const char *prefix, const uint8_t *key, size_t n,
		      const char *suffix);
void sess_progress(struct ks_sess *s, bool final);
void sess_progress_plan(struct ks_sess *s, const struct ks_plan *plan);
void sess_note_outcome(struct ks_sess *s, uint8_t outcome, const uint8_t *key, size_t n);
void sess_caught_up(struct ks_sess *s);
int sess_load_identity(struct ks_sess *s);
int sess_set_filter(struct ks_sess *s, const struct ks_filter *f);

/* sender.c: the side that ships records */
int sess_end_batch(struct ks_sess *s, bool has_wm, uint64_t wm);
bool sess_batch_full(const struct ks_sess *s);
void sess_encode_record(struct ks_sess *s, const void *key, size_t key_len,
			  const struct kvc_record *rec);
int sess_sender_input(struct ks_sess *s, const struct ks_frame *f);
int64_t sess_feed_batch(struct ks_sess *s, uint64_t *after);
int sess_run_sender(struct ks_sess *s);

/* digest_driver.c: the digest comparison, both sides, and --check */
int sess_drive_digest(struct ks_sess *s, uint8_t kind);
int sess_answer_digest(struct ks_sess *s, const struct ks_frame *f, uint8_t kind);
int sess_answer_keylist(struct ks_sess *s, const struct ks_frame *f, uint8_t kind);
int sess_run_check_responder(struct ks_sess *s);
int sess_run_check_driver(struct ks_sess *s);

/* receiver.c: the side that applies records */
int sess_run_receiver(struct ks_sess *s);

#endif
