"""The built wheel carries every module, the templates and the static files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_code_templates_and_static(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("xnode-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        str(path.relative_to(ROOT))
        for package in ("xnode", "federation")
        for path in (ROOT / package).rglob("*.py")
    }
    expected |= {
        "xnode/templates/" + str(path.relative_to(ROOT / "templates"))
        for path in (ROOT / "templates").rglob("*")
        if path.is_file() and path.suffix in (".html", ".css", ".js", ".svg")
    }
    assert "xnode/templates/base.html" in expected
    assert "xnode/templates/static/xnode.css" in expected
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
