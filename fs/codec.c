/*
 * codec: the only place that turns key segments into path components and
 * back (PRODUCT.md section 3.1).  readdir writes names with the canonical
 * encoder; lookup, create, mkdir and rename read them with the lenient
 * decoder, so a name a tool makes up (rsync's ".name.XXXXXX", "50%") means
 * what it says.  The encoding is built so that the reserved forms (an
 * escape, the whole name "%", a final "%~" hash tail, a final separator)
 * can never arise from escaping ordinary text: a raw '%' is always escaped.
 */
#include "codec.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

int kfs_check_sep(char sep)
{
	unsigned char c = (unsigned char)sep;

	return c >= 0x20 && c <= 0x7e && c != '%' ? 0 : -EINVAL;
}

uint64_t kfs_segment_hash(const void *seg, size_t len)
{
	const unsigned char *p = seg;
	uint64_t h = FNV64_OFFSET;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV64_PRIME;
	}
	return h;
}

/* The separator is escaped too, in case a caller breaks the contract:
 * a raw separator at the end of a name would read back as an alias. */
static bool must_escape(unsigned char c, char sep)
{
	return c == '%' || c == '/' || c < 0x20 || c == 0x7f ||
	       c == (unsigned char)sep;
}

static bool is_dots(const void *seg, size_t len)
{
	return (len == 1 && memcmp(seg, ".", 1) == 0) ||
	       (len == 2 && memcmp(seg, "..", 2) == 0);
}

/* Length of the unhashed encoding, counted only as far as @limit + 1 so
 * that a huge segment costs no more than a short one. */
static size_t plain_len(const unsigned char *seg, size_t len, char sep, size_t limit)
{
	size_t n = 0;

	if (len == 0)
		return 1;
	if (is_dots(seg, len))
		return 3 * len;
	for (size_t i = 0; i < len && n <= limit; i++)
		n += must_escape(seg[i], sep) ? 3 : 1;
	return n;
}

static size_t put_byte(unsigned char c, char sep, char *out)
{
	if (!must_escape(c, sep)) {
		out[0] = (char)c;
		return 1;
	}
	out[0] = '%';
	out[1] = hex_upper[c >> 4];
	out[2] = hex_upper[c & 0xf];
	return 3;
}

/* Caller has checked that the result fits. "." and ".." are the only
 * segments whose bytes are escaped although they need no escape alone. */
static size_t put_plain(const unsigned char *seg, size_t len, char sep, char *out)
{
	size_t n = 0;

	if (len == 0) {
		out[0] = '%';
		return 1;
	}
	if (is_dots(seg, len)) {
		for (size_t i = 0; i < len; i++, n += 3)
			memcpy(out + n, "%2E", 3);
		return n;
	}
	for (size_t i = 0; i < len; i++)
		n += put_byte(seg[i], sep, out + n);
	return n;
}

/* Move a cut at @n in @buf back to the start of a UTF-8 character that the
 * cut would split, so the head of a hashed name stays valid UTF-8.  Escapes
 * are ASCII, so the walk never enters one.  Bytes that are not valid UTF-8
 * to begin with are left as they are. */
static size_t utf8_cut(const char *buf, size_t n)
{
	size_t cont = 0;
	unsigned char lead;
	size_t need;

	while (cont < 3 && cont < n && ((unsigned char)buf[n - 1 - cont] & 0xc0) == 0x80)
		cont++;
	if (cont == n)
		return n;
	lead = (unsigned char)buf[n - 1 - cont];
	if ((lead & 0xe0) == 0xc0)
		need = 2;
	else if ((lead & 0xf0) == 0xe0)
		need = 3;
	else if ((lead & 0xf8) == 0xf0)
		need = 4;
	else
		need = 1;
	return need > cont + 1 ? n - 1 - cont : n;
}

static size_t put_hashed(const unsigned char *seg, size_t len, char sep, char *out)
{
	uint64_t h = kfs_segment_hash(seg, len);
	char unit[3];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		size_t u = put_byte(seg[i], sep, unit);

		if (n + u > KFS_HASH_HEAD_MAX)
			break;
		memcpy(out + n, unit, u);
		n += u;
	}
	n = utf8_cut(out, n);
	out[n++] = '%';
	out[n++] = '~';
	for (int shift = 60; shift >= 0; shift -= 4)
		out[n++] = hex_lower[(h >> shift) & 0xf];
	return n;
}

