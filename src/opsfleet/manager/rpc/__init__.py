"""gRPC adapters of the Manager: thin servicers over the services, and the server."""
