"""moto server with the patches of moto_patches: ``python -m emulation.lambda_runtime.moto_server``
takes the same arguments as ``moto_server`` (e.g. ``-H 127.0.0.1 -p 5000``)."""

from __future__ import annotations

import sys

from emulation.lambda_runtime import moto_patches


def main(argv: list[str] | None = None) -> int:
    """Apply the patches, then run moto's own server entry point (exit 2 on another moto)."""
    try:
        moto_patches.apply()
    except moto_patches.MotoVersionError as exc:
        print(f"moto_server: {exc}", file=sys.stderr)  # shown in `make up`'s log tail
        return 2
    from moto.server import main as moto_main

    moto_main(sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
