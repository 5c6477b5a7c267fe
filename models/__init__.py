"""Model runtime: registry, loaders and batched runners. torch/transformers live only here."""

import os

# Everything loads from local files; huggingface_hub reads this once at import, so set it before
# any submodule imports transformers. An explicit setting by the operator wins.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
