"""rfr_pipeline.evaluation and scripts/evaluate.py: metrics with known answers, hole-area bins, an end-to-end run."""

import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from rfr_pipeline import RFRInpaintPipeline

pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
from rfr_pipeline import evaluation
from scripts import evaluate


def test_metrics_known_answers():
    truth = np.full((16, 16, 3), 100, np.uint8)
    hole = np.zeros((16, 16), bool)
    hole[:4] = True
    same = evaluation.image_metrics(truth, truth, hole)
    assert math.isinf(same["psnr"]) and same["ssim"] == pytest.approx(1.0) and same["l1_percent"] == 0
    off = truth.copy()
    off[hole] += 51  # 0.2 off on a quarter of the pixels: MSE = 0.04 / 4 = 0.01 → PSNR 20 dB
    m = evaluation.image_metrics(off, truth, hole)
    assert m["psnr"] == pytest.approx(20.0, abs=1e-6)
    assert m["l1_percent"] == pytest.approx(100 * 0.2 / 4) and m["hole_l1"] == pytest.approx(0.2)
    # an infinite PSNR (a perfect composite) is left out of the mean rather than making it infinite
    rows = [{"bin": "1-10%", "method": "x", **same}, {"bin": "1-10%", "method": "x", **m}]
    assert evaluation.summarise(rows)["1-10%|x"]["psnr"] == pytest.approx(20.0)


def test_hole_detail_is_the_fills_fine_texture_as_a_fraction_of_the_photos():
    checker = (np.indices((16, 16)).sum(0) % 2).astype(np.uint8)[..., None].repeat(3, axis=2)
    truth = 100 + 40 * checker  # neighbours differ by 40 everywhere
    hole = np.zeros((16, 16), bool)
    hole[4:12, 4:12] = True
    flat, half = truth.copy(), truth.copy()
    flat[hole] = 120
    half[hole] = 110 + 20 * checker[hole]
    stripes = truth.copy()
    stripes[hole] = (100 + 40 * (np.indices((16, 16))[1] % 2))[hole][:, None]  # only horizontal neighbours differ
    assert evaluation.image_metrics(truth, truth, hole)["hole_detail"] == pytest.approx(1.0)
    assert evaluation.image_metrics(flat, truth, hole)["hole_detail"] == 0
    assert evaluation.image_metrics(half, truth, hole)["hole_detail"] == pytest.approx(0.5)
    assert evaluation.image_metrics(stripes, truth, hole)["hole_detail"] == pytest.approx(0.5)
    # A flat truth has no texture to compare with: NaN, left out of the means (a no-hole image has none either).
    flat_truth = np.full_like(truth, 90)
    undefined = evaluation.image_metrics(truth, flat_truth, hole)
    no_hole = evaluation.image_metrics(truth, truth, np.zeros_like(hole))
    assert math.isnan(undefined["hole_detail"]) and math.isnan(no_hole["hole_detail"])
    rows = [{"bin": "1-10%", "method": "x", **undefined},
            {"bin": "1-10%", "method": "x", **evaluation.image_metrics(half, truth, hole)}]
    assert evaluation.summarise(rows)["1-10%|x"]["hole_detail"] == pytest.approx(0.5)


def test_nvidia_bins_from_file_numbers():
    assert [evaluation.nvidia_bin(Path(f"{n:05d}.png")) for n in (0, 1999, 2000, 5999, 11999)] == [0, 0, 1, 2, 5]
    assert evaluation.nvidia_bin(Path("mask_a.png")) is None
    assert evaluation.measured_bin(np.ones((10, 10)) * (np.arange(10) < 3)) == 2  # 30 % → the 20-30 % bin
    assert evaluation.BINS[evaluation.measured_bin(np.ones((10, 10)) * (np.arange(10) < 6))] == "50-60%"
    assert evaluation.BINS[evaluation.measured_bin(np.ones((10, 10)) * (np.arange(10) < 7))] == "60-100%"
    assert evaluation.BINS[evaluation.measured_bin(np.ones((10, 10)))] == "60-100%"  # not filed under 50-60 %


