from django.core.management.base import CommandError

from ...audit import prune
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = (
        "Delete token-exchange audit events older than the retention period "
        "(TOKEN_EXCHANGE['AUDIT_RETENTION_DAYS'], or --days). Run it daily."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--days", type=int, help="Keep this many days instead of the setting.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, **options):
        days = options["days"]
        if days is not None and days < 0:
            raise CommandError("--days must be zero or more.")
        count, cutoff = prune(days=days, dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.emit(
            options,
            {"deleted": 0 if options["dry_run"] else count, "matched": count, "before": cutoff.isoformat(),
             "dry_run": options["dry_run"]},
            f"{verb.capitalize()} {count} exchange event(s) older than {cutoff.isoformat()}.",
        )
