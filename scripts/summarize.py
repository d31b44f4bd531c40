"""python scripts/summarize.py MULTIRUN_DIR [--out DIR]: mean ± std tables (Markdown, CSV), an
NMI/ARI bar chart and summary.html (every run's point, seconds, memory) from the metrics.json files
of a Hydra multirun."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from gnngmm.summary import main  # noqa: E402

if __name__ == "__main__":
    main()
