"""Presets for shared token issuers: CI platforms and clusters whose one issuer signs for everyone.

Registering GitHub's issuer trusts every workflow of every GitHub user unless a condition narrows
it, so a shared preset cannot be saved without an admission condition (conditions.py); the
platforms themselves recommend conditions on immutable owner ids (GitHub's
``repository_owner_id``, GitLab's ``namespace_id``, Terraform Cloud's ``terraform_organization_id``)
rather than on names, which can be renamed and then registered by someone else. An issuer
registered by hand with one of these issuer values is held to the same rule.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    issuer: str  # "" when each installation has its own (a Kubernetes cluster)
    algorithms: tuple
    example_condition: str
    owner_claim: str  # the immutable owner id the condition should name
    why: str


PRESETS = {
    preset.key: preset
    for preset in (
        Preset(
            "github_actions", "GitHub Actions", "https://token.actions.githubusercontent.com", ("RS256",),
            'claims.repository_owner_id == "123456789" && claims.ref == "refs/heads/main"',
            "repository_owner_id",
            "GitHub Actions signs the OIDC tokens of every workflow of every GitHub user with this one issuer.",
        ),
        Preset(
            "gitlab_com", "GitLab.com", "https://gitlab.com", ("RS256",),
            'claims.namespace_id == "1234567" && claims.ref_protected == "true"',
            "namespace_id",
            "GitLab.com signs the ID tokens of every CI job of every GitLab.com project with this one issuer.",
        ),
        Preset(
            "terraform_cloud", "Terraform Cloud (HCP Terraform)", "https://app.terraform.io", ("RS256",),
            'claims.terraform_organization_id == "org-AbCdEf123456" && claims.terraform_workspace_id == "ws-AbCdEf123456"',
            "terraform_organization_id",
            "Terraform Cloud signs the workload identity tokens of every run of every organization with this one issuer.",
        ),
        Preset(
            "kubernetes", "Kubernetes cluster", "", ("RS256", "ES256"),
            'claims.sub == "system:serviceaccount:ci:deployer"',
            "sub",
            "A cluster signs the service-account tokens of every workload in every namespace with its one issuer.",
        ),
    )
}

#: Issuer values that are shared by every customer of a platform, whatever preset (if any) was chosen.
SHARED_ISSUERS = {preset.issuer: preset for preset in PRESETS.values() if preset.issuer}

CHOICES = [("", _("None"))] + [(preset.key, preset.label) for preset in PRESETS.values()]


def shared_preset(preset_key, issuer):
    """The preset that makes this issuer shared (chosen, or known by its issuer value), or None."""
    return PRESETS.get(preset_key) or SHARED_ISSUERS.get(issuer)


def condition_required_message(preset):
    """Why a shared issuer needs a condition: the sentence the console, the API and the command show."""
    return (
        f"{preset.why} Without an admission condition anyone there could exchange tokens here. "
        f"Add a condition on the immutable owner id ({preset.owner_claim}), for example: {preset.example_condition}"
    )
