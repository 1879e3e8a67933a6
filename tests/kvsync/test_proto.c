/*
 * test_proto: unit tests of the kvsync frame encoders and decoders
 * (tools/sync_proto.c).  Every frame type round-trips; every bound of the
 * protocol is tested on both sides of its edge; truncated, oversized,
 * trailing and out-of-order input is refused with a reason.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvsync/proto.h"
#include "tap.h"

/* The first frame of @b, which must be complete. */
static struct ks_frame first_frame(const struct ks_wbuf *b)
{
	struct ks_frame f = {0, NULL, 0};
	size_t used;
	if (ks_frame_decode(b->buf.p, b->buf.len, &f, &used, NULL) != 0)
		bail_out("an encoded frame does not decode");
	return f;
}

/* The first frame of what @encode (a ks_enc_* call on @b) writes into @b,
 * emptied first. */
#define ENCODED(b, encode) (ks_wbuf_release(b), (encode), first_frame(b))

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void test_frame_header(void)
{
	uint8_t buf[16] = {0};
	struct ks_frame f;
	size_t used = 0;
	const char *why = NULL;

	is_int(ks_frame_decode(buf, 3, &f, &used, &why), -EAGAIN,
	       "a frame header cut short asks for more bytes");
	put_be32(buf, 0);
	why = NULL;
	is_int(ks_frame_decode(buf, 8, &f, &used, &why), -EPROTO, "a frame of length 0 is refused");
	ok(why != NULL, "and the refusal says why");
	put_be32(buf, KS_FRAME_MAX + 1);
	is_int(ks_frame_decode(buf, 16, &f, &used, &why), -EPROTO,
	       "a frame one byte over the limit is refused before it is read");
	put_be32(buf, KS_FRAME_MAX);
	is_int(ks_frame_decode(buf, 16, &f, &used, &why), -EAGAIN,
	       "a frame exactly at the limit is accepted (and waits for its bytes)");
	put_be32(buf, 3);
	buf[4] = KS_PING;
	is_int(ks_frame_decode(buf, 6, &f, &used, &why), -EAGAIN,
	       "a frame missing its last payload byte waits for it");
	is_int(ks_frame_decode(buf, 7, &f, &used, &why), 0, "a whole frame decodes");
	is_int((long long)used, 7, "its size counts the length field");
	is_int(f.type, KS_PING, "its type is read");
	is_int((long long)f.len, 2, "its payload excludes the type byte");
	is_str(ks_type_name(200), "unknown", "an unknown type has no name");
	is_str(ks_type_name(KS_REC), "REC", "a known type is named");
}

/* Runs @test with an empty frame buffer, released after it. */
static void with_wbuf(void (*test)(struct ks_wbuf *b))
{
	struct ks_wbuf b = KS_WBUF_INIT;
	test(&b);
	ks_wbuf_release(&b);
}

static void test_hello(struct ks_wbuf *b)
{
	struct ks_hello h = {KS_PROTO_VERSION, KS_HELLO_SERVER | KS_HELLO_TOKEN, {0}};
	for (int i = 0; i < (int)KS_NONCE_LEN; i++)
		h.nonce[i] = (uint8_t)i;
	struct ks_frame f = ENCODED(b, ks_enc_hello(b, &h));
	struct ks_hello got;
	const char *why = NULL;
	ok(ks_dec_hello(&f, &got, &why) == 0 && got.version == KS_PROTO_VERSION &&
		   got.flags == h.flags && !memcmp(got.nonce, h.nonce, KS_NONCE_LEN),
	   "HELLO round-trips");
	f.len--;
	is_int(ks_dec_hello(&f, &got, &why), -EPROTO, "a HELLO one byte short is refused");
	f.len++;
	b->buf.p[KS_FRAME_LEN_SIZE + 1 + 3] = 9; /* version 9 */
	ok(ks_dec_hello(&f, &got, &why) == 0 && got.version == 9,
	   "a HELLO of another version decodes far enough to name its version");

	struct ks_hello odd = {KS_PROTO_VERSION, 0x80, {0}};
	f = ENCODED(b, ks_enc_hello(b, &odd));
	is_int(ks_dec_hello(&f, &got, &why), -EPROTO, "a HELLO with unknown flags is refused");
}

