#!/usr/bin/env bash
# The bash completion of kvfs, kvctl, kvsync and kvapi, driven as bash
# drives it: COMP_WORDS split as readline splits a line (':' is a word
# break), COMP_CWORD, COMP_LINE, COMP_POINT, then the function that
# `complete -p` names, and COMPREPLY checked.  Keys come from a real store
# written by the real kvctl.
#
# Environment: COMPLETION (the completion file), KVCTL.
set -u
. "$TESTS_DIR/checks.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Completion runs `kvctl` from PATH, as an installed one would.
mkdir "$tmp/bin"
ln -s "$KVCTL" "$tmp/bin/kvctl"
PATH=$tmp/bin:$PATH

# bash-completion, when installed, supplies the word rejoining on ':'.
if [ -r /usr/share/bash-completion/bash_completion ]; then
	. /usr/share/bash-completion/bash_completion
	ok "bash-completion is loaded"
else
	not_ok "bash-completion is installed (scripts/install-deps.sh)"
fi
. "$COMPLETION"

for p in kvfs kvctl kvsync kvapi; do
	spec=$(complete -p "$p" 2>/dev/null)
	check_eq "complete -p $p names its function" "$spec" "complete -F _kvfs_$p $p"
done

# comp LINE: complete at the end of LINE as bash would; the replies, one a
# line, sorted.
comp() {
	local line=$1 w
	COMP_LINE=$line
	COMP_POINT=${#line}
	COMP_WORDS=()
	# readline's split: blanks separate (a backslash-escaped blank does
	# not), and each ':' is a word of its own.
	local cur='' i c esc=
	for ((i = 0; i < ${#line}; i++)); do
		c=${line:i:1}
		if [ -n "$esc" ]; then cur+=$c; esc=; continue; fi
		case $c in
			\\) cur+=$c; esc=1 ;;
			' ') [ -n "$cur" ] && COMP_WORDS+=("$cur"); cur='' ;;
			:) [ -n "$cur" ] && COMP_WORDS+=("$cur"); COMP_WORDS+=(:); cur='' ;;
			*) cur+=$c ;;
		esac
	done
	# The word being completed (maybe empty) is the last.
	if [ -n "$cur" ] || [ "${line: -1}" = ' ' ] || [ ${#COMP_WORDS[@]} -eq 0 ]; then
		COMP_WORDS+=("$cur")
	fi
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	local fn
	fn=$(complete -p "${COMP_WORDS[0]}" | sed -E 's/.* -F ([^ ]+) .*/\1/')
	"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort
}

# A real store, with a key holding a space and colons.
store=$tmp/store
t "$KVCTL" "$store" put 'user:a b:c' 1 2>/dev/null
t "$KVCTL" "$store" put 'user:plain' 2
t "$KVCTL" "$store" put 'other' 3
t "$KVCTL" "$store" put 'q"uo\te' 4
mkdir "$tmp/dirs" "$tmp/dirs/d1" "$tmp/dirs/d2"
touch "$tmp/dirs/f1" "$tmp/bulk.json"

# kvctl: STORE, commands, options per command, keys, files.
check_eq "kvctl: STORE completes directories only" \
	"$(comp "kvctl $tmp/dirs/")" "$(printf '%s\n' "$tmp/dirs/d1" "$tmp/dirs/d2")"
check_eq "kvctl: commands after STORE" "$(comp "kvctl $store b")" "bulk"
check_eq "kvctl: every command" "$(comp "kvctl $store " | tr '\n' ' ')" \
	"bulk check delete export get import list put reap stats watch "
check_eq "kvctl: options of put" "$(comp "kvctl $store put k --" | tr '\n' ' ')" \
	"-- --expiration --help --metadata --min-ttl --path --ttl --version "
check_eq "kvctl: options of list" "$(comp "kvctl $store list --" | tr '\n' ' ')" \
	"-- --cursor --help --limit --min-ttl --prefix --version "
check_eq "kvctl: options before the command" "$(comp "kvctl --mi")" "--min-ttl"
check_eq "kvctl: bulk subcommands" "$(comp "kvctl $store bulk " | tr '\n' ' ')" "delete get put "
check_eq "kvctl: bulk FILE is a file" "$(comp "kvctl $store bulk put $tmp/bu")" "$tmp/bulk.json"
check_eq "kvctl: --path FILE is a file" "$(comp "kvctl $store put k --path $tmp/bu")" "$tmp/bulk.json"
check_eq "kvctl get: keys of the store" "$(comp "kvctl $store get u")" \
	"$(printf '%s\n' 'user:a\ b:c' 'user:plain')"
# After 'user:' bash replaces only what follows the ':'.
check_eq "kvctl delete: a key with a space and colons, after a ':'" \
	"$(comp "kvctl $store delete user:a")" 'a\ b:c'
check_eq "kvctl get: after an escaped space and a ':'" \
	"$(comp "kvctl $store get user:a\\ b:")" 'c'
check_eq "kvctl put: keys too, after options" "$(comp "kvctl --min-ttl 1 $store put ot")" "other"
check_eq "kvctl get: a key with JSON escapes, shell-quoted" "$(comp "kvctl $store get q")" 'q\"uo\\te'
check_eq "kvctl list: no keys as arguments" "$(comp "kvctl $store list u")" ""
check_eq "kvctl get: a missing store gives nothing" "$(comp "kvctl $tmp/nostore get u")" ""
if [ -e "$tmp/nostore" ]; then not_ok "completion created no store"; else ok "completion created no store"; fi

# kvsync: options, store paths, remote forms left alone.
check_eq "kvsync: options" "$(comp "kvsync --ch")" "--check"
check_eq "kvsync: serve's options" "$(comp "kvsync serve --max-s" | tr '\n' ' ')" \
	"--max-sessions --max-skew --max-startups "
check_eq "kvsync: serve as the first word" "$(comp "kvsync se")" "serve"
check_eq "kvsync: SRC is a directory" "$(comp "kvsync $tmp/dirs/d")" \
	"$(printf '%s\n' "$tmp/dirs/d1" "$tmp/dirs/d2")"
check_eq "kvsync: host:PATH is not expanded" "$(comp "kvsync $store host:$tmp/")" ""
check_eq "kvsync: kvsync:// is not expanded" "$(comp "kvsync $store kvsync://lo")" ""
check_eq "kvsync: --token-file is a file" "$(comp "kvsync --token-file $tmp/bu")" "$tmp/bulk.json"

# kvfs: -o mount options (after a ','), STORE and MOUNTPOINT directories.
check_eq "kvfs: -o sync= modes" "$(comp "kvfs -o sy" | tr '\n' ' ')" \
	"sync=always sync=batch sync=none "
check_eq "kvfs: -o after a ','" "$(comp "kvfs -o ro,default_p")" "ro,default_permissions"
check_eq "kvfs: -o create, then nonempty after a ','" "$(comp "kvfs -o cr"; comp "kvfs -o create,non")" \
	"$(printf '%s\n' create create,nonempty)"
check_eq "kvfs: options" "$(comp "kvfs -" | tr '\n' ' ')" "--help --version -V -d -f -h -o -s "
check_eq "kvfs: STORE is a directory" "$(comp "kvfs $tmp/dirs/")" \
	"$(printf '%s\n' "$tmp/dirs/d1" "$tmp/dirs/d2")"
check_eq "kvfs: MOUNTPOINT is a directory" "$(comp "kvfs -f $store $tmp/dirs/")" \
	"$(printf '%s\n' "$tmp/dirs/d1" "$tmp/dirs/d2")"

# kvapi: options, ROOT a directory.
check_eq "kvapi: options" "$(comp "kvapi --t")" "--token-file"
check_eq "kvapi: ROOT is a directory" "$(comp "kvapi $tmp/dirs/")" \
	"$(printf '%s\n' "$tmp/dirs/d1" "$tmp/dirs/d2")"

tap_plan
