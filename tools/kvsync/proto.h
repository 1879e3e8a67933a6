/*
 * proto: the kvsync wire format.
 *
 * Encoders append whole frames to a growable buffer; decoders are pure
 * functions over a byte buffer that check every length against what is
 * there and against the protocol's bounds, so a hostile or broken peer can
 * make a decoder fail but never read out of bounds.  Nothing here does I/O
 * or touches a store.  docs/kvsync.md describes the protocol for humans.
 *
 * A connection starts with the 8 magic bytes, then frames:
 *   u32 length (big-endian, bytes that follow, 1..KS_FRAME_MAX)
 *   u8  type
 *   payload (type-specific, big-endian integers)
 *
 * Decoded structures point into the buffer they were decoded from and are
 * valid only as long as that buffer is.
 */
#ifndef KVSYNC_SYNC_PROTO_H
#define KVSYNC_SYNC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvcore.h"
#include "common/buf.h"
#include "filter.h"

#define KS_MAGIC "KVSYNC\0\1"
#define KS_MAGIC_LEN 8u
#define KS_PROTO_VERSION 1u
#define KS_FRAME_LEN_SIZE 4u
/* The largest frame after its length field: type byte plus payload. */
#define KS_FRAME_MAX (1024u * 1024u + 64u)
/* The largest piece of a value carried by one frame. */
#define KS_CHUNK_MAX (256u * 1024u)
#define KS_NONCE_LEN 32u
#define KS_MAC_LEN 32u
#define KS_DIGEST_LEN 16u
#define KS_ERRMSG_MAX 1024u
/* A sender closes a batch once it holds this many records or bytes; a
 * receiver refuses a batch that goes on past them. */
#define KS_BATCH_RECORDS 1000u
#define KS_BATCH_BYTES (16u * 1024u * 1024u)
/* Most entries one key-list frame may hold. */
#define KS_KEYS_MAX 4096u

enum ks_type {
	KS_HELLO = 1,   /* version, flags, nonce: first frame of each side */
	KS_AUTH = 2,    /* a MAC proving knowledge of the token */
	KS_OPEN = 3,    /* client: open the store (flags: create) */
	KS_IDENT = 4,   /* a store's node, epoch, feed head, gc horizon */
	KS_ERROR = 5,   /* exit code and message; the sender closes next */
	KS_BYE = 6,     /* client: end of the connection */
	KS_PING = 7,    /* keeps an idle --watch connection alive */
	KS_REQ = 16,    /* client: start a session (push, pull, check) */
	KS_START = 17,  /* receiver: the watermark it holds for the sender */
	KS_PLAN = 18,   /* sender: incremental after N, or digest */
	KS_REC = 19,    /* one record: header and the first value bytes */
	KS_DATA = 20,   /* more bytes of the current record's value */
	KS_BATCH_END = 21, /* commit the batch (and maybe a watermark) */
	KS_ACK = 22,    /* receiver: a batch was committed */
	KS_RESULT = 23, /* receiver: what happened to one key (-v) */
	KS_DONE = 24,   /* sender: nothing more in this session */
	KS_FIN = 25,    /* receiver: session over */
	KS_FILTER = 26, /* client, right after a REQ flagged KS_REQ_FILTER */
	KS_DIGEST = 32, /* digest of the records in a key range */
	KS_DIGEST_R = 33, /* the other side's verdict on a range */
	KS_KEYLIST = 34,  /* the (key, clock) entries of a small range */
	KS_KEYS = 35,     /* keys wanted (sync) or differing (check) */
	KS_KEYS_END = 36, /* end of the KEYS answer to one key list */
};

enum ks_hello_flags {
	KS_HELLO_SERVER = 1u << 0, /* sent by the serving side */
	KS_HELLO_TOKEN = 1u << 1,  /* this side holds a token and will prove it */
	/* -z: from a client, asks for zstd after the handshake; from a server
	 * (only to a client that asked), agrees */
	KS_HELLO_COMPRESS = 1u << 2,
};

