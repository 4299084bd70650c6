"""Exports a workdir's trained models as SavedModels for TF Serving.

    python -m export --workdir W --output_dir E [--stage S] [--index_data_dir D --index_split test] [--version N]

Writes E/audio_visual/<N>/ (embed_audio_waveform, embed_audio, embed_image, embed_image_bytes, match and, with an
index, retrieve), E/generator/<N>/ (generate, generate_ablated; when W/gan/generator.keras exists) and
E/models.config, then prints the docker command that serves them. See export/README.md.
"""
from __future__ import annotations

from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> dict:
    from tfvgs import cli, console, config as config_lib, workdir as layout
    console.quiet_startup()
    from export import exporter
    parser = cli.command_parser("export", __doc__)
    parser.add_argument("--workdir", required=True, help="the training workdir")
    parser.add_argument("--output_dir", required=True, help="the TF Serving model root to write into")
    parser.add_argument("--stage", default=None,
                        help="audio-visual stage to export (default: the most refined of "
                             f"{', '.join(exporter.STAGE_PREFERENCE)} with a model.keras)")
    parser.add_argument("--index_data_dir", default=None,
                        help="pair or scene TFRecords whose images form the retrieve index (default: no retrieve)")
    parser.add_argument("--index_split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--index_limit", type=int, default=None, help="index at most this many images")
    parser.add_argument("--similarity", default=None, choices=("sisa", "misa", "sima"),
                        help="retrieve's score (default: config model.eval_similarity; sisa keeps a pooled index)")
    parser.add_argument("--top_k", type=int, default=10, help="images returned per retrieve query (default 10)")
    parser.add_argument("--shortlist", type=int, default=0,
                        help="retrieve in two stages: re-rank with --similarity only each query's SHORTLIST best "
                             "images by the pooled score (0, the default: rank every image; see docs/benchmarks.md "
                             "for latency and recall per size)")
    parser.add_argument("--index_dtype", default="float32", choices=("float32", "float16"),
                        help="how the index is stored (float16: half the memory; scores are computed in float32)")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: one more than the highest existing)")
    parser.add_argument("--serving_base_path", default="/models",
                        help="where output_dir is mounted inside the server, for models.config (default /models)")
    parser.add_argument("--no_generator", action="store_true", help="do not export the GAN generator")
    parser.add_argument("--allow_partial_generator", action="store_true",
                        help="export a generator that stopped before its final resolution (debugging)")
    config_lib.add_config_flags(parser, workdir_flag="--workdir")
    args = parser.parse_args(argv)
    return exporter.export_all(
        args.workdir, args.output_dir, stage=args.stage,
        fallback_config=config_lib.config_from_args(args, saved=layout.saved_config(args.workdir)),
        index_data_dir=args.index_data_dir, index_split=args.index_split, index_limit=args.index_limit,
        similarity=args.similarity, top_k=args.top_k, shortlist=args.shortlist, index_dtype=args.index_dtype,
        version=args.version,
        base_path=args.serving_base_path,
        export_generator=not args.no_generator, allow_partial_generator=args.allow_partial_generator)


if __name__ == "__main__":
    main()
