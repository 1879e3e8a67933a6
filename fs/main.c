/*
 * main: the kvfs daemon's command line and session loop.
 *
 *   kvfs [-f] [-d] [-s] [-o opt,...] STORE MOUNTPOINT
 *
 * This file parses the command line (options may come after the two
 * positional arguments, as mount.fuse3 passes them; a usage error is exit
 * status 2), checks the mountpoint (a directory, empty unless -o
 * nonempty), has the store opened (created only with -o create),
 * mounts, daemonizes unless -f, starts the background threads and runs
 * the session loop (multi-threaded unless -s) until unmount or
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

/* The exit status: the usage errors apart, as kvctl and kvsync do. */
enum {
	KFS_EXIT_OK = 0,
	KFS_EXIT_FAIL = 1,  /* the store or the mountpoint refused, mounting failed */
	KFS_EXIT_USAGE = 2, /* a wrong command line: nothing was looked at */
};

/* What fuse_opt_parse fills in; strings are allocated by it.  Numbers
 * are kept as given and parsed in configure(), strictly: fuse_opt's
 * sscanf would take "-1" for a large number and "12abc" for 12. */
struct cmdline {
	char *store;
	char *mountpoint;
	int nonopt;
	int bad_nonopt;         /* a third positional argument was given */
	char *sep;
	char *min_ttl;
	char *reap_interval;
	int ro;
	int create, nonempty;
	char *uid, *gid, *umask;
	char *prefix;
	char *cache_ttl;
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
	OPT("min_ttl=%s", min_ttl, 0),
	OPT("reap_interval=%s", reap_interval, 0),
	OPT("uid=%s", uid, 0),
	OPT("gid=%s", gid, 0),
	OPT("umask=%s", umask, 0),
	OPT("prefix=%s", prefix, 0),
	OPT("cache_ttl=%s", cache_ttl, 0),
	OPT("sync=%s", sync, 0),
	OPT("direct_io", direct_io, 1),
	/* kvfs's own, never passed on: libfuse 3 dropped "nonempty" (it
	 * would refuse it), and fuse(8) has no "create". */
	OPT("create", create, 1),
	OPT("nonempty", nonempty, 1),
	/* Seen here and passed on to the kernel mount too. */
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *c = data;
	char **slot;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		/* STORE, then MOUNTPOINT: both taken here, so that libfuse
		 * does not resolve the mountpoint and answer for it. */
		if (c->nonopt >= 2) {
			c->bad_nonopt = 1;
			return 0;
		}
		slot = c->nonopt++ == 0 ? &c->store : &c->mountpoint;
		*slot = strdup(arg);
		return *slot ? 0 : -1;
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

static void usage(FILE *out)
{
	fputs("usage: kvfs [-f] [-d] [-s] [-o opt,...] STORE MOUNTPOINT\n"
	      "\n"
	      "Mount the key-value store in directory STORE on the directory MOUNTPOINT:\n"
	      "keys are split into directories by the separator.  A missing STORE is\n"
	      "refused unless -o create, a MOUNTPOINT that holds files unless -o nonempty.\n"
	      "\n"
	      "kvfs options:\n"
	      "    -o create              make a new store if STORE is missing or an empty\n"
	      "                           directory (said once on stderr); an existing\n"
	      "                           store is opened as it is\n"
	      "    -o nonempty            mount even if MOUNTPOINT holds files (hidden\n"
	      "                           until unmounted)\n"
	      "    -o sep=C               key separator (default ':'; any printable byte but '%')\n"
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
	      "                           0777 & ~M (octal, default 022)\n"
	      "    -o ro                  read-only\n"
	      "    -o allow_other         let users other than the mounting one in (a user's\n"
	      "                           mount needs user_allow_other in /etc/fuse.conf)\n"
	      "    -o default_permissions have the kernel check each key's mode, owner and\n"
	      "                           group (uid=, gid=, umask= for keys without them)\n"
	      "                           against the caller; without it every user let in\n"
	      "                           may read and write every key\n"
	      "\n"
	      "Examples:\n"
	      "    kvfs -o create /var/lib/kvfs/app /srv/app\n"
	      "    mount -t fuse.kvfs -o create /var/lib/kvfs/app /srv/app\n"
	      "  an /etc/fstab line:\n"
	      "    /var/lib/kvfs/app /srv/app fuse.kvfs create,allow_other,default_permissions 0 0\n"
	      "  unmount: fusermount3 -u MOUNTPOINT (or umount MOUNTPOINT as root)\n"
	      "\n"
	      "Exit status: 0 unmounted cleanly (or, without -f, mounted), 1 the store or\n"
	      "the mountpoint refused or mounting failed, 2 wrong usage.\n"
	      "\n"
	      "libfuse options:\n",
	      out);
}

/* Report a usage error (nothing was looked at yet).  @return KFS_EXIT_USAGE */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fputs("kvfs: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fputs("Try 'kvfs -h'.\n", stderr);
	return KFS_EXIT_USAGE;
}

/* Parse the option @name's value @s, a whole number in @base no larger
 * than @max (@what says which), into *@ret.  @return 0, or -EINVAL
 * (reported) */
static int parse_number(const char *name, const char *s, int base, unsigned long max,
			const char *what, unsigned *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	/* strtoul would take a sign and leading spaces. */
	v = s[0] >= '0' && s[0] <= '9' ? strtoul(s, &end, base) : 0;
	if (s[0] < '0' || s[0] > '9' || errno || *end || v > max) {
		usage_error("invalid %s '%s': %s", name, s, what);
		return -EINVAL;
	}
	*ret = (unsigned)v;
	return 0;
}

/* Check and complete the configuration; a usage error is reported.
 * @return 0 or -EINVAL */
static int configure(struct kfs *fs, struct cmdline *c)
{
	struct kfs_config *cfg = &fs->cfg;
	unsigned v;

	cfg->store = c->store;
	cfg->sep = ':';
	if (c->sep) {
		if (strlen(c->sep) != 1 || kfs_check_sep(c->sep[0]) < 0) {
			usage_error("invalid separator '%s': one printable byte other than '%%'",
				    c->sep);
			return -EINVAL;
		}
		cfg->sep = c->sep[0];
	}
	if (c->min_ttl) {
		if (parse_number("min_ttl", c->min_ttl, 10, UINT32_MAX,
				 "a whole number of seconds", &cfg->min_ttl) < 0)
			return -EINVAL;
		if (cfg->min_ttl == 0) {
			usage_error("invalid min_ttl 0: at least 1 second");
			return -EINVAL;
		}
		cfg->min_ttl_set = true;
	}
	cfg->reap_interval = 60;
	if (c->reap_interval &&
	    parse_number("reap_interval", c->reap_interval, 10, UINT_MAX,
			 "a whole number of seconds", &cfg->reap_interval) < 0)
		return -EINVAL;
	cfg->ro = c->ro;
	cfg->create = c->create;
	cfg->nonempty = c->nonempty;
	/* (uid_t)-1 means "no change" to chown: not an owner. */
	cfg->uid = getuid();
	if (c->uid &&
	    parse_number("uid", c->uid, 10, UINT_MAX - 1, "a numeric user id", &cfg->uid) < 0)
		return -EINVAL;
	cfg->gid = getgid();
	if (c->gid &&
	    parse_number("gid", c->gid, 10, UINT_MAX - 1, "a numeric group id", &cfg->gid) < 0)
		return -EINVAL;
	cfg->umask = 022;
	if (c->umask) {
		if (parse_number("umask", c->umask, 8, 0777, "an octal mode, at most 0777", &v) < 0)
			return -EINVAL;
		cfg->umask = v;
	}
	cfg->cache_ttl = 1.0;
	if (c->cache_ttl) {
		char *end;

		errno = 0;
		cfg->cache_ttl = strtod(c->cache_ttl, &end);
		/* isfinite and >= 0: "nan", "inf" and "-1" are refused. */
		if (!c->cache_ttl[0] || *end || errno || !(cfg->cache_ttl >= 0) ||
		    cfg->cache_ttl > 1e9) {
			usage_error("invalid cache_ttl '%s': seconds, 0 or more", c->cache_ttl);
			return -EINVAL;
		}
	}
	cfg->direct_io = c->direct_io;
	cfg->sync = KVC_SYNC_BATCH;
	if (c->sync) {
		if (strcmp(c->sync, "always") == 0)
			cfg->sync = KVC_SYNC_ALWAYS;
		else if (strcmp(c->sync, "batch") == 0)
			cfg->sync = KVC_SYNC_BATCH;
		else if (strcmp(c->sync, "none") == 0)
			cfg->sync = KVC_SYNC_NONE;
		else {
			usage_error("invalid sync mode '%s': always, batch or none", c->sync);
			return -EINVAL;
		}
	}
	cfg->fsname_given = c->fsname_given;
	cfg->subtype_given = c->subtype_given;
	cfg->prefix = c->prefix;

	/* The root is the directory of prefix P: P ends with the separator. */
	size_t plen = c->prefix ? strlen(c->prefix) : 0;

	if (plen + 1 > KVC_KEY_MAX) {
		usage_error("prefix too long: at most %u bytes", KVC_KEY_MAX - 1);
		return -EINVAL;
	}
	memcpy(fs->root, c->prefix ? c->prefix : "", plen);
	if (plen && c->prefix[plen - 1] != cfg->sep)
		fs->root[plen++] = (unsigned char)cfg->sep;
	fs->root_len = plen;
	if (plen && kvc_key_check(fs->root, plen) < 0) {
		usage_error("invalid prefix '%s': not valid UTF-8", c->prefix);
		return -EINVAL;
	}
	return 0;
}

/*
 * Have libfuse check the options it takes (allow_other, max_threads, ...)
 * now, on a copy of @args, so that one it does not know is a usage error
 * reported before anything is looked at or created; the real session is
 * made after the store is open (its fsname is the store's path).
 * @return 0, or -EINVAL (libfuse said why)
 */
static int check_fuse_options(struct kfs *fs, const struct fuse_args *args)
{
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	int i;

	for (i = 0; i < args->argc; i++) {
		if (fuse_opt_add_arg(&copy, args->argv[i]) != 0) {
			fuse_opt_free_args(&copy);
			return -ENOMEM;
		}
	}
	/* fuse_session_new fails on an option it does not know or a bad
	 * value (and on no memory, which is not worth telling apart here). */
	se = fuse_session_new(&copy, &kfs_ops, sizeof(kfs_ops), fs);
	fuse_opt_free_args(&copy);
	if (!se)
		return -EINVAL;
	fuse_session_destroy(se);
	return 0;
}

/*
 * Check the mountpoint @given: a directory, and empty unless -o nonempty
 * (a mount would hide its files: s3fs and rclone refuse too).  The
 * refusal is reported.
 * @param[out] ret_path its absolute path, to free
 * @return 0 or -errno
 */
static int check_mountpoint(struct kfs *fs, const char *given, char **ret_path)
{
	struct stat st;
	char *path;
	int empty;
	unsigned fd;
	char tail;

	/* mount.fuse3 -o drop_privileges mounts by itself and hands over the
	 * open /dev/fuse as /dev/fd/N, which libfuse takes as it is: there
	 * is no directory to look at. */
	if (sscanf(given, "/dev/fd/%u%c", &fd, &tail) == 1) {
		*ret_path = strdup(given);
		return *ret_path ? 0 : -ENOMEM;
	}
	if (stat(given, &st) < 0) {
		int e = errno;

		if (e == ENOENT)
			kfs_log(fs, LOG_ERR, "MOUNTPOINT %s: no such directory", given);
		else if (e == ENOTCONN)
			kfs_log(fs, LOG_ERR, "MOUNTPOINT %s: %s (a mount whose daemon ended: "
				"fusermount3 -u it first)", given, strerror(e));
		else
			kfs_log(fs, LOG_ERR, "MOUNTPOINT %s: %s", given, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		kfs_log(fs, LOG_ERR, "MOUNTPOINT %s: not a directory", given);
		return -ENOTDIR;
	}
	if (!fs->cfg.nonempty) {
		empty = kfs_dir_is_empty(given);
		if (empty < 0) {
			kfs_log(fs, LOG_ERR, "MOUNTPOINT %s: cannot list it to see that it is "
				"empty: %s (-o nonempty mounts without looking)", given,
				strerror(-empty));
			return empty;
		}
		if (!empty) {
			kfs_log(fs, LOG_ERR, "MOUNTPOINT %s: not empty: the mount would hide its "
				"files (use -o nonempty to mount over them)", given);
			return -ENOTEMPTY;
		}
	}
	path = realpath(given, NULL);
	if (!path) {
		int e = errno;

		kfs_log(fs, LOG_ERR, "MOUNTPOINT %s: %s", given, strerror(e));
		return -e;
	}
	*ret_path = path;
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
	if (fuse_session_mount(se, fs->cfg.mountpoint) != 0)
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
		if (kfs_store_open(fs, path, false) < 0)
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
	struct cmdline c = {0};
	struct kfs *fs = calloc(1, sizeof(*fs));
	int ret = KFS_EXIT_USAGE;

	memset(&co, 0, sizeof(co));
	if (!fs) {
		fputs("kvfs: out of memory\n", stderr);
		return KFS_EXIT_FAIL;
	}
	/* libfuse says what it refused ("fuse: ..."); we say where to look. */
	if (fuse_opt_parse(&args, &c, kfs_opts, opt_proc) != 0 ||
	    fuse_parse_cmdline(&args, &co) != 0) {
		usage_error(NULL);
		goto out;
	}
	if (co.show_help) {
		usage(stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = KFS_EXIT_OK;
		goto out;
	}
	if (co.show_version) {
		printf("kvfs version %s\n", KVFS_VERSION);
		fuse_lowlevel_version();
		ret = KFS_EXIT_OK;
		goto out;
	}
	if (c.bad_nonopt || !c.store || !c.mountpoint) {
		usage_error(c.bad_nonopt ? "too many arguments: expected STORE and MOUNTPOINT"
				       : "expected STORE and MOUNTPOINT");
		goto out;
	}
	if (configure(fs, &c) < 0)
		goto out;
	if (check_fuse_options(fs, &args) < 0) {
		usage_error(NULL);
		goto out;
	}
	/* From here on the command line is right: a refusal is status 1,
	 * given before daemonizing, so mount(8) and systemd see it. */
	ret = KFS_EXIT_FAIL;
	if (check_mountpoint(fs, c.mountpoint, &fs->cfg.mountpoint) < 0 ||
	    kfs_store_open(fs, fs->cfg.store, fs->cfg.create) < 0)
		goto out;
	if (kfs_state_init(fs) < 0 || add_mount_names(fs, &args) < 0) {
		kfs_log(fs, LOG_ERR, "out of memory");
		goto out;
	}
	ret = run(fs, &args, &co) < 0 ? KFS_EXIT_FAIL : KFS_EXIT_OK;
	if (fs->store && fs->cfg.sync != KVC_SYNC_ALWAYS && kvc_store_sync(fs->store) < 0) {
		kfs_log(fs, LOG_ERR, "flushing the store failed");
		ret = KFS_EXIT_FAIL;
	}
out:
	kvc_close(fs->store);
	kfs_state_release(fs);
	free(co.mountpoint);
	free(fs->cfg.mountpoint);
	free(c.store);
	free(c.mountpoint);
	free(c.sep);
	free(c.min_ttl);
	free(c.reap_interval);
	free(c.uid);
	free(c.gid);
	free(c.umask);
	free(c.cache_ttl);
	free(c.prefix);
	free(c.sync);
	fuse_opt_free_args(&args);
	free(fs);
	return ret;
}
