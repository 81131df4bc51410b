"""A config read back from a run folder (or beside committed weights) is data: before anything
is built from it, every ``_target_`` in its model, data and physics sections must be one of
learnct's own (or a torch optimiser/scheduler), so a copied run folder cannot run code."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import EXPERIMENTS, PAPER_EXPERIMENTS
from learnct.reporting.__main__ import main
from learnct.reporting.weights import verify_weights
from learnct.run.results import ResultsError
from learnct.run.stored_config import allowed_targets, check_stored_targets


def _stored(compose_config, tmp_path, experiment):
    """The config a run of ``experiment`` writes to its ``config.json`` (resolved)."""
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path / experiment)
    return OmegaConf.to_container(cfg, resolve=True)


class _Payload:
    """Pickled, it is a call of ``open(marker, "w")``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _payload(tmp_path):
    """``(node, marker)``: a config node that Hydra turns into a call creating ``marker``
    (``torch.load`` passes Hydra's blocklist, and unpickles anything with weights_only=false)."""
    marker, pickled = tmp_path / "payload-ran", tmp_path / "payload.pt"
    torch.save(_Payload(marker), pickled)
    return {"_target_": "torch.load", "f": str(pickled), "weights_only": False}, marker


@pytest.mark.parametrize("experiment", EXPERIMENTS + PAPER_EXPERIMENTS)
def test_the_configs_runs_write_pass(experiment, tmp_path, compose_config):
    check_stored_targets(_stored(compose_config, tmp_path, experiment), "config.json")


@pytest.mark.parametrize(
    ("where", "target"),
    [
        ("model", "torch.load"),
        ("data", "os.system"),
        ("physics", "builtins.exec"),
        ("model.optimizer", "subprocess.run"),
        ("model", "learnct.run.pipeline.os.system"),  # a path through learnct: not a prefix
        ("model.optimizer", "torch.optim.Optimizer"),  # the base class is no optimiser
    ],
)
def test_other_targets_are_refused_naming_the_file_and_key(where, target, tmp_path, compose_config):
    stored = _stored(compose_config, tmp_path, "lpd")
    OmegaConf.update(config := OmegaConf.create(stored), f"{where}._target_", target)
    with pytest.raises(ResultsError) as err:
        check_stored_targets(OmegaConf.to_container(config), "logs/x/config.json")
    assert str(err.value) == (
        f"logs/x/config.json: {where}._target_={target!r} refused: a stored config may only "
        "name learnct's methods, CTDataModule, make_physics, torch optimisers or schedulers "
        "and learnct's learning-rate factors (rerun the run with this code to rewrite its "
        "config)"
    )


def test_nested_nodes_interpolations_and_non_configs_are_refused(tmp_path, compose_config):
    stored = _stored(compose_config, tmp_path, "fbp")
    deep = copy.deepcopy(stored)
    deep["data"]["test_source"] = ["ellipses", {"_target_": "os.getcwd"}]
    with pytest.raises(ResultsError, match=r"data\.test_source\[1\]\._target_='os.getcwd'"):
        check_stored_targets(deep, "c.json")
    built = copy.deepcopy(stored)
    built["physics"]["preset"] = "${oc.create:{_target_: os.getcwd}}"  # builds a node on access
    with pytest.raises(ResultsError, match=r"physics\.preset='\$\{oc\.create.*holds no interp"):
        check_stored_targets(built, "c.json")
    with pytest.raises(ResultsError, match=r"^c\.json: not a config"):
        check_stored_targets(["model"], "c.json")
    stored["trainer"]["_target_"] = "my.own.Trainer"  # never built from a stored config
    check_stored_targets(stored, "c.json")
    assert "learnct.methods.LearnedPrimalDual" in allowed_targets()
    assert "torch.optim.lr_scheduler.StepLR" in allowed_targets()


def _run_folder(folder, config, method):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    row = {"method": method, "physics": "fan_lowdose", "test_set": "ellipses", "psnr": "29"}
    row |= {"ssim": "0.7", "ms_per_slice": "2"}
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)


def test_make_report_leaves_out_a_run_folder_whose_config_would_run_code(
    tmp_path, compose_config, capsys
):
    logs = tmp_path / "logs"
    fbp = _stored(compose_config, tmp_path, "fbp")
    for key in ("val_size", "test_size"):
        fbp["data"][key] = 2
    _run_folder(logs / "fbp" / "runs" / "a", fbp, "FBP")
    tv = _stored(compose_config, tmp_path, "tv")
    tv["model"]["optimizer"], marker = _payload(tmp_path)  # built before TV itself
    _run_folder(logs / "tv" / "runs" / "b", tv, "TV")
    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert (
        f"left out of the figures: TV: {logs}/tv/runs/b/config.json: "
        "model.optimizer._target_='torch.load' refused"
    ) in out
    assert not marker.exists()
    assert (tmp_path / "out" / "fan_lowdose" / "comparison.png").is_file()  # FBP's figure
    assert "| TV | ellipses |" in (tmp_path / "out" / "fan_lowdose" / "results.md").read_text()


def test_verify_weights_refuses_a_weights_config_that_would_run_code(tmp_path, compose_config):
    stored = _stored(compose_config, tmp_path, "fbp")
    weights = tmp_path / "weights"
    weights.mkdir()
    physics, marker = _payload(tmp_path)
    config = {"physics": physics, "data": stored["data"], "seed": 0}
    (weights / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ResultsError, match=r"config\.json: physics\._target_='torch\.load' refused"
    ):
        verify_weights(weights)
    # the model sections of FBP and TV (``methods``) are checked too, before anything is built
    config = {**config, "physics": stored["physics"], "methods": {"FBP": physics}}
    (weights / "config.json").write_text(json.dumps(config))
    with pytest.raises(ResultsError, match=r"config\.json: model\._target_='torch\.load' refused"):
        verify_weights(weights)
    assert not marker.exists()


def test_a_weights_config_with_unknown_test_sources_is_refused_naming_it(tmp_path):
    """``load_weights_config`` checks the test sources once for every reader (cards,
    ``run_weights``, the real-CT table): a ``ResultsError`` naming the file, not a card
    that lists a source no run can make; null test sources are the training source."""
    from learnct.reporting.weights import load_weights_config

    weights = tmp_path / "weights"
    weights.mkdir()
    config = {"data": {"source": "ellipses", "test_source": ["ellipses", "walnut"]}, "seed": 0}
    (weights / "config.json").write_text(json.dumps(config))
    with pytest.raises(ResultsError, match=r"config\.json: data\.test_source=.*'walnut' is not"):
        load_weights_config(weights)
    for data, message in [
        ({"source": "ellipses", "val_source": "walnut"}, r"data\.val_source='walnut'"),
        ({"source": ["ellipses"]}, r"data\.source=\['ellipses'\] is not valid"),
        ({"test_source": "ellipses"}, r"data=.* is not valid: a data section with a source"),
        ({"source": "ellipses", "test_source": []}, r"data\.test_source=\[\] is not valid"),
    ]:
        (weights / "config.json").write_text(json.dumps({**config, "data": data}))
        with pytest.raises(ResultsError, match=message):
            load_weights_config(weights)
    config["data"]["test_source"] = None
    (weights / "config.json").write_text(json.dumps(config))
    assert load_weights_config(weights)["data"]["source"] == "ellipses"
