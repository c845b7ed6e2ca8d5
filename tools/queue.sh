#!/usr/bin/env bash
# The study's background queue, run from a snapshot of the code (a git worktree at a commit), so that
# editing the working tree never changes a run in flight. Records go to this repository's results/cpu/,
# the log to runs/queue.log, checkpoints to $COURSE_RUNS (default ~/.cache/resnest-book/runs, outside the
# work tree, so that a later session on the same machine resumes a run and fine-tunes from finished
# ones; when they are gone, a run restarts and a missing pretraining is trained again).
#   tools/queue.sh [COMMIT] [-- extra arguments of `experiments train`, e.g. --group probe]
# Restart it after an engine change: it resumes every run from its last checkpoint.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
COMMIT="$(git -C "$REPO" rev-parse "${1:-HEAD}")"; shift || true
[ "${1:-}" = "--" ] && shift
SNAP="${QUEUE_DIR:-$REPO/../queue}"
pkill -f "course_lib.experiments train --profile cpu" 2>/dev/null && sleep 2 || true
if [ -d "$SNAP" ]; then git -C "$SNAP" checkout -q --detach "$COMMIT"; else git -C "$REPO" worktree add -q --detach "$SNAP" "$COMMIT"; fi
RUNS="${COURSE_RUNS:-$HOME/.cache/resnest-book/runs}"
mkdir -p "$REPO/runs" "$RUNS"
cd "$SNAP"
COURSE_DATA="${COURSE_DATA:-$(cd "$REPO/../shared/datasets" && pwd)}" COURSE_RUNS="$RUNS" COURSE_PROGRESS=0 \
  nohup "$REPO/.venv/bin/python" -m course_lib.experiments train --profile cpu --results "$REPO/results/cpu" "$@" \
  >> "$REPO/runs/queue.log" 2>&1 &
echo "queue started at $(git -C "$SNAP" rev-parse --short HEAD), pid $!, log $REPO/runs/queue.log"
