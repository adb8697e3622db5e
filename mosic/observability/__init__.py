"""Observability: Prometheus metrics, the access log and the logging set-up."""

# prometheus-client reads this variable when it is first imported, so the process shell sets
# it before anything imports ``mosic.observability.metrics``; this package imports nothing.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
