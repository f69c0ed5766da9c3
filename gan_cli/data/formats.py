"""The files gan_cli reads, named without importing torch (so `gan prepare` starts at once).

A prepared dataset of single images (manifest kind "image", format version 1) is a folder of three files:
IMAGES, (N, C, R, R) uint8 raw, C-order, ready to memory-map; LABELS, (N,) int64 (-1 where there is no
label); MANIFEST, JSON: the format version, kind, count, shape, source, options, class names, skipped files
and a content fingerprint.

Translation data (kind "paired" or "unpaired", format version 2) holds four parts, TRANSLATION_PARTS, each
two files (`part_files`): PART.u8, (N, C, R, R) uint8, and PART.i64, (N,) int64 labels. A paired dataset's
train_a[i] and train_b[i] are one pair (test_a, test_b likewise); an unpaired one's domains differ in count.
Its MANIFEST adds `parts` (count and shape of each), `splits` (where the held-out part came from),
`input_shape` (A's) beside `shape` (B's: what a generator outputs) and `count` (training items).

gan_cli.prep writes them, gan_cli.data.prepared reads them. Each kind is written in the oldest version
that can read it, so that an older gan_cli still reads new single-image datasets.
"""
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")

FORMAT_VERSION = 2  # the newest version this code reads
KIND_VERSIONS = {"image": 1, "paired": 2, "unpaired": 2}  # the version each kind is written in
IMAGES, LABELS, MANIFEST = "images.u8", "labels.i64", "manifest.json"
TRANSLATION_PARTS = ("train_a", "train_b", "test_a", "test_b")


def part_files(part: str) -> tuple[str, str]:
    """(images, labels) file names of one part of translation data."""
    return f"{part}.u8", f"{part}.i64"
