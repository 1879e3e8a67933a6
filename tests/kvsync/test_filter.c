/*
 * test_filter: unit tests of kvsync's key filter (tools/kvsync/filter.c):
 * the pattern matcher against a table of (pattern, key, verdict), the
 * patterns it refuses and why, prefixes kept canonical, the order of
 * --include/--exclude rules, prefix successors, and the FILTER frame's
 * round trip and bounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvsync/filter.h"
#include "kvsync/proto.h"
#include "tap.h"

struct mcase {
	const char *pat, *key;
	bool match;
};

static const struct mcase matches[] = {
	/* literals: the whole key, anchored */
	{"users", "users", true},
	{"users", "users:1", false},
	{"users", "xusers", false},
	{"users", "user", false},
	/* * stops at the delimiter, ** does not */
	{"users:*", "users:1", true},
	{"users:*", "users:", true},
	{"users:*", "users:1:2", false},
	{"users:**", "users:1:2", true},
	{"users:**", "users:", true},
	{"*", "abc", true},
	{"*", "a:b", false},
	{"**", "a:b:c", true},
	{"*:*", "a:b", true},
	{"*:*", "a:b:c", false},
	{"**:c", "a:b:c", true},
	{"**:c", "c", false},
	{"a*b", "ab", true},
	{"a*b", "axxb", true},
	{"a*b", "ax:b", false},
	{"a**b", "ax:b", true},
	{"***", "x:y", true},
	{"*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	/* ? is one byte other than the delimiter */
	{"user?", "users", true},
	{"user?", "user", false},
	{"user?", "user:", false},
	{"??", "\xc3\xa9", true}, /* bytes, not characters */
	/* classes */
	{"[abc]x", "bx", true},
	{"[abc]x", "dx", false},
	{"[a-c]", "b", true},
	{"[a-c]", "d", false},
	{"[!a-c]", "d", true},
	{"[^a-c]", "b", false},
	{"[!a]", ":", false},
	{"[:]", ":", false},
	{"[]]", "]", true},
	{"[!]]", "]", false},
	{"[a-]", "-", true},
	{"[\\]]", "]", true},
	{"[\\-]", "-", true},
	{"[\\-]", "a", false},
	/* escapes */
	{"a\\*", "a*", true},
	{"a\\*", "ab", false},
	{"\\?", "?", true},
	{"\\[x]", "[x]", true},
	/* a trailing delimiter takes everything under it */
	{"sessions:", "sessions:", true},
	{"sessions:", "sessions:1", true},
	{"sessions:", "sessions:1:2", true},
	{"sessions:", "sessions", false},
	{"sessions:", "sessionsx:1", false},
	{"*:", "a:b:c", true},
	{"*:", "abc", false},
	{"s*:", "sx:1", true},
	{"a\\:", "a:b", true},
};

static void test_matcher(void)
{
	for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++) {
		const struct mcase *c = &matches[i];
		const char *why = "";
		is_int(ks_pattern_check(c->pat, strlen(c->pat), &why), 0, "pattern '%s' is valid%s%s",
		       c->pat, why ? ": " : "", why ? why : "");
		ok(ks_pattern_match(c->pat, strlen(c->pat), c->key, strlen(c->key)) == c->match,
		   "'%s' %s '%s'", c->pat, c->match ? "matches" : "does not match", c->key);
	}
}

