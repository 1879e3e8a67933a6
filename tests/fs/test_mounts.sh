#!/usr/bin/env bash
# Safe mounts: kvfs refuses a missing STORE unless -o create (nothing is
# created), a STORE that is not a store, and a MOUNTPOINT that is missing,
# not a directory or holds files (unless -o nonempty), with a message
# naming the path and exit status 1, before it detaches; a wrong command
# line is exit status 2 with a message and "Try 'kvfs -h'".  Seen on the
# kvfs command line, then through mount(8) and an fstab line, as an
# operator mounts.
#
# mount(8) runs its helper (mount.fuse3, which runs "kvfs") with PATH
# removed from the environment, so /bin/sh finds kvfs in its default
# path only (/usr/local/sbin first).  As root the test runs in a mount
# namespace of its own where a directory holding only a link to the built
# kvfs covers /usr/local/sbin: an installed kvfs cannot answer instead.
# Without root the mount(8) checks are skipped, as test_basic's helper
# checks are.
if [ "$(id -u)" = 0 ] && [ -z "${KVFS_MOUNTS_NS:-}" ] && command -v unshare >/dev/null &&
	timeout 10 unshare -m --propagation private true 2>/dev/null; then
	KVFS_MOUNTS_NS=1 exec timeout 600 unshare -m --propagation private "$BASH" "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

# refused DESC STATUS ERRTEXT CMD...: CMD exits with STATUS and says
# ERRTEXT on stderr (kept in $ERR).
refused() {
	local desc=$1 want=$2 text=$3 status=0
	shift 3
	ERR=$(run "$@" 2>&1 >/dev/null) || status=$?
	if [ "$status" -ne "$want" ]; then
		not_ok "$desc (exit $status, not $want: $ERR)"
	elif [[ "$ERR" != *"$text"* ]]; then
		not_ok "$desc (said: $ERR)"
	else
		ok "$desc"
	fi
}

S=$WORK/store M=$WORK/mnt
mkdir -p "$M"

# --- the command line: usage errors are status 2, looked at first --------
refused "no arguments: status 2" 2 "expected STORE and MOUNTPOINT" "$KVFS"
refused "one argument: status 2" 2 "expected STORE and MOUNTPOINT" "$KVFS" "$S"
refused "three arguments: status 2" 2 "too many arguments" "$KVFS" "$S" "$M" "$WORK/x"
refused "an unknown -o option: status 2" 2 "unknown option" "$KVFS" -o bogus "$S" "$M"
refused "an unknown flag: status 2" 2 "unknown option" "$KVFS" -x "$S" "$M"
for bad in sync=sometimes min_ttl=abc min_ttl=-1 min_ttl=0 min_ttl=12x reap_interval=soon \
	umask=9 umask=1777 uid=root gid=-1 cache_ttl=abc cache_ttl=-1 cache_ttl=nan sep=ab \
	max_threads=abc; do
	refused "-o $bad: status 2" 2 "${bad%%=*}" "$KVFS" -o "$bad" "$S" "$M"
	[[ "$ERR" == *"Try 'kvfs -h'."* ]] || not_ok "-o $bad: it says to try kvfs -h ($ERR)"
done
refused "-o prefix= not valid UTF-8: status 2" 2 "invalid prefix" "$KVFS" -o prefix=$'\xff' "$S" "$M"
refused "-o prefix= too long: status 2" 2 "prefix too long" \
	"$KVFS" -o "prefix=$(printf '%0600d' 0)" "$S" "$M"
check "no usage error created the store" test ! -e "$S"

help=$(t "$KVFS" -h) || not_ok "kvfs -h exits 0"
for want in "fuse.kvfs create,allow_other,default_permissions 0 0" "fusermount3 -u MOUNTPOINT" \
	"umount" "-o default_permissions" "-o allow_other" "-o create" "-o nonempty" \
	"libfuse options"; do
	[[ "$help" == *"$want"* ]] || not_ok "kvfs -h names '$want'"
done
ok "kvfs -h names the options, an fstab line and how to unmount"

# --- the store -------------------------------------------------------------
refused "a missing store is refused: status 1" 1 \
	"STORE $S: no such store (use -o create to make a new one)" "$KVFS" "$S" "$M"
