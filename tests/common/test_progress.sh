#!/usr/bin/env bash
# test_progress: the progress line of kvctl and kvsync as an operator sees
# it on a terminal, captured under a pty (util-linux `script`): done/total,
# the percentage, the rate (units/s and bytes/s) and the ETA of bulk put,
# bulk get, bulk delete, export, import, check, reap and kvsync -P; at most
# about ten frames a second (frames counted against the time the run took,
# measured here: no assertion of speed); a last frame that reads
# total/total and stays; and nothing at all when stderr is not a terminal.
#
# Long operations move: bulk put, bulk get, export, import and check each
# draw more than one frame of their main work with a growing count and a
# total.  The work is made long enough for that, never timed: a store of
# 100000 keys, a bulk file of 10000 keys of 8000 bytes (80 MB to read,
# parse and write), and a pause in the middle of the work that outlasts a
# frame's 100 ms however fast the machine: the output of export and bulk
# get goes to a reader that pauses twice (the command waits on the pipe),
# and bulk put, import and check are stopped (SIGSTOP) for 300 ms as soon
# as the first frame of the step is drawn, then continued.  The steps
# around the counted work show: reading and parsing the bulk file (bytes
# of its size), the commit of bulk put, bulk delete and import
# ("committing..."); a step's first frame, and a wait's, is drawn at once.
#
# Environment: KVCTL and KVSYNC name the binaries (meson sets them).
. "$(dirname "${BASH_SOURCE[0]}")/../kvctl/lib.sh"
: "${KVSYNC:?KVSYNC must name the kvsync binary}"

command -v script >/dev/null || { echo "1..0 # SKIP no script(1)"; exit 77; }

ESC=$'\033'
N=10000   # entries per bulk file: Workers KV's limit
FILES=10  # of N keys each: the store of 100000 keys
BIG=8000  # bytes of each value of the large bulk file

