#!/usr/bin/env bash
# test_xattr: PRODUCT.md 3.3 through getfattr, setfattr and the system
# calls: user.kv.metadata, user.kv.expiration, user.kv.ttl, user.kv.key,
# user.NAME metadata fields, removal, XATTR_CREATE/XATTR_REPLACE, the size
# probe and ERANGE, other namespaces, directories, the root's
# user.kv.store; and ttl expiry, re-armed by touch, with -o min_ttl=1.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
M=$WORK/mnt
mount_kvfs "$S" "$M" -o min_ttl=1
cd "$M"
get() { t getfattr --absolute-names --only-values -n "$1" "$2"; }
# setx NAME VALUE FILE: set exactly these bytes (setfattr -v would unquote "...").
setx() { t python3 -c 'import os,sys; os.setxattr(sys.argv[3], sys.argv[1], sys.argv[2].encode())' "$@"; }
names() { t getfattr --absolute-names -d -m - "$1" | sed -n 's/^\(user\.[^=]*\)=.*/\1/p' | tr '\n' ' '; }

t sh -c 'echo v > f'
check_fails "no metadata: user.kv.metadata is absent" "No such attribute" get user.kv.metadata f
t setfattr -n user.kv.metadata -v '{ "a": 1, "b": "text" }' f
check_eq "user.kv.metadata reads back compact" "$(get user.kv.metadata f)" '{"a":1,"b":"text"}'
check_eq "getfattr -d shows the fields" "$(names f)" "user.a user.b "
check_eq "a number field reads as JSON" "$(get user.a f)" "1"
check_eq "a string field reads raw" "$(get user.b f)" "text"
check_fails "metadata that is not JSON is refused" "Invalid argument" \
	setfattr -n user.kv.metadata -v '{nope' f
big=$(printf '"%01100d"' 0)
check_fails "metadata over 1024 bytes is refused" "Argument list too long" \
	setx user.kv.metadata "$big" f
check_eq "a refused set changes nothing" "$(get user.kv.metadata f)" '{"a":1,"b":"text"}'
t setfattr -n user.c -v '[1, 2]' f
t setfattr -n user.d -v 'plain words' f
setx user.e '"quoted"' f
check_eq "user.NAME sets a field: JSON as JSON, else a string" \
	"$(get user.kv.metadata f)" '{"a":1,"b":"text","c":[1,2],"d":"plain words","e":"quoted"}'
setx user.n '"42"' f
check_eq "a string field reads raw" "$(get user.e f)" "quoted"
check_eq "unless it would parse as other JSON: then JSON-quoted" "$(get user.n f)" '"42"'
t setfattr -x user.n f
t setfattr -x user.c f
check_eq "removexattr removes a field" "$(names f)" "user.a user.b user.d user.e "
check_fails "removing a missing field" "No such attribute" setfattr -x user.zz f
check_fails "a missing field" "No such attribute" get user.zz f

t setfattr -n user.kv.metadata -v '[1,2,3]' f
check_eq "metadata that is not an object is listed whole" "$(names f)" "user.kv.metadata "
check_fails "and takes no fields" "Invalid argument" setfattr -n user.x -v 1 f
t setfattr -x user.kv.metadata f
check_eq "removing user.kv.metadata clears it" "$(names f)" ""

exp=$(($(date +%s) + 3600))
t setfattr -n user.kv.expiration -v "$exp" f
check_eq "user.kv.expiration reads back" "$(get user.kv.expiration f)" "$exp"
check_eq "and is listed" "$(names f)" "user.kv.expiration "
check_fails "an expiration in the past is refused" "Invalid argument" \
	setfattr -n user.kv.expiration -v 1000 f
check_fails "an expiration that is not a number is refused" "Invalid argument" \
	setfattr -n user.kv.expiration -v soon f
t setfattr -n user.kv.ttl -v 3600 f
mtime=$(t stat -c %Y f)
check_eq "user.kv.ttl reads back" "$(get user.kv.ttl f)" "3600"
got=$(get user.kv.expiration f)
check "a ttl sets expiration = mtime + ttl" \
	test "$got" -ge $((mtime + 3600)) -a "$got" -le $((mtime + 3601))
