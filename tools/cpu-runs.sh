#!/usr/bin/env bash
# Train the cpu book's runs ahead of `make book PROFILE=cpu`, in two streams (one per core), resumably.
#
#   OMP_NUM_THREADS=1 nohup bash tools/cpu-runs.sh a > runs/stream-a.log 2>&1 &
#   OMP_NUM_THREADS=1 nohup bash tools/cpu-runs.sh b > runs/stream-b.log 2>&1 &
#
# Streams adv-a and adv-b train the adversarial part (chapters 14-16: PGD-AT's endpoints, OAT, FLOAT,
# FLOATS, SMART), one seed each, on the profile's adv_arch (a `-` in the arch column).
#
# Streams layers-a and layers-b train the GroupNL chapter's five ResNet-18 layer types, and SineFM's raw-input
# reading, over seeds 0 and 1 (chapter 18; the profile's layers_arch, so `-` in the arch column too). The
# chapter itself retrains a diverged layer type at half the lr.
#
# Streams trend-a and trend-b train what chapters 6-8 need beyond that: Table 2's MobileNet-V1 and ResNet-18
# rows and Table 3's K = 40 runs (ResNet-18's on the profile's trend_subset, 4,000 images, as its trend_archs
# says; the others at full scale, where the chapters look for them), and Table 4's other N-shot runs (N = 2
# and 4, seed 0) last, so chapters 6 and 7 can be executed before chapter 8's longer runs finish (the K = 40
# runs took 4,747 s of training in trend-a and 6,696 s in trend-b). A Small baseline trains the GEARnn-2 run it copies
# when that is missing; if the other stream is training that run, it waits for it (one process at a time
# trains a run: the run store's training lock), so order each stream's Small runs after GEARnn-2 runs that
# it trains itself or that the other stream finishes well before, or it idles meanwhile.
#
# Streams claims-a and claims-b train the rest of what the claims page (chapter 13) reads: GEARnn-1 3-shot's
# seeds 1 and 2, and the seed-0 arms of the ablation (Table 7) and of Small(ERA) (Table 9), so that chapter
# can be executed before chapters 6-12.
#
# Streams rest-a and rest-b train what chapters 11, 4 and 9 need, in that order: chapter 11's robust-epoch
# budgets (1, 2 and 4 epochs; the budget a run has anyway is its default run), chapter 4's one-knob-at-a-time
# ERA variants (Table 8; ERA itself is claims-a's Small(ERA); the JSD variants, about twice the cost, are
# split between the streams) and chapter 9's PRIME runs. GEARnn-2 + PRIME came first because chapter 9's
# question (does PRIME train at this scale?) hangs on it: with E_R = 4 it ended under the clean floor, so the
# cpu profile's prime_robust_epochs gives chapter 9's two GEARnn runs 8 robust epochs (the last two lines).
#
# Each line is `method arch seed [setting=value ...]`; a finished run is skipped (the run store is keyed by its training
# settings), an interrupted one resumes from its last finished stage. A Small baseline trains the GEARnn-2
# run whose topology it copies if that is missing, so each stream trains its own GEARnn-2 runs first.
# Then `make book PROFILE=cpu` executes the chapters, finds these runs and writes results/cpu/.
#
# The run store (runs/) is not committed, so every finished run is also archived as a small JSON record in
# $ARCHIVE (default results/cpu/runs; commit it): the stream restores those records first, so a run
# finished in an earlier session is never trained again. Seed-0 runs keep their weights there too (chapter
# 12's loss landscapes need them). From a git worktree, point ARCHIVE at the main checkout's folder.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ARCHIVE="${ARCHIVE:-results/cpu/runs}"