# bulk_file FILE FIRST [SIZE]: N bulk put entries k<FIRST..>, SIZE-byte
# values (default 1000).
bulk_file() {
	awk -v first="$2" -v n="$N" -v size="${3:-1000}" 'BEGIN {
		v = "v"
		while (length(v) < size)
			v = v v
		v = substr(v, 1, size)
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

# on_tty_paused NAME CMD ERE...: as on_tty for a simple command CMD (no
# pipe, no redirection), stopped for 300 ms (SIGSTOP, then SIGCONT) as soon
# as a frame matching each ERE in turn has been drawn (an ERE never drawn
# waits until CMD ends).
on_tty_paused() {
	local name=$1 cmd=$2 start status=0 pid ppid ere i spid
	shift 2
	: >"$WORK/$name.raw"
	rm -f "$WORK/$name.pid"
	start=$(date +%s%N)
	t script -qfec "echo \$\$ >$WORK/$name.pid; exec $cmd" /dev/null >"$WORK/$name.raw" \
		</dev/null &
	spid=$!
	PIDS+=("$spid")
	for ere in "$@"; do
		for ((i = 0; i < 3000; i++)); do
			if tr '\r' '\n' <"$WORK/$name.raw" | grep -Eq "^${ESC}\[K$ere"; then
				pid=$(cat "$WORK/$name.pid")
				# script(1) stops itself when its child stops (job
				# control): it is continued too, after the child.
				ppid=$(awk '{ print $4 }' "/proc/$pid/stat")
				kill -STOP "$pid" 2>/dev/null || true
				sleep 0.3
				kill -CONT "$pid" "$ppid" 2>/dev/null || true
				break
			fi
			kill -0 "$spid" 2>/dev/null || break
			sleep 0.01
		done
	done
	wait "$spid" || status=$?
	ELAPSED_MS=$((($(date +%s%N) - start) / 1000000))
	tr '\r' '\n' <"$WORK/$name.raw" | sed -n "s/^${ESC}\[K//p" >"$WORK/$name.frames"
	return "$status"
}

# A reader of a command's output that pauses twice in the middle of it
# (after 1 MB and after 20 MB), so that the command waits on the pipe:
# its work lasts past several frames whatever the machine's speed.
SLOW_SINK='{ head -c 1000000; sleep 0.3; head -c 19000000; sleep 0.3; cat; } >/dev/null'

# frames_ok NAME [STEPS]: the frames of run NAME came at most ten a second
# (one at once, one at the end, one each 100 ms between, and the one each
# of its STEPS (default 0: steps and waits) is begun with at once): counted
# against the time the run took, with a frame to spare.
frames_ok() {
	local n max
	n=$(wc -l <"$WORK/$1.frames")
	max=$((ELAPSED_MS / 100 + 3 + ${2:-0}))
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

# grows NAME DESC ERE: at least two frames of run NAME match ERE while the
# work runs (not the final frame, not a wait's), and their counts (the
# first number after the label and the step's name, bytes in binary units)
# strictly grow: the line moved while the work went on.
grows() {
	local counts
	counts=$(grep -E -- "$3" "$WORK/$1.frames" | grep -Ev -- " in $HMS\$|\.\.\.\$" | awk '{
		sub(/^[^:]*: [a-z ]*/, "")
		n = $1 + 0
		if ($2 ~ /^KiB/) n *= 1024
		else if ($2 ~ /^MiB/) n *= 1048576
		else if ($2 ~ /^GiB/) n *= 1073741824
		printf "%d ", n
	}') || true # no frame matches: none grows
	if awk -v c="$counts" 'BEGIN {
		n = split(c, v, " ")
		if (n < 2) exit 1
		for (i = 2; i <= n; i++) if (v[i] + 0 <= v[i - 1] + 0) exit 1
	}'; then
		ok "$1: $2 (counts: $counts)"
	else
		not_ok "$1: $2 (counts: $counts; frames: $(head -c 600 "$WORK/$1.frames" | tr '\n' '|'))"
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

# The store: three files of keys first, the Miniflare state made of them
# (30000 keys, for import), then the rest, up to 100000 keys.
ST=$WORK/st
MF=$WORK/mf
for ((i = 0; i < FILES; i++)); do
	bulk_file "$WORK/b$i.json" $((i * N))
done
bulk_file "$WORK/big.json" $((FILES * N)) "$BIG"
for i in 0 1 2; do
	kv "$ST" bulk put "$WORK/b$i.json" 2>/dev/null
done
check "a Miniflare state of $((3 * N)) keys" kv "$ST" export --to-miniflare "$MF" --namespace ns
for ((i = 3; i < FILES - 1; i++)); do
	kv "$ST" bulk put "$WORK/b$i.json" 2>/dev/null
done
check "a store of $(((FILES - 1) * N)) keys" kv "$ST" stats

RATE='[0-9.]+[kMGTP]? keys/s'
BRATE='[0-9.]+ [KMGTP]?i?B/s'
MIB='[0-9.]+ [KMG]?i?B'
HMS='[0-9]+:[0-9]{2}:[0-9]{2}'

# bulk put: the file read and parsed (bytes of its size), then the keys of
# the file's entries, then the commit.
on_tty put "$KVCTL $ST bulk put $WORK/b$((FILES - 1)).json" || not_ok "bulk put on a pty failed"
last put "the last frame is total/total, 100%, with the time taken" \
	"^bulk put: $N/$N keys 100% $RATE $BRATE in $HMS\$"
frames_ok put 4
if grep -q '^Success! Put' <(tr '\r' '\n' <"$WORK/put.raw"); then
	ok "put: the success message follows the line"
else
	not_ok "put: the success message follows the line"
fi
has put "reading the file first: bytes of its size" "^bulk put: reading $MIB/$MIB [0-9]+% "
has put "then parsing it: bytes of its size" "^bulk put: parsing $MIB/$MIB [0-9]+% "
has put "then the keys, from 0 of the file's entries" "^bulk put: 0/$N keys 0% "
has put "the commit is a step of its own, not a count standing still" \
	"^bulk put: $N/$N keys 100%, committing\.\.\.\$"

# A file refused before any work (too large; missing): its message alone.
head -c $((100 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$WORK/huge.json"
on_tty huge "$KVCTL $ST bulk put $WORK/huge.json" && not_ok "a bulk file over the limit was taken"
check_eq "a bulk file over the limit on a pty: no line, the message" \
	"$(cat "$WORK/huge.frames"; grep -c 'Bulk file is 104857601 bytes' "$WORK/huge.raw")" 1
rm -f "$WORK/huge.json"
on_tty missing "$KVCTL $ST bulk put $WORK/missing.json" && not_ok "a missing bulk file was taken"
check_eq "a missing bulk file on a pty: no line, the message" \
	"$(cat "$WORK/missing.frames"; grep -c 'cannot read' "$WORK/missing.raw")" 1

# Parsing and writing a large file, each paused as it begins: both move.
on_tty_paused put_big "$KVCTL $WORK/stb bulk put $WORK/big.json" "bulk put: parsing " \
	"bulk put: 0/" || not_ok "bulk put of large values failed"
grows put_big "parsing: the bytes parsed grow, of the file's size" \
	"^bulk put: parsing $MIB/$MIB [0-9]+% "
has put_big "parsing: bytes/s and ETA while it runs" \
	"^bulk put: parsing $MIB/$MIB [0-9]+% $BRATE ETA $HMS\$"
grows put_big "writing: the keys written grow, of the file's entries" \
	"^bulk put: [0-9]+/$N keys [0-9]+% "
has put_big "writing: done/total, %, rate, bytes/s and ETA while it runs" \
	"^bulk put: [1-9][0-9]*/$N keys [0-9]+% $RATE $BRATE ETA $HMS\$"
has put_big "committing" "^bulk put: $N/$N keys 100%, committing\.\.\.\$"
last put_big "total/total with the time taken" "^bulk put: $N/$N keys 100% $RATE $BRATE in "
frames_ok put_big 4

# bulk get: the file read and parsed, then the keys; the data goes to a
# reader that pauses.
on_tty get "$KVCTL $WORK/stb bulk get $WORK/big.json | $SLOW_SINK" || not_ok "bulk get on a pty failed"
grows get "the keys read grow, of the file's entries" "^bulk get: [0-9]+/$N keys [0-9]+% $RATE $BRATE ETA "
has get "reading the file first" "^bulk get: reading $MIB/$MIB "
last get "bulk get: total/total with bytes/s" \
	"^bulk get: $N/$N keys 100% $RATE $BRATE in "
frames_ok get 3

# export: the total is an estimate (LMDB's entry count), shown as ~N.
on_tty export "$KVCTL $ST export | $SLOW_SINK" || not_ok "export on a pty failed"
ALL=$((FILES * N))
has export "an estimated total while it runs" "^export: [0-9]+/~$ALL keys [0-9]+% .*ETA "
grows export "the keys exported grow, of the estimate" "^export: [0-9]+/~$ALL keys [0-9]+% $RATE ETA "
last export "the last frame is the real total" "^export: $ALL/$ALL keys 100% $RATE in "
frames_ok export
on_tty export_prefix "$KVCTL $ST export --prefix k01 >$WORK/export_prefix.json" ||
	not_ok "export --prefix on a pty failed"
last export_prefix "under a prefix, the keys exported are the total" "^export: 10000/10000 keys 100% "

# export --to-miniflare: the blobs synced and the database committed after
# the keys; import --from-miniflare: COUNT(*) is the total.
on_tty mfexport "$KVCTL $ST export --to-miniflare $WORK/mf2 --namespace ns --prefix k00" ||
	not_ok "export --to-miniflare on a pty failed"
has mfexport "export --to-miniflare: syncing the blobs" "^export: $N/$N keys 100%, syncing\.\.\.\$"
has mfexport "export --to-miniflare: committing" "^export: $N/$N keys 100%, committing\.\.\.\$"
last mfexport "export --to-miniflare: total/total" "^export: $N/$N keys 100% "
on_tty_paused import "$KVCTL $WORK/st2 import --from-miniflare $MF --namespace ns" "import: " ||
	not_ok "import on a pty failed"
has import "import: done/total, %, rate, ETA" "^import: [0-9]+/$((3 * N)) keys [0-9]+% $RATE ETA "
grows import "import: the keys imported grow" "^import: [0-9]+/$((3 * N)) keys [0-9]+% $RATE ETA "
has import "import: committing" "^import: $((3 * N))/$((3 * N)) keys 100%, committing\.\.\.\$"
last import "import: total/total" "^import: $((3 * N))/$((3 * N)) keys 100% $RATE in "
frames_ok import 1

# check: entries (records, then the feed's, expiry and tombstone entries)
# of LMDB's count of them, known before the check starts: no scan first.
ENTRIES=$((2 * ALL)) # a record and a feed entry each; no expiry, no tombstone
on_tty_paused check "$KVCTL $ST check" "check: " || not_ok "check on a pty failed"
has check "check: 0/total before it starts" "^check: 0/$ENTRIES entries 0% "
grows check "check: the entries checked grow, of the total" "^check: [0-9]+/$ENTRIES entries [0-9]+% "
has check "check: entries/s and an ETA while it runs" \
	"^check: [1-9][0-9]*/$ENTRIES entries [0-9]+% [0-9.]+[kMGTP]? entries/s ETA $HMS\$"
last check "check: total/total at the end" "^check: $ENTRIES/$ENTRIES entries 100% .* in "
check_eq "check: the records checked on stdout" \
	"$(tr -d '\r' <"$WORK/check.raw" | grep '^ok:')" "ok: $ALL records checked"
frames_ok check

# check of a store with problems (the first 5 entries of its change feed
# removed, through LMDB's own dump and load): each problem is printed on a
# line of its own, never after a frame on the same line, and the line is
# drawn again below it.
N=300 bulk_file "$WORK/small.json" 0 10
kv "$WORK/small" bulk put "$WORK/small.json" 2>/dev/null
t mdb_dump -a "$WORK/small" >"$WORK/small.dump"
awk '/^database=/ { db = substr($0, 10) }
	/^HEADER=END/ { n = 0 }
	/^ / && db == "feed" && ++n <= 10 { next }
	{ print }' "$WORK/small.dump" >"$WORK/bad.dump"
mkdir "$WORK/bad"
t mdb_load -f "$WORK/bad.dump" "$WORK/bad" 2>/dev/null
on_tty check_bad "$KVCTL $WORK/bad check" && not_ok "check of a store with problems succeeded"
tr '\r' '\n' <"$WORK/check_bad.raw" | sed "s/^${ESC}\[K//" >"$WORK/check_bad.lines"
check_eq "check_bad: each problem on a line of its own" \
	"$(grep -Ec "^(key 'k[0-9]+' is missing from the change feed at [0-9]+|the feed has [0-9]+ entries for 300 records)\$" \
		"$WORK/check_bad.lines")" 6
check_eq "check_bad: no problem after a frame on its line" \
	"$(grep -Ec '^check: .*(is missing|the feed has)' "$WORK/check_bad.lines")" 0
last check_bad "the line drawn again below them, what was checked" "^check: [0-9]+/[0-9]+ entries 100% .* in "
check_eq "check_bad: the count of problems" "$(grep -c '^kvctl: check found 6 problems' "$WORK/check_bad.lines")" 1

# reap: no total known, a count and a rate.
on_tty reap "$KVCTL $ST reap" || not_ok "reap on a pty failed"
last reap "reap: a count and the time taken, no total" \
	"^reap \(expired keys\): 0 keys [0-9.]+ keys/s in "
has reap "reap: then the collection of old tombstones, a step of its own" \
	"^reap \(expired keys\): 0 keys, collecting old tombstones\.\.\.\$"

# kvsync -P: the initial sync of an empty store; the plan's head - after
# is the total (an upper bound: ~N), the last frame the records sent.
on_tty sync "$KVSYNC -P $ST $WORK/dst" || not_ok "kvsync -P on a pty failed"
has sync "kvsync: done/~total, records/s, bytes/s, ETA" \
	"^SRC -> DST: [0-9.]+ [KMGTP]?i?B [0-9]+/~$ALL records [0-9]+% [0-9.]+[kMGTP]? records/s $BRATE ETA "
last sync "kvsync: total/total at the end" \
	"^SRC -> DST: [0-9.]+ [KMGTP]?i?B $ALL/$ALL records 100% .* in "
frames_ok sync

# bulk delete: total known, no bytes.
on_tty delete "$KVCTL $ST bulk delete $WORK/b0.json" || not_ok "bulk delete on a pty failed"
has delete "bulk delete: committing" "^bulk delete: $N/$N keys 100%, committing\.\.\.\$"
last delete "bulk delete: total/total" "^bulk delete: $N/$N keys 100% $RATE in "

# On a pipe: nothing at all of the line, the messages as before.
kv "$ST" bulk put "$WORK/b0.json" 2>"$WORK/pipe.err" >/dev/null
check_eq "bulk put on a pipe: only the success message" "$(cat "$WORK/pipe.err")" \
	"Success! Put $N keys"
kv "$ST" export 2>"$WORK/pipe.err" >/dev/null
check_eq "export on a pipe: nothing on stderr" "$(cat "$WORK/pipe.err")" ""
kv "$WORK/stb" bulk put "$WORK/big.json" 2>"$WORK/pipe.err" >/dev/null
check_eq "bulk put of a large file on a pipe: nothing of reading, parsing, committing" \
	"$(cat "$WORK/pipe.err")" "Success! Put $N keys"
kv "$ST" check 2>"$WORK/pipe.err" >/dev/null
check_eq "check on a pipe: nothing on stderr" "$(cat "$WORK/pipe.err")" ""
kv "$WORK/st3" import --from-miniflare "$MF" --namespace ns 2>"$WORK/pipe.err" >/dev/null
check_eq "import on a pipe: only the messages" "$(cat "$WORK/pipe.err")" \
	"kvctl: created store '$WORK/st3'
Success! Imported $((3 * N)) keys from namespace 'ns'"
t "$KVSYNC" -P "$ST" "$WORK/dst2" 2>"$WORK/pipe.err" >/dev/null
check_eq "kvsync -P on a pipe: only the message of the store created" "$(cat "$WORK/pipe.err")" \
	"kvsync: created store $WORK/dst2"
# stderr a pipe while stdout is the terminal: still nothing drawn.
on_tty pipe_err "$KVCTL $ST check 2>$WORK/pipe.err" || not_ok "check on a pty failed"
check_eq "check with stderr a pipe: nothing drawn" \
	"$(cat "$WORK/pipe.err" "$WORK/pipe_err.frames")" ""

finish
