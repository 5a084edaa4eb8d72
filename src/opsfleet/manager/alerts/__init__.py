"""Alerting: rules evaluated in memory from the events the Manager handles, persisted
transitions, and notifications to Prometheus Alertmanager and webhooks (docs/alerting.md)."""
