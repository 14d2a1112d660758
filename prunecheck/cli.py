"""The ``prunecheck`` command: utilities around the pytest gate run.

The gates themselves run under pytest (``pytest suites/``); this command checks a
configuration, builds a pruned family from a parent, rebuilds and checks the
demo's shipped model zoo, fills the prediction cache (one shard per machine) and
manages the cache.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from prunecheck import __version__
from prunecheck.core.errors import PrunecheckError


def _config_path(args: argparse.Namespace) -> Path | None:
    """``--config``, else discovery from the current folder upwards (as pytest run here would)."""
    from prunecheck.config.loader import discover_config, find_config

    if args.config is not None:
        return find_config(Path.cwd(), args.config)
    return discover_config(None, [Path.cwd()])


def _settings(args: argparse.Namespace):
    """The settings ``pytest suites/`` would use here: the config found, else the built-in demo."""
    from prunecheck.config.loader import load_settings
    from prunecheck.demo.shipped import installed_demo_settings

    path = _config_path(args)
    if path is not None:
        return load_settings(path)
    return installed_demo_settings(Path(".prunecheck-cache").resolve(), Path("reports").resolve(),
                                   lambda message: print(message, file=sys.stderr))


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a configuration file and print what it defines (--deep: also its files, imports and shapes)."""
    from prunecheck.config.loader import load_settings

    path = _config_path(args)
    if path is None:
        print(f"no prunecheck.toml or [tool.prunecheck] found in {Path.cwd()} or its parents: "
              "`pytest suites/` runs the built-in demo here (create a config with `prunecheck init`)")
        return 0
    settings = load_settings(path)
    print(f"config: {settings.source}" + (" (built-in demo)" if settings.is_demo else ""))
    print(f"run: device={settings.run.device} batch_size={settings.run.batch_size} "
          f"cache_dir={settings.run.cache_dir} report_dir={settings.run.report_dir} "
          f"seed={settings.run.seed} limit={settings.run.limit}")
    print(f"datasets: {', '.join(sorted(settings.datasets)) or '-'}")
    print(f"models: {', '.join(sorted(settings.models)) or '-'}")
    for pair in settings.pairs:
        reference = f", reference {pair.reference}" if pair.reference else ""
        known = f"; expect_fail {', '.join(pair.expect_fail)}" if pair.expect_fail else ""
        print(f"pair {pair.name}: {pair.parent} -> {pair.pruned} on {pair.dataset}{reference}; "
              f"methods {', '.join(pair.methods)}{known}")
    for family in settings.families:
        members = ", ".join(m.model for m in family.members)
        print(f"family {family.name}: {family.parent} -> [{members}] on {family.dataset}")
    for suite, values in sorted(settings.gates.items()):
        print(f"gates.{suite}: " + ", ".join(f"{k}={v!r}" for k, v in sorted(values.items())))
    if not args.deep:
        print("syntax and references OK (add --deep to import the factories and load the weights and data)")
        return 0
    from prunecheck.session.validation import deep_check, problems_text
    from prunecheck.session.workspace import Workspace

    problems = deep_check(settings, Workspace(settings))
    if problems:
        print(problems_text(settings, problems), file=sys.stderr)
        return 1
    print("deep check OK: every factory imports, every weights file loads, every dataset loads "
          "and every model's output width matches its dataset")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The built-in demo's shipped model zoo: rebuild it, check it, print its gate margins."""
    from prunecheck.demo import command

    return command.run(args)


def cmd_cache(args: argparse.Namespace) -> int:
    """Show or clear the prediction / corruption cache."""
    root = Path(args.cache_dir)
    if args.action == "clear":
        if root.exists():
            shutil.rmtree(root)
        print(f"removed {root}")
        return 0
    if not root.exists():
        print(f"{root}: empty")
        return 0
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [f for f in sub.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        print(f"{sub.name}: {len(files)} files, {size / 2**20:.1f} MiB")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render Markdown, HTML and plots from a saved prunecheck.json."""
    from prunecheck.report.document import write_rendered
    from prunecheck.report.record import load_report

    path = Path(args.path)
    doc = load_report(path)
    for written in write_rendered(doc, Path(args.out) if args.out else path.parent):
        print(written)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Scaffold a commented prunecheck.toml (CIFAR-10 setup) and the gate suites."""
    from prunecheck.scaffold import scaffold

    for written in scaffold(Path(args.directory), force=args.force):
        print(f"wrote {written}")
    print("next: edit prunecheck.toml, check it with `prunecheck validate`, run `pytest suites/`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunecheck", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"prunecheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help=cmd_validate.__doc__)
    validate.add_argument("--config", metavar="PATH", default=None, help="config file (default: discovered as pytest does)")
    validate.add_argument("--deep", action="store_true",
                          help="also import every factory, load every weights file and dataset and check "
                               "output widths; lists every problem, exit status 1 if any")
    validate.set_defaults(run=cmd_validate)

    from prunecheck.demo.command import add_demo_arguments

    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    add_demo_arguments(demo)
    demo.set_defaults(run=cmd_demo)

    from prunecheck.pruning.command import add_prune_arguments, run_prune

    prune = commands.add_parser("prune", help=run_prune.__doc__)
    add_prune_arguments(prune)
    prune.set_defaults(run=run_prune)

    report = commands.add_parser("report", help=cmd_report.__doc__)
    report.add_argument("path", metavar="PATH.json", help="a prunecheck.json written by a run")
    report.add_argument("--out", metavar="DIR", default=None, help="output folder (default: the JSON file's folder)")
    report.set_defaults(run=cmd_report)

    init = commands.add_parser("init", help=cmd_init.__doc__)
    init.add_argument("directory", metavar="DIR", nargs="?", default=".", help="project folder. Default: %(default)r")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.set_defaults(run=cmd_init)

    from prunecheck.sharding import add_predict_arguments, run_predict

    predict = commands.add_parser("predict", help=run_predict.__doc__)
    add_predict_arguments(predict)
    predict.set_defaults(run=run_predict)

    cache = commands.add_parser("cache", help=cmd_cache.__doc__)
    cache.add_argument("action", choices=("info", "clear"))
    cache.add_argument("--cache-dir", metavar="DIR", default=".prunecheck-cache", help="Default: %(default)r")
    cache.set_defaults(run=cmd_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except PrunecheckError as exc:
        print(f"prunecheck: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
