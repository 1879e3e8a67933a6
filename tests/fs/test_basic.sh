#!/usr/bin/env bash
# test_basic: a kvfs mount works with the everyday tools: cat, echo >, >>,
# dd at offsets, truncate, touch -d, chmod, chown, stat, mv of files and
# directories, rm, mkdir, rmdir, find, du, df, sed -i, cp -a, editor-style
# save by rename; symlinks, hard links and device nodes are refused; the
# value size limit is enforced at the write that crosses it; concurrent
# readers never see half a value while it is rewritten; the daemon works
# as a mount.fuse3 helper.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
M=$WORK/mnt
mount_kvfs "$S" "$M"
cd "$M"

check_eq "the root names its store in user.kv.store" \
	"$(t getfattr --absolute-names --only-values -n user.kv.store "$M")" "$(cd "$S" && pwd -P)"

# --- values ---------------------------------------------------------------
t sh -c 'echo hello > f'
check_eq "echo > writes a value" "$(t "$KVCTL" "$S" get f)" "hello"
check_eq "cat reads it" "$(t cat f)" "hello"
t sh -c 'echo world >> f'
check_eq ">> appends" "$(t cat f)" "$(printf 'hello\nworld')"
check_eq "stat size is the value length" "$(t stat -c %s f)" "12"
t sh -c 'printf HELLO | dd of=f bs=1 seek=0 conv=notrunc status=none'
t sh -c 'printf W | dd of=f bs=1 seek=6 conv=notrunc status=none'
check_eq "dd writes at offsets" "$(t cat f)" "$(printf 'HELLO\nWorld')"
t truncate -s 5 f
check_eq "truncate shortens" "$(t "$KVCTL" "$S" get f)" "HELLO"
t truncate -s 8 f
check_eq "truncate extends with zero bytes" "$(t od -An -c f | tr -s ' ')" " H E L L O \\0 \\0 \\0"
t sh -c ': > f'
check_eq "> truncates to empty" "$(t stat -c %s f)" "0"
t "$KVCTL" "$S" put other "from kvctl"
check_eq "a key put by kvctl reads back" "$(t cat other)" "from kvctl"
check "ls lists keys" sh -c 'ls | grep -qx other'
check_eq "kvctl takes the mountpoint for the store (user.kv.store)" \
	"$(t "$KVCTL" "$M" get other)" "from kvctl"

# --- attributes -----------------------------------------------------------
t touch -d '2001-02-03 04:05:06.123456789 UTC' f
check_eq "touch -d sets mtime to the ns" "$(TZ=UTC t stat -c %y f)" \
	"2001-02-03 04:05:06.123456789 +0000"
t chmod 640 f
check_eq "chmod sets the mode" "$(t stat -c %a f)" "640"
t chown 1234:5678 f
check_eq "chown sets the owner" "$(t stat -c %u:%g f)" "1234:5678"
check_eq "a key without its own mode shows 0666 & ~umask" "$(t stat -c %a other)" "644"
t sh -c 'echo more >> f'
check_eq "a write keeps mode and owner" "$(t stat -c %a:%u:%g f)" "640:1234:5678"

# --- names and directories ------------------------------------------------
t mkdir -p d/e
t sh -c 'echo 1 > d/e/one; echo 2 > d/two'
check_eq "a file in a directory is key d:e:one" "$(t "$KVCTL" "$S" get d:e:one)" "1"
check_fails "rmdir of a non-empty directory" "Directory not empty" rmdir d
t mv d/two d/three
check_eq "mv renames a key" "$(t "$KVCTL" "$S" get d:three)" "2"
check_fails "the old key is gone" "" "$KVCTL" "$S" get d:two
t mv d D
check_eq "mv of a directory renames every key under it" \
	"$(t "$KVCTL" "$S" get D:e:one)$(t "$KVCTL" "$S" get D:three)" "12"
