import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from ...signing import active_key


class Command(BaseCommand):
    help = ("First-run set-up: create an administrator when none exists (password from "
            "CONSOLE_ADMIN_PASSWORD, else generated and printed once) and the signing key.")

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("CONSOLE_ADMIN_USERNAME", "admin"))

    def handle(self, *args, **options):
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = os.environ.get("CONSOLE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            User.objects.create_superuser(options["username"], email="", password=password)
            self.stdout.write(self.style.SUCCESS(f"Created administrator {options['username']!r}."))
            if not os.environ.get("CONSOLE_ADMIN_PASSWORD"):
                self.stdout.write(f"  password: {password}   (shown once; change it in the console)")
        key = active_key()
        self.stdout.write(f"Signing key {key.kid} ({key.algorithm}) ready.")
