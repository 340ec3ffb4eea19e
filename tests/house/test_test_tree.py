"""The test tree's own rules: a package per concern, unique module names, one meaning per fixture name."""

import ast
import re
from collections import Counter
from pathlib import Path

import pytest_django.fixtures
import pytest_django.plugin

TESTS = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent for p in TESTS.rglob("*.py") if p.parent != TESTS and "__pycache__" not in p.parts)


def _fixtures(path):
    """Names of the functions decorated with @pytest.fixture in the module at ``path``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if ast.unparse(target) == "pytest.fixture":
                    names.append(node.name)
    return names


def _is_fixture(value):
    return type(value).__name__ == "FixtureFunctionDefinition" or hasattr(value, "_pytestfixturefunction")


def test_every_folder_is_a_package_with_its_conftest():
    for folder in FOLDERS:
        assert (folder / "__init__.py").exists(), folder
        assert (folder / "conftest.py").exists(), folder


def test_module_names_are_unique_across_folders():
    counts = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, n in counts.items() if n > 1] == []


def test_one_definition_per_fixture_name_and_none_shadows_pytest_django():
    ours = Counter(name for path in TESTS.rglob("*.py") for name in _fixtures(path))
    assert [name for name, n in ours.items() if n > 1] == []
    theirs = {name for module in (pytest_django.fixtures, pytest_django.plugin)
              for name, value in vars(module).items() if _is_fixture(value)}
    assert {"client", "admin_client", "admin_user", "settings"} <= theirs  # the scan sees pytest-django's fixtures
    assert sorted(set(ours) & theirs) == []


def test_fixtures_are_never_imported_by_name():
    for path in TESTS.rglob("*.py"):
        assert not re.search(r"#\s*noqa:\s*F401", path.read_text()), path


def test_documents_beside_the_repository_are_cited_as_such():
    """The design, style and reference documents live beside the repository: a test cites them as ``../shared/...``
    (and says what it takes from them), never as if they were files of the repository."""
    outside = re.compile(r"[\w./-]*\b(?:DESIGN|STYLE|attack-cases|peers|wso2-behaviour)\.md\b")
    for path in TESTS.rglob("*.py"):
        for cited in outside.findall(path.read_text()):
            assert cited.startswith("../shared/"), (path, cited)