check_fails "no key is left under the old prefix" "" "$KVCTL" "$S" get d:e:one
t sh -c 'echo new > D/e/repl; echo old > D/e/one'
t mv D/e/repl D/e/one
check_eq "mv over an existing file replaces it" "$(t cat D/e/one)" "new"
check_eq "find walks the tree" "$(t find D | sort | tr '\n' ' ')" "D D/e D/e/one D/three "
t rm D/e/one
check_eq "rm deletes the key" "$(t ls D/e | wc -l)" "0"
check "a directory emptied by rm stays until rmdir" rmdir D/e
t mkdir empty
check "mkdir makes an empty directory" test -d empty
check_fails "a second mkdir fails" "File exists" mkdir empty
check "rmdir removes it" rmdir empty
t mkdir -p tree/a/b
t sh -c 'echo x > tree/a/b/c; echo y > tree/a/z'
check "rm -r removes a tree" rm -r tree
check_fails "and it is gone" "No such file" stat tree
check "du counts the values" sh -c '[ "$(du -sb "$0" | cut -f1)" -gt 0 ]' "$M"
check "df shows the mount" sh -c "df -P '$M' | tail -n 1 | grep -q '$M'"
used=$(t df --output=iused "$M" | tail -n 1 | tr -d ' ')
t "$KVCTL" "$S" put df:one 1
t "$KVCTL" "$S" put df:two 2
check_eq "df -i counts two more records after two puts" \
	"$(( $(t df --output=iused "$M" | tail -n 1 | tr -d ' ') - used ))" "2"

# --- editors and copies ---------------------------------------------------
t sh -c 'printf "a=1\nb=2\n" > conf'
t sed -i 's/b=2/b=3/' conf
check_eq "sed -i edits in place" "$(t cat conf)" "$(printf 'a=1\nb=3')"
t sh -c 'printf "saved\n" > .conf.swp && mv .conf.swp conf'
check_eq "editor-style save (write temp, rename over) replaces" "$(t "$KVCTL" "$S" get conf)" "saved"
mkdir -p "$WORK/local/sub"
printf 'alpha\n' > "$WORK/local/sub/a"
printf 'beta\n' > "$WORK/local/b"
chmod 600 "$WORK/local/b"
touch -d '2010-01-01 00:00:00.5 UTC' "$WORK/local/b" "$WORK/local/sub/a"
t cp -a "$WORK/local" copy
check "cp -a into the mount copies the contents" diff -r "$WORK/local" copy
check_eq "cp -a keeps mode and mtime" "$(t stat -c %a:%Y copy/b)" "$(stat -c %a:%Y "$WORK/local/b")"
t cp -a copy "$WORK/back"
check "cp -a out of the mount round-trips" diff -r "$WORK/local" "$WORK/back"
check_eq "and keeps mtime to the ns" "$(stat -c %y "$WORK/back/sub/a")" "$(stat -c %y "$WORK/local/sub/a")"

# --- refused --------------------------------------------------------------
check_fails "symlink is refused" "Operation not permitted" ln -s f link
check_fails "hard link is refused" "Operation not permitted" ln f hard
check_fails "a fifo is refused" "Operation not permitted" mkfifo fifo

# --- limits ---------------------------------------------------------------
t sh -c 'echo old > big'
check_fails "a write past 25 MiB fails" "File too large" \
	sh -c 'head -c 26214401 /dev/zero > big'
check_eq "and nothing is stored" "$(t "$KVCTL" "$S" get big)" "old"
head -c 26214400 /dev/urandom > "$WORK/max.src"
t cp "$WORK/max.src" max
check "a value of exactly 25 MiB is stored" cmp "$WORK/max.src" max
check_fails "truncate past 25 MiB fails" "File too large" truncate -s 26214401 max
long=$(printf 'k%.0s' $(seq 255))
t mkdir "$long"
t mkdir "$long/$long"
check_fails "a key over 512 bytes is refused" "File name too long" \
	sh -c "echo x > '$long/$long/abc'"

