from __future__ import annotations

import sys

from opsfleet.cli import main

sys.exit(main())
