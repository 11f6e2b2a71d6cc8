"""Third-party noise off: import-time warnings of optional libraries, and progress bars under --no-progress."""

from __future__ import annotations

import os

from codeflow.llm.transformers_backend import quiet_import_notices


def quiet_libraries(progress: bool) -> None:
    """Silence import-time notices; with `progress` False also hide transformers', huggingface_hub's and
    datasets' bars ("Loading weights", "Writing model shards", downloads)."""
    quiet_import_notices()
    if progress:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # an old huggingface_hub: the environment variable above does it
        pass
