"""The HTTP edge of the ApiFunction: routes, the caller's identity, and the one map
from errors to the error shape of docs/api.md."""
