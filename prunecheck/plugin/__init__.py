"""pytest plugin: options, fixtures and hooks, each a thin delegation.

Registered through the ``pytest11`` entry point. Nothing here imports torch at
import time: settings are plain dataclasses and TOML parsing is cheap; models,
data and the engine are loaded by the session fixtures on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from prunecheck.config.settings import GATE_MODES, PairSpec, Settings
from prunecheck.core.errors import ConfigError, PrunecheckError, plain_text
from prunecheck.plugin.recorder import GateRecorder
from prunecheck.report.document import write_reports
from prunecheck.report.record import TEST_PROPERTY, RunRecord
from prunecheck.report.terminal import render_terminal

SETTINGS_KEY = pytest.StashKey[Settings]()
WORKSPACE_KEY = pytest.StashKey[Any]()
TERMINAL_KEY = pytest.StashKey[Any]()
WORKER_LINES_KEY = pytest.StashKey[Any]()
PRUNECHECK_FIXTURES = ("pair", "family", "gate", "prunecheck_workspace")


# -- option parsers: each raises ArgumentTypeError with a plain sentence ------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None


def _device(text: str) -> str:
    if text in ("auto", "cpu", "cuda", "mps") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, found {text!r}")


def _mode(text: str) -> str:
    if text in GATE_MODES:
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(GATE_MODES)}, found {text!r}")


# name -> (parser, help); option --prunecheck-<name>, ini prunecheck_<name>
OPTIONS: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "config": (str, "PATH", "prunecheck TOML file (default: prunecheck.toml, else [tool.prunecheck] in pyproject.toml, else the built-in demo)."),
    "device": (_device, "DEVICE", "evaluation device: auto, cpu, cuda, cuda:N or mps (overrides [run] device)."),
    "batch-size": (_positive_int, "N", "images per batch (overrides [run] batch_size)."),
    "cache-dir": (str, "DIR", "cache directory, or a URL (s3://bucket/prefix) for a shared prediction cache (overrides [run] cache_dir)."),
    "report-dir": (str, "DIR", "where reports are written (overrides [run] report_dir)."),
    "limit": (_positive_int, "N", "evaluate a seeded class-stratified sample of N images of every dataset (overrides [run] limit)."),
    "seed": (_int, "N", "seed for noise, MC dropout and bootstrap (overrides [run] seed)."),
    "mode": (_mode, "MODE", "gate mode for every gate: point, confident or lenient (overrides [gates.*] mode)."),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("prunecheck", "prunecheck deployment gates for pruned models")
    for name, (parse, metavar, text) in OPTIONS.items():
        dest = "prunecheck_" + name.replace("-", "_")
        group.addoption(
            f"--prunecheck-{name}", dest=dest, metavar=metavar, type=parse, default=None,
            help=f"{text} Default: %(default)r",
        )
        parser.addini(dest, help=f"{text} (ini twin of --prunecheck-{name})", default=None)


def resolve_option(config: pytest.Config, name: str) -> Any:
    """Command line, then ini, then None; a bad ini value names its source."""
    dest = "prunecheck_" + name.replace("-", "_")
    value = config.getoption(dest)
    if value is not None:
        return value
    raw = config.getini(dest)
    if raw in (None, "", []):
        return None
    try:
        return OPTIONS[name][0](str(raw).strip())
    except argparse.ArgumentTypeError as exc:
        where = config.inipath or "the ini file"
        raise pytest.UsageError(f"{where}: ini option '{dest}': {exc}") from None


def collected_paths(config: pytest.Config) -> list[Path]:
    """The paths pytest collects from (command-line args or testpaths), without ``::`` node parts."""
    base = Path(config.invocation_params.dir)
    paths = []
    for arg in config.args or [str(base)]:
        text = str(arg).split("::", 1)[0]
        if text and not text.startswith("-"):
            paths.append(base / text)
    return paths


def find_run_config(config: pytest.Config) -> Path | None:
    """The config file for this session, or None for the demo.

    ``--prunecheck-config`` / the ``prunecheck_config`` ini value (relative to the
    invocation directory), else discovery like pytest's own (see
    :func:`prunecheck.config.loader.discover_config`): the rootdir, then each collected
    path's directory and its parents.
    """
    from prunecheck.config.loader import discover_config, find_config

    explicit = resolve_option(config, "config")
    try:
        if explicit is not None:
            return find_config(Path(config.invocation_params.dir), explicit)
        return discover_config(config.rootpath, collected_paths(config))
    except ConfigError as exc:
        raise pytest.UsageError(f"prunecheck configuration error: {exc}") from None


def load_file_settings(config: pytest.Config, path: Path) -> Settings:
    """Settings from a config file plus command-line overrides; errors are usage errors."""
    from prunecheck.config.loader import load_settings

    import warnings

    from prunecheck.core.errors import PrunecheckDeprecationWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PrunecheckDeprecationWarning)
            settings = load_settings(path)
    except ConfigError as exc:
        raise pytest.UsageError(f"prunecheck configuration error: {exc}") from None
    for warning in caught:  # shown in pytest's warnings summary; -W error makes them errors
        config.issue_config_time_warning(warning.message, stacklevel=2)
    # Factories such as "mymodels:ResNet" usually live next to the config file.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    return apply_overrides(config, settings)


def load_demo_settings(config: pytest.Config) -> Settings:
    """The built-in demo over the zoo shipped with the package (unpacked once into the cache).

    Collection only (``--collect-only``) reads the shipped manifest and writes nothing:
    no zoo is unpacked, no cache folder is created.
    """
    from prunecheck.demo.expectations import DemoExpectations
    from prunecheck.demo.settings import demo_settings
    from prunecheck.demo.shipped import SHIPPED_DIR, installed_demo_settings

    cache_dir = Path(resolve_option(config, "cache-dir") or config.rootpath / ".prunecheck-cache").resolve()
    report_dir = Path(resolve_option(config, "report-dir") or config.rootpath / "reports").resolve()
    if config.option.collectonly:  # the test ids come from the manifest; nothing is loaded
        return apply_overrides(config, demo_settings(SHIPPED_DIR, cache_dir=cache_dir, report_dir=report_dir))
    progress = _progress_writer(config)
    progress("no config file found: running the built-in demo (its model zoo ships with prunecheck)")
    settings = apply_overrides(config, installed_demo_settings(cache_dir, report_dir, progress))
    # The demo's expected verdicts are checked in both directions (prunecheck.demo.expectations).
    if not config.pluginmanager.has_plugin(DemoExpectations.NAME):
        config.pluginmanager.register(DemoExpectations(), DemoExpectations.NAME)
    return settings


def check_device(config: pytest.Config) -> None:
    """The device asked for (option, ini or ``[run] device``) exists here, else one usage error.

    Checked once at startup, naming where the device was asked for, the device and what is
    available; ``auto`` and ``cpu`` need no check (and no torch import).
    """
    from prunecheck.engine.devices import device_problem

    device = resolve_option(config, "device")
    if device is not None:
        where = ("--prunecheck-device" if config.getoption("prunecheck_device") is not None
                 else f"{config.inipath or 'the ini file'}: ini option 'prunecheck_device'")
    elif SETTINGS_KEY in config.stash:
        settings = config.stash[SETTINGS_KEY]
        device = settings.run.device
        prefix = "tool.prunecheck." if Path(settings.source).name == "pyproject.toml" else ""
        where = f"{settings.source}, key '{prefix}run.device'"
    else:
        return
    problem = device_problem(device)
    if problem is not None:
        raise pytest.UsageError(f"prunecheck device error: {where} = {device!r}: {problem}")


def get_settings(config: pytest.Config) -> Settings:
    """This session's settings; the demo's are built when a test first needs them,
    so a pytest run that collects no prunecheck suite never trains the demo zoo."""
    if SETTINGS_KEY not in config.stash:
        config.stash[SETTINGS_KEY] = load_demo_settings(config)
    return config.stash[SETTINGS_KEY]


def get_workspace(config: pytest.Config):
    """This session's workspace (models and datasets loaded once, shared by the
    session-start deep check and the fixtures)."""
    if WORKSPACE_KEY not in config.stash:
        from prunecheck.session.workspace import Workspace

        config.stash[WORKSPACE_KEY] = Workspace(get_settings(config), progress=_progress_writer(config))
    return config.stash[WORKSPACE_KEY]


def apply_overrides(config: pytest.Config, settings: Settings) -> Settings:
    run_fields = {
        "device": resolve_option(config, "device"),
        "batch_size": resolve_option(config, "batch-size"),
        "cache_dir": resolve_option(config, "cache-dir"),
        "report_dir": resolve_option(config, "report-dir"),
        "limit": resolve_option(config, "limit"),
        "seed": resolve_option(config, "seed"),
    }
    changes = {key: value for key, value in run_fields.items() if value is not None}
    if "://" in str(changes.get("cache_dir", "")):  # a shared prediction cache URL (s3://...)
        changes["prediction_cache"] = changes.pop("cache_dir").rstrip("/") + "/predictions"
    for key in ("cache_dir", "report_dir"):
        if key in changes:
            changes[key] = Path(changes[key]).expanduser().resolve()
    run = dataclasses.replace(settings.run, **changes)
    run = dataclasses.replace(run, device=worker_device(run.device))
    gates = settings.gates
    mode = resolve_option(config, "mode")
    if mode is not None:
        # only suites that implement gate modes have a "mode" option (prunecheck.config.options.MODE_SUITES)
        gates = {suite: (dataclasses.replace(values, mode=mode) if "mode" in values else values)
                 for suite, values in gates.items()}
    return dataclasses.replace(settings, run=run, gates=gates)


def worker_device(device: str, worker: str | None = None) -> str:
    """The device of this pytest-xdist worker: worker gwN gets CUDA device N mod count.

    Only for ``auto`` and ``cuda`` (an explicit ``cuda:N`` or ``cpu`` is kept), and
    only when CUDA devices are visible; outside xdist the device is unchanged.
    """
    worker = worker if worker is not None else os.environ.get("PYTEST_XDIST_WORKER", "")
    if device not in ("auto", "cuda") or not (worker.startswith("gw") and worker[2:].isdigit()):
        return device
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return device  # auto -> CPU; a plain "cuda" fails later with the usual message
    return f"cuda:{int(worker[2:]) % count}"


def _user_chose_dist(config: pytest.Config) -> bool:
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    try:
        args += [str(arg) for arg in config.getini("addopts")]
    except (ValueError, KeyError):
        pass
    return any(arg in ("--dist", "-d", "--distload") or arg.startswith("--dist=") for arg in args)


def prefer_loadgroup(config: pytest.Config) -> None:
    """``-n N`` without a ``--dist`` choice runs ``--dist loadgroup``.

    Suite tests carry ``xdist_group`` marks named after their pair/family, so all of
    one pair's tests (and its models' predictions) stay on one worker. Workers parse
    the original command line, so the controller tells them through ``workerinput``
    (:func:`pytest_configure_node`) and they switch xdist's group suffixes on here.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if workerinput.get("prunecheck_loadgroup"):
            config.option.loadgroup = True
        return
    if getattr(config.option, "dist", "no") == "load" and not _user_chose_dist(config):
        config.option.dist = "loadgroup"


