/*
 * main: the kvfs daemon's command line and session loop.
 *
 *   kvfs [-f] [-d] [-s] [-o opt,...] STORE MOUNTPOINT
 *
 * This file parses the command line (options may come after the two
 * positional arguments, as mount.fuse3 passes them), has the store opened
 * or created, mounts, daemonizes unless -f, starts the background threads
 * and runs the session loop (multi-threaded unless -s) until unmount or
 * SIGTERM/SIGINT; then the write buffers still open are committed and the
 * store is closed.  Nothing calls back into it: the mount's state is in
 * state.c, the filesystem in the other modules (see kfs.h).
 */
#include "kfs.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#ifndef KVFS_VERSION
#define KVFS_VERSION "unknown"
#endif

/* What fuse_opt_parse fills in; strings are allocated by it. */
struct cmdline {
	char *store;
	int nonopt;
	char *sep;
	unsigned min_ttl;
	int min_ttl_set;
	unsigned reap_interval;
	int ro;
	unsigned uid, gid, umask;
	char *prefix;
	double cache_ttl;
	int direct_io;
	char *sync;
	int fsname_given;
	int subtype_given;
};

enum {
	KEY_RO,
	KEY_FSNAME,
	KEY_SUBTYPE,
};

#define OPT(t, field, v) { t, offsetof(struct cmdline, field), v }

static const struct fuse_opt kfs_opts[] = {
	OPT("sep=%s", sep, 0),
	OPT("min_ttl=%u", min_ttl, 0),
	OPT("min_ttl=", min_ttl_set, 1),
	OPT("reap_interval=%u", reap_interval, 0),
	OPT("uid=%u", uid, 0),
	OPT("gid=%u", gid, 0),
	OPT("umask=%o", umask, 0),
	OPT("prefix=%s", prefix, 0),
	OPT("cache_ttl=%lf", cache_ttl, 0),
	OPT("sync=%s", sync, 0),
	OPT("direct_io", direct_io, 1),
	/* Seen here and passed on to the kernel mount too. */
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *c = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		/* The first is the store, the second the mountpoint, which
		 * fuse_parse_cmdline takes. */
		if (c->nonopt++ == 0) {
			c->store = strdup(arg);
			return c->store ? 0 : -1;
		}
		return 1;
	case KEY_RO:
		c->ro = 1;
		return 1;
	case KEY_FSNAME:
		c->fsname_given = 1;
		return 1;
	case KEY_SUBTYPE:
		c->subtype_given = 1;
		return 1;
	default:
		return 1;
	}
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-f] [-d] [-s] [-o opt,...] STORE MOUNTPOINT\n"
		"\n"
		"Mount the key-value store in directory STORE (created if missing) on\n"
		"MOUNTPOINT: keys are split into directories by the separator.\n"
		"\n"
		"kvfs options:\n"
		"    -o sep=C               key separator (default ':'; any printable byte but '%%')\n"
		"    -o prefix=P            mount only the keys under prefix P (a separator is\n"
		"                           appended to P when it does not end with one)\n"
		"    -o min_ttl=S           smallest ttl/expiration distance accepted (default:\n"
		"                           the store's, 60)\n"
		"    -o reap_interval=S     remove expired keys every S seconds (default 60; 0: never)\n"
		"    -o cache_ttl=S         kernel entry/attribute cache time (default 1)\n"
		"    -o sync=MODE           batch (default: a closed file is on disk within a\n"
		"                           second), always (on disk when close returns) or\n"
		"                           none (only fsync flushes); fsync always flushes\n"
		"    -o direct_io           read every value from the store, never through the\n"
		"                           page cache (slower rereads; see docs/kvfs.md)\n"
		"    -o uid=N,gid=N         owner of keys that have none (default: the mounting user)\n"
		"    -o umask=M             mode of keys that have none: 0666 & ~M, directories\n"
		"                           0777 & ~M (default 022)\n"
		"    -o ro                  read-only\n"
		"\n",
		prog);
}

