/*
 * filter: the key selection of a filtered sync (see filter.h): a glob
 * matcher for keys, run as a set of pattern positions stepped over the
 * key's bytes (no backtracking, so no pattern can take exponential time),
 * and the prefixes and ordered rules around it.
 */
#include "filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvcore.h"

#define DELIM ':'

enum tok_type { T_LIT, T_ANY, T_CLASS, T_STAR, T_DSTAR };

struct tok {
	uint8_t type; /* enum tok_type */
	uint8_t c;    /* T_LIT: the byte; T_CLASS: negated */
	uint16_t at;  /* T_CLASS: where its members start in the pattern */
	uint16_t len; /* ... and how many bytes they take */
};

/*
 * Parse the members of a class starting at @p[i] (after `[` and any
 * negation) up to its closing `]`.  @return the index of that `]`, or
 * @n when there is none or a member is bad (*@why says which)
 */
static size_t class_end(const uint8_t *p, size_t n, size_t i, const char **why)
{
	size_t start = i;
	while (i < n) {
		if (p[i] == ']' && i > start)
			return i;
		uint8_t lo = p[i];
		if (lo == '\\') {
			if (++i >= n)
				break;
			lo = p[i];
		}
		i++;
		if (i + 1 < n && p[i] == '-' && p[i + 1] != ']') {
			i++;
			uint8_t hi = p[i];
			if (hi == '\\') {
				if (++i >= n)
					break;
				hi = p[i];
			}
			i++;
			if (hi < lo) {
				*why = "a range in [...] runs backwards";
				return n;
			}
		}
	}
	if (!*why)
		*why = "unclosed [ in the pattern";
	return n;
}

/* Whether byte @c is a member of the class body @p[0..n). */
static bool class_has(const uint8_t *p, size_t n, uint8_t c)
{
	size_t i = 0;
	while (i < n) {
		uint8_t lo = p[i];
		if (lo == '\\' && i + 1 < n)
			lo = p[++i];
		i++;
		uint8_t hi = lo;
		if (i + 1 < n && p[i] == '-') {
			i++;
			hi = p[i];
			if (hi == '\\' && i + 1 < n)
				hi = p[++i];
			i++;
		}
		if (c >= lo && c <= hi)
			return true;
	}
	return false;
}

/*
 * Cut @p into tokens (at most @n of them).  @return the number of tokens,
 * or -EINVAL with *@why
 */
static int compile(const uint8_t *p, size_t n, struct tok *t, const char **why)
{
	*why = NULL;
	if (n == 0) {
		*why = "empty pattern";
		return -EINVAL;
	}
	if (n > KS_PATTERN_MAX) {
		*why = "pattern over 1024 bytes";
		return -EINVAL;
	}
	if (memchr(p, 0, n)) {
		*why = "NUL byte in the pattern";
		return -EINVAL;
	}
	int nt = 0;
	for (size_t i = 0; i < n;) {
		struct tok k = {T_LIT, p[i], 0, 0};
		switch (p[i]) {
		case '\\':
			if (i + 1 >= n) {
				*why = "pattern ends in a lone \\";
				return -EINVAL;
			}
			k.c = p[i + 1];
			i += 2;
			break;
		case '?':
			k.type = T_ANY;
			i++;
			break;
		case '*':
			k.type = T_STAR;
			while (++i < n && p[i] == '*')
				k.type = T_DSTAR;
			break;
		case '[': {
			size_t j = i + 1;
			k.type = T_CLASS;
			k.c = 0;
			if (j < n && (p[j] == '!' || p[j] == '^')) {
				k.c = 1;
				j++;
			}
			size_t end = class_end(p, n, j, why);
			if (end >= n)
				return -EINVAL;
			k.at = (uint16_t)j;
			k.len = (uint16_t)(end - j);
			i = end + 1;
			break;
		}
		default:
			i++;
			break;
		}
		t[nt++] = k;
	}
	return nt;
}

int ks_pattern_check(const void *pat, size_t pat_len, const char **why)
{
	struct tok t[KS_PATTERN_MAX];
	const char *w = NULL;
	int nt = compile(pat, pat_len, t, &w);
	if (nt < 0 && why)
		*why = w;
	return nt < 0 ? -EINVAL : 0;
}

