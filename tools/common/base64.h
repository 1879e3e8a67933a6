/*
 * base64: the standard base64 alphabet (RFC 4648 section 4) with padding,
 * as Workers KV bulk files carry binary values.
 *
 * Decoding is strict so that one text has exactly one meaning: characters
 * outside the alphabet (white space included), a length that is not a
 * multiple of 4, misplaced or missing padding and non-zero bits in the last
 * character before the padding are all refused.  The empty string is valid
 * and decodes to nothing.  Pure functions, no allocation; libsodium does
 * the work (base64.c says where it needed help to stay this strict).
 */
#ifndef KVTOOLS_BASE64_H
#define KVTOOLS_BASE64_H

#include <stddef.h>

/** Characters kt_base64_encode() writes for @len bytes, without the NUL. */
size_t kt_base64_encoded_len(size_t len);

/** Bytes kt_base64_decode() may write for @text_len characters (an upper bound). */
size_t kt_base64_decoded_max(size_t text_len);

/**
 * Encode @len bytes of @data into @out, which must hold
 * kt_base64_encoded_len(@len) + 1 bytes; the result is NUL-terminated.
 * @return the number of characters written, without the NUL
 */
size_t kt_base64_encode(const void *data, size_t len, char *out);

/**
 * Decode @text_len characters of @text into @out, which must hold
 * kt_base64_decoded_max(@text_len) bytes.
 * @param[out] ret_len the number of bytes decoded
 * @return 0, or -EINVAL (not strict base64; @out may have been written)
 */
int kt_base64_decode(const char *text, size_t text_len, void *out, size_t *ret_len);

#endif
