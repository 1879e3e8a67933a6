/*
 * json: the JSON the tools print (see json.h).  Strings are escaped as
 * JSON.stringify escapes them, so kvctl's output matches wrangler's byte
 * for byte; values that are not text go out as base64.
 */
#include "json.h"

#include "kvcore.h"

#include "base64.h"

#include <stdint.h>
#include <string.h>

void kt_json_string(FILE *f, const void *str, size_t len)
{
	const unsigned char *s = str;
	size_t i = 0, run = 0;
	putc('"', f);
	while (i < len) {
		unsigned char c = s[i];
		const char *esc = NULL;
		char ubuf[8];
		size_t n = 1;
		if (c >= 0x80) {
			/* Find the length of a valid sequence, else 0. */
			n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
			if (!n || len - i < n || !kvc_utf8_valid(s + i, n)) {
				esc = "\\ufffd";
				n = 1;
			}
		} else if (c == '"') {
			esc = "\\\"";
		} else if (c == '\\') {
			esc = "\\\\";
		} else if (c < 0x20) {
			switch (c) {
			case '\b': esc = "\\b"; break;
			case '\f': esc = "\\f"; break;
			case '\n': esc = "\\n"; break;
			case '\r': esc = "\\r"; break;
			case '\t': esc = "\\t"; break;
			default:
				snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
				esc = ubuf;
			}
		}
		if (esc) {
			fwrite(s + i - run, 1, run, f);
			run = 0;
			fputs(esc, f);
		} else {
			run += n;
		}
		i += n;
	}
	fwrite(s + len - run, 1, run, f);
	putc('"', f);
}

void kt_json_base64(FILE *f, const void *data, size_t len)
{
	/* A multiple of 3 bytes per chunk, so chunks concatenate cleanly. */
	enum { CHUNK = 3 * 1024 };
	char out[CHUNK / 3 * 4 + 1];
	const unsigned char *s = data;
	putc('"', f);
	for (size_t i = 0; i < len; i += CHUNK) {
		size_t n = len - i < CHUNK ? len - i : CHUNK;
		fwrite(out, 1, kt_base64_encode(s + i, n, out), f);
	}
	putc('"', f);
}

static void newline(FILE *f, unsigned indent)
{
	putc('\n', f);
	for (unsigned i = 0; i < indent; i++)
		putc(' ', f);
}

void kt_json_pretty(FILE *f, const char *json, size_t len, unsigned indent)
{
	unsigned depth = indent;
	for (size_t i = 0; i < len; i++) {
		char c = json[i];
		if (c == '"') {
			size_t j = i + 1;
			while (j < len && json[j] != '"')
				j += json[j] == '\\' ? 2 : 1;
			if (j >= len)
				j = len - 1;
			fwrite(json + i, 1, j - i + 1, f);
			i = j;
			continue;
		}
		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case '{':
		case '[': {
			size_t j = i + 1;
			while (j < len && strchr(" \t\n\r", json[j]))
				j++;
			if (j < len && json[j] == (c == '{' ? '}' : ']')) {
				fputs(c == '{' ? "{}" : "[]", f);
				i = j;
				break;
			}
			putc(c, f);
			depth += 2;
			newline(f, depth);
			break;
		}
		case '}':
		case ']':
			depth = depth >= 2 ? depth - 2 : 0;
			newline(f, depth);
			putc(c, f);
			break;
		case ',':
			putc(',', f);
			newline(f, depth);
			break;
		case ':':
			fputs(": ", f);
			break;
		default:
			putc(c, f);
		}
	}
}

void kt_json_value_members(FILE *f, const void *value, size_t value_len, bool with_metadata,
			   const char *metadata, size_t metadata_len)
{
	bool text = kvc_utf8_valid(value, value_len);
	fputs("\"value\":", f);
	if (text)
		kt_json_string(f, value, value_len);
	else
		kt_json_base64(f, value, value_len);
	if (with_metadata) {
		fputs(",\"metadata\":", f);
		if (metadata)
			fwrite(metadata, 1, metadata_len, f);
		else
			fputs("null", f);
	}
	if (!text)
		fputs(",\"base64\":true", f);
}
