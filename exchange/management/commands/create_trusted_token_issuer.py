import json
from pathlib import Path

from django.core.management.base import CommandError

from ... import presets
from ...flows import (
    create_trusted_token_issuer,
    discovered_issuer_settings,
    preset_issuer,
    update_trusted_token_issuer,
)
from ...models import Application, TrustedTokenIssuer
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("Register a trusted token issuer backed by a JWKS endpoint (given, or found with --discover) "
            "or PEM/DER certificates; with --update, change the issuer of that name if it exists.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--name", required=True, help="Unique trusted token issuer name.")
        parser.add_argument("--issuer", default="",
                            help="The exact iss value of the issuer's tokens (optional with a preset that fixes it).")
        parser.add_argument("--alias", default="", help="What the issuer calls this console in aud.")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--jwks-uri", help="The issuer's JWKS endpoint.")
        source.add_argument(
            "--discover", action="store_true",
            help="Read the JWKS endpoint and algorithms from <issuer>/.well-known/openid-configuration.",
        )
        source.add_argument(
            "--certificate", action="append", metavar="FILE",
            help="A PEM or DER certificate (or PEM public key) file; repeatable.",
        )
        parser.add_argument("--disabled", action="store_true", help="Create the issuer disabled.")
        parser.add_argument("--required-type", default="", metavar="TYP",
                            help="Require this typ header in its tokens, e.g. at+jwt (default: not required).")
        parser.add_argument(
            "--condition", default=None, metavar="CEL",
            help='Admission condition over the verified claims, e.g. \'claims.repository_owner_id == "123"\' '
                 "(required for shared issuers; see docs/workload-identity.md).",
        )
        parser.add_argument(
            "--preset", default="", choices=sorted(presets.PRESETS),
            help="Set up a shared issuer (fixes the issuer URL where the platform has one, discovers its keys).",
        )
        parser.add_argument(
            "--claim-mappings", default=None, metavar="JSON",
            help='Claims to carry into issued tokens, as the API takes them: '
                 '\'[{"source": "email", "target": "email", "type": "string", "required": true}]\' '
                 "(default: none, only sub; [] clears them with --update).",
        )
        parser.add_argument("--update", action="store_true",
                            help="If an issuer with this --name exists, change the settings given instead of failing.")
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
        if options["claim_mappings"] is not None:
            try:
                options["claim_mappings"] = json.loads(options["claim_mappings"])
            except ValueError:
                raise CommandError("--claim-mappings must be a JSON list.") from None
        existing = TrustedTokenIssuer.objects.filter(name=options["name"]).first() if options["update"] else None
        preset, issuer_value = options["preset"], options["issuer"]
        if preset:
            issuer_value = preset_issuer(preset, issuer_value)
        elif not issuer_value and existing is None:
            raise CommandError("Give --issuer (or a --preset that fixes it).")
        settings = {}
        if options["discover"] or (preset and not options["jwks_uri"] and not pems):
            settings = discovered_issuer_settings(issuer_value or existing.issuer, preset)
        elif options["jwks_uri"]:
            settings = {"jwks_uri": options["jwks_uri"]}
        if existing is not None:
            issuer = self._update(existing, options, settings, issuer_value, applications, pems)
            verb = "updated"
        else:
            if not settings and not pems:
                raise CommandError("Give --jwks-uri, --certificate or --discover.")
            issuer = create_trusted_token_issuer(
                name=options["name"], issuer=issuer_value, alias=options["alias"],
                certificates=pems, enabled=not options["disabled"],
                required_type=options["required_type"], applications=applications,
                condition=options["condition"] or "", preset=preset,
                claim_mappings=options["claim_mappings"] if options["claim_mappings"] is not None else [], **settings,
            )
            verb = "created"
        self.emit(
            options,
            {"id": issuer.pk, "name": issuer.name, "issuer": issuer.issuer, "alias": issuer.alias,
             "key_source": issuer.key_source, "jwks_uri": issuer.jwks_uri, "enabled": issuer.enabled,
             "required_type": issuer.required_type, "allowed_algorithms": issuer.allowed_algorithms,
             "condition": issuer.condition, "preset": issuer.preset, "claim_mappings": issuer.claim_mappings,
             "applications": [a.client_id for a in applications] if applications or verb == "created"
             else sorted(issuer.applications.values_list("client_id", flat=True))},
            f"Trusted token issuer {issuer.name!r} {verb} (id {issuer.pk}).",
        )

    @staticmethod
    def _update(existing, options, settings, issuer_value, applications, pems):
        """Change only what the options name; the key source keeps its kind (see update_trusted_token_issuer)."""
        if pems:
            raise CommandError("--update does not change certificates; use the console or the API.")
        changes = dict(settings)
        if issuer_value:
            changes["issuer"] = issuer_value
        if options["alias"]:
            changes["alias"] = options["alias"]
        if options["required_type"]:
            changes["required_type"] = options["required_type"]
        if options["condition"] is not None:
            changes["condition"] = options["condition"]
        if options["preset"]:
            changes["preset"] = options["preset"]
        if options["disabled"]:
            changes["enabled"] = False
        if applications:
            changes["applications"] = applications
        if options["claim_mappings"] is not None:
            changes["claim_mappings"] = options["claim_mappings"]
        return update_trusted_token_issuer(existing, **changes)
