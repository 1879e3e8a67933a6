/*
 * routes_bulk: the bulk routes of one namespace.
 *   PUT    .../{id}/bulk           [{key,value,base64?,expiration?,
 *                                    expiration_ttl?,metadata?},...]
 *   POST   .../{id}/bulk/delete    ["k",...] (and the other key-list shapes)
 *   DELETE .../{id}/bulk           the same, the older route
 *   POST   .../{id}/bulk/get       {"keys":[...],"type":"text"|"json",
 *                                   "withMetadata":B}
 * Bodies are read by common/bulk.c, as kvctl reads bulk files; put and
 * delete apply every entry in one write transaction or none, get answers
 * from one snapshot.
 */
#include "kvapi.h"

#include "common/apply.h"
#include "common/bulk.h"
#include "common/json.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Parse the body as @fmt; false when the reply says why it cannot be. */
static bool parse_body(struct ka_req *r, enum kt_bulk_format fmt, struct kt_bulk *b)
{
	char msg[KT_BULK_ERRMSG_MAX];
	int rc = kt_bulk_parse(r->body.p ? (const void *)r->body.p : "", r->body.len, fmt, NULL, b,
			       msg, sizeof(msg));
	if (rc == -E2BIG)
		ka_reply_error(r, 413, KA_E_TOO_LARGE, "%s", msg);
	else if (rc == -ENOMEM)
		ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
	else if (rc)
		ka_reply_error(r, 400, KA_E_VALUE, "could not parse request body: %s", msg);
	return rc == 0;
}

static void bulk_write(struct ka_req *r, bool put)
{
	struct kt_bulk b = {0};
	enum kt_bulk_format fmt = put ? KT_BULK_PUT : KT_BULK_KEYS;
	if (!parse_body(r, fmt, &b))
		return;
	char msg[KT_APPLY_ERRMSG_MAX];
	int rc = kt_bulk_apply(ka_ns_store(r->ns), &b, fmt, NULL, msg, sizeof(msg));
	if (rc) {
		ka_reply_kvc(r, rc, msg);
	} else {
		char result[96];
		snprintf(result, sizeof(result),
			 "{\"successful_key_count\":%zu,\"unsuccessful_keys\":[]}", b.count);
		ka_reply_ok(r, result, NULL);
	}
	kt_bulk_release(&b);
}

/* bulk/get's options; false when the reply says what is wrong. */
static bool get_options(struct ka_req *r, bool *ret_json, bool *ret_meta)
{
	json_error_t jerr;
	json_t *doc = json_loadb(r->body.p ? (const char *)r->body.p : "", r->body.len, 0, &jerr);
	json_t *type = json_object_get(doc, "type");
	json_t *meta = json_object_get(doc, "withMetadata");
	bool ok = true;
	*ret_json = false;
	*ret_meta = false;
	if (type && !json_is_null(type)) {
		const char *t = json_string_value(type);
		if (t && !strcmp(t, "json"))
			*ret_json = true;
		else if (!t || strcmp(t, "text"))
			ok = false;
	}
	if (meta && !json_is_null(meta)) {
		if (!json_is_boolean(meta))
			ok = false;
		else
			*ret_meta = json_is_true(meta);
	}
	json_decref(doc);
	if (!ok)
		ka_reply_error(r, 400, KA_E_VALUE,
			       "could not parse request body: type is \"text\" or \"json\", "
			       "withMetadata true or false");
	return ok;
}

/*
 * One key of bulk/get into the "values" object.  @return 0, or -EINVAL
 * with @why set (a value that is not the JSON type "json" asked for).
 */
