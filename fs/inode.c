/*
 * inode: the table that maps the kernel's inode numbers to keys and
 * directory prefixes and counts the kernel's lookup references, so an
 * inode lives exactly as long as the kernel remembers it (see inode.h).
 * Two chained hash tables index the same nodes, one by (kind, key), one by
 * number; both grow by doubling so lookups stay O(1) however many inodes the
 * kernel caches.
 */
#include "inode.h"

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

struct kfs_inode {
	uint64_t ino;
	enum kfs_kind kind;
	uint64_t nlookup;
	uint64_t cached_seq;    /* value version last handed to the page cache */
	uint64_t attr_seq;      /* value version of the last attributes replied */
	unsigned writers;       /* open handles that may write */
	unsigned direct_writers; /* of them, those not using the page cache */
	unsigned cache_users;   /* open handles reading version cached_seq */
	unsigned direct_readers; /* open read-only handles not using it */
	void *wbuf;             /* the pending value shared by the writers */
	unsigned wbuf_refs;
	bool has_pending;       /* pending describes wbuf */
	struct kfs_pending pending;
	bool keyed;             /* in the key index (false once detached) */
	bool unlinked;
	struct stat gone;       /* unlinked: the attributes it had */
	struct kfs_inode *key_next, *ino_next;
	size_t key_len;
	unsigned char *key;
};

struct kfs_inodes {
	pthread_mutex_t lock; /* protects everything below and every node */
	struct kfs_inode **by_key;
	struct kfs_inode **by_ino;
	size_t nbuckets;      /* both indexes; a power of two */
	size_t count;
	uint64_t next_ino;
	struct kfs_inode *root;
};

static uint64_t key_hash(enum kfs_kind kind, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)kind;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

static uint64_t ino_hash(uint64_t ino)
{
	return (ino * 0x9e3779b97f4a7c15ull) >> 17;
}

static struct kfs_inode **key_slot(kfs_inodes *t, enum kfs_kind kind, const void *key,
				   size_t len)
{
	return &t->by_key[key_hash(kind, key, len) & (t->nbuckets - 1)];
}

static struct kfs_inode **ino_slot(kfs_inodes *t, uint64_t ino)
{
	return &t->by_ino[ino_hash(ino) & (t->nbuckets - 1)];
}

static void key_link(kfs_inodes *t, struct kfs_inode *n)
{
	struct kfs_inode **slot = key_slot(t, n->kind, n->key, n->key_len);

	n->key_next = *slot;
	*slot = n;
	n->keyed = true;
}

static void key_unlink(kfs_inodes *t, struct kfs_inode *n)
{
	if (!n->keyed)
		return;
	for (struct kfs_inode **p = key_slot(t, n->kind, n->key, n->key_len); *p;
	     p = &(*p)->key_next) {
		if (*p == n) {
			*p = n->key_next;
			break;
		}
	}
	n->keyed = false;
}

static void ino_link(kfs_inodes *t, struct kfs_inode *n)
{
	struct kfs_inode **slot = ino_slot(t, n->ino);

	n->ino_next = *slot;
	*slot = n;
}

static void ino_unlink(kfs_inodes *t, struct kfs_inode *n)
{
	for (struct kfs_inode **p = ino_slot(t, n->ino); *p; p = &(*p)->ino_next) {
		if (*p == n) {
			*p = n->ino_next;
			return;
		}
	}
}

static struct kfs_inode *find_key(kfs_inodes *t, enum kfs_kind kind, const void *key,
				  size_t len)
{
	for (struct kfs_inode *n = *key_slot(t, kind, key, len); n; n = n->key_next) {
		if (n->kind == kind && n->key_len == len && memcmp(n->key, key, len) == 0)
			return n;
	}
	return NULL;
}

static struct kfs_inode *find_ino(kfs_inodes *t, uint64_t ino)
{
	for (struct kfs_inode *n = *ino_slot(t, ino); n; n = n->ino_next) {
		if (n->ino == ino)
			return n;
	}
	return NULL;
}

