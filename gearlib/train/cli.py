"""`gearlib run METHOD ...` and `gearlib runs`: train (or fetch from the store) a method, list stored runs.

Every setting is validated before anything trains; `--json` prints the run's metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

# How often torchrun checks its workers (s): a killed rank fails the launch within about this time.
MONITOR_INTERVAL_S = 1


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run a method (GEARnn-1/2, Small baselines, N-shot, ablations)")
    run.add_argument(
        "method", help="e.g. gearnn2, gearnn1, small-augmix, small-clean, gearnn2-n3 (see --list)"
    )
    run.add_argument("--profile", default="smoke", help="smoke, cpu, quadro or jetson (default smoke)")
    run.add_argument(
        "--arch", default=None, help="vgg19 (default), mobilenet_v1, resnet18; adversarial: resnet10|18|34"
    )
    run.add_argument("--dataset", default="synthetic", help="cifar10, cifar100, tinyimagenet or synthetic")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile or run setting")
    run.add_argument("--data-dir", default=None, help="data directory (default $GEARLIB_DATA, then ./data)")
    run.add_argument("--runs-dir", default=None, help="runs directory (default $GEARLIB_RUNS, then ./runs)")
    run.add_argument("--force", action="store_true", help="retrain even if the run is stored")
    run.add_argument("--json", action="store_true", help="print metrics.json")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--nproc", type=int, default=1, metavar="N",
        help="train with N processes (DDP through torchrun: gloo on the CPU, NCCL on GPUs; GEARnn methods)",
    )  # fmt: skip
    run.set_defaults(func=run_command)
    runs = sub.add_parser("runs", help="list stored runs as a table; export or restore finished ones")
    runs.add_argument("--runs-dir", default=None, help="runs directory (default $GEARLIB_RUNS, then ./runs)")
    runs.set_defaults(func=runs_command)
    action = runs.add_subparsers(dest="action", metavar="ACTION")
    export = action.add_parser(
        "export", help="write finished runs as JSON records (to commit, e.g. results/cpu/runs)"
    )
    export.add_argument("dest", help="folder for the records, e.g. results/cpu/runs")
    export.add_argument(
        "runs", nargs="*", metavar="RUN", help="run names or glob patterns (default: all finished)"
    )
    export.add_argument("--profile", default=None, help="only runs of this profile")
    export.add_argument("--seed", type=int, default=None, help="only runs of this seed")
    export.add_argument(
        "--weights", action="store_true", help="also copy each run's final weights (<run>.pt)"
    )
    export.add_argument("--runs-dir", default=None, dest="runs_dir_", help="runs directory (default ./runs)")
    export.set_defaults(func=export_command)
    restore = action.add_parser("import", help="restore archived runs into the run store as finished")
    restore.add_argument("source", help="a folder of records written by `gearlib runs export`")
    restore.add_argument("--runs-dir", default=None, dest="runs_dir_", help="runs directory (default ./runs)")
    restore.set_defaults(func=import_command)
    total = action.add_parser("total", help="what the runs behind a results folder cost to train, per family")
    total.add_argument("results", help="a results folder, e.g. results/cpu (with its archive under runs/)")
    total.set_defaults(func=total_command)
    methods = sub.add_parser("methods", help="list the methods `gearlib run` knows")
    methods.set_defaults(func=methods_command)


def run_argv(args: argparse.Namespace) -> List[str]:
    """The `run` arguments of `args` without --nproc (what each torchrun worker is started with)."""
    argv = ["run", args.method, "--profile", args.profile, "--dataset", args.dataset]
    argv += ["--arch", args.arch] if args.arch else []
    argv += [a for kv in args.set for a in ("--set", kv)]
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    argv += ["--runs-dir", args.runs_dir] if args.runs_dir else []
    flags = (("--force", args.force), ("--json", args.json), ("--no-progress", args.no_progress))
    return argv + [flag for flag, on in flags if on]


def launch(args: argparse.Namespace) -> int:
    """Re-run this command in `args.nproc` processes under torchrun (one node); its exit status."""
    from gearlib.train.runner import make_config

    make_config(args.method, args.profile, args.arch, args.dataset, overrides=args.set, world_size=args.nproc)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
        f"--monitor_interval={MONITOR_INTERVAL_S}", "-m", "gearlib.cli", *run_argv(args),
    ]  # fmt: skip
    done = subprocess.run(command)
    if done.returncode != 0:
        print(
            f"gearlib run: the {args.nproc}-process launch failed (exit status {done.returncode}); run the "
            "same command again to resume from the last checkpoint",
            file=sys.stderr,
        )
    return done.returncode


def run_command(args: argparse.Namespace) -> int:
    from gearlib import distributed
    from gearlib.train.runner import make_config, run_experiment

    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1 and not distributed.launched():
        return launch(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # > 1 under torchrun
    config = make_config(
        args.method, args.profile, args.arch, args.dataset, overrides=args.set, world_size=world
    )
    distributed.init(config.device)
    main = distributed.is_main()  # only rank 0 prints
    try:
        result = run_experiment(
            config, args.runs_dir, args.data_dir, progress=not args.no_progress, force=args.force
        )
    finally:
        distributed.teardown()
    if not main:
        return 0
    if args.json:
        print(json.dumps(result.metrics, indent=2, sort_keys=True, default=str))
        return 0
    print(summary(result.metrics, cached=result.cached))
    print(f"run directory: {result.run_dir}")
    return 0


def _windows(m: Dict[str, Any]) -> str:
    """' (median of 5 windows, spread 0.12 ms)' when the latency was timed in windows."""
    latency = m.get("latency") or {}
    medians = latency.get("window_medians_ms")
    if not medians:
        return ""
    return f" (median of {len(medians)} windows, spread {latency['spread_ms']:.3f} ms)"


def adversarial_summary(m: dict, cached: bool = False) -> str:
    """One line per knob setting: clean accuracy, accuracy under each attack, the worst case."""
    joules = f"{m['train_joules'] / 1000:.3f} kJ" if m.get("train_joules") is not None else "n/a"
    attack = m["train_attack"]
    lines = [
        f"{m['method']} | {m['arch']} (width {m['width']}) | {m['dataset']} | profile {m['profile']}"
        + (" (from the store)" if cached else ""),
        f"  trained against PGD-{attack['steps']} (eps {255 * attack['eps']:g}/255, step "
        f"{255 * attack['step_size']:.2f}/255) on {m['train_images']:,} images: {m['train_seconds']:.1f} s, "
        f"{joules}, {sum(m['epoch_seconds']) / max(1, len(m['epoch_seconds'])):.1f} s per epoch",
        f"  {m['params']:,} parameters; clean accuracy on {m['test_images']:,} test images, attacks on "
        f"{m['attacked_images']:,} (mean of {m['evaluation']['adv_eval_repeats']} repeats)",
    ]
    for label, row in m["adv_settings"].items():
        attacks = ", ".join(f"{name} {r['mean']:.1f}%" for name, r in row["attacks"].items())
        lines.append(
            f"  {label:<22} clean {row['clean_acc']:5.1f}%  {attacks}  -> robust {row['adv_acc']:.1f}%"
        )
    if m.get("collapsed"):
        lines.append("  WARNING: collapsed: one knob setting gives one class to most test images")
    elif m.get("at_chance"):
        lines.append(f"  WARNING: at chance: {m['clean_acc']:.2f}% clean cannot be told from guessing")
    return "\n".join(lines + _stall_warning(m))


def _size_reference(m: dict) -> str:
    """What a run's size_fraction is a share of."""
    if m.get("family") == "layers":
        return f"the same {m['arch']} (width {m['width']}) with plain convs; {m['layer']} layers"
    return "the full model"


