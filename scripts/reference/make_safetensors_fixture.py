#!/usr/bin/env python3
"""Reference safetensors files for LoRAKit's Formats tests, written by the reference implementation.

Generated with safetensors 0.8.0, numpy 2.4.6 and ml_dtypes 0.6.0 (bfloat16 rounding):
    python3 -m venv /tmp/st && /tmp/st/bin/pip install safetensors==0.8.0 numpy ml_dtypes==0.6.0
    /tmp/st/bin/python scripts/reference/make_safetensors_fixture.py Tests/Fixtures/safetensors

writer_reference.safetensors: tensors our writer can produce (F64/F32/F16/BF16 from one Float32 source,
    I64/I32 ids, zero-size, scalar, a name needing JSON escapes) with metadata {"format": "pt"}.
    SafeTensorsWriterTests re-creates it from the values it reads and requires identical bytes, which
    checks the key order, header JSON, padding and F16/BF16 rounding against the reference.
all_dtypes.safetensors: one small tensor of every supported dtype with edge values, for the reader.
"""
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

out = Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/safetensors")
out.mkdir(parents=True, exist_ok=True)

rng = np.random.default_rng(7)
# Float32 source: random sign and mantissa bits with exponents from below the f16 subnormal range to past
# f16 max (every rounding path of F16 and BF16), plus ties and specials.
exponents = rng.integers(-28, 18, 199)
mantissas = rng.integers(0, 2**23, 199)
signs = rng.integers(0, 2, 199)
bits = (signs << 31) | ((exponents + 127) << 23) | mantissas
random_part = bits.astype(np.uint32).view(np.float32)
specials = np.array([
    0.0, -0.0, 1.0, 65504.0, 65520.0,         # f16 max, and the first value that rounds to f16 inf
    1e-8, 5.9604645e-08, 3.0e38,              # f16 subnormal range, bf16 near-max
    np.inf, -np.inf, np.nan,
    1.00390625, 1.01171875,                   # bf16 ties: to even (down), to even (up)
    1 + 2**-11, 1 + 3 * 2**-11, 2**-25, 3 * 2**-25,  # f16 ties in the normal and subnormal ranges
], dtype=np.float32)
source = np.concatenate([random_part, specials]).reshape(9, 24)

with np.errstate(over="ignore"):
    writer_tensors = {
        "weights.f32": source,
        "weights.f16": source.astype(np.float16),
        "weights.bf16": source.astype(ml_dtypes.bfloat16),
        "weights.f64": source.astype(np.float64),
        "ids.i64": np.array([[0, 1, -1, 2**40], [-(2**53), 49151, 7, 2**62]], dtype=np.int64),
        "ids.i32": np.array([0, -5, 2**31 - 1, -(2**31), 123456], dtype=np.int32),
        "empty.lora_A": np.zeros((0, 64), dtype=np.float32),
        "empty.lora_B": np.zeros((4, 0), dtype=np.float16),
        "scale": np.array(2.5, dtype=np.float32),
        "alpha": np.array([0.1], dtype=ml_dtypes.bfloat16),
        'Zeta "quoted"\\path\n\u00e9': np.array([-1.5, 0.25], dtype=np.float32),
    }
save_file(writer_tensors, out / "writer_reference.safetensors", metadata={"format": "pt"})

all_dtypes = {
    "f64": np.array([1.0 / 3.0, -2.5, 1e300, 1e-310], dtype=np.float64),
    "f32": np.array([[1.5, -0.0], [3.25, -7.0]], dtype=np.float32),
    "f16": np.array([1.0, -2.0, 65504.0, 5.9604645e-08, np.inf], dtype=np.float16),
    "bf16": np.array([1.0, -3.140625, 3.3895314e38], dtype=ml_dtypes.bfloat16),
    "i64": np.array([-(2**40), -1, 0, 2**24 + 1, 2**53], dtype=np.int64),
    "i32": np.array([-(2**31), -1, 0, 2**31 - 1], dtype=np.int32),
    "i16": np.array([-32768, -1, 0, 32767], dtype=np.int16),
    "i8": np.array([-128, -1, 0, 127], dtype=np.int8),
    "u8": np.array([0, 1, 128, 255], dtype=np.uint8),
    "bool": np.array([True, False, True], dtype=np.bool_),
}
save_file(all_dtypes, out / "all_dtypes.safetensors", metadata={"source": "make_safetensors_fixture.py"})
print("wrote", out / "writer_reference.safetensors", "and", out / "all_dtypes.safetensors")
