/*
 * test_codec: proves the key segment <-> path component rules of
 * PRODUCT.md section 3.1 on fs/codec.c: the spec's examples one by one,
 * the boundaries of hashed names, lenient reading of names tools invent,
 * and round trips over every 1- and 2-byte segment and 100,000 random
 * segments for the separators ':', '/' and '|'.  A plain encoder written
 * independently here (model_encode) is the reference for unhashed names.
 * Prints TAP.
 */
#include "codec.h"
#include "kvcore.h"
#include "tap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

#define MODEL_MAX (3 * 1024 + 8)
#define SEG_MAX 1024

static const char *const test_seps = ":/|";

static bool model_escaped(unsigned char c)
{
	return c == '%' || c == '/' || c <= 0x1f || c == 0x7f;
}

/* Byte by byte escaping, as the first bullet of the spec says. */
static size_t model_escape(const unsigned char *seg, size_t len, char *buf)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (model_escaped(seg[i]))
			n += (size_t)sprintf(buf + n, "%%%02X", seg[i]);
		else
			buf[n++] = (char)seg[i];
	}
	buf[n] = '\0';
	return n;
}

/* The unhashed encoding, written straight from the spec's bullet list. */
static size_t model_encode(const unsigned char *seg, size_t len, char *buf)
{
	if (len == 0)
		return (size_t)sprintf(buf, "%%");
	if (len == 1 && seg[0] == '.')
		return (size_t)sprintf(buf, "%%2E");
	if (len == 2 && seg[0] == '.' && seg[1] == '.')
		return (size_t)sprintf(buf, "%%2E%%2E");
	return model_escape(seg, len, buf);
}

static bool name_is_safe(const char *name, size_t n)
{
	return n >= 1 && n <= KFS_NAME_MAX && strlen(name) == n &&
	       !memchr(name, '/', n) && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

static void hex_of(const void *p, size_t len, char *buf, size_t bufsize)
{
	const unsigned char *s = p;
	size_t n = 0;

	for (size_t i = 0; i < len && n + 3 < bufsize; i++)
		n += (size_t)snprintf(buf + n, bufsize - n, "%02x", s[i]);
	buf[n] = '\0';
}

/* Checks that @body (a whole name, or an alias without its suffix) is the
 * hashed form of @seg: the longest head of at most 200 bytes cut between
 * escapes and UTF-8 characters, "%~", the hash in lower-case hex. */
static const char *check_hashed_form(const unsigned char *seg, size_t len, char sep,
				     const char *body, size_t blen)
{
	char escaped[MODEL_MAX], tail[KFS_HASH_TAIL_LEN + 1];
	size_t hlen, k, mlen;

	if (blen < KFS_HASH_TAIL_LEN || blen > KFS_HASH_NAME_MAX)
		return "hashed name has the wrong length";
	hlen = blen - KFS_HASH_TAIL_LEN;
	snprintf(tail, sizeof tail, "%%~%016" PRIx64, kfs_segment_hash(seg, len));
	if (memcmp(body + hlen, tail, KFS_HASH_TAIL_LEN) != 0)
		return "hashed name does not end in %~ and the segment's hash in lower-case hex";
	/* The head must be the escaping of some prefix of the segment. */
	model_escape(seg, len, escaped);
	for (k = 0, mlen = 0; k < len && mlen < hlen; k++)
		mlen += model_escaped(seg[k]) ? 3 : 1;
	if (mlen != hlen || memcmp(escaped, body, hlen) != 0)
		return "head is not the encoding of a prefix of the segment cut between escapes";
	if (hlen + 3 + 3 < KFS_HASH_HEAD_MAX)
		return "head is shorter than the 200-byte cut needs";
	if (kvc_utf8_valid(seg, len) && !kvc_utf8_valid((const unsigned char *)body, hlen))
		return "head of a UTF-8 segment is not valid UTF-8";
	(void)sep;
	return NULL;
}

/* Every rule about one segment (which does not contain @sep); NULL if all hold. */
static const char *check_segment(const unsigned char *seg, size_t len, char sep)
{
	char name[KFS_NAME_MAX + 1], alias[KFS_NAME_MAX + 1], model[MODEL_MAX];
	char out[KFS_NAME_MAX];
	const char *suffix = sep == '/' ? "%2F" : (char[]){sep, '\0'};
	size_t slen = strlen(suffix);
	size_t n, a, mlen, dlen = 999;
	enum kfs_name_kind kind;
	uint64_t hash = 0;
	const char *why;

	memset(name, 'Z', sizeof name);
	n = kfs_encode_segment(seg, len, sep, name);
	if (!name_is_safe(name, n))
		return "encoded name is empty, over 255 bytes, not NUL-terminated, has '/' or NUL, or is a dot name";
	mlen = model_encode(seg, len, model);
	if (mlen <= KFS_NAME_MAX) {
		if (n != mlen || memcmp(name, model, n) != 0)
			return "encoding differs from the spec's escaping rules";
		if (kfs_decode_name(name, n, sep, out, &dlen, &kind, &hash) != 0)
			return "decoding the encoding fails";
		if (kind != KFS_NAME_SEGMENT || dlen != len || memcmp(out, seg, len) != 0)
			return "decode(encode(s)) != s";
	} else {
		why = check_hashed_form(seg, len, sep, name, n);
		if (why)
			return why;
		if (kfs_decode_name(name, n, sep, out, &dlen, &kind, &hash) != 0)
			return "decoding a hashed name fails";
		if (kind != KFS_NAME_HASHED || hash != kfs_segment_hash(seg, len) ||
		    dlen > len || memcmp(out, seg, dlen) != 0)
			return "decoding a hashed name does not give a head of the segment and its hash";
	}

	memset(alias, 'Z', sizeof alias);
	a = kfs_encode_alias(seg, len, sep, alias);
	if (!name_is_safe(alias, a) || a < slen + 1 || strcmp(alias + a - slen, suffix) != 0)
		return "alias is not a safe name ending with the separator (%2F for '/')";
	if (mlen + slen <= KFS_NAME_MAX) {
		if (a != mlen + slen || memcmp(alias, model, mlen) != 0)
			return "alias is not the encoded segment plus the separator";
		if (kfs_decode_name(alias, a, sep, out, &dlen, &kind, &hash) != 0 ||
		    kind != KFS_NAME_ALIAS || dlen != len || memcmp(out, seg, len) != 0)
			return "alias does not decode to KFS_NAME_ALIAS of the segment";
	} else {
		why = check_hashed_form(seg, len, sep, alias, a - slen);
		if (why)
			return why;
		if (mlen > KFS_NAME_MAX && memcmp(alias, name, n) != 0)
			return "alias of a hashed segment is not its hashed name plus the separator";
		if (kfs_decode_name(alias, a, sep, out, &dlen, &kind, &hash) != 0 ||
		    kind != KFS_NAME_HASHED_ALIAS || hash != kfs_segment_hash(seg, len) ||
		    dlen > len || memcmp(out, seg, dlen) != 0)
			return "hashed alias does not decode to KFS_NAME_HASHED_ALIAS";
	}
	return NULL;
}

struct loop_result {
	unsigned long cases;
	unsigned long failures;
};

static void loop_case(struct loop_result *r, const unsigned char *seg, size_t len, char sep)
{
	const char *why = check_segment(seg, len, sep);
	char hex[80];

	r->cases++;
	if (!why)
		return;
	if (++r->failures <= 5) {
		hex_of(seg, len, hex, sizeof hex);
		diag("sep '%c' len %zu seg %s%s: %s", sep, len, hex,
			       len > 38 ? "..." : "", why);
	}
}

/* xorshift64*: a fixed seed makes every run test the same segments. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

static size_t put_utf8(uint32_t cp, unsigned char *p)
{
	static const unsigned char lead[] = {0, 0x00, 0xc0, 0xe0, 0xf0};
	size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

	/* continuation bytes carry 6 bits each, last first; the lead the rest */
	for (size_t i = n - 1; i > 0; i--, cp >>= 6)
		p[i] = (unsigned char)(0x80 | (cp & 0x3f));
	p[0] = (unsigned char)(lead[n] | cp);
	return n;
}

