#!/usr/bin/env bash
# fake-rsh.sh: stands in for ssh in the kvsync tests.  Called as
# `fake-rsh.sh [OPTIONS] [user@]host COMMAND...`, it drops the options
# (-p/-l/-o take an argument, as ssh's do) and the host, and runs the
# command locally through a shell, as ssh runs it on the remote host.
# With FAKE_RSH_JUNK set, it first prints that text on stdout, as a chatty
# login script would.
set -euo pipefail
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
	case $1 in
	-p | -l | -o) shift 2 ;;
	*) shift ;;
	esac
done
shift # the host
if [ -n "${FAKE_RSH_JUNK:-}" ]; then
	printf '%s\n' "$FAKE_RSH_JUNK"
fi
exec sh -c "$*"
