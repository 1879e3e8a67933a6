/*
 * namespaces: the namespaces kvapi serves, one store each under ROOT.
 *
 * A namespace is the directory ROOT/<id>, <id> 32 lower-case hex digits
 * (16 random bytes from libsodium), holding a kvcore store; kvfs, kvctl and
 * kvsync may use the same store at the same time.  A store made there by
 * another tool is a namespace too, titled with its id until retitled.
 *
 * Titles live in ROOT/namespaces.json, {"<id>":"<title>",...}, rewritten
 * whole on every change: a temporary file, fsync, rename over the old one,
 * fsync of ROOT.  A crash leaves the old file or the new one, never a
 * torn one.  A crash between creating a store and writing its title
 * leaves a namespace titled with its id; a crash while deleting, a
 * namespace without a title entry or a stale entry without a directory,
 * which listings ignore; a directory renamed away by a delete is removed
 * at the next start.  One kvapi serves a ROOT at a time.
 *
 * Stores are opened on first use and kept open, shared by every request;
 * a request holds its namespace (ka_ns_get/ka_ns_put) so that a delete
 * arriving meanwhile removes the directory only after the last request
 * using it ends.  One mutex guards the table and the titles; it is held
 * while a store is opened or the titles file written, never while a
 * request uses a store.
 */
#include "kvapi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TITLES_FILE "namespaces.json"

struct ka_ns {
	char id[KA_ID_LEN + 1];
	kvc_store *store;
	unsigned refs;     /* the table's (while listed) + each request's */
	bool deleted;      /* remove the directory when refs drop to 0 */
	struct ka_ns *next;
};

struct ka_registry {
	char *root;
	pthread_mutex_t lock;
	struct ka_ns *open; /* protected by lock */
	json_t *titles;     /* protected by lock; object id -> title */
};

kvc_store *ka_ns_store(const struct ka_ns *ns)
{
	return ns->store;
}

static char *ns_path(const struct ka_registry *reg, const char *id)
{
	char *p;
	if (asprintf(&p, "%s/%s", reg->root, id) < 0)
		return NULL;
	return p;
}

/* Whether ROOT/@id is a directory: the namespace exists. */
static bool ns_exists(const struct ka_registry *reg, const char *id)
{
	char *p = ns_path(reg, id);
	struct stat st;
	bool ok = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return ok;
}

static int write_titles(struct ka_registry *reg)
{
	char *tmp, *dst;
	if (asprintf(&tmp, "%s/.%s.tmp", reg->root, TITLES_FILE) < 0)
		return -ENOMEM;
	if (asprintf(&dst, "%s/%s", reg->root, TITLES_FILE) < 0) {
		free(tmp);
		return -ENOMEM;
	}
	int rc = 0;
	char *text = json_dumps(reg->titles, JSON_COMPACT | JSON_SORT_KEYS);
	int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, dst))
		rc = -errno;
	if (rc) {
		unlink(tmp);
	} else {
		int dfd = open(reg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			if (fsync(dfd))
				rc = -errno;
			close(dfd);
		}
	}
out:
	free(text);
	free(tmp);
	free(dst);
	return rc;
}

static int remove_store_dir(struct ka_registry *reg, const char *name);

/* Finish the deletes a crash or a stop interrupted: .deleted-<id> dirs. */
static void remove_leftovers(struct ka_registry *reg)
{
	DIR *d = opendir(reg->root);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, ".deleted-", 9) && ka_is_hex_id(e->d_name + 9, strlen(e->d_name + 9)))
			remove_store_dir(reg, e->d_name);
	closedir(d);
}