def group_of(nodeid: str, names: tuple[str, ...] = ()) -> str:
    """The scheduling group of a test: its pair/family name, else the node id itself.

    Suite test ids start with the pair/family id (``test_x[wt90-gaussian_noise-3]``).
    With the configured ``names`` the longest one the id starts with wins; without
    them (the demo, whose settings the xdist controller never loads) the id up to
    the first ``-``. An explicit ``@group`` suffix (xdist's own loadgroup) wins.
    """
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.rsplit("@", 1)[1]
    if not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    params = nodeid[nodeid.index("[") + 1 : -1]
    for name in sorted(names, key=len, reverse=True):
        if params == name or params.startswith(name + "-"):
            return name
    return params.split("-", 1)[0]


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup``: schedule by pair/family (:func:`group_of`).

    pytest-xdist 3.8 marks loadgroup tests by rewriting ``item._nodeid``, which
    pytest 9 no longer reads, so its own grouping is lost; this scheduler groups
    by the pair/family id in the node id instead (and still honours ``@group``).
    """
    if config.getoption("dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    names: tuple[str, ...] = ()
    if SETTINGS_KEY in config.stash:
        settings = config.stash[SETTINGS_KEY]
        names = tuple(spec.name for spec in (*settings.pairs, *settings.families))

    class PairGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid, names)

    return PairGroupScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller, per worker: pass the loadgroup choice on (see prefer_loadgroup)."""
    if node.config.getoption("dist", "no") == "loadgroup":
        node.workerinput["prunecheck_loadgroup"] = True


