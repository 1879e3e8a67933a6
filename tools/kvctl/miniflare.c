/*
 * miniflare: the layout of a Miniflare KV state (see miniflare.h): the
 * namespace's Durable Object id, its paths, blob ids.
 */
#include "miniflare.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

int mf_namespace_check(const char *ns)
{
	static const char *const reserved[] = {"con", "prn", "aux", "nul"};
	size_t n = strlen(ns), dots = 0;
	if (n == 0 || n > 255)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = ns[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
		if (!ok)
			return -EINVAL;
		dots += c == '.';
	}
	if (dots == n)
		return -EINVAL;
	/* Miniflare's sanitisePath turns these (and "name.ext" of them) into "_". */
	size_t stem = strcspn(ns, ".");
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (stem == 3 && !strncasecmp(ns, reserved[i], 3))
			return -EINVAL;
	if (stem == 4 && (!strncasecmp(ns, "com", 3) || !strncasecmp(ns, "lpt", 3)) &&
	    ns[3] >= '0' && ns[3] <= '9')
		return -EINVAL;
	return 0;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = 0;
}

/* The first 16 bytes of HMAC-SHA-256(@key, @msg). */
static void hmac16(const unsigned char key[32], const void *msg, size_t len,
		   unsigned char out[16])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, 32);
	crypto_auth_hmacsha256_update(&st, msg, len);
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(out, mac, 16);
}

int mf_object_id(const char *ns, char ret[MF_OBJECT_ID_HEX + 1])
{
	unsigned char key[crypto_hash_sha256_BYTES], id[32];
	if (sodium_init() < 0)
		return -EIO;
	crypto_hash_sha256(key, (const unsigned char *)MF_KV_UNIQUE_KEY,
			   strlen(MF_KV_UNIQUE_KEY));
	hmac16(key, ns, strlen(ns), id);
	hmac16(key, id, 16, id + 16);
	hex(id, sizeof(id), ret);
	return 0;
}

int mf_paths_get(const char *dir, const char *ns, struct mf_paths *ret)
{
	char object_id[MF_OBJECT_ID_HEX + 1];
	int rc = mf_object_id(ns, object_id);
	if (rc)
		return rc;
	int a = snprintf(ret->kv_dir, sizeof(ret->kv_dir), "%s/v3/kv", dir);
	int b = snprintf(ret->object_dir, sizeof(ret->object_dir), "%s/%s", ret->kv_dir,
			 MF_KV_UNIQUE_KEY);
	int c = snprintf(ret->db, sizeof(ret->db), "%s/%s.sqlite", ret->object_dir, object_id);
	int d = snprintf(ret->blobs_dir, sizeof(ret->blobs_dir), "%s/%s/blobs", ret->kv_dir, ns);
	if (a < 0 || b < 0 || c < 0 || d < 0 || (size_t)a >= sizeof(ret->kv_dir) ||
	    (size_t)b >= sizeof(ret->object_dir) || (size_t)c >= sizeof(ret->db) ||
	    (size_t)d >= sizeof(ret->blobs_dir))
		return -ENAMETOOLONG;
	return 0;
}

bool mf_blob_id_valid(const void *id, size_t len)
{
	const unsigned char *s = id;
	if (len == 0 || len > MF_BLOB_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

int mf_blob_id_new(char ret[MF_BLOB_ID_HEX + 1])
{
	unsigned char b[40];
	size_t got = 0;
	while (got < 32) {
		ssize_t n = getrandom(b + got, 32 - got, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	for (int i = 0; i < 8; i++)
		b[32 + i] = (unsigned char)(ms >> (56 - 8 * i));
	hex(b, sizeof(b), ret);
	return 0;
}
