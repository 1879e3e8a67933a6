/*
 * fuzz_kvapi_url: libFuzzer target for tools/kvapi/url.c, the decoding of
 * keys and query values kvapi does itself.  Decoding never grows the text,
 * never crashes, and is the identity on text without '%' or '+'; a text
 * encoded as encodeURIComponent encodes it decodes back to itself (decoded
 * exactly once); a query number parses only as plain decimal digits.
 */
#include "fuzz.h"
#include "kvapi/kvapi.h"

#include <stdlib.h>
#include <string.h>

static const char hex[] = "0123456789ABCDEF";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char *out;
	size_t n;
	for (int plus = 0; plus < 2; plus++) {
		require(ka_url_decode(s, size, plus, &out, &n) == 0);
		require(n <= size && out[n] == 0);
		if (!memchr(s, '%', size) && !memchr(s, '+', size))
			require(n == size && !memcmp(out, s, size));
		free(out);
	}
	/* Percent-encode every byte, then decode: the input comes back. */
	char *enc = malloc(size * 3 + 1);
	require(enc != NULL);
	for (size_t i = 0; i < size; i++) {
		enc[i * 3] = '%';
		enc[i * 3 + 1] = hex[data[i] >> 4];
		enc[i * 3 + 2] = hex[data[i] & 15];
	}
	require(ka_url_decode(enc, size * 3, false, &out, &n) == 0);
	require(n == size && !memcmp(out, data, size));
	free(out);
	free(enc);
	/* Query numbers. */
	char num[32];
	size_t m = size < sizeof(num) - 1 ? size : sizeof(num) - 1;
	memcpy(num, data, m);
	num[m] = 0;
	int64_t v;
	if (ka_parse_int(num, &v) == 0) {
		const char *p = num[0] == '-' ? num + 1 : num;
		require(strspn(p, "0123456789") == strlen(p) && *p);
	}
	return 0;
}
