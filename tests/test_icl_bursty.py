"""Bursty in-context classification (Reddy 2023): the task family, its held-out tests, the
evaluation, training through the command line, the sweep report (docs/icl_bursty.md)."""

import csv
import json
import math

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from snn_icl.cli import app
from snn_icl.config import ConfigError, load_task, task_from_dict
from snn_icl.envs import icl_bursty as ib
from snn_icl.envs.family import bursty_accuracies
from snn_icl.experiments import icl_bursty as ev
from tests.conftest import TASKS

runner = CliRunner()
G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
SMALL = ib.BurstyConfig(n_classes=64, n_labels=8, n_pairs=8, item_dim=16, eps=0.05)


# --- sampling ----------------------------------------------------------------------------------

@pytest.mark.parametrize("burst", [1, 2, 4, 8])
def test_bursty_sequences_hold_the_query_class_b_times(burst):
    cfg = ib.BurstyConfig(burstiness=burst, n_classes=1000)
    b = ib.sample(cfg, 500, G(burst))
    assert b.items.shape == (500, 8, 63) and b.query.shape == (500, 63)
    count = (b.classes == b.query_class[:, None]).sum(1)
    assert (count == burst).all()
    for row in b.classes:  # every class of the context appears B times
        assert set(torch.unique(row, return_counts=True)[1].tolist()) == {burst}
    w = ib.world(cfg)
    assert torch.equal(b.labels, w.labels[b.classes]) and torch.equal(b.target, w.labels[b.query_class])


def test_items_are_noisy_class_means_with_unit_scale():
    cfg = ib.BurstyConfig(eps=0.1, n_classes=50)
    b = ib.sample(cfg, 4000, G(0))
    mu = ib.world(cfg).means[b.query_class]
    noise = b.query * math.sqrt(1 + 0.1 ** 2) - mu  # = eps * eta, eta ~ N(0, I/D)
    assert noise.pow(2).sum(1).mean().item() == pytest.approx(0.1 ** 2, rel=0.05)
    assert b.query.pow(2).sum(1).mean().item() == pytest.approx(1.0, rel=0.05)


def test_iid_sequences_follow_the_zipf_frequencies():
    cfg = ib.BurstyConfig(n_classes=20, alpha=1.0, burstiness=0)
    b = ib.sample(cfg, 20000, G(1))
    freq = torch.bincount(b.classes.flatten(), minlength=20).float() / b.classes.numel()
    expected = 1 / torch.arange(1, 21).float()
    expected /= expected.sum()
    assert torch.allclose(freq, expected, atol=0.005)
    assert freq[0] > 5 * freq[9]
    # B = 0 and p_bursty = 0: the query's class is in the context only by chance
    assert (b.classes == b.query_class[:, None]).any(1).float().mean() < 0.6


def test_p_bursty_mixes_bursty_and_iid_sequences():
    cfg = ib.BurstyConfig(n_classes=4096, p_bursty=0.25)
    b = ib.sample(cfg, 4000, G(2))
    bursty = (b.classes == b.query_class[:, None]).sum(1) == 4
    assert bursty.float().mean().item() == pytest.approx(0.25, abs=0.03)


def test_the_world_comes_from_classes_seed_not_the_training_generator():
    a, b = ib.world(SMALL), ib.world(ib.BurstyConfig(**{**SMALL.__dict__, "classes_seed": 1}))
    assert not torch.equal(a.means, b.means)
    x, y = ib.sample(SMALL, 8, G(0)), ib.sample(SMALL, 8, G(1))
    assert not torch.equal(x.classes, y.classes)
    assert torch.equal(ib.world(SMALL).means, a.means)


