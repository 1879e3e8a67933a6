/*
 * bulk: reads and writes the Workers KV bulk JSON formats (see bulk.h).
 *
 * The reader is a small strict JSON parser of its own rather than a general
 * JSON library, for three reasons: it decodes strings straight into the
 * byte buffers the entries keep (binary-safe, NULs included), it keeps the
 * metadata exactly as written (a library would reformat numbers such as
 * 0.1 or 12345678901234567890, and kvcore promises to keep their digits),
 * and it can stop holding entries past the limit while still counting
 * them, so the message can say how many there were.  Every read is checked
 * against the end of the buffer and nesting is bounded, so no input can
 * make it read out of bounds or exhaust the stack.
 */
#include "bulk.h"

#include "base64.h"
#include "buf.h"
#include "json.h"
#include "kvcore.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Deeper nesting than this is refused: it bounds the parser's recursion. */
#define DEPTH_MAX 256u

struct parser {
	const unsigned char *s;
	size_t len;
	size_t pos;
	char *err;
	size_t err_size;
	long entry;        /* index of the entry being read, -1 outside one */
	const char *key;   /* its key once known (for messages), else NULL */
	size_t key_len;
	struct kt_progress *progress; /* NULL: none */
};

/* ------------------------------------------------------------ messages */

const char *kt_bulk_show_key(const void *key, size_t key_len, char *buf, size_t buf_size)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *k = key;
	/* One step writes at most 4 bytes, then "..." and the NUL follow. */
	size_t cap = buf_size > 88 ? 80 : buf_size - 8;
	size_t o = 0;
	if (buf_size < 16) {
		if (buf_size)
			buf[0] = 0;
		return buf;
	}
	for (size_t i = 0; i < key_len; i++) {
		if (o >= cap) {
			/* Do not leave half a UTF-8 sequence before the "...". */
			size_t l = o;
			while (l > 0 && o - l < 4 && ((unsigned char)buf[l - 1] & 0xC0) == 0x80)
				l--;
			if (l > 0 && (unsigned char)buf[l - 1] >= 0xC0) {
				unsigned char lead = (unsigned char)buf[l - 1];
				size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
				if (o - (l - 1) < want)
					o = l - 1;
			}
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (k[i] < 0x20 || k[i] == 0x7F) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[k[i] >> 4];
			buf[o++] = hex[k[i] & 15];
		} else {
			buf[o++] = (char)k[i];
		}
	}
	buf[o] = 0;
	return buf;
}