check_eq "both are listed, expiration first" "$(names f)" "user.kv.expiration user.kv.ttl "
t setfattr -n user.kv.expiration -v "$exp" f
check_fails "setting an expiration replaces the ttl" "No such attribute" get user.kv.ttl f
t setfattr -x user.kv.expiration f
check_fails "removing the expiration" "No such attribute" get user.kv.expiration f

check_eq "user.kv.key is the full key" "$(get user.kv.key f)" "f"
check_fails "user.kv.key is read-only" "Operation not permitted" setfattr -n user.kv.key -v g f
t setfattr -n user.a -v 1 f
check "user.kv.key is never listed" sh -c '! getfattr -d -m - "$0" | grep -q kv.key' f

# flags and the size protocol, through the system calls
check_fails "XATTR_CREATE on an existing attribute" "File exists" python3 -c \
	'import os,sys; os.setxattr(sys.argv[1], "user.a", b"2", os.XATTR_CREATE)' f
check_fails "XATTR_REPLACE on a missing attribute" "No data available" python3 -c \
	'import os,sys; os.setxattr(sys.argv[1], "user.new", b"2", os.XATTR_REPLACE)' f
check "XATTR_CREATE of a new one and XATTR_REPLACE of an existing one work" python3 -c \
	'import os,sys; os.setxattr(sys.argv[1], "user.new", b"2", os.XATTR_CREATE); os.setxattr(sys.argv[1], "user.a", b"3", os.XATTR_REPLACE)' f
check "size 0 asks for the length; too small a buffer is ERANGE" python3 -c '
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
p, n = sys.argv[1].encode(), b"user.kv.key"
assert libc.getxattr(p, n, None, 0) == 1
buf = ctypes.create_string_buffer(0)
assert libc.getxattr(p, b"user.new", buf, 0) == 1
small = ctypes.create_string_buffer(1)
libc.setxattr(p, b"user.long", b"abcdef", 6, 0)
assert libc.getxattr(p, b"user.long", small, 1) == -1 and ctypes.get_errno() == errno.ERANGE
assert libc.listxattr(p, small, 1) == -1 and ctypes.get_errno() == errno.ERANGE
size = libc.listxattr(p, None, 0)
assert size == len(b"user.a\0user.new\0user.long\0"), size
' f

check_fails "other namespaces are not supported (set)" "Operation not supported" \
	setfattr -n trusted.x -v 1 f
check_fails "other namespaces are not supported (get)" "Operation not supported" \
	getfattr -n security.x f
mkdir dir
t sh -c 'echo 1 > dir/k'
check_fails "a directory has no attributes" "No such attribute" get user.a dir
check_fails "and takes none" "Operation not permitted" setfattr -n user.a -v 1 dir
check_eq "nothing is listed on a directory" "$(names dir)" ""
check_eq "the root has user.kv.store" "$(get user.kv.store "$M")" "$(cd "$S" && pwd -P)"
check_fails "which is read-only" "Operation not permitted" setfattr -n user.kv.store -v x "$M"

# ttl: expired keys vanish at once from lookup, read and readdir; touch
# re-arms.
t sh -c 'echo short > t1; echo rearmed > t2'
t setfattr -n user.kv.ttl -v 2 t1
t setfattr -n user.kv.ttl -v 2 t2
t sleep 1.2
t touch t2
check "both are there before the ttl" test -f t1 -a -f t2
check "t1 expires" within 3000 sh -c '! ls | grep -qx t1'
check_fails "and is gone for cat" "No such file" cat t1
check_eq "t2, re-armed by touch, is still there" "$(t cat t2)" "rearmed"
check "then it expires too" within 3000 sh -c '! test -e t2'
check "expired keys are gone for kvctl too" sh -c '! "$KVCTL" "$0" get t2' "$S"

finish