def test_novel_classes_are_new_and_in_context():
    b = ib.novel_batch(SMALL, 300, G(3))
    means = ib.world(SMALL).means
    # every novel item is far from every trained mean (fresh Gaussian means)
    nearest = torch.cdist(b.query * math.sqrt(1 + SMALL.eps ** 2), means).min(1).values
    assert (nearest > 0.5).all()
    assert ((b.classes == b.query_class[:, None]).sum(1) == SMALL.eval_burst).all()
    in_ctx = b.labels.gather(1, (b.classes == b.query_class[:, None]).float().argmax(1, keepdim=True))[:, 0]
    assert torch.equal(in_ctx, b.target)
    # the two classes of a sequence have distinct labels
    assert (b.labels.min(1).values != b.labels.max(1).values).all()


def test_flipped_labels_all_differ_from_the_trained_map():
    b = ib.flip_batch(SMALL, 500, G(4))
    w = ib.world(SMALL)
    assert (b.labels != w.labels[b.classes]).all() and (b.target != w.labels[b.query_class]).all()
    assert ((b.classes == b.query_class[:, None]).sum(1) == SMALL.eval_burst).all()
    assert (b.classes >= 0).all()  # trained classes


def test_iwl_sequences_exclude_the_query_class():
    cfg = ib.BurstyConfig(n_classes=6, n_labels=4, alpha=1.5)  # few classes: exclusion matters
    b = ib.iwl_batch(cfg, 2000, G(5))
    assert not (b.classes == b.query_class[:, None]).any()
    assert torch.equal(b.target, ib.world(cfg).labels[b.query_class])


def test_tokens_separate_items_and_labels():
    b = ib.sample(SMALL, 3, G(6))
    t = ib.tokens(b)
    d = SMALL.item_dim
    assert t.shape == (17, 3, d + SMALL.n_labels)
    assert torch.equal(t[0:16:2, :, :d], b.items.transpose(0, 1))
    assert (t[0:16:2, :, d:] == 0).all() and (t[1:16:2, :, :d] == 0).all()
    assert torch.equal(t[1:16:2, :, d:].argmax(-1), b.labels.T)
    assert torch.equal(t[16, :, :d], b.query) and (t[16, :, d:] == 0).all()


def test_bad_config_names_the_key():
    base = {"env": {"family": "icl_bursty"}, "agent": {"kind": "lstm"}}
    task = task_from_dict(base)
    assert (task.env.obs_dim, task.env.episode_steps, task.env.out_dim) == (95, 17, 32)
    for key, value, message in [("burstiness", 3, "burstiness must be 0 or divide n_pairs = 8"),
                                ("eps", -0.1, "eps must be >= 0"),
                                ("p_bursty", 1.5, "p_bursty must be in"),
                                ("n_labels", 1, "n_labels must be >= 2"),
                                ("eval_burst", 3, "eval_burst must divide"),
                                ("alpha", -1, "alpha must be >= 0"),
                                ("n_classes", 1, "n_classes must be >= ")]:
        with pytest.raises(ConfigError, match=message) as err:
            task_from_dict({**base, "env": {"family": "icl_bursty", key: value}})
        assert "\n" not in str(err.value) and "[env]" in str(err.value)
    with pytest.raises(ConfigError, match="unknown key 'K'"):
        task_from_dict({**base, "env": {"family": "icl_bursty", "K": 5}})


# --- the held-out tests on scripted models -----------------------------------------------------

class CopyFromContext(nn.Module):
    """Pure ICL: the label after the context item nearest to the query."""

    def __init__(self, cfg):
        super().__init__()
        self.d, self.L = cfg.item_dim, cfg.n_labels
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        items, labels, q = tokens[0:-1:2, :, :self.d], tokens[1:-1:2, :, self.d:], tokens[-1, :, :self.d]
        nearest = (items - q).pow(2).sum(-1).argmin(0)  # [B]
        return labels[nearest, torch.arange(tokens.shape[1])] * 10


class RecallFromWeights(nn.Module):
    """Pure IWL: the trained label of the trained class nearest to the query."""

    def __init__(self, cfg):
        super().__init__()
        w = ib.world(cfg)
        self.d, self.L = cfg.item_dim, cfg.n_labels
        self.means = nn.Parameter(w.means.clone())
        self.register_buffer("labels", w.labels.clone())

    def forward(self, tokens):
        q = tokens[-1, :, :self.d]
        return nn.functional.one_hot(self.labels[torch.cdist(q, self.means).argmin(1)], self.L).float()