/* Where @pos is, for a human: 1-based line and column (in bytes). */
static void where(const struct parser *p, size_t pos, size_t *ret_line, size_t *ret_col)
{
	size_t line = 1, col = 1;
	for (size_t i = 0; i < pos && i < p->len; i++) {
		if (p->s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	*ret_line = line;
	*ret_col = col;
}

/* Write the context ("bulk entry 3 (key 'x'): ") and then the message. */
__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, int err,
						      const char *fmt, ...)
{
	size_t o = 0;
	if (p->entry >= 0) {
		if (p->key) {
			char shown[100];
			kt_bulk_show_key(p->key, p->key_len, shown, sizeof(shown));
			snprintf(p->err, p->err_size, "bulk entry %ld (key '%s'): ", p->entry,
				 shown);
		} else {
			snprintf(p->err, p->err_size, "bulk entry %ld: ", p->entry);
		}
	} else {
		snprintf(p->err, p->err_size, "bulk file: ");
	}
	o = strlen(p->err);
	if (o < p->err_size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + o, p->err_size - o, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* A JSON syntax error at the current position. */
static int syntax(struct parser *p, const char *what)
{
	size_t line, col;
	if (p->pos >= p->len)
		return fail(p, -EINVAL, "invalid JSON: unexpected end of file (%s)", what);
	where(p, p->pos, &line, &col);
	return fail(p, -EINVAL, "invalid JSON: %s at line %zu, column %zu", what, line, col);
}

/* --------------------------------------------------------------- lexing */

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		unsigned char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

/* Skip white space, then the byte @c if it is next. */
static bool eat(struct parser *p, unsigned char c)
{
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == c) {
		p->pos++;
		return true;
	}
	return false;
}

static int peek(struct parser *p)
{
	skip_ws(p);
	return p->pos < p->len ? p->s[p->pos] : -1;
}

static int hex4(const unsigned char *s, uint32_t *ret)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*ret = v;
	return 0;
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Read a string (the opening quote is next).  With @ret non-NULL the
 * decoded bytes are returned in a new NUL-terminated buffer the caller
 * frees; either way the string is fully checked.  An escape never takes
 * more bytes decoded than written, so the raw length bounds the buffer.
 */
static int parse_string(struct parser *p, char **ret, size_t *ret_len)
{
	if (!eat(p, '"'))
		return syntax(p, "expected a string");
	size_t start = p->pos, end = start;
	while (end < p->len && p->s[end] != '"') {
		if (p->s[end] == '\\')
			end++;
		end++;
	}
	if (end >= p->len) {
		p->pos = p->len;
		return syntax(p, "unterminated string");
	}
	unsigned char *out = malloc(end - start + 1);
	if (!out)
		return fail(p, -ENOMEM, "out of memory");
	size_t n = 0;
	while (p->pos < end) {
		unsigned char c = p->s[p->pos];
		if (c < 0x20) {
			free(out);
			return syntax(p, "control character in a string");
		}
		if (c != '\\') {
			out[n++] = c;
			p->pos++;
			continue;
		}
		unsigned char e = p->s[p->pos + 1];
		const char *simple = strchr("\"\\/bfnrt", e);
		if (e && simple) {
			static const char map[] = "\"\\/\b\f\n\r\t";
			out[n++] = (unsigned char)map[simple - "\"\\/bfnrt"];
			p->pos += 2;
			continue;
		}
		uint32_t cp, lo;
		if (e != 'u' || end - p->pos < 6 || hex4(p->s + p->pos + 2, &cp)) {
			free(out);
			return syntax(p, "invalid escape in a string");
		}
		p->pos += 6;
		if (cp >= 0xDC00 && cp <= 0xDFFF) {
			p->pos -= 6;
			free(out);
			return syntax(p, "unpaired surrogate escape in a string");
		}
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (end - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
			    hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
				p->pos -= 6;
				free(out);
				return syntax(p, "unpaired surrogate escape in a string");
			}
			p->pos += 6;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		n += put_utf8(out + n, cp);
	}
	if (!kvc_utf8_valid(out, n)) {
		p->pos = start;
		free(out);
		return syntax(p, "string is not valid UTF-8");
	}
	p->pos = end + 1;
	out[n] = 0;
	if (ret) {
		*ret = (char *)out;
		*ret_len = n;
	} else {
		free(out);
	}
	return 0;
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* One or more digits at *@i, which moves past them.  @return whether there was one */
static bool eat_digits(const struct parser *p, size_t *i)
{
	if (*i >= p->len || !is_digit(p->s[*i]))
		return false;
	while (*i < p->len && is_digit(p->s[*i]))
		(*i)++;
	return true;
}

/*
 * Read a number.  With @ret_int non-NULL, also convert it: a number that is
 * a whole value within int64 (1e9 and 1.0 count) sets *ret_int and
 * *ret_is_int, anything else clears *ret_is_int.
 */
static int parse_number(struct parser *p, int64_t *ret_int, bool *ret_is_int)
{
	skip_ws(p);
	size_t start = p->pos, i = p->pos;
	bool plain = true;
	if (i < p->len && p->s[i] == '-')
		i++;
	if (i < p->len && p->s[i] == '0') {
		i++;
	} else if (i < p->len && p->s[i] >= '1' && p->s[i] <= '9') {
		while (i < p->len && is_digit(p->s[i]))
			i++;
	} else {
		p->pos = i;
		return syntax(p, "invalid number");
	}
	if (i < p->len && p->s[i] == '.') {
		plain = false;
		i++;
		if (!eat_digits(p, &i)) {
			p->pos = i;
			return syntax(p, "invalid number");
		}
	}
	if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
		plain = false;
		i++;
		if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
			i++;
		if (!eat_digits(p, &i)) {
			p->pos = i;
			return syntax(p, "invalid number");
		}
	}
	p->pos = i;
	if (!ret_int)
		return 0;
	char *text = strndup((const char *)p->s + start, i - start);
	if (!text)
		return fail(p, -ENOMEM, "out of memory");
	char *endp;
	*ret_is_int = false;
	errno = 0;
	if (plain) {
		long long v = strtoll(text, &endp, 10);
		if (!errno && *endp == 0) {
			*ret_int = v;
			*ret_is_int = true;
		}
	} else {
		double d = strtod(text, &endp);
		/* 2^63 is the first double past int64's range. */
		if (!errno && *endp == 0 && d == floor(d) && d >= -9223372036854775808.0 &&
		    d < 9223372036854775808.0) {
			*ret_int = (int64_t)d;
			*ret_is_int = true;
		}
	}
	free(text);
	return 0;
}

static int skip_literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	skip_ws(p);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return syntax(p, "invalid literal");
	p->pos += n;
	return 0;
}

/* Check and pass over any JSON value. */
static int skip_value(struct parser *p, unsigned depth)
{
	int c = peek(p);
	int rc;
	if (depth > DEPTH_MAX)
		return syntax(p, "nesting too deep");
	switch (c) {
	case '"':
		return parse_string(p, NULL, NULL);
	case 't':
		return skip_literal(p, "true");
	case 'f':
		return skip_literal(p, "false");
	case 'n':
		return skip_literal(p, "null");
	case '[':
		p->pos++;
		if (eat(p, ']'))
			return 0;
		do {
			rc = skip_value(p, depth + 1);
			if (rc)
				return rc;
		} while (eat(p, ','));
		return eat(p, ']') ? 0 : syntax(p, "expected ',' or ']'");
	case '{':
		p->pos++;
		if (eat(p, '}'))
			return 0;
		do {
			rc = parse_string(p, NULL, NULL);
			if (rc)
				return rc;
			if (!eat(p, ':'))
				return syntax(p, "expected ':'");
			rc = skip_value(p, depth + 1);
			if (rc)
				return rc;
		} while (eat(p, ','));
		return eat(p, '}') ? 0 : syntax(p, "expected ',' or '}'");
	default:
		if (c == '-' || is_digit(c))
			return parse_number(p, NULL, NULL);
		return syntax(p, "expected a JSON value");
	}
}

/* ------------------------------------------------------------- entries */

static void entry_free(struct kt_bulk_entry *e)
{
	free(e->key);
	free(e->value);
	free(e->metadata);
	memset(e, 0, sizeof(*e));
}

void kt_bulk_release(struct kt_bulk *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->count; i++)
		entry_free(&b->entries[i]);
	free(b->entries);
	b->entries = NULL;
	b->count = 0;
}

