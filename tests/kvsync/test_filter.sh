#!/usr/bin/env bash
# test_filter: --prefix, --include and --exclude.  Against a model
# (filter_model.py, its own matcher): random keys over several ':' levels,
# with deletes and ttls, synced under random filters over every transport
# (local, daemon push and pull, remote shell), incrementally, then once
# unfiltered, after which DST equals SRC.  --check --prefix compares only
# the prefix.  A filtered sync leaves the unfiltered watermark alone and
# keeps its own (a second one sends nothing; an unfiltered one then sends
# what the filter passed over); below the GC horizon it compares by
# digests, filtered.  --watch and --both under a filter.  Bad
# patterns are usage errors (exit 2) and create nothing; a hostile FILTER
# frame is a clean protocol error.
. "$(dirname "$0")/lib.sh"
. "$SYNC_DIR/frames.sh"
: "${GC_TOMBSTONES:?GC_TOMBSTONES must name the gc_tombstones helper}"

MODEL=$SYNC_DIR/filter_model.py
RSH=$SYNC_DIR/fake-rsh.sh

# dump STORE: its namespace as sorted "key<TAB>value" lines.
dump() {
	kvctl "$1" export | python3 "$MODEL" norm
}

# same_as DESC STORE FILE: STORE holds exactly what FILE lists.
same_as() {
	dump "$2" >"$WORK/dump"
	if cmp -s "$WORK/dump" "$3"; then
		ok "$1"
	else
		not_ok "$1"
		{ diff "$3" "$WORK/dump" || true; } | head -n 10 | sed "s/^/#   /"
	fi
}

# filtered_sync HOW SRC DST ARGS...: one sync of SRC to DST over transport
# HOW (local, push: DST behind a daemon, pull: SRC behind a daemon, rsh:
# SRC behind the remote shell).
filtered_sync() {
	local how=$1 src=$2 dst=$3
	shift 3
	case $how in
	local) kvsync "$@" "$src" "$dst" ;;
	push) kvsync "$@" "$src" "$DST_URL" ;;
	pull) kvsync "$@" "$SRC_URL" "$dst" ;;
	rsh) kvsync -e "$RSH" --kvsync-path "$KVSYNC" "$@" "host:$src" "$dst" ;;
	esac
}

# ---- the model, over every transport
for seed in 1 2 3 4 5 6 7 8; do
	how=$(echo local push pull rsh | cut -d' ' -f$(((seed - 1) % 4 + 1)))
	dir=$WORK/seed$seed
	mkdir -p "$dir"
	python3 "$MODEL" gen "$seed" "$dir"
	mapfile -t args <"$dir/args"
	src=$dir/src dst=$dir/dst
	kvctl "$src" bulk put "$dir/put1.json" >/dev/null
	kvctl "$src" bulk delete "$dir/del1.json" >/dev/null
	# DST holds a tombstone, so the first sync is a first contact between
	# populated stores: a digest comparison under the filter; the second
	# is incremental, from the filter's own watermark.
	kvctl "$dst" put unrelated:key "dst's own" 2>/dev/null
	kvctl "$dst" delete unrelated:key
	if [ "$how" = push ] || [ "$how" = pull ]; then
		port=$(free_port)
		store=$dst
		[ "$how" = pull ] && store=$src
		serve "srv$seed" "$store" --listen "127.0.0.1:$port"
		DST_URL=kvsync://127.0.0.1:$port SRC_URL=kvsync://127.0.0.1:$port
	fi
	desc="seed $seed ($how; ${args[*]})"
	check "$desc: a filtered sync" filtered_sync "$how" "$src" "$dst" "${args[@]}"
	same_as "$desc: DST holds the selected keys, as the model says" "$dst" "$dir/want1"
	kvctl "$src" bulk put "$dir/put2.json" >/dev/null
	kvctl "$src" bulk delete "$dir/del2.json" >/dev/null
	check "$desc: a second filtered sync" filtered_sync "$how" "$src" "$dst" "${args[@]}"
	same_as "$desc: after more changes, DST holds the selected keys" "$dst" "$dir/want2"
	check_exit "$desc: --check with the filter finds them converged" 0 \
		filtered_sync "$how" "$src" "$dst" --check "${args[@]}"
	check "$desc: an unfiltered sync" filtered_sync "$how" "$src" "$dst"
	same_as "$desc: then DST holds all of SRC" "$dst" "$dir/all2"
	check_exit "$desc: and --check finds them converged" 0 kvsync --check "$src" "$dst"
	if [ "$how" = push ] || [ "$how" = pull ]; then
		stop_pids "$SERVE_PID"
	fi
