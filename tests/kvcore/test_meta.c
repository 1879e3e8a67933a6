/*
 * test_meta: proves the metadata helpers behind PRODUCT.md section 3.3.
 * kvc_json_compact validates and strips insignificant white space (never
 * inside strings) and respects its buffer.  kvc_meta_field_set stores a
 * value that parses as JSON as that JSON and anything else as a JSON
 * string, keeps the other fields and their order, removes fields (the last
 * one leaves no metadata) and refuses metadata that is not an object.
 * kvc_meta_field_get reads a string field raw unless the raw text would
 * parse as other JSON, then JSON-quoted ("123" reads back "\"123\""), and
 * anything else as compact JSON.  kvc_meta_fields lists top-level names.
 * Prints TAP.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

static void test_compact(void)
{
	char out[256];
	for (size_t i = 0; i < sizeof(kt_compact_examples) / sizeof(kt_compact_examples[0]); i++) {
		const struct kt_json_pair *c = &kt_compact_examples[i];
		int n = kvc_json_compact(c->in, strlen(c->in), out, sizeof(out));
		is_int(n, (long long)strlen(c->out), "kvc_json_compact of case %zu returns the compact length", i);
		is_str(n >= 0 ? out : "", c->out, "kvc_json_compact: %s", c->out);
	}
	static const char *const bad[] = {"", "{", "{a:1}", "[1,]", "{\"a\":1} {}", "nul", "\"open"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(kvc_json_compact(bad[i], strlen(bad[i]), out, sizeof(out)), -EINVAL,
		       "kvc_json_compact of '%s' (not JSON) -EINVAL", bad[i]);
	is_int(kvc_json_compact("{ \"a\" : 1 }", 11, out, 7), -E2BIG,
	       "kvc_json_compact into a buffer without room for the NUL -E2BIG");
	is_int(kvc_json_compact("{ \"a\" : 1 }", 11, out, 8), 7, "kvc_json_compact into a buffer of exactly len + 1");
	/* Length-delimited: bytes past json_len are not read. */
	is_int(kvc_json_compact("[1]garbage", 3, out, sizeof(out)), 3, "kvc_json_compact honours json_len");
}

/* kvc_meta_field_get into a NUL-terminated buffer; "-ERRNO" text on failure. */
static const char *fget(const char *meta, const char *name, char *buf, size_t size)
{
	int n = kvc_meta_field_get(meta, meta ? strlen(meta) : 0, name, buf, size - 1);
	if (n < 0) {
		snprintf(buf, size, "%s", kt_errname(n));
		return buf;
	}
	if ((size_t)n >= size)
		return "(too long)";
	buf[n] = 0;
	return buf;
}

static const char *fset(const char *meta, const char *name, const char *value, char *out,
			size_t size)
{
	int n = kvc_meta_field_set(meta, meta ? strlen(meta) : 0, name, value,
				   value ? strlen(value) : 0, out, size);
	if (n < 0) {
		snprintf(out, size, "%s", kt_errname(n));
		return out;
	}
	if ((size_t)n != strlen(out))
		return "(length mismatch)";
	return out;
}

/* Metadata with a field of every JSON kind. */
static const char fields[] = "{\"s\":\"123\",\"h\":\"hello\",\"o\":{\"x\":1},\"n\":5,\"t\":true,"
				   "\"st\":\"true\",\"sp\":\" 5 \",\"q\":\"say \\\"hi\\\"\",\"e\":\"\",\"z\":null,"
				   "\"a\":[1,\"two\"],\"u\":\"\\u00e9t\\u00e9\"}";

/* field_get of @name in fields[]: @want (a "-ERRNO" text for an error). */
static const struct {
	const char *name, *want, *what;
} get_cases[] = {
	{"s", "\"123\"", "field_get: string \"123\" reads back JSON-quoted (raw 123 would be a number)"},
	{"h", "hello", "field_get: string hello reads back raw"},
	{"o", "{\"x\":1}", "field_get: object reads back as compact JSON"},
	{"n", "5", "field_get: number reads back as JSON"},
	{"t", "true", "field_get: true reads back as JSON"},
	{"st", "\"true\"", "field_get: string \"true\" reads back quoted"},
	{"sp", "\" 5 \"", "field_get: string \" 5 \" reads back quoted (parses as 5)"},
	{"q", "say \"hi\"", "field_get: escapes in a string are decoded"},
	{"e", "", "field_get: the empty string reads back empty"},
	{"z", "null", "field_get: null reads back as JSON"},
	{"a", "[1,\"two\"]", "field_get: array reads back as compact JSON"},
	{"u", "\xC3\xA9t\xC3\xA9", "field_get: \\u escapes decode to UTF-8"},
	{"x", "-ENODATA", "field_get: a nested name is not a top-level field"},
	{"missing", "-ENODATA", "field_get: missing field -ENODATA"},
};

