"""The curriculum's steps by name. Each is a `Step` plug-in (`tfvgs.stages.step`; the trained ones with one `fit`
are `Stage`s, `tfvgs.stages.stage`); `python -m tfvgs.train --stage NAME` runs one."""
from __future__ import annotations

from typing import Dict, Type

from tfvgs.stages.step import Step

_STAGES: Dict[str, str] = {
    # name -> "module:Class", imported on use so a stage's heavy dependencies load only when it runs
    "cluster": "tfvgs.stages.cluster:ClusterStage",
    "davenet": "tfvgs.stages.davenet:DavenetStage",
    "exact_edits": "tfvgs.stages.edits:ExactEditsStage",
    "gan": "tfvgs.stages.gan:GanStage",
    "hard_negatives": "tfvgs.stages.davenet:HardNegativesStage",
    "hn_cluster": "tfvgs.stages.cluster:HnClusterStage",
    "hn_random_edits": "tfvgs.stages.edits:HnRandomEditsStage",
    "hn_targeted_edits": "tfvgs.stages.edits:HnTargetedEditsStage",
    "no_edits_control": "tfvgs.stages.edits:NoEditsControlStage",
    "random_edits": "tfvgs.stages.edits:RandomEditsStage",
    "segmenter": "tfvgs.stages.segmenter:SegmenterStage",
    "targeted_edits": "tfvgs.stages.edits:TargetedEditsStage",
}


def register(name: str, target: str) -> None:
    """Registers a stage plug-in as "package.module:ClassName" (for stages outside this package too)."""
    _STAGES[name] = target


def stage_names():
    return sorted(_STAGES)


def get_stage(name: str) -> Type[Step]:
    if name not in _STAGES:
        raise ValueError(f"Unknown stage {name!r}. Known stages: {stage_names()}")
    import importlib
    module, cls = _STAGES[name].split(":")
    return getattr(importlib.import_module(module), cls)
