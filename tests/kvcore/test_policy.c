/*
 * test_policy: the rules kvcore exports so that the tools need no copies:
 * kvc_utf8_valid (the rule keys are held to), kvc_key_cmp (the order the
 * store lists keys in) and kvc_write_set_expiry (Workers KV's ttl and
 * expiration rules and messages, as kvctl prints them).  Each is checked
 * against the store itself: a key kvc_utf8_valid refuses is one the store
 * refuses, keys a cursor returns are in kvc_key_cmp order, and a write
 * filled by kvc_write_set_expiry stores the expiry it says.
 */
#include "kvtest.h"

/* ------------------------------------------------------------- UTF-8 */

struct utf8_case {
	const char *s;
	size_t n;
	bool valid;
	const char *what;
};

static const struct utf8_case utf8_cases[] = {
	{"", 0, true, "empty"},
	{"a", 1, true, "one ASCII byte"},
	{"abcdefgh", 8, true, "eight ASCII bytes (one word)"},
	{"abcdefghijklmnopq", 17, true, "seventeen ASCII bytes"},
	{"\xc2\x80", 2, true, "U+0080, the first 2-byte form"},
	{"\xdf\xbf", 2, true, "U+07FF, the last 2-byte form"},
	{"\xe0\xa0\x80", 3, true, "U+0800, the first 3-byte form"},
	{"\xed\x9f\xbf", 3, true, "U+D7FF, below the surrogates"},
	{"\xee\x80\x80", 3, true, "U+E000, above the surrogates"},
	{"\xef\xbf\xbf", 3, true, "U+FFFF"},
	{"\xf0\x90\x80\x80", 4, true, "U+10000, the first 4-byte form"},
	{"\xf4\x8f\xbf\xbf", 4, true, "U+10FFFF, the last code point"},
	{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, true, "mixed text"},
	{"\x00", 1, true, "NUL is ASCII"},
	{"\x80", 1, false, "a lone continuation byte"},
	{"\xc0\x80", 2, false, "overlong NUL (C0 80)"},
	{"\xc1\xbf", 2, false, "overlong 2-byte form (C1)"},
	{"\xe0\x9f\xbf", 3, false, "overlong 3-byte form"},
	{"\xf0\x8f\xbf\xbf", 4, false, "overlong 4-byte form"},
	{"\xed\xa0\x80", 3, false, "surrogate U+D800"},
	{"\xed\xbf\xbf", 3, false, "surrogate U+DFFF"},
	{"\xf4\x90\x80\x80", 4, false, "U+110000, past the last code point"},
	{"\xf5\x80\x80\x80", 4, false, "lead byte F5"},
	{"\xf8\x88\x80\x80\x80", 5, false, "a 5-byte form"},
	{"\xff", 1, false, "byte FF"},
	{"\xc3", 1, false, "a 2-byte form cut short"},
	{"\xe2\x82", 2, false, "a 3-byte form cut short"},
	{"\xf0\x9f\x98", 3, false, "a 4-byte form cut short"},
	{"\xc3\x28", 2, false, "a lead byte followed by ASCII"},
	{"abcdefg\xc3\xa9", 9, true, "a 2-byte form across the first word"},
	{"abcdefg\xc3", 8, false, "a cut form at the end of the first word"},
	{"abcdefgh\xff", 9, false, "a bad byte after a whole ASCII word"},
	{"abcdefghijklmno\x80", 16, false, "a bad byte at the end of the second word"},
};

static void test_utf8(void)
{
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		const struct utf8_case *c = &utf8_cases[i];
		ok(kvc_utf8_valid(c->s, c->n) == c->valid, "kvc_utf8_valid: %s is %s", c->what,
		   c->valid ? "valid" : "invalid");
	}
	ok(kvc_utf8_valid(NULL, 0), "kvc_utf8_valid: NULL with length 0 is valid (empty)");
	/* A NUL inside the length is a byte like any other. */
	ok(kvc_utf8_valid("a\0b", 3), "kvc_utf8_valid: the length counts, not a NUL");

	/* The rule keys are held to: a store refuses exactly the invalid ones
	 * (every case here is a legal key otherwise: 1..512 bytes, not "."). */
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		const struct utf8_case *c = &utf8_cases[i];
		if (c->n == 0)
			continue;
		int rc = kvc_key_check(c->s, c->n);
		ok(rc == (c->valid ? 0 : -EINVAL), "kvc_key_check agrees on %s (%s)", c->what,
		   kt_errname(rc));
	}
}

