/*
 * proto: the bounds-checked decoders of the kvsync frames (see proto.h
 * for the frame layout and docs/kvsync.md for the protocol; proto_enc.c
 * has the encoders).  Decoders are pure: they read only the bytes they are
 * given, reject anything outside the protocol's bounds and never allocate,
 * which is what lets tests/fuzz/fuzz_frames.c feed them arbitrary bytes.
 */
#include "proto.h"
#include "proto_layout.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ decoding */

/* A cursor over a payload; the first failure sticks and names itself. */
struct rd {
	const uint8_t *p, *end;
	const char *why;
};

static bool rd_need(struct rd *r, size_t n, const char *what)
{
	if (r->why)
		return false;
	if ((size_t)(r->end - r->p) < n) {
		r->why = what;
		return false;
	}
	return true;
}

static uint64_t rd_uint(struct rd *r, size_t n, const char *what)
{
	uint64_t v = 0;
	if (!rd_need(r, n, what))
		return 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | r->p[i];
	r->p += n;
	return v;
}

static uint8_t rd_u8(struct rd *r, const char *what)
{
	return (uint8_t)rd_uint(r, 1, what);
}

static uint16_t rd_u16(struct rd *r, const char *what)
{
	return (uint16_t)rd_uint(r, 2, what);
}

static uint32_t rd_u32(struct rd *r, const char *what)
{
	return (uint32_t)rd_uint(r, 4, what);
}

static uint64_t rd_u64(struct rd *r, const char *what)
{
	return rd_uint(r, 8, what);
}

