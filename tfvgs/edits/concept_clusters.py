"""Concept clusters: groups of embedding units that fire together, the word-like concepts w_k of paper 000 sec. 5.5.

The paper runs the training pairs through the audio-visual model, keeps each unit's activations in its top 1%,
counts how often every pair of units is active at the same place, and cuts a dendrogram of the units by those
co-occurrences. Here:

    thresholds = unit_thresholds(activations, 0.99)     # activations [N, D]: every image location and audio frame
    counts = cooccurrence(binarize(activations, thresholds))          # [D, D] int64, additive over chunks
    clusters = cluster_units(counts, num_clusters=12)                 # ConceptClusters
    open(path, "w").write(clusters.to_json())                         # clusters.json

Rows are individual image locations and audio frames (not pairs), so two units co-occur when they are strongly
active at the same place or time; a unit active in under `min_count` rows (e.g. a dead ReLU) is left out and listed
in `dead_units`. The distance between two units is 1 - C_ij / sqrt(C_ii C_jj), the cosine distance of their binary
activation vectors: it does not depend on how often each unit fires, only on how much their firing overlaps.

Sec. 5.6 then scores the most salient embedding w_i against every cluster (`cluster_scores`: mean activation of the
cluster's units) and draws a cluster in proportion (`cluster_probabilities`); sec. 5.5 segments an image by a
cluster (`cluster_segmentation`, s(I|w_k)) to find the GAN units that draw it (`tfvgs.edits.unit_ranking`).
"""
from __future__ import annotations

import dataclasses
import json
from typing import List, Optional, Sequence, Union

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial import distance as scipy_distance

# Linkages that are defined for an arbitrary (non-Euclidean) distance matrix; ward/centroid/median are not.
LINKAGE_METHODS = ("average", "complete", "single", "weighted")
DEFAULT_SEGMENTATION_QUANTILE = 0.8
# Rows of the [rows, D] float32 block multiplied at a time in `cooccurrence` (16384 x 512 x 4 B = 32 MiB). Counts per
# block stay below 2**24, so float32 products are exact.
DEFAULT_CHUNK_ROWS = 16384


def _check_quantile(quantile, name: str = "quantile") -> float:
    quantile = float(quantile)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"`{name}` must be in (0, 1). Received: {name}={quantile}")
    return quantile


def _check_matrix(activations, name: str) -> np.ndarray:
    activations = np.asarray(activations)
    if activations.ndim != 2 or activations.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty [N, D] array. Received: shape {activations.shape}")
    return activations


