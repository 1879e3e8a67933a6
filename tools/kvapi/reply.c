/*
 * reply: every reply kvapi sends.  JSON replies are Cloudflare's envelope
 *   {"success":B,"errors":[{"code":N,"message":S}],"messages":[],
 *    "result":R[,"result_info":I]}
 * and a kvcore failure becomes the HTTP status and code that fit its
 * errno, with kvcore's own message, so kvctl and kvapi word it the same.
 */
#include "kvapi.h"

#include "common/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ka_json_open(struct ka_json *j)
{
	j->p = NULL;
	j->len = 0;
	j->f = open_memstream(&j->p, &j->len);
	return j->f ? 0 : -ENOMEM;
}

int ka_json_close(struct ka_json *j)
{
	int bad = ferror(j->f);
	int rc = fclose(j->f);
	j->f = NULL;
	return bad || rc ? -ENOMEM : 0;
}

void ka_json_release(struct ka_json *j)
{
	if (j->f)
		fclose(j->f);
	j->f = NULL;
	free(j->p);
	j->p = NULL;
}

/* A reply's bytes and the budget they hold, freed together by MHD. */
struct held_bytes {
	struct ka_budget *mem;
	void *data;
	uint64_t held;
};

static void free_held(void *cls)
{
	struct held_bytes *h = cls;
	free(h->data);
	ka_budget_give(h->mem, h->held);
	free(h);
}

/*
 * Set the reply to @len bytes of @data, taken over (free()d by MHD), and
 * @held bytes of the budget, given back when MHD frees @data.
 */
static void set_reply(struct ka_req *r, unsigned status, char *data, size_t len,
		      const char *content_type, uint64_t held)
{
	if (r->resp)
		MHD_destroy_response(r->resp);
	r->resp = NULL;
	struct held_bytes *h = malloc(sizeof(*h));
	if (h) {
		*h = (struct held_bytes){&r->srv->mem, data, held};
		r->resp = MHD_create_response_from_buffer_with_free_callback_cls(len, data,
										  free_held, h);
	}
	if (!r->resp) {
		free(h);
		free(data);
		ka_budget_give(&r->srv->mem, held);
		r->status = 0; /* server.c closes the connection */
		return;
	}
	MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	r->status = status;
}

static void envelope(struct ka_req *r, unsigned status, bool ok, int code, const char *message,
		     const char *result, const char *result_info)
{
	/* A large result (a keys listing) is copied into the envelope: the
	 * copy is counted, a small one is not (see KA_SMALL_REPLY_MAX). */
	uint64_t held = (result ? strlen(result) : 0) + (result_info ? strlen(result_info) : 0);
	if (held < KA_SMALL_REPLY_MAX) {
		held = 0;
	} else {
		held += 256 + strlen(message ? message : "");
		if (ka_budget_take(&r->srv->mem, held, true)) {
			ka_reply_busy(r);
			return;
		}
	}
	struct ka_json j;
	if (ka_json_open(&j)) {
		ka_budget_give(&r->srv->mem, held);
		r->status = 0;
		return;
	}
	if (ok) {
		ka_envelope_open_ok(j.f);
	} else {
		fprintf(j.f, "{\"success\":false,\"errors\":[{\"code\":%d,\"message\":", code);
		kt_json_string(j.f, message, strlen(message));
		fputs("}],\"messages\":[],\"result\":", j.f);
	}
	fputs(result ? result : "null", j.f);
	if (result_info)
		fprintf(j.f, ",\"result_info\":%s", result_info);
	ka_envelope_close(j.f);
	if (ka_json_close(&j)) {
		ka_json_release(&j);
		ka_budget_give(&r->srv->mem, held);
		r->status = 0;
		return;
	}
	set_reply(r, status, j.p, j.len, "application/json", held);
}

void ka_envelope_open_ok(FILE *f)
{
	fputs("{\"success\":true,\"errors\":[],\"messages\":[],\"result\":", f);
}

void ka_envelope_close(FILE *f)
{
	fputs("}\n", f);
}

void ka_reply_ok(struct ka_req *r, const char *result, const char *result_info)
{
	envelope(r, MHD_HTTP_OK, true, 0, NULL, result, result_info);
}

void ka_reply_error(struct ka_req *r, unsigned status, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	envelope(r, status, false, code, msg, NULL, NULL);
}

void ka_reply_kvc(struct ka_req *r, int rc, const char *msg)
{
	if (!msg || !*msg)
		msg = strerror(-rc);
	switch (rc) {
	case -ENOENT:
		ka_reply_error(r, MHD_HTTP_NOT_FOUND, KA_E_KEY_NOT_FOUND, "%s", msg);
		break;
	case -ENAMETOOLONG: /* a key over 512 bytes: 414 as Workers KV */
		ka_reply_error(r, MHD_HTTP_URI_TOO_LONG, KA_E_KEY, "%s", msg);
		break;
	case -EFBIG: /* value */
	case -E2BIG: /* metadata, bulk file */
		ka_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, KA_E_TOO_LARGE, "%s", msg);
		break;
	case -EINVAL:
		ka_reply_error(r, MHD_HTTP_BAD_REQUEST, KA_E_VALUE, "%s", msg);
		break;
	case -ENOSPC:
		ka_reply_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, KA_E_INTERNAL, "%s", msg);
		break;
	default:
		ka_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, KA_E_INTERNAL, "%s", msg);
		break;
	}
}

void ka_reply_bytes(struct ka_req *r, void *data, size_t len, const char *content_type,
		    uint64_t held)
{
	set_reply(r, MHD_HTTP_OK, data, len, content_type, held);
}

void ka_reply_busy(struct ka_req *r)
{
	char shown[32];
	ka_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, KA_E_INTERNAL,
		       "kvapi is at its memory limit (--memory-max %s): retry later",
		       ka_size_show(r->srv->mem.max, shown, sizeof(shown)));
	if (r->resp)
		MHD_add_response_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}
