"""The console: Django's admin site, dressed and named for administrators of this product."""

from django.contrib import admin


class ConsoleSite(admin.AdminSite):
    site_header = "Identity Console"
    site_title = "Identity Console"
    index_title = "Console"
