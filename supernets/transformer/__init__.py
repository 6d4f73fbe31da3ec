"""HAT-style SuperTransformer for translation (Wang et al., ACL'20).

Modules: ``arch`` (widths and analytic cost), ``layers`` (elastic blocks), ``model``
(SuperTransformer and SubTransformer extraction), ``data`` (parallel text and the shared
subword tokenizer), ``decoding`` (greedy and beam search with a key/value cache),
``scoring`` (BLEU and validation loss), ``latency`` (measured and proxy latency),
``trainer`` (``linas train-supernet``), ``evaluator`` (the ``hat_supernet`` evaluator).
"""

from supernets.transformer import spaces as _spaces  # noqa: F401,E402 - registers the hat_tiny space
