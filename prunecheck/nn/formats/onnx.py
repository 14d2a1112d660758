"""ONNX files evaluated with ONNX Runtime: the artifact a team ships, gated like any model.

:class:`OnnxModule` is an ``nn.Module`` whose ``forward`` runs an ONNX Runtime
session (the CUDA provider when ONNX Runtime and torch both see a GPU, else
the CPU provider), so the engine, the prediction cache and every gate use it
unchanged. Its fingerprint covers the file's sha256 (it is in the module's
repr). ONNX files hold no pickled code; the optional extra is
``prunecheck[onnx]``.

Efficiency facts come from the ONNX graph itself (:meth:`OnnxModule.artifact_facts`):
parameters are the initializers' entries; the prunable ones are the weight
initializers of ``Conv`` / ``Gemm`` / ``MatMul`` and their integer and
quantized forms (``ConvInteger``, ``MatMulInteger``, ``QLinearConv``,
``QLinearMatMul``, ...; an entry of a quantized weight is zero when it equals
the weight's zero point); FLOPs (multiply-add = 2, as for PyTorch models) come
from ONNX shape inference at batch 1; sizes are the file's. Dead channels are
not traced in ONNX graphs: ``removable_parameters`` is 0 and
``structure_traced`` False.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunecheck.core.errors import ModelError

__all__ = ["OnnxModule", "load_onnx", "WEIGHT_INPUTS"]

#: op type -> (index of the weight input, index of its zero point or None).
WEIGHT_INPUTS: dict[str, tuple[int, int | None]] = {
    "Conv": (1, None),
    "Gemm": (1, None),
    "MatMul": (1, None),
    "ConvInteger": (1, 3),
    "MatMulInteger": (1, 3),
    "QLinearConv": (3, 5),
    "QLinearMatMul": (3, 5),
    "DynamicQuantizeMatMul": (1, 3),
    "MatMulIntegerToFloat": (1, 5),
}
_CONV_TYPES = frozenset({"Conv", "ConvInteger", "QLinearConv"})
_ZLIB_LEVEL = 9  # as prunecheck.nn.efficiency


def _import_ort(name: str) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ModelError(
            f"model '{name}': format 'onnx' needs ONNX Runtime; install it with: pip install 'prunecheck[onnx]'"
        ) from None
    return onnxruntime


def _providers(ort: Any) -> list[str]:
    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModule(nn.Module):
    """An ONNX Runtime session behind ``nn.Module.forward``: float32 [N, C, H, W] in, logits out.

    Attributes:
        path: The ONNX file.
        sha256: Its content hash (part of the repr, hence of the model fingerprint).
        providers: The execution providers the session uses.
        fixed_batch: The batch size the file was exported for, or ``None`` when dynamic.
    """

    def __init__(self, path: Path, session: Any, sha256: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.sha256 = sha256
        self._session = session
        self.providers = list(session.get_providers())
        inputs, outputs = session.get_inputs(), session.get_outputs()
        self._input, self._output = inputs[0].name, outputs[0].name
        batch = inputs[0].shape[0] if inputs[0].shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def extra_repr(self) -> str:
        return f"file_sha256={self.sha256}"

    def train(self, mode: bool = True) -> "OnnxModule":
        """Only records the flag: the ONNX graph has its inference behaviour baked in."""
        self.training = mode
        return self

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        out = self._session.run([self._output], {self._input: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_batch is None or x.shape[0] == self.fixed_batch:
            return self._run(x).to(x.device)
        outputs = []
        for chunk in x.split(self.fixed_batch):
            n = chunk.shape[0]
            if n < self.fixed_batch:
                chunk = torch.cat([chunk, chunk.new_zeros((self.fixed_batch - n, *chunk.shape[1:]))])
            outputs.append(self._run(chunk)[:n])
        return torch.cat(outputs).to(x.device)

    # -- efficiency facts of the artifact
    def artifact_facts(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """Counts for :class:`prunecheck.nn.efficiency.EfficiencyFacts`, read from the ONNX graph."""
        import onnx
        from onnx import numpy_helper, shape_inference

        model = onnx.load(str(self.path))
        graph = model.graph
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        parameters = sum(int(a.size) for a in inits.values())
        nonzero = sum(int(np.count_nonzero(a)) for a in inits.values())
        batch = self.fixed_batch or 1
        graph_input = next(i for i in graph.input if i.name not in inits)
        dims = graph_input.type.tensor_type.shape.dim
        for dim, value in zip(dims, (batch, *input_shape)):
            dim.ClearField("dim_param")
            dim.dim_value = int(value)
        shapes: dict[str, tuple[int, ...]] = {}
        try:
            inferred = shape_inference.infer_shapes(model)
            for info in list(inferred.graph.value_info) + list(inferred.graph.output):
                dims_ = info.type.tensor_type.shape.dim
                if all(d.HasField("dim_value") for d in dims_):
                    shapes[info.name] = tuple(d.dim_value for d in dims_)
        except Exception:  # noqa: BLE001 - FLOPs of ops without inferred shapes stay uncounted below
            pass
        prunable = prunable_nonzero = 0
        flops = effective = 0.0
        seen: set[str] = set()
        missing_shapes = []
        for node in graph.node:
            if node.op_type not in WEIGHT_INPUTS:
                continue
            w_index, zp_index = WEIGHT_INPUTS[node.op_type]
            names = list(node.input)
            weight_name = names[w_index] if len(names) > w_index else ""
            if node.op_type == "MatMul" and weight_name not in inits and names and names[0] in inits:
                weight_name = names[0]
            weight = inits.get(weight_name)
            if weight is None:
                continue
            zero_point = inits.get(names[zp_index]) if zp_index is not None and len(names) > zp_index else None
            zp = zero_point.reshape(-1, *([1] * (weight.ndim - 1))) if zero_point is not None and zero_point.size > 1 else zero_point
            live = int(np.count_nonzero(weight != (zp if zp is not None else 0)))
            if weight_name not in seen:
                seen.add(weight_name)
                prunable += int(weight.size)
                prunable_nonzero += live
            out = shapes.get(node.output[0])
            if out is None:
                missing_shapes.append(node.name or node.op_type)
                continue
            if node.op_type in _CONV_TYPES:
                op_flops = 2.0 * float(np.prod(out)) * float(np.prod(weight.shape[1:]))
            else:
                trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                k = weight.shape[1] if (node.op_type == "Gemm" and trans_b) else weight.shape[0]
                op_flops = 2.0 * float(np.prod(out)) * float(k)
            flops += op_flops / batch
            effective += op_flops / batch * (live / weight.size if weight.size else 1.0)
        if missing_shapes:
            raise ModelError(
                f"ONNX file {self.path}: cannot count FLOPs, shape inference gave no output shape for "
                f"{missing_shapes[:5]}"
            )
        raw = self.path.read_bytes()
        return dict(
            parameters=parameters,
            nonzero_parameters=nonzero,
            prunable_parameters=prunable,
            prunable_nonzero=prunable_nonzero,
            prune_ratio=1.0 - prunable_nonzero / prunable if prunable else 0.0,
            flops=int(round(flops)),
            effective_flops=effective,
            raw_bytes=len(raw),
            zipped_bytes=len(zlib.compress(raw, _ZLIB_LEVEL)),
            removable_parameters=0,
            structural_flops=float(int(round(flops))),  # no dead-channel analysis in ONNX graphs
            structure_traced=False,
            artifact_bytes=len(raw),
            kept_nonzero=prunable_nonzero,
        )


def load_onnx(name: str, path: Path) -> OnnxModule:
    """Open an ONNX file in an ONNX Runtime session.

    Raises:
        ModelError: ONNX Runtime is missing, the file is not a valid ONNX
            model, or it does not take exactly one input.
    """
    ort = _import_ort(name)
    data = path.read_bytes()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=_providers(ort))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise ModelError(
            f"model '{name}': ONNX Runtime cannot open {path}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if len(session.get_inputs()) != 1:
        raise ModelError(
            f"model '{name}': expected an ONNX model with one input (the image batch), "
            f"found {[i.name for i in session.get_inputs()]}"
        )
    return OnnxModule(path, session, hashlib.sha256(data).hexdigest())
