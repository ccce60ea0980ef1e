#!/usr/bin/env python3
"""Reference GGUF file for LoRAKit's GGUF writer tests, written by gguf-py (llama.cpp's own Python writer).

    /work/torchenv/bin/python scripts/reference/make_gguf_writer_fixture.py Tests/Fixtures/gguf
    (gguf 0.19.0, numpy 2.x)

writer_reference.gguf holds
  - one metadata key of every GGUF value type, arrays of several element types (gguf-py skips empty arrays),
  - "source" (F32, 8 × 64): the float values, with blocks chosen to hit every rounding path:
    random normals, a zero block, a constant block (Q4_1 d = 0), Q8_0 halfway ties (values k + 0.5 with
    max 127, so x/d is exactly the tie), a Q4_0 block whose largest |x| appears twice with opposite signs,
    values that overflow f16 and f16 subnormals, NaN-free (block quantizers need finite values);
  - the same floats encoded by gguf-py's quantizers as F16, BF16, Q8_0, Q4_0 and Q4_1.
GGUFWriterTests rebuilds the file from the metadata and "source" with LoRAKit's writer and quantizers and
requires identical bytes: header layout, padding, offsets, and the ggml reference rounding all at once.
"""
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

out = Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/gguf")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(13)

src = rng.normal(0, 1, (8, 64)).astype(np.float32)
src[1, 0:32] = 0                                        # zero block
src[1, 32:64] = 0.375                                   # constant block
src[2, 0:32] = np.arange(32, dtype=np.float32) - 15.5   # ties after scaling...
src[2, 31] = 127                                        # ...with d = 127/127 = 1
src[3, 0:32] = rng.normal(0, 1, 32)
src[3, 3], src[3, 9] = -4.0, 4.0                         # equal |max|: the first one sets the sign
src[4, 0:32] = rng.normal(0, 1e-6, 32)                  # f16 subnormals
src[4, 32:64] = rng.normal(0, 1e5, 32)                  # past the f16 range
src[5] *= 100
src = src.astype(np.float32)

w = gguf.GGUFWriter(str(out / "writer_reference.gguf"), arch="llama")
w.add_uint8("test.u8", 200)
w.add_int8("test.i8", -100)
w.add_uint16("test.u16", 60000)
w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4_000_000_000)
w.add_int32("test.i32", -2_000_000_000)
w.add_uint64("test.u64", 2**63 + 5)
w.add_int64("test.i64", -(2**62))
w.add_float32("test.f32", 0.1)
w.add_float64("test.f64", -1e300)
w.add_bool("test.bool", True)
w.add_string("test.string", "héllo \"gguf\"\n")
w.add_array("test.strings", ["a", "", "ünïcode"])
w.add_array("test.ints", [1, -2, 3])
w.add_array("test.floats", [0.5, -1.25])
w.add_tensor("source", src)
for name, qtype in [("f16", T.F16), ("bf16", T.BF16), ("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1)]:
    data = gguf.quants.quantize(src, qtype)
    w.add_tensor("source." + name, data, raw_dtype=qtype)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

r = gguf.GGUFReader(str(out / "writer_reference.gguf"))
for f in r.fields.values():
    print(f.name, [t.name for t in f.types])
for t in r.tensors:
    print(t.name, t.tensor_type.name, list(t.shape), t.data_offset)
