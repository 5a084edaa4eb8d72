"""The central Manager: fleet state, gRPC services, REST API."""
