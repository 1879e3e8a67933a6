#!/usr/bin/env bash
# test_coherence: a mount shows writes made by other processes within one
# second even with a long cache_ttl (the daemon follows the change feed and
# invalidates the kernel's caches): changed values and sizes, new keys,
# deleted keys and directories, a directory that becomes a key too, writes
# through a second mount of the same store; and an expiring key leaves the
# kernel's caches when it expires, not cache_ttl later.  Rereads of an
# unchanged value are served by the page cache, and a new key leaves its
# siblings in the kernel's entry cache.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
M=$WORK/mnt
M2=$WORK/mnt2
put() { t "$KVCTL" "$S" put "$1" "$2"; }
put f old
put d:x under-d
put p:x under-p
mount_kvfs "$S" "$M" -o cache_ttl=60,min_ttl=1
mount_kvfs "$S" "$M2" -o cache_ttl=60

# Fill the kernel's caches first: entries, attributes, data.
check_eq "f reads" "$(t cat "$M/f")" "old"
t stat "$M/f" "$M/d" "$M/p" >/dev/null

put f "new value"
check "a kvctl put shows within 1 s" within 1000 sh -c '[ "$(cat "$0/f")" = "new value" ]' "$M"
check "with its new size" within 1000 sh -c '[ "$(stat -c %s "$0/f")" = 9 ]' "$M"
put g fresh
check "a new key shows within 1 s" within 1000 sh -c '[ "$(cat "$0/g")" = fresh ]' "$M"
check "and is listed" sh -c 'ls "$0" | grep -qx g' "$M"
t "$KVCTL" "$S" delete f
check "a deleted key disappears within 1 s" within 1000 sh -c '! test -e "$0/f"' "$M"
t "$KVCTL" "$S" delete d:x
check "a directory whose last key went disappears within 1 s" \
	within 1000 sh -c '! test -e "$0/d"' "$M"
put p clash
check "a directory that becomes a key shows the file within 1 s" \
	within 1000 sh -c 'test -f "$0/p" && [ "$(cat "$0/p")" = clash ]' "$M"
check_eq "and the directory as p:" "$(t cat "$M/p:/x")" "under-p"

t sh -c 'echo from-2 > "$0/h"' "$M2"
check "a write through another mount of the store shows within 1 s" \
	within 1000 sh -c '[ "$(cat "$0/h")" = from-2 ]' "$M"
t cat "$M2/h" >/dev/null
t sh -c 'echo again > "$0/h"' "$M"
check "and the other way" within 1000 sh -c '[ "$(cat "$0/h")" = again ]' "$M2"

# The kernel's page cache and entry cache at work, seen in the requests
# that reach a daemon started with -d (it logs each one).
M3=$WORK/mnt3
LOG3=$WORK/kvfs-d.log
requests() { grep -c "opcode: $1 " "$LOG3" || true; }
put k cached-1
put s:a 1
put s:b 2
MOUNT_LOG=$LOG3 mount_kvfs "$S" "$M3" -d -o cache_ttl=60
check_eq "a value reads" "$(t cat "$M3/k")" "cached-1"
# Once its version is a second old, a reread reaches the daemon for the
# open only.
check "a settled value rereads from the page cache" within 3000 sh -c '
	cat "$0/k" >/dev/null
	n=$(grep -c "opcode: READ " "$1")
	[ "$(cat "$0/k")" = cached-1 ] && [ "$(grep -c "opcode: READ " "$1")" = "$n" ]' "$M3" "$LOG3"
put k cached-2
check "a kvctl put drops the cached pages within 1 s" \
	within 1000 sh -c '[ "$(cat "$0/k")" = cached-2 ]' "$M3"
t ls -l "$M3/s" >/dev/null
n=$(grep -c "^NOTIFY: " "$LOG3" || true)
put s:new 3
check "a key new to a cached directory shows within 1 s" within 1000 test -e "$M3/s/new"
check "the daemon tells the kernel within 1 s" within 1000 \
	sh -c '[ "$(grep -c "^NOTIFY: " "$0")" -gt "$1" ]' "$LOG3" "$n"
n=$(requests LOOKUP)
t stat "$M3/s/a" "$M3/s/b" >/dev/null
check_eq "and its siblings stay in the kernel's entry cache" "$(requests LOOKUP)" "$n"

M4=$WORK/mnt4
mount_kvfs "$S" "$M4" -o direct_io
check_eq "with -o direct_io a value reads" "$(t cat "$M4/k")" "cached-2"
put k direct-1
check_eq "and a change shows at once" "$(t cat "$M4/k")" "direct-1"

t sh -c 'echo brief > "$0/e"' "$M"
t setfattr -n user.kv.ttl -v 2 "$M/e"
t stat "$M/e" >/dev/null
check "an expiring key leaves the caches when it expires" \
	within 4000 sh -c '! test -e "$0/e"' "$M"

finish
