"""The README's quickstart, copied verbatim into a shell, against a served instance (slow: run by .ci/run)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.live]


def quickstart_script():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```\n", 1)[0]


def port_free(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(not port_free(8000), reason="port 8000 is in use; the quickstart needs it")
def test_readme_quickstart_verbatim(tmp_path):
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "CONSOLE_ADMIN_PASSWORD": "quickstart-admin-pw"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    subprocess.run([python, "manage.py", "bootstrap"], cwd=ROOT, env=env, check=True, timeout=120, capture_output=True)
    server = subprocess.Popen(
        [str(Path(python).parent / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:8000", "identity_console.wsgi"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while port_free(8000):
            assert time.monotonic() < deadline, "the server did not start"
            assert server.poll() is None, "the server exited"
            time.sleep(0.2)
        work = tmp_path / "shell"
        work.mkdir()
        script = quickstart_script().replace(".venv/bin/python", python).replace("manage.py", str(ROOT / "manage.py"))
        result = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert '"sub": "alice"' in result.stdout
        assert '"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"' in result.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