def test_the_verdict_names_every_bin_baseline_and_metric_the_model_loses():
    def row(psnr, ssim, l1):
        return {"psnr": psnr, "ssim": ssim, "l1_percent": l1}

    summary = {f"{b}|{m}": row(30, 0.9, 2) for b in evaluation.BINS for m in ("telea", "navier-stokes")}
    summary |= {f"{b}|rfr-net": row(31, 0.95, 1) for b in evaluation.BINS}
    methods = ["rfr-net", "telea", "navier-stokes"]
    assert evaluation.losses_to_baselines(summary, "rfr-net", ["telea", "navier-stokes"], evaluation.BINS[1:]) == []
    assert "beats telea and navier-stokes on PSNR, SSIM and L1 in every bin" in evaluation.verdict(summary, methods)
    summary["30-40%|rfr-net"] = row(31, 0.85, 2)  # worse SSIM, equal L1: both count as losses, to both baselines
    summary["1-10%|rfr-net"] = row(1, 0.1, 50)  # below 10 %: outside the acceptance range
    del summary["50-60%|navier-stokes"]
    lost = evaluation.losses_to_baselines(summary, "rfr-net", ["telea", "navier-stokes"], evaluation.BINS[1:])
    assert lost == ["30-40%: ssim 0.8500 vs telea 0.9000", "30-40%: l1_percent 2.0000 vs telea 2.0000",
                    "30-40%: ssim 0.8500 vs navier-stokes 0.9000", "30-40%: l1_percent 2.0000 vs navier-stokes 2.0000",
                    "50-60%: no navier-stokes results"]
    assert "does **not** beat" in evaluation.verdict(summary, methods)
    assert evaluation.verdict(summary, ["telea"]) == ""


def random_photos(root, count: int, shape: tuple[int, int], seed: int):
    """root/images with `count` noise photos i0.png …, an empty root/masks, and the rng, for more of the same."""
    images, masks, out = root / "images", root / "masks", root / "out"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(seed)
    for n in range(count):
        PIL.Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(images / f"i{n}.png")
    return images, masks, out, rng


def test_paired_margins_are_signed_so_that_positive_is_better_with_bootstrap_intervals():
    rng = np.random.default_rng(0)
    rows = []
    for n in range(40):
        base = {"psnr": 25 + rng.normal(), "ssim": 0.8 + 0.01 * rng.normal(), "l1_percent": 3 + rng.normal(),
                "lpips": 0.2 + 0.01 * rng.normal()}
        # rfr-net: +1 dB and -0.5 L1 points on every pair (clearly better), SSIM and LPIPS just noise around equal
        ours = {"psnr": base["psnr"] + 1 + 0.1 * rng.normal(), "ssim": base["ssim"] + 0.001 * rng.normal(),
                "l1_percent": base["l1_percent"] - 0.5, "lpips": base["lpips"] + 0.001 * rng.normal()}
        for method, values in (("telea", base), ("rfr-net", ours)):
            rows.append({"bin": "10-20%", "image": f"{n}.png", "mask": "m.png", "method": method, **values})
    rows.append({"bin": "10-20%", "image": "perfect.png", "mask": "m.png", "method": "rfr-net", "psnr": math.inf,
                 "ssim": 1.0, "l1_percent": 0.0, "lpips": 0.0})  # unpaired: left out
    margins = evaluation.paired_margins(rows, "rfr-net", ["telea"], ["10-20%", "20-30%"])
    psnr, l1 = margins["10-20%|telea|psnr"], margins["10-20%|telea|l1_percent"]
    assert psnr["pairs"] == 40 and 0.9 < psnr["low"] < psnr["mean"] < psnr["high"] < 1.1
    assert l1["mean"] == pytest.approx(0.5) and l1["low"] == l1["high"] == pytest.approx(0.5)  # lower L1 is better
    ssim = margins["10-20%|telea|ssim"]
    assert ssim["low"] < 0 < ssim["high"]  # no real difference: the interval straddles zero
    assert "20-30%|telea|psnr" not in margins  # no pairs in that bin
    table = evaluation.margins_table(margins, "rfr-net", ["telea"], ["10-20%", "20-30%"])
    assert "| 10-20% | telea | +1.0" in table and "| 40 |" in table
    assert "not wholly above zero: 10-20% ssim over telea, 10-20% lpips over telea." in table


