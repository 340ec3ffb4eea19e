"""First-run set-up, the local server's record, and ``make run``'s server with its sign-in box."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ...conf import local_issuer, project_settings, write_local_server
from ...signing import active_key

#: Seconds ``--serve`` waits for gunicorn to accept connections.
SERVE_START_SECONDS = 90


def box(lines):
    """``lines`` framed in ASCII (every terminal draws it), for what must not be missed in the output."""
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def _port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Command(BaseCommand):
    help = ("First-run set-up: create an administrator when none exists (password from "
            "CONSOLE_ADMIN_PASSWORD, else generated and shown once) and the signing key. "
            "--port records this checkout's server (its issuer is then http://localhost:PORT/oauth2/token "
            "unless CONSOLE_ISSUER is set) so that every command run here agrees with it; --serve then "
            "starts it (make run). --reset-admin gives the administrator a new password.")

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("CONSOLE_ADMIN_USERNAME", "admin"))
        parser.add_argument("--port", type=int, help="Record the local server on this port (make run's PORT).")
        parser.add_argument("--serve", action="store_true",
                            help="Then serve on 127.0.0.1:PORT with gunicorn and print the sign-in box once it answers.")
        parser.add_argument("--gunicorn-config", default="gunicorn.conf.py", help="gunicorn's settings file for --serve.")
        parser.add_argument("--reset-admin", action="store_true",
                            help="Set a new password for the administrator (CONSOLE_ADMIN_PASSWORD, else generated).")

    def handle(self, *args, **options):
        port = options["port"]
        if port is not None and not 0 < port < 65536:
            raise CommandError("--port must be between 1 and 65535.")
        if options["serve"] and port is None:
            raise CommandError("--serve needs --port.")
        password = self._administrator(options["username"], options["reset_admin"])
        key = active_key()
        self.stdout.write(f"Signing key {key.kid} ({key.algorithm}) ready.")
        issuer = project_settings.CONSOLE_ISSUER
        if port is not None:
            issuer = os.environ.get("CONSOLE_ISSUER") or local_issuer(port)
            write_local_server(project_settings.VAR_DIR, issuer, f"http://localhost:{port}")
            self.stdout.write(f"This checkout's server: http://localhost:{port} (issuer {issuer}).")
        if options["serve"]:
            return self._serve(port, options["gunicorn_config"], issuer, options["username"], password)
        if password:
            self.stdout.write(box(self._sign_in_lines(options["username"], password)))
        return None

    def _administrator(self, username, reset):
        """Create the first administrator, or reset one's password; the generated password, or None."""
        User = get_user_model()
        chosen = os.environ.get("CONSOLE_ADMIN_PASSWORD")
        password = chosen or secrets.token_urlsafe(12)
        if reset:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"There is no user {username!r}; pass --username.")
            user.set_password(password)
            user.is_active = user.is_staff = True
            user.save(update_fields=["password", "is_active", "is_staff"])
            self.stdout.write(self.style.SUCCESS(f"New password set for {username!r}."))
            return None if chosen else password
        if User.objects.filter(is_superuser=True).exists():
            return None
        User.objects.create_superuser(username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(f"Created administrator {username!r}."))
        return None if chosen else password

    @staticmethod
    def _sign_in_lines(username, password):
        return [
            f"Administrator: {username}",
            f"Password:      {password}",
            "Shown once. To reset it: .venv/bin/python manage.py bootstrap --reset-admin",
        ]

    def _serve(self, port, config, issuer, username, password):
        """Run gunicorn on 127.0.0.1:port; once it answers, the box; then wait for it (Ctrl-C stops both)."""
        if _port_open(port):
            raise CommandError(f"Port {port} is already in use; choose another: make run PORT=8101")
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        server = subprocess.Popen([gunicorn, "-c", config, "--bind", f"127.0.0.1:{port}", "identity_console.wsgi"])
        try:
            deadline = time.monotonic() + SERVE_START_SECONDS
            while not _port_open(port):
                if server.poll() is not None:
                    raise CommandError(f"The server exited (status {server.returncode}).")
                if time.monotonic() > deadline:
                    raise CommandError("The server did not start in time.")
                time.sleep(0.2)
            time.sleep(0.3)  # gunicorn's own start-up lines come first: the box is the last thing printed
            lines = [
                f"Identity Console: http://localhost:{port}/console/",
                f"Issuer:           {issuer}",
                "                  (the aud subject tokens carry; tell each upstream issuer's administrator)",
            ]
            lines += self._sign_in_lines(username, password) if password else [
                "Sign in as the administrator. Password lost? .venv/bin/python manage.py bootstrap --reset-admin",
            ]
            lines.append("Stop with Ctrl-C.")
            self.stdout.write("\n" + box(lines))
            self.stdout.flush()
            server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=30)
        return None
