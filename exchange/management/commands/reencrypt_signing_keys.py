from django.core.management.base import CommandError
from django.db import transaction

from ...models import SigningKey
from ...secrets_at_rest import SecretUnavailable, seal, sealed_with_current_secret, unseal
from ..base import ConsoleCommand


class Command(ConsoleCommand):
    help = (
        "Encrypt the stored signing private keys anew with the current key-encryption secret "
        "(TOKEN_EXCHANGE['SIGNING_KEY_ENCRYPTION_KEY'], else SECRET_KEY). Run it after rotating that "
        "secret, with the previous one still in the fallbacks; then the fallback can be removed."
    )

    def handle(self, *args, **options):
        resealed = []
        try:
            with transaction.atomic():
                for row in SigningKey.objects.select_for_update().exclude(private_pem=""):
                    if not sealed_with_current_secret(row.private_pem):
                        row.private_pem = seal(unseal(row.private_pem, row.kid), row.kid)
                        row.save(update_fields=["private_pem"])
                        resealed.append(row.kid)
        except SecretUnavailable as exc:
            raise CommandError(f"{exc} Nothing was changed.") from None
        self.emit(options, {"reencrypted": resealed},
                  f"{len(resealed)} signing key(s) encrypted with the current secret.")