# -- hooks -------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    prefer_loadgroup(config)
    path = find_run_config(config)
    if path is not None:
        config.stash[SETTINGS_KEY] = load_file_settings(config, path)
    check_device(config)
    for line in (
        "prunecheck_unconfigured: a suite test with no pair/family configured (deselected)",
        "prunecheck_pairs(predicate): run this suite test only for pairs where predicate(spec, settings) holds",
        "prunecheck_families(predicate): run this suite test only for families where predicate(spec, settings) holds",
        "slow: heavy test; CI may skip these with -m 'not slow'",
    ):
        config.addinivalue_line("markers", line)
    config.pluginmanager.register(ReportCollector(config), "prunecheck-report")


def pytest_report_header(config: pytest.Config) -> str:
    if SETTINGS_KEY in config.stash:
        return f"prunecheck: config {config.stash[SETTINGS_KEY].source}"
    text = ("prunecheck: no prunecheck.toml or [tool.prunecheck] found in the rootdir or the collected "
            "paths' folders and their parents; suites run the built-in demo (see README: Configure)")
    return text


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Before the first test, once: check that every file, import and output width the
    config names is there (:func:`prunecheck.session.validation.deep_check`); all problems are
    reported together as a usage error instead of one error per test."""
    config = session.config
    if config.option.collectonly or SETTINGS_KEY not in config.stash or config.stash[SETTINGS_KEY].is_demo:
        return
    if hasattr(config, "workerinput"):  # pytest-xdist: the controller checks, before it starts the workers
        return
    # the xdist controller collects nothing itself; otherwise only runs with a prunecheck test pay for it
    if not config.pluginmanager.has_plugin("dsession") and not any(
        any(name in getattr(item, "fixturenames", ()) for name in PRUNECHECK_FIXTURES) for item in session.items
    ):
        return
    from prunecheck.session.validation import deep_check, problems_text

    settings = config.stash[SETTINGS_KEY]
    problems = deep_check(settings, get_workspace(config))
    if problems:
        # The reports are still written (FAILED, one error per problem): a broken model never
        # leaves a CI job without its report.
        recorder = config.pluginmanager.get_plugin("prunecheck-report")
        if recorder is not None:
            for problem in problems:
                recorder.record.add_setup_problem(problem.key, f"stopped before the first test: {problem}")
        raise pytest.UsageError(problems_text(settings, problems) + "\n(check with `prunecheck validate --deep`)")


@pytest.hookimpl(tryfirst=True)  # the pair/family id comes first in test ids
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``pair``/``family`` over the configured ones, and every other axis
    (:mod:`prunecheck.plugin.axes`) a suite test names as an argument.

    A suite test can narrow pairs/families with ``@pytest.mark.prunecheck_pairs(predicate)`` /
    ``prunecheck_families(predicate)``, ``predicate(spec, settings) -> bool`` (e.g. only pairs
    with a reference model). A test left with nothing to run is deselected, not skipped.
    """
    names = set(metafunc.fixturenames)
    if not {"pair", "family"} & names:  # only suite tests get axes (a plain test may call an argument "eps")
        return
    from prunecheck.plugin.axes import AXES, PAIR_AXES

    settings = get_settings(metafunc.config)
    axes = (("pair", "prunecheck_pairs", settings.pairs), ("family", "prunecheck_families", settings.families))
    for name, marker_name, specs in axes:
        if name not in names:
            continue
        if name == "pair":
            specs = _checked_by_this_suite(specs, metafunc.definition.path, settings)
        for marker in metafunc.definition.iter_markers(marker_name):
            predicate = marker.args[0]
            specs = tuple(spec for spec in specs if predicate(spec, settings))
        joint = [axis for axis in PAIR_AXES if axis in names] if name == "pair" else []
        if specs:
            # pytest-xdist: one pair's/family's tests share a worker (see prefer_loadgroup)
            group = metafunc.config.pluginmanager.hasplugin("xdist")
            marks = lambda spec: [pytest.mark.xdist_group(spec.name)] if group else []  # noqa: E731
            if joint:  # e.g. (pair, method): the methods are the pair's own
                (axis,) = joint
                params = [pytest.param(spec, value, id=f"{spec.name}-{value}", marks=marks(spec))
                          for spec in specs for value in PAIR_AXES[axis](spec, settings)]
                metafunc.parametrize(("pair", axis), params, indirect=["pair"])
            else:
                params = [pytest.param(spec, id=spec.name, marks=marks(spec)) for spec in specs]
                metafunc.parametrize(name, params, indirect=True)
        else:
            unconfigured = pytest.mark.prunecheck_unconfigured
            argnames = ("pair", *joint) if joint else name
            values = (None,) * (1 + len(joint)) if joint else (None,)
            metafunc.parametrize(argnames, [pytest.param(*values, marks=unconfigured)], ids=[f"no-{name}"],
                                 indirect=[name] if joint else True)
    chosen = {name for marker in metafunc.definition.iter_markers("parametrize")
              for name in (marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0])}
    for axis, values_of in AXES.items():
        if axis in names and axis not in {name.strip() for name in chosen}:  # the test's own values win
            try:
                values = values_of(settings)
            except ValueError as exc:  # one collection error naming the file and key, without a traceback
                pytest.fail(f"prunecheck configuration error: {settings.source}: {exc}", pytrace=False)
            metafunc.parametrize(axis, [value for _, value in values], ids=[id_ for id_, _ in values])


