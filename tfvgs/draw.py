"""Look at what the trained GAN draws, and at what its h4 units do when they are switched off (paper 000 sec. 4.1).

    python -m tfvgs.draw --workdir W samples --seeds 0-15 --out grid.png
    python -m tfvgs.draw --workdir W edit --seeds 3,7 --units 1,5,9 --locations 2,3 4,4 --out edit.png
    python -m tfvgs.draw --workdir W edit --seeds 0-3 --random_units 0.2 --unit_seed 0 --locations 2,3 --out edit.png

`samples` draws the EMA generator's images for the given latent seeds (`tfvgs.gan_io.latents_for_seeds`, the same
latents every tool uses) as a PNG grid. `edit` ablates (sets to zero) the chosen h4 units at the chosen cells of the
8x8 h4 grid - the edit that makes the hard negatives - and writes one row per seed:

    original | ablation mask (ablated cells in red on the 8x8 grid) | edited | |difference| heatmap

Locations are `ROW,COL` cells of the 8x8 h4 grid, row 0 at the top; without `--locations` the units are ablated
everywhere. `--random_units P` picks each unit with probability P (paper 000 sec. 5 uses 0.2), one draw for all rows.
The difference heatmap is the per-pixel mean |edited - original| over RGB, on one colour scale for the whole figure
(its maximum is printed in the column title). Per-seed figures go to stdout as JSON lines.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tfvgs import console

H4_GRID = 8          # h4 is 8x8 (tfvgs.gan.progressive_generator.H4_LEVEL)
GRID_PAD = 2         # pixels between tiles of a sample grid
EDIT_COLUMNS = ("original", "ablation mask", "edited", "|difference|")


# --- argument parsing (also the validation the library functions use) --------------------------------------------

def parse_int_list(text: str, what: str) -> List[int]:
    """"0-3,8,10-11" -> [0, 1, 2, 3, 8, 10, 11] (ranges inclusive, order kept, duplicates dropped)."""
    values: List[int] = []
    try:
        for part in str(text).replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part[1:]:
                first, last = part.split("-", 1) if not part.startswith("-") else (part, "")
                first, last = int(first), int(last)
                if last < first:
                    raise ValueError
                values.extend(range(first, last + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise ValueError(f"`{what}` must be integers and inclusive ranges like 0-15,20. Received: {text!r}") from None
    if not values:
        raise ValueError(f"`{what}` is empty. Received: {text!r}")
    return list(dict.fromkeys(values))


def parse_location(text: str) -> Tuple[int, int]:
    """"ROW,COL" -> (row, col) of a cell of the 8x8 h4 grid."""
    try:
        row, col = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"A location must be ROW,COL of the {H4_GRID}x{H4_GRID} h4 grid, e.g. 2,3. "
                         f"Received: {text!r}") from None
    return check_locations([(row, col)])[0]


def check_locations(locations: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    bad = [loc for loc in locations if not all(0 <= v < H4_GRID for v in loc)]
    if bad:
        raise ValueError(f"Locations must be (row, col) with row and col in [0, {H4_GRID - 1}] (h4 is "
                         f"{H4_GRID}x{H4_GRID}). Received: {bad}")
    return [tuple(int(v) for v in loc) for loc in locations]


def check_units(units: Sequence[int], h4_channels: int) -> List[int]:
    bad = [u for u in units if not 0 <= int(u) < h4_channels]
    if bad:
        raise ValueError(f"Unit indices must be in [0, {h4_channels - 1}]: h4 of this generator has {h4_channels} "
                         f"channels. Received: {bad}")
    if not units:
        raise ValueError("No units to ablate. Received: []")
    return [int(u) for u in units]


def random_units(h4_channels: int, fraction: float, unit_seed: int = 0) -> List[int]:
    """Each of the h4 units independently with probability `fraction` (at least one unit)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"`random_units` must be a probability in (0, 1]. Received: {fraction!r}")
    rng = np.random.default_rng(unit_seed)
    chosen = np.flatnonzero(rng.random(h4_channels) < fraction)
    if chosen.size == 0:
        chosen = rng.integers(h4_channels, size=1)
    return [int(u) for u in chosen]


# --- pictures -------------------------------------------------------------------------------------------------------

