/*
 * xattr: a key's metadata, expiration and ttl as extended attributes
 * (PRODUCT.md section 3.3):
 *   user.kv.metadata    the whole metadata, compact JSON
 *   user.kv.expiration  absolute Unix seconds
 *   user.kv.ttl         seconds, re-armed by writes and touch
 *   user.kv.key         the full key; read-only and never listed, so
 *                       rsync -X does not try to copy it
 *   user.NAME           field NAME of the metadata object
 *   user.kv.store       on the mount root only: the store's absolute path
 * Listing shows the metadata fields when the metadata is an object with
 * fields whose names all make distinct xattr names, otherwise (a JSON
 * value that is not an object, an empty object, a field named like one of
 * the reserved names) user.kv.metadata; then user.kv.expiration and
 * user.kv.ttl when set.  Expiration comes before ttl so a tool that copies
 * them in listed order sets the ttl last and keeps it.
 *
 * Every change is one kvc_write inside one write transaction, after reading
 * the record in that same transaction, so XATTR_CREATE / XATTR_REPLACE are
 * checked against what is actually replaced.  The JSON rules (validation,
 * the field encoding) are kvcore's.  A change of the metadata of a file
 * being written (cp -a, tar and editors set it on the file they have
 * open) is checked and computed at once but joins the commit of the value
 * at close (file.c): one commit, not one per attribute.  Gets and lists
 * show it meanwhile.
 */
#include "kfs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define USER "user."
#define USER_LEN 5u

enum xname {
	X_FIELD,
	X_METADATA,
	X_EXPIRATION,
	X_TTL,
	X_KEY,
	X_STORE,
};

static const char *const reserved[] = {
	[X_METADATA] = "kv.metadata",
	[X_EXPIRATION] = "kv.expiration",
	[X_TTL] = "kv.ttl",
	[X_KEY] = "kv.key",
	[X_STORE] = "kv.store",
};

/* What "user." + @name is. */
static enum xname classify(const char *name)
{
	for (size_t i = X_METADATA; i <= X_STORE; i++) {
		if (strcmp(name, reserved[i]) == 0)
			return (enum xname)i;
	}
	return X_FIELD;
}

/* Reply to a get/list with @len bytes of @data, by the size protocol:
 * size 0 asks for the length, a smaller buffer is ERANGE. */
static void reply_value(fuse_req_t req, const void *data, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

/* The attribute's value into @out (of @out_size bytes).
 * @return its length (may exceed @out_size), or -ENODATA */
static int get_value(enum xname x, const char *field, const struct kvc_record *rec,
		     const void *key, size_t key_len, char *out, size_t out_size)
{
	switch (x) {
	case X_METADATA:
		if (!rec->metadata)
			return -ENODATA;
		if (rec->metadata_len <= out_size)
			memcpy(out, rec->metadata, rec->metadata_len);
		return (int)rec->metadata_len;
	case X_EXPIRATION:
		if (!rec->expiration)
			return -ENODATA;
		return snprintf(out, out_size, "%" PRId64, rec->expiration);
	case X_TTL:
		if (!rec->ttl)
			return -ENODATA;
		return snprintf(out, out_size, "%" PRIu32, rec->ttl);
	case X_KEY:
		if (key_len <= out_size)
			memcpy(out, key, key_len);
		return (int)key_len;
	case X_STORE:
	case X_FIELD:
		break;
	}
	if (!rec->metadata)
		return -ENODATA;
	return kvc_meta_field_get(rec->metadata, rec->metadata_len, field, out, out_size);
}

/*
 * kfs_record_begin for file @ino (key @k), with the metadata its writers
 * will commit, if a change joined their commit, in @pending
 * (KVC_METADATA_MAX bytes; taken before the transaction, as a commit
 * takes them).  @return 0 with *ret_txn to end, or -errno (no
 * transaction left open)
 */
static int read_record(struct kfs *fs, fuse_ino_t ino, const struct kfs_key *k,
		       char *pending, kvc_txn **ret_txn, struct kvc_record *ret)
{
	size_t pending_len = 0;
	bool none = false;
	bool has_pending = kfs_file_pending_metadata(fs, ino, pending, &pending_len, &none);
	int rc = kfs_record_begin(fs, k->key, k->len, ret_txn, ret);

	if (rc == 0 && has_pending) {
		ret->metadata = none ? NULL : pending;
		ret->metadata_len = pending_len;
	}
	return rc;
}

void kfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key k;
	struct kvc_record rec;
	kvc_txn *txn;
	char small[4096], *out = small;
	int rc;

	if (strncmp(name, USER, USER_LEN) != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	const char *field = name + USER_LEN;
	enum xname x = classify(field);

	rc = kfs_ino(fs, ino, &k);
	if (rc == 0 && k.kind != KFS_FILE) {
		if (ino == KFS_ROOT_INO && x == X_STORE) {
			const char *path = kvc_store_path(fs->store);

			reply_value(req, path, strlen(path), size);
		} else {
			fuse_reply_err(req, ENODATA);
		}
		return;
	}
	char pending[KVC_METADATA_MAX];

	if (rc == 0)
		rc = read_record(fs, ino, &k, pending, &txn, &rec);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (x == X_STORE)
		x = X_FIELD; /* only the root has a store; elsewhere a field */
	rc = get_value(x, field, &rec, k.key, k.len, out, sizeof(small));
	if (rc > (int)sizeof(small)) {
		size_t need = (size_t)rc;

		out = malloc(need);
		rc = out ? get_value(x, field, &rec, k.key, k.len, out, need) : -ENOMEM;
	}
	kvc_txn_abort(txn);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_value(req, out, (size_t)rc, size);
	if (out != small)
		free(out);
}

/* Parse a decimal number in [0, max], allowing surrounding white space
 * (echo adds a newline).  @return 0 or -EINVAL */
static int parse_number(const char *s, size_t n, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
		i++;
	size_t start = i;

	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == start)
		return -EINVAL;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
		i++;
	if (i != n)
		return -EINVAL;
	*ret = v;
	return 0;
}

