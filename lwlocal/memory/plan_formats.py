"""A plan in the forms other tools take: llama-server arguments and an Ollama Modelfile."""

from __future__ import annotations

import shlex
from pathlib import Path

from lwlocal.families.prompt_format import PromptFormat
from lwlocal.memory.planner import Plan
from lwlocal.runtime.kv_cache import DRAFT_KV_TYPE


def llama_server_args(plan: Plan, model_path: Path, draft: Path | None = None) -> str:
    """The llama-server command line that runs with the plan's settings (and the draft model
    ``draft`` as the plan counts it: an f16 KV cache, on the GPU when the model is)."""
    s = plan.settings
    args = ["llama-server", "-m", str(model_path), "-c", str(s.n_ctx), "-ngl", str(s.n_gpu_layers),
            "-b", str(s.n_batch), "-ub", str(s.n_batch), "-t", str(s.threads),
            "--flash-attn", "on" if s.flash_attn else "off",
            "--cache-type-k", s.kv_type, "--cache-type-v", s.kv_type]
    if s.n_gpu_layers:
        args += ["--split-mode", "none"]  # the plan is for one GPU
    if draft is not None:
        args += ["--model-draft", str(draft), "--gpu-layers-draft",
                 "all" if s.n_gpu_layers else "0", "--cache-type-k-draft", DRAFT_KV_TYPE,
                 "--cache-type-v-draft", DRAFT_KV_TYPE]
    return shlex.join(args)


def ollama_template(fmt: PromptFormat) -> str:
    """The prompt format as an Ollama (Go text/template) TEMPLATE."""
    system = f"{{{{ if .System }}}}{fmt.system.format(content='{{ .System }}')}{{{{ end }}}}"
    return fmt.start + (system if fmt.system else "") + fmt.user.format(
        content="{{ .Prompt }}") + "{{ .Response }}" + fmt.end_of_turn


def ollama_modelfile(plan: Plan, model_path: Path, fmt: PromptFormat) -> str:
    """An Ollama Modelfile: FROM, TEMPLATE and the plan's PARAMETERs.

    Ollama sets the KV cache type and flash attention for its whole server, through
    environment variables; the file says which in comments.
    """
    s = plan.settings
    lines = [
        f"# lwlocal plan for {plan.model}: {plan.memory.ram_bytes / 2**30:.2f} GiB RAM, "
        f"{plan.memory.vram_bytes / 2**30:.2f} GiB VRAM predicted",
        f"# server settings: OLLAMA_FLASH_ATTENTION={int(s.flash_attn)} "
        f"OLLAMA_KV_CACHE_TYPE={s.kv_type}",
        f"FROM {model_path}",
        f'TEMPLATE """{ollama_template(fmt)}"""',
        f"PARAMETER num_ctx {s.n_ctx}",
        f"PARAMETER num_gpu {s.n_gpu_layers}",
        f"PARAMETER num_batch {s.n_batch}",
        f"PARAMETER num_thread {s.threads}",
    ]
    lines += [f'PARAMETER stop "{stop}"' for stop in fmt.stops]
    return "\n".join(lines) + "\n"
