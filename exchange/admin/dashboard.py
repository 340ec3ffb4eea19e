"""The console's home page: counts of issuers and applications, and the last day's exchanges as a chart."""

import datetime

from django.db.models import Count
from django.utils import timezone

from ..models import Application, ExchangeEvent, TrustedTokenIssuer
from ..protocol import TOKEN_EXCHANGE
from ..subject_token import CAUSES

#: Bars of the activity chart (server-rendered SVG: no script, no external assets).
CHART_ROW_HEIGHT = 26
CHART_LABEL_WIDTH = 190
CHART_BAR_WIDTH = 300


def summary():
    """The home page's context: issuers (and how many are disabled), applications, the activity chart."""
    return {
        "issuer_count": TrustedTokenIssuer.objects.count(),
        "issuer_disabled_count": TrustedTokenIssuer.objects.filter(enabled=False).count(),
        "application_count": Application.objects.count(),
        "token_exchange_app_count": sum(
            1 for grants in Application.objects.values_list("allowed_grant_types", flat=True)
            if TOKEN_EXCHANGE in (grants or [])
        ),
        "activity": exchange_activity(),
    }


def exchange_activity(hours=24, now=None):
    """Exchange events of the last ``hours``: successes, then rejections by cause (most first)."""
    since = (now or timezone.now()) - datetime.timedelta(hours=hours)
    rows = (
        ExchangeEvent.objects.filter(created__gte=since)
        .values("outcome", "cause").annotate(count=Count("id")).order_by("-count", "cause")
    )
    issued = sum(r["count"] for r in rows if r["outcome"] == ExchangeEvent.Outcome.ISSUED)
    rejected = [r for r in rows if r["outcome"] == ExchangeEvent.Outcome.REJECTED]
    bars = [{"label": "Issued", "count": issued, "kind": "ok", "title": "Tokens issued"}]
    bars += [
        {"label": r["cause"] or "rejected", "count": r["count"], "kind": "bad",
         "title": CAUSES.get(r["cause"], r["cause"])}
        for r in rejected
    ]
    peak = max([b["count"] for b in bars] + [1])
    for index, bar in enumerate(bars):
        bar["y"] = index * CHART_ROW_HEIGHT
        bar["text_y"] = bar["y"] + CHART_ROW_HEIGHT // 2 + 5
        bar["width"] = max(2 if bar["count"] else 0, round(CHART_BAR_WIDTH * bar["count"] / peak))
        bar["count_x"] = CHART_LABEL_WIDTH + bar["width"] + 6
    return {
        "bars": bars,
        "issued": issued,
        "rejected": sum(r["count"] for r in rejected),
        "height": len(bars) * CHART_ROW_HEIGHT,
        "width": CHART_LABEL_WIDTH + CHART_BAR_WIDTH + 60,
        "label_width": CHART_LABEL_WIDTH,
        "bar_height": CHART_ROW_HEIGHT - 8,
        "hours": hours,
    }