static void test_small_frames(struct ks_wbuf *b)
{
	struct ks_frame f;
	const char *why = NULL;

	struct ks_ident id = {1, 2, 30, 20}, gid;
	f = ENCODED(b, ks_enc_ident(b, &id));
	ok(ks_dec_ident(&f, &gid, &why) == 0 && gid.node == 1 && gid.epoch == 2 &&
		   gid.head == 30 && gid.horizon == 20,
	   "IDENT round-trips");
	struct ks_ident bad = {1, 2, 3, 4};
	f = ENCODED(b, ks_enc_ident(b, &bad));
	is_int(ks_dec_ident(&f, &gid, &why), -EPROTO, "an IDENT with a horizon past its head is refused");

	f = ENCODED(b, ks_enc_error(b, 5, "authentication failed"));
	struct ks_error e;
	ok(ks_dec_error(&f, &e, &why) == 0 && e.code == 5 && e.msg_len == 21 &&
		   !memcmp(e.msg, "authentication failed", 21),
	   "ERROR round-trips");
	b->buf.p[KS_FRAME_LEN_SIZE + 1] = 0;
	is_int(ks_dec_error(&f, &e, &why), -EPROTO, "an ERROR with exit code 0 is refused");
	b->buf.p[KS_FRAME_LEN_SIZE + 1] = 6;
	is_int(ks_dec_error(&f, &e, &why), -EPROTO, "an ERROR with exit code 6 is refused");

	struct ks_req q = {KS_OP_PULL, KS_REQ_WATCH | KS_REQ_VERBOSE, 60000}, gq;
	f = ENCODED(b, ks_enc_req(b, &q));
	ok(ks_dec_req(&f, &gq, &why) == 0 && gq.op == KS_OP_PULL && gq.flags == q.flags &&
		   gq.max_skew_ms == 60000,
	   "REQ round-trips");
	struct ks_req q4 = {4, 0, 0};
	f = ENCODED(b, ks_enc_req(b, &q4));
	is_int(ks_dec_req(&f, &gq, &why), -EPROTO, "a REQ with operation 4 is refused");

	f = ENCODED(b, ks_enc_batch_end(b, true, 77));
	bool has;
	uint64_t wm;
	ok(ks_dec_batch_end(&f, &has, &wm, &why) == 0 && has && wm == 77, "BATCH_END round-trips");
	f = ENCODED(b, ks_enc_batch_end(b, true, 0));
	is_int(ks_dec_batch_end(&f, &has, &wm, &why), -EPROTO,
	       "a BATCH_END setting watermark 0 is refused");

	f = ENCODED(b, ks_enc_empty(b, KS_PING));
	is_int(ks_dec_empty(&f, &why), 0, "PING has an empty payload");
	f = ENCODED(b, ks_enc_u64(b, KS_DONE, 5));
	is_int(ks_dec_empty(&f, &why), -EPROTO, "an empty frame with a payload is refused");

	f = ENCODED(b, ks_enc_result(b, KS_OUT_TOMBSTONE, "gone", 4));
	uint8_t o;
	const uint8_t *k;
	size_t kn;
	ok(ks_dec_result(&f, &o, &k, &kn, &why) == 0 && o == KS_OUT_TOMBSTONE && kn == 4 &&
		   !memcmp(k, "gone", 4),
	   "RESULT round-trips");
	b->buf.p[KS_FRAME_LEN_SIZE + 1] = 3;
	is_int(ks_dec_result(&f, &o, &k, &kn, &why), -EPROTO, "a RESULT with outcome 3 is refused");

	f = ENCODED(b, ks_enc_data(b, "abc", 3));
	const uint8_t *d;
	size_t dn;
	ok(ks_dec_data(&f, &d, &dn, &why) == 0 && dn == 3 && !memcmp(d, "abc", 3), "DATA round-trips");
	f = ENCODED(b, ks_enc_data(b, "", 0));
	is_int(ks_dec_data(&f, &d, &dn, &why), -EPROTO, "an empty DATA chunk is refused");
	uint8_t *big = calloc(1, KS_CHUNK_MAX + 1);
	f = ENCODED(b, ks_enc_data(b, big, KS_CHUNK_MAX));
	is_int(ks_dec_data(&f, &d, &dn, &why), 0, "a DATA chunk of exactly 256 KiB is accepted");
	f = ENCODED(b, ks_enc_data(b, big, KS_CHUNK_MAX + 1));
	is_int(ks_dec_data(&f, &d, &dn, &why), -EPROTO, "a DATA chunk over 256 KiB is refused");
	free(big);
}

