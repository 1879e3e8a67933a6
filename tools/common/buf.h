/*
 * buf: a growable byte buffer in the style of git's strbuf, and the one
 * growth rule of every growing array in the tools.
 *
 * A struct kt_buf owns its bytes: p is NULL until the first growth, and
 * p[0..len) are the contents; room past len is spare.  Growth doubles the
 * capacity (from a caller-chosen first size), so appending n bytes one
 * piece at a time costs O(n).  A failed growth leaves the buffer as it was.
 * Not thread-safe; one owner at a time.
 */
#ifndef KVTOOLS_BUF_H
#define KVTOOLS_BUF_H

#include <stddef.h>

struct kt_buf {
	unsigned char *p; /* owned; NULL when nothing was ever allocated */
	size_t len;       /* bytes held */
	size_t cap;       /* bytes allocated at p */
};

#define KT_BUF_INIT {NULL, 0, 0}

/**
 * Make room for @more bytes past len, doubling the capacity (at least
 * @first bytes on the first growth) until they fit.
 * @return 0, or -ENOMEM (the buffer is unchanged)
 */
int kt_buf_grow(struct kt_buf *b, size_t more, size_t first);

/** Append @n bytes of @data.  @return 0, or -ENOMEM (nothing appended) */
int kt_buf_add(struct kt_buf *b, const void *data, size_t n);

/** Free the bytes and zero @b (which may be NULL); it may be used again. */
void kt_buf_release(struct kt_buf *b);

/**
 * Grow the array @v of elements of @elem_size bytes, of which *@cap are
 * allocated, so that it holds at least @need: the capacity doubles from
 * @first.  The ALLOC_GROW of git, as a function.
 * @param[in,out] cap the array's capacity, updated on success
 * @return the array (moved, perhaps), or NULL on overflow or when memory
 *         is short: @v and *@cap are then unchanged and @v still owned
 */
void *kt_array_grow(void *v, size_t elem_size, size_t need, size_t *cap, size_t first);

#endif