def test_evaluation_tells_icl_from_iwl():
    task = task_from_dict({"env": {"family": "icl_bursty", "n_classes": 64, "n_labels": 8,
                                   "item_dim": 16, "eps": 0.05}, "agent": {"kind": "lstm"}})
    icl = ev.evaluate(CopyFromContext(task.env), task, seed=3, n_tasks=1000)
    iwl = ev.evaluate(RecallFromWeights(task.env), task, seed=3, n_tasks=1000)
    assert icl["icl_novel_accuracy"] == 1 and icl["icl_flip_accuracy"] == 1
    assert icl["flip_trained_label_fraction"] == 0 and icl["iwl_accuracy"] < 0.3
    assert iwl["iwl_accuracy"] == 1 and iwl["flip_trained_label_fraction"] == 1
    assert iwl["icl_flip_accuracy"] == 0 and iwl["icl_novel_accuracy"] < 0.3
    assert icl["chance"] == 1 / 8 and icl["tasks"] == 1000
    track = bursty_accuracies(task.env, RecallFromWeights(task.env), seed=5, n=200)
    assert track == {"icl_novel_accuracy": pytest.approx(track["icl_novel_accuracy"]),
                     "icl_flip_accuracy": 0.0, "iwl_accuracy": 1.0}


# --- training, evaluation, sweep and report through the command line ---------------------------

def _tiny(tmp_path, iterations=40):
    text = f"""name = "bursty_tiny"
[env]
family = "icl_bursty"
n_classes = 16
n_labels = 4
n_pairs = 4
item_dim = 8
burstiness = 2
eval_burst = 2
[agent]
kind = "transformer"
n_layer = 2
n_head = 1
n_embd = 16
mlp = false
layer_norm = false
positions = true
head_hidden = 16
[train]
iterations = {iterations}
batch_episodes = 64
lr = 0.003
threads = 1
track_every = 10
checkpoint_minutes = 0.01
minibatches = 1
"""
    path = tmp_path / "bursty_tiny.toml"
    path.write_text(text)
    return path