int ka_registry_open(const char *root, struct ka_registry **ret)
{
	struct stat st;
	if (stat(root, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (access(root, W_OK | X_OK))
		return -errno;
	struct ka_registry *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	reg->root = realpath(root, NULL);
	if (!reg->root) {
		int rc = -errno;
		free(reg);
		return rc;
	}
	pthread_mutex_init(&reg->lock, NULL);
	char *path;
	if (asprintf(&path, "%s/%s", reg->root, TITLES_FILE) < 0) {
		ka_registry_close(reg);
		return -ENOMEM;
	}
	json_error_t jerr;
	reg->titles = json_load_file(path, 0, &jerr);
	int missing = !reg->titles && access(path, F_OK) && errno == ENOENT;
	free(path);
	if (!reg->titles && missing)
		reg->titles = json_object();
	if (!reg->titles || !json_is_object(reg->titles)) {
		ka_registry_close(reg);
		return -EBADMSG;
	}
	remove_leftovers(reg);
	*ret = reg;
	return 0;
}

void ka_registry_close(struct ka_registry *reg)
{
	if (!reg)
		return;
	for (struct ka_ns *ns = reg->open, *next; ns; ns = next) {
		next = ns->next;
		kvc_close(ns->store);
		free(ns);
	}
	json_decref(reg->titles);
	pthread_mutex_destroy(&reg->lock);
	free(reg->root);
	free(reg);
}

int ka_ns_get(struct ka_registry *reg, const char *id, struct ka_ns **ret)
{
	int rc = 0;
	pthread_mutex_lock(&reg->lock);
	struct ka_ns *ns;
	for (ns = reg->open; ns; ns = ns->next)
		if (!strcmp(ns->id, id))
			break;
	if (ns && !ns_exists(reg, id)) {
		rc = -ENOENT; /* removed by another tool */
		goto out;
	}
	if (!ns) {
		char *path = ns_path(reg, id);
		if (!path || !ns_exists(reg, id)) {
			rc = path ? -ENOENT : -ENOMEM;
			free(path);
			goto out;
		}
		ns = calloc(1, sizeof(*ns));
		struct kvc_open_opts o = {.no_create = true, .group_commit = true};
		rc = ns ? kvc_open(path, &o, &ns->store, NULL) : -ENOMEM;
		free(path);
		if (rc) {
			free(ns);
			goto out;
		}
		memcpy(ns->id, id, KA_ID_LEN + 1);
		ns->refs = 1;
		ns->next = reg->open;
		reg->open = ns;
	}
	ns->refs++;
	*ret = ns;
out:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -errno : 0;
}

/* Remove directory ROOT/@name and everything in it. */
static int remove_store_dir(struct ka_registry *reg, const char *name)
{
	char *path = ns_path(reg, name);
	if (!path)
		return -ENOMEM;
	int rc = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(path);
	return rc > 0 ? -EIO : rc;
}

/* Drop one reference; the last one of a deleted namespace closes it. */
static void ns_unref(struct ka_registry *reg, struct ka_ns *ns)
{
	if (--ns->refs)
		return;
	kvc_close(ns->store);
	if (ns->deleted) {
		char name[KA_ID_LEN + 16];
		snprintf(name, sizeof(name), ".deleted-%s", ns->id);
		remove_store_dir(reg, name);
	}
	free(ns);
}

void ka_ns_put(struct ka_registry *reg, struct ka_ns *ns)
{
	if (!ns)
		return;
	pthread_mutex_lock(&reg->lock);
	ns_unref(reg, ns);
	pthread_mutex_unlock(&reg->lock);
}

static const char *title_of(const struct ka_registry *reg, const char *id)
{
	const char *t = json_string_value(json_object_get(reg->titles, id));
	return t ? t : id;
}

static int cmp_info_title(const void *a, const void *b)
{
	const struct ka_ns_info *x = a, *y = b;
	int c = strcmp(x->title, y->title);
	return c ? c : strcmp(x->id, y->id);
}

static int cmp_info_id(const void *a, const void *b)
{
	return strcmp(((const struct ka_ns_info *)a)->id, ((const struct ka_ns_info *)b)->id);
}

void ka_ns_infos_free(struct ka_ns_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].title);
	free(v);
}

