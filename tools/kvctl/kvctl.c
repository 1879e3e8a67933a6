/*
 * kvctl: the command-line client of a kvfs store, shaped after `wrangler kv`.
 *
 *   kvctl [--min-ttl S] STORE COMMAND [ARGS]
 *
 * STORE is a store directory (created on first use) or a kvfs mountpoint
 * (its root's user.kv.store xattr names the store).  Every rule of the data
 * model is kvcore's: kvctl turns arguments and files into kvcore calls and
 * prints kvcore's messages, so it cannot disagree with kvfs or kvsync.
 * Data goes to stdout (values, JSON); messages, the `cursor:` line and the
 * progress line go to stderr.  Exit status: 0 done, 1 the operation failed
 * (not found, refused by validation, store error), 2 the command line is
 * wrong.
 */
#include "common/buf.h"
#include "common/bulk.h"
#include "kvcore.h"
#include "common/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef KVCTL_VERSION
#define KVCTL_VERSION "unknown"
#endif

#define EXIT_USAGE 2
#define MSG_MAX 2048
/* Keys handed out for reaping per batch: the progress line moves between. */
#define REAP_BATCH 1000u

static const char usage_text[] =
	"Usage: kvctl [--min-ttl S] STORE COMMAND [ARGS]\n"
	"\n"
	"STORE is a store directory (created on first use) or a kvfs mountpoint.\n"
	"\n"
	"Commands:\n"
	"  get KEY [--metadata]           print the value (with --metadata: JSON of\n"
	"                                 value and metadata)\n"
	"  put KEY [VALUE] [--path FILE] [--ttl S] [--expiration T] [--metadata JSON]\n"
	"                                 write a key; the value comes from VALUE,\n"
	"                                 FILE or standard input\n"
	"  delete KEY                     delete a key (a missing key is not an error)\n"
	"  list [--prefix P] [--limit N] [--cursor C]\n"
	"                                 list keys as JSON; with --limit or --cursor\n"
	"                                 one page, and the next cursor on stderr\n"
	"  bulk put FILE|-                write the keys of a bulk JSON file, all or none\n"
	"  bulk get FILE|- [--metadata]   read the keys named in a JSON file\n"
	"  bulk delete FILE|-             delete the keys named in a JSON file\n"
	"  export [--prefix P]            print the namespace as a bulk put file\n"
	"  reap                           remove expired keys now\n"
	"  stats                          print figures about the store as JSON\n"
	"  check                          verify the store's indexes against its records\n"
	"\n"
	"Options:\n"
	"  --min-ttl S    smallest ttl accepted by this run (default: the store's, 60)\n"
	"  -h, --help     show this help\n"
	"  --version      show the version\n"
	"  --             end of options (for a KEY or VALUE starting with '-')\n"
	"\n"
	"Exit status: 0 done, 1 the operation failed, 2 wrong usage.\n";

/* ------------------------------------------------------------ arguments */

enum opt_bit {
	OPT_METADATA_FLAG = 1u << 0, /* get/bulk get --metadata */
	OPT_METADATA = 1u << 1,      /* put --metadata JSON */
	OPT_PATH = 1u << 2,
	OPT_TTL = 1u << 3,
	OPT_EXPIRATION = 1u << 4,
	OPT_PREFIX = 1u << 5,
	OPT_LIMIT = 1u << 6,
	OPT_CURSOR = 1u << 7,
};

#define POS_MAX 8

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
	int64_t ttl_s;        /* --ttl, parsed */
	int64_t expiration_s; /* --expiration, parsed */
	int64_t limit_n;      /* --limit, parsed */
};

