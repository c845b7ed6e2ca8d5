#!/usr/bin/env bash
# The study's background queue, run from a snapshot of the code (a git worktree at a commit), so that
# editing the working tree never changes a run in flight. Records go to this repository's results/cpu/,
# checkpoints to its runs/ (git-ignored), the log to runs/queue.log.
#   tools/queue.sh [COMMIT] [-- extra arguments of `experiments train`, e.g. --group probe]
# Restart it after an engine change: it resumes every run from its last checkpoint.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
COMMIT="$(git -C "$REPO" rev-parse "${1:-HEAD}")"; shift || true
[ "${1:-}" = "--" ] && shift
SNAP="${QUEUE_DIR:-$REPO/../queue}"
pkill -f "course_lib.experiments train --profile cpu" 2>/dev/null && sleep 2 || true
if [ -d "$SNAP" ]; then git -C "$SNAP" checkout -q --detach "$COMMIT"; else git -C "$REPO" worktree add -q --detach "$SNAP" "$COMMIT"; fi
mkdir -p "$REPO/runs"
cd "$SNAP"
COURSE_DATA="${COURSE_DATA:-$(cd "$REPO/../shared/datasets" && pwd)}" COURSE_RUNS="$REPO/runs" COURSE_PROGRESS=0 \
  nohup "$REPO/.venv/bin/python" -m course_lib.experiments train --profile cpu --results "$REPO/results/cpu" "$@" \
  >> "$REPO/runs/queue.log" 2>&1 &
echo "queue started at $(git -C "$SNAP" rev-parse --short HEAD), pid $!, log $REPO/runs/queue.log"