/* The fields of a put entry; their names are put_fields[]. */
enum put_field { F_KEY, F_VALUE, F_BASE64, F_EXPIRATION, F_TTL, F_METADATA, F_COUNT };

static const char *const put_fields[F_COUNT] = {
	[F_KEY] = "key", [F_VALUE] = "value", [F_BASE64] = "base64",
	[F_EXPIRATION] = "expiration", [F_TTL] = "expiration_ttl", [F_METADATA] = "metadata",
};

/* An optional integer field: null = absent. */
static int parse_int_field(struct parser *p, const char *name, bool *ret_has, int64_t *ret)
{
	int c = peek(p);
	if (c == 'n') {
		*ret_has = false;
		return skip_literal(p, "null");
	}
	if (c != '-' && !is_digit(c))
		return fail(p, -EINVAL, "\"%s\" must be a number", name);
	bool is_int;
	int rc = parse_number(p, ret, &is_int);
	if (rc)
		return rc;
	if (!is_int)
		return fail(p, -EINVAL, "\"%s\" must be a whole number of seconds", name);
	*ret_has = true;
	return 0;
}

static int parse_put_field(struct parser *p, const char *name, size_t name_len,
			   struct kt_bulk_entry *e, unsigned *seen, bool *base64)
{
	enum put_field f = 0;
	while (f < F_COUNT &&
	       !(strlen(put_fields[f]) == name_len && !memcmp(put_fields[f], name, name_len)))
		f++;
	if (f == F_COUNT)
		return skip_value(p, 1); /* a field of some other tool's */
	if (*seen & (1u << f))
		return fail(p, -EINVAL, "\"%s\" is given twice", put_fields[f]);
	*seen |= 1u << f; /* seen: a set of 1 << enum put_field */