/* "kvctl: MESSAGE" and a newline on stderr. */
static void say(const char *fmt, va_list ap)
{
	fputs("kvctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

__attribute__((format(printf, 1, 2))) static int failure(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

/* A whole decimal integer, nothing else.  @return 0 or -EINVAL */
static int parse_i64(const char *s, int64_t *ret)
{
	char *end;
	if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int add_positional(struct args *a, const char *arg)
{
	if (!a->store)
		a->store = arg;
	else if (!a->command)
		a->command = arg;
	else if (a->npos < POS_MAX)
		a->pos[a->npos++] = arg;
	else
		return usage_error("too many arguments");
	return 0;
}

/* What each command takes: arguments (between lo and hi) and options. */
struct command_shape {
	const char *name;
	int lo, hi;
	unsigned opts; /* enum opt_bit */
	const char *shape;
};

static const struct command_shape shapes[] = {
	{"get", 1, 1, OPT_METADATA_FLAG, "get KEY [--metadata]"},
	{"put", 1, 2, OPT_METADATA | OPT_PATH | OPT_TTL | OPT_EXPIRATION,
	 "put KEY [VALUE] [--path FILE] [--ttl S] [--expiration T] [--metadata JSON]"},
	{"delete", 1, 1, 0, "delete KEY"},
	{"list", 0, 0, OPT_PREFIX | OPT_LIMIT | OPT_CURSOR, "list [--prefix P] [--limit N] [--cursor C]"},
	{"bulk", 2, 2, OPT_METADATA_FLAG, "bulk put|get|delete FILE|-"},
	{"export", 0, 0, OPT_PREFIX, "export [--prefix P]"},
	{"reap", 0, 0, 0, "reap"},
	{"stats", 0, 0, 0, "stats"},
	{"check", 0, 0, 0, "check"},
};

/* Check the command line against the command's shape before anything is opened. */
static int check_command(const struct args *a)
{
	const struct command_shape *c = NULL;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (!strcmp(a->command, shapes[i].name))
			c = &shapes[i];
	if (!c)
		return usage_error("unknown command '%s'", a->command);
	if (a->npos < c->lo || a->npos > c->hi)
		return usage_error("usage: kvctl STORE %s", c->shape);
	unsigned opts = c->opts;
	if (!strcmp(c->name, "bulk")) {
		const char *sub = a->pos[0];
		if (strcmp(sub, "put") && strcmp(sub, "get") && strcmp(sub, "delete"))
			return usage_error("unknown bulk command '%s'", sub);
		if (strcmp(sub, "get"))
			opts = 0; /* --metadata is bulk get's only */
	}
	unsigned extra = a->opts & ~opts;
	if ((extra & OPT_METADATA_FLAG) && !strcmp(c->name, "put"))
		return usage_error("option '--metadata' of put needs a JSON value");
	if (extra)
		return usage_error("an option given is not one of command '%s'; usage: kvctl STORE %s",
				   c->name, c->shape);
	if (!strcmp(c->name, "put") && a->npos == 2 && a->path)
		return usage_error("give the value either as VALUE or with --path, not both");
	return 0;
}

/* Numbers are part of the command line's shape: check them before opening. */
static int parse_numbers(struct args *a)
{
	if (a->ttl && parse_i64(a->ttl, &a->ttl_s))
		return usage_error("invalid --ttl '%s': expected a number of seconds", a->ttl);
	if (a->expiration && parse_i64(a->expiration, &a->expiration_s))
		return usage_error("invalid --expiration '%s': expected Unix seconds",
				   a->expiration);
	if (a->limit && parse_i64(a->limit, &a->limit_n))
		return usage_error("invalid --limit '%s': expected a number", a->limit);
	return 0;
}

/*
 * Options may stand anywhere, as with wrangler.  --metadata takes a JSON
 * argument after `put` and is a flag elsewhere, so the command must be
 * known by the time it is seen (it always is: options of a command follow
 * it).  @return 0 to go on, or the exit status to end with (-1: exit 0)
 */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct {
		const char *name;
		unsigned bit;
	} table[] = {
		{"path", OPT_PATH},           {"ttl", OPT_TTL},       {"expiration", OPT_EXPIRATION},
		{"prefix", OPT_PREFIX},       {"limit", OPT_LIMIT},   {"cursor", OPT_CURSOR},
		{"metadata", OPT_METADATA},
	};
	bool only_positional = false;
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		int rc;
		if (only_positional || arg[0] != '-' || !arg[1]) {
			rc = add_positional(a, arg);
			if (rc)
				return rc;
			continue;
		}
		if (!strcmp(arg, "--")) {
			only_positional = true;
			continue;
		}
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			fputs(usage_text, stdout);
			return -1;
		}
		if (!strcmp(arg, "--version")) {
			printf("kvctl %s\n", KVCTL_VERSION);
			return -1;
		}
		if (arg[1] != '-')
			return usage_error("unknown option '%s'", arg);
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
		const char *value = eq ? eq + 1 : NULL;
		bool put = a->command && !strcmp(a->command, "put");
		if (name_len == 8 && !strncmp(name, "metadata", 8) && !put) {
			if (value)
				return usage_error("option '--metadata' takes no value here");
			a->opts |= OPT_METADATA_FLAG;
			continue;
		}
		if (name_len == 7 && !strncmp(name, "min-ttl", 7)) {
			int64_t v;
			if (!value && i + 1 >= argc)
				return usage_error("option '--min-ttl' needs a value");
			value = value ? value : argv[++i];
			if (parse_i64(value, &v) || v < 1 || v > UINT32_MAX)
				return usage_error("invalid --min-ttl '%s': expected seconds, at least 1",
						   value);
			a->min_ttl_set = true;
			a->min_ttl = (uint32_t)v;
			continue;
		}
		unsigned bit = 0;
		for (size_t t = 0; t < sizeof(table) / sizeof(table[0]); t++)
			if (strlen(table[t].name) == name_len &&
			    !strncmp(table[t].name, name, name_len))
				bit = table[t].bit;
		if (!bit)
			return usage_error("unknown option '%.*s'", (int)(name_len + 2), arg);
		if (!value) {
			if (i + 1 >= argc)
				return usage_error("option '--%.*s' needs a value", (int)name_len, name);
			value = argv[++i];
		}
		if (a->opts & bit)
			return usage_error("option '--%.*s' is given twice", (int)name_len, name);
		a->opts |= bit;
		switch (bit) {
		case OPT_PATH: a->path = value; break;
		case OPT_TTL: a->ttl = value; break;
		case OPT_EXPIRATION: a->expiration = value; break;
		case OPT_PREFIX: a->prefix = value; break;
		case OPT_LIMIT: a->limit = value; break;
		case OPT_CURSOR: a->cursor = value; break;
		default: a->metadata = value; break;
		}
	}
	if (!a->store)
		return usage_error("no STORE given");
	if (!a->command)
		return usage_error("no COMMAND given");
	int rc = check_command(a);
	return rc ? rc : parse_numbers(a);
}

/* ---------------------------------------------------------------- input */

/*
 * The contents of a file or of stdin ("-" or NULL), for values and bulk
 * files.  At most @max + 1 bytes are read, so an oversize input is noticed
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

static void input_release(struct input *in)
{
	if (in->map_len)
		munmap(in->data, in->map_len);
	else
		free(in->data);
	memset(in, 0, sizeof(*in));
}

static int read_input(const char *path, size_t max, struct input *ret)
{
	bool is_stdin = !path || !strcmp(path, "-");
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	struct input in = {0};
	struct stat st;
	int rc = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max &&
	    (uint64_t)st.st_size <= SIZE_MAX) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			in.data = m;
			in.len = in.map_len = (size_t)st.st_size;
			in.oversize = in.size_known = true;
			goto out;
		}
	}
	struct kt_buf buf = KT_BUF_INIT;
	for (;;) {
		if (buf.len > max)
			break; /* holds max + 1: enough to know */
		if (buf.len == buf.cap) {
			rc = kt_buf_grow(&buf, 1, 64 * 1024);
			if (rc)
				break;
		}
		size_t room = buf.cap - buf.len;
		if (room > max + 1 - buf.len)
			room = max + 1 - buf.len; /* never read past max + 1 */
		ssize_t r = read(fd, buf.p + buf.len, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0) {
			in.size_known = true;
			break;
		}
		buf.len += (size_t)r;
	}
	in.data = buf.p;
	in.len = buf.len;
	in.oversize = in.len > max;
	if (in.oversize)
		in.size_known = false;
