/*
 * kvctl.h: what the parts of kvctl share: the parsed command line, the
 * way it reports (messages, exit status), its input reader, and each
 * command's entry point.
 *
 *   main.c      the command line (getopt_long) and the dispatch
 *   output.c    messages, keys in messages, stdout's final flush, input
 *   cmd_key.c   get, put, delete, list: one key or one listing
 *   cmd_bulk.c  bulk put, get and delete: a file of keys in one transaction
 *   cmd_store.c export, reap, stats, check: the whole store
 *   cmd_miniflare.c import from and export to wrangler's local state
 *               (miniflare.c: its layout)
 *   cmd_watch.c watch: the change feed as it grows
 *
 * Every rule of the data model is kvcore's; a command turns arguments into
 * kvcore calls and prints kvcore's messages.  A command returns kvctl's
 * exit status (0, EXIT_FAILURE, EXIT_USAGE) and has printed its message.
 */
#ifndef KVCTL_KVCTL_H
#define KVCTL_KVCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvcore.h"
#include "common/progress.h"

#define EXIT_USAGE 2
#define MSG_MAX 2048

/* Which options were given (struct args.opts). */
enum opt_bit {
	OPT_METADATA_FLAG = 1u << 0, /* get/bulk get --metadata */
	OPT_METADATA = 1u << 1,      /* put --metadata JSON */
	OPT_PATH = 1u << 2,
	OPT_TTL = 1u << 3,
	OPT_EXPIRATION = 1u << 4,
	OPT_PREFIX = 1u << 5,
	OPT_LIMIT = 1u << 6,
	OPT_CURSOR = 1u << 7,
	OPT_SINCE = 1u << 8,         /* watch --since SEQ */
	OPT_VALUES = 1u << 9,        /* watch --values */
	OPT_FROM_MINIFLARE = 1u << 10, /* import --from-miniflare DIR */
	OPT_TO_MINIFLARE = 1u << 11,   /* export --to-miniflare DIR */
	OPT_NAMESPACE = 1u << 12,      /* --namespace ID of a Miniflare state */
};

#define POS_MAX 8

/* The command line, checked against the command's shape.  The strings
 * point into argv. */
struct args {
	const char *store;
	const char *command;
	const char *pos[POS_MAX]; /* arguments after the command */
	int npos;
	unsigned opts;            /* enum opt_bit: which were given */
	bool min_ttl_set;
	uint32_t min_ttl;
	const char *metadata;
	const char *path;
	const char *ttl;
	const char *expiration;
	const char *prefix;
	const char *limit;
	const char *cursor;
	const char *from_miniflare, *to_miniflare, *namespace; /* cmd_miniflare.c */
	const char *since;
	int64_t ttl_s;        /* --ttl, parsed */
	int64_t expiration_s; /* --expiration, parsed */
	int64_t limit_n;      /* --limit, parsed */
	int64_t since_n;      /* --since, parsed */
};

/* ------------------------------------------------------------ output.c */

/** Print "kvctl: MESSAGE" on stderr.  @return EXIT_FAILURE */
__attribute__((format(printf, 1, 2))) int failure(const char *fmt, ...);

/**
 * The failure of a call in @txn: kvcore's message for it when it has one,
 * else strerror(-@rc).  Aborts @txn.  @return EXIT_FAILURE
 */
int txn_failure(kvc_txn *txn, int rc);

/** A key for a message: control bytes as \xNN, the rest as it is. */
void print_key(FILE *f, const void *key, size_t len);

/** Flush stdout; a failed write is a failure.  @return @status or EXIT_FAILURE */
int finish_stdout(int status);

/*
 * The contents of a file or of stdin ("-" or NULL), for values and bulk
 * files.  At most max + 1 bytes are read, so an oversize input is noticed
 * without reading gigabytes.  An oversize regular file is mapped instead of
 * read so that its true size is known (and a value's message can name it)
 * while no byte of it is read.
 */
struct input {
	unsigned char *data;
	size_t len;      /* bytes available at data */
	size_t map_len;  /* non-zero: data is a mapping of this length */
	bool oversize;   /* more than max bytes */
	bool size_known; /* len is the whole input's size */
};

/**
 * Read @path (or stdin) into @ret.
 * @param[in] progress  NULL, or a display moved as it reads, in a step of
 *                      its own: "reading", bytes of the file's size (no
 *                      total for stdin or a pipe)
 * @return 0 or -errno
 */
int read_input(const char *path, size_t max, struct kt_progress *progress, struct input *ret);

/** Free what read_input() gave; @in may be zeroed. */
void input_release(struct input *in);

/* What export_each calls for each key: 0 to go on, else stop with it. */
typedef int export_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec);

/*
 * Start the progress display of an export on stderr, with an estimate of
 * the total (none under a prefix).
 */
void export_progress_init(kvc_store *store, const struct args *a, struct kt_progress *progress);

/**
 * Call @fn for each live key starting with @prefix, in bytewise order,
 * with its whole record, all in one read transaction (one consistent
 * snapshot), counting them on @progress.
 * @return 0, @fn's non-zero value, or kvcore's -errno
 */
int export_each(kvc_store *store, const char *prefix, struct kt_progress *progress,
		export_fn *fn, void *arg);

/*
 * The commands: each runs one command line against an open store and
 * returns the exit status.  main.c's command table names them.
 */
typedef int kvctl_cmd(kvc_store *store, const struct args *a);

kvctl_cmd cmd_get, cmd_put, cmd_delete, cmd_list;     /* cmd_key.c */
kvctl_cmd cmd_bulk;                                    /* cmd_bulk.c */
kvctl_cmd cmd_export, cmd_reap, cmd_stats, cmd_check;  /* cmd_store.c */
kvctl_cmd cmd_import, cmd_export_miniflare;            /* cmd_miniflare.c */
kvctl_cmd cmd_watch;                                   /* cmd_watch.c */

#endif
