/*
 * server: the HTTP side of kvapi, on libmicrohttpd with a thread per
 * connection (a handler may wait for the store's writer lock without
 * holding up other clients), a connection limit and an idle timeout.
 *
 * A request is judged on its headers first: who sent it (auth), where it
 * goes (route, method, namespace) and whether its announced length fits
 * the route; a refusal is sent before any of the body is read, and the
 * connection is then closed.  A body is gathered into memory bounded by
 * its route's limit while it arrives: one byte past the limit and the
 * request is refused (413), so no client makes kvapi hold more than a
 * route allows.  Then one handler makes the reply.
 *
 * All requests together are bounded by the memory budget (memory.c): an
 * announced body reserves its whole length before any of it is read, a
 * chunked one reserves as its buffer grows; a route whose handler copies
 * the body (multipart, bulk) reserves twice that, so that a request never
 * holds part of what it needs while it waits for the rest (two such
 * requests would wait on each other).  When the budget has no room within
 * its wait, the request is refused with 503, the body unread (announced)
 * or dropped (chunked), as for 413.
 *
 * libmicrohttpd is given an unescape callback that does nothing: the path
 * and the query arrive as sent and url.c decodes each exactly once.
 */
#include "kvapi.h"

#include "common/bulk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define CONNECTION_TIMEOUT_S 60u

