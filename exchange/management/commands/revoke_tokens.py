from django.core.management.base import CommandError
from django.db.models import Q

from ...flows import revoke_tokens
from ...models import TrustedTokenIssuer
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("Revoke every live access and refresh token issued from a trusted issuer's tokens, "
            "or from one external subject's (--subject).")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--issuer", required=True, help="The trusted issuer's name or issuer value (iss).")
        parser.add_argument("--subject", help="Only the tokens of this external subject (the sub of its tokens).")
        parser.add_argument("--dry-run", action="store_true", help="Count the tokens; revoke nothing.")

    def handle(self, *args, **options):
        wanted = options["issuer"]
        trusted = TrustedTokenIssuer.objects.filter(Q(name=wanted) | Q(issuer=wanted)).first()
        if trusted is None:
            raise CommandError("No trusted token issuer has this name or issuer value.")
        result = revoke_tokens(trusted, options["subject"], dry_run=options["dry_run"])
        whose = f"subject {result.subject!r} of " if result.subject else ""
        verb = "Would revoke" if result.dry_run else "Revoked"
        self.emit(
            options, result.as_dict(),
            f"{verb} the tokens issued from {whose}{trusted.name} ({trusted.issuer}): "
            f"{result.access_tokens} access token(s), {result.refresh_tokens} refresh token(s).",
        )
