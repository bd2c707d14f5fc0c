"""`gearlib book`: convert the Jupytext notebooks, execute them with papermill per profile, render the book.

Executed notebooks land in book/executed/<profile>/ and are copied to book/chapters/ (what _toc.yml lists);
a chapter is re-executed only when its source, parameters or gearlib itself changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT_MARKERS = ("_toc.yml", "_config.yml", "notebooks")
KERNEL = "gearlib"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("book", help="execute the notebooks with papermill and build the book")
    parser.add_argument(
        "--profile",
        default=None,
        help="smoke, cpu, quadro or jetson (default: replay the committed cpu results once every chapter's "
        "are there, else build smoke live)",
    )
    parser.add_argument("--only", action="append", default=[], help="execute only this chapter (NN or slug)")
    parser.add_argument("-p", "--param", action="append", default=[], help="notebook parameter key=value")
    parser.add_argument("--replay", action="store_true", help="render from results/<profile>/, train nothing")
    parser.add_argument("--force", action="store_true", help="re-execute even when nothing changed")
    parser.add_argument("--no-build", action="store_true", help="execute notebooks only, skip jupyter-book")
    parser.add_argument("--root", default=None, help="repository root (default: found from here)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    parser.set_defaults(func=run)


def find_root(start: Optional[Path] = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for candidate in [here, *here.parents]:
        if all((candidate / m).exists() for m in ROOT_MARKERS):
            return candidate
    raise ValueError(f"no book repository (with {', '.join(ROOT_MARKERS)}) at or above {here}; pass --root")


def chapters(root: Path) -> List[Path]:
    """The notebook sources, in chapter order (notebooks/NN_slug.py)."""
    return sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.py"))


def select(sources: Sequence[Path], only: Sequence[str]) -> List[Path]:
    if not only:
        return list(sources)
    picked = [
        p for p in sources if any(p.stem == o or p.stem.startswith(f"{o}_") or p.stem[3:] == o for o in only)
    ]
    if len(picked) < len(only):
        names = ", ".join(p.stem for p in sources)
        raise ValueError(f"--only {list(only)} does not name a chapter; chapters: {names}")
    return picked


def parse_params(items: Sequence[str]) -> Dict[str, Any]:
    """'key=value' pairs; values parsed as YAML scalars (3 -> int, true -> bool, text -> str)."""
    import yaml

    params: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"parameter {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        params[key.strip()] = yaml.safe_load(value)
    return params


def notebook_parameters(ipynb: Path) -> Dict[str, Any]:
    """Names declared in the notebook's `parameters` cell (papermill's own inspection)."""
    import papermill

    return dict(papermill.inspect_notebook(str(ipynb)))


# Chapter parameters a profile's book sets unless --param does: CI's smoke book runs two seeds where the
# chapters' default is three (two are enough to exercise the spreads and error bars).
PROFILE_PARAMETERS: Dict[str, Dict[str, Any]] = {"smoke": {"seeds": [0, 1]}}


def notebook_parameters_of(source: Path) -> List[str]:
    """The parameter names a Jupytext chapter declares: the assignments in its `parameters` cell."""
    names: List[str] = []
    inside = False
    for line in source.read_text().splitlines():
        if line.startswith("# %%"):
            if inside:
                break
            inside = '"parameters"' in line
        elif inside:
            match = re.match(r"([A-Za-z_]\w*)\s*(?::[^=]*)?=", line)
            if match:
                names.append(match.group(1))
    return names


def check_parameters(name: str, declared: Dict[str, Any], given: Dict[str, Any]) -> None:
    """Refuse parameters the notebook does not declare (papermill would inject them silently)."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter(s) {unknown}; this notebook declares {', '.join(sorted(declared))}"
        )


def fingerprint(source: Path, params: Dict[str, Any], root: Path) -> str:
    """Hash of what a chapter's output depends on: its source, parameters, gearlib and stored results."""
    digest = hashlib.sha256(source.read_bytes())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    tracked = sorted((root / "gearlib").rglob("*.py"))
    if params.get("replay"):  # replayed chapters depend on the stored results they read
        tracked += sorted((root / "results" / str(params.get("profile"))).rglob("*.json"))
    for path in tracked:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def to_ipynb(source: Path, target: Path) -> None:
    import jupytext

    notebook = jupytext.read(str(source))
    notebook.metadata["kernelspec"] = {
        "name": KERNEL,
        "display_name": "gearlib (Python 3)",
        "language": "python",
    }
    jupytext.write(notebook, str(target), fmt="ipynb")


def execute_chapter(
    source: Path, out: Path, params: Dict[str, Any], root: Path, timeout: Optional[int], force: bool
) -> str:
    """Execute one chapter into `out`; returns 'cached' or 'executed'; raises ChapterFailed."""
    import nbformat
    import papermill

    stamp = fingerprint(source, params, root)
    if out.is_file() and not force:
        meta = nbformat.read(str(out), as_version=4).metadata.get("gearlib", {})
        if meta.get("fingerprint") == stamp:
            return "cached"
    with tempfile.TemporaryDirectory() as tmp:
        src_nb = Path(tmp) / f"{source.stem}.ipynb"
        to_ipynb(source, src_nb)
        check_parameters(source.stem, notebook_parameters(src_nb), params)
        partial = Path(tmp) / f"{source.stem}.out.ipynb"
        try:
            papermill.execute_notebook(
                str(src_nb),
                str(partial),
                parameters=params,
                kernel_name=KERNEL,
                cwd=str(root),
                progress_bar=False,
                log_output=bool(os.environ.get("CI")),
                start_timeout=120,
                execution_timeout=timeout,
            )
        except papermill.PapermillExecutionError as err:
            failed = root / "book" / "executed" / "_failed" / f"{source.stem}.ipynb"
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(partial, failed)
            raise ChapterFailed(
                f"{source.name}: cell {err.cell_index} (execution count {err.exec_count}) raised "
                f"{err.ename}: {err.evalue}\n  the failed notebook is in {failed}"
            ) from None
        notebook = nbformat.read(str(partial), as_version=4)
        for cell in notebook.cells:  # the banner states the parameters; hide papermill's injected cell
            tags = cell.metadata.setdefault("tags", [])
            if "injected-parameters" in tags and "remove-cell" not in tags:
                tags.append("remove-cell")
        notebook.metadata["gearlib"] = {"fingerprint": stamp, "profile": params.get("profile")}
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, str(out))
    return "executed"


