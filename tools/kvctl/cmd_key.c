/*
 * cmd_key: the commands of one key (get, put, delete) and the listing of
 * keys (list), each in one transaction.  A write's expiry comes from
 * --ttl or --expiration through kvcore's kvc_write_set_expiry, as bulk put's.
 */
#include "kvctl.h"

#include "common/json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>

/* ------------------------------------------------------------ get/put/delete */

int cmd_get(kvc_store *store, const struct args *a)
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
	if (rc)
		return txn_failure(txn, rc);
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

int cmd_put(kvc_store *store, const struct args *a)
{
	int rc;
	struct kvc_write w = {0};
	char msg[MSG_MAX];
	w.set = KVC_SET_VALUE | KVC_SET_METADATA;
	if (a->metadata) {
		w.metadata = a->metadata;
		w.metadata_len = strlen(a->metadata);
	}
	if (kvc_write_set_expiry(&w, a->expiration != NULL, a->expiration_s, a->ttl != NULL, a->ttl_s, msg,
				 sizeof(msg)))
		return failure("%s", msg);

	struct input in = {0};
	if (a->npos == 2) {
		w.value = a->pos[1];
		w.value_len = strlen(a->pos[1]);
	} else {
		rc = read_input(a->path, KVC_VALUE_MAX, NULL, &in);
		if (rc)
			return failure("cannot read '%s': %s", a->path ? a->path : "-",
				       strerror(-rc));
		w.value = in.data;
		w.value_len = in.len;
	}
	msg[0] = 0;
	rc = kvc_write_one(store, a->pos[0], strlen(a->pos[0]), &w, msg, sizeof(msg));
	input_release(&in);
	if (rc)
		return failure("%s", *msg ? msg : strerror(-rc));
	return 0;
}

int cmd_delete(kvc_store *store, const struct args *a)
{
	int rc;
	char msg[MSG_MAX] = "";
	rc = kvc_delete_one(store, a->pos[0], strlen(a->pos[0]), msg, sizeof(msg));
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

int cmd_list(kvc_store *store, const struct args *a)
{
	int rc;
	unsigned limit = 0;
	if (a->limit) {
		char msg[MSG_MAX];
		if (kvc_list_limit(a->limit_n, &limit, msg, sizeof(msg)))
			return failure("%s", msg);
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
		int status = txn_failure(txn, rc);
		if (c.printed)
			fputs("\n]\n", stdout);
		fflush(stdout);
		return status;
	}
	kvc_txn_abort(txn);
	fputs(c.printed ? "\n]\n" : "[]\n", stdout);
	return finish_stdout(0);
}