static const char api_prefix[] = "/client/v4/accounts/";
static const char ns_infix[] = "/storage/kv/namespaces";

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ka_log(struct ka_server *srv, const char *fmt, ...)
{
	char line[2048];
	int n = snprintf(line, sizeof(line), "kvapi: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&srv->log_lock);
	fprintf(stderr, "%s\n", line);
	pthread_mutex_unlock(&srv->log_lock);
}

int ka_query(struct ka_req *r, const char *name, char **ret, size_t *ret_len)
{
	const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
	if (!v)
		return -ENOENT;
	return ka_url_decode(v, strlen(v), true, ret, ret_len);
}

/* Nothing is decoded by libmicrohttpd: url.c decodes once. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}

static const struct sockaddr *client_addr(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return ci ? ci->client_addr : NULL;
}

/* Whether the request may be served; when not, the refusal is the reply. */
static bool authorized(struct ka_req *r)
{
	struct ka_server *srv = r->srv;
	if (!srv->token) {
		if (is_loopback(client_addr(r->conn)))
			return true;
		ka_reply_error(r, MHD_HTTP_FORBIDDEN, KA_E_AUTH,
			       "kvapi serves only loopback clients when it runs without "
			       "--token-file");
		return false;
	}
	const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	static const char bearer[] = "Bearer ";
	if (h && !strncasecmp(h, bearer, sizeof(bearer) - 1)) {
		/* Equal-length digests, compared in constant time: neither
		 * the token's bytes nor its length show in the timing. */
		const char *given = h + sizeof(bearer) - 1;
		unsigned char a[32], b[32];
		crypto_generichash(a, sizeof(a), (const unsigned char *)given, strlen(given),
				   NULL, 0);
		crypto_generichash(b, sizeof(b), (const unsigned char *)srv->token,
				   srv->token_len, NULL, 0);
		if (sodium_memcmp(a, b, sizeof(a)) == 0)
			return true;
	}
	ka_reply_error(r, MHD_HTTP_FORBIDDEN, KA_E_AUTH, "Authentication error");
	return false;
}

/* Which methods each route takes, for 405 and its Allow header. */
static const char *route_methods(enum ka_route rt)
{
	switch (rt) {
	case KA_R_NAMESPACES: return "GET, POST";
	case KA_R_NAMESPACE: return "GET, PUT, DELETE";
	case KA_R_KEYS: return "GET";
	case KA_R_VALUES: return "GET, PUT, DELETE";
	case KA_R_METADATA: return "GET";
	case KA_R_BULK: return "PUT, DELETE";
	case KA_R_BULK_DELETE: return "POST";
	case KA_R_BULK_GET: return "POST";
	default: return "";
	}
}

static bool method_allowed(enum ka_route rt, const char *m)
{
	if (!strcmp(m, "HEAD"))
		m = "GET";
	const char *list = route_methods(rt);
	size_t n = strlen(m);
	for (const char *p = list; (p = strstr(p, m)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == 0))
			return true;
	return false;
}

/*
 * Split the path into route, namespace id and key.  The account segment
 * is any non-empty segment: there is one account, the server's.
 * @return 0, or -ENOENT (no such route)
 */
static int parse_route(struct ka_req *r)
{
	const char *p = r->url;
	size_t pl = sizeof(api_prefix) - 1;
	if (strncmp(p, api_prefix, pl))
		return -ENOENT;
	p += pl;
	const char *slash = strchr(p, '/');
	if (!slash || slash == p)
		return -ENOENT;
	p = slash;
	size_t il = sizeof(ns_infix) - 1;
	if (strncmp(p, ns_infix, il))
		return -ENOENT;
	p += il;
	if (!*p || !strcmp(p, "/")) {
		r->route = KA_R_NAMESPACES;
		return 0;
	}
	if (*p != '/')
		return -ENOENT;
	p++;
	size_t idl = strcspn(p, "/");
	if (idl == 0)
		return -ENOENT;
	if (!ka_is_hex_id(p, idl)) {
		r->route = KA_R_NAMESPACE; /* refused as a malformed id */
		r->ns_id[0] = 0;
		return 0;
	}
	for (size_t i = 0; i < KA_ID_LEN; i++) /* wrangler accepts either case */
		r->ns_id[i] = (char)(p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 'a' : p[i]);
	r->ns_id[KA_ID_LEN] = 0;
	p += idl;
	if (!*p || !strcmp(p, "/")) {
		r->route = KA_R_NAMESPACE;
		return 0;
	}
	p++;
	static const struct {
		const char *name;
		enum ka_route rt;
	} fixed[] = {
		{"keys", KA_R_KEYS},         {"keys/", KA_R_KEYS},
		{"bulk", KA_R_BULK},         {"bulk/", KA_R_BULK},
		{"bulk/delete", KA_R_BULK_DELETE}, {"bulk/get", KA_R_BULK_GET},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!strcmp(p, fixed[i].name)) {
			r->route = fixed[i].rt;
			return 0;
		}
	const char *rest = NULL;
	if (!strncmp(p, "values/", 7)) {
		r->route = KA_R_VALUES;
		rest = p + 7;
	} else if (!strncmp(p, "metadata/", 9)) {
		r->route = KA_R_METADATA;
		rest = p + 9;
	} else {
		return -ENOENT;
	}
	/* The rest of the path is the key, "/" and all, decoded once. */
	if (ka_url_decode(rest, strlen(rest), false, &r->key, &r->key_len))
		return -ENOMEM;
	return 0;
}

/* 413 for a body of @len bytes (or at least that many): a value PUT in
 * kvcore's words (Workers KV's message), any other body by its limit. */
static void reply_too_large(struct ka_req *r, uint64_t len)
{
	char msg[256];
	if (r->route == KA_R_VALUES && !r->multipart && kvc_value_len_check(len, msg, sizeof(msg)))
		ka_reply_error(r, 413, KA_E_TOO_LARGE, "%s", msg);
	else
		ka_reply_error(r, 413, KA_E_TOO_LARGE,
			       "request body of %" PRIu64 " bytes exceeds the limit of %zu bytes", len,
			       r->body_max);
}

/* The body limit of the request's route, and its announced length checked. */
static bool body_fits(struct ka_req *r)
{
	bool bulk = r->route == KA_R_BULK || r->route == KA_R_BULK_DELETE ||
		    r->route == KA_R_BULK_GET;
	r->body_max = KA_SMALL_BODY_MAX;
	if (bulk)
		r->body_max = KT_BULK_BYTES_MAX;
	if (r->route == KA_R_VALUES && !strcmp(r->method, "PUT")) {
		const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_TYPE);
		r->multipart = ct && !strncasecmp(ct, "multipart/form-data", 19);
		r->body_max = KVC_VALUE_MAX + (r->multipart ? KA_MULTIPART_SLACK : 0);
	}
	/* The parts of a multipart value and the entries of a bulk body are
	 * copies as big as the body, made by the handler. */
	r->body_copies = bulk || r->multipart ? 2 : 1;
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t len;
	if (!cl || ka_parse_int(cl, &len) || len <= 0)
		return true;
	if ((uint64_t)len <= r->body_max) {
		/* The whole announced length is reserved and allocated now
		 * (pages are touched only as the body arrives), so a body
		 * that cannot be held is refused before it is read. */
		if (ka_req_hold(r, (uint64_t)r->body_copies * (uint64_t)len)) {
			ka_reply_busy(r);
			return false;
		}
		r->body.p = malloc((size_t)len);
		if (!r->body.p) {
			ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
			return false;
		}
		r->body.cap = (size_t)len;
		return true;
	}
	reply_too_large(r, (uint64_t)len);
	return false;
}

