/*
 * routes_kv: the routes of keys in one namespace.
 *   GET    .../{id}/keys?prefix=&limit=&cursor=
 *   GET    .../{id}/values/{key}      the raw bytes; "expiration" header
 *   PUT    .../{id}/values/{key}?expiration=&expiration_ttl=
 *          raw body, or multipart/form-data with "value" and "metadata"
 *   DELETE .../{id}/values/{key}      a missing key is not an error
 *   GET    .../{id}/metadata/{key}    the metadata as the result (or null)
 * Every rule of the data model is kvcore's, and so is every message
 * about it (kvc_txn_errmsg, kvc_write_set_expiry's).
 */
#include "kvapi.h"

#include "common/json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ keys */

struct list_ctx {
	struct ka_json *j;
	size_t count;
};

static int list_one(void *arg, const void *key, size_t key_len, const struct kvc_record *rec)
{
	struct list_ctx *c = arg;
	struct ka_json *j = c->j;
	if (c->count++)
		fputc(',', j->f);
	fputs("{\"name\":", j->f);
	kt_json_string(j->f, key, key_len);
	if (rec->expiration)
		fprintf(j->f, ",\"expiration\":%" PRId64, rec->expiration);
	if (rec->metadata) {
		fputs(",\"metadata\":", j->f);
		fwrite(rec->metadata, 1, rec->metadata_len, j->f);
	}
	fputc('}', j->f);
	return ferror(j->f) ? -ENOMEM : 0;
}

void ka_route_keys(struct ka_req *r)
{
	char *prefix = NULL, *cursor = NULL, *limit_s = NULL;
	size_t prefix_len = 0, n;
	int64_t given = 0;
	unsigned limit = 0;
	uint64_t held = 0;
	char msg[256];
	ka_query(r, "prefix", &prefix, &prefix_len);
	ka_query(r, "cursor", &cursor, &n);
	if (ka_query(r, "limit", &limit_s, &n) == 0 && *limit_s) {
		if (ka_parse_int(limit_s, &given)) {
			ka_reply_error(r, 400, KA_E_LIMIT, "invalid limit argument '%s'", limit_s);
			goto out;
		}
		if (kvc_list_limit(given, &limit, msg, sizeof(msg))) {
			ka_reply_error(r, 400, KA_E_LIMIT, "%s", msg);
			goto out;
		}
	}
	/* The listing's JSON text is reserved at its largest before the
	 * transaction starts: every key escaped at 6 bytes a byte, every
	 * metadata at its limit. */
	uint64_t n_max = limit > 0 ? limit : KVC_LIST_LIMIT_MAX;
	held = n_max * (6u * KVC_KEY_MAX + KVC_METADATA_MAX + 64u);
	if (ka_budget_take(&r->srv->mem, held, true)) {
		held = 0;
		ka_reply_busy(r);
		goto out;
	}
	kvc_txn *txn;
	int rc = kvc_txn_begin(ka_ns_store(r->ns), KVC_TXN_READ, &txn);
	if (rc) {
		ka_reply_kvc(r, rc, NULL);
		goto out;
	}
	struct ka_json j;
	char next[KVC_CURSOR_MAX];
	if (ka_json_open(&j)) {
		kvc_txn_abort(txn);
		goto out;
	}
	fputc('[', j.f);
	struct list_ctx lc = {&j, 0};
	rc = kvc_list(txn, prefix ? prefix : "", prefix_len, cursor, limit, list_one, &lc, next);
	if (rc) {
		ka_reply_kvc(r, rc, kvc_txn_errmsg(txn));
		kvc_txn_abort(txn);
		ka_json_release(&j);
		goto out;
	}
	kvc_txn_abort(txn);
	fputc(']', j.f);
	if (ka_json_close(&j) == 0) {
		size_t count = lc.count;
		struct ka_json info;
		if (ka_json_open(&info) == 0) {
			fprintf(info.f, "{\"count\":%zu,\"cursor\":", count);
			kt_json_string(info.f, next, strlen(next));
			fputc('}', info.f);
			if (ka_json_close(&info) == 0)
				ka_reply_ok(r, j.p, info.p);
			ka_json_release(&info);
		}
	}
	ka_json_release(&j);
out:
	ka_budget_give(&r->srv->mem, held);
	free(prefix);
	free(cursor);
	free(limit_s);
}

/* ---------------------------------------------------------------- values */

/*
 * A large value streamed from the store: each piece is read in a
 * transaction of its own (none waits on the client, so none holds the
 * store's pages back), and each checks that the record is still the one
 * the reply started with.  When it changed (written, deleted, expired)
 * the connection is cut: the client sees a body shorter than announced,
 * which is what a changed object looks like, never a mix of two values.
 */