/* Double both indexes.  On allocation failure the table keeps working,
 * only with longer chains. */
static void grow(kfs_inodes *t)
{
	size_t n = t->nbuckets * 2;
	struct kfs_inode **bk = calloc(n, sizeof(*bk));
	struct kfs_inode **bi = calloc(n, sizeof(*bi));

	if (!bk || !bi) {
		free(bk);
		free(bi);
		return;
	}
	struct kfs_inode **ok = t->by_key, **oi = t->by_ino;
	size_t on = t->nbuckets;

	t->by_key = bk;
	t->by_ino = bi;
	t->nbuckets = n;
	for (size_t i = 0; i < on; i++) {
		for (struct kfs_inode *x = ok[i], *next; x; x = next) {
			next = x->key_next;
			key_link(t, x);
		}
		for (struct kfs_inode *x = oi[i], *next; x; x = next) {
			next = x->ino_next;
			ino_link(t, x);
		}
	}
	free(ok);
	free(oi);
}

static struct kfs_inode *node_new(enum kfs_kind kind, const void *key, size_t len)
{
	struct kfs_inode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->key = malloc(len ? len : 1);
	if (!n->key) {
		free(n);
		return NULL;
	}
	memcpy(n->key, key, len);
	n->key_len = len;
	n->kind = kind;
	return n;
}

static void node_free(struct kfs_inode *n)
{
	if (n) {
		free(n->key);
		free(n);
	}
}