/* ---- expectations on exact strings ---- */

/* An encoder's example: @encode (kfs_encode_segment or kfs_encode_alias)
 * makes @want of @seg (@len bytes, NUL allowed) under @sep. */
struct encode_case {
	size_t (*encode)(const void *seg, size_t len, char sep, char *out);
	const char *rule;
	const char *seg;
	size_t len;
	char sep;
	const char *want;
};

static void expect_encoding(const struct encode_case *c)
{
	char name[KFS_NAME_MAX + 1];
	size_t n = c->encode(c->seg, c->len, c->sep, name);

	if (!ok(n == strlen(c->want) && strcmp(name, c->want) == 0, "%s", c->rule))
		diag("got \"%s\" (%zu), want \"%s\"", name, n, c->want);
}

static const char *kind_name(enum kfs_name_kind k)
{
	switch (k) {
	case KFS_NAME_SEGMENT:
		return "SEGMENT";
	case KFS_NAME_ALIAS:
		return "ALIAS";
	case KFS_NAME_HASHED:
		return "HASHED";
	case KFS_NAME_HASHED_ALIAS:
		return "HASHED_ALIAS";
	}
	return "?";
}

/* Decode @name (length @nlen) and compare with @want_seg/@want_kind;
 * for an error, @want_err is the negative errno and the rest is unused. */
static bool expect_decode_n(const char *rule, const char *name, size_t nlen,
			    char sep, int want_err, enum kfs_name_kind want_kind,
			    const void *want_seg, size_t want_len)
{
	char out[KFS_NAME_MAX];
	size_t len = 12345;
	enum kfs_name_kind kind = (enum kfs_name_kind)77;
	uint64_t hash = 0x1111;
	int rc = kfs_decode_name(name, nlen, sep, out, &len, &kind, &hash);
	bool pass;

	if (want_err)
		pass = rc == want_err && len == 12345 && kind == (enum kfs_name_kind)77 &&
		     hash == 0x1111;
	else
		pass = rc == 0 && kind == want_kind && len == want_len &&
		     memcmp(out, want_seg, want_len) == 0 &&
		     ((kind != KFS_NAME_SEGMENT && kind != KFS_NAME_ALIAS) || hash == 0x1111);
	if (!ok(pass, "%s", rule)) {
		if (rc)
			diag("rc %d (%s)", rc, strerror(-rc));
		else
			diag("rc 0 kind %s len %zu \"%.*s\"", kind_name(kind), len,
				       (int)len, out);
	}
	return pass;
}

static bool expect_decode(const char *rule, const char *name, char sep,
			  enum kfs_name_kind want_kind, const char *want_seg)
{
	return expect_decode_n(rule, name, strlen(name), sep, 0, want_kind, want_seg,
			       strlen(want_seg));
}

static bool expect_error(const char *rule, const char *name, char sep,
			 int want_err)
{
	return expect_decode_n(rule, name, strlen(name), sep, want_err, KFS_NAME_SEGMENT,
			       NULL, 0);
}

static bool expect_hashed(const char *rule, const char *name, char sep,
			  enum kfs_name_kind want_kind, const char *want_head, uint64_t want_hash)
{
	char out[KFS_NAME_MAX];
	size_t len = 0;
	enum kfs_name_kind kind = KFS_NAME_SEGMENT;
	uint64_t hash = 0;
	int rc = kfs_decode_name(name, strlen(name), sep, out, &len, &kind, &hash);
	bool pass = rc == 0 && kind == want_kind && hash == want_hash &&
		  len == strlen(want_head) && memcmp(out, want_head, len) == 0;