# --- atomic rewrites under concurrent readers -----------------------------
# rewrites NAME WRITER SIZE...: while WRITER rewrites value v with runs of
# one letter of each SIZE in turn (100 rounds), three readers (cat, and 4 KiB
# reads) must only ever see one of those whole values.
rewrites() {
	local name=$1 writer_kind=$2 letters=ABC i writer bad=0 r
	shift 2
	local -a sizes=("$@") readers=()
	for i in 0 1 2; do
		head -c "${sizes[i]}" /dev/zero | tr '\0' "${letters:i:1}" > "$WORK/val$i"
	done
	t cp "$WORK/val0" v
	(
		for _ in $(seq 100); do
			for i in 0 1 2; do
				case $writer_kind in
				mount) cat "$WORK/val$i" > v ;;
				kvctl) t "$KVCTL" "$S" put v --path "$WORK/val$i" ;;
				esac
			done
		done
	) &
	writer=$!
	for r in 1 2 3; do
		(
			while kill -0 "$writer" 2>/dev/null; do
				t cat v > "$WORK/out.$r"
				if ! cmp -s "$WORK/out.$r" "$WORK/val0" && ! cmp -s "$WORK/out.$r" "$WORK/val1" &&
					! cmp -s "$WORK/out.$r" "$WORK/val2"; then
					echo "# reader $r saw $(wc -c < "$WORK/out.$r") bytes of a mix"
					exit 1
				fi
				python3 -c 'import sys
with open(sys.argv[1], "rb", buffering=0) as f:
    data = b""
    while True:
        b = f.read(4096)
        if not b:
            break
        data += b
ok = len(set(data)) == 1 and len(data) in map(int, sys.argv[2:])
if not ok:
    print("# reader saw %d bytes of %s" % (len(data), sorted(set(data))))
sys.exit(0 if ok else 1)' v "${sizes[@]}" || exit 1
			done
		) &
		readers[r]=$!
	done
	for r in 1 2 3; do wait "${readers[$r]}" || bad=1; done
	wait "$writer"
	check_eq "$name: readers see the old or the new value, never half" "$bad" "0"
}
rewrites "values of several reads, rewritten in the mount" mount 300000 150000 40000
rewrites "small values, rewritten in the mount" mount 3000 100 20000
rewrites "small values, written by kvctl" kvctl 3000 100 20000

# --- mount options --------------------------------------------------------
cd /
S4=$WORK/store4
M4=$WORK/mnt4
t "$KVCTL" "$S4" put plain v
mount_kvfs "$S4" "$M4" -o uid=1234,gid=2345,umask=027
t mkdir "$M4/dir"
check_eq "uid=, gid= and umask= give keys without their own attributes" \
	"$(t stat -c %u:%g:%a "$M4/plain")" "1234:2345:640"
check_eq "and directories 0777 & ~umask" "$(t stat -c %a "$M4")" "750"
unmount_kvfs "$M4" "$KVFS_PID"
mount_kvfs "$S4" "$M4" -o ro
check_eq "a ro mount reads" "$(t cat "$M4/plain")" "v"
check_fails "and refuses writes" "Read-only file system" sh -c 'echo x > "$0/plain"' "$M4"
check_fails "and new keys" "Read-only file system" sh -c 'echo x > "$0/new"' "$M4"
unmount_kvfs "$M4" "$KVFS_PID"

# --- mount.fuse3 helper ---------------------------------------------------
if [ "$(id -u)" = 0 ] && command -v mount.fuse3 >/dev/null; then
	mkdir -p "$WORK/m2"
	MOUNTS+=("$WORK/m2")
	# What mount -t fuse.kvfs runs: mount.fuse3 kvfs#STORE MNT -o opts,
	# which starts "kvfs STORE MNT -o opts" (options after the operands).
	check "mount.fuse3 mounts a store" \
		mount.fuse3 "$KVFS#$WORK/store2" "$WORK/m2" -o create,sep=/,allow_other,default_permissions
	t sh -c 'echo helper > "$0/x"' "$WORK/m2"
	check_eq "a helper mount takes its options" "$(t "$KVCTL" "$WORK/store2" get x)" "helper"
	check_eq "the mount is of type fuse.kvfs" "$(t findmnt -n -o FSTYPE "$WORK/m2")" "fuse.kvfs"
	check "fusermount3 -u unmounts it" fusermount3 -u "$WORK/m2"
else
	ok "# SKIP mount.fuse3 helper (needs root)"
fi

check "kvfs -V prints a version" sh -c '"$KVFS" -V | grep -q kvfs'
check "kvfs -h prints the options" sh -c '"$KVFS" -h | grep -q sep='
mkdir -p "$WORK/m3"
check_fails "a bad separator is refused" "invalid separator" "$KVFS" -o sep=% "$WORK/s3" "$WORK/m3"

finish
