"""Thin launcher: ``python train.py [overrides]`` runs gnngmm's Hydra entry point."""

from gnngmm.train import main

if __name__ == "__main__":
    main()
