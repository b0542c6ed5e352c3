"""VQA pairs from the simulator's ground truth, for co-fine-tuning offline (``rt2-ros dataset vqa``).

RT-2 co-fine-tunes on robot data mixed with the base model's web vision-language data so
the model keeps what it knew (Brohan et al. 2023, arXiv:2307.15818, section 3.2). Without
web data at hand, the simulator can stand in: its recordings (``rt2-ros demo --record``)
carry the camera and ``/sim/ground_truth`` (JSON: block colours, positions in
``panda_link0``, gripper opening), and every frame gets questions whose answers follow
from that ground truth:

* colours: "what colour is the block nearest to the robot?";
* left/right (the robot's left is +y in ``panda_link0``): "which block is furthest to the
  left?", "is the red block left or right of the blue block?";
* nearer: "which is nearer to the robot, the red block or the green block?";
* counts: "how many blocks are on the table?", "how many yellow blocks are there?";
* state: "is the gripper open or closed?", "is the green block lifted?";
* where (localisation, as PaLI's detection tasks in RT-2's VLM data): "where is the red
  block?" -> "52 43", "where is the gripper?" -> "31 50 48": positions in whole
  centimetres in ``panda_link0``, y shifted by +50 cm so every number is non-negative
  (one number token each). Every frame gets one of these first.

Questions are asked in RT-2's VQA form ``Q: <question>? A:`` and answered in a word or a
number. The output is a parquet file of (image, question, answer) with the Hugging Face
``Image`` feature (PNG bytes), written with ``datasets.Features``' schema by pyarrow. ROS-free.
"""

from __future__ import annotations

import io
import json
import math
import random
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["questions_from_ground_truth", "build_vqa_dataset", "load_vqa", "VQA_FILE"]

VQA_FILE = "data/vqa.parquet"
_ABSENT_COLORS = ("yellow", "orange", "purple", "white", "black")
_WORDS = {0: "0", 1: "1", 2: "2", 3: "3", 4: "4", 5: "5"}


def _q(text: str) -> str:
    return f"Q: {text}? A:"


def questions_from_ground_truth(gt: dict[str, Any], rng: random.Random, k: int = 2) -> list[tuple[str, str, str]]:
    """Up to ``k`` (question, answer, kind) triples about one ground-truth snapshot.

    Args:
        gt: the sim's ground truth (``rt2_ros.sim.scene.Scene.ground_truth``): ``blocks``
            (colour -> ``position`` m, ``size_m``), ``table_z_m``, ``gripper.opening_m``.
        rng: question sampler.
        k: how many questions.

    Raises:
        ValueError: no blocks in the ground truth.
    """
    blocks = gt.get("blocks") or {}
    if not blocks:
        raise ValueError("ground truth without blocks")
    pos = {c: np.asarray(b["position"], dtype=np.float64) for c, b in blocks.items()}
    size = {c: float(b.get("size_m", 0.04)) for c, b in blocks.items()}
    table = float(gt.get("table_z_m", 0.0))
    colors = sorted(pos)
    dist = {c: float(np.linalg.norm(pos[c][:2])) for c in colors}
    cands: list[tuple[str, str, str]] = []
    nearest = min(colors, key=dist.get)
    cands.append((_q("what colour is the block nearest to the robot"), nearest, "colour"))
    cands.append((_q("what colour is the block furthest from the robot"), max(colors, key=dist.get), "colour"))
    cands.append((_q("which block is furthest to the left"), max(colors, key=lambda c: pos[c][1]), "left_right"))
    cands.append((_q("which block is furthest to the right"), min(colors, key=lambda c: pos[c][1]), "left_right"))
    if len(colors) >= 2:
        a, b = rng.sample(colors, 2)
        if abs(pos[a][1] - pos[b][1]) > 0.02:
            side = "left" if pos[a][1] > pos[b][1] else "right"
            cands.append((_q(f"is the {a} block left or right of the {b} block"), side, "left_right"))
        if abs(dist[a] - dist[b]) > 0.02:
            near = a if dist[a] < dist[b] else b
            cands.append((_q(f"which is nearer to the robot, the {a} block or the {b} block"), near, "nearer"))
    on_table = [c for c in colors if pos[c][2] - size[c] / 2 - table < 0.01]
    cands.append((_q("how many blocks are on the table"), _WORDS.get(len(on_table), str(len(on_table))), "count"))
    c = rng.choice(colors + list(_ABSENT_COLORS[:2]))
    cands.append((_q(f"how many {c} blocks are there"), "1" if c in pos else "0", "count"))
    opening = (gt.get("gripper") or {}).get("opening_m")
    if opening is not None and math.isfinite(float(opening)):
        cands.append((_q("is the gripper open or closed"), "open" if float(opening) > 0.06 else "closed", "state"))
    c = rng.choice(colors)
    lifted = pos[c][2] - size[c] / 2 - table > 0.02
    cands.append((_q(f"is the {c} block lifted"), "yes" if lifted else "no", "state"))
    rng.shuffle(cands)
    return _where(gt, pos, rng)[: max(k, 0)] + cands[: max(k - 1, 0)]