	if (!ok(pass, "%s", rule))
		diag("rc %d kind %s len %zu hash %016" PRIx64, rc, kind_name(kind), len,
			       hash);
	return pass;
}

/* Decoder examples: @name under @sep is a name of @kind denoting @seg (a
 * hashed name: its head, and @hash); a refused one gives @err. */
struct decode_case {
	const char *rule;
	const char *name;
	char sep;
	enum kfs_name_kind kind;
	const char *seg;
};

struct hashed_case {
	struct decode_case d; /* d.seg: the decoded head */
	uint64_t hash;
};

struct refused_case {
	const char *rule;
	const char *name;
	char sep;
	int err;
};

/* A key's path as kvfs shows it: the segments split on @sep, encoded. */
static void key_path(const char *key, char sep, char *path)
{
	const char *p = key;
	size_t n = 0;

	for (;;) {
		const char *end = strchr(p, sep);
		size_t len = end ? (size_t)(end - p) : strlen(p);

		path[n++] = '/';
		n += kfs_encode_segment(p, len, sep, path + n);
		if (!end)
			break;
		p = end + 1;
	}
	path[n] = '\0';
}

static void expect_path(const char *key, char sep, const char *want)
{
	char path[4096];

	key_path(key, sep, path);
	if (!ok(strcmp(path, want) == 0, "key \"%s\" (sep '%c') is the path %s",
			  key, sep, want))
		diag("got %s", path);
}

/* ---- the tests ---- */

static void test_hash(void)
{
	ok(kfs_segment_hash("", 0) == 0xcbf29ce484222325ull,
		     "hash: FNV-1a 64 of the empty segment is the offset basis");
	ok(kfs_segment_hash("a", 1) == 0xaf63dc4c8601ec8cull,
		     "hash: FNV-1a 64 of \"a\" is af63dc4c8601ec8c");
	ok(kfs_segment_hash("foobar", 6) == 0x85944171f73967e8ull,
		     "hash: FNV-1a 64 of \"foobar\" is 85944171f73967e8");
}

static void test_sep_check(void)
{
	bool pass = true;

	for (int c = 0; c < 256; c++) {
		bool want = c >= 0x20 && c <= 0x7e && c != '%';

		if ((kfs_check_sep((char)c) == 0) != want) {
			diag("byte 0x%02x judged wrongly", c);
			pass = false;
		}
	}
	ok(pass, "sep: any printable byte but '%%' is a valid separator, nothing else");
	expect_error("sep: decoding with '%' as separator is EINVAL", "abc", '%', -EINVAL);
	expect_error("sep: decoding with a control byte as separator is EINVAL", "abc", '\n',
		     -EINVAL);
}

static void test_paths(void)
{
	expect_path("user:123", ':', "/user/123");
	expect_path("cache:product:42", ':', "/cache/product/42");
	expect_path("a::b", ':', "/a/%/b");
	expect_path("a:", ':', "/a/%");
	expect_path(":a", ':', "/%/a");
	expect_path("user/123:x", '/', "/user/123:x");
	expect_path("a|b/c", '|', "/a/b%2Fc");
}

static const struct encode_case encode_examples[] = {
	{kfs_encode_segment, "encode: plain text is written as itself", "user", 4, ':', "user"},
	{kfs_encode_segment, "encode: the empty segment is \"%\"", "", 0, ':', "%"},
	{kfs_encode_segment, "encode: '%' in a segment is %25", "50%", 3, ':', "50%25"},
	{kfs_encode_segment, "encode: '/' in a segment is %2F", "a/b", 3, ':', "a%2Fb"},
	{kfs_encode_segment, "encode: NUL is %00", "\0", 1, ':', "%00"},
	{kfs_encode_segment, "encode: control bytes are %XX in upper-case hex", "\x01tab\there\x1f", 10, ':', "%01tab%09here%1F"},
	{kfs_encode_segment, "encode: 0x7F is %7F", "del\x7f", 4, ':', "del%7F"},
	{kfs_encode_segment, "encode: the segment \".\" is %2E", ".", 1, ':', "%2E"},
	{kfs_encode_segment, "encode: the segment \"..\" is %2E%2E", "..", 2, ':', "%2E%2E"},
	{kfs_encode_segment, "encode: \"...\" and dot files are not escaped", "...", 3, ':', "..."},
	{kfs_encode_segment, "encode: \".name.XXXXXX\" is written as itself", ".name.XXXXXX", 12, ':', ".name.XXXXXX"},
	{kfs_encode_segment, "encode: the 3-byte segment text \"%2E\" is %252E", "%2E", 3, ':', "%252E"},
	{kfs_encode_segment, "encode: text that looks like a hash tail is escaped", "x%~0123456789abcdef", 19, ':', "x%25~0123456789abcdef"},
	{kfs_encode_segment, "encode: UTF-8 is written as itself", "caf\xc3\xa9 \xe2\x82\xac", 9, ':', "caf\xc3\xa9 \xe2\x82\xac"},
	{kfs_encode_segment, "encode: bytes 0x80-0xFF are written as themselves", "\x80\xff", 2, ':', "\x80\xff"},
	{kfs_encode_segment, "encode: space, '~', '\\' and ':' with sep '/' are not escaped", " ~\\:", 4, '/', " ~\\:"},
	{kfs_encode_segment, "encode: the empty segment is \"%\" with sep '/' too", "", 0, '/', "%"},
	{kfs_encode_segment, "encode: control bytes are escaped with sep '/' too", "\x1b[0m", 4, '/', "%1B[0m"},
	{kfs_encode_segment, "encode: a separator byte in a segment (a caller bug) is escaped", "a:b", 3, ':', "a%3Ab"},
	{kfs_encode_alias, "alias: \"2\" with sep ':' is \"2:\"", "2", 1, ':', "2:"},
	{kfs_encode_alias, "alias: the empty segment's alias is \"%:\"", "", 0, ':', "%:"},
	{kfs_encode_alias, "alias: the segment \".\" has the alias \"%2E:\"", ".", 1, ':', "%2E:"},
	{kfs_encode_alias, "alias: with sep '/' the separator is written %2F", "user", 4, '/', "user%2F"},
	{kfs_encode_alias, "alias: the empty segment with sep '/' is \"%%2F\"", "", 0, '/', "%%2F"},
	{kfs_encode_alias, "alias: with sep '|' the alias ends in '|'", "a", 1, '|', "a|"},
};

