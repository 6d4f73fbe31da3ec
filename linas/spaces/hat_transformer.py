"""HAT's SuperTransformer search spaces (no torch needed).

Variables, in order: ``encoder_embed_dim``, ``decoder_embed_dim``, ``encoder_layer_num``
(fixed), ``decoder_layer_num``, then per layer ``i``: ``encoder_ffn_embed_dim_i``,
``decoder_ffn_embed_dim_i``, ``encoder_self_attention_heads_i``,
``decoder_self_attention_heads_i``, ``decoder_ende_attention_heads_i`` and
``decoder_arbitrary_ende_attn_i`` (-1: attend to the last encoder layer; 1 or 2: to the
last 2 or 3 layers). Decoder variables of layer ``i`` are used only when
``decoder_layer_num > i``.

``hat_wmt14_ende`` is HAT's WMT'14 En-De space (40 variables); ``hat_cpu`` has the same
variable kinds with sizes that train on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from linas.space import Condition, SearchSpace, Variable
from linas.spaces import spaces

ENDE_ATTN = (-1, 1, 2)


def hat_space(name: str, embed_dims: Sequence[int], ffn_dims: Sequence[int], heads: Sequence[int],
              encoder_layers: int, decoder_layers: Sequence[int]) -> SearchSpace:
    """A HAT-style space with ``encoder_layers`` fixed encoder layers."""
    n_dec = max(decoder_layers)

    def dec(i: int) -> Condition | None:
        return None if i < min(decoder_layers) else Condition("decoder_layer_num", i + 1)

    v = [Variable("encoder_embed_dim", tuple(embed_dims)),
         Variable("decoder_embed_dim", tuple(embed_dims)),
         Variable("encoder_layer_num", (encoder_layers,)),
         Variable("decoder_layer_num", tuple(decoder_layers))]
    v += [Variable(f"encoder_ffn_embed_dim_{i}", tuple(ffn_dims)) for i in range(encoder_layers)]
    v += [Variable(f"decoder_ffn_embed_dim_{i}", tuple(ffn_dims), dec(i)) for i in range(n_dec)]
    v += [Variable(f"encoder_self_attention_heads_{i}", tuple(heads)) for i in range(encoder_layers)]
    v += [Variable(f"decoder_self_attention_heads_{i}", tuple(heads), dec(i)) for i in range(n_dec)]
    v += [Variable(f"decoder_ende_attention_heads_{i}", tuple(heads), dec(i)) for i in range(n_dec)]
    v += [Variable(f"decoder_arbitrary_ende_attn_{i}", ENDE_ATTN, dec(i)) for i in range(n_dec)]
    return SearchSpace(name, v)


@spaces.register("hat_wmt14_ende")
def hat_wmt14_ende() -> SearchSpace:
    """HAT's WMT'14 En-De space: 40 variables."""
    return hat_space("hat_wmt14_ende", embed_dims=(640, 512), ffn_dims=(3072, 2048, 1024), heads=(8, 4),
                     encoder_layers=6, decoder_layers=(1, 2, 3, 4, 5, 6))


@spaces.register("hat_cpu")
def hat_cpu() -> SearchSpace:
    """HAT's variable kinds with CPU-sized values: 40 variables.

    Sized so the SuperTransformer (Q/K/V width 192, 8K shared vocabulary: 7.8M params)
    trains on Multi30k on one CPU core in about two hours and its fp16 checkpoint stays
    under 25 MB.
    """
    return hat_space("hat_cpu", embed_dims=(192, 128), ffn_dims=(768, 512, 256), heads=(4, 2),
                     encoder_layers=6, decoder_layers=(1, 2, 3, 4, 5, 6))
