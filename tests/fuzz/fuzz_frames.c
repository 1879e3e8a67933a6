/*
 * fuzz_frames: libFuzzer target for tools/sync_proto.c, the kvsync frame
 * decoder.  The input is read as a stream of frames, the way a receiver
 * reads the wire: every frame found is handed to the decoder of its type
 * and, to reach every decoder with every payload, to all the others too.
 * Whatever decodes must obey the rules the protocol engine relies on
 * (lengths within the bounds, lists that walk exactly their count of
 * entries in ascending key order, records that re-encode to the same
 * frame); a broken rule traps.  ASan and UBSan catch any read out of
 * bounds.
 */
#include "fuzz.h"
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsync/proto.h"

static bool in_range(const struct ks_range *r, const uint8_t *key, size_t n)
{
	if (kvc_key_cmp(key, n, r->lo, r->lo_len) < 0)
		return false;
	return !r->hi || kvc_key_cmp(key, n, r->hi, r->hi_len) < 0;
}

static void check_rec(const struct ks_frame *f)
{
	struct ks_rec x;
	const char *why = NULL;
	if (ks_dec_rec(f, &x, &why)) {
		require(why != NULL);
		return;
	}
	require(x.key_len >= 1 && x.key_len <= KVC_KEY_MAX);
	require(x.rec.metadata_len <= KVC_METADATA_MAX);
	require(x.rec.value_len <= KVC_VALUE_MAX);
	require(x.data_len <= KS_CHUNK_MAX && x.data_len <= x.rec.value_len);
	require(x.rec.hlc && x.rec.origin);
	/* Encoding what was decoded gives back the same frame. */
	struct ks_wbuf b = KS_WBUF_INIT;
	x.rec.value = x.data;
	ks_enc_rec(&b, x.key, x.key_len, &x.rec, x.data_len);
	require(b.err == 0);
	require(b.buf.len == KS_FRAME_LEN_SIZE + 1 + f->len);
	require(b.buf.p[KS_FRAME_LEN_SIZE] == KS_REC);
	require(!memcmp(b.buf.p + KS_FRAME_LEN_SIZE + 1, f->payload, f->len));
	ks_wbuf_release(&b);
}

/* A FILTER that decodes is within its bounds and re-encodes the same. */
static void check_filter(const struct ks_frame *f)
{
	static struct ks_filter x;
	const char *why = NULL;
	if (ks_dec_filter(f, &x, &why)) {
		require(why != NULL);
		return;
	}
	require(x.n_prefixes <= KS_FILTER_PREFIXES_MAX && x.n_rules <= KS_FILTER_RULES_MAX);
	for (uint32_t i = 0; i < x.n_rules; i++)
		require(!ks_pattern_check(x.rules[i].pat.p, x.rules[i].pat.len, &why));
	struct ks_wbuf b = KS_WBUF_INIT;
	require(ks_enc_filter(&b, &x) == 0);
	/* Prefixes are kept canonical, so only a canonical frame comes back
	 * byte for byte; any other decodes to the same filter. */
	struct ks_frame g;
	size_t used;
	static struct ks_filter y;
	require(ks_frame_decode(b.buf.p, b.buf.len, &g, &used, &why) == 0);
	require(ks_dec_filter(&g, &y, &why) == 0);
	require(y.n_prefixes == x.n_prefixes && y.n_rules == x.n_rules);
	ks_wbuf_release(&b);
}

