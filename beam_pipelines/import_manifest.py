"""Brings your own image / spoken-caption pairs into the spoken-pair TFRecord schema.

    python -m beam_pipelines.import_manifest --manifest M.json --output_dir O --config PRESET [--split train]
    python -m beam_pipelines.import_manifest --manifest M.jsonl --image_base_path I --audio_base_path A ...

The manifest uses the Places layout of the DAVEnet code (SpokenCOCO's per-image `captions` lists must first be
flattened into one entry per caption):
    {"image_base_path": "...", "audio_base_path": "...",
     "data": [{"image": "rel/path.jpg", "wav": "rel/path.wav", "uttid": "...", "speaker": "...", ...}, ...]}
or, for manifests of any size, JSON lines (a `.jsonl` file, one entry object per line, the base paths as flags).
The entries never enter the job graph: workers read the JSON lines themselves (a Places JSON is first converted, on
the launching machine, into <output_dir>/manifest.jsonl), so a manifest of millions of entries runs on Dataflow.
Relative paths are resolved under the base paths (local or gs://). Images are centre-cropped to a square and resized
to the preset's image size; audio is downmixed to mono and resampled to 16 kHz (WAV; FLAC when the optional
`soundfile` package is installed). Entries that cannot be used (missing or corrupt files, empty or over-long audio,
paths escaping their base path, missing fields) go to <output_dir>/rejected.jsonl with the reason; the run ends by
printing read / written / rejected, which must add up.
"""
from __future__ import annotations

import io
import json
import os
import posixpath
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

import apache_beam as beam

from beam_pipelines import common
from tfvgs import cli, config as config_lib
from tfvgs.shards import SPLITS


class ManifestError(ValueError):
    """The manifest file itself is unusable (the whole run stops; bad entries are rejected one by one instead)."""


def load_manifest(path: str, base_keys: Sequence[str] = ("image_base_path", "audio_base_path")) -> Dict[str, Any]:
    """The manifest's JSON object, checked for a 'data' list and the string fields `base_keys`."""
    import tensorflow as tf
    try:
        with tf.io.gfile.GFile(path) as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"--manifest {path}: not valid JSON ({e})") from e
    except tf.errors.NotFoundError as e:
        raise ManifestError(f"--manifest {path}: file not found") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("data"), list):
        raise ManifestError(f"--manifest {path}: expected an object with a 'data' list. "
                            f"Received keys: {sorted(manifest) if isinstance(manifest, dict) else type(manifest)}")
    for key in base_keys:
        if not isinstance(manifest.get(key), str):
            raise ManifestError(f"--manifest {path}: missing string field {key!r}")
    return manifest


def resolve_under(base: str, relative: str) -> str:
    """Joins a manifest path to its base (a local folder or a gs:// URL), refusing absolute paths and '..' that
    escape the base."""
    if not isinstance(relative, str) or not relative:
        raise ValueError(f"path must be a non-empty string. Received: {relative!r}")
    if relative.startswith(("/", "\\")) or "://" in relative:
        raise ValueError(f"path {relative!r} is absolute; manifest paths must be relative to their base path")
    scheme, sep, root = base.partition("://") if "://" in base else ("", "", base)
    root = posixpath.normpath(root) if sep else os.path.abspath(root)
    full = posixpath.normpath(posixpath.join(root, relative)) if sep else os.path.normpath(os.path.join(root, relative))
    if not full.startswith(root.rstrip("/") + "/"):
        raise ValueError(f"path {relative!r} escapes its base path {base!r}")
    return f"{scheme}{sep}{full}"


def load_square_image(data: bytes, size: int) -> bytes:
    """Image bytes (any format PIL reads) -> PNG bytes of the centre square crop resized to size x size RGB."""
    from PIL import Image
    import numpy as np
    from tfvgs import schema
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # forces a full decode so truncated files fail here
        image = image.convert("RGB")
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        return schema.encode_png(np.asarray(image, dtype=np.uint8))


def write_jsonl(entries: Sequence[Any], path: str) -> None:
    """Writes one JSON value per line (the converted Places manifest)."""
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "w") as f:
        for entry in entries:
            f.write(json.dumps(entry, sort_keys=True) + "\n")


def resolve_manifest(path: str, output_dir: str, image_base: Optional[str], audio_base: Optional[str]
                     ) -> Tuple[str, str, str, Optional[list]]:
    """(JSON-lines path the workers read, image base, audio base, entries to write there first or None) of
    `--manifest`: a .jsonl file as it is, with the base paths of the flags (default: its folder); a Places JSON,
    checked here, to be converted to <output_dir>/manifest.jsonl, with its own base paths (the flags may not
    contradict them). Writes nothing: a bad manifest fails before an earlier run's output is cleared."""
    if path.endswith(".jsonl"):
        import tensorflow as tf
        if not tf.io.gfile.exists(path):
            raise ManifestError(f"--manifest {path}: file not found")
        folder = os.path.dirname(path)
        return path, image_base or folder, audio_base or folder, None
    if image_base or audio_base:
        raise ManifestError(f"--manifest {path} is a Places JSON, which names its own base paths; "
                            f"--image_base_path / --audio_base_path are for .jsonl manifests. Received: "
                            f"{image_base!r}, {audio_base!r}")
    manifest = load_manifest(path)
    return (os.path.join(output_dir, "manifest.jsonl"), manifest["image_base_path"], manifest["audio_base_path"],
            manifest["data"])


