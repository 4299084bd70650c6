"""Contact sheets: a grid of images with readable captions, for looking at what the world and the GAN produce."""
from __future__ import annotations

import textwrap
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _to_pil(image: Union[np.ndarray, Image.Image], where: str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        raise ValueError(f"{where} must be a uint8 [H, W], [H, W, 1] or [H, W, 3] array. "
                         f"Received: dtype={array.dtype}, shape={array.shape}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert("RGB")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)      # scalable built-in font (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError):
        return ImageFont.load_default()


def make_contact_sheet(images: Sequence[Union[np.ndarray, Image.Image]], captions: Optional[Sequence[str]] = None,
                       columns: int = 4, *, scale: int = 3, font_size: int = 13, padding: int = 8,
                       background=(255, 255, 255), text_color=(20, 20, 20)) -> Image.Image:
    """Lays images out in a grid, each enlarged `scale` times (nearest neighbour, so pixels stay honest) with its
    caption word-wrapped beneath. All images must share one size."""
    if not images:
        raise ValueError("images must not be empty. Received: 0 images")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"captions must match images one to one. Received: {len(captions)} captions for "
                         f"{len(images)} images")
    if not isinstance(columns, int) or columns < 1 or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"columns and scale must be positive ints. Received: columns={columns!r}, scale={scale!r}")
    tiles = [_to_pil(image, f"images[{i}]") for i, image in enumerate(images)]
    width, height = tiles[0].size
    if any(tile.size != (width, height) for tile in tiles):
        raise ValueError(f"All images must have one size. Received sizes: {sorted({t.size for t in tiles})}")
    tiles = [tile.resize((width * scale, height * scale), Image.NEAREST) for tile in tiles]
    cell_width = width * scale
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    char_width = max(probe.textlength("abcdefghijklmnopqrstuvwxyz", font=font) / 26.0, 1.0)
    chars_per_line = max(int(cell_width / char_width), 8)
    wrapped = [textwrap.wrap(str(c), chars_per_line) if captions is not None else [] for c in
               (captions or [""] * len(tiles))]
    line_height = int(font_size * 1.25)
    rows = (len(tiles) + columns - 1) // columns
    # each row is as tall as its own longest caption (one long caption used to stretch every row)
    row_heights = []
    for r in range(rows):
        lines = max(len(w) for w in wrapped[r * columns:(r + 1) * columns])
        row_heights.append(height * scale + (lines * line_height + padding // 2 if lines else 0))
    row_tops = np.concatenate([[padding], padding + np.cumsum([h + padding for h in row_heights])]).astype(int)
    sheet = Image.new("RGB", (columns * (cell_width + padding) + padding, int(row_tops[-1])), background)
    draw = ImageDraw.Draw(sheet)
    for i, (tile, lines) in enumerate(zip(tiles, wrapped)):
        x = padding + (i % columns) * (cell_width + padding)
        y = int(row_tops[i // columns])
        sheet.paste(tile, (x, y))
        for k, line in enumerate(lines):
            draw.text((x, y + height * scale + padding // 2 + k * line_height), line, fill=text_color, font=font)
    return sheet


def save_png(path: str, image: Union[np.ndarray, Image.Image]) -> None:
    """Writes a uint8 image array (or PIL image) as PNG."""
    _to_pil(image, "image").save(path, format="PNG")
