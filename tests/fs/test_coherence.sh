#!/usr/bin/env bash
# test_coherence: a mount shows writes made by other processes within one
# second even with a long cache_ttl (the daemon follows the change feed and
# invalidates the kernel's caches): changed values and sizes, new keys,
# deleted keys and directories, a directory that becomes a key too, writes
# through a second mount of the same store; and an expiring key leaves the
# kernel's caches when it expires, not cache_ttl later.
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

M3=$WORK/mnt3
mount_kvfs "$S" "$M3" -o kernel_cache,cache_ttl=60
put k cached-1
check_eq "with kernel_cache a value reads" "$(t cat "$M3/k")" "cached-1"
check_eq "and rereads from the page cache" "$(t cat "$M3/k")" "cached-1"
put k cached-2
check "a kvctl put drops the cached pages within 1 s" \
	within 1000 sh -c '[ "$(cat "$0/k")" = cached-2 ]' "$M3"

t sh -c 'echo brief > "$0/e"' "$M"
t setfattr -n user.kv.ttl -v 2 "$M/e"
t stat "$M/e" >/dev/null
check "an expiring key leaves the caches when it expires" \
	within 4000 sh -c '! test -e "$0/e"' "$M"

finish
