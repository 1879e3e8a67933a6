#!/usr/bin/env bash
# Install what is missing, build with AddressSanitizer and UBSan, run every
# test (kvcore units, kvctl and kvfs through real binaries and real mounts),
# run each fuzzer briefly, and end with one line "N passed, N failed, N skipped".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh" || { echo "0 passed, 1 failed"; exit 1; }

build=${KVFS_TEST_BUILD:-$root/build-test}
fuzz_build=${KVFS_FUZZ_BUILD:-$root/build-fuzz}
fuzz_seconds=${KVFS_FUZZ_SECONDS:-20}
passed=0 failed=0 skipped=0

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=debugoptimized >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$build"; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# meson_test BUILD [TEST...]: run meson's tests and add up its summary.
meson_test() {
  local dir=$1 log ok fail skip tmo xfail xpass
  shift
  log=$(mktemp)
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" 2>&1 | tee "$log"
  count() { sed -n "s/^$1: *\([0-9][0-9]*\).*/\1/p" "$log" | tail -n 1; }
  ok=$(count Ok); fail=$(count Fail); skip=$(count Skipped); tmo=$(count Timeout)
  xfail=$(count 'Expected Fail'); xpass=$(count 'Unexpected Pass')
  passed=$((passed + ${ok:-0} + ${xfail:-0}))
  failed=$((failed + ${fail:-0} + ${tmo:-0} + ${xpass:-0}))
  skipped=$((skipped + ${skip:-0}))
  if [ -z "$ok" ]; then
    echo "meson test printed no summary"
    failed=$((failed + 1))
  fi
  rm -f "$log"
}
meson_test "$build"

# ThreadSanitizer: the tests whose threads and processes share a store or
# a mount, built again with -fsanitize=thread.  A report fails the test
# (halt_on_error; a daemon's report makes it exit non-zero at unmount).
tsan_build=${KVFS_TSAN_BUILD:-$root/build-tsan}
if [ ! -f "$tsan_build/build.ninja" ]; then
  meson setup "$tsan_build" -Db_sanitize=thread --buildtype=debugoptimized >/dev/null
fi
if ninja -C "$tsan_build" >/dev/null; then
  # mix: two seeds of the fsstress-like load (4 processes), shorter.
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" MIX_SEEDS="24 25" MIX_OPS=1500 \
    meson_test "$tsan_build" multiproc write feed group chunks durable stress posix coherence mix large
else
  echo "FAIL ThreadSanitizer build"
  failed=$((failed + 1))
fi

# Fuzzers: clang + libFuzzer, a short run each from the seed corpus.
if [ ! -f "$fuzz_build/build.ninja" ]; then
  CC=clang meson setup "$fuzz_build" -Dfuzz=true -Db_sanitize=address,undefined \
    -Db_lundef=false --buildtype=debugoptimized >/dev/null
fi
if ninja -C "$fuzz_build" >/dev/null; then
  for f in "$fuzz_build"/tests/fuzz/fuzz_*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus="$root/tests/fuzz/corpus/${name#fuzz_}"
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if timeout $((fuzz_seconds + 60)) "$f" -max_total_time="$fuzz_seconds" \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/" "$work" \
        >"$work.log" 2>&1; then
      echo "ok fuzz $name ($fuzz_seconds s)"
      passed=$((passed + 1))
    else
      echo "FAIL fuzz $name"; tail -n 40 "$work.log"
      failed=$((failed + 1))
    fi
    rm -rf "$work" "$work.log"
  done
else
  echo "FAIL fuzz build"
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
