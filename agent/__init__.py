"""recsage engine."""

import os

# Must be set before torch/onnxruntime start their thread pools: on 2 busy cores, spinning OpenMP
# workers made inference 1.5-5x slower (DESIGN.md). Importing `agent` first guarantees it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