/* Check and complete the configuration.  @return 0 or -EINVAL (reported) */
static int configure(struct kfs *fs, struct cmdline *c)
{
	struct kfs_config *cfg = &fs->cfg;

	cfg->store = c->store;
	cfg->sep = ':';
	if (c->sep) {
		if (strlen(c->sep) != 1 || kfs_check_sep(c->sep[0]) < 0) {
			kfs_log(fs, LOG_ERR, "invalid separator '%s': one printable byte other than '%%'",
				c->sep);
			return -EINVAL;
		}
		cfg->sep = c->sep[0];
	}
	cfg->min_ttl = c->min_ttl;
	cfg->min_ttl_set = c->min_ttl_set;
	if (cfg->min_ttl_set && cfg->min_ttl == 0) {
		kfs_log(fs, LOG_ERR, "invalid min_ttl 0: at least 1 second");
		return -EINVAL;
	}
	cfg->reap_interval = c->reap_interval;
	cfg->ro = c->ro;
	cfg->uid = c->uid;
	cfg->gid = c->gid;
	cfg->umask = c->umask & 0777;
	cfg->cache_ttl = c->cache_ttl;
	cfg->direct_io = c->direct_io;
	if (!(cfg->cache_ttl >= 0)) {
		kfs_log(fs, LOG_ERR, "invalid cache_ttl: seconds, 0 or more");
		return -EINVAL;
	}
	cfg->sync = KVC_SYNC_BATCH;
	if (c->sync) {
		if (strcmp(c->sync, "always") == 0)
			cfg->sync = KVC_SYNC_ALWAYS;
		else if (strcmp(c->sync, "batch") == 0)
			cfg->sync = KVC_SYNC_BATCH;
		else if (strcmp(c->sync, "none") == 0)
			cfg->sync = KVC_SYNC_NONE;
		else {
			kfs_log(fs, LOG_ERR, "invalid sync mode '%s': always, batch or none", c->sync);
			return -EINVAL;
		}
	}
	cfg->fsname_given = c->fsname_given;
	cfg->subtype_given = c->subtype_given;
	cfg->prefix = c->prefix;

	/* The root is the directory of prefix P: P ends with the separator. */
	size_t plen = c->prefix ? strlen(c->prefix) : 0;

	if (plen + 1 > KVC_KEY_MAX) {
		kfs_log(fs, LOG_ERR, "prefix too long: at most %u bytes", KVC_KEY_MAX - 1);
		return -EINVAL;
	}
	memcpy(fs->root, c->prefix ? c->prefix : "", plen);
	if (plen && c->prefix[plen - 1] != cfg->sep)
		fs->root[plen++] = (unsigned char)cfg->sep;
	fs->root_len = plen;
	if (plen && kvc_key_check(fs->root, plen) < 0) {
		kfs_log(fs, LOG_ERR, "invalid prefix '%s': not valid UTF-8", c->prefix);
		return -EINVAL;
	}
	return 0;
}

/* Name the mount after the store (df, mount and findmnt show it), and
 * type it fuse.kvfs so /etc/fstab and mount -t find it. */
static int add_mount_names(struct kfs *fs, struct fuse_args *args)
{
	char *opt = NULL, *fsname = NULL;
	int rc = 0;

	if (!fs->cfg.fsname_given) {
		/* Escaped: a comma in the path must not split the options. */
		if (asprintf(&fsname, "fsname=%s", kvc_store_path(fs->store)) < 0)
			return -ENOMEM;
		rc = fuse_opt_add_opt_escaped(&opt, fsname);
		free(fsname);
	}
	if (rc == 0 && !fs->cfg.subtype_given)
		rc = fuse_opt_add_opt(&opt, "subtype=kvfs");
	if (rc == 0 && opt) {
		rc = fuse_opt_add_arg(args, "-o");
		if (rc == 0)
			rc = fuse_opt_add_arg(args, opt);
	}
	free(opt);
	return rc == 0 ? 0 : -ENOMEM;
}

/*
 * Mount, daemonize, serve until unmounted or signalled.  An LMDB
 * environment belongs to the process that opened it (its locks and reader
 * slots are that process's) and fuse_daemonize forks, so the store opened
 * on the terminal (where its errors and creation were reported) is closed
 * and opened again by the daemon, by absolute path: the daemon runs in /.
 */
