"""``rt2-ros`` command line (argparse, stdlib).

Subcommands live in their own modules, imported only when used, so ``rt2-ros decode``
never imports torch. Each module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# name -> (module, help)
SUBCOMMANDS = {
    "decode": ("rt2_ros.cli", "decode model output into an action (JSON with units)"),
    "make-test-model": ("rt2_ros.testing.make_model", "build an offline PaliGemma-architecture test model"),
    "serve": ("rt2_ros.serving.cli", "run the remote inference server"),
    "predict": ("rt2_ros.serving.predict", "run a local checkpoint on one image + instruction (JSON)"),
    "demo": ("rt2_ros.sim.demo", "closed-loop simulation demo: sim + rt2 node + policy"),
    "dataset": ("rt2_ros.training.dataset", "recordings (MCAP) -> LeRobotDataset v3.0; sim ground truth -> VQA pairs"),
    "train": ("rt2_ros.training.train", "fine-tune a vision-language model into an RT-2 policy (HF Trainer)"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rt2-ros decode``."""
    p.add_argument("text", help='model output, e.g. "1 128 124 136 121 158 111 255" or token ids')
    p.add_argument(
        "--format",
        choices=["rt2", "openvla", "int_text", "fast"],
        default="rt2",
        help="action format (default rt2)",
    )
    p.add_argument("--horizon", type=int, default=None, help="actions per output (a chunk; default action.horizon)")
    p.add_argument("--bins", type=int, default=None, help="rt2, int_text: bins (default action.bins)")
    p.add_argument("--fast-tokenizer", default=None, help="fast: the FAST tokenizer.json (or its directory)")
    p.add_argument("--config", default=None, help="parameters file (default: config/rt2.yaml)")
    p.add_argument("--vocab-size", type=int, default=None, help="openvla: tokenizer vocab size w/o padding")
    p.add_argument("--statistics", default=None, help="openvla: dataset_statistics.json for un-normalisation")
    p.add_argument("--unnorm-key", default=None, help="openvla: statistics key")


def run(args: argparse.Namespace) -> int:
    """``rt2-ros decode``: print the action as JSON (a chunk: a JSON list of actions); exit 1
    with the reason on bad input."""
    from rt2_ros.codecs import ActionDecodeError, make_codec
    from rt2_ros.config import ConfigError, load_config

    try:
        overrides = {"action.format": args.format}
        if args.horizon is not None:
            overrides["action.horizon"] = args.horizon
        if args.bins is not None:
            overrides["action.bins"] = args.bins
        if args.fast_tokenizer:
            overrides["action.fast_tokenizer_path"] = args.fast_tokenizer
        if args.vocab_size:
            overrides["action.openvla_vocab_size"] = args.vocab_size
        if args.unnorm_key:
            overrides["action.unnorm_key"] = args.unnorm_key
        cfg = load_config(args.config, overrides)
        statistics = None
        if args.statistics:
            with open(args.statistics) as f:
                statistics = json.load(f)
        actions = make_codec(cfg.action, statistics=statistics).decode_output(args.text)
    except (ActionDecodeError, ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # One action: its fields (as before chunked formats existed); a chunk: the list of them.
    out = {"format": args.format, **actions[0].to_dict()} if len(actions) == 1 else [a.to_dict() for a in actions]
    print(json.dumps(out, indent=2))
    return 0


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The parser; only subcommand ``wanted`` gets its arguments (its module is imported)."""
    parser = argparse.ArgumentParser(prog="rt2-ros", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        # Only the chosen subcommand's module is imported (keeps `decode` torch-free and fast).
        if name == wanted:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
