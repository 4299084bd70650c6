"""Audio CLEVRGAN throughput: records per second end to end, each step alone, and which step bounds the pipeline.

Runs `beam_pipelines.audio_clevrgan` (DirectRunner) on `--num_samples` samples into a temporary directory, then
times each of its steps alone on the same samples with the pipeline's own code (`DrawAndDescribeFn.draw`,
`.describe`, `.caption_items` and `spoken_captions.SpeakFn`'s espeak-ng thread pool, log-mel and `EncodePair`):

  draw     the EMA generator draws the uint8 images, `--batch_size` latents at a time        (items: samples)
  describe the segmenter describes them (tfvgs.describe), same batches                     (items: samples)
  caption  caption text and voice for each confident sample (plus its scene JSON and PNG)  (items: captions)
  speech   espeak-ng, `--tts_workers` threads, in batches of 16 as speak_and_write         (items: captions)
  logmel   log-mel + pair-record encoding of the speech in range                           (items: records)

A sample the segmenter cannot describe confidently produces no record, so every step is reported per sample drawn
and per record written (its seconds over the records the step run produced: drawing and describing rejected samples
is part of each record's cost). The bound is the step with the largest share of the end-to-end time per record
(per sample drawn when no record was written); the shares of the steps add up to less than 1: the rest is model
loading and tracing ("setup", once per Beam worker), Beam itself and writing the shards. Steps the pipeline overlaps
(log-mel of one caption while the thread pool still speaks the next) are timed one after the other here. Prints JSON
lines:

  {"measure": "audio_clevrgan_end_to_end", "records_written": ..., "records_per_s": ..., "samples_per_s": ...}
  {"measure": "setup", "seconds": ...}
  {"measure": "step", "step": "draw" | "describe" | "caption" | "speech" | "logmel", "items_per_s": ...,
   "s_per_sample": ..., "s_per_record": ..., "fraction_of_end_to_end": ...}      (one line per step)
  {"measure": "bound", "step": ..., "fraction_of_end_to_end": ..., "basis": "per_record" | "per_sample",
   "steps_fraction_sum": ..., "setup_fraction": ..., "other_fraction": ...}

W is a workdir with a trained W/gan/generator.keras and W/segmenter/model.keras (`python -m tfvgs.train --stage gan`
and `--stage segmenter`, same --config):

    python benchmarks/audio_clevrgan_bench.py --workdir runs/cpu --config cpu --num_samples 400 --tts_workers 2
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from beam_pipelines import audio_clevrgan, spoken_captions  # noqa: E402
from tfvgs import config as config_lib  # noqa: E402

STEPS = ("draw", "describe", "caption", "speech", "logmel")
STEP_UNITS = {"draw": "sample", "describe": "sample", "caption": "caption", "speech": "caption", "logmel": "record"}
SPEECH_BATCH = 16   # BatchElements(max_batch_size=16) in spoken_captions.speak_and_write


def _ratio(a: float, b: float) -> Optional[float]:
    return None if not b else a / b


def _round(x: Optional[float], digits: int = 4) -> Optional[float]:
    return None if x is None else round(x, digits)


def measure_steps(config: config_lib.Config, workdir: str, num_samples: int, captions_per_image: int = 1,
                  style: str = "synthetic", batch_size: int = 32, tts_workers: int = 2,
                  allow_partial_gan: bool = False) -> Dict[str, Any]:
    """Times each pipeline step alone on samples 0..num_samples-1.

    Returns {"setup_seconds", "samples", "records", "rejected_samples", "steps": {step: {"items", "seconds"}}};
    `records` counts the pair records the steps produced (what the pipeline would write).
    """
    import numpy as np
    dofn = audio_clevrgan.DrawAndDescribeFn(config, workdir, num_samples, captions_per_image, style,
                                            allow_partial_gan)
    speak = spoken_captions.SpeakFn(config, spoken_captions.EncodePair(style, config.features.max_frames),
                                    tts_workers, id_key="pair_id", text_key="caption")
    start = time.perf_counter()
    dofn.setup()
    speak.setup()
    dofn.describe(dofn.draw([0])[2])                                   # traces both tf.functions
    speak._log_mel(np.zeros(config.speech.sample_rate, np.float32))    # traces the log-mel
    setup_seconds = time.perf_counter() - start

    seconds = dict.fromkeys(STEPS, 0.0)
    items = dict.fromkeys(STEPS, 0)
    work: List[dict] = []
    rejected_samples = 0
    try:
        for first in range(0, num_samples, batch_size):
            indices = list(range(first, min(first + batch_size, num_samples)))
            t0 = time.perf_counter()
            seeds, latents, images, finite = dofn.draw(indices)
            t1 = time.perf_counter()
            descriptions = dofn.describe(images)
            t2 = time.perf_counter()
            for index, seed, latent, image, ok, description in zip(indices, seeds, latents, images, finite,
                                                                   descriptions):
                if ok and description["confident"]:
                    work.extend(w for w in dofn.caption_items(index, seed, latent, image, description)
                                if isinstance(w, dict))          # a caption that fails is a rejection, not work
                else:
                    rejected_samples += 1
            t3 = time.perf_counter()
            seconds["draw"] += t1 - t0
            seconds["describe"] += t2 - t1
            seconds["caption"] += t3 - t2
            items["draw"] += len(indices)
            items["describe"] += len(descriptions)
        items["caption"] = len(work)
        s = config.speech
        for first in range(0, len(work), SPEECH_BATCH):
            batch = work[first:first + SPEECH_BATCH]
            t0 = time.perf_counter()
            spoken = list(speak._pool.map(speak._speak, batch))
            t1 = time.perf_counter()
            for item, (waveform, error) in zip(batch, spoken):
                if error is None and s.min_seconds <= waveform.size / float(s.sample_rate) <= s.max_seconds:
                    try:
                        speak.encode(item, speak._log_mel(waveform))
                        items["logmel"] += 1
                    except Exception:  # noqa: BLE001 - the pipeline rejects it; here it is just not a record
                        pass
            t2 = time.perf_counter()
            seconds["speech"] += t1 - t0
            seconds["logmel"] += t2 - t1
            items["speech"] += len(batch)
    finally:
        speak.teardown()
    return {"setup_seconds": setup_seconds, "samples": num_samples, "records": items["logmel"],
            "rejected_samples": rejected_samples,
            "steps": {step: {"items": items[step], "seconds": seconds[step]} for step in STEPS}}


def step_lines(measured: Dict[str, Any], end_to_end: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One JSON-ready dict per step: throughput in its own items, cost per sample drawn and per record written, and
    its share of the end-to-end time on the same basis (per record; per sample when either run wrote none)."""
    samples, records = measured["samples"], measured["records"]
    per_record = bool(records and end_to_end["records_written"])
    e2e_per_sample = _ratio(end_to_end["seconds"], end_to_end["samples"])
    e2e_per_record = _ratio(end_to_end["seconds"], end_to_end["records_written"])
    lines = []
    for step in STEPS:
        m = measured["steps"][step]
        s_per_sample, s_per_record = _ratio(m["seconds"], samples), _ratio(m["seconds"], records)
        fraction = _ratio(s_per_record, e2e_per_record) if per_record else _ratio(s_per_sample, e2e_per_sample)
        rate = _ratio(m["items"], m["seconds"]) if m["items"] else None
        lines.append({"measure": "step", "step": step, "unit": STEP_UNITS[step], "items": m["items"],
                      "seconds": round(m["seconds"], 3), "items_per_s": _round(rate, 2),
                      "samples": samples, "records": records, "s_per_sample": _round(s_per_sample),
                      "s_per_record": _round(s_per_record), "fraction_of_end_to_end": _round(fraction, 3),
                      "basis": "per_record" if per_record else "per_sample"})
        if step == "describe":
            lines[-1]["samples_rejected"] = measured["rejected_samples"]
    return lines


