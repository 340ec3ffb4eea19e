from django.core.management.base import CommandError

from ...demo import demo_subject_token
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("Print a fresh subject token from the local \"Demo issuer\" (created on first use, "
            "key and certificate kept under var/), to try a token exchange without a third party.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--sub", default="alice", help="The token's subject (default: alice).")
        parser.add_argument("--ttl", type=int, default=300, help="Lifetime in seconds (default: 300).")
        parser.add_argument("--aud", default=None, help="Audience (default: CONSOLE_ISSUER).")

    def handle(self, *args, **options):
        if not 0 < options["ttl"] <= 86400:
            raise CommandError("--ttl must be between 1 and 86400 seconds.")
        token = demo_subject_token(sub=options["sub"], ttl=options["ttl"], audience=options["aud"])
        self.emit(options, {"subject_token": token, "sub": options["sub"]}, token)
