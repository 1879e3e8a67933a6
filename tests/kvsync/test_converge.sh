#!/usr/bin/env bash
# test_converge: four stores take random writes and deletes (fixed seeds:
# single puts, deletes of live keys, bulk puts) between sync passes in
# chain, star or ring order (the first argument).  Synced until a pass
# applies nothing, every store exports the same namespace, --check finds
# nothing, and the namespace is the one last-writer-wins predicts from the
# order of the writes (later writes get later clocks).
. "$(dirname "$0")/lib.sh"

topology=${1:?usage: test_converge.sh chain|star|ring}
case $topology in
chain) RANDOM=1101 ;;
star) RANDOM=2202 ;;
ring) RANDOM=3303 ;;
*) echo "unknown topology $topology" >&2; exit 2 ;;
esac

N=4
S=()
for i in $(seq 0 $((N - 1))); do
	S+=("$WORK/s$i")
	kvctl "${S[$i]}" put "seed:$i" "store $i" 2>/dev/null
done
# The model: key -> "=VALUE" while live, "-" once deleted.
declare -A model
for i in $(seq 0 $((N - 1))); do model["seed:$i"]="=store $i"; done

nops=0
# Sets KEY to a random key (no subshell: $RANDOM must advance here).
random_key() {
	local n=$((RANDOM % 24))
	case $((n % 3)) in
	0) KEY="k$n" ;;
	1) KEY="app:user:$n" ;;
	*) KEY="cache:p$n:x" ;;
	esac
}

# One random change on a random store, recorded in the model.  A delete
# happens only where the key is live (deleting a missing key writes
# nothing, so it is not a change).
random_op() {
	local s=$((RANDOM % N)) op=$((RANDOM % 10)) key val
	nops=$((nops + 1))
	random_key
	key=$KEY
	val="v$nops.s$s.$RANDOM"
	if [ "$op" -lt 5 ]; then
		kvctl "${S[$s]}" put "$key" "$val"
		model[$key]="=$val"
	elif [ "$op" -lt 8 ]; then
		if kvctl "${S[$s]}" get "$key" >/dev/null 2>&1; then
			kvctl "${S[$s]}" delete "$key"
			model[$key]="-"
		fi
	else
		local j k2 sep="" json="[" seen=" "
		for j in 1 2 3 4; do
			random_key
			k2=$KEY
			case $seen in *" $k2 "*) continue ;; esac
			seen="$seen$k2 "
			json="$json$sep{\"key\":\"$k2\",\"value\":\"$val.$j\"}"
			sep=","
			model[$k2]="=$val.$j"
		done
		printf '%s]' "$json" >"$WORK/bulk.json"
		kvctl "${S[$s]}" bulk put "$WORK/bulk.json" >/dev/null
	fi
	# Keep writes on different stores in different milliseconds, so
	# their order in time is their clock order.
	sleep 0.002
}

# One sync; prints how many records it applied.
sync_one() {
	kvsync --stats "$@" >"$WORK/stats" 2>>"$WORK/kvsync.log"
	stats_field "$WORK/stats" "Number of keys applied"
}

# One pass in the topology's order; prints the records applied in total.
pass() {
	local total=0 n i
	case $topology in
	chain) # both ways along 0-1-2-3
		for i in 0 1 2; do
			n=$(sync_one --both "${S[$i]}" "${S[$((i + 1))]}")
			total=$((total + n))
		done
		;;
	star) # every leaf to the hub, then the hub to every leaf
		for i in 1 2 3; do
			n=$(sync_one "${S[$i]}" "${S[0]}")
			total=$((total + n))
		done
		for i in 1 2 3; do
			n=$(sync_one "${S[0]}" "${S[$i]}")
			total=$((total + n))
		done
		;;
	ring) # one way round 0-1-2-3-0
		for i in 0 1 2 3; do
			n=$(sync_one "${S[$i]}" "${S[$(((i + 1) % N))]}")
			total=$((total + n))
		done
		;;
	esac
	echo "$total"
}

for round in 1 2 3; do
	for _ in $(seq 12); do random_op; done
	applied=$(pass)
	echo "# round $round: $applied records applied"
done
for _ in $(seq 6); do random_op; done

quiet=0
for p in $(seq 1 8); do
	applied=$(pass)
	echo "# pass $p: $applied records applied"
	if [ "$applied" -eq 0 ]; then
		quiet=1
		break
	fi
done
check_eq "$topology: a pass applies nothing within 8 passes" "$quiet" 1
same_export "$topology: all $N stores export the same namespace" "${S[@]}"

differ=0
for i in $(seq 1 $((N - 1))); do
	kvsync --check "${S[0]}" "${S[$i]}" >"$WORK/check.out" 2>&1 || differ=$((differ + 1))
done
check_eq "$topology: --check finds every pair converged" "$differ" 0

# The namespace last-writer-wins predicts.
wrong=0
want_keys=()
for key in "${!model[@]}"; do
	st=${model[$key]}
	if [ "$st" = "-" ]; then
		if kvctl "${S[0]}" get "$key" >/dev/null 2>&1; then
			echo "# $key was deleted last but is live"
			wrong=$((wrong + 1))
		fi
	else
		want_keys+=("$key")
		got=$(kvctl "${S[0]}" get "$key" 2>/dev/null || echo "(absent)")
		if [ "$got" != "${st#=}" ]; then
			echo "# $key: got '$got', want '${st#=}'"
			wrong=$((wrong + 1))
		fi
	fi
done
check_eq "$topology: every key holds the value of its last write, deleted keys stay deleted" "$wrong" 0
have=$(kvctl "${S[0]}" list | grep -o '"name": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' | sort)
want=$(printf '%s\n' "${want_keys[@]}" | sort)
check_eq "$topology: no key is live that the model does not have" "$have" "$want"
echo "# $nops random operations"
finish
