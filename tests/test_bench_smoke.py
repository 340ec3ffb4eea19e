"""`make bench` in miniature: the harness starts gunicorn as configured, exchanges pre-minted tokens with no error."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.live]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench-tools)")
def test_bench_runs_end_to_end(tmp_path):
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--only", "sqlite-rs256", "--duration", "1", "--warmup", "1",
         "--max-rps", "300", "--no-postgres", "--workdir", str(tmp_path / "bench"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = {r["scenario"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"ceiling", "client_credentials", "exchange-pem", "exchange-jwks"}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in results.values())
    assert "exchange RS256 / ceiling (SQLite)" in completed.stdout