stream_a="
gearnn2 vgg19 0
gearnn2 vgg19 2
small-clean vgg19 0
small-clean vgg19 2
gearnn1 vgg19 2
small-augmix vgg19 0
small-augmix vgg19 2
gearnn2-n3 vgg19 0
gearnn2-n3 vgg19 2
gearnn1-n3 vgg19 1
"
stream_b="
gearnn2 vgg19 1
gearnn1 vgg19 0
small-clean vgg19 1
gearnn1 vgg19 1
small-augmix vgg19 1
gearnn2-n3 vgg19 1
gearnn1-n3 vgg19 0
gearnn1-n3 vgg19 2
"
stream_adv_a="
pgd-at - 0
smart - 0
floats-slim - 0
"
stream_adv_b="
pgd-at-0 - 0
oat - 0
floats-i - 0
floats-c - 0
"
stream_layers_a="
groupnl - 0
vanilla - 0
sinefm - 0
sinefm-raw - 0
monocnn - 1
"
stream_layers_b="
groupnl - 1
vanilla - 1
sinefm - 1
sinefm-raw - 1
ghost - 0
monocnn - 0
ghost - 1
"
stream_trend_a="
gearnn2 mobilenet_v1 0
small-clean mobilenet_v1 0
gearnn1 mobilenet_v1 0
small-clean vgg19 0 new_neurons=40
gearnn2 mobilenet_v1 0 new_neurons=40
small-clean mobilenet_v1 0 new_neurons=40
small-augmix mobilenet_v1 0 new_neurons=40
gearnn2-n2 vgg19 0
gearnn1-n2 vgg19 0
"
stream_trend_b="
gearnn2 resnet18 0 train_subset=4000
small-clean resnet18 0 train_subset=4000
small-augmix resnet18 0 train_subset=4000
gearnn1 resnet18 0 train_subset=4000
gearnn2 vgg19 0 new_neurons=40
small-augmix vgg19 0 new_neurons=40
small-augmix mobilenet_v1 0
gearnn1 vgg19 0 new_neurons=40
gearnn1 mobilenet_v1 0 new_neurons=40
gearnn2-n4 vgg19 0
gearnn1-n4 vgg19 0
"
stream_claims_a="
gearnn1-n3 vgg19 1
phase2-era vgg19 0
phase1-vanilla vgg19 0
small-era vgg19 0
"
stream_claims_b="
gearnn1-n3 vgg19 2
phase2-augmix vgg19 0
vanilla-augmix vgg19 0
"
stream_rest_a="
gearnn2 vgg19 0 epochs_er=1
gearnn2 vgg19 0 epochs_er=2
small-augmix vgg19 0 epochs_small=4
small-augmix vgg19 0 epochs_small=2
small-augmix vgg19 0 epochs_small=1
gearnn2-prime vgg19 0
small-era vgg19 0 era_width=1 era_depth=1 era_views=3
small-era vgg19 0 era_width=1 era_depth=3 era_views=2
small-era vgg19 0 era_width=3 era_depth=1 era_views=0
small-prime vgg19 0
gearnn2-prime vgg19 0 epochs_er=8
"
stream_rest_b="
gearnn1 vgg19 0 epochs_e2=1
gearnn1 vgg19 0 epochs_e2=2
small-era vgg19 0 era_width=1 era_depth=3 era_views=3
small-era vgg19 0 era_width=1 era_depth=1 era_views=0
small-era vgg19 0 era_width=1 era_depth=3 era_views=0
gearnn1-prime vgg19 0
gearnn1-prime vgg19 0 epochs_e2=8
"
case "${1:-}" in
    a) queue="$stream_a" ;;
    b) queue="$stream_b" ;;
    adv-a) queue="$stream_adv_a" ;;
    adv-b) queue="$stream_adv_b" ;;
    layers-a) queue="$stream_layers_a" ;;
    layers-b) queue="$stream_layers_b" ;;
    trend-a) queue="$stream_trend_a" ;;
    trend-b) queue="$stream_trend_b" ;;
    claims-a) queue="$stream_claims_a" ;;
    claims-b) queue="$stream_claims_b" ;;
    rest-a) queue="$stream_rest_a" ;;
    rest-b) queue="$stream_rest_b" ;;
    *) echo "usage: $0 a|b|adv-a|adv-b|layers-a|layers-b|trend-a|trend-b|claims-a|claims-b|rest-a|rest-b   (two streams per part, one per core)" >&2; exit 2 ;;
esac

mkdir -p "$ARCHIVE"
.venv/bin/gearlib runs import "$ARCHIVE"
echo "$queue" | while read -r method arch seed settings; do
    [ -n "$method" ] || continue
    echo "$(date -u +%FT%TZ) start $method $arch seed $seed $settings"
    arch_flag=()
    [ "$arch" = "-" ] || arch_flag=(--arch "$arch")
    set_flags=(--set "seed=$seed")
    for setting in $settings; do set_flags+=(--set "$setting"); done
    if .venv/bin/gearlib run "$method" --profile cpu "${arch_flag[@]}" --dataset cifar10 "${set_flags[@]}" --no-progress; then
        echo "$(date -u +%FT%TZ) done $method $arch seed $seed $settings"
        .venv/bin/gearlib runs export "$ARCHIVE" --profile cpu
        .venv/bin/gearlib runs export "$ARCHIVE" --profile cpu --seed 0 --weights
    else  # e.g. a diverged run (sinefm-raw): stored as such; the chapter shows it, the stream goes on
        echo "$(date -u +%FT%TZ) failed $method $arch seed $seed $settings"
    fi
done