done

# ---- --check --prefix compares only the prefix
A=$WORK/ca B=$WORK/cb
kvctl "$A" bulk put - >/dev/null <<'JSON'
[{"key":"app:1","value":"one"},{"key":"app:2","value":"two"},{"key":"cache:1","value":"c"}]
JSON
kvsync "$A" "$B" 2>/dev/null
kvctl "$B" put cache:1 "changed at DST"
kvctl "$B" put cache:2 "only at DST"
check_exit "--check sees the differences under cache:" 1 kvsync --check "$A" "$B"
check_exit "--check --prefix app: does not: exit 0" 0 kvsync --check --prefix app: "$A" "$B"
check_eq "... and names no key" "$(cat "$WORK/last.out")" ""
check_exit "--check --exclude 'cache:' does not either" 0 kvsync --check --exclude 'cache:' "$A" "$B"
kvctl "$B" put app:2 "changed at DST"
check_exit "a difference under the prefix: exit 1" 1 kvsync --check --prefix app: "$A" "$B"
check_eq "... naming that key only" "$(cat "$WORK/last.out")" "* app:2 (SRC: older, DST: newer)"
check_exit "--check --exclude 'cache:' sees it: exit 1" 1 kvsync --check --exclude 'cache:' "$A" "$B"
check_eq "... naming app:2, not the cache: keys beside it" "$(cat "$WORK/last.out")" \
	"* app:2 (SRC: older, DST: newer)"
check_exit "--check --prefix app: --exclude 'app:2' is back to 0" 0 \
	kvsync --check --prefix app: --exclude app:2 "$A" "$B"
port=$(free_port)
serve chk "$B" --listen "127.0.0.1:$port"
check_exit "through a daemon too: exit 1" 1 kvsync --check --prefix app: "$A" "kvsync://127.0.0.1:$port"
check_eq "... naming app:2" "$(cat "$WORK/last.out")" "* app:2 (SRC: older, DST: newer)"
check_exit "... and 0 outside it" 0 kvsync --check --prefix cache:2x "$A" "kvsync://127.0.0.1:$port"
stop_pids "$SERVE_PID"

# ---- watermarks: a filtered sync keeps its own
A=$WORK/wa B=$WORK/wb
kvctl "$A" bulk put - >/dev/null <<'JSON'
[{"key":"in:1","value":"1"},{"key":"out:1","value":"1"}]
JSON
kvsync "$A" "$B" 2>/dev/null
# peers STORE: the watermarks STORE holds, as `kvctl stats` lists them.
peers() {
	kvctl "$1" stats | tr -d ' \n' | sed 's/.*"peers"://'
}
wm_before=$(peers "$B")
kvctl "$A" bulk put - >/dev/null <<'JSON'
[{"key":"in:2","value":"2"},{"key":"in:3","value":"3"},{"key":"out:2","value":"2"},{"key":"out:3","value":"3"},{"key":"out:4","value":"4"}]
JSON
kvsync --stats --prefix in: "$A" "$B" >"$WORK/st1"
check_eq "a filtered sync sends the 2 selected changes" "$(stats_field "$WORK/st1" 'Number of keys transferred')" 2
check_eq "... incrementally (the peer's watermark is usable)" \
	"$(kvsync -v --prefix in: "$A" "$B" 2>&1 >/dev/null | grep -c 'after')" 1
check_eq "it leaves the unfiltered watermark where it was" \
	"$(peers "$B")" "$wm_before"
