/*
 * fuzz_filter: libFuzzer target for tools/kvsync/filter.c, the key
 * matcher of --include/--exclude.  The input's first byte is the
 * pattern's length, the pattern follows, the rest is the key.  A pattern
 * the checker accepts must match exactly when a plain backtracking
 * matcher (written from the rules in filter.h, memoised so it stays
 * polynomial) says it does; one it refuses must match nothing.  ASan and
 * UBSan catch any read out of bounds.
 */
#include "fuzz.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsync/filter.h"

struct ref {
	const uint8_t *p, *k;
	size_t pn, kn;
	int8_t *memo; /* (pn + 1) x (kn + 1): -1 unknown, 0, 1 */
};

/* The end of the class starting at @p[i] (the `[`), its negation and the
 * index of its first member. */
static size_t ref_class(const struct ref *r, size_t i, bool *neg, size_t *first)
{
	size_t j = i + 1;
	*neg = j < r->pn && (r->p[j] == '!' || r->p[j] == '^');
	if (*neg)
		j++;
	*first = j;
	if (j < r->pn && r->p[j] == ']')
		j++;
	while (j < r->pn && r->p[j] != ']')
		j += r->p[j] == '\\' ? 2 : 1;
	return j; /* at the closing ] (the pattern was checked) */
}

static bool ref_in_class(const struct ref *r, size_t first, size_t end, uint8_t c)
{
	for (size_t j = first; j < end;) {
		uint8_t lo = r->p[j] == '\\' ? r->p[++j] : r->p[j];
		j++;
		uint8_t hi = lo;
		if (j + 1 < end && r->p[j] == '-') {
			j++;
			hi = r->p[j] == '\\' ? r->p[++j] : r->p[j];
			j++;
		}
		if (c >= lo && c <= hi)
			return true;
	}
	return false;
}

/* Whether pattern from @i matches key from @j; a pattern ending in ':'
 * also matches when the key goes on past it. */
static bool ref_match(struct ref *r, size_t i, size_t j)
{
	int8_t *m = &r->memo[i * (r->kn + 1) + j];
	if (*m >= 0)
		return *m;
	/* (i == 0 only for the empty pattern, which the checker refuses) */
	bool v;
	if (i == r->pn) {
		/* A checked pattern's last byte is ':' only as a literal. */
		v = j == r->kn || r->p[r->pn - 1] == ':';
	} else if (r->p[i] == '*') {
		bool dbl = i + 1 < r->pn && r->p[i + 1] == '*';
		size_t next = i + 1;
		while (next < r->pn && r->p[next] == '*')
			next++;
		v = ref_match(r, next, j) ||
		    (j < r->kn && (dbl || r->k[j] != ':') && ref_match(r, i, j + 1));
	} else if (j == r->kn) {
		v = false;
	} else if (r->p[i] == '?') {
		v = r->k[j] != ':' && ref_match(r, i + 1, j + 1);
	} else if (r->p[i] == '[') {
		bool neg;
		size_t first, end = ref_class(r, i, &neg, &first);
		v = r->k[j] != ':' && ref_in_class(r, first, end, r->k[j]) != neg &&
		    ref_match(r, end + 1, j + 1);
	} else {
		uint8_t c = r->p[i];
		size_t step = 1;
		if (c == '\\') {
			c = r->p[i + 1];
			step = 2;
		}
		v = r->k[j] == c && ref_match(r, i + step, j + 1);
	}
	*m = v;
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t pn = data[0];
	if (pn > size - 1)
		pn = size - 1;
	const uint8_t *p = data + 1, *k = data + 1 + pn;
	size_t kn = size - 1 - pn;
	if (kn > 512)
		kn = 512;
	const char *why = NULL;
	bool got = ks_pattern_match(p, pn, k, kn);
	if (ks_pattern_check(p, pn, &why)) {
		require(why != NULL);
		require(!got);
		return 0;
	}
	struct ref r = {p, k, pn, kn, malloc((pn + 1) * (kn + 1))};
	require(r.memo != NULL);
	memset(r.memo, -1, (pn + 1) * (kn + 1));
	bool want = ref_match(&r, 0, 0);
	free(r.memo);
	require(got == want);
	return 0;
}