def bound_line(lines: Sequence[Dict[str, Any]], setup_seconds: float = 0.0,
               end_to_end_seconds: Optional[float] = None) -> Dict[str, Any]:
    """The step with the largest share of the end-to-end time (on the basis the step lines use), with what the steps
    leave unexplained: setup (model loading and tracing, once per run here) and the rest (Beam, shard writing)."""
    slowest = max(lines, key=lambda line: (line["fraction_of_end_to_end"] or 0.0, line["seconds"]))
    fractions = [line["fraction_of_end_to_end"] for line in lines]
    steps_sum = None if None in fractions else sum(fractions)
    setup = _ratio(setup_seconds, end_to_end_seconds)
    line = {"measure": "bound", "step": slowest["step"], "fraction_of_end_to_end": slowest["fraction_of_end_to_end"],
            "basis": slowest["basis"], "s_per_record": slowest["s_per_record"],
            "s_per_sample": slowest["s_per_sample"], "steps_fraction_sum": _round(steps_sum, 3),
            "setup_fraction": _round(setup, 3),
            "other_fraction": _round(None if steps_sum is None or setup is None else 1.0 - steps_sum - setup, 3)}
    if steps_sum is not None and steps_sum < 0.5:
        line["note"] = ("the steps are under half of the end-to-end time: fixed costs (setup, Beam start-up, "
                        "writing) dominate at this size; measure with more samples")
    return line


