"""Prepare the database the server under test will use: migrate, bench issuers, bench application.

Run with the server's environment (VAR_DIR, DATABASE_URL, ...):
``python -m bench.prepare --folder var/bench --jwks-url http://127.0.0.1:PORT/jwks.json --out app.json``
"""

import argparse
import os
import sys
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", required=True, help="bench work folder holding the issuer keys")
    parser.add_argument("--jwks-url", default="", help="loopback JWKS URL for the JWKS-backed issuer")
    parser.add_argument("--out", required=True, help="where to write the application's credentials (JSON)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_console.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from bench import fixtures

    call_command("migrate", interactive=False, verbosity=0)
    fixtures.write_json(args.out, fixtures.prepare_database(args.folder, args.jwks_url))


if __name__ == "__main__":
    main()
