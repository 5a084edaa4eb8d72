"""Generated protobuf and gRPC modules (python scripts/gen_proto.py). Do not edit."""