def _checked_by_this_suite(specs: tuple[PairSpec, ...], suite: Path, settings: Settings) -> tuple[PairSpec, ...]:
    """The pairs this suite file checks: all, except those whose ``suites`` leave it out.

    A ``suites`` entry naming no file next to this one is a configuration error (one
    collection error), so a typo or a renamed suite never drops a pair's gates silently.
    """
    for spec in specs:
        missing = [name for name in spec.suites if not (suite.parent / name).is_file()]
        if missing:
            present = sorted(path.name for path in suite.parent.glob("test_*.py"))
            pytest.fail(f"prunecheck configuration error: {settings.source}: pair '{spec.name}': suites names "
                        f"{', '.join(missing)}, but {suite.parent} has no such file (it has {', '.join(present)})",
                        pytrace=False)
    return tuple(spec for spec in specs if not spec.suites or suite.name in spec.suites)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unconfigured = [item for item in items if item.get_closest_marker("prunecheck_unconfigured")]
    if unconfigured:
        config.hook.pytest_deselected(items=unconfigured)
        items[:] = [item for item in items if not item.get_closest_marker("prunecheck_unconfigured")]
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in PRUNECHECK_FIXTURES):
            item.user_properties.append((TEST_PROPERTY, "1"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from _clean_errors())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _clean_errors())


