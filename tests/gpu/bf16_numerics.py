#!/usr/bin/env python3
"""Why Folio's bf16 greedy run of a real model parts from the float64 reference where it does
(issue #12, "bf16 numerics"). Runs ON THE GPU MACHINE (torch + transformers).

Teacher-forced on the reference sequence (BOS + reference.json's greedy ids), it computes the
logits of every position in float64 (the reference), in transformers' bf16, and reads Folio's
bf16 logits of the same sequence (`folio score --dtype bfloat16 --logits-out`). It also runs
transformers' own bf16 greedy generation. For the first position where Folio's bf16 decode
(`--folio-ids`) differs from the reference, and for every position where the float64 top-2
gap is within a few bf16 steps of the logit, it prints both gaps against the bf16 spacing
(ulp) at the top logit: a float64 gap below one bf16 ulp is a tie at bf16 precision (either
token is a correct bf16 answer), a larger one is a real error to find.

usage: bf16_numerics.py --model DIR --folio-ids "i i i" --folio-logits FILE.f32
"""
import argparse
import json
import math
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def ulp_bf16(v):
    """Spacing of bfloat16 numbers at |v| (8 significant bits)."""
    v = abs(float(v))
    return 2.0 ** (math.floor(math.log2(v)) - 7) if v > 0 else 2.0 ** -133


def top2(row):
    vals, idx = torch.topk(row.double(), 2)
    return int(idx[0]), int(idx[1]), float(vals[0] - vals[1]), float(vals[0])


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--folio-ids", required=True, help="Folio's bf16 greedy ids, space-separated")
    ap.add_argument("--folio-logits", required=True, help="folio score --logits-out of BOS + reference")
    a = ap.parse_args()
    ref = json.load(open(os.path.join(a.model, "reference.json")))
    prompt, want = ref["prompt_ids"], ref["greedy_ids"]
    seq = torch.tensor([prompt + want], device="cuda")
    folio_ids = [int(t) for t in a.folio_ids.split()]

    m64 = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float64).cuda().eval()
    mbf = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16).cuda().eval()
    with torch.no_grad():
        l64 = m64(seq).logits[0]
        lbf = mbf(seq).logits[0].float()
        gen = mbf.generate(seq[:, : len(prompt)], max_new_tokens=len(want), do_sample=False,
                           min_new_tokens=len(want), pad_token_id=0)[0, len(prompt):].tolist()
    vocab = l64.shape[1]
    lfo = torch.from_numpy(np.fromfile(a.folio_logits, dtype=np.float32).reshape(-1, vocab))

    d_folio, d_hf = first_diff(folio_ids, want), first_diff(gen, want)
    print(f"reference: {len(want)} greedy ids (float64)")
    print(f"folio bf16 decode parts at id {d_folio}; transformers bf16 generate parts at id {d_hf}")
    n = len(want)
    base = len(prompt) - 1  # logits row predicting want[i]
    rows = []
    for i in range(n):
        r = base + i
        t64a, t64b, g64, v64 = top2(l64[r])
        tbfa, _, gbf, _ = top2(lbf[r])
        tfoa, _, gfo, _ = top2(lfo[r])
        u = ulp_bf16(v64)
        if i == d_folio or g64 < 4 * u:
            rows.append((i, want[i], t64b, g64, u, tbfa, gbf, tfoa, gfo))
    print("pos | ref id | runner-up | f64 gap | bf16 ulp at top | gap/ulp | hf bf16 top (gap) | folio bf16 top (gap)")
    for i, w, rb, g64, u, tb, gb, tf, gf in rows:
        print(f"{i:3d} | {w:6d} | {rb:9d} | {g64:.4f} | {u:.4f} | {g64 / u:5.2f} | {tb} ({gb:.4f}) | {tf} ({gf:.4f})")
    if d_folio is not None:
        i = d_folio
        _, _, g64, v64 = top2(l64[base + i])
        verdict = "a tie at bf16 precision" if g64 < ulp_bf16(v64) else "NOT a tie: a real bf16 error"
        print(f"verdict at id {i}: float64 top-2 gap {g64:.4f} vs bf16 ulp {ulp_bf16(v64):.4f} -> {verdict}")


if __name__ == "__main__":
    main()