int kfs_inodes_new(const void *root_key, size_t root_len, kfs_inodes **ret)
{
	kfs_inodes *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->nbuckets = 256;
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->root = node_new(KFS_DIR, root_key, root_len);
	if (!t->by_key || !t->by_ino || !t->root) {
		kfs_inodes_free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->root->ino = KFS_ROOT_INO;
	t->root->nlookup = 1;
	key_link(t, t->root);
	ino_link(t, t->root);
	t->count = 1;
	t->next_ino = KFS_ROOT_INO + 1;
	*ret = t;
	return 0;
}

void kfs_inodes_free(kfs_inodes *t)
{
	if (!t)
		return;
	if (t->by_ino) {
		for (size_t i = 0; i < t->nbuckets; i++) {
			for (struct kfs_inode *n = t->by_ino[i], *next; n; n = next) {
				next = n->ino_next;
				node_free(n);
			}
		}
	} else {
		node_free(t->root);
	}
	free(t->by_key);
	free(t->by_ino);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* The inode of (@kind, @key), made with a new number if there is none.
 * @return it, or NULL when out of memory.  The table is locked. */
static struct kfs_inode *node_find_or_add(kfs_inodes *t, enum kfs_kind kind, const void *key,
					  size_t key_len)
{
	struct kfs_inode *n = find_key(t, kind, key, key_len);

	if (n)
		return n;
	n = node_new(kind, key, key_len);
	if (!n)
		return NULL;
	n->ino = t->next_ino++;
	if (t->count >= t->nbuckets)
		grow(t);
	key_link(t, n);
	ino_link(t, n);
	t->count++;
	return n;
}

/* Take @n out of the table and free it.  The table is locked. */
static void node_drop(kfs_inodes *t, struct kfs_inode *n)
{
	key_unlink(t, n);
	ino_unlink(t, n);
	t->count--;
	node_free(n);
}

/*
 * Free file inode @n once nothing needs it: the kernel forgot it and no
 * writer shares its pending value.  A directory keeps its number for the
 * mount's life: it has no record to keep one in.  The table is locked.
 */
static bool drop_if_unused(kfs_inodes *t, struct kfs_inode *n)
{
	if (n->nlookup != 0 || n->kind != KFS_FILE || n->wbuf)
		return false;
	node_drop(t, n);
	return true;
}

int kfs_inode_ref(kfs_inodes *t, enum kfs_kind kind, const void *key, size_t key_len,
		  uint64_t *ret_ino)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = node_find_or_add(t, kind, key, key_len);

	if (!n) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	n->nlookup++;
	*ret_ino = n->ino;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

size_t kfs_inodes_count(kfs_inodes *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = t->count;

	pthread_mutex_unlock(&t->lock);
	return n;
}

bool kfs_inode_forget(kfs_inodes *t, uint64_t ino, uint64_t nlookup)
{
	bool freed = false;

	if (ino == KFS_ROOT_INO)
		return false;
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);

	if (n) {
		n->nlookup = nlookup < n->nlookup ? n->nlookup - nlookup : 0;
		freed = drop_if_unused(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	return freed;
}

int kfs_inode_get(kfs_inodes *t, uint64_t ino, enum kfs_kind *ret_kind, void *key,
		  size_t *ret_len)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);

	if (!n) {
		pthread_mutex_unlock(&t->lock);
		return -ESTALE;
	}
	*ret_kind = n->kind;
	memcpy(key, n->key, n->key_len);
	*ret_len = n->key_len;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

uint64_t kfs_inode_find(kfs_inodes *t, enum kfs_kind kind, const void *key, size_t key_len)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_key(t, kind, key, key_len);
	uint64_t ino = n ? n->ino : 0;

	pthread_mutex_unlock(&t->lock);
	return ino;
}

/* Give @n a new key; the caller has unlinked it from the key index. */
static int set_key(struct kfs_inode *n, const void *key, size_t len)
{
	unsigned char *k = malloc(len ? len : 1);

	if (!k)
		return -ENOMEM;
	memcpy(k, key, len);
	free(n->key);
	n->key = k;
	n->key_len = len;
	return 0;
}

/* Detach whatever inode holds (@kind, @key) so @n can take that key;
 * a file keeps @gone (if given) as its attributes. */
static void evict(kfs_inodes *t, enum kfs_kind kind, const void *key, size_t len,
		  const struct stat *gone)
{
	struct kfs_inode *old = find_key(t, kind, key, len);

	if (!old)
		return;
	key_unlink(t, old);
	if (kind == KFS_FILE) {
		old->unlinked = true;
		if (gone)
			old->gone = *gone;
		old->gone.st_nlink = 0;
		drop_if_unused(t, old);
	}
}

void kfs_inode_rename_file(kfs_inodes *t, const void *from, size_t from_len, const void *to,
			   size_t to_len, const struct stat *replaced)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_key(t, KFS_FILE, from, from_len);

	evict(t, KFS_FILE, to, to_len, replaced);
	if (n) {
		key_unlink(t, n);
		/* Out of memory leaves the inode detached: stale, not wrong. */
		if (set_key(n, to, to_len) == 0)
			key_link(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

void kfs_inode_rename_prefix(kfs_inodes *t, const void *from, size_t from_len,
			     const void *to, size_t to_len)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *moved = NULL;

	/* Collect first: re-linking while walking the index would revisit. */
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct kfs_inode **p = &t->by_key[i]; *p;) {
			struct kfs_inode *n = *p;

			if (n != t->root && n->key_len >= from_len &&
			    memcmp(n->key, from, from_len) == 0) {
				*p = n->key_next;
				n->keyed = false;
				n->key_next = moved;
				moved = n;
			} else {
				p = &n->key_next;
			}
		}
	}
	while (moved) {
		struct kfs_inode *n = moved;
		size_t len = to_len + n->key_len - from_len;
		unsigned char *k = malloc(len ? len : 1);

		moved = n->key_next;
		if (!k || len > KVC_KEY_MAX) {
			free(k);
			continue; /* stays detached */
		}
		memcpy(k, to, to_len);
		memcpy(k + to_len, n->key + from_len, n->key_len - from_len);
		evict(t, n->kind, k, len, NULL);
		free(n->key);
		n->key = k;
		n->key_len = len;
		key_link(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

void kfs_inode_unlinked(kfs_inodes *t, const void *key, size_t key_len, const struct stat *gone)
{
	pthread_mutex_lock(&t->lock);
	evict(t, KFS_FILE, key, key_len, gone);
	pthread_mutex_unlock(&t->lock);
}

bool kfs_inode_gone(kfs_inodes *t, uint64_t ino, struct stat *ret)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	bool r = n && n->unlinked;

	if (r)
		*ret = n->gone;
	pthread_mutex_unlock(&t->lock);
	return r;
}

bool kfs_inode_set_gone_attr(kfs_inodes *t, uint64_t ino, const struct stat *st)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	bool r = n && n->unlinked;

	if (r) {
		n->gone = *st;
		n->gone.st_nlink = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

bool kfs_inode_cache_open(kfs_inodes *t, uint64_t ino, uint64_t seq, bool *ret_keep)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	bool cached = n && n->writers == 0 && n->attr_seq == seq &&
		      (n->cache_users == 0 || n->cached_seq == seq);

	*ret_keep = cached && n->cached_seq == seq;
	if (cached) {
		n->cached_seq = seq;
		n->cache_users++;
	}
	pthread_mutex_unlock(&t->lock);
	return cached;
}

void kfs_inode_cache_close(kfs_inodes *t, uint64_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);

	if (n && n->cache_users)
		n->cache_users--;
	pthread_mutex_unlock(&t->lock);
}

void kfs_inode_direct_reader(kfs_inodes *t, uint64_t ino, bool open)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);

	if (n && open)
		n->direct_readers++;
	else if (n && n->direct_readers)
		n->direct_readers--;
	pthread_mutex_unlock(&t->lock);
}

