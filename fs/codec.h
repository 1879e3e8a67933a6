/*
 * codec: key segments <-> path components, as PRODUCT.md section 3.1 says.
 *
 * A key is split by the separator byte into segments; each segment is
 * shown as one path component.  Encoding is canonical (readdir shows it);
 * decoding is lenient (names tools invent always work).  Pure functions,
 * no allocation, no store access: the daemon resolves hashed names.
 *
 * The canonical encoding of a segment:
 *   - the bytes '%', '/', 0x00-0x1F and 0x7F are written "%XX" (upper-case
 *     hex); every other byte, UTF-8 included, is written as itself;
 *   - the segment "." is "%2E", ".." is "%2E%2E", the empty segment "%";
 *   - when that would exceed KFS_NAME_MAX bytes: the first at most
 *     KFS_HASH_HEAD_MAX bytes of it (never cutting a "%XX" nor a UTF-8
 *     character), then "%~", then the 16 lower-case hex digits of
 *     kfs_segment_hash() of the whole segment ("hashed" names, at most
 *     KFS_HASH_NAME_MAX bytes).
 * So a canonical name never contains a raw '%' other than an escape, a
 * whole "%" or a final "%~" hash tail, which is what makes it decodable.
 * Names are never longer than KFS_NAME_MAX, never contain '/' or NUL and
 * are never "." or "..".
 *
 * @sep everywhere is the key separator, a printable byte (0x20-0x7E) other
 * than '%' (see kfs_check_sep()).  A segment never contains it: keys are
 * split on it.
 */
#ifndef KFS_CODEC_H
#define KFS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define KFS_NAME_MAX 255u         /* longest path component */
#define KFS_HASH_HEAD_MAX 200u    /* bytes of encoding kept before "%~" */
#define KFS_HASH_TAIL_LEN 18u     /* "%~" and 16 hex digits */
#define KFS_HASH_NAME_MAX (KFS_HASH_HEAD_MAX + KFS_HASH_TAIL_LEN)

/**
 * Check a separator given by the user (the mount option sep=C).
 * @return 0 when @sep is a printable byte other than '%', else -EINVAL
 */
int kfs_check_sep(char sep);

/** 64-bit hash of a whole segment, as shown after "%~" (FNV-1a 64). */
uint64_t kfs_segment_hash(const void *seg, size_t len);

/**
 * Encode segment @seg (any bytes, may be empty) as a path component.
 * A @seg that contains @sep breaks the caller's contract; the byte is then
 * written %XX, so the name decodes to -EINVAL rather than to another key.
 * @param[in] sep  the key separator
 * @param[out] out at least KFS_NAME_MAX + 1 bytes; NUL-terminated
 * @return the component's length (1..KFS_NAME_MAX)
 */
size_t kfs_encode_segment(const void *seg, size_t len, char sep, char *out);

/**
 * Encode the directory alias of a prefix that is also a key: the encoded
 * segment followed by the separator (or "%2F" when the separator is '/').
 * When the encoded segment leaves no room for the suffix (its encoding is
 * within 1 or 3 bytes of KFS_NAME_MAX), the hashed form of the segment is
 * used before the suffix instead, so every directory stays reachable; the
 * alias of a hashed segment is its hashed name plus the suffix.
 * @param[out] out as for kfs_encode_segment
 * @return the alias's length (2..KFS_NAME_MAX); never 0
 */
size_t kfs_encode_alias(const void *seg, size_t len, char sep, char *out);

enum kfs_name_kind {
	KFS_NAME_SEGMENT,   /* an ordinary component: the segment is in out */
	KFS_NAME_ALIAS,     /* "seg" + separator: the directory of prefix seg */
	KFS_NAME_HASHED,    /* "head%~hhhhhhhhhhhhhhhh": out holds the decoded
			       head (a prefix of the segment), *ret_hash the hash */
	KFS_NAME_HASHED_ALIAS, /* a hashed name + separator: the directory of
			       the prefix a KFS_NAME_HASHED name would denote */
};

/**
 * Decode path component @name (1..KFS_NAME_MAX bytes, no '/').
 *
 * Reading is lenient: "%" followed by two hex digits of either case is that
 * byte; any other '%' is a literal '%', except the whole name "%" (the
 * empty segment) and a final "%~" + 16 lower-case hex digits (a hash tail).
 * A final separator (a final "%2F" or "%2f" when the separator is '/') makes
 * the name an alias, unless that final byte belongs to an escape or a hash
 * tail.  A separator anywhere else, raw or escaped, is -EINVAL: a segment
 * never contains one.
 *
 * A hashed name is resolved by the caller: it denotes the child segment
 * that starts with the decoded head and whose kfs_segment_hash() is
 * *ret_hash (for an alias, that segment's own name may be unhashed).
 *
 * @param[out] out      at least KFS_NAME_MAX bytes: the (head of the)
 *                      segment; clobbered on failure too
 * @param[out] ret_len  its length
 * @param[out] ret_kind what the name is
 * @param[out] ret_hash for KFS_NAME_HASHED and KFS_NAME_HASHED_ALIAS, the
 *                      hash; else untouched
 * @return 0; -ENAMETOOLONG over KFS_NAME_MAX bytes; -EINVAL for an empty
 *         name, "." or "..", a '/' or NUL byte, the separator in the middle
 *         of the name, a bare separator (nothing before it), or an invalid
 *         @sep.  ret_* are written only on success.
 */
int kfs_decode_name(const char *name, size_t name_len, char sep, char *out,
		    size_t *ret_len, enum kfs_name_kind *ret_kind, uint64_t *ret_hash);

#endif