class ChapterFailed(RuntimeError):
    """A notebook raised during execution; the message names the notebook and the cell."""


def build_html(root: Path) -> None:
    build = root / "_build"
    if build.exists():
        shutil.rmtree(build)  # stale pages survive rebuilds otherwise
    command = [sys.executable, "-m", "jupyter_book", "build", str(root), "-W", "-n", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        command = [str(jb), "build", str(root), "-W", "-n", "--keep-going"]
    result = subprocess.run(command, cwd=str(root))
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode}); see the warnings above")


MANIFEST = "chapters.json"  # results/<profile>/chapters.json: the chapters whose results are complete there


def completed_chapters(root: Path, profile: str) -> Dict[str, str]:
    """{chapter: when it was last executed live} of the chapters whose results results/<profile>/ holds."""
    path = root / "results" / profile / MANIFEST
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def record_completed(root: Path, profile: str, chapter: str) -> None:
    """Note in results/<profile>/chapters.json that `chapter` wrote all its results there (live run)."""
    done = completed_chapters(root, profile)
    done[chapter] = time.strftime("%Y-%m-%dT%H:%M:%S")
    path = root / "results" / profile / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(done.items())), indent=1) + "\n")


def default_build(root: Path) -> Tuple[str, bool, str]:
    """(profile, replay, why) of a plain `make book`: the committed cpu results (real CIFAR-10 numbers, no
    data or training needed) once every chapter has written its results there, else the smoke profile
    executed live (the message names the chapters whose cpu results are still missing)."""
    names = [source.stem for source in chapters(root)]
    done = completed_chapters(root, "cpu")
    missing = [name for name in names if name not in done]
    if names and not missing:
        return "cpu", True, f"replaying the committed cpu results in {root / 'results' / 'cpu'}"
    have = f"results/cpu/ holds the results of {len(names) - len(missing)} of {len(names)} chapters"
    return "smoke", False, f"{have} (missing: {', '.join(missing)}), so the smoke profile is executed live"


def restore_archived_runs(root: Path, profile: str) -> None:
    """Before live chapters: bring the runs archived under results/<profile>/runs/ (committed by earlier
    sessions, `gearlib runs export`) into the run store the chapters' kernels use, so they are not retrained."""
    from gearlib.train.archive import restore_runs
    from gearlib.train.store import runs_dir

    source = root / "results" / profile / "runs"
    store = runs_dir()
    store = store if store.is_absolute() else root / store  # the kernels run with the book's root as cwd
    restored = restore_runs(source, store)
    if restored:
        print(f"restored {len(restored)} archived run(s) from {source} into {store}", flush=True)


def run(args: argparse.Namespace) -> int:
    from gearlib.profiles import get_profile

    root = Path(args.root).resolve() if args.root else find_root()
    if args.profile is None:
        args.profile, replay, why = default_build(root)
        args.replay = args.replay or replay
        print(f"no --profile given: {why}", flush=True)
    get_profile(args.profile)  # refuse unknown profiles before anything runs
    extra = parse_params(args.param)
    sources = select(chapters(root), args.only)
    executed_dir = root / "book" / "executed" / args.profile
    chapter_dir = root / "book" / "chapters"
    if not args.replay:
        restore_archived_runs(root, args.profile)
    failures: List[str] = []
    for source in sources:
        params = {"profile": args.profile, **({"replay": True} if args.replay else {}), **extra}
        declared = notebook_parameters_of(source)
        defaults = PROFILE_PARAMETERS.get(args.profile, {})
        params = {**{k: v for k, v in defaults.items() if k in declared}, **params}
        out = executed_dir / f"{source.stem}.ipynb"
        print(f"[{args.profile}] {source.stem} ...", flush=True)
        try:
            state = execute_chapter(source, out, params, root, args.timeout, args.force)
        except (ChapterFailed, ValueError) as err:
            failures.append(str(err))
            print(f"  FAILED: {err}", file=sys.stderr, flush=True)
            continue
        print(f"  {state}", flush=True)
        if not params.get("replay") and args.profile != "smoke":
            record_completed(root, args.profile, source.stem)
    if failures:
        raise ValueError(f"{len(failures)} chapter(s) failed:\n" + "\n".join(failures))
    chapter_dir.mkdir(parents=True, exist_ok=True)
    for source in chapters(root):
        executed = executed_dir / f"{source.stem}.ipynb"
        if executed.is_file():
            shutil.copy(executed, chapter_dir / executed.name)
    if not args.no_build:
        build_html(root)
        print(f"book built: {root / '_build' / 'html' / 'index.html'}")
    return 0