out:
	if (!is_stdin)
		close(fd);
	if (rc) {
		input_release(&in);
		return rc;
	}
	*ret = in;
	return 0;
}

/* --------------------------------------------------------------- output */

/* A key for a message: control bytes as \xNN, the rest as it is. */
static void print_key(FILE *f, const void *key, size_t len)
{
	const unsigned char *k = key;
	for (size_t i = 0; i < len; i++) {
		if (k[i] < 0x20 || k[i] == 0x7F)
			fprintf(f, "\\x%02x", k[i]);
		else
			fputc(k[i], f);
	}
}

/* Flush stdout and report a failed write.  @return the exit status */
static int finish_stdout(int status)
{
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "kvctl: cannot write the output: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	return status;
}

/* ---------------------------------------------------------------- store */

static int open_store(const struct args *a, kvc_store **ret)
{
	char target[PATH_MAX];
	const char *path = a->store;
	/* A kvfs mountpoint names its store; use the store directly. */
	ssize_t n = getxattr(a->store, "user.kv.store", target, sizeof(target) - 1);
	if (n > 0) {
		target[n] = 0;
		path = target;
	}
	struct kvc_open_opts o = {
		.min_ttl_set = a->min_ttl_set,
		.min_ttl = a->min_ttl,
	};
	bool created = false;
	int rc = kvc_open(path, &o, ret, &created);
	if (rc)
		return failure("cannot open store '%s': %s", path, strerror(-rc));
	if (created)
		fprintf(stderr, "kvctl: created store '%s'\n", path);
	return 0;
}

/*
 * Turn an expiration and/or a ttl into the fields of a write, checking what
 * kvcore cannot see: kvcore reads 0 as "none", but a Workers KV user who
 * asks for a ttl of 0 made a mistake.  When both are given the ttl wins.
 * @return 0, or -EINVAL with a message in @msg
 */
