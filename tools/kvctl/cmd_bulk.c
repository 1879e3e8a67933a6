/*
 * cmd_bulk: bulk put, get and delete, the Workers KV bulk operations.  A
 * file is read and parsed whole (common/bulk.c) before the store is
 * touched; put and delete apply all its entries in one write transaction
 * or none, get answers from one snapshot.  One progress line follows the
 * whole command: reading the file, parsing it (bytes of its size), the
 * keys, and for put and delete the commit.
 */
#include "kvctl.h"

#include "common/apply.h"
#include "common/bulk.h"
#include "common/progress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load_bulk(const char *path, enum kt_bulk_format fmt, struct kt_progress *progress,
		     struct kt_bulk *ret)
{
	struct input in;
	int rc = read_input(path, KT_BULK_BYTES_MAX, progress, &in);
	if (rc || in.oversize)
		kt_progress_drop(progress); /* refused before any work: the message alone */
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
	rc = kt_bulk_parse(in.data, in.len, fmt, progress, ret, msg, sizeof(msg));
	input_release(&in);
	if (rc) {
		kt_progress_end(progress);
		return failure("%s", msg);
	}
	return 0;
}

/* Apply a bulk put or delete in one transaction: all entries or none. */
static int bulk_write(kvc_store *store, const struct kt_bulk *b, bool put,
		      struct kt_progress *progress)
{
	char msg[KT_APPLY_ERRMSG_MAX];

	int rc = kt_bulk_apply(store, b, put ? KT_BULK_PUT : KT_BULK_KEYS, progress, msg,
			       sizeof(msg));
	kt_progress_end(progress);
	if (rc)
		return failure("%s", msg);
	fprintf(stderr, "Success! %s %zu key%s\n", put ? "Put" : "Deleted", b->count,
		b->count == 1 ? "" : "s");
	return 0;
}

/*
 * What wrangler 4's `kv bulk get` prints: the "values" object of Workers
 * KV's answer, as JSON.stringify(values, null, 2) writes it: each key once
 * (the first time it is named) with its value as a string, null when
 * missing; with --metadata (the API's withMetadata) each value is
 * {"value":..,"metadata":..}.  A value that is not UTF-8 cannot be a JSON
 * string: it is {"value":"<base64>","base64":true} (wrangler would print
 * it with U+FFFD for the bytes it cannot decode).  wrangler's "Success!"
 * goes to stderr, so that stdout is JSON.
 */
/* {"value":..,"metadata":..,"base64":true} of one key, indented as a
 * member of the values object.  @return 0 or -ENOMEM */
static int print_value_object(const struct kvc_record *rec, bool with_metadata)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	putc('{', f);
	kt_json_value_members(f, rec->value, rec->value_len, with_metadata, rec->metadata,
			      rec->metadata_len);
	putc('}', f);
	if (fclose(f)) {
		free(buf);
		return -ENOMEM;
	}
	kt_json_pretty(stdout, buf, len, 2);
	free(buf);
	return 0;
}

static int bulk_get(kvc_store *store, const struct kt_bulk *b, bool with_metadata,
		    struct kt_progress *progress)
{
	for (size_t i = 0; i < b->count; i++) {
		const struct kt_bulk_entry *e = &b->entries[i];
		char why[MSG_MAX];
		if (kvc_key_check_msg(e->key, e->key_len, why, sizeof(why))) {
			char shown[100];
			kt_bulk_show_key(e->key, e->key_len, shown, sizeof(shown));
			kt_progress_end(progress);
			return failure("bulk entry %zu (key '%s'): %s", i, shown, why);
		}
	}
	bool *repeat = kt_bulk_repeats(b);
	if (!repeat) {
		kt_progress_end(progress);
		return failure("%s", strerror(ENOMEM));
	}
	kvc_txn *txn;
	int rc = kvc_txn_begin(store, KVC_TXN_READ, &txn);
	if (rc) {
		kt_progress_end(progress);
		free(repeat);
		return failure("cannot read the store: %s", strerror(-rc));
	}
	kt_progress_phase(progress, NULL, "keys", b->count, false);
	bool first = true;
	uint64_t bytes = 0;
	putchar('{');
	for (size_t i = 0; i < b->count && !rc; i++) {
		const struct kt_bulk_entry *e = &b->entries[i];
		struct kvc_record rec = {0};
		if (!repeat[i])
			rc = kvc_get(txn, e->key, e->key_len, 0, &rec);
		if (!rc)
			bytes += rec.value_len;
		kt_progress_update_bytes(progress, i + 1, bytes);
		if (repeat[i])
			continue;
		fputs(first ? "\n  " : ",\n  ", stdout);
		first = false;
		kt_json_string(stdout, e->key, e->key_len);
		fputs(": ", stdout);
		if (rc == -ENOENT) {
			rc = 0;
			fputs("null", stdout);
			continue;
		}
		if (rc)
			break;
		bool text = kvc_utf8_valid(rec.value, rec.value_len);
		if (!with_metadata && text) {
			kt_json_string(stdout, rec.value, rec.value_len);
			continue;
		}
		rc = print_value_object(&rec, with_metadata);
	}
	kt_progress_end(progress);
	fputs(first ? "}\n" : "\n}\n", stdout);
	free(repeat);
	if (rc)
		return txn_failure(txn, rc);
	kvc_txn_abort(txn);
	rc = finish_stdout(0);
	if (!rc)
		fputs("Success!\n", stderr);
	return rc;
}

int cmd_bulk(kvc_store *store, const struct args *a)
{
	int rc;
	const char *sub = a->pos[0];
	bool put = !strcmp(sub, "put"), get = !strcmp(sub, "get");
	struct kt_bulk b;
	struct kt_progress progress;
	kt_progress_init(&progress, STDERR_FILENO, put ? "bulk put" : get ? "bulk get" : "bulk delete",
			 "keys", 0);
	if (get) /* its data on the screen: no line through it */
		progress.enabled = progress.enabled && !isatty(STDOUT_FILENO);
	rc = load_bulk(a->pos[1], put ? KT_BULK_PUT : KT_BULK_KEYS, &progress, &b);
	if (rc)
		return rc;
	if (get) {
		rc = bulk_get(store, &b, a->opts & OPT_METADATA_FLAG, &progress);
	} else {
		kt_progress_phase(&progress, NULL, "keys", b.count, false);
		rc = bulk_write(store, &b, put, &progress);
	}
	kt_bulk_release(&b);
	return rc;
}

