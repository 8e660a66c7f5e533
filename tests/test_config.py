import dataclasses

import pytest

from snn_icl.config import ConfigError, TaskConfig, load_task, replace, task_from_dict, task_to_dict
from tests.conftest import TASKS


@pytest.mark.parametrize("name", ["water_maze.toml", "water_maze_tiny.toml", "water_maze_lstm.toml"])
def test_shipped_tasks_load(name):
    task = load_task(TASKS / name)
    assert isinstance(task, TaskConfig)
    assert task.name == name.removesuffix(".toml")
    assert task.env.obs_dim == task.env.place_grid ** 2 + 2


def test_default_task_matches_design():
    task = load_task(TASKS / "water_maze.toml")
    assert (task.env.platform_radius, task.env.v_max, task.env.trial_timeout) == (0.12, 0.1, 60)
    assert (task.agent.n_regular, task.agent.n_adaptive, task.agent.tau_a) == (100, 100, 1200.0)


def test_resolved_config_round_trips(tmp_path):
    from snn_icl.storage import files

    task = load_task(TASKS / "water_maze_tiny.toml")
    files.write_toml(tmp_path / "config.toml", task_to_dict(task))
    again = load_task(tmp_path / "config.toml")
    assert again == task


def _write(tmp_path, text):
    path = tmp_path / "task.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, needles",
    [
        ("[env]\nplatform_radius = -0.1\n", ["[env]", "platform_radius"]),
        ("[env]\npool_radius = -1.0\n", ["[env]", "pool_radius"]),
        ("[env]\nplatform_radius = 2.0\n", ["[env]", "platform"]),
        ("[env]\nradius = 1.0\n", ["unknown key 'radius'", "[env]"]),
        ("[agent]\nn_regular = 0\nn_adaptive = 0\n", ["[agent]", "zero neurons"]),
        ("[agent]\nn_regular = 'many'\n", ["[agent]", "n_regular", "integer"]),
        ("[agent]\ntau_m = -20.0\n", ["[agent]", "tau_m"]),
        ("[agent]\nbackend = 'nest'\n", ["[agent]", "backend", "bellec"]),
        ("[train]\nlr = 0.0\n", ["[train]", "lr"]),
        ("[train]\niterations = 10\nlr_anneal_iterations = 11\n", ["[train]", "lr_anneal_iterations"]),
        ("[train]\nlr_final = -1e-4\n", ["[train]", "lr_final"]),
        ("[train]\niterations = 10\nbeta_ramp_iterations = 11\n", ["[train]", "beta_ramp_iterations"]),
        ("[agent]\nbeta = 0.0\n[train]\nbeta_ramp_iterations = 5\n",
         ["[train]", "beta_ramp_iterations", "beta 0.0"]),
        ("[agent]\nn_regular = 10\nn_adaptive = 0\n[train]\nbeta_ramp_iterations = 5\n",
         ["[train]", "beta_ramp_iterations", "n_adaptive 0"]),
        ("[agent]\nkind = 'lstm'\n[train]\nbeta_ramp_iterations = 5\n",
         ["[train]", "beta_ramp_iterations", "an lsnn agent"]),
        ("[train]\natlantis_fraction = 1.5\n", ["[train]", "atlantis_fraction"]),
        ("[train]\natlantis_max_delay = 0\n", ["[train]", "atlantis_max_delay"]),
        ("[train]\natlantis_max_delay = 30\natlantis_min_delay = 31\n",
         ["[train]", "atlantis_min_delay", "atlantis_max_delay"]),
        ("[train]\natlantis_min_delay = [1, 2]\n", ["[train]", "atlantis_min_delay", "per stage"]),
        ("[train]\natlantis_dwell_reward = [0.1, 0.2]\n",
         ["[train]", "atlantis_dwell_reward", "per stage"]),
        ("[train]\natlantis_dwell_reward = -0.1\n", ["[train]", "atlantis_dwell_reward", ">= 0"]),
        ("[train]\natlantis_from_iteration = [5, 3]\natlantis_fraction = [0.5, 0.5]\n"
         "atlantis_max_delay = [9, 9]\n", ["[train]", "atlantis_from_iteration", "increasing"]),
        ("[train]\natlantis_from_iteration = [5, 9]\n", ["[train]", "atlantis_fraction", "per stage"]),
        ("[train]\natlantis_fraction = ['x']\n", ["[train]", "atlantis_fraction", "number"]),
        ("[train]\nbatch_episodes = 10\nminibatches = 4\n", ["[train]", "minibatches"]),
        ("[eval]\nepisodes = true\n", ["[eval]", "episodes"]),
        ("[agnet]\nn_regular = 1\n", ["unknown key 'agnet'"]),
        ("seed = 1.5\n", ["seed", "integer"]),
        ("[env\nv_max = 1\n", ["malformed TOML"]),
    ],
)
def test_bad_task_files_name_the_problem(tmp_path, text, needles):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_task(path)
    msg = str(err.value)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg, msg
    assert "\n" not in msg.strip()