def test_the_patchmatch_baseline_copies_the_photos_own_pattern_into_the_hole():
    # Stripes 4 px wide: an exemplar method continues them by copying; diffusion (Telea, Navier–Stokes) smears them.
    stripes = np.where((np.arange(64) // 4) % 2 == 0, 200, 40).astype(np.uint8)
    photo = np.stack([np.tile(stripes, (64, 1)), np.tile(stripes[::-1], (64, 1)), np.full((64, 64), 90, np.uint8)], -1)
    hole = np.zeros((64, 64), bool)
    hole[20:44, 22:42] = True
    error = {}
    for name in evaluation.BASELINES:
        out = evaluation.run_baseline(name, photo, hole)
        assert out.shape == photo.shape and out.dtype == np.uint8 and np.array_equal(out[~hole], photo[~hole])
        assert np.array_equal(out, evaluation.run_baseline(name, photo, hole))  # seeded: the same fill every time
        error[name] = np.abs(out.astype(int) - photo)[hole].mean()
    assert error["patchmatch"] < 3 < 30 < min(error["telea"], error["navier-stokes"]), error


def test_a_baseline_whose_package_is_missing_is_refused_with_the_package_to_install(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "patchmatch" else real(name, *a))
    with pytest.raises(SystemExit) as refused:
        evaluate.main(["--images", str(tmp_path), "--masks", str(tmp_path), "--output", str(tmp_path / "out")])
    assert refused.value.code == 2
    assert "the baseline patchmatch needs pypatchmatch: pip install pypatchmatch" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    from scripts import evaluate_objects

    with pytest.raises(SystemExit) as refused:
        evaluate_objects.main(["--images", str(tmp_path), "--baselines", "telea,patchmatch",
                               "--output", str(tmp_path / "objects.json")])
    assert refused.value.code == 2 and "needs pypatchmatch" in capsys.readouterr().err
    assert not (tmp_path / "objects.json").exists()
    with pytest.raises(SystemExit):  # one check for every script's --baselines
        evaluate.main(["--images", str(tmp_path), "--masks", str(tmp_path), "--output", str(tmp_path / "out"),
                       "--baselines", "telea,photoshop"])
    assert "--baselines takes some of telea, navier-stokes, patchmatch (or ''), got 'telea,photoshop'" in \
        capsys.readouterr().err


def test_end_to_end_with_a_tiny_model_and_telea(make_model, tmp_path, capsys):
    images, masks, out, rng = random_photos(tmp_path, 3, (40, 50), seed=0)
    (images / "broken.png").write_bytes(b"not a png")
    for number, fraction in ((10, 0.05), (2010, 0.15), (10010, 0.55)):  # bins 0, 1 and 5
        mask = np.zeros((64, 64), np.uint8)
        mask[: int(64 * fraction)] = 255
        PIL.Image.fromarray(mask).save(masks / f"{number:05d}.png")
    model_dir = tmp_path / "model"
    RFRInpaintPipeline(rfrnet=make_model(sample_size=32)).save_pretrained(model_dir)
    code = evaluate.main(["--model", str(model_dir), "--images", str(images), "--masks", str(masks),
                          "--output", str(out), "--resolution", "32", "--baselines", "telea"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["methods"] == ["rfr-net", "telea"] and report["strategy"] == "auto"  # the model's own default
    assert report["flip_average"] is False  # likewise
    assert len(report["skipped"]) == 3  # the broken image, once per bin
    assert {"1-10%|rfr-net", "10-20%|telea", "50-60%|rfr-net", "all|telea"} <= set(report["summary"])
    assert report["summary"]["all|rfr-net"]["count"] == 9
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("image,mask,bin") and len(csv_lines) == 1 + 18
    table = (out / "metrics.md").read_text()
    assert "| 50-60% | telea |" in table
    assert "rfr-net does **not** beat telea everywhere from 10 % to 60 %" in table  # a random tiny model
    assert (out / "grid-1-10pct.png").is_file()
    assert "| hole detail (1 = photo's) |" in table
    assert "rfr-net's margin over each baseline, paired by photo and mask" in table
    assert report["margins"]["10-20%|telea|psnr"]["pairs"] == 3

    # Photos at their own size (each mask resized to its photo), two masks per bin each.
    PIL.Image.fromarray(rng.integers(0, 256, (36, 60, 3), dtype=np.uint8)).save(images / "wide.png")
    code = evaluate.main(["--model", str(model_dir), "--images", str(images), "--masks", str(masks),
                          "--output", str(tmp_path / "native"), "--resolution", "0", "--masks_per_image", "2",
                          "--baselines", "telea", "--no-restore_detail"])
    report = json.loads((tmp_path / "native" / "metrics.json").read_text())
    assert code == 0 and report["restore_detail"] is False and report["summary"]["all|rfr-net"]["count"] == 4 * 3 * 2
    assert not list((tmp_path / "native").glob("grid-*"))
    for option, value, message in (("--resolution", "-1", "--resolution must be a size in pixels, or 0"),
                                   ("--masks_per_image", "0", "--masks_per_image must be 1 or more, got 0")):
        with pytest.raises(SystemExit) as refused:
            evaluate.main(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "bad"),
                           "--baselines", "telea", option, value])
        assert refused.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_lpips_column_when_weights_are_given(tmp_path, capsys):
    from safetensors.torch import save_file

    from rfr_pipeline.lpips import LPIPS

    torch.manual_seed(0)
    lpips = LPIPS()  # random weights under the prepared file's names; heads non-negative, as LPIPS's are
    for head in lpips.heads:
        head.weight.abs_()
    weights = {(f"lpips.lin{k.split('.')[1]}.weight" if k.startswith("heads.") else k): v
               for k, v in lpips.state_dict().items()}
    save_file(weights, tmp_path / "lpips.safetensors")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / "i.png")
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:25] = 255
    PIL.Image.fromarray(mask).save(masks / "m.png")
    common = ["--images", str(images), "--masks", str(masks), "--resolution", "32", "--baselines", "telea"]
    assert evaluate.main([*common, "--output", str(tmp_path / "out"), "--lpips", str(tmp_path / "lpips.safetensors")]) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["per_image"][0]["lpips"] > 0 and report["summary"]["all|telea"]["lpips"] > 0
    assert "LPIPS ↓" in (tmp_path / "out" / "metrics.md").read_text()
    save_file({"features.0.weight": torch.zeros(1)}, tmp_path / "vgg_only.safetensors")
    with pytest.raises(SystemExit):
        evaluate.main([*common, "--output", str(tmp_path / "out2"), "--lpips", str(tmp_path / "vgg_only.safetensors")])
    assert "lacks the LPIPS weights" in capsys.readouterr().err