	int c = peek(p), rc;
	switch (f) {
	case F_KEY:
		if (c != '"')
			return fail(p, -EINVAL, "\"key\" must be a string");
		rc = parse_string(p, &e->key, &e->key_len);
		if (!rc) {
			p->key = e->key;
			p->key_len = e->key_len;
		}
		return rc;
	case F_VALUE:
		if (c != '"')
			return fail(p, -EINVAL, "\"value\" must be a string");
		return parse_string(p, (char **)&e->value, &e->value_len);
	case F_BASE64:
		if (c == 't') {
			*base64 = true;
			return skip_literal(p, "true");
		}
		if (c == 'f')
			return skip_literal(p, "false");
		if (c == 'n')
			return skip_literal(p, "null");
		return fail(p, -EINVAL, "\"base64\" must be true or false");
	case F_EXPIRATION:
		return parse_int_field(p, "expiration", &e->has_expiration, &e->expiration);
	case F_TTL:
		return parse_int_field(p, "expiration_ttl", &e->has_ttl, &e->ttl);
	default: { /* F_METADATA: kept as written; kvcore compacts it */
		size_t start = p->pos;
		rc = skip_value(p, 1);
		if (rc)
			return rc;
		e->metadata = strndup((const char *)p->s + start, p->pos - start);
		if (!e->metadata)
			return fail(p, -ENOMEM, "out of memory");
		e->metadata_len = p->pos - start;
		return 0;
	}
	}
}

static int parse_put_entry(struct parser *p, struct kt_bulk_entry *e)
{
	unsigned seen = 0;
	bool base64 = false;
	int rc;
	if (peek(p) != '{')
		return fail(p, -EINVAL, "must be an object with \"key\" and \"value\"");
	p->pos++;
	if (!eat(p, '}')) {
		do {
			char *name;
			size_t name_len;
			rc = parse_string(p, &name, &name_len);
			if (rc)
				return rc;
			if (!eat(p, ':')) {
				free(name);
				return syntax(p, "expected ':'");
			}
			rc = parse_put_field(p, name, name_len, e, &seen, &base64);
			free(name);
			if (rc)
				return rc;
		} while (eat(p, ','));
		if (!eat(p, '}'))
			return syntax(p, "expected ',' or '}'");
	}
	if (!(seen & (1u << F_KEY)))
		return fail(p, -EINVAL, "\"key\" is missing");
	if (!(seen & (1u << F_VALUE)))
		return fail(p, -EINVAL, "\"value\" is missing");
	if (base64) {
		size_t n;
		unsigned char *raw = malloc(kt_base64_decoded_max(e->value_len) + 1);
		if (!raw)
			return fail(p, -ENOMEM, "out of memory");
		if (kt_base64_decode((const char *)e->value, e->value_len, raw, &n)) {
			free(raw);
			return fail(p, -EINVAL, "\"value\" is not valid base64");
		}
		free(e->value);
		e->value = raw;
		e->value_len = n;
	}
	return 0;
}

/* An object member's name and its ':', as far as telling which of
 * @names (NULL-terminated) it is: *@ret_which is its index, or -1 for none.
 * @return 0 or the parse failure */
static int member_which(struct parser *p, const char *const *names, int *ret_which)
{
	char *name;
	size_t name_len;
	int rc = parse_string(p, &name, &name_len);
	if (rc)
		return rc;
	*ret_which = -1;
	for (int i = 0; names[i]; i++)
		if (name_len == strlen(names[i]) && !memcmp(name, names[i], name_len))
			*ret_which = i;
	free(name);
	if (!eat(p, ':'))
		return syntax(p, "expected ':'");
	return 0;
}