static int set_expiry(struct kvc_write *w, bool has_exp, int64_t exp, bool has_ttl, int64_t ttl,
		      uint32_t min_ttl, char *msg, size_t msg_size)
{
	w->set |= KVC_SET_EXPIRATION;
	w->expiration = 0;
	if (has_ttl) {
		if (ttl < 1) {
			snprintf(msg, msg_size,
				 "Invalid expiration_ttl of %" PRId64
				 ". Expiration TTL must be at least %" PRIu32 ".",
				 ttl, min_ttl);
			return -EINVAL;
		}
		if (ttl > UINT32_MAX) {
			snprintf(msg, msg_size,
				 "Invalid expiration_ttl of %" PRId64
				 ". Expiration TTL must be at most %" PRIu32 ".",
				 ttl, UINT32_MAX);
			return -EINVAL;
		}
		w->set |= KVC_SET_TTL;
		w->ttl = (uint32_t)ttl;
	} else if (has_exp) {
		if (exp < 1) {
			snprintf(msg, msg_size,
				 "Invalid expiration of %" PRId64
				 ". Expiration times must be at least %" PRIu32
				 " seconds in the future.",
				 exp, min_ttl);
			return -EINVAL;
		}
		w->expiration = exp;
	}
	return 0;
}

/* ------------------------------------------------------------ get/put/delete */

static int cmd_get(kvc_store *store, const struct args *a)
{
	int rc;
	const char *key = a->pos[0];
	size_t key_len = strlen(key);
	kvc_txn *txn;
	rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	struct kvc_record rec;
	rc = kvc_get(txn, key, key_len, 0, &rec);
	if (rc == -ENOENT) {
		kvc_txn_abort(txn);
		fputs("kvctl: key '", stderr);
		print_key(stderr, key, key_len);
		fputs("' not found\n", stderr);
		return EXIT_FAILURE;
	}
	if (rc) {
		const char *m = kvc_txn_errmsg(txn);
		int status = failure("%s", *m ? m : strerror(-rc));
		kvc_txn_abort(txn);
		return status;
	}
	if (a->opts & OPT_METADATA_FLAG) {
		putchar('{');
		kt_json_value_members(stdout, rec.value, rec.value_len, true, rec.metadata,
				      rec.metadata_len);
		fputs("}\n", stdout);
	} else {
		fwrite(rec.value, 1, rec.value_len, stdout);
	}
	kvc_txn_abort(txn);
	return finish_stdout(0);
}

struct put_ctx {
	const char *key;
	size_t key_len;
	struct kvc_write w;
};

static int put_fn(kvc_txn *txn, void *arg)
{
	struct put_ctx *c = arg;
	return kvc_write(txn, c->key, c->key_len, &c->w);
}

static int cmd_put(kvc_store *store, const struct args *a)
{
	int rc;
	struct put_ctx c = {.key = a->pos[0], .key_len = strlen(a->pos[0])};
	char msg[MSG_MAX];
	c.w.set = KVC_SET_VALUE | KVC_SET_METADATA;
	if (a->metadata) {
		c.w.metadata = a->metadata;
		c.w.metadata_len = strlen(a->metadata);
	}
	if (set_expiry(&c.w, a->expiration != NULL, a->expiration_s, a->ttl != NULL, a->ttl_s, kvc_store_min_ttl(store), msg,
		       sizeof(msg)))
		return failure("%s", msg);

	struct input in = {0};
	if (a->npos == 2) {
		c.w.value = a->pos[1];
		c.w.value_len = strlen(a->pos[1]);
	} else {
		rc = read_input(a->path, KVC_VALUE_MAX, &in);
		if (rc)
			return failure("cannot read '%s': %s", a->path ? a->path : "-",
				       strerror(-rc));
		c.w.value = in.data;
		c.w.value_len = in.len;
	}
	msg[0] = 0;
	rc = kvc_write_txn(store, put_fn, &c, msg, sizeof(msg));
	input_release(&in);
	if (rc)
		return failure("%s", *msg ? msg : strerror(-rc));
	return 0;
}

struct delete_ctx {
	const char *key;
	size_t key_len;
};

static int delete_fn(kvc_txn *txn, void *arg)
{
	struct delete_ctx *c = arg;
	int rc = kvc_delete(txn, c->key, c->key_len);
	return rc == -ENOENT ? 0 : rc; /* as in Workers KV */
}

static int cmd_delete(kvc_store *store, const struct args *a)
{
	int rc;
	struct delete_ctx c = {.key = a->pos[0], .key_len = strlen(a->pos[0])};
	char msg[MSG_MAX] = "";
	rc = kvc_write_txn(store, delete_fn, &c, msg, sizeof(msg));
	if (rc)
		return failure("%s", *msg ? msg : strerror(-rc));
	return 0;
}

