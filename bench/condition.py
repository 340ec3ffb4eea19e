"""What an admission condition costs: in-process exchanges/s with and without one, in one run.

Prepares a SQLite database and RS256 subject tokens as ``bench.inprocess`` does, then serves
token exchanges through Django's WSGI handler (as gunicorn calls it) in alternating rounds: the
bench PEM issuer with a typical two-clause condition, then without any, so both see the same
drift of a shared machine's speed. Also times the condition's evaluation alone (timeit) on the
bench token's claims and on a GitHub Actions-shaped claim set (about twenty claims).

    python -m bench.condition [--rounds 6] [--per-round 150] [--workdir var/bench/condition]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

from bench import fixtures, inprocess

ROOT = Path(__file__).resolve().parent.parent
#: Two clauses, as the presets' examples have: an exact value and a prefix.
CONDITION = f'claims.iss == "{fixtures.PEM_ISSUER}" && claims.sub.startsWith("bench-user-")'
GITHUB_CLAIMS = {
    "iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/app:ref:refs/heads/main",
    "aud": fixtures.CONSOLE_ISSUER, "exp": 1, "iat": 0, "nbf": 0, "jti": "a" * 36, "ref": "refs/heads/main",
    "sha": "f" * 40, "repository": "acme/app", "repository_owner": "acme", "repository_owner_id": "424242",
    "repository_id": "7", "repository_visibility": "private", "actor": "alice", "actor_id": "9",
    "workflow": "ci", "event_name": "push", "ref_type": "branch", "job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main",
    "runner_environment": "github-hosted", "run_id": "1", "run_number": "1", "run_attempt": "1",
}
GITHUB_CONDITION = 'claims.repository_owner_id == "424242" && claims.ref.startsWith("refs/heads/")'


def run(workdir, rounds, per_round):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_console.settings")
    import django  # noqa: PLC0415 (after the environment is set)

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler  # noqa: PLC0415 (needs settings)

    from exchange import conditions, flows  # noqa: PLC0415 (needs settings)
    from exchange.models import TrustedTokenIssuer  # noqa: PLC0415

    credentials = json.loads((workdir / "application.json").read_text())
    tokens = iter((workdir / "tokens.txt").read_text().split())
    issuer = TrustedTokenIssuer.objects.get(issuer=fixtures.PEM_ISSUER)
    handler = WSGIHandler()
    statuses = []

    def serve(count):
        environs = [inprocess._environ("exchange_rs256", credentials, next(tokens)) for _ in range(count)]
        start = time.perf_counter()
        for environ in environs:
            for _ in handler(environ, lambda status, headers, exc_info=None: statuses.append(status)):
                pass
        return count / (time.perf_counter() - start)

    figures = {"with": [], "without": []}
    serve(20)  # warm-up
    for _ in range(rounds):
        for label, condition in (("with", CONDITION), ("without", "")):
            flows.update_trusted_token_issuer(issuer, condition=condition)
            serve(3)  # the registry reloads (and compiles) once after a change
            figures[label].append(serve(per_round))
    bad = [s for s in statuses if not s.startswith("200")]
    bench_claims = {"iss": fixtures.PEM_ISSUER, "sub": "bench-user-0123abcd", "aud": fixtures.CONSOLE_ISSUER,
                    "iat": 0, "exp": 1, "jti": "a" * 32}
    evaluation = {}
    for label, expression, claims in (("bench_claims", CONDITION, bench_claims),
                                      ("github_claims", GITHUB_CONDITION, GITHUB_CLAIMS)):
        program = conditions.compile_condition(expression)
        assert conditions.evaluate(program, claims) == (True, "")
        per = min(timeit.repeat(lambda: conditions.evaluate(program, claims), number=2000, repeat=5)) / 2000
        evaluation[label] = round(per * 1e6, 1)
    compile_us = min(timeit.repeat(lambda: conditions.compile_condition(GITHUB_CONDITION), number=500, repeat=5)) / 500
    with_rps, without_rps = statistics.median(figures["with"]), statistics.median(figures["without"])
    result = {
        "rounds": rounds, "per_round": per_round, "non_200": bad[:3],
        "exchanges_per_s_with": [round(x, 1) for x in figures["with"]],
        "exchanges_per_s_without": [round(x, 1) for x in figures["without"]],
        "median_with": round(with_rps, 1), "median_without": round(without_rps, 1),
        "cost_percent": round(100 * (1 - with_rps / without_rps), 2),
        "evaluate_us": evaluation, "compile_us": round(compile_us * 1e6, 1),
        "evaluate_share_of_exchange_percent": round(100 * evaluation["github_claims"] * 1e-6 * without_rps, 2),
    }
    print(json.dumps(result, indent=2))
    return 1 if bad else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", nargs="?", default="all", choices=["all", "run"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=150)
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "condition"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    if args.action == "run":
        return run(workdir, args.rounds, args.per_round)
    needed = 20 + args.rounds * 2 * (args.per_round + 3)
    inprocess.prepare(workdir, 0)
    fixtures.mint_tokens(workdir / "tokens.txt", fixtures.key_file(workdir, "subject-issuer-rsa", "rsa"),
                         fixtures.PEM_ISSUER, needed)
    env = inprocess._env_for(workdir, "exchange_rs256")
    command = [sys.executable, "-m", "bench.condition", "run", "--rounds", str(args.rounds),
               "--per-round", str(args.per_round), "--workdir", str(workdir)]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
