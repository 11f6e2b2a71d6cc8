"""Where a model comes from (a directory, the local hub cache, the hub), checked before anything loads.

A wrong path or a hub name that cannot be fetched is one line naming the option and what to do, instead of a
page of Hugging Face traceback or a minute of connection retries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from focal_dpo.config import OptionError, TrainConfig

TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """True when the user told Hugging Face not to use the network."""
    return any(
        os.environ.get(name, "").strip().lower() in TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def looks_like_path(source: str) -> bool:
    """A hub name is `name` or `org/name`; anything else (absolute, ./, ~, deeper) is meant as a directory."""
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or os.sep != "/" and os.sep in source


def in_hub_cache(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(repo, "config.json")
    except Exception:  # an invalid repo id: the hub would refuse it too
        return False
    return isinstance(found, str)


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection to the hub endpoint (a proxy in the environment: assume it can reach it)."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection(
            (endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=timeout
        ):
            return True
    except OSError:
        return False


def check_model_source(source: str, option: str = "--model") -> None:
    """Raise OptionError naming `option` unless `source` is a model directory, a cached hub model, or a hub name
    that can be downloaded now."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise OptionError(
                f"{option} {source}: is a file; give a model directory (save_pretrained) or a hub name"
            )
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise OptionError(
                f"{option} {source}: no config.json in it, so it is not a model directory "
                "(make one with save_pretrained, or focal-dpo tiny-model DIR)"
            )
        return
    if looks_like_path(source):
        raise OptionError(f"{option} {source}: no such directory")
    if in_hub_cache(source):
        return
    if offline():
        raise OptionError(
            f"{option} {source}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download it "
            f"first (huggingface-cli download {source}) or give a local directory"
        )
    if not hub_reachable():
        raise OptionError(
            f"{option} {source}: not a local directory, not in the Hugging Face cache, and the hub cannot be "
            "reached: give a local directory, or connect and retry"
        )


def check_inputs(config: TrainConfig) -> None:
    """Every input that can be checked before loading anything: one OptionError/BadRowError naming it."""
    from focal_dpo.data import data_path

    try:
        data_path(config.data)
    except OSError as err:
        raise OptionError(f"--data {err}") from None
    output = Path(config.output)
    if output.exists() and not output.is_dir():
        raise OptionError(f"--output {output}: is a file; give a directory (it is created when missing)")
    check_model_source(config.model, "--model")
    if config.ref_model and config.loss != "sft":
        check_model_source(config.ref_model, "--ref-model")
    if config.resume and not output.is_dir():
        raise OptionError(f"--resume: {output} does not exist, so there is no checkpoint to resume from")
