"""The command line a run records: quoted as a shell would need it, keys parsed from Hydra."""

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from learnct.run.command_line import command_line, command_line_keys, task_overrides
from learnct.run.provenance import REPO_ROOT


def test_a_command_line_quotes_what_the_shell_would_split():
    line = command_line("learnct-train", ["model=lpd", "task_name=a b", "+x='y'"])
    assert line == "learnct-train model=lpd 'task_name=a b' '+x='\"'\"'y'\"'\"''"


def test_outside_hydra_there_is_no_command_line():
    assert task_overrides() is None
    assert command_line_keys() is None


def test_the_keys_of_a_hydra_run_are_its_overrides_keys_and_groups():
    overrides = ["model=lpd", "+trainer.max_time=00:00:01:00", "data.batch_size=3"]
    with initialize_config_dir(str(REPO_ROOT / "configs"), version_base=None):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            assert task_overrides() == overrides
            assert command_line_keys() == {"model", "trainer.max_time", "data.batch_size"}
        finally:
            HydraConfig.instance().cfg = None