/* Whether the next member's name is @want (see member_which). */
static int member_named(struct parser *p, const char *want, bool *ret_is)
{
	const char *names[] = {want, NULL};
	int which;
	int rc = member_which(p, names, &which);
	if (!rc)
		*ret_is = which == 0;
	return rc;
}

/*
 * One key of bulk get or delete: a string, or an object naming it by "key"
 * (as a bulk put file does, so a put file lists its keys) or by "name" (as
 * a list prints keys, which is what wrangler's bulk get and delete read).
 * Other members are passed over.
 */
static int parse_key_entry(struct parser *p, struct kt_bulk_entry *e)
{
	int c = peek(p), rc;
	if (c == '"')
		return parse_string(p, &e->key, &e->key_len);
	if (c != '{')
		return fail(p, -EINVAL,
			    "must be a key string or an object with \"key\" or \"name\"");
	p->pos++;
	if (!eat(p, '}')) {
		do {
			static const char *const names[] = {"key", "name", NULL};
			int which;
			rc = member_which(p, names, &which);
			if (rc)
				return rc;
			const char *field = which == 0 ? "\"key\"" : "\"name\"";
			if (which < 0) {
				rc = skip_value(p, 1);
			} else if (e->key) {
				rc = fail(p, -EINVAL, "the key is given twice (\"key\" or \"name\")");
			} else if (peek(p) != '"') {
				rc = fail(p, -EINVAL, "%s must be a string", field);
			} else {
				rc = parse_string(p, &e->key, &e->key_len);
				p->key = e->key;
				p->key_len = e->key_len;
			}
			if (rc)
				return rc;
		} while (eat(p, ','));
		if (!eat(p, '}'))
			return syntax(p, "expected ',' or '}'");
	}
	if (!e->key)
		return fail(p, -EINVAL, "\"key\" or \"name\" is missing");
	return 0;
}

/* The array of entries (its '[' is next). */
static int parse_entries(struct parser *p, enum kt_bulk_format fmt, struct kt_bulk *b)
{
	size_t cap = 0, total = 0;
	int rc = 0;
	p->pos++;
	if (eat(p, ']'))
		return 0;
	do {
		p->entry = (long)total;
		p->key = NULL;
		if (total >= KT_BULK_ENTRIES_MAX) {
			/* Past the limit: only check and count, to report the total. */
			rc = skip_value(p, 1);
		} else {
			struct kt_bulk_entry *v = kt_array_grow(b->entries, sizeof(*v), b->count + 1,
								&cap, 64);
			if (!v)
				return fail(p, -ENOMEM, "out of memory");
			b->entries = v;
			struct kt_bulk_entry *e = &b->entries[b->count];
			memset(e, 0, sizeof(*e));
			rc = fmt == KT_BULK_PUT ? parse_put_entry(p, e) : parse_key_entry(p, e);
			if (rc) {
				entry_free(e);
				return rc;
			}
			b->count++;
		}
		if (rc)
			return rc;
		total++;
		if (p->progress)
			kt_progress_update(p->progress, p->pos);
	} while (eat(p, ','));
	p->entry = -1;
	p->key = NULL;
	if (!eat(p, ']'))
		return syntax(p, "expected ',' or ']'");
	if (total > KT_BULK_ENTRIES_MAX) {
		snprintf(p->err, p->err_size, "Bulk file has %zu entries; the limit is %u.", total,
			 KT_BULK_ENTRIES_MAX);
		return -E2BIG;
	}
	return 0;
}

/* {"keys":[...]}: other members are passed over. */
static int parse_keys_object(struct parser *p, struct kt_bulk *b)
{
	bool found = false;
	int rc;
	p->pos++;
	if (!eat(p, '}')) {
		do {
			bool is_keys;
			rc = member_named(p, "keys", &is_keys);
			if (rc)
				return rc;
			if (is_keys && found)
				return fail(p, -EINVAL, "\"keys\" is given twice");
			if (is_keys && peek(p) != '[')
				return fail(p, -EINVAL, "\"keys\" must be an array");
			if (is_keys) {
				found = true;
				rc = parse_entries(p, KT_BULK_KEYS, b);
			} else {
				rc = skip_value(p, 1);
			}
			if (rc)
				return rc;
		} while (eat(p, ','));
		if (!eat(p, '}'))
			return syntax(p, "expected ',' or '}'");
	}
	if (!found)
		return fail(p, -EINVAL, "expected an array of keys or an object with \"keys\"");
	return 0;
}