/* -------------------------------------------------------------- order */

static int sign(int v)
{
	return v < 0 ? -1 : v > 0;
}

static void test_cmp(void)
{
	ok(kvc_key_cmp("a", 1, "a", 1) == 0, "kvc_key_cmp: equal keys are equal");
	ok(kvc_key_cmp("", 0, "", 0) == 0, "kvc_key_cmp: two empty keys are equal");
	ok(kvc_key_cmp(NULL, 0, "a", 1) < 0, "kvc_key_cmp: empty (NULL) sorts first");
	ok(kvc_key_cmp("a", 1, "ab", 2) < 0, "kvc_key_cmp: a prefix sorts before its extensions");
	ok(kvc_key_cmp("ab", 2, "a", 1) > 0, "kvc_key_cmp: an extension sorts after its prefix");
	ok(kvc_key_cmp("ab", 2, "b", 1) < 0, "kvc_key_cmp: bytes before length");
	ok(kvc_key_cmp("\x7f", 1, "\x80", 1) < 0, "kvc_key_cmp: bytes compare unsigned (7F < 80)");
	ok(kvc_key_cmp("\xff", 1, "\x01", 1) > 0, "kvc_key_cmp: bytes compare unsigned (FF > 01)");
	ok(kvc_key_cmp("a\0", 2, "a", 1) > 0, "kvc_key_cmp: a trailing NUL makes a longer key");
	/* It compares the given lengths only, never past them. */
	ok(kvc_key_cmp("abX", 2, "abY", 2) == 0, "kvc_key_cmp: only the given lengths count");
	ok(sign(kvc_key_cmp("b", 1, "a", 1)) == -sign(kvc_key_cmp("a", 1, "b", 1)),
	   "kvc_key_cmp: antisymmetric");
}

/* Keys a cursor walks come out in kvc_key_cmp order: plain keys, keys
 * that extend each other, and the 511- and 512-byte keys kept in buckets
 * (ordered inside the bucket by their last byte). */
static void test_store_order(struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open(kt_dir_sub(d, "order", path, sizeof(path)), NULL);
	static char keys[12][KVC_KEY_MAX];
	static const size_t lens[12] = {1, 2, 2, 3, 510, 511, 511, 512, 512, 512, 1, 2};
	for (int i = 0; i < 12; i++)
		memset(keys[i], 'm', lens[i]);
	keys[1][1] = 'a';         /* "ma" */
	keys[2][1] = 'z';         /* "mz" */
	keys[3][2] = '\x7f';      /* "mm\x7f" */
	keys[7][511] = 'a';       /* m*511 + "a" (a bucket entry) */
	keys[8][511] = 'z';       /* m*511 + "z" */
	keys[9][511] = '\x01';    /* m*511 + "\x01" */
	keys[6][510] = 'n';       /* m*510 + "n": a bucket of its own */
	keys[10][0] = '\x7f';     /* "\x7f" */
	memcpy(keys[11], "\xc3\xa9", 2); /* U+00E9, high bytes */
	int put_ok = 0;
	for (int i = 11; i >= 0; i--)
		put_ok += kt_put(s, keys[i], lens[i], "v", 1) == 0;
	is_int(put_ok, 12, "store order: twelve keys written, in reverse");
	struct kt_keys got = {0};
	is_int(kt_cursor_all(s, &got), 0, "store order: a cursor walks them all");
	is_int((long long)got.n, 12, "store order: twelve keys come back");
	bool sorted = got.n == 12;
	for (size_t i = 1; i < got.n; i++)
		sorted = sorted && kvc_key_cmp(got.key[i - 1], got.len[i - 1], got.key[i],
					       got.len[i]) < 0;
	ok(sorted, "store order: the cursor's order is kvc_key_cmp's, buckets included");
	kt_keys_free(&got);
	kvc_close(s);
}

/* ------------------------------------------------------------- expiry */

struct expiry_case {
	bool has_exp;
	int64_t exp;
	bool has_ttl;
	int64_t ttl;
	const char *msg; /* NULL: accepted */
	const char *what;
};