def run_end_to_end(args, output_dir: str) -> Dict[str, Any]:
    argv = ["--workdir", args.workdir, "--output_dir", output_dir, "--num_samples", str(args.num_samples),
            "--config", args.config, "--captions_per_image", str(args.captions_per_image), "--style", args.style,
            "--batch_size", str(args.batch_size), "--tts_workers", str(args.tts_workers)]
    for override in args.overrides:
        argv += ["--set", override]
    if args.allow_partial_gan:
        argv.append("--allow_partial_gan")
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):   # stdout carries only the JSON lines
        summary = audio_clevrgan.run(argv)
    seconds = time.perf_counter() - start
    with open(os.path.join(output_dir, "summary.json")) as f:
        on_disk = json.load(f)
    assert on_disk["written"] == summary["written"], (on_disk, summary)
    counters = summary["counters"]
    return {"measure": "audio_clevrgan_end_to_end", "config": args.config, "overrides": list(args.overrides),
            "samples": args.num_samples, "captions_per_image": args.captions_per_image,
            "records_written": summary["written"], "rejected": summary["rejected"],
            "rejected_by_step": summary["rejected_by_step"],
            "samples_undescribed": counters.get(audio_clevrgan.SAMPLES_UNDESCRIBED, 0),
            "tts_workers": args.tts_workers, "batch_size": args.batch_size, "seconds": round(seconds, 2),
            "records_per_s": round(summary["written"] / seconds, 3),
            "samples_per_s": round(args.num_samples / seconds, 3)}


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="holds gan/generator.keras and segmenter/model.keras")
    parser.add_argument("--num_samples", type=int, default=400)
    parser.add_argument("--tts_workers", type=int, default=2)
    parser.add_argument("--captions_per_image", type=int, default=1)
    parser.add_argument("--style", default="synthetic", choices=("synthetic", "natural"))
    parser.add_argument("--batch_size", type=int, default=32, help="images drawn and described at once")
    parser.add_argument("--allow_partial_gan", action="store_true",
                        help="a generator that stopped before full resolution (short debugging runs)")
    config_lib.add_config_flags(parser)
    parser.set_defaults(config="cpu")
    args = parser.parse_args(argv)
    if args.num_samples <= 0:
        raise ValueError(f"--num_samples must be positive. Received: {args.num_samples}")
    config = config_lib.config_from_args(args)

    printed = []

    def emit(line):
        print(json.dumps(line), flush=True)
        printed.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        end_to_end = run_end_to_end(args, os.path.join(tmp, "pairs"))
    emit(end_to_end)
    measured = measure_steps(config, args.workdir, args.num_samples, args.captions_per_image, args.style,
                             args.batch_size, args.tts_workers, args.allow_partial_gan)
    if measured["records"] != end_to_end["records_written"]:
        print(f"note: the steps alone produced {measured['records']} records, the pipeline wrote "
              f"{end_to_end['records_written']} (batch-size rounding at the confidence threshold)", file=sys.stderr)
    emit({"measure": "setup", "seconds": round(measured["setup_seconds"], 2),
          "what": "load generator and segmenter, trace draw, segment and log-mel (once per Beam worker)"})
    lines = step_lines(measured, end_to_end)
    for line in lines:
        emit(line)
    emit(bound_line(lines, measured["setup_seconds"], end_to_end["seconds"]))
    return printed


if __name__ == "__main__":
    main()
