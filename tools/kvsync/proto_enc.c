/*
 * proto_enc: the encoders of the kvsync frames (proto.h has the layout):
 * each appends one frame to a struct ks_wbuf, whose first allocation
 * failure sticks, so a sender encodes a batch and checks once.  The key
 * list builders close a frame well under KS_FRAME_MAX.
 */
#include "proto.h"
#include "proto_layout.h"

#include "common/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* List frames are closed well under KS_FRAME_MAX so a peer never sees one
 * near the limit. */
#define LIST_SOFT_MAX (512u * 1024u)

/* ------------------------------------------------------------ encoding */

void ks_wbuf_release(struct ks_wbuf *b)
{
	if (!b)
		return;
	kt_buf_release(&b->buf);
	b->err = 0;
}

/* Append @n bytes; the first allocation failure sticks in b->err. */
static void wb_bytes(struct ks_wbuf *b, const void *p, size_t n)
{
	if (!b->err && kt_buf_add(&b->buf, p, n))
		b->err = -ENOMEM;
}

static void wb_u8(struct ks_wbuf *b, uint8_t v)
{
	wb_bytes(b, &v, 1);
}

static void wb_u16(struct ks_wbuf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	wb_bytes(b, x, 2);
}

static void wb_u32(struct ks_wbuf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 3; i >= 0; i--, v >>= 8)
		x[i] = (uint8_t)v;
	wb_bytes(b, x, 4);
}

static void wb_u64(struct ks_wbuf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 7; i >= 0; i--, v >>= 8)
		x[i] = (uint8_t)v;
	wb_bytes(b, x, 8);
}

/* Bytes with their 16-bit length before them: keys, range bounds,
 * metadata, messages (the caller keeps @n within the protocol's bound). */
