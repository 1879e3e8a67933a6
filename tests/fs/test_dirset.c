/*
 * test_dirset: proves what fs/dirset.h promises of the daemon's memory of
 * directories without keys, through its public functions only: mkdir and
 * its -EEXIST, existence at or below a prefix, children strictly below,
 * the `empty` flags the daemon reads and clears (kfs_dirset_has_empty,
 * kfs_dirset_empty, kfs_dirset_filled), attributes by mkdir and set_attr,
 * rmdir, directories made by their alias name, next_child's order
 * (positions dir + child + separator, byte by byte, as readdir merges them
 * with keys), each_child, the rename of a subtree over another, and a set
 * of tens of thousands of directories checked entry by entry.  Prefixes use
 * ':' as the separator unless a test says otherwise.  Prints TAP.
 */
#include "dirset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

#define SEG_BUF 512 /* what kfs_dirset_next_child's seg must hold */
#define BIG_N 20000 /* directories for the growth test */

/* ---- helpers ---- */

static kfs_dirset *set_new(char sep)
{
	kfs_dirset *s = NULL;

	if (kfs_dirset_new(sep, &s) != 0 || !s)
		bail_out("kfs_dirset_new failed");
	return s;
}

static struct kfs_dir_attr attr_of(uint32_t mode, int64_t mtime_ns)
{
	return (struct kfs_dir_attr){
		.mode = mode, .uid = 1000, .gid = 100, .mtime_ns = mtime_ns, .ctime_ns = mtime_ns + 1,
	};
}

