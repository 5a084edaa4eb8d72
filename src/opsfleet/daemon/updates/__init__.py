"""Agent updates pushed by the Manager: verify, fetch, unpack, switch, watch, roll back."""
