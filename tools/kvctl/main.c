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
 *
 * This file reads the command line and runs the command; kvctl.h says
 * where each command lives.
 */
#include "kvctl.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#ifndef KVCTL_VERSION
#define KVCTL_VERSION "unknown"
#endif

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
	"  export --to-miniflare DIR --namespace ID [--prefix P]\n"
	"                                 write it as namespace ID of wrangler's local state\n"
	"  import --from-miniflare DIR --namespace ID\n"
	"                                 put the keys of namespace ID of wrangler's local state\n"
	"  reap                           remove expired keys now\n"
	"  stats                          print figures about the store as JSON\n"
	"  check                          verify the store's indexes against its records\n"
	"  watch [--prefix P] [--since SEQ] [--values]\n"
	"                                 print each change as it commits, one JSON\n"
	"                                 line each; --since SEQ resumes after SEQ\n"
	"\n"
	"Options:\n"
	"  --min-ttl S    smallest ttl accepted by this run (default: the store's, 60)\n"
	"  -h, --help     show this help\n"
	"  --version      show the version\n"
	"  --             end of options (for a KEY or VALUE starting with '-')\n"
	"\n"
	"Exit status: 0 done, 1 the operation failed, 2 wrong usage.\n";

/* ------------------------------------------------------------ arguments */

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kvctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n\n", stderr);
	va_end(ap);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
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

/* The commands: what each takes, arguments (between lo and hi) and
 * options, and what runs it. */
struct command {
	const char *name;
	int lo, hi;
	unsigned opts; /* enum opt_bit */
	const char *shape;
	kvctl_cmd *run;
};

static const struct command commands[] = {
	{"get", 1, 1, OPT_METADATA_FLAG, "get KEY [--metadata]", cmd_get},
	{"put", 1, 2, OPT_METADATA | OPT_PATH | OPT_TTL | OPT_EXPIRATION,
	 "put KEY [VALUE] [--path FILE] [--ttl S] [--expiration T] [--metadata JSON]", cmd_put},
	{"delete", 1, 1, 0, "delete KEY", cmd_delete},
	{"list", 0, 0, OPT_PREFIX | OPT_LIMIT | OPT_CURSOR, "list [--prefix P] [--limit N] [--cursor C]",
	 cmd_list},
	{"bulk", 2, 2, OPT_METADATA_FLAG, "bulk put|get|delete FILE|-", cmd_bulk},
	{"export", 0, 0, OPT_PREFIX | OPT_TO_MINIFLARE | OPT_NAMESPACE,
	 "export [--prefix P] [--to-miniflare DIR --namespace ID]", cmd_export},
	{"import", 0, 0, OPT_FROM_MINIFLARE | OPT_NAMESPACE, "import --from-miniflare DIR --namespace ID",
	 cmd_import},
	{"reap", 0, 0, 0, "reap", cmd_reap},
	{"stats", 0, 0, 0, "stats", cmd_stats},
	{"check", 0, 0, 0, "check", cmd_check},
	{"watch", 0, 0, OPT_PREFIX | OPT_SINCE | OPT_VALUES, "watch [--prefix P] [--since SEQ] [--values]",
	 cmd_watch},
};

/* The command named @name, or NULL. */
static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

/* Check the command line against the command's shape before anything is opened. */
static int check_command(const struct args *a)
{
	const struct command *c = find_command(a->command);
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
	/* A Miniflare state is named by both its directory and the namespace. */
	if ((!strcmp(c->name, "import") || a->opts & (OPT_TO_MINIFLARE | OPT_NAMESPACE)) &&
	    (!(a->from_miniflare || a->to_miniflare) || !a->namespace))
		return usage_error("usage: kvctl STORE %s", c->shape);
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
	if (a->since && (parse_i64(a->since, &a->since_n) || a->since_n < 0))
		return usage_error("invalid --since '%s': expected a seq, 0 or more", a->since);
	return 0;
}

enum {
	LONG_HELP = 'h',
	LONG_VERSION = 0x100,
	LONG_MIN_TTL,
	LONG_METADATA,
	LONG_VALUED = 0x10000, /* | an enum opt_bit: an option that takes a value */
};

static const struct option long_options[] = {
	{"help", no_argument, NULL, LONG_HELP},
	{"version", no_argument, NULL, LONG_VERSION},
	{"min-ttl", required_argument, NULL, LONG_MIN_TTL},
	/* a flag, or put's JSON value: which is known from the command */
	{"metadata", optional_argument, NULL, LONG_METADATA},
	{"path", required_argument, NULL, LONG_VALUED | OPT_PATH},
	{"ttl", required_argument, NULL, LONG_VALUED | OPT_TTL},
	{"expiration", required_argument, NULL, LONG_VALUED | OPT_EXPIRATION},
	{"prefix", required_argument, NULL, LONG_VALUED | OPT_PREFIX},
	{"limit", required_argument, NULL, LONG_VALUED | OPT_LIMIT},
	{"cursor", required_argument, NULL, LONG_VALUED | OPT_CURSOR},
	{"from-miniflare", required_argument, NULL, LONG_VALUED | OPT_FROM_MINIFLARE},
	{"to-miniflare", required_argument, NULL, LONG_VALUED | OPT_TO_MINIFLARE},
	{"namespace", required_argument, NULL, LONG_VALUED | OPT_NAMESPACE},
	{"since", required_argument, NULL, LONG_VALUED | OPT_SINCE},
	{"values", no_argument, NULL, LONG_VALUED | OPT_VALUES},
	{NULL, 0, NULL, 0},
};

