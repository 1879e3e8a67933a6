#!/usr/bin/env bash
# test_rsh: the remote-shell transport, with tests/kvsync/fake-rsh.sh standing
# in for ssh.  Push and pull through it, with [user@]host forms, -e
# carrying options, and a remote path that needs quoting; a login script
# that prints text before the protocol is named in a clear error (exit 3)
# and nothing is written; a missing remote kvsync or store is reported; a
# host that would read as an option of the remote shell is refused.
. "$(dirname "$0")/lib.sh"

RSH=$SYNC_DIR/fake-rsh.sh
A=$WORK/a
put_values "$A" r: 30
kvctl "$A" put r:meta m --metadata '{"x":1}'

check_exit "push through the remote shell succeeds" 0 \
	kvsync -e "$RSH" --kvsync-path "$KVSYNC" --stats "$A" "host:$WORK/b"
check_eq "it sends every record" "$(stats_field "$WORK/last.out" "Number of keys transferred")" 31
same_export "the remote store holds the namespace" "$A" "$WORK/b"

check_exit "pull from user@host succeeds" 0 \
	kvsync -e "$RSH" --kvsync-path "$KVSYNC" "someone@host:$WORK/b" "$WORK/c"
same_export "the pulled store holds the namespace" "$A" "$WORK/c"

kvctl "$A" put r:new fresh
check_exit "-e with options of its own succeeds" 0 \
	kvsync -e "$RSH -p 2222 -o BatchMode=yes" --kvsync-path "$KVSYNC" --stats "$A" "host:$WORK/b"
check_eq "an incremental push sends only the change" \
	"$(stats_field "$WORK/last.out" "Number of keys transferred")" 1

mkdir "$WORK/with space"
check_exit "a remote path with a space and a quote is passed intact" 0 \
	kvsync -e "$RSH" --kvsync-path "$KVSYNC" "$A" "host:$WORK/with space/it's"
same_export "the store under the odd path holds the namespace" "$A" "$WORK/with space/it's"

check_exit "--check through the remote shell finds the stores converged" 0 \
	kvsync -e "$RSH" --kvsync-path "$KVSYNC" --check "$A" "host:$WORK/b"

FAKE_RSH_JUNK="Welcome to the machine!" check_exit \
	"a remote shell printing text before the protocol is a protocol error (exit 3)" 3 \
	kvsync -e "$RSH" --kvsync-path "$KVSYNC" "$A" "host:$WORK/d"
check_err "the error quotes the text and names the login scripts" \
	"kvsync: remote shell printed 'Welcome to the machine!' before the protocol started; check the remote login scripts"
check "nothing was created on the remote side" test ! -e "$WORK/d"

check_exit "a remote side without kvsync is a connection error (exit 3)" 3 \
	kvsync -e "$RSH" --kvsync-path /nonexistent/kvsync "$A" "host:$WORK/d"
check_err "and says the protocol never started" "before the protocol started"
check_exit "a missing remote source is a store error (exit 4)" 4 \
	kvsync -e "$RSH" --kvsync-path "$KVSYNC" "host:$WORK/missing" "$WORK/e"
check_err "and names the store" "no such store"
check_exit "a remote shell that cannot run is a connection error (exit 3)" 3 \
	kvsync -e /nonexistent/ssh "$A" "host:$WORK/d"
# ssh would read a host starting with '-' as an option (-oProxyCommand=...).
printf '#!/bin/sh\n: >"%s"\nexec "%s" "$@"\n' "$WORK/rsh-ran" "$RSH" >"$WORK/rsh"
chmod +x "$WORK/rsh"
check_exit "a host that starts with '-' is a usage error (exit 2)" 2 \
	kvsync -e "$WORK/rsh" --kvsync-path "$KVSYNC" -- "$A" "-oProxyCommand=true:$WORK/d"
check "and the remote shell never ran" test ! -e "$WORK/rsh-ran"
finish