/* ------------------------------------------------------------------ list */

struct list_ctx {
	uint64_t printed;
};

/* One key as JSON.stringify(keys, null, 2) prints it. */
static int list_fn(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct list_ctx *c = arg;
	fputs(c->printed ? ",\n  {\n    \"name\": " : "[\n  {\n    \"name\": ", stdout);
	kt_json_string(stdout, key, key_len);
	if (rec->expiration)
		printf(",\n    \"expiration\": %" PRId64, rec->expiration);
	if (rec->metadata) {
		fputs(",\n    \"metadata\": ", stdout);
		kt_json_pretty(stdout, rec->metadata, rec->metadata_len, 4);
	}
	fputs("\n  }", stdout);
	c->printed++;
	return ferror(stdout) ? -EIO : 0;
}

static int cmd_list(kvc_store *store, const struct args *a)
{
	int rc;
	unsigned limit = 0;
	if (a->limit) {
		int64_t v = a->limit_n;
		if (v < 0 || v > UINT_MAX)
			return failure("Invalid limit of %s. Please specify an integer between 1 "
				       "and %u.",
				       a->limit, KVC_LIST_LIMIT_MAX);
		limit = (unsigned)v; /* kvcore judges the range */
	}
	/* Like wrangler, a plain list shows everything; paging is asked for. */
	bool one_page = a->limit || a->cursor;
	const char *prefix = a->prefix ? a->prefix : "";
	char cursor[KVC_CURSOR_MAX] = "", next[KVC_CURSOR_MAX];
	if (a->cursor)
		snprintf(cursor, sizeof(cursor), "%s", a->cursor);
	if (a->cursor && strlen(a->cursor) >= sizeof(cursor))
		return failure("Invalid cursor.");

	kvc_txn *txn;
	rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	struct list_ctx c = {0};
	for (;;) {
		rc = kvc_list(txn, prefix, strlen(prefix), cursor, limit, list_fn, &c, next);
		if (rc)
			break;
		if (!next[0])
			break;
		if (one_page) {
			fflush(stdout);
			fprintf(stderr, "cursor: %s\n", next);
			break;
		}
		memcpy(cursor, next, sizeof(cursor));
	}
	if (rc) {
		const char *m = kvc_txn_errmsg(txn);
		int status = failure("%s", *m ? m : strerror(-rc));
		kvc_txn_abort(txn);
		if (c.printed)
			fputs("\n]\n", stdout);
		fflush(stdout);
		return status;
	}
	kvc_txn_abort(txn);
	fputs(c.printed ? "\n]\n" : "[]\n", stdout);
	return finish_stdout(0);
}

/* ------------------------------------------------------------------ bulk */

static int load_bulk(const char *path, enum kt_bulk_format fmt, struct kt_bulk *ret)
{
	struct input in;
	int rc = read_input(path, KT_BULK_BYTES_MAX, &in);
	if (rc)
		return failure("cannot read '%s': %s", path, strerror(-rc));
	if (in.oversize) {
		size_t len = in.len;
		bool known = in.size_known;
		input_release(&in);
		if (known)
			return failure("Bulk file is %zu bytes; the limit is %u.", len,
				       KT_BULK_BYTES_MAX);
		return failure("Bulk file is over %u bytes; the limit is %u.", KT_BULK_BYTES_MAX,
			       KT_BULK_BYTES_MAX);
	}
	char msg[KT_BULK_ERRMSG_MAX];
	rc = kt_bulk_parse(in.data, in.len, fmt, ret, msg, sizeof(msg));
	input_release(&in);
	if (rc)
		return failure("%s", msg);
	return 0;
}

struct bulk_ctx {
	const struct kt_bulk *b;
	uint32_t min_ttl;
	struct kt_progress *progress;
	char msg[MSG_MAX];
};

/* The message of entry @i failing with @why. */
static int bulk_fail(struct bulk_ctx *c, size_t i, const char *why, int rc)
{
	char shown[100];
	const struct kt_bulk_entry *e = &c->b->entries[i];
	kt_bulk_show_key(e->key, e->key_len, shown, sizeof(shown));
	snprintf(c->msg, sizeof(c->msg), "bulk entry %zu (key '%s'): %s", i, shown,
		 *why ? why : strerror(-rc));
	return rc;
}

