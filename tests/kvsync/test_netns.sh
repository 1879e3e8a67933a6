#!/usr/bin/env bash
# test_netns: two hosts made of network namespaces joined by a veth pair.
# A `kvsync serve --token-file` listens on one host's address; `kvsync
# --watch` on the other follows it: writes on the server side appear on the
# client within 2 s (also through a kvfs mount of the receiving store, when
# kvfs is built).  A daemon without a token refuses the remote client.
# Needs root (ip netns); skipped (77) only with KVFS_ALLOW_SKIP=1.
. "$(dirname "$0")/lib.sh"

net=10.213.$((RANDOM % 250))
ADDR_A=$net.1
ADDR_B=$net.2
netns_pair kvs "$ADDR_A/30" "$ADDR_B/30"

SRV=$WORK/server DST=$WORK/client
printf 's3cr3t-for-the-test\n' >"$WORK/token"
kvctl "$SRV" put before:watch "already there" 2>/dev/null
bg serve ip netns exec "$NS_A" "$KVSYNC" serve --listen "$ADDR_A:7310" \
	--token-file "$WORK/token" "$SRV"
check "the daemon listens on host A's address" within 10000 grep -q serving "$WORK/serve.log"

bg watch ip netns exec "$NS_B" "$KVSYNC" --watch --token-file "$WORK/token" \
	"kvsync://$ADDR_A:7310" "$DST"
watch_pid=$BG_PID
check "the --watch client on host B catches up with what was there" \
	within 5000 bash -c '[ "$("$0" "$1" get before:watch 2>/dev/null)" = "already there" ]' "$KVCTL" "$DST"

mounted=0
if kvfs_usable; then
	if mount_kvfs "$DST" "$WORK/mnt"; then
		mounted=1
	else
		not_ok "kvfs mounts the receiving store"
	fi
fi

worst=0
for i in 1 2 3 4 5; do
	kvctl "$SRV" put "net:$i" "written on A, $i"
	start=$(date +%s%3N)
	if within 2000 bash -c '[ "$("$0" "$1" get "$2" 2>/dev/null)" = "$3" ]' \
		"$KVCTL" "$DST" "net:$i" "written on A, $i"; then
		ms=$(($(date +%s%3N) - start))
		[ "$ms" -gt "$worst" ] && worst=$ms
	else
		worst=99999
	fi
done
if [ "$worst" -le 2000 ]; then
	ok "five writes on host A each appear on host B within 2 s (slowest ${worst} ms)"
else
	not_ok "five writes on host A each appear on host B within 2 s"
fi
if [ "$mounted" = 1 ]; then
	kvctl "$SRV" put "net:mounted" "read through the mount"
	check "a write on host A shows through host B's kvfs mount within 2 s" \
		within 2000 grep -qx "read through the mount" "$WORK/mnt/net/mounted"
fi

kill -TERM "$watch_pid"
rc=0
wait "$watch_pid" || rc=$?
check_eq "SIGTERM ends the --watch client cleanly" "$rc" 0

# A daemon without a token serves loopback clients only, whatever it
# listens on.
bg open ip netns exec "$NS_A" "$KVSYNC" serve --listen "0.0.0.0:7311" "$WORK/open"
check "a tokenless daemon listens on all of host A's addresses" \
	within 10000 grep -q serving "$WORK/open.log"
snapshot "$WORK/open" "$WORK/open-before"
check_exit "it refuses a client on host B (exit 5)" 5 \
	ip netns exec "$NS_B" "$KVSYNC" "$DST" "kvsync://$ADDR_A:7311"
check_err "and the client is told why" "accepts only loopback clients"
snapshot "$WORK/open" "$WORK/open-after"
check "nothing was written to its store" cmp -s "$WORK/open-before" "$WORK/open-after"
check_exit "a loopback client on host A is served" 0 \
	ip netns exec "$NS_A" "$KVSYNC" "$DST" "kvsync://127.0.0.1:7311"
finish