static void test_bad_patterns(void)
{
	static const struct {
		const char *pat;
		size_t len;
		const char *why;
	} bad[] = {
		{"", 0, "empty pattern"},
		{"a[bc", 4, "unclosed [ in the pattern"},
		{"[", 1, "unclosed [ in the pattern"},
		{"[]", 2, "unclosed [ in the pattern"},
		{"[!]", 3, "unclosed [ in the pattern"},
		{"ab\\", 3, "pattern ends in a lone \\"},
		{"[a\\", 3, "unclosed [ in the pattern"},
		{"[z-a]", 5, "a range in [...] runs backwards"},
		{"a\0b", 3, "NUL byte in the pattern"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;
		is_int(ks_pattern_check(bad[i].pat, bad[i].len, &why), -EINVAL, "pattern %zu refused", i);
		is_str(why ? why : "(none)", bad[i].why, "... because: %s", bad[i].why);
		ok(!ks_pattern_match(bad[i].pat, bad[i].len, "ab", 2), "... and matches nothing");
	}
	char big[KS_PATTERN_MAX + 2];
	memset(big, '*', sizeof(big));
	const char *why = NULL;
	is_int(ks_pattern_check(big, KS_PATTERN_MAX, &why), 0, "a pattern of 1024 bytes is fine");
	is_int(ks_pattern_check(big, KS_PATTERN_MAX + 1, &why), -EINVAL, "1025 bytes are not");
	is_str(why, "pattern over 1024 bytes", "... and it says so");
	/* The worst case is bounded: 1024 alternating stars on a 512-byte key. */
	for (size_t i = 0; i < KS_PATTERN_MAX; i += 2)
		big[i + 1] = 'a';
	char key[512];
	memset(key, 'a', sizeof(key));
	ok(ks_pattern_match(big, KS_PATTERN_MAX, key, sizeof(key)),
	   "512 times '*a' against 512 a's: a match, at once");
	ok(!ks_pattern_match(big, KS_PATTERN_MAX, key, sizeof(key) - 1),
	   "... against 511: none, at once");
}

static void test_filter_rules(void)
{
	struct ks_filter f;
	const char *why = NULL;
	ks_filter_init(&f);
	ok(ks_filter_empty(&f) && ks_filter_select(&f, "x", 1), "an empty filter selects all");
	ok(ks_filter_select(NULL, "x", 1), "no filter selects all");
	/* rsync's habit: the first rule that matches decides */
	is_int(ks_filter_add_rule(&f, KS_RULE_INCLUDE, "a:keep", 6, &why), 0, "include a:keep");
	is_int(ks_filter_add_rule(&f, KS_RULE_EXCLUDE, "a:", 2, &why), 0, "exclude a:");
	ok(ks_filter_select(&f, "a:keep", 6), "a:keep is in: the include came first");
	ok(!ks_filter_select(&f, "a:other", 7), "a:other is out");
	ok(ks_filter_select(&f, "b", 1), "b matches no rule: in");
	is_int(ks_filter_add_rule(&f, 3, "x", 1, &why), -EINVAL, "an unknown rule kind is refused");
	/* prefixes: any of them, then the rules */
	is_int(ks_filter_add_prefix(&f, "b:", 2, &why), 0, "prefix b:");
	is_int(ks_filter_add_prefix(&f, "a:", 2, &why), 0, "prefix a:");
	ok(!ks_filter_select(&f, "b", 1), "b lacks every prefix: out");
	ok(ks_filter_select(&f, "b:1", 3), "b:1 is in");
	ok(ks_filter_select(&f, "a:keep", 6) && !ks_filter_select(&f, "a:x", 3),
	   "under a prefix the rules still decide");
	is_int(ks_filter_add_prefix(&f, "", 0, &why), -EINVAL, "an empty prefix is refused");
	is_str(why, "empty prefix", "... and says so");
	/* canonical prefixes: sorted, covered ones dropped */
	ks_filter_init(&f);
	ks_filter_add_prefix(&f, "c:x", 3, &why);
	ks_filter_add_prefix(&f, "a:", 2, &why);
	ks_filter_add_prefix(&f, "a:b", 3, &why);
	ks_filter_add_prefix(&f, "c:", 2, &why);
	ks_filter_add_prefix(&f, "b", 1, &why);
	is_int(f.n_prefixes, 3, "five prefixes, two covered by others: three");
	ok(f.n_prefixes == 3 && !memcmp(f.prefixes[0].p, "a:", 2) &&
	   !memcmp(f.prefixes[1].p, "b", 1) && !memcmp(f.prefixes[2].p, "c:", 2),
	   "kept sorted: a:, b, c:");
	struct ks_filter g;
	ks_filter_init(&g);
	ks_filter_add_prefix(&g, "b", 1, &why);
	ks_filter_add_prefix(&g, "c:", 2, &why);
	ks_filter_add_prefix(&g, "a:", 2, &why);
	uint8_t cf[64], cg[64];
	ok(ks_filter_canon_len(&f) <= sizeof(cf) &&
	   ks_filter_canon(&f, cf) == ks_filter_canon(&g, cg) &&
	   !memcmp(cf, cg, ks_filter_canon_len(&f)),
	   "the same selection in another order: the same canonical bytes");
	ks_filter_init(&f);
	for (unsigned i = 0; i < KS_FILTER_PREFIXES_MAX; i++) {
		static char p[KS_FILTER_PREFIXES_MAX][4];
		snprintf(p[i], sizeof(p[i]), "%03u", i);
		if (ks_filter_add_prefix(&f, p[i], 3, &why))
			break;
	}
	is_int(f.n_prefixes, KS_FILTER_PREFIXES_MAX, "64 prefixes fit");
	is_int(ks_filter_add_prefix(&f, "zzz", 3, &why), -EINVAL, "a 65th does not");
}

static void test_successor(void)
{
	uint8_t out[8];
	size_t n = 0;
	ok(ks_prefix_successor((const uint8_t *)"ab", 2, out, &n) && n == 2 && !memcmp(out, "ac", 2),
	   "after every key under ab: ac");
	ok(ks_prefix_successor((const uint8_t *)"a\xff\xff", 3, out, &n) && n == 1 && out[0] == 'b',
	   "trailing 0xff bytes carry: a\\xff\\xff -> b");
	ok(!ks_prefix_successor((const uint8_t *)"\xff", 1, out, &n), "all 0xff: no upper bound");
}

static void test_frame(void)
{
	struct ks_filter f, back;
	const char *why = NULL;
	ks_filter_init(&f);
	ks_filter_add_prefix(&f, "users:", 6, &why);
	ks_filter_add_rule(&f, KS_RULE_EXCLUDE, "users:*:tmp", 11, &why);
	ks_filter_add_rule(&f, KS_RULE_INCLUDE, "**", 2, &why);
	struct ks_wbuf b = KS_WBUF_INIT;
	is_int(ks_enc_filter(&b, &f), 0, "FILTER encodes");
	struct ks_frame fr;
	size_t used;
	is_int(ks_frame_decode(b.buf.p, b.buf.len, &fr, &used, &why), 0, "... as one frame");
	is_int(ks_dec_filter(&fr, &back, &why), 0, "... that decodes");
	ok(back.n_prefixes == 1 && back.n_rules == 2 && back.rules[0].kind == KS_RULE_EXCLUDE &&
	   back.rules[1].pat.len == 2, "... to the same filter");
	/* Hostile counts and lengths: refused before anything is walked. */
	uint8_t p[64];
	struct ks_frame h = {KS_FILTER, p, 0};
	p[0] = 0xff, p[1] = 0xff, h.len = 2;
	is_int(ks_dec_filter(&h, &back, &why), -EPROTO, "65535 prefixes refused");
	is_str(why, "FILTER with too many prefixes", "... as too many");
	p[0] = 0, p[1] = 1, p[2] = 0xff, p[3] = 0xff, h.len = 6;
	is_int(ks_dec_filter(&h, &back, &why), -EPROTO, "a prefix of 65535 bytes in 2 refused");
	is_str(why, "short FILTER", "... as short");
	p[0] = 0, p[1] = 0, p[2] = 0x01, p[3] = 0x01, h.len = 4;
	is_int(ks_dec_filter(&h, &back, &why), -EPROTO, "257 rules refused");
	is_str(why, "FILTER with too many rules", "... as too many");
	p[0] = 0, p[1] = 0, p[2] = 0, p[3] = 1, p[4] = 2, p[5] = 0, p[6] = 2, p[7] = '[', p[8] = 'a';
	h.len = 9;
	is_int(ks_dec_filter(&h, &back, &why), -EPROTO, "a malformed pattern refused");
	is_str(why, "FILTER with a bad rule", "... as a bad rule");
	p[4] = 9, p[7] = 'a';
	is_int(ks_dec_filter(&h, &back, &why), -EPROTO, "an unknown rule kind refused");
	p[4] = 2;
	h.len = 10;
	p[9] = 0;
	is_int(ks_dec_filter(&h, &back, &why), -EPROTO, "trailing bytes refused");
	ks_wbuf_release(&b);
}

int main(void)
{
	test_matcher();
	test_bad_patterns();
	test_filter_rules();
	test_successor();
	test_frame();
	return done_testing();
}
