/*
 * url: the bytes of a request line as kvapi reads them.  libmicrohttpd is
 * told not to decode anything (server.c), so a key is decoded here exactly
 * once: "a%2Fb" is the key "a/b", and "a%252F" the key "a%2F".  Pure
 * functions; tests/fuzz/fuzz_kvapi_url.c feeds them anything.
 */
#include "kvapi.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int ka_url_decode(const char *s, size_t len, bool plus_is_space, char **ret, size_t *ret_len)
{
	char *out = malloc(len + 1);
	if (!out)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned char byte;
		if (c == '%' && i + 2 < len &&
		    sodium_hex2bin(&byte, 1, s + i + 1, 2, NULL, NULL, NULL) == 0) {
			out[n++] = (char)byte;
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
	/* Lower case only: the id names a directory, ROOT/<id>. */
	if (len != KA_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}
