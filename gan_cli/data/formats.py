"""The files gan_cli reads, named without importing torch (so `gan prepare` starts at once).

A prepared dataset is a folder of three files: IMAGES, (N, C, R, R) uint8 raw, C-order, ready to
memory-map; LABELS, (N,) int64 (-1 where there is no label); MANIFEST, JSON: the format version, count,
shape, source, options, class names, skipped files and a content fingerprint. gan_cli.prep writes it,
gan_cli.data.prepared reads it.
"""
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")

FORMAT_VERSION = 1
IMAGES, LABELS, MANIFEST = "images.u8", "labels.i64", "manifest.json"