def summary(m: dict, cached: bool = False) -> str:
    """A few lines with what the paper's tables report."""
    if m.get("family") == "adversarial":
        return adversarial_summary(m, cached)
    joules = f"{m['train_joules'] / 1000:.3f} kJ" if m.get("train_joules") is not None else "n/a"
    stages = ", ".join(f"{s['name']} {s['seconds']:.1f} s" for s in m["stages"])
    lines = [
        f"{m['method']} | {m['arch']} | {m['dataset']} | profile {m['profile']}"
        + (" (from the store)" if cached else ""),
        f"  clean acc {m['clean_acc']:.2f}%   robust acc {m['robust_acc']:.2f}% ({m['robust_source']})",
        f"  size {100 * m['size_fraction']:.2f}% of {_size_reference(m)} ({m['params']:,} parameters)",
        f"  training {m['train_seconds']:.1f} s, {joules} (energy: {m['energy_backend_detail']})",
        f"  stages: {stages}",
        f"  inference {m['latency_ms_per_sample']:.3f} ms per sample{_windows(m)}",
    ]
    if m.get("collapsed"):
        lines.append(
            f"  WARNING: collapsed: the network gives one class to {100 * m['top_class_share']:.0f}% of the "
            "test images; its accuracies mean nothing (see the epoch log for the loss)"
        )
    elif m.get("at_chance"):
        lines.append(
            f"  WARNING: at chance: {m['clean_acc']:.2f}% clean cannot be told from guessing on "
            f"{m['test_images']} test images; train longer or on more images"
        )
    return "\n".join(lines + _stall_warning(m))


