#!/usr/bin/env bash
# tests/slurm/run_slurm_test.sh — the spleen toy on a real one-node SLURM cluster.
#
# Run by `make test-slurm` (top-level Makefile); as root on Debian (apt-get installs
# slurm-wlm and munge when missing). What it does:
#   1. starts a private cluster on this machine: munged (own key and socket),
#      slurmctld and slurmd, all configured by a slurm.conf written to $STATE
#      (default build/slurm/; no cgroups, CPUs from nproc, its own ports), so the
#      system's /etc/slurm and /etc/munge are neither read nor changed;
#   2. copies the project to $STATE/project and runs there, every python stage as a
#      SLURM job:  make -j3 -f spleen.make TOY=1 NET=Dimwit EPC=8 CC='srun -n1 -c1 ...'
#      As soon as one training has saved an epoch (<method>_tmp/train_state.pt) it
#      cancels every job with scancel, so make fails;
#      (SIGTERM to each training: it finishes its step, saves a mid-epoch state, exits 75);
#   3. runs the same make again: the cancelled training must say "resuming mid-epoch"
#      or "resuming after epoch" and the pipeline must complete;
#   4. checks each method's provenance/scheduler.txt names a SLURM job that the
#      controller knows as COMPLETED, and that a third make has nothing to do;
#   5. make inside one allocation: removes the results and submits
#      sbatch --signal=B:USR1@30 --requeue tests/slurm/sbatch_make.sh make -j3 ...
#          CC='srun --exact -n1 -c1 .venv/bin/python'
#      (each training a job step); once a training has saved an epoch it sends the
#      batch shell USR1 early (scancel -s USR1 -b: what the time limit does 30 s before
#      the end); the script sends each job step USR1, the trainings save and exit 75,
#      make stops, the job is requeued, and its rerun must resume them and complete:
#      every scheduler.txt names that job, a step and SLURM_RESTART_COUNT=1.
# Exit status 0 when all holds; otherwise a line "test-slurm: FAIL: ..." and 1.
# The daemons it started are stopped on exit (trap); a second run first stops the
# daemons a previous run left behind (their pid files in $STATE), then starts afresh.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${SEGLINE_SLURM_STATE:-$REPO/build/slurm}
PORT=${SEGLINE_SLURM_PORT:-6917}     # slurmctld; slurmd listens on PORT+1
# enough epochs that scancel (0.2 s after the first epoch is saved) lands mid-training
# also on a machine several times faster than 2 cores
EPOCHS=${SEGLINE_SLURM_EPC:-8}
METHODS_EXPECTED="ce gdl gdl_boundary gdl_boundary3d gdl_hausdorff gdl3d"
DAEMONS="slurmd slurmctld munged"     # stop order
T0=$SECONDS

say() { printf 'test-slurm: %s\n' "$*"; }
fail() {
    printf 'test-slurm: FAIL: %s\n' "$*" >&2
    exit 1
}

# Never run inside someone else's allocation: srun would add a step to that job.
while IFS='=' read -r name _; do
    unset "$name"
done < <(env | grep -E '^(SLURM|SBATCH|SALLOC)_[A-Za-z0-9_]*=' || true)
unset MAKEFLAGS MFLAGS MAKELEVEL

# ------------------------------------------------------------------- packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
    ! command -v srun >/dev/null || ! command -v munged >/dev/null; then
    [[ $(id -u) == 0 ]] || fail "slurm-wlm and munge are missing and we are not root to install them"
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
[[ $(id -u) == 0 ]] || fail "the one-node cluster runs its daemons as root (SlurmdUser=root); run as root"

# ------------------------------------------------------------------- daemons
alive() { # alive NAME: the pid in $STATE/NAME.pid runs the program NAME
    local pid
    pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1"* ]]
}

stop_daemons() { # stop the daemons of this state folder, by their recorded pids
    local name pid i
    for name in $DAEMONS; do
        if alive "$name"; then
            pid=$(cat "$STATE/$name.pid")
            kill "$pid" 2>/dev/null || true
            for i in $(seq 50); do
                alive "$name" || break
                sleep 0.2
            done
            alive "$name" && kill -9 "$pid" 2>/dev/null
        fi
        rm -f "$STATE/$name.pid"
    done
}