/* Every namespace, unsorted.  Called with the lock. */
static int scan_locked(struct ka_registry *reg, struct ka_ns_info **ret, size_t *ret_n)
{
	DIR *d = opendir(reg->root);
	if (!d)
		return -errno;
	struct ka_ns_info *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!ka_is_hex_id(e->d_name, strlen(e->d_name)) || !ns_exists(reg, e->d_name))
			continue;
		struct ka_ns_info *nv = kt_array_grow(v, sizeof(*v), n + 1, &cap, 16);
		if (!nv) {
			rc = -ENOMEM;
			break;
		}
		v = nv;
		memcpy(v[n].id, e->d_name, KA_ID_LEN + 1);
		v[n].title = strdup(title_of(reg, e->d_name));
		if (!v[n].title) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc) {
		ka_ns_infos_free(v, n);
		return rc;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int ka_ns_list(struct ka_registry *reg, bool by_id, struct ka_ns_info **ret, size_t *ret_n)
{
	pthread_mutex_lock(&reg->lock);
	int rc = scan_locked(reg, ret, ret_n);
	pthread_mutex_unlock(&reg->lock);
	if (!rc && *ret_n)
		qsort(*ret, *ret_n, sizeof(**ret), by_id ? cmp_info_id : cmp_info_title);
	return rc;
}

/* Whether a namespace other than @except has @title.  Called with the lock. */
static int title_taken(struct ka_registry *reg, const char *title, const char *except)
{
	struct ka_ns_info *v;
	size_t n;
	int rc = scan_locked(reg, &v, &n);
	if (rc)
		return rc;
	int taken = 0;
	for (size_t i = 0; i < n && !taken; i++)
		taken = !strcmp(v[i].title, title) && (!except || strcmp(v[i].id, except));
	ka_ns_infos_free(v, n);
	return taken;
}

int ka_ns_create(struct ka_registry *reg, const char *title, struct ka_ns_info *ret)
{
	pthread_mutex_lock(&reg->lock);
	int rc = title_taken(reg, title, NULL);
	if (rc) {
		rc = rc > 0 ? -EEXIST : rc;
		goto out;
	}
	char id[KA_ID_LEN + 1];
	unsigned char raw[KA_ID_LEN / 2];
	do {
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(id, sizeof(id), raw, sizeof(raw));
	} while (ns_exists(reg, id));
	char *path = ns_path(reg, id);
	if (!path) {
		rc = -ENOMEM;
		goto out;
	}
	kvc_store *s;
	rc = kvc_open(path, NULL, &s, NULL);
	free(path);
	if (rc)
		goto out;
	kvc_close(s);
	char *copy = strdup(title);
	if (!copy || json_object_set_new(reg->titles, id, json_string(title))) {
		free(copy);
		rc = -ENOMEM;
	} else {
		rc = write_titles(reg);
	}
	if (rc) {
		json_object_del(reg->titles, id);
		remove_store_dir(reg, id);
		free(copy);
		goto out;
	}
	memcpy(ret->id, id, sizeof(id));
	ret->title = copy;
out:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int ka_ns_rename(struct ka_registry *reg, const char *id, const char *title)
{
	pthread_mutex_lock(&reg->lock);
	int rc = ns_exists(reg, id) ? title_taken(reg, title, id) : -ENOENT;
	if (rc) {
		rc = rc > 0 ? -EEXIST : rc;
		goto out;
	}
	json_t *old = json_incref(json_object_get(reg->titles, id));
	if (json_object_set_new(reg->titles, id, json_string(title))) {
		json_decref(old);
		rc = -ENOMEM;
		goto out;
	}
	rc = write_titles(reg);
	if (rc) { /* keep what the file still says */
		if (old)
			json_object_set(reg->titles, id, old);
		else
			json_object_del(reg->titles, id);
	}
	json_decref(old);
out:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int ka_ns_title(struct ka_registry *reg, const char *id, char **ret)
{
	pthread_mutex_lock(&reg->lock);
	int rc = 0;
	if (!ns_exists(reg, id))
		rc = -ENOENT;
	else if (!(*ret = strdup(title_of(reg, id))))
		rc = -ENOMEM;
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int ka_ns_delete(struct ka_registry *reg, const char *id)
{
	pthread_mutex_lock(&reg->lock);
	int rc = 0;
	if (!ns_exists(reg, id)) {
		rc = -ENOENT;
		goto out;
	}
	if (json_object_get(reg->titles, id)) {
		json_t *old = json_incref(json_object_get(reg->titles, id));
		json_object_del(reg->titles, id);
		rc = write_titles(reg);
		if (rc) {
			json_object_set(reg->titles, id, old);
			json_decref(old);
			goto out;
		}
		json_decref(old);
	}
	/* Out of ROOT's namespaces at once, even while requests still use
	 * its store; the directory goes when the last of them ends. */
	char name[KA_ID_LEN + 16], *from = ns_path(reg, id), *to;
	snprintf(name, sizeof(name), ".deleted-%s", id);
	to = ns_path(reg, name);
	if (!from || !to || rename(from, to)) {
		rc = from && to ? -errno : -ENOMEM;
		free(from);
		free(to);
		goto out;
	}
	free(from);
	free(to);
	struct ka_ns **pp = &reg->open;
	while (*pp && strcmp((*pp)->id, id))
		pp = &(*pp)->next;
	if (*pp) {
		struct ka_ns *ns = *pp;
		*pp = ns->next;
		ns->deleted = true;
		ns_unref(reg, ns); /* the table's reference */
	} else {
		rc = remove_store_dir(reg, name);
	}
out:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}
