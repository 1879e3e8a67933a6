#!/usr/bin/env bash
# test_garbage: hostile and broken input on the wire.  Garbage, truncated
# frames, oversized and unknown frames, a wrong protocol version, and
# records that stop in the middle of a batch or break kvcore's rules are
# piped into `kvsync --server STORE` and sent to `kvsync serve` over TCP:
# each ends the connection with a clear error and a non-zero exit, and the
# store is unchanged (same feed head, same export).  A well-formed stream
# built the same way is applied, which shows the broken ones are broken
# only where they are meant to be.
. "$(dirname "$0")/lib.sh"
. "$SYNC_DIR/frames.sh"

STORE=$WORK/store
kvctl "$STORE" put existing "keep me" 2>/dev/null
NODE=4242
H=$(hlc_now)

# feed NAME: run `kvsync --server` on the stream $WORK/NAME.bin.
feed() {
	local rc=0
	t "$KVSYNC" --server "$STORE" <"$WORK/$1.bin" >/dev/null 2>"$WORK/last.err" || rc=$?
	echo "$rc"
}

# refused NAME DESC MESSAGE: the stream is refused with exit 3, saying
# MESSAGE, and the store is unchanged.
refused() {
	local name=$1 desc=$2 msg=$3 rc
	snapshot "$STORE" "$WORK/before"
	rc=$(feed "$name")
	check_eq "$desc: exit 3" "$rc" 3
	check_err "$desc: says '$msg'" "$msg"
	snapshot "$STORE" "$WORK/after"
	check "$desc: the store is unchanged" cmp -s "$WORK/before" "$WORK/after"
}

printf 'GET / HTTP/1.1\r\nHost: example\r\n\r\n' >"$WORK/http.bin"
refused http "an HTTP request" "protocol error: the client did not greet as kvsync"

: >"$WORK/empty.bin"
refused empty "an empty stream" "connection closed before the protocol started"

{ magic; hello | head -c 20; } >"$WORK/short-hello.bin"
refused short-hello "a truncated HELLO" "protocol error: connection closed in the middle of a frame"

{ magic; hello 99; } >"$WORK/version.bin"
refused version "a HELLO of protocol version 99" "protocol version 99"

{ magic; hello; be 4 $((0xffffffff)); be 1 3; } >"$WORK/huge.bin"
refused huge "a frame of 4 GiB" "protocol error: frame length over the limit"

{ magic; hello; printf 'x' | frame 99; } >"$WORK/unknown.bin"
refused unknown "a frame of an unknown type" "protocol error: unknown frame type 99"

{ magic; hello; open_store 2; printf 'oops' | frame 4; } >"$WORK/bad-ident.bin"
refused bad-ident "a malformed IDENT" "protocol error: short IDENT"

# Records that never see their BATCH_END are never applied.
{
	prologue $NODE
	rec "new:1" "one" "$H" $NODE 1
	rec "new:2" "two" "$((H + 1))" $NODE 2
} >"$WORK/no-end.bin"
refused no-end "records without their BATCH_END" "connection closed by the client"

# A value cut short.
{
	prologue $NODE
	rec "new:1" "0123456789" "$H" $NODE 1 "" 1000
	data "more but not enough"
} >"$WORK/cut-value.bin"
refused cut-value "a value cut short" "connection closed by the client"

# DATA beyond what the record announced.
{
	prologue $NODE
	rec "new:1" "01234" "$H" $NODE 1 "" 8
	data "56789"
	batch_end 1
} >"$WORK/long-value.bin"
refused long-value "a value longer than announced" "more value bytes than the record announced"

# A bad record in a batch takes the whole batch down with it.
{
	prologue $NODE
	rec "new:1" "fine" "$H" $NODE 1
	rec "new:2" "bad metadata" "$((H + 1))" $NODE 2 '{not json'
	batch_end 2
} >"$WORK/bad-meta.bin"
refused bad-meta "a batch with a record whose metadata is not JSON" "protocol error: invalid record"

{
	prologue $NODE
	rec "new:1" "fine" "$H" $NODE 1
	rec ".." "bad key" "$((H + 1))" $NODE 2
	batch_end 2
} >"$WORK/bad-key.bin"
refused bad-key "a batch with an invalid key" "protocol error: record with an invalid key"

{
	prologue $NODE
	rec "new:1" "from the future" $((($(date +%s%3N) + 3600000) << 16)) $NODE 1
	batch_end 1
} >"$WORK/future.bin"
snapshot "$STORE" "$WORK/before"
check_eq "a record an hour ahead of the clock is refused (exit 4)" "$(feed future)" 4
check_err "and the error names --max-skew" "max-skew"
snapshot "$STORE" "$WORK/after"
check "and nothing of its batch is applied" cmp -s "$WORK/before" "$WORK/after"
{
	prologue $NODE 2
	rec "new:1" "from the future" $((($(date +%s%3N) + 3600000) << 16)) $NODE 1
	batch_end 1
} >"$WORK/future-dry.bin"
check_eq "a dry run foresees that refusal (exit 4)" "$(feed future-dry)" 4
check_err "and says nothing would be applied" "nothing of its batch would be applied"

{
	prologue $NODE
	rec "new:1" "fine" "$H" $NODE 1
	{ be 1 7; be 8 1; } | frame 21
} >"$WORK/bad-end.bin"
refused bad-end "a malformed BATCH_END" "protocol error: BATCH_END with a bad watermark"

# The same frames, well formed, are applied: the broken streams above
# failed where they were broken.
{
	prologue $NODE
	rec "new:1" "one" "$H" $NODE 1
	rec "new:2" "two" "$((H + 1))" $NODE 2 '{"ok":true}'
	batch_end 2
	done_frame 2
	bye
} >"$WORK/good.bin"
check_eq "a well-formed stream built the same way is accepted" "$(feed good)" 0
check_eq "and its records are applied" "$(kvctl "$STORE" get new:2)" two
check_eq "with their metadata" "$(kvctl "$STORE" get new:2 --metadata)" '{"value":"two","metadata":{"ok":true}}'
check "kvctl check is clean after all of it" kvctl "$STORE" check

# The daemon: the same kind of input over TCP.  Each bad connection ends,
# the daemon goes on serving, and its store is unchanged.
port=$(free_port)
check "the daemon starts" serve srv "$STORE" --listen "127.0.0.1:$port"

# tcp NAME: send $WORK/NAME.bin to the daemon; keep what it answers.
tcp() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$port"
		cat "$WORK/$1.bin" >&3
		timeout 3 cat <&3 >"$WORK/$1.reply"
	) 2>/dev/null || true
}

for name in http short-hello version huge unknown bad-meta long-value; do
	snapshot "$STORE" "$WORK/before"
	tcp "$name"
	snapshot "$STORE" "$WORK/after"
	check "serve: '$name' leaves the store unchanged" cmp -s "$WORK/before" "$WORK/after"
done
check "serve: the daemon answers a broken client with a protocol error" \
	grep -aq "protocol error" "$WORK/bad-meta.reply"
check "serve: the daemon logs the protocol errors" grep -q "protocol error" "$WORK/srv.log"
kvctl "$WORK/client" put after:garbage yes 2>/dev/null
check_exit "serve: the daemon still serves a real client afterwards" 0 \
	kvsync "$WORK/client" "kvsync://127.0.0.1:$port"
check "serve: whose record arrives" kvctl "$STORE" get after:garbage
finish