check "and nothing is created" test ! -e "$S"
check "and nothing is mounted" sh -c '! mountpoint -q "$0"' "$M"
refused "-o ro,create cannot make a missing store" 1 \
	"STORE $S: no such store (a read-only mount cannot create one)" "$KVFS" -o ro,create "$S" "$M"
check "and nothing is created" test ! -e "$S"
refused "so is a missing store's missing parent" 1 "no such store" "$KVFS" "$S/a/b" "$M"
check "and nothing is created" test ! -e "$S"

touch "$WORK/file"
refused "a file is not a store" 1 "STORE $WORK/file: not a store: not a directory" \
	"$KVFS" -o create "$WORK/file" "$M"
mkdir -p "$WORK/other"
echo keep >"$WORK/other/notes"
refused "a directory of other files is not a store, even with -o create" 1 \
	"STORE $WORK/other: not a store: a directory of other files" \
	"$KVFS" -o create "$WORK/other" "$M"
check_eq "and nothing is added to it" "$(ls -A "$WORK/other")" "notes"
mkdir -p "$WORK/empty"
refused "an empty directory is no store yet" 1 "STORE $WORK/empty: an empty directory" \
	"$KVFS" "$WORK/empty" "$M"
check_eq "and nothing is added to it" "$(ls -A "$WORK/empty")" ""
mkdir -p "$WORK/junk"
echo 'not lmdb' >"$WORK/junk/data.mdb"
refused "a store of no known format is refused" 1 "STORE $WORK/junk: not a store" \
	"$KVFS" "$WORK/junk" "$M"

# -o create makes it, says so once, and mounts (kvfs detaches: its status
# is that of the mount).
refused "-o create makes the store and mounts it" 0 "created store '$S'" \
	"$KVFS" -o create "$S" "$M"
MOUNTS+=("$M")
check_eq "and says so once" "$(grep -c 'created store' <<<"$ERR")" 1
check "the mount is there" mountpoint -q "$M"
t sh -c 'echo v > "$0/k"' "$M"
check_eq "and writes to the new store" "$(t "$KVCTL" "$S" get k)" "v"
t fusermount3 -u "$M"
check "an existing store mounts without -o create" "$KVFS" "$S" "$M"
check_eq "with its keys" "$(t cat "$M/k")" "v"
t fusermount3 -u "$M"
refused "-o create mounts an existing store as it is, saying nothing" 0 "" \
	"$KVFS" -o create "$S" "$M"
check_eq "(nothing said)" "$ERR" ""
check_eq "its keys kept" "$(t cat "$M/k")" "v"
t fusermount3 -u "$M"

# --- the mountpoint ---------------------------------------------------------
refused "a missing mountpoint is refused" 1 "MOUNTPOINT $WORK/nomnt: no such directory" \
	"$KVFS" -o create "$WORK/s2" "$WORK/nomnt"
check "and no store is created" test ! -e "$WORK/s2"
refused "a file is no mountpoint" 1 "MOUNTPOINT $WORK/file: not a directory" \
	"$KVFS" "$S" "$WORK/file"
mkdir -p "$WORK/full"
echo mine >"$WORK/full/precious"
refused "a mountpoint that holds files is refused" 1 \
	"MOUNTPOINT $WORK/full: not empty: the mount would hide its files (use -o nonempty" \
	"$KVFS" "$S" "$WORK/full"
check "and nothing is mounted on it" sh -c '! mountpoint -q "$0"' "$WORK/full"
check "-o nonempty mounts over it" "$KVFS" -o nonempty "$S" "$WORK/full"
MOUNTS+=("$WORK/full")
check_eq "showing the store" "$(t cat "$WORK/full/k")" "v"
t fusermount3 -u "$WORK/full"
check_eq "and its files are back after the unmount" "$(t cat "$WORK/full/precious")" "mine"

