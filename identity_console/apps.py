from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    """Django's admin, with the console's AdminSite as the default site."""

    default_site = "identity_console.console.ConsoleSite"
