"""The logger configs (configs/logger): each writes its files in a short run, and a backend
that is not installed is one line naming it and the install command."""

from __future__ import annotations

import pytest

from learnct.run.build import instantiate_all
from learnct.run.config_checks import ConfigError

#: FBP (nothing to train: validation and test only) on 2 + 2 images
TINY_FBP = ["experiment=fbp", "data.val_size=2", "data.test_size=2", "data.eval_batch_size=2"]


def _run(compose_config, run_config, folder, logger: str) -> None:
    overrides = [*TINY_FBP, f"logger={logger}", f"paths.log_dir={folder}/logs"]
    run_config(compose_config("train", overrides, folder / "run"))


def _event_tags(folder) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (version,) = (folder / "run" / "tensorboard").glob("version_*")
    events = EventAccumulator(str(version)).Reload()
    return set(events.Tags()["scalars"]) | set(events.Tags()["images"])


def test_tensorboard_writes_event_files(compose_config, run_config, tmp_path):
    pytest.importorskip("tensorboard")
    _run(compose_config, run_config, tmp_path, "tensorboard")
    tags = _event_tags(tmp_path)
    assert {
        "val/psnr",
        "val/panels",
        "test/ellipses/psnr",
        "test/shepp_logan/fbp_ssim",
    } <= tags
    assert list((tmp_path / "run" / "csv").glob("version_*/metrics.csv"))


def test_many_loggers_write_csv_tensorboard_and_wandb(compose_config, run_config, tmp_path):
    pytest.importorskip("tensorboard")
    cfg = compose_config("train", [*TINY_FBP, "logger=many_loggers"], tmp_path / "run")
    assert list(cfg.logger) == ["wandb", "csv", "tensorboard"]
    run_config(cfg)  # W&B is disabled in the tests (conftest)
    assert "test/shepp_logan/psnr" in _event_tags(tmp_path)
    assert list((tmp_path / "run" / "csv").glob("version_*/metrics.csv"))


def test_mlflow_keeps_the_run_in_the_run_folder(compose_config, run_config, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    _run(compose_config, run_config, tmp_path, "mlflow")
    database = tmp_path / "run" / "mlflow" / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    (run,) = client.search_runs([client.get_experiment_by_name("fbp").experiment_id])
    assert run.info.run_name == "fbp-run" and run.info.status == "FINISHED"  # <task>-<folder>
    assert {"val/psnr", "test/ellipses/psnr", "test/shepp_logan/fbp_psnr"} <= set(
        run.data.metrics
    ), run.data.metrics
    assert run.data.params["model/_target_"] == "learnct.methods.FBP"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(
    ("logger", "flags"),
    [
        (
            "tensorboard",
            [
                "fabric.loggers.tensorboard._TENSORBOARD_AVAILABLE",
                "fabric.loggers.tensorboard._TENSORBOARDX_AVAILABLE",
            ],
        ),
        ("mlflow", ["pytorch.loggers.mlflow._MLFLOW_AVAILABLE"]),
    ],
)
def test_a_missing_backend_is_one_line_naming_the_install(
    logger, flags, compose_config, monkeypatch, tmp_path
):
    """As without the package: Lightning checks these flags before it imports the backend."""
    import lightning

    for flag in flags:
        module, name = flag.rsplit(".", 1)
        monkeypatch.setattr(f"lightning.{module}.{name}", False)
    cfg = compose_config("train", [f"logger={logger}"], tmp_path)
    with pytest.raises(ConfigError) as err:
        instantiate_all(cfg.logger)
    message = str(err.value)
    assert message.startswith(f"logger.{logger}: lightning.pytorch.loggers.")
    assert "needs a package that is not installed" in message
    assert message.endswith("pip install -e '.[loggers]'") and "\n" not in message
    assert lightning  # imported before the flags are patched
