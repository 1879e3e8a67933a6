/*
 * routes_ns: the namespace routes.
 *   GET    .../namespaces?page=&per_page=&order=id|title&direction=asc|desc
 *   POST   .../namespaces            {"title":T}
 *   GET    .../namespaces/{id}
 *   PUT    .../namespaces/{id}       {"title":T}   (rename)
 *   DELETE .../namespaces/{id}
 * A namespace is {"id","title","supports_url_encoding":true}: keys in
 * paths are always URL-decoded, as that flag tells clients.
 */
#include "kvapi.h"

#include "common/json.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PER_PAGE_DEFAULT 20
#define PER_PAGE_MAX 1000

static void write_ns(FILE *f, const char *id, const char *title)
{
	fprintf(f, "{\"id\":\"%s\",\"title\":", id);
	kt_json_string(f, title, strlen(title));
	fputs(",\"supports_url_encoding\":true}", f);
}

static void reply_ns(struct ka_req *r, const char *id, const char *title)
{
	struct ka_json j;
	if (ka_json_open(&j))
		return;
	write_ns(j.f, id, title);
	if (ka_json_close(&j) == 0)
		ka_reply_ok(r, j.p, NULL);
	ka_json_release(&j);
}

/* A query number within [lo, hi], or @dflt when absent.  @return 0 or -EINVAL */
static int query_num(struct ka_req *r, const char *name, int64_t lo, int64_t hi, int64_t dflt,
		     int64_t *ret)
{
	char *s;
	size_t n;
	int rc = ka_query(r, name, &s, &n);
	if (rc == -ENOENT) {
		*ret = dflt;
		return 0;
	}
	if (rc)
		return rc;
	rc = ka_parse_int(s, ret);
	free(s);
	return rc || *ret < lo || *ret > hi ? -EINVAL : 0;
}

static void list_namespaces(struct ka_req *r)
{
	int64_t page, per_page;
	if (query_num(r, "page", 1, INT32_MAX, 1, &page)) {
		ka_reply_error(r, 400, KA_E_PAGE, "malformed page argument");
		return;
	}
	if (query_num(r, "per_page", 1, PER_PAGE_MAX, PER_PAGE_DEFAULT, &per_page)) {
		ka_reply_error(r, 400, KA_E_PER_PAGE, "malformed per_page argument");
		return;
	}
	char *order = NULL, *direction = NULL;
	size_t n;
	ka_query(r, "order", &order, &n);
	ka_query(r, "direction", &direction, &n);
	bool by_id = order && !strcmp(order, "id");
	bool desc = direction && !strcmp(direction, "desc");
	bool bad = (order && !by_id && strcmp(order, "title")) ||
		   (direction && !desc && strcmp(direction, "asc"));
	free(order);
	free(direction);
	if (bad) {
		ka_reply_error(r, 400, KA_E_VALUE,
			       "order takes id or title, direction asc or desc");
		return;
	}
	struct ka_ns_info *v;
	size_t count;
	int rc = ka_ns_list(r->srv->reg, by_id, &v, &count);
	if (rc) {
		ka_reply_kvc(r, rc, "cannot list the namespaces");
		return;
	}
	struct ka_json j, info;
	if (ka_json_open(&j) == 0) {
		uint64_t first = (uint64_t)(page - 1) * (uint64_t)per_page, shown = 0;
		fputc('[', j.f);
		for (uint64_t i = first; i < count && shown < (uint64_t)per_page; i++, shown++) {
			size_t k = desc ? count - 1 - i : i;
			if (shown)
				fputc(',', j.f);
			write_ns(j.f, v[k].id, v[k].title);
		}
		fputc(']', j.f);
		if (ka_json_close(&j) == 0 && ka_json_open(&info) == 0) {
			fprintf(info.f,
				"{\"page\":%" PRId64 ",\"per_page\":%" PRId64
				",\"count\":%" PRIu64 ",\"total_count\":%zu}",
				page, per_page, shown, count);
			if (ka_json_close(&info) == 0)
				ka_reply_ok(r, j.p, info.p);
			ka_json_release(&info);
		}
		ka_json_release(&j);
	}
	ka_ns_infos_free(v, count);
}

