"""Shared behaviour of the console's commands: ``--json`` prints one object; errors go to stderr."""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ..flows import first_error


class ConsoleCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except ValidationError as exc:
            raise CommandError(first_error(exc)) from None

    def emit(self, options, data, text):
        if options.get("json"):
            self.stdout.write(json.dumps(data, default=str))
        else:
            self.stdout.write(text)