enum ks_open_flags {
	KS_OPEN_CREATE = 1u << 0, /* create the store if it is missing */
	KS_OPEN_WRITE = 1u << 1,  /* the store will receive records */
};

enum ks_op {
	KS_OP_PUSH = 1,  /* the client sends, the server receives */
	KS_OP_PULL = 2,  /* the server sends, the client receives */
	KS_OP_CHECK = 3, /* compare by digests, change nothing */
};

enum ks_req_flags {
	KS_REQ_FULL = 1u << 0,    /* compare by digests whatever the watermark */
	KS_REQ_DRY_RUN = 1u << 1, /* apply nothing, set no watermark */
	KS_REQ_VERBOSE = 1u << 2, /* the receiver reports each key (KS_RESULT) */
	KS_REQ_WATCH = 1u << 3,   /* the sender keeps following its feed */
	KS_REQ_FILTER = 1u << 4,  /* a FILTER frame follows: only the keys it
				     selects are sent, compared and checked */
};

enum ks_start_flags {
	KS_START_EMPTY = 1u << 0, /* the receiver's store has no records */
};

enum ks_plan_mode {
	KS_PLAN_FEED = 1,   /* records after the watermark, in feed order */
	KS_PLAN_DIGEST = 2, /* range digests, then what the receiver lacks */
};

enum ks_outcome {
	KS_OUT_IGNORED = 0, /* not newer than what the receiver holds */
	KS_OUT_APPLIED = 1,
	KS_OUT_TOMBSTONE = 2, /* a tombstone applied */
};

enum ks_digest_kind {
	KS_DIGEST_ALL = 1,  /* every record, tombstones and expired included */
	KS_DIGEST_LIVE = 2, /* only what readers see now */
};

enum ks_key_state {
	KS_STATE_ABSENT = 0,
	KS_STATE_TOMBSTONE = 1,
	KS_STATE_EXPIRED = 2,
	KS_STATE_LIVE = 3,
};

enum ks_keys_kind {
	KS_KEYS_WANT = 1, /* send me these records */
	KS_KEYS_DIFF = 2, /* these keys differ (check) */
};

/* ------------------------------------------------------------ encoding */

/* The frames being written: a growable buffer whose first allocation
 * failure sticks in @err, so a batch is encoded and checked once. */
struct ks_wbuf {
	struct kt_buf buf;
	int err; /* 0 or -ENOMEM */
};

#define KS_WBUF_INIT {KT_BUF_INIT, 0}

void ks_wbuf_release(struct ks_wbuf *b);

struct ks_hello {
	uint32_t version;
	uint32_t flags; /* enum ks_hello_flags */
	uint8_t nonce[KS_NONCE_LEN];
};

struct ks_ident {
	uint64_t node, epoch, head, horizon;
};

struct ks_error {
	uint8_t code; /* the exit code the receiving side should use */
	const char *msg;
	size_t msg_len;
};

struct ks_req {
	uint8_t op; /* enum ks_op */
	uint32_t flags; /* enum ks_req_flags */
	uint64_t max_skew_ms;
};

struct ks_start {
	uint64_t watermark;
	uint64_t head;
	uint32_t flags; /* enum ks_start_flags */
};

struct ks_plan {
	uint8_t mode; /* enum ks_plan_mode */
	uint64_t after;
	uint64_t head;
};

/*
 * A record header.  rec.value is NULL and rec.value_len the whole value's
 * length; the first data_len bytes of the value are at data.
 */
struct ks_rec {
	const uint8_t *key;
	size_t key_len;
	struct kvc_record rec;
	const uint8_t *data;
	size_t data_len;
};

struct ks_range {
	const uint8_t *lo; /* inclusive; lo_len 0: from the start */
	size_t lo_len;
	const uint8_t *hi; /* exclusive; NULL: to the end */
	size_t hi_len;
};

struct ks_digest {
	uint32_t id;
	uint8_t kind; /* enum ks_digest_kind */
	struct ks_range range;
	uint64_t count;
	uint8_t digest[KS_DIGEST_LEN];
};

struct ks_digest_r {
	uint32_t id;
	uint8_t same;
	uint64_t count;
};

