#!/usr/bin/env bash
# test_stress: a short concurrent load on one mount, for the sanitizers
# (the ThreadSanitizer build of tests/run-all.sh runs it too): writers of
# shared and private files, readers, renames back and forth, removals, and
# kvctl writing the same store from outside so the watcher invalidates
# while requests run.  The daemon must survive, every reader must only ever
# see whole values, and the daemon must exit with status 0 (a sanitizer
# report makes it fail).
. "$(dirname "$0")/lib.sh"

S=$WORK/store
M=$WORK/mnt
mount_kvfs "$S" "$M"
SECONDS_LEFT=${STRESS_SECONDS:-8}
end=$(($(date +%s) + SECONDS_LEFT))
mkdir -p "$M/w" "$M/r"
# Values are runs of one letter: a reader that sees two letters saw half of
# one version and half of another.
value() { head -c "$2" /dev/zero | tr '\0' "$1"; }
for i in 1 2 3 4; do value a 1000 > "$M/w/shared$i"; done

# Each writer has files of its own: two writers of one file in one mount
# share its pending value, as on ext4, and would interleave.
writer() { # $1: the first of its two files
	local n=0 c
	while [ "$(date +%s)" -lt "$end" ]; do
		c=$(printf "\\x$(printf %x $((97 + n % 26)))")
		value "$c" $((500 + n % 3000)) > "$M/w/shared$(($1 + n % 2))"
		n=$((n + 1))
	done
}
reader() {
	local f v bad=0
	while [ "$(date +%s)" -lt "$end" ]; do
		for f in "$M"/w/shared*; do
			v=$(cat "$f" 2>/dev/null) || continue
			[ -z "$v" ] && continue
			[ -z "$(tr -d "${v:0:1}" <<<"$v")" ] || bad=$((bad + 1))
		done
	done
	echo "$bad" > "$WORK/bad.$1"
}
mover() { # renames back and forth, and create-remove churn
	local n=0
	while [ "$(date +%s)" -lt "$end" ]; do
		printf "%s" "$n" > "$M/r/tmp$n"
		mv "$M/r/tmp$n" "$M/r/file$((n % 5))" 2>/dev/null || true
		mv "$M/r/file$((n % 5))" "$M/r/other$((n % 5))" 2>/dev/null || true
		rm -f "$M/r/other$(((n + 2) % 5))"
		ls "$M/r" >/dev/null
		n=$((n + 1))
	done
}
outsider() { # the watcher's work: changes from another process
	local n=0
	while [ "$(date +%s)" -lt "$end" ]; do
		t "$KVCTL" "$S" put "w:shared$((n % 4 + 1))" "$(value z $((100 + n % 700)))" >/dev/null
		t "$KVCTL" "$S" put "x:$((n % 50))" "$n" >/dev/null
		n=$((n + 1))
	done
}

pids=()
writer 1 & pids+=($!)
writer 3 & pids+=($!)
reader 1 & pids+=($!)
reader 2 & pids+=($!)
mover & pids+=($!)
outsider & pids+=($!)
for p in "${pids[@]}"; do timeout $((SECONDS_LEFT + 120)) tail --pid="$p" -f /dev/null; wait "$p" || true; done

check "the daemon still answers after the load" t ls "$M/w"
check_eq "readers saw only whole values" "$(cat "$WORK"/bad.* | awk "{s += \$1} END {print s + 0}")" "0"
check "kvctl check finds the store consistent" t "$KVCTL" "$S" check
finish
