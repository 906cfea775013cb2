#!/usr/bin/env bash
# A SHELL for make that times each recipe line (bench/bench_make.py):
#   make SHELL=bench/timed_shell.sh SEGLINE_TIMING_LOG=/tmp/t.log ...
# runs the line with bash and the .SHELLFLAGS make passes ("-eo pipefail -c LINE"),
# then appends "targets<TAB>start<TAB>end<TAB>exit code" (seconds since the epoch) to
# $SEGLINE_TIMING_LOG. make exports SEGLINE_TARGETS (make/common.mk): the target(s) of
# the recipe; empty for make's own $(shell ...) calls at parse time.
start=$EPOCHREALTIME
bash "$@"
rc=$?
end=$EPOCHREALTIME
if [[ -n "${SEGLINE_TIMING_LOG:-}" ]]; then
  printf '%s\t%s\t%s\t%s\n' "${SEGLINE_TARGETS:-}" "$start" "$end" "$rc" >>"$SEGLINE_TIMING_LOG"
fi
exit "$rc"
