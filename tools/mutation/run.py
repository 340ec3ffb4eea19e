"""``make mutation``: a sampled mutation run over the security code; prints each module's score and every survivor.

For each module below, a seeded random sample of its mutants (mutator.py) is tested one at a
time: the mutant is written into a temporary copy of the tree (the checkout is never touched),
then only the tests that concern the module run (``TESTS``), with ``-x`` and a timeout. A mutant
is *killed* when they fail (or time out, or the module no longer imports) and *survives* when
they pass. Mutants listed as equivalent in docs/testing.md are not run and not counted.

Each test run is a fork of one process that imported pytest, its plugins and the libraries
beforehand (never this project's code), so a mutant costs its tests, not an interpreter start-up.

    python -m tools.mutation.run [--sample N|all] [--seed S] [--jobs J] [--module PATH] [--filter RE] [--screen N] [--list]
"""

import argparse
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .mutator import mutants_of

ROOT = Path(__file__).resolve().parents[2]

#: The tests that concern each module, by file name (found anywhere under tests/), quickest to fail first.
TESTS = {
    "exchange/subject_token.py": (
        "test_explanations.py", "test_mutation_survivors.py", "test_subject_token_types.py", "test_subject_tokens.py",
        "test_issuer_trust.py",
        "test_explain_token.py", "test_exchange.py", "test_wycheproof_vectors.py",
    ),
    "exchange/client_auth.py": (
        "test_client_credentials.py", "test_mutation_survivors.py", "test_client_auth.py", "test_client_secrets.py",
        "test_requests.py", "test_exchange.py",
    ),
    "exchange/key_sources.py": (
        "test_jwks_keys.py", "test_mutation_survivors.py", "test_jwks_faults.py", "test_shared_cache.py",
        "test_subject_tokens.py", "test_rotation.py", "test_metrics.py",
    ),
    "exchange/certificates.py": (
        "test_certificate_messages.py", "test_pem_linear_time.py", "test_mutation_survivors.py", "test_models.py",
        "test_subject_tokens.py", "test_issuers.py", "test_forms.py", "test_wycheproof_vectors.py",
    ),
    "exchange/grant.py": (
        "test_grant_checks.py", "test_mutation_survivors.py", "test_bounded_lifetimes.py", "test_token_request.py",
        "test_exchange.py", "test_exchange_path.py", "test_requests.py", "test_catalogue_gaps.py", "test_client_auth.py",
        "test_outage.py", "test_performance_invariants.py",
    ),
}
DEFAULT_SAMPLE = 20
DEFAULT_SEED = 22
EQUIVALENTS_DOC = "docs/testing.md"
#: Libraries imported once before forking; the project's own modules never are (each copy imports its own).
_PRELOAD = (
    "django", "django.db.models", "django.test", "rest_framework", "oauth2_provider", "oauthlib.oauth2", "jwt",
    "cryptography.x509", "hypothesis", "urllib3", "redis", "psycopg", "requests", "time_machine",
)
_WRONG_TREE = 99  # a child's exit code: the copy's ``exchange`` would not be the one imported
_KILLED_CODES = {1, 2, 3}  # tests failed, collection failed (the module no longer imports), internal error


@dataclass
class Task:
    path: str
    mutant: object = None  # None: the baseline run, unmutated
    outcome: str = ""
    seconds: float = 0.0
    cpu: float = 0.0
    log: str = ""


@dataclass
class Slot:
    copy: Path
    busy: Task | None = None
    pid: int = 0
    started: float = 0.0
    deadline: float = 0.0  # monotonic time: a backstop only
    cpu_limit: float = 0.0  # CPU seconds: the timeout, unaffected by how loaded the machine is
    originals: dict = field(default_factory=dict)


def tracked_files():
    """The checkout's files as they are now (committed or not, never ignored ones), relative to ROOT."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


_SETTINGS = '''"""Written by tools/mutation/run.py in its temporary copy: SQLite's test database at a fixed path."""
from identity_console.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "identity_console.sqlite":  # noqa: F405
    DATABASES["default"]["TEST"] = {{"NAME": {db!r}}}  # noqa: F405
