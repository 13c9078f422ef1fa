"""The ``embsearch`` command line: parse, call the library, print one-line errors.

One small class per sub-command (``add_arguments`` + ``run``), listed in ``COMMANDS``.
Every user-fixable problem is an :class:`~embsearch.errors.EmbsearchError`, printed as
``embsearch: error: ...`` with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from embsearch._text import printable
from embsearch.errors import ConfigError, EmbsearchError

EPILOG_SEARCH = """examples:
  embsearch search --data synthetic --budget 25% --controller mde --out runs/mde
  embsearch search --data prepared/criteo --budget 4MiB --budget 10% --controller uniform --out runs/u
  embsearch search --config search.toml --out runs/x      (keys: the README's search.toml)
  embsearch search --controller mypkg.mymod:MyController --param alpha=0.5 ...
budgets: bytes (250000), sizes (4MiB, 1.5MB) or a % of the full dim-WIDTH table (10%).
several --budget values give one plan each, in RUN_DIR/budget-<label>/."""


STORAGE_HELP = "Optuna storage URL for the trials (default: RUN_DIR/trials.journal)"


def parse_param(text: str, flag: str = "--param") -> tuple[str, Any]:
    """``--param key=value``: the value as JSON (``true``, ``0.5``, ``[1, 2]``), else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        example = "dropout=0.2" if flag == "--backbone-param" else "alpha=0.3"
        raise ConfigError(f"{flag} {text!r}: write key=value, e.g. {flag} {example}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"--candidates {text!r}: give comma-separated integers, e.g. 2,4,8,16"
        ) from None


def _warn(message: str) -> None:
    """A warning the user should see: one line on stderr (the run goes on)."""
    print(f"embsearch: warning: {message}", file=sys.stderr)


class Command(ABC):
    name = ""
    help = ""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        return None

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit status."""


class Prepare(Command):
    name = "prepare"
    help = "read a raw CTR file into id arrays (.npy) + schema.json"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--format",
            required=True,
            choices=["criteo", "avazu", "csv", "libfm", "parquet", "synthetic"],
        )
        p.add_argument(
            "--input",
            nargs="*",
            default=[],
            help="one file (split randomly) or three: train val test (.gz ok)",
        )
        p.add_argument("--out", required=True, help="output directory (must not exist)")
        p.add_argument("--label", help="label column (csv/parquet)")
        p.add_argument(
            "--categorical", type=lambda s: s.split(","), help="comma-separated categorical columns"
        )
        p.add_argument(
            "--numeric",
            type=lambda s: s.split(","),
            help="comma-separated numeric columns (bucketised)",
        )
        p.add_argument(
            "--drop",
            type=lambda s: s.split(","),
            help="comma-separated columns to drop (e.g. leaky ones: prepare warns of a field that alone ranks the labels almost perfectly)",
        )
        p.add_argument(
            "--min-count", type=int, default=1, help="values seen fewer times in train map to OOV"
        )
        p.add_argument(
            "--split", default="0.8,0.1,0.1", help="train,val,test fractions for a single input"
        )
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--rows", type=int, help="at most this many rows (synthetic: how many)")
        p.add_argument(
            "--batch-rows",
            type=int,
            default=None,
            help="rows read and encoded at a time (memory: the vocabularies plus one batch; "
            "the output does not depend on it; default 262144)",
        )
        p.add_argument("--drop-constant", action="store_true", help="drop one-valued fields")
        p.add_argument(
            "--order-by",
            metavar="COLUMN",
            help="a column holding each row's time: split chronologically (one input; train "
            "earliest, test latest), each split written in time order and the order recorded, "
            "for `search --stream`; the column may also be --drop'ped as a feature",
        )

    def run(self, args: argparse.Namespace) -> int:
        from embsearch.data.prepare import prepare

        try:
            split = tuple(float(v) for v in args.split.split(","))
        except ValueError:
            raise ConfigError(
                f"--split {args.split!r}: give three fractions, e.g. 0.8,0.1,0.1"
            ) from None
        if len(split) != 3:
            raise ConfigError(f"--split {args.split!r}: give three fractions, e.g. 0.8,0.1,0.1")
        ds = prepare(
            args.format,
            args.input,
            args.out,
            label=args.label,
            categorical=args.categorical,
            numeric=args.numeric,
            drop=args.drop,
            min_count=args.min_count,
            split=split,
            seed=args.seed,  # type: ignore[arg-type]
            drop_constant=args.drop_constant,
            rows=args.rows,
            warn=_warn,
            **({} if args.batch_rows is None else {"batch_rows": args.batch_rows}),
            order_by=args.order_by,
        )
        sizes = ", ".join(f"{s} {len(ds.split(s))}" for s in ("train", "val", "test"))
        print(f"wrote {args.out}: {ds.schema.num_fields} fields, rows: {sizes}")
        return 0


class Data(Command):
    name = "data"
    help = "prepare datasets"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="data_command", required=True, metavar="{prepare}")
        cmd = Prepare()
        sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(sp)
        sp.set_defaults(handler=cmd)

    def run(self, args: argparse.Namespace) -> int:
        """Reached only without a sub-command (argparse requires one)."""
        raise ConfigError("choose a data sub-command: `embsearch data prepare --help`")


class Search(Command):
    name = "search"
    help = "search a plan (dims per field or group) under one or more byte budgets"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        from embsearch.run_config import OPTIONS

        p.epilog = EPILOG_SEARCH
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        for opt in OPTIONS:  # declared once, with RunConfig's checks (run_config.OPTIONS)
            if not opt.help:
                continue
            kwargs: dict[str, Any] = {"help": opt.help, "dest": opt.name}
            if opt.kind in ("list", "dict") and opt.name != "candidates":
                kwargs.update(action="append", default=[] if opt.kind == "dict" else None)
            elif opt.kind in ("int", "num"):
                kwargs["type"] = int if opt.kind == "int" else float
            elif opt.kind == "bool":  # a switch: given, True; absent, the config's or default
                kwargs.update(action="store_const", const=True, default=None)
            if opt.choices:
                kwargs["choices"] = list(opt.choices)
            if opt.metavar:
                kwargs["metavar"] = opt.metavar
            p.add_argument(opt.flag, **kwargs)
        p.add_argument("--config", help="JSON or TOML file of these options; flags override it")
        p.add_argument("--out", help="run directory to create")
        p.add_argument("--storage", metavar="URL", help=STORAGE_HELP)
        p.add_argument(
            "--resume", metavar="RUN_DIR", help="continue a killed black-box or evolutionary search"
        )
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    def run(self, args: argparse.Namespace) -> int:
        from embsearch.constraints import merge_flags
        from embsearch.report import plan_lines
        from embsearch.run_config import OPTIONS, RunConfig, read_config_file
        from embsearch.run_state import resumed_config
        from embsearch.search import run_search

        raw: dict[str, Any] = read_config_file(args.config) if args.config else {}
        tables = {"controller_params", "backbone_params", "constraints"}  # merged below
        given = {
            o.name: getattr(args, o.name)
            for o in OPTIONS
            if o.help and o.name not in tables and getattr(args, o.name) is not None
        }
        if "candidates" in given:
            given["candidates"] = _int_list(given["candidates"])
        raw.update(given)
        named = set(given)
        for name in tables:
            pairs = getattr(args, name)
            if pairs and name == "constraints":  # FIELD:KEY=VALUE flags over the file's table
                raw[name] = merge_flags(raw.get(name), pairs)
            elif pairs and isinstance(raw.get(name, {}), dict):  # (a non-table one is refused)
                flag = next(o.flag for o in OPTIONS if o.name == name)
                raw[name] = {**raw.get(name, {}), **dict(parse_param(t, flag) for t in pairs)}
            if pairs:
                named.add(name)
        if (args.out is None) == (args.resume is None):
            raise ConfigError("give --out RUN_DIR for a new search, or --resume RUN_DIR")
        if args.resume is not None:
            cfg = resumed_config(args.resume, raw, args.storage)
        else:
            cfg = RunConfig.from_mapping(raw, args.config or "options", flags=named)
        kw = {"storage": args.storage, "resume": args.resume is not None, "warn": _warn}
        for r in run_search(cfg, args.out or args.resume, progress=not args.quiet, **kw):
            for line in plan_lines(r.plan, r.run_dir):
                print(line)
        return 0


class Retrain(Command):
    name = "retrain"
    help = "train a found plan from scratch and report test AUC/logloss (writes retrain.json)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir")
        p.add_argument("--with-baseline", action="store_true", help="also train the full table")
        p.add_argument("--epochs", type=int, help="override the search's epochs")
        p.add_argument(
            "--eval-every",
            type=int,
            metavar="STEPS",
            help="override the search's --eval-every (0: validate once an epoch)",
        )
        p.add_argument("--device", choices=["auto", "cpu", "cuda"])
        p.add_argument("--threads", type=int, help="override the search's --threads")
        p.add_argument("--quiet", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from embsearch.retrain import run_retrain

        r = run_retrain(
            args.run_dir,
            with_baseline=args.with_baseline,
            epochs=args.epochs,
            device=args.device,
            eval_every=args.eval_every,
            threads=args.threads,
            progress=not args.quiet,
            warn=_warn,
        )
        line = f"test AUC {r['test_auc']:.4f}  logloss {r['test_logloss']:.4f}  table {r['table_bytes']} B"
        if "baseline_test_auc" in r:
            line += (
                f"  | full table: AUC {r['baseline_test_auc']:.4f}  {r['baseline_table_bytes']} B"
            )
        print(line)
        if r.get("served_test_auc") is not None:
            print(
                f"served from the supernet, as searched: test AUC {r['served_test_auc']:.4f}  "
                f"logloss {r['served_test_logloss']:.4f}"
            )
        if r.get("saved_weights"):
            print(
                f"the run had no trained weights: saved these in {args.run_dir}; "
                f"`embsearch export {args.run_dir} --out DIR` exports them"
            )
        return 0


class Export(Command):
    name = "export"
    help = "write the mixed-dimension table (plan.json + weights.safetensors) for plain torch"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir")
        p.add_argument("--out", required=True)
        p.add_argument(
            "--format",
            default="safetensors",
            choices=["safetensors", "torchrec"],
            help="torchrec also writes torchrec.json (EmbeddingBagConfig fields)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from embsearch.export import export_run

        print(f"exported to {export_run(args.run_dir, args.out, args.format, warn=_warn)}")
        return 0


class Controllers(Command):
    name = "controllers"
    help = "list every registered controller with its family and paper, or describe one"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "name",
            nargs="?",
            help="one controller (registered name or package.module:Class): its parameters, "
            "spaces and documented steps",
        )
        p.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from embsearch.controllers.registry import describe, describe_all

        if args.name:
            info = describe(args.name)
            if args.json:
                print(json.dumps(info, indent=2))
                return 0
            print(f"{info['name']} ({info['family']}): {info['paper']}")
            print(f"space: {info['space']} (supports {', '.join(info['supported_spaces'])})")
            print(f"constraints (--constraint): {info['constraints']}")
            if info["fixed_projection"]:
                print(f"projection: {info['fixed_projection']} only")
            params = info["params"]
            print("parameters (--param key=value):" if params else "parameters: none")
            pairs = [  # objects and lists as --param takes them: JSON
                f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                for k, v in params.items()
            ]
            pad = max((len(p) for p in pairs), default=0)
            for pair, k in zip(pairs, params):
                text = info["param_help"].get(k, "")
                print(f"  {pair:<{pad}}  {text}".rstrip())
            if info["doc"]:
                print(f"\n{info['doc']}")
            return 0
        rows = describe_all()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        from rich.console import Console
        from rich.table import Table

        table = Table("name", "family", "space", "paper")
        for r in rows:
            table.add_row(r["name"], r["family"], r["space"], short_citation(r["paper"]))
        console = Console()
        console.print(table)
        console.print("`embsearch controllers NAME` gives one's paper, parameters and steps")
        return 0


class Backbones(Command):
    name = "backbones"
    help = "list the built-in backbones and their parameters (--backbone-param key=value)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("name", nargs="?", help="one backbone: its parameters only")
        p.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from embsearch.backbones.params import describe_params

        rows = describe_params(args.name)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for row in rows:
            print(f"{row['name']}: {row['doc']}")
            pairs = [f"{k}={json.dumps(p['default'])}" for k, p in row["params"].items()]
            pad = max((len(p) for p in pairs), default=0)
            for pair, p in zip(pairs, row["params"].values()):
                print(f"  {pair:<{pad}}  {p['help']}")
        print("your own: --backbone package.module:Class (see examples/custom_backbone.py)")
        return 0


def short_citation(paper: str) -> str:
    """``Zhao et al. 2021`` from a full reference (first author's surname, the last year named
    before any "; via ..." note, which names the library that implements it, not the paper);
    a text with no year (a baseline's description) is kept, cut to 60 characters."""
    own = paper.split("; via ")[0]
    years = re.findall(r"(?<![\d:.])(?:19|20)\d\d(?!\d|\.\d)", own)  # not arXiv:2006.14827
    first = paper.split(",")[0].strip()
    if not years or not first:
        return paper if len(paper) <= 60 else paper[:59] + "…"
    surname = first.removesuffix(" et al.").split()[-1]
    return f"{surname} et al. {years[-1]}"


COMMANDS: dict[str, Command] = {
    c.name: c for c in (Data(), Search(), Retrain(), Export(), Controllers(), Backbones())
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embsearch",
        description="Search embedding dimensions of recommendation models under a byte budget, "
        "then export or retrain the mixed-dimension table.",
        epilog="start here: embsearch search --data synthetic --budget 25% --controller mde --out runs/first\n"
        "then:       embsearch retrain runs/first --with-baseline; embsearch export runs/first --out exported",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(handler=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler.run(args)
    except EmbsearchError as exc:
        print(f"embsearch: error: {printable(exc, None)}", file=sys.stderr)  # one line, escaped
        return 2
    except KeyboardInterrupt:
        print("embsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `embsearch controllers --json | head`
        sys.stdout = None  # type: ignore[assignment]  # nothing more can be written
        return 0


if __name__ == "__main__":
    sys.exit(main())
