"""Export of the Manager's stored samples to other monitoring systems (Prometheus remote write)."""
