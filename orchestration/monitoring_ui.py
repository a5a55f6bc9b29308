"""``make monitoring-ui``: Evidently's UI on 127.0.0.1 over the monitoring workspace.

The workspace is the one the monitoring cycle adds a run to per window
(``MONITORING_WORKSPACE``, default ``<reports>/monitoring/workspace``); port
``MONITORING_UI_PORT`` (default 8000).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from config.settings import MonitoringConfig, Settings


def ui_command(config: MonitoringConfig) -> list[str]:
    """The ``evidently ui`` command line over the workspace (localhost only)."""
    evidently = Path(sys.executable).with_name("evidently")
    return [
        str(evidently),
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(config.ui_port),
        "--workspace",
        str(config.workspace_dir),
    ]


def main() -> int:
    config = Settings.from_env().monitoring
    if config is None or config.workspace_dir is None:
        print("ERROR: no monitoring workspace configured (MONITORING_WORKSPACE)", file=sys.stderr)
        return 1
    config.workspace_dir.mkdir(parents=True, exist_ok=True)
    command = ui_command(config)
    print(
        f"Monitoring dashboard (Evidently UI) on http://127.0.0.1:{config.ui_port}"
        f" (workspace {config.workspace_dir}); Ctrl-C stops"
    )
    sys.stdout.flush()
    # exec: Ctrl-C and signals go straight to the server, no wrapper process left behind.
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
