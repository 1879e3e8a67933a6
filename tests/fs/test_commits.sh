#!/usr/bin/env bash
# test_commits: what tools set on a file they have open for writing (mode,
# owner, times, xattrs: cp -a, tar, a program's fchmod/fsetxattr/futimens)
# joins the commit of the value at close, so copying a file costs two
# writes of the store (create, close) however many attributes it carries.
# Counted with the store's change feed (kvctl stats: feed_head, one entry
# a write).  Meanwhile the writer and every process of the mount see the
# changes; checks are made at set time (XATTR_CREATE, JSON), not at close.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
M=$WORK/mnt
mount_kvfs "$S" "$M"

feed_head() {
	t "$KVCTL" "$S" stats | sed -n 's/.*"feed_head": \([0-9]*\).*/\1/p'
}

# A source with a mode, an old mtime and two xattrs.
SRC=$WORK/src
mkdir -p "$SRC"
printf 'hello\n' >"$SRC/f"
t setfattr -n user.color -v blue "$SRC/f"
t setfattr -n user.size -v 42 "$SRC/f"
chmod 640 "$SRC/f"
t touch -d '2020-01-02 03:04:05' "$SRC/f"

mkdir -p "$M/cp"
before=$(feed_head)
t cp -a "$SRC/f" "$M/cp/f"
check_eq "cp -a of a file with mode, mtime and 2 xattrs: 2 writes (create, close)" \
	$(($(feed_head) - before)) 2
check_eq "its mode and mtime" "$(stat -c '%a %Y' "$M/cp/f")" "640 $(stat -c %Y "$SRC/f")"
check_eq "its xattrs" "$(getfattr --absolute-names -d "$M/cp/f" | grep '^user' | sort | tr '\n' ' ')" \
	'user.color="blue" user.size="42" '
check_eq "kvctl sees them as soon as cp returns" "$(t "$KVCTL" "$S" get cp:f --metadata)" \
	'{"value":"hello\n","metadata":{"color":"blue","size":42}}'

# A program setting everything on its open descriptor, and looking.
before=$(feed_head)
out=$(t python3 - "$M/p" "$KVCTL" "$S" <<'EOF'
import os, subprocess, sys
path, kvctl, store = sys.argv[1:4]
# A process started later would inherit the descriptor, and its exec would
# close it: a close is a commit.  So the reader of the store starts first.
reader = subprocess.Popen(["sh", "-c", 'while read x; do "$0" "$1" get p --metadata; done',
                           kvctl, store], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, bufsize=1)
def store_meta():
    reader.stdin.write("\n")
    return reader.stdout.readline().strip()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b"data")
os.fchmod(fd, 0o604)
os.setxattr(fd, "user.a", b"1")
os.setxattr(fd, "user.b", b"two")
os.removexattr(fd, "user.a")
os.utime(fd, ns=(1500000000 * 10**9, 1500000000 * 10**9))
st = os.fstat(fd)
print("fstat", oct(st.st_mode & 0o7777), st.st_mtime_ns // 10**9, st.st_size)
print("stat", oct(os.stat(path).st_mode & 0o7777))
print("list", sorted(os.listxattr(path)))
print("get", os.getxattr(path, "user.b").decode())
try:
    os.setxattr(fd, "user.b", b"x", os.XATTR_CREATE)
    print("create", "succeeded")
except OSError as e:
    print("create", e.errno == 17)
try:
    os.setxattr(fd, "user.kv.metadata", b"{not json")
    print("badjson", "succeeded")
except OSError as e:
    print("badjson", e.errno == 22)
print("store before close", store_meta())
os.close(fd)
print("store after close", store_meta())
reader.stdin.close()
reader.wait()
EOF
)
echo "$out" | sed 's/^/# /'
check_eq "fstat shows the mode and times set on the open file" \
	"$(echo "$out" | grep '^fstat')" "fstat 0o604 1500000000 4"
check_eq "so does stat by path" "$(echo "$out" | grep '^stat')" "stat 0o604"
check_eq "listxattr and getxattr show the pending metadata" \
	"$(echo "$out" | grep -E '^(list|get) ' | tr '\n' ' ')" "list ['user.b'] get two "
check_eq "XATTR_CREATE of a pending field: EEXIST at once" \
	"$(echo "$out" | grep '^create')" "create True"
check_eq "invalid JSON: EINVAL at once, not at close" \
	"$(echo "$out" | grep '^badjson')" "badjson True"
check_eq "the store has the value and metadata only from close on" \
	"$(echo "$out" | grep '^store' | tr '\n' ' ')" \
	'store before close {"value":"","metadata":null} store after close {"value":"data","metadata":{"b":"two"}} '
check_eq "create, then everything in one write at close" $(($(feed_head) - before)) 2
check_eq "the mode and mtime after close" "$(stat -c '%a %Y' "$M/p")" "604 1500000000"

# A file whose writers are all closed takes a change at once.
before=$(feed_head)
t setfattr -n user.c -v 3 "$M/p"
check_eq "setfattr on a closed file: one write, at once" \
	"$(($(feed_head) - before)) $(t "$KVCTL" "$S" get p --metadata)" \
	'1 {"value":"data","metadata":{"b":"two","c":3}}'

# Removed while being written: the joined changes go nowhere.
t python3 - "$M/gone" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"x")
os.setxattr(fd, "user.z", b"1")
os.fchmod(fd, 0o600)
os.unlink(sys.argv[1])
os.close(fd)
EOF
check "a file unlinked with changes pending stays gone" \
	sh -c '! "$0" "$1" get gone 2>/dev/null && [ ! -e "$2" ]' "$KVCTL" "$S" "$M/gone"

# tar x --xattrs makes each file with mknod, sets its xattrs, then opens
# it to write and sets times, owner and mode on the open file: those join
# the close (3 writes a file; 6 if each were its own).
mkdir -p "$WORK/tarsrc/d"
for i in 1 2 3; do
	printf 'v%s\n' "$i" >"$WORK/tarsrc/d/t$i"
	t setfattr -n user.n -v "$i" "$WORK/tarsrc/d/t$i"
done
t tar --xattrs -C "$WORK/tarsrc" -cf "$WORK/t.tar" d
mkdir -p "$M/tar"
before=$(feed_head)
t tar --xattrs --xattrs-include='user.*' -C "$M/tar" -xf "$WORK/t.tar"
n=$(($(feed_head) - before))
echo "# tar x of 3 files with xattrs: $n writes"
check "tar x: 3 writes a file: mknod, setxattr, close ($n)" test "$n" -le 9
check_eq "tar x: the xattrs arrived" "$(getfattr --only-values -n user.n "$M/tar/d/t2")" 2
check_eq "tar x: the values too" "$(cat "$M/tar/d/t3")" v3

finish
