"""Thin launcher: ``python predict.py ckpt_path=... [data=...]`` writes per-node predictions."""

from gnngmm.predict import main

if __name__ == "__main__":
    main()