struct stream {
	struct ka_registry *reg;
	struct ka_ns *ns;       /* held until the reply is freed */
	char *key;
	size_t key_len;
	uint64_t len;
	uint64_t seq;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	if (pos >= s->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	size_t want = s->len - pos < max ? (size_t)(s->len - pos) : max;
	kvc_txn *txn;
	if (kvc_txn_begin(ka_ns_store(s->ns), KVC_TXN_READ, &txn))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	struct kvc_record rec;
	size_t got = 0;
	int rc = kvc_get_range(txn, s->key, s->key_len, (size_t)pos, buf, want, &got, &rec);
	kvc_txn_abort(txn);
	if (rc || rec.seq != s->seq || rec.value_len != s->len || got != want)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return (ssize_t)got;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	ka_ns_put(s->reg, s->ns);
	free(s->key);
	free(s);
}

/* Reply with a stream of @rec's value; the request's namespace goes with it. */
static void reply_stream(struct ka_req *r, const struct kvc_record *rec)
{
	struct stream *s = calloc(1, sizeof(*s));
	char *key = malloc(r->key_len ? r->key_len : 1);
	if (!s || !key) {
		free(s);
		free(key);
		ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
		return;
	}
	memcpy(key, r->key, r->key_len);
	*s = (struct stream){r->srv->reg, r->ns, key, r->key_len, rec->value_len, rec->seq};
	struct MHD_Response *resp = MHD_create_response_from_callback(
		rec->value_len, KA_STREAM_PIECE, stream_read, s, stream_free);
	if (!resp) {
		free(key);
		free(s);
		ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
		return;
	}
	r->ns = NULL; /* the stream's now */
	if (r->resp)
		MHD_destroy_response(r->resp);
	r->resp = resp;
	r->status = MHD_HTTP_OK;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
}

static void get_value(struct ka_req *r, bool metadata_only)
{
	uint64_t held = 0; /* budget reserved for the copy of the value */
again:;
	kvc_txn *txn;
	int rc = kvc_txn_begin(ka_ns_store(r->ns), KVC_TXN_READ, &txn);
	if (rc) {
		ka_reply_kvc(r, rc, NULL);
		goto out;
	}
	struct kvc_record rec;
	rc = kvc_get(txn, r->key, r->key_len, KVC_GET_NO_VALUE, &rec);
	if (rc == -ENOENT) {
		kvc_txn_abort(txn);
		ka_reply_error(r, 404, KA_E_KEY_NOT_FOUND, "key not found");
		goto out;
	}
	if (rc) {
		ka_reply_kvc(r, rc, kvc_txn_errmsg(txn));
		kvc_txn_abort(txn);
		goto out;
	}
	if (metadata_only) {
		char *meta = NULL;
		if (rec.metadata && !(meta = strndup(rec.metadata, rec.metadata_len))) {
			kvc_txn_abort(txn);
			ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
			return;
		}
		kvc_txn_abort(txn);
		ka_reply_ok(r, meta, NULL);
		free(meta);
		return;
	}
	size_t len = rec.value_len, got = 0;
	int64_t expiration = rec.expiration;
	if (len >= KA_STREAM_MIN) {
		kvc_txn_abort(txn);
		reply_stream(r, &rec);
		goto header;
	}
	/* A smaller value is copied out so that no transaction outlives the
	 * handler: a slow reader must not hold the store's map back.  The
	 * copy is reserved first; waiting for room is done outside the
	 * transaction, and the value looked up again after it. */
	if (len > held && ka_budget_take(&r->srv->mem, len - held, false)) {
		kvc_txn_abort(txn);
		if (ka_budget_take(&r->srv->mem, len - held, true)) {
			ka_reply_busy(r);
			goto out;
		}
		held = len;
		goto again;
	}
	if (len > held)
		held = len;
	char *buf = malloc(len ? len : 1);
	if (!buf) {
		kvc_txn_abort(txn);
		ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
		goto out;
	}
	rc = len ? kvc_get_range(txn, r->key, r->key_len, 0, buf, len, &got, NULL) : 0;
	if (rc || got != len) {
		ka_reply_kvc(r, rc ? rc : -EIO, kvc_txn_errmsg(txn));
		kvc_txn_abort(txn);
		free(buf);
		goto out;
	}
	kvc_txn_abort(txn);
	ka_reply_bytes(r, buf, len, "application/octet-stream", held);
	held = 0; /* the reply's now */
header:
	if (r->resp && r->status == MHD_HTTP_OK && expiration) {
		char hv[32];
		snprintf(hv, sizeof(hv), "%" PRId64, expiration);
		MHD_add_response_header(r->resp, "expiration", hv);
	}
out:
	ka_budget_give(&r->srv->mem, held);
}

/* The parts of a multipart value PUT. */
struct parts {
	struct kt_buf value, metadata;
	bool has_metadata;
	bool too_big;
	uint64_t value_seen;
};

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *filename, const char *content_type,
			       const char *transfer_encoding, const char *data, uint64_t off,
			       size_t size)
{
	(void)kind;
	(void)filename;
	(void)content_type;
	(void)transfer_encoding;
	(void)off;
	struct parts *p = cls;
	if (!strcmp(key, "value")) {
		p->value_seen += size;
		if (kvc_value_len_check(p->value_seen, NULL, 0)) {
			p->too_big = true;
			return MHD_NO;
		}
		return size && kt_buf_add(&p->value, data, size) ? MHD_NO : MHD_YES;
	}
	if (!strcmp(key, "metadata")) {
		p->has_metadata = true;
		if (p->metadata.len + size > KA_MULTIPART_SLACK) {
			p->too_big = true;
			return MHD_NO;
		}
		return size && kt_buf_add(&p->metadata, data, size) ? MHD_NO : MHD_YES;
	}
	return MHD_YES; /* other fields are ignored */
}