int kt_bulk_parse(const void *data, size_t len, enum kt_bulk_format fmt,
		  struct kt_progress *progress, struct kt_bulk *ret, char *errmsg,
		  size_t errmsg_size)
{
	char dummy[1];
	struct parser p = {
		.s = data,
		.len = len,
		.err = errmsg_size ? errmsg : dummy,
		.err_size = errmsg_size ? errmsg_size : sizeof(dummy),
		.entry = -1,
		.progress = progress,
	};
	struct kt_bulk b = {0};
	int rc;
	p.err[0] = 0;
	if (len > KT_BULK_BYTES_MAX) {
		snprintf(p.err, p.err_size, "Bulk file is %zu bytes; the limit is %u.", len,
			 KT_BULK_BYTES_MAX);
		return -E2BIG;
	}
	if (progress)
		kt_progress_phase(progress, "parsing", NULL, len, true);
	int c = peek(&p);
	if (c == '[')
		rc = parse_entries(&p, fmt, &b);
	else if (c == '{' && fmt == KT_BULK_KEYS)
		rc = parse_keys_object(&p, &b);
	else if (c < 0)
		rc = syntax(&p, "the file is empty");
	else if (fmt == KT_BULK_PUT)
		rc = fail(&p, -EINVAL, "expected an array of {\"key\", \"value\"} objects");
	else
		rc = fail(&p, -EINVAL, "expected an array of keys or an object with \"keys\"");
	if (!rc && peek(&p) >= 0)
		rc = syntax(&p, "unexpected data after the JSON value");
	if (rc) {
		kt_bulk_release(&b);
		return rc;
	}
	*ret = b;
	return 0;
}

/* --------------------------------------------------------------- writing */

void kt_bulk_write_put_entry(FILE *f, const void *key, size_t key_len, const void *value,
			     size_t value_len, int64_t expiration, uint32_t ttl,
			     const char *metadata, size_t metadata_len)
{
	fputs("{\"key\":", f);
	kt_json_string(f, key, key_len);
	putc(',', f);
	kt_json_value_members(f, value, value_len, false, NULL, 0);
	if (ttl)
		fprintf(f, ",\"expiration_ttl\":%lu", (unsigned long)ttl);
	else if (expiration)
		fprintf(f, ",\"expiration\":%lld", (long long)expiration);
	if (metadata) {
		fputs(",\"metadata\":", f);
		fwrite(metadata, 1, metadata_len, f);
	}
	putc('}', f);
}

/* By key in kvcore's order, then by place in the file (stable). */
static int cmp_entry_key(const void *x, const void *y)
{
	const struct kt_bulk_entry *a = *(const struct kt_bulk_entry *const *)x;
	const struct kt_bulk_entry *b = *(const struct kt_bulk_entry *const *)y;
	int c = kvc_key_cmp(a->key, a->key_len, b->key, b->key_len);

	return c ? c : (a < b ? -1 : a > b);
}

bool *kt_bulk_repeats(const struct kt_bulk *b)
{
	const struct kt_bulk_entry **order = malloc((b->count ? b->count : 1) * sizeof(*order));
	bool *repeat = calloc(b->count ? b->count : 1, sizeof(*repeat));

	if (!order || !repeat) {
		free(order);
		free(repeat);
		return NULL;
	}
	for (size_t i = 0; i < b->count; i++)
		order[i] = &b->entries[i];
	qsort(order, b->count, sizeof(*order), cmp_entry_key);
	for (size_t i = 1; i < b->count; i++)
		if (!kvc_key_cmp(order[i]->key, order[i]->key_len, order[i - 1]->key,
				 order[i - 1]->key_len))
			repeat[order[i] - b->entries] = true;
	free(order);
	return repeat;
}

