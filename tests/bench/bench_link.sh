#!/usr/bin/env bash
# bench_link: kvsync against rsync over a slow link between two hosts, with
# and without compression, printing ratios.  Not a test: nothing is asserted.
#
#   bench_link.sh [--quick] [RATE]
#
# Two hosts are two network namespaces joined by a veth pair whose both
# ends are shaped to RATE (tc tbf; default 100mbit).  Host B runs a
# `kvsync serve` daemon (a token, as across a real network) and an rsync
# daemon.  From host A, in alternating pairs (kvsync, rsync, kvsync, ...),
# each run copies the same data into an empty destination:
#   kvsync [-z] SRC kvsync://B:PORT   (a fresh store on B each run)
#   rsync -a [-z] TREE/ rsync://B:PORT/m/   (an emptied directory on B)
# The data: N values of about 10 KiB of JSON-like text (ids, names,
# prices, words of a small vocabulary: compressible, as config and cached
# API answers are), as the keys d:f of a store and the files d/f of a tree.
# Everything is on the real disk (/var/tmp), as users run it.  Printed:
# each side's median time and bytes sent on the link (each tool's
# --stats), and kvsync's time as a ratio of rsync's, median of the pairs.
# N = 5000 and 5 pairs; --quick: N = 1000 and 3 pairs.
#
# Needs root (ip netns, tc).  Environment: KVSYNC, KVCTL (else the
# build-rel/ binaries; build without sanitizers for figures worth quoting).
set -euo pipefail
export LC_ALL=C

N=5000 PAIRS=5
if [ "${1:-}" = --quick ]; then
	N=1000 PAIRS=3
	shift
fi
RATE=${1:-100mbit}
here=$(cd "$(dirname "$0")/../.." && pwd)
: "${KVSYNC:=$here/build-rel/tools/kvsync/kvsync}"
: "${KVCTL:=$here/build-rel/tools/kvctl/kvctl}"
for b in "$KVSYNC" "$KVCTL"; do
	[ -x "$b" ] || { echo "bench_link: $b is not built" >&2; exit 1; }
done
command -v rsync >/dev/null || { echo "bench_link: rsync is missing" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench_link: needs root (network namespaces, tc)" >&2; exit 1; }
if ldd "$KVSYNC" 2>/dev/null | grep -q libasan; then
	echo "# note: $KVSYNC is built with AddressSanitizer; figures are pessimistic"
fi

W=$(mktemp -d /var/tmp/bench-link.XXXXXX)
NS_A=blink-a-$$ NS_B=blink-b-$$
VA=blka$$ VB=blkb$$
ADDR_B=10.79.0.2
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true; done
	ip netns del "$NS_A" 2>/dev/null || true
	ip netns del "$NS_B" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

# The two hosts and the shaped link.
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$NS_A"
ip link set "$VB" netns "$NS_B"
in_a ip addr add 10.79.0.1/24 dev "$VA"
in_b ip addr add "$ADDR_B/24" dev "$VB"
for h in A B; do
	dev=$VA; [ $h = B ] && dev=$VB
	ns=$NS_A; [ $h = B ] && ns=$NS_B
	ip -n "$ns" link set lo up
	ip -n "$ns" link set "$dev" up
	ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$RATE" burst 64kb latency 50ms
done

# The data, once as a bulk file for the store and once as a tree.
echo "# generating $N values of ~10 KiB"
mkdir -p "$W/tree"
awk -v n="$N" -v tree="$W/tree" -v bulk="$W/bulk.json" 'BEGIN {
	srand(42)
	split("alpha beta gamma delta red green blue small large north south east west " \
	      "open closed pending active user order item price stock cart session", w, " ")
	printf "[" >bulk
	for (i = 0; i < n; i++) {
		d = sprintf("d%02d", i % 50); f = sprintf("f%05d", i)
		v = ""
		while (length(v) < 10240)
			v = v sprintf("{id: %d, name: %s %s, price: %d.%02d, tags: [%s, %s], state: %s}, ",
				      int(rand() * 1e6), w[int(rand() * 25) + 1], w[int(rand() * 25) + 1],
				      int(rand() * 1000), int(rand() * 100), w[int(rand() * 25) + 1],
				      w[int(rand() * 25) + 1], w[int(rand() * 25) + 1])
		system("mkdir -p " tree "/" d)
		printf "%s", v >(tree "/" d "/" f)
		close(tree "/" d "/" f)
		printf "%s{\"key\":\"%s:%s\",\"value\":\"%s\"}", (i ? "," : ""), d, f, v >bulk
	}
	printf "]" >bulk
}'
"$KVCTL" "$W/src" bulk put "$W/bulk.json" 2>/dev/null
rm -f "$W/bulk.json"
bytes=$(du -sb "$W/tree" | cut -f1)