struct ks_key_ent {
	const uint8_t *key;
	size_t key_len;
	uint8_t state; /* enum ks_key_state */
	uint64_t hlc, origin;
};

struct ks_diff_ent {
	const uint8_t *key;
	size_t key_len;
	uint8_t a_state, b_state; /* a: the key list's side, b: the answerer's */
	uint64_t a_hlc, a_origin, b_hlc, b_origin;
};

/* The 8 magic bytes that open each direction of a connection. */
int ks_enc_magic(struct ks_wbuf *b);
/* Each appends one whole frame to @b.  @return 0 or -ENOMEM */
int ks_enc_hello(struct ks_wbuf *b, const struct ks_hello *h);
int ks_enc_auth(struct ks_wbuf *b, const uint8_t mac[KS_MAC_LEN]);
int ks_enc_open(struct ks_wbuf *b, uint32_t flags);
int ks_enc_ident(struct ks_wbuf *b, const struct ks_ident *id);
int ks_enc_error(struct ks_wbuf *b, uint8_t code, const char *msg);
int ks_enc_empty(struct ks_wbuf *b, uint8_t type); /* BYE, PING */
int ks_enc_req(struct ks_wbuf *b, const struct ks_req *r);
int ks_enc_start(struct ks_wbuf *b, const struct ks_start *s);
int ks_enc_plan(struct ks_wbuf *b, const struct ks_plan *p);
/* A record header carrying the first @data_len bytes of its value. */
int ks_enc_rec(struct ks_wbuf *b, const void *key, size_t key_len,
	       const struct kvc_record *rec, size_t data_len);
int ks_enc_data(struct ks_wbuf *b, const void *data, size_t len);
int ks_enc_batch_end(struct ks_wbuf *b, bool has_wm, uint64_t wm);
int ks_enc_counts(struct ks_wbuf *b, uint8_t type, uint64_t applied, uint64_t ignored); /* ACK, FIN */
int ks_enc_result(struct ks_wbuf *b, uint8_t outcome, const void *key, size_t key_len);
int ks_enc_u64(struct ks_wbuf *b, uint8_t type, uint64_t v); /* DONE */
int ks_enc_digest(struct ks_wbuf *b, const struct ks_digest *d);
int ks_enc_digest_r(struct ks_wbuf *b, const struct ks_digest_r *d);
int ks_enc_keys_end(struct ks_wbuf *b, uint32_t id);
/* FILTER: u16 prefixes, each (u16 length, bytes); u16 rules, each (u8 kind,
 * u16 length, pattern).  @f within the bounds of filter.h. */
int ks_enc_filter(struct ks_wbuf *b, const struct ks_filter *f);

/*
 * Lists of entries are built in place: begin, add entries, end.  The
 * caller keeps a list under KS_KEYS_MAX entries and KS_FRAME_MAX bytes
 * (ks_list_room says whether another entry of a key length fits).
 */
struct ks_list {
	size_t frame_at; /* offset of the frame in the buffer */
	size_t count_at; /* offset of the entry count */
	uint32_t n;
	uint8_t type;
};
int ks_list_begin_keylist(struct ks_wbuf *b, struct ks_list *l, uint32_t id, uint8_t kind,
			  const struct ks_range *r);
int ks_list_begin_keys(struct ks_wbuf *b, struct ks_list *l, uint32_t id, uint8_t kind);
bool ks_list_room(const struct ks_wbuf *b, const struct ks_list *l, size_t key_len);
int ks_list_add_key(struct ks_wbuf *b, struct ks_list *l, const struct ks_key_ent *e);
int ks_list_add_want(struct ks_wbuf *b, struct ks_list *l, const void *key, size_t key_len);
int ks_list_add_diff(struct ks_wbuf *b, struct ks_list *l, const struct ks_diff_ent *e);
void ks_list_end(struct ks_wbuf *b, struct ks_list *l);

/* ------------------------------------------------------------ decoding */

struct ks_frame {
	uint8_t type;
	const uint8_t *payload;
	size_t len;
};

