"""``opsfleet ca fingerprint``: print the fleet CA's fingerprint for ``daemon enroll``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from opsfleet.manager.config import load_manager_config

HELP = """\
Print the SHA-256 fingerprint (sha256:<64 hex>) of the Manager's fleet CA: the value
daemons pin with `opsfleet daemon enroll --ca-fingerprint`. Reads the CA named by
enrollment.ca_cert_file or kept in <data_dir>/ca/ca.pem (the Manager creates it on its
first start). Run it where the Manager runs, with the Manager's --config / --data-dir.
"""


def add_parser(sub: Any) -> None:
    ca: argparse.ArgumentParser = sub.add_parser("ca", help="the fleet CA", description="The fleet CA.")
    actions = ca.add_subparsers(dest="ca_action", metavar="ACTION", required=True)
    p: argparse.ArgumentParser = actions.add_parser(
        "fingerprint",
        help="print the fleet CA's fingerprint",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", type=Path, metavar="FILE", help="the Manager's YAML config file")
    p.add_argument("--data-dir", metavar="DIR", help="the Manager's data directory (default ./data)")
    p.set_defaults(handler=run_fingerprint)


def run_fingerprint(args: argparse.Namespace) -> int:
    from opsfleet.manager.fleet_ca import ca_fingerprint

    config = load_manager_config(args.config, os.environ, {"data_dir": args.data_dir})
    print(ca_fingerprint(config))
    return 0
