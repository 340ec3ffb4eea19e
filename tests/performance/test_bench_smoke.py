"""`make bench` in miniature: the harness starts gunicorn as configured, exchanges pre-minted tokens with no error."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.live]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench-tools)")
def test_bench_runs_end_to_end(tmp_path):
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--only", "sqlite-rs256", "--duration", "2", "--rounds", "2", "--warmup", "1",
         "--max-rps", "4000", "--no-postgres", "--workdir", str(tmp_path / "bench"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = {r["scenario"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"ceiling", "client_credentials", "exchange-pem", "exchange-jwks"}
    assert all(r["requests"] > 0 and r["errors"] == 0 and len(r["slices_rps"]) == 2 for r in results.values())
    assert "exchange RS256 / ceiling (SQLite)" in completed.stdout


def test_disabling_an_issuer_reaches_every_gunicorn_worker(tmp_path):
    """Real workers, real processes: a change saved elsewhere stops exchanges in all of them within the bound."""
    import os
    import time
    import urllib.error
    import urllib.request

    from bench import fixtures
    from bench.run import Config, Server, basic

    class Args:
        threads, connections, max_rps = 1, 1, 10

    config = Config("invalidation", Args, tmp_path, signing="es256")
    config.env.pop("PYTEST_CURRENT_TEST", None)
    config.prepare("")
    tokens = iter(fixtures.mint_tokens(tmp_path / "tokens.txt", fixtures.key_file(tmp_path, "subject-issuer-rsa", "rsa"),
                                       fixtures.PEM_ISSUER, 80, processes=1).read_text().split())
    server = Server("invalidation", config.dir, {**config.env, "GUNICORN_WORKERS": "2"}).start()

    def exchange():
        request = urllib.request.Request(
            server.url + "/oauth2/token", data=(fixtures.TOKEN_EXCHANGE_FORM + next(tokens)).encode(),
            headers={"Authorization": basic(config.credentials), "Content-Type": "application/x-www-form-urlencoded",
                     "Connection": "close"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        assert len(server.workers) == 2
        assert all(exchange()[0] == 200 for _ in range(20))  # both workers have the issuer cached
        subprocess.run([sys.executable, "manage.py", "shell", "-c",
                        "from exchange.models import TrustedTokenIssuer as T; i = T.objects.get(issuer=%r); "
                        "i.enabled = False; i.save()" % fixtures.PEM_ISSUER],
                       cwd=ROOT, env=config.env, check=True, capture_output=True, timeout=120)
        time.sleep(1.2)  # REGISTRY_CHECK_MS (1000 ms) and a margin
        answers = [exchange() for _ in range(20)]
        assert all(status == 400 and body["error_description"] == "The subject token's issuer is disabled."
                   for status, body in answers), answers
    finally:
        server.stop()


def test_instruction_count_harness_serves_every_kind(tmp_path):
    """`make bench-callgrind` without valgrind: every kind it counts runs and answers 200 (or verifies)."""
    from bench import inprocess

    workdir = tmp_path / "callgrind"
    env = {k: v for k, v in inprocess._env_for(workdir, "trivial").items() if k != "PYTEST_CURRENT_TEST"}
    subprocess.run([sys.executable, "-m", "bench.inprocess", "prepare", "--n", "3", "--workdir", str(workdir)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    for kind in inprocess.KINDS:
        completed = subprocess.run(
            [sys.executable, "-m", "bench.inprocess", "run", "--kind", kind, "--n", "3", "--workdir", str(workdir)],
            cwd=ROOT, env={k: v for k, v in inprocess._env_for(workdir, kind).items() if k != "PYTEST_CURRENT_TEST"},
            capture_output=True, text=True, timeout=120,
        )
        assert completed.returncode == 0, (kind, completed.stdout, completed.stderr[-2000:])
        assert json.loads(completed.stdout.strip().splitlines()[-1])["kind"] == kind


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench-tools)")
def test_compare_serves_each_checkout_and_prints_the_ratio(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "bench.compare", str(ROOT), str(ROOT), "--rounds", "2", "--seconds", "1",
         "--max-rps", "3000", "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "B / A = " in completed.stdout


def test_profile_exchange_runs_end_to_end(tmp_path):
    """bench/profile_exchange.py: CPU per exchange in-process and its profile; every exchange answered 200."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.profile_exchange", "--n", "20", "--rounds", "2", "--top", "5",
         "--workdir", str(tmp_path / "profile")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "CPU per exchange (process_time, 2 rounds of 20, unprofiled)" in completed.stdout
    assert "top 5 by tottime" in completed.stdout and "top 5 by cumulative" in completed.stdout
    assert "exchange/ops/" in completed.stdout  # the project's own entries, named by path
