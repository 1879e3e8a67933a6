/*
 * key: what a key may be and how keys are ordered.  Keys are
 * 1..KVC_KEY_MAX bytes of valid UTF-8, not "." or ".."; every write, read
 * and applied record is checked here, with Workers KV's messages.  The
 * UTF-8 rule and the key order are exported, so the tools test text and
 * compare keys as the store does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

bool kvc_utf8_valid(const void *str, size_t n)
{
	const unsigned char *s = str;
	size_t i = 0;
	/* Most keys are ASCII: test eight bytes at a time for a high bit. */
	while (i + 8 <= n) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		if (v & 0x8080808080808080ull)
			break;
		i += 8;
	}
	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t j = 1; j < len; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

/* Why @key is not a key, worded as Workers KV words it, into @msg (NULL:
 * no message).  @return 0 or -errno */
static int key_refuse(const void *key, size_t key_len, char *msg, size_t msg_size)
{
	const char *why = NULL;
	int rc = 0;

	if (!msg)
		msg_size = 0;
	if (key_len > KVC_KEY_MAX) {
		if (msg_size)
			snprintf(msg, msg_size,
				 "UTF-8 encoded length of %zu exceeds key length limit of %u.", key_len,
				 KVC_KEY_MAX);
		return -ENAMETOOLONG;
	}
	/* The Workers runtime's words (workerd's validateKeyName). */
	if (key_len == 0) {
		why = "Key name cannot be empty.";
		rc = -EINVAL;
	} else if ((key_len == 1 && memcmp(key, ".", 1) == 0) ||
		   (key_len == 2 && memcmp(key, "..", 2) == 0)) {
		if (msg_size)
			snprintf(msg, msg_size, "\"%.*s\" is not allowed as a key name.",
				 (int)key_len, (const char *)key);
		return -EINVAL;
	} else if (!kvc_utf8_valid(key, key_len)) {
		why = "Key is not valid UTF-8.";
		rc = -EINVAL;
	}
	if (why && msg_size)
		snprintf(msg, msg_size, "%s", why);
	return rc;
}

int kvc_key_check_txn(kvc_txn *txn, const void *key, size_t key_len)
{
	return txn ? key_refuse(key, key_len, txn->errmsg, sizeof(txn->errmsg))
		   : key_refuse(key, key_len, NULL, 0);
}

int kvc_key_check(const void *key, size_t key_len)
{
	return key_refuse(key, key_len, NULL, 0);
}

int kvc_key_check_msg(const void *key, size_t key_len, char *msg, size_t msg_size)
{
	return key_refuse(key, key_len, msg, msg_size);
}

int kvc_key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	return kvc_key_order(a, an, b, bn);
}