static void check_lists(const struct ks_frame *f)
{
	struct ks_list_rd l;
	const char *why = NULL;
	if (!ks_dec_keylist(f, &l, &why)) {
		struct ks_key_ent e;
		uint32_t n = 0;
		const uint8_t *prev = NULL;
		size_t prev_len = 0;
		while (ks_keylist_next(&l, &e)) {
			require(e.key_len >= 1 && e.key_len <= KVC_KEY_MAX);
			require(e.state >= KS_STATE_TOMBSTONE && e.state <= KS_STATE_LIVE);
			require(in_range(&l.range, e.key, e.key_len));
			require(!prev || kvc_key_cmp(prev, prev_len, e.key, e.key_len) < 0);
			prev = e.key;
			prev_len = e.key_len;
			n++;
		}
		require(n == l.n && l.at == l.end);
	}
	if (!ks_dec_keys(f, &l, &why)) {
		uint32_t n = 0;
		if (l.kind == KS_KEYS_WANT) {
			const uint8_t *key;
			size_t key_len;
			while (ks_want_next(&l, &key, &key_len)) {
				require(key_len >= 1 && key_len <= KVC_KEY_MAX);
				n++;
			}
		} else {
			struct ks_diff_ent d;
			while (ks_diff_next(&l, &d)) {
				require(d.a_state <= KS_STATE_LIVE && d.b_state <= KS_STATE_LIVE);
				n++;
			}
		}
		require(n == l.n && l.at == l.end);
	}
}

/* Every decoder on one payload; each must either succeed or say why. */
static void decode_all(const struct ks_frame *f)
{
	const char *why;
	union {
		struct ks_hello hello;
		uint8_t mac[KS_MAC_LEN];
		struct ks_ident ident;
		struct ks_error error;
		struct ks_req req;
		struct ks_start start;
		struct ks_plan plan;
		struct ks_digest digest;
		struct ks_digest_r digest_r;
	} u;
	uint32_t u32;
	uint64_t a, b;
	bool flag;
	const uint8_t *p;
	size_t n;
	uint8_t o;

#define TRY(call)                                   \
	do {                                        \
		why = NULL;                         \
		if ((call) != 0)                    \
			require(why != NULL);       \
	} while (0)
	TRY(ks_dec_hello(f, &u.hello, &why));
	TRY(ks_dec_auth(f, u.mac, &why));
	TRY(ks_dec_open(f, &u32, &why));
	TRY(ks_dec_ident(f, &u.ident, &why));
	why = NULL;
	if (!ks_dec_error(f, &u.error, &why))
		require(u.error.msg_len <= KS_ERRMSG_MAX && u.error.code >= 1 && u.error.code <= 5);
	TRY(ks_dec_empty(f, &why));
	TRY(ks_dec_req(f, &u.req, &why));
	TRY(ks_dec_start(f, &u.start, &why));
	TRY(ks_dec_plan(f, &u.plan, &why));
	why = NULL;
	if (!ks_dec_data(f, &p, &n, &why))
		require(n >= 1 && n <= KS_CHUNK_MAX && p == f->payload);
	TRY(ks_dec_batch_end(f, &flag, &a, &why));
	TRY(ks_dec_counts(f, &a, &b, &why));
	why = NULL;
	if (!ks_dec_result(f, &o, &p, &n, &why))
		require(n >= 1 && n <= KVC_KEY_MAX && o <= KS_OUT_TOMBSTONE);
	TRY(ks_dec_u64(f, &a, &why));
	why = NULL;
	if (!ks_dec_digest(f, &u.digest, &why)) {
		const struct ks_range *r = &u.digest.range;
		require(r->lo_len <= KVC_KEY_MAX && r->hi_len <= KVC_KEY_MAX);
		require(!r->hi || kvc_key_cmp(r->lo, r->lo_len, r->hi, r->hi_len) < 0);
	}
	TRY(ks_dec_digest_r(f, &u.digest_r, &why));
	TRY(ks_dec_keys_end(f, &u32, &why));
#undef TRY
	check_rec(f);
	check_lists(f);
	check_filter(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		struct ks_frame f;
		size_t used;
		const char *why = NULL;
		int rc = ks_frame_decode(data + off, size - off, &f, &used, &why);
		if (rc == -EAGAIN)
			break;
		if (rc) {
			require(rc == -EPROTO && why != NULL);
			break;
		}
		require(used >= KS_FRAME_LEN_SIZE + 1 && used <= size - off);
		require(f.len + 1 <= KS_FRAME_MAX);
		/* Under its own type, then under every other type. */
		uint8_t type = f.type;
		for (unsigned t = 0; t < 40; t++) {
			f.type = (uint8_t)t;
			decode_all(&f);
		}
		f.type = type;
		decode_all(&f);
		off += used;
	}
	return 0;
}
