#!/usr/bin/env bash
# Train the cpu book's runs ahead of `make book PROFILE=cpu`, in two streams (one per core), resumably.
#
#   OMP_NUM_THREADS=1 nohup bash tools/cpu-runs.sh a > runs/stream-a.log 2>&1 &
#   OMP_NUM_THREADS=1 nohup bash tools/cpu-runs.sh b > runs/stream-b.log 2>&1 &
#
# Each line is `method arch seed`; a finished run is skipped (the run store is keyed by its training
# settings), an interrupted one resumes from its last finished stage. A Small baseline trains the GEARnn-2
# run whose topology it copies if that is missing, so each stream trains its own GEARnn-2 runs first.
# Then `make book PROFILE=cpu` executes the chapters, finds these runs and writes results/cpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

stream_a="
gearnn2 vgg19 0
small-augmix vgg19 0
gearnn2 vgg19 2
small-augmix vgg19 2
small-clean vgg19 2
gearnn1 vgg19 2
gearnn2-n3 vgg19 0
gearnn2-n3 vgg19 2
gearnn1-n3 vgg19 1
"
stream_b="
gearnn1 vgg19 0
gearnn2 vgg19 1
small-clean vgg19 0
small-clean vgg19 1
small-augmix vgg19 1
gearnn1 vgg19 1
gearnn2-n3 vgg19 1
gearnn1-n3 vgg19 0
gearnn1-n3 vgg19 2
"
case "${1:-}" in
    a) queue="$stream_a" ;;
    b) queue="$stream_b" ;;
    *) echo "usage: $0 a|b   (two streams, one per core)" >&2; exit 2 ;;
esac

echo "$queue" | while read -r method arch seed; do
    [ -n "$method" ] || continue
    echo "$(date -u +%FT%TZ) start $method $arch seed $seed"
    .venv/bin/gearlib run "$method" --profile cpu --arch "$arch" --dataset cifar10 --set "seed=$seed" --no-progress
    echo "$(date -u +%FT%TZ) done $method $arch seed $seed"
done
