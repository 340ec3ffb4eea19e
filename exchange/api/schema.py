"""drf-spectacular hooks for the management API's OpenAPI document."""


def canonical_paths(result, generator, request, public):
    """Document each path without its optional trailing slash (``/trusted-token-issuers/{id}/keys``)."""
    result["paths"] = {path.rstrip("/") or path: item for path, item in result["paths"].items()}
    return result