/* Judge the request on its headers; false when the reply is a refusal. */
static bool admit(struct ka_req *r)
{
	if (!authorized(r))
		return false;
	int rc = parse_route(r);
	if (rc == -ENOMEM) {
		ka_reply_error(r, 500, KA_E_INTERNAL, "out of memory");
		return false;
	}
	if (rc) {
		ka_reply_error(r, MHD_HTTP_NOT_FOUND, KA_E_NO_ROUTE, "No route for that URI");
		return false;
	}
	if (!method_allowed(r->route, r->method)) {
		ka_reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, KA_E_METHOD,
			       "Method not allowed for this route; it takes %s",
			       route_methods(r->route));
		if (r->resp)
			MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ALLOW,
						route_methods(r->route));
		return false;
	}
	if (r->route != KA_R_NAMESPACES) {
		if (!r->ns_id[0]) {
			ka_reply_error(r, MHD_HTTP_BAD_REQUEST, KA_E_NS_ID,
				       "namespace id must be %d hexadecimal digits", KA_ID_LEN);
			return false;
		}
		rc = ka_ns_get(r->srv->reg, r->ns_id, &r->ns);
		if (rc == -ENOENT) {
			ka_reply_error(r, MHD_HTTP_NOT_FOUND, KA_E_NS_NOT_FOUND,
				       "namespace not found");
			return false;
		}
		if (rc) {
			ka_reply_error(r, 500, KA_E_INTERNAL, "cannot open namespace %s: %s",
				       r->ns_id, strerror(-rc));
			return false;
		}
	}
	return body_fits(r);
}

/* Free the body and give back what the request holds for it. */
static void drop_body(struct ka_req *r)
{
	ka_req_unhold(r, r->held);
	kt_buf_release(&r->body);
}

/*
 * Room in the body for @n more bytes (len + n <= body_max): the buffer
 * doubles, but never past the route's limit, and each growth is reserved
 * (with its copy) before it is allocated.
 * @return 0, -EAGAIN (no room in the budget), -ENOMEM
 */