def _cm(v: float, shift: float = 0.0) -> str:
    return str(int(round((v + shift) * 100.0)))


def _where(gt: dict[str, Any], pos: dict[str, np.ndarray], rng: random.Random) -> list[tuple[str, str, str]]:
    """One localisation question: a block's (x, y) or the gripper's (x, y, z), in cm (y + 50)."""
    tcp = (gt.get("tcp") or {}).get("position")
    targets = sorted(pos) + (["gripper"] if tcp is not None else [])
    c = rng.choice(targets)
    if c == "gripper":
        x, y, z = (float(v) for v in tcp)
        return [(_q("where is the gripper"), f"{_cm(x)} {_cm(y, 0.5)} {_cm(z)}", "where")]
    return [(_q(f"where is the {c} block"), f"{_cm(pos[c][0])} {_cm(pos[c][1], 0.5)}", "where")]


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _features() -> Any:
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "kind": datasets.Value("string"),
            "source": datasets.Value("string"),
        }
    )


def build_vqa_dataset(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    camera: str = "/camera/image_raw",
    ground_truth: str = "/sim/ground_truth",
    every: int = 5,
    per_frame: int = 2,
    seed: int = 0,
    max_gt_age_s: float = 0.2,
    overwrite: bool = False,
) -> int:
    """Write ``out_dir/data/vqa.parquet`` (+ ``meta.json``) from sim recordings; returns the pair count.

    Every ``every``-th camera frame with a ground-truth message at most ``max_gt_age_s``
    older gets ``per_frame`` questions.

    Raises:
        FileNotFoundError: no recordings.
        FileExistsError: ``out_dir`` not empty (without ``overwrite``).
        ValueError: no frame with ground truth in any recording.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from rt2_ros.training.bags import decode_image, find_bags

    bags = find_bags(inputs)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    kinds: dict[str, int] = {}
    factory = DecoderFactory()
    for bag in bags:
        decoders: dict[int, Any] = {}
        gt_t, gt = None, None
        n_frame = 0
        with open(bag, "rb") as f:
            reader = make_reader(f)
            for schema, channel, message in reader.iter_messages(topics=[camera, ground_truth], log_time_order=True):
                t = message.log_time * 1e-9
                if channel.topic == ground_truth:
                    dec = decoders.get(schema.id) or decoders.setdefault(
                        schema.id, factory.decoder_for(channel.message_encoding, schema)
                    )
                    try:
                        gt, gt_t = json.loads(dec(message.data).data), t
                    except ValueError:
                        gt = None
                    continue
                n_frame += 1
                if (n_frame - 1) % max(1, every) or gt is None or t - gt_t > max_gt_age_s:
                    continue
                dec = decoders.get(schema.id) or decoders.setdefault(
                    schema.id, factory.decoder_for(channel.message_encoding, schema)
                )
                try:
                    img = decode_image(dec(message.data), compressed="Compressed" in schema.name)
                    qa = questions_from_ground_truth(gt, rng, per_frame)
                except ValueError:
                    continue
                png = _png(img)
                for question, answer, kind in qa:
                    rows.append(
                        {
                            "image": {"bytes": png, "path": None},
                            "question": question,
                            "answer": answer,
                            "kind": kind,
                            "source": bag.name,
                        }
                    )
                    kinds[kind] = kinds.get(kind, 0) + 1
    if not rows:
        raise ValueError(f"no camera frame with {ground_truth} in {len(bags)} recording(s) (record the sim)")
    path = out / VQA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = _features().arrow_schema
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(path))
    (out / "meta.json").write_text(
        json.dumps({"pairs": len(rows), "kinds": kinds, "sources": [str(b) for b in bags], "seed": seed}, indent=2)
    )
    return len(rows)


def load_vqa(root: str | Path) -> Any:
    """The (image, question, answer, ...) table of a VQA directory (a pyarrow Table).

    Also accepts a directory of parquet files with ``image``, ``question`` and ``answer``
    columns (e.g. a Hugging Face VQA dataset exported with ``to_parquet``).

    Raises:
        FileNotFoundError: no parquet file.
        ValueError: columns missing.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    files: Iterable[Path] = [root / VQA_FILE] if (root / VQA_FILE).is_file() else sorted(root.rglob("*.parquet"))
    files = list(files)
    if not files:
        raise FileNotFoundError(f"no VQA parquet file in {root}")
    table = pa.concat_tables([pq.read_table(str(f), memory_map=True) for f in files])
    missing = {"image", "question", "answer"} - set(table.column_names)
    if missing:
        raise ValueError(f"VQA data in {root} lacks columns {sorted(missing)}")
    return table
