"""The health monitor: probes on a schedule, the snapshot pages read, Prometheus metrics."""
