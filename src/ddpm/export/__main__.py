"""python -m ddpm.export CKPT OUT_DIR [--format diffusers|safetensors] [--use-ema true|false]"""

from __future__ import annotations

import argparse
import sys

from ddpm.checkpoint import CheckpointError
from ddpm.checks import ConfigError
from ddpm.export import EXPORTERS


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"--use-ema={text!r} is not valid; choose true or false")
    return text.lower() == "true"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ddpm.export", description=__doc__)
    p.add_argument("ckpt", help="a checkpoint written by train.py")
    p.add_argument("out_dir", help="the folder to write")
    p.add_argument("--format", choices=sorted(EXPORTERS), default="diffusers")
    p.add_argument("--use-ema", type=_bool, default=True, help="EMA weights (default) or raw")
    a = p.parse_args(argv)
    try:
        out = EXPORTERS[a.format](a.ckpt, a.out_dir, a.use_ema)
    except (ConfigError, CheckpointError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {a.format} export of {a.ckpt} ({'EMA' if a.use_ema else 'raw'} weights) to {out}")


if __name__ == "__main__":
    main()