static int body_room(struct ka_req *r, size_t n)
{
	struct kt_buf *b = &r->body;
	if (n <= b->cap - b->len)
		return 0;
	size_t want = b->len + n;
	size_t cap = b->cap ? 2 * b->cap : 64u * 1024u;
	if (cap < want)
		cap = want;
	if (cap > r->body_max)
		cap = r->body_max;
	uint64_t more = (uint64_t)r->body_copies * (cap - b->cap);
	if (ka_req_hold(r, more))
		return -EAGAIN;
	unsigned char *p = realloc(b->p, cap);
	if (!p) {
		ka_req_unhold(r, more);
		return -ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static void dispatch(struct ka_req *r)
{
	switch (r->route) {
	case KA_R_NAMESPACES: ka_route_namespaces(r); break;
	case KA_R_NAMESPACE: ka_route_namespace(r); break;
	case KA_R_KEYS: ka_route_keys(r); break;
	case KA_R_VALUES: ka_route_values(r); break;
	case KA_R_METADATA: ka_route_metadata(r); break;
	default: ka_route_bulk(r); break;
	}
}

static enum MHD_Result send_reply(struct ka_req *r)
{
	if (!r->resp || !r->status)
		return MHD_NO; /* out of memory: close the connection */
	return MHD_queue_response(r->conn, r->status, r->resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct ka_req *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		r->srv = cls;
		r->conn = conn;
		r->method = strdup(method);
		r->url = strdup(url);
		r->start_ns = mono_ns();
		if (!r->method || !r->url)
			return MHD_NO;
		if (!admit(r)) {
			r->refused = true;
			return send_reply(r);
		}
		return MHD_YES;
	}
	if (r->refused) { /* the reply is out; what still arrives is dropped */
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->overflow) {
		/* libmicrohttpd sends no reply in the middle of a body: drop
		 * the rest, up to twice what the route takes, and refuse
		 * at its end; past that, close the connection. */
		if (!*upload_size)
			return send_reply(r);
		r->dropped += *upload_size;
		*upload_size = 0;
		return r->dropped > 2 * (uint64_t)r->body_max ? MHD_NO : MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (n > r->body_max - r->body.len) {
			reply_too_large(r, (uint64_t)r->body.len + n);
			r->overflow = true;
			r->dropped = r->body.len + n;
			drop_body(r);
			return MHD_YES;
		}
		int rc = body_room(r, n);
		if (rc == -EAGAIN) {
			ka_reply_busy(r);
			r->overflow = true;
			r->dropped = r->body.len + n;
			drop_body(r);
			return MHD_YES;
		}
		if (rc)
			return MHD_NO;
		memcpy(r->body.p + r->body.len, upload_data, n);
		r->body.len += n;
		return MHD_YES;
	}
	dispatch(r);
	return send_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	struct ka_server *srv = cls;
	struct ka_req *r = *con_cls;
	if (!r)
		return;
	if (srv->verbose) {
		char addr[INET6_ADDRSTRLEN] = "?";
		const struct sockaddr *sa = client_addr(r->conn);
		if (sa && sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr,
				  sizeof(addr));
		else if (sa && sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr,
				  sizeof(addr));
		ka_log(srv, "%s %s %s %u%s %.1f ms", addr, r->method, r->url, r->status,
		       toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)",
		       (double)(mono_ns() - r->start_ns) / 1e6);
	}
	if (r->ns)
		ka_ns_put(srv->reg, r->ns);
	if (r->resp)
		MHD_destroy_response(r->resp);
	drop_body(r);
	free(r->key);
	free(r->method);
	free(r->url);
	free(r);
	*con_cls = NULL;
}

/* libmicrohttpd's own messages (MHD_OPTION_EXTERNAL_LOGGER). */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt,
						       va_list ap)
{
	struct ka_server *srv = cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	if (srv->verbose)
		ka_log(srv, "http: %s", msg);
}

struct MHD_Daemon *ka_server_start(struct ka_server *srv, const char *host, uint16_t port,
				   char *ret_bound, size_t bound_size, char *err, size_t err_size)
{
	struct sockaddr_storage ss = {0};
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_ERROR_LOG;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, err_size, "'%s' is not an IPv4 or IPv6 address", host);
		return NULL;
	}
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, port, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, KA_CONNECTIONS_MAX,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->per_address_max,
		MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
		MHD_OPTION_END);
	if (!d) {
		snprintf(err, err_size, "cannot listen on %s port %u: %s", host, port,
			 strerror(errno));
		return NULL;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned bound = di ? di->port : port;
	if (strchr(host, ':'))
		snprintf(ret_bound, bound_size, "[%s]:%u", host, bound);
	else
		snprintf(ret_bound, bound_size, "%s:%u", host, bound);
	return d;
}
