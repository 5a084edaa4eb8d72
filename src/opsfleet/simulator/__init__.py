"""Fleet simulator: many simulated daemons speaking the real protocol to one Manager.

``opsfleet simulate`` (``cli.py``) builds a frozen :class:`~opsfleet.simulator.config.SimConfig`
and hands it to :class:`~opsfleet.simulator.runner.Simulation`, which spreads the nodes over
worker processes (``worker.py``); every worker runs its share of nodes (``node.py``) on its
own asyncio loop and gRPC channels (``calls.py``), records what happened (``stats.py``) and
sends it back; the parent merges it into one report (``report.py``).
"""
