"""scripts/train.py for real: multi-process Accelerate, exact resume, a killed run, the fine-tune phase, bad data.

Tiny model, 32² crops of images the tests draw themselves, a random-weight VGG (--allow_random_vgg). Runs that need
their own processes (two processes, a killed run) are launched; the others run `train.main` in the test process."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import torch

from rfr_pipeline import RFRInpaintPipeline
from tests.conftest import REPO_ROOT

TRAIN = str(REPO_ROOT / "scripts" / "train.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for n in range(14):
        h, w = rng.integers(40, 64, 2)
        y, x = np.mgrid[0:h, 0:w]
        colour = rng.uniform(0, 255, 3)
        array = np.clip(colour + 60 * np.sin(np.stack([x, y, x + y], -1) / rng.uniform(3, 9)), 0, 255)
        sub = folder / ("a" if n % 2 else "b")  # nested folders are searched too
        sub.mkdir(exist_ok=True)
        PIL.Image.fromarray(array.astype(np.uint8)).save(sub / f"img{n}.{'png' if n % 3 else 'jpg'}")
    (folder / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return folder


def train_args(data_dir, output_dir, *extra):
    return [TRAIN, "--train_data_dir", str(data_dir), "--output_dir", str(output_dir), "--model_config", "tiny",
            "--resolution", "32", "--train_batch_size", "2", "--num_validation_images", "2",
            "--allow_random_vgg", "--report_to", "none", "--logging_steps", "1", "--validation_steps", "1000",
            "--checkpointing_steps", "2", "--seed", "3", *extra]


def env():
    return {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


class Refused(Exception):
    """scripts/train.py ended with an error status: `code`, and what it printed (`str()`)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@pytest.fixture
def train_here(monkeypatch, caplog, capsys):
    """train_here(args) runs scripts/train.py's main in this process (one CPU process, as `python train.py` would)
    and returns its log, or raises `Refused` with its exit status and message; Accelerate's process-wide state is
    reset after each run."""
    from accelerate.state import AcceleratorState

    from scripts import train

    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")

    def run_here(args, umask=None):
        caplog.clear()
        previous_umask = None if umask is None else os.umask(umask)
        try:
            capsys.readouterr()  # (what earlier runs printed)
            with caplog.at_level(logging.INFO):
                code = train.main(args[1:])  # args[0] is the script
            if code:
                err = capsys.readouterr().err
                assert "Traceback" not in err and "error: " in err, err
                if code == 2:  # a usage error: one line
                    [line] = [line for line in err.splitlines() if "error: " in line or line.startswith(" ")]
                raise Refused(code, err)
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)
            if previous_umask is not None:
                os.umask(previous_umask)
        return caplog.text

    return run_here