static int run(struct kfs *fs, struct fuse_args *args, struct fuse_cmdline_opts *co)
{
	struct fuse_session *se = fuse_session_new(args, &kfs_ops, sizeof(kfs_ops), fs);
	char *path = NULL;
	int rc = -1;

	if (!se)
		return -1; /* libfuse said why */
	fs->se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, co->mountpoint) != 0)
		goto out_signals;
	if (!co->foreground) {
		path = strdup(kvc_store_path(fs->store));
		kvc_close(fs->store);
		fs->store = NULL;
		if (!path)
			goto out_unmount;
	}
	if (fuse_daemonize(co->foreground) != 0)
		goto out_unmount;
	if (!co->foreground) {
		openlog("kvfs", LOG_PID, LOG_DAEMON);
		fs->use_syslog = true;
		if (kfs_store_open(fs, path) < 0)
			goto out_unmount;
	}
	rc = kfs_bg_start(fs);
	if (rc < 0) {
		kfs_log(fs, LOG_ERR, "cannot start background threads: %s", strerror(-rc));
		goto out_unmount;
	}
	/* Mounted, store open, threads running: requests are answered from
	 * here on.  For a Type=notify unit (run kvfs with -f there, so the
	 * notifying process is the unit's main one). */
	sd_notify(0, "READY=1");
	if (co->singlethread) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();

		if (!lc) {
			rc = -ENOMEM;
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)co->clone_fd);
		if (co->max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, co->max_idle_threads);
		fuse_loop_cfg_set_max_threads(lc, co->max_threads);
		rc = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	sd_notify(0, "STOPPING=1");
	/* A positive value is the signal that ended the loop: a clean exit. */
	if (rc > 0)
		rc = 0;
out_unmount:
	/* The watcher may be blocked in a notification on a directory that a
	 * request nobody will answer now holds: unmounting aborts those
	 * requests, then the threads can be joined. */
	kfs_bg_halt(fs);
	fuse_session_unmount(se);
	kfs_bg_stop(fs);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	/* Calls op destroy: open write buffers are committed here. */
	fuse_session_destroy(se);
	fs->se = NULL;
	free(path);
	return rc;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts co;
	struct cmdline c = {
		.reap_interval = 60,
		.uid = getuid(),
		.gid = getgid(),
		.umask = 022,
		.cache_ttl = 1.0,
	};
	struct kfs *fs = calloc(1, sizeof(*fs));
	int ret = 1;

	memset(&co, 0, sizeof(co));
	if (!fs) {
		fputs("kvfs: out of memory\n", stderr);
		return 1;
	}
	if (fuse_opt_parse(&args, &c, kfs_opts, opt_proc) != 0)
		goto out;
	if (fuse_parse_cmdline(&args, &co) != 0)
		goto out;
	if (co.show_help) {
		usage(stdout, argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out;
	}
	if (co.show_version) {
		printf("kvfs version %s\n", KVFS_VERSION);
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (!c.store || !co.mountpoint) {
		usage(stderr, argv[0]);
		goto out;
	}
	fs->cfg.mountpoint = co.mountpoint;
	if (configure(fs, &c) < 0 || kfs_store_open(fs, fs->cfg.store) < 0)
		goto out;
	if (kfs_state_init(fs) < 0 || add_mount_names(fs, &args) < 0) {
		kfs_log(fs, LOG_ERR, "out of memory");
		goto out;
	}
	ret = run(fs, &args, &co) < 0 ? 1 : 0;
	if (fs->store && fs->cfg.sync != KVC_SYNC_ALWAYS && kvc_store_sync(fs->store) < 0) {
		kfs_log(fs, LOG_ERR, "flushing the store failed");
		ret = 1;
	}
out:
	kvc_close(fs->store);
	kfs_state_release(fs);
	free(co.mountpoint);
	free(c.store);
	free(c.sep);
	free(c.prefix);
	free(c.sync);
	fuse_opt_free_args(&args);
	free(fs);
	return ret;
}