def test_an_interrupted_evaluation_continues_where_it_stopped_and_grids_can_be_off(tmp_path, monkeypatch, capsys):
    images, masks, out, _ = random_photos(tmp_path, 4, (40, 40), seed=1)
    mask = np.zeros((64, 64), np.uint8)
    mask[:10] = 255
    PIL.Image.fromarray(mask).save(masks / "00010.png")
    args = ["--images", str(images), "--masks", str(masks), "--output", str(out), "--resolution", "32",
            "--baselines", "telea", "--grid_examples", "0"]
    measured = []
    real = evaluate.run_baseline

    def counting(name, photo, hole):
        measured.append(name)
        if len(measured) == 3:
            raise KeyboardInterrupt  # killed while the third pair is in flight
        return real(name, photo, hole)

    monkeypatch.setattr(evaluate, "run_baseline", counting)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(args)
    lines = (out / evaluate.PROGRESS).read_text().splitlines()
    assert len(lines) == 1 + 2  # the settings, then the two finished pairs' rows: on disk before the crash
    with open(out / evaluate.PROGRESS, "a") as f:
        f.write('{"image": "i2.png", "ma')  # and a line half written when it died
    measured.clear()
    monkeypatch.setattr(evaluate, "run_baseline", lambda *a: (measured.append(a[0]), real(*a))[1])
    assert evaluate.main(args) == 0
    assert len(measured) == 2  # only the two pairs not yet measured
    assert "continuing: 2 image/mask pairs already evaluated" in capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    assert report["summary"]["all|telea"]["count"] == 4
    assert sorted(row["image"] for row in report["per_image"]) == [f"i{n}.png" for n in range(4)]
    assert not list(out.glob("grid-*"))  # --grid_examples 0: no grids, and no crash
    with pytest.raises(SystemExit) as refused:  # the same folder, another evaluation: refused, not mixed
        evaluate.main([*args[:-2], "--grid_examples", "1", "--seed", "3"])
    assert refused.value.code == 2 and "holds results of another evaluation" in capsys.readouterr().err
    (out / evaluate.PROGRESS).write_text("")  # killed before even its settings line was written: a fresh start
    assert evaluate.main(args) == 0 and "continuing" not in capsys.readouterr().out
    (out / evaluate.PROGRESS).write_text("rows of something else\n")
    with pytest.raises(SystemExit) as refused:
        evaluate.main(args)
    assert refused.value.code == 2 and "is not an evaluation's progress file" in capsys.readouterr().err