# Host B's daemons: rsync's, for the whole run; kvsync's, one per run (a
# daemon serves one store, and each run starts from an empty one).
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$W/token"
chmod 600 "$W/token"
mkdir -p "$W/rdst"
cat >"$W/rsyncd.conf" <<EOF
use chroot = no
uid = root
gid = root
[m]
path = $W/rdst
read only = no
EOF
timeout 3600 ip netns exec "$NS_B" rsync --daemon --no-detach --config="$W/rsyncd.conf" \
	--address="$ADDR_B" --port=8730 --log-file="$W/rsyncd.log" &
pids+=($!)
for _ in $(seq 100); do
	in_a rsync "rsync://$ADDR_B:8730/" >/dev/null 2>&1 && break
	sleep 0.1
done

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
stat_bytes() { sed -n 's/^Total bytes sent: *//p' "$1" | tr -d ',' | head -1; }

# run_kvsync Z: one push into a fresh store on B; prints "SECONDS BYTES".
run_kvsync() {
	local dst t0 t1
	dst=$(mktemp -d "$W/kdst.XXXXXX")
	rmdir "$dst"
	timeout 600 ip netns exec "$NS_B" "$KVSYNC" serve --listen "$ADDR_B:7399" \
		--token-file "$W/token" "$dst" 2>"$W/serve.log" &
	local spid=$!
	for _ in $(seq 100); do
		grep -q serving "$W/serve.log" 2>/dev/null && break
		sleep 0.05
	done
	t0=$(now)
	timeout 600 ip netns exec "$NS_A" "$KVSYNC" $1 --stats --token-file "$W/token" \
		"$W/src" "kvsync://$ADDR_B:7399" >"$W/kstats" 2>"$W/klog" ||
		{ cat "$W/klog" >&2; exit 1; }
	t1=$(now)
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	rm -rf "$dst"
	echo "$(elapsed "$t0" "$t1") $(stat_bytes "$W/kstats")"
}

# run_rsync Z: one copy of the tree into an emptied module on B.
run_rsync() {
	local t0 t1
	find "$W/rdst" -mindepth 1 -delete
	t0=$(now)
	timeout 600 ip netns exec "$NS_A" rsync -a $1 --stats "$W/tree/" \
		"rsync://$ADDR_B:8730/m/" >"$W/rstats" 2>&1 || { cat "$W/rstats" >&2; exit 1; }
	t1=$(now)
	echo "$(elapsed "$t0" "$t1") $(stat_bytes "$W/rstats")"
}

echo "# link $RATE, $N values, $bytes bytes; $PAIRS pairs, alternating"
printf '%-22s %10s %14s %10s %14s %8s\n' "copy" "kvsync s" "kvsync bytes" "rsync s" "rsync bytes" "ratio"
for z in "" -z; do
	: >"$W/k" ; : >"$W/r" ; : >"$W/ratios"
	for _ in $(seq "$PAIRS"); do
		k=$(run_kvsync "$z")
		r=$(run_rsync "$z")
		echo "$k" >>"$W/k"
		echo "$r" >>"$W/r"
		awk -v a="${k%% *}" -v b="${r%% *}" 'BEGIN { printf "%.3f\n", a / b }' >>"$W/ratios"
	done
	label="initial copy${z:+ $z}"
	printf '%-22s %10s %14s %10s %14s %7sx\n' "$label" \
		"$(cut -d' ' -f1 "$W/k" | median)" "$(cut -d' ' -f2 "$W/k" | median)" \
		"$(cut -d' ' -f1 "$W/r" | median)" "$(cut -d' ' -f2 "$W/r" | median)" \
		"$(median <"$W/ratios")"
	echo "# $label: kvsync/rsync time ratio per pair: $(tr '\n' ' ' <"$W/ratios")"
done
echo "# ratio: kvsync's time over rsync's, median of the pairs (below 1: kvsync faster)"
