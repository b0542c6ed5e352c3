"""Local VLA inference with Hugging Face transformers (the ``policy.backend: local`` backend).

Loads a checkpoint directory with ``from_pretrained`` (always ``local_files_only``:
nothing is downloaded, ``HF_HUB_OFFLINE=1`` or not; the loading helpers are in
:mod:`rt2_ros.policies.checkpoints`), asks it the RT-2 question
about the image and instruction, and decodes the answer with
:mod:`rt2_ros.codecs`. Decoding is constrained to action tokens
(:mod:`rt2_ros.policies.constrained`), as RT-2 does (arXiv:2307.15818, section
3.3), so every answer is a valid action, even from random weights.

Model families:

* **PaliGemma / LLaVA-style** (``AutoModelForImageTextToText``), RT-2 format:
  one token per bin ``0..255`` in the vocabulary (number tokens, added tokens, or
  any spelling given as a pattern). Truly batched: left padding, one ``generate``.
* **OpenVLA** (``openvla/openvla-7b`` layout: ``model_type: openvla``). Loaded
  **natively** by default (:mod:`rt2_ros.policies.openvla`: transformers' own
  DINOv2/SigLIP/Llama modules, no remote code, no timm, truly batched). With
  ``policy.trust_remote_code: true`` the checkpoint's own code is run instead
  (through the ``AutoModelForVision2Seq`` entry of ``auto_map``; upstream needs
  timm >= 0.9.10, < 1.0 and transformers 4.40.1, and batch 1). Either way it
  follows ``OpenVLAForActionPrediction.predict_action`` (openvla
  ``prismatic/extern/hf/modeling_prismatic.py``): appends the empty token
  ``"▁"`` (id 29871 for Llama-2) to the prompt, generates 7 tokens from the last
  256 ids of the un-padded vocabulary (``text_config.vocab_size -
  pad_to_multiple_of``), decodes them to bin centres and un-normalises them with
  ``dataset_statistics.json[unnorm_key]``.
* Any image-text model with ``action.format: openvla`` (the last 256 ids of
  ``action.openvla_vocab_size`` are the action tokens).

At warm-up every model must pass an image-sensitivity check (two different
synthetic images, one instruction: the first-step logits over the action tokens
must differ), so a model whose output does not depend on the camera (e.g. OpenVLA's
remote code on transformers >= 4.50, openvla issue #346) refuses to start.

Imports torch and transformers: import this module only for the local backend
(:func:`rt2_ros.factory.make_policy` does so lazily).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import transformers
from PIL import Image
from transformers import (
    AutoProcessor,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)

from rt2_ros.codecs import (
    ActionCodec,
    OpenVLAActionTokenizer,
    RT2ActionTokenizer,
)
from rt2_ros.policies.base import (
    Observation,
    Policy,
    PolicyError,
    PolicyMetadata,
    PolicyResult,
    check_image,
    result_from_output,
)
from rt2_ros.policies.checkpoints import (
    ModelLoadError,
    _check_device,
    _load_model,
    _load_native_openvla,
    _load_statistics,
    _openvla_vocab_from_config,
    _output_vocab_size,
    _processor_image_size,
)
from rt2_ros.policies.constrained import (
    ActionLogitsProcessor,
    ActionTokensMissingError,
    CotSchedule,
    find_rt2_action_token_ids,
    openvla_action_ids,
    rt2_allowed_ids,
)
from rt2_ros.policies.prompts import COT_ACTION_MARKER, COT_PLAN_PREFIX, build_prompt

__all__ = ["TransformersPolicy", "ModelLoadError", "DTYPES"]

log = logging.getLogger(__name__)

#: ``policy.dtype`` -> torch dtype.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

#: OpenVLA's "empty" token appended after ``Out:`` (Llama-2 ``"▁"``), from
#: ``predict_action`` in openvla ``modeling_prismatic.py``.
OPENVLA_EMPTY_TOKEN_ID = 29871

#: Largest first-step logit difference (relative to the logits' scale) between two
#: different images below which a model counts as ignoring its image.
IMAGE_SENSITIVITY_RTOL = 1e-6


def _now() -> float:
    return time.perf_counter()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TransformersPolicy(Policy):
    """In-process RT-2-style policy on a transformers model.

    Usually built by :func:`rt2_ros.factory.make_policy` (node, server) or with
    :meth:`from_pretrained` (a checkpoint directory). The constructor takes an
    already-loaded model and processor (benchmarks build architectures in memory).

    Args:
        model: a transformers generative image-text model in eval mode.
        processor: its processor (``processor(images=, text=)`` returning
            ``input_ids``, ``attention_mask``, ``pixel_values``; ``.tokenizer``).
        model_id: checkpoint path or name, reported in ``metadata``.
        codec: the action codec (:func:`rt2_ros.codecs.make_codec`): an
            :class:`~rt2_ros.codecs.RT2ActionTokenizer` (8 integers, bounds,
            bins, terminate/continue values) or an
            :class:`~rt2_ros.codecs.OpenVLAActionTokenizer` (7 token ids,
            un-padded vocabulary size, statistics). Default: RT-2 with its defaults.
        prompt: ``"rt2"``, ``"openvla"``, ``"cot"`` or a custom template with
            ``{instruction}`` (see :mod:`rt2_ros.policies.prompts`).
        action_token_pattern: spelling of the token of integer ``k`` (``"▁{k}"``,
            ``"<act_{k}>"``, ``"<loc{k:04d}>"``...); None tries
            :data:`~rt2_ros.policies.constrained.DEFAULT_ACTION_TOKEN_PATTERNS`.
        restrict_terminate: field 0 may only be the codec's terminate or continue value
            (False leaves it unconstrained; any other value then decodes as malformed
            output, no motion).
        unnorm_key: the statistics key of an OpenVLA codec, reported in ``metadata``.
        openvla_family: the model is OpenVLA's own class (append the empty token,
            batch 1).
        max_plan_tokens: chain of thought: free plan tokens before ``Action:`` is forced.
        do_sample, temperature: sampling instead of greedy decoding (default greedy).
        max_batch_size: largest batch given to one ``generate`` call.
        warmup: run one inference at construction (first-call latency is paid
            here; a broken checkpoint fails here, not in the control loop).

    Raises:
        ModelLoadError: missing action tokens, ids outside the model's vocabulary,
            incompatible options, or a failed warm-up.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str = "",
        codec: ActionCodec | None = None,
        prompt: str = "rt2",
        action_token_pattern: str | Sequence[str] | None = None,
        restrict_terminate: bool = True,
        unnorm_key: str | None = None,
        openvla_family: bool = False,
        max_plan_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        max_batch_size: int = 64,
        warmup: bool = True,
    ) -> None:
        codec = codec if codec is not None else RT2ActionTokenizer()
        action_format = codec.format
        if action_format not in ("rt2", "openvla", "int_text", "fast"):
            raise ModelLoadError(
                f"the transformers backend decodes rt2, openvla, int_text or fast actions, not {action_format!r}"
            )
        if prompt == "cot" and action_format != "rt2":
            raise ModelLoadError("prompt 'cot' (RT-2 chain of thought) needs action.format 'rt2'")
        if max_plan_tokens < 1:
            raise ModelLoadError(f"max_plan_tokens must be >= 1, got {max_plan_tokens}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ModelLoadError(f"temperature must be > 0, got {temperature}")
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise ModelLoadError("the processor has no tokenizer")
        self.model = model
        self.processor = processor
        self.tokenizer = tokenizer
        self.action_format = action_format
        self.codec = codec
        self.prompt = prompt
        self.openvla_family = bool(openvla_family)
        # OpenVLA's own (remote) class generates batch 1 only; the native model batches.
        self._batched = not self.openvla_family or bool(getattr(model, "supports_batching", False))
        self.max_plan_tokens = int(max_plan_tokens)
        self.do_sample = bool(do_sample)
        self.temperature = float(temperature)
        self.max_batch_size = max(1, int(max_batch_size))
        self._lock = threading.Lock()
        try:
            p = next(model.parameters())
            self.device, self.dtype = p.device, p.dtype
        except StopIteration:  # pragma: no cover - a model without parameters
            self.device, self.dtype = torch.device("cpu"), torch.float32
        # Decoder-only generation pads on the left, so every row ends at the same column.
        tokenizer.padding_side = "left"
        self._image_prefix = "" if openvla_family else (getattr(processor, "image_token", None) or "")
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._eos_id = tokenizer.eos_token_id

        self.action_token_pattern: str | None = None
        self._id_to_value: dict[int, int] = {}
        #: The codec reads the text the action tokens spell (RT-2, integer text), not ids.
        self._spells_integers = action_format in ("rt2", "int_text")
        self._stop_after: int | None = None
        horizon = int(getattr(codec, "horizon", 1))
        if self._spells_integers:
            n_values = codec.bins if action_format == "rt2" else codec.bins + 1  # int_text: 0..bins
            try:
                pattern, bin_ids = find_rt2_action_token_ids(tokenizer, n_values, action_token_pattern)
            except ActionTokensMissingError as e:
                raise ModelLoadError(str(e)) from None
            self.action_token_pattern = pattern
            self._id_to_value = {tid: k for k, tid in enumerate(bin_ids)}
            if action_format == "rt2":
                term = (codec.terminate_token, codec.continue_token) if restrict_terminate else None
                self._allowed = rt2_allowed_ids(bin_ids, term) * horizon
            else:
                self._allowed = [list(bin_ids)] * (codec.tokens_per_action * horizon)
        elif action_format == "fast":
            if self._eos_id is None:
                raise ModelLoadError("action.format 'fast' needs a tokenizer with an end-of-sequence token")
            self._allowed = [codec.model_token_ids] * codec.max_output_tokens
            self._stop_after = 1
        else:
            if codec.stats is None:
                raise ModelLoadError("action.format 'openvla' needs action statistics (dataset_statistics.json)")
            try:
                ids = openvla_action_ids(codec.vocab_size, codec.n_bins)
            except ValueError as e:
                raise ModelLoadError(str(e)) from None
            self._allowed = [ids] * (codec.action_dim * horizon)
        #: Generated action tokens per answer (the longest, for FAST): derived from the format,
        #: and with chain of thought the plan's, it bounds ``max_new_tokens``.
        self.n_action_tokens = len(self._allowed)
        #: Model tokens per action (8 RT-2, 7 OpenVLA / integer text / FAST coefficients).
        self.action_dim = int(codec.tokens_per_action) if horizon > 1 or action_format == "fast" else len(self._allowed)

        out_vocab = _output_vocab_size(model)
        if out_vocab is not None:
            bad = sorted({i for a in self._allowed for i in a if i >= out_vocab})
            if bad:
                raise ModelLoadError(
                    f"action token ids {bad[:3]}... are outside the model's output vocabulary of {out_vocab}; "
                    "the tokenizer and model do not match (check action.openvla_vocab_size)"
                )

        self._cot: CotSchedule | None = None
        if prompt == "cot":
            self._cot = self._make_cot_schedule()

        described = codec.describe()
        cfg = getattr(model, "config", None)
        self.metadata = PolicyMetadata(
            action_format=action_format,
            model_id=str(model_id),
            action_dim=self.action_dim,
            bounds=described.get("bounds"),
            unnorm_key=unnorm_key if action_format == "openvla" else None,
            statistics=described.get("statistics"),
            extra={
                "backend": "transformers",
                "transformers_version": transformers.__version__,
                "model_type": getattr(cfg, "model_type", None),
                "num_parameters": int(sum(p.numel() for p in model.parameters())),
                "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.device),
                "prompt": prompt,
                "action_token_pattern": self.action_token_pattern,
                "greedy": not self.do_sample,
                "batched": self._batched,
                "loader": "native-openvla"
                if getattr(model, "supports_batching", False) and self.openvla_family
                else ("remote-code" if self.openvla_family else "transformers"),
            },
        )
        if warmup:
            self._warmup()

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        model_path: str | os.PathLike,
        *,
        action_format: str = "rt2",
        prompt: str = "rt2",
        dtype: str = "fp32",
        device: str = "cpu",
        num_threads: int = 0,
        rt2_codec: ActionCodec | None = None,
        horizon: int = 1,
        action_token_pattern: str | Sequence[str] | None = None,
        openvla_vocab_size: int | None = None,
        unnorm_key: str | None = None,
        statistics_path: str | os.PathLike | None = None,
        trust_remote_code: bool | None = None,
        **kwargs: Any,
    ) -> "TransformersPolicy":
        """Load a checkpoint directory (``save_pretrained`` layout) offline.

        Args:
            model_path: directory with ``config.json``, weights and processor files.
            action_format: ``"rt2"`` or ``"openvla"``; the codec is built for it.
            rt2_codec: the codec of a format built from the configuration alone (RT-2:
                bounds, bins, terminate/continue values, horizon; ``int_text``; ``fast``);
                default RT-2 with its defaults. Needed for ``int_text`` and ``fast``.
            horizon: OpenVLA: actions per output (the codec is built here from the statistics).
            prompt, action_token_pattern: see the class.
            dtype: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
            device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            num_threads: torch CPU threads (process-wide ``torch.set_num_threads``); 0 = leave.
            openvla_vocab_size: un-padded vocabulary; for OpenVLA's own checkpoints it
                is read from the config (``text_config.vocab_size - pad_to_multiple_of``)
                and must agree when given.
            unnorm_key: dataset key in the statistics; None/"" = the only one.
            statistics_path: ``dataset_statistics.json``; default: the one in
                ``model_path``, else the model config's ``norm_stats``.
            trust_remote_code: run model code shipped in the directory
                (``policy.trust_remote_code``). Default False: OpenVLA checkpoints
                (``model_type: openvla``, ``action_format="openvla"``) load natively
                (:mod:`rt2_ros.policies.openvla`); True runs their
                ``modeling_prismatic.py`` instead (needs timm >= 0.9.10, < 1.0).
            **kwargs: passed to the constructor (``max_plan_tokens``, ``warmup``, ...).

        Raises:
            ModelLoadError: see the class; the message names the problem.
        """
        path = Path(model_path).expanduser() if str(model_path) else None
        if path is None:
            raise ModelLoadError("no model directory given (set policy.model_path)")
        if not path.is_dir():
            raise ModelLoadError(f"model directory {str(path)!r} does not exist or is not a directory")
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise ModelLoadError(f"{str(path)!r} is not a Hugging Face checkpoint: it has no config.json")
        try:
            raw_cfg = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot read {cfg_file}: {e}") from None
        if dtype not in DTYPES:
            raise ModelLoadError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        torch_device = _check_device(device)
        if num_threads and num_threads > 0:
            torch.set_num_threads(int(num_threads))

        model_type = raw_cfg.get("model_type")
        openvla_family = model_type == "openvla"
        trust_remote_code = bool(trust_remote_code)
        native_openvla = openvla_family and action_format == "openvla" and not trust_remote_code

        codec: ActionCodec = rt2_codec or RT2ActionTokenizer()
        if action_format == "openvla":
            unnorm_key, stats = _load_statistics(path, raw_cfg, unnorm_key or None, statistics_path or None)
            cfg_vocab = _openvla_vocab_from_config(raw_cfg)
            if cfg_vocab is not None:
                if openvla_vocab_size is not None and int(openvla_vocab_size) != cfg_vocab:
                    raise ModelLoadError(
                        f"action.openvla_vocab_size={openvla_vocab_size} but the checkpoint's config gives "
                        f"text_config.vocab_size - pad_to_multiple_of = {cfg_vocab}"
                    )
                openvla_vocab_size = cfg_vocab
            if openvla_vocab_size is None:
                raise ModelLoadError(
                    "action.format 'openvla' needs the un-padded vocabulary size (action.openvla_vocab_size)"
                )
            try:
                codec = OpenVLAActionTokenizer(
                    int(openvla_vocab_size), stats, action_dim=stats.q01.shape[0], horizon=horizon
                )
            except ValueError as e:
                raise ModelLoadError(str(e)) from None
        elif action_format not in ("rt2", "int_text", "fast"):
            raise ModelLoadError(f"action_format must be 'rt2', 'openvla', 'int_text' or 'fast', got {action_format!r}")
        elif codec.format != action_format:
            raise ModelLoadError(f"action_format {action_format!r} needs its codec (got a {codec.format!r} codec)")

        if native_openvla:
            model, processor = _load_native_openvla(path, DTYPES[dtype], torch_device)
        else:
            model = _load_model(path, raw_cfg, DTYPES[dtype], trust_remote_code)
            try:
                processor = AutoProcessor.from_pretrained(
                    str(path), local_files_only=True, trust_remote_code=trust_remote_code
                )
            except Exception as e:  # noqa: BLE001 - any loader failure is a load error with its message
                raise ModelLoadError(f"cannot load the processor/tokenizer from {str(path)!r}: {e}") from None
        if openvla_family and prompt in ("rt2", "cot"):
            # Checked after loading so that load problems are reported first.
            raise ModelLoadError(
                f"OpenVLA checkpoints answer the prompt they were trained with: set policy.prompt: openvla "
                f"(got {prompt!r}; an RT-2 prompt gives valid-looking but wrong actions)"
            )
        try:
            model = model.to(torch_device).eval()
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"cannot move the model to {device}: {e}") from None
        log.info("loaded %s (%s, %s) on %s", path, model_type, dtype, device)
        return cls(
            model,
            processor,
            model_id=str(path),
            codec=codec,
            prompt=prompt,
            action_token_pattern=action_token_pattern,
            unnorm_key=unnorm_key,
            openvla_family=openvla_family,
            **kwargs,
        )

    def _make_cot_schedule(self) -> CotSchedule:
        tok = self.tokenizer

        def encode(text: str) -> list[int]:
            return list(tok.encode(text, add_special_tokens=False))

        prefix = encode(COT_PLAN_PREFIX)
        marker = encode(" " + COT_ACTION_MARKER)
        if tok.decode(marker).strip() != COT_ACTION_MARKER:
            marker = encode(COT_ACTION_MARKER)
        if not prefix or not marker:
            raise ModelLoadError("the tokenizer cannot encode the chain-of-thought markers 'Plan:'/'Action:'")
        banned = set(getattr(tok, "all_special_ids", []) or [])
        for attr in ("image_token_id",):
            v = getattr(self.processor, attr, None)
            if isinstance(v, int):
                banned.add(v)
        cfg = getattr(self.model, "config", None)
        for attr in ("image_token_index", "image_token_id"):
            v = getattr(cfg, attr, None)
            if isinstance(v, int):
                banned.add(v)

        def decode(ids: list[int]) -> str:
            return tok.decode(ids, skip_special_tokens=True)

        return CotSchedule(
            prefix_ids=tuple(prefix),
            marker_ids=tuple(marker),
            max_plan_tokens=self.max_plan_tokens,
            decode=decode,
            marker=COT_ACTION_MARKER,
            banned_ids=tuple(sorted(banned)),
        )

    def _warmup(self) -> None:
        """One inference on each of two different synthetic images (mid grey, seeded noise)
        with one instruction: both must give valid actions, and the first-step logits over
        the action tokens must differ (:meth:`_check_image_sensitivity`).

        Raises:
            ModelLoadError: a failed inference, no valid action, or an image-blind model.
        """
        h, w = _processor_image_size(self.processor)
        images = (
            np.full((h, w, 3), 127, dtype=np.uint8),
            np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8),
        )
        firsts = []
        for img in images:
            rec = _FirstStepScores()
            try:
                results = self._run([Observation(image=img, instruction="pick up the block")], extra_processors=[rec])
            except Exception as e:  # noqa: BLE001 - report any failure as a load error
                raise ModelLoadError(f"warm-up inference failed: {type(e).__name__}: {e}") from e
            if results[0].action is None:
                raise ModelLoadError(f"warm-up inference produced no valid action: {results[0].error}")
            firsts.append(rec.scores)
        self._check_image_sensitivity(firsts[0], firsts[1])

    def _check_image_sensitivity(self, a: torch.Tensor | None, b: torch.Tensor | None) -> None:
        """Refuse a model whose first-step logits over the action tokens are the same for two
        different images: its actions would not depend on what the camera sees.

        Args:
            a, b: ``float32 (1, vocab)`` raw first-step scores for the two images.

        Raises:
            ModelLoadError: the logits do not differ (or are not finite); the message names
                the transformers version and, for OpenVLA's remote code, the known cause.
        """
        if a is None or b is None:
            raise ModelLoadError("warm-up inference produced no first-step logits")
        ids = sorted({i for allowed in self._allowed for i in allowed})
        la, lb = a[0, ids].float(), b[0, ids].float()
        diff = float((la - lb).abs().max())
        scale = max(1.0, float(la.abs().max()), float(lb.abs().max()))
        if not math.isfinite(diff) or not math.isfinite(scale):
            raise ModelLoadError("warm-up inference gave non-finite logits over the action tokens")
        self.metadata.extra["image_sensitivity_max_logit_diff"] = diff
        if diff > IMAGE_SENSITIVITY_RTOL * scale:
            return
        msg = (
            "the model's output does not depend on the image: two different synthetic images with one "
            f"instruction gave the same first-step logits over the {len(ids)} action tokens (max difference "
            f"{diff:.3g}) with transformers {transformers.__version__}; refusing to start, because every camera "
            "image would give the same action."
        )
        if self.openvla_family and not self._batched:
            msg += (
                " Known cause: OpenVLA's own code (modeling_prismatic.py, prepare_inputs_for_generation) drops "
                "the image on the first generation step on transformers >= 4.50 (openvla/openvla issue #346, "
                "fix in PR #348). Load the checkpoint natively (policy.trust_remote_code: false) or run its code "
                "under transformers 4.40.1."
            )
        elif self.openvla_family:
            msg += " Check the checkpoint's vision tower and projector weights (all zero or constant?)."
        raise ModelLoadError(msg)

    # -- inference --------------------------------------------------------------------

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        """Run the model on several observations; one :class:`PolicyResult` each, in order.

        PaliGemma/LLaVA-style models run the whole batch (up to ``max_batch_size``)
        in one left-padded ``generate`` call; greedy results equal those of
        single-observation calls. OpenVLA's own class runs one at a time (its
        upstream ``generate`` supports batch 1 only). ``timings_ms`` are those of
        the ``generate`` call the observation was part of: ``preprocess``
        (processor + host-to-device), ``model`` (``generate``), ``decode`` (ids to
        actions), all in ms.

        Raises:
            ValueError: an image that is not ``uint8 (H, W, 3)``, or a bad instruction;
                nothing is run then.
            PolicyError: the model failed (e.g. out of memory).
        """
        obs = list(observations)
        for i, o in enumerate(obs):
            if not isinstance(o, Observation):
                raise ValueError(f"observation {i} is a {type(o).__name__}, not an Observation")
            try:
                check_image(o.image)
                build_prompt(self.prompt, o.instruction)
            except ValueError as e:
                raise ValueError(f"observation {i}: {e}") from None
        if not obs:
            return []
        step = self.max_batch_size if self._batched else 1
        out: list[PolicyResult] = []
        for s in range(0, len(obs), step):
            try:
                out.extend(self._run(obs[s : s + step]))
            except PolicyError:
                raise
            except Exception as e:  # noqa: BLE001 - any model failure means "no action"
                raise PolicyError(f"model inference failed: {type(e).__name__}: {e}") from e
        return out

    def _prepare(self, obs: Sequence[Observation]) -> tuple[dict[str, torch.Tensor], int]:
        images = [Image.fromarray(np.ascontiguousarray(o.image)) for o in obs]
        texts = [self._image_prefix + build_prompt(self.prompt, o.instruction) for o in obs]
        kw: dict[str, Any] = {"return_tensors": "pt"}
        if len(obs) > 1:
            kw["padding"] = "longest"
        enc = self.processor(text=texts, images=images, **kw)
        inputs: dict[str, torch.Tensor] = {}
        for k, v in dict(enc).items():
            if k == "labels" or not isinstance(v, torch.Tensor):
                continue
            if v.is_floating_point():
                v = v.to(self.device, dtype=self.dtype)
            else:
                v = v.to(self.device)
            inputs[k] = v
        if self.openvla_family:
            inputs = self._append_openvla_empty_token(inputs)
        return inputs, int(inputs["input_ids"].shape[1])

    def _append_openvla_empty_token(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``predict_action``: append the empty token after ``Out:`` unless already there."""
        empty = self.tokenizer.convert_tokens_to_ids("▁")
        if not isinstance(empty, int) or empty == self.tokenizer.unk_token_id:
            empty = OPENVLA_EMPTY_TOKEN_ID
        ids = inputs["input_ids"]
        if bool(torch.all(ids[:, -1] == empty)):
            return inputs
        col = torch.full((ids.shape[0], 1), empty, dtype=ids.dtype, device=ids.device)
        inputs["input_ids"] = torch.cat([ids, col], dim=1)
        if "attention_mask" in inputs:
            am = inputs["attention_mask"]
            inputs["attention_mask"] = torch.cat([am, torch.ones_like(am[:, :1])], dim=1)
        return inputs

    def _run(self, obs: Sequence[Observation], extra_processors: Sequence[Any] = ()) -> list[PolicyResult]:
        with self._lock, torch.inference_mode():
            t0 = _now()
            inputs, prompt_len = self._prepare(obs)
            _sync(self.device)
            t1 = _now()
            proc = ActionLogitsProcessor(
                prompt_len, self._allowed, eos_token_id=self._eos_id, cot=self._cot, stop_after=self._stop_after
            )
            gen_cfg = GenerationConfig(
                max_new_tokens=proc.max_new_tokens(),
                do_sample=self.do_sample,
                temperature=self.temperature if self.do_sample else None,
                top_k=None,
                top_p=None,
                num_beams=1,
                pad_token_id=self._pad_id,
                eos_token_id=self._eos_id,
                use_cache=True,
            )
            seqs = self.model.generate(
                **inputs, generation_config=gen_cfg, logits_processor=LogitsProcessorList([*extra_processors, proc])
            )
            _sync(self.device)
            t2 = _now()
            gen = seqs[:, prompt_len:].to("cpu").tolist()
            timings = {"preprocess": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3, "decode": 0.0}
            results = [self._decode_row(row, proc.action_start[r], dict(timings)) for r, row in enumerate(gen)]
            decode_ms = (_now() - t2) * 1e3
        for r in results:  # the batch's decode time, as the other stages
            r.timings_ms["decode"] = decode_ms
        return results

    def _decode_row(self, gen: list[int], start: int | None, timings: dict[str, float]) -> PolicyResult:
        """One generated row -> its result, decoded by the codec (:func:`result_from_output`).
        A row that is not an action reports the whole generated text and ids."""
        n = self.n_action_tokens

        def no_action(why: str) -> PolicyResult:
            return PolicyResult(self.tokenizer.decode(gen, skip_special_tokens=True), tuple(gen), (), why, timings)

        if self._stop_after is not None and start is not None:  # FAST: up to end-of-sequence
            tail = gen[start : start + n]
            n = tail.index(self._eos_id) if self._eos_id in tail else len(tail)
            if n == 0:
                return no_action("the model emitted no FAST action tokens")
        if start is None or len(gen) < start + n:
            return no_action(f"the model did not finish an action ({len(gen)} tokens generated)")
        action_ids = gen[start : start + n]
        token_ids = tuple(gen[: start + n])
        if not self._spells_integers:  # OpenVLA, FAST: the codec decodes the ids
            text = " ".join(str(i) for i in action_ids)
            result = result_from_output(self.codec, text, token_ids, timings, action_ids=action_ids)
        else:  # RT-2: the tokens spell integers; the codec decodes the text
            missing = [i for i in action_ids if i not in self._id_to_value]
            if missing:
                return no_action(f"token ids {missing} are not action tokens")
            text = " ".join(str(self._id_to_value[i]) for i in action_ids)
            if self._cot is not None:
                plan = self.tokenizer.decode(gen[:start], skip_special_tokens=True).strip()
                cut = plan.find(COT_ACTION_MARKER)
                plan = plan[: cut + len(COT_ACTION_MARKER)] if cut >= 0 else f"{plan} {COT_ACTION_MARKER}"
                if not plan.startswith(COT_PLAN_PREFIX):
                    plan = f"{COT_PLAN_PREFIX} {plan}"
                text = f"{plan} {text}"
            result = result_from_output(self.codec, text, token_ids, timings)
        return no_action(result.error) if result.error is not None else result

    def close(self) -> None:
        """Drop the model; frees GPU memory."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class _FirstStepScores(LogitsProcessor):
    """Keeps the raw scores of the first generation step (put it before the action constraint)."""

    def __init__(self) -> None:
        self.scores: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.scores is None:
            self.scores = scores.detach().float().cpu().clone()
        return scores
