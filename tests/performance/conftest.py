"""What the benchmarks rely on (database round trips, cache invalidation, the lean signer) and a smoke run
of the bench harness itself; speed itself is measured by `make bench`, never here.

No fixture is shared by several modules here yet: each module keeps its own beside its tests.
"""
