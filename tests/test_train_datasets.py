"""scripts/train.py on 🤗 Datasets (issue 35, part 2): a parquet dataset and an image folder the tests build, offline;
tables and streams, resumed mid-epoch exactly; two processes streaming disjoint shards that cover the data."""

import re
from collections import defaultdict

import numpy as np
import PIL.Image
import pytest
import torch

from tests.test_train import TRAIN, Refused, launch_two_processes, train_here, weights  # noqa: F401 (fixture)

datasets = pytest.importorskip("datasets")

PHOTOS = 14  # 2 held out for validation: 12 train, 6 steps an epoch at batch 2 in one process


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataset-photos")
    rng = np.random.default_rng(1)
    paths = []
    for n in range(PHOTOS):
        h, w = rng.integers(40, 64, 2)
        y, x = np.mgrid[0:h, 0:w]
        array = np.clip(rng.uniform(0, 255, 3) + 60 * np.sin(np.stack([x, y, x + y], -1) / rng.uniform(3, 9)), 0, 255)
        path = folder / f"photo{n:02d}.png"
        PIL.Image.fromarray(array.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def parquet_dataset(photo_files, tmp_path_factory):
    """A dataset as the Hub stores one: parquet files (four shards: two per process) with an image column "photo"."""
    root = tmp_path_factory.mktemp("parquet-dataset")
    (root / "data").mkdir()
    table = datasets.Dataset.from_dict({"label": list(range(PHOTOS)), "photo": [str(p) for p in photo_files]})
    table = table.cast_column("photo", datasets.Image())
    for shard in range(4):
        table.shard(4, shard).to_parquet(str(root / "data" / f"train-0000{shard}-of-00004.parquet"))
    return root


def args_for(dataset, output_dir, *extra):
    return [TRAIN, "--dataset_name", str(dataset), "--output_dir", str(output_dir), "--model_config", "tiny",
            "--resolution", "32", "--train_batch_size", "2", "--num_validation_images", "2", "--allow_random_vgg",
            "--report_to", "none", "--logging_steps", "1", "--validation_steps", "1000", "--checkpointing_steps",
            "2", "--seed", "5", "--cache_dir", str(output_dir.parent / "datasets-cache"), *extra]


def assert_same_weights(a, b):
    for name, tensor in weights(a).items():
        torch.testing.assert_close(weights(b)[name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def test_a_parquet_dataset_trains_and_resumes_mid_epoch_exactly(parquet_dataset, tmp_path, train_here):
    train_here(args_for(parquet_dataset, tmp_path / "straight", "--max_train_steps", "5"))
    train_here(args_for(parquet_dataset, tmp_path / "resumed", "--max_train_steps", "3"))
    train_here(args_for(parquet_dataset, tmp_path / "resumed", "--max_train_steps", "5",
                        "--resume_from_checkpoint", "latest"))
    assert_same_weights(tmp_path / "straight" / "pipeline", tmp_path / "resumed" / "pipeline")
    card = (tmp_path / "straight" / "pipeline" / "README.md").read_text()
    assert f"the 🤗 dataset {parquet_dataset} (split train)" in card


def test_an_image_folder_streams_and_resumes_mid_epoch_exactly(photo_files, tmp_path, train_here):
    """Streamed, across an epoch's end (6 steps an epoch): 8 steps straight equal 3, then resumed to 8."""
    folder = photo_files[0].parent
    train_here(args_for(folder, tmp_path / "straight", "--streaming", "--max_train_steps", "8"))
    train_here(args_for(folder, tmp_path / "resumed", "--streaming", "--max_train_steps", "3"))
    train_here(args_for(folder, tmp_path / "resumed", "--streaming", "--max_train_steps", "8",
                        "--resume_from_checkpoint", "latest"))
    assert_same_weights(tmp_path / "straight" / "pipeline", tmp_path / "resumed" / "pipeline")


def examples_read(log: str) -> dict[tuple[int, int], list[str]]:
    """{(epoch, process): the files read, in order} from --log_level debug."""
    read = defaultdict(list)
    for epoch, process, name in re.findall(r"epoch (\d+), process (\d+), example \d+: (\S+)", log):
        read[int(epoch), int(process)].append(name)
    return read


def test_two_processes_stream_their_own_shards_and_resume_exactly(parquet_dataset, tmp_path):
    """Two processes, two parquet files each: in an epoch no example is read twice, the two held out for validation
    (the stream's first) never, and together the processes read the other 12; a run stopped mid-epoch and resumed by
    a new launch ends with the same weights."""
    log = launch_two_processes(*args_for(parquet_dataset, tmp_path / "straight", "--streaming",
                                         "--max_train_steps", "4", "--log_level", "debug"))
    read = examples_read(log)
    first, second = read[0, 0], read[0, 1]
    assert not set(first) & set(second), "the processes' shards overlap"
    assert len(first) == len(set(first)) and len(second) == len(set(second))
    held_out = {"photo00.png", "photo01.png"}
    names = {name.rsplit("/", 1)[-1] for name in first + second}
    assert names == {f"photo{n:02d}.png" for n in range(PHOTOS)} - held_out
    launch_two_processes(*args_for(parquet_dataset, tmp_path / "resumed", "--streaming", "--max_train_steps", "2"))
    launch_two_processes(*args_for(parquet_dataset, tmp_path / "resumed", "--streaming", "--max_train_steps", "4",
                                   "--resume_from_checkpoint", "latest"))
    assert_same_weights(tmp_path / "straight" / "pipeline", tmp_path / "resumed" / "pipeline")


@pytest.mark.parametrize("extra, message", [
    (["--image_column", "label"], "holds"),
    (["--image_column", "picture"], "no image column picture"),
    (["--dataset_config_name", "nonexistent"], "cannot load the dataset"),
])
def test_dataset_mistakes_are_one_line(parquet_dataset, tmp_path, train_here, extra, message):
    with pytest.raises(Refused) as refused:
        train_here(args_for(parquet_dataset, tmp_path / "out", "--max_train_steps", "1", *extra))
    assert refused.value.code == 2 and message in str(refused.value)


def test_a_missing_dataset_is_one_line(tmp_path, train_here):
    with pytest.raises(Refused) as refused:
        train_here(args_for(tmp_path / "no-such-dataset", tmp_path / "out", "--max_train_steps", "1"))
    assert refused.value.code == 2 and "cannot load the dataset" in str(refused.value)


@pytest.mark.parametrize("argv, message", [
    (["--output_dir", "o"], "--train_data_dir (folders) or --dataset_name"),
    (["--train_data_dir", "x", "--dataset_name", "y"], "one of them"),
    (["--train_data_dir", "x", "--streaming"], "--streaming reads a --dataset_name"),
    (["--dataset_name", "y", "--streaming", "--dataloader_num_workers", "2"], "--dataloader_num_workers at 0"),
])
def test_data_arguments_are_checked_first(argv, message, capsys):
    from scripts import train

    with pytest.raises(SystemExit):
        train.parse_args(argv)
    assert message in capsys.readouterr().err


def test_a_stream_skips_unreadable_images_and_says_which(photo_files, monkeypatch):
    """An unreadable image in a stream is passed over and counted in the next sample; a long run of them is an
    error that lists each one."""
    from rfr_pipeline.data import StreamingInpaintingDataset, UnreadableImagesError
    from rfr_pipeline.masks import MaskGenerator

    good = {"bytes": photo_files[0].read_bytes(), "path": "good.png"}
    bad = [{"bytes": b"not an image %d" % n, "path": f"bad{n}.png"} for n in range(3)]
    features = datasets.Features({"image": datasets.Image(decode=False)})
    stream = datasets.Dataset.from_dict({"image": [bad[0], bad[1], good]}, features=features).to_iterable_dataset()
    samples = list(StreamingInpaintingDataset(stream, "image", 32, MaskGenerator((0.1, 0.3)), seed=1))
    assert [(s["skipped"], s["row"]) for s in samples] == [(2, 2)]
    many = datasets.Dataset.from_dict({"image": bad}, features=features).to_iterable_dataset()
    monkeypatch.setattr("rfr_pipeline.data.MAX_UNREADABLE_IN_A_ROW", 3)
    with pytest.raises(UnreadableImagesError) as error:
        list(StreamingInpaintingDataset(many, "image", 32, MaskGenerator((0.1, 0.3)), seed=1))
    assert all(f"bad{n}.png" in str(error.value) for n in range(3))