def entry_id(line: str, entry: Any) -> str:
    """A manifest entry's pair id: its "uttid", else "entry-" and 12 hex digits of the line's SHA-1 (unique per
    distinct line; the wav path alone is not, as one recording may caption several images)."""
    import hashlib
    if isinstance(entry, dict) and entry.get("uttid"):
        return str(entry["uttid"])
    return "entry-" + hashlib.sha1(line.strip().encode("utf-8")).hexdigest()[:12]


def read_bytes(path: str, what: str) -> bytes:
    """The bytes of a file a manifest names (local or gs://), FileNotFoundError naming it and what it is."""
    import tensorflow as tf
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"missing {what} file {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def failure_reason(error: Exception) -> str:
    """A rejection's reason: our own errors (bad input: ValueError, FileNotFoundError) by their message, anything
    else with its type too."""
    return str(error) if isinstance(error, (ValueError, FileNotFoundError)) else f"{type(error).__name__}: {error}"


class ImportEntryFn(beam.DoFn):
    """A manifest line (one JSON entry) -> (split, pair record) or a rejection with the reason."""

    def __init__(self, config: config_lib.Config, image_base: str, audio_base: str, split: str):
        self.config, self.image_base, self.audio_base, self.split = config, image_base, audio_base, split

    def setup(self):
        from beam_pipelines.spoken_captions import LogMelFn
        self._log_mel = LogMelFn(self.config.features)
        self._read = common.counter(common.READ)
        self._reject = common.Reject("import")

    def process(self, line: str) -> Iterable:
        from tfvgs import audio_io, schema
        if not line.strip():
            return          # blank lines are not entries
        self._read.inc()
        item_id = entry_id(line, None)
        entry: Any = line
        try:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"manifest line is not valid JSON ({e})") from e
            item_id = entry_id(line, entry)
            if not isinstance(entry, dict):
                raise ValueError(f"entry must be an object. Received: {type(entry).__name__}")
            for key in ("image", "wav"):
                if key not in entry:
                    raise ValueError(f"missing field {key!r}")
            image_path = resolve_under(self.image_base, entry["image"])
            audio_path = resolve_under(self.audio_base, entry["wav"])
            try:
                image_png = load_square_image(read_bytes(image_path, "image"), self.config.world.image_size)
            except FileNotFoundError:
                raise
            except Exception as e:  # PIL raises several types for corrupt data
                raise ValueError(f"corrupt or unreadable image {image_path} ({type(e).__name__}: {e})") from e
            waveform = audio_io.decode_audio(read_bytes(audio_path, "audio"), source=audio_path,
                                             sample_rate=self.config.features.sample_rate,
                                             min_seconds=self.config.speech.min_seconds,
                                             max_seconds=self.config.speech.max_seconds)
            logmel = self._log_mel(waveform)
            if logmel.shape[0] == 0:
                raise ValueError(f"audio {audio_path} shorter than one analysis window")
            record = schema.encode_pair_record(pair_id=item_id, image_png=image_png, logmel=logmel,
                                               caption=str(entry.get("text", entry.get("asr_text", ""))),
                                               voice=str(entry.get("speaker", "")), split=self.split,
                                               caption_style="imported")
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its reason
            source = json.dumps(entry, sort_keys=True) if isinstance(entry, dict) else repr(entry)
            yield self._reject(item_id, failure_reason(e), source)
            return
        yield self.split, record


def build_pipeline(p: beam.Pipeline, config: config_lib.Config, manifest_jsonl: str, image_base: str,
                   audio_base: str, output_dir: str, split: str) -> None:
    imported = (p
                | "ReadManifest" >> beam.io.ReadFromText(manifest_jsonl)
                | "Reshuffle" >> beam.Reshuffle()
                | "ImportEntries" >> beam.ParDo(ImportEntryFn(config, image_base, audio_base, split)).with_outputs(
                    common.REJECTED_TAG, main="pairs"))
    _ = imported.pairs | "WriteRecords" >> common.WriteSplitRecords(output_dir, (split,), config.data.num_shards)
    _ = imported[common.REJECTED_TAG] | "DeadLetter" >> common.WriteRejected(output_dir)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("beam_pipelines.import_manifest", __doc__)
    parser.add_argument("--manifest", required=True,
                        help="DAVEnet Places-layout JSON manifest, or JSON lines (.jsonl) of its entries")
    parser.add_argument("--image_base_path", default=None, help=".jsonl manifests: images' base (default: its folder)")
    parser.add_argument("--audio_base_path", default=None, help=".jsonl manifests: audio's base (default: its folder)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--split", default="train", choices=SPLITS, help="split the imported pairs belong to")
    config_lib.add_config_flags(parser)
    args, options = common.parse_pipeline_args(parser, argv)
    config = config_lib.config_from_args(args)
    lines, image_base, audio_base, entries = resolve_manifest(args.manifest, args.output_dir, args.image_base_path,
                                                              args.audio_base_path)
    common.prepare_output_dir(args.output_dir, SPLITS, config)
    if entries is not None:
        write_jsonl(entries, lines)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, config, lines, image_base, audio_base, args.output_dir, args.split)
    return common.reconcile(p.result, args.output_dir, "import_manifest",
                            {"manifest": args.manifest, "manifest_lines": lines, "image_base_path": image_base,
                             "audio_base_path": audio_base})


if __name__ == "__main__":
    run()
