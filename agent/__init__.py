"""recsage engine."""

import os

# Must be set before torch/onnxruntime start their thread pools: on 2 busy cores, spinning OpenMP
# workers made inference several times slower (docs/architecture.md). Importing `agent` first guarantees it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
