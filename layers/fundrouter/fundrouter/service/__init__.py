"""Use cases: what the handlers call. They speak the domain and reach storage only
through the repository ports."""
