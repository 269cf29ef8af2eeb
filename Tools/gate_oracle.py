#!/usr/bin/env python3
"""Python reference of the ATP gate (DESIGN.md, "Definitions the gate must follow exactly").

Writes Tests/Fixtures/gate/gate_golden.json, which Tests/GateTests/GateGoldenTests.swift checks the
Swift `Gate` module against. Independent of the Swift code: vectorised numpy in float64, inputs and
scores rounded to float32 exactly as the Swift API passes them.

Usage (from the package root):  python3 Tools/gate_oracle.py [--out Tests/Fixtures/gate/gate_golden.json]

Cases whose outcome would hinge on a last-bit rounding difference (near-tied scores, a mass running
sum within 1e-9 of its target) are skipped, so the goldens are exact for any correct implementation.
"""
import argparse
import json
import math
import os

import numpy as np

MASK = (1 << 64) - 1


# ---- SplitMix64 + partial Fisher-Yates (the `random` baseline) -------------------------------------
class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        if bound <= 1:
            return 0
        threshold = (1 << 64) % bound
        while True:
            x = self.next()
            if x >= threshold:
                return x % bound


def random_indices(n, k, seed):
    k = min(max(k, 0), n)
    g = SplitMix64(seed)
    pool = list(range(n))
    for i in range(k):
        j = i + g.below(n - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:k])


def uniform_indices(n, k):
    k = min(max(k, 0), n)
    return [math.floor((j + 0.5) * n / k) for j in range(k)]


# ---- signals -------------------------------------------------------------------------------------
def f32(a):
    return np.asarray(a, dtype=np.float32)


def saliency(cls_attention):
    a = f32(cls_attention).astype(np.float64)
    s = a.sum()
    if s == 0:
        return f32(np.full(len(a), 1.0 / len(a)))
    return f32(a / s)


def saliency_received(attention, heads, n):
    a = f32(attention).astype(np.float64).reshape(heads, n, n)  # [heads, query, key]
    return saliency(a.sum(axis=(0, 1)))


def cosine(patches, n, p, text):
    e = f32(patches).astype(np.float64).reshape(n, p)
    t = f32(text).astype(np.float64)
    dots = e @ t
    norms = np.linalg.norm(e, axis=1) * np.linalg.norm(t)
    out = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), 0.0)
    return f32(np.clip(out, -1, 1))


def norm(x, method):
    x = np.asarray(x, dtype=np.float64)
    if x.max() == x.min():
        return np.zeros_like(x)
    if method == "minmax":
        return (x - x.min()) / (x.max() - x.min())
    std = x.std()  # population std (ddof=0)
    return np.zeros_like(x) if std == 0 else (x - x.mean()) / std


def fuse(sal, rel, alpha, sign, method):
    intra = norm(f32(sal), method)
    if rel is None:
        return f32(intra)
    inter = norm(sign * f32(rel).astype(np.float64), method)
    return f32(alpha * inter + (1 - alpha) * intra)


def budget_count(budget, n, scores):
    kind, v = budget
    if kind == "tokens":
        return min(max(v, 1), n)
    if kind == "keep":
        return max(1, math.floor(v * n + 0.5))
    if kind == "all":
        return n
    s = np.sort(scores.astype(np.float64) - float(scores.min()))[::-1]
    total = float(np.cumsum(s)[-1])
    if total == 0:
        return 1
    cum = np.cumsum(s)
    target = v * total
    k = int(np.argmax(cum >= target)) + 1
    if abs(cum[k - 1] - target) < 1e-9 * total or (k >= 2 and abs(cum[k - 2] - target) < 1e-9 * total):
        raise ValueError("mass target too close to a running sum")
    return k


def top_k(scores, k):
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:k])