/* Add state @i and, through stars that may match nothing, those after it. */
static void enter(const struct tok *t, int nt, bool *set, int i)
{
	set[i] = true;
	while (i < nt && (t[i].type == T_STAR || t[i].type == T_DSTAR))
		set[++i] = true;
}

/* Whether token @k takes byte @c (and, for a star, stays). */
static bool takes(const struct tok *k, const uint8_t *pat, uint8_t c)
{
	switch (k->type) {
	case T_LIT: return c == k->c;
	case T_ANY: return c != DELIM;
	case T_STAR: return c != DELIM;
	case T_DSTAR: return true;
	default:
		return c != DELIM && class_has(pat + k->at, k->len, c) != (k->c != 0);
	}
}

bool ks_pattern_match(const void *pat, size_t pat_len, const void *key, size_t key_len)
{
	struct tok t[KS_PATTERN_MAX];
	bool a[KS_PATTERN_MAX + 1], b[KS_PATTERN_MAX + 1];
	const char *why;
	const uint8_t *k = key;
	int nt = compile(pat, pat_len, t, &why);
	if (nt <= 0)
		return false;
	/* Ending in the delimiter: a match of any start of the key will do. */
	bool under = t[nt - 1].type == T_LIT && t[nt - 1].c == DELIM;
	bool *cur = a, *next = b;
	memset(cur, 0, (size_t)nt + 1);
	enter(t, nt, cur, 0);
	for (size_t j = 0; j < key_len; j++) {
		if (under && cur[nt])
			return true;
		memset(next, 0, (size_t)nt + 1);
		bool any = false;
		for (int i = 0; i < nt; i++) {
			if (!cur[i] || !takes(&t[i], pat, k[j]))
				continue;
			any = true;
			if (t[i].type == T_STAR || t[i].type == T_DSTAR)
				enter(t, nt, next, i); /* a star stays where it is */
			else
				enter(t, nt, next, i + 1);
		}
		if (!any)
			return false;
		bool *x = cur;
		cur = next;
		next = x;
	}
	return cur[nt];
}

void ks_filter_init(struct ks_filter *f)
{
	memset(f, 0, sizeof(*f));
}

static bool starts_with(const struct ks_bytes *key, const struct ks_bytes *p)
{
	return key->len >= p->len && !memcmp(key->p, p->p, p->len);
}

int ks_filter_add_prefix(struct ks_filter *f, const void *p, size_t len, const char **why)
{
	struct ks_bytes x = {p, len};
	if (len == 0 || len > KVC_KEY_MAX) {
		*why = len ? "prefix over 512 bytes" : "empty prefix";
		return -EINVAL;
	}
	/* Covered by one we have: it selects nothing more. */
	for (uint32_t i = 0; i < f->n_prefixes; i++)
		if (starts_with(&x, &f->prefixes[i]))
			return 0;
	/* Drop those it covers, then insert it in order. */
	uint32_t m = 0;
	for (uint32_t i = 0; i < f->n_prefixes; i++)
		if (!starts_with(&f->prefixes[i], &x))
			f->prefixes[m++] = f->prefixes[i];
	f->n_prefixes = m;
	if (m >= KS_FILTER_PREFIXES_MAX) {
		*why = "more than 64 prefixes";
		return -EINVAL;
	}
	uint32_t at = m;
	while (at > 0 && kvc_key_cmp(f->prefixes[at - 1].p, f->prefixes[at - 1].len, x.p,
				     x.len) > 0) {
		f->prefixes[at] = f->prefixes[at - 1];
		at--;
	}
	f->prefixes[at] = x;
	f->n_prefixes++;
	return 0;
}

int ks_filter_add_rule(struct ks_filter *f, uint8_t kind, const void *pat, size_t len,
		       const char **why)
{
	if (kind != KS_RULE_INCLUDE && kind != KS_RULE_EXCLUDE) {
		*why = "a rule of an unknown kind";
		return -EINVAL;
	}
	if (ks_pattern_check(pat, len, why))
		return -EINVAL;
	if (f->n_rules >= KS_FILTER_RULES_MAX) {
		*why = "more than 256 --include/--exclude rules";
		return -EINVAL;
	}
	size_t bytes = len;
	for (uint32_t i = 0; i < f->n_rules; i++)
		bytes += f->rules[i].pat.len;
	if (bytes > KS_FILTER_RULE_BYTES_MAX) {
		*why = "--include/--exclude patterns over 4096 bytes in all";
		return -EINVAL;
	}
	f->rules[f->n_rules].kind = kind;
	f->rules[f->n_rules].pat.p = pat;
	f->rules[f->n_rules].pat.len = len;
	f->n_rules++;
	return 0;
}

