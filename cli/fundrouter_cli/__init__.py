"""``fundrouter``: the command line for a fundrouter stack, local or deployed.

Everything it does goes through the public HTTP API with OAuth2 client-credentials
tokens, exactly as a business system or an operator would: it never reads the tables.
"""

__version__ = "0.1.0"