struct xattr_arg {
	const unsigned char *key;
	size_t key_len;
	enum xname x;
	const char *field;
	const char *value; /* NULL: remove */
	size_t size;
	int flags;         /* XATTR_CREATE, XATTR_REPLACE */
	uint64_t from_seq, to_seq; /* out: the record's versions before and after */
};

static bool present(enum xname x, const char *field, const struct kvc_record *rec)
{
	char probe[1];

	switch (x) {
	case X_METADATA:
		return rec->metadata != NULL;
	case X_EXPIRATION:
		return rec->expiration != 0;
	case X_TTL:
		return rec->ttl != 0;
	default:
		return rec->metadata &&
		       kvc_meta_field_get(rec->metadata, rec->metadata_len, field, probe,
					  sizeof(probe)) >= 0;
	}
}

/* Whether the change @a may be made to @rec (XATTR_CREATE, XATTR_REPLACE,
 * removing what is not there).  @return 0, -EEXIST or -ENODATA */
static int allowed(const struct xattr_arg *a, const struct kvc_record *rec)
{
	bool has = present(a->x, a->field, rec);

	if (!a->value && !has)
		return -ENODATA;
	if ((a->flags & XATTR_CREATE) && has)
		return -EEXIST;
	if ((a->flags & XATTR_REPLACE) && !has)
		return -ENODATA;
	return 0;
}

/* The metadata after change @a (of user.kv.metadata or a field) to
 * @rec, compact, into @buf (KVC_METADATA_MAX + 1 bytes).
 * @return its length, 0 for none, or -errno */
static int edit_metadata(const struct kvc_record *rec, char *buf, void *arg)
{
	const struct xattr_arg *a = arg;
	int rc = allowed(a, rec);

	if (rc < 0)
		return rc;
	if (a->x == X_METADATA)
		return a->value ? kvc_json_compact(a->value, a->size, buf, KVC_METADATA_MAX + 1) : 0;
	return kvc_meta_field_set(rec->metadata, rec->metadata_len, a->field, a->value,
				  a->value ? a->size : 0, buf, KVC_METADATA_MAX + 1);
}

static int xattr_fn(kvc_txn *txn, void *arg)
{
	struct xattr_arg *a = arg;
	struct kvc_record rec;
	struct kvc_write w = { .set = KVC_MUST_EXIST };
	char meta[KVC_METADATA_MAX + 1];
	uint64_t v;
	int rc = kvc_get(txn, a->key, a->key_len, KVC_GET_NO_VALUE, &rec);

	if (rc < 0)
		return rc;
	switch (a->x) {
	case X_EXPIRATION:
	case X_TTL: /* removing either clears it: 0 */
		rc = allowed(a, &rec);
		if (rc == 0 && a->value)
			rc = parse_number(a->value, a->size,
					  a->x == X_TTL ? UINT32_MAX : INT64_MAX, &v);
		else
			v = 0;
		if (a->x == X_TTL) {
			w.set |= KVC_SET_TTL;
			w.ttl = (uint32_t)v;
		} else {
			w.set |= KVC_SET_EXPIRATION;
			w.expiration = (int64_t)v;
		}
		break;
	default:
		rc = edit_metadata(&rec, meta, (void *)a);
		if (rc >= 0) {
			w.set |= KVC_SET_METADATA;
			w.metadata = rc ? meta : NULL;
			w.metadata_len = (size_t)rc;
			rc = 0;
		}
		break;
	}
	if (rc < 0)
		return rc;
	return kfs_write_versions(txn, a->key, a->key_len, &w, &a->from_seq, &a->to_seq);
}

