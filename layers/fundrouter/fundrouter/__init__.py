"""fundrouter: route financing orders to lending lines without over-allocating them."""

# CloudWatch namespace of every metric fundrouter emits. Set in code, not only in the
# environment, so metrics flush the same under tests, sam local invoke and Lambda.
METRICS_NAMESPACE = "fundrouter"
