from django.core.management.base import CommandError

from ...demo import DemoNotAllowed, demo_subject_token
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("Print a fresh subject token from the local \"Demo issuer\" (created on first use, "
            "key and certificate kept under var/), to try a token exchange without a third party.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--sub", default="alice", help="The token's subject (default: alice).")
        parser.add_argument("--ttl", type=int, default=300, help="Lifetime in seconds (default: 300).")
        parser.add_argument("--aud", default=None, help="Audience (default: CONSOLE_ISSUER).")
        parser.add_argument(
            "--allow-on-production", action="store_true",
            help="Register the demo issuer even though DEBUG is off and CONSOLE_ISSUER is not a loopback "
                 "URL: anyone who can read var/demo_issuer/key.pem can then mint tokens for any subject.",
        )

    def handle(self, *args, **options):
        if not 0 < options["ttl"] <= 86400:
            raise CommandError("--ttl must be between 1 and 86400 seconds.")
        try:
            token = demo_subject_token(sub=options["sub"], ttl=options["ttl"], audience=options["aud"],
                                       allow_on_production=options["allow_on_production"])
        except DemoNotAllowed as exc:
            raise CommandError(str(exc)) from None
        self.emit(options, {"subject_token": token, "sub": options["sub"]}, token)