static void test_encode_examples(void)
{
	for (size_t i = 0; i < sizeof encode_examples / sizeof encode_examples[0]; i++)
		expect_encoding(&encode_examples[i]);
}

/* Names that decode to a segment, or to the directory of a prefix. */
static const struct decode_case decode_examples[] = {
	{"decode: \"%\" is the empty segment", "%", ':', KFS_NAME_SEGMENT, ""},
	{"decode: %25 is '%'", "50%25", ':', KFS_NAME_SEGMENT, "50%"},
	{"decode: %2F is '/' when the separator is ':'", "a%2Fb", ':', KFS_NAME_SEGMENT, "a/b"},
	{"decode: %2E is the segment \".\"", "%2E", ':', KFS_NAME_SEGMENT, "."},
	{"decode: %2E%2E is the segment \"..\"", "%2E%2E", ':', KFS_NAME_SEGMENT, ".."},
	{"decode: %252E is the 3-byte segment \"%2E\"", "%252E", ':', KFS_NAME_SEGMENT, "%2E"},
	{"decode: lower-case hex after % is accepted", "%2e%2f%7f%0a", ':', KFS_NAME_SEGMENT, "./\x7f\n"},
	{"decode: lower-case hex decodes UTF-8 bytes", "%e2%82%AC", ':', KFS_NAME_SEGMENT, "\xe2\x82\xac"},
	{"lenient: \"%zz\" is literal", "%zz", ':', KFS_NAME_SEGMENT, "%zz"},
	{"lenient: \"50%\" is literal", "50%", ':', KFS_NAME_SEGMENT, "50%"},
	{"lenient: \"%4\" is literal", "%4", ':', KFS_NAME_SEGMENT, "%4"},
	{"lenient: \"%%\" is two literal '%'", "%%", ':', KFS_NAME_SEGMENT, "%%"},
	{"lenient: \"%%41\" is '%' then the escape %41", "%%41", ':', KFS_NAME_SEGMENT, "%A"},
	{"lenient: \"%G1\" is literal", "%G1", ':', KFS_NAME_SEGMENT, "%G1"},
	{"lenient: rsync's \".name.XXXXXX\" is literal", ".name.Ab3%9z", ':', KFS_NAME_SEGMENT, ".name.Ab3%9z"},
	{"lenient: editors' \"foo~\" is literal", "foo~", ':', KFS_NAME_SEGMENT, "foo~"},
	{"lenient: editors' \".foo.swp\" is literal", ".foo.swp", ':', KFS_NAME_SEGMENT, ".foo.swp"},
	{"lenient: \"a%~123\" is not a hash tail", "a%~123", ':', KFS_NAME_SEGMENT, "a%~123"},
	{"lenient: \"x%~\" + 15 hex is not a hash tail", "x%~0123456789abcde", ':', KFS_NAME_SEGMENT, "x%~0123456789abcde"},
	{"lenient: \"x%~\" + 17 hex is not a hash tail", "x%~0123456789abcdef0", ':', KFS_NAME_SEGMENT, "x%~0123456789abcdef0"},
	{"lenient: a hash tail in upper-case hex is literal", "x%~0123456789ABCDEF", ':', KFS_NAME_SEGMENT, "x%~0123456789ABCDEF"},
	{"lenient: \"%~\" inside a name is literal", "a%~0123456789abcdefz", ':', KFS_NAME_SEGMENT, "a%~0123456789abcdefz"},
	{"lenient: \"%2E\" inside a longer name is '.'", "a%2E", ':', KFS_NAME_SEGMENT, "a."},
	{"alias: \"2:\" is the directory of prefix \"2\"", "2:", ':', KFS_NAME_ALIAS, "2"},
	{"alias: \"%:\" is the directory of the empty prefix", "%:", ':', KFS_NAME_ALIAS, ""},
	{"alias: \"%2E:\" is the directory of prefix \".\"", "%2E:", ':', KFS_NAME_ALIAS, "."},
	{"alias: \".:\" leniently is the directory of prefix \".\"", ".:", ':', KFS_NAME_ALIAS, "."},
	{"alias: \"50%:\" is the directory of prefix \"50%\"", "50%:", ':', KFS_NAME_ALIAS, "50%"},
	{"alias: sep '|' ends an alias with '|'", "a|", '|', KFS_NAME_ALIAS, "a"},
	{"sep: ':' is ordinary text when the separator is '|'", "a:b", '|', KFS_NAME_SEGMENT, "a:b"},
	{"sep '/': \"x%2F\" is the directory of prefix \"x\"", "x%2F", '/', KFS_NAME_ALIAS, "x"},
	{"sep '/': \"x%2f\" (lower-case) is the alias too", "x%2f", '/', KFS_NAME_ALIAS, "x"},
	{"sep '/': \"%%2F\" is the directory of the empty prefix", "%%2F", '/', KFS_NAME_ALIAS, ""},
	{"sep '/': \"a:\" is an ordinary segment", "a:", '/', KFS_NAME_SEGMENT, "a:"},
	{"hex sep 'A': \"%0A\" is the escape of a newline, not an alias", "%0A", 'A', KFS_NAME_SEGMENT, "\n"},
	{"hex sep 'A': \"%0AA\" is the alias of a newline", "%0AA", 'A', KFS_NAME_ALIAS, "\n"},
	{"hex sep 'E': \"%2E\" is the segment \".\"", "%2E", 'E', KFS_NAME_SEGMENT, "."},
	{"hex sep '5': \"%5\" is the alias of the empty segment", "%5", '5', KFS_NAME_ALIAS, ""},
	{"sep '~': \"foo~\" is the alias of \"foo\"", "foo~", '~', KFS_NAME_ALIAS, "foo"},
	{"sep '~': \"%~\" is the alias of the empty segment", "%~", '~', KFS_NAME_ALIAS, ""},
};

