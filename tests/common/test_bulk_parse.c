/*
 * test_bulk_parse: unit tests of the pieces kvctl's bulk commands are made
 * of: strict base64 (RFC 4648 vectors; bad characters, bad padding and
 * stray bits refused), the bulk file reader (formats accepted, strings
 * decoded exactly, metadata kept as written, malformed input refused with
 * a message naming the entry and key, the entry limit counted past its
 * end) and the JSON writers (escaping, re-indenting, export entries).
 */
#include "common/base64.h"
#include "common/bulk.h"
#include "tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- base64 */

static void test_base64_vectors(void)
{
	static const struct {
		const char *raw, *text;
	} v[] = {
		{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
		{"foo", "Zm9v"},  {"foob", "Zm9vYg=="},   {"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char out[16];
		size_t n = kt_base64_encode(v[i].raw, strlen(v[i].raw), out);
		is_str(out, v[i].text, "base64 encodes \"%s\" as in RFC 4648", v[i].raw);
		is_int((long long)n, (long long)kt_base64_encoded_len(strlen(v[i].raw)),
		       "encoded_len(%zu) is exact", strlen(v[i].raw));
		unsigned char back[16];
		size_t len = 99;
		int rc = kt_base64_decode(v[i].text, strlen(v[i].text), back, &len);
		ok(rc == 0 && len == strlen(v[i].raw) && !memcmp(back, v[i].raw, len),
		   "base64 decodes \"%s\" back", v[i].text);
	}
}

static void test_base64_all_bytes(void)
{
	unsigned char raw[256], back[256];
	char text[400];
	for (int i = 0; i < 256; i++)
		raw[i] = (unsigned char)i;
	bool all = true;
	for (size_t len = 0; len <= 256; len++) {
		size_t n = kt_base64_encode(raw, len, text), got;
		all = all && n == kt_base64_encoded_len(len) &&
		      kt_base64_decoded_max(n) >= len &&
		      kt_base64_decode(text, n, back, &got) == 0 && got == len &&
		      !memcmp(raw, back, len);
	}
	ok(all, "every prefix of bytes 0..255 round-trips");
}

static void test_base64_strict(void)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"Zg", "no padding"},
		{"Zg=", "short padding"},
		{"Z===", "too much padding"},
		{"Zh==", "stray bits before =="},
		{"Zm9=", "stray bits before ="},
		{"Zg==Zg==", "padding in the middle"},
		{"Zm 9v", "white space"},
		{"Zm9v\n", "a newline"},
		{"Zm9-", "the URL-safe alphabet (-)"},
		{"Zm9_", "the URL-safe alphabet (_)"},
		{"=Zm9", "padding first"},
		{"Zm=v", "padding inside a quantum"},
		{"Zm9\xff", "a byte over 0x7f (libsodium 1.0.18 takes it for '/')"},
		{"\x80\x80\x80\x80", "bytes over 0x7f (0x80)"},
		{"Zm9v\0\0\0\0", "NUL bytes"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned char out[16];
		size_t len = 12345, n = strlen(bad[i].text);
		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			n = 8; /* the NULs count */
		int rc = kt_base64_decode(bad[i].text, n, out, &len);
		ok(rc == -EINVAL && len == 12345, "strict base64 refuses %s", bad[i].why);
	}
}

/* ------------------------------------------------------------- the reader */

static int parse(const char *text, enum kt_bulk_format fmt, struct kt_bulk *b, char *msg)
{
	return kt_bulk_parse(text, strlen(text), fmt, NULL, b, msg, KT_BULK_ERRMSG_MAX);
}