def _stall_warning(m: dict) -> List[str]:
    """A warning line for a run whose training time is not comparable (stalled epochs), else none."""
    if not m.get("timing_stalls"):
        return []
    from gearlib.measure.timer import stall_note

    return [
        f"  WARNING: {stall_note(m['timing_stalls'])}; retrain it on an otherwise idle machine (--force) "
        "before comparing its time or energy"
    ]


def runs_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from gearlib.train.store import list_runs, runs_dir

    rows = list_runs(args.runs_dir)
    if not rows:
        print(f"no runs stored in {runs_dir(args.runs_dir)}")
        return 0
    frame = pd.DataFrame(rows).drop(columns=["run"])
    frame["size_fraction"] = frame["size_fraction"].map(
        lambda v: f"{100 * v:.2f}%" if isinstance(v, float) and v == v else ""  # v == v: not NaN
    )
    for col in ("clean_acc", "robust_acc"):
        frame[col] = frame[col].map(lambda v: f"{v:.2f}%" if isinstance(v, float) and v == v else "")
    print(frame.to_string(index=False, na_rep=""))
    return 0


def _runs_root(args: argparse.Namespace) -> Any:
    return getattr(args, "runs_dir_", None) or args.runs_dir


def export_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gearlib.train.archive import export_runs
    from gearlib.train.store import runs_dir

    root = _runs_root(args)
    written = export_runs(Path(args.dest), root, args.profile, args.runs, args.weights, args.seed)
    print(f"{len(written)} file(s) written to {args.dest} from {runs_dir(root)} (unchanged records are kept)")
    for path in written:
        print(f"  {path.name}")
    return 0


def import_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gearlib.train.archive import restore_runs
    from gearlib.train.store import runs_dir

    source = Path(args.source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a folder of run records (written by `gearlib runs export`)")
    restored = restore_runs(source, _runs_root(args))
    print(f"{len(restored)} run(s) restored into {runs_dir(_runs_root(args))} from {source}")
    for run_dir in restored:
        print(f"  {run_dir.name}")
    return 0


def total_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from gearlib.train.archive import training_totals

    folder = Path(args.results)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a results folder (e.g. results/cpu)")
    rows = training_totals(folder)
    if not rows:
        print(f"no run with a training time under {folder}")
        return 0
    frame = pd.DataFrame(rows).set_index("family")
    frame.loc["all"] = frame.sum()
    frame["hours"] = (frame["seconds"] / 3600).round(2)
    frame["seconds"] = frame["seconds"].round(0).astype(int)
    print(frame.to_string())
    print(
        "Training wall time only (evaluation and chapter execution not counted); a run on one thread costs "
        "its hours in core-hours. Stalled runs count with the wall time they took."
    )
    return 0


def methods_command(args: argparse.Namespace) -> int:
    from gearlib.profiles import get_profile
    from gearlib.train.methods import METHODS

    width = max(len(n) for n in METHODS)
    profile = get_profile("quadro")
    for name, method in METHODS.items():
        source = method.topology_source(profile)
        needs = f" (its first step takes the widths of the {source} run)" if source else ""
        print(f"{name:<{width}}  {method.description}  [{method.paper}]{needs}")
    return 0
