"""Architecture descriptions of (Sub)Transformers, and their analytic cost.

An :class:`Arch` lists every width of an encoder-decoder Transformer layer by layer. The
SuperTransformer is the :class:`Arch` of a space's largest choices; a SubTransformer is
the :class:`Arch` of one configuration of that space. Params and MACs are counted from
the :class:`Arch` alone (no torch), so the search engine can ask for them cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linas.errors import ConfigError
from linas.space import SearchSpace

# Source and target length of the cost-model workload (HAT's latency protocol uses a
# 30-token source and 30 decoder steps).
WORKLOAD_TOKENS = 30


@dataclass(frozen=True)
class Arch:
    """Every width of an encoder-decoder Transformer with shared embeddings.

    ``decoder_ende_attn[i]`` is how many of the last encoder layers decoder layer ``i``
    attends to (1, 2 or 3), their outputs concatenated along time.
    """

    vocab_size: int
    qkv_dim: int
    encoder_embed_dim: int
    decoder_embed_dim: int
    encoder_ffn: tuple[int, ...]
    encoder_heads: tuple[int, ...]
    decoder_ffn: tuple[int, ...]
    decoder_self_heads: tuple[int, ...]
    decoder_ende_heads: tuple[int, ...]
    decoder_ende_attn: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("encoder_ffn", "encoder_heads", "decoder_ffn", "decoder_self_heads",
                     "decoder_ende_heads", "decoder_ende_attn"):
            object.__setattr__(self, name, tuple(int(x) for x in getattr(self, name)))
        if len(self.encoder_heads) != self.encoder_layers:
            raise ConfigError("encoder_heads and encoder_ffn need one entry per encoder layer")
        n = self.decoder_layers
        if not (len(self.decoder_self_heads) == len(self.decoder_ende_heads) == len(self.decoder_ende_attn) == n):
            raise ConfigError("every decoder list needs one entry per decoder layer")
        for h in self.encoder_heads + self.decoder_self_heads + self.decoder_ende_heads:
            if h <= 0 or self.qkv_dim % h:
                raise ConfigError(f"{h} heads do not divide the Q/K/V width {self.qkv_dim}")
        for k in self.decoder_ende_attn:
            if not 1 <= k <= self.encoder_layers:
                raise ConfigError(f"a decoder layer cannot attend to the last {k} of "
                                  f"{self.encoder_layers} encoder layers")

    @property
    def encoder_layers(self) -> int:
        return len(self.encoder_ffn)

    @property
    def decoder_layers(self) -> int:
        return len(self.decoder_ffn)

    def fits_in(self, other: Arch) -> bool:
        """Whether every width is at most ``other``'s (so its weights are first-k slices of it)."""
        pairs = [(self.vocab_size, other.vocab_size), (self.encoder_embed_dim, other.encoder_embed_dim),
                 (self.decoder_embed_dim, other.decoder_embed_dim)]
        if self.qkv_dim != other.qkv_dim or self.encoder_layers != other.encoder_layers:
            return False
        if self.decoder_layers > other.decoder_layers:
            return False
        pairs += list(zip(self.encoder_ffn, other.encoder_ffn)) + list(zip(self.decoder_ffn, other.decoder_ffn))
        return all(a <= b for a, b in pairs)

    # ------------------------------------------------------------------ cost
    def params(self) -> int:
        """Number of parameters (the shared embedding counted once; positions are not parameters)."""
        e, d, q = self.encoder_embed_dim, self.decoder_embed_dim, self.qkv_dim
        total = self.vocab_size * max(e, d)
        for f in self.encoder_ffn:
            total += _attention_params(e, e, q) + _ffn_params(e, f) + 2 * _norm_params(e)
        for f in self.decoder_ffn:
            total += (_attention_params(d, d, q) + _attention_params(d, e, q) + _ffn_params(d, f)
                      + 3 * _norm_params(d))
        return total

    def macs(self, src_len: int = WORKLOAD_TOKENS, tgt_len: int = WORKLOAD_TOKENS) -> int:
        """Multiply-accumulates of one forward pass: ``src_len`` source and ``tgt_len`` target tokens.

        Counts every matrix product: projections, attention scores and context, FFNs and
        the output projection onto the vocabulary (embedding look-ups are free).
        """
        e, d, q = self.encoder_embed_dim, self.decoder_embed_dim, self.qkv_dim
        s, t = src_len, tgt_len
        total = 0
        for f in self.encoder_ffn:
            total += s * (4 * e * q + 2 * e * f) + 2 * s * s * q
        for f, k in zip(self.decoder_ffn, self.decoder_ende_attn):
            mem = k * s
            total += t * (4 * d * q + 2 * d * f) + 2 * t * t * q           # self attention + FFN
            total += t * 2 * d * q + mem * 2 * e * q + 2 * t * mem * q      # enc-dec attention
        total += t * d * self.vocab_size
        return total


def _attention_params(q_in: int, kv_in: int, qkv: int) -> int:
    return (q_in * qkv + qkv) + 2 * (kv_in * qkv + qkv) + (qkv * q_in + q_in)


def _ffn_params(d: int, f: int) -> int:
    return d * f + f + f * d + d


def _norm_params(d: int) -> int:
    return 2 * d


def ende_layers(value: int) -> int:
    """Number of encoder layers attended for HAT's ``decoder_arbitrary_ende_attn`` value (-1, 1, 2)."""
    return 1 if value == -1 else int(value) + 1


def super_arch(space: SearchSpace, vocab_size: int, qkv_dim: int) -> Arch:
    """The SuperTransformer of a HAT space: the largest choice of every variable
    (every decoder layer attending to the last three encoder layers)."""
    return arch_of(space, {v.name: max(v.choices) for v in space.variables}, vocab_size, qkv_dim)


def arch_of(space: SearchSpace, config: Mapping[str, Any], vocab_size: int, qkv_dim: int) -> Arch:
    """The :class:`Arch` of a configuration of a HAT space.

    Raises :class:`ConfigError` (one line) for unknown variables, values outside the
    space, or missing variables the network uses.
    """
    full = space.to_config(space.from_config(config))
    n_enc, n_dec = full["encoder_layer_num"], full["decoder_layer_num"]
    return Arch(
        vocab_size=vocab_size, qkv_dim=qkv_dim,
        encoder_embed_dim=full["encoder_embed_dim"], decoder_embed_dim=full["decoder_embed_dim"],
        encoder_ffn=[full[f"encoder_ffn_embed_dim_{i}"] for i in range(n_enc)],
        encoder_heads=[full[f"encoder_self_attention_heads_{i}"] for i in range(n_enc)],
        decoder_ffn=[full[f"decoder_ffn_embed_dim_{i}"] for i in range(n_dec)],
        decoder_self_heads=[full[f"decoder_self_attention_heads_{i}"] for i in range(n_dec)],
        decoder_ende_heads=[full[f"decoder_ende_attention_heads_{i}"] for i in range(n_dec)],
        decoder_ende_attn=[ende_layers(full[f"decoder_arbitrary_ende_attn_{i}"]) for i in range(n_dec)],
    )


def extreme_configs(space: SearchSpace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The largest and the smallest configuration of a HAT space (sandwich rule, reports)."""
    def pick(fn: Any) -> dict[str, Any]:
        # -1 < 1 < 2 in decoder_arbitrary_ende_attn, so max attends to the most encoder layers.
        config = {v.name: fn(v.choices) for v in space.variables}
        return space.to_config(space.from_config(config))

    return pick(max), pick(min)