def image_grid(images: np.ndarray, columns: Optional[int] = None, pad: int = GRID_PAD,
               pad_value: int = 255) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [rows*H + (rows+1)*pad, columns*W + (columns+1)*pad, C] image, row-major.

    `columns` defaults to ceil(sqrt(N)); empty cells of the last row stay `pad_value`.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"`images` must be a non-empty [N, H, W, C] array. Received shape: {images.shape}")
    n, h, w, c = images.shape
    columns = int(columns or math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    grid = np.full((rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad, c), pad_value, images.dtype)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        grid[top:top + h, left:left + w] = image
    return grid


def upscale(images: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of [..., H, W, C] by an integer factor (pixels stay sharp squares)."""
    return images if scale == 1 else images.repeat(scale, axis=-3).repeat(scale, axis=-2)


def default_scale(resolution: int) -> int:
    """Tiles of at least 128 px on screen: 4x for 32 px images, 2x for 64 px, 1x from 128 px."""
    return max(1, 128 // int(resolution))


def to_uint8(images) -> np.ndarray:
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


# --- drawing --------------------------------------------------------------------------------------------------------

def _batched(generator, latents: np.ndarray, ablation=None, batch_size: int = 16) -> np.ndarray:
    outputs = [np.asarray(generator.generate(latents[i:i + batch_size], ablation=ablation))
               for i in range(0, len(latents), batch_size)]
    return np.concatenate(outputs)


def sample_images(generator, seeds: Sequence[int]) -> np.ndarray:
    """Images of the generator for the latents of `seeds`, float32 [-1, 1] [N, R, R, 3] at its final level."""
    from tfvgs.gan_io import latents_for_seeds
    return _batched(generator, latents_for_seeds(seeds, generator.latent_dim))


def ablation_mask(h4_channels: int, units: Sequence[int], locations: Optional[Sequence[Tuple[int, int]]] = None):
    """float32 [1, 8, 8, C]: 1 for each (location, unit) to ablate; all 64 locations when `locations` is None."""
    units = check_units(units, h4_channels)
    mask = np.zeros((1, H4_GRID, H4_GRID, h4_channels), np.float32)
    if locations is None:
        mask[..., units] = 1.0
    else:
        for row, col in check_locations(locations):
            mask[0, row, col, units] = 1.0
    return mask


def edit_images(generator, seeds: Sequence[int], units: Sequence[int],
                locations: Optional[Sequence[Tuple[int, int]]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(original, edited) float32 [-1, 1] images for `seeds`, `units` ablated at `locations` of h4."""
    from tfvgs.gan_io import latents_for_seeds
    mask = ablation_mask(generator.h4_channels, units, locations)
    latents = latents_for_seeds(seeds, generator.latent_dim)
    return _batched(generator, latents), _batched(generator, latents, ablation=mask)


class EditLayout:
    """Pixel geometry of the edit view: a title band, column titles, then one row of four tiles per seed with the
    seed written in a label column on the left."""

    pad = 4
    label_width = 56
    title_height = 30
    header_height = 16

    def __init__(self, rows: int, tile: int):
        self.rows, self.tile = int(rows), int(tile)
        self.width = self.label_width + len(EDIT_COLUMNS) * (self.tile + self.pad) + self.pad
        self.height = self.title_height + self.header_height + self.rows * (self.tile + self.pad) + self.pad

    def tile_box(self, row: int, column: int) -> Tuple[int, int]:
        """(left, top) pixel of the tile in `row` (seed index) and `column` (index into EDIT_COLUMNS)."""
        return (self.label_width + self.pad + column * (self.tile + self.pad),
                self.title_height + self.header_height + self.pad + row * (self.tile + self.pad))


def _mask_tile(image: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The image dimmed, the 8x8 h4 grid drawn over it, ablated cells in red. `image` uint8 [T, T, 3]."""
    tile = image.shape[0]
    out = image.astype(np.float32) * 0.45
    cell = tile / H4_GRID
    for row, col in zip(*np.nonzero(cells)):
        rows = slice(int(round(row * cell)), int(round((row + 1) * cell)))
        cols = slice(int(round(col * cell)), int(round((col + 1) * cell)))
        out[rows, cols] = 0.35 * out[rows, cols] + 0.65 * np.array([255.0, 40.0, 40.0])
    for i in range(1, H4_GRID):
        edge = min(tile - 1, int(round(i * cell)))
        out[edge, :] = out[:, edge] = 170.0
    return out.astype(np.uint8)


def edit_view(original: np.ndarray, edited: np.ndarray, seeds: Sequence[int], units: Sequence[int],
              locations: Optional[Sequence[Tuple[int, int]]], h4_channels: int, scale: int = 1) -> np.ndarray:
    """The edit figure as uint8 [height, width, 3] (see `EditLayout` and the module docstring)."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageFont

    n, resolution = original.shape[0], original.shape[1]
    layout = EditLayout(n, resolution * scale)
    difference = np.abs(edited.astype(np.float32) - original.astype(np.float32)).mean(axis=-1)   # [N, R, R]
    peak = float(difference.max())
    heat = colormaps["inferno"](difference / peak if peak > 0 else difference)[..., :3]
    cells = ablation_mask(h4_channels, units, locations)[0].max(axis=-1)                         # [8, 8]
    originals, editeds = upscale(to_uint8(original), scale), upscale(to_uint8(edited), scale)
    heat = upscale((heat * 255).round().astype(np.uint8), scale)

    canvas = Image.new("RGB", (layout.width, layout.height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    where = "everywhere" if locations is None else " ".join(f"({r},{c})" for r, c in locations)
    shown_units = ",".join(str(u) for u in units[:24]) + ("..." if len(units) > 24 else "")
    draw.text((layout.pad, 2), f"ablated h4 units {shown_units} ({len(units)} of {h4_channels})", fill=(0, 0, 0),
              font=font)
    draw.text((layout.pad, 15), f"at (row,col) of the {H4_GRID}x{H4_GRID} grid: {where}", fill=(0, 0, 0), font=font)
    titles = list(EDIT_COLUMNS)
    titles[3] = f"|difference| max {peak:.2f}"
    for column, title in enumerate(titles):
        left, _ = layout.tile_box(0, column)
        draw.text((left, layout.title_height + 1), title, fill=(0, 0, 0), font=font)
    for row in range(n):
        tiles = (originals[row], _mask_tile(originals[row], cells), editeds[row], heat[row])
        for column, tile in enumerate(tiles):
            canvas.paste(Image.fromarray(tile), layout.tile_box(row, column))
        _, top = layout.tile_box(row, 0)
        draw.text((layout.pad, top + layout.tile // 2 - 6), f"seed {seeds[row]}", fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def write_png(image: np.ndarray, path: str) -> None:
    from PIL import Image
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    Image.fromarray(image).save(path)


# --- the command line ------------------------------------------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tfvgs.draw", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="the workdir the gan stage trained in")
    parser.add_argument("--allow_partial", action="store_true",
                        help="draw with a generator whose training stopped before full resolution")
    commands = parser.add_subparsers(dest="command", required=True)
    samples = commands.add_parser("samples", help="a grid of samples for the given latent seeds")
    samples.add_argument("--seeds", "--seed", dest="seeds", default="0-15", help="e.g. 0-15 or 1,4,9-12")
    samples.add_argument("--columns", type=int, default=None, help="grid columns (default: square-ish)")
    edit = commands.add_parser("edit", help="original | ablation mask | edited | difference, one row per seed")
    edit.add_argument("--seeds", "--seed", dest="seeds", default="0", help="e.g. 3 or 0-3")
    units = edit.add_mutually_exclusive_group(required=True)
    units.add_argument("--units", help="h4 unit indices to ablate, e.g. 1,5,9 or 0-31")
    units.add_argument("--random_units", type=float, help="ablate each unit with this probability, e.g. 0.2")
    edit.add_argument("--unit_seed", type=int, default=0, help="seed of the --random_units draw")
    edit.add_argument("--locations", nargs="+", default=None, metavar="ROW,COL",
                      help="cells of the 8x8 h4 grid (row 0 at the top); default: all 64")
    for sub in (samples, edit):
        sub.add_argument("--scale", type=int, default=None,
                         help="integer upscaling of each image (default: to at least 128 px)")
        sub.add_argument("--out", required=True, help="PNG file to write")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    from tfvgs import gan_io
    seeds = parse_int_list(args.seeds, "seeds")
    if any(s < 0 for s in seeds):
        raise ValueError(f"Seeds must be >= 0. Received: {args.seeds!r}")
    if args.scale is not None and args.scale < 1:
        raise ValueError(f"`scale` must be a positive integer. Received: {args.scale}")
    if args.command == "edit":   # validate what needs no model first: a typo should not wait for TensorFlow
        locations = None if args.locations is None else [parse_location(text) for text in args.locations]
        explicit_units = None if args.units is None else parse_int_list(args.units, "units")
    generator = gan_io.load_generator(args.workdir, allow_partial=args.allow_partial)
    scale = args.scale or default_scale(generator.max_resolution)
    if args.command == "samples":
        image = image_grid(upscale(to_uint8(sample_images(generator, seeds)), scale), columns=args.columns)
        write_png(image, args.out)
        summary = {"command": "samples", "seeds": seeds, "out": args.out, "size": [image.shape[1], image.shape[0]]}
        print(json.dumps(summary), flush=True)
        return summary
    channels = generator.h4_channels
    units = (check_units(explicit_units, channels) if explicit_units is not None
             else random_units(channels, args.random_units, args.unit_seed))
    original, edited = edit_images(generator, seeds, units, locations)
    image = edit_view(original, edited, seeds, units, locations, channels, scale)
    write_png(image, args.out)
    per_seed = []
    for seed, before, after in zip(seeds, original, edited):
        difference = np.abs(after - before)
        per_seed.append({"seed": seed, "mean_abs_diff": round(float(difference.mean()), 5),
                         "max_abs_diff": round(float(difference.max()), 5),
                         "changed_pixels": round(float((difference.max(axis=-1) > 2 / 255).mean()), 4)})
        print(json.dumps(per_seed[-1]), flush=True)
    summary = {"command": "edit", "seeds": seeds, "units": units, "h4_channels": channels,
               "locations": locations, "out": args.out, "size": [image.shape[1], image.shape[0]], "rows": per_seed}
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}), flush=True)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> dict:
    console.quiet_startup()
    args = parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"python -m tfvgs.draw: error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