static struct kvc_record sample_record(void)
{
	struct kvc_record r;
	memset(&r, 0, sizeof(r));
	r.value = "hello";
	r.value_len = 5;
	r.metadata = "{\"a\":1}";
	r.metadata_len = 7;
	r.expiration = 1700000000;
	r.ttl = 120;
	r.flags = KVC_REC_HAS_MODE;
	r.mode = 0640;
	r.uid = 1000;
	r.gid = 100;
	r.mtime_ns = 1600000000123456789;
	r.ctime_ns = 1600000000987654321;
	r.hlc = 0x123456789abcULL << 16 | 7;
	r.origin = 0xfeedfacecafebeefULL;
	r.seq = 42;
	return r;
}

/* What ks_dec_rec says of a REC frame made by ks_enc_rec from these. */
static int rec_decode_rc(const char *key, size_t key_len, const struct kvc_record *r,
			 size_t carried)
{
	struct ks_wbuf b = KS_WBUF_INIT;
	struct ks_rec x;
	const char *why = NULL;
	struct ks_frame f = ENCODED(&b, ks_enc_rec(&b, key, key_len, r, carried));
	int rc = ks_dec_rec(&f, &x, &why);
	ks_wbuf_release(&b);
	return rc;
}

/* In test_rec: the sample record r with the assignments to v made. */
#define R_WITH(...) (v = r, __VA_ARGS__, &v)

