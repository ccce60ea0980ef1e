// A rank from a config file sizes an allocation: r × (in + out) floats per adapted module. A hostile or mistyped
// rank (r = 2^62) must be refused with a message before anything is allocated, not crash in the allocator.

extension AdaptedLinear {
    /// Most adapter parameters one module may get (2^31 floats = 8 GiB; a 70B model's largest LoRA at r = 256 is 0.01 of it).
    public static let maxAdapterParameters = 1 << 31

    /// Throws `PEFTError.invalidConfig` when a rank-`rank` adapter on `layer` overflows or exceeds `maxAdapterParameters`.
    public static func checkAdapterSize(rank: Int, layer: AdaptedLinear, field: String) throws {
        let (count, overflow) = rank.multipliedReportingOverflow(by: layer.inFeatures + layer.outFeatures)
        guard overflow || count > maxAdapterParameters else { return }
        throw PEFTError.invalidConfig(field: field, reason: "rank \(rank) on \(layer.path) [\(layer.outFeatures), \(layer.inFeatures)] "
            + "would need \(overflow ? "more than Int.max" : "\(count)") adapter parameters (limit \(maxAdapterParameters)); use a smaller rank")
    }
}
