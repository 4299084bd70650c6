"""Brings your own recordings of the attribute words into the semantic test's word records.

    python -m beam_pipelines.import_words --words_dir DIR --output_dir D --config PRESET [--max_word_seconds 2]
    python -m beam_pipelines.import_words --manifest M.json --output_dir D --config PRESET

Files (`--words_dir`): every .wav / .flac file under DIR (subfolders too) named `<speaker>_<word>.wav` or
`<speaker>_<anything>_<word>.wav`: the speaker is the name's first `_`-separated part, the word its last, e.g.
`alice_red.wav`, `alice_take2_red.wav`, `bob/bob_03_cylinder.flac`. Any other file in DIR is rejected with the
reason, so nothing there is skipped silently.
Manifest (`--manifest`), the Places layout of `import_manifest` with a word instead of an image:
    {"audio_base_path": "...", "data": [{"wav": "rel/path.wav", "word": "red", "speaker": "alice"}, ...]}

A word is any form the captions use for a value (`tfvgs.speech.WORD_TO_VALUE`: "red", "cube" or "block",
"large" or "big", "metal" or "shiny", "grey", plurals such as "balls", ...; case does not matter). Leave some silence
around each word (at least a fifth of the file, e.g. 0.2 s before and after): the noise floor is read from the
quietest tenth of the file's 10 ms frames, and a tightly cut file may be trimmed into its soft consonants or
rejected as silent. Each file is downmixed to mono; leading and
trailing silence is trimmed at the file's own rate by the rule espeak-ng's words are trimmed with (50 ms kept on each
side; the silence level rises above -60 dBFS to twice the recording's noise floor, `tfvgs.audio_io.speech_level`),
then resampled to the preset's rate and turned into log-mel by the one shared function. Unknown words, unreadable,
empty or silent files, files longer than the preset's `speech.max_seconds`, words longer than --max_word_seconds
after trimming, and clipped recordings (more than 0.1% of samples at full scale) go to <D>/rejected.jsonl with the
reason; the run prints read / written / rejected, which must add up.

Writes <D>/words-*.tfrecord in the semantic set's word format (`tfvgs.schema.encode_word_record`; the voice is the
speaker's name), summary.json (words per family and per speaker) and config.json. Score a model on them with the
image pairs of a semantic set: `python -m tfvgs.evaluate ... --semantic_dir S --words_dir D`.
"""
from __future__ import annotations

import json
import os
import posixpath
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam

from beam_pipelines import common
from beam_pipelines.import_manifest import ManifestError, failure_reason, load_manifest, read_bytes, resolve_under
from tfvgs import cli, config as config_lib

WORDS = "words"                    # = tfvgs.schema.WORDS (the file prefix; no TensorFlow at import)
PAIRS = "pairs"                    # = tfvgs.schema.PAIRS: a folder holding these is a semantic set's, not ours
AUDIO_EXTENSIONS = (".wav", ".flac")
MAX_WORD_SECONDS = 2.0             # an isolated attribute word said at any pace is well below this
MAX_CLIPPED_FRACTION = 0.001
SPEAKER_COUNTER = "speaker:"       # words written per speaker
FAMILY_COUNTER = "family:"         # words written per attribute family


def word_value(word: str) -> Tuple[str, str]:
    """(family, value) of a spoken attribute word, or ValueError listing the words it knows."""
    from tfvgs.speech import WORD_TO_VALUE
    key = str(word).strip().lower()
    if key not in WORD_TO_VALUE:
        raise ValueError(f"unknown word {word!r}. Expected one of {sorted(WORD_TO_VALUE)}")
    return WORD_TO_VALUE[key]


def parse_file_name(relative: str) -> Tuple[str, str]:
    """(speaker, word) of `<speaker>_<anything>_<word>.wav`, or ValueError saying what the name should look like."""
    stem, extension = posixpath.splitext(posixpath.basename(relative))
    if extension.lower() not in AUDIO_EXTENSIONS:
        raise ValueError(f"not a {' or '.join(AUDIO_EXTENSIONS)} file")
    parts = stem.split("_")
    if len(parts) < 2 or not parts[0] or not parts[-1]:
        raise ValueError(f"file name {posixpath.basename(relative)!r} does not say speaker and word: name it "
                         f"<speaker>_<word>{extension} or <speaker>_<anything>_<word>{extension}")
    return parts[0], parts[-1]


