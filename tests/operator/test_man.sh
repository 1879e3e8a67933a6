#!/usr/bin/env bash
# The man pages: each one built renders with man(1) without a groff
# warning, has the sections an operator looks for, names every long option
# (and, for kvfs, every -o option) its program's -h lists, and names no
# long option the program lacks (but for the other tools' it quotes).
#
# Environment: MAN_DIR (the built pages), KVFS, KVCTL, KVSYNC, KVAPI.
set -u
. "$TESTS_DIR/checks.sh"

# The long options a page may quote that belong to another program.
declare -A foreign=(
	[kvctl]='--local --persist-to --pre' # wrangler's, and an abbreviation refused
	[kvapi]='--remote --namespace-id'    # wrangler's
)
declare -A prog=([kvfs]=$KVFS [kvctl]=$KVCTL [kvsync]=$KVSYNC [kvapi]=$KVAPI)

for p in kvfs kvctl kvsync kvapi; do
	page=$MAN_DIR/$p.1
	if [ ! -s "$page" ]; then
		not_ok "$p.1 is built ($page)"
		continue
	fi
	ok "$p.1 is built"
	warnings=$(MANWIDTH=80 t man --warnings -l "$page" 2>&1 >/dev/null)
	check_eq "$p.1 renders without warnings" "$warnings" ""
	# Wide enough that no option is broken across lines.
	text=$(MANWIDTH=1000 t man -l "$page" 2>/dev/null | col -b)
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' FILES EXAMPLES 'SEE ALSO'; do
		grep -qx "$s" <<<"$text" || not_ok "$p.1 has the section $s"
	done
	ok "$p.1 has its sections"

	help=$(t "${prog[$p]}" -h 2>&1)
	[ "$p" = kvsync ] && help+=$(t "${prog[$p]}" serve -h 2>&1)
	mapfile -t longs < <(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u)
	[ "${#longs[@]}" -ge 2 ] || not_ok "$p -h lists long options"
	missing=()
	for o in "${longs[@]}"; do
		grep -qE -- "(^|[^a-z0-9-])$o([^a-z0-9-]|\$)" <<<"$text" || missing+=("$o")
	done
	if [ "$p" = kvfs ]; then
		# kvfs's own options are mount options: -o NAME.
		for o in $(grep -oE -- '-o [a-z_]+' <<<"$help" | cut -c4- | sort -u); do
			grep -qE -- "(^|[^a-z_])$o([^a-z_]|\$)" <<<"$text" || missing+=("-o $o")
		done
	fi
	check_eq "$p.1 names every option of '$p -h'" "${missing[*]}" ""

	invented=()
	for o in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$text" | sort -u); do
		[[ " ${foreign[$p]:-} " == *" $o "* ]] && continue
		grep -qE -- "(^|[^a-z0-9-])$o([^a-z0-9-]|\$)" <<<"$help" || invented+=("$o")
	done
	check_eq "$p.1 names no option that '$p -h' lacks" "${invented[*]}" ""
done

tap_plan
