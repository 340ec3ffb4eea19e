"""The audit trail of token exchanges: one ExchangeEvent row and one log record per attempt.

The grant writes the row (storage.py, which calls ``complete`` and ``log_event``
itself); for rows saved through the ORM the signals here do the same: complete it
with snapshots that outlive the application and issuer (``client_id``,
``issuer``) and the request id that ties it to the logs, then log it on the
``exchange.audit`` logger. Identifiers only: never a token or secret.
Rows older than ``TOKEN_EXCHANGE["AUDIT_RETENTION_DAYS"]`` are removed by
``manage.py prune_audit`` (run it daily from cron or a scheduler).
"""

import datetime
import logging

from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from .conf import exchange_settings
from .models import ExchangeEvent
from .ops.logging import current_request_id

log = logging.getLogger("exchange.audit")


def complete(instance):
    """Fill the snapshots of an ExchangeEvent (or an object with its attributes) about to be written."""
    if not instance.request_id:
        instance.request_id = current_request_id()[:64]
    if not instance.client_id and instance.application_id:
        instance.client_id = instance.application.client_id[:100]
    if not instance.issuer and instance.trusted_issuer_id:
        instance.issuer = instance.trusted_issuer.issuer[:512]
    if not instance.actor_issuer and instance.actor_trusted_issuer_id:
        instance.actor_issuer = instance.actor_trusted_issuer.issuer[:512]


def _complete(sender, instance, **kwargs):
    complete(instance)


def log_event(instance):
    """The audit log line of a written ExchangeEvent (or an object with its attributes and ``pk``)."""
    log.info(
        "token exchange %s%s", instance.outcome, f" ({instance.cause})" if instance.cause else "",
        extra={
            "event": "token_exchange",
            "event_id": instance.pk,
            "outcome": instance.outcome,
            "cause": instance.cause or None,
            "issuer": instance.issuer or None,
            "client_id": instance.client_id or None,
            "subject": instance.subject or None,
            "subject_jti": instance.subject_jti or None,
            "issued_jti": instance.issued_jti or None,
            "actor_issuer": instance.actor_issuer or None,
            "actor_subject": instance.actor_subject or None,
            "actor_jti": instance.actor_jti or None,
        },
    )


def _log(sender, instance, created, **kwargs):
    if created:
        log_event(instance)


def connect_signals():
    """Complete and log every ExchangeEvent row saved through the ORM."""
    pre_save.connect(_complete, sender=ExchangeEvent, dispatch_uid="exchange.audit.complete")
    post_save.connect(_log, sender=ExchangeEvent, dispatch_uid="exchange.audit.log")


def prune(*, days=None, now=None, dry_run=False, batch_size=5000):
    """Delete exchange events older than ``days`` (default: the retention setting); return the count."""
    days = exchange_settings.AUDIT_RETENTION_DAYS if days is None else days
    cutoff = (now or timezone.now()) - datetime.timedelta(days=days)
    old = ExchangeEvent.objects.filter(created__lt=cutoff)
    if dry_run:
        return old.count(), cutoff
    deleted = 0
    while True:
        # Batches keep each transaction (and its locks) short on a large table.
        batch = list(old.values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted, cutoff
        deleted += ExchangeEvent.objects.filter(pk__in=batch).delete()[0]