/* Names of the hashed form: their decoded head and their hash. */
static const struct hashed_case hashed_examples[] = {
	{{"hashed: \"x%~\" + 16 lower-case hex is a hashed name", "x%~0123456789abcdef", ':', KFS_NAME_HASHED, "x"}, 0x0123456789abcdefull},
	{{"hashed: the head of a hashed name is decoded", "a%2Fb%~ffffffffffffffff", ':', KFS_NAME_HASHED, "a/b"}, UINT64_MAX},
	{{"hashed: a bare hash tail has an empty head", "%~0000000000000000", ':', KFS_NAME_HASHED, ""}, 0},
	{{"hashed: hashed name + sep is KFS_NAME_HASHED_ALIAS", "x%~0123456789abcdef:", ':', KFS_NAME_HASHED_ALIAS, "x"}, 0x0123456789abcdefull},
	{{"hashed: hashed name + %2F with sep '/' is KFS_NAME_HASHED_ALIAS", "x%~0123456789abcdef%2F", '/', KFS_NAME_HASHED_ALIAS, "x"}, 0x0123456789abcdefull},
	{{"hex sep 'f': a hash tail ending in 'f' is a hashed name, not an alias", "x%~0123456789abcdef", 'f', KFS_NAME_HASHED, "x"}, 0x0123456789abcdefull},
	{{"hex sep 'f': a hash tail plus 'f' is a hashed alias", "x%~0123456789abcdeff", 'f', KFS_NAME_HASHED_ALIAS, "x"}, 0x0123456789abcdefull},
	{{"sep '~': \"%~\" in a hash tail is not a separator", "x%~0123456789abcdef", '~', KFS_NAME_HASHED, "x"}, 0x0123456789abcdefull},
};

static const struct refused_case refused_examples[] = {
	{"hashed: a head holding the separator is EINVAL", "a%3Ab%~0123456789abcdef", ':', -EINVAL},
	{"sep: the separator in the middle of a name is EINVAL", "a:b", ':', -EINVAL},
	{"sep: the separator at the start of a name is EINVAL", ":a", ':', -EINVAL},
	{"sep: a bare separator is EINVAL", ":", ':', -EINVAL},
	{"sep: two final separators are EINVAL", "a::", ':', -EINVAL},
	{"sep: an escaped separator %3A is EINVAL", "%3A", ':', -EINVAL},
	{"sep: an escaped separator %3a (lower-case) is EINVAL", "x%3a", ':', -EINVAL},
	{"sep: an escaped separator before an alias's sep is EINVAL", "a%3A:", ':', -EINVAL},
	{"sep: '|' in the middle is EINVAL when it is the separator", "a|b", '|', -EINVAL},
	{"sep '/': a bare \"%2F\" is EINVAL", "%2F", '/', -EINVAL},
	{"sep '/': %2F in the middle is EINVAL", "a%2Fb", '/', -EINVAL},
	{"hex sep 'A': a raw 'A' in the middle is EINVAL", "xAy", 'A', -EINVAL},
	{"refuse: \".\" is EINVAL", ".", ':', -EINVAL},
	{"refuse: \"..\" is EINVAL", "..", ':', -EINVAL},
	{"refuse: the empty name is EINVAL", "", ':', -EINVAL},
	{"refuse: a name with '/' is EINVAL", "a/b", ':', -EINVAL},
};

static void test_decode_examples(void)
{
	for (size_t i = 0; i < sizeof decode_examples / sizeof decode_examples[0]; i++) {
		const struct decode_case *c = &decode_examples[i];

		expect_decode(c->rule, c->name, c->sep, c->kind, c->seg);
	}
	expect_decode_n("decode: %00 is a NUL byte in the segment", "a%00b", 5, ':', 0,
			KFS_NAME_SEGMENT, "a\0b", 3);
	for (size_t i = 0; i < sizeof hashed_examples / sizeof hashed_examples[0]; i++) {
		const struct hashed_case *c = &hashed_examples[i];

		expect_hashed(c->d.rule, c->d.name, c->d.sep, c->d.kind, c->d.seg, c->hash);
	}
	for (size_t i = 0; i < sizeof refused_examples / sizeof refused_examples[0]; i++) {
		const struct refused_case *c = &refused_examples[i];

		expect_error(c->rule, c->name, c->sep, c->err);
	}
	expect_decode_n("refuse: a name with a NUL byte is EINVAL", "a\0b", 3, ':', -EINVAL,
			KFS_NAME_SEGMENT, NULL, 0);
	{
		char big[KFS_NAME_MAX + 2];

		memset(big, 'a', sizeof big);
		big[KFS_NAME_MAX + 1] = '\0';
		expect_error("refuse: a 256-byte name is ENAMETOOLONG", big, ':', -ENAMETOOLONG);
		big[KFS_NAME_MAX] = '\0';
		expect_decode("decode: a 255-byte name is accepted", big, ':', KFS_NAME_SEGMENT,
			      big);
	}
}

/* Encode @seg; check it against @want_len and, for a hashed name, that the
 * head is @want_head bytes of encoding.  The structural checks of
 * check_segment run too. */
