"""One module per benchmark scenario, each with ``add_parser(sub)`` and ``run(args, workdir)``."""
