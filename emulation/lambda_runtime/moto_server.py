"""moto server with the patches of moto_patches: ``python -m emulation.lambda_runtime.moto_server``
takes the same arguments as ``moto_server`` (e.g. ``-H 127.0.0.1 -p 5000``)."""

from __future__ import annotations

import sys

from emulation.lambda_runtime import moto_patches


def main(argv: list[str] | None = None) -> int:
    """Apply the patches, then run moto's own server entry point."""
    moto_patches.apply()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
