"""pytest plugin for benchmarks: writes the prediction cache keys each process computed.

Load with ``-p prediction_recorder`` (``benchmarks/`` on PYTHONPATH) and set
``PRUNECHECK_RECORD_DIR``; each process (xdist worker or plain run) writes
``computed-<worker>.json``, a list of the cache keys it computed (not read).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_STATE: dict = {"workspace": None}


@pytest.fixture(autouse=True)
def _prediction_recorder(request):
    if "pair" in request.fixturenames or "family" in request.fixturenames:
        _STATE["workspace"] = request.getfixturevalue("prunecheck_workspace")
    yield


def pytest_sessionfinish(session):
    folder = os.environ.get("PRUNECHECK_RECORD_DIR")
    workspace = _STATE["workspace"]
    if not folder or workspace is None:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (Path(folder) / f"computed-{worker}.json").write_text(json.dumps(workspace.engine.computed))
