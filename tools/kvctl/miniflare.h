/*
 * miniflare.h: where Miniflare (wrangler's `--local` mode, wrangler 3 and
 * 4) keeps a KV namespace under its persistence directory, derived as
 * Miniflare derives it, and the names it gives its files.
 *
 *   DIR/v3/kv/miniflare-KVNamespaceObject/<object id>.sqlite
 *       the namespace's Durable Object database: table _mf_entries
 *       (key TEXT PRIMARY KEY, blob_id TEXT NOT NULL, expiration INTEGER
 *       in milliseconds since the epoch or NULL, metadata TEXT holding
 *       JSON.stringify(metadata) or NULL)
 *   DIR/v3/kv/<namespace id>/blobs/<blob id>
 *       each value, its bytes as they are
 *
 * The object id is workerd's idFromName(namespace id) for the object class
 * whose unique key is "miniflare-KVNamespaceObject": with K = SHA-256 of
 * the unique key, the first 16 bytes of HMAC-SHA-256(K, name) followed by
 * the first 16 bytes of HMAC-SHA-256(K, those 16 bytes), in lower-case
 * hex.  A blob id is 32 random bytes and the writer's time in milliseconds
 * as a big-endian 64-bit integer, in lower-case hex (80 characters).
 *
 * Everything here is pure (no files touched) except mf_blob_id_new, which
 * reads the system's random source.
 */
#ifndef KVCTL_MINIFLARE_H
#define KVCTL_MINIFLARE_H

#include <stdbool.h>
#include <stddef.h>

/* The unique key Miniflare gives the KV namespace object class. */
#define MF_KV_UNIQUE_KEY "miniflare-KVNamespaceObject"
/* Hex digits of an object id and of a blob id Miniflare writes. */
#define MF_OBJECT_ID_HEX 64
#define MF_BLOB_ID_HEX 80
/* Longest blob id read from a state: Miniflare's own are 80. */
#define MF_BLOB_ID_MAX 128

/* The files of one namespace in a state (NUL-terminated paths). */
struct mf_paths {
	char kv_dir[4096];     /* DIR/v3/kv */
	char object_dir[4096]; /* DIR/v3/kv/miniflare-KVNamespaceObject */
	char db[4096];         /* object_dir/<object id>.sqlite */
	char blobs_dir[4096];  /* DIR/v3/kv/<namespace id>/blobs */
};

/**
 * Check that @ns is a namespace id this tool maps to files: 1 to 255
 * bytes of letters, digits, '-', '_' and '.', not all dots, not a name
 * Windows reserves (Miniflare would rename such a directory: these are
 * the ids whose blob directory is the id itself).
 * @return 0, or -EINVAL
 */
int mf_namespace_check(const char *ns);

/**
 * The Durable Object id of namespace @ns: 64 lower-case hex digits and a
 * NUL in @ret.  @return 0, or -EIO (libsodium cannot initialise)
 */
int mf_object_id(const char *ns, char ret[MF_OBJECT_ID_HEX + 1]);

/**
 * The paths of namespace @ns (checked with mf_namespace_check) under
 * persistence directory @dir.
 * @return 0, -ENAMETOOLONG, -EIO (as mf_object_id)
 */
int mf_paths_get(const char *dir, const char *ns, struct mf_paths *ret);

/** Whether @id (@len bytes) is a blob id this tool reads: hex digits only,
 * 1 to MF_BLOB_ID_MAX of them, so it can only name a file in the blobs
 * directory. */
bool mf_blob_id_valid(const void *id, size_t len);

/**
 * A new blob id as Miniflare makes them.
 * @return 0, or -errno when the random source fails
 */
int mf_blob_id_new(char ret[MF_BLOB_ID_HEX + 1]);

#endif
