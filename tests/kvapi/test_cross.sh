#!/usr/bin/env bash
# test_cross: kvapi, kvctl and kvfs on the same namespace at once: a write
# through kvapi is seen by kvctl and in a kvfs mount within 1 s, writes
# through kvctl and the mount are seen by kvapi.
. "$(dirname "$0")/lib.sh"

start_kvapi "$WORK/root"
NS=$(new_ns cross)
STORE="$WORK/root/$NS"
V="$BASE/$NS/values"

printf 'from-api' | api -X PUT --data-binary @- "$V/flag" >/dev/null
check_eq "kvctl get sees a kvapi write" "$(kvctl "$STORE" get flag)" from-api
kvctl "$STORE" put other from-kvctl --metadata '{"by":"kvctl"}'
check_eq "kvapi sees a kvctl write" "$(t curl -sS "$V/other")" from-kvctl
api "$BASE/$NS/metadata/other" >/dev/null
check_json "and its metadata" '.result == {"by":"kvctl"}'
kvctl "$STORE" delete other
api "$V/other" >/dev/null
check_error "and a kvctl delete" 404 10009

if ! kvfs_usable; then
	echo "# kvfs or FUSE is missing"
	[ "${KVFS_ALLOW_SKIP:-0}" = 1 ] && exit 77
	exit 1
fi
MNT="$WORK/mnt"
mount_kvfs "$STORE" "$MNT"
check_eq "the mount shows the kvapi write" "$(t cat "$MNT/flag")" from-api
printf 'second' | api -X PUT --data-binary @- "$V/flag" >/dev/null
shows() { [ "$(cat "$MNT/$1")" = "$2" ]; }
check "a kvapi change shows in the mount within 1 s" within 1000 shows flag second
printf 'new' | api -X PUT --data-binary @- "$V/fresh" >/dev/null
check "a new kvapi key shows in the mount within 1 s" within 1000 shows fresh new
echo -n 'from-fs' >"$MNT/written"
check_eq "kvapi reads a file written in the mount" "$(t curl -sS "$V/written")" from-fs
api -X DELETE "$V/fresh" >/dev/null
gone() { [ ! -e "$MNT/fresh" ]; }
check "a kvapi delete shows in the mount within 1 s" within 1000 gone
finish
