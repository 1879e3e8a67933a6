/*
 * proto_layout: the wire layout of the frames made only of fixed-width
 * integers (IDENT, REQ, START, PLAN, DIGEST_R), as tables shared by the
 * encoder (proto_enc.c) and the decoder (proto.c), so the two cannot
 * disagree.  A field's wire width is the width of its struct member, in
 * network byte order, in table order; the values a decoder accepts are
 * in the table too.  Internal to libkvsync's proto.
 */
#ifndef KVSYNC_PROTO_LAYOUT_H
#define KVSYNC_PROTO_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

struct ks_field {
	uint8_t width; /* 1, 2, 4 or 8 bytes */
	uint8_t off;   /* offsetof the member */
	/* What the decoder accepts: min <= value <= max (max 0: no bound),
	 * and with flags set, no bit outside them; else @bad is the error. */
	uint64_t min, max, flags;
	const char *bad;
};

struct ks_layout {
	uint8_t type;      /* enum ks_frame_type */
	uint8_t n;         /* fields used in f */
	uint8_t size;      /* sizeof the struct */
	const char *short_msg; /* the decoder's message for a short payload */
	struct ks_field f[4];
};

/* The largest struct a layout describes (a decoder's scratch space). */
#define KS_LAYOUT_SIZE_MAX 64

#define KS_FIELD(T, m) { sizeof(((T *)0)->m), offsetof(T, m), 0, 0, 0, NULL }
#define KS_FIELD_IN(T, m, lo, hi, bad) \
	{ sizeof(((T *)0)->m), offsetof(T, m), (lo), (hi), 0, (bad) }
#define KS_FIELD_FLAGS(T, m, allowed, bad) \
	{ sizeof(((T *)0)->m), offsetof(T, m), 0, 0, (allowed), (bad) }

extern const struct ks_layout ks_layout_ident, ks_layout_req, ks_layout_start,
	ks_layout_plan, ks_layout_digest_r;

#endif
