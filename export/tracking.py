"""Making a tf.Module of Keras 3 layers savable for TF Serving.

Keras 3 variables wrap `tf.Variable`s. A SavedModel that tracks the Keras wrappers reloads with
`tf.saved_model.load`, but the TF1 loader of `saved_model_cli run` and TF Serving then fails with "Could not find
variable ..." (keras-team/keras#20095). As Keras' own `ExportArchive` does, the servables keep their Keras objects
out of tracking (`Untracked`) and track the plain `tf.Variable`s that their signature functions capture
(`track_captured_variables`).
"""
from __future__ import annotations

from typing import Dict, Iterable

import tensorflow as tf


class Untracked:
    """Holds Keras objects as plain attributes that tf.Module tracking does not follow."""

    def __init__(self, **objects):
        self.__dict__.update(objects)


def track_captured_variables(module: tf.Module, functions: Iterable) -> None:
    """Tracks on `module` every variable captured by the concrete `functions` (deduplicated, in order)."""
    seen, variables = set(), []
    for function in functions:
        for variable in function.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    module.captured_variables = variables


def concrete_signatures(module: tf.Module, names: Iterable[str], default: str) -> Dict[str, object]:
    """{name: concrete function of module.<name>} plus "serving_default" = `default`, with variables tracked."""
    functions = {name: getattr(module, name).get_concrete_function() for name in names}
    functions["serving_default"] = functions[default]
    track_captured_variables(module, functions.values())
    return functions
