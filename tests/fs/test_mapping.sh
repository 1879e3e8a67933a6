#!/usr/bin/env bash
# test_mapping: every rule of PRODUCT.md 3.1 that maps keys to paths, seen
# through a mount: separators, escapes of '/', '%' and control bytes, empty
# segments, "." and "..", hashed names of long segments and 512-byte keys,
# a key that is also a prefix ("2" and "2:"), the alias name, lenient
# decoding, the separator refused inside a name, listing order and long
# listings, sep=/ and prefix= mounts.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
M=$WORK/mnt
put() { t "$KVCTL" "$S" put "$1" "$2"; }
listing() { t ls -f "$1" | grep -vx '\.\|\.\.' | tr '\n' ' '; }

put user:123 u123
put cache:product:42 p42
put 'a/b:c' slash
put '50%' percent
put 'e1::b' empty-middle
put 'e2:' empty-last
put ':a' empty-first
put 'dots:.' one-dot
put 'dots:..' two-dots
put "ctl:a$(printf '\001')b" control
put user:2 two
put user:2:prefs prefs
put user:3:x under3
mount_kvfs "$S" "$M"

check_eq "user:123 is /user/123" "$(t cat "$M/user/123")" "u123"
check_eq "cache:product:42 is /cache/product/42" "$(t cat "$M/cache/product/42")" "p42"
check_eq "'/' in a segment is %2F" "$(t cat "$M/a%2Fb/c")" "slash"
check "and listed so" sh -c 'ls "$0" | grep -qx "a%2Fb"' "$M"
check_eq "'%' is %25" "$(t cat "$M/50%25")" "percent"
check_eq "a '%' not starting an escape reads literally" "$(t cat "$M/50%")" "percent"
check_eq "an empty middle segment is the component %" "$(t cat "$M/e1/%/b")" "empty-middle"
check_eq "an empty last segment too" "$(t cat "$M/e2/%")" "empty-last"
check_eq "an empty first segment too" "$(t cat "$M/%/a")" "empty-first"
check_eq "'.' is %2E and '..' is %2E%2E" "$(listing "$M/dots")" "%2E %2E%2E "
check_eq "they read back" "$(t cat "$M/dots/%2E")$(t cat "$M/dots/%2E%2E")" "one-dottwo-dots"
check_eq "a control byte is %01" "$(listing "$M/ctl")" "a%01b "
check_eq "and reads back" "$(t cat "$M/ctl/a%01b")" "control"

# A key that is also a prefix: the value keeps its name, the directory
# gets the alias.
check_eq "user lists 123, 2 and 2: in key order, then 3" "$(listing "$M/user")" "123 2 2: 3 "
check_eq "/user/2 is the value" "$(t cat "$M/user/2")" "two"
check_eq "/user/2:/prefs is the child" "$(t cat "$M/user/2:/prefs")" "prefs"
check "/user/2 is a file" test -f "$M/user/2"
check "/user/2: is a directory" test -d "$M/user/2:"
check "/user/3 is a directory" test -d "$M/user/3"
check_eq "the alias of a directory without a clash works, unlisted" \
	"$(t cat "$M/user/3:/x")" "under3"
put user:9 nine
t sh -c 'echo nine-prefs > "$0/user/9:/prefs"' "$M"
check_eq "a key's alias takes children: user:9:prefs" "$(t "$KVCTL" "$S" get user:9:prefs)" "nine-prefs"
check_eq "and user 9 is then listed as 9 and 9:" "$(listing "$M/user" | grep -o '9 9: ')" "9 9: "
check_fails "the alias of nothing does not exist" "No such file" stat "$M/user/7:"
check "mkdir of an alias name works" mkdir "$M/user/7:"
t sh -c 'echo seven > "$0/user/7:/prefs"' "$M"
check_eq "writing through it makes user:7:prefs" "$(t "$KVCTL" "$S" get user:7:prefs)" "seven"
check "and lists as the plain directory 7" sh -c 'ls "$0/user" | grep -qx 7' "$M"
put user:3 three
check "once user:3 is a key, /user/3 becomes the value" \
	within 2000 sh -c '[ "$(cat "$0/user/3")" = three ]' "$M"
check_eq "and its directory /user/3:" "$(t cat "$M/user/3:/x")" "under3"
check_fails "the separator inside a name is refused" "Invalid argument" \
	sh -c 'echo x > "$0/a:b"' "$M"
