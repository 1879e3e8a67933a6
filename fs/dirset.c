/*
 * dirset: the daemon's memory of directories that the store cannot hold,
 * empty ones made by mkdir and attributes set on directories (see
 * dirset.h).  A sorted array of prefixes: the set is small (what users
 * mkdir or chmod during a mount), and sorting makes a directory's children
 * and a renamed subtree contiguous ranges found by binary search.
 */
#include "dirset.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct dent {
	unsigned char *p;
	size_t len;
	bool empty;    /* made by mkdir, no key below it yet */
	bool by_alias; /* made by mkdir of the alias name */
	bool has_attr;
	struct kfs_dir_attr attr;
};

struct kfs_dirset {
	pthread_mutex_t lock; /* protects everything below */
	char sep;
	struct dent *v;
	size_t n, cap;
	size_t nempty; /* entries with empty set: most lookups end at once */
};

static int bytes_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

static bool has_prefix(const struct dent *e, const void *p, size_t len)
{
	return e->len >= len && memcmp(e->p, p, len) == 0;
}

/* Index of the first entry >= @p. */
static size_t lower_bound(const kfs_dirset *s, const void *p, size_t len)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (bytes_cmp(s->v[mid].p, s->v[mid].len, p, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct dent *find(kfs_dirset *s, const void *p, size_t len)
{
	size_t i = lower_bound(s, p, len);

	if (i < s->n && s->v[i].len == len && memcmp(s->v[i].p, p, len) == 0)
		return &s->v[i];
	return NULL;
}

/* Insert a new entry for @p (absent) and return it, or NULL. */
static struct dent *insert(kfs_dirset *s, const void *p, size_t len)
{
	size_t i = lower_bound(s, p, len);

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct dent *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		s->v = v;
		s->cap = cap;
	}
	unsigned char *copy = malloc(len ? len : 1);

	if (!copy)
		return NULL;
	memcpy(copy, p, len);
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = (struct dent){ .p = copy, .len = len };
	s->n++;
	return &s->v[i];
}

static void erase(kfs_dirset *s, struct dent *e)
{
	size_t i = (size_t)(e - s->v);

	if (e->empty)
		s->nempty--;
	free(e->p);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
}

int kfs_dirset_new(char sep, kfs_dirset **ret)
{
	kfs_dirset *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->sep = sep;
	*ret = s;
	return 0;
}

void kfs_dirset_free(kfs_dirset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].p);
	free(s->v);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int kfs_dirset_mkdir(kfs_dirset *s, const void *p, size_t len, const struct kfs_dir_attr *attr,
		     bool by_alias)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	struct dent *e = find(s, p, len);

	if (e && e->empty) {
		rc = -EEXIST;
	} else {
		if (!e)
			e = insert(s, p, len);
		if (!e) {
			rc = -ENOMEM;
		} else {
			e->empty = true;
			e->by_alias = by_alias;
			e->has_attr = true;
			e->attr = *attr;
			s->nempty++;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Whether an empty-directory entry starts with @p and is longer than
 * @min_len.  Entries under @p are contiguous from lower_bound(@p). */
static bool any_empty_under(kfs_dirset *s, const void *p, size_t len, size_t min_len)
{
	if (!s->nempty)
		return false;
	for (size_t i = lower_bound(s, p, len); i < s->n && has_prefix(&s->v[i], p, len); i++) {
		if (s->v[i].empty && s->v[i].len > min_len)
			return true;
	}
	return false;
}

bool kfs_dirset_by_alias(kfs_dirset *s, const void *p, size_t len)
{
	pthread_mutex_lock(&s->lock);
	struct dent *e = find(s, p, len);
	bool r = e && e->empty && e->by_alias;

	pthread_mutex_unlock(&s->lock);
	return r;
}

bool kfs_dirset_exists(kfs_dirset *s, const void *p, size_t len)
{
	pthread_mutex_lock(&s->lock);
	bool r = any_empty_under(s, p, len, 0);

	pthread_mutex_unlock(&s->lock);
	return r;
}

bool kfs_dirset_has_children(kfs_dirset *s, const void *p, size_t len)
{
	pthread_mutex_lock(&s->lock);
	bool r = any_empty_under(s, p, len, len);

	pthread_mutex_unlock(&s->lock);
	return r;
}

int kfs_dirset_rmdir(kfs_dirset *s, const void *p, size_t len)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&s->lock);
	struct dent *e = find(s, p, len);

	if (e) {
		rc = e->empty ? 0 : -ENOENT;
		erase(s, e);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

bool kfs_dirset_has_empty(kfs_dirset *s)
{
	pthread_mutex_lock(&s->lock);
	bool r = s->nempty > 0;

	pthread_mutex_unlock(&s->lock);
	return r;
}

bool kfs_dirset_empty(kfs_dirset *s, const void *p, size_t len)
{
	pthread_mutex_lock(&s->lock);
	struct dent *e = s->nempty ? find(s, p, len) : NULL;
	bool r = e && e->empty;

	pthread_mutex_unlock(&s->lock);
	return r;
}

void kfs_dirset_filled(kfs_dirset *s, const void *p, size_t len)
{
	pthread_mutex_lock(&s->lock);
	struct dent *e = s->nempty ? find(s, p, len) : NULL;

	if (e && e->empty) {
		e->empty = false;
		s->nempty--;
	}
	pthread_mutex_unlock(&s->lock);
}

bool kfs_dirset_attr(kfs_dirset *s, const void *p, size_t len, struct kfs_dir_attr *ret)
{
	pthread_mutex_lock(&s->lock);
	struct dent *e = find(s, p, len);
	bool r = e && e->has_attr;

	if (r)
		*ret = e->attr;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int kfs_dirset_set_attr(kfs_dirset *s, const void *p, size_t len, const struct kfs_dir_attr *attr)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	struct dent *e = find(s, p, len);

	if (!e)
		e = insert(s, p, len);
	if (e) {
		e->has_attr = true;
		e->attr = *attr;
	} else {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* The child segment of @dir that entry @e lies in. */
static size_t child_of(const kfs_dirset *s, const struct dent *e, size_t dir_len)
{
	const unsigned char *q = memchr(e->p + dir_len, (unsigned char)s->sep, e->len - dir_len);

	return q ? (size_t)(q - (e->p + dir_len)) : e->len - dir_len;
}

bool kfs_dirset_next_child(kfs_dirset *s, const void *dir, size_t dir_len, const void *bound,
			   size_t bound_len, void *seg, size_t *ret_len)
{
	bool found = false;

	pthread_mutex_lock(&s->lock);
	if (!s->nempty)
		goto out;
	/* Children lie from @dir on: a bound before it must not start the
	 * scan among other directories' entries. */
	size_t i = lower_bound(s, bound, bound_len), from = lower_bound(s, dir, dir_len);

	for (i = i > from ? i : from; i < s->n; i++) {
		const struct dent *e = &s->v[i];

		if (!has_prefix(e, dir, dir_len))
			break;
		if (!e->empty || e->len == dir_len)
			continue;
		size_t n = child_of(s, e, dir_len);

		/* The child's position is dir + seg + sep; it must not be
		 * before the bound (it never is for bounds readdir makes). */
		if (bytes_cmp(e->p, dir_len + n + 1, bound, bound_len) < 0)
			continue;
		memcpy(seg, e->p + dir_len, n);
		*ret_len = n;
		found = true;
		break;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return found;
}

bool kfs_dirset_each_child(kfs_dirset *s, const void *dir, size_t dir_len,
			   bool (*fn)(void *arg, const void *seg, size_t len), void *arg)
{
	bool stopped = false;

	pthread_mutex_lock(&s->lock);
	for (size_t i = lower_bound(s, dir, dir_len);
	     !stopped && i < s->n && has_prefix(&s->v[i], dir, dir_len); i++) {
		const struct dent *e = &s->v[i];

		if (e->empty && e->len > dir_len)
			stopped = fn(arg, e->p + dir_len, child_of(s, e, dir_len));
	}
	pthread_mutex_unlock(&s->lock);
	return stopped;
}

int kfs_dirset_rename(kfs_dirset *s, const void *from, size_t from_len, const void *to,
		      size_t to_len)
{
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	/* Entries under @to are replaced. */
	for (size_t i = lower_bound(s, to, to_len); i < s->n && has_prefix(&s->v[i], to, to_len);)
		erase(s, &s->v[i]);

	size_t first = lower_bound(s, from, from_len), last = first;

	while (last < s->n && has_prefix(&s->v[last], from, from_len))
		last++;
	size_t count = last - first;
	struct dent *moved = malloc((count ? count : 1) * sizeof(*moved));

	if (!moved) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(moved, &s->v[first], count * sizeof(*moved));
	memmove(&s->v[first], &s->v[last], (s->n - last) * sizeof(*s->v));
	s->n -= count;
	for (size_t i = 0; i < count; i++) {
		struct dent *m = &moved[i];
		size_t len = to_len + m->len - from_len;
		unsigned char *p = malloc(len ? len : 1);
		struct dent *e = NULL;

		if (p) {
			memcpy(p, to, to_len);
			memcpy(p + to_len, m->p + from_len, m->len - from_len);
			e = insert(s, p, len);
			free(p);
		}
		if (e) {
			e->empty = m->empty;
			e->by_alias = m->by_alias;
			e->has_attr = m->has_attr;
			e->attr = m->attr;
		} else {
			rc = -ENOMEM;
			if (m->empty)
				s->nempty--;
		}
		free(m->p);
	}
	free(moved);
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}
