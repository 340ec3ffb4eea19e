"""Developer tools that are not part of the application (run from the checkout)."""
