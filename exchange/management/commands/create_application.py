from ...flows import create_application
from ...models import Application
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = "Create an application (OAuth client). Its client secret is printed once."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--name", required=True)
        parser.add_argument("--type", default="standard", choices=Application.Type.values,
                            help="standard, mobile, traditional or spa (single-page).")
        parser.add_argument("--grant-type", action="append", default=[], metavar="G",
                            help="A grant type wire name or short name (token_exchange, refresh_token, "
                                 "client_credentials, authorization_code); repeatable.")
        parser.add_argument("--scope", action="append", default=[], help="An allowed scope; repeatable.")
        parser.add_argument("--outlive-subject-token", action="store_false", dest="bound_to_subject_token",
                            help="Let exchanged tokens outlive the subject token (default: they never do).")

    def handle(self, *args, **options):
        application, secret = create_application(
            name=options["name"], application_type=options["type"],
            grant_types=options["grant_type"], scopes=" ".join(options["scope"]),
            bound_to_subject_token=options["bound_to_subject_token"],
        )
        self.emit(
            options,
            {"id": application.pk, "name": application.name, "client_id": application.client_id,
             "client_secret": secret, "type": application.application_type,
             "grant_types": application.allowed_grant_types,
             "bound_to_subject_token": application.bound_to_subject_token},
            f"Application {application.name!r} created.\n"
            f"client_id:     {application.client_id}\n"
            f"client_secret: {secret}\n"
            "The secret is shown only now; store it safely.",
        )
