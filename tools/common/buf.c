/*
 * buf: the growable byte buffer and the array growth rule (see buf.h).
 */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *kt_array_grow(void *v, size_t elem_size, size_t need, size_t *cap, size_t first)
{
	if (need <= *cap)
		return v;
	size_t n = *cap ? *cap : (first ? first : 1);
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return NULL;
		n *= 2;
	}
	if (n > SIZE_MAX / elem_size)
		return NULL;
	void *p = realloc(v, n * elem_size);
	if (!p)
		return NULL;
	*cap = n;
	return p;
}

int kt_buf_grow(struct kt_buf *b, size_t more, size_t first)
{
	if (more > SIZE_MAX - b->len)
		return -ENOMEM;
	void *p = kt_array_grow(b->p, 1, b->len + more, &b->cap, first);
	if (!p)
		return -ENOMEM;
	b->p = p;
	return 0;
}

int kt_buf_add(struct kt_buf *b, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	int rc = kt_buf_grow(b, n, 64);
	if (rc)
		return rc;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

void kt_buf_release(struct kt_buf *b)
{
	if (!b)
		return;
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
