from django.core.management.base import CommandError

from ...flows import create_application
from ...models import Application, TrustedTokenIssuer
from ...service_accounts import DEFAULT_PERMISSIONS, SYSTEM
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("Create an application (OAuth client). Its client secret is printed once; a single-page "
            "application is a public client and gets none.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--name", required=True)
        parser.add_argument("--type", default="standard", choices=Application.Type.values,
                            help="standard, mobile, traditional or spa (single-page).")
        parser.add_argument("--grant-type", action="append", default=[], metavar="G",
                            help="A grant type wire name or short name (token_exchange, refresh_token, "
                                 "client_credentials, authorization_code); repeatable.")
        parser.add_argument("--scope", action="append", default=[], help="An allowed scope; repeatable.")
        parser.add_argument("--redirect-uri", action="append", default=[], metavar="URI",
                            help="A redirect URI for the Code grant (sign-in); repeatable.")
        parser.add_argument("--first-party", action="store_true", dest="skip_authorization",
                            help="Users signing in are not asked to consent (an application of this organization).")
        parser.add_argument("--access-token-lifetime", type=int, metavar="SECONDS",
                            help="Lifetime of its access tokens (default: the server's), at most "
                                 "TOKEN_EXCHANGE['MAX_TOKEN_LIFETIME_SECONDS'].")
        parser.add_argument("--resource-server", action="store_true",
                            help="May introspect any token (others learn only about their own tokens).")
        parser.add_argument("--permission", action="append", default=None, metavar="APP_LABEL.CODENAME",
                            help="With --scope console:manage: a permission of its service account; repeatable "
                                 f"(default: {', '.join(DEFAULT_PERMISSIONS)}).")
        parser.add_argument("--outlive-subject-token", action="store_false", dest="bound_to_subject_token",
                            help="Let exchanged tokens outlive the subject token (default: they never do).")
        parser.add_argument("--actor-issuer", action="append", default=[], metavar="ISS",
                            help="Allow delegation with actor tokens of this trusted issuer (its issuer value); "
                                 "repeatable. Default: no delegation.")

    def handle(self, *args, **options):
        actor_issuers = []
        for iss in options["actor_issuer"]:
            trusted = TrustedTokenIssuer.objects.filter(issuer=iss).first()
            if trusted is None or trusted.issuer != iss:  # exact, as tokens are matched
                raise CommandError(f"No trusted token issuer has the issuer value {iss!r}.")
            actor_issuers.append(trusted)
        application, secret = create_application(
            name=options["name"], application_type=options["type"],
            grant_types=options["grant_type"], scopes=" ".join(options["scope"]),
            access_token_lifetime=options["access_token_lifetime"], resource_server=options["resource_server"],
            actor=SYSTEM, service_account_permissions=options["permission"],
            bound_to_subject_token=options["bound_to_subject_token"],
            allow_delegation=bool(actor_issuers), actor_issuers=actor_issuers,
            redirect_uris=" ".join(options["redirect_uri"]), skip_authorization=options["skip_authorization"],
        )
        secret_line = (f"client_secret: {secret}\nThe secret is shown only now; store it safely." if secret
                       else "A public client: it has no secret.")
        self.emit(
            options,
            {"id": application.pk, "name": application.name, "client_id": application.client_id,
             "client_secret": secret, "type": application.application_type,
             "grant_types": application.allowed_grant_types,
             "bound_to_subject_token": application.bound_to_subject_token,
             "allow_delegation": application.allow_delegation, "actor_issuers": [t.issuer for t in actor_issuers]},
            f"Application {application.name!r} created.\n"
            f"client_id:     {application.client_id}\n"
            f"{secret_line}",
        )
