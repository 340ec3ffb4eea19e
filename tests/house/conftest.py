"""House rules read from the source: the app never imports the project, test tooling stays in tests/, and the
test tree's own layout.

No fixture is shared by several modules here yet: each module keeps its own beside its tests.
"""