def _clean_errors():
    """Turn prunecheck's own errors (bad checkpoint, malformed data) into one-line failures."""
    try:
        return (yield)
    except PrunecheckError as exc:  # once, plain: no "During handling of the above exception" chain
        raise pytest.fail.Exception(f"prunecheck: {plain_text(exc)}", pytrace=False) from None


class ReportCollector:
    """Session plugin: gathers gate results from test reports, writes and prints the reports.

    Under pytest-xdist the workers' reports reach the controller's
    ``pytest_runtest_logreport`` with their ``user_properties``, so only the
    controller writes, and it writes one merged report. Session finish runs after
    ``-x`` and Ctrl-C too: the report then holds what ran and says it was interrupted.
    """

    def __init__(self, config: pytest.Config):
        self.config = config
        self.record = RunRecord()
        self.doc: dict[str, Any] | None = None
        self.paths: list[Path] = []
        self.write_error = ""
        self.deselected = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.record.add_report(report)

    def pytest_deselected(self, items) -> None:
        """Count what the user deselected (-k, -m, --deselect), not unconfigured suite tests."""
        self.deselected += sum(1 for item in items if not item.get_closest_marker("prunecheck_unconfigured"))

    def selection(self) -> str:
        """How this run chose its tests (options that make it a partial run)."""
        option, parts = self.config.option, []
        if getattr(option, "keyword", ""):
            parts.append(f"-k {shlex.quote(option.keyword)}")
        if getattr(option, "markexpr", ""):
            parts.append(f"-m {shlex.quote(option.markexpr)}")
        if getattr(option, "lf", False):
            parts.append("--last-failed")
        if any("::" in str(arg) for arg in self.config.args):
            parts.append("test ids named on the command line")
        return ", ".join(parts)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):  # xdist worker: the controller writes the merged report
            return
        if not self.record.tests:
            return
        settings = get_settings(self.config)  # loaded already: a prunecheck test ran
        self.record.source, self.record.is_demo = settings.source, settings.is_demo
        reason = session.shouldfail or session.shouldstop
        interrupted = bool(reason) or int(exitstatus) == int(pytest.ExitCode.INTERRUPTED)
        if interrupted and not isinstance(reason, str):
            reason = "KeyboardInterrupt" if int(exitstatus) == int(pytest.ExitCode.INTERRUPTED) else ""
        self.doc = self.record.to_json(exitstatus=int(exitstatus), interrupted=interrupted, reason=reason or "",
                                       deselected=self.deselected, selection=self.selection(),
                                       restricted_pairs={p.name: list(p.suites) for p in settings.pairs if p.suites})
        try:
            self.paths = write_reports(self.doc, Path(settings.run.report_dir))
        except (OSError, PrunecheckError) as exc:  # a report that cannot be written must not hide the gates
            self.write_error = f"reports could not all be written to {settings.run.report_dir}: {plain_text(exc)}"
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            from prunecheck.report.document import append_step_summary

            append_step_summary(self.doc, summary)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.doc is None:
            return
        terminalreporter.section("prunecheck gates")
        width = getattr(getattr(terminalreporter, "_tw", None), "fullwidth", 100)
        try:
            text = render_terminal(self.doc, width=width, verbose=self.config.get_verbosity() > 0)
        except Exception as exc:  # the files are written already: point to them instead of crashing
            text = f"the gate table could not be rendered ({type(exc).__name__}: {plain_text(exc)}); see the reports"
        for line in text.splitlines():
            terminalreporter.write_line(line)
        if self.paths:
            terminalreporter.write_line("reports: " + ", ".join(str(p) for p in self.paths))
        if self.write_error:
            terminalreporter.write_line(self.write_error, red=True)


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def prunecheck_settings(pytestconfig: pytest.Config) -> Settings:
    """The validated settings of this run (config file or built-in demo, plus overrides)."""
    return get_settings(pytestconfig)