def run_gate(sal, rel, method, alpha, sign, normm, budget, seed):
    eff = {"cls": 0.0, "text": 1.0}.get(method, alpha)
    scores = fuse(sal, rel, eff, sign, normm)
    n = len(scores)
    k = budget_count(budget, n, scores)
    if method in ("atp", "cls", "text"):
        distinct = np.unique(scores.astype(np.float64))
        if len(distinct) != n or np.min(np.diff(distinct)) < 1e-5:
            raise ValueError("near-tied scores")
        kept = top_k(scores, k)
    elif method == "random":
        kept = random_indices(n, k, seed)
    elif method == "uniform":
        kept = uniform_indices(n, k)
    else:
        kept = list(range(n))
    return kept, scores


def floats(a):
    """float32 values as the shortest decimals that round-trip in float32 (keeps the JSON small)."""
    return [float(str(x)) for x in f32(a)]


def well_separated(x, gap=1e-4):
    v = np.unique(np.asarray(x, dtype=np.float64))
    return len(v) == len(x) and (len(v) < 2 or np.min(np.diff(v)) > gap)


# ---- atp-div: greedy DPP MAP by brute force ------------------------------------------------------
def diverse(scores, feats, k, beta, eps=1e-9):
    """Greedy MAP of the DPP L = diag(q) F F^T diag(q), q = exp(beta * S), F = L2-normalised rows.
    Each step adds the candidate with the largest det(L_{Y+j}) / det(L_Y) (computed from scratch
    with numpy determinants, not incrementally), ties to the lower index; when no candidate adds
    more than eps * q_j^2 (its feature lies in the span of the kept ones), the rest are filled by score
    (ties to the lower index). Returns (kept ascending,
    margin): the smallest relative gap between the best and second-best gain over the steps."""
    s = np.asarray(scores, dtype=np.float64)
    f = np.asarray(feats, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = np.where(norms > 0, f / np.where(norms > 0, norms, 1), 0)
    q = np.exp(beta * s)
    L = q[:, None] * (f @ f.T) * q[None, :]
    L[np.diag_indices(len(s))] = np.where(norms[:, 0] > 0, q * q, 0.0)   # a unit row's L_jj is q_j^2 exactly
    n = len(s)
    k = min(max(k, 0), n)
    chosen, margin = [], math.inf
    det_y = 1.0
    while len(chosen) < k and len(chosen) < n:
        gains = []
        for j in range(n):
            if j in chosen:
                continue
            idx = chosen + [j]
            g = np.linalg.det(L[np.ix_(idx, idx)]) / det_y
            if g > eps * q[j] ** 2:
                gains.append((g, j))
        if not gains:
            break
        best = max(g for g, _ in gains)
        j = min(j for g, j in gains if g == best)
        others = sorted((g for g, jj in gains if g < best), reverse=True)   # exact ties go by index
        if others:
            margin = min(margin, (best - others[0]) / best)
        chosen.append(j)
        det_y = np.linalg.det(L[np.ix_(chosen, chosen)])
    if len(chosen) < k:
        rest = sorted((j for j in range(n) if j not in chosen), key=lambda j: (-s[j], j))
        chosen += rest[:k - len(chosen)]
    return sorted(chosen), margin


def diversity_cases(rng):
    cases = []
    for n, d in ((6, 8), (20, 24), (49, 16)):
        for beta in (0.0, 3.0, 10.0):
            for k in sorted({1, 3, n // 4, n - 1, n}):
                while True:
                    sc = f32(rng.random(n))
                    fe = f32(rng.normal(size=(n, d)))
                    kept, margin = diverse(sc, fe, k, beta)
                    if margin > 1e-6:
                        break
                cases.append({"n": n, "dim": d, "k": k, "beta": beta, "scores": floats(sc),
                              "features": floats(fe.ravel()), "kept": kept})
    # Rank 2 features (and a zero row): after two picks nothing adds volume; the rest go by score.
    n, d = 10, 2
    sc = f32(rng.random(n))
    fe = f32(rng.normal(size=(n, d)))
    fe[3] = 0
    kept, _ = diverse(sc, fe, 6, 3.0)
    cases.append({"n": n, "dim": d, "k": 6, "beta": 3.0, "scores": floats(sc), "features": floats(fe.ravel()),
                  "kept": kept})
    return cases


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "Fixtures", "gate", "gate_golden.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(20240607)
    out = {}

    out["splitmix64"] = []
    for seed in (0, 1, 42, 0xFFFFFFFFFFFFFFFF):
        g = SplitMix64(seed)
        out["splitmix64"].append({"seed": str(seed), "outputs": [str(g.next()) for _ in range(5)]})

    out["random"] = [{"n": n, "k": k, "seed": str(seed), "kept": random_indices(n, k, seed)}
                     for (n, k) in ((1, 1), (5, 2), (17, 17), (64, 8), (576, 144))
                     for seed in (0, 1, 7)]
    out["uniform"] = [{"n": n, "k": k, "kept": uniform_indices(n, k)}
                      for (n, k) in ((1, 1), (5, 2), (7, 3), (64, 8), (576, 144), (10, 10))]

    out["saliency"] = []
    for n in (1, 6, 16):
        a = rng.random(n, dtype=np.float32) * 0.05
        out["saliency"].append({"cls_attention": floats(a), "expected": floats(saliency(a))})
    out["saliency"].append({"cls_attention": [0.0] * 4, "expected": floats(saliency(np.zeros(4)))})

    out["received"] = []
    for heads, n in ((1, 3), (2, 4), (3, 5)):
        logits = rng.normal(size=(heads, n, n))
        att = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
        att = f32(att)
        out["received"].append({"heads": heads, "n": n, "attention": floats(att.ravel()),
                                "expected": floats(saliency_received(att, heads, n))})

    out["cosine"] = []
    for n, p in ((4, 8), (9, 16)):
        e = f32(rng.normal(size=(n, p)))
        e[0] = 0  # a zero-norm patch has relevance 0
        t = f32(rng.normal(size=p))
        out["cosine"].append({"n": n, "p": p, "patches": floats(e.ravel()), "text": floats(t),
                              "expected": floats(cosine(e, n, p, t))})

    inputs = []
    for n in (7, 24, 49):
        while True:  # resample until neither signal has near-ties
            att = rng.random(n, dtype=np.float32) ** 3
            rel = f32(rng.uniform(-0.05, 0.35, size=n))
            if well_separated(saliency(att)) and well_separated(rel):
                break
        inputs.append({"saliency": floats(saliency(att)), "relevance": floats(rel)})
    out["inputs"] = inputs

    budgets = [("tokens", 0), ("tokens", 3), ("keep", 0.25), ("keep", 1.0), ("mass", 0.5), ("mass", 0.9),
               ("mass", 1.0), ("all", None)]
    cases = []
    skipped = 0
    for idx, inp in enumerate(inputs):
        for method in ("atp", "cls", "text", "random", "uniform", "full"):
            for normm in ("minmax", "zscore"):
                for sign in (1, -1):
                    for alpha in (0.0, 0.3, 1.0):
                        for with_rel in (True, False):
                            if not with_rel and (method == "text" or sign == -1 or alpha != 0.3):
                                continue  # without relevance sign and alpha do not matter
                            for budget in budgets:
                                rel = inp["relevance"] if with_rel else None
                                seed = 3 if method == "random" else 0
                                try:
                                    kept, scores = run_gate(inp["saliency"], rel, method, alpha, sign,
                                                            normm, budget, seed)
                                except ValueError:
                                    skipped += 1
                                    continue
                                cases.append({"input": idx, "relevance": with_rel, "method": method,
                                              "alpha": alpha, "sign": sign, "norm": normm,
                                              "budget": {budget[0]: budget[1]} if budget[1] is not None
                                              else {"all": True},
                                              "seed": seed, "kept": kept, "scores": floats(scores)})
    # Keep the fixture small: a fixed random sample of the grid.
    pick = rng.choice(len(cases), size=min(len(cases), 240), replace=False)
    out["cases"] = [cases[i] for i in sorted(pick)]
    out["diversity"] = diversity_cases(rng)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}: {len(out['cases'])} gate cases ({skipped} near-tie cases skipped)")


if __name__ == "__main__":
    main()
