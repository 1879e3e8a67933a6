/*
 * filter: which keys a filtered sync (--prefix, --include, --exclude)
 * sends, compares and checks, the same on both ends of a connection.
 *
 * A key is selected when (no prefix was given, or it starts with one of
 * the prefixes) and the rules select it: rules are tried in order, the
 * first whose pattern matches decides (include: selected, exclude: not);
 * no rule matching: selected.
 *
 * A pattern matches the whole key, anchored at its start: `*` is any run
 * of bytes without the delimiter ':', `**` any run at all, `?` one byte
 * other than ':', `[...]` one byte of a class (`!` or `^` first negates,
 * `a-z` a range, `]` first is literal; a class never matches ':'), `\`
 * takes the next byte as it is.  A pattern ending in ':' also matches
 * every key under it (`sessions:` matches `sessions:a:b`), as rsync's
 * `dir/` does a directory and all in it.  Keys are bytes: no locale.
 *
 * Everything here is pure (no I/O, no allocation but ks_filter_dup), so
 * the frame decoder can use it and tests/fuzz/fuzz_filter.c can feed it
 * anything.  A filter holds pointers to bytes it does not own, except the
 * one ks_filter_dup makes.
 */
#ifndef KVSYNC_FILTER_H
#define KVSYNC_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of a filter, on the command line and on the wire. */
#define KS_FILTER_PREFIXES_MAX 64u
#define KS_FILTER_RULES_MAX 256u
#define KS_PATTERN_MAX 1024u
/* The rules' patterns in all: matching a key costs about its length times
 * the patterns' bytes, so this bounds what one key can cost a peer that
 * applies a filter it was sent (a daemon, in a pull). */
#define KS_FILTER_RULE_BYTES_MAX 4096u
#define KS_FILTER_FP_LEN 16u /* bytes of a filter's fingerprint */

enum ks_rule_kind {
	KS_RULE_INCLUDE = 1,
	KS_RULE_EXCLUDE = 2,
};

struct ks_bytes {
	const uint8_t *p;
	size_t len;
};

struct ks_rule {
	uint8_t kind; /* enum ks_rule_kind */
	struct ks_bytes pat;
};

struct ks_filter {
	/* Sorted bytewise, none a prefix of another (a prefix covered by a
	 * shorter one selects nothing more), so each is a key range of its
	 * own and the set is canonical. */
	uint32_t n_prefixes;
	struct ks_bytes prefixes[KS_FILTER_PREFIXES_MAX];
	uint32_t n_rules;
	struct ks_rule rules[KS_FILTER_RULES_MAX];
	void *owned; /* ks_filter_dup's copy of the bytes, or NULL */
};

/**
 * Check a pattern (the rules above; not empty, at most KS_PATTERN_MAX
 * bytes, no NUL, no unclosed `[`, no trailing `\`, no range running
 * backwards).
 * @param[out] why on failure, a static description
 * @return 0 or -EINVAL
 */
int ks_pattern_check(const void *pat, size_t pat_len, const char **why);

/**
 * Whether @pat matches @key (see above).  Time O(pattern x key), no
 * recursion.  A pattern ks_pattern_check refuses matches nothing.
 */
bool ks_pattern_match(const void *pat, size_t pat_len, const void *key, size_t key_len);

/** An empty filter (selects every key). */
void ks_filter_init(struct ks_filter *f);

/**
 * Add a prefix (1 .. 512 bytes), keeping the set canonical.  @p must
 * outlive @f (or be copied by ks_filter_dup).
 * @return 0 or -EINVAL (with *@why: bad length, too many prefixes)
 */
int ks_filter_add_prefix(struct ks_filter *f, const void *p, size_t len, const char **why);

/**
 * Append a rule.  @pat must outlive @f (or be copied by ks_filter_dup).
 * @return 0 or -EINVAL (with *@why: a bad kind or pattern, too many rules)
 */
int ks_filter_add_rule(struct ks_filter *f, uint8_t kind, const void *pat, size_t len,
		       const char **why);

/** Whether @f selects every key (NULL: none given). */
bool ks_filter_empty(const struct ks_filter *f);

/** Whether @f (NULL: no filter) selects @key. */
bool ks_filter_select(const struct ks_filter *f, const void *key, size_t key_len);

/**
 * The canonical bytes of @f, the input of its fingerprint: u32 number of
 * prefixes, each u16 length and bytes (sorted), u32 number of rules, each
 * u8 kind, u16 length and pattern (in order).  Two filters that write
 * the same bytes select the same keys.
 * @param[out] out at least ks_filter_canon_len(@f) bytes
 * @return the number of bytes written
 */
size_t ks_filter_canon(const struct ks_filter *f, uint8_t *out);
size_t ks_filter_canon_len(const struct ks_filter *f);

/**
 * The smallest key above every key that starts with @p, which is @p with
 * trailing 0xff bytes dropped and the last byte left raised by one.
 * @param[out] out at least @len bytes
 * @param[out] ret_len its length
 * @return false when there is none (@p is all 0xff: no upper bound)
 */
bool ks_prefix_successor(const uint8_t *p, size_t len, uint8_t *out, size_t *ret_len);

/**
 * A copy of @f owning its bytes, to keep a filter decoded from a frame.
 * @return 0 or -ENOMEM
 */
int ks_filter_dup(const struct ks_filter *f, struct ks_filter **ret);

/** Free a filter made by ks_filter_dup.  NULL is fine. */
void ks_filter_free(struct ks_filter *f);

#endif