bool kfs_inode_has_direct_reader(kfs_inodes *t, uint64_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	bool r = n && n->direct_readers > 0;

	pthread_mutex_unlock(&t->lock);
	return r;
}

void kfs_inode_attr_sent(kfs_inodes *t, uint64_t ino, uint64_t seq)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);

	if (n)
		n->attr_seq = seq;
	pthread_mutex_unlock(&t->lock);
}

bool kfs_inode_writer_open(kfs_inodes *t, uint64_t ino, bool may_cache)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	bool cached = false;

	if (n) {
		cached = may_cache && n->cache_users == 0 && n->direct_writers == 0;
		n->writers++;
		if (!cached)
			n->direct_writers++;
		/* The writer's pages are not of any committed version. */
		n->cached_seq = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return cached;
}

void kfs_inode_writer_close(kfs_inodes *t, uint64_t ino, bool cached)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);

	if (n) {
		n->writers--;
		if (!cached)
			n->direct_writers--;
	}
	pthread_mutex_unlock(&t->lock);
}

void *kfs_inode_wbuf_attach(kfs_inodes *t, uint64_t ino, void *wbuf)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	void *r = NULL;

	if (n && n->wbuf) {
		n->wbuf_refs++;
		r = n->wbuf;
	} else if (n && wbuf) {
		n->wbuf = r = wbuf;
		n->wbuf_refs = 1;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

bool kfs_inode_wbuf_detach(kfs_inodes *t, uint64_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	bool last = false;

	if (n && n->wbuf && --n->wbuf_refs == 0) {
		n->wbuf = NULL;
		n->has_pending = false;
		last = true;
		drop_if_unused(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	return last;
}

void kfs_inode_set_pending(kfs_inodes *t, uint64_t ino, const struct kfs_pending *p)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);

	if (n) {
		n->has_pending = true;
		n->pending = *p;
	}
	pthread_mutex_unlock(&t->lock);
}

bool kfs_inode_pending(kfs_inodes *t, uint64_t ino, struct kfs_pending *ret)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = find_ino(t, ino);
	bool r = n && n->has_pending;

	if (r)
		*ret = n->pending;
	pthread_mutex_unlock(&t->lock);
	return r;
}

uint64_t kfs_inode_dir_number(kfs_inodes *t, enum kfs_kind kind, const void *key, size_t key_len)
{
	pthread_mutex_lock(&t->lock);
	struct kfs_inode *n = node_find_or_add(t, kind, key, key_len);
	uint64_t ino = n ? n->ino : 0;

	pthread_mutex_unlock(&t->lock);
	return ino;
}
