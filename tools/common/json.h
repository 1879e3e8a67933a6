/*
 * json: the JSON output of the tools: strings escaped as JSON.stringify
 * escapes them, base64 strings, a re-indenter for compact JSON (wrangler
 * prints with a 2-space indent), and the one way a value is shown with its
 * metadata ({"value", "metadata", "base64"} in get, bulk get and export).
 * Writers take a FILE and report nothing: the caller checks ferror() once
 * at the end, as kvctl does before exiting.
 */
#ifndef KVTOOLS_JSON_H
#define KVTOOLS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/**
 * Write @len bytes of UTF-8 as a JSON string literal, escaped as
 * JSON.stringify escapes; a byte that is not part of valid UTF-8 is written
 * as U+FFFD.
 */
void kt_json_string(FILE *f, const void *s, size_t len);

/** Write @len bytes as a JSON string literal holding their base64. */
void kt_json_base64(FILE *f, const void *s, size_t len);

/**
 * Write valid JSON text @json re-indented as JSON.stringify(v, null, 2)
 * would print it, its nested lines indented by @indent more spaces.
 */
void kt_json_pretty(FILE *f, const char *json, size_t len, unsigned indent);

/**
 * Write a value as members of a JSON object, without braces: "value" as a
 * string when the value is valid UTF-8, else as base64; then, when
 * @with_metadata, "metadata" (the JSON text @metadata, or null when it is
 * NULL); then "base64":true when the value went out as base64.  This is
 * how Workers KV shows a value that may not be text, so get --metadata,
 * bulk get and export cannot differ in it.
 */
void kt_json_value_members(FILE *f, const void *value, size_t value_len, bool with_metadata,
			   const char *metadata, size_t metadata_len);

#endif