static const struct expiry_case expiry_cases[] = {
	{false, 0, true, 0, "Invalid expiration_ttl of 0. Please specify integer greater than 0.", "ttl 0"},
	{false, 0, true, -5, "Invalid expiration_ttl of -5. Please specify integer greater than 0.", "a negative ttl"},
	{false, 0, true, INT64_MIN, "Invalid expiration_ttl of -9223372036854775808. Please specify integer greater than 0.", "the least ttl an int64 holds"},
	{false, 0, true, 4294967296, "Invalid expiration_ttl of 4294967296. Expiration TTL must be at most 4294967295.", "a ttl of UINT32_MAX + 1"},
	{false, 0, true, INT64_MAX, "Invalid expiration_ttl of 9223372036854775807. Expiration TTL must be at most 4294967295.", "the largest ttl an int64 holds"},
	{true, 0, false, 0, "Invalid expiration of 0. Please specify integer greater than the current number of seconds since the UNIX epoch.", "expiration 0"},
	{true, -1, false, 0, "Invalid expiration of -1. Please specify integer greater than the current number of seconds since the UNIX epoch.", "a negative expiration"},
	/* The ttl wins: the expiration beside it is not looked at. */
	{true, -1, true, 120, NULL, "a good ttl beside a bad expiration"},
	{true, 2000000000, true, 0, "Invalid expiration_ttl of 0. Please specify integer greater than 0.", "a bad ttl beside a good expiration"},
	{false, 0, true, 1, NULL, "ttl 1 (below min_ttl: kvc_write's to refuse)"},
	{false, 0, true, 4294967295, NULL, "ttl UINT32_MAX"},
	{true, 1, false, 0, NULL, "expiration 1 (in the past: kvc_write's to refuse)"},
	{true, INT64_MAX, false, 0, NULL, "the largest expiration"},
	{false, 0, false, 0, NULL, "neither"},
};

static void test_expiry_rules(void)
{
	for (size_t i = 0; i < sizeof(expiry_cases) / sizeof(expiry_cases[0]); i++) {
		const struct expiry_case *c = &expiry_cases[i];
		/* Fields set before: a refusal leaves them, success overwrites. */
		struct kvc_write w = {.set = KVC_SET_VALUE, .expiration = 77, .ttl = 88};
		char msg[256] = "unchanged";
		int rc = kvc_write_set_expiry(&w, c->has_exp, c->exp, c->has_ttl, c->ttl, msg,
					      sizeof(msg));
		if (c->msg) {
			is_int(rc, -EINVAL, "set_expiry: %s is refused", c->what);
			is_str(msg, c->msg, "set_expiry: %s: the message", c->what);
			ok(w.set == KVC_SET_VALUE && w.expiration == 77 && w.ttl == 88,
			   "set_expiry: %s: the write is left as it was", c->what);
			continue;
		}
		is_int(rc, 0, "set_expiry: %s is accepted", c->what);
		is_str(msg, "unchanged", "set_expiry: %s: no message", c->what);
		unsigned want_set = KVC_SET_VALUE | KVC_SET_EXPIRATION | (c->has_ttl ? KVC_SET_TTL : 0);
		int64_t want_exp = !c->has_ttl && c->has_exp ? c->exp : 0;
		uint32_t want_ttl = c->has_ttl ? (uint32_t)c->ttl : 88;
		ok(w.set == want_set && w.expiration == want_exp && w.ttl == want_ttl,
		   "set_expiry: %s: set %#x expiration %" PRId64 " ttl %" PRIu32, c->what, w.set,
		   w.expiration, w.ttl);
	}
	struct kvc_write w = {0};
	is_int(kvc_write_set_expiry(&w, false, 0, true, 0, NULL, 0), -EINVAL,
	       "set_expiry: no message buffer is fine");
	is_int(kvc_write_set_expiry(NULL, false, 0, false, 0, NULL, 0), -EINVAL,
	       "set_expiry: no write is -EINVAL");
	char small[16];
	kvc_write_set_expiry(&w, false, 0, true, 0, small, sizeof(small));
	is_str(small, "Invalid expirat", "set_expiry: a short buffer gets a cut, terminated message");
}

/* What a filled write stores: a ttl arms expiration = mtime + ttl; an
 * expiration is kept; neither clears what the key had. */
