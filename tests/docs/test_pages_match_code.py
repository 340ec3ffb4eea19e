"""The documentation agrees with the code: every setting with its default, every command with its options.

The truth is ``identity_console/settings.py``, ``gunicorn.conf.py``, ``exchange/conf.py``'s DEFAULTS and
the commands' own parsers; the pages are docs/configuration.md and docs/commands.md.
"""

import re
from pathlib import Path

import pytest
from django.core.management import load_command_class
from django.core.management.base import BaseCommand

from exchange.conf import DEFAULTS

ROOT = next(parent for parent in Path(__file__).resolve().parents if (parent / "pyproject.toml").exists())
DOCS = ROOT / "docs"
COMMANDS = sorted(path.stem for path in (ROOT / "exchange" / "management" / "commands").glob("[!_]*.py"))

_ENV_READ = re.compile(r"""(?:environ\.get|env_bool|env_list)\(\s*["']([A-Z][A-Z0-9_]*)["']""")
_ENV_DEFAULT = re.compile(r"""environ\.get\(\s*["']([A-Z][A-Z0-9_]*)["']\s*,\s*["']([^"']*)["']\s*\)""")


def table_rows(page):
    """``{NAME: [cells after the first]}`` for every table row whose first cell names settings in backticks."""
    rows = {}
    for line in page.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
            rows[name] = cells[1:]
        rows[cells[0]] = cells[1:]
    return rows


def documented_default(cell):
    """The values a default cell states: its code spans, or the cell itself."""
    return re.findall(r"`([^`]*)`", cell) or [cell]


def expected_default(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize("key", [key for key, value in DEFAULTS.items() if isinstance(value, (bool, int, str)) and value != ""])
def test_token_exchange_default_is_the_code_default(key):
    rows = table_rows(DOCS / "configuration.md")
    assert key in rows, f"{key} is not in the TOKEN_EXCHANGE table"
    assert expected_default(DEFAULTS[key]) in documented_default(rows[key][0])


@pytest.mark.parametrize("source", ["identity_console/settings.py", "gunicorn.conf.py",
                                    "exchange/management/commands/bootstrap.py"])
def test_every_environment_variable_read_is_documented(source):
    rows = table_rows(DOCS / "configuration.md")
    names = set(_ENV_READ.findall((ROOT / source).read_text()))
    assert names
    assert sorted(names - set(rows)) == []


@pytest.mark.parametrize("source", ["identity_console/settings.py", "gunicorn.conf.py"])
def test_environment_defaults_are_the_code_defaults(source):
    rows = table_rows(DOCS / "configuration.md")
    wrong = {
        name: (default, rows[name][0])
        for name, default in _ENV_DEFAULT.findall((ROOT / source).read_text())
        if default and default not in documented_default(rows[name][0])  # "" is "unset", said in words
    }
    assert wrong == {}


def test_prose_defaults_agree_with_the_tables():
    """A sentence such as "`CONN_MAX_AGE` (default 600 s)" states the same default as the table."""
    rows = table_rows(DOCS / "configuration.md")
    wrong = []
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for name, value in re.findall(r"`([A-Z][A-Z0-9_]*)`,? \(default ([^\s),;]+)", page.read_text()):
            if name in rows and value.strip("`") not in documented_default(rows[name][0]):
                wrong.append(f"{page.name}: {name} default {value}, table {rows[name][0]}")
    assert wrong == []


def options(name):
    """The options a command adds to Django's own (``--json`` included), and whether it takes ``--json``."""
    command = load_command_class("exchange", name)
    base = {opt for action in BaseCommand().create_parser("manage.py", "base")._actions for opt in action.option_strings}
    own = {opt for action in command.create_parser("manage.py", name)._actions for opt in action.option_strings}
    return sorted(opt for opt in own - base if opt.startswith("--"))


def command_rows():
    rows = {}
    for key, cells in table_rows(DOCS / "commands.md").items():
        match = re.match(r"`(\w+)", key)
        if match:
            rows[match.group(1)] = key
    return rows


def test_every_command_has_a_row():
    assert COMMANDS
    assert sorted(command_rows()) == COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_of_a_command_is_in_its_row(name):
    synopsis = command_rows()[name]
    missing = [opt for opt in options(name) if not re.search(re.escape(opt) + r"(?![\w-])", synopsis)]
    assert missing == []


@pytest.mark.parametrize("name", COMMANDS)
def test_json_is_documented_exactly_where_it_exists(name):
    assert ("--json" in options(name)) == ("--json" in command_rows()[name])


def test_the_page_does_not_claim_every_command_takes_json():
    page = (DOCS / "commands.md").read_text()
    without_json = [name for name in COMMANDS if "--json" not in options(name)]
    if without_json:
        assert not re.search(r"[Ee]very command takes `--json`", page)
        assert all(name in page.split("|", 1)[0] for name in without_json)