bool ks_filter_empty(const struct ks_filter *f)
{
	return !f || (!f->n_prefixes && !f->n_rules);
}

bool ks_filter_select(const struct ks_filter *f, const void *key, size_t key_len)
{
	if (!f)
		return true;
	if (f->n_prefixes) {
		struct ks_bytes k = {key, key_len};
		uint32_t i = 0;
		while (i < f->n_prefixes && !starts_with(&k, &f->prefixes[i]))
			i++;
		if (i == f->n_prefixes)
			return false;
	}
	for (uint32_t i = 0; i < f->n_rules; i++) {
		const struct ks_rule *r = &f->rules[i];
		if (ks_pattern_match(r->pat.p, r->pat.len, key, key_len))
			return r->kind == KS_RULE_INCLUDE;
	}
	return true;
}

size_t ks_filter_canon_len(const struct ks_filter *f)
{
	size_t n = 8;
	for (uint32_t i = 0; i < f->n_prefixes; i++)
		n += 2 + f->prefixes[i].len;
	for (uint32_t i = 0; i < f->n_rules; i++)
		n += 3 + f->rules[i].pat.len;
	return n;
}

static uint8_t *put_be(uint8_t *o, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		*o++ = (uint8_t)(v >> (8 * i));
	return o;
}

size_t ks_filter_canon(const struct ks_filter *f, uint8_t *out)
{
	uint8_t *o = put_be(out, f->n_prefixes, 4);
	for (uint32_t i = 0; i < f->n_prefixes; i++) {
		o = put_be(o, f->prefixes[i].len, 2);
		memcpy(o, f->prefixes[i].p, f->prefixes[i].len);
		o += f->prefixes[i].len;
	}
	o = put_be(o, f->n_rules, 4);
	for (uint32_t i = 0; i < f->n_rules; i++) {
		*o++ = f->rules[i].kind;
		o = put_be(o, f->rules[i].pat.len, 2);
		memcpy(o, f->rules[i].pat.p, f->rules[i].pat.len);
		o += f->rules[i].pat.len;
	}
	return (size_t)(o - out);
}

bool ks_prefix_successor(const uint8_t *p, size_t len, uint8_t *out, size_t *ret_len)
{
	while (len > 0 && p[len - 1] == 0xff)
		len--;
	if (len == 0)
		return false;
	memcpy(out, p, len);
	out[len - 1]++;
	*ret_len = len;
	return true;
}

int ks_filter_dup(const struct ks_filter *f, struct ks_filter **ret)
{
	size_t bytes = 0;
	for (uint32_t i = 0; i < f->n_prefixes; i++)
		bytes += f->prefixes[i].len;
	for (uint32_t i = 0; i < f->n_rules; i++)
		bytes += f->rules[i].pat.len;
	struct ks_filter *d = malloc(sizeof(*d));
	uint8_t *mem = malloc(bytes ? bytes : 1);
	if (!d || !mem) {
		free(d);
		free(mem);
		return -ENOMEM;
	}
	*d = *f;
	d->owned = mem;
	for (uint32_t i = 0; i < d->n_prefixes; i++) {
		memcpy(mem, f->prefixes[i].p, f->prefixes[i].len);
		d->prefixes[i].p = mem;
		mem += f->prefixes[i].len;
	}
	for (uint32_t i = 0; i < d->n_rules; i++) {
		memcpy(mem, f->rules[i].pat.p, f->rules[i].pat.len);
		d->rules[i].pat.p = mem;
		mem += f->rules[i].pat.len;
	}
	*ret = d;
	return 0;
}

void ks_filter_free(struct ks_filter *f)
{
	if (!f)
		return;
	free(f->owned);
	free(f);
}
