from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = "Token exchange"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import accounts, audit, checks, registry, scopes, service_accounts  # noqa: F401  (checks: registers system checks)
        from .ops import metrics

        accounts.connect_signals()
        audit.connect_signals()
        metrics.connect_signals()
        registry.connect_signals()
        service_accounts.connect_signals()
        post_migrate.connect(scopes.post_migrate, sender=self, dispatch_uid="exchange-built-in-scopes")
