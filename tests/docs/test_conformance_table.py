"""docs/conformance.md names, for each MUST, the test that holds it: every test id there must exist."""

import ast
import re
from pathlib import Path

import pytest

ROOT = next(parent for parent in Path(__file__).resolve().parents if (parent / "pyproject.toml").exists())
PAGE = ROOT / "docs" / "conformance.md"
_NODE_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]`]*\])?`")


def node_ids():
    """(file, test function) pairs named in the page."""
    return sorted(set(_NODE_ID.findall(PAGE.read_text())))


def functions_in(path):
    """The names of the module-level functions of the test module at ``path``."""
    tree = ast.parse((ROOT / path).read_text())
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_the_table_names_tests():
    assert len(node_ids()) >= 30


@pytest.mark.parametrize("path, name", node_ids(), ids=lambda value: value)
def test_every_named_test_exists(path, name):
    assert (ROOT / path).exists(), path
    assert name in functions_in(path), f"{path}::{name}"


@pytest.mark.parametrize("rfc", ["RFC 8693", "RFC 6749", "RFC 9068", "RFC 7662", "RFC 7009", "RFC 8414", "RFC 8707"])
def test_every_specification_has_its_table(rfc):
    assert re.search(rf"^## {rfc} ", PAGE.read_text(), re.M)