static int bulk_put_fn(kvc_txn *txn, void *arg)
{
	struct bulk_ctx *c = arg;
	c->msg[0] = 0;
	for (size_t i = 0; i < c->b->count; i++) {
		const struct kt_bulk_entry *e = &c->b->entries[i];
		struct kvc_write w = {
			.set = KVC_SET_VALUE | KVC_SET_METADATA,
			.value = e->value,
			.value_len = e->value_len,
			.metadata = e->metadata,
			.metadata_len = e->metadata_len,
		};
		char why[256];
		int rc = set_expiry(&w, e->has_expiration, e->expiration, e->has_ttl, e->ttl,
				    c->min_ttl, why, sizeof(why));
		if (rc)
			return bulk_fail(c, i, why, rc);
		rc = kvc_write(txn, e->key, e->key_len, &w);
		if (rc)
			return bulk_fail(c, i, kvc_txn_errmsg(txn), rc);
		kt_progress_update(c->progress, i + 1);
	}
	return 0;
}

static int bulk_delete_fn(kvc_txn *txn, void *arg)
{
	struct bulk_ctx *c = arg;
	c->msg[0] = 0;
	for (size_t i = 0; i < c->b->count; i++) {
		const struct kt_bulk_entry *e = &c->b->entries[i];
		int rc = kvc_delete(txn, e->key, e->key_len);
		if (rc && rc != -ENOENT)
			return bulk_fail(c, i, kvc_txn_errmsg(txn), rc);
		kt_progress_update(c->progress, i + 1);
	}
	return 0;
}

/* Apply a bulk put or delete in one transaction: all entries or none. */
static int bulk_write(kvc_store *store, const struct kt_bulk *b, bool put)
{
	struct kt_progress progress;
	struct bulk_ctx c = {.b = b, .min_ttl = kvc_store_min_ttl(store), .progress = &progress};
	char msg[MSG_MAX] = "";
	kt_progress_init(&progress, STDERR_FILENO, put ? "bulk put" : "bulk delete", "keys",
			 b->count);
	int rc = kvc_write_txn(store, put ? bulk_put_fn : bulk_delete_fn, &c, msg, sizeof(msg));
	kt_progress_end(&progress);
	if (rc)
		return failure("%s", c.msg[0] ? c.msg : msg[0] ? msg : strerror(-rc));
	fprintf(stderr, "Success! %s %zu key%s\n", put ? "Put" : "Deleted", b->count,
		b->count == 1 ? "" : "s");
	return 0;
}

static int cmp_entry_key(const void *x, const void *y)
{
	const struct kt_bulk_entry *a = *(const struct kt_bulk_entry *const *)x;
	const struct kt_bulk_entry *b = *(const struct kt_bulk_entry *const *)y;
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);
	if (c)
		return c;
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	return a < b ? -1 : a > b; /* stable: the first of equal keys first */
}

/*
 * Mark the entries whose key appeared earlier in the file: a JSON object
 * must not name a member twice.  @return a new array of flags, or NULL
 */
static bool *find_repeats(const struct kt_bulk *b)
{
	const struct kt_bulk_entry **order = malloc((b->count ? b->count : 1) * sizeof(*order));
	bool *repeat = calloc(b->count ? b->count : 1, sizeof(*repeat));
	if (!order || !repeat) {
		free(order);
		free(repeat);
		return NULL;
	}
	for (size_t i = 0; i < b->count; i++)
		order[i] = &b->entries[i];
	qsort(order, b->count, sizeof(*order), cmp_entry_key);
	for (size_t i = 1; i < b->count; i++)
		if (order[i]->key_len == order[i - 1]->key_len &&
		    !memcmp(order[i]->key, order[i - 1]->key, order[i]->key_len))
			repeat[order[i] - b->entries] = true;
	free(order);
	return repeat;
}

/*
 * {"values":{"k":"v","gone":null}} as Workers KV's bulk get answers; with
 * --metadata each value is {"value":..,"metadata":..}.  A value that is not
 * UTF-8 cannot be a JSON string: it is {"value":"<base64>","base64":true}.
 */