def list_word_files(words_dir: str) -> List[str]:
    """Every file under `words_dir` (local or gs://) as a '/'-separated path relative to it, sorted."""
    import tensorflow as tf
    if not tf.io.gfile.isdir(words_dir):
        raise FileNotFoundError(f"--words_dir {words_dir}: not a directory")
    found = []
    for folder, _, files in tf.io.gfile.walk(words_dir):
        relative_folder = os.path.relpath(folder, words_dir) if "://" not in words_dir else \
            folder[len(words_dir.rstrip("/")):].strip("/")
        for name in files:
            found.append(posixpath.normpath(posixpath.join(relative_folder.replace(os.sep, "/"), name)))
    return sorted(found)


def work_items(words_dir: Optional[str], manifest: Optional[Dict[str, Any]]) -> Tuple[str, List[Dict[str, Any]]]:
    """(audio base, items): one item per file of `words_dir` ({"wav"}) or per manifest entry (as written)."""
    if manifest is not None:
        return manifest["audio_base_path"], list(manifest["data"])
    return words_dir, [{"wav": relative} for relative in list_word_files(words_dir)]


class ImportWordFn(beam.DoFn):
    """An item ({"wav", and from a manifest "word", "speaker"}) -> ("words", word record) or a rejection."""

    def __init__(self, config: config_lib.Config, audio_base: str, from_manifest: bool, max_word_seconds: float):
        self.config, self.audio_base = config, audio_base
        self.from_manifest, self.max_word_seconds = from_manifest, float(max_word_seconds)

    def setup(self):
        from beam_pipelines.spoken_captions import LogMelFn
        self._log_mel = LogMelFn(self.config.features)
        self._read = common.counter(common.READ)
        self._reject = common.Reject("import_word")

    def speaker_and_word(self, item: Any) -> Tuple[str, str, str]:
        """(relative path, speaker, word) of a work item."""
        if not isinstance(item, dict):
            raise ValueError(f"entry must be an object. Received: {type(item).__name__}")
        relative = item.get("wav")
        if not isinstance(relative, str) or not relative:
            raise ValueError(f"missing field 'wav'. Received keys: {sorted(item)}")
        if not self.from_manifest:
            speaker, word = parse_file_name(relative)
            return relative, speaker, word
        for key in ("word", "speaker"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ValueError(f"missing string field {key!r}. Received: {item.get(key)!r}")
        return relative, item["speaker"].strip(), item["word"]

    def process(self, item: Any) -> Iterable:
        from tfvgs import audio_io, schema
        self._read.inc()
        item_id = item.get("wav", repr(item)) if isinstance(item, dict) else repr(item)
        try:
            relative, speaker, word = self.speaker_and_word(item)
            if "@" in speaker:
                raise ValueError(f"speaker names may not contain '@' (it separates an espeak-ng voice from its "
                                 f"settings). Received: {speaker!r}")
            family, value = word_value(word)
            path = resolve_under(self.audio_base, relative)
            waveform = audio_io.decode_audio(
                read_bytes(path, "audio"), source=path, sample_rate=self.config.features.sample_rate,
                max_seconds=self.config.speech.max_seconds, max_clipped_fraction=MAX_CLIPPED_FRACTION, trim=True)
            seconds = waveform.size / self.config.features.sample_rate
            if seconds > self.max_word_seconds:
                raise ValueError(f"{path}: {seconds:.2f} s of speech after trimming silence, longer than an isolated "
                                 f"word (--max_word_seconds {self.max_word_seconds}); is it a phrase, or noise?")
            logmel = self._log_mel(waveform)
            if logmel.shape[0] == 0:
                raise ValueError(f"{path}: shorter than one analysis window after trimming silence")
            record = schema.encode_word_record(word_id=relative, family=family, value=value, text=word.strip().lower(),
                                               logmel=logmel, voice=speaker)
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its reason
            source = json.dumps(item, sort_keys=True) if isinstance(item, dict) else repr(item)
            yield self._reject(item_id, failure_reason(e), source)
            return
        common.counter(SPEAKER_COUNTER + speaker).inc()
        common.counter(FAMILY_COUNTER + family).inc()
        yield WORDS, record


def build_pipeline(p: beam.Pipeline, config: config_lib.Config, audio_base: str, items: List[Dict[str, Any]],
                   output_dir: str, *, from_manifest: bool, max_word_seconds: float) -> None:
    imported = (p
                | "WordFiles" >> beam.Create(items)
                | "Reshuffle" >> beam.Reshuffle()
                | "ImportWords" >> beam.ParDo(ImportWordFn(config, audio_base, from_manifest, max_word_seconds))
                .with_outputs(common.REJECTED_TAG, main="words"))
    _ = imported.words | "WriteRecords" >> common.WriteSplitRecords(output_dir, (WORDS,), config.data.num_shards)
    _ = imported[common.REJECTED_TAG] | "DeadLetter" >> common.WriteRejected(output_dir)


def check_output_dir(output_dir: str, words_dir: Optional[str]) -> None:
    """Refuses a semantic set's own folder (its synthesised words would be replaced by these) and a folder inside
    --words_dir (a rerun would read its own outputs as recordings)."""
    import tensorflow as tf
    from tfvgs.shards import shard_pattern
    if words_dir and "://" not in words_dir and "://" not in output_dir:
        inside = os.path.commonpath([os.path.abspath(output_dir), os.path.abspath(words_dir)])
        if inside == os.path.abspath(words_dir):
            raise ValueError(f"--output_dir {output_dir} is inside --words_dir {words_dir}: a rerun would read "
                             f"its records as recordings. Write them elsewhere")
    if tf.io.gfile.glob(shard_pattern(output_dir, PAIRS)):
        raise ValueError(f"--output_dir {output_dir} holds a semantic set's image pairs ({PAIRS}-*.tfrecord); "
                         f"importing words there would replace its synthesised words. Write them to a folder of "
                         f"their own and pass it as --words_dir to tfvgs.evaluate")


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("beam_pipelines.import_words", __doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--words_dir", help="folder of <speaker>_<anything>_<word>.wav / .flac recordings")
    source.add_argument("--manifest", help='JSON {"audio_base_path", "data": [{"wav", "word", "speaker"}]}')
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_word_seconds", type=float, default=MAX_WORD_SECONDS,
                        help="longest speech after trimming silence that counts as one word (default %(default)s)")
    config_lib.add_config_flags(parser)
    args, options = common.parse_pipeline_args(parser, argv)
    if args.max_word_seconds <= 0:
        raise ValueError(f"--max_word_seconds must be positive. Received: {args.max_word_seconds}")
    config = config_lib.config_from_args(args)
    manifest = load_manifest(args.manifest, base_keys=("audio_base_path",)) if args.manifest else None
    audio_base, items = work_items(args.words_dir, manifest)
    if not items:
        raise ManifestError(f"{'--manifest ' + args.manifest if manifest else '--words_dir ' + args.words_dir}: "
                            f"no entries to import")
    check_output_dir(args.output_dir, args.words_dir)
    common.prepare_output_dir(args.output_dir, (WORDS,), config)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, config, audio_base, items, args.output_dir, from_manifest=manifest is not None,
                       max_word_seconds=args.max_word_seconds)
    summary = common.reconcile(p.result, args.output_dir, "import_words",
                               {"source": args.manifest or args.words_dir, "entries": len(items),
                                "max_word_seconds": args.max_word_seconds})
    counters = summary["counters"]
    summary["words_by_speaker"] = {k[len(SPEAKER_COUNTER):]: v for k, v in sorted(counters.items())
                                   if k.startswith(SPEAKER_COUNTER)}
    summary["words_by_family"] = {k[len(FAMILY_COUNTER):]: v for k, v in sorted(counters.items())
                                  if k.startswith(FAMILY_COUNTER)}
    import tensorflow as tf
    with tf.io.gfile.GFile(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    print(f"[import_words] words per speaker {summary['words_by_speaker']}, per family {summary['words_by_family']}")
    return summary


if __name__ == "__main__":
    run()
