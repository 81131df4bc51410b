"""What a terminal user and a W&B user see of a ``learnct-train`` run: each Lightning message
once (and in the run folder's log), no Lightning tips, no W&B "anonymous" or torch ``LeafSpec``
warnings, no Lightning test table, a step-counting progress bar without ``v_num``; in the
offline W&B run: the run named after its folder, test metrics named by test set, and with
``log_model=true`` the best checkpoint (not ``last.ckpt``) as the model artifact."""

from __future__ import annotations

import collections
import logging
import re
import warnings

from wandb_files import offline_run

from conftest import TINY_LGD
from learnct.run.console import quiet_console

NOISE = (
    "Tip:",  # Lightning's advertisements
    "anonymous setting",  # W&B, for Lightning's anonymous=None
    "LeafSpec",  # torch's deprecation inside Lightning's _pytree
    "dataloader_idx",
    "DataLoader 0",  # Lightning's test table
    "v_num",
    "Epoch 0/-2",
)


def test_a_cli_run_shows_each_message_once_and_names_wandb_things_usefully(run_cli, tmp_path):
    args = [a for a in TINY_LGD if a not in ("logger=csv", "callbacks.progress_bar=null")]
    out = run_cli(
        "train",
        [
            *args,
            "logger=wandb",
            "logger.wandb.log_model=true",
            "trainer.max_steps=2",
            "trainer.val_check_interval=1",
            "extras.print_config=false",  # the config tree repeats keys such as _partial_
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        env={"WANDB_MODE": "offline", "WANDB_DATA_DIR": str(tmp_path / "wandb-data")},
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert [noise for noise in NOISE if noise in text] == []
    lines = [line.strip() for line in text.splitlines()]
    # messages (a word or more; the bar's wrapped numbers may repeat), W&B's summary aside
    messages = [s for s in lines if re.search("[A-Za-z]{3}", s) and not s.startswith("wandb:")]
    repeated = collections.Counter(messages)
    assert [s for s, n in repeated.items() if n > 1] == []
    assert "INFO: `Trainer.fit` stopped: `max_steps=2` reached." in lines
    assert any(line.startswith("step 2/2 ") for line in lines)  # the progress bar
    assert "| LearnedGradientDescent | fan_lowdose | ellipses |" in text  # our results table
    (run_dir,) = (tmp_path / "logs" / "lgd" / "runs").iterdir()
    log = (run_dir / "train.log").read_text()
    assert log.count("`Trainer.fit` stopped: `max_steps=2` reached.") == 1  # the log file too
    assert "Tip:" not in log

    run = offline_run(run_dir)
    assert (run.name, run.group) == (f"lgd-{run_dir.name}", "lgd")
    for test_set in ("ellipses", "shepp_logan"):
        for metric in ("psnr", "ssim", "ms_per_slice", "fbp_psnr", "fbp_ssim"):
            assert f"test/{test_set}/{metric}" in run.metric_keys
    assert not [k for k in run.metric_keys if "dataloader_idx" in k]
    models = [
        (name, aliases, meta) for name, kind, aliases, meta in run.artifacts if kind == "model"
    ]
    best = next((run_dir / "checkpoints").glob("step_*.ckpt")).name
    assert [(sorted(aliases), meta["original_filename"]) for _, aliases, meta in models] == [
        (["best", "latest"], best)
    ]


def test_quiet_console_leaves_lightning_one_handler_and_other_warnings_alone(monkeypatch):
    import lightning  # noqa: F401

    root, lightning_logger = logging.getLogger(), logging.getLogger("lightning")
    handler = logging.StreamHandler()
    monkeypatch.setattr(lightning_logger, "handlers", [handler])  # as Lightning's import left it
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])  # as Hydra's job logging
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    monkeypatch.setattr(rank_zero, "filters", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_console()
        quiet_console()  # idempotent
        assert lightning_logger.handlers == []
        assert len(rank_zero.filters) == 1
        record = logging.LogRecord("x", logging.INFO, "f", 1, "💡 Tip: install it", None, None)
        other = logging.LogRecord("x", logging.INFO, "f", 1, "GPU available: False", None, None)
        assert [rank_zero.filter(record), rank_zero.filter(other)] == [False, True]
        warnings.warn_explicit(
            "`isinstance(treespec, LeafSpec)` is deprecated, use ...",
            FutureWarning,
            "_pytree.py",
            21,
            module="lightning.pytorch.utilities._pytree",
        )
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["`isinstance(treespec, LeafSpec)` is deprecated"]
