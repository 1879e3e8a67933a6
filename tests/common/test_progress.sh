#!/usr/bin/env bash
# test_progress: the progress line of kvctl and kvsync as an operator sees
# it on a terminal, captured under a pty (util-linux `script`): done/total,
# the percentage, the rate (units/s and bytes/s) and the ETA of bulk put,
# bulk get, bulk delete, export, import, check, reap and kvsync -P; at most
# about ten frames a second (frames counted against the time the run took,
# measured here: no assertion of speed); a last frame that reads
# total/total and stays; and nothing at all when stderr is not a terminal.
#
# Environment: KVCTL and KVSYNC name the binaries (meson sets them).
. "$(dirname "${BASH_SOURCE[0]}")/../kvctl/lib.sh"
: "${KVSYNC:?KVSYNC must name the kvsync binary}"

command -v script >/dev/null || { echo "1..0 # SKIP no script(1)"; exit 77; }

ESC=$'\033'
N=10000 # entries per bulk file: Workers KV's limit

# bulk_file FILE FIRST: N bulk put entries k<FIRST..>, 1000-byte values.
bulk_file() {
	awk -v first="$2" -v n="$N" 'BEGIN {
		v = sprintf("%1000s", ""); gsub(/ /, "v", v)
		printf "["
		for (i = first; i < first + n; i++)
			printf "%s{\"key\":\"k%06d\",\"value\":\"%s\"}", (i > first ? "," : ""), i, v
		print "]"
	}' >"$1"
}

# on_tty NAME CMD: run the shell command CMD with a pty as its terminal;
# its output in $WORK/NAME.raw, the progress frames (each drawn as
# "\r ESC[K text") one a line in $WORK/NAME.frames, the time the run took
# in ELAPSED_MS.  Fails as CMD does.
on_tty() {
	local name=$1 cmd=$2 start status=0
	start=$(date +%s%N)
	t script -qfec "$cmd" /dev/null >"$WORK/$name.raw" </dev/null || status=$?
	ELAPSED_MS=$((($(date +%s%N) - start) / 1000000))
	tr '\r' '\n' <"$WORK/$name.raw" | sed -n "s/^${ESC}\[K//p" >"$WORK/$name.frames"
	return "$status"
}

# frames_ok NAME: the frames of run NAME came at most ten a second (one at
# once, one at the end, one each 100 ms between): counted against the time
# the run took, with one frame to spare.
frames_ok() {
	local n max
	n=$(wc -l <"$WORK/$1.frames")
	max=$((ELAPSED_MS / 100 + 3))
	if [ "$n" -ge 1 ] && [ "$n" -le "$max" ]; then
		ok "$1: $n frames in $ELAPSED_MS ms, ten a second at most"
	else
		not_ok "$1: $n frames in $ELAPSED_MS ms (at most $max)"
	fi
}

# has NAME DESC ERE: some frame of run NAME matches ERE.
has() {
	if grep -Eq -- "$3" "$WORK/$1.frames"; then
		ok "$1: $2"
	else
		not_ok "$1: $2 (frames: $(head -c 600 "$WORK/$1.frames" | tr '\n' '|'))"
	fi
}

# last NAME DESC ERE: the last frame of run NAME matches ERE, and it stays
# (a newline follows it, nothing erases it).
last() {
	local f
	f=$(tail -n 1 "$WORK/$1.frames")
	if grep -Eq -- "$3" <<<"$f" && ! tail -c 200 "$WORK/$1.raw" | grep -q "${ESC}\[K"$'\r'; then
		ok "$1: $2"
	else
		not_ok "$1: $2 (last frame: $f)"
	fi
}

ST=$WORK/st
for i in 0 1 2; do
	bulk_file "$WORK/b$i.json" $((i * N))
done
check "a store of $((3 * N)) keys" kv "$ST" bulk put "$WORK/b0.json"
check "..." kv "$ST" bulk put "$WORK/b1.json"

RATE='[0-9.]+[kMGTP]? keys/s'
BRATE='[0-9.]+ [KMGTP]?i?B/s'

# bulk put: the total is the file's entries.
on_tty put "$KVCTL $ST bulk put $WORK/b2.json" || not_ok "bulk put on a pty failed"
has put "done/total, %, rate, bytes/s and ETA while it runs" \
	"^bulk put: [0-9]+/$N keys [0-9]+% $RATE $BRATE ETA [0-9]+:[0-9]{2}:[0-9]{2}\$"
last put "the last frame is total/total, 100%, with the time taken" \
	"^bulk put: $N/$N keys 100% $RATE $BRATE in [0-9]+:[0-9]{2}:[0-9]{2}\$"