def test_chosen_bins_are_the_pairs_a_run_of_every_bin_makes_and_the_run_continues_into_one(tmp_path, capsys):
    images, masks, out, rng = random_photos(tmp_path, 3, (40, 40), seed=2)
    for number in (5, 2100, 2200, 4100, 4300, 4400, 10050, 11000):  # bins 1-10%, 10-20% (2), 20-30% (3), 50-60% (2)
        PIL.Image.fromarray((rng.random((64, 64)) < 0.3).astype(np.uint8) * 255).save(masks / f"{number:05d}.png")
    common = ["--images", str(images), "--masks", str(masks), "--resolution", "32", "--baselines", "telea",
              "--grid_examples", "0"]

    def rows(folder):
        return {(r["image"], r["mask"], r["bin"]): r["psnr"]
                for r in json.loads((folder / "metrics.json").read_text())["per_image"]}

    assert evaluate.main([*common, "--output", str(tmp_path / "all")]) == 0
    every_bin = rows(tmp_path / "all")
    assert evaluate.main([*common, "--output", str(out), "--bins", "10-20%", "50-60%"]) == 0
    chosen = rows(out)
    assert {key[2] for key in chosen} == {"10-20%", "50-60%"} and len(chosen) == 3 * 2
    assert chosen == {key: value for key, value in every_bin.items() if key[2] in ("10-20%", "50-60%")}
    capsys.readouterr()
    assert evaluate.main([*common, "--output", str(out)]) == 0  # the same folder without --bins: the rest added
    assert "continuing: 6 image/mask pairs already evaluated" in capsys.readouterr().out
    assert rows(out) == every_bin
    PIL.Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / "stroke.png")  # not numbered: binned after filling
    with pytest.raises(SystemExit) as refused:
        evaluate.main([*common, "--output", str(tmp_path / "other"), "--bins", "50-60%"])
    assert refused.value.code == 2 and "--bins needs NVIDIA irregular masks" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()  # refused before anything was written