kvsync --stats --prefix in: "$A" "$B" >"$WORK/st2"
check_eq "a second identical filtered sync sends nothing" \
	"$(stats_field "$WORK/st2" 'Number of keys transferred')" 0
kvsync --stats "$A" "$B" >"$WORK/st3"
check_eq "an unfiltered sync then applies the 3 changes the filter passed over" \
	"$(stats_field "$WORK/st3" 'Number of keys applied')" 3
check_eq "... and ignores the 2 the filtered one applied" \
	"$(stats_field "$WORK/st3" 'Number of keys ignored')" 2
kvctl "$A" put out:5 5
kvctl "$A" put in:4 4
kvsync --stats --prefix in: "$A" "$B" >"$WORK/st4"
check_eq "after it, a filtered sync starts from the unfiltered watermark: sends 1" \
	"$(stats_field "$WORK/st4" 'Number of keys transferred')" 1
kvsync --stats --exclude 'in:' "$A" "$B" >"$WORK/st5"
check_eq "another filter has a watermark of its own: sends out:5 only" \
	"$(stats_field "$WORK/st5" 'Number of keys transferred')" 1
check_exit "and all converged" 0 kvsync --check "$A" "$B"

# ---- a scoped watermark below the GC horizon: the way back, filtered
A=$WORK/ga B=$WORK/gb
kvctl "$A" bulk put - >/dev/null <<'JSON'
[{"key":"g:1","value":"1"},{"key":"g:2","value":"2"},{"key":"x:1","value":"1"}]
JSON
kvsync --prefix g: "$A" "$B" 2>/dev/null
kvctl "$A" delete g:1
kvctl "$A" put g:2 "changed after the split"
kvctl "$A" put x:2 "not selected"
kvctl "$A" delete x:1
sleep 1.1
check "tombstones older than 1 s are collected" t "$GC_TOMBSTONES" "$A" 1
check_exit "a filtered sync behind the GC horizon succeeds" 0 kvsync -v --stats --prefix g: "$A" "$B"
check_err "it compares by digests" "by digest comparison"
check_eq "it sends the one selected record B lacks" "$(stats_field "$WORK/last.out" "Number of keys transferred")" 1
check_eq "the change arrives" "$(kvctl "$B" get g:2)" "changed after the split"
check_exit "nothing outside the prefix arrives" 1 kvctl "$B" get x:2
check_exit "the next filtered sync succeeds" 0 kvsync -v --stats --prefix g: "$A" "$B"
check_err "and is incremental again (its watermark is A's head)" "records after $(stat_field "$A" feed_head)"

# ---- --both and --watch under a filter
A=$WORK/ba B=$WORK/bb
kvctl "$A" put shared:a from-a
kvctl "$A" put private:a from-a
kvctl "$B" put shared:b from-b
kvctl "$B" put private:b from-b
check "--both --prefix shared:" kvsync --both --prefix shared: "$A" "$B"
check_eq "A got B's shared key, not its private one" \
	"$(dump "$A" | cut -f1 | tr '\n' ' ')" "private:a shared:a shared:b "
check_eq "B got A's shared key, not its private one" \
	"$(dump "$B" | cut -f1 | tr '\n' ' ')" "private:b shared:a shared:b "
bg watch "$KVSYNC" --watch --exclude 'private:' "$A" "$B"
WATCH_PID=$BG_PID
kvctl "$A" put private:w secret
kvctl "$A" put shared:w1 1
check "--watch sends a selected change" within 10000 kvctl "$B" get shared:w1
kvctl "$A" put shared:w2 2
check "... and the next" within 10000 kvctl "$B" get shared:w2
check_exit "... and not the excluded one, written before them" 1 kvctl "$B" get private:w
kill -TERM "$WATCH_PID"
wait "$WATCH_PID" 2>/dev/null || true

