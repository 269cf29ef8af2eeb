"""transformers' reference for a LLaVA prompt with pruned visual tokens (DESIGN.md, "Pruned positions").

The engine keeps each kept visual token at the RoPE position it has with every token and continues
the text after the image where it would be with every token; transformers has no such mode, so the
reference passes `position_ids` explicitly and decodes greedily by hand with the KV cache.
"""
from __future__ import annotations

import torch


def pruned_positions(prefix: int, kept: list[int], visual_tokens: int, suffix: int) -> list[int]:
    """Positions of [prefix…, kept visual tokens…, suffix…]: kept row r sits at prefix + r, the suffix
    continues at prefix + visual_tokens. With every token kept these are 0, 1, 2, …"""
    return list(range(prefix)) + [prefix + r for r in kept] + [prefix + visual_tokens + j for j in range(suffix)]


@torch.no_grad()
def pruned_reference(model, ids: list[int], image_id: int, feats: torch.Tensor, kept: list[int],
                     max_new_tokens: int, eos: int | None):
    """Last-position logits of the prefill and the greedy ids (at most `max_new_tokens`, stopping
    after `eos` when given) for prompt `ids` whose image placeholders are the `kept` rows of `feats`."""
    input_ids = torch.tensor([ids])
    at = ids.index(image_id)
    n = feats.shape[0]
    pos = pruned_positions(at, kept, n, len(ids) - at - len(kept))
    emb = model.get_input_embeddings()(input_ids)
    mask = (input_ids == image_id).unsqueeze(-1).expand_as(emb)
    emb = emb.masked_scatter(mask, feats[kept].to(emb.dtype))
    out = model(inputs_embeds=emb, attention_mask=torch.ones_like(input_ids),
                position_ids=torch.tensor([pos]), use_cache=True)
    last = out.logits[0, -1]
    past, nxt, logits, gen = out.past_key_values, pos[-1] + 1, last, []
    total = len(ids)
    while len(gen) < max_new_tokens:
        t = int(torch.argmax(logits))
        gen.append(t)
        if eos is not None and t == eos or len(gen) >= max_new_tokens:
            break
        total += 1
        out = model(input_ids=torch.tensor([[t]]), attention_mask=torch.ones(1, total, dtype=torch.long),
                    position_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past, nxt, logits = out.past_key_values, nxt + 1, out.logits[0, -1]
    return last, gen
