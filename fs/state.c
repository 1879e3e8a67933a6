/*
 * state: the mount's shared state (struct kfs, kfs.h): making and
 * releasing it, opening the store, logging, and the lists of open
 * handles that unmount walks.  main.c drives it; every module logs
 * through it.
 */
#include "kfs.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

void kfs_log(const struct kfs *fs, int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (fs && fs->use_syslog) {
		vsyslog(priority, fmt, ap);
	} else {
		fputs("kvfs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

int kfs_dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

/*
 * Say why the store at @path could not be opened (kvc_open gave @rc),
 * naming the path and what would help.  A store that is not there is
 * told apart from a path that holds something else, so that a typo in an
 * fstab line is not taken for a new store.
 */
static void report_store_error(struct kfs *fs, const char *path, int rc)
{
	/* -o create was given on a read-only mount, or was not given. */
	const char *hint = fs->cfg.create && fs->cfg.ro ? "a read-only mount cannot create one"
							 : "use -o create to make a new one";
	struct stat st;
	int empty;

	switch (rc) {
	case -ENOENT:
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
			kfs_log(fs, LOG_ERR, "STORE %s: no such store (%s)", path, hint);
			return;
		}
		empty = kfs_dir_is_empty(path);
		if (empty < 0)
			kfs_log(fs, LOG_ERR, "STORE %s: cannot read the directory: %s", path,
				strerror(-empty));
		else if (empty)
			kfs_log(fs, LOG_ERR, "STORE %s: an empty directory, no store in it yet (%s)",
				path, hint);
		else
			kfs_log(fs, LOG_ERR, "STORE %s: not a store: a directory of other files",
				path);
		return;
	case -ENOTEMPTY:
		kfs_log(fs, LOG_ERR, "STORE %s: not a store: a directory of other files", path);
		return;
	case -ENOTDIR:
		kfs_log(fs, LOG_ERR, "STORE %s: not a store: not a directory", path);
		return;
	case -EPROTO:
		kfs_log(fs, LOG_ERR, "STORE %s: not a store, or one of a format this kvfs "
			"does not know", path);
		return;
	default:
		kfs_log(fs, LOG_ERR, "STORE %s: cannot open the store: %s", path, strerror(-rc));
	}
}

int kfs_store_open(struct kfs *fs, const char *path, bool may_create)
{
	struct kvc_open_opts o = {
		.readonly = fs->cfg.ro,
		.no_create = !may_create,
		.min_ttl_set = fs->cfg.min_ttl_set,
		.min_ttl = fs->cfg.min_ttl,
		.sync = fs->cfg.sync,
		/* Requests commit from many threads: let them share flushes. */
		.group_commit = true,
	};
	bool created = false;
	/* kvcore makes a new store only where there is nothing. */
	int rc = kvc_open(path, &o, &fs->store, &created);
	if (rc < 0) {
		report_store_error(fs, path, rc);
		return rc;
	}
	if (created)
		kfs_log(fs, LOG_NOTICE, "created store '%s'", kvc_store_path(fs->store));
	return 0;
}

void kfs_link_add(struct kfs *fs, struct kfs_link **head, struct kfs_link *l)
{
	pthread_mutex_lock(&fs->files_lock);
	l->prev = NULL;
	l->next = *head;
	if (*head)
		(*head)->prev = l;
	*head = l;
	pthread_mutex_unlock(&fs->files_lock);
}

void kfs_link_remove(struct kfs *fs, struct kfs_link **head, struct kfs_link *l)
{
	pthread_mutex_lock(&fs->files_lock);
	if (l->prev)
		l->prev->next = l->next;
	else if (*head == l)
		*head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	pthread_mutex_unlock(&fs->files_lock);
}

int kfs_state_init(struct kfs *fs)
{
	pthread_condattr_t ca;
	int rc = kfs_inodes_new(fs->root, fs->root_len, &fs->inodes);

	if (rc == 0)
		rc = kfs_dirset_new(fs->cfg.sep, &fs->dirs);
	if (rc == 0)
		rc = kfs_vcache_new(&fs->vcache);
	if (rc < 0)
		return rc;
	pthread_mutex_init(&fs->files_lock, NULL);
	pthread_rwlock_init(&fs->ns_lock, NULL);
	pthread_mutex_init(&fs->keep_lock, NULL);
	pthread_mutex_init(&fs->bg_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->bg_cond, &ca);
	pthread_condattr_destroy(&ca);
	fs->start_ns = kvc_now_ns();
	return 0;
}

void kfs_state_release(struct kfs *fs)
{
	if (fs->inodes) {
		kfs_files_release_all(fs);
		kfs_dirhs_release_all(fs);
		pthread_mutex_destroy(&fs->files_lock);
		pthread_rwlock_destroy(&fs->ns_lock);
		pthread_mutex_destroy(&fs->keep_lock);
		pthread_mutex_destroy(&fs->bg_lock);
		pthread_cond_destroy(&fs->bg_cond);
	}
	kfs_inodes_free(fs->inodes);
	kfs_dirset_free(fs->dirs);
	kfs_vcache_free(fs->vcache);
	fs->inodes = NULL;
	fs->dirs = NULL;
	fs->vcache = NULL;
}