'''
_DB = ".mutation-db.sqlite3"


def make_copy(files):
    """A temporary copy of the tree, where mutants are written and tests run.

    It adds one settings module: the test database at a fixed path, so that each run starts
    from a copy of the database the first run migrated (``--reuse-db``) instead of migrating.
    """
    copy = Path(tempfile.mkdtemp(prefix="mutation-"))
    for name in files:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (copy / "_mutation_settings.py").write_text(_SETTINGS.format(db=str(copy / _DB)))
    return copy


def _restore_database(copy):
    """The migrated test database as the first run left it (saved once, then copied back before each run)."""
    db, template = copy / _DB, copy / (_DB + ".template")
    if not template.exists() and db.exists():
        # Through SQLite, not as a file: a forked run ends without a checkpoint, its writes still in the WAL.
        with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(template)) as target:
            source.backup(target)
    if template.exists():
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, db)


def test_files(path, root=ROOT):
    """The test files of ``TESTS[path]`` under ``root``, relative to it (tests/test_mutation_tool.py checks the table)."""
    found = []
    for name in TESTS[path]:
        matches = sorted((root / "tests").rglob(name))
        if len(matches) > 1:
            raise SystemExit(f"mutation: TESTS[{path!r}] names {name}, found {len(matches)} times under tests/")
        found += [str(match.relative_to(root)) for match in matches]
    return found


def read_equivalents(doc=ROOT / EQUIVALENTS_DOC):
    """(path, function, "before → after") of each row of the "Equivalent mutants" table in docs/testing.md."""
    rows, in_section = set(), False
    if not doc.exists():
        return rows
    for line in doc.read_text().splitlines():
        if line.startswith("## "):
            in_section = line.strip() == "## Equivalent mutants"
            continue
        if not in_section or not line.startswith("|"):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        path, function = cells[0].strip("`"), cells[1].strip("`")
        rows.add((path, function, cells[2].replace("`", "")))
    return rows


def equivalence_key(mutant):
    return (mutant.path, mutant.function, mutant.name)


def sample(path, size, seed, pattern=None):
    """The mutants of ``path`` to run: ``size`` drawn at random with ``seed`` (all of them for None)."""
    mutants = mutants_of(path, (ROOT / path).read_text())
    if pattern:
        mutants = [m for m in mutants if re.search(pattern, f"{m.label} {m.function}")]
    if size is None or size >= len(mutants):
        return mutants, len(mutants)
    chosen = random.Random(f"{seed}:{path}").sample(mutants, size)
    return sorted(chosen, key=lambda m: (m.start, m.kind, m.after)), len(mutants)


def preload():
    """Import pytest's plugins and the heavy libraries once, so that every forked test run finds them loaded."""
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)  # pytest-django sets it from pyproject.toml in each child
    sys.dont_write_bytecode = True  # no .pyc of a mutant can outlive it
    for entry in importlib.metadata.entry_points(group="pytest11"):
        try:
            entry.load()
        except Exception:  # a plugin that needs configuration loads again, normally, in the child
            pass
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    if "exchange" in sys.modules or "identity_console" in sys.modules:
        raise SystemExit("mutation: the project's own code was imported before forking")


def _child(copy, args, log):
    """The forked test run: pytest in ``copy``, its output into ``log``; never returns."""
    code = 3
    try:
        os.setpgid(0, 0)  # its own process group: a timeout kills whatever it started
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(copy)
        sys.path[:] = [str(copy)] + [p for p in sys.path if p not in ("", str(ROOT))]
        spec = importlib.util.find_spec("exchange")
        if spec is None or not spec.origin.startswith(str(copy)):
            code = _WRONG_TREE
        else:
            code = int(pytest.main(args))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _pytest_args(copy, path):
    return ["-q", "-x", "-p", "no:cacheprovider", "-m", "not slow", f"--basetemp={copy}/.pytest-tmp",
            "--ds=_mutation_settings", "--reuse-db",
            *[str(copy / name) for name in test_files(path, copy)]]


def _start(slot, task, log_dir):
    slot.busy, slot.started = task, time.monotonic()
    target = slot.copy / task.path
    if task.mutant is not None:
        original = slot.originals.setdefault(task.path, target.read_text())
        target.write_text(task.mutant.apply(original))
    _restore_database(slot.copy)
    task.log = str(log_dir / f"{len(os.listdir(log_dir)):04d}.log")
    pid = os.fork()
    if pid == 0:
        _child(slot.copy, _pytest_args(slot.copy, task.path), task.log)
    slot.pid = pid


def _finish(slot, status, usage, timed_out):
    task = slot.busy
    task.seconds = time.monotonic() - slot.started
    task.cpu = usage.ru_utime + usage.ru_stime if usage else 0.0
    if task.mutant is not None:
        (slot.copy / task.path).write_text(slot.originals[task.path])
    if timed_out:
        task.outcome = "timeout"
        for suffix in ("", "-wal", "-shm", "-journal"):  # the test database of a run that was killed
            Path(tempfile.gettempdir(), f"identity-console-test-{slot.pid}.sqlite3{suffix}").unlink(missing_ok=True)
    else:
        code = os.waitstatus_to_exitcode(status)
        if code == _WRONG_TREE:
            raise SystemExit(f"mutation: the test run in {slot.copy} would not import that copy's exchange/")
        if code == 0:
            task.outcome = "survived"
        elif code in _KILLED_CODES or code < 0:
            task.outcome = "killed"
        else:
            task.outcome = f"error {code}"
    slot.busy, slot.pid = None, 0
    return task


def run_tasks(tasks, slots, log_dir, timeouts, report):
    """Run every task, one per free slot at a time; ``report(task)`` as each ends."""
    queue = list(tasks)
    try:
        _run_queue(queue, slots, log_dir, timeouts, report)
    finally:  # interrupted: no test run outlives this process
        for slot in slots:
            if slot.busy is not None:
                os.killpg(slot.pid, signal.SIGKILL)
                os.waitpid(slot.pid, 0)


def _cpu_seconds(pid):
    """CPU time used so far by the test run ``pid`` and the children it waited for (Linux /proc), or 0."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _run_queue(queue, slots, log_dir, timeouts, report):
    while queue or any(slot.busy for slot in slots):
        for slot in slots:
            if slot.busy is None and queue:
                task = queue.pop(0)
                _start(slot, task, log_dir)
                slot.cpu_limit, wall = timeouts.get(task.path, (3600.0, 3600.0))
                slot.deadline = slot.started + wall
        time.sleep(0.1)
        for slot in slots:
            if slot.busy is None:
                continue
            pid, status, usage = os.wait4(slot.pid, os.WNOHANG)
            if pid:
                report(_finish(slot, status, usage, False))
            elif time.monotonic() > slot.deadline or _cpu_seconds(slot.pid) > slot.cpu_limit:
                os.killpg(slot.pid, signal.SIGKILL)
                _, _, usage = os.wait4(slot.pid, 0)
                report(_finish(slot, 0, usage, True))


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _original_line(path, line):
    return (ROOT / path).read_text().splitlines()[line - 1].strip()


def _record(task):
    m = task.mutant
    return {"path": m.path, "line": m.line, "function": m.function, "kind": m.kind, "before": m.before,
            "after": m.after, "outcome": task.outcome}


def _source_hash(path):
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def previously_killed(json_path):
    """Mutants a previous run (``--resume``) killed in modules unchanged since: tests only grow, so they stay killed."""
    try:
        previous = json.loads(Path(json_path).read_text())
    except (OSError, ValueError):
        return set()
    unchanged = {path for path, digest in previous.get("sources", {}).items() if (ROOT / path).exists()
                 and _source_hash(path) == digest}
    return {(r["path"], r["line"], r["function"], r["kind"], r["before"], r["after"])
            for r in previous.get("mutants", []) if r["path"] in unchanged and r["outcome"] in ("killed", "timeout")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", default=str(DEFAULT_SAMPLE), help="mutants per module, or 'all'")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--jobs", type=int, default=2, help="test runs at once (one temporary copy each)")
    parser.add_argument("--module", action="append", choices=sorted(TESTS), help="only these modules")
    parser.add_argument("--filter", help="only mutants whose 'path:line [kind] before → after function' matches")
    parser.add_argument("--list", action="store_true", help="list the sampled mutants, run nothing")
    parser.add_argument("--resume", action="store_true",
                        help="count mutants the last run (--json) killed as killed, if their module is unchanged")
    parser.add_argument("--cpu-timeout", type=float,
                        help="CPU seconds per test run; skips the unmutated baseline runs (run the tests first)")
    parser.add_argument("--screen", type=int, metavar="N",
                        help="only the first N test files of each module's table: a quick screen (a mutant killed"
                             " here is killed by the whole table; rerun the survivors without --screen)")
    parser.add_argument("--keep-logs", action="store_true", help="keep each test run's output (its path is printed)")
    parser.add_argument("--json", default=str(ROOT / "var" / "mutation" / "results.json"))
    options = parser.parse_args(argv)
    size = None if options.sample == "all" else int(options.sample)
    if options.screen:
        for path in TESTS:
            TESTS[path] = TESTS[path][:options.screen]
    modules = options.module or list(TESTS)
    signal.signal(signal.SIGTERM, _interrupted)

    equivalents = read_equivalents()
    known = previously_killed(options.json) if options.resume else set()
    chosen, totals, skipped, reused = {}, {}, {}, []
    for path in modules:
        mutants, totals[path] = sample(path, size, options.seed, options.filter)
        skipped[path] = [m for m in mutants if equivalence_key(m) in equivalents]
        chosen[path] = []
        for m in mutants:
            if equivalence_key(m) in equivalents:
                continue
            if (m.path, m.line, m.function, m.kind, m.before, m.after) in known:
                reused.append(Task(path, m, outcome="killed"))
            else:
                chosen[path].append(m)
    print(f"mutation: seed {options.seed}, sample {options.sample} per module, jobs {options.jobs}"
          + (f", screen: the first {options.screen} test files of each table" if options.screen else ""))
    for path in modules:
        again = sum(t.path == path for t in reused)
        print(f"  {path}: {len(chosen[path]) + again} of {totals[path]} mutants"
              f" ({len(skipped[path])} more sampled are listed as equivalent"
              + (f"; {again} killed by the last run, not rerun" if again else "") + ")")
    if options.list:
        for path in modules:
            for m in chosen[path]:
                print(f"{m.label}    in {m.function}")
        return 0

    preload()
    files = tracked_files()
    slots = [Slot(make_copy(files)) for _ in range(max(1, options.jobs))]
    log_dir = Path(tempfile.mkdtemp(prefix="mutation-logs-"))
    done, elapsed = list(reused), 0.0
    try:
        # Baselines: the unmutated tests must pass; their time sets each module's timeout.
        timeouts, failures = {}, []

        def baseline_done(task):
            print(f"  baseline {task.path}: {task.outcome} in {task.seconds:.0f} s ({task.cpu:.1f} s CPU)", flush=True)
            if task.outcome != "survived":
                failures.append(task)
            # Timeouts in CPU seconds (a loaded machine slows every run alike), with a generous wall-clock backstop.
            timeouts[task.path] = (3 * task.cpu + 20, max(900.0, 10 * task.seconds))

        baselines = [Task(path) for path in modules if chosen[path]]
        if options.cpu_timeout:
            # The unmutated runs go first in the same queue instead of before it; their failure voids the scores.
            timeouts = {path: (options.cpu_timeout, max(900.0, 20 * options.cpu_timeout)) for path in modules}
        else:
            run_tasks(baselines, slots, log_dir, {}, baseline_done)
            baselines = []
        if failures:
            for task in failures:
                print(f"mutation: the tests of {task.path} fail without any mutation; see {task.log}")
            return 2

        tasks = [Task(path, m) for path in modules for m in chosen[path]]

        def mutant_done(task):
            if task.mutant is None:
                baseline_done(task)
                return
            done.append(task)
            print(f"  [{len(done) - len(reused):4d}/{len(tasks)}] {task.outcome:8s} {task.seconds:5.1f} s"
                  f" ({task.cpu:4.1f} s CPU)  {task.mutant.label}" + (f"  log {task.log}" if options.keep_logs else ""),
                  flush=True)

        started = time.monotonic()
        run_tasks(baselines + tasks, slots, log_dir, timeouts, mutant_done)
        elapsed = time.monotonic() - started
        if failures:
            for task in failures:
                print(f"mutation: the tests of {task.path} fail without any mutation; see {task.log}")
            return 2
    finally:
        for slot in slots:
            shutil.rmtree(slot.copy, ignore_errors=True)
        if not options.keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)

    print(f"\nmutation: {len(done) - len(reused)} mutants run in {elapsed / 60:.1f} min"
          f" (seed {options.seed}, sample {options.sample})")
    print(f"{'module':32s} {'killed':>7s} {'of':>5s} {'score':>7s} {'equiv.':>7s} {'mutants':>8s}")
    results = {"seed": options.seed, "sample": options.sample, "modules": {},
               "sources": {path: _source_hash(path) for path in modules},
               "mutants": [_record(t) for t in done]}
    for path in modules:
        mine = [t for t in done if t.path == path]
        killed = sum(t.outcome in ("killed", "timeout") for t in mine)
        score = 100.0 * killed / len(mine) if mine else 100.0
        print(f"{path:32s} {killed:7d} {len(mine):5d} {score:6.1f}% {len(skipped[path]):7d} {totals[path]:8d}")
        results["modules"][path] = {"killed": killed, "run": len(mine), "score": round(score, 1),
                                    "equivalent": len(skipped[path]), "mutants": totals[path]}
    survivors = [t for t in done if t.outcome not in ("killed", "timeout")]
    if survivors:
        print("\nSurvivors (file:line [kind] original → mutated; the original line; the function):")
    for task in survivors:
        m = task.mutant
        print(f"  {m.label}   ({task.outcome})\n      {_original_line(m.path, m.line)}\n      in {m.function}")
    Path(options.json).parent.mkdir(parents=True, exist_ok=True)
    Path(options.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
