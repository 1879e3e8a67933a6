/*
 * kvapi: the Workers KV part of the Cloudflare API v4 over local stores.
 *
 * What each file is for:
 *   main.c         the command line, signals, readiness, the log
 *   server.c       the HTTP side (libmicrohttpd): one struct ka_req per
 *                  request, auth, bounded bodies, routing to a handler
 *   memory.c       the memory budget: bytes held for bodies and replies
 *   reply.c        the envelope {"success","errors","messages","result"},
 *                  Cloudflare's error codes, kvcore errors as replies
 *   url.c          percent-decoding and query numbers (pure; fuzzed)
 *   namespaces.c   the namespaces: stores under ROOT/<id>, their titles
 *   routes_ns.c    the namespace routes
 *   routes_kv.c    keys, values/{key}, metadata/{key}
 *   routes_bulk.c  bulk put, bulk delete (both routes), bulk get
 *
 * A handler gets a request whose body is whole and within its route's
 * limit, makes its kvcore calls and sets exactly one reply (r->resp and
 * r->status); server.c queues it.  Handlers run on the connection's
 * thread (one thread per connection) and may block on the store.
 */
#ifndef KVAPI_H
#define KVAPI_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kvcore.h"
#include "common/buf.h"
#include "common/bulk.h"

#define KA_ID_LEN 32          /* hex digits of a namespace id */
#define KA_TITLE_MAX 512u     /* bytes of a namespace title */
#define KA_SMALL_BODY_MAX (64u * 1024u) /* namespace and bulk/get bodies */
/* A multipart value PUT carries the value, the metadata and the framing. */
#define KA_MULTIPART_SLACK (64u * 1024u)

/*
 * The memory budget (memory.c): every request body, every copy a handler
 * makes of one, every value reply and every large JSON reply is counted
 * against one global limit before it is allocated.  The largest single
 * request is a bulk body of KT_BULK_BYTES_MAX and its parsed copy, so the
 * budget is at least twice that.
 */
#define KA_MEMORY_DEFAULT (1024ull * 1024u * 1024u)
#define KA_MEMORY_MIN (2ull * KT_BULK_BYTES_MAX)
#define KA_MEMORY_WAIT_MS 5000u           /* wait for room, then 503 */
#define KA_SMALL_REPLY_MAX (64u * 1024u)  /* JSON replies below: not counted */
/* Value GETs of at least this many bytes are streamed from the store in
 * pieces of KA_STREAM_PIECE (a buffer per connection, not counted). */
#define KA_STREAM_MIN (1024u * 1024u)
#define KA_STREAM_PIECE (256u * 1024u)

/*
 * Connections: at most KA_CONNECTIONS_MAX at once (a thread each), and at
 * most ka_server.per_address_max (--per-address-max) of them from one
 * client address, so that one client cannot hold them all until the idle
 * timeout while others are turned away.  A connection past either limit
 * is closed as soon as it is accepted, before any request is read.
 */
#define KA_CONNECTIONS_MAX 256u
#define KA_PER_ADDRESS_DEFAULT 64u

/* Cloudflare's error codes (docs/kvapi.md lists where each comes from). */
enum ka_code {
	KA_E_AUTH = 10000,          /* authentication error */
	KA_E_INTERNAL = 10001,      /* service temporarily unavailable */
	KA_E_PAGE = 10007,          /* malformed page argument */
	KA_E_PER_PAGE = 10008,      /* malformed per_page argument */
	KA_E_KEY_NOT_FOUND = 10009, /* key not found */
	KA_E_NS_ID = 10011,         /* malformed namespace ID */
	KA_E_VALUE = 10012,         /* malformed value / request body */
	KA_E_NS_NOT_FOUND = 10013,  /* namespace not found */
	KA_E_NS_EXISTS = 10014,     /* namespace already exists */
	KA_E_TITLE = 10019,         /* missing title */
	KA_E_KEY = 10020,           /* invalid key (kvapi's choice) */
	KA_E_TOO_LARGE = 10024,     /* payload too large */
	KA_E_LIMIT = 10028,         /* invalid limit argument */
	KA_E_NO_ROUTE = 7000,       /* no route for that URI */
	KA_E_METHOD = 7001,         /* method not allowed for that route */
};

struct ka_ns;
struct ka_registry;

/* The byte budget of memory.c; its fields are memory.c's. */
struct ka_budget {
	pthread_mutex_t lock;
	pthread_cond_t room;    /* broadcast when bytes are given back */
	uint64_t max;           /* --memory-max */
	uint64_t used;          /* bytes reserved now */
	unsigned wait_ms;       /* how long a reservation waits for room */
};

/* The daemon's state, shared by every request (read-only once serving,
 * but for the budget, which has its own lock). */
