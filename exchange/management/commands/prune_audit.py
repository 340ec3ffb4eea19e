from django.core.management.base import CommandError

from ...audit import prune
from ...shared_cache import database_store
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = (
        "Delete token-exchange audit events older than the retention period "
        "(TOKEN_EXCHANGE['AUDIT_RETENTION_DAYS'], or --days), and expired replay records and "
        "throttle counters (subject tokens that can no longer be accepted). Run it daily."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--days", type=int, help="Keep this many days of audit events instead of the setting.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, **options):
        days = options["days"]
        if days is not None and days < 0:
            raise CommandError("--days must be zero or more.")
        dry_run = options["dry_run"]
        count, cutoff = prune(days=days, dry_run=dry_run)
        expired = database_store.prune(dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.emit(
            options,
            {"deleted": 0 if dry_run else count, "matched": count, "before": cutoff.isoformat(),
             "expired_records_deleted": 0 if dry_run else expired, "expired_records_matched": expired,
             "dry_run": dry_run},
            f"{verb.capitalize()} {count} exchange event(s) older than {cutoff.isoformat()} "
            f"and {expired} expired replay record(s) and throttle counter(s).",
        )
