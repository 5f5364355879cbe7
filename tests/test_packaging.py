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


def test_make_run_and_the_readme_give_the_nodes_own_address():
    """`make run` creates a node whose links use its domain; the README must send people
    there, not to the listening socket's address (issue 15)."""
    import re

    makefile = (ROOT / "Makefile").read_text()
    init = re.search(r"xnode init .*--domain (\S+) --http --port (\d+)", makefile)
    assert init, "make run no longer initialises with --domain/--port"
    address = f"http://{init[1]}:{init[2]}"
    readme = (ROOT / "README.md").read_text()
    assert f"serves {address}" in readme and f"{address}/login" in readme
    assert "127.0.0.1:8080/login" not in readme
