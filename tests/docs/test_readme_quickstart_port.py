"""The README's first run, as a new user does it, on a port other than 8000 (slow: run by .ci/run).

A copy of the checkout (its own var/, the same virtualenv) runs `make run PORT=<free port>`; a
second shell, without a single export, runs the README's quickstart verbatim in that copy. Both
must agree on the issuer, the sign-in box must be the last thing `make run` prints, and the
quickstart must leave the copy's git status clean.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .test_readme_quickstart import quickstart_script

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.live]

#: What a new user's shell would not have: nothing the test runner set may leak into the run.
UNSET = ("CONSOLE_ISSUER", "VAR_DIR", "DATABASE_URL", "REDIS_URL", "CONSOLE_ADMIN_PASSWORD", "STATIC_ROOT",
         "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR")
IGNORED = shutil.ignore_patterns(".venv", "var", ".git", "artifacts", "__pycache__", "*.pyc", ".pytest_cache",
                                 "*.egg-info", ".hypothesis")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env():
    return {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("TOKEN_EXCHANGE_")}


def git(checkout, *args):
    return subprocess.run(["git", *args], cwd=checkout, check=True, capture_output=True, text=True,
                          env={**clean_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout


@pytest.fixture
def checkout(tmp_path):
    """A copy of this checkout as a clone would have it (a git work tree), sharing the virtualenv.

    The virtualenv is brought up to date here, in this checkout: `make run` in the copy must find it
    installed (its stamp), or it would reinstall the shared virtualenv as an editable install of the copy.
    """
    subprocess.run(["make", "install"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    stamps = list((ROOT / ".venv").glob(".installed-*"))
    assert len(stamps) == 1, stamps
    copy = tmp_path / "identity-console"
    shutil.copytree(ROOT, copy, ignore=IGNORED)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "clone")
    # The same pyproject.toml, so the same stamp: `make run` in the copy installs nothing.
    checksum = subprocess.run("cat pyproject.toml | cksum | cut -d' ' -f1", shell=True, cwd=copy, check=True,
                              capture_output=True, text=True).stdout.strip()
    assert stamps[0].name == f".installed-{checksum}"
    return copy


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="needs make and git")
def test_make_run_on_another_port_and_the_quickstart_without_exports(checkout):
    port = free_port()
    output = checkout.parent / "make-run.log"
    with output.open("w") as log:
        server = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=checkout, env=clean_env(),
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "Stop with Ctrl-C." not in output.read_text():
            assert server.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(1)
        printed = output.read_text()
        # The box comes last, after the server's own start-up lines, with the URL, the issuer and the password.
        lines = printed.rstrip().splitlines()
        assert lines[-1].startswith("+-") and lines[-1].endswith("-+"), printed[-2000:]
        top = max(i for i, line in enumerate(lines[:-1]) if line.startswith("+-"))
        box = lines[top:]
        assert any("Listening at" in line for line in lines[:top])
        text = "\n".join(box)
        assert f"http://localhost:{port}/console/" in text
        assert f"http://localhost:{port}/oauth2/token" in text
        assert re.search(r"Password: +\S{12,}", text), text
        assert "bootstrap --reset-admin" in text

        # The second shell: the quickstart verbatim, in the checkout, nothing exported.
        result = subprocess.run(["bash", "-e", "-c", quickstart_script()], cwd=checkout, env=clean_env(),
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr + result.stdout
        assert '"sub": "alice"' in result.stdout
        assert f'"iss": "http://localhost:{port}/oauth2/token"' in result.stdout
        assert '"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"' in result.stdout
        assert "% Total" not in result.stderr  # curl's progress meter stays off
        # The server and the commands agree without exports; the checkout stays clean.
        issuer = subprocess.run([".venv/bin/python", "manage.py", "console_issuer"], cwd=checkout,
                                env=clean_env(), capture_output=True, text=True, check=True).stdout.strip()
        assert issuer == f"http://localhost:{port}/oauth2/token"
        assert git(checkout, "status", "--porcelain") == ""
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