struct ka_server {
	struct ka_registry *reg;
	struct ka_budget mem;
	const char *token;      /* NULL: no token, loopback clients only */
	size_t token_len;
	int verbose;            /* -v: a line per request */
	unsigned per_address_max; /* connections at once from one address */
	pthread_mutex_t log_lock;
};

enum ka_route {
	KA_R_NONE = 0,
	KA_R_NAMESPACES,  /* .../namespaces */
	KA_R_NAMESPACE,   /* .../namespaces/{id} */
	KA_R_KEYS,        /* .../{id}/keys */
	KA_R_VALUES,      /* .../{id}/values/{key} */
	KA_R_METADATA,    /* .../{id}/metadata/{key} */
	KA_R_BULK,        /* .../{id}/bulk */
	KA_R_BULK_DELETE, /* .../{id}/bulk/delete */
	KA_R_BULK_GET,    /* .../{id}/bulk/get */
};

/* One request, from its headers to its reply. */
struct ka_req {
	struct ka_server *srv;
	struct MHD_Connection *conn;
	char *method;           /* owned */
	char *url;              /* raw, as sent (not decoded); owned */
	enum ka_route route;
	char ns_id[KA_ID_LEN + 1];
	char *key;              /* decoded key of values/metadata routes; owned */
	size_t key_len;
	struct ka_ns *ns;       /* held for the handler; released with the req */
	struct kt_buf body;
	size_t body_max;        /* bytes the route accepts */
	bool multipart;         /* a values PUT with a multipart body */
	bool started;           /* the first call (headers only) is done */
	bool refused;           /* a reply was queued before the body ended */
	bool overflow;          /* the body went past body_max: refused at its end */
	uint64_t dropped;       /* bytes of such a body */
	unsigned body_copies;   /* 2 when the handler copies the body, else 1 */
	uint64_t held;          /* bytes of the budget the request holds for
				   its body and its handler's copy of it */
	struct MHD_Response *resp;
	unsigned status;
	int64_t start_ns;
};

/* ------------------------------------------------------------ reply.c */

/* A JSON text being written (open_memstream). */
struct ka_json {
	FILE *f;
	char *p;
	size_t len;
};

/** Start a JSON text.  @return 0 or -ENOMEM */
int ka_json_open(struct ka_json *j);
/** Finish it: j->p holds j->len bytes, NUL-terminated.  @return 0 or -ENOMEM */
int ka_json_close(struct ka_json *j);
/** Free it (closing it if still open). */
void ka_json_release(struct ka_json *j);

/**
 * The success envelope around a result written straight into @f (no copy
 * of a large result): open, the result, close.
 */
void ka_envelope_open_ok(FILE *f);
void ka_envelope_close(FILE *f);

/**
 * Reply success with @result (JSON text, NULL for null) and, when
 * non-NULL, @result_info (JSON text of an object).
 */
void ka_reply_ok(struct ka_req *r, const char *result, const char *result_info);

/** Reply failure: HTTP @status, one error of @code with a message. */
__attribute__((format(printf, 4, 5)))
void ka_reply_error(struct ka_req *r, unsigned status, int code, const char *fmt, ...);

/**
 * Reply the failure of a kvcore call: its -errno @rc with @msg (kvcore's
 * message; "" or NULL: a description of @rc), as the HTTP status and
 * Cloudflare code that fit it.
 */
void ka_reply_kvc(struct ka_req *r, int rc, const char *msg);

/**
 * Reply 200 with raw bytes the reply owns from now on (free()d), and
 * @held bytes of the budget given back when it frees them (even when
 * this fails).
 */
void ka_reply_bytes(struct ka_req *r, void *data, size_t len, const char *content_type,
		    uint64_t held);

/**
 * Reply 503 (code 10001, Retry-After: 1): kvapi is at its memory limit.
 */
void ka_reply_busy(struct ka_req *r);

/* ------------------------------------------------------------ memory.c */

/** Set up the budget of @max bytes.  @return 0 or -errno */
int ka_budget_init(struct ka_budget *b, uint64_t max, unsigned wait_ms);
void ka_budget_destroy(struct ka_budget *b);

/**
 * Reserve @n bytes, waiting up to b->wait_ms for room when @wait.
 * @return 0, or -EAGAIN (no room: nothing reserved)
 */
int ka_budget_take(struct ka_budget *b, uint64_t n, bool wait);
/** Give back @n reserved bytes; waiting reservations are woken. */
void ka_budget_give(struct ka_budget *b, uint64_t n);
/** Bytes reserved now (for the log and tests). */
uint64_t ka_budget_used(struct ka_budget *b);

/**
 * @n more bytes held by request @r (r->held, given back when it ends or
 * by ka_req_unhold), waiting for room.  @return 0, or -EAGAIN
 */
int ka_req_hold(struct ka_req *r, uint64_t n);
void ka_req_unhold(struct ka_req *r, uint64_t n);

