from pathlib import Path

from django.core.management.base import CommandError

from ...flows import create_trusted_token_issuer
from ...models import Application
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = "Register a trusted token issuer backed by a JWKS endpoint or PEM/DER certificates."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--name", required=True, help="Unique trusted token issuer name.")
        parser.add_argument("--issuer", required=True, help="The exact iss value of the issuer's tokens.")
        parser.add_argument("--alias", default="", help="What the issuer calls this console in aud.")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--jwks-uri", help="The issuer's JWKS endpoint.")
        source.add_argument(
            "--certificate", action="append", metavar="FILE",
            help="A PEM or DER certificate (or PEM public key) file; repeatable.",
        )
        parser.add_argument("--disabled", action="store_true", help="Create the issuer disabled.")
        parser.add_argument("--required-type", default="", metavar="TYP",
                            help="Require this typ header in its tokens, e.g. at+jwt (default: not required).")
        parser.add_argument(
            "--application", action="append", metavar="CLIENT_ID", default=[],
            help="Link the issuer to this application (repeatable): only linked applications may then "
                 "exchange its tokens. Default: no links (open to every application without links).",
        )

    def handle(self, *args, **options):
        pems = []
        for name in options["certificate"] or []:
            try:
                pems.append(Path(name).read_bytes())
            except OSError as exc:
                raise CommandError(f"Cannot read {name}: {exc.strerror}") from None
        applications = []
        for client_id in options["application"]:
            application = Application.objects.filter(client_id=client_id).first()
            if application is None:
                raise CommandError(f"No application has the client_id {client_id!r}.")
            applications.append(application)
        issuer = create_trusted_token_issuer(
            name=options["name"], issuer=options["issuer"], alias=options["alias"],
            jwks_uri=options["jwks_uri"] or "", certificates=pems, enabled=not options["disabled"],
            required_type=options["required_type"], applications=applications,
        )
        self.emit(
            options,
            {"id": issuer.pk, "name": issuer.name, "issuer": issuer.issuer, "alias": issuer.alias,
             "key_source": issuer.key_source, "enabled": issuer.enabled, "required_type": issuer.required_type,
             "applications": [a.client_id for a in applications]},
            f"Trusted token issuer {issuer.name!r} created (id {issuer.pk}).",
        )
