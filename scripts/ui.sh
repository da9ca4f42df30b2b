#!/bin/sh
# `make ui`: the Dagster webserver on loopback and the daemon (schedules, sensors, the run queue), both reading the
# project-local instance. This is what `dagster dev` does; in Dagster 1.13 that command is superseded by `dg dev`,
# which needs a `dg` project layout this project does not use, so the two long-running processes are started here.
# The daemon stops when the webserver does (Ctrl-C).
set -eu
bin=$1 port=$2
"$bin/dagster-daemon" run -w workspace.yaml &
daemon=$!
trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null' EXIT INT TERM
"$bin/dagster-webserver" -w workspace.yaml -h 127.0.0.1 -p "$port"
