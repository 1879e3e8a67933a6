# shellcheck shell=bash
# frames.sh: write kvsync protocol bytes from bash, for tests that play a
# (broken) client by hand.  Sourced, not run.  Every function writes binary
# to stdout; integers are big-endian as on the wire (docs/kvsync.md).

# be BYTES N: N as a BYTES-byte big-endian integer.
be() {
	local bytes=$1 n=$2 i
	for ((i = bytes - 1; i >= 0; i--)); do
		# shellcheck disable=SC2059
		printf "\\x$(printf %02x $(((n >> (8 * i)) & 255)))"
	done
}

# zeros N: N zero bytes.
zeros() {
	head -c "$1" /dev/zero
}

magic() {
	printf 'KVSYNC\x00\x01'
}

# frame TYPE: a frame of TYPE around the payload read from stdin.
frame() {
	local payload
	payload=$(mktemp)
	cat >"$payload"
	be 4 $(($(stat -c %s "$payload") + 1))
	be 1 "$1"
	cat "$payload"
	rm -f "$payload"
}

# hello [VERSION]: the client's HELLO (no token).
hello() {
	{ be 4 "${1:-1}"; be 4 0; zeros 32; } | frame 1
}

# open_store FLAGS: OPEN (1 create, 2 will write).
open_store() {
	be 4 "$1" | frame 3
}

# ident NODE EPOCH: the client's IDENT of an empty store.
ident() {
	{ be 8 "$1"; be 8 "$2"; be 8 0; be 8 0; } | frame 4
}

# req OP [FLAGS [SKEW]]: a session request (1 push, 2 pull, 3 check), with
# FLAGS (default none; 2 dry run) and a max skew of SKEW ms (default 60 s;
# 0 asks for no bound).
req() {
	{ be 1 "$1"; be 4 "${2:-0}"; be 8 "${3:-60000}"; } | frame 16
}

# plan AFTER HEAD: the sender's plan of an incremental sync.
plan() {
	{ be 1 1; be 8 "$1"; be 8 "$2"; } | frame 18
}

# rec KEY VALUE HLC ORIGIN SEQ [METADATA [VALUE_LEN]]: a record whose whole
# value is in the frame (VALUE_LEN may announce more, to be sent as DATA).
rec() {
	local key=$1 value=$2 hlc=$3 origin=$4 seq=$5 meta=${6:-} vlen=${7:-}
	[ -n "$vlen" ] || vlen=${#value}
	{
		be 2 "${#key}"
		printf '%s' "$key"
		be 4 0; be 4 0; be 4 0; be 4 0; be 4 0 # flags mode uid gid ttl
		be 8 0; be 8 0; be 8 0                 # expiration mtime ctime
		be 8 "$hlc"; be 8 "$origin"; be 8 "$seq"
		be 2 "${#meta}"
		printf '%s' "$meta"
		be 4 "$vlen"
		printf '%s' "$value"
	} | frame 19
}

# rec_fields KEY VALUE HLC ORIGIN SEQ FLAGS TTL EXPIRATION MTIME CTIME: a
# record with every field that decides its expiry and times given, no
# metadata; integers may be negative (two's complement on the wire).
rec_fields() {
	{
		be 2 "${#1}"
		printf '%s' "$1"
		be 4 "$6"; be 4 0; be 4 0; be 4 0; be 4 "$7" # flags mode uid gid ttl
		be 8 "$8"; be 8 "$9"; be 8 "${10}"            # expiration mtime ctime
		be 8 "$3"; be 8 "$4"; be 8 "$5"
		be 2 0
		be 4 "${#2}"
		printf '%s' "$2"
	} | frame 19
}

# data BYTES: a DATA frame.
data() {
	printf '%s' "$1" | frame 20
}

# batch_end WM: close a batch and set the watermark.
batch_end() {
	{ be 1 1; be 8 "$1"; } | frame 21
}

# done_frame HEAD: the sender is done.
done_frame() {
	be 8 "$1" | frame 24
}

bye() {
	printf '' | frame 6
}

# prologue NODE [FLAGS [SKEW]]: everything a pushing client sends before
# its records: greeting, OPEN, IDENT, REQ(push, FLAGS, SKEW), PLAN.
prologue() {
	magic
	hello
	open_store 2
	ident "$1" 77
	req 1 "${2:-0}" "${3:-60000}"
	plan 0 100
}

# A clock for records: now, in kvcore's format (ms << 16).
hlc_now() {
	echo $(($(date +%s%3N) << 16))
}
