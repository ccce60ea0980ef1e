// Branch-free exp (and what is built on it) that the compiler vectorises inside plain loops.
// libm's expf is a call per element, so a loop over it runs scalar; softmax over a 49,152-token vocabulary
// and SiLU over every MLP activation spend most of their time there. Written with selects and bit casts
// only, `fastExp` inlines into callers in any module (@inlinable) and becomes 8-wide AVX2 code.
//
// Accuracy: Cephes' expf scheme — n = round(x·log2 e), r = x − n·ln 2 in two parts, degree-6 polynomial
// for e^r on [−ln2/2, ln2/2], then ×2ⁿ⁻¹×2 through the exponent bits (two factors so n = 128 stays finite).
// ≤ 2 ulp for results in [2.5e-38, FLT_MAX]; exp(x) = 0 below −86.64 (true value < 2.5e-38), +∞ above 88.72,
// NaN stays NaN.

/// e^x, vectorisable; within 2 ulp of expf for results ≥ 2.5e-38.
@inlinable @inline(__always)
public func fastExp(_ x: Float) -> Float {
    let lo: Float = -86.64, hi: Float = 88.722_83
    let xc = x < lo ? lo : (x > hi ? hi : x)
    // Round x·log2 e to an integer with the 1.5·2²³ trick: the integer lands in the low mantissa bits.
    let magic: Float = 12_582_912
    let t = xc * 1.442_695_04 + magic
    let n = t - magic
    let r = (xc - n * 0.693_359_375) - n * -2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let y = p * (r * r) + r + 1
    // 2ⁿ⁻¹: n is t's bit pattern minus magic's (0x4B40_0000); add the exponent bias 127, minus 1.
    let scaleBits = (t.bitPattern &- 0x4B40_0000 &+ 126) &<< 23
    let result = (y * Float(bitPattern: scaleBits)) * 2
    let under = x < lo ? 0 : result
    let over = x > hi ? Float.infinity : under
    return x != x ? x : over
}

/// σ(x) = 1 / (1 + e^−x), vectorisable.
@inlinable @inline(__always)
public func fastSigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

/// tanh(x) = 1 − 2 / (e^{2x} + 1), vectorisable; absolute error ≲ 2e-7 (relative error grows near 0).
@inlinable @inline(__always)
public func fastTanh(_ x: Float) -> Float { 1 - 2 / (fastExp(2 * x) + 1) }
