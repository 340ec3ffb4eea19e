from ...conf import project_settings, read_local_server, server_url_of
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = ("Print this console's issuer (CONSOLE_ISSUER: the iss of the tokens it issues, the aud subject "
            "tokens must carry), the value the server run from this checkout uses; --server-url prints "
            "where that server answers instead.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--server-url", action="store_true",
                            help="Print the server's URL (make run's http://localhost:PORT), not the issuer.")

    def handle(self, *args, **options):
        issuer = project_settings.CONSOLE_ISSUER
        server_url = read_local_server(project_settings.VAR_DIR).get("server_url") or server_url_of(issuer)
        text = server_url if options["server_url"] else issuer
        self.emit(options, {"issuer": issuer, "server_url": server_url}, text)