static void expect_long(const char *rule, const unsigned char *seg,
			size_t len, char sep, size_t want_len, size_t want_head)
{
	char name[KFS_NAME_MAX + 1];
	size_t n = kfs_encode_segment(seg, len, sep, name);
	const char *why = check_segment(seg, len, sep);
	bool hashed = n >= KFS_HASH_TAIL_LEN &&
		      memcmp(name + n - KFS_HASH_TAIL_LEN, "%~", 2) == 0;
	bool pass = !why && n == want_len &&
		  (want_head == 0 ? !hashed : hashed && n - KFS_HASH_TAIL_LEN == want_head);

	if (!ok(pass, "%s", rule))
		diag("length %zu (want %zu), hashed %d, %s", n, want_len, hashed,
			       why ? why : "structure ok");
}

/* A segment of 'a' with @bytes written at @at, cut to @len bytes: its
 * encoding is @want_len bytes, hashed with a head of @want_head (0: whole). */
struct cut_case {
	const char *rule;
	size_t at;
	const char *bytes;
	size_t len, want_len, want_head;
};

static const struct cut_case cut_examples[] = {
	{"long: an escape across byte 200 is left out whole (head 199)", 199, "%", 300, 199 + 18, 199},
	{"long: an escape ending at byte 200 is kept (head 200)", 197, "/", 300, 200 + 18, 200},
	{"long: 250 + two escapes = 256 bytes is hashed", 250, "//", 252, 218, 200},
	{"long: 250 + one escape = 253 bytes is kept", 250, "//", 251, 253, 0},
	/* UTF-8 around the cut at 200 */
	{"utf8: a 2-byte character across the cut is left out (head 199)", 199, "\xc3\xa9", 300, 199 + 18, 199},
	{"utf8: a 2-byte character ending at 200 is kept (head 200)", 198, "\xc3\xa9", 300, 200 + 18, 200},
	{"utf8: a 3-byte character across the cut is left out (head 198)", 198, "\xe2\x82\xac", 300, 198 + 18, 198},
	{"utf8: a 3-byte character starting at 199 is left out (head 199)", 199, "\xe2\x82\xac", 300, 199 + 18, 199},
	{"utf8: a 4-byte character across the cut is left out (head 197)", 197, "\xf0\x9f\x98\x80", 300, 197 + 18, 197},
	{"utf8: a 4-byte character ending at 200 is kept (head 200)", 196, "\xf0\x9f\x98\x80", 300, 200 + 18, 200},
};

static void test_long(void)
{
	unsigned char seg[SEG_MAX];
	char name[KFS_NAME_MAX + 1], want[KFS_NAME_MAX + 1];
	size_t n;

	memset(seg, 'a', sizeof seg);
	expect_long("long: a 255-byte encoding is kept whole", seg, 255, ':', 255, 0);
	expect_long("long: a 256-byte encoding is hashed: 200 bytes, %~, 16 hex", seg, 256, ':',
		    218, 200);
	expect_long("long: a 300-byte segment is hashed", seg, 300, ':', 218, 200);
	expect_long("long: a 512-byte segment is hashed", seg, 512, ':', 218, 200);

	n = kfs_encode_segment(seg, 300, ':', name);
	snprintf(want, sizeof want, "%.200s%%~%016" PRIx64, (const char *)seg,
		 kfs_segment_hash(seg, 300));
	ok(n == 218 && strcmp(name, want) == 0,
		     "long: the hashed name is exactly head + \"%%~\" + hash of the whole segment");
	n = kfs_encode_segment(seg, 301, ':', want);
	ok(n == 218 && strcmp(name, want) != 0,
		     "long: segments sharing the head get different hashed names");

	memset(seg, '%', sizeof seg);
	expect_long("long: 85 '%' encode to 255 bytes, kept whole", seg, 85, ':', 255, 0);
	expect_long("long: 86 '%' are hashed and the cut lands between escapes (198)", seg, 86,
		    ':', 198 + 18, 198);
	expect_long("long: 512 '%' are hashed, cut between escapes", seg, 512, ':', 198 + 18,
		    198);

	for (size_t i = 0; i < sizeof cut_examples / sizeof cut_examples[0]; i++) {
		const struct cut_case *c = &cut_examples[i];

		memset(seg, 'a', sizeof seg);
		memcpy(seg + c->at, c->bytes, strlen(c->bytes));
		expect_long(c->rule, seg, c->len, ':', c->want_len, c->want_head);
	}
	for (size_t i = 0; i + 3 <= 300; i += 3)
		memcpy(seg + i, "\xe2\x82\xac", 3);
	expect_long("utf8: 100 euro signs are cut after 66 of them (head 198)", seg, 300, ':',
		    198 + 18, 198);
	for (size_t i = 0; i + 4 <= 512; i += 4)
		memcpy(seg + i, "\xf0\x9f\x98\x80", 4);
	expect_long("utf8: 128 emoji are cut after 50 of them (head 200)", seg, 512, ':',
		    200 + 18, 200);
	memset(seg, 0x80, sizeof seg);
	expect_long("utf8: bytes that are not UTF-8 are cut at 200 all the same", seg, 300, ':',
		    200 + 18, 200);

	/* aliases near the limit */
	memset(seg, 'a', sizeof seg);
	n = kfs_encode_alias(seg, 254, ':', name);
	ok(n == 255 && name[254] == ':' && !memchr(name, '%', n),
		     "alias: a 254-byte segment's alias is plain (255 bytes)");
	n = kfs_encode_alias(seg, 255, ':', name);
	snprintf(want, sizeof want, "%.200s%%~%016" PRIx64 ":", (const char *)seg,
		 kfs_segment_hash(seg, 255));
	ok(n == 219 && strcmp(name, want) == 0,
		     "alias: a 255-byte segment's alias does not fit, so it is hashed (+ sep)");
	n = kfs_encode_alias(seg, 252, '/', name);
	ok(n == 255 && strcmp(name + 252, "%2F") == 0 && !memchr(name, '~', n),
		     "alias: with sep '/' a 252-byte segment's alias is plain (255 bytes)");
	n = kfs_encode_alias(seg, 253, '/', name);
	ok(n == 221 && strcmp(name + 200, want + 200) != 0 &&
			     memcmp(name + 200, "%~", 2) == 0 && strcmp(name + 218, "%2F") == 0,
		     "alias: with sep '/' a 253-byte segment's alias is hashed (+ %%2F)");
	n = kfs_encode_alias(seg, 400, ':', name);
	kfs_encode_segment(seg, 400, ':', want);
	ok(n == 219 && strncmp(name, want, 218) == 0 && name[218] == ':',
		     "alias: a hashed segment's alias is its hashed name + sep (219 bytes, listable)");
	want[200] = '\0';
	expect_hashed("alias: the hashed alias decodes to KFS_NAME_HASHED_ALIAS", name, ':',
		      KFS_NAME_HASHED_ALIAS, want, kfs_segment_hash(seg, 400));
}