static void test_field_get(void)
{
	const char *m = fields;
	char buf[256];
	for (size_t i = 0; i < sizeof(get_cases) / sizeof(get_cases[0]); i++)
		is_str(fget(m, get_cases[i].name, buf, sizeof(buf)), get_cases[i].want, "%s",
		       get_cases[i].what);
	is_str(fget("[1,2]", "0", buf, sizeof(buf)), "-ENODATA", "field_get: metadata not an object -ENODATA");
	is_str(fget("\"s\"", "s", buf, sizeof(buf)), "-ENODATA", "field_get: string metadata -ENODATA");
	is_str(fget(NULL, "s", buf, sizeof(buf)), "-ENODATA", "field_get: no metadata -ENODATA");
	char tiny[2];
	is_int(kvc_meta_field_get(m, strlen(m), "h", tiny, sizeof(tiny)), 5,
	       "field_get: the full length is returned when the buffer is too small");
}

/* field_set on no metadata, then field_get of the same name: the value as
 * stored (JSON when it parses, else a string) and as read back. */
static const struct {
	const char *name, *value, *stored, *what, *back, *back_what;
} set_get_cases[] = {
	{"s", "123", "{\"s\":123}", "field_set: 123 parses as JSON: stored as a number (no metadata before)", "123", "field_set/get: the number reads back 123"},
	{"s", "\"123\"", "{\"s\":\"123\"}", "field_set: \"123\" (quoted) is stored as the string 123", "\"123\"", "field_set/get: the string 123 reads back \"123\""},
	{"h", "hello", "{\"h\":\"hello\"}", "field_set: hello is not JSON: stored as a string", "hello", "field_set/get: hello reads back hello"},
	{"o", "{\"x\":1}", "{\"o\":{\"x\":1}}", "field_set: {\"x\":1} is stored as an object", "{\"x\":1}", "field_set/get: the object reads back {\"x\":1}"},
	{"q", "he said \"hi\"", "{\"q\":\"he said \\\"hi\\\"\"}", "field_set: a non-JSON value with quotes is escaped into a string", "he said \"hi\"", "field_set/get: it reads back raw"},
	{"a\"b", "1", "{\"a\\\"b\":1}", "field_set: a name with a quote is escaped", "1", "field_get finds the escaped name"},
};

#define ABC "{\"a\":1,\"b\":2,\"c\":3}"

/* field_set of @name to @value (NULL: remove it) in @meta gives @stored
 * (a "-ERRNO" text for an error). */
static const struct {
	const char *meta, *name, *value, *stored, *what;
} set_cases[] = {
	{NULL, "o", "{ \"x\" : 1 }", "{\"o\":{\"x\":1}}", "field_set: a JSON value is stored compact"},
	{NULL, "t", "true", "{\"t\":true}", "field_set: true is stored as JSON true"},
	{"", "k", "1", "{\"k\":1}", "field_set: empty metadata becomes an object"},
	{ABC, "b", "\"two\"", "{\"a\":1,\"b\":\"two\",\"c\":3}", "field_set: replacing a field keeps the others and their order"},
	{ABC, "d", "4", "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", "field_set: a new field is added at the end"},
	{ABC, "b", NULL, "{\"a\":1,\"c\":3}", "field_set: remove a middle field"},
	{ABC, "a", NULL, "{\"b\":2,\"c\":3}", "field_set: remove the first field"},
	{ABC, "c", NULL, "{\"a\":1,\"b\":2}", "field_set: remove the last field"},
	{"{\"a\":1}", "a", NULL, "", "field_set: removing the only field leaves no metadata (empty string)"},
	{ABC, "zz", NULL, "-ENODATA", "field_set: removing a missing field -ENODATA"},
	{NULL, "zz", NULL, "-ENODATA", "field_set: removing from no metadata -ENODATA"},
	{"[1,2]", "k", "1", "-EINVAL", "field_set: array metadata -EINVAL"},
	{"\"str\"", "k", "1", "-EINVAL", "field_set: string metadata -EINVAL"},
	{"5", "k", "1", "-EINVAL", "field_set: number metadata -EINVAL"},
	{"[1,2]", "k", NULL, "-EINVAL", "field_set: remove on non-object metadata -EINVAL"},
};

