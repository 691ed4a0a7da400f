"""fanzha — counter-fraud message classifiers: train, evaluate, export, serve, score.

    fanzha <command> --help

Each command lives in its own module with a `main(argv)`; this file only dispatches, importing
the module lazily so that serving commands never import torch.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("training.train", "fine-tune a classifier from a YAML config"),
    "distill": ("training.distill", "a smaller student from a trained model (knowledge distillation; docs/distill.md)"),
    "evaluate": ("training.evaluate", "metrics of a model artifact on labelled data"),
    "export": ("fanzha.exporting", "model artifact -> serving artifact (ONNX, certified variants, policy, parity report)"),
    "serve": ("serving.server", "start the BentoML HTTP service for a serving artifact"),
    "score": ("serving.batch.score", "batch-score a CSV/TSV/JSONL/Parquet file"),
    "diff": ("serving.lifecycle.diff", "compare two scored files: what the new model does differently"),
    "register": ("serving.lifecycle.registry", "put a serving artifact into the BentoML model store (pinned tag)"),
    "golden": ("data.golden", "build the frozen golden sets the promotion gate scores models on"),
    "promote": ("serving.lifecycle.promote:main_promote", "gate a registered model and move an alias (champion, challenger)"),
    "rollback": ("serving.lifecycle.promote:main_rollback", "point an alias back to its previous holder"),
    "models": ("serving.lifecycle.promote:main_models", "registered models: aliases, gate verdicts, alias history"),
    "feedback": ("serving.feedback.export", "feedback -> training rows: fanzha feedback export --db DB --out FILE.jsonl"),
    "corpus": ("data.synth", "write the embedded synthetic corpus (train/validation/test.jsonl)"),
    "demo": ("fanzha.demo", "set up, train, evaluate, export, serve and query the demo model"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [__doc__.split("\n\n")[0], "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"fanzha: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, _, function = COMMANDS[name][0].partition(":")
    return getattr(importlib.import_module(module_name), function or "main")(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
