"""Encrypt the signing private keys already stored (exchange/secrets_at_rest.py).

Reversible: unapplying it (to run a version that reads plaintext keys) decrypts them again.
"""

from django.db import migrations

from exchange import secrets_at_rest


def encrypt(apps, schema_editor):
    SigningKey = apps.get_model("exchange", "SigningKey")
    for row in SigningKey.objects.using(schema_editor.connection.alias).exclude(private_pem=""):
        if not secrets_at_rest.is_sealed(row.private_pem):
            row.private_pem = secrets_at_rest.seal(row.private_pem, row.kid)
            row.save(update_fields=["private_pem"])


def decrypt(apps, schema_editor):
    SigningKey = apps.get_model("exchange", "SigningKey")
    for row in SigningKey.objects.using(schema_editor.connection.alias).exclude(private_pem=""):
        if secrets_at_rest.is_sealed(row.private_pem):
            row.private_pem = secrets_at_rest.unseal(row.private_pem, row.kid)
            row.save(update_fields=["private_pem"])


class Migration(migrations.Migration):

    dependencies = [
        ("exchange", "0006_accesstoken_audience"),
    ]

    operations = [
        migrations.RunPython(encrypt, decrypt),
    ]