size_t kfs_encode_segment(const void *seg, size_t len, char sep, char *out)
{
	size_t n;

	if (plain_len(seg, len, sep, KFS_NAME_MAX) <= KFS_NAME_MAX)
		n = put_plain(seg, len, sep, out);
	else
		n = put_hashed(seg, len, sep, out);
	out[n] = '\0';
	return n;
}

size_t kfs_encode_alias(const void *seg, size_t len, char sep, char *out)
{
	size_t suffix = sep == '/' ? 3 : 1;
	size_t n;

	if (plain_len(seg, len, sep, KFS_NAME_MAX) + suffix <= KFS_NAME_MAX)
		n = put_plain(seg, len, sep, out);
	else
		n = put_hashed(seg, len, sep, out);
	if (sep == '/') {
		memcpy(out + n, "%2F", 3);
		n += 3;
	} else {
		out[n++] = sep;
	}
	out[n] = '\0';
	return n;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Does @name[0..len) end with an escape "%HH"?  A '%' is never a hex digit,
 * so a '%' three bytes from the end always starts a token of its own. */
static bool ends_with_escape(const char *name, size_t len)
{
	return len >= 3 && name[len - 3] == '%' && hex_value(name[len - 2]) >= 0 &&
	       hex_value(name[len - 1]) >= 0;
}

/* Parse a final "%~" + 16 lower-case hex digits.  Only lower case: it is an
 * identifier readdir made up, not text a user types, and one spelling per
 * entry keeps the kernel from caching two names for it. */
static bool parse_hash_tail(const char *name, size_t len, uint64_t *ret_hash)
{
	const char *t;
	uint64_t h = 0;

	if (len < KFS_HASH_TAIL_LEN)
		return false;
	t = name + len - KFS_HASH_TAIL_LEN;
	if (t[0] != '%' || t[1] != '~')
		return false;
	for (size_t i = 2; i < KFS_HASH_TAIL_LEN; i++) {
		const char *d = strchr(hex_lower, t[i]);

		if (t[i] == '\0' || !d)
			return false;
		h = h << 4 | (uint64_t)(d - hex_lower);
	}
	*ret_hash = h;
	return true;
}

/* Length of the alias suffix that ends @name, or 0.  The final separator
 * byte only counts when it is not the last digit of an escape (a hex-digit
 * separator can be); for '/' the suffix is the escape "%2F" itself. */
static size_t alias_suffix(const char *name, size_t len, char sep)
{
	if (sep == '/')
		return ends_with_escape(name, len) && name[len - 2] == '2' &&
		       (name[len - 1] == 'F' || name[len - 1] == 'f') ? 3 : 0;
	return name[len - 1] == sep && !ends_with_escape(name, len) ? 1 : 0;
}

static size_t unescape(const char *name, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int hi = i + 2 < len && name[i] == '%' ? hex_value(name[i + 1]) : -1;
		int lo = hi >= 0 ? hex_value(name[i + 2]) : -1;

		if (lo >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[n++] = name[i];
		}
	}
	return n;
}

int kfs_decode_name(const char *name, size_t name_len, char sep, char *out,
		    size_t *ret_len, enum kfs_name_kind *ret_kind, uint64_t *ret_hash)
{
	bool alias = false, hashed = false;
	size_t body = name_len, len;
	uint64_t hash = 0;

	if (kfs_check_sep(sep) < 0 || name_len == 0)
		return -EINVAL;
	if (name_len > KFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '\0', name_len) || memchr(name, '/', name_len) ||
	    is_dots(name, name_len))
		return -EINVAL;

	/* A hash tail is looked for first: its last digit may equal sep. */
	if (parse_hash_tail(name, body, &hash)) {
		hashed = true;
	} else {
		size_t suffix = alias_suffix(name, body, sep);

		if (suffix) {
			alias = true;
			body -= suffix;
			if (body == 0)
				return -EINVAL;
			hashed = parse_hash_tail(name, body, &hash);
		}
	}
	if (hashed)
		body -= KFS_HASH_TAIL_LEN;

	if (!hashed && body == 1 && name[0] == '%') {
		len = 0;
	} else {
		len = unescape(name, body, out);
		if (memchr(out, sep, len))
			return -EINVAL;
	}

	*ret_len = len;
	if (hashed) {
		*ret_kind = alias ? KFS_NAME_HASHED_ALIAS : KFS_NAME_HASHED;
		*ret_hash = hash;
	} else {
		*ret_kind = alias ? KFS_NAME_ALIAS : KFS_NAME_SEGMENT;
	}
	return 0;
}