# --- through mount(8) and fstab ---------------------------------------------
if [ -n "${KVFS_MOUNTS_NS:-}" ] && [ -d /usr/local/sbin ] && command -v mount.fuse3 >/dev/null; then
	mkdir -p "$WORK/sbin"
	ln -s "$KVFS" "$WORK/sbin/kvfs"
	t mount --bind "$WORK/sbin" /usr/local/sbin
	S3=$WORK/s3 M3=$WORK/m3
	mkdir -p "$M3"
	# mount(8) passes its helper's exit status on: kvfs's 1 or 2.
	refused "mount -t fuse.kvfs: a missing store is refused with kvfs's status 1" 1 \
		"STORE $S3: no such store (use -o create" mount -t fuse.kvfs "$S3" "$M3"
	check "and nothing is created" test ! -e "$S3"
	refused "mount -t fuse.kvfs: a bad option value is kvfs's status 2" 2 \
		"invalid sync mode" mount -t fuse.kvfs -o create,sync=sometimes "$S3" "$M3"
	check "and nothing is created" test ! -e "$S3"
	MOUNTS+=("$M3")
	refused "mount -t fuse.kvfs -o create makes the store and mounts it" 0 "created store" \
		mount -t fuse.kvfs -o create "$S3" "$M3"
	check_eq "the mount is of type fuse.kvfs, named after the store" \
		"$(t findmnt -n -o FSTYPE,SOURCE "$M3")" "fuse.kvfs $S3"
	t sh -c 'echo m > "$0/k"' "$M3"
	check "umount unmounts it" umount "$M3"
	check_eq "and the key is in the store" "$(t "$KVCTL" "$S3" get k)" "m"

	mkdir -p "$WORK/m4"
	echo mine >"$WORK/m4/precious"
	MOUNTS+=("$WORK/m4")
	refused "mount -t fuse.kvfs: a non-empty mountpoint is refused" 1 \
		"MOUNTPOINT $WORK/m4: not empty" mount -t fuse.kvfs "$S3" "$WORK/m4"
	check "-o nonempty mounts over it" mount -t fuse.kvfs -o nonempty "$S3" "$WORK/m4"
	check_eq "showing the store" "$(t cat "$WORK/m4/k")" "m"
	t umount "$WORK/m4"

	# An fstab line with a mistyped STORE: refused, nothing created; the
	# line of kvfs -h (with create) mounts.
	S5=$WORK/s5 M5=$WORK/m5
	mkdir -p "$M5"
	MOUNTS+=("$M5")
	printf '%s %s fuse.kvfs allow_other,default_permissions 0 0\n' "$S5" "$M5" >"$WORK/fstab"
	refused "fstab: a missing store is refused" 1 "STORE $S5: no such store" \
		mount --fstab "$WORK/fstab" "$M5"
	check "and nothing is created" test ! -e "$S5"
	check "and nothing is mounted" sh -c '! mountpoint -q "$0"' "$M5"
	printf '%s %s fuse.kvfs create,allow_other,default_permissions 0 0\n' "$S5" "$M5" \
		>"$WORK/fstab"
	check "fstab: with create it mounts" mount --fstab "$WORK/fstab" "$M5"
	check_eq "fstab: the store is made" "$(t "$KVCTL" "$S5" list)" "[]"
	check "fstab: its options reach the kernel" sh -c \
		'findmnt -n -o OPTIONS "$0" | grep -q allow_other' "$M5"
	check "umount unmounts it" umount "$M5"
	printf '%s %s fuse.kvfs create 0 0\n' "$S5" "$WORK/m4" >"$WORK/fstab"
	refused "fstab: a non-empty mountpoint is refused" 1 "MOUNTPOINT $WORK/m4: not empty" \
		mount --fstab "$WORK/fstab" "$WORK/m4"
	printf '%s %s fuse.kvfs create,nonempty 0 0\n' "$S5" "$WORK/m4" >"$WORK/fstab"
	check "fstab: with nonempty it mounts" mount --fstab "$WORK/fstab" "$WORK/m4"
	t umount "$WORK/m4"

	# mount.fuse3 -o drop_privileges mounts by itself and gives kvfs the
	# open /dev/fuse as MOUNTPOINT /dev/fd/N: no directory to check.
	check "mount -t fuse.kvfs -o drop_privileges mounts" \
		mount -t fuse.kvfs -o drop_privileges "$S3" "$M3"
	check_eq "and shows the store" "$(t cat "$M3/k")" "m"
	check "umount unmounts it" umount "$M3"
else
	ok "# SKIP mount -t fuse.kvfs and fstab (needs root and a mount namespace)"
fi

finish