def test_train_tracks_the_three_accuracies_and_evaluate_writes_them(tmp_path):
    task, run = _tiny(tmp_path), tmp_path / "run"
    r = runner.invoke(app, ["train", str(task), "--out", str(run)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 40 and "accuracy" in rows[0]
    for key in ev.MEASURES:
        tracked = [float(r[key]) for r in rows if r[key]]
        assert len(tracked) == 5 and all(0 <= v <= 1 for v in tracked)
    out = tmp_path / "eval.json"
    r = runner.invoke(app, ["evaluate", str(run), "--seed", "1000000", "-n", "256", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert {"icl_novel_accuracy", "icl_flip_accuracy", "iwl_accuracy", "chance",
            "flip_trained_label_fraction", "training_accuracy"} <= set(res)
    assert res["chance"] == 0.25 and res["seed_kind"] == "test" and res["tasks"] == 256
    assert all(0 <= res[k] <= 1 for k in ev.MEASURES)
    assert "ICL on novel classes" in r.output


def test_sweep_and_report_of_a_bursty_grid(tmp_path):
    task, out, rep = _tiny(tmp_path, 20), tmp_path / "sweep", tmp_path / "report"
    r = runner.invoke(app, ["sweep", str(task), "--seeds", "0", "--set", "env.burstiness=0,2",
                            "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(out), "--out", str(rep), "-n", "128", "--seed", "3"])
    assert r.exit_code == 0, r.output
    report = json.loads((rep / "report.json").read_text())
    assert len(report["rows"]) == 2 and {r["family"] for r in report["rows"]} == {"icl_bursty"}
    assert all(0 <= row["iwl_accuracy_mean"] <= 1 for row in report["rows"])
    c = next(iter(report["curves"].values()))
    assert c["x_label"] == "training sequences" and c["env_steps"][-1] == 20 * 64
    assert set(ev.MEASURES) <= set(c)
    assert "ICL accuracy, novel classes" in (rep / "report.md").read_text()
    assert {row["changes"]["env.burstiness"] for row in report["rows"]} == {0, 2}
    # the map reads the report's rows: one panel along B with both conditions
    r = runner.invoke(app, ["bursty-map", f"burstiness={rep}", "--out", str(tmp_path / "map")])
    assert r.exit_code == 0, r.output
    panel = json.loads((tmp_path / "map" / "map.json").read_text())["burstiness"]
    (points,) = panel.values()
    assert [p["value"] for p in points] == [0, 2] and all(p["n_seeds"] == 1 for p in points)
    by_b = {row["changes"]["env.burstiness"]: row for row in report["rows"]}
    assert points[1]["iwl_accuracy_mean"] == by_b[2]["iwl_accuracy_mean"]
    assert (tmp_path / "map" / "map.png").stat().st_size > 0


def test_shipped_task_files_load():
    for kind in ("transformer", "lstm", "lsnn"):
        task = load_task(TASKS / f"icl_bursty_{kind}.toml")
        assert task.env.family == "icl_bursty" and task.agent.kind == kind
        assert (task.env.n_labels, task.env.n_pairs, task.env.item_dim) == (32, 8, 63)
        assert task.train.track_every > 0 and task.train.threads == 1
    t = load_task(TASKS / "icl_bursty_transformer.toml")
    assert (t.agent.n_layer, t.agent.mlp, t.agent.positions) == (2, False, True) and t.agent.head_hidden > 0


def test_curve_summary_finds_emergence_peak_and_drop(tmp_path):
    path = tmp_path / "metrics.csv"
    novel = [0.03, 0.5, 0.5, 0.95, 0.99, 0.6]
    lines = ["iteration,loss,icl_novel_accuracy,icl_flip_accuracy,iwl_accuracy"]
    for i, v in enumerate(novel):
        lines.append(f"{i * 50 + 1},1.0,{v},{v},{0.1 * i}")
        lines.append(f"{i * 50 + 2},1.0,,,")  # untracked rows are skipped
    path.write_text("\n".join(lines) + "\n")
    s = ev.curve_summary(ev.read_curves(path))
    assert s["icl_emergence_iteration"] == 151 and s["icl_rise_from"] == 101
    assert s["icl_novel_accuracy"]["peak"] == 0.99 and s["icl_novel_accuracy"]["peak_iteration"] == 201
    assert s["icl_novel_accuracy"]["drop_after_peak"] == pytest.approx(0.39)
    assert s["iwl_accuracy"]["final"] == pytest.approx(0.5) and s["iterations"] == 251


def test_bursty_curves_command_tables_and_draws_every_run(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    header = "iteration,loss,icl_novel_accuracy,icl_flip_accuracy,iwl_accuracy"
    (runs / "late_metrics.csv").write_text(header + "\n1,1,0.03,0.03,0.0\n51,1,0.95,0.9,0.1\n")
    (runs / "never_metrics.csv").write_text(header + "\n1,1,0.03,0.03,0.0\n51,1,0.5,0.5,0.2\n")
    (runs / "fades_metrics.csv").write_text(header + "\n1,1,0.03,0.03,0.0\n51,1,0.5,0.5,0.2\n"
                                            "101,1,0.1,0.1,0.9\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["bursty-curves", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    md = (out / "curves.md").read_text()
    assert "| late | 51 | 1 | 0.950 (51) / 0.950 | 0.000 |" in md and "| never | never | - |" in md
    assert "| fades | never | - | 0.500 (51) / 0.100 | 0.400 | 0.100 | 0.900 / 0.900 | 101 |" in md
    assert set(json.loads((out / "curves.json").read_text())) == {"late", "never", "fades"}
    assert (out / "curves.png").stat().st_size > 0
    # a directory of other CSVs stops with one line naming the file
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x_metrics.csv").write_text("iteration,loss\n1,1\n")
    bad = runner.invoke(app, ["bursty-curves", str(tmp_path / "other"), "--out",
                        str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "x_metrics.csv has no tracked rows" in bad.output
    assert not (tmp_path / "o2" / "curves.md").exists()


def test_bursty_curves_figure_never_draws_two_groups_alike():
    import matplotlib.pyplot as plt

    from snn_icl.viz.icl import plot_bursty_curves

    curve = {"iteration": [1, 2], "icl_novel_accuracy": [0.1, 0.2],
             "icl_flip_accuracy": [0.1, 0.2], "iwl_accuracy": [0.0, 0.1]}
    names = [f"run{i}_seed{s}" for i in range(12) for s in (0, 1)]
    fig = plot_bursty_curves({n: curve for n in names}, chance=1 / 32)
    lines = fig.axes[0].get_lines()[: len(names)]
    looks = {(ln.get_color() if isinstance(ln.get_color(), str) else tuple(ln.get_color()),
              ln.get_linestyle()) for ln in lines}
    assert len(looks) == 12  # one look per group of seeds, twelve groups from ten colours
    assert lines[0].get_color() == lines[1].get_color()  # seeds of a group share it
    plt.close(fig)


def _row(setting, icl, iwl, agent="transformer", changes=None):
    row = {"family": "icl_bursty", "agent": agent, "setting": setting, "n_seeds": 3,
           "icl_novel_accuracy_mean": icl, "icl_novel_accuracy_ci95": 0.1,
           "icl_flip_accuracy_mean": icl, "icl_flip_accuracy_ci95": None,
           "iwl_accuracy_mean": iwl, "iwl_accuracy_ci95": 0.05}
    return row if changes is None else {**row, "changes": changes}


def test_map_points_group_by_the_other_settings_and_sort_along_the_axis():
    from snn_icl.experiments.icl_bursty_map import map_points, map_table

    rows = [_row("n_classes=512,eps=1.0", 0.9, 0.1, changes={"env.n_classes": 512, "env.eps": 1.0}),
            _row("n_classes=512,eps=0.0", 0.2, 0.8, changes={"env.n_classes": 512, "env.eps": 0.0}),
            _row("n_classes=128,eps=0.0", 0.1, 0.9, changes={"env.n_classes": 128, "env.eps": 0.0}),
            _row("eps=0.5", 0.5, 0.5, agent="lstm"),  # an older report: the setting name is read
            {"family": "icl_regression", "agent": "lsa", "setting": "eps=0.5", "n_seeds": 1}]
    groups = map_points(rows, "eps")
    assert set(groups) == {"transformer n_classes=512", "transformer n_classes=128", "lstm"}
    assert [p["value"] for p in groups["transformer n_classes=512"]] == [0.0, 1.0]
    assert groups["transformer n_classes=512"][0]["iwl_accuracy_mean"] == 0.8
    assert map_points(rows, "burstiness") == {}
    table = map_table({"eps": groups})
    assert "| within-class noise eps | lstm | 0.5 | 3 | 0.500 ± 0.100 | 0.500 | 0.500 ± 0.050 |" in table
    with pytest.raises(ValueError, match="two conditions of transformer at eps = 0"):
        map_points(rows + [_row("eps=0", 0.3, 0.3)] * 2, "eps")
    with pytest.raises(ValueError, match="unknown axis 'lr'"):
        map_points(rows, "lr")


def test_bursty_map_command_stops_on_a_bad_axis_or_a_report_without_the_axis(tmp_path):
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.json").write_text(json.dumps({"rows": [_row("eps=0.1", 0.5, 0.5)]}))
    for args, message in ((["lr=" + str(rep)], "AXIS one of n_classes"),
                          (["eps=" + str(tmp_path / "nowhere")], "no report.json"),
                          (["burstiness=" + str(rep)], "no bursty-classification condition varies burstiness")):
        r = runner.invoke(app, ["bursty-map", *args, "--out", str(tmp_path / "m")])
        assert r.exit_code == 2 and message in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
