from django.core.management.base import CommandError

from ... import flows
from ...models import Scope
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("List the scope registry; --add registers a scope (with --description), --remove deletes one "
            "(refused for a scope the server needs or that an application still allows).")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--add", metavar="NAME", help="Register this scope (e.g. orders:read).")
        action.add_argument("--remove", metavar="NAME", help="Delete this scope from the registry.")
        parser.add_argument("--description", default="", help="With --add: what the scope gives.")

    def handle(self, *args, **options):
        if options["description"] and not options["add"]:
            raise CommandError("--description goes with --add.")
        if options["add"]:
            scope = flows.create_scope(name=options["add"], description=options["description"])
            self.emit(options, _row(scope), f"Scope {scope.name!r} registered.")
            return
        if options["remove"]:
            scope = Scope.objects.filter(name=options["remove"]).first()
            if scope is None:
                raise CommandError("No registered scope has this name.")
            flows.delete_scope(scope)
            self.emit(options, {"deleted": scope.name}, f"Scope {scope.name!r} deleted.")
            return
        scopes = list(Scope.objects.order_by("name"))
        self.emit(options, {"scopes": [_row(scope) for scope in scopes]},
                  "\n".join(f"{scope.name}{'  (protected)' if scope.protected else ''}  {scope.description}".rstrip()
                            for scope in scopes))


def _row(scope):
    return {"name": scope.name, "description": scope.description, "protected": scope.protected}