static void wb_str(struct ks_wbuf *b, const void *p, size_t n)
{
	wb_u16(b, (uint16_t)n);
	wb_bytes(b, p, n);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Start a frame: a placeholder length and the type.  @return its offset */
static size_t frame_begin(struct ks_wbuf *b, uint8_t type)
{
	size_t at = b->buf.len;
	wb_u32(b, 0);
	wb_u8(b, type);
	return at;
}

static int frame_end(struct ks_wbuf *b, size_t at)
{
	if (b->err)
		return b->err;
	put_be32(b->buf.p + at, (uint32_t)(b->buf.len - at - KS_FRAME_LEN_SIZE));
	return 0;
}

static void wb_range(struct ks_wbuf *b, const struct ks_range *r)
{
	wb_str(b, r->lo, r->lo_len);
	wb_u8(b, r->hi != NULL);
	if (r->hi) {
		wb_str(b, r->hi, r->hi_len);
	}
}

/* Append a frame of layout @l from the struct at @s. */
static int enc_fixed(struct ks_wbuf *b, const struct ks_layout *l, const void *s)
{
	size_t at = frame_begin(b, l->type);

	for (unsigned i = 0; i < l->n; i++) {
		const unsigned char *p = (const unsigned char *)s + l->f[i].off;
		uint16_t x16;
		uint32_t x32;
		uint64_t x64;

		switch (l->f[i].width) {
		case 1: wb_u8(b, *p); break;
		case 2: memcpy(&x16, p, 2); wb_u16(b, x16); break;
		case 4: memcpy(&x32, p, 4); wb_u32(b, x32); break;
		default: memcpy(&x64, p, 8); wb_u64(b, x64); break;
		}
	}
	return frame_end(b, at);
}

/* The frames of a fixed layout (proto_layout.h). */
#define FIXED_ENCODER(name, T)                                     \
	int ks_enc_##name(struct ks_wbuf *b, const T *s)           \
	{                                                          \
		return enc_fixed(b, &ks_layout_##name, s);         \
	}

FIXED_ENCODER(ident, struct ks_ident)
FIXED_ENCODER(req, struct ks_req)
FIXED_ENCODER(start, struct ks_start)
FIXED_ENCODER(plan, struct ks_plan)
FIXED_ENCODER(digest_r, struct ks_digest_r)

int ks_enc_magic(struct ks_wbuf *b)
{
	wb_bytes(b, KS_MAGIC, KS_MAGIC_LEN);
	return b->err;
}

int ks_enc_hello(struct ks_wbuf *b, const struct ks_hello *h)
{
	size_t at = frame_begin(b, KS_HELLO);
	wb_u32(b, h->version);
	wb_u32(b, h->flags);
	wb_bytes(b, h->nonce, KS_NONCE_LEN);
	return frame_end(b, at);
}

int ks_enc_auth(struct ks_wbuf *b, const uint8_t mac[KS_MAC_LEN])
{
	size_t at = frame_begin(b, KS_AUTH);
	wb_bytes(b, mac, KS_MAC_LEN);
	return frame_end(b, at);
}

int ks_enc_open(struct ks_wbuf *b, uint32_t flags)
{
	size_t at = frame_begin(b, KS_OPEN);
	wb_u32(b, flags);
	return frame_end(b, at);
}

int ks_enc_error(struct ks_wbuf *b, uint8_t code, const char *msg)
{
	size_t n = strlen(msg);
	if (n > KS_ERRMSG_MAX)
		n = KS_ERRMSG_MAX;
	size_t at = frame_begin(b, KS_ERROR);
	wb_u8(b, code);
	wb_str(b, msg, n);
	return frame_end(b, at);
}

int ks_enc_empty(struct ks_wbuf *b, uint8_t type)
{
	return frame_end(b, frame_begin(b, type));
}

int ks_enc_rec(struct ks_wbuf *b, const void *key, size_t key_len,
	       const struct kvc_record *rec, size_t data_len)
{
	size_t at = frame_begin(b, KS_REC);
	wb_str(b, key, key_len);
	wb_u32(b, rec->flags);
	wb_u32(b, rec->mode);
	wb_u32(b, rec->uid);
	wb_u32(b, rec->gid);
	wb_u32(b, rec->ttl);
	wb_u64(b, (uint64_t)rec->expiration);
	wb_u64(b, (uint64_t)rec->mtime_ns);
	wb_u64(b, (uint64_t)rec->ctime_ns);
	wb_u64(b, rec->hlc);
	wb_u64(b, rec->origin);
	wb_u64(b, rec->seq);
	wb_str(b, rec->metadata, rec->metadata ? rec->metadata_len : 0);
	wb_u32(b, (uint32_t)rec->value_len);
	wb_bytes(b, rec->value, data_len);
	return frame_end(b, at);
}

int ks_enc_data(struct ks_wbuf *b, const void *data, size_t len)
{
	size_t at = frame_begin(b, KS_DATA);
	wb_bytes(b, data, len);
	return frame_end(b, at);
}

int ks_enc_batch_end(struct ks_wbuf *b, bool has_wm, uint64_t wm)
{
	size_t at = frame_begin(b, KS_BATCH_END);
	wb_u8(b, has_wm);
	wb_u64(b, has_wm ? wm : 0);
	return frame_end(b, at);
}

int ks_enc_counts(struct ks_wbuf *b, uint8_t type, uint64_t applied, uint64_t ignored)
{
	size_t at = frame_begin(b, type);
	wb_u64(b, applied);
	wb_u64(b, ignored);
	return frame_end(b, at);
}

int ks_enc_result(struct ks_wbuf *b, uint8_t outcome, const void *key, size_t key_len)
{
	size_t at = frame_begin(b, KS_RESULT);
	wb_u8(b, outcome);
	wb_str(b, key, key_len);
	return frame_end(b, at);
}

int ks_enc_u64(struct ks_wbuf *b, uint8_t type, uint64_t v)
{
	size_t at = frame_begin(b, type);
	wb_u64(b, v);
	return frame_end(b, at);
}

int ks_enc_digest(struct ks_wbuf *b, const struct ks_digest *d)
{
	size_t at = frame_begin(b, KS_DIGEST);
	wb_u32(b, d->id);
	wb_u8(b, d->kind);
	wb_range(b, &d->range);
	wb_u64(b, d->count);
	wb_bytes(b, d->digest, KS_DIGEST_LEN);
	return frame_end(b, at);
}

int ks_enc_keys_end(struct ks_wbuf *b, uint32_t id)
{
	size_t at = frame_begin(b, KS_KEYS_END);
	wb_u32(b, id);
	return frame_end(b, at);
}

int ks_list_begin_keylist(struct ks_wbuf *b, struct ks_list *l, uint32_t id, uint8_t kind,
			  const struct ks_range *r)
{
	l->type = KS_KEYLIST;
	l->frame_at = frame_begin(b, KS_KEYLIST);
	wb_u32(b, id);
	wb_u8(b, kind);
	wb_range(b, r);
	l->count_at = b->buf.len;
	wb_u32(b, 0);
	l->n = 0;
	return b->err;
}

int ks_list_begin_keys(struct ks_wbuf *b, struct ks_list *l, uint32_t id, uint8_t kind)
{
	l->type = KS_KEYS;
	l->frame_at = frame_begin(b, KS_KEYS);
	wb_u32(b, id);
	wb_u8(b, kind);
	l->count_at = b->buf.len;
	wb_u32(b, 0);
	l->n = 0;
	return b->err;
}

bool ks_list_room(const struct ks_wbuf *b, const struct ks_list *l, size_t key_len)
{
	size_t entry = 2 + key_len + 2 * 17;
	return l->n < KS_KEYS_MAX && b->buf.len - l->frame_at + entry <= LIST_SOFT_MAX;
}

int ks_list_add_key(struct ks_wbuf *b, struct ks_list *l, const struct ks_key_ent *e)
{
	wb_str(b, e->key, e->key_len);
	wb_u8(b, e->state);
	wb_u64(b, e->hlc);
	wb_u64(b, e->origin);
	l->n++;
	return b->err;
}

int ks_list_add_want(struct ks_wbuf *b, struct ks_list *l, const void *key, size_t key_len)
{
	wb_str(b, key, key_len);
	l->n++;
	return b->err;
}

int ks_list_add_diff(struct ks_wbuf *b, struct ks_list *l, const struct ks_diff_ent *e)
{
	wb_str(b, e->key, e->key_len);
	wb_u8(b, e->a_state);
	wb_u64(b, e->a_hlc);
	wb_u64(b, e->a_origin);
	wb_u8(b, e->b_state);
	wb_u64(b, e->b_hlc);
	wb_u64(b, e->b_origin);
	l->n++;
	return b->err;
}

void ks_list_end(struct ks_wbuf *b, struct ks_list *l)
{
	if (b->err)
		return;
	put_be32(b->buf.p + l->count_at, l->n);
	frame_end(b, l->frame_at);
}

int ks_enc_filter(struct ks_wbuf *b, const struct ks_filter *f)
{
	size_t at = frame_begin(b, KS_FILTER);
	wb_u16(b, (uint16_t)f->n_prefixes);
	for (uint32_t i = 0; i < f->n_prefixes; i++)
		wb_str(b, f->prefixes[i].p, f->prefixes[i].len);
	wb_u16(b, (uint16_t)f->n_rules);
	for (uint32_t i = 0; i < f->n_rules; i++) {
		wb_u8(b, f->rules[i].kind);
		wb_str(b, f->rules[i].pat.p, f->rules[i].pat.len);
	}
	return frame_end(b, at);
}
