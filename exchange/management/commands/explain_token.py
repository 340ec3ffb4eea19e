import json
import sys

from django.core.management.base import CommandError

from ...grant import client_may_exchange
from ...models import Application
from ...subject_token import SUBJECT_TOKEN_TYPES, explain_subject_token
from ..base import ConsoleCommand

MARKS = {True: "PASS", False: "FAIL", None: "----"}
#: --token-type: the last part of each subject_token_type URN (jwt, access_token, id_token).
TOKEN_TYPES = {urn.rsplit(":", 1)[-1]: urn for urn in SUBJECT_TOKEN_TYPES}


def printable(text):
    """Token-supplied text (sub, kid...) with control characters escaped: it must not drive the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))


def client_check(client_id):
    """(application or None, ok, detail) for --client-id: may this application exchange tokens at all?

    The answer is the grant's own client policy (``grant.client_may_exchange``), not a copy of it.
    """
    application = Application.objects.filter(client_id=client_id).first()
    if application is None:
        return None, False, "no application has this client_id"
    refusal = client_may_exchange(application)
    if refusal is not None:
        return application, False, f"{application.name}: {refusal.description}"
    return application, True, f"{application.name} may use token exchange"


class Command(ConsoleCommand):
    help = ("Explain, step by step, why a subject token would be accepted or refused at the token endpoint "
            "(the endpoint's own validation, without consuming the token's jti). Exits 1 on rejection.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--token", required=True, help="The subject token (JWT), or - to read it from stdin.")
        parser.add_argument("--client-id", help="Also check that this application may use token exchange, "
                                                "and may exchange this issuer's tokens.")
        parser.add_argument("--token-type", choices=sorted(TOKEN_TYPES),
                            help="The subject_token_type the client would send (checked against what the token "
                                 "says it is); default: none declared.")

    def handle(self, *args, **options):
        token = sys.stdin.read().strip() if options["token"] == "-" else options["token"]
        application, *client = client_check(options["client_id"]) if options["client_id"] else (None, None)
        client = client if options["client_id"] else None
        # With --client-id, the issuer must also be one this application may exchange (its links).
        token_type = TOKEN_TYPES.get(options["token_type"]) if options["token_type"] else None
        report = explain_subject_token(token, client=application, token_type=token_type)
        rejected = not report.ok or (client is not None and not client[0])
        data = report.as_dict()
        if client is not None:
            data["client"] = {"client_id": options["client_id"], "ok": client[0], "detail": client[1]}
        lines = []
        if client is not None:
            lines.append(f"{MARKS[client[0]]}  {'Client':<26} {printable(client[1])}")
        for step in report.steps:
            lines.append(f"{MARKS[step.ok]}  {step.label:<26} {printable(step.detail)}".rstrip())
        if report.ok and report.mapped_claims:
            carried = ", ".join(f"{name}={json.dumps(value, ensure_ascii=True)[:200]}"
                                for name, value in report.mapped_claims.items())
            lines.append(f"Mapped claims: {printable(carried)}")
        if report.ok:
            lines.append("Accepted." if not rejected else "Rejected: the client may not exchange tokens.")
        else:
            lines.append(f"Rejected ({report.cause}): {report.description}")
        self.emit(options, data, "\n".join(lines))
        if rejected:
            raise CommandError(f"the subject token would be rejected ({report.cause or 'client'})", returncode=1)