static int bulk_get(kvc_store *store, const struct kt_bulk *b, bool with_metadata)
{
	for (size_t i = 0; i < b->count; i++) {
		const struct kt_bulk_entry *e = &b->entries[i];
		int rc = kvc_key_check(e->key, e->key_len);
		if (rc) {
			char shown[100];
			kt_bulk_show_key(e->key, e->key_len, shown, sizeof(shown));
			if (rc == -ENAMETOOLONG)
				return failure("bulk entry %zu (key '%s'): UTF-8 encoded length of "
					       "%zu exceeds key length limit of %u.",
					       i, shown, e->key_len, KVC_KEY_MAX);
			return failure("bulk entry %zu (key '%s'): invalid key", i, shown);
		}
	}
	bool *repeat = find_repeats(b);
	if (!repeat)
		return failure("%s", strerror(ENOMEM));
	kvc_txn *txn;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc) {
		free(repeat);
		return failure("cannot read the store: %s", strerror(-rc));
	}
	struct kt_progress progress;
	kt_progress_init(&progress, STDERR_FILENO, "bulk get", "keys", b->count);
	progress.enabled = progress.enabled && !isatty(STDOUT_FILENO); /* data on the screen */
	bool first = true;
	fputs("{\"values\":{", stdout);
	for (size_t i = 0; i < b->count && !rc; i++) {
		const struct kt_bulk_entry *e = &b->entries[i];
		kt_progress_update(&progress, i + 1);
		if (repeat[i])
			continue;
		struct kvc_record rec;
		rc = kvc_get(txn, e->key, e->key_len, 0, &rec);
		if (!first)
			putchar(',');
		first = false;
		kt_json_string(stdout, e->key, e->key_len);
		putchar(':');
		if (rc == -ENOENT) {
			rc = 0;
			fputs("null", stdout);
			continue;
		}
		if (rc)
			break;
		bool text = kt_utf8_valid(rec.value, rec.value_len);
		if (!with_metadata && text) {
			kt_json_string(stdout, rec.value, rec.value_len);
			continue;
		}
		putchar('{');
		kt_json_value_members(stdout, rec.value, rec.value_len, with_metadata,
				      rec.metadata, rec.metadata_len);
		putchar('}');
	}
	kt_progress_end(&progress);
	fputs("}}\n", stdout);
	free(repeat);
	if (rc) {
		const char *m = kvc_txn_errmsg(txn);
		int status = failure("%s", *m ? m : strerror(-rc));
		kvc_txn_abort(txn);
		return status;
	}
	kvc_txn_abort(txn);
	return finish_stdout(0);
}

static int cmd_bulk(kvc_store *store, const struct args *a)
{
	int rc;
	const char *sub = a->pos[0];
	bool put = !strcmp(sub, "put");
	struct kt_bulk b;
	rc = load_bulk(a->pos[1], put ? KT_BULK_PUT : KT_BULK_KEYS, &b);
	if (rc)
		return rc;
	if (!strcmp(sub, "get"))
		rc = bulk_get(store, &b, a->opts & OPT_METADATA_FLAG);
	else
		rc = bulk_write(store, &b, put);
	kt_bulk_release(&b);
	return rc;
}

/* ---------------------------------------------------------------- export */

/* One read transaction: the export is one consistent snapshot. */
static int cmd_export(kvc_store *store, const struct args *a)
{
	int rc;
	const char *prefix = a->prefix ? a->prefix : "";
	size_t prefix_len = strlen(prefix);
	kvc_txn *txn;
	rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	kvc_cursor *cur;
	rc = kvc_cursor_open(txn, 0, &cur);
	if (rc) {
		kvc_txn_abort(txn);
		return failure("cannot read the store: %s", strerror(-rc));
	}
	struct kt_progress progress;
	kt_progress_init(&progress, STDERR_FILENO, "export", "keys", 0);
	progress.enabled = progress.enabled && !isatty(STDOUT_FILENO); /* data on the screen */
	const void *k;
	size_t kn;
	struct kvc_record rec;
	uint64_t n = 0;
	rc = kvc_cursor_seek(cur, prefix, prefix_len, &k, &kn, &rec);
	while (!rc && kn >= prefix_len && !memcmp(k, prefix, prefix_len)) {
		fputs(n ? ",\n" : "[\n", stdout);
		kt_bulk_write_put_entry(stdout, k, kn, rec.value, rec.value_len, rec.expiration,
					rec.ttl, rec.metadata, rec.metadata_len);
		kt_progress_update(&progress, ++n);
		if (ferror(stdout)) {
			rc = -EIO;
			break;
		}
		rc = kvc_cursor_next(cur, &k, &kn, &rec);
	}
	kt_progress_end(&progress);
	kvc_cursor_close(cur);
	kvc_txn_abort(txn);
	if (rc && rc != -ENOENT)
		return failure("export failed: %s", strerror(-rc));
	fputs(n ? "\n]\n" : "[]\n", stdout);
	return finish_stdout(0);
}

/* ------------------------------------------------------------ maintenance */

static int cmd_reap(kvc_store *store, const struct args *a)
{
	int rc;
	struct kt_progress progress;
	uint64_t total = 0, n;
	kt_progress_init(&progress, STDERR_FILENO, "reap", "expired keys removed", 0);
	/* In batches, so the progress line moves and no transaction is huge. */
	do {
		n = 0;
		rc = kvc_reap(store, REAP_BATCH, &n);
		total += n;
		kt_progress_update(&progress, total);
	} while (!rc && n >= REAP_BATCH);
	kt_progress_end(&progress);
	if (rc)
		return failure("reap failed after %" PRIu64 " keys: %s", total, strerror(-rc));
	printf("reaped %" PRIu64 " expired key%s\n", total, total == 1 ? "" : "s");
	/* Tombstones past the grace period have served replication. */
	uint64_t collected = 0;
	rc = kvc_gc_tombstones(store, KVC_TOMBSTONE_GRACE_DEFAULT, &collected);
	if (rc)
		return failure("collecting old tombstones failed: %s", strerror(-rc));
	if (collected)
		printf("collected %" PRIu64 " tombstone%s older than %u days\n", collected,
		       collected == 1 ? "" : "s", KVC_TOMBSTONE_GRACE_DEFAULT / (24u * 3600u));
	return finish_stdout(0);
}

