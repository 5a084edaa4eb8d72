"""The operators' command line over the Manager's REST API (``opsfleet login``, ``nodes``, ...).

Layers: :mod:`.api` is the only module that speaks HTTP (a typed, synchronous client);
:mod:`.output` renders answers as rich tables or JSON; :mod:`.commands` turns flags into API
calls; :mod:`.cli` registers the subcommands and maps errors to exit codes in one table.
"""
