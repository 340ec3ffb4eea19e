"""The console's home page: this console's issuer, exchanges over time, the top refusal causes, warnings.

The charts are server-rendered SVG (no script, no external assets): one stacked bar per hour of the
last 24 hours and per day of the last 30 days, issued below, rejected above.
"""

import datetime
from urllib.parse import urlencode

from django.db.models import Count, F, Q
from django.db.models.functions import TruncDay, TruncHour
from django.urls import reverse
from django.utils import timezone

from ..conf import project_settings
from ..models import Application, ExchangeEvent, IssuerCertificate, SigningKey, TrustedTokenIssuer
from ..protocol import TOKEN_EXCHANGE
from .records import KEY_ROTATION_DAYS, explain_cause, rotation_due, when

#: Certificates expiring within this many days are warned about (home, Connections, the issuer's page).
CERTIFICATE_WARNING_DAYS = 30

CHART_WIDTH = 720
CHART_HEIGHT = 160
CHART_LEFT = 40  # room for the y axis' labels
CHART_BOTTOM = 22  # room for the x axis' labels
TOP_CAUSES = 5


def summary(now=None):
    """The home page's context: the issuer value, counts, both charts, the top causes and the warnings."""
    now = now or timezone.now()
    return {
        "console_issuer": project_settings.CONSOLE_ISSUER,
        "issuer_count": TrustedTokenIssuer.objects.count(),
        "issuer_disabled_count": TrustedTokenIssuer.objects.filter(enabled=False).count(),
        "application_count": Application.objects.count(),
        "token_exchange_app_count": sum(
            1 for grants in Application.objects.values_list("allowed_grant_types", flat=True)
            if TOKEN_EXCHANGE in (grants or [])
        ),
        "hourly": timeline(now, "hour"),
        "daily": timeline(now, "day"),
        "top_causes": top_causes(now),
        "warnings": warnings(now),
    }


def _buckets(now, unit):
    """The start of each bucket, oldest first: 24 hours ending with the current one, or 30 days with today."""
    if unit == "hour":
        last = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
        return [last - datetime.timedelta(hours=n) for n in range(23, -1, -1)]
    last = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return [last - datetime.timedelta(days=n) for n in range(29, -1, -1)]


def timeline(now, unit):
    """Issued and rejected exchanges per hour (24 h) or per day (30 d), with the SVG's geometry."""
    starts = _buckets(now, unit)
    trunc = TruncHour if unit == "hour" else TruncDay
    rows = (
        ExchangeEvent.objects.filter(created__gte=starts[0])
        .annotate(bucket=trunc("created")).values("bucket", "outcome").annotate(count=Count("id"))
    )
    counts = {}
    for row in rows:
        counts[(row["bucket"], row["outcome"])] = row["count"]
    issued_key, rejected_key = ExchangeEvent.Outcome.ISSUED, ExchangeEvent.Outcome.REJECTED
    peak = max([counts.get((s, issued_key), 0) + counts.get((s, rejected_key), 0) for s in starts] + [1])
    plot_width, plot_height = CHART_WIDTH - CHART_LEFT, CHART_HEIGHT - CHART_BOTTOM
    slot = plot_width / len(starts)
    bars = []
    for index, start in enumerate(starts):
        issued, rejected = counts.get((start, issued_key), 0), counts.get((start, rejected_key), 0)
        issued_h = round(plot_height * issued / peak, 1)
        rejected_h = round(plot_height * rejected / peak, 1)
        x = round(CHART_LEFT + index * slot + slot * 0.15, 1)
        label = start.strftime("%H:%M") if unit == "hour" else start.strftime("%m-%d")
        bars.append({
            "start": start.isoformat(), "label": label, "issued": issued, "rejected": rejected,
            "x": x, "width": round(slot * 0.7, 1), "text_x": round(x + slot * 0.35, 1),
            "issued_y": round(plot_height - issued_h, 1), "issued_h": issued_h,
            "rejected_y": round(plot_height - issued_h - rejected_h, 1), "rejected_h": rejected_h,
            "tick": index % (3 if unit == "hour" else 5) == 0 or index == len(starts) - 1,
            "title": (f"{when(start)}, {'hour' if unit == 'hour' else 'day'}: "
                      f"{issued} issued, {rejected} rejected"),
        })
    return {
        "unit": unit, "bars": bars, "peak": peak, "width": CHART_WIDTH, "height": CHART_HEIGHT,
        "plot_height": plot_height, "left": CHART_LEFT, "axis_x": CHART_LEFT - 6,
        "label_y": CHART_HEIGHT - 6, "issued": sum(b["issued"] for b in bars),
        "rejected": sum(b["rejected"] for b in bars), "since": starts[0],
    }


def events_url(**filters):
    """The Exchange events list, filtered (Django admin's own query parameters)."""
    return reverse("admin:exchange_exchangeevent_changelist") + ("?" + urlencode(filters) if filters else "")


def top_causes(now, hours=24):
    """The most frequent refusal causes of the last ``hours``, each explained and linked to its events."""
    since = now - datetime.timedelta(hours=hours)
    rows = (
        ExchangeEvent.objects.filter(created__gte=since, outcome=ExchangeEvent.Outcome.REJECTED)
        .values("cause").annotate(count=Count("id")).order_by("-count", "cause")[:TOP_CAUSES]
    )
    causes = []
    for row in rows:
        what, todo = explain_cause(row["cause"])
        causes.append({
            "cause": row["cause"] or "rejected", "count": row["count"], "what": what, "todo": todo,
            "url": events_url(outcome__exact="rejected", cause=row["cause"], created__gte=since.isoformat()),
        })
    return causes


def warnings(now):
    """What needs an operator: certificates expiring within 30 days, failing JWKS fetches, keys due for rotation."""
    found = []
    soon = now + datetime.timedelta(days=CERTIFICATE_WARNING_DAYS)
    expiring = (IssuerCertificate.objects.filter(not_after__lte=soon).select_related("trusted_issuer")
                .order_by("not_after"))
    for cert in expiring:
        verb = "expired" if cert.not_after <= now else "expires"
        found.append({
            "kind": "certificate",
            "text": f"A certificate of {cert.trusted_issuer.name} {verb} {when(cert.not_after)}"
                    f" ({cert.subject or 'public key'}).",
            "url": reverse("admin:exchange_trustedtokenissuer_change", args=[cert.trusted_issuer_id])
                   + "?tab=certificates",
            "action": "Add its next certificate",
        })
    for issuer in failing_issuers():
        found.append({
            "kind": "jwks",
            "text": f"The JWKS endpoint of {issuer.name} failed at {when(issuer.key_fetch_failed_at)}: "
                    f"{issuer.key_fetch_error}",
            "url": reverse("admin:exchange_trustedtokenissuer_change", args=[issuer.pk]) + "?tab=certificates",
            "action": "Check its keys",
        })
    for key in SigningKey.objects.filter(active=True, retired_at=None):
        if rotation_due(key, now):
            found.append({
                "kind": "signing_key",
                "text": f"The signing key {key.kid} has signed tokens for more than {KEY_ROTATION_DAYS} days.",
                "url": reverse("admin:exchange_signingkey_change", args=[key.pk]),
                "action": "Rotate it with manage.py rotate_signing_key",
            })
    return found


def failing_issuers():
    """JWKS-backed issuers whose last fetch failed (and has not succeeded since)."""
    return TrustedTokenIssuer.objects.exclude(jwks_uri="").exclude(key_fetch_error="").filter(
        Q(keys_fetched_at__isnull=True) | Q(key_fetch_failed_at__gt=F("keys_fetched_at"))
    )

