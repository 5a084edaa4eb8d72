"""The client's commands, one module per command group; each has ``register(sub, parents)``."""
