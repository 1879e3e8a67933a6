/*
 * session: the kvsync protocol engine, the same for every transport.
 *
 * A connection joins a client (the `kvsync` the user ran, with its local
 * store) and a server (`kvsync --server`, a `kvsync serve` connection, or
 * the forked peer of a local-to-local sync) that opens the other store.
 * After the greeting, the optional token proof and the exchange of store
 * identities, the client runs sessions: PUSH (the client sends), PULL (the
 * server sends) or CHECK (compare by digests).  In a sync session the
 * sender streams records and the receiver applies them in batches, each
 * batch and the sender's watermark in one transaction.
 *
 * Functions return exit codes of kvsync (enum ks_exit) where they say so;
 * a failure's message is kept for the caller to print once.
 */
#ifndef KVSYNC_SYNC_SESSION_H
#define KVSYNC_SYNC_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kvcore.h"
#include "auth.h"
#include "net.h"
#include "proto.h"

enum ks_exit {
	KS_EXIT_OK = 0,
	KS_EXIT_DIFFER = 1, /* --check: not converged */
	KS_EXIT_USAGE = 2,
	KS_EXIT_PROTO = 3,  /* protocol or connection error */
	KS_EXIT_STORE = 4,  /* store error */
	KS_EXIT_AUTH = 5,   /* authentication failure */
};

/* The default bound on how far ahead of the receiver's clock a record may
 * be stamped (--max-skew): one day. */
#define KS_MAX_SKEW_DEFAULT_MS 86400000ull

struct ks_stats {
	uint64_t records;    /* records sent or received */
	uint64_t applied;    /* applied by the receiver (would be, with -n) */
	uint64_t ignored;    /* not newer than what the receiver held */
	uint64_t tombstones; /* of the applied, how many were tombstones */
	uint64_t differ;     /* --check: keys that differ */
	uint64_t bytes;      /* key, value and metadata bytes of the records */
	uint64_t bytes_in, bytes_out; /* on the connection (compressed with -z) */
};

struct ks_client_opts {
	uint32_t req_flags;     /* enum ks_req_flags */
	uint64_t max_skew_ms;   /* for kvc_apply when this side receives, and
				   asked of the server; 0: no bound */
	uint32_t open_flags;    /* enum ks_open_flags, for the server's store */
	bool local_is_src;      /* names the sides in messages and --check output */
	bool rsh;               /* the peer runs behind a remote shell */
	bool progress;          /* draw progress on stderr */
	bool want_results;      /* have a pushed-to receiver report every key, as
				   with -v, so tombstones applied can be counted */
	const uint8_t *token_key; /* KS_AUTH_KEY_LEN bytes, or NULL */
	int timeout_ms;         /* the connection's I/O timeout (0: none) */
	int stop_fd;            /* readable when a --watch must end, or -1 */
	FILE *out;              /* per-key lines (-v, --check) */
	const struct ks_filter *filter; /* --prefix, --include, --exclude, or
					   NULL; not owned */
	bool summary;           /* -v: a summary line per direction on stderr
				   (-i: the per-key lines alone) */
	bool compress;          /* -z: zstd both ways after the handshake */
	uint64_t bwlimit;       /* --bwlimit: bytes a second this side writes
				   at most; 0: no limit */
	/* --watch: called once per session, from its thread, when the
	 * receiver has committed everything the sender held when the
	 * session began (NULL: not wanted) */
	void (*caught_up)(void *arg);
	void *caught_up_arg;
};

struct ks_client;

/**
 * Prepare a client over @conn (owned from now on); its local store comes
 * with ks_client_open().  @return 0 or -ENOMEM
 */
int ks_client_new(struct ks_conn *conn, const struct ks_client_opts *o,
		  struct ks_client **ret_client);

/* Close the connection (reaping its process) and free.  NULL is fine. */
void ks_client_free(struct ks_client *c);

/**
 * Greeting, token proofs, and the server's store opened (its IDENT
 * received): after it, the server is known to be the one asked for and
 * to hold its store, and nothing local has been touched yet.
 * @return an enum ks_exit
 */
int ks_client_handshake(struct ks_client *c);

/**
 * Then tell the server our identity, read from the open local @store (not
 * owned; the caller opens, or creates, it only after ks_client_handshake).
 * @return an enum ks_exit
 */
int ks_client_open(struct ks_client *c, kvc_store *store);

/**
 * Run one session: KS_OP_PUSH, KS_OP_PULL or KS_OP_CHECK.  A --watch
 * session returns KS_EXIT_OK when the stop descriptor fires.
 * @return an enum ks_exit (KS_EXIT_DIFFER from a check that found differences)
 */
int ks_client_session(struct ks_client *c, uint8_t op);

/* Tell the server we are done (best effort). */
void ks_client_bye(struct ks_client *c);

/* What went wrong, for the last failing call ("" if nothing). */
const char *ks_client_error(const struct ks_client *c);

/* Counters of all sessions so far, bytes included. */
void ks_client_stats(const struct ks_client *c, struct ks_stats *ret);

/* The server's store identity (valid after the handshake). */
void ks_client_peer(const struct ks_client *c, struct ks_ident *ret);

struct ks_server_opts {
	const char *store_path;   /* the STORE (already resolved from a mountpoint) */
	const uint8_t *token_key; /* require this token, or NULL */
	const char *refuse;       /* refuse the client with this message */
	int refuse_code;          /* ... and this enum ks_exit (0: KS_EXIT_AUTH) */
	int login_grace_ms;       /* the whole handshake up to the token proof
				     must end within this (0: no deadline) */
	int timeout_ms;           /* then, the I/O timeout (0: none); see
				     ks_conn_set_timeout() */
	/* Called once the client has proved the token (or, without one, has
	 * greeted): NULL lets it in, a message refuses it as busy (exit 3).
	 * NULL admit: everyone is let in. */
	const char *(*admit)(void *arg);
	void *admit_arg;
	int stop_fd;              /* readable when the server must end, or -1 */
	const char *peer_name;    /* for log lines, e.g. "127.0.0.1:41000" */
	uint64_t max_skew_ms;     /* this receiver's own bound, applied whatever
				     the client asks (the smaller of the two
				     wins); 0: KS_MAX_SKEW_DEFAULT_MS;
				     UINT64_MAX: none, only when the operator
				     of the server said so */
	bool quiet;               /* the client prints our failures: do not
				     print them a second time */
	uint64_t bwlimit;         /* bytes a second written at most (the
				     client's --bwlimit, given to --server and
				     a local peer); 0: no limit */
};

/**
 * Serve one connection (owned, closed on return) until the client says
 * bye or fails.  Errors are printed on stderr.
 * @return an enum ks_exit
 */
int ks_server_run(struct ks_conn *conn, const struct ks_server_opts *o);

/**
 * Resolve a STORE argument: a kvfs mountpoint (its root carries the
 * xattr user.kv.store) names the store it shows; anything else is itself.
 * @param[out] ret_path a malloc'd path
 * @return 0 or -ENOMEM
 */
int ks_resolve_store(const char *arg, char **ret_path);

/** What kvc_open's failure @rc means, for a message about a STORE. */
const char *ks_store_open_error(int rc);

#endif
