"""The memory planner: the settings that fit a job on a machine, searched from the largest
context and the most precise KV cache down, with the memory they take (``allocations``) and why
(``explain``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lwlocal.memory.allocations import GPU_RUNTIME_DEFAULT, Memory, predict
from lwlocal.memory.context_need import TOKENS_MARGIN, Need, round_up
from lwlocal.memory.context_settings import DEFAULT_BATCH, Overrides, Settings
from lwlocal.memory.explain import explain, suggest
from lwlocal.memory.hardware import Machine
from lwlocal.memory.job_time import JobTime, job_time
from lwlocal.memory.model_shape import ModelShape
from lwlocal.memory.speed import Speed
from lwlocal.runtime.llama_build import GPU_BUILD_HINT
from lwlocal.util.cpu import default_threads

SMALL_BATCHES = (256, 128)
KV_PREFERENCE = ("f16", "q8_0", "q4_0")  # with GPU layers: the most precise that fits
# on the CPU: with flash attention over a quantized cache llama.cpp computes a batch exactly as
# one token at a time, so a resumed job and speculation write what a plain run writes
# (docs/reproducible.md); its cost against f16 is measured in the README
KV_BATCH_INVARIANT = ("q8_0", "q4_0")
RAM_HEADROOM = 0.9  # plan to use at most this share of available memory


@dataclass
class Plan:
    """Chosen settings, predicted memory, one line of reasons per choice, and whether it fits.

    ``suggestions`` and ``warnings`` name settings as ``{n_ctx}``, as :class:`SettingError`
    does: front ends show them with ``lwlocal.util.errors.name_settings``."""

    model: str
    settings: Settings
    memory: Memory
    need: Need
    fits: bool
    reasons: list[str]
    suggestions: list[str]
    ram_budget: int
    vram_budget: int
    exact: bool
    gpu_runtime: int = 0  # the GPU runtime term used (0 without GPU layers)
    gpu_runtime_measured: bool = False
    warnings: list[str] = field(default_factory=list)
    draft_model: str | None = None  # the draft model counted in, speculating
    time: JobTime | None = None  # the job's predicted time (None: no speed measured, or GPU)
    speed: Speed | None = None  # what it was predicted from
    compared: list[tuple[Settings, float]] = field(default_factory=list)  # fitting, timed
    shape: ModelShape | None = None
    decode_gain: float = 1.0  # speculation's measured gain in decode rate, the time counts

    def time_for(self, sections: int) -> JobTime | None:
        """The job's time written in ``sections`` (an outline's), where the plan has one."""
        if self.time is None or self.speed is None or self.shape is None:
            return None
        return job_time(self.shape, self.settings, self.speed,
                        replace(self.need, sections=sections), self.decode_gain)

    def as_dict(self) -> dict[str, object]:
        s = self.settings
        return {
            "model": self.model,
            "draft_model": self.draft_model,
            "ram_bytes": self.memory.ram_bytes,
            "ram_steady_bytes": self.memory.ram_steady_bytes,
            "ram_load_bytes": self.memory.ram_load_bytes,
            "vram_bytes": self.memory.vram_bytes,
            "vram_measured": False,
            "gpu_runtime_bytes": self.gpu_runtime,
            "gpu_runtime_measured": self.gpu_runtime_measured,
            "n_ctx": s.n_ctx,
            "kv_type": s.kv_type,
            "flash_attn": s.flash_attn,
            "n_gpu_layers": s.n_gpu_layers,
            "n_batch": s.n_batch,
            "n_ubatch": s.n_batch,
            "threads": s.threads,
            "fits": self.fits,
            "context_needed": self.need.full,
            "context_minimum": self.need.minimum,
            "tokens_per_word": round(self.need.tokens_per_word, 3),
            "tokens_margin": TOKENS_MARGIN,
            "ram_budget_bytes": self.ram_budget,
            "vram_budget_bytes": self.vram_budget,
            "sizes_exact": self.exact,
            "memory_parts": self.memory.parts,
            "reasons": self.reasons,
            "suggestions": self.suggestions,
            "warnings": self.warnings,
        }


def _fits(memory: Memory, ram: int, vram: int, unified: bool) -> bool:
    """Whether ``memory`` fits the budgets; on unified memory the GPU's share comes out of RAM
    too, except the offloaded weights, which stay in the file mapping RAM already counts."""
    shared = memory.vram_bytes - memory.parts.get("vram_weights", 0) if unified else 0
    return memory.ram_bytes + shared <= ram and memory.vram_bytes <= vram


def _offload(machine: Machine, fixed: Overrides, vram: int | None) -> tuple[Overrides, list[str]]:
    """The overrides a CPU-only llama.cpp build can honour, and a warning for an --ngl it cannot.

    A plan for another machine (``vram`` given) assumes that machine's build offloads."""
    if vram is not None or machine.offload or not fixed.n_gpu_layers:
        return fixed, []
    return replace(fixed, n_gpu_layers=0), [
        f"{{n_gpu_layers}} {fixed.n_gpu_layers} cannot take effect: this llama.cpp build is "
        "CPU-only "
        f"({GPU_BUILD_HINT}); planning for the CPU"]


