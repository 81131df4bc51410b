"""``extras`` (configs/extras/default.yaml): the config tree printed and saved, tags enforced,
warnings silenced; a bad value is one line naming the key."""

from __future__ import annotations

import warnings

import pytest
from omegaconf import OmegaConf

from conftest import CONFIG_DIR
from learnct.run.config_checks import ConfigError, validate_config
from learnct.run.extras import CONFIG_TREE_FILE, apply_extras


def test_defaults_print_the_tree_and_enforce_nothing():
    """As lightning-hydra-template, but without tags a run still starts (the tests compose
    with ``extras.print_config=false``: conftest.BASE_OVERRIDES)."""
    assert dict(OmegaConf.load(CONFIG_DIR / "extras" / "default.yaml")) == {
        "print_config": True,
        "enforce_tags": False,
        "ignore_warnings": False,
    }


def test_print_config_prints_and_saves_the_resolved_tree(compose_config, tmp_path, capsys):
    cfg = compose_config(
        "train", ["experiment=lpd", "extras.print_config=true", "trainer.max_steps=77"], tmp_path
    )
    apply_extras(cfg)
    printed = capsys.readouterr().out
    saved = (tmp_path / CONFIG_TREE_FILE).read_text()
    for text in (printed, saved):
        assert text.startswith("CONFIG")
        # the sections in order, resolved (paths.output_dir is this run's folder)
        assert text.index("physics") < text.index("data") < text.index("model")
        assert "_target_: learnct.methods.LearnedPrimalDual" in text
        assert "max_steps: 77" in text and "scheduler_interval: step" in text
    assert f"output_dir: {tmp_path}\n" in saved  # not wrapped at the terminal's width
    assert "\x1b[" not in saved  # plain text, no terminal colours


def test_enforce_tags_refuses_a_run_without_tags(compose_config, run_config, tmp_path):
    cfg = compose_config(
        "train", ["experiment=fbp", "tags=[]", "extras.enforce_tags=true"], tmp_path
    )
    with pytest.raises(
        ConfigError, match=r"^tags is empty and extras.enforce_tags=true: .*tags=\["
    ) as err:
        run_config(cfg)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run.json").exists()  # refused before the run started
    validate_config(compose_config("train", ["experiment=fbp", "extras.enforce_tags=true"]))


def test_ignore_warnings_silences_python_warnings(compose_config):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_extras(compose_config("train", ["extras.ignore_warnings=false"]))
        warnings.warn("kept", UserWarning, stacklevel=1)
        apply_extras(compose_config("train", ["extras.ignore_warnings=true"]))
        warnings.warn("silenced", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["kept"]


def test_a_run_with_ignore_warnings_shows_none(compose_config, run_config, tmp_path):
    cfg = compose_config(
        "train",
        ["experiment=fbp", "data.test_size=2", "data.val_size=2", "extras.ignore_warnings=true"],
        tmp_path,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_config(cfg)
    assert caught == []


@pytest.mark.parametrize("key", ["print_config", "enforce_tags", "ignore_warnings"])
def test_a_value_that_is_not_a_boolean_is_refused_with_the_config_naming_the_key(
    key, compose_config
):
    cfg = compose_config("train", [f"extras.{key}=maybe"])
    with pytest.raises(
        ConfigError, match=rf"^extras.{key}='maybe' is not valid: use true or false$"
    ):
        validate_config(cfg)  # with the other checks, before the run resolves its resume