/*
 * The title of a {"title":T} body into @ret (a copy; free()), or a reply
 * saying what is wrong with the body.  @return 0, or -EINVAL (replied)
 */
static int body_title(struct ka_req *r, char **ret)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)r->body.p, r->body.len, 0, &jerr);
	if (!doc || !json_is_object(doc)) {
		ka_reply_error(r, 400, KA_E_VALUE, "could not parse request body: %s",
			       doc ? "not a JSON object" : jerr.text);
		json_decref(doc);
		return -EINVAL;
	}
	json_t *t = json_object_get(doc, "title");
	const char *title = json_string_value(t);
	size_t len = title ? json_string_length(t) : 0;
	int rc = 0;
	if (!title || len == 0) {
		ka_reply_error(r, 400, KA_E_TITLE, "missing title");
		rc = -EINVAL;
	} else if (len > KA_TITLE_MAX || strlen(title) != len) {
		ka_reply_error(r, 400, KA_E_TITLE,
			       "a title is 1 to %u bytes of text without NUL", KA_TITLE_MAX);
		rc = -EINVAL;
	} else if (!(*ret = strdup(title))) {
		ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
		rc = -ENOMEM;
	}
	json_decref(doc);
	return rc;
}

static void reply_exists(struct ka_req *r)
{
	ka_reply_error(r, 400, KA_E_NS_EXISTS,
		       "a namespace with this account ID and title already exists");
}

void ka_route_namespaces(struct ka_req *r)
{
	if (strcmp(r->method, "POST")) {
		list_namespaces(r);
		return;
	}
	char *title;
	if (body_title(r, &title))
		return;
	struct ka_ns_info made;
	int rc = ka_ns_create(r->srv->reg, title, &made);
	free(title);
	if (rc == -EEXIST) {
		reply_exists(r);
		return;
	}
	if (rc) {
		ka_reply_kvc(r, rc, NULL);
		return;
	}
	ka_log(r->srv, "created namespace %s", made.id);
	reply_ns(r, made.id, made.title);
	free(made.title);
}

void ka_route_namespace(struct ka_req *r)
{
	struct ka_registry *reg = r->srv->reg;
	int rc;
	if (!strcmp(r->method, "DELETE")) {
		/* Let go of the store first: the delete removes it when the
		 * last request holding it ends. */
		ka_ns_put(reg, r->ns);
		r->ns = NULL;
		rc = ka_ns_delete(reg, r->ns_id);
		if (rc == -ENOENT)
			ka_reply_error(r, 404, KA_E_NS_NOT_FOUND, "namespace not found");
		else if (rc)
			ka_reply_kvc(r, rc, NULL);
		else {
			ka_log(r->srv, "deleted namespace %s", r->ns_id);
			ka_reply_ok(r, "{}", NULL);
		}
		return;
	}
	if (!strcmp(r->method, "PUT")) {
		char *title;
		if (body_title(r, &title))
			return;
		rc = ka_ns_rename(reg, r->ns_id, title);
		if (rc == -EEXIST)
			reply_exists(r);
		else if (rc == -ENOENT)
			ka_reply_error(r, 404, KA_E_NS_NOT_FOUND, "namespace not found");
		else if (rc)
			ka_reply_kvc(r, rc, NULL);
		else
			reply_ns(r, r->ns_id, title);
		free(title);
		return;
	}
	char *title;
	rc = ka_ns_title(reg, r->ns_id, &title);
	if (rc == -ENOENT) {
		ka_reply_error(r, 404, KA_E_NS_NOT_FOUND, "namespace not found");
		return;
	}
	if (rc) {
		ka_reply_kvc(r, rc, NULL);
		return;
	}
	reply_ns(r, r->ns_id, title);
	free(title);
}
