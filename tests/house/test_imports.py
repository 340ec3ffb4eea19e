"""House rules, read from the source with ``ast``: the app never imports the project, test tooling stays in tests/.

``exchange/`` is the app; ``identity_console/`` is the project that installs it (settings, URLs,
the AdminSite). The project imports the app, never the reverse, so the app stays installable
on its own. ``django.test`` (RequestFactory, the test client, override_settings) belongs to the
tests: production code that builds fake requests bypasses the middleware a real request meets.
Imports through strings (``importlib``, ``__import__``) are out of scope.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The app: every Python file under exchange/ (migrations, commands, api, ops included).
APP_FILES = sorted((ROOT / "exchange").rglob("*.py"))
#: Everything that runs outside the test suite.
PRODUCTION_FILES = sorted(
    [path for folder in ("exchange", "identity_console", "bench") for path in (ROOT / folder).rglob("*.py")]
    + [ROOT / "manage.py", ROOT / "gunicorn.conf.py"]
)


def imported_modules(source, module_path=()):
    """(line, dotted name) of every module ``source`` imports, wherever the statement sits.

    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a submodule: ``from django import test``);
    relative imports are resolved against ``module_path``, the importing module's dotted parts.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = list(module_path[:-1])
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _module_path(path):
    return path.relative_to(ROOT).with_suffix("").parts


def within(name, package):
    return name == package or name.startswith(package + ".")


def offenders(files, package):
    """``path:line: module`` for every import of ``package`` (or a submodule) in ``files``."""
    found = {}
    for path in files:
        for line, name in imported_modules(path.read_text(), _module_path(path)):
            if within(name, package):
                found.setdefault((str(path.relative_to(ROOT)), line), name)  # the module, before its names
    return [f"{path}:{line}: {name}" for (path, line), name in sorted(found.items())]


def test_the_scanned_files_are_the_real_ones():
    """A glob that found nothing would make both rules pass vacuously."""
    names = {str(path.relative_to(ROOT)) for path in PRODUCTION_FILES}
    assert {"exchange/grant.py", "exchange/ops/metrics.py", "identity_console/settings.py", "bench/run.py",
            "manage.py", "gunicorn.conf.py"} <= names
    assert set(APP_FILES) < set(PRODUCTION_FILES)


@pytest.mark.parametrize(
    "source, package",
    [
        ("import identity_console", "identity_console"),
        ("import identity_console.settings as s", "identity_console"),
        ("from identity_console import console", "identity_console"),
        ("from identity_console.console import site", "identity_console"),
        ("def f():\n    from identity_console.sqlite import base", "identity_console"),
        ("try:\n    import identity_console.urls\nexcept ImportError:\n    pass", "identity_console"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from identity_console import settings", "identity_console"),
        ("from django.test import RequestFactory", "django.test"),
        ("from django import test", "django.test"),
        ("import django.test.client", "django.test"),
        ("class A:\n    def f(self):\n        from django.test.client import RequestFactory as RF", "django.test"),
    ],
)
def test_every_form_of_a_forbidden_import_is_found(source, package):
    """The attack: the forbidden import hidden in a function, a try, a TYPE_CHECKING block, an alias."""
    path = ROOT / "exchange" / "_probe.py"
    assert any(within(name, package) for _, name in imported_modules(source, _module_path(path)))


@pytest.mark.parametrize(
    "source, package",
    [
        ("import identity_consoles", "identity_console"),
        ("from exchange import identity_console_helpers", "identity_console"),
        ("from . import console", "identity_console"),
        ("from django import testing", "django.test"),
        ("import django.tests", "django.test"),
        ("from django.core import test_runner", "django.test"),
    ],
)
def test_lookalike_names_are_not_offenders(source, package):
    path = ROOT / "exchange" / "ops" / "_probe.py"
    assert not any(within(name, package) for _, name in imported_modules(source, _module_path(path)))


def test_relative_imports_resolve_against_the_importing_module():
    names = [name for _, name in imported_modules("from ..models import A\nfrom . import proxies",
                                                  ("exchange", "ops", "metrics"))]
    assert names == ["exchange.models", "exchange.models.A", "exchange.ops", "exchange.ops.proxies"]
    names = [name for _, name in imported_modules("from .conf import x", ("exchange", "ops", "__init__"))]
    assert names == ["exchange.ops.conf", "exchange.ops.conf.x"]


def test_the_app_never_imports_the_project():
    assert offenders(APP_FILES, "identity_console") == []


def test_no_test_tooling_outside_tests():
    assert offenders(PRODUCTION_FILES, "django.test") == []
