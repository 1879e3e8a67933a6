/*
 * fuzz_bulk: libFuzzer target for the bulk file reader (tools/bulk.c).
 *
 * The same bytes go to the put reader and the keys reader (bulk get and
 * bulk delete); whatever they accept must hold together: every entry has a
 * key, a put entry has a value, metadata is non-empty text, the count is
 * within the limit.  Accepted entries are then written back as a bulk put
 * file, which the reader must accept again with the same keys and values:
 * export followed by import is exact.  A broken rule traps; leaks and
 * out-of-bounds reads are AddressSanitizer's to find.
 */
#include "fuzz.h"
#include "kvcore.h"
#include "common/bulk.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_entries(const struct kt_bulk *b, bool put)
{
	require(b->count <= KT_BULK_ENTRIES_MAX);
	for (size_t i = 0; i < b->count; i++) {
		const struct kt_bulk_entry *e = &b->entries[i];
		require(e->key != NULL);
		require(e->key[e->key_len] == 0);
		require(kvc_utf8_valid(e->key, e->key_len));
		require(put == (e->value != NULL));
		require(!e->metadata || e->metadata_len > 0);
	}
}

/* Write @b as a bulk put file and read it back: it must be the same. */
static void round_trip(const struct kt_bulk *b)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	require(f != NULL);
	fputc('[', f);
	for (size_t i = 0; i < b->count; i++) {
		const struct kt_bulk_entry *e = &b->entries[i];
		if (i)
			fputc(',', f);
		/* Metadata is left out: the writer takes it as compact JSON
		 * from the store, which the reader does not produce. */
		kt_bulk_write_put_entry(f, e->key, e->key_len, e->value, e->value_len,
					e->has_expiration ? e->expiration : 0, 0, NULL, 0);
	}
	fputc(']', f);
	require(fclose(f) == 0);

	struct kt_bulk again;
	char msg[KT_BULK_ERRMSG_MAX];
	require(kt_bulk_parse(text, len, KT_BULK_PUT, NULL, &again, msg, sizeof(msg)) == 0);
	require(again.count == b->count);
	for (size_t i = 0; i < b->count; i++) {
		const struct kt_bulk_entry *x = &b->entries[i], *y = &again.entries[i];
		require(x->key_len == y->key_len && !memcmp(x->key, y->key, x->key_len));
		require(x->value_len == y->value_len &&
			!memcmp(x->value, y->value, x->value_len));
		require(y->has_expiration == (x->has_expiration && x->expiration != 0));
	}
	kt_bulk_release(&again);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kt_bulk b;
	char msg[KT_BULK_ERRMSG_MAX];
	int rc = kt_bulk_parse(data, size, KT_BULK_PUT, NULL, &b, msg, sizeof(msg));
	if (rc == 0) {
		check_entries(&b, true);
		round_trip(&b);
		kt_bulk_release(&b);
	} else {
		require(strlen(msg) > 0 && strlen(msg) < sizeof(msg));
	}
	rc = kt_bulk_parse(data, size, KT_BULK_KEYS, NULL, &b, msg, sizeof(msg));
	if (rc == 0) {
		check_entries(&b, false);
		kt_bulk_release(&b);
	} else {
		require(strlen(msg) > 0);
	}
	/* A message that names a key must survive any key. */
	char shown[100];
	kt_bulk_show_key(data, size, shown, sizeof(shown));
	require(strlen(shown) < sizeof(shown));
	return 0;
}
