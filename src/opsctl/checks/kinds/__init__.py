"""One module per check kind, each with a ``build(spec, context)`` function."""