static void test_expiry_stored(struct kt_dir *d)
{
	char path[128];
	kvc_store *s = kt_open_ttl1(kt_dir_sub(d, "expiry", path, sizeof(path)));
	int64_t now = kvc_now_ns() / 1000000000;

	struct kvc_write w = {.set = KVC_SET_VALUE, .value = "v", .value_len = 1};
	is_int(kvc_write_set_expiry(&w, false, 0, true, 3600, NULL, 0), 0,
	       "stored: ttl 3600 accepted");
	is_int(kt_write(s, "k", 1, &w, NULL, 0), 0, "stored: the put with a ttl is written");
	struct kt_rec r = {0};
	is_int(kt_get(s, "k", 1, 0, &r), 0, "stored: read back");
	ok(r.r.ttl == 3600 && r.r.expiration >= now + 3600 && r.r.expiration <= now + 3602,
	   "stored: ttl 3600, expiration %lld is now + ttl", (long long)r.r.expiration);
	kt_rec_free(&r);

	w = (struct kvc_write){.set = KVC_SET_VALUE, .value = "v", .value_len = 1};
	is_int(kvc_write_set_expiry(&w, true, now + 7200, false, 0, NULL, 0), 0,
	       "stored: expiration now + 7200 accepted");
	is_int(kt_write(s, "k", 1, &w, NULL, 0), 0, "stored: the put with an expiration is written");
	is_int(kt_get(s, "k", 1, 0, &r), 0, "stored: read back");
	ok(r.r.ttl == 0 && r.r.expiration == now + 7200,
	   "stored: the expiration replaces the ttl");
	kt_rec_free(&r);

	w = (struct kvc_write){.set = KVC_SET_VALUE, .value = "v", .value_len = 1};
	is_int(kvc_write_set_expiry(&w, false, 0, false, 0, NULL, 0), 0,
	       "stored: neither accepted");
	is_int(kt_write(s, "k", 1, &w, NULL, 0), 0, "stored: the plain put is written");
	is_int(kt_get(s, "k", 1, 0, &r), 0, "stored: read back");
	ok(r.r.ttl == 0 && r.r.expiration == 0, "stored: a plain put clears the expiry");
	kt_rec_free(&r);
	kvc_close(s);
}

/* Keys and list limits refused before any transaction, with the words a
 * write or a list would leave in kvc_txn_errmsg (a kvapi answers with them). */
static void test_messages_without_txn(void)
{
	static const struct {
		const char *key;
		size_t len;
		int rc;
		const char *msg;
	} keys[] = {
		{"", 0, -EINVAL, "Key name cannot be empty."},
		{".", 1, -EINVAL, "\".\" is not allowed as a key name."},
		{"..", 2, -EINVAL, "\"..\" is not allowed as a key name."},
		{"bad\377", 4, -EINVAL, "Key is not valid UTF-8."},
		{"...", 3, 0, NULL},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char msg[128] = "unchanged";
		is_int(kvc_key_check_msg(keys[i].key, keys[i].len, msg, sizeof(msg)), keys[i].rc,
		       "key_check_msg: '%s'", keys[i].key);
		is_str(msg, keys[i].msg ? keys[i].msg : "unchanged", "key_check_msg: '%s': the message",
		       keys[i].key);
	}
	char big[KVC_KEY_MAX + 1], msg[128];
	memset(big, 'k', sizeof(big));
	is_int(kvc_key_check_msg(big, sizeof(big), msg, sizeof(msg)), -ENAMETOOLONG,
	       "key_check_msg: 513 bytes");
	is_str(msg, "UTF-8 encoded length of 513 exceeds key length limit of 512.",
	       "key_check_msg: 513 bytes: the message");
	is_int(kvc_key_check_msg("", 0, NULL, 0), -EINVAL, "key_check_msg: no buffer is fine");

	unsigned limit = 77;
	is_int(kvc_list_limit(1001, &limit, msg, sizeof(msg)), -EINVAL, "list_limit: 1001");
	is_str(msg, "Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
	       "list_limit: 1001: the message");
	is_int(kvc_list_limit(-1, &limit, msg, sizeof(msg)), -EINVAL, "list_limit: -1");
	is_str(msg, "Invalid key_count_limit of -1. Please specify an integer greater than 0.",
	       "list_limit: -1: the message");
	ok(limit == 77, "list_limit: a refusal leaves the limit");
	is_int(kvc_list_limit(0, &limit, NULL, 0), 0, "list_limit: 0 (the default)");
	ok(limit == 0, "list_limit: 0 stays 0, which kvc_list reads as 1000");
	is_int(kvc_list_limit(1000, &limit, NULL, 0), 0, "list_limit: 1000");
	ok(limit == 1000, "list_limit: 1000 as given");
}

int main(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	test_utf8();
	test_cmp();
	test_store_order(&d);
	test_expiry_rules();
	test_expiry_stored(&d);
	test_messages_without_txn();
	kt_dir_remove(&d);
	return done_testing();
}
