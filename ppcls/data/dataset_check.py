"""Check a classification dataset before a long run: every problem, with its line number, in one pass.

Used by ``tools/check_dataset.py LIST DATA_DIR [--classes_num N]`` and, for the reason a bad
image is named in the training log, by the dataset. Errors (the run would skip or fail on
them): malformed lines, labels that are not integers or outside ``[0, classes_num)``, missing,
empty, truncated or undecodable files. Notes (the run trains on them, converted by
DecodeImage to 8-bit 3-channel RGB): content that is not what the extension says (a PNG named
``.jpg``), grayscale, CMYK, 16-bit, alpha or palette images, duplicate lines.

The check decodes each file once with the decoder training uses (``DecodeImage``: OpenCV
``IMREAD_COLOR`` plus the truncated-JPEG check) and runs no other transform, so a file that
passes here decodes in training.
"""
import os
import struct
from concurrent.futures import ThreadPoolExecutor

_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)
_EXTENSIONS = {"JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"), "PNG": (".png",), "GIF": (".gif",),
               "BMP": (".bmp",), "TIFF": (".tif", ".tiff"), "WEBP": (".webp",)}
_PNG_COLOR = {0: "grayscale", 2: None, 3: "palette", 4: "grayscale with alpha", 6: "alpha channel"}


def sniff(data):
    """Image format from the first bytes ('JPEG', 'PNG', ...) or None."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _jpeg_components(data):
    """Number of colour components in the JPEG frame header (1 gray, 3 colour, 4 CMYK/YCCK)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                      # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[i + 9] if i + 9 < len(data) else None
        if marker == 0xDA:                      # start of scan before any frame header
            return None
        i += 2 + length
    return None


def format_notes(data, path):
    """Odd-but-decodable properties of an image that decodes: [note, ...]."""
    notes = []
    fmt = sniff(data)
    ext = os.path.splitext(path)[1].lower()
    if fmt and ext and ext not in _EXTENSIONS.get(fmt, ()):
        notes.append(f"{fmt} data in a {ext} file")
    if fmt == "PNG" and len(data) >= 26:
        depth, color = data[24], data[25]
        if depth == 16:
            notes.append("16-bit PNG")
        if _PNG_COLOR.get(color):
            notes.append(f"{_PNG_COLOR[color]} PNG")
    elif fmt == "JPEG":
        comps = _jpeg_components(data)
        if comps == 1:
            notes.append("grayscale JPEG")
        elif comps == 4:
            notes.append("CMYK JPEG")
    return notes


def check_file(path):
    """(error or None, [notes]) for one image file: read and decode it as training does."""
    from .transforms import BadImageError, DecodeImage
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return "file not found", []
    except OSError as e:
        return f"cannot read ({e.strerror or e})", []
    try:
        DecodeImage()(data)
    except BadImageError as e:
        fmt = sniff(data)
        if str(e).startswith("cannot decode"):
            return (f"cannot decode: corrupt or truncated {fmt} data" if fmt
                    else "cannot decode: not an image (unknown format)"), []
        return str(e), []
    return None, format_notes(data, path)


def diagnose(path):
    """Why ``path`` does not load as a training image, or None if it does."""
    return check_file(path)[0]


def _check_item(item):
    lineno, path = item
    return lineno, path, check_file(path)


def check_dataset(file_list, data_dir, classes_num=None, workers=0):
    """Check every line of ``file_list``; returns {'errors': [(line, text)], 'notes': [(line,
    kind, path)], 'lines': n, 'images': n, 'labels': {label: count}}, sorted by line number."""
    errors, notes, to_decode, labels, seen = [], [], [], {}, {}
    lines = 0
    with open(file_list, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            lines += 1
            parts = text.split()
            if len(parts) < 2:
                errors.append((lineno, f"expected 'relative/path label', got {text!r}"))
                continue
            rel, label = " ".join(parts[:-1]), parts[-1]
            try:
                label = int(label)
            except ValueError:
                errors.append((lineno, f"{rel}: label {label!r} is not an integer"))
                label = None
            if label is not None:
                if label < 0 or (classes_num is not None and label >= classes_num):
                    rng = f"[0, {classes_num})" if classes_num is not None else ">= 0"
                    errors.append((lineno, f"{rel}: label {label} outside {rng}"))
                else:
                    labels[label] = labels.get(label, 0) + 1
            if rel in seen:
                notes.append((lineno, "listed twice", f"{rel}, first on line {seen[rel]}"))
            else:
                seen[rel] = lineno
            to_decode.append((lineno, os.path.join(data_dir, rel)))
    if workers and workers > 1 and len(to_decode) > 1:
        with ThreadPoolExecutor(workers) as pool:       # OpenCV decodes without the GIL
            results = list(pool.map(_check_item, to_decode))
    else:
        results = [_check_item(item) for item in to_decode]
    for lineno, path, (error, file_notes) in results:
        rel = os.path.relpath(path, data_dir)
        if error:
            errors.append((lineno, f"{rel}: {error}"))
        notes += [(lineno, n, rel) for n in file_notes]
    errors.sort()
    notes.sort()
    if classes_num is not None and labels:
        absent = [c for c in range(classes_num) if c not in labels]
        if absent:
            shown = ", ".join(map(str, absent[:20])) + (" ..." if len(absent) > 20 else "")
            notes.append((0, f"{len(absent)} of {classes_num} classes have no image", shown))
    return {"errors": errors, "notes": notes, "lines": lines, "images": len(to_decode),
            "labels": labels}


def format_report(report, file_list, examples=5):
    """Text lines: every error with its line number; the notes grouped by kind, with the line
    numbers of the first ``examples`` of each (None: all); a summary."""
    out = [f"error: {file_list} line {n}: {text}" for n, text in report["errors"]]
    kinds = {}
    for n, kind, detail in report["notes"]:
        kinds.setdefault(kind, []).append((n, detail))
    for kind, items in kinds.items():
        if items[0][0] == 0:                        # a note about the whole list
            out.append(f"note: {file_list}: {kind}: {items[0][1]}")
            continue
        shown = items if examples is None else items[:examples]
        where = ", ".join(f"line {n} ({d})" for n, d in shown)
        more = f", ... and {len(items) - len(shown)} more" if len(shown) < len(items) else ""
        hint = "" if kind == "listed twice" else " - decodes; trained as 8-bit RGB"
        out.append(f"note: {file_list}: {len(items)} {kind}{hint}: {where}{more}")
    out.append(f"{file_list}: {report['lines']} line(s), {len(report['labels'])} class(es) used, "
               f"{len(report['errors'])} error(s), {len(report['notes'])} note(s)")
    return out