def plan(shape: ModelShape, machine: Machine, need: Need, fixed: Overrides = Overrides(),
         ram: int | None = None, vram: int | None = None,
         draft: ModelShape | None = None, speed: Speed | None = None,
         decode_gain: float = 1.0) -> Plan:
    """Choose settings for ``need`` on ``machine`` (or within ``ram``/``vram`` bytes), with
    ``draft``'s memory counted in when a draft model speculates beside the model.

    With this machine's ``speed`` (on the CPU), of the settings that fit with the largest
    context and the most precise KV cache that fit, the fastest for the job (tokens decoded
    ``decode_gain`` times as fast, speculating); else the first that fits."""
    ram_budget = int((ram if ram is not None else machine.ram_available) * RAM_HEADROOM)
    vram_budget = int((vram if vram is not None else machine.vram_free) * RAM_HEADROOM)
    fixed, warnings = _offload(machine, fixed, vram)
    if vram is None and not machine.offload:
        vram_budget = 0
    measured_runtime = vram is None and machine.gpu_runtime is not None
    runtime = (machine.gpu_runtime if vram is None and machine.gpu_runtime is not None
               else GPU_RUNTIME_DEFAULT)
    repack = machine.cpu_repack
    trained = shape.context_length
    contexts = [fixed.n_ctx] if fixed.n_ctx else _contexts(need, trained)
    fa_options = [fixed.flash_attn] if fixed.flash_attn is not None else [True]
    batches = [fixed.n_batch] if fixed.n_batch else [DEFAULT_BATCH, *SMALL_BATCHES]
    threads = default_threads(machine.cores)
    on_gpu = bool(vram_budget > 0 or fixed.n_gpu_layers)
    kv_types = _kv_types(fixed, on_gpu)

    def gpu_layers(base: Settings) -> int:
        if fixed.n_gpu_layers is not None:
            return fixed.n_gpu_layers
        if not on_gpu:
            return 0
        for n in range(shape.n_layers + 1, -1, -1):
            if predict(shape, replace(base, n_gpu_layers=n), runtime, cpu_repack=repack,
                       draft=draft).vram_bytes <= vram_budget:
                return n
        return 0

    candidates = [Settings(c, k, fa, 0, b, threads) for c in contexts for k in kv_types
                  for fa in fa_options for b in batches if k == "f16" or fa]
    if not candidates:
        candidates = [Settings(contexts[0], kv_types[0], fa_options[0], 0, batches[0], threads)]
    fitting = []
    for candidate in candidates:
        candidate = replace(candidate, n_gpu_layers=gpu_layers(candidate))
        memory = predict(shape, candidate, runtime, cpu_repack=repack, draft=draft)
        if _fits(memory, ram_budget, vram_budget, machine.unified):
            fitting.append(candidate)
            if speed is None or on_gpu:
                break
    # the largest context and most precise KV cache that fit are kept (a smaller context is
    # faster where the writer leaves old sections out, but the model then reads less of the
    # job); the rest is chosen by time
    compared = [] if speed is None or on_gpu else [
        (c, job_time(shape, c, speed, need, decode_gain).seconds) for c in fitting
        if (c.kv_type, c.n_ctx) == (fitting[0].kv_type, fitting[0].n_ctx)]
    chosen = min(compared, key=lambda timed: timed[1])[0] if compared else (
        fitting[0] if fitting else None)
    fits = chosen is not None and (bool(fixed.n_ctx) or need.minimum <= trained)
    settings = chosen or replace(candidates[-1], n_gpu_layers=gpu_layers(candidates[-1]))
    settings.check()
    memory = predict(shape, settings, runtime, cpu_repack=repack, draft=draft)
    here = machine if vram is None else None
    reasons = explain(shape, settings, need, fixed, memory, ram_budget, vram_budget, here, draft)
    suggestions = [] if fits else suggest(shape, settings, need, ram_budget, memory)
    offloaded = settings.n_gpu_layers > 0
    timed = speed is not None and not offloaded
    return Plan(shape.name, settings, memory, need, fits, reasons, suggestions, ram_budget,
                vram_budget, shape.exact, runtime if offloaded else 0,
                offloaded and measured_runtime, warnings, draft.name if draft else None,
                job_time(shape, settings, speed, need, decode_gain) if timed and speed else None,
                speed if timed else None, compared, shape, decode_gain)


def _kv_types(fixed: Overrides, on_gpu: bool) -> list[str]:
    """KV cache types to try, in order of preference."""
    if fixed.kv_type:
        return [fixed.kv_type]
    if fixed.flash_attn is False:  # llama.cpp quantizes the V cache only with flash attention
        return ["f16"]
    if fixed.kv_quantized_why or not on_gpu:
        return list(KV_BATCH_INVARIANT)
    return list(KV_PREFERENCE)


def _contexts(need: Need, trained: int) -> list[int]:
    """Context sizes to try, largest first: the whole job, then halves down to the minimum."""
    sizes = [min(need.full, trained)]
    while (half := round_up(sizes[-1] // 2)) >= need.minimum and half < sizes[-1]:
        sizes.append(half)
    if need.minimum < sizes[-1] and need.minimum <= trained:
        sizes.append(need.minimum)
    return sizes
