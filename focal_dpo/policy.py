"""The policy as one module: `Policy(model)(input_ids, attention_mask, positions)` -> per-token log-probs.

Its forward runs the causal LM's own decoder to the last hidden states and the chunked LM head (no
`[batch, seq, vocab]` logits), so everything that wraps a module's forward wraps it: a peft LoRA model inside it,
DDP or FSDP2 (`fully_shard`) around it, `torch.compile` on its decoder layers. Loading (dtype, dropout off,
4-bit base) and LoRA set-up live here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from focal_dpo.config import OptionError
from focal_dpo.loss import logps

PARAM_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class Policy(torch.nn.Module):
    """A causal LM (or a peft model around one) whose forward returns next-token log-probs where asked."""

    def __init__(self, model: torch.nn.Module, chunk_size: int = 0):
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size

    @property
    def causal_lm(self) -> torch.nn.Module:
        """The transformers model under any peft wrapper (its modules carry the LoRA layers in place)."""
        return self.model.get_base_model() if is_peft(self.model) else self.model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor):
        """fp32 [B, T-1] log-probs of input_ids[:, 1:] at `positions` (zero elsewhere)."""
        lm = self.causal_lm
        hidden = lm.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        return logps(hidden, head_weight(lm.get_output_embeddings()), input_ids, positions, self.chunk_size)

    def reference(self):
        """Context in which forward is the reference: the base model with the LoRA adapter disabled."""
        return self.model.disable_adapter() if is_peft(self.model) else nullcontext()


def is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "get_base_model") and hasattr(model, "disable_adapter")


def head_weight(head: torch.nn.Module) -> torch.Tensor:
    """The LM head's effective weight: its own, or W + scale * B @ A for a peft LoRA layer on the head."""
    base = getattr(head, "base_layer", head)
    if getattr(base, "bias", None) is not None:
        raise ValueError("LM heads with a bias are not supported by the chunked log-prob path")
    weight = base.weight
    if base is head or head.disable_adapters or head.merged:
        return weight
    for name in head.active_adapters:
        if name in head.lora_A:
            delta = head.lora_B[name].weight @ head.lora_A[name].weight
            weight = weight + head.scaling[name] * delta.to(weight.dtype)
    return weight


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off everywhere (TRL does the same): step 1 then has policy == reference and zero rewards.

    Attention dropout is often a float read at call time (`self.attention_dropout`), not a Dropout module.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)
    config = getattr(model, "config", None)
    if config is not None:
        for name, value in config.to_dict().items():
            if ("dropout" in name or name.endswith("pdrop")) and isinstance(value, float):
                setattr(config, name, 0.0)


def load_model(
    path: str,
    device: torch.device | str = "cpu",
    param_dtype: str = "fp32",
    load_in_4bit: bool = False,
) -> torch.nn.Module:
    """A causal LM in `param_dtype` with dropout off; `load_in_4bit` gives a bitsandbytes NF4 base (CUDA)."""
    from transformers import AutoModelForCausalLM

    dtype = PARAM_DTYPES[param_dtype]
    kwargs: dict[str, Any] = {"dtype": dtype}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )  # fmt: skip
        kwargs["device_map"] = {"": torch.device(device)}
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if not load_in_4bit:
        model = model.to(device)
    disable_dropout(model)
    return model


def add_lora(
    model: torch.nn.Module,
    r: int,
    alpha: float,
    dropout: float,
    target_modules: str,
    gradient_checkpointing: bool = False,
) -> torch.nn.Module:
    """Wrap `model` with a trainable peft LoRA adapter; the base weights are frozen."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    targets: str | list[str] = target_modules
    if target_modules != "all-linear":
        targets = [name.strip() for name in target_modules.split(",") if name.strip()]
    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as err:  # e.g. target modules the model does not have
        raise OptionError(f"--lora-target-modules {target_modules}: {str(err).splitlines()[0]}") from None
    head = peft_model.get_base_model().get_output_embeddings()
    if hasattr(head, "lora_A") and dropout > 0:
        raise OptionError(
            "--lora-dropout applies to the adapter input, which the chunked LM head does not see: "
            "use --lora-dropout 0 or leave lm_head out of --lora-target-modules"
        )
    return peft_model


def decoder_layers(lm: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated decoder blocks (the classes transformers marks `_no_split_modules`), bottom-up."""
    names = set(getattr(lm, "_no_split_modules", None) or [])
    layers = [m for m in lm.modules() if type(m).__name__ in names]
    if not layers:  # fall back to the longest ModuleList, the usual home of the blocks
        lists = [m for m in lm.modules() if isinstance(m, torch.nn.ModuleList)]
        layers = list(max(lists, key=len)) if lists else []
    return layers


def compile_layers(policy: Policy, backend: str = "inductor") -> None:
    """torch.compile each decoder layer in place (shapes vary per batch, so the head stays eager)."""
    for layer in decoder_layers(policy.causal_lm):
        layer.compile(backend=backend, dynamic=True)


@contextmanager
def gradient_checkpointing(lm: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Activation checkpointing (non-reentrant, so frozen LoRA bases and FSDP2 need no input grads)."""
    if not enabled:
        yield
        return
    kwargs = {"use_reentrant": False}
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers 5's name; 4.x has only the old one
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    lm.config.use_cache = False
    try:
        yield
    finally:
        (getattr(lm, "activation_checkpointing_disable", None) or lm.gradient_checkpointing_disable)()
        lm.config.use_cache = True


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