static const uint8_t *rd_bytes(struct rd *r, size_t n, const char *what)
{
	if (!rd_need(r, n, what))
		return NULL;
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

static void rd_fail(struct rd *r, const char *why)
{
	if (!r->why)
		r->why = why;
}

static struct rd rd_of(const struct ks_frame *f)
{
	struct rd r = {f->payload, f->payload + f->len, NULL};
	return r;
}

/* End of a payload: all of it must have been read. */
static int rd_done(struct rd *r, const char **why)
{
	if (!r->why && r->p != r->end)
		r->why = "trailing bytes after the payload";
	if (r->why) {
		if (why)
			*why = r->why;
		return -EPROTO;
	}
	return 0;
}

static int rd_type(const struct ks_frame *f, uint8_t type, const char **why)
{
	if (f->type == type)
		return 0;
	if (why)
		*why = "unexpected frame type";
	return -EPROTO;
}

int ks_frame_decode(const void *buf, size_t len, struct ks_frame *ret, size_t *ret_size,
		    const char **why)
{
	const uint8_t *p = buf;
	if (len < KS_FRAME_LEN_SIZE)
		return -EAGAIN;
	uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (n == 0 || n > KS_FRAME_MAX) {
		if (why)
			*why = n ? "frame length over the limit" : "frame of length 0";
		return -EPROTO;
	}
	if (len - KS_FRAME_LEN_SIZE < n)
		return -EAGAIN;
	ret->type = p[4];
	ret->payload = p + KS_FRAME_LEN_SIZE + 1;
	ret->len = n - 1;
	*ret_size = KS_FRAME_LEN_SIZE + (size_t)n;
	return 0;
}

const char *ks_type_name(uint8_t type)
{
	switch (type) {
	case KS_HELLO: return "HELLO";
	case KS_AUTH: return "AUTH";
	case KS_OPEN: return "OPEN";
	case KS_IDENT: return "IDENT";
	case KS_ERROR: return "ERROR";
	case KS_BYE: return "BYE";
	case KS_PING: return "PING";
	case KS_REQ: return "REQ";
	case KS_START: return "START";
	case KS_PLAN: return "PLAN";
	case KS_REC: return "REC";
	case KS_DATA: return "DATA";
	case KS_BATCH_END: return "BATCH_END";
	case KS_ACK: return "ACK";
	case KS_RESULT: return "RESULT";
	case KS_DONE: return "DONE";
	case KS_FIN: return "FIN";
	case KS_FILTER: return "FILTER";
	case KS_DIGEST: return "DIGEST";
	case KS_DIGEST_R: return "DIGEST_R";
	case KS_KEYLIST: return "KEYLIST";
	case KS_KEYS: return "KEYS";
	case KS_KEYS_END: return "KEYS_END";
	default: return "unknown";
	}
}

const struct ks_layout ks_layout_ident = {
	KS_IDENT, 4, sizeof(struct ks_ident), "short IDENT",
	{ KS_FIELD_IN(struct ks_ident, node, 1, UINT64_MAX,
		      "IDENT with an impossible store identity"),
	  KS_FIELD(struct ks_ident, epoch), KS_FIELD(struct ks_ident, head),
	  KS_FIELD(struct ks_ident, horizon) },
};
const struct ks_layout ks_layout_req = {
	KS_REQ, 3, sizeof(struct ks_req), "short REQ",
	{ KS_FIELD_IN(struct ks_req, op, KS_OP_PUSH, KS_OP_CHECK, "REQ with an unknown operation"),
	  KS_FIELD_FLAGS(struct ks_req, flags,
			 KS_REQ_FULL | KS_REQ_DRY_RUN | KS_REQ_VERBOSE | KS_REQ_WATCH |
			 KS_REQ_FILTER,
			 "REQ with unknown flags"),
	  KS_FIELD(struct ks_req, max_skew_ms) },
};
const struct ks_layout ks_layout_start = {
	KS_START, 3, sizeof(struct ks_start), "short START",
	{ KS_FIELD(struct ks_start, watermark), KS_FIELD(struct ks_start, head),
	  KS_FIELD_FLAGS(struct ks_start, flags, KS_START_EMPTY, "START with unknown flags") },
};
const struct ks_layout ks_layout_plan = {
	KS_PLAN, 3, sizeof(struct ks_plan), "short PLAN",
	{ KS_FIELD_IN(struct ks_plan, mode, KS_PLAN_FEED, KS_PLAN_DIGEST,
		      "PLAN with an unknown mode"),
	  KS_FIELD(struct ks_plan, after), KS_FIELD(struct ks_plan, head) },
};
const struct ks_layout ks_layout_digest_r = {
	KS_DIGEST_R, 3, sizeof(struct ks_digest_r), "short DIGEST_R",
	{ KS_FIELD(struct ks_digest_r, id),
	  KS_FIELD_IN(struct ks_digest_r, same, 0, 1, "DIGEST_R with a bad verdict"),
	  KS_FIELD(struct ks_digest_r, count) },
};

_Static_assert(sizeof(struct ks_ident) <= KS_LAYOUT_SIZE_MAX &&
	       sizeof(struct ks_req) <= KS_LAYOUT_SIZE_MAX &&
	       sizeof(struct ks_start) <= KS_LAYOUT_SIZE_MAX &&
	       sizeof(struct ks_plan) <= KS_LAYOUT_SIZE_MAX &&
	       sizeof(struct ks_digest_r) <= KS_LAYOUT_SIZE_MAX,
	       "a fixed layout's struct outgrew the decoder's scratch space");

/*
 * Decode frame @f of layout @l into @ret (a struct of l->size bytes),
 * which is written only when the payload is whole, every field is in the
 * layout's bounds, and @check (NULL: none) finds nothing wrong across the
 * fields: it returns NULL, or what is wrong.
 * @return 0, -EPROTO with *@why set
 */
static int dec_fixed(const struct ks_frame *f, const struct ks_layout *l,
		     const char *(*check)(const void *v), void *ret, const char **why)
{
	_Alignas(max_align_t) unsigned char v[KS_LAYOUT_SIZE_MAX];

	if (rd_type(f, l->type, why))
		return -EPROTO;
	uint64_t xs[sizeof(l->f) / sizeof(l->f[0])];

	memset(v, 0, l->size);
	struct rd r = rd_of(f);
	for (unsigned i = 0; i < l->n; i++) {
		const struct ks_field *fd = &l->f[i];
		uint64_t x = rd_uint(&r, fd->width, l->short_msg);
		unsigned char *at = v + fd->off;

		xs[i] = x;

		switch (fd->width) {
		case 1: *at = (uint8_t)x; break;
		case 2: { uint16_t x16 = (uint16_t)x; memcpy(at, &x16, 2); break; }
		case 4: { uint32_t x32 = (uint32_t)x; memcpy(at, &x32, 4); break; }
		default: memcpy(at, &x, 8); break;
		}
	}
	/* Bounds once every field is read: a short payload says so first. */
	for (unsigned i = 0; i < l->n && !r.why; i++) {
		const struct ks_field *fd = &l->f[i];
		uint64_t x = xs[i];

		if (x < fd->min || (fd->max && x > fd->max) || (fd->flags && (x & ~fd->flags)))
			rd_fail(&r, fd->bad);
	}
	const char *bad = r.why || !check ? NULL : check(v);
	if (bad)
		rd_fail(&r, bad);
	if (rd_done(&r, why))
		return -EPROTO;
	memcpy(ret, v, l->size);
	return 0;
}

int ks_dec_hello(const struct ks_frame *f, struct ks_hello *ret, const char **why)
{
	if (rd_type(f, KS_HELLO, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	struct ks_hello h;
	memset(&h, 0, sizeof(h));
	h.version = rd_u32(&r, "short HELLO");
	if (!r.why && h.version != KS_PROTO_VERSION) {
		/* Another version may lay the rest out differently: the
		 * caller only needs the number to say what went wrong. */
		*ret = h;
		return 0;
	}
	h.flags = rd_u32(&r, "short HELLO");
	const uint8_t *nonce = rd_bytes(&r, KS_NONCE_LEN, "short HELLO");
	if (h.flags & ~(uint32_t)(KS_HELLO_SERVER | KS_HELLO_TOKEN | KS_HELLO_COMPRESS))
		rd_fail(&r, "HELLO with unknown flags");
	if (rd_done(&r, why))
		return -EPROTO;
	memcpy(h.nonce, nonce, KS_NONCE_LEN);
	*ret = h;
	return 0;
}

int ks_dec_auth(const struct ks_frame *f, uint8_t ret_mac[KS_MAC_LEN], const char **why)
{
	if (rd_type(f, KS_AUTH, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	const uint8_t *mac = rd_bytes(&r, KS_MAC_LEN, "short AUTH");
	if (rd_done(&r, why))
		return -EPROTO;
	memcpy(ret_mac, mac, KS_MAC_LEN);
	return 0;
}

int ks_dec_open(const struct ks_frame *f, uint32_t *ret_flags, const char **why)
{
	if (rd_type(f, KS_OPEN, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	uint32_t flags = rd_u32(&r, "short OPEN");
	if (flags & ~(uint32_t)(KS_OPEN_CREATE | KS_OPEN_WRITE))
		rd_fail(&r, "unknown OPEN flags");
	if (rd_done(&r, why))
		return -EPROTO;
	*ret_flags = flags;
	return 0;
}

/* A store's identity whose horizon is past its head is impossible. */
static const char *ident_check(const void *v)
{
	const struct ks_ident *x = v;

	return x->horizon > x->head ? "IDENT with an impossible store identity" : NULL;
}

int ks_dec_ident(const struct ks_frame *f, struct ks_ident *ret, const char **why)
{
	return dec_fixed(f, &ks_layout_ident, ident_check, ret, why);
}

/* The other frames of a fixed layout: the table says all. */
#define FIXED_DECODER(name, T)                                                \
	int ks_dec_##name(const struct ks_frame *f, T *ret, const char **why) \
	{                                                                     \
		return dec_fixed(f, &ks_layout_##name, NULL, ret, why);       \
	}

FIXED_DECODER(req, struct ks_req)
FIXED_DECODER(start, struct ks_start)
FIXED_DECODER(plan, struct ks_plan)
FIXED_DECODER(digest_r, struct ks_digest_r)

int ks_dec_error(const struct ks_frame *f, struct ks_error *ret, const char **why)
{
	if (rd_type(f, KS_ERROR, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	struct ks_error e;
	e.code = rd_u8(&r, "short ERROR");
	e.msg_len = rd_u16(&r, "short ERROR");
	if (e.msg_len > KS_ERRMSG_MAX)
		rd_fail(&r, "ERROR message over the limit");
	e.msg = (const char *)rd_bytes(&r, e.msg_len, "short ERROR");
	if (!r.why && (e.code < 1 || e.code > 5))
		rd_fail(&r, "ERROR with an unknown exit code");
	if (rd_done(&r, why))
		return -EPROTO;
	*ret = e;
	return 0;
}

int ks_dec_empty(const struct ks_frame *f, const char **why)
{
	if (f->len == 0)
		return 0;
	if (why)
		*why = "trailing bytes after the payload";
	return -EPROTO;
}

int ks_dec_rec(const struct ks_frame *f, struct ks_rec *ret, const char **why)
{
	if (rd_type(f, KS_REC, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	struct ks_rec x;
	memset(&x, 0, sizeof(x));
	x.key_len = rd_u16(&r, "short REC");
	if (!r.why && (x.key_len == 0 || x.key_len > KVC_KEY_MAX))
		rd_fail(&r, "REC with a key length out of bounds");
	x.key = rd_bytes(&r, x.key_len, "short REC");
	x.rec.flags = rd_u32(&r, "short REC");
	x.rec.mode = rd_u32(&r, "short REC");
	x.rec.uid = rd_u32(&r, "short REC");
	x.rec.gid = rd_u32(&r, "short REC");
	x.rec.ttl = rd_u32(&r, "short REC");
	x.rec.expiration = (int64_t)rd_u64(&r, "short REC");
	x.rec.mtime_ns = (int64_t)rd_u64(&r, "short REC");
	x.rec.ctime_ns = (int64_t)rd_u64(&r, "short REC");
	x.rec.hlc = rd_u64(&r, "short REC");
	x.rec.origin = rd_u64(&r, "short REC");
	x.rec.seq = rd_u64(&r, "short REC");
	x.rec.metadata_len = rd_u16(&r, "short REC");
	if (x.rec.metadata_len > KVC_METADATA_MAX)
		rd_fail(&r, "REC with metadata over the limit");
	x.rec.metadata = (const char *)rd_bytes(&r, x.rec.metadata_len, "short REC");
	if (x.rec.metadata_len == 0)
		x.rec.metadata = NULL;
	x.rec.value_len = rd_u32(&r, "short REC");
	if (x.rec.value_len > KVC_VALUE_MAX)
		rd_fail(&r, "REC with a value over the limit");
	if (x.rec.flags & ~(uint32_t)(KVC_REC_TOMBSTONE | KVC_REC_HAS_MODE | KVC_REC_HAS_OWNER))
		rd_fail(&r, "REC with unknown record flags");
	if ((x.rec.flags & KVC_REC_TOMBSTONE) && (x.rec.value_len || x.rec.metadata_len))
		rd_fail(&r, "REC of a tombstone with a value");
	if (x.rec.hlc == 0 || x.rec.origin == 0)
		rd_fail(&r, "REC without a clock or origin");
	if (x.rec.mode & ~07777u)
		rd_fail(&r, "REC with an invalid mode");
	if (!r.why) {
		x.data = r.p;
		x.data_len = (size_t)(r.end - r.p);
		r.p = r.end;
		if (x.data_len > KS_CHUNK_MAX || x.data_len > x.rec.value_len)
			rd_fail(&r, "REC carrying more value bytes than allowed");
	}
	if (rd_done(&r, why))
		return -EPROTO;
	*ret = x;
	return 0;
}

int ks_dec_data(const struct ks_frame *f, const uint8_t **ret_data, size_t *ret_len,
		const char **why)
{
	if (rd_type(f, KS_DATA, why))
		return -EPROTO;
	if (f->len == 0 || f->len > KS_CHUNK_MAX) {
		if (why)
			*why = "DATA chunk of a bad size";
		return -EPROTO;
	}
	*ret_data = f->payload;
	*ret_len = f->len;
	return 0;
}

int ks_dec_batch_end(const struct ks_frame *f, bool *ret_has_wm, uint64_t *ret_wm,
		     const char **why)
{
	if (rd_type(f, KS_BATCH_END, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	uint8_t has = rd_u8(&r, "short BATCH_END");
	uint64_t wm = rd_u64(&r, "short BATCH_END");
	if (has > 1 || (has && wm == 0))
		rd_fail(&r, "BATCH_END with a bad watermark");
	if (rd_done(&r, why))
		return -EPROTO;
	*ret_has_wm = has;
	*ret_wm = wm;
	return 0;
}

int ks_dec_counts(const struct ks_frame *f, uint64_t *ret_applied, uint64_t *ret_ignored,
		  const char **why)
{
	if (f->type != KS_ACK && f->type != KS_FIN)
		return rd_type(f, KS_ACK, why);
	struct rd r = rd_of(f);
	uint64_t a = rd_u64(&r, "short ACK");
	uint64_t i = rd_u64(&r, "short ACK");
	if (rd_done(&r, why))
		return -EPROTO;
	*ret_applied = a;
	*ret_ignored = i;
	return 0;
}

int ks_dec_result(const struct ks_frame *f, uint8_t *ret_outcome, const uint8_t **ret_key,
		  size_t *ret_key_len, const char **why)
{
	if (rd_type(f, KS_RESULT, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	uint8_t o = rd_u8(&r, "short RESULT");
	size_t n = rd_u16(&r, "short RESULT");
	if (!r.why && (n == 0 || n > KVC_KEY_MAX))
		rd_fail(&r, "RESULT with a key length out of bounds");
	const uint8_t *key = rd_bytes(&r, n, "short RESULT");
	if (o > KS_OUT_TOMBSTONE)
		rd_fail(&r, "RESULT with an unknown outcome");
	if (rd_done(&r, why))
		return -EPROTO;
	*ret_outcome = o;
	*ret_key = key;
	*ret_key_len = n;
	return 0;
}

int ks_dec_u64(const struct ks_frame *f, uint64_t *ret, const char **why)
{
	struct rd r = rd_of(f);
	uint64_t v = rd_u64(&r, "short frame");
	if (rd_done(&r, why))
		return -EPROTO;
	*ret = v;
	return 0;
}

static void rd_key(struct rd *r, const uint8_t **key, size_t *key_len, bool may_be_empty,
		   const char *what)
{
	size_t n = rd_u16(r, what);
	if (!r->why && ((n == 0 && !may_be_empty) || n > KVC_KEY_MAX))
		rd_fail(r, "key length out of bounds");
	*key = rd_bytes(r, n, what);
	*key_len = n;
}

static void rd_range(struct rd *r, struct ks_range *rg, const char *what)
{
	rd_key(r, &rg->lo, &rg->lo_len, true, what);
	uint8_t has_hi = rd_u8(r, what);
	rg->hi = NULL;
	rg->hi_len = 0;
	if (has_hi > 1)
		rd_fail(r, "range with a bad upper bound flag");
	if (has_hi == 1) {
		rd_key(r, &rg->hi, &rg->hi_len, false, what);
		if (!r->why && kvc_key_cmp(rg->lo, rg->lo_len, rg->hi, rg->hi_len) >= 0)
			rd_fail(r, "empty or inverted key range");
	}
}

int ks_dec_digest(const struct ks_frame *f, struct ks_digest *ret, const char **why)
{
	if (rd_type(f, KS_DIGEST, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	struct ks_digest d;
	d.id = rd_u32(&r, "short DIGEST");
	d.kind = rd_u8(&r, "short DIGEST");
	if (d.kind != KS_DIGEST_ALL && d.kind != KS_DIGEST_LIVE)
		rd_fail(&r, "DIGEST of an unknown kind");
	rd_range(&r, &d.range, "short DIGEST");
	d.count = rd_u64(&r, "short DIGEST");
	const uint8_t *dg = rd_bytes(&r, KS_DIGEST_LEN, "short DIGEST");
	if (rd_done(&r, why))
		return -EPROTO;
	memcpy(d.digest, dg, KS_DIGEST_LEN);
	*ret = d;
	return 0;
}

int ks_dec_keys_end(const struct ks_frame *f, uint32_t *ret_id, const char **why)
{
	if (rd_type(f, KS_KEYS_END, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	uint32_t id = rd_u32(&r, "short KEYS_END");
	if (rd_done(&r, why))
		return -EPROTO;
	*ret_id = id;
	return 0;
}

int ks_dec_filter(const struct ks_frame *f, struct ks_filter *ret, const char **why)
{
	if (rd_type(f, KS_FILTER, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	const char *bad = NULL;
	/* Counts are checked before anything is walked: the filter has
	 * room for the bounds and no more. */
	uint16_t np = rd_u16(&r, "short FILTER");
	if (np > KS_FILTER_PREFIXES_MAX)
		rd_fail(&r, "FILTER with too many prefixes");
	ks_filter_init(ret);
	for (uint16_t i = 0; i < np && !r.why; i++) {
		size_t n = rd_u16(&r, "short FILTER");
		const uint8_t *p = rd_bytes(&r, n, "short FILTER");
		if (!r.why && ks_filter_add_prefix(ret, p, n, &bad))
			rd_fail(&r, "FILTER with a bad prefix");
	}
	uint16_t nr = rd_u16(&r, "short FILTER");
	if (nr > KS_FILTER_RULES_MAX)
		rd_fail(&r, "FILTER with too many rules");
	for (uint16_t i = 0; i < nr && !r.why; i++) {
		uint8_t kind = rd_u8(&r, "short FILTER");
		size_t n = rd_u16(&r, "short FILTER");
		const uint8_t *p = rd_bytes(&r, n, "short FILTER");
		if (!r.why && ks_filter_add_rule(ret, kind, p, n, &bad))
			rd_fail(&r, "FILTER with a bad rule");
	}
	return rd_done(&r, why);
}

static bool state_ok(uint8_t s, bool absent_ok)
{
	return s <= KS_STATE_LIVE && (absent_ok || s != KS_STATE_ABSENT);
}

/* Walk every entry of a list once, checking it; @r is at the first entry. */
static void rd_entries(struct rd *r, struct ks_list_rd *l)
{
	const uint8_t *prev = NULL;
	size_t prev_len = 0;
	for (uint32_t i = 0; i < l->n && !r->why; i++) {
		const uint8_t *key;
		size_t key_len;
		rd_key(r, &key, &key_len, false, "short key list");
		if (r->why)
			break;
		if (l->type == KS_KEYLIST) {
			uint8_t st = rd_u8(r, "short key list");
			rd_u64(r, "short key list");
			rd_u64(r, "short key list");
			if (!state_ok(st, false))
				rd_fail(r, "key list entry with a bad state");
			if (kvc_key_cmp(key, key_len, l->range.lo, l->range.lo_len) < 0 ||
			    (l->range.hi &&
			     kvc_key_cmp(key, key_len, l->range.hi, l->range.hi_len) >= 0))
				rd_fail(r, "key list entry outside its range");
			if (prev && kvc_key_cmp(prev, prev_len, key, key_len) >= 0)
				rd_fail(r, "key list not in ascending key order");
		} else if (l->kind == KS_KEYS_DIFF) {
			uint8_t a = rd_u8(r, "short key list");
			rd_u64(r, "short key list");
			rd_u64(r, "short key list");
			uint8_t b = rd_u8(r, "short key list");
			rd_u64(r, "short key list");
			rd_u64(r, "short key list");
			if (!state_ok(a, true) || !state_ok(b, true))
				rd_fail(r, "difference entry with a bad state");
		}
		prev = key;
		prev_len = key_len;
	}
}

static int list_finish(struct rd *r, struct ks_list_rd *l, const uint8_t *entries,
		       struct ks_list_rd *ret, const char **why)
{
	if (l->n > KS_KEYS_MAX)
		rd_fail(r, "key list with too many entries");
	rd_entries(r, l);
	if (rd_done(r, why))
		return -EPROTO;
	l->at = entries;
	l->end = r->end;
	*ret = *l;
	return 0;
}

int ks_dec_keylist(const struct ks_frame *f, struct ks_list_rd *ret, const char **why)
{
	if (rd_type(f, KS_KEYLIST, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	struct ks_list_rd l;
	memset(&l, 0, sizeof(l));
	l.type = KS_KEYLIST;
	l.id = rd_u32(&r, "short KEYLIST");
	l.kind = rd_u8(&r, "short KEYLIST");
	if (l.kind != KS_DIGEST_ALL && l.kind != KS_DIGEST_LIVE)
		rd_fail(&r, "KEYLIST of an unknown kind");
	rd_range(&r, &l.range, "short KEYLIST");
	l.n = rd_u32(&r, "short KEYLIST");
	return list_finish(&r, &l, r.p, ret, why);
}

int ks_dec_keys(const struct ks_frame *f, struct ks_list_rd *ret, const char **why)
{
	if (rd_type(f, KS_KEYS, why))
		return -EPROTO;
	struct rd r = rd_of(f);
	struct ks_list_rd l;
	memset(&l, 0, sizeof(l));
	l.type = KS_KEYS;
	l.id = rd_u32(&r, "short KEYS");
	l.kind = rd_u8(&r, "short KEYS");
	if (l.kind != KS_KEYS_WANT && l.kind != KS_KEYS_DIFF)
		rd_fail(&r, "KEYS of an unknown kind");
	l.n = rd_u32(&r, "short KEYS");
	return list_finish(&r, &l, r.p, ret, why);
}

/* Entries were validated by the decoder: these only step through them. */
static uint64_t take(const uint8_t **p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | (*p)[i];
	*p += n;
	return v;
}

static void take_key(struct ks_list_rd *l, const uint8_t **key, size_t *key_len)
{
	*key_len = (size_t)take(&l->at, 2);
	*key = l->at;
	l->at += *key_len;
}

bool ks_keylist_next(struct ks_list_rd *l, struct ks_key_ent *ret)
{
	if (l->type != KS_KEYLIST || l->at >= l->end)
		return false;
	take_key(l, &ret->key, &ret->key_len);
	ret->state = (uint8_t)take(&l->at, 1);
	ret->hlc = take(&l->at, 8);
	ret->origin = take(&l->at, 8);
	return true;
}

bool ks_want_next(struct ks_list_rd *l, const uint8_t **ret_key, size_t *ret_key_len)
{
	if (l->type != KS_KEYS || l->kind != KS_KEYS_WANT || l->at >= l->end)
		return false;
	take_key(l, ret_key, ret_key_len);
	return true;
}

bool ks_diff_next(struct ks_list_rd *l, struct ks_diff_ent *ret)
{
	if (l->type != KS_KEYS || l->kind != KS_KEYS_DIFF || l->at >= l->end)
		return false;
	take_key(l, &ret->key, &ret->key_len);
	ret->a_state = (uint8_t)take(&l->at, 1);
	ret->a_hlc = take(&l->at, 8);
	ret->a_origin = take(&l->at, 8);
	ret->b_state = (uint8_t)take(&l->at, 1);
	ret->b_hlc = take(&l->at, 8);
	ret->b_origin = take(&l->at, 8);
	return true;
}