/* One peer of "peers" in stats.  Node ids and epochs are 64-bit random
 * numbers, beyond what a JSON number holds exactly: hex strings. */
static int peer_fn(void *arg, uint64_t node, uint64_t epoch, uint64_t seq)
{
	unsigned *n = arg;
	printf("%s\n    { \"node_id\": \"%016" PRIx64 "\", \"epoch\": \"%016" PRIx64
	       "\", \"watermark\": %" PRIu64 " }",
	       (*n)++ ? "," : "", node, epoch, seq);
	return 0;
}

static int cmd_stats(kvc_store *store, const struct args *a)
{
	int rc;
	struct kvc_stats st;
	struct kvc_identity id;
	rc = kvc_stats(store, &st);
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	kvc_store_identity(store, &id);
	printf("{\n"
	       "  \"keys\": %" PRIu64 ",\n"
	       "  \"bytes\": %" PRIu64 ",\n"
	       "  \"expired_pending\": %" PRIu64 ",\n"
	       "  \"tombstones\": %" PRIu64 ",\n"
	       "  \"map_size\": %" PRIu64 ",\n"
	       "  \"map_used\": %" PRIu64 ",\n"
	       "  \"feed_head\": %" PRIu64 ",\n"
	       "  \"gc_horizon\": %" PRIu64 ",\n"
	       "  \"min_ttl\": %" PRIu32 ",\n"
	       "  \"node_id\": \"%016" PRIx64 "\",\n"
	       "  \"epoch\": \"%016" PRIx64 "\",\n"
	       "  \"peers\": [",
	       st.keys, st.value_bytes, st.expired_pending, st.tombstones, st.map_size,
	       st.map_used, st.feed_head, st.gc_horizon, st.min_ttl, id.node_id, id.epoch);
	/* The peers in a snapshot of their own: kvc_stats has ended its own. */
	kvc_txn *txn;
	unsigned peers = 0;
	rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc == 0) {
		rc = kvc_watermark_each(txn, peer_fn, &peers);
		kvc_txn_abort(txn);
	}
	if (rc) {
		fputs("]\n}\n", stdout);
		return failure("cannot read the store's watermarks: %s", strerror(-rc));
	}
	fputs(peers ? "\n  ]\n}\n" : "]\n}\n", stdout);
	return finish_stdout(0);
}

static void check_problem(void *arg, const char *problem)
{
	(void)arg;
	printf("%s\n", problem);
}

static int cmd_check(kvc_store *store, const struct args *a)
{
	int rc;
	/* kvc_usage counts LMDB entries, which is not the records when long
	 * keys share a bucket: count them by a scan, as the check itself does. */
	struct kvc_stats st;
	rc = kvc_stats(store, &st);
	if (rc)
		return failure("cannot read the store: %s", strerror(-rc));
	uint64_t records = st.keys + st.expired_pending + st.tombstones;
	/* kvc_check reports no progress of its own: show what is being done. */
	struct kt_progress progress;
	kt_progress_init(&progress, STDERR_FILENO, "check", "records to verify", 0);
	kt_progress_update(&progress, records);
	uint64_t problems = 0;
	rc = kvc_check(store, check_problem, NULL, &problems);
	kt_progress_end(&progress);
	if (rc)
		return failure("check failed: %s", strerror(-rc));
	if (problems) {
		finish_stdout(0);
		return failure("check found %" PRIu64 " problem%s", problems,
			       problems == 1 ? "" : "s");
	}
	printf("ok: %" PRIu64 " records checked\n", records);
	return finish_stdout(0);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(kvc_store *store, const struct args *a);
	} commands[] = {
		{"get", cmd_get},       {"put", cmd_put},     {"delete", cmd_delete},
		{"list", cmd_list},     {"bulk", cmd_bulk},   {"export", cmd_export},
		{"reap", cmd_reap},     {"stats", cmd_stats}, {"check", cmd_check},
	};
	struct args a;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	kvc_store *store;
	rc = open_store(&a, &store);
	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(a.command, commands[i].name))
			rc = commands[i].run(store, &a);
	kvc_close(store);
	return rc;
}
