"""Prepare the database the server under test will use: migrate, bench issuers, bench application.

Run with the server's environment (VAR_DIR, DATABASE_URL, ...):
``python -m bench.prepare --folder var/bench --jwks-url http://127.0.0.1:PORT/jwks.json --out app.json``
"""

import argparse
import os
import sys
from pathlib import Path

import django
from django.core.management import call_command

from bench import fixtures
from tests.factories import certificate_pem


def prepare_database(folder, jwks_url):
    """Create the bench issuers and application in the configured database.

    Returns {"client_id", "client_secret"}; replaces earlier bench objects of the same names.
    """
    # Here, not at the top (no cycle): models can be imported only once main() has set Django up.
    from exchange import flows
    from exchange.models import Application, TrustedTokenIssuer

    TrustedTokenIssuer.objects.filter(issuer__in=[fixtures.PEM_ISSUER, fixtures.JWKS_ISSUER]).delete()
    Application.objects.filter(name="Bench application").delete()
    pem_key = fixtures.load_key(fixtures.key_file(folder, "subject-issuer-rsa", "rsa"))
    flows.create_trusted_token_issuer(
        name="Bench PEM issuer", issuer=fixtures.PEM_ISSUER,
        certificates=[certificate_pem(pem_key, common_name="Bench issuer", days=31)])
    if jwks_url:
        flows.create_trusted_token_issuer(name="Bench JWKS issuer", issuer=fixtures.JWKS_ISSUER, jwks_uri=jwks_url)
    application, secret = flows.create_application(
        name="Bench application", grant_types=["token_exchange", "client_credentials"])
    return {"client_id": application.client_id, "client_secret": secret}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", required=True, help="bench work folder holding the issuer keys")
    parser.add_argument("--jwks-url", default="", help="loopback JWKS URL for the JWKS-backed issuer")
    parser.add_argument("--out", required=True, help="where to write the application's credentials (JSON)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_console.settings")
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    fixtures.write_json(args.out, prepare_database(args.folder, args.jwks_url))


if __name__ == "__main__":
    main()