static void test_exhaustive(void)
{
	for (const char *s = test_seps; *s; s++) {
		char sep = *s;
		struct loop_result r1 = {0}, r2 = {0};
		unsigned char seg[2];

		loop_case(&r1, seg, 0, sep);
		for (int a = 0; a < 256; a++) {
			if (a == (unsigned char)sep)
				continue;
			seg[0] = (unsigned char)a;
			loop_case(&r1, seg, 1, sep);
			for (int b = 0; b < 256; b++) {
				if (b == (unsigned char)sep)
					continue;
				seg[1] = (unsigned char)b;
				loop_case(&r2, seg, 2, sep);
			}
		}
		ok(r1.failures == 0 && r1.cases == 256,
			     "round trip: the empty and all %lu 1-byte segments, sep '%c' (%lu failed)",
			     r1.cases - 1, sep, r1.failures);
		ok(r2.failures == 0 && r2.cases == 255 * 255,
			     "round trip: all %lu 2-byte segments, sep '%c' (%lu failed)", r2.cases,
			     sep, r2.failures);
	}
	{
		struct loop_result r = {0};
		unsigned char seg[3];

		for (int sep = 0x20; sep <= 0x7e; sep++) {
			if (sep == '%')
				continue;
			for (int a = 0; a < 256; a++) {
				if (a == sep)
					continue;
				seg[0] = (unsigned char)a;
				loop_case(&r, seg, 1, (char)sep);
				seg[1] = seg[2] = (unsigned char)a;
				loop_case(&r, seg, 3, (char)sep);
			}
			loop_case(&r, (const unsigned char *)"", 0, (char)sep);
		}
		ok(r.failures == 0,
			     "round trip: 1- and 3-byte segments under every valid separator (%lu cases, %lu failed)",
			     r.cases, r.failures);
	}
}

static void test_random(void)
{
	for (const char *s = test_seps; *s; s++) {
		char sep = *s;
		struct rng rng = {0x9e3779b97f4a7c15ull ^ (uint64_t)(unsigned char)sep};
		struct loop_result r = {0}, hashed = {0};
		unsigned char seg[512];

		for (int i = 0; i < 100000; i++) {
			size_t len = (size_t)(rng_next(&rng) % 513);
			char name[KFS_NAME_MAX + 1];

			for (size_t k = 0; k < len; k++) {
				do
					seg[k] = (unsigned char)(rng_next(&rng) >> 56);
				while (seg[k] == (unsigned char)sep);
			}
			loop_case(&r, seg, len, sep);
			if (kfs_encode_segment(seg, len, sep, name) > 0 && strstr(name, "%~"))
				hashed.cases++;
		}
		ok(r.failures == 0 && hashed.cases > 1000,
			     "round trip: 100000 random segments of 0..512 bytes, sep '%c' (%lu hashed, %lu failed)",
			     sep, hashed.cases, r.failures);
	}
	for (const char *s = test_seps; *s; s++) {
		char sep = *s;
		struct rng rng = {0x0123456789abcdefull ^ (uint64_t)(unsigned char)sep};
		struct loop_result r = {0};
		unsigned char seg[512 + 4];
		static const char specials[] = "%/.~\x01\x7f ";

		for (int i = 0; i < 20000; i++) {
			size_t want = (size_t)(rng_next(&rng) % 513), len = 0;

			while (len < want) {
				uint64_t x = rng_next(&rng);
				uint32_t cp;
				unsigned char tmp[4];
				size_t u;

				switch (x % 5) {
				case 0:
					cp = (uint32_t)(0x80 + (x >> 8) % (0x800 - 0x80));
					break;
				case 1:
					cp = (uint32_t)(0x800 + (x >> 8) % (0xd800 - 0x800));
					break;
				case 2:
					cp = (uint32_t)(0x10000 + (x >> 8) % (0x110000 - 0x10000));
					break;
				case 3:
					cp = (unsigned char)specials[(x >> 8) % (sizeof specials - 1)];
					break;
				default:
					cp = (uint32_t)('a' + (x >> 8) % 26);
					break;
				}
				if (cp == (unsigned char)sep)
					continue;
				u = put_utf8(cp, tmp);
				if (len + u > want)
					break;
				memcpy(seg + len, tmp, u);
				len += u;
			}
			loop_case(&r, seg, len, sep);
		}
		ok(r.failures == 0,
			     "utf8: 20000 random UTF-8 segments keep valid UTF-8 heads, sep '%c' (%lu failed)",
			     sep, r.failures);
	}
}

/* decode(n) = s  =>  encode(s) (or encode_alias) denotes s again and,
 * unless it is hashed, is a fixed point: the canonical form of every name a
 * tool can invent.  (A name with raw control bytes grows threefold when
 * escaped, so its canonical form may be hashed.)  Counts what it saw in
 * @st, so a caller can prove its names reached every branch. */
