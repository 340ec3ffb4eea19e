"""Subject-token trust: which issuer may be exchanged by which application, JWKS endpoints that misbehave,
and the validation of issuers, certificates and applications on save.

No fixture is shared by several modules here yet: each module keeps its own beside its tests.
"""
