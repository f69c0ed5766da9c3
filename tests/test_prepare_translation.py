"""gan prepare kind=paired|unpaired and dataset=prepared on translation data: real folders in tmp_path.

The prepared data must give what dataset=paired_folder / unpaired_folder give on the same folder (to within
uint8 rounding), decoded on the device field by field, and train pix2pix and cyclegan with an exact resume.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_cli.data.prepared import prepared
from gan_cli.data.translation_folders import paired_folder, unpaired_folder
from gan_cli.engine.batches import BatchStream, EpochBatchSampler
from gan_cli.errors import ConfigError, DataError
from gan_cli.prepare import prepare
from tests.test_prepare import cfg

R = 16
CLOSE = dict(atol=1e-5, rtol=0)  # float rounding of the same uint8 pixels


def write_png(path, shape, seed) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def paired_src(tmp_path):
    """A/ and B/ with 6 training pairs (B/train/2.png truncated: its pair is skipped whole) and 2 test pairs."""
    src = tmp_path / "pairs"
    for split, n in (("train", 6), ("test", 2)):
        for i in range(n):
            write_png(src / "A" / split / f"{i}.png", (20, 24, 3), 2 * i + (split == "test") * 100)
            write_png(src / "B" / split / f"{i}.png", (20, 24, 3), 2 * i + 1 + (split == "test") * 100)
    bad = src / "B" / "train" / "2.png"
    bad.write_bytes(bad.read_bytes()[:60])
    return src


@pytest.fixture
def unpaired_src(tmp_path):
    """trainA (5) and trainB (7) of other sizes, testA (3), testB (2)."""
    src = tmp_path / "unpaired"
    for k, (folder, n, shape) in enumerate((("trainA", 5, (18, 18)), ("trainB", 7, (20, 16, 3)),
                                            ("testA", 3, (18, 18)), ("testB", 2, (20, 16, 3)))):
        for i in range(n):
            write_png(src / folder / f"{i}.png", shape, 10 * k + i)
    return src


def translation(source, out, kind, **kw):
    return cfg(source, out, kind=kind, resolution=R, **kw)


# ---------------------------------------------------------------------------- gan prepare


def test_prepare_paired_skips_a_pair_whole_and_is_deterministic(paired_src, tmp_path):
    m1 = prepare(translation(paired_src, tmp_path / "p1", "paired"))
    m2 = prepare(translation(paired_src, tmp_path / "p2", "paired", workers=2))
    assert m1["kind"] == "paired" and m1["format_version"] == 2 and m1["count"] == 5
    assert m1["shape"] == m1["input_shape"] == [3, R, R] and m1["splits"] == {"train": "train", "test": "test"}
    assert {p: v["count"] for p, v in m1["parts"].items()} == {"train_a": 5, "train_b": 5, "test_a": 2, "test_b": 2}
    [skip] = m1["skipped"]
    assert skip["file"] == "B/train/2.png" and skip["pair"] == ["A/train/2.png", "B/train/2.png"]
    assert "not a readable image" in skip["reason"] and m1["skipped_count"] == 1
    assert m1["fingerprint"] == m2["fingerprint"]
    for name in ("train_a.u8", "train_b.u8", "test_a.u8", "test_b.u8", "train_a.i64"):
        assert (tmp_path / "p1" / name).read_bytes() == (tmp_path / "p2" / name).read_bytes()
    assert json.loads((tmp_path / "p1" / "manifest.json").read_text())["fingerprint"] == m1["fingerprint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p1", "p2", "pairs"]  # no temp folder left
    swapped = prepare(translation(paired_src, tmp_path / "p3", "paired", direction="BtoA"))
    assert swapped["fingerprint"] != m1["fingerprint"]
    assert (tmp_path / "p3" / "train_a.u8").read_bytes() == (tmp_path / "p1" / "train_b.u8").read_bytes()


def test_prepare_unpaired_keeps_each_domains_own_counts_and_channels(unpaired_src, tmp_path):
    (unpaired_src / "trainB" / "9.png").write_bytes(b"")  # skipped in B alone
    m = prepare(translation(unpaired_src, tmp_path / "u", "unpaired", channels=1, channels_b=3))
    assert m["kind"] == "unpaired" and m["count"] == 7 and m["input_shape"] == [1, R, R] and m["shape"] == [3, R, R]
    assert {p: v["count"] for p, v in m["parts"].items()} == {"train_a": 5, "train_b": 7, "test_a": 3, "test_b": 2}
    assert m["skipped"] == [{"file": "trainB/9.png", "reason": "an empty file", "split": "trainB"}]
    assert m["splits"] == {"A": {"train": "trainA", "test": "testA"}, "B": {"train": "trainB", "test": "testB"}}


# ---------------------------------------------------------------------------- dataset=prepared


def test_prepared_paired_gives_the_paired_folder_items(paired_src, tmp_path):
    prepare(translation(paired_src, tmp_path / "p", "paired"))
    data, ref = prepared(str(tmp_path / "p")), paired_folder(root=str(paired_src), resolution=R)
    assert (data.kind, data.shape, data.input_shape, data.num_classes) == ("paired", ref.shape, ref.input_shape, 0)
    assert data.in_memory and data.dataset.tensors[0].dtype == torch.uint8 and len(data) == 5
    assert data.fingerprint == json.loads((tmp_path / "p" / "manifest.json").read_text())["fingerprint"]
    for k, i in enumerate([0, 1, 3, 4, 5]):  # the folder reader's item 2 is its substitute, item 3
        (a, b, y), (ra, rb, ry) = data.dataset[k], ref.dataset[i]
        torch.testing.assert_close(a, ra, **CLOSE), torch.testing.assert_close(b, rb, **CLOSE)
        assert int(y) == ry == -1
    t, rt = data.test, ref.test
    torch.testing.assert_close(t.inputs, rt.inputs, **CLOSE), torch.testing.assert_close(t.targets, rt.targets, **CLOSE)
    assert t.domain_a is t.inputs and t.domain_b is t.targets and t.labels is None
    assert len(prepared(str(tmp_path / "p"), test_max=1).test.inputs) == 1


def test_side_by_side_pairs_swapped_and_grey_b_held_out_from_val(tmp_path):
    src = tmp_path / "sbs"
    for split, n in (("train", 4), ("val", 1)):
        for i in range(n):
            write_png(src / split / f"{i}.jpg", (20, 41, 3), 50 + i + 10 * (split == "val"))  # odd width
    (src / "train" / "9.jpg").write_text("not an image")
    options = dict(channels_b=1, direction="BtoA")
    m = prepare(translation(src, tmp_path / "p", "paired", **options))
    assert m["splits"] == {"train": "train", "test": "val"} and m["shape"] == [1, R, R] and m["count"] == 4
    assert [s["file"] for s in m["skipped"]] == ["train/9.jpg"] and "pair" not in m["skipped"][0]
    data, ref = prepared(str(tmp_path / "p")), paired_folder(root=str(src), resolution=R, **options)
    for i in range(4):
        for mine, theirs in zip(data.dataset[i][:2], ref.dataset[i][:2]):
            torch.testing.assert_close(mine, theirs, **CLOSE)
    torch.testing.assert_close(data.test.targets, ref.test.targets, **CLOSE)
    with pytest.raises(ConfigError, match="direction must be AtoB"):
        prepare(translation(src, tmp_path / "q", "paired", direction="AB"))
    with pytest.raises(ConfigError, match="channels_b=2 is not valid"):
        prepare(translation(src, tmp_path / "q", "paired", channels_b=2))


def test_prepared_unpaired_gives_the_unpaired_folder_items(unpaired_src, tmp_path):
    prepare(translation(unpaired_src, tmp_path / "u", "unpaired", channels=1))
    data = prepared(str(tmp_path / "u"))
    ref = unpaired_folder(root=str(unpaired_src), resolution=R, channels=1)
    assert (data.kind, data.shape, data.input_shape, len(data)) == ("unpaired", ref.shape, ref.input_shape, len(ref))
    for i in range(len(ref)):
        for mine, theirs in zip(data.dataset[i], ref.dataset[i]):
            torch.testing.assert_close(torch.as_tensor(mine), torch.as_tensor(theirs), **CLOSE)
    torch.testing.assert_close(data.test.inputs, ref.test.inputs, **CLOSE)
    torch.testing.assert_close(data.test.domain_b, ref.test.domain_b, **CLOSE)
    assert data.test.targets is None and data.test.domain_a is data.test.inputs


def test_decoding_gives_each_field_its_own_buffer_and_flips_a_pair_alike(paired_src, tmp_path):
    prepare(translation(paired_src, tmp_path / "p", "paired"))
    plain, flipped = prepared(str(tmp_path / "p")), prepared(str(tmp_path / "p"), xflip=True, seed=3)
    batches = EpochBatchSampler(5, 5, 1).index_batches()
    stream, flips = (BatchStream(d, 5, torch.device("cpu"), seed=1, num_workers=0) for d in (plain, flipped))
    seen = set()
    for _ in range(4):
        idx, (a, b, y), (fa, fb, _) = next(batches), stream.next(), flips.next()
        assert a.dtype == b.dtype == torch.float32 and y.dtype == torch.int64
        expected = [torch.stack([plain.dataset[int(i)][k] for i in idx]) for k in (0, 1)]
        torch.testing.assert_close(a, expected[0], **CLOSE), torch.testing.assert_close(b, expected[1], **CLOSE)
        for row in range(5):
            flip_a, flip_b = (bool(torch.equal(f[row], x[row].flip(-1))) for f, x in ((fa, a), (fb, b)))
            assert flip_a == flip_b and (flip_a or torch.equal(fa[row], a[row])), row
            seen.add(flip_a)
    assert seen == {True, False}


def test_unpaired_domains_flip_apart(unpaired_src, tmp_path):
    prepare(translation(unpaired_src, tmp_path / "u", "unpaired"))
    plain, flipped = prepared(str(tmp_path / "u")), prepared(str(tmp_path / "u"), xflip=True, seed=3)
    stream, flips = (BatchStream(d, 7, torch.device("cpu"), seed=1, num_workers=0) for d in (plain, flipped))
    a, b, *_ = stream.next()
    fa, fb, *_ = flips.next()
    rows_a, rows_b = ([bool(torch.equal(f[r], x[r].flip(-1))) for r in range(7)] for f, x in ((fa, a), (fb, b)))
    assert rows_a != rows_b


def test_translation_data_over_the_memory_limit_is_one_clear_error(paired_src, tmp_path):
    prepare(translation(paired_src, tmp_path / "p", "paired"))
    with pytest.raises(DataError, match=r"kept in memory.*trainer\.data_in_memory_gb=1.*dataset=paired_folder"):
        prepared(str(tmp_path / "p"), in_memory_gb=1e-6)


# ---------------------------------------------------------------------------- bad input


def test_bad_translation_sources_are_one_clear_error(paired_src, tmp_path):
    flat = tmp_path / "flat"
    write_png(flat / "x.png", (8, 8, 3), 0)
    with pytest.raises(DataError, match=r"gan prepare kind=paired: no training split .*flat/train/ \(split='train' "
                                        r"under source=.*accepts two layouts.*root/A/train/ and root/B/train/"):
        prepare(translation(flat, tmp_path / "o", "paired"))
    with pytest.raises(DataError, match=r"gan prepare kind=unpaired: no images in .*trainA .*expects root/trainA/"):
        prepare(translation(flat, tmp_path / "o", "unpaired"))
    for f in (paired_src / "A" / "train").glob("*.png"):
        f.write_bytes(b"")
    with pytest.raises(DataError, match=r"none of the 6 training pairs under .*pairs/A/train and .*pairs/B/train "
                                        r"can be read \(6 an empty file; the first, A/train/0.png"):
        prepare(translation(paired_src, tmp_path / "o", "paired"))
    with pytest.raises(ConfigError, match="kind='pairs' is not valid"):
        prepare(translation(paired_src, tmp_path / "o", "pairs"))
    with pytest.raises(ConfigError, match="max_images=3 applies to kind=image only"):
        prepare(translation(paired_src, tmp_path / "o", "paired", max_images=3))
    with pytest.raises(DataError, match="kind=paired reads a folder"):
        prepare(translation(flat / "x.png", tmp_path / "o", "paired"))
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


# ---------------------------------------------------------------------------- training


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_pix2pix_and_cyclegan_train_and_resume_exactly_on_prepared_data(paired_src, unpaired_src, tmp_path, model):
    from gan_cli.engine.trainer import train
    from tests.conftest import compose_cfg
    from tests.test_resume import differences
    from tests.test_translation_train import CYCLEGAN, PIX2PIX

    source, kind, args = (paired_src, "paired", PIX2PIX) if model == "pix2pix" else (unpaired_src, "unpaired", CYCLEGAN)
    prepare(translation(source, tmp_path / "prep", kind))
    args = [*args, "dataset=prepared", f"dataset.path={tmp_path / 'prep'}", "dataset.xflip=true",
            "trainer.ckpt_every=2", "trainer.snapshot_every=2"]
    train(compose_cfg(*args), tmp_path / "full")
    train(compose_cfg(*args, f"trainer.resume={tmp_path / 'full/checkpoints/step_0000002.pt'}"), tmp_path / "resumed")
    full, res = (torch.load(tmp_path / f"{r}/checkpoints/last.pt", weights_only=True) for r in ("full", "resumed"))
    assert full["step"] == 4
    for part in ("networks", "optimizers", "rng", "game_state"):
        assert differences(full[part], res[part]) == [], part


def test_a_subset_of_prepared_translation_data_decodes_its_items_and_trains(paired_src, tmp_path):
    from gan_cli.data.selection import select
    from gan_cli.engine.trainer import train
    from tests.conftest import compose_cfg
    from tests.test_translation_train import PIX2PIX

    prepare(translation(paired_src, tmp_path / "p", "paired"))
    part = select(prepared(str(tmp_path / "p")), subset=3)
    a, b, _ = part.dataset[0]
    assert len(part) == 3 and a.dtype == b.dtype == torch.float32 and part.heldout is None
    result = train(compose_cfg(*PIX2PIX, "dataset=prepared", f"dataset.path={tmp_path / 'p'}", "dataset.subset=3",
                               "trainer.batch_size=2"), tmp_path / "run")
    assert result["step"] == 4