MAKE_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $MAKE_PID ]]; then
        kill "$MAKE_PID" 2>/dev/null || true
        wait "$MAKE_PID" 2>/dev/null || true
    fi
    if alive slurmctld; then
        squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
        sleep 1
    fi
    stop_daemons
    say "daemons stopped ($((SECONDS - T0)) s in all)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$STATE"
if alive slurmctld || alive slurmd || alive munged; then
    say "stopping the daemons a previous run left in $STATE"
fi
stop_daemons
rm -rf "$STATE/munge" "$STATE/ctld" "$STATE/spool" "$STATE"/*.log
mkdir -p "$STATE/munge" "$STATE/ctld" "$STATE/spool"
chmod 700 "$STATE/munge"

HOST=$(hostname -s)
NCPU=$(nproc)
SOCKET=$STATE/munge/munge.socket
((${#SOCKET} < 100)) || fail "state folder path too long for a socket: $STATE (set SEGLINE_SLURM_STATE)"

# A fresh key for our munged only (the system's /etc/munge/munge.key is not used).
head -c 1024 /dev/urandom >"$STATE/munge/munge.key"
chmod 400 "$STATE/munge/munge.key"

export SLURM_CONF=$STATE/slurm.conf
cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm/run_slurm_test.sh: one node, no cgroups, no accounting.
ClusterName=segline-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/ctld/slurmctld.pid
SlurmdPidFile=$STATE/spool/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
MinJobAge=3600
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU State=UNKNOWN
PartitionName=segline Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

munged -F --force --socket="$SOCKET" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" \
    --log-file="$STATE/munged.log" >>"$STATE/munged.log" 2>&1 &
echo $! >"$STATE/munged.pid"
for _ in $(seq 50); do
    [[ -S $SOCKET ]] && break
    sleep 0.2
done
[[ -S $SOCKET ]] || fail "munged did not start; see $STATE/munged.log"

slurmctld -D -i -f "$SLURM_CONF" >>"$STATE/slurmctld.log" 2>&1 &
echo $! >"$STATE/slurmctld.pid"
slurmd -D -N "$HOST" -f "$SLURM_CONF" >>"$STATE/slurmd.log" 2>&1 &
echo $! >"$STATE/slurmd.pid"

node_state=
for _ in $(seq 120); do
    node_state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    [[ $node_state == idle* ]] && break
    sleep 0.5
done
[[ $node_state == idle* ]] ||
    fail "node $HOST not idle after 60 s (state '$node_state'); see $STATE/slurmctld.log, $STATE/slurmd.log"
say "cluster up: node $HOST, $NCPU CPUs, controller on port $PORT ($((SECONDS - T0)) s)"

# ------------------------------------------------------------------- project copy
[[ -x $REPO/.venv/bin/python ]] || make -C "$REPO" --no-print-directory install
WORK=$STATE/project
rm -rf "$WORK"
mkdir -p "$WORK"
cp -r "$REPO/Makefile" "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/make" \
    "$REPO/lineage" "$REPO/preprocess" "$REPO/src" "$REPO"/*.make "$WORK/"
ln -s "$REPO/.venv" "$WORK/.venv"
cd "$WORK"

CC='srun -n1 -c1 .venv/bin/python'
# CACHE= : no result cache, every training trains (steps 1 and 5 train the same ones)
MAKE_ARGS=(--no-print-directory -j3 -f spleen.make TOY=1 NET=Dimwit "EPC=$EPOCHS" CACHE= "CC=$CC")
export PYTHONHASHSEED=0 TERM=dumb
RES=results/spleen-toy

# ------------------------------------------------------------------- 1: cancel
say "make ${MAKE_ARGS[*]}  (cancelled once a training has saved an epoch)"
make "${MAKE_ARGS[@]}" >"$STATE/make1.log" 2>&1 </dev/null &
MAKE_PID=$!
state_file=
for _ in $(seq 3000); do # 10 min at most
    state_file=$(compgen -G "$RES/*_tmp/train_state.pt" | head -n1 || true)
    [[ -n $state_file ]] && break
    kill -0 "$MAKE_PID" 2>/dev/null || break
    sleep 0.2
done
[[ -n $state_file ]] || fail "no training saved an epoch before make ended; see $STATE/make1.log"
cancelled=$(squeue -h -o %i | sort -n | tr '\n' ' ')
[[ -n $cancelled ]] || fail "no SLURM job in the queue while $state_file exists"
say "$state_file exists: scancel $cancelled"
# shellcheck disable=SC2086
scancel $cancelled
rc=0
wait "$MAKE_PID" || rc=$?
MAKE_PID=
((rc != 0)) || fail "make succeeded although its jobs were cancelled; see $STATE/make1.log"
# The interrupted trainings: every <method>_tmp with a saved epoch (usually the one
# seen above; a training that finished before scancel reached it is not among them).
interrupted=()
for state_file in $(compgen -G "$RES/*_tmp/train_state.pt" | sort); do
    tmp_dir=${state_file%/train_state.pt}
    [[ ! -e ${tmp_dir%_tmp} ]] || fail "${tmp_dir%_tmp} exists beside its unfinished $tmp_dir"
    interrupted+=("$tmp_dir")
done
((${#interrupted[@]} > 0)) || fail "no <method>_tmp/train_state.pt left after scancel"
say "make stopped (exit $rc); kept for the resume: ${interrupted[*]} ($((SECONDS - T0)) s)"

# ------------------------------------------------------------------- 2: resume
say "make again: resume and complete"
make "${MAKE_ARGS[@]}" >"$STATE/make2.log" 2>&1 </dev/null ||
    fail "second make failed; see $STATE/make2.log"
RESUMED='resuming (after epoch [1-9]|mid-epoch: epoch [1-9])'
grep -E "$RESUMED|stopped by SIG" "$STATE/make1.log" "$STATE/make2.log" | sed 's/^/  /' || true
for tmp_dir in "${interrupted[@]}"; do
    method=$(basename "${tmp_dir%_tmp}")
    grep -Eq "^\[$method\] $RESUMED" "$STATE/make2.log" ||
        fail "$method did not resume ('[$method] resuming ...' not in $STATE/make2.log)"
    [[ ! -e $tmp_dir ]] || fail "$tmp_dir still exists after the resumed training"
done

# ------------------------------------------------------------------- 3: checks
declare -A seen=()
for method in $METHODS_EXPECTED; do
    sched=$RES/$method/provenance/scheduler.txt
    [[ -f $sched ]] || fail "$sched missing"
    grep -qx "scheduler=slurm" "$sched" || fail "$sched does not say scheduler=slurm"
    grep -qx "SLURM_CLUSTER_NAME=segline-test" "$sched" || fail "$sched: no cluster name"
    job=$(sed -n 's/^SLURM_JOB_ID=//p' "$sched")
    [[ $job =~ ^[0-9]+$ ]] || fail "$sched: no SLURM_JOB_ID"
    [[ -z ${seen[$job]:-} ]] || fail "job $job recorded by both $method and ${seen[$job]}"
    seen[$job]=$method
    [[ " $cancelled " != *" $job "* ]] || fail "$method records job $job, which was cancelled"
    scontrol show job "$job" | grep -q "JobState=COMPLETED" ||
        fail "$method records job $job, which the controller does not know as COMPLETED"
    grep -q "^# run by make with CC=$CC\$" "$RES/$method/provenance/command.txt" ||
        fail "$RES/$method/provenance/command.txt does not record the srun prefix"
    say "$method: SLURM job $job (COMPLETED)"
done
compgen -G "archives/spleen-toy-*.tar.gz" >/dev/null || fail "no archive written"
make -q "${MAKE_ARGS[@]}" || fail "a third make would rebuild something"
say "per-stage srun: ${METHODS_EXPECTED// /, } ran as SLURM jobs; the cancelled training resumed ($((SECONDS - T0)) s)"

# ------------------------------------------------------------------- 5: one allocation
# The same trainings again (their results removed), now make inside one batch job,
# each training a job step; the data stores stay (nothing to redo there).
rm -rf "$RES" archives
mkdir -p "$STATE/tests"
cp "$REPO/tests/slurm/sbatch_make.sh" "$STATE/tests/"
STEP_CC='srun --exact -n1 -c1 .venv/bin/python'
ALLOC_ARGS=(--no-print-directory -j3 -f spleen.make TOY=1 NET=Dimwit "EPC=$EPOCHS" CACHE= "CC=$STEP_CC")
JOB_LOG=$STATE/sbatch-make.log
rm -f "$JOB_LOG"
say "sbatch --signal=B:USR1@30 --requeue sbatch_make.sh make ${ALLOC_ARGS[*]}"
job=$(sbatch --parsable --signal=B:USR1@30 --requeue --open-mode=append -c "$NCPU" \
    -J segline-make -o "$JOB_LOG" --chdir="$WORK" \
    "$STATE/tests/sbatch_make.sh" make "${ALLOC_ARGS[@]}") || fail "sbatch refused the job"
job=${job%%;*}
[[ $job =~ ^[0-9]+$ ]] || fail "sbatch gave no job id ('$job')"

job_field() { # job_field NAME: NAME=value of `scontrol show job $job`
    scontrol show job "$job" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1
}
state_file=
for _ in $(seq 3000); do # 10 min at most
    state_file=$(compgen -G "$RES/*_tmp/train_state.pt" | head -n1 || true)
    [[ -n $state_file ]] && break
    [[ $(job_field JobState) == @(PENDING|RUNNING|CONFIGURING) ]] || break
    sleep 0.2
done
[[ -n $state_file ]] || fail "job $job: no training saved an epoch ($(job_field JobState)); see $JOB_LOG"
say "$state_file exists: scancel -s USR1 -b $job (as --signal=B:USR1@30 would near the time limit)"
scancel -s USR1 -b "$job" || fail "scancel -s USR1 -b $job failed"

final=
for _ in $(seq 1800); do # 15 min at most: the stop, the requeue and the whole rerun
    final=$(job_field JobState)
    restarts=$(job_field Restarts)
    [[ $final == COMPLETED && ${restarts:-0} -ge 1 ]] && break
    [[ $final == @(FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) ]] && break
    sleep 0.5
done
[[ $final == COMPLETED ]] || fail "job $job ended $final, not COMPLETED; see $JOB_LOG"
[[ ${restarts:-0} == 1 ]] || fail "job $job: Restarts=${restarts:-?}, expected 1; see $JOB_LOG"
grep -q "^sbatch_make: USR1: make stopped" "$JOB_LOG" || fail "$JOB_LOG: the batch script saw no USR1"
grep -E "stopped by SIG|$RESUMED|^sbatch_make" "$JOB_LOG" | sed 's/^/  /'
stopped=$(sed -n 's/^\[\([A-Za-z0-9_]*\)\] stopped by SIGUSR1 .*(exit 75)$/\1/p' "$JOB_LOG" | sort -u)
[[ -n $stopped ]] || fail "$JOB_LOG: no training says 'stopped by SIGUSR1 ... (exit 75)'"
for method in $stopped; do
    grep -Eq "^\[$method\] $RESUMED" "$JOB_LOG" ||
        fail "$method stopped but did not resume in the requeued job; see $JOB_LOG"
done
for method in $METHODS_EXPECTED; do
    sched=$RES/$method/provenance/scheduler.txt
    [[ -f $sched ]] || fail "$sched missing after the requeued job"
    grep -qx "SLURM_JOB_ID=$job" "$sched" || fail "$sched does not name job $job"
    grep -qx "SLURM_JOB_NAME=segline-make" "$sched" || fail "$sched does not name the job segline-make"
    grep -Eqx "SLURM_STEP_ID=[0-9]+" "$sched" || fail "$sched names no job step"
    grep -qx "SLURM_RESTART_COUNT=1" "$sched" || fail "$sched: SLURM_RESTART_COUNT is not 1"
    [[ ! -e ${RES}/${method}_tmp ]] || fail "${RES}/${method}_tmp left behind"
    say "$method: job $job step $(sed -n 's/^SLURM_STEP_ID=//p' "$sched"), restart 1"
done
make -q "${ALLOC_ARGS[@]}" || fail "make after the requeued job would rebuild something"
say "PASS: per-stage srun with scancel, and make inside one allocation signalled (USR1), requeued and resumed (${stopped//$'\n'/, }) ($((SECONDS - T0)) s)"
