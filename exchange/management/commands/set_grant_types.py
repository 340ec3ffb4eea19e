from django.core.management.base import CommandError

from ...flows import set_grant_types
from ...models import Application
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = "Replace an application's allowed grant types."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("client_id")
        parser.add_argument("grant_types", nargs="*", metavar="G",
                            help="Wire names or short names; none clears the list.")

    def handle(self, *args, **options):
        try:
            application = Application.objects.get(client_id=options["client_id"])
        except (Application.DoesNotExist, ValueError):
            raise CommandError(f"No application has client ID {options['client_id']!r}.") from None
        set_grant_types(application, options["grant_types"])
        self.emit(
            options,
            {"client_id": application.client_id, "grant_types": application.allowed_grant_types},
            f"{application.name}: " + (", ".join(application.allowed_grant_types) or "no grant types"),
        )
