/*
 * base64: strict standard base64 with padding for the binary values of
 * bulk files (see base64.h for what "strict" refuses and why).
 */
#include "base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t kt_base64_encoded_len(size_t len)
{
	return (len + 2) / 3 * 4;
}

size_t kt_base64_decoded_max(size_t text_len)
{
	return text_len / 4 * 3;
}

size_t kt_base64_encode(const void *data, size_t len, char *out)
{
	const unsigned char *p = data;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = 0;
	return o;
}

/* The 6-bit value of one alphabet character, or -1. */
static int sextet(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int kt_base64_decode(const char *text, size_t text_len, void *out, size_t *ret_len)
{
	const unsigned char *t = (const unsigned char *)text;
	unsigned char *o = out;
	size_t n = 0;
	if (text_len % 4)
		return -EINVAL;
	for (size_t i = 0; i < text_len; i += 4) {
		bool last = i + 4 == text_len;
		int pad = 0;
		if (last && t[i + 3] == '=')
			pad = t[i + 2] == '=' ? 2 : 1;
		int s[4];
		for (int j = 0; j < 4 - pad; j++) {
			s[j] = sextet(t[i + j]);
			if (s[j] < 0)
				return -EINVAL;
		}
		/* Bits that no byte carries must be zero, or two texts would
		 * decode to the same bytes. */
		if (pad == 2 && (s[1] & 15))
			return -EINVAL;
		if (pad == 1 && (s[2] & 3))
			return -EINVAL;
		uint32_t v = (uint32_t)s[0] << 18 | (uint32_t)s[1] << 12;
		if (pad < 2)
			v |= (uint32_t)s[2] << 6;
		if (pad < 1)
			v |= (uint32_t)s[3];
		o[n++] = (unsigned char)(v >> 16);
		if (pad < 2)
			o[n++] = (unsigned char)(v >> 8);
		if (pad < 1)
			o[n++] = (unsigned char)v;
	}
	*ret_len = n;
	return 0;
}
