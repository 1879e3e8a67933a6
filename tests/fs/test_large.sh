#!/usr/bin/env bash
# test_large: large files changed a little at a time, as editors, log
# appenders and databases change them.  kvcore stores a large value in
# pieces and rewrites only those a commit changed; the daemon keeps the
# buffer of a file its last writer closed and hands it to the next writer
# of the same version.  Both are shortcuts that must never show: a seeded
# random run of patches (open, pwrite, close), appends, truncations by
# name, a descriptor kept open across patches, renames, chmod and setxattr
# (new versions of the record with the same value), and whole values
# put by kvctl behind the mount's back, is checked after every step
# against a model file on a plain filesystem, through the mount and
# through kvctl, and kvctl check stays clean.
. "$(dirname "$0")/lib.sh"

S=$WORK/store
M=$WORK/mnt
mount_kvfs "$S" "$M"

MODEL=$WORK/model
head -c $((25 << 20)) /dev/urandom >"$MODEL"
t cp "$MODEL" "$M/big"
check "a 25 MiB file reads back" cmp "$MODEL" "$M/big"

out=$(t python3 - "$M" "$MODEL" "$KVCTL" "$S" <<'EOF'
import os, random, subprocess, sys
mnt, model, kvctl, store = sys.argv[1:5]
rng = random.Random(20261129)
name = "big"
LIMIT = 25 << 20
held = None  # a descriptor of the mount's file kept open across steps

def store_value():
    return subprocess.run([kvctl, store, "get", name], check=True,
                          stdout=subprocess.PIPE).stdout

def patch_both(off, data):
    with open(model, "r+b") as f:
        f.seek(off)
        f.write(data)

failures = 0
for step in range(80):
    size = os.path.getsize(model)
    op = rng.choice(["patch"] * 5 + ["append", "truncate", "kvctl", "hold", "rename", "attrs"])
    if op == "patch":
        n = rng.randint(1, 70000)
        off = rng.randint(0, max(0, min(size, LIMIT - n)))
        data = rng.randbytes(n)
        if held is not None:
            os.pwrite(held, data, off)
        else:
            fd = os.open(os.path.join(mnt, name), os.O_WRONLY)
            os.pwrite(fd, data, off)
            os.close(fd)
        patch_both(off, data)
    elif op == "append":
        data = rng.randbytes(rng.randint(1, 5000))
        if size + len(data) > LIMIT:
            continue
        with open(os.path.join(mnt, name), "ab") as f:
            f.write(data)
        with open(model, "ab") as f:
            f.write(data)
    elif op == "truncate":
        n = rng.choice([rng.randint(0, 300000), rng.randint(0, LIMIT)])
        os.truncate(os.path.join(mnt, name), n)
        os.truncate(model, n)
    elif op == "kvctl":
        # Not while a descriptor is open: the mount's writers share one
        # copy of the value, committed whole (docs/kvfs.md).
        if held is not None:
            continue
        # Often the same size: only the version tells the copies apart.
        data = rng.randbytes(rng.choice([size, size, 100, 200000, 3 << 20]))
        with open(model, "wb") as f:
            f.write(data)
        subprocess.run([kvctl, store, "put", name, "--path", model], check=True)
    elif op == "hold":
        if held is None:
            held = os.open(os.path.join(mnt, name), os.O_RDWR)
        else:
            os.close(held)
            held = None
    elif op == "attrs":
        # A new version of the record, the same value.
        path = os.path.join(mnt, name)
        os.chmod(path, rng.choice([0o600, 0o644, 0o640]))
        os.setxattr(path, "user.step", str(step).encode())
    elif op == "rename":
        if held is not None:
            continue
        new = "big" if name != "big" else "moved"
        os.rename(os.path.join(mnt, name), os.path.join(mnt, new))
        name = new
    if held is not None and op != "hold":
        os.fsync(held)  # the store must see it before kvctl reads it
    want = open(model, "rb").read()
    got = open(os.path.join(mnt, name), "rb").read()
    stored = store_value()
    if got != want or stored != want:
        print(f"step {step} ({op}): mount {'ok' if got == want else 'differs'}, "
              f"store {'ok' if stored == want else 'differs'} "
              f"({len(got)}/{len(stored)} bytes, model {len(want)})")
        failures += 1
        break
if held is not None:
    os.close(held)
print("failures", failures, "final", name)
EOF
)
check_eq "80 random steps agree with the model, in the mount and the store" \
	"$(printf '%s\n' "$out" | tail -1 | cut -d' ' -f1-2)" "failures 0"
printf '%s\n' "$out" | grep '^step' | sed 's/^/# /' || true
check "kvctl check is clean" t "$KVCTL" "$S" check
finish
