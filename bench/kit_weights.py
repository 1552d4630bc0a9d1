"""The kit's model weights on the device: the real ones carried as fp16, loaded as fp32; else (unless
``--real``) drawn from the model's config, the same shapes and so the same speed, but scores that mean nothing.

    python bench/kit_weights.py .kit            # bench/gpu-device
    python bench/kit_weights.py .kit --real     # bench/seed-table-device: its scores must mean something
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kit", type=Path)
    parser.add_argument("--real", action="store_true", help="refuse to draw weights: the real ones must be there")
    args = parser.parse_args()
    model, real = args.kit / "model", args.kit / "weights" / "model.fp16.safetensors"
    if real.exists():
        save_file({name: tensor.float() for name, tensor in load_file(real).items()}, model / "model.safetensors")
        print("weights: the real all-MiniLM-L6-v2, carried as fp16, as fp32")
    elif args.real:
        sys.exit(f"kit_weights: no {real}: pack the kit with KIT_WEIGHTS=1 bench/gpu-kit and carry it")
    elif not (model / "model.safetensors").exists():
        torch.manual_seed(0)
        AutoModel.from_config(AutoConfig.from_pretrained(model)).save_pretrained(model)
        print("weights: drawn from the config (the same shapes, so the same speed; scores mean nothing)")


if __name__ == "__main__":
    main()
