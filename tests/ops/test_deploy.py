"""The production settings documented in docs/deployment.md pass ``manage.py check --deploy`` without a warning."""

import re
import subprocess
import sys

from ..processes import ROOT, base_env


def documented_production_env():
    page = (ROOT / "docs" / "deployment.md").read_text()
    block = re.search(r"<!-- production-env -->\s*```sh\n(.*?)```\s*<!-- /production-env -->", page, re.S).group(1)
    env = {}
    for line in block.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    return env


def test_deployment_page_documents_the_settings_it_needs():
    env = documented_production_env()
    for name in ("ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_PROXY_SSL_HEADER", "DATABASE_URL", "REDIS_URL"):
        assert env[name]


def test_check_deploy_passes_with_documented_production_settings(tmp_path):
    env = base_env(tmp_path, **documented_production_env())
    env["SECRET_KEY"] = "q7Jx2Rk9vN4mP8sT1wY6zB3cF5hL0dG-aE7uI2oK9rM4nQ8pV1jX6"  # the placeholder, filled in
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_about_development_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=base_env(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr  # no HSTS