static int get_one(kvc_txn *txn, FILE *f, const struct kt_bulk_entry *e, bool missing,
		   bool as_json, bool with_meta, char *why, size_t why_size)
{
	kt_json_string(f, e->key, e->key_len);
	fputc(':', f);
	struct kvc_record rec;
	int rc = missing ? -ENOENT : kvc_get(txn, e->key, e->key_len, 0, &rec);
	if (rc == -ENOENT) {
		fputs("null", f); /* as Workers KV: a key that is not there */
		return 0;
	}
	if (rc) {
		snprintf(why, why_size, "%s", kvc_txn_errmsg(txn));
		return rc;
	}
	if (with_meta)
		fputs("{\"value\":", f);
	if (as_json) {
		json_error_t jerr;
		json_t *v = json_loadb(rec.value, rec.value_len, JSON_DECODE_ANY, &jerr);
		if (!v) {
			char shown[100];
			snprintf(why, why_size, "value of key '%s' is not JSON: %s",
				 kt_bulk_show_key(e->key, e->key_len, shown, sizeof(shown)),
				 jerr.text);
			return -EINVAL;
		}
		json_dumpf(v, f, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(v);
	} else {
		kt_json_string(f, rec.value, rec.value_len);
	}
	if (with_meta) {
		fputs(",\"metadata\":", f);
		if (rec.metadata)
			fwrite(rec.metadata, 1, rec.metadata_len, f);
		else
			fputs("null", f);
		if (rec.expiration)
			fprintf(f, ",\"expiration\":%" PRId64, rec.expiration);
		fputc('}', f);
	}
	return 0;
}

/*
 * Before key @e is read and written: reserve its value (kvcore reads a
 * large one whole into the transaction's memory, until it ends) and the
 * most JSON text it can make (6 bytes a byte: "\u0001"), without waiting
 * (a transaction is open: it must not wait on other requests).
 * @param[out] ret_json    the JSON text reserved, trued up by the caller
 * @param[out] ret_missing the key is not there (get_one need not look)
 * @return 0, or -EAGAIN (no room)
 */
static int reserve_one(struct ka_req *r, kvc_txn *txn, const struct kt_bulk_entry *e,
		       uint64_t *held_txn, uint64_t *ret_json, bool *ret_missing)
{
	struct kvc_record rec;
	int rc = kvc_get(txn, e->key, e->key_len, KVC_GET_NO_VALUE, &rec);
	*ret_missing = rc == -ENOENT;
	uint64_t value = rc ? 0 : rec.value_len;
	uint64_t meta = rc ? 0 : rec.metadata_len;
	uint64_t json = 6u * (value + e->key_len) + meta + 128u;
	if (ka_budget_take(&r->srv->mem, value + json, false))
		return -EAGAIN;
	*held_txn += value;
	*ret_json = json;
	return 0;
}

static void bulk_get(struct ka_req *r)
{
	bool as_json, with_meta;
	if (!get_options(r, &as_json, &with_meta))
		return;
	struct kt_bulk b = {0};
	if (!parse_body(r, KT_BULK_KEYS, &b))
		return;
	/* Every key as kvcore would take it, as kvctl's bulk get asks. */
	for (size_t i = 0; i < b.count; i++) {
		char why[256], shown[100];
		const struct kt_bulk_entry *e = &b.entries[i];
		if (kvc_key_check_msg(e->key, e->key_len, why, sizeof(why))) {
			kt_bulk_show_key(e->key, e->key_len, shown, sizeof(shown));
			ka_reply_error(r, 400, KA_E_VALUE, "bulk entry %zu (key '%s'): %s", i,
				       shown, why);
			kt_bulk_release(&b);
			return;
		}
	}
	/* Each key once, as a JSON object names a member once: in the
	 * order of first appearance. */
	bool *repeat = kt_bulk_repeats(&b);
	kvc_txn *txn = NULL;
	struct ka_json j = {0};
	int rc = repeat ? 0 : -ENOMEM;
	if (!rc)
		rc = kvc_txn_begin(ka_ns_store(r->ns), KVC_TXN_READ, &txn);
	if (!rc)
		rc = ka_json_open(&j);
	char why[512] = "";
	/* Budget held: each value kvcore reads whole into the transaction's
	 * memory (until it ends), and the JSON text written. */
	uint64_t held_txn = 0, held_json = 0;
	if (!rc) {
		/* The envelope is written around the values, not copied
		 * around them: a bulk get's reply can be large. */
		ka_envelope_open_ok(j.f);
		fputs("{\"values\":{", j.f);
		bool first = true;
		for (size_t i = 0; i < b.count && !rc; i++) {
			if (repeat[i])
				continue;
			if (!first)
				fputc(',', j.f);
			first = false;
			uint64_t worst;
			bool missing;
			rc = reserve_one(r, txn, &b.entries[i], &held_txn, &worst, &missing);
			if (rc)
				break;
			long before = ftell(j.f);
			rc = get_one(txn, j.f, &b.entries[i], missing, as_json, with_meta, why,
				     sizeof(why));
			long after = ftell(j.f);
			uint64_t wrote = before >= 0 && after >= before ? (uint64_t)(after - before) : worst;
			if (wrote > worst)
				wrote = worst;
			ka_budget_give(&r->srv->mem, worst - wrote);
			held_json += wrote;
		}
		fputs("}}", j.f);
		ka_envelope_close(j.f);
		if (!rc)
			rc = ka_json_close(&j);
	}
	kvc_txn_abort(txn);
	txn = NULL;
	ka_budget_give(&r->srv->mem, held_txn);
	if (rc == -EAGAIN)
		ka_reply_busy(r);
	else if (rc)
		ka_reply_kvc(r, rc, why);
	if (rc) {
		ka_json_release(&j);
		ka_budget_give(&r->srv->mem, held_json);
	} else {
		/* The text and what it holds of the budget are the reply's now. */
		ka_reply_bytes(r, j.p, j.len, "application/json", held_json);
		j.p = NULL;
	}
	free(repeat);
	kt_bulk_release(&b);
}

void ka_route_bulk(struct ka_req *r)
{
	if (r->route == KA_R_BULK_GET)
		bulk_get(r);
	else
		bulk_write(r, r->route == KA_R_BULK && !strcmp(r->method, "PUT"));
}