/**
 * Find the first frame in @buf.
 * @param[out] ret       the frame (pointers into @buf)
 * @param[out] ret_size  bytes the whole frame takes in @buf
 * @param[out] why       on -EPROTO, a static description
 * @return 0, -EAGAIN (incomplete: read more), -EPROTO (a length of 0 or
 *         over KS_FRAME_MAX)
 */
int ks_frame_decode(const void *buf, size_t len, struct ks_frame *ret, size_t *ret_size,
		    const char **why);

/* The name of a frame type for messages ("REC"), or "unknown". */
const char *ks_type_name(uint8_t type);

/*
 * Payload decoders: each checks lengths, bounds and that the payload is
 * consumed exactly, and fills its structure only on success.
 * @return 0 or -EPROTO with a static description in *why
 */
int ks_dec_hello(const struct ks_frame *f, struct ks_hello *ret, const char **why);
int ks_dec_auth(const struct ks_frame *f, uint8_t ret_mac[KS_MAC_LEN], const char **why);
int ks_dec_open(const struct ks_frame *f, uint32_t *ret_flags, const char **why);
int ks_dec_ident(const struct ks_frame *f, struct ks_ident *ret, const char **why);
int ks_dec_error(const struct ks_frame *f, struct ks_error *ret, const char **why);
int ks_dec_empty(const struct ks_frame *f, const char **why);
int ks_dec_req(const struct ks_frame *f, struct ks_req *ret, const char **why);
int ks_dec_start(const struct ks_frame *f, struct ks_start *ret, const char **why);
int ks_dec_plan(const struct ks_frame *f, struct ks_plan *ret, const char **why);
int ks_dec_rec(const struct ks_frame *f, struct ks_rec *ret, const char **why);
int ks_dec_data(const struct ks_frame *f, const uint8_t **ret_data, size_t *ret_len,
		const char **why);
int ks_dec_batch_end(const struct ks_frame *f, bool *ret_has_wm, uint64_t *ret_wm,
		     const char **why);
int ks_dec_counts(const struct ks_frame *f, uint64_t *ret_applied, uint64_t *ret_ignored,
		  const char **why);
int ks_dec_result(const struct ks_frame *f, uint8_t *ret_outcome, const uint8_t **ret_key,
		  size_t *ret_key_len, const char **why);
int ks_dec_u64(const struct ks_frame *f, uint64_t *ret, const char **why);
int ks_dec_digest(const struct ks_frame *f, struct ks_digest *ret, const char **why);
int ks_dec_digest_r(const struct ks_frame *f, struct ks_digest_r *ret, const char **why);
int ks_dec_keys_end(const struct ks_frame *f, uint32_t *ret_id, const char **why);
/* A FILTER, every count, length and pattern checked as the command line
 * checks them; *@ret points into @f.  Unlike the other decoders it builds
 * *@ret as it reads (prefixes are kept canonical on the way): on failure
 * *@ret is scratch. */
int ks_dec_filter(const struct ks_frame *f, struct ks_filter *ret, const char **why);

/*
 * A decoded list of entries.  Decoding validates every entry (and, for a
 * key list, that keys rise strictly and lie in the range), so walking it
 * afterwards cannot fail.
 */
struct ks_list_rd {
	uint32_t id;
	uint8_t kind;
	uint8_t type;
	struct ks_range range; /* KEYLIST only */
	uint32_t n;
	const uint8_t *at, *end; /* the entries not walked yet */
};
int ks_dec_keylist(const struct ks_frame *f, struct ks_list_rd *ret, const char **why);
int ks_dec_keys(const struct ks_frame *f, struct ks_list_rd *ret, const char **why);
/* Next entry of a KEYLIST / KEYS(WANT) / KEYS(DIFF).  @return true, or false at the end */
bool ks_keylist_next(struct ks_list_rd *l, struct ks_key_ent *ret);
bool ks_want_next(struct ks_list_rd *l, const uint8_t **ret_key, size_t *ret_key_len);
bool ks_diff_next(struct ks_list_rd *l, struct ks_diff_ent *ret);

#endif