static void test_rec(struct ks_wbuf *b)
{
	struct kvc_record r = sample_record();
	struct ks_frame f = ENCODED(b, ks_enc_rec(b, "user:1", 6, &r, 5));
	struct ks_rec x;
	const char *why = NULL;
	int rc = ks_dec_rec(&f, &x, &why);
	is_int(rc, 0, "a REC decodes");
	ok(rc == 0 && x.key_len == 6 && !memcmp(x.key, "user:1", 6) && x.rec.value_len == 5 &&
		   x.data_len == 5 && !memcmp(x.data, "hello", 5) && x.rec.metadata_len == 7 &&
		   !memcmp(x.rec.metadata, "{\"a\":1}", 7) && x.rec.expiration == r.expiration &&
		   x.rec.ttl == 120 && x.rec.flags == r.flags && x.rec.mode == 0640 &&
		   x.rec.uid == 1000 && x.rec.gid == 100 && x.rec.mtime_ns == r.mtime_ns &&
		   x.rec.ctime_ns == r.ctime_ns && x.rec.hlc == r.hlc && x.rec.origin == r.origin &&
		   x.rec.seq == 42,
	   "every field of a record survives the wire");

	/* A value announced bigger than what the frame carries: the rest
	 * comes in DATA frames. */
	f = ENCODED(b, ks_enc_rec(b, "k", 1, &r, 2));
	ok(ks_dec_rec(&f, &x, &why) == 0 && x.rec.value_len == 5 && x.data_len == 2,
	   "a REC may carry only the first bytes of its value");

	char key[KVC_KEY_MAX + 1];
	memset(key, 'k', sizeof(key));
	is_int(rec_decode_rc(key, KVC_KEY_MAX, &r, 0), 0, "a REC with a 512-byte key is accepted");
	is_int(rec_decode_rc(key, KVC_KEY_MAX + 1, &r, 0), -EPROTO, "a REC with a 513-byte key is refused");
	is_int(rec_decode_rc(key, 0, &r, 0), -EPROTO, "a REC with an empty key is refused");

	struct kvc_record v;
	is_int(rec_decode_rc("k", 1, R_WITH(v.value_len = KVC_VALUE_MAX), 0), 0,
	       "a REC announcing a 25 MiB value is accepted");
	is_int(rec_decode_rc("k", 1, R_WITH(v.value_len = KVC_VALUE_MAX + 1), 0), -EPROTO,
	       "a REC announcing 25 MiB + 1 is refused");
	is_int(rec_decode_rc("k", 1, R_WITH(v.hlc = 0), 0), -EPROTO, "a REC without a clock is refused");
	is_int(rec_decode_rc("k", 1, R_WITH(v.flags = 0x100), 0), -EPROTO, "a REC with unknown flags is refused");
	is_int(rec_decode_rc("k", 1, R_WITH(v.flags = KVC_REC_TOMBSTONE), 5), -EPROTO,
	       "a tombstone carrying a value is refused");

	/* Every truncation of a valid REC is refused, never over-read. */
	f = ENCODED(b, ks_enc_rec(b, "user:1", 6, &r, 5));
	int refused = 0;
	size_t full = f.len;
	for (size_t n = 0; n < full; n++) {
		struct ks_frame g = f;
		g.len = n;
		/* A shorter value tail is still a valid (smaller) first piece. */
		if (ks_dec_rec(&g, &x, &why) == -EPROTO || x.data_len < 5)
			refused++;
	}
	is_int(refused, (int)full, "every truncated REC is refused or carries fewer value bytes");
}

static void test_digest(struct ks_wbuf *b)
{
	struct ks_digest d = {7, KS_DIGEST_ALL, {(const uint8_t *)"a", 1, (const uint8_t *)"m", 1},
			      99, {1, 2, 3}};
	struct ks_frame f = ENCODED(b, ks_enc_digest(b, &d));
	struct ks_digest g;
	const char *why = NULL;
	ok(ks_dec_digest(&f, &g, &why) == 0 && g.id == 7 && g.count == 99 &&
		   g.range.lo_len == 1 && g.range.hi_len == 1 && g.range.hi[0] == 'm' &&
		   !memcmp(g.digest, d.digest, KS_DIGEST_LEN),
	   "DIGEST round-trips");
	struct ks_digest open_end = {8, KS_DIGEST_LIVE, {NULL, 0, NULL, 0}, 0, {0}};
	f = ENCODED(b, ks_enc_digest(b, &open_end));
	ok(ks_dec_digest(&f, &g, &why) == 0 && g.range.lo_len == 0 && g.range.hi == NULL,
	   "a DIGEST of the whole key space has no bounds");
	struct ks_digest inverted = {9, KS_DIGEST_ALL,
				     {(const uint8_t *)"m", 1, (const uint8_t *)"a", 1}, 0, {0}};
	f = ENCODED(b, ks_enc_digest(b, &inverted));
	is_int(ks_dec_digest(&f, &g, &why), -EPROTO, "a DIGEST of an inverted range is refused");
}

/* What ks_dec_keylist says of KEYLIST @id over @r, made in @b (emptied
 * first) of the @n one-byte @keys, each live at clock 1 from origin 1. */
static int keylist_rc(struct ks_wbuf *b, uint32_t id, const struct ks_range *r,
		      const char *const *keys, int n)
{
	struct ks_list l;
	struct ks_list_rd rd;
	const char *why = NULL;
	ks_wbuf_release(b);
	ks_list_begin_keylist(b, &l, id, KS_DIGEST_ALL, r);
	for (int i = 0; i < n; i++) {
		struct ks_key_ent e = {(const uint8_t *)keys[i], 1, KS_STATE_LIVE, 1, 1};
		ks_list_add_key(b, &l, &e);
	}
	ks_list_end(b, &l);
	struct ks_frame f = first_frame(b);
	return ks_dec_keylist(&f, &rd, &why);
}

