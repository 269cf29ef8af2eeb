// Gate methods and score normalisations, spelled as on the CLI (`--method`, `--norm`) and in pipeline YAML.

/// How the gate picks the visual tokens it keeps.
///
/// `atp` is the method of the paper: top-K of the fused score. The others are the baselines of
/// DESIGN.md ("Baselines share the selection rules").
public enum GateMethod: String, CaseIterable, Sendable {
    /// Top-K of `S = α·norm(s·S_inter) + (1−α)·norm(S_intra)` with the configured α.
    case atp
    /// The fused score with the configured α, selected by a greedy DPP over the patches' normalised
    /// features (``selectDiverse(scores:features:dim:k:beta:)``) instead of plain top-K.
    case atpDiv = "atp-div"
    /// Top-K of the fused score with α = 0 (saliency only).
    case cls
    /// Top-K of the fused score with α = 1 (text relevance only); needs a relevance signal.
    case text
    /// K distinct indices drawn by ``SplitMix64`` seeded with the configured seed (partial Fisher–Yates).
    case random
    /// K evenly spaced indices `floor((j + 0.5)·N/K)`, j = 0…K−1.
    case uniform
    /// All N tokens (no pruning; the budget is validated but ignored).
    case full
}

/// Per-frame normalisation applied to each signal before fusion.
public enum ScoreNormalization: String, CaseIterable, Sendable {
    /// `(x − min)/(max − min)` into [0, 1]; a constant vector maps to all zeros.
    case minmax
    /// `(x − mean)/std` with the population std (divide by N); std 0 maps to all zeros.
    case zscore
}
