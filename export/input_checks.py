"""Input validation that runs inside a serving signature, so TF Serving rejects bad requests with a clear message.

A SavedModel's signature cannot raise Python exceptions: the checks must be graph ops. Signatures here take
unknown-rank inputs (only the dtype is fixed by the TensorSpec), so a wrong rank or size reaches the graph and is
reported by these checks instead of failing somewhere inside a convolution, or being silently reshaped.

Ordering checks with control dependencies is not reliable: Grappler's constant folding can drop a control edge and
run a shape computation that an earlier check was meant to guard (seen on TF 2.21: "Incompatible shapes" instead of
the rank message). So nothing here depends on order:
  * every condition is computable for any input (`dims` pads a shape instead of indexing past its end);
  * one `tf.debugging.Assert` reports the *first* failing check (in the order they were added) with its message and
    the received values, e.g. "embed_audio: `logmel` must have rank 3 [batch, frames, 40]. Received shape: [2 512]";
  * `gate` passes the inputs on only if every check holds and otherwise hands the computation small valid
    placeholders, so no other op can fail first; the Assert (a stateful op, always run by tf.function) then fails
    the call with `tf.errors.InvalidArgumentError`.
"""
from __future__ import annotations

from typing import List, Sequence

import tensorflow as tf

# How many elements of a received tensor an error message shows.
SUMMARIZE = 8


def dims(tensor: tf.Tensor, count: int) -> tf.Tensor:
    """The first `count` sizes of `tensor`'s shape, padded with -1 when its rank is lower (never fails)."""
    return tf.concat([tf.shape(tensor), tf.fill([count], -1)], axis=0)[:count]


class InputChecks:
    """The checks of one signature's inputs; `gate` applies them.

    Args:
        signature: the signature's name, which starts every message.
    """

    def __init__(self, signature: str):
        self.signature = signature
        self._conditions: List[tf.Tensor] = []
        self._messages: List[tf.Tensor] = []

    def require(self, condition, message: str, received: Sequence[tf.Tensor] = ()) -> None:
        """Fails with "<signature>: <message> <received values>" unless every element of `condition` is True.

        `condition` must be computable for any input, including inputs that fail earlier checks.
        """
        self._conditions.append(tf.reduce_all(tf.cast(condition, tf.bool)))
        text = f"{self.signature}: {message}"
        if received:
            values = tf.strings.format(" ".join("{}" for _ in received), list(received), summarize=SUMMARIZE)
            self._messages.append(tf.strings.join([text, " ", values]))
        else:
            self._messages.append(tf.constant(text))

    def require_rank(self, tensor: tf.Tensor, name: str, rank: int, layout: str) -> None:
        self.require(tf.equal(tf.rank(tensor), rank), f"`{name}` must have rank {rank} {layout}. Received shape:",
                     [tf.shape(tensor)])

    def require_examples(self, tensor: tf.Tensor, name: str) -> None:
        """At least one example: an empty batch has nothing to compute (and empty convolutions fail obscurely)."""
        self.require(dims(tensor, 1)[0] >= 1, f"`{name}` must hold at least one example. Received shape:",
                     [tf.shape(tensor)])

    def require_finite(self, tensor: tf.Tensor, name: str) -> None:
        bad = tf.logical_not(tf.math.is_finite(tensor))
        self.require(tf.logical_not(tf.reduce_any(bad)),
                     f"`{name}` must not contain NaN or infinite values. Received non-finite values:",
                     [tf.reduce_sum(tf.cast(bad, tf.int32))])

    def require_same_batch(self, first: tf.Tensor, first_name: str, second: tf.Tensor, second_name: str) -> None:
        first_batch, second_batch = dims(first, 1)[0], dims(second, 1)[0]
        self.require(tf.equal(first_batch, second_batch),
                     f"`{first_name}` and `{second_name}` must have the same batch size. Received batch sizes:",
                     [first_batch, second_batch])

    def passed(self) -> tf.Tensor:
        """Scalar bool: every check holds. Adds the Assert that fails with the first failing check's message."""
        if not self._conditions:
            return tf.constant(True)
        conditions = tf.stack(self._conditions)
        first_failure = tf.argmin(tf.cast(conditions, tf.int32), output_type=tf.int32)
        ok = tf.reduce_all(conditions)
        tf.debugging.Assert(ok, [tf.gather(tf.stack(self._messages), first_failure)])
        return ok

    def gate(self, tensors: Sequence[tf.Tensor], placeholders: Sequence) -> List[tf.Tensor]:
        """`tensors` if every check holds, else `placeholders` (valid stand-ins of the same dtypes, so the
        computation downstream cannot fail before the Assert reports the bad input)."""
        ok = self.passed()
        tensors = [tf.convert_to_tensor(t) for t in tensors]
        placeholders = [tf.convert_to_tensor(p, t.dtype) for p, t in zip(placeholders, tensors)]
        return list(tf.cond(ok, lambda: [tf.identity(t) for t in tensors],
                            lambda: [tf.identity(p) for p in placeholders]))