def test_the_methods_of_a_pair_are_measured_together_as_each_alone(tmp_path):
    # scripts/evaluate.py measures every method's composite of a photo in one batch (SSIM in float32, LPIPS with the
    # truth's features once): the numbers are each composite's own.
    from safetensors.torch import save_file

    from rfr_pipeline.lpips import LPIPS, TAP_CHANNELS

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    hole = np.zeros((48, 64), bool)
    hole[10:30, 20:50] = True
    comps = [np.where(hole[..., None], rng.integers(0, 256, truth.shape, dtype=np.uint8), truth) for _ in range(3)]
    torch.manual_seed(0)
    model = LPIPS()
    weights = {f"features.{n}.{p}": getattr(m, p).detach().normal_(0, 0.05) for n, m in enumerate(model.features)
               if isinstance(m, torch.nn.Conv2d) for p in ("weight", "bias")}
    weights |= {f"lpips.lin{k}.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(TAP_CHANNELS)}
    save_file(weights, tmp_path / "lpips.safetensors")
    lpips = LPIPS.from_file(tmp_path / "lpips.safetensors")
    together = evaluation.methods_metrics(comps, truth, hole, lpips)
    for comp, measured in zip(comps, together):
        alone = evaluation.image_metrics(comp, truth, hole, lpips)
        assert measured.keys() == alone.keys() == set(evaluation.METRICS)
        for name in alone:
            assert measured[name] == pytest.approx(alone[name], rel=1e-6, abs=1e-7), name
    assert len({round(m["lpips"], 6) for m in together}) == 3  # three different composites, three distances


def test_a_dataset_split_is_evaluated_as_its_folder_would_be(tmp_path, capsys):
    """--dataset_name (parquet files as the Hub stores them, read offline; and streamed) measures the same photos
    with the same masks as --images on a folder of them: the same numbers, rows named by split and row."""
    datasets = pytest.importorskip("datasets")
    images, masks, out, _ = random_photos(tmp_path, 4, (40, 50), seed=5)
    for number, fraction in ((10, 0.05), (4010, 0.25)):
        mask = np.zeros((64, 64), np.uint8)
        mask[: int(64 * fraction)] = 255
        PIL.Image.fromarray(mask).save(masks / f"{number:05d}.png")
    photos = sorted(images.glob("*.png"))  # in the order the folder is read
    (tmp_path / "dataset" / "data").mkdir(parents=True)
    table = datasets.Dataset.from_dict({"image": [str(p) for p in photos]}).cast_column("image", datasets.Image())
    table.to_parquet(str(tmp_path / "dataset" / "data" / "test-00000-of-00001.parquet"))
    common = ["--masks", str(masks), "--resolution", "32", "--baselines", "telea,navier-stokes"]
    assert evaluate.main([*common, "--images", str(images), "--output", str(tmp_path / "folder")]) == 0
    for name, extra in (("table", []), ("stream", ["--streaming", "--limit", "4"])):
        assert evaluate.main([*common, "--dataset_name", str(tmp_path / "dataset"), "--cache_dir",
                              str(tmp_path / "cache"), "--output", str(tmp_path / name), *extra]) == 0
        folder = json.loads((tmp_path / "folder" / "metrics.json").read_text())["summary"]
        dataset = json.loads((tmp_path / name / "metrics.json").read_text())["summary"]
        assert dataset == folder, name
        rows = (tmp_path / name / "metrics.csv").read_text().splitlines()[1:]
        assert {row.split(",")[0] for row in rows} == {f"test-{n:06d}" for n in range(4)}
    with pytest.raises(SystemExit):
        evaluate.main([*common, "--images", str(images), "--dataset_name", "x", "--output", str(tmp_path / "bad")])
    assert "one of them" in capsys.readouterr().err


def test_object_removal_is_measured_against_the_photo(make_model, tmp_path):
    """scripts/evaluate_objects.py: objects placed on photos that never had them; a perfect fill would score
    infinite PSNR and no colour bias, so the numbers are the fill's."""
    from scripts import evaluate_objects

    images, _, _, _ = random_photos(tmp_path, 2, (48, 64), seed=7)
    model_dir = tmp_path / "model"
    RFRInpaintPipeline(rfrnet=make_model(sample_size=32)).save_pretrained(model_dir, ship_code=False)
    for extra in (["--examples", str(tmp_path / "examples")], ["--no_object_anchoring"]):
        out = tmp_path / f"objects{len(extra)}.json"
        assert evaluate_objects.main(["--model", str(model_dir), "--images", str(images), "--upscale", "3",
                                      "--objects", "person,disk", "--fraction", "0.1", "--output", str(out),
                                      *extra]) == 0
        report = json.loads(out.read_text())
        assert set(report["summary"]) == {"person", "disk", "all"} and len(report["rows"]) == 2 * 2 * 2
        for values in report["summary"]["all"].values():
            assert 0 < values["psnr"] < 60 and values["colour_bias"] > 0 and 0 < values["hole_l1"] < 1
    strips = sorted((tmp_path / "examples").iterdir())
    assert [p.name for p in strips] == ["i0_disk.jpg", "i0_person.jpg", "i1_disk.jpg", "i1_person.jpg"]
    with PIL.Image.open(strips[0]) as strip:  # outlined photo, rfr-net, telea, truth
        assert strip.format == "JPEG" and strip.height == 320 and strip.width % 4 == 0
    holes = [evaluate_objects.placed_object("person", 300, 200, 0.1, np.random.default_rng(n)) for n in range(3)]
    assert all(abs(h.mean() - 0.1) < 0.02 for h in holes) and not np.array_equal(holes[0], holes[1])
    from rfr_pipeline import pipeline_rfr_inpaint

    assert pipeline_rfr_inpaint.ANCHORED_SCALE == 2.0  # (restored after the comparison run)


def test_checkerboard_is_the_holes_chequered_energy_as_a_fraction_of_the_photos():
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:32, 0:32]
    truth = np.clip(80 + 2 * x[..., None] + rng.integers(-6, 7, (32, 32, 3)), 0, 255).astype(np.uint8)
    hole = np.zeros((32, 32), bool)
    hole[8:24, 8:24] = True
    chequered, flat = truth.copy(), truth.copy()
    chequered[hole] = np.clip(truth[hole].astype(int) + np.where(((x + y) % 2)[hole, None] == 1, 20, -20), 0, 255)
    flat[hole] = 110
    blocky = truth.copy()  # squares 8 px wide, as a network's 8-fold downsampled features can draw
    blocky[hole] = np.clip(truth[hole].astype(int) + np.where(((x // 8 + y // 8) % 2)[hole, None] == 1, 12, -12), 0, 255)
    measure = lambda comp: evaluation.image_metrics(comp, truth, hole)["checkerboard"]  # noqa: E731
    assert measure(truth) == pytest.approx(1.0) and measure(chequered) > 3
    assert measure(flat) == pytest.approx(0, abs=1e-9)
    assert measure(blocky) > 3
    assert math.isnan(evaluation.image_metrics(truth, np.full_like(truth, 90), hole)["checkerboard"])


@pytest.mark.parametrize("option, value, message", [
    ("--objects", "person,boat", "--objects takes some of"), ("--fraction", "1.5", "--fraction is a share"),
    ("--upscale", "0", "--upscale must be 1 or more"), ("--baselines", "photoshop", "--baselines takes some of")])
def test_object_removal_refuses_bad_options_saying_what_it_takes(option, value, message, tmp_path, capsys):
    from scripts import evaluate_objects

    with pytest.raises(SystemExit):
        evaluate_objects.main(["--images", str(tmp_path), "--output", str(tmp_path / "o.json"), option, value])
    assert message in capsys.readouterr().err and not (tmp_path / "o.json").exists()