# ---- bad patterns and prefixes: usage errors, nothing created
bad() {
	local desc=$1 msg=$2
	shift 2
	check_exit "$desc: exit 2" 2 kvsync "$@" "$WORK/ca" "$WORK/never"
	check_err "$desc: says '$msg'" "$msg"
	check "$desc: DST is not created" test ! -e "$WORK/never"
}
bad "an unclosed [" "--exclude 'a[b': unclosed [ in the pattern" --exclude 'a[b'
bad "a trailing backslash" "--include 'ab\\': pattern ends in a lone \\" --include 'ab\'
bad "an empty pattern" "--exclude '': empty pattern" --exclude ''
bad "a backwards range" "runs backwards" --include '[z-a]'
bad "a pattern over 1024 bytes" "pattern over 1024 bytes" --exclude "$(printf 'x%.0s' $(seq 1025))"
p1000=$(printf 'x%.0s' $(seq 1000))
bad "rules over 4096 bytes in all" "patterns over 4096 bytes in all" \
	--exclude "$p1000" --exclude "$p1000" --exclude "$p1000" --exclude "$p1000" --include "$p1000"
bad "an empty prefix" "--prefix '': empty prefix" --prefix ''
check_exit "--server takes no filter" 2 kvsync --prefix a --server "$WORK/ca"

# ---- hostile FILTER frames: a clean protocol error
# feed NAME: run `kvsync --server` on $WORK/NAME.bin; print its exit status.
feed() {
	local rc=0
	t "$KVSYNC" --server "$WORK/ca" <"$WORK/$1.bin" >/dev/null 2>"$WORK/last.err" || rc=$?
	echo "$rc"
}
# hostile NAME DESC MESSAGE: a pull asking for a filter, then FILTER's payload from stdin
hostile() {
	{
		magic; hello; open_store 0; ident 4242 77
		req 2 16
		frame 26
		bye
	} >"$WORK/$1.bin"
	snapshot "$WORK/ca" "$WORK/before"
	check_eq "$2: exit 3" "$(feed "$1")" 3
	check_err "$2: says '$3'" "$3"
	snapshot "$WORK/ca" "$WORK/after"
	check "$2: the store is unchanged" cmp -s "$WORK/before" "$WORK/after"
}
be 2 65535 | hostile many-prefixes "65535 prefixes" "protocol error: FILTER with too many prefixes"
{ be 2 1; be 2 65535; printf abc; } | hostile long-prefix "a prefix of 65535 bytes" "protocol error: short FILTER"
{ be 2 1; be 2 600; head -c 600 /dev/zero | tr '\0' a; be 2 0; } |
	hostile big-prefix "a prefix of 600 bytes" "protocol error: FILTER with a bad prefix"
{ be 2 0; be 2 65535; } | hostile many-rules "65535 rules" "protocol error: FILTER with too many rules"
{ be 2 0; be 2 4; for _ in $(seq 4); do be 1 2; be 2 1024; head -c 1024 /dev/zero | tr '\0' '*'; done; be 1 0; } |
	hostile full-rules "4 rules of 1024 stars (4096 bytes: the bound) and more" "protocol error: trailing bytes"
{ be 2 0; be 2 256; for _ in $(seq 256); do be 1 2; be 2 1024; head -c 1024 /dev/zero | tr '\0' '*'; done; } |
	hostile heavy-rules "256 rules of 1024 stars (over 4096 bytes in all)" "protocol error: FILTER with a bad rule"
{ be 2 0; be 2 1; be 1 2; be 2 2; printf 'a['; } | hostile bad-pattern "an unclosed [" "protocol error: FILTER with a bad rule"
{ be 2 0; be 2 1; be 1 7; be 2 1; printf 'a'; } | hostile bad-kind "a rule of kind 7" "protocol error: FILTER with a bad rule"
{ be 2 0; be 2 1; be 1 1; be 2 0; } | hostile empty-pattern "an empty pattern" "protocol error: FILTER with a bad rule"
{ be 2 0; } | hostile short "a FILTER cut short" "protocol error: short FILTER"
{
	magic; hello; open_store 0; ident 4242 77
	req 2 16
	bye
} >"$WORK/no-filter.bin"
check_eq "a REQ announcing a filter followed by no FILTER: exit 3" "$(feed no-filter)" 3
check_err "... says so" "unexpected BYE frame instead of FILTER"
check "the store is clean" kvctl "$WORK/ca" check

finish
