/*
 * url: the bytes of a request line as kvapi reads them.  libmicrohttpd is
 * told not to decode anything (server.c), so a key is decoded here exactly
 * once: "a%2Fb" is the key "a/b", and "a%252F" the key "a%2F".  Pure
 * functions; tests/fuzz/fuzz_kvapi_url.c feeds them anything.
 */
#include "kvapi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ka_url_decode(const char *s, size_t len, bool plus_is_space, char **ret, size_t *ret_len)
{
	char *out = malloc(len + 1);
	if (!out)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int hi, lo;
		if (c == '%' && i + 2 < len && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			out[n++] = ' ';
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = 0;
	*ret = out;
	*ret_len = n;
	return 0;
}

int ka_parse_int(const char *s, int64_t *ret)
{
	const char *p = s;
	bool neg = *p == '-';
	if (neg)
		p++;
	size_t digits = strspn(p, "0123456789");
	if (digits == 0 || digits > 18 || p[digits])
		return -EINVAL;
	int64_t v = 0;
	for (size_t i = 0; i < digits; i++)
		v = v * 10 + (p[i] - '0');
	*ret = neg ? -v : v;
	return 0;
}

bool ka_is_hex_id(const char *s, size_t len)
{
	if (len != KA_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return true;
}