static bool attr_eq(const struct kfs_dir_attr *a, const struct kfs_dir_attr *b)
{
	return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

static int mk(kfs_dirset *s, const char *p)
{
	struct kfs_dir_attr a = attr_of(0755, 1);

	return kfs_dirset_mkdir(s, p, strlen(p), &a, false);
}

static bool exists(kfs_dirset *s, const char *p)
{
	return kfs_dirset_exists(s, p, strlen(p));
}

static bool children(kfs_dirset *s, const char *p)
{
	return kfs_dirset_has_children(s, p, strlen(p));
}

static bool empty(kfs_dirset *s, const char *p)
{
	return kfs_dirset_empty(s, p, strlen(p));
}

/*
 * List the children of @dir as readdir walks them: from bound @dir, each
 * next bound the child's position with the separator raised by one (what
 * fs/ns.c gives), into @out as "seg,seg,".  @return how many.
 */
static int list(kfs_dirset *s, char sep, const char *dir, char *out, size_t cap)
{
	unsigned char bound[2 * SEG_BUF], seg[SEG_BUF];
	size_t dl = strlen(dir), bl = dl, sl, used = 0;
	int n = 0;

	memcpy(bound, dir, dl);
	out[0] = '\0';
	while (kfs_dirset_next_child(s, dir, dl, bound, bl, seg, &sl)) {
		if (used + sl + 2 > cap || n > BIG_N)
			bail_out("list: too many children");
		memcpy(out + used, seg, sl);
		used += sl;
		out[used++] = ',';
		out[used] = '\0';
		memcpy(bound + dl, seg, sl);
		bound[dl + sl] = (unsigned char)(sep + 1);
		bl = dl + sl + 1;
		n++;
	}
	return n;
}

/* ---- mkdir, exists, children, rmdir ---- */

static void test_mkdir(void)
{
	kfs_dirset *s = set_new(':');
	struct kfs_dir_attr a = attr_of(0700, 42), got;

	ok(!kfs_dirset_has_empty(s), "new set: no empty directory");
	ok(!exists(s, "a:") && !exists(s, ""), "new set: nothing exists");
	is_int(kfs_dirset_mkdir(s, "a:", 2, &a, false), 0, "mkdir: a new directory");
	is_int(kfs_dirset_mkdir(s, "a:", 2, &a, false), -EEXIST, "mkdir: again is -EEXIST");
	is_int(kfs_dirset_mkdir(s, "a:", 2, &a, true), -EEXIST, "mkdir: again by alias is -EEXIST too");
	ok(kfs_dirset_has_empty(s), "mkdir: the set has an empty directory");
	ok(empty(s, "a:"), "mkdir: the directory is remembered as empty");
	ok(exists(s, "a:"), "exists: the directory made");
	ok(exists(s, ""), "exists: the root prefix, above it");
	ok(!exists(s, "b:"), "exists: not another prefix");
	ok(!exists(s, "a:x:"), "exists: not a prefix below it");
	ok(!children(s, "a:"), "has_children: a new directory has none");
	ok(children(s, ""), "has_children: its parent has one");
	ok(kfs_dirset_attr(s, "a:", 2, &got) && attr_eq(&got, &a), "mkdir: its attributes read back");
	ok(!kfs_dirset_by_alias(s, "a:", 2), "by_alias: false for a plain mkdir");

	is_int(mk(s, "a:b:c:"), 0, "mkdir: a directory two levels down, parents not made");
	ok(exists(s, "a:b:"), "exists: a prefix with a directory below it exists");
	ok(!empty(s, "a:b:"), "empty: not for a prefix only above a made directory");
	ok(children(s, "a:") && children(s, "a:b:") && !children(s, "a:b:c:"),
	   "has_children: strictly below only");
	ok(!kfs_dirset_attr(s, "a:b:", 4, &got), "attr: none for a prefix never given any");

	/* Prefixes are bytes: "a:" is not a prefix of "ab:" nor the other way. */
	is_int(mk(s, "ab:"), 0, "mkdir: a sibling sharing the first byte");
	ok(exists(s, "ab:") && !children(s, "ab:"), "exists: the sibling, which has no children");
	is_int(kfs_dirset_rmdir(s, "a:", 2), 0, "rmdir: an empty directory made by mkdir");
	ok(!empty(s, "a:") && !kfs_dirset_attr(s, "a:", 2, &got), "rmdir: its entry and attributes forgotten");
	ok(exists(s, "a:") && children(s, "a:"), "rmdir: the prefix still exists by the directory below");
	ok(exists(s, "ab:"), "rmdir: the sibling is untouched");
	is_int(kfs_dirset_rmdir(s, "a:", 2), -ENOENT, "rmdir: again is -ENOENT");
	is_int(kfs_dirset_rmdir(s, "a:b:", 4), -ENOENT, "rmdir: a prefix never made is -ENOENT");
	is_int(kfs_dirset_rmdir(s, "a:b:c:", 6), 0, "rmdir: the deep one");
	ok(!exists(s, "a:") && !children(s, "a:") && exists(s, "ab:"),
	   "exists: \"a:\" is not a prefix of the sibling \"ab:\"");
	is_int(kfs_dirset_rmdir(s, "ab:", 3), 0, "rmdir: the sibling");
	ok(!kfs_dirset_has_empty(s), "rmdir: all removed, no empty directory left");
	ok(!exists(s, "") && !children(s, ""), "rmdir: all removed, nothing exists");

	/* Attributes alone do not make a directory. */
	struct kfs_dir_attr b = attr_of(0711, 99);

	is_int(kfs_dirset_set_attr(s, "k:", 2, &b), 0, "set_attr: on a directory derived from keys");
	ok(kfs_dirset_attr(s, "k:", 2, &got) && attr_eq(&got, &b), "set_attr: attributes read back");
	ok(!exists(s, "k:") && !empty(s, "k:") && !kfs_dirset_has_empty(s),
	   "set_attr: attributes alone neither make it exist nor empty");
	is_int(kfs_dirset_rmdir(s, "k:", 2), -ENOENT, "rmdir: a directory with attributes only is -ENOENT");
	is_int(mk(s, "k:"), 0, "mkdir: over a directory with attributes only");
	ok(empty(s, "k:") && kfs_dirset_attr(s, "k:", 2, &got) && got.mode == 0755,
	   "mkdir: over attributes, it is empty with mkdir's attributes");
	is_int(kfs_dirset_set_attr(s, "k:", 2, &b), 0, "set_attr: on an empty directory");
	ok(empty(s, "k:") && kfs_dirset_attr(s, "k:", 2, &got) && attr_eq(&got, &b),
	   "set_attr: it stays empty, with the new attributes");
	kfs_dirset_free(s);
	kfs_dirset_free(NULL);
	ok(true, "free: accepts NULL");
}

/* ---- the empty flags and aliases ---- */

static void test_empty_flags(void)
{
	kfs_dirset *s = set_new(':');
	struct kfs_dir_attr a = attr_of(0750, 7), got;

	kfs_dirset_filled(s, "x:", 2); /* nothing there: nothing happens */
	ok(!kfs_dirset_has_empty(s) && !kfs_dirset_attr(s, "x:", 2, &got),
	   "filled: of an unknown prefix changes nothing");

	kfs_dirset_mkdir(s, "d:", 2, &a, true);
	mk(s, "e:");
	ok(kfs_dirset_by_alias(s, "d:", 2), "by_alias: a directory made by its alias name");
	ok(!kfs_dirset_by_alias(s, "e:", 2), "by_alias: not the one made by its plain name");
	ok(empty(s, "d:") && empty(s, "e:"), "empty: both are remembered as empty");

	kfs_dirset_filled(s, "d:", 2);
	ok(!empty(s, "d:"), "filled: a directory with keys now is no longer empty");
	ok(kfs_dirset_attr(s, "d:", 2, &got) && attr_eq(&got, &a), "filled: its attributes stay");
	ok(!kfs_dirset_by_alias(s, "d:", 2), "filled: no longer an empty directory made by alias");
	ok(!exists(s, "d:"), "filled: it no longer exists without keys");
	ok(kfs_dirset_has_empty(s), "has_empty: still true, e: is empty");
	kfs_dirset_filled(s, "d:", 2);
	ok(kfs_dirset_has_empty(s) && empty(s, "e:"), "filled: twice changes nothing more");
	kfs_dirset_filled(s, "e:", 2);
	ok(!kfs_dirset_has_empty(s), "has_empty: false once every empty directory was filled");
	is_int(kfs_dirset_rmdir(s, "e:", 2), -ENOENT, "rmdir: a filled directory is not one made by mkdir");

	/* Kept when emptied through the mount: mkdir of a filled one. */
	is_int(kfs_dirset_mkdir(s, "d:", 2, &a, false), 0, "mkdir: a filled directory can be kept empty again");
	ok(empty(s, "d:") && kfs_dirset_has_empty(s), "mkdir: it is empty again");
	is_int(kfs_dirset_rmdir(s, "d:", 2), 0, "rmdir: then it can be removed");
	ok(!kfs_dirset_has_empty(s), "has_empty: false after it");
	kfs_dirset_free(s);
}

/* ---- next_child and each_child ---- */

static void test_next_child(void)
{
	kfs_dirset *s = set_new(':');
	struct kfs_dir_attr a = attr_of(0755, 1);
	char out[4096];
	unsigned char seg[SEG_BUF];
	size_t sl;

	ok(!kfs_dirset_next_child(s, "d:", 2, "d:", 2, seg, &sl), "next_child: none in an empty set");
	mk(s, "d:b:");
	mk(s, "d:a:");
	mk(s, "d:a-b:");     /* '-' sorts before ':': its position comes first */
	mk(s, "d:c:x:y:");   /* child c only through a deeper directory */
	mk(s, "d:c:z:");     /* c again: listed once */
	mk(s, "d:");         /* the directory itself: not its own child */
	mk(s, "c:q:");       /* another directory's child */
	mk(s, "e:r:");
	kfs_dirset_set_attr(s, "d:f:", 4, &a); /* attributes only: no child */
	mk(s, "d:g:");
	kfs_dirset_filled(s, "d:g:", 4);       /* filled: derived from keys now */

	is_int(list(s, ':', "d:", out, sizeof(out)), 4, "next_child: four children of d:");
	is_str(out, "a-b,a,b,c,", "next_child: in position order, each once, no filled or attribute-only one");
	is_int(list(s, ':', "d:c:", out, sizeof(out)), 2, "next_child: children of d:c:");
	is_str(out, "x,z,", "next_child: a child through its deeper directory is listed once");
	is_int(list(s, ':', "", out, sizeof(out)), 3, "next_child: children of the root prefix");
	is_str(out, "c,d,e,", "next_child: the root's children, from every subtree");
	is_int(list(s, ':', "d:b:", out, sizeof(out)), 0, "next_child: an empty directory has none");

	/* Bounds between and past the children. */
	ok(kfs_dirset_next_child(s, "d:", 2, "d:a:", 4, seg, &sl) && sl == 1 && seg[0] == 'a',
	   "next_child: a bound at a child's position gives that child");
	ok(kfs_dirset_next_child(s, "d:", 2, "d:a;", 4, seg, &sl) && sl == 1 && seg[0] == 'b',
	   "next_child: a bound just past a child gives the next one");
	ok(kfs_dirset_next_child(s, "d:", 2, "d:c:x:", 6, seg, &sl) == false,
	   "next_child: a bound inside the last child's subtree: its position is before the bound");
	ok(!kfs_dirset_next_child(s, "d:", 2, "d:zzz", 5, seg, &sl), "next_child: a bound past all gives none");
	ok(!kfs_dirset_next_child(s, "d:x:", 4, "d:x:", 4, seg, &sl), "next_child: a prefix never made has none");

	/* The header's rule is position >= bound: a bound before the
	 * directory's own prefix lets every child through. */
	ok(kfs_dirset_next_child(s, "d:", 2, "", 0, seg, &sl) && sl == 3 && memcmp(seg, "a-b", 3) == 0,
	   "next_child: an empty bound gives the first child");
	ok(kfs_dirset_next_child(s, "e:", 2, "c:", 2, seg, &sl) && sl == 1 && seg[0] == 'r',
	   "next_child: a bound before the directory, with other directories between, gives its first child");

	/* A long child segment ('L' sorts before the others: first). */
	char longp[2 + 255 + 2];

	memcpy(longp, "d:", 2);
	memset(longp + 2, 'L', 255);
	memcpy(longp + 257, ":", 2);
	mk(s, longp);
	ok(kfs_dirset_next_child(s, "d:", 2, "d:", 2, seg, &sl) && sl == 255 && seg[0] == 'L' &&
		   seg[254] == 'L',
	   "next_child: a 255-byte child segment comes back whole");
	kfs_dirset_free(s);

	/* Another separator: '/' splits, ':' is a plain byte. */
	s = set_new('/');
	kfs_dirset_mkdir(s, "p/a:b/", 6, &a, false);
	kfs_dirset_mkdir(s, "p/a/x/", 6, &a, false);
	is_int(list(s, '/', "p/", out, sizeof(out)), 2, "next_child with '/': two children");
	is_str(out, "a,a:b,", "next_child with '/': split at '/', ':' is part of a name");
	kfs_dirset_free(s);
}

struct seen {
	char buf[256];
	int calls;
	int stop_at; /* stop on this call (1-based), 0 never */
};

static bool collect(void *arg, const void *seg, size_t len)
{
	struct seen *w = arg;
	size_t used = strlen(w->buf);

	if (used + len + 2 < sizeof(w->buf)) {
		memcpy(w->buf + used, seg, len);
		w->buf[used + len] = ',';
		w->buf[used + len + 1] = '\0';
	}
	return ++w->calls == w->stop_at;
}

static void test_each_child(void)
{
	kfs_dirset *s = set_new(':');
	struct kfs_dir_attr a = attr_of(0755, 1);
	struct seen w = {0};

	ok(!kfs_dirset_each_child(s, "d:", 2, collect, &w) && w.calls == 0,
	   "each_child: no call in an empty set");
	mk(s, "d:b:");
	mk(s, "d:a:");
	mk(s, "d:");
	mk(s, "dx:");
	kfs_dirset_set_attr(s, "d:f:", 4, &a);
	ok(!kfs_dirset_each_child(s, "d:", 2, collect, &w), "each_child: false when fn never stops");
	is_str(w.buf, "a,b,", "each_child: every child made by mkdir, not the directory, a sibling or attributes");

	memset(&w, 0, sizeof(w));
	w.stop_at = 1;
	ok(kfs_dirset_each_child(s, "d:", 2, collect, &w), "each_child: true when fn stops");
	is_int(w.calls, 1, "each_child: no call after fn stopped");
	kfs_dirset_free(s);
}

/* ---- rename ---- */

static void test_rename(void)
{
	kfs_dirset *s = set_new(':');
	struct kfs_dir_attr a = attr_of(0701, 5), b = attr_of(0702, 6), c = attr_of(0703, 7), got;
	char out[256];

	kfs_dirset_mkdir(s, "d:a:", 4, &a, false);
	kfs_dirset_mkdir(s, "d:a:x:", 6, &b, true);
	kfs_dirset_set_attr(s, "d:a:y:", 6, &c);
	mk(s, "d:ab:");              /* shares bytes, not the prefix */
	mk(s, "e:old:");             /* under the target: replaced */
	kfs_dirset_set_attr(s, "e:", 2, &c);

	is_int(kfs_dirset_rename(s, "d:a:", 4, "e:", 2), 0, "rename: a subtree");
	ok(empty(s, "e:") && kfs_dirset_attr(s, "e:", 2, &got) && attr_eq(&got, &a),
	   "rename: the directory moved, still empty, with its attributes");
	ok(empty(s, "e:x:") && kfs_dirset_by_alias(s, "e:x:", 4) && kfs_dirset_attr(s, "e:x:", 4, &got) &&
		   attr_eq(&got, &b),
	   "rename: a subdirectory moved, empty, made by alias, with its attributes");
	ok(!empty(s, "e:y:") && kfs_dirset_attr(s, "e:y:", 4, &got) && attr_eq(&got, &c),
	   "rename: attributes of a derived subdirectory moved, not made empty");
	ok(!empty(s, "e:old:") && !kfs_dirset_attr(s, "e:old:", 6, &got) && !exists(s, "e:old:"),
	   "rename: a directory under the target was replaced");
	ok(!exists(s, "d:a:") && !children(s, "d:a:") && !kfs_dirset_attr(s, "d:a:", 4, &got) &&
		   !kfs_dirset_attr(s, "d:a:y:", 6, &got),
	   "rename: nothing left under the old prefix");
	ok(empty(s, "d:ab:"), "rename: a sibling sharing bytes stays");
	is_int(list(s, ':', "e:", out, sizeof(out)), 1, "rename: one child under the new prefix");
	is_str(out, "x,", "rename: next_child sees the moved child");
	is_int(list(s, ':', "d:", out, sizeof(out)), 1, "rename: one child left under the old parent");
	is_str(out, "ab,", "rename: next_child sees only the sibling there");

	/* The count of empty directories stays right: remove each one. */
	is_int(kfs_dirset_rmdir(s, "e:x:", 4), 0, "rename: the moved subdirectory can be removed");
	is_int(kfs_dirset_rmdir(s, "e:", 2), 0, "rename: the moved directory can be removed");
	is_int(kfs_dirset_rmdir(s, "d:ab:", 5), 0, "rename: the sibling can be removed");
	ok(!kfs_dirset_has_empty(s), "rename: after removing them, no empty directory is left");

	/* A prefix with nothing under it still clears the target. */
	mk(s, "t:u:");
	is_int(kfs_dirset_rename(s, "none:", 5, "t:", 2), 0, "rename: of a prefix with no entries");
	ok(!exists(s, "t:u:") && !kfs_dirset_has_empty(s), "rename: it still replaces what was under the target");
	kfs_dirset_free(s);
}

/* ---- growth ---- */

/* A fixed permutation of 0..n-1, so failures repeat. */
static void shuffle(int *v, int n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (int i = 0; i < n; i++)
		v[i] = i;
	for (int i = n - 1; i > 0; i--) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int j = (int)(x % (uint64_t)(i + 1)), t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

static void test_growth(void)
{
	kfs_dirset *s = set_new(':');
	int *order = malloc(BIG_N * sizeof(*order));
	size_t cap = (size_t)BIG_N * 8 + 1;
	char *out = malloc(cap), *want = malloc(cap), p[64];
	int bad = 0;

	if (!order || !out || !want)
		bail_out("out of memory");
	shuffle(order, BIG_N);
	/* Half in big:, half in deeper directories of big:n:. */
	for (int i = 0; i < BIG_N; i++) {
		int k = order[i];

		if (k % 2)
			snprintf(p, sizeof(p), "big:%06d:", k);
		else
			snprintf(p, sizeof(p), "big:n:%06d:", k);
		if (mk(s, p) != 0)
			bad++;
	}
	is_int(bad, 0, "growth: %d directories made in shuffled order", BIG_N);

	want[0] = '\0';
	size_t used = 0;

	for (int k = 1; k < BIG_N; k += 2)
		used += (size_t)sprintf(want + used, "%06d,", k);
	used += (size_t)sprintf(want + used, "n,");
	int n = list(s, ':', "big:", out, cap);

	is_int(n, BIG_N / 2 + 1, "growth: next_child lists every child of big: once");
	ok(strcmp(out, want) == 0, "growth: in position order");

	bad = 0;
	for (int k = 0; k < BIG_N; k++) {
		snprintf(p, sizeof(p), k % 2 ? "big:%06d:" : "big:n:%06d:", k);
		if (!empty(s, p) || !exists(s, p) || children(s, p))
			bad++;
	}
	is_int(bad, 0, "growth: every directory empty, existing, childless");

	/* Move the deeper half away; the rest stays. */
	is_int(kfs_dirset_rename(s, "big:n:", 6, "other:", 6), 0, "growth: rename of a subtree of %d", BIG_N / 2);
	bad = 0;
	for (int k = 0; k < BIG_N; k++) {
		char q[64];

		snprintf(p, sizeof(p), k % 2 ? "big:%06d:" : "other:%06d:", k);
		snprintf(q, sizeof(q), "big:n:%06d:", k);
		if (!empty(s, p) || empty(s, q))
			bad++;
	}
	is_int(bad, 0, "growth: the subtree moved whole, nothing else did");
	is_int(list(s, ':', "other:", out, cap), BIG_N / 2, "growth: the moved children are listed");

	bad = 0;
	for (int i = 0; i < BIG_N; i++) {
		int k = order[i];

		snprintf(p, sizeof(p), k % 2 ? "big:%06d:" : "other:%06d:", k);
		if (kfs_dirset_rmdir(s, p, strlen(p)) != 0)
			bad++;
	}
	is_int(bad, 0, "growth: every directory removed in shuffled order");
	ok(!kfs_dirset_has_empty(s) && !exists(s, ""), "growth: the set is empty afterwards");
	free(order);
	free(out);
	free(want);
	kfs_dirset_free(s);
}

int main(void)
{
	test_mkdir();
	test_empty_flags();
	test_next_child();
	test_each_child();
	test_rename();
	test_growth();
	return done_testing();
}
