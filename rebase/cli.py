"""The `rebase` command line: one entry point, subcommands.

    rebase run CONFIG [--set k=v ...] [--out DIR]      one config into a fresh directory
    rebase sweep CONFIG [--set k=v ...] [--out DIR] [--ray [ADDRESS]]   the grid, resumable
    rebase report DIR [--flops-view paper|policy|total] curves, Pareto, fits, plots, index.html
    rebase replay DIR [--aggregator A] [--reduction R]  re-aggregate saved trees, no generation
    rebase demo [--out DIR]                             the embedded default (rebase/demo/demo.yaml)
    rebase ls [strategies|aggregators|prms|backends|datasets]   registered components, plugins included
    rebase train-demo [--only arith-s,arith-prm] [--out DIR] ...   retrain the demo models (from a clone)

Exit codes: 0 success, 2 bad input (one line naming the culprit, nothing written), 1 a failure
during the run (records already computed are kept). The last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from rebase.demo import DEMO_CONFIG  # shipped inside the package
from rebase.errors import BadInput, RunFailure, SearchBug
from rebase.flops import VIEWS

KINDS = ("strategies", "aggregators", "prms", "backends", "datasets")


def _env_defaults() -> None:
    # one torch thread unless the user says otherwise: torch on few shared cores slows down sharply
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rebase", description="Inference-time compute search and scaling laws.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "sweep"):
        p = sub.add_parser(name, help=f"{name} a config")
        p.add_argument("config")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--out", default=None)
        p.add_argument("--no-progress", action="store_true")
        if name == "sweep":
            p.add_argument(
                "--ray",
                nargs="?",
                const="local",
                default=None,
                metavar="ADDRESS",
                help="shard problems over Ray actors (a local cluster when no address)",
            )
    p = sub.add_parser("report", help="write DIR/report from DIR's records")
    p.add_argument("dir")
    p.add_argument("--flops-view", choices=VIEWS, default=None)
    p = sub.add_parser("replay", help="re-aggregate saved trees with any aggregator/reduction")
    p.add_argument("dir")
    p.add_argument("--aggregator", action="append", default=None)
    p.add_argument("--reduction", action="append", default=None)
    p = sub.add_parser("demo", help="run the embedded default sweep and its report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="spread the demo over Ray actors (a local cluster uses every core)",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("ls", help="list registered components (built-in and plugins) with their one-line docs")
    p.add_argument("kind", nargs="?", default=None, choices=KINDS)
    # listed for `rebase -h`; main() hands its arguments to scripts/train_demo/train.py's own parser
    sub.add_parser("train-demo", help="retrain the demo models deterministically (from a clone)", add_help=False)
    return ap


def _train_demo(argv: list[str]) -> int:
    """`rebase train-demo ARGS` = `python -m scripts.train_demo ARGS` in the checkout this package
    is installed from: the training code ships with the repository, not with the package. It runs
    as its own process (the CLI does not import developer tools; relative paths stay the caller's)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / "scripts" / "train_demo" / "train.py").is_file():
        print(
            f"error: rebase train-demo: no scripts/train_demo beside the installed package ({root}); "
            "run it from a clone of the repository (`make install` installs that clone editable)",
            file=sys.stderr,
        )
        return 2
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    try:
        return subprocess.call(
            [sys.executable, "-m", "scripts.train_demo", *argv], env=dict(os.environ, PYTHONPATH=path)
        )
    except KeyboardInterrupt:
        return 130


def _ls(kind: Optional[str]) -> dict:
    from rebase.registry import ALL

    out = {}
    for reg in ALL:
        if kind in (None, reg.plural):
            out[reg.plural] = reg.describe()
            print(f"{reg.plural}:")
            width = max(map(len, out[reg.plural]), default=0)
            for name, doc in out[reg.plural].items():
                print(f"  {name.ljust(width)}  {doc}".rstrip())
    return out


def _default_out(config: str, cfg: Any, fresh: bool) -> Path:
    if cfg.output:
        return Path(cfg.output)
    stem = Path(config).stem
    return Path("runs") / (f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}" if fresh else stem)


def _sweep(
    config: str, overrides: list[str], out: Optional[str], fresh: bool, progress: bool, ray: Optional[str] = None
) -> dict:
    from rebase.config import load_config
    from eval.runner import execute

    cfg = load_config(config, overrides)
    out_dir = Path(out) if out else _default_out(config, cfg, fresh)
    return execute(
        cfg,
        out_dir,
        fresh=fresh,
        progress=progress,
        use_ray=ray is not None,
        ray_address=None if ray in (None, "local") else ray,
    )


def dispatch(args: argparse.Namespace) -> tuple[dict, int]:
    if args.cmd in ("run", "sweep"):
        s = _sweep(
            args.config, args.overrides, args.out, args.cmd == "run", not args.no_progress, getattr(args, "ray", None)
        )
        return s, 1 if s["failed"] else 0
    if args.cmd == "report":
        from eval.report import write_report

        return write_report(Path(args.dir), args.flops_view), 0
    if args.cmd == "replay":
        from eval.replay import replay

        return replay(Path(args.dir), args.aggregator, args.reduction), 0
    if args.cmd == "demo":
        from eval.report import write_report

        s = _sweep(str(DEMO_CONFIG), args.overrides, args.out, False, not args.no_progress, args.ray)
        r = write_report(Path(args.out), None)
        s["report"] = r.get("files", {}).get("index.html", str(Path(args.out) / "report" / "index.html"))
        print(f"report: {s['report']}", file=sys.stderr)
        return s, 1 if s["failed"] else 0
    if args.cmd == "ls":
        return _ls(args.kind), 0
    raise BadInput(f"unknown command {args.cmd}")


def io_message(e: OSError) -> str:
    where = f" ({e.filename})" if getattr(e, "filename", None) else ""
    return (
        f"I/O failure: {e.strerror or type(e).__name__}{where}; the lines already written are kept (a "
        "sweep resumes from them)"
    )


def main(argv: Optional[list[str]] = None) -> int:
    _env_defaults()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train-demo"]:  # its own parser, exit codes and summary line (--help included)
        return _train_demo(argv[1:])
    args = _parser().parse_args(argv)
    if getattr(args, "no_progress", False) or not sys.stderr.isatty():
        # transformers' "Loading weights" bars would break the one-line error contract on stderr
        # (read once when transformers is imported, which happens after this point)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:  # imported already (an embedding program, a test session)
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
    try:
        summary, code = dispatch(args)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except SearchBug as e:  # a programming error: one line here, the traceback in DIR/errors.log
        print(f"error: bug: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a real I/O failure (a full disk, a vanished mount): what was written stays
        print(f"error: {io_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; records written so far are kept", file=sys.stderr)
        return 130
    print(json.dumps(summary, sort_keys=True, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