t sh -c 'echo tmp > "$0/.name.XyZ123" && mv "$0/.name.XyZ123" "$0/name"' "$M"
check_eq "names tools invent work" "$(t "$KVCTL" "$S" get name)" "tmp"
t sh -c 'echo 100 > "$0/100%"' "$M"
check_eq "a name with a bare % makes the key with %" "$(t "$KVCTL" "$S" get '100%')" "100"
check "and lists canonically as 100%25" sh -c 'ls "$0" | grep -qx "100%25"' "$M"

# Long segments and 512-byte keys: a hashed name, the key in user.kv.key.
k512=$(printf 'k%.0s' $(seq 512))
put "$k512" long-key
seg300=$(printf 'x%.0s' $(seq 300))
put "long:$seg300" long-seg
deep=$(printf 's:%.0s' $(seq 255))zz
put "$deep" deep-key
name512=$(t ls "$M" | grep '^kkkk')
check_eq "a 512-byte key shows as 200 bytes, %~ and a 16-digit hash" \
	"$(printf '%s' "$name512" | sed 's/^k\{200\}%~[0-9a-f]\{16\}$/hashed/')" "hashed"
check_eq "it reads back" "$(t cat "$M/$name512")" "long-key"
check_eq "user.kv.key holds the whole key" \
	"$(t getfattr --absolute-names --only-values -n user.kv.key "$M/$name512")" "$k512"
name300=$(t ls "$M/long")
check_eq "a 300-byte segment is hashed too" "$(t cat "$M/long/$name300")" "long-seg"
t sh -c 'echo rewritten > "$0"' "$M/long/$name300"
check_eq "and can be written through its hashed name" \
	"$(t "$KVCTL" "$S" get "long:$seg300")" "rewritten"
deep_path=$M/$(printf 's/%.0s' $(seq 255))zz
check_eq "a 512-byte key of 256 segments is 256 levels deep" "$(t cat "$deep_path")" "deep-key"
check_eq "find walks it" "$(t find "$M/s" -type f | wc -l)" "1"

# Long listings continue correctly across readdir calls, in key order,
# each subdirectory listed once however many keys it holds.
mkdir "$M/many"
t sh -c 'cd "$0" && for i in $(seq 1000 2999); do : > "f$i"; done' "$M/many"
t sh -c 'cd "$0" && for i in $(seq 100 299); do mkdir "d$i" && : > "d$i/x" && : > "d$i/y"; done' "$M/many"
check_eq "a directory of 2200 children lists them all" "$(t ls "$M/many" | wc -l)" "2200"
check_eq "in key order" "$(t ls -f "$M/many" | grep -vx '\.\|\.\.' | md5sum)" \
	"$( (seq -f 'd%g' 100 299; seq -f 'f%g' 1000 2999) | md5sum)"
check_eq "readdirplus entries look up (ls -l)" "$(t ls -l "$M/many" | grep -c '^-')" "2000"

# sep=/ mount: '/' separates, ':' is an ordinary byte, the alias is %2F.
S2=$WORK/store2
M2=$WORK/mnt2
t "$KVCTL" "$S2" put a/b one
t "$KVCTL" "$S2" put a/b/c two
t "$KVCTL" "$S2" put x:y three
mount_kvfs "$S2" "$M2" -o sep=/
check_eq "with sep=/ a/b is /a/b" "$(t cat "$M2/a/b")" "one"
check_eq "its directory is b%2F" "$(listing "$M2/a")" "b b%2F "
check_eq "and holds c" "$(t cat "$M2/a/b%2F/c")" "two"
check_eq "':' is an ordinary byte" "$(t cat "$M2/x:y")" "three"

# prefix= mounts one subtree; a separator is appended to the prefix.
S3=$WORK/store3
M3=$WORK/mnt3
t "$KVCTL" "$S3" put app:one 1
t "$KVCTL" "$S3" put app:sub:two 2
t "$KVCTL" "$S3" put other 3
t "$KVCTL" "$S3" put apple 4
mount_kvfs "$S3" "$M3" -o prefix=app
check_eq "prefix=app shows only keys under app:" "$(listing "$M3")" "one sub "
check_eq "by their names below it" "$(t cat "$M3/sub/two")" "2"
t sh -c 'echo new > "$0/new"' "$M3"
check_eq "a file written there gets the prefix" "$(t "$KVCTL" "$S3" get app:new)" "new"

finish
