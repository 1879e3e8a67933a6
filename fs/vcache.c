/*
 * vcache: a small bounded set of committed values kept for the next
 * writer of the same version (see vcache.h).  A linear array: it holds at
 * most KFS_VCACHE_ENTRIES, and each lookup is one scan of it.
 */
#include "vcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct vc_entry {
	struct kfs_vversion v;
	void *buf;           /* NULL: a free slot */
	size_t len, cap;
	uint64_t stamp;      /* when it was kept: the smallest goes first */
};

struct kfs_vcache {
	pthread_mutex_t lock; /* protects everything below */
	struct vc_entry e[KFS_VCACHE_ENTRIES];
	size_t bytes;         /* sum of cap over the entries */
	uint64_t clock;
};

int kfs_vcache_new(kfs_vcache **ret)
{
	kfs_vcache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

void kfs_vcache_free(kfs_vcache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < KFS_VCACHE_ENTRIES; i++)
		free(c->e[i].buf);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Empty slot @e; its buffer is returned for the caller to free outside
 * the lock.  The cache is locked. */
static void *vc_clear(kfs_vcache *c, struct vc_entry *e)
{
	void *buf = e->buf;

	c->bytes -= e->cap;
	e->buf = NULL;
	e->cap = e->len = 0;
	return buf;
}

static struct vc_entry *vc_find(kfs_vcache *c, uint64_t ino)
{
	for (unsigned i = 0; i < KFS_VCACHE_ENTRIES; i++) {
		if (c->e[i].buf && c->e[i].v.ino == ino)
			return &c->e[i];
	}
	return NULL;
}

/* The oldest entry holding a buffer (NULL if none); with @free_ok, a
 * free slot first if there is one. */
static struct vc_entry *vc_victim(kfs_vcache *c, bool free_ok)
{
	struct vc_entry *best = NULL;

	for (unsigned i = 0; i < KFS_VCACHE_ENTRIES; i++) {
		if (!c->e[i].buf) {
			if (free_ok)
				return &c->e[i];
		} else if (!best || c->e[i].stamp < best->stamp) {
			best = &c->e[i];
		}
	}
	return best;
}

void kfs_vcache_keep(kfs_vcache *c, const struct kfs_vversion *v, void *buf, size_t len,
		     size_t cap)
{
	void *drop[KFS_VCACHE_ENTRIES + 1];
	unsigned ndrop = 0;

	if (len < KFS_VCACHE_MIN || cap > KFS_VCACHE_BYTES) {
		free(buf);
		return;
	}
	pthread_mutex_lock(&c->lock);
	struct vc_entry *e = vc_find(c, v->ino);

	if (e)
		drop[ndrop++] = vc_clear(c, e);
	while (c->bytes + cap > KFS_VCACHE_BYTES && (e = vc_victim(c, false)))
		drop[ndrop++] = vc_clear(c, e);
	e = vc_victim(c, true);
	if (e->buf)
		drop[ndrop++] = vc_clear(c, e);
	*e = (struct vc_entry){ .v = *v, .buf = buf, .len = len, .cap = cap,
				.stamp = ++c->clock };
	c->bytes += cap;
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < ndrop; i++)
		free(drop[i]);
}

void *kfs_vcache_take(kfs_vcache *c, const struct kfs_vversion *v, size_t *ret_len,
		      size_t *ret_cap)
{
	void *buf = NULL, *stale = NULL;

	pthread_mutex_lock(&c->lock);
	struct vc_entry *e = vc_find(c, v->ino);

	if (e && e->v.seq == v->seq && e->v.store_ino == v->store_ino) {
		*ret_len = e->len;
		*ret_cap = e->cap;
		buf = vc_clear(c, e);
	} else if (e) {
		stale = vc_clear(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	free(stale);
	return buf;
}

void kfs_vcache_rebase(kfs_vcache *c, uint64_t ino, uint64_t from_seq, uint64_t to_seq)
{
	pthread_mutex_lock(&c->lock);
	struct vc_entry *e = vc_find(c, ino);

	if (e && e->v.seq == from_seq)
		e->v.seq = to_seq;
	pthread_mutex_unlock(&c->lock);
}

void kfs_vcache_drop(kfs_vcache *c, uint64_t ino)
{
	void *buf = NULL;

	pthread_mutex_lock(&c->lock);
	struct vc_entry *e = vc_find(c, ino);

	if (e)
		buf = vc_clear(c, e);
	pthread_mutex_unlock(&c->lock);
	free(buf);
}