static void test_put_format(void)
{
	struct kt_bulk b;
	char msg[KT_BULK_ERRMSG_MAX];
	const char *text =
		" [ {\"value\":\"v\\u00e9\\ud83d\\ude00\\n\\u0000x\", \"key\":\"k\"},\n"
		"   {\"key\":\"b\",\"value\":\"AAH/\",\"base64\":true,\"expiration\":1.9e9,"
		"\"expiration_ttl\":null,\"metadata\": { \"n\" : 0.10 , \"x\":[] },\"extra\":{}},"
		"   {\"key\":\"t\",\"value\":\"\",\"expiration_ttl\":120,\"metadata\":null,"
		"\"base64\":false} ] ";
	int rc = parse(text, KT_BULK_PUT, &b, msg);
	if (!is_int(rc, 0, "a put file with every field parses")) {
		diag("%s", msg);
		return;
	}
	is_int((long long)b.count, 3, "it has 3 entries");
	const struct kt_bulk_entry *e = b.entries;
	ok(e[0].key_len == 1 && !memcmp(e[0].key, "k", 1), "a key may follow the value");
	ok(e[0].value_len == 10 && !memcmp(e[0].value, "v\xc3\xa9\xf0\x9f\x98\x80\n\0x", 10),
	   "escapes, surrogate pairs and \\u0000 decode to their bytes");
	ok(e[0].metadata == NULL && !e[0].has_expiration && !e[0].has_ttl,
	   "absent fields are absent");
	ok(e[1].value_len == 3 && !memcmp(e[1].value, "\x00\x01\xff", 3),
	   "a base64 value is decoded");
	ok(e[1].has_expiration && e[1].expiration == 1900000000, "1.9e9 is a whole expiration");
	ok(!e[1].has_ttl, "null expiration_ttl is absent");
	is_str(e[1].metadata, "{ \"n\" : 0.10 , \"x\":[] }", "metadata is kept exactly as written");
	ok(e[2].has_ttl && e[2].ttl == 120, "expiration_ttl is read");
	is_str(e[2].metadata, "null", "metadata null is kept as JSON null");
	ok(e[2].value_len == 0 && e[2].value != NULL, "an empty value is an empty buffer");
	kt_bulk_release(&b);
	kt_bulk_release(&b); /* releasing twice is harmless */
}

static void test_keys_formats(void)
{
	struct kt_bulk b;
	char msg[KT_BULK_ERRMSG_MAX];
	is_int(parse("[\"a\",{\"key\":\"b\",\"value\":5},\"c\\u0001\"]", KT_BULK_KEYS, &b, msg), 0,
	       "keys may be strings or objects with key");
	ok(b.count == 3 && !strcmp(b.entries[1].key, "b") && b.entries[2].key_len == 2 &&
		   b.entries[0].value == NULL,
	   "and are read in order, without values");
	kt_bulk_release(&b);
	/* What wrangler's bulk get and delete read, and what a list prints. */
	is_int(parse("[{\"name\":\"n1\",\"expiration\":5,\"metadata\":{\"name\":1}},"
		     "{\"metadata\":null,\"name\":\"n\\u00e92\"}]",
		     KT_BULK_KEYS, &b, msg),
	       0, "keys may be objects with name, other members passed over");
	ok(b.count == 2 && !strcmp(b.entries[0].key, "n1") && !strcmp(b.entries[1].key, "n\xc3\xa9" "2"),
	   "and name the keys, in order");
	kt_bulk_release(&b);
	is_int(parse("{\"type\":\"text\",\"keys\":[\"x\",\"y\"]}", KT_BULK_KEYS, &b, msg), 0,
	       "{\"keys\": [...]} is accepted");
	is_int((long long)b.count, 2, "with its keys");
	kt_bulk_release(&b);
	is_int(parse("{\"type\":\"text\"}", KT_BULK_KEYS, &b, msg), -EINVAL,
	       "an object without keys is refused");
}

/* expect_error TEXT FMT WANT: parsing fails and says WANT. */
static void expect_error(const char *text, enum kt_bulk_format fmt, const char *want,
			 const char *what)
{
	struct kt_bulk b = {0};
	char msg[KT_BULK_ERRMSG_MAX] = "";
	int rc = parse(text, fmt, &b, msg);
	ok(rc < 0 && b.count == 0, "%s: refused", what);
	is_str(msg, want, "%s: message", what);
}