/* The length of the name of "--name[=value]" (after the dashes). */
static size_t long_name_len(const char *arg)
{
	const char *eq = strchr(arg + 2, '=');
	return eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
}

/* Store the value of an option of enum opt_bit. */
static int set_valued(struct args *a, unsigned bit, const char *name, const char *value)
{
	if (a->opts & bit)
		return usage_error("option '--%s' is given twice", name);
	a->opts |= bit;
	switch (bit) {
	case OPT_PATH: a->path = value; break;
	case OPT_TTL: a->ttl = value; break;
	case OPT_EXPIRATION: a->expiration = value; break;
	case OPT_PREFIX: a->prefix = value; break;
	case OPT_LIMIT: a->limit = value; break;
	case OPT_CURSOR: a->cursor = value; break;
	case OPT_FROM_MINIFLARE: a->from_miniflare = value; break;
	case OPT_TO_MINIFLARE: a->to_miniflare = value; break;
	case OPT_NAMESPACE: a->namespace = value; break;
	case OPT_SINCE: a->since = value; break;
	case OPT_VALUES: break;
	default: a->metadata = value; break;
	}
	return 0;
}

/*
 * Options may stand anywhere, as with wrangler, and `--` ends them (for a
 * KEY or VALUE starting with '-').  getopt_long returns arguments in order
 * ("-" in optstring), because --metadata takes a JSON value after `put` and
 * is a flag elsewhere, so the command must be known when it is seen (it
 * always is: options of a command follow it).  What getopt_long would
 * allow beyond kvctl's own parser of before is refused as that parser
 * refused it: abbreviated long options (--pre for --prefix) and grouped
 * short options (-hv) are unknown options; only -h is short.
 * @return 0 to go on, or the exit status to end with (-1: exit 0)
 */
static int parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	opterr = 0; /* the messages are kvctl's */
	optind = 1;
	for (;;) {
		int at = optind, rc = 0;
		int c = getopt_long(argc, argv, "-:h", long_options, NULL);
		if (c == -1)
			break;
		const char *arg = argv[at];
		if (c == 1) {
			rc = add_positional(a, optarg);
			if (rc)
				return rc;
			continue;
		}
		/* A short option must stand alone; a long one be spelt out. */
		bool is_long = arg[1] == '-';
		if (!is_long && (c != LONG_HELP || strcmp(arg, "-h")))
			return usage_error("unknown option '%s'", arg);
		size_t name_len = is_long ? long_name_len(arg) : 0;
		const char *name = arg + 2;
		const struct option *o = long_options;
		while (is_long && o->name &&
		       (strlen(o->name) != name_len || strncmp(o->name, name, name_len)))
			o++;
		if (is_long && !o->name)
			c = '?'; /* unknown, or an abbreviation getopt_long would take */
		switch (c) {
		case '?':
			return usage_error("unknown option '%.*s'", (int)(name_len + 2), arg);
		case ':':
			return usage_error("option '--%.*s' needs a value", (int)name_len, name);
		case LONG_HELP:
			fputs(usage_text, stdout);
			return -1;
		case LONG_VERSION:
			printf("kvctl %s\n", KVCTL_VERSION);
			return -1;
		case LONG_MIN_TTL: {
			int64_t v;
			if (parse_i64(optarg, &v) || v < 1 || v > UINT32_MAX)
				return usage_error("invalid --min-ttl '%s': expected seconds, at least 1",
						   optarg);
			a->min_ttl_set = true;
			a->min_ttl = (uint32_t)v;
			break;
		}
		case LONG_METADATA:
			if (!a->command || strcmp(a->command, "put")) {
				if (optarg)
					return usage_error("option '--metadata' takes no value here");
				a->opts |= OPT_METADATA_FLAG;
				break;
			}
			if (!optarg) {
				if (optind >= argc)
					return usage_error("option '--metadata' needs a value");
				optarg = argv[optind++];
			}
			rc = set_valued(a, OPT_METADATA, "metadata", optarg);
			break;
		default: /* LONG_VALUED | its enum opt_bit */
			rc = set_valued(a, (unsigned)c & ~(unsigned)LONG_VALUED, o->name, optarg);
			break;
		}
		if (rc)
			return rc;
	}
	/* After `--`, the rest is positional. */
	for (int i = optind; i < argc; i++) {
		int rc = add_positional(a, argv[i]);
		if (rc)
			return rc;
	}
	if (!a->store)
		return usage_error("no STORE given");
	if (!a->command)
		return usage_error("no COMMAND given");
	int rc = check_command(a);
	return rc ? rc : parse_numbers(a);
}

/* ------------------------------------------------------------------ main */

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
		return failure("cannot open store '%s': %s", path,
			       rc == -ENOTEMPTY ? "not a store: a directory of other files"
						: strerror(-rc));
	if (created)
		fprintf(stderr, "kvctl: created store '%s'\n", path);
	return 0;
}

int main(int argc, char **argv)
{
	struct args a;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	kvc_store *store;
	rc = open_store(&a, &store);
	if (rc)
		return rc;
	rc = find_command(a.command)->run(store, &a); /* parse_args found it */
	kvc_close(store);
	return rc;
}
