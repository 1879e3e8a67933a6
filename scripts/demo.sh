#!/usr/bin/env bash
# Install what is missing, build kvfs, create a demo namespace with sample
# keys and mount it, then say what to try.  Re-running it starts afresh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh"
build="$root/build"
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null

demo=${KVFS_DEMO_DIR:-/tmp/kvfs-demo}
store="$demo/store" mnt="$demo/mnt"
kvctl="$build/tools/kvctl/kvctl" kvfs="$build/fs/kvfs"
if mountpoint -q "$mnt" 2>/dev/null; then
  fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" || true
fi
rm -rf "$store"
mkdir -p "$store" "$mnt"

"$kvctl" "$store" put config:app:theme dark
"$kvctl" "$store" put config:app:timeout 30 --metadata '{"owner":"ops","reviewed":true}'
"$kvctl" "$store" put flags:beta-search on --metadata '{"rollout":25}'
"$kvctl" "$store" put flags:dark-mode off
"$kvctl" "$store" put session:4f2a '{"user":42,"cart":[7,9]}' --ttl 3600
"$kvctl" "$store" put user:1 '{"name":"Ada"}'
"$kvctl" "$store" put user:1:prefs '{"lang":"en"}'
"$kvctl" "$store" put cache:product:42 '<html>product 42</html>' --ttl 600

echo
echo "demo store: $store"
if [ -x "$kvfs" ]; then
  "$kvfs" "$store" "$mnt" -o cache_ttl=5
  cat <<EOT
mounted at:  $mnt     (unmount: fusermount3 -u $mnt)

try:
  ls -R $mnt
  cat $mnt/config/app/theme
  echo light > $mnt/config/app/theme && $kvctl $store get config:app:theme
  getfattr -d $mnt/config/app/timeout
  setfattr -n user.kv.ttl -v 120 $mnt/flags/dark-mode
  ls $mnt/user            # '1' is a value and a prefix: '1' and '1:' both show
  cat $mnt/user/1:/prefs
  $kvctl $store list --prefix flags:
EOT
else
  cat <<EOT
try:
  $kvctl $store list
  $kvctl $store get config:app:theme
  $kvctl $store get config:app:timeout --metadata
  $kvctl $store put greeting hello --ttl 120 && $kvctl $store list --prefix gr
  $kvctl $store export | $kvctl /tmp/kvfs-demo/copy bulk put -
  $kvctl $store stats
EOT
fi