static void test_errors(void)
{
	expect_error("[{\"key\":\"a\",\"name\":\"b\"}]", KT_BULK_KEYS,
		     "bulk entry 0 (key 'a'): the key is given twice (\"key\" or \"name\")",
		     "key and name in one object");
	expect_error("[{\"name\":5}]", KT_BULK_KEYS, "bulk entry 0: \"name\" must be a string",
		     "a name that is not a string");
	expect_error("[{\"value\":\"x\"}]", KT_BULK_KEYS,
		     "bulk entry 0: \"key\" or \"name\" is missing", "an object without key or name");
	expect_error("[{\"key\":\"a\",\"value\":\"x\"},{\"key\":\"b\",\"value\":5}]", KT_BULK_PUT,
		     "bulk entry 1 (key 'b'): \"value\" must be a string", "a number for a value");
	expect_error("[{\"key\":\"a\",\"value\":\"x\"},{\"key\":\"b\",\"va", KT_BULK_PUT,
		     "bulk entry 1 (key 'b'): invalid JSON: unexpected end of file "
		     "(unterminated string)",
		     "truncated JSON");
	expect_error("[\n {\"key\":\"a\",\n  \"value\":\"x\" ]", KT_BULK_PUT,
		     "bulk entry 0 (key 'a'): invalid JSON: expected ',' or '}' at line 3, "
		     "column 15",
		     "a syntax error names its line and column");
	expect_error("[{\"key\":\"\\ud800\",\"value\":\"x\"}]", KT_BULK_PUT,
		     "bulk entry 0: invalid JSON: unpaired surrogate escape in a string at line 1, "
		     "column 10",
		     "a lone surrogate");
	expect_error("[{\"key\":\"a\xff\",\"value\":\"x\"}]", KT_BULK_PUT,
		     "bulk entry 0: invalid JSON: string is not valid UTF-8 at line 1, column 10",
		     "raw bytes that are not UTF-8");
	expect_error("[{\"key\":\"a\tb\",\"value\":\"x\"}]", KT_BULK_PUT,
		     "bulk entry 0: invalid JSON: control character in a string at line 1, "
		     "column 11",
		     "a raw control character in a string");
	expect_error("[{\"key\":\"a\",\"value\":\"x\",\"metadata\":01}]", KT_BULK_PUT,
		     "bulk entry 0 (key 'a'): invalid JSON: expected ',' or '}' at line 1, column 37",
		     "a number with a leading zero");
	expect_error("[{\"key\":\"a\",\"value\":\"x\",\"expiration\":1e999}]", KT_BULK_PUT,
		     "bulk entry 0 (key 'a'): \"expiration\" must be a whole number of seconds",
		     "an expiration out of range");
	expect_error("[{\"key\":\"a\",\"value\":\"x\",\"expiration\":99999999999999999999}]",
		     KT_BULK_PUT,
		     "bulk entry 0 (key 'a'): \"expiration\" must be a whole number of seconds",
		     "an expiration past int64");
	expect_error("[{\"key\":\"a\",\"value\":\"eA=\",\"base64\":true}]", KT_BULK_PUT,
		     "bulk entry 0 (key 'a'): \"value\" is not valid base64", "bad base64");
	expect_error("[\"a\",]", KT_BULK_KEYS,
		     "bulk entry 1: must be a key string or an object with \"key\" or \"name\"",
		     "a trailing comma");
	expect_error("[\"a\"] x", KT_BULK_KEYS,
		     "bulk file: invalid JSON: unexpected data after the JSON value at line 1, "
		     "column 7",
		     "trailing data");
	expect_error("\"a\"", KT_BULK_KEYS,
		     "bulk file: expected an array of keys or an object with \"keys\"",
		     "a bare string");
	expect_error("   ", KT_BULK_PUT,
		     "bulk file: invalid JSON: unexpected end of file (the file is empty)",
		     "white space only");

	/* Deep nesting is refused, not recursed into until the stack ends. */
	size_t depth = 100000;
	char *deep = malloc(depth * 2 + 64);
	strcpy(deep, "[{\"key\":\"a\",\"value\":\"x\",\"metadata\":");
	size_t n = strlen(deep);
	memset(deep + n, '[', depth);
	memset(deep + n + depth, ']', depth);
	strcpy(deep + n + 2 * depth, "}]");
	struct kt_bulk b;
	char msg[KT_BULK_ERRMSG_MAX];
	ok(parse(deep, KT_BULK_PUT, &b, msg) == -EINVAL && strstr(msg, "nesting too deep"),
	   "100,000 nested arrays are refused as too deep");
	free(deep);

	/* A 513-byte key is shown cut, on a character boundary. */
	char text[1200];
	int len = snprintf(text, sizeof(text), "[{\"key\":\"");
	for (int i = 0; i < 79; i++)
		text[len++] = 'k';
	for (int i = 0; i < 200; i++) {
		text[len++] = (char)0xc3; /* é, 2 bytes */
		text[len++] = (char)0xa9;
	}
	strcpy(text + len, "\",\"value\":5}]");
	char want[200];
	snprintf(want, sizeof(want),
		 "bulk entry 0 (key '%.*s...'): \"value\" must be a string", 79,
		 "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
	expect_error(text, KT_BULK_PUT, want, "a long key is cut before a split character");
}

static void test_entry_limit(void)
{
	size_t n = KT_BULK_ENTRIES_MAX + 5;
	char *text = malloc(n * 4 + 8);
	size_t o = 0;
	text[o++] = '[';
	for (size_t i = 0; i < n; i++) {
		memcpy(text + o, i ? ",\"k\"" : "\"k\"", i ? 4 : 3);
		o += i ? 4 : 3;
	}
	text[o++] = ']';
	struct kt_bulk b;
	char msg[KT_BULK_ERRMSG_MAX];
	int rc = kt_bulk_parse(text, o, KT_BULK_KEYS, NULL, &b, msg, sizeof(msg));
	is_int(rc, -E2BIG, "10,005 entries are over the limit");
	is_str(msg, "Bulk file has 10005 entries; the limit is 10000.", "and counted to the end");
	rc = kt_bulk_parse(text, o - (5 * 4 + 1), KT_BULK_KEYS, NULL, &b, msg, sizeof(msg));
	ok(rc == -EINVAL, "a file cut after the limit is still checked as JSON");
	memcpy(text + o - (5 * 4 + 1), "]", 1);
	rc = kt_bulk_parse(text, o - 5 * 4, KT_BULK_KEYS, NULL, &b, msg, sizeof(msg));
	ok(rc == 0 && b.count == KT_BULK_ENTRIES_MAX, "exactly 10,000 entries are accepted");
	kt_bulk_release(&b);
	free(text);
}

/* ------------------------------------------------------------- the writers */

static char *capture(void (*fn)(FILE *f, const void *arg), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	fn(f, arg);
	fclose(f);
	return buf;
}

static void write_string(FILE *f, const void *arg)
{
	const char *s = arg;
	kt_json_string(f, s, strlen(s) + 1); /* the NUL too */
}

static void write_pretty(FILE *f, const void *arg)
{
	kt_json_pretty(f, arg, strlen(arg), 2);
}

static void write_entry(FILE *f, const void *arg)
{
	(void)arg;
	kt_bulk_write_put_entry(f, "k\"", 2, "\xff\x00", 2, 1900000000, 0, "{\"a\":1}", 7);
	putc('\n', f);
	kt_bulk_write_put_entry(f, "t", 1, "é", 2, 0, 0, NULL, 0);
	putc('\n', f);
	kt_bulk_write_put_entry(f, "l", 1, "v", 1, 1900000000, 4294967295u, NULL, 0);
}

static void test_writers(void)
{
	char *s = capture(write_string, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f é\xff");
	is_str(s, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f é\\ufffd\\u0000\"",
	       "JSON strings are escaped as JSON.stringify escapes them");
	free(s);
	s = capture(write_pretty, "{\"a\":[1,{\"b\":\"x,y:{\\\"\"}],\"c\":{},\"d\":[]}");
	is_str(s,
	       "{\n    \"a\": [\n      1,\n      {\n        \"b\": \"x,y:{\\\"\"\n      }\n"
	       "    ],\n    \"c\": {},\n    \"d\": []\n  }",
	       "compact JSON is re-indented like JSON.stringify(v, null, 2)");
	free(s);
	s = capture(write_entry, NULL);
	is_str(s,
	       "{\"key\":\"k\\\"\",\"value\":\"/wA=\",\"base64\":true,\"expiration\":1900000000,"
	       "\"metadata\":{\"a\":1}}\n{\"key\":\"t\",\"value\":\"é\"}\n"
	       "{\"key\":\"l\",\"value\":\"v\",\"expiration_ttl\":4294967295}",
	       "export entries: base64 only for non-UTF-8, optional fields only when set, "
	       "a ttl as expiration_ttl instead of the expiration");
	free(s);
	/* What the writer wrote, the reader reads: the ttl comes back whole. */
	const char *ttl_entry = "[{\"key\":\"l\",\"value\":\"v\",\"expiration_ttl\":4294967295}]";
	struct kt_bulk tb;
	char tmsg[KT_BULK_ERRMSG_MAX];
	is_int(kt_bulk_parse(ttl_entry, strlen(ttl_entry), KT_BULK_PUT, NULL, &tb, tmsg, sizeof(tmsg)), 0,
	       "the bulk parser reads an exported expiration_ttl");
	ok(tb.count == 1 && tb.entries[0].has_ttl && tb.entries[0].ttl == 4294967295ll &&
		   !tb.entries[0].has_expiration,
	   "as the ttl, with no expiration");
	kt_bulk_release(&tb);
	char shown[100];
	is_str(kt_bulk_show_key("a\nb\x7f", 4, shown, sizeof(shown)), "a\\x0ab\\x7f",
	       "keys in messages show control bytes as \\xNN");
	/* The UTF-8 rule is kvcore's (kvc_utf8_valid): tests/kvcore/test_policy. */
}

int main(void)
{
	test_base64_vectors();
	test_base64_all_bytes();
	test_base64_strict();
	test_put_format();
	test_keys_formats();
	test_errors();
	test_entry_limit();
	test_writers();
	return done_testing();
}