/* Split the multipart body; false when the reply says why it cannot be. */
static bool read_parts(struct ka_req *r, struct parts *p)
{
	struct MHD_PostProcessor *pp = MHD_create_post_processor(r->conn, 64 * 1024, on_part, p);
	if (!pp) {
		ka_reply_error(r, 400, KA_E_VALUE,
			       "could not parse request body: multipart/form-data without a "
			       "boundary");
		return false;
	}
	enum MHD_Result ok = MHD_post_process(pp, (const char *)r->body.p, r->body.len);
	enum MHD_Result done = MHD_destroy_post_processor(pp);
	if (p->too_big) {
		char msg[256];
		if (kvc_value_len_check(p->value_seen, msg, sizeof(msg)))
			ka_reply_error(r, 413, KA_E_TOO_LARGE, "%s", msg);
		else
			ka_reply_error(r, 413, KA_E_TOO_LARGE,
				       "the metadata part is over %u bytes", KA_MULTIPART_SLACK);
		return false;
	}
	if (ok != MHD_YES || done != MHD_YES) {
		ka_reply_error(r, 400, KA_E_VALUE,
			       "could not parse request body: malformed multipart/form-data");
		return false;
	}
	return true;
}

/*
 * The expiry query arguments into @w, or a reply saying what is wrong.
 * @return 0, or -EINVAL (replied)
 */
static int put_expiry(struct ka_req *r, struct kvc_write *w)
{
	static const char *const names[2] = {"expiration", "expiration_ttl"};
	bool has[2] = {false, false};
	int64_t v[2] = {0, 0};
	for (int i = 0; i < 2; i++) {
		char *s;
		size_t n;
		if (ka_query(r, names[i], &s, &n))
			continue;
		if (*s && ka_parse_int(s, &v[i])) {
			ka_reply_error(r, 400, KA_E_VALUE, "Invalid %s of '%s': not an integer.",
				       names[i], s);
			free(s);
			return -EINVAL;
		}
		has[i] = *s != 0;
		free(s);
	}
	char msg[256];
	if (kvc_write_set_expiry(w, has[0], v[0], has[1], v[1], msg, sizeof(msg))) {
		ka_reply_error(r, 400, KA_E_VALUE, "%s", msg);
		return -EINVAL;
	}
	return 0;
}

static void put_value(struct ka_req *r)
{
	struct kvc_write w = {0};
	w.set = KVC_SET_VALUE | KVC_SET_METADATA;
	if (put_expiry(r, &w))
		return;
	struct parts p = {KT_BUF_INIT, KT_BUF_INIT, false, false, 0};
	if (r->multipart) {
		if (!read_parts(r, &p))
			goto out;
		w.value = p.value.p ? (const void *)p.value.p : "";
		w.value_len = p.value.len;
		if (p.has_metadata) {
			w.metadata = p.metadata.p ? (const char *)p.metadata.p : "";
			w.metadata_len = p.metadata.len;
		}
	} else {
		w.value = r->body.p ? (const void *)r->body.p : "";
		w.value_len = r->body.len;
	}
	char msg[512] = "";
	int rc = kvc_write_one(ka_ns_store(r->ns), r->key, r->key_len, &w, msg, sizeof(msg));
	if (rc)
		ka_reply_kvc(r, rc, msg);
	else
		ka_reply_ok(r, "{}", NULL);
out:
	kt_buf_release(&p.value);
	kt_buf_release(&p.metadata);
}

void ka_route_values(struct ka_req *r)
{
	if (!strcmp(r->method, "PUT")) {
		put_value(r);
	} else if (!strcmp(r->method, "DELETE")) {
		char msg[512] = "";
		int rc = kvc_delete_one(ka_ns_store(r->ns), r->key, r->key_len, msg, sizeof(msg));
		if (rc)
			ka_reply_kvc(r, rc, msg);
		else
			ka_reply_ok(r, "{}", NULL);
	} else {
		get_value(r, false);
	}
}

void ka_route_metadata(struct ka_req *r)
{
	get_value(r, true);
}