/**
 * @n bytes as "1 GiB", "150 MiB", "64 KiB" or "N bytes".
 * @return @buf
 */
const char *ka_size_show(uint64_t n, char *buf, size_t size);

/**
 * Parse a size: decimal digits and an optional K, M or G (powers of 1024,
 * either case, "KiB"/"MiB"/"GiB" too).  @return 0, or -EINVAL
 */
int ka_size_parse(const char *s, uint64_t *ret);

/* -------------------------------------------------------------- url.c */

/**
 * Percent-decode @len bytes of @s into a new buffer: "%XX" with two hex
 * digits is the byte XX, any other '%' stays as it is (a key sent without
 * encoding), and with @plus_is_space (query strings) '+' is a space.
 * @param[out] ret     the bytes, NUL-terminated; free()
 * @param[out] ret_len their number (they may hold NULs)
 * @return 0 or -ENOMEM
 */
int ka_url_decode(const char *s, size_t len, bool plus_is_space, char **ret, size_t *ret_len);

/**
 * Parse a query number: an optional '-' and 1..18 decimal digits, nothing
 * else.  @return 0, or -EINVAL
 */
int ka_parse_int(const char *s, int64_t *ret);

/** Whether @s is KA_ID_LEN lower-case hex digits, a namespace id. */
bool ka_is_hex_id(const char *s, size_t len);

/* ------------------------------------------------------- namespaces.c */

/**
 * Open the namespaces under @root: every ROOT/<id> store, and the titles
 * file.  @return 0, -errno (@root is not a writable directory, a titles
 * file that cannot be read)
 */
int ka_registry_open(const char *root, struct ka_registry **ret);
/** Close every store; no request may be running. */
void ka_registry_close(struct ka_registry *reg);

/** A namespace's store, for a request. */
kvc_store *ka_ns_store(const struct ka_ns *ns);

/**
 * Find namespace @id (lower-case hex) and hold it until ka_ns_put(): its
 * store stays open, even if it is deleted meanwhile.
 * @return 0, -ENOENT, -errno of opening its store
 */
int ka_ns_get(struct ka_registry *reg, const char *id, struct ka_ns **ret);
void ka_ns_put(struct ka_registry *reg, struct ka_ns *ns);

/* One namespace as listed: copies, owned by the caller's array. */
struct ka_ns_info {
	char id[KA_ID_LEN + 1];
	char *title;
};

/**
 * Every namespace, ordered by title (ties by id) or by id, ascending.
 * @param[out] ret  array of *ret_n entries; free with ka_ns_infos_free()
 * @return 0 or -errno
 */
int ka_ns_list(struct ka_registry *reg, bool by_id, struct ka_ns_info **ret, size_t *ret_n);
void ka_ns_infos_free(struct ka_ns_info *v, size_t n);

/**
 * Create a namespace titled @title (a new random id, a new store).
 * @return 0, -EEXIST (a namespace has that title), -errno
 */
int ka_ns_create(struct ka_registry *reg, const char *title, struct ka_ns_info *ret);
/** Retitle @id.  @return 0, -ENOENT, -EEXIST (another has that title), -errno */
int ka_ns_rename(struct ka_registry *reg, const char *id, const char *title);
/** Title of @id into @ret (a copy; free()).  @return 0, -ENOENT, -ENOMEM */
int ka_ns_title(struct ka_registry *reg, const char *id, char **ret);
/**
 * Delete @id: it is gone from listings at once; its store directory is
 * removed when the last request using it ends.  @return 0, -ENOENT, -errno
 */
int ka_ns_delete(struct ka_registry *reg, const char *id);

/* ----------------------------------------------------------- routes */

void ka_route_namespaces(struct ka_req *r);
void ka_route_namespace(struct ka_req *r);
void ka_route_keys(struct ka_req *r);
void ka_route_values(struct ka_req *r);
void ka_route_metadata(struct ka_req *r);
void ka_route_bulk(struct ka_req *r);

/**
 * A query argument of the request, decoded once.
 * @param[out] ret the value, NUL-terminated; free()
 * @return 0, -ENOENT (absent), -ENOMEM
 */
int ka_query(struct ka_req *r, const char *name, char **ret, size_t *ret_len);

/* ---------------------------------------------------------- server.c */

/**
 * Start serving on @host:@port with @srv (thread per connection).
 * @param[out] ret_bound "HOST:PORT" actually bound (port 0 picks one)
 * @return the daemon, or NULL (errno set; @err says why)
 */
struct MHD_Daemon *ka_server_start(struct ka_server *srv, const char *host, uint16_t port,
				   char *ret_bound, size_t bound_size, char *err, size_t err_size);

/** A log line on stderr, "kvapi: ..." (one write, whole lines). */
__attribute__((format(printf, 2, 3)))
void ka_log(struct ka_server *srv, const char *fmt, ...);

#endif
