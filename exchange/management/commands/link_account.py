from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db.models import Q

from ...flows import link_identity, unlink_identity
from ...models import LinkedIdentity, TrustedTokenIssuer
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("Link an external identity (a trusted issuer's sub) to a local user, or remove the link (--remove). "
            "Exchanges by applications that use linked accounts are then for the local user.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--issuer", required=True, help="The trusted issuer's name or issuer value (iss).")
        parser.add_argument("--subject", required=True, help="The external subject: the sub of the issuer's tokens.")
        parser.add_argument("--username", help="The local user to link (required unless --remove).")
        parser.add_argument("--remove", action="store_true",
                            help="Remove the link instead; the tokens exchanged through it are revoked.")

    def handle(self, *args, **options):
        wanted = options["issuer"]
        trusted = TrustedTokenIssuer.objects.filter(Q(name=wanted) | Q(issuer=wanted)).first()
        if trusted is None:
            raise CommandError("No trusted token issuer has this name or issuer value.")
        subject = options["subject"]
        if options["remove"]:
            link = LinkedIdentity.objects.filter(trusted_issuer=trusted, subject=subject).select_related("user").first()
            if link is None:
                raise CommandError("This external identity is not linked.")
            unlink_identity(link)
            data = {"issuer": trusted.issuer, "subject": subject, "username": link.user.get_username(), "linked": False}
            self.emit(options, data, f"Removed the link of {subject!r} ({trusted.name}) to {link.user.get_username()}.")
            return
        if not options["username"]:
            raise CommandError("Give --username (the local user to link), or --remove.")
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError("No local user has this username.")
        link_identity(trusted, subject, user)
        data = {"issuer": trusted.issuer, "subject": subject, "username": user.get_username(), "linked": True}
        self.emit(options, data, f"Linked {subject!r} ({trusted.name}) to {user.get_username()}.")
