"""pytest plugin (entry point ``pytest11``) for test impact analysis.

``--maestro-collect`` records, per test, the lines it executes (one
coverage.py dynamic context per test) and its duration into the TIA index.
``--maestro-select[=BASE]`` runs only the tests the changes against BASE
(default ``HEAD``) need, prints why each one runs, and records a Decision
Card. Tests the index has never seen (new tests) always run. When the
analysis cannot be trusted it runs everything and says why.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("maestro", "maestro_core test impact analysis")
    g.addoption("--maestro-select", nargs="?", const="HEAD", default=None, metavar="BASE",
                help="run only the tests the changes against BASE (default HEAD) need")
    g.addoption("--maestro-collect", action="store_true", default=False,
                help="record per-test coverage contexts and durations into the TIA index")
    g.addoption("--maestro-budget", default=None, metavar="SECONDS",
                help="time budget for --maestro-select (default: none, safe mode)")
    g.addoption("--maestro-k", type=int, default=3, help="max hyperedges on a path (default 3)")
    g.addoption("--maestro-home", default=None, help="store folder (default: REPO/.maestro)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--maestro-collect"):
        config.pluginmanager.register(_Collector(config), "maestro-collect")
    if config.getoption("--maestro-select") is not None:
        config.pluginmanager.register(_Selector(config), "maestro-select")


class _Collector:
    def __init__(self, config: pytest.Config) -> None:
        import coverage

        self.config = config
        self.root = str(config.rootpath)
        self.cov = coverage.Coverage(data_file=None, source=[self.root], omit=["*/.venv/*", "*/site-packages/*"],
                                     config_file=False)
        self.cov.start()
        self.durations: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.paths: dict[str, str] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Any) -> Any:
        self.cov.switch_context(item.nodeid)
        self.paths[item.nodeid] = item.location[0]
        yield
        self.cov.switch_context("")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.when == "call" or report.outcome != "passed":
            if self.outcomes.get(report.nodeid) in (None, "passed"):
                self.outcomes[report.nodeid] = report.outcome

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pathlib import Path

        from .tia import Index

        self.cov.stop()
        data = self.cov.get_data()
        root = Path(self.root).resolve()
        cov: dict[str, dict[str, list[int]]] = {n: {} for n in self.paths}
        for f in data.measured_files():
            try:
                rel = Path(f).resolve().relative_to(root).as_posix()
            except ValueError:
                continue
            for line, ctxs in data.contexts_by_lineno(f).items():
                for c in ctxs:
                    if c in cov:
                        cov[c].setdefault(rel, []).append(line)
        idx = Index(self.root, self.config.getoption("--maestro-home"))
        try:
            idx.index()
            idx.record_run({n: (self.paths[n], self.durations.get(n, 0.0), self.outcomes.get(n, "passed"))
                            for n in self.paths}, cov)
        finally:
            idx.close()
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"maestro tia: recorded coverage and durations of {len(self.paths)} tests")


class _Selector:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lines: list[str] = []
        self.broken: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.broken.append(report.nodeid or "(session)")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        from .errors import MaestroError
        from .tia import SAFE_THRESHOLD, Index, parse_duration, record_selection

        base = config.getoption("--maestro-select")
        if self.broken:
            self.lines.append(f"maestro tia: running all tests: collection failed in {', '.join(self.broken)}")
            return
        budget_opt = config.getoption("--maestro-budget")
        t0 = time.perf_counter()
        try:
            idx = Index(str(config.rootpath), config.getoption("--maestro-home"))
        except MaestroError as e:
            self.lines.append(f"maestro tia: running all tests: {e}")
            return
        try:
            budget = parse_duration(budget_opt) if budget_opt else math.inf
            safe = budget_opt is None
            sel = idx.select(base, budget=budget, k=config.getoption("--maestro-k"), safe=safe,
                             threshold=SAFE_THRESHOLD if safe else math.inf)
            try:
                record_selection(sel, home=idx.home)
            except MaestroError as e:
                self.lines.append(f"maestro tia: decision card not recorded: {e}")
        except MaestroError as e:
            self.lines.append(f"maestro tia: running all tests: {e}")
            return
        finally:
            idx.close()
        self.lines += [f"maestro tia: warning: {w}" for w in sel.warnings]
        if sel.run_all:
            self.lines.append(sel.summary())
            return
        known = {d.nodeid for d in sel.decisions}
        chosen = set(sel.selected)
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for it in items:
            (keep if it.nodeid in chosen or it.nodeid not in known else drop).append(it)
        new = [it.nodeid for it in keep if it.nodeid not in known]
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
        self.lines.append(sel.summary() + f"; {len(new)} new tests; selection took {time.perf_counter() - t0:.3f}s")
        by = {d.nodeid: d for d in sel.decisions}
        for it in keep:
            d = by.get(it.nodeid)
            self.lines.append("  " + (d.explain() if d else f"{it.nodeid}: new test (not indexed yet)"))

    def pytest_report_collectionfinish(self, config: pytest.Config, start_path: Any, items: Any) -> list[str]:
        return self.lines