struct name_stats {
	unsigned long names, failures, refused, segments, aliases, hashed, hashed_canon;
};

static const char *check_name(const char *name, size_t nlen, char sep, struct name_stats *st)
{
	char out[KFS_NAME_MAX], canon[KFS_NAME_MAX + 1], out2[KFS_NAME_MAX];
	char canon2[KFS_NAME_MAX + 1];
	size_t len, len2, c, c2;
	enum kfs_name_kind kind, kind2;
	uint64_t hash = 0, hash2 = 0;
	bool alias;
	int rc = kfs_decode_name(name, nlen, sep, out, &len, &kind, &hash);

	st->names++;
	if (rc == -EINVAL || rc == -ENAMETOOLONG) {
		st->refused++;
		return NULL;
	}
	if (rc != 0)
		return "decode returned an unexpected error";
	if (memchr(out, sep, len))
		return "decoded segment contains the separator";
	if (kind == KFS_NAME_HASHED || kind == KFS_NAME_HASHED_ALIAS) {
		st->hashed++;
		return NULL;
	}
	alias = kind == KFS_NAME_ALIAS;
	if (alias)
		st->aliases++;
	else
		st->segments++;
	c = alias ? kfs_encode_alias(out, len, sep, canon) : kfs_encode_segment(out, len, sep, canon);
	if (!name_is_safe(canon, c))
		return "canonical form is not a safe name";
	if (kfs_decode_name(canon, c, sep, out2, &len2, &kind2, &hash2) != 0)
		return "canonical form of a decodable name does not decode";
	if (kind2 == (alias ? KFS_NAME_HASHED_ALIAS : KFS_NAME_HASHED)) {
		if (hash2 != kfs_segment_hash(out, len) || len2 > len ||
		    memcmp(out2, out, len2) != 0)
			return "hashed canonical form does not denote the decoded segment";
		st->hashed_canon++;
		return NULL;
	}
	if (kfs_decode_name(canon, c, sep, out2, &len2, &kind2, &hash2) != 0)
		return "canonical form of a decodable name does not decode";
	if (len2 != len || memcmp(out, out2, len) != 0 || kind2 != kind)
		return "canonical form decodes to something else (alias kept only when it fits)";
	c2 = alias ? kfs_encode_alias(out2, len2, sep, canon2) :
		     kfs_encode_segment(out2, len2, sep, canon2);
	if (c2 != c || memcmp(canon, canon2, c) != 0)
		return "encode(decode(canonical)) is not canonical";
	return NULL;
}

static void name_case(struct name_stats *st, const char *name, size_t len, char sep)
{
	const char *why = check_name(name, len, sep, st);

	if (why && ++st->failures <= 5)
		diag("sep '%c' name \"%.*s\" (%zu bytes): %s", sep, (int)len, name, len,
			       why);
}

static void test_lenient_names(void)
{
	static const char alphabet[] = "%2EeFfA~a.:/|5";
	const size_t na = sizeof alphabet - 1;
	struct name_stats st = {0};
	char name[KFS_NAME_MAX + 1];

	for (const char *s = ":/|A~5"; *s; s++) {
		for (size_t len = 1; len <= 4; len++) {
			size_t total = 1;

			for (size_t k = 0; k < len; k++)
				total *= na;
			for (size_t idx = 0; idx < total; idx++) {
				size_t v = idx;

				for (size_t k = 0; k < len; k++, v /= na)
					name[k] = alphabet[v % na];
				name_case(&st, name, len, *s);
			}
		}
	}
	ok(st.failures == 0 && st.segments > 10000 && st.aliases > 1000 &&
				st.refused > 1000,
		     "canonical: every name of 1..4 bytes over \"%s\" decodes to a segment whose encoding is a fixed point (%lu names: %lu segments, %lu aliases, %lu refused; %lu failed)",
		     alphabet, st.names, st.segments, st.aliases, st.refused, st.failures);

	/* Long names made of the characters that matter, never '/' (the
	 * kernel never passes it) and the separator only at the end, so
	 * most of them decode; raw control bytes make some canonical
	 * forms hashed. */
	{
		static const char pool[] = "%%%%~~2EeFf0aZ.:|\x01\x7f\xc3\xa9";
		struct rng rng = {42};

		memset(&st, 0, sizeof st);
		for (int i = 0; i < 100000; i++) {
			size_t len = 1 + (size_t)(rng_next(&rng) % KFS_NAME_MAX);
			char sep = test_seps[rng_next(&rng) % 3];
			uint64_t shape = rng_next(&rng) % 8;

			for (size_t k = 0; k < len; k++) {
				do
					name[k] = pool[rng_next(&rng) % (sizeof pool - 1)];
				while (name[k] == sep);
			}
			if (shape == 0 && len >= KFS_HASH_TAIL_LEN)
				snprintf(name + len - KFS_HASH_TAIL_LEN, KFS_HASH_TAIL_LEN + 1,
					 "%%~%016" PRIx64, rng_next(&rng));
			if (shape == 1 && len >= 3)
				memcpy(name + len - 3, sep == '/' ? "%2F" : (char[]){'x', 'x', sep}, 3);
			name_case(&st, name, len, sep);
		}
		ok(st.failures == 0 && st.segments > 50000 && st.aliases > 5000 &&
					st.hashed > 5000 && st.hashed_canon > 5000,
			     "canonical: 100000 random names up to 255 bytes denote what their canonical form denotes (%lu segments, %lu aliases, %lu hashed, %lu canonically hashed, %lu refused; %lu failed)",
			     st.segments, st.aliases, st.hashed, st.hashed_canon, st.refused,
			     st.failures);
	}
}

int main(void)
{
	test_hash();
	test_sep_check();
	test_paths();
	test_encode_examples();
	test_decode_examples();
	test_long();
	test_exhaustive();
	test_random();
	test_lenient_names();
	return done_testing();
}
