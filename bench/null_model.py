"""The HTTP floor: the same service over a model that costs nothing (issue 21, part 3).

    python -m bench.null_model artifacts/demo/serving artifacts/bench/null-serving   # build it alone

`null_artifact` copies a serving artifact and replaces every ONNX variant with a graph of the
same inputs and output that returns constant logits (the artifact's `normal` class wins: every
message is allowed by the thresholds). The manifest is rewritten for the new files, so the
service loads it through the same integrity check, tokenizer, normalization, policy, campaign
lookup, batching, logging and JSON path as the real model. What `/classify` costs on it is
what BentoML, validation, the policy and the logs cost per request on this machine: the floor
that no model speed-up can go below. `make bench` measures it at the service's concurrency
levels (part `floor`) and reports the model's share of the served latency beside it.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from data.digest import sha256_file


def null_graph(real_onnx: Path, labels: list[str]):
    """An ONNX model with `real_onnx`'s inputs and output name: logits [batch, classes], constant."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    real = onnx.load(str(real_onnx), load_external_data=False)
    inputs = list(real.graph.input)
    output = real.graph.output[0].name
    first = inputs[0].name
    bias = np.full((len(labels),), -4.0, dtype=np.float32)
    bias[labels.index("normal") if "normal" in labels else 0] = 4.0
    nodes = [
        helper.make_node("Cast", [first], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["as_float", "axis1"], ["summed"], keepdims=1),  # [batch, 1]
        helper.make_node("Mul", ["summed", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "bias"], [output]),  # broadcast to [batch, classes]
    ]
    inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
             numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "zero"),
             numpy_helper.from_array(bias, "bias")]
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", len(labels)])
    graph = helper.make_graph(nodes, "fanzha-null", inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, real.ir_version or model.ir_version)
    onnx.checker.check_model(model)
    return model


def null_artifact(serving: Path, out: Path) -> Path:
    """A copy of `serving` whose ONNX variants return constants, with a matching manifest."""
    import onnx

    serving, out = Path(serving), Path(out)
    meta = json.loads((serving / "fanzha.json").read_text(encoding="utf-8"))
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(serving, out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for path in sorted(out.glob("*.onnx")):
        onnx.save(null_graph(serving / path.name, list(meta["labels"])), str(path))
        manifest["files"][path.name] = sha256_file(path)
    for extra in out.glob("*.onnx.data"):  # external weights of a real variant: not needed any more
        extra.unlink()
        manifest["files"].pop(extra.name, None)
    manifest["null_model"] = f"constant logits in place of {serving}'s model (bench/null_model.py)"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.null_model SERVING OUT", file=sys.stderr)
        return 2
    print(null_artifact(Path(args[0]), Path(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
