from django.core.management.base import CommandError

from ...conf import exchange_settings
from ...signing import RotationError, rotate_signing_key
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = (
        "Create the next signing key for issued tokens. It is published at /oauth2/jwks at once and "
        "signs from --publish-ahead seconds later (default TOKEN_EXCHANGE['SIGNING_KEY_PUBLISH_AHEAD_SECONDS']); "
        "previous keys stay published until their tokens have expired, then are retired."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--algorithm", choices=["RS256", "ES256", "EdDSA"],
                            help="Algorithm of the new key (default TOKEN_EXCHANGE['SIGNING_ALGORITHM']).")
        parser.add_argument(
            "--publish-ahead", type=int, metavar="SECONDS",
            help="Seconds between publishing the key and signing with it. 0 signs at once (within "
                 "SIGNING_KEY_RELOAD_SECONDS on every worker): resource servers holding a cached JWKS "
                 "then meet an unknown kid until they refetch. Use 0 only when the current key is compromised.",
        )

    def handle(self, *args, **options):
        try:
            key, superseded = rotate_signing_key(options["algorithm"], options["publish_ahead"])
        except RotationError as exc:
            raise CommandError(str(exc)) from None
        if key.activate_at and (key.activate_at - key.created).total_seconds() < exchange_settings.SIGNING_KEY_RELOAD_SECONDS:
            self.stderr.write(
                "Warning: the key signs before every worker has re-read the key list; "
                "workers switch within SIGNING_KEY_RELOAD_SECONDS."
            )
        data = {
            "kid": key.kid,
            "algorithm": key.algorithm,
            "published_at": key.created.isoformat(),
            "signs_from": key.activate_at.isoformat() if key.activate_at else key.created.isoformat(),
            "superseded": [
                {"kid": row.kid, "retire_after": row.retire_after.isoformat() if row.retire_after else None}
                for row in superseded
            ],
        }
        lines = [f"New signing key {key.kid} ({key.algorithm}) published; signs from {data['signs_from']}."]
        lines += [f"  {row['kid']} stays published until {row['retire_after']}." for row in data["superseded"]]
        self.emit(options, data, "\n".join(lines))
