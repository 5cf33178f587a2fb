"""The Hugging Face side of ``eval-quant``: a checkpoint folder (a GPTQ quant, or its source)
evaluated with transformers, chunk by chunk as the GGUF evaluator does, so that GPTQ and GGUF
quants are measured the same way."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

from lwlocal.families import architecture_for
from lwlocal.quant.evaluator import split_chunks
from lwlocal.quant.gptq import INSTALL_HINT, hf_cache_kept, read_config
from lwlocal.util.cpu import default_threads
from lwlocal.util.errors import LwlocalError
from lwlocal.util.offline import hf_offline
from lwlocal.util.quiet import quiet_stderr


class HFEvaluator:
    """A transformers model that returns the logits of every position of a token chunk."""

    def __init__(self, folder: Path, *, n_ctx: int = 512, n_threads: int | None = None) -> None:
        try:
            import torch
            import transformers
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise LwlocalError(f"evaluating a checkpoint folder needs torch and transformers: "
                               f"{INSTALL_HINT} ({exc})") from exc
        self.path, self.n_ctx = folder, n_ctx
        self._scratch: tempfile.TemporaryDirectory | None = None
        config = read_config(folder)
        source = folder.resolve()
        relayout = architecture_for(config, folder / "config.json").native_relayout
        if relayout:
            self._scratch = tempfile.TemporaryDirectory(prefix="lwlocal-native-")
            source = relayout(source, Path(self._scratch.name))
        torch.set_num_threads(n_threads or default_threads())
        transformers.utils.logging.disable_progress_bar()
        # GPTQModel's CPU kernel asks torch.compile for every new chunk shape; eager is faster
        torch._dynamo.config.disable = True
        logging.getLogger("torchao").setLevel(logging.ERROR)  # optional kernels it lacks
        self._torch = torch
        try:
            with hf_offline():  # a local folder, as an absolute path: never a hub id
                self.tokenizer = AutoTokenizer.from_pretrained(str(source))
                with quiet_stderr(1), hf_cache_kept():  # GPTQModel, loaded here, prints one
                    self.model = AutoModelForCausalLM.from_pretrained(
                        str(source), dtype=torch.float32, device_map="cpu").eval()
        except (OSError, ValueError, ImportError) as exc:
            self.close()
            raise LwlocalError(f"{folder}: transformers could not load it ({exc})") from exc
        self.n_vocab = self.model.get_output_embeddings().out_features
        bos = self.tokenizer.bos_token_id
        self.bos = bos if bos is not None and self.tokenizer("a")["input_ids"][:1] == [bos] \
            else None

    def chunks(self, text: str, limit: int | None = None, label: str = "the text"
               ) -> list[np.ndarray]:
        tokens = np.array(self.tokenizer(text)["input_ids"], dtype=np.int64)
        return split_chunks(tokens, self.n_ctx, limit, label, self.bos)

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            out = self.model(self._torch.tensor(tokens[None, :], dtype=self._torch.long))
        return out.logits[0].float().numpy()

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> HFEvaluator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
