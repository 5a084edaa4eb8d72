"""Update packages stored by the Manager: settings, storage, signing, download tokens."""