def test_missing_task_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_task(tmp_path / "nope.toml")


def test_ints_accepted_for_floats_but_not_bools():
    task = task_from_dict({"env": {"v_max": 1}})
    assert task.env.v_max == 1.0 and isinstance(task.env.v_max, float)
    with pytest.raises(ConfigError, match="v_max"):
        task_from_dict({"env": {"v_max": True}})


def test_replace_revalidates():
    task = task_from_dict({})
    smaller = replace(task, env={"episode_steps": 50})
    assert smaller.env.episode_steps == 50 and task.env.episode_steps != 50
    with pytest.raises(ConfigError, match="episode_steps"):
        replace(task, env={"episode_steps": 0})
    assert dataclasses.is_dataclass(smaller.agent)


def test_test_seeds_are_a_reserved_range_and_everything_else_is_validation():
    from snn_icl.config import TEST_SEEDS, load_task, seed_kind
    from tests.conftest import TASKS

    assert seed_kind(TEST_SEEDS[0]) == seed_kind(TEST_SEEDS[-1]) == "test"
    assert seed_kind(TEST_SEEDS[0] - 1) == seed_kind(TEST_SEEDS[-1] + 1) == "validation"
    assert all(seed_kind(s) == "validation" for s in range(0, 21))  # looked at while developing
    for task in TASKS.glob("*.toml"):  # no task file evaluates on a test seed by default
        assert seed_kind(load_task(task).eval.seed) == "validation", task.name


def test_beta_ramp_share_rises_linearly_then_stays_at_one():
    from snn_icl.config import TrainConfig

    cfg = TrainConfig(iterations=10, beta_ramp_iterations=4)
    assert [cfg.beta_scale_at(i) for i in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert TrainConfig(iterations=10).beta_scale_at(0) == 1.0


def test_a_base_file_gives_every_table_and_the_derived_file_changes_only_its_keys(tmp_path):
    from snn_icl.config import task_to_dict

    (tmp_path / "parent.toml").write_text(
        'name = "parent"\nseed = 3\n[agent]\nn_regular = 20\nn_adaptive = 10\n'
        "[train]\niterations = 50\nlr = 2e-3\n")
    (tmp_path / "child.toml").write_text('base = "parent.toml"\n[train]\nlr = 5e-4\n')
    parent, child = load_task(tmp_path / "parent.toml"), load_task(tmp_path / "child.toml")
    assert child.name == "child" and child.seed == 3  # named for itself, the rest inherited
    assert child.train.lr == 5e-4 and child.train.iterations == 50
    assert child.agent.n_regular == 20 and child.agent.n_adaptive == 10
    a, b = task_to_dict(parent), task_to_dict(child)
    assert {k: v for k, v in a["train"].items() if a["train"][k] != b["train"][k]} == {"lr": 2e-3}
    assert a["agent"] == b["agent"] and a["env"] == b["env"]
    # a chain of bases, and an agent of another kind replacing the base's agent table
    (tmp_path / "grandchild.toml").write_text(
        'base = "child.toml"\n[agent]\nkind = "lstm"\nhidden_size = 16\n')
    grandchild = load_task(tmp_path / "grandchild.toml")
    assert grandchild.agent.kind == "lstm" and grandchild.agent.hidden_size == 16
    assert grandchild.train.lr == 5e-4 and grandchild.seed == 3


@pytest.mark.parametrize(
    "text, needles",
    [
        ('base = "missing.toml"\n', ["base task file not found", "missing.toml"]),
        ("base = 3\n", ["base must be the path of a task file"]),
        ('base = "task.toml"\n', ["a cycle of base files"]),
        ('base = "parent.toml"\n[train]\nlr = -1.0\n', ["[train]", "lr"]),
    ],
)
def test_bad_base_files_name_the_problem(tmp_path, text, needles):
    (tmp_path / "parent.toml").write_text("[train]\niterations = 5\n")
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_task(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg.strip()
    for needle in needles:
        assert needle in msg, msg


def test_the_stay_recipe_is_the_earlier_atlantis_recipe_with_later_platforms():
    from snn_icl.config import task_to_dict

    early = task_to_dict(load_task(TASKS / "water_maze_fast_2cores_early.toml"))
    stay = task_to_dict(load_task(TASKS / "water_maze_fast_2cores_stay.toml"))
    assert stay["name"] == "water_maze_fast_2cores_stay"
    assert stay["train"].pop("atlantis_min_delay") == (1, 20, 20)
    assert early["train"].pop("atlantis_min_delay") == (1,)
    assert {**stay, "name": early["name"]} == early