/* Shared by set and remove: @value NULL removes. */
static void change(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		   size_t size, int flags)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key k;
	int rc;

	if (strncmp(name, USER, USER_LEN) != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	rc = kfs_ino(fs, ino, &k);
	if (rc == 0 && k.kind != KFS_FILE)
		rc = value ? -EPERM : -ENODATA; /* directories have no attributes */
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct xattr_arg a = {
		.key = k.key,
		.key_len = k.len,
		.x = classify(name + USER_LEN),
		.field = name + USER_LEN,
		.value = value,
		.size = size,
		.flags = flags,
	};

	if (a.x == X_KEY) {
		fuse_reply_err(req, EPERM); /* read-only */
		return;
	}
	if (a.x == X_STORE)
		a.x = X_FIELD;
	rc = 0;
	if (a.x == X_METADATA || a.x == X_FIELD)
		rc = kfs_file_defer_metadata(fs, ino, k.key, k.len, edit_metadata, &a);
	if (rc == 0)
		rc = kvc_write_txn(fs->store, xattr_fn, &a, NULL, 0);
	if (rc == 0) /* a value kept for the next writer is still this one */
		kfs_vcache_rebase(fs->vcache, ino, a.from_seq, a.to_seq);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
}

void kfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		     size_t size, int flags)
{
	change(req, ino, name, value ? value : "", size, flags);
}

void kfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	change(req, ino, name, NULL, 0, 0);
}

/* The names listed, "\0"-separated, in a growing buffer. */
struct xlist {
	char buf[8192];
	size_t len;
	bool bad;    /* a field cannot be listed as itself */
	size_t fields;
};

static void list_add(struct xlist *l, const char *name)
{
	size_t n = strlen(name) + 1;

	if (USER_LEN + n > sizeof(l->buf) - l->len) {
		l->bad = true;
		return;
	}
	memcpy(l->buf + l->len, USER, USER_LEN);
	memcpy(l->buf + l->len + USER_LEN, name, n);
	l->len += USER_LEN + n;
}

static bool listed(const struct xlist *l, const char *name)
{
	for (size_t i = 0; i < l->len; i += strlen(l->buf + i) + 1) {
		if (strcmp(l->buf + i + USER_LEN, name) == 0)
			return true;
	}
	return false;
}

static void add_field(void *arg, const char *name)
{
	struct xlist *l = arg;

	if (!*name || USER_LEN + strlen(name) > 255 || classify(name) != X_FIELD ||
	    listed(l, name)) {
		l->bad = true;
		return;
	}
	list_add(l, name);
	l->fields++;
}

void kfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct kfs *fs = kfs_from(req);
	struct kfs_key k;
	struct kvc_record rec;
	kvc_txn *txn;
	struct xlist *l = calloc(1, sizeof(*l));
	int rc = l ? kfs_ino(fs, ino, &k) : -ENOMEM;

	if (rc == 0 && k.kind != KFS_FILE) {
		free(l);
		reply_value(req, "", 0, size);
		return;
	}
	char pending[KVC_METADATA_MAX];

	if (rc == 0)
		rc = read_record(fs, ino, &k, pending, &txn, &rec);
	if (rc < 0) {
		free(l);
		fuse_reply_err(req, -rc);
		return;
	}
	if (rec.metadata) {
		if (kvc_meta_fields(rec.metadata, rec.metadata_len, add_field, l) < 0 ||
		    l->bad || l->fields == 0) {
			l->len = 0;
			list_add(l, reserved[X_METADATA]);
		}
	}
	if (rec.expiration)
		list_add(l, reserved[X_EXPIRATION]);
	if (rec.ttl)
		list_add(l, reserved[X_TTL]);
	kvc_txn_abort(txn);
	reply_value(req, l->buf, l->len, size);
	free(l);
}
