import json
import sys

from django.core.management.base import CommandError

from ... import accounts, signing
from ...grant import ExchangeError, client_may_delegate, client_may_exchange, delegation_chain, may_act_allows
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


def delegation_check(subject_report, actor_report):
    """(ok, detail, act claim or None) for a subject and an actor token that both passed: the grant's own
    may_act rule and act chain (``grant.may_act_allows``, ``grant.delegation_chain``)."""
    claims = actor_report.claims
    if not may_act_allows(subject_report.may_act, {"sub": claims["sub"], "iss": claims["iss"]}):
        return False, "actor_not_permitted: the subject token's may_act names another party", None
    try:
        act = signing.act_claim(delegation_chain(subject_report, actor_report))
    except ExchangeError as exc:
        return False, f"{exc.cause}: {exc.description}", None
    return True, "the issued token would carry act " + json.dumps(act, ensure_ascii=True), act


class Command(ConsoleCommand):
    help = ("Explain, step by step, why a subject token (and an actor token, for delegation) would be accepted "
            "or refused at the token endpoint (the endpoint's own validation, without consuming any jti). "
            "Exits 1 on rejection.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--token", required=True, help="The subject token (JWT), or - to read it from stdin.")
        parser.add_argument("--client-id", help="Also check that this application may use token exchange, "
                                                "and may exchange this issuer's tokens.")
        parser.add_argument("--token-type", choices=sorted(TOKEN_TYPES),
                            help="The subject_token_type the client would send (checked against what the token "
                                 "says it is); default: none declared.")
        parser.add_argument("--actor-token", help="An actor token (RFC 8693 delegation), or - to read it from stdin: "
                                                  "checked by the same steps as an actor token; with --client-id, "
                                                  "against the application's delegation settings.")
        parser.add_argument("--actor-token-type", choices=sorted(TOKEN_TYPES),
                            help="The actor_token_type the client would send; default: none declared.")

    def handle(self, *args, **options):
        if options["token"] == "-" and options["actor_token"] == "-":
            raise CommandError("Only one of --token and --actor-token can be read from stdin.")
        token = sys.stdin.read().strip() if options["token"] == "-" else options["token"]
        actor_token = options["actor_token"]
        if actor_token == "-":
            actor_token = sys.stdin.read().strip()
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
        client_refused = rejected and report.ok
        actor_refused = actor_token is not None and self.explain_actor(actor_token, options, application, report,
                                                                       data, lines)
        rejected |= actor_refused
        linked = True
        if report.ok and application is not None:
            # The grant's linking step (accounts.resolve), after the tokens as in the grant, as this
            # application's setting makes it.
            linked, detail = accounts.explain(report.issuer, report.claims, application.linked_accounts)
            data["linked_account"] = {"ok": linked, "detail": detail}
            lines.append(f"{MARKS[linked]}  {'Linked account':<26} {printable(detail)}")
        if not report.ok:
            lines.append(f"Rejected ({report.cause}): {report.description}")
        elif client_refused:
            lines.append("Rejected: the client may not exchange tokens.")
        elif actor_refused:
            lines.append("Rejected: the delegation would be refused.")
        elif not linked:
            lines.append("Rejected: the linked account check failed.")
        else:
            lines.append("Accepted.")
        self.emit(options, data, "\n".join(lines))
        if rejected or not linked:
            cause = report.cause or data.get("actor", {}).get("cause") or ("client" if rejected else "linked account")
            raise CommandError(f"the exchange would be refused ({cause})", returncode=1)

    def explain_actor(self, actor_token, options, application, subject_report, data, lines):
        """The actor token's steps (role ``actor``), the application's delegation policy, may_act and act.

        Adds them to ``data`` (``actor``) and ``lines``; returns whether the delegation would be refused.
        """
        token_type = TOKEN_TYPES.get(options["actor_token_type"]) if options["actor_token_type"] else None
        report = explain_subject_token(actor_token, client=application, token_type=token_type, role="actor")
        actor = {**report.as_dict(), "cause": f"actor_{report.cause}" if report.cause else None}
        lines.append("Actor token:")
        refused = not report.ok
        if application is not None:
            refusal = client_may_delegate(application)
            detail = refusal.description if refusal is not None else f"{application.name} allows delegation"
            actor["client"] = {"ok": refusal is None, "detail": detail}
            lines.append(f"{MARKS[refusal is None]}  {'Delegation':<26} {printable(detail)}")
            refused |= refusal is not None
        for step in report.steps:
            lines.append(f"{MARKS[step.ok]}  {step.label:<26} {printable(step.detail)}".rstrip())
        if not report.ok:
            lines.append(f"Rejected (actor_{report.cause}): {report.description}")
        elif subject_report.ok:
            ok, detail, act = delegation_check(subject_report, report)
            actor["may_act_and_chain"] = {"ok": ok, "detail": detail, "act": act}
            lines.append(f"{MARKS[ok]}  {'may_act and act chain':<26} {printable(detail)}")
            refused |= not ok
        data["actor"] = actor
        return refused