def weights(folder):
    return RFRInpaintPipeline.from_pretrained(folder).rfrnet.state_dict()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(*args) -> str:
    launch = [os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--multi_gpu",
              "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    # Its own process group: on a timeout the launcher and both workers are killed, not left holding the port.
    proc = subprocess.Popen([*launch, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(),
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail("two-process training did not finish in 600 s:\n" + log[-6000:])
    assert proc.returncode == 0, log[-6000:]
    return log


def test_two_processes_train_in_step_write_a_loadable_pipeline_and_resume_mid_epoch_exactly(data_dir, tmp_path):
    log = launch_two_processes(*train_args(data_dir, tmp_path / "out", "--max_train_steps", "4"))
    assert "Num processes: 2" in log
    assert "Process index: 0" in log and "Process index: 1" in log
    line = next(line for line in log.splitlines() if "final weight checksum of each process" in line)
    checksums = [float(v) for v in line.split("process: ")[1].strip("[] ").split(",")]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    pipe = RFRInpaintPipeline.from_pretrained(tmp_path / "out" / "pipeline")
    assert pipe.rfrnet.config.trunk_channels == 8 and pipe.rfrnet.config.sample_size == 32
    assert "skipping unreadable image" in log and "corrupt.jpg" in log
    assert (tmp_path / "out" / "pipeline" / "README.md").is_file()
    assert (tmp_path / "out" / "pipeline" / "rfr_inpaint.py").is_file()  # loads with diffusers alone too
    assert (tmp_path / "out" / "validation" / "step-4.png").is_file()

    # Stopped at step 2 of the 3-step first epoch (12 photos, 2 per process per step), then resumed by a new launch:
    # each process must see exactly the batches it would have seen, or the weights differ. (Accelerate logs
    # "Sampler state ... saved" but writes sampler.bin only for iterable datasets; the order here comes from the seed
    # and the epoch alone, so nothing more is needed.)
    launch_two_processes(*train_args(data_dir, tmp_path / "resumed", "--max_train_steps", "2"))
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()
    launch_two_processes(*train_args(data_dir, tmp_path / "resumed", "--max_train_steps", "4",
                                     "--resume_from_checkpoint", "latest"))
    straight, resumed = weights(tmp_path / "out" / "pipeline"), weights(tmp_path / "resumed" / "pipeline")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def test_resume_continues_exactly(data_dir, tmp_path, train_here):
    # 14 photos, 2 held out, batches of 2: 6 steps an epoch; resuming at step 4 continues mid-epoch
    train_here(train_args(data_dir, tmp_path / "straight", "--max_train_steps", "8"))
    train_here(train_args(data_dir, tmp_path / "resumed", "--max_train_steps", "4"))
    assert (tmp_path / "resumed" / "checkpoint-4").is_dir()
    train_here(train_args(data_dir, tmp_path / "resumed", "--max_train_steps", "8", "--resume_from_checkpoint", "latest"))
    straight, resumed = weights(tmp_path / "straight" / "pipeline"), weights(tmp_path / "resumed" / "pipeline")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def test_a_killed_run_resumes_from_its_last_checkpoint(data_dir, tmp_path, train_here):
    out = tmp_path / "killed"
    args = train_args(data_dir, out, "--max_train_steps", "400", "--checkpointing_steps", "1",
                      "--checkpoints_total_limit", "2", "--ema_decay", "0.5")  # the EMA is checkpointed too
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint-3").is_dir():
            assert proc.poll() is None and time.time() < deadline, "the run ended before writing checkpoint-3"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert done and done[-1] >= 3  # an interrupted save (".checkpoint-N.incomplete") never counts as a checkpoint
    log = train_here(train_args(data_dir, out, "--max_train_steps", str(done[-1] + 2), "--resume_from_checkpoint",
                                "latest", "--checkpoints_total_limit", "2", "--ema_decay", "0.5"))
    assert f"checkpoint-{done[-1]} at step {done[-1]}" in log
    assert (out / "pipeline" / "model_index.json").is_file()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{done[-1] + 1}", f"checkpoint-{done[-1] + 2}"]


def test_ctrl_c_says_where_to_pick_up_in_one_line(data_dir, tmp_path):
    out = tmp_path / "stopped"
    args = train_args(data_dir, out, "--max_train_steps", "400", "--checkpointing_steps", "1")
    # (As from a terminal: pytest-xdist's workers ignore SIGINT, and a child would inherit that.)
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint-2").is_dir():
            assert proc.poll() is None and time.time() < deadline, "the run ended before writing checkpoint-2"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    [line] = [line for line in err.splitlines() if "interrupted" in line]  # (beside the progress bar)
    said = line[line.index("interrupted"):]
    assert said.startswith(f"interrupted; the last checkpoint is {out}/checkpoint-"), said
    assert said.endswith("run the same command with --resume_from_checkpoint latest to continue"), said


def test_a_time_budget_stops_the_run_with_a_checkpoint_and_a_pipeline(data_dir, tmp_path, train_here):
    out = tmp_path / "timed"
    log = train_here(train_args(data_dir, out, "--max_train_steps", "1000000", "--max_train_seconds", "4",
                         "--checkpointing_steps", "1000000", "--logging_steps", "2"))
    stopped = int(log.split("stopping, --max_train_seconds 4 reached")[0].rsplit("step ", 1)[1].rstrip(": "))
    assert 2 <= stopped < 1000000 and stopped % 2 == 0  # checked every logging step
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{stopped}"]
    assert RFRInpaintPipeline.from_pretrained(out / "pipeline").rfrnet.config.sample_size == 32


def test_a_finished_run_is_never_mixed_with_a_new_one_and_its_files_are_ordinary(data_dir, tmp_path, train_here):
    out = tmp_path / "run"
    train_here(train_args(data_dir, out, "--max_train_steps", "2", "--save_pipeline_every", "2"), umask=0o022)
    for path in [out, *out.rglob("*")]:  # pipelines and checkpoints are staged in private temporary folders first
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path
    assert (out / "checkpoint-2").is_dir() and (out / "pipeline-2").is_dir()

    with pytest.raises(Refused) as refused:  # a message, not a traceback
        train_here(train_args(data_dir, out, "--max_train_steps", "1"))
    message = str(refused.value)
    assert refused.value.code == 2
    assert "holds a previous run (checkpoint-2, pipeline, pipeline-2, validation)" in message
    assert "--resume_from_checkpoint latest" in message and "--overwrite_output_dir" in message
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", "pipeline", "pipeline-2", "validation"]

    (out / "notes.txt").write_text("mine")  # not the run's: kept
    train_here(train_args(data_dir, out, "--max_train_steps", "1", "--overwrite_output_dir"))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert not (out / "pipeline-2").exists() and (out / "notes.txt").read_text() == "mine"


def test_a_folder_of_unreadable_images_says_what_was_found(tmp_path, train_here):
    bad = tmp_path / "bad"
    bad.mkdir()
    for n in range(4):
        (bad / f"photo{n}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg " + bytes([n]))
    with pytest.raises(Refused) as refused:  # a message, not a traceback
        train_here(train_args(bad, tmp_path / "out", "--max_train_steps", "1", "--num_validation_images", "0"))
    message = str(refused.value)
    assert refused.value.code == 1  # the data, not the command
    assert "none of the 4 images in the data set could be read; check the data folder" in message
    assert "photo0.jpg" in message and "100 unreadable" not in message


def test_finetune_keeps_batchnorm_statistics(data_dir, tmp_path, train_here):
    train_here([*train_args(data_dir, tmp_path / "phase1", "--max_train_steps", "2", "--mixed_precision", "bf16"),
         "--report_to", "tensorboard"])
    assert list((tmp_path / "phase1" / "logs").rglob("events.out.tfevents.*")), "no tensorboard log"
    start = weights(tmp_path / "phase1" / "pipeline")
    train_here(train_args(data_dir, tmp_path / "phase2", "--max_train_steps", "2", "--finetune", "--resolution", "48",
                          "--pretrained_model", str(tmp_path / "phase1" / "pipeline")))
    end = weights(tmp_path / "phase2" / "pipeline")
    # fine-tuned at 48²: the saved model says so (the pipeline serves at twice its training resolution)
    assert RFRInpaintPipeline.from_pretrained(tmp_path / "phase2" / "pipeline").rfrnet.config.sample_size == 48
    for name, tensor in start.items():
        if "running_" in name or "num_batches_tracked" in name:
            assert torch.equal(end[name], tensor), name
    assert not torch.equal(end["stem_conv1.weight"], start["stem_conv1.weight"])
    assert not torch.equal(end["stem_norm1.weight"], start["stem_norm1.weight"])  # affine parameters still train


def test_recalibrated_batchnorm_statistics_are_the_average_over_the_batches():
    from scripts import train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.3))
    model[1].running_mean.fill_(5.0)
    weight = model[0].weight.clone()
    model.eval()

    class Net(torch.nn.Module):  # train.py calls model(image * known, known)
        def __init__(self):
            super().__init__()
            self.body = model

        def forward(self, image, known):
            return self.body(image)

    batches = [{"image": torch.randn(3, 1, 8, 8) * (n + 1), "known": torch.ones(3, 1, 8, 8)} for n in range(3)]
    assert train.recalibrate_batchnorm(Net().eval(), iter(batches)) == 3
    with torch.no_grad():
        features = [model[0](b["image"]) for b in batches]
    means = torch.stack([f.mean((0, 2, 3)) for f in features])
    variances = torch.stack([f.transpose(0, 1).flatten(1).var(1) for f in features])  # unbiased, as BatchNorm keeps
    torch.testing.assert_close(model[1].running_mean, means.mean(0))
    torch.testing.assert_close(model[1].running_var, variances.mean(0))
    assert model[1].momentum == 0.3 and not model.training and torch.equal(model[0].weight, weight)


def test_finetune_phase_can_start_from_recalibrated_statistics(data_dir, tmp_path, train_here):
    train_here(train_args(data_dir, tmp_path / "phase1", "--max_train_steps", "2"))
    start = weights(tmp_path / "phase1" / "pipeline")
    log = train_here(train_args(data_dir, tmp_path / "phase2", "--max_train_steps", "2", "--finetune",
                         "--recalibrate_batchnorm", "3", "--pretrained_model", str(tmp_path / "phase1" / "pipeline")))
    assert "re-estimated the BatchNorm statistics over 3 batches" in log
    end = weights(tmp_path / "phase2" / "pipeline")
    assert not torch.equal(end["stem_norm1.running_mean"], start["stem_norm1.running_mean"])
    # Reset, 3 recalibration batches (the recurrent module's norms run once per iteration, 6 per forward), then
    # frozen through both training steps.
    assert {end[name].item() for name in end if name.endswith("num_batches_tracked")} == {3, 3 * 6}


def test_trainable_modules_train_alone_and_a_wrong_name_lists_the_real_ones(data_dir, tmp_path, train_here):
    train_here(train_args(data_dir, tmp_path / "phase1", "--max_train_steps", "1"))
    start = weights(tmp_path / "phase1" / "pipeline")
    log = train_here(train_args(data_dir, tmp_path / "tail", "--max_train_steps", "2", "--finetune",
                                "--pretrained_model", str(tmp_path / "phase1" / "pipeline"),
                                "--trainable_modules", "tail_conv", "out_conv"))
    assert "training tail_conv, out_conv only" in log
    end = weights(tmp_path / "tail" / "pipeline")
    for name, tensor in start.items():
        if name.startswith(("tail_conv.", "out_conv.")):
            assert not torch.equal(end[name], tensor), name
        else:
            assert torch.equal(end[name], tensor), name
    with pytest.raises(Refused, match="--trainable_modules: tail not in RFRNet; its modules are stem_conv1") as refused:
        train_here(train_args(data_dir, tmp_path / "wrong", "--max_train_steps", "1", "--trainable_modules", "tail"))
    assert refused.value.code == 2


def test_a_fine_tuned_pipeline_is_served_as_the_one_it_came_from(data_dir, tmp_path, train_here):
    """Fine-tuning a shipped pipeline keeps its serving defaults (the embedded scenes model: flip averaging on and a
    256-px working size): evaluated or served otherwise, a candidate is not compared like for like."""
    train_here(train_args(data_dir, tmp_path / "phase1", "--max_train_steps", "1"))
    start = RFRInpaintPipeline.from_pretrained(tmp_path / "phase1" / "pipeline")
    assert start.config.default_flip_average is False
    RFRInpaintPipeline(rfrnet=start.rfrnet, default_strategy="original", default_working_size=96,
                       default_flip_average=True).save_pretrained(tmp_path / "shipped", ship_code=False)
    log = train_here(train_args(data_dir, tmp_path / "tuned", "--max_train_steps", "1", "--finetune",
                                "--pretrained_model", str(tmp_path / "shipped")))
    assert "keep the serving defaults" in log and "flip_average True" in log
    tuned = RFRInpaintPipeline.from_pretrained(tmp_path / "tuned" / "pipeline").config
    assert (tuned.default_strategy, tuned.default_working_size, tuned.default_flip_average) == ("original", 96, True)


def test_refuses_random_vgg_unless_asked(data_dir, tmp_path, train_here, monkeypatch):
    args = [a for a in train_args(data_dir, tmp_path / "x", "--max_train_steps", "1") if a != "--allow_random_vgg"]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # no VGG16 weights anywhere
    with pytest.raises(Refused, match="Pass --vgg_weights") as refused:
        train_here(args)
    assert refused.value.code == 2


def test_an_empty_or_missing_training_folder_is_one_line_with_exit_status_2(tmp_path, train_here):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((empty, r"no training images \(\.bmp"), (tmp_path / "nowhere", "does not exist")):
        with pytest.raises(Refused, match=message) as refused:
            train_here(train_args(folder, tmp_path / "out", "--max_train_steps", "1"))
        assert refused.value.code == 2


def test_pixel_losses_alone_need_no_vgg(data_dir, tmp_path, train_here):
    args = [a for a in train_args(data_dir, tmp_path / "pixels", "--max_train_steps", "2", "--perceptual_weight", "0",
                                  "--style_weight", "0") if a != "--allow_random_vgg"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # no VGG16 weights anywhere
        log = train_here(args)
    assert "perceptual=0.0, style=0.0" in log and "pixel losses only (no VGG16)" in log
    assert RFRInpaintPipeline.from_pretrained(tmp_path / "pixels" / "pipeline")


@pytest.mark.parametrize("bad, message", [
    (["--max_train_seconds", "0"], "--max_train_seconds must be positive"),
    (["--min_crop_scale", "1.5"], "--min_crop_scale must be in (0, 1]"),
    (["--brush_width", "24", "2"], "--brush_width takes MIN MAX with 1 <= MIN <= MAX"),
    (["--style_weight", "-1"], "loss weights must be 0 or more"),
])
def test_bad_arguments_are_refused_before_anything_starts(bad, message, capsys):
    from scripts import train

    with pytest.raises(SystemExit):
        train.parse_args(["--train_data_dir", "x", *bad])
    assert message in capsys.readouterr().err
