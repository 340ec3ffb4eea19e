"""The documentation as executable claims: the README's quickstart run verbatim against a served instance (slow).

No fixture is shared by several modules here yet: each module keeps its own beside its tests.
"""
