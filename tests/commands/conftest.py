"""The management commands (manage.py …): names, flags, --json output, and explain_token's validation steps.

No fixture is shared by several modules here yet: each module keeps its own beside its tests.
"""
