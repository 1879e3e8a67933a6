/*
 * base64: the binary values of bulk files, in libsodium's standard base64
 * with padding (sodium_base64_VARIANT_ORIGINAL).
 *
 * libsodium's decoder is as strict as base64.h promises when it is given no
 * characters to ignore and no end pointer: it refuses characters outside
 * the alphabet, missing or misplaced padding, a length that is not a
 * multiple of 4 and non-zero bits before the padding, and it must consume
 * the whole text.  One exception: libsodium 1.0.18 reads a char as signed,
 * and takes every byte from 0x80 up for '/' (its constant-time lookup
 * misreads negative values), so such bytes are refused here first, as the
 * hand-written decoder this replaced refused them.  Every refusal is
 * -EINVAL (libsodium says -1 with errno ERANGE or EINVAL).
 */
#include "base64.h"

#include <errno.h>
#include <sodium.h>

#define VARIANT sodium_base64_VARIANT_ORIGINAL

size_t kt_base64_encoded_len(size_t len)
{
	return sodium_base64_ENCODED_LEN(len, VARIANT) - 1; /* without the NUL */
}

size_t kt_base64_decoded_max(size_t text_len)
{
	return text_len / 4 * 3;
}

size_t kt_base64_encode(const void *data, size_t len, char *out)
{
	size_t n = kt_base64_encoded_len(len);
	sodium_bin2base64(out, n + 1, data, len, VARIANT);
	return n;
}

int kt_base64_decode(const char *text, size_t text_len, void *out, size_t *ret_len)
{
	size_t n;
	for (size_t i = 0; i < text_len; i++)
		if ((unsigned char)text[i] >= 0x80)
			return -EINVAL;
	/* sodium reads a zero-length output buffer as NULL: nothing to write. */
	unsigned char empty;
	size_t max = kt_base64_decoded_max(text_len);
	if (sodium_base642bin(max ? out : &empty, max, text, text_len, NULL, &n, NULL, VARIANT))
		return -EINVAL;
	*ret_len = n;
	return 0;
}
