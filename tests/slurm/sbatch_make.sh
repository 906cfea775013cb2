#!/usr/bin/env bash
# tests/slurm/sbatch_make.sh — make inside one SLURM allocation, stopped gracefully and
# requeued when the job is about to end.
#
#   sbatch --signal=B:USR1@120 --requeue --open-mode=append -c8 -o make-%j.log \
#       tests/slurm/sbatch_make.sh make -j8 -f spleen.make \
#       CC='srun --exact -n1 -c1 .venv/bin/python'
#
# Runs its arguments (the make command) in the background and waits for it. A signal
# given with `--signal=B:...` reaches the batch shell only; this script passes it on:
#   USR1 (the time limit is near, or `scancel -s USR1 -b <job>`): USR1 once to each job
#        step of this job (`scancel -s USR1 <job>.<step>`), every second until make
#        has ended, so a step started meanwhile gets it too. Not through make: make
#        passes SIGTERM to srun, and srun answers SIGTERM with SIGKILL to its tasks.
#        Each training finishes its optimisation step, saves a mid-epoch state in
#        <method>_tmp and exits 75 (any other stage just stops); make sees the failures
#        and ends. Then the job is requeued (scontrol requeue): its next run starts
#        this script again, make rebuilds what is missing and each stopped training
#        resumes ("resuming mid-epoch") under the usual lineage check.
#   TERM (scancel, pre-emption, the time limit itself): SLURM signals every step by
#        itself, so nothing is passed on (a second signal would stop a training at
#        once); make ends when its stages have; no requeue from here.
# Exit status: make's, or 0 after a requeue request.
set -u

"$@" &
child=$!
signal=
trap 'signal=USR1' USR1
trap 'signal=${signal:-TERM}' TERM

declare -A told=()
stop_steps() { # USR1 once to each job step of this job that has not had it yet
    local step
    for step in $(squeue -h -s -j "${SLURM_JOB_ID:-0}" -o %i 2>/dev/null); do
        [[ $step == *.batch || $step == *.extern || -n ${told[$step]:-} ]] && continue
        told[$step]=1
        scancel -s USR1 "$step" 2>/dev/null || true
    done
}

rc=
while [[ -z $rc ]]; do
    if [[ $signal == USR1 ]]; then
        stop_steps
        sleep 1
        kill -0 "$child" 2>/dev/null && continue
    fi
    wait "$child"
    status=$?
    # wait returns early (status > 128) when a trapped signal arrives: go on
    kill -0 "$child" 2>/dev/null && continue
    rc=$status
done

if [[ $signal == USR1 ]]; then
    printf 'sbatch_make: USR1: make stopped (exit %s); requeueing job %s (restart %s)\n' \
        "$rc" "${SLURM_JOB_ID:-?}" "${SLURM_RESTART_COUNT:-0}"
    if [[ -n ${SLURM_JOB_ID:-} ]] && scontrol requeue "$SLURM_JOB_ID"; then
        exit 0
    fi
    printf 'sbatch_make: scontrol requeue failed; submit the job again to resume\n' >&2
fi
exit "$rc"
