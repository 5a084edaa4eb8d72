"""The daemon's DaemonService: a thin gRPC adapter over the agent supervisor."""
