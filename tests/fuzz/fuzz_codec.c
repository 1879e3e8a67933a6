/*
 * fuzz_codec: libFuzzer target for fs/codec.c.  The first input byte picks
 * the separator (every valid one is reachable); the rest is used twice:
 * as a path component a tool might pass to lookup (decoding must not
 * crash, must never yield the separator, and a decoded name must have a
 * canonical form that is a fixed point), and, with the separator bytes
 * removed, as a key segment (its name and alias must be safe path
 * components that decode back to it).  A broken rule traps.
 */
#include "fuzz.h"
#include "codec.h"
#include "kvcore.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SEG_MAX 2048

static char pick_sep(uint8_t b)
{
	/* 0x20..0x7E without '%': 94 separators */
	int c = 0x20 + b % 94;

	return (char)(c >= '%' ? c + 1 : c);
}

static void require_safe(const char *name, size_t n)
{
	require(n >= 1 && n <= KFS_NAME_MAX);
	require(strlen(name) == n);
	require(!memchr(name, '/', n));
	require(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
}

/* Decode a name the encoder made for @seg and check it denotes @seg;
 * returns whether the name is hashed. */
static bool require_denotes(const char *name, size_t n, char sep, const unsigned char *seg,
			    size_t len, bool alias)
{
	char out[KFS_NAME_MAX];
	size_t dlen = 0;
	enum kfs_name_kind kind = KFS_NAME_SEGMENT;
	uint64_t hash = 0;

	require(kfs_decode_name(name, n, sep, out, &dlen, &kind, &hash) == 0);
	if (kind == (alias ? KFS_NAME_ALIAS : KFS_NAME_SEGMENT)) {
		require(dlen == len && memcmp(out, seg, len) == 0);
		return false;
	}
	require(kind == (alias ? KFS_NAME_HASHED_ALIAS : KFS_NAME_HASHED));
	require(hash == kfs_segment_hash(seg, len));
	require(dlen <= len && memcmp(out, seg, dlen) == 0);
	/* the head is cut at 200 bytes of encoding, 3 escapes at worst */
	require(dlen * 3 + 3 + 3 >= KFS_HASH_HEAD_MAX);
	if (kvc_utf8_valid(seg, len))
		require(kvc_utf8_valid((const unsigned char *)out, dlen));
	return true;
}

/* Input as a name: lenient decoding; the canonical form of what it decodes
 * to denotes the same thing and, unless hashed, is a fixed point.  (Raw
 * control bytes in a name grow threefold, so it may well be hashed.) */
static void fuzz_name(const char *name, size_t len, char sep)
{
	char out[KFS_NAME_MAX], out2[KFS_NAME_MAX];
	char canon[KFS_NAME_MAX + 1], canon2[KFS_NAME_MAX + 1];
	size_t dlen = 0, dlen2 = 0, c, c2;
	enum kfs_name_kind kind = KFS_NAME_SEGMENT, kind2 = KFS_NAME_SEGMENT;
	uint64_t hash = 0, hash2 = 0;
	bool alias;
	int rc = kfs_decode_name(name, len, sep, out, &dlen, &kind, &hash);

	if (len > KFS_NAME_MAX) {
		require(rc == -ENAMETOOLONG);
		return;
	}
	if (rc != 0) {
		require(rc == -EINVAL);
		return;
	}
	require(dlen <= len);
	require(!memchr(out, sep, dlen));
	if (kind == KFS_NAME_HASHED || kind == KFS_NAME_HASHED_ALIAS) {
		require(len >= KFS_HASH_TAIL_LEN);
		return;
	}
	require(kind == KFS_NAME_SEGMENT || kind == KFS_NAME_ALIAS);
	alias = kind == KFS_NAME_ALIAS;
	c = alias ? kfs_encode_alias(out, dlen, sep, canon) : kfs_encode_segment(out, dlen, sep, canon);
	require_safe(canon, c);
	if (require_denotes(canon, c, sep, (const unsigned char *)out, dlen, alias))
		return;
	require(kfs_decode_name(canon, c, sep, out2, &dlen2, &kind2, &hash2) == 0);
	require(kind2 == kind && dlen2 == dlen && memcmp(out, out2, dlen) == 0);
	c2 = alias ? kfs_encode_alias(out2, dlen2, sep, canon2) :
		     kfs_encode_segment(out2, dlen2, sep, canon2);
	require(c2 == c && memcmp(canon, canon2, c) == 0);
}

/* Input as a segment: name and alias are safe and denote it. */
static void fuzz_segment(const uint8_t *data, size_t size, char sep)
{
	unsigned char seg[SEG_MAX];
	char name[KFS_NAME_MAX + 1], alias[KFS_NAME_MAX + 1];
	size_t len = 0, n, a;

	for (size_t i = 0; i < size && len < SEG_MAX; i++)
		if (data[i] != (uint8_t)sep)
			seg[len++] = data[i];
	n = kfs_encode_segment(seg, len, sep, name);
	require_safe(name, n);
	require_denotes(name, n, sep, seg, len, false);
	a = kfs_encode_alias(seg, len, sep, alias);
	require_safe(alias, a);
	require_denotes(alias, a, sep, seg, len, true);
	require(strcmp(alias, name) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char sep;

	if (size < 1)
		return 0;
	sep = pick_sep(data[0]);
	fuzz_name((const char *)data + 1, size - 1, sep);
	fuzz_segment(data + 1, size - 1, sep);
	return 0;
}
