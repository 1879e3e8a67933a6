#!/usr/bin/env bash
# test_list: kvctl list prints wrangler's JSON (2-space indent, name, then
# expiration and metadata only when present); keys come in bytewise order,
# multi-byte UTF-8 and 511/512-byte keys that share a long prefix included
# (the same order as `LC_ALL=C sort`); --prefix filters; --limit/--cursor
# pages collect every key exactly once, with the next cursor on stderr
# while the listing is not complete; --limit 0 means 1000, over 1000 is
# refused; a plain list shows every key.
. "$(dirname "$0")/lib.sh"

S=$WORK/store

# --- the JSON shape --------------------------------------------------------------
kv "$S" put a 1 2>/dev/null
kv "$S" put b 2 --expiration 4102444800 --metadata '{"tags":["x",{"deep":true}],"empty":{},"none":[]}'
kv "$S" put 'c"q' 3 --metadata '7'
want='[
  {
    "name": "a"
  },
  {
    "name": "b",
    "expiration": 4102444800,
    "metadata": {
      "tags": [
        "x",
        {
          "deep": true
        }
      ],
      "empty": {},
      "none": []
    }
  },
  {
    "name": "c\"q",
    "metadata": 7
  }
]'
check_eq "list prints JSON as wrangler does" "$(kv "$S" list)" "$want"
check_eq "an empty listing is []" "$(kv "$S" list --prefix nothing)" "[]"
check_eq "--prefix filters" "$(kv "$S" list --prefix b | names)" "b"

# --- bytewise order -----------------------------------------------------------------
S=$WORK/order
p511=$(repeat_char x 511)
p510=$(repeat_char x 510)
{
	printf '%s\n' a b z A Z 0 9 '~' 'a:b' 'a:b:c' 'ab' 'a b' 'é' 'e' 'f' '日本' '日' '🙂' 'ÿ' 'Ā' \
		'€' 'ab:é' "$p511" "${p511}a" "${p511}b" "${p511}~" "${p510}y" "${p510}" "${p510}ya" \
		"${p511}é" 2>/dev/null
} | awk 'length($0) > 0' >"$WORK/keys.raw"
# Keep only keys of at most 512 bytes (the 2-byte é would make 513).
while IFS= read -r k; do
	[ "$(printf %s "$k" | wc -c)" -le 512 ] && printf '%s\n' "$k"
done <"$WORK/keys.raw" >"$WORK/keys"
check_eq "the fixture has 29 keys" "$(wc -l <"$WORK/keys")" 29
while IFS= read -r k; do kv "$S" put -- "$k" "v" 2>/dev/null; done <"$WORK/keys"
LC_ALL=C sort "$WORK/keys" >"$WORK/keys.sorted"
kv "$S" list | names >"$WORK/listed"
check "list order is bytewise (as LC_ALL=C sort), 512-byte keys included" \
	cmp "$WORK/keys.sorted" "$WORK/listed"
check_eq "--prefix with a 511-byte prefix finds the keys under it" \
	"$(kv "$S" list --prefix "$p511" | names | wc -l)" 4
check_eq "--prefix with a multi-byte prefix" "$(kv "$S" list --prefix 日 | names)" "$(printf '日\n日本')"

# Paging with a small limit: every key once, in order.
: >"$WORK/paged"
cursor=""
pages=0
while :; do
	if [ -n "$cursor" ]; then
		kv "$S" list --limit 4 --cursor "$cursor" 2>"$WORK/err" | names >>"$WORK/paged"
	else
		kv "$S" list --limit 4 2>"$WORK/err" | names >>"$WORK/paged"
	fi
	pages=$((pages + 1))
	cursor=$(sed -n 's/^cursor: //p' "$WORK/err")
	[ -n "$cursor" ] || break
	[ "$pages" -lt 100 ] || break
done
check "pages of 4 collect every key exactly once, in order" cmp "$WORK/keys.sorted" "$WORK/paged"
check_eq "29 keys take 8 pages of 4" "$pages" 8
check_refused "a made-up cursor is refused" 1 "kvctl: Invalid cursor." \
	"$KVCTL" "$S" list --cursor '!!not a cursor!!'

# --- limits -------------------------------------------------------------------------
S=$WORK/many
{
	printf '['
	for i in $(seq -w 1 1005); do
		[ "$i" = 0001 ] || printf ','
		printf '{"key":"k%s","value":"v"}' "$i"
	done
	printf ']'
} >"$WORK/many.json"
kv "$S" bulk put "$WORK/many.json" 2>/dev/null
seq -f 'k%04g' 1 1005 >"$WORK/many.keys"
kv "$S" list 2>"$WORK/err" | names >"$WORK/all"
check "a plain list shows all 1005 keys" cmp "$WORK/many.keys" "$WORK/all"
check_eq "and prints no cursor" "$(cat "$WORK/err")" ""
kv "$S" list --limit 0 2>"$WORK/err" | names >"$WORK/page0"
check_eq "--limit 0 means 1000" "$(wc -l <"$WORK/page0")" 1000
cursor=$(sed -n 's/^cursor: //p' "$WORK/err")
check_eq "and prints the next cursor" "$([ -n "$cursor" ] && echo yes)" yes
check_eq "the cursor leads to the last 5 keys" \
	"$(kv "$S" list --cursor "$cursor" 2>"$WORK/err" | names | tr '\n' ' ')" \
	"k1001 k1002 k1003 k1004 k1005 "
check_eq "the last page prints no cursor" "$(cat "$WORK/err")" ""
check_eq "--limit 1000 gives 1000" "$(kv "$S" list --limit 1000 2>/dev/null | names | wc -l)" 1000
check_refused "--limit 1001 is refused" 1 \
	"kvctl: Invalid key_count_limit of 1001. Please specify an integer less than 1000." \
	"$KVCTL" "$S" list --limit 1001
check_refused "a negative limit is refused" 1 \
	"kvctl: Invalid key_count_limit of -1. Please specify an integer greater than 0." \
	"$KVCTL" "$S" list --limit -1
check_refused "a limit that is not a number is a usage error" 2 \
	"kvctl: invalid --limit 'many': expected a number" "$KVCTL" "$S" list --limit many
check_eq "--prefix with --limit pages within the prefix" \
	"$(kv "$S" list --prefix k100 --limit 3 2>&1 >/dev/null | sed 's/: .*/:/')" "cursor:"

check_eq "check accepts the store" "$(kv "$S" check)" "ok: 1005 records checked"
finish