frames_ok put
if grep -q '^Success! Put' <(tr '\r' '\n' <"$WORK/put.raw"); then
	ok "put: the success message follows the line"
else
	not_ok "put: the success message follows the line"
fi

# bulk get: the total is the file's keys; the data goes to a file.
on_tty get "$KVCTL $ST bulk get $WORK/b1.json >$WORK/get.out" || not_ok "bulk get on a pty failed"
last get "bulk get: total/total with bytes/s" \
	"^bulk get: $N/$N keys 100% $RATE $BRATE in "
frames_ok get

# export: the total is an estimate (LMDB's entry count), shown as ~N.
on_tty export "$KVCTL $ST export >$WORK/export.json" || not_ok "export on a pty failed"
has export "an estimated total while it runs" "^export: [0-9]+/~$((3 * N)) keys [0-9]+% .*ETA "
last export "the last frame is the real total" "^export: $((3 * N))/$((3 * N)) keys 100% $RATE in "
frames_ok export
on_tty export_prefix "$KVCTL $ST export --prefix k01 >$WORK/export_prefix.json" ||
	not_ok "export --prefix on a pty failed"
last export_prefix "under a prefix, the keys exported are the total" "^export: 10000/10000 keys 100% "

# export --to-miniflare, then import --from-miniflare: COUNT(*) is the total.
MF=$WORK/mf
on_tty mfexport "$KVCTL $ST export --to-miniflare $MF --namespace ns" ||
	not_ok "export --to-miniflare on a pty failed"
last mfexport "export --to-miniflare: total/total" "^export: $((3 * N))/$((3 * N)) keys 100% "
on_tty import "$KVCTL $WORK/st2 import --from-miniflare $MF --namespace ns" ||
	not_ok "import on a pty failed"
has import "import: done/total, %, rate, ETA" "^import: [0-9]+/$((3 * N)) keys [0-9]+% $RATE ETA "
last import "import: total/total" "^import: $((3 * N))/$((3 * N)) keys 100% $RATE in "
frames_ok import

# check: the record count of the stats, then all of it once checked.
on_tty check "$KVCTL $ST check" || not_ok "check on a pty failed"
has check "check: 0/total before it starts" "^check: 0/$((3 * N)) records 0% "
last check "check: total/total at the end" "^check: $((3 * N))/$((3 * N)) records 100% .* in "

# reap: no total known, a count and a rate.
on_tty reap "$KVCTL $ST reap" || not_ok "reap on a pty failed"
last reap "reap: a count and the time taken, no total" \
	"^reap \(expired keys\): 0 keys [0-9.]+ keys/s in "

# kvsync -P: the initial sync of an empty store; the plan's head - after
# is the total (an upper bound: ~N), the last frame the records sent.
on_tty sync "$KVSYNC -P $ST $WORK/dst" || not_ok "kvsync -P on a pty failed"
has sync "kvsync: done/~total, records/s, bytes/s, ETA" \
	"^SRC -> DST: [0-9.]+ [KMGTP]?i?B [0-9]+/~$((3 * N)) records [0-9]+% [0-9.]+[kMGTP]? records/s $BRATE ETA "
last sync "kvsync: total/total at the end" \
	"^SRC -> DST: [0-9.]+ [KMGTP]?i?B $((3 * N))/$((3 * N)) records 100% .* in "
frames_ok sync

# bulk delete: total known, no bytes.
on_tty delete "$KVCTL $ST bulk delete $WORK/b0.json" || not_ok "bulk delete on a pty failed"
last delete "bulk delete: total/total" "^bulk delete: $N/$N keys 100% $RATE in "

# On a pipe: nothing at all of the line, the messages as before.
kv "$ST" bulk put "$WORK/b0.json" 2>"$WORK/pipe.err" >/dev/null
check_eq "bulk put on a pipe: only the success message" "$(cat "$WORK/pipe.err")" \
	"Success! Put $N keys"
kv "$ST" export 2>"$WORK/pipe.err" >/dev/null
check_eq "export on a pipe: nothing on stderr" "$(cat "$WORK/pipe.err")" ""
t "$KVSYNC" -P "$ST" "$WORK/dst2" 2>"$WORK/pipe.err" >/dev/null
check_eq "kvsync -P on a pipe: only the message of the store created" "$(cat "$WORK/pipe.err")" \
	"kvsync: created store $WORK/dst2"
# stderr a pipe while stdout is the terminal: still nothing drawn.
on_tty pipe_err "$KVCTL $ST check 2>$WORK/pipe.err" || not_ok "check on a pty failed"
check_eq "check with stderr a pipe: nothing drawn" \
	"$(cat "$WORK/pipe.err" "$WORK/pipe_err.frames")" ""

finish