@pytest.fixture(scope="session")
def prunecheck_workspace(pytestconfig: pytest.Config, prunecheck_settings: Settings):
    """Loads datasets and models on first use and predicts through the cached engine."""
    return get_workspace(pytestconfig)


@pytest.fixture
def pair(request: pytest.FixtureRequest, prunecheck_workspace):
    """One configured (parent, pruned) pair; suites are parametrised over all of them."""
    from prunecheck.session.pairs import Pair

    spec = request.param
    for name in (spec.parent, spec.pruned):
        prunecheck_workspace.model(name)  # a model that does not load is a setup error, reported once
    return Pair(spec, prunecheck_workspace)


@pytest.fixture
def family(request: pytest.FixtureRequest, prunecheck_workspace):
    """One configured family (parent + pruned members at several ratios)."""
    from prunecheck.session.pairs import Family

    return Family(request.param, prunecheck_workspace)


@pytest.fixture
def gate(request: pytest.FixtureRequest, prunecheck_settings: Settings) -> GateRecorder:
    """Hands options to the pure gates, records their results on the report, fails with the full message."""
    return GateRecorder(prunecheck_settings, request.node)


def _progress_writer(config: pytest.Config) -> Callable[[str], None]:
    """Progress of long work (zoo training, predictions, corruption generation):
    a :class:`prunecheck.core.progress.Reporter` drawing bars on a terminal, plain
    periodic lines in CI, logs and pytest-xdist workers (see :mod:`prunecheck.core.progress`)."""
    from prunecheck.core.progress import Reporter, plain_output_wanted

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if config.get_verbosity() < 0:
        return lambda message: None
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker or reporter is None:
        if not worker:
            return lambda message: None
        # An xdist worker's terminal is not shown; its stderr reaches the controller's.
        # The controller may be mid-line (its "...." progress): the first line after a test
        # result starts on a new line, the following ones of the same test follow directly.
        state = _worker_progress_state(config)

        def to_stderr(message: str) -> None:
            with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
                sys.stderr.write(("" if state.open else "\n") + f"[{worker}] prunecheck: {message}\n")
                sys.stderr.flush()
            state.open = True

        return Reporter(to_stderr)
    terminal = _terminal_lines(config, reporter, capture)
    if plain_output_wanted(isatty=bool(getattr(reporter, "isatty", False))):
        return Reporter(terminal.line)
    return Reporter(terminal.line, draw=terminal.draw, end_draw=terminal.end_draw, width=terminal.width())


class _ProgressResume:
    """Session plugin: pytest's progress line continues where progress output cut it."""

    def __init__(self, terminal):
        self.terminal = terminal

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.terminal.resume()


def _terminal_lines(config: pytest.Config, reporter, capture):
    """The session's one :class:`prunecheck.core.progress.TerminalLines` (shared by every writer)."""
    from prunecheck.core.progress import TerminalLines

    if TERMINAL_KEY not in config.stash:
        config.stash[TERMINAL_KEY] = TerminalLines(reporter, capture)
        config.pluginmanager.register(_ProgressResume(config.stash[TERMINAL_KEY]), "prunecheck-progress-resume")
    return config.stash[TERMINAL_KEY]


class _WorkerLineState:
    """xdist worker: whether the controller's terminal is on a line this worker started."""

    open = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.open = False  # the controller prints this result's progress mark next


def _worker_progress_state(config: pytest.Config) -> _WorkerLineState:
    if WORKER_LINES_KEY not in config.stash:
        config.stash[WORKER_LINES_KEY] = _WorkerLineState()
        config.pluginmanager.register(config.stash[WORKER_LINES_KEY], "prunecheck-worker-lines")
    return config.stash[WORKER_LINES_KEY]
