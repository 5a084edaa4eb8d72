"""The Manager's rules, shared by the gRPC, REST and CLI adapters."""
