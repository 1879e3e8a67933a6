/*
 * json: the metadata rules.  Metadata is any JSON text, validated by
 * jansson and stored compact.  Compacting strips insignificant white space
 * from the original text instead of re-serializing a parsed tree, so
 * numbers (0.1, 12345678901234567890) and member order survive exactly.
 * The per-field view used by kvfs xattrs edits the compact object text in
 * place for the same reason.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kvcore.h"

#define PARSE_FLAGS (JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL)

static bool json_valid(const char *text, size_t len)
{
	json_error_t err;
	json_t *j = json_loadb(text, len, PARSE_FLAGS, &err);
	if (!j)
		return false;
	json_decref(j);
	return true;
}

int kvc_json_compact(const char *json, size_t json_len, char *out, size_t out_size)
{
	if (!json || !json_valid(json, json_len))
		return -EINVAL;
	size_t w = 0;
	bool in_str = false, esc = false;
	for (size_t i = 0; i < json_len; i++) {
		char c = json[i];
		if (!in_str && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
			continue;
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		}
		if (w + 1 >= out_size)
			return -E2BIG;
		out[w++] = c;
	}
	out[w] = 0;
	return (int)w;
}

/* End of the JSON value starting at @i in compact, valid text. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
	int depth = 0;
	bool in_str = false, esc = false;
	for (; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"') {
				in_str = false;
				if (depth == 0)
					return i + 1;
			}
			continue;
		}
		if (c == '"')
			in_str = true;
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']') {
			if (depth == 0)
				return i;
			if (--depth == 0)
				return i + 1;
		} else if (c == ',' && depth == 0)
			return i;
	}
	return len;
}

struct member {
	size_t start;            /* of the name token */
	size_t val, val_end;     /* the value's text */
	json_t *name;            /* decoded name (a JSON string) */
};

/*
 * Walk the members of compact object text.  @fn returns non-zero to stop.
 * @return 0, -EINVAL (not an object), or what @fn returned
 */
static int members(const char *s, size_t len, int (*fn)(void *arg, const char *s, struct member *m),
		   void *arg)
{
	if (len < 2 || s[0] != '{')
		return -EINVAL;
	size_t i = 1;
	while (i < len && s[i] != '}') {
		struct member m = {.start = i};
		size_t name_end = skip_value(s, len, i);
		json_error_t err;
		m.name = json_loadb(s + i, name_end - i, PARSE_FLAGS, &err);
		if (!m.name || !json_is_string(m.name) || name_end >= len || s[name_end] != ':') {
			json_decref(m.name);
			return -EINVAL;
		}
		m.val = name_end + 1;
		m.val_end = skip_value(s, len, m.val);
		int rc = fn(arg, s, &m);
		json_decref(m.name);
		if (rc)
			return rc;
		i = m.val_end;
		if (i < len && s[i] == ',')
			i++;
	}
	return 0;
}

static bool name_is(json_t *name, const char *want)
{
	size_t n = strlen(want);
	return json_string_length(name) == n && memcmp(json_string_value(name), want, n) == 0;
}

struct find {
	const char *name;
	struct member found;
	bool ok;
};

static int find_fn(void *arg, const char *s, struct member *m)
{
	struct find *f = arg;
	if (!name_is(m->name, f->name))
		return 0;
	f->found = *m;
	f->found.name = NULL;
	f->ok = true;
	return 1;
}

static int find_member(const char *s, size_t len, const char *name, struct member *ret)
{
	struct find f = {.name = name};
	int rc = members(s, len, find_fn, &f);
	if (rc < 0)
		return rc;
	if (!f.ok)
		return -ENODATA;
	*ret = f.found;
	return 0;
}

int kvc_meta_field_get(const char *metadata, size_t metadata_len, const char *name, char *out,
		       size_t out_size)
{
	struct member m;
	if (!metadata || !metadata_len)
		return -ENODATA;
	int rc = find_member(metadata, metadata_len, name, &m);
	if (rc)
		return -ENODATA;
	const char *v = metadata + m.val;
	size_t vlen = m.val_end - m.val;
	if (v[0] == '"') {
		json_error_t err;
		json_t *str = json_loadb(v, vlen, PARSE_FLAGS, &err);
		if (!str)
			return -EIO;
		const char *raw = json_string_value(str);
		size_t raw_len = json_string_length(str);
		/* Raw text that would read back as other JSON stays quoted. */
		if (!json_valid(raw, raw_len)) {
			if (raw_len <= out_size)
				memcpy(out, raw, raw_len);
			json_decref(str);
			return (int)raw_len;
		}
		json_decref(str);
	}
	if (vlen <= out_size)
		memcpy(out, v, vlen);
	return (int)vlen;
}