def unit_thresholds(activations, quantile: float = 0.99) -> np.ndarray:
    """Per-unit activation at `quantile` over all rows of `activations` [N, D]; float64 [D].

    Computed over blocks of units, so only a [N, block] float64 copy exists at a time.
    """
    activations = _check_matrix(activations, "activations")
    quantile = _check_quantile(quantile)
    num_units = activations.shape[1]
    block = max(1, (1 << 23) // activations.shape[0])
    thresholds = np.empty(num_units, np.float64)
    for start in range(0, num_units, block):
        thresholds[start:start + block] = np.quantile(
            np.asarray(activations[:, start:start + block], np.float64), quantile, axis=0)
    return thresholds


def binarize(activations, thresholds) -> np.ndarray:
    """bool [N, D]: activation strictly above its unit's threshold.

    Strictly above, so that a ReLU unit that is zero at more than (1 - quantile) of the rows (threshold 0) is active
    only where it is positive, and a constant unit is never active.
    """
    activations = _check_matrix(activations, "activations")
    thresholds = np.asarray(thresholds, np.float64)
    if thresholds.shape != (activations.shape[1],):
        raise ValueError(f"`thresholds` must be [D] with D={activations.shape[1]} (the units of `activations`). "
                         f"Received: shape {thresholds.shape}")
    return activations > thresholds


def cooccurrence(binary, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """int64 [D, D]: C_ij = number of rows where units i and j are both active; C_ii = rows where i is active.

    Counts add up, so a stage can also sum `cooccurrence` over batches of rows. Rows are processed `chunk_rows` at a
    time as float32 matrix products (exact: each chunk's counts are below 2**24).
    """
    binary = _check_matrix(binary, "binary")
    chunk_rows = int(chunk_rows)
    if not 1 <= chunk_rows <= (1 << 24):
        raise ValueError(f"`chunk_rows` must be in [1, 2**24]. Received: chunk_rows={chunk_rows}")
    num_units = binary.shape[1]
    counts = np.zeros((num_units, num_units), np.int64)
    for start in range(0, binary.shape[0], chunk_rows):
        chunk = np.asarray(binary[start:start + chunk_rows]).astype(np.float32)
        counts += np.rint(chunk.T @ chunk).astype(np.int64)
    return counts


@dataclasses.dataclass
class ConceptClusters:
    """A partition of the embedding units into concepts w_k.

    Attributes:
        clusters: unit indices of each cluster (int64, ascending), largest cluster first, ties by first unit.
        dead_units: units active in fewer than `min_count` rows; in no cluster.
        units: the clustered (live) units, ascending; leaf i of `linkage` is unit `units[i]`.
        linkage: scipy linkage matrix [len(units) - 1, 4] over `units` ([0, 4] when fewer than two are live).
        num_units: D, the embedding width.
        method: the linkage method.
    """
    clusters: List[np.ndarray]
    dead_units: np.ndarray
    units: np.ndarray
    linkage: np.ndarray
    num_units: int
    method: str = "average"

    @property
    def num_clusters(self) -> int:
        return len(self.clusters)

    def labels(self) -> np.ndarray:
        """int64 [num_units]: the cluster index of every unit, -1 for dead units."""
        labels = np.full(self.num_units, -1, np.int64)
        for k, members in enumerate(self.clusters):
            labels[members] = k
        return labels

    def to_json(self) -> str:
        return json.dumps({
            "num_units": int(self.num_units),
            "method": self.method,
            "clusters": [[int(u) for u in members] for members in self.clusters],
            "dead_units": [int(u) for u in self.dead_units],
            "units": [int(u) for u in self.units],
            "linkage": np.asarray(self.linkage, np.float64).tolist(),
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ConceptClusters":
        try:
            values = json.loads(text)
            clusters = [np.asarray(members, np.int64) for members in values["clusters"]]
            result = cls(clusters=clusters, dead_units=np.asarray(values["dead_units"], np.int64),
                         units=np.asarray(values["units"], np.int64),
                         linkage=np.asarray(values["linkage"], np.float64).reshape(-1, 4),
                         num_units=int(values["num_units"]), method=str(values.get("method", "average")))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"`text` is not a ConceptClusters JSON document ({error}). "
                             f"Received: {str(text)[:200]!r}") from error
        covered = np.concatenate([*result.clusters, result.dead_units]) if result.clusters else result.dead_units
        if sorted(covered.tolist()) != list(range(result.num_units)):
            raise ValueError("ConceptClusters JSON: clusters and dead_units must partition range(num_units). "
                             f"Received: num_units={result.num_units}, {len(covered)} listed units")
        return result


def cluster_units(cooc, num_clusters: int, method: str = "average", min_count: int = 1) -> ConceptClusters:
    """Cuts the dendrogram of units (distance 1 - C_ij / sqrt(C_ii C_jj)) into at most `num_clusters` clusters.

    Args:
        cooc: int [D, D] co-occurrence counts (`cooccurrence`).
        num_clusters: clusters wanted (scipy `fcluster` criterion "maxclust"; fewer come out when more live units
            than clusters do not exist, or ties leave no cut with exactly that many).
        method: linkage method, one of LINKAGE_METHODS.
        min_count: units with C_ii < min_count are dead: excluded and listed.
    """
    cooc = np.asarray(cooc)
    if cooc.ndim != 2 or cooc.shape[0] != cooc.shape[1]:
        raise ValueError(f"`cooc` must be a square [D, D] matrix. Received: shape {cooc.shape}")
    if not np.array_equal(cooc, cooc.T) or np.any(cooc < 0):
        raise ValueError("`cooc` must be symmetric and non-negative (counts from `cooccurrence`). "
                         f"Received: a {cooc.shape} matrix that is not")
    if int(num_clusters) < 1:
        raise ValueError(f"`num_clusters` must be >= 1. Received: num_clusters={num_clusters}")
    if method not in LINKAGE_METHODS:
        raise ValueError(f"`method` must be one of {LINKAGE_METHODS}. Received: method={method!r}")
    if int(min_count) < 1:
        raise ValueError(f"`min_count` must be >= 1. Received: min_count={min_count}")
    num_units = cooc.shape[0]
    diagonal = np.diag(cooc).astype(np.float64)
    live = np.nonzero(diagonal >= int(min_count))[0].astype(np.int64)
    dead = np.nonzero(diagonal < int(min_count))[0].astype(np.int64)
    if len(live) < 2:
        clusters = [live] if len(live) else []
        return ConceptClusters(clusters=clusters, dead_units=dead, units=live, linkage=np.zeros((0, 4)),
                               num_units=num_units, method=method)
    counts = cooc[np.ix_(live, live)].astype(np.float64)
    norms = np.sqrt(diagonal[live])
    distances = np.clip(1.0 - counts / np.outer(norms, norms), 0.0, 1.0)
    np.fill_diagonal(distances, 0.0)
    linkage = hierarchy.linkage(scipy_distance.squareform(distances, checks=False), method=method)
    labels = hierarchy.fcluster(linkage, t=int(num_clusters), criterion="maxclust")
    clusters = [live[labels == label] for label in np.unique(labels)]
    clusters.sort(key=lambda members: (-len(members), int(members[0])))
    return ConceptClusters(clusters=clusters, dead_units=dead, units=live, linkage=linkage, num_units=num_units,
                           method=method)


ClusterList = Union[ConceptClusters, Sequence[Sequence[int]]]


def _cluster_list(clusters: ClusterList) -> List[np.ndarray]:
    members = clusters.clusters if isinstance(clusters, ConceptClusters) else clusters
    members = [np.asarray(m, np.int64).ravel() for m in members]
    if not members or any(len(m) == 0 for m in members):
        raise ValueError(f"`clusters` must hold at least one non-empty cluster. Received: {len(members)} clusters "
                         f"of sizes {[len(m) for m in members]}")
    return members


def cluster_scores(embedding, clusters: ClusterList) -> np.ndarray:
    """float64 [..., K]: mean activation of each cluster's units in `embedding` [..., D].

    Paper 000 sec. 5.6 step 3: the similarity between the salient embedding w_i and cluster w_k.
    """
    members = _cluster_list(clusters)
    embedding = np.asarray(embedding, np.float64)
    num_units = embedding.shape[-1] if embedding.ndim else 0
    if any(m.min() < 0 or m.max() >= num_units for m in members):
        raise ValueError(f"`clusters` name units outside the {num_units} units of `embedding`. Received: embedding "
                         f"shape {embedding.shape}, largest unit {max(int(m.max()) for m in members)}")
    weights = np.zeros((num_units, len(members)), np.float64)
    for k, m in enumerate(members):
        np.add.at(weights[:, k], m, 1.0 / len(m))
    return embedding @ weights


def cluster_probabilities(scores) -> np.ndarray:
    """Scores [..., K] clipped at 0 and normalised to sum to 1 over K; uniform where every score is <= 0."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim == 0 or scores.shape[-1] == 0 or not np.all(np.isfinite(scores)):
        raise ValueError(f"`scores` must be finite [..., K] with K >= 1. Received: shape {scores.shape}")
    positive = np.clip(scores, 0.0, None)
    total = positive.sum(axis=-1, keepdims=True)
    uniform = np.full_like(positive, 1.0 / scores.shape[-1])
    return np.where(total > 0, positive / np.where(total > 0, total, 1.0), uniform)


def cluster_segmentation(feature_map, units, quantile: float = DEFAULT_SEGMENTATION_QUANTILE) -> np.ndarray:
    """s(I|w_k), bool [N, H, W]: locations whose cluster activation is above its `quantile` over the whole sample.

    The cluster activation of a location is the sum of the cluster's units in `feature_map` [N, H, W, D] (image
    embeddings f_I(I)). One threshold for the sample, not per image, so an image without the concept gets little or
    no segmentation. Default 0.8: the top 20% of locations, on the order of the object area at the embedding
    resolution. Strictly above, so ties at the threshold (e.g. ReLU zeros) are never selected.
    """
    feature_map = np.asarray(feature_map)
    if feature_map.ndim != 4:
        raise ValueError(f"`feature_map` must be [N, H, W, D]. Received: shape {feature_map.shape}")
    quantile = _check_quantile(quantile)
    units = np.asarray(units, np.int64).ravel()
    if len(units) == 0 or units.min() < 0 or units.max() >= feature_map.shape[-1]:
        raise ValueError(f"`units` must be non-empty indices into the {feature_map.shape[-1]} units of "
                         f"`feature_map`. Received: {units.tolist()[:20]}")
    activation = np.asarray(feature_map[..., units], np.float64).sum(axis=-1)
    return activation > np.quantile(activation, quantile)


def dendrogram_figure(concept_clusters: ConceptClusters, path: str, title: Optional[str] = None) -> str:
    """Writes a PNG of the unit dendrogram with the cut that gives the clusters (coloured below it); returns path.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change). Leaves are labelled with unit indices
    when there are at most 80 of them.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    linkage = np.asarray(concept_clusters.linkage, np.float64)
    num_leaves = len(concept_clusters.units)
    fig = Figure(figsize=(max(6.0, min(24.0, 0.12 * num_leaves)), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    heading = title or (f"{concept_clusters.num_clusters} concept clusters of {num_leaves} live units "
                        f"({len(concept_clusters.dead_units)} dead), {concept_clusters.method} linkage")
    if len(linkage) == 0:
        ax.text(0.5, 0.5, "fewer than two live units: nothing to cluster", ha="center", va="center")
        ax.set_axis_off()
    else:
        heights = linkage[:, 2]
        k = concept_clusters.num_clusters
        if k <= 1:
            cut = heights[-1] * 1.02 + 1e-6
        elif k >= num_leaves:
            cut = heights[0] / 2.0
        else:
            cut = (heights[num_leaves - k - 1] + heights[num_leaves - k]) / 2.0
        hierarchy.dendrogram(linkage, ax=ax, color_threshold=cut, above_threshold_color="0.6",
                             labels=[str(u) for u in concept_clusters.units], no_labels=num_leaves > 80,
                             leaf_font_size=6)
        ax.axhline(cut, color="k", linestyle="--", linewidth=0.8)
        ax.set_ylabel("1 - cosine of co-occurrence")
        ax.set_xlabel("unit")
    ax.set_title(heading, fontsize=9)
    fig.tight_layout()
    if "://" in path:
        import io

        import tensorflow as tf
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(buffer.getvalue())
    else:
        fig.savefig(path, format="png", dpi=100)
    return path
