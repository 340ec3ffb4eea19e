"""The mutation tool itself (tools/mutation, ``make mutation``): each kind of mutation is produced where it
should be and nowhere else, line numbers survive, the checkout is never written, the test table and the
list of equivalent mutants in docs/testing.md still name what exists."""

import ast
import hashlib
import shutil

import pytest

from tools.mutation import run
from tools.mutation.mutator import KINDS, mutants_of

SAMPLE = '''"""Module docstring: never mutated."""
import logging

log = logging.getLogger(__name__)
LIMIT = 500


def check(value, items):
    """Function docstring: never mutated."""
    log.warning("not behaviour %s", value)
    if value < LIMIT and value != 3:
        raise ValueError(
            "too large",
        )
    label: str = "kept" if value else "empty"
    return [item for item in items if item is not None], label


@decorate(flag=True)
def typed(x: "Quoted" = 1) -> "Result":
    return x
'''


def _changed_lines(mutant, source):
    """The numbers of the lines the mutant changed."""
    before, after = source.splitlines(), mutant.apply(source).splitlines()
    assert len(before) == len(after), mutant.label  # line numbers unchanged
    return [number for number, (b, a) in enumerate(zip(before, after), 1) if b != a]


def test_every_kind_is_produced():
    mutants = mutants_of("sample.py", SAMPLE)
    assert {m.kind for m in mutants} == set(KINDS)
    shown = {(m.kind, m.before, m.after) for m in mutants}
    assert ("comparison", "value < LIMIT", "value <= LIMIT") in shown
    assert ("comparison", "value != 3", "value == 3") in shown
    assert ("comparison", "item is not None", "item is None") in shown
    assert ("boolean", "value < LIMIT and value != 3", "value < LIMIT or value != 3") in shown
    assert ("raise", "raise ValueError('too large')", "pass") in shown
    assert ("constant", "500", "501") in shown
    assert ("constant", "'too large'", "'XXtoo largeXX'") in shown
    for forced in ("True", "False"):
        assert ("condition", "value < LIMIT and value != 3", forced) in shown  # an if
        assert ("condition", "value", forced) in shown  # a conditional expression
        assert ("condition", "item is not None", forced) in shown  # a comprehension's filter
    assert any(m.kind == "return" and m.function == "check" for m in mutants)


def test_docstrings_log_arguments_annotations_and_decorators_are_not_mutated():
    mutants = mutants_of("sample.py", SAMPLE)
    lines = {m.line for m in mutants}
    assert not lines & {1, 9, 10, 19}  # docstrings, the log call, the decorator
    assert not any("Quoted" in m.before or "Result" in m.before for m in mutants)
    assert {m.before for m in mutants if m.line == 20} == {"1"}  # the default value is code


def test_each_mutant_changes_one_place_and_keeps_every_line_number():
    tree = ast.dump(ast.parse(SAMPLE))
    for mutant in mutants_of("sample.py", SAMPLE):
        mutated = mutant.apply(SAMPLE)
        assert ast.dump(ast.parse(mutated)) != tree, mutant.label
        changed = _changed_lines(mutant, SAMPLE)
        assert changed and all(mutant.start[0] <= n <= mutant.end[0] for n in changed), mutant.label


def test_a_removed_multi_line_raise_keeps_the_lines_after_it_in_place():
    (mutant,) = [m for m in mutants_of("sample.py", SAMPLE) if m.kind == "raise"]
    mutated = mutant.apply(SAMPLE).splitlines()
    assert mutated[11].strip() == "pass" and mutated[12:14] == ["", ""]
    assert mutated[14] == SAMPLE.splitlines()[14]


def test_non_ascii_source_is_cut_at_the_right_place():
    source = 'NAME = "é"\nif NAME == "é" and True:\n    pass\n'
    for mutant in mutants_of("x.py", source):
        compile(mutant.apply(source), "x.py", "exec")
    assert any(m.after == "NAME != 'é'" for m in mutants_of("x.py", source))


def _fingerprint(paths):
    return {path: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) for path in paths}


def test_mutants_are_written_to_a_copy_never_to_the_checkout():
    modules = [run.ROOT / path for path in run.TESTS]
    before = _fingerprint(modules)
    copy = run.make_copy(list(run.TESTS))
    try:
        assert run.ROOT not in copy.parents
        for path in run.TESTS:
            source = (run.ROOT / path).read_text()
            mutant = mutants_of(path, source)[0]
            (copy / path).write_text(mutant.apply(source))  # what a run does, in its copy
            assert (copy / path).read_text() != source
    finally:
        shutil.rmtree(copy)
    assert _fingerprint(modules) == before


@pytest.mark.parametrize("path", sorted(run.TESTS))
def test_the_test_table_names_existing_test_files(path):
    files = run.test_files(path)
    assert files and all((run.ROOT / name).is_file() for name in files)


def test_every_listed_equivalent_mutant_still_exists():
    """A row of docs/testing.md's table that matches no mutant any more (the code changed) must go."""
    rows = run.read_equivalents()
    produced = {run.equivalence_key(m) for path in run.TESTS for m in mutants_of(path, (run.ROOT / path).read_text())}
    assert sorted(rows - produced) == []


def test_the_same_change_twice_in_a_function_is_numbered():
    first, second = mutants_of("x.py", "def f():\n    a = ''\n    b = ''\n")
    assert (first.name, second.name) == ("'' → 'XXXX'", "'' → 'XXXX' #2")
    assert run.equivalence_key(second) == ("x.py", "f", "'' → 'XXXX' #2")