/* Encode @value as a field: its own JSON if it is JSON, else a JSON string. */
static char *field_json(const char *value, size_t value_len, size_t *ret_len)
{
	char *out;
	if (json_valid(value, value_len)) {
		out = malloc(value_len + 1);
		if (!out)
			return NULL;
		int n = kvc_json_compact(value, value_len, out, value_len + 1);
		*ret_len = (size_t)n;
		return out;
	}
	json_t *s = json_stringn(value, value_len);
	if (!s)
		return NULL; /* not UTF-8 */
	out = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(s);
	if (out)
		*ret_len = strlen(out);
	return out;
}

static int append(char *out, size_t out_size, size_t *w, const char *s, size_t n)
{
	if (*w + n + 1 > out_size)
		return -E2BIG;
	memcpy(out + *w, s, n);
	*w += n;
	return 0;
}

int kvc_meta_field_set(const char *metadata, size_t metadata_len, const char *name,
		       const char *value, size_t value_len, char *out, size_t out_size)
{
	const char *obj = metadata && metadata_len ? metadata : "{}";
	size_t obj_len = metadata && metadata_len ? metadata_len : 2;
	struct member m;
	int rc = find_member(obj, obj_len, name, &m);
	if (rc == -EINVAL)
		return rc;
	bool exists = rc == 0;
	if (!value && !exists)
		return -ENODATA;

	char *member = NULL;
	size_t member_len = 0;
	if (value) {
		size_t flen = 0, nlen;
		char *fj = field_json(value, value_len, &flen);
		json_t *js = json_string(name);
		char *nj = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
		json_decref(js);
		if (!fj || !nj) {
			free(fj);
			free(nj);
			return -EINVAL;
		}
		nlen = strlen(nj);
		member = malloc(nlen + 1 + flen);
		if (member) {
			memcpy(member, nj, nlen);
			member[nlen] = ':';
			memcpy(member + nlen + 1, fj, flen);
			member_len = nlen + 1 + flen;
		}
		free(fj);
		free(nj);
		if (!member)
			return -ENOMEM;
	}

	/* Splice: everything before the member, the new member, everything
	 * after; into a buffer of its own, since @out may be @metadata. */
	char *buf = malloc(out_size);
	if (!buf) {
		free(member);
		return -ENOMEM;
	}
	size_t w = 0;
	if (exists) {
		size_t before = m.start, after = m.val_end;
		if (!value) {
			/* Drop the member and one adjoining comma. */
			if (after < obj_len && obj[after] == ',')
				after++;
			else if (before > 1 && obj[before - 1] == ',')
				before--;
		}
		rc = append(buf, out_size, &w, obj, before);
		if (!rc && value)
			rc = append(buf, out_size, &w, member, member_len);
		if (!rc)
			rc = append(buf, out_size, &w, obj + after, obj_len - after);
	} else {
		rc = append(buf, out_size, &w, obj, obj_len - 1);
		if (!rc && obj_len > 2)
			rc = append(buf, out_size, &w, ",", 1);
		if (!rc)
			rc = append(buf, out_size, &w, member, member_len);
		if (!rc)
			rc = append(buf, out_size, &w, "}", 1);
	}
	free(member);
	if (!rc) {
		if (w == 2 && !value)
			w = 0; /* the last field went: no metadata */
		memcpy(out, buf, w);
		out[w] = 0;
	}
	free(buf);
	return rc ? rc : (int)w;
}

struct names {
	void (*fn)(void *arg, const char *name);
	void *arg;
};

static int names_fn(void *arg, const char *s, struct member *m)
{
	struct names *n = arg;
	const char *name = json_string_value(m->name);
	if (strlen(name) == json_string_length(m->name)) /* skip names with NUL */
		n->fn(n->arg, name);
	return 0;
}

int kvc_meta_fields(const char *metadata, size_t metadata_len,
		    void (*fn)(void *arg, const char *name), void *arg)
{
	if (!metadata || !metadata_len)
		return -EINVAL;
	struct names n = {fn, arg};
	return members(metadata, metadata_len, names_fn, &n);
}
