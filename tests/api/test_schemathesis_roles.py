"""schemathesis over the whole OpenAPI document with every role's key (and none): no server
error, every answer conforming to the document (issue 13). The admin run with more examples
is also ``tests/api/test_server.py::test_schemathesis``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import KEYS
from tests.api.test_server import server  # noqa: F401 - the live server fixture

pytestmark = pytest.mark.server


@pytest.mark.parametrize("role", [None, "public", "planner", "police", "fire", "admin"])
def test_schemathesis_per_role(server, role):  # noqa: F811 - the fixture imported above
    pytest.importorskip("schemathesis")
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
        "st", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("schemathesis CLI not installed")
    header = [] if role is None else ["--header", f"Authorization: Bearer {KEYS[role]}"]
    res = subprocess.run(
        [exe, "run", f"{server}/api", "--checks",
         "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance", "--max-examples", "15", "--phases", "examples,fuzzing",
         *header, "--request-timeout", "30", "--wait-for-schema", "30", "--no-color"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert re.search(r"Tested: (\d+)", res.stdout) and int(
        re.search(r"Tested: (\d+)", res.stdout).group(1)) >= 20  # every operation was run
