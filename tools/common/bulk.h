/*
 * bulk: the Workers KV bulk JSON formats, read and written.
 *
 * Reading is a pure function from the bytes of a file to a list of entries
 * with their values already decoded (base64 undone): no store access, no
 * I/O, so it can be fed anything (tests/fuzz/fuzz_bulk.c does).  It checks
 * the shape of the file (JSON syntax, field types, base64, the entry count)
 * and leaves the data-model rules (key, value, metadata, expiration limits)
 * to kvcore, which applies them when the entries are written.
 *
 * Formats read:
 *  - put:  [{"key":K, "value":V, "base64":B?, "expiration":T?,
 *            "expiration_ttl":S?, "metadata":M?}, ...]
 *          null for base64, expiration or expiration_ttl means absent;
 *          unknown fields are ignored (so a file from another tool loads).
 *  - keys: ["k1", ...], [{"key":"k1", ...}, ...], [{"name":"k1", ...}, ...]
 *          (what a list prints, and wrangler reads), or {"keys":[...]}
 *          (the inputs of bulk get and bulk delete).
 * Entries are numbered from 0, their index in the JSON array, in messages.
 *
 * Writing: one bulk-put entry per call, for export (json.h has the JSON
 * writers it uses).
 */
#ifndef KVTOOLS_BULK_H
#define KVTOOLS_BULK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "progress.h"

#define KT_BULK_ENTRIES_MAX 10000u
#define KT_BULK_BYTES_MAX (100u * 1024u * 1024u)
/* Large enough for any message kt_bulk_parse() writes. */
#define KT_BULK_ERRMSG_MAX 512u

enum kt_bulk_format {
	KT_BULK_PUT,  /* objects with key and value */
	KT_BULK_KEYS, /* keys only: bulk get and bulk delete */
};

/* One entry of a bulk file.  Every pointer is owned by the struct kt_bulk. */
struct kt_bulk_entry {
	char *key;          /* decoded key bytes (may hold NULs), NUL-terminated */
	size_t key_len;
	unsigned char *value; /* decoded value (base64 undone); NULL for keys */
	size_t value_len;
	char *metadata;     /* the metadata's JSON text as written in the file,
			       NUL-terminated; NULL = absent */
	size_t metadata_len;
	bool has_expiration;
	bool has_ttl;
	int64_t expiration; /* absolute Unix seconds, as given */
	int64_t ttl;        /* expiration_ttl, as given (range not checked) */
};

struct kt_bulk {
	struct kt_bulk_entry *entries;
	size_t count;
};

/**
 * Parse a bulk file.
 * @param[in] data       the file's bytes (need not be NUL-terminated)
 * @param[in] len        their number
 * @param[in] fmt        which format to expect
 * @param[in] progress   NULL, or a display moved after each entry through a
 *                       step of its own: "parsing", bytes of @len
 * @param[out] ret       the entries; release with kt_bulk_release()
 * @param[out] errmsg    on failure, why (names the entry index and key when
 *                       the fault is in an entry); NUL-terminated
 * @return 0, -EINVAL (malformed), -E2BIG (over KT_BULK_ENTRIES_MAX entries
 *         or KT_BULK_BYTES_MAX bytes), -ENOMEM
 */
int kt_bulk_parse(const void *data, size_t len, enum kt_bulk_format fmt,
		  struct kt_progress *progress, struct kt_bulk *ret, char *errmsg,
		  size_t errmsg_size);

/** Free the entries of @b (which may be NULL or zeroed) and zero it. */
void kt_bulk_release(struct kt_bulk *b);

/**
 * Mark the entries whose key appeared earlier in @b (a JSON object must
 * not name a member twice: bulk get answers each key once, the first time
 * it is named).  @return a new array of b->count flags (free() it), or
 * NULL when memory is short
 */
bool *kt_bulk_repeats(const struct kt_bulk *b);

/**
 * Write @key for a human into @buf (NUL-terminated, truncated with "..."
 * past about 80 bytes): printable bytes and UTF-8 as they are, control
 * bytes as \xNN.  @return @buf
 */
const char *kt_bulk_show_key(const void *key, size_t key_len, char *buf, size_t buf_size);

/**
 * Write one bulk-put entry as compact JSON (no trailing newline or comma):
 * the value as a string when it is valid UTF-8, else as base64 with
 * "base64":true; "expiration_ttl" when @ttl is non-zero, else "expiration"
 * when non-zero (a ttl counts from the write, so an import re-arms it as
 * the original's writes did, and no key is refused for expiring within
 * min_ttl); "metadata" (JSON text) when non-NULL.
 */
void kt_bulk_write_put_entry(FILE *f, const void *key, size_t key_len, const void *value,
			     size_t value_len, int64_t expiration, uint32_t ttl,
			     const char *metadata, size_t metadata_len);

#endif