static void test_lists(struct ks_wbuf *b)
{
	struct ks_list l;
	struct ks_range r = {(const uint8_t *)"b", 1, (const uint8_t *)"d", 1};
	const char *keys[] = {"b", "ba", "c"};
	ks_list_begin_keylist(b, &l, 3, KS_DIGEST_ALL, &r);
	for (int i = 0; i < 3; i++) {
		struct ks_key_ent e = {(const uint8_t *)keys[i], strlen(keys[i]), KS_STATE_LIVE,
				       (uint64_t)i + 10, 5};
		ks_list_add_key(b, &l, &e);
	}
	ks_list_end(b, &l);
	struct ks_frame f = first_frame(b);
	struct ks_list_rd rd;
	const char *why = NULL;
	is_int(ks_dec_keylist(&f, &rd, &why), 0, "a KEYLIST decodes");
	struct ks_key_ent e;
	int n = 0;
	bool right = true;
	while (ks_keylist_next(&rd, &e)) {
		right = right && e.key_len == strlen(keys[n]) && !memcmp(e.key, keys[n], e.key_len) &&
			e.hlc == (uint64_t)n + 10 && e.origin == 5;
		n++;
	}
	ok(n == 3 && right, "a KEYLIST walks its entries in order");
	ks_wbuf_release(b);

	const char *const unsorted[] = {"c", "b"}, *const outside[] = {"z"};
	is_int(keylist_rc(b, 4, &r, unsorted, 2), -EPROTO, "a KEYLIST out of key order is refused");
	is_int(keylist_rc(b, 5, &r, outside, 1), -EPROTO, "a KEYLIST entry outside its range is refused");
	ks_wbuf_release(b);

	ks_list_begin_keylist(b, &l, 6, KS_DIGEST_ALL, &r);
	ks_list_add_key(b, &l, &(struct ks_key_ent){(const uint8_t *)"c", 1, KS_STATE_LIVE, 1, 1});
	ks_list_end(b, &l);
	b->buf.p[l.count_at + 3] = 2; /* claim two entries, carry one */
	f = first_frame(b);
	is_int(ks_dec_keylist(&f, &rd, &why), -EPROTO,
	       "a KEYLIST claiming more entries than it carries is refused");
	ks_wbuf_release(b);

	ks_list_begin_keys(b, &l, 9, KS_KEYS_WANT);
	ks_list_add_want(b, &l, "x", 1);
	ks_list_add_want(b, &l, "a", 1);
	ks_list_end(b, &l);
	f = first_frame(b);
	is_int(ks_dec_keys(&f, &rd, &why), 0, "a KEYS(want) list needs no order");
	const uint8_t *k;
	size_t kn;
	n = 0;
	while (ks_want_next(&rd, &k, &kn))
		n++;
	is_int(n, 2, "and walks all its keys");
	ks_wbuf_release(b);

	/* A list never outgrows a frame: room runs out first. */
	ks_list_begin_keys(b, &l, 10, KS_KEYS_WANT);
	char key[KVC_KEY_MAX];
	memset(key, 'q', sizeof(key));
	int added = 0;
	while (ks_list_room(b, &l, sizeof(key))) {
		ks_list_add_want(b, &l, key, sizeof(key));
		added++;
	}
	ks_list_end(b, &l);
	f = first_frame(b);
	ok(added > 100 && f.len + 1 <= KS_FRAME_MAX && ks_dec_keys(&f, &rd, &why) == 0,
	   "a full list of 512-byte keys stays under the frame limit and decodes");
}

int main(void)
{
	test_frame_header();
	with_wbuf(test_hello);
	with_wbuf(test_small_frames);
	with_wbuf(test_rec);
	with_wbuf(test_digest);
	with_wbuf(test_lists);
	return done_testing();
}
