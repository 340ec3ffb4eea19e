"""The documentation as executable claims: settings and commands on their pages, every relative link resolves,
and the README's quickstart run verbatim against a served instance (slow).

No fixture is shared by several modules here yet: each module keeps its own beside its tests.
"""