static void test_field_set(void)
{
	char out[KVC_METADATA_MAX + 1], buf[256];
	for (size_t i = 0; i < sizeof(set_get_cases) / sizeof(set_get_cases[0]); i++) {
		const char *name = set_get_cases[i].name;
		is_str(fset(NULL, name, set_get_cases[i].value, out, sizeof(out)),
		       set_get_cases[i].stored, "%s", set_get_cases[i].what);
		is_str(fget(out, name, buf, sizeof(buf)), set_get_cases[i].back, "%s",
		       set_get_cases[i].back_what);
	}
	for (size_t i = 0; i < sizeof(set_cases) / sizeof(set_cases[0]); i++)
		is_str(fset(set_cases[i].meta, set_cases[i].name, set_cases[i].value, out, sizeof(out)),
		       set_cases[i].stored, "%s", set_cases[i].what);
	char small[8];
	is_str(fset(ABC, "d", "4", small, sizeof(small)), "-E2BIG", "field_set: result over the buffer -E2BIG");
	is_int(kvc_meta_field_set(NULL, 0, "k", "1", 1, small, 8), 7,
	       "field_set: a result of exactly out_size - 1 bytes fits");
}

static void name_fn(void *arg, const char *name)
{
	char *acc = arg;
	strcat(acc, name);
	strcat(acc, ";");
}

static void test_fields(void)
{
	char acc[256] = "";
	const char *m = "{\"a\":1,\"b\":{\"c\":2},\"d\":\"x\",\"\xC3\xA9\":[]}";
	is_int(kvc_meta_fields(m, strlen(m), name_fn, acc), 0, "kvc_meta_fields on an object");
	is_str(acc, "a;b;d;\xC3\xA9;", "kvc_meta_fields lists the top-level names in order");
	acc[0] = 0;
	is_int(kvc_meta_fields("{}", 2, name_fn, acc), 0, "kvc_meta_fields on {}");
	is_str(acc, "", "kvc_meta_fields on {} lists nothing");
	is_int(kvc_meta_fields("[1]", 3, name_fn, acc), -EINVAL, "kvc_meta_fields on an array -EINVAL");
	is_int(kvc_meta_fields("\"s\"", 3, name_fn, acc), -EINVAL, "kvc_meta_fields on a string -EINVAL");
	is_str(acc, "", "kvc_meta_fields does not call back for non-objects");
}

/* The helpers with a store: set a field of stored metadata, write it back. */
static void test_with_store(void)
{
	struct kt_dir d;
	kt_dir_make(&d);
	char path[128], out[KVC_METADATA_MAX + 1];
	kvc_store *s = kt_open(kt_dir_sub(&d, "store", path, sizeof(path)), NULL);
	struct kvc_write w = {.set = KVC_SET_VALUE | KVC_SET_METADATA, .value = "v", .value_len = 1,
			      .metadata = "{ \"owner\" : \"ann\" }", .metadata_len = 19};
	is_int(kt_write(s, "k", 1, &w, NULL, 0), 0, "fixture: a key with metadata");
	struct kt_rec r;
	if (kt_get(s, "k", 1, 0, &r))
		bail_out("k");
	int n = kvc_meta_field_set(r.metadata, r.r.metadata_len, "n", "7", 1, out, sizeof(out));
	kt_rec_free(&r);
	is_int(n, 21, "field_set on stored metadata");
	struct kvc_write m = {.set = KVC_SET_METADATA, .metadata = out, .metadata_len = (size_t)n};
	is_int(kt_write(s, "k", 1, &m, NULL, 0), 0, "write the new metadata back");
	if (kt_get(s, "k", 1, 0, &r))
		bail_out("k");
	is_str(r.metadata, "{\"owner\":\"ann\",\"n\":7}", "the stored metadata has both fields");
	char buf[64];
	is_str(fget(r.metadata, "owner", buf, sizeof(buf)), "ann", "the stored string field reads back raw");
	kt_rec_free(&r);
	is_int(kt_check(s), 0, "kvc_check finds nothing on the metadata store");
	kvc_close(s);
	kt_dir_remove(&d);
}

int main(void)
{
	test_compact();
	test_field_get();
	test_field_set();
	test_fields();
	test_with_store();
	return done_testing();
}
