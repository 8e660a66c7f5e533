"""The ``snn-icl`` command line: simulate, plot (train and evaluate build on the same pieces).

Every command stops on bad input with one line naming the problem (exit code 2) and writes its
outputs atomically, so an error never destroys a result already on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import typer

from snn_icl.train.errors import NonFiniteError, one_line

app = typer.Typer(
    name="snn-icl",
    help="Learning with frozen synapses: spiking networks (LSNN), LSTMs and transformers "
    "meta-trained on the Morris water maze (one-shot place learning) and on in-context regression "
    "and classification. Run `snn-icl COMMAND --help` for each command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: "[eval]" stays "[eval]"
    context_settings={"max_content_width": 100},
)

SEED_MAX = 2**31 - 1
"""Largest seed (evaluation and training env seeds stay distinct and within torch's range)."""
STOPPED_BY_SIGTERM = 143
"""Exit code of a train or sweep stopped cleanly by SIGTERM (128 + 15, the shell's code for a
process ended by it), so a job script can tell an unfinished run from a finished one."""

# What a simulation drops: the training-only tensors (it keeps behaviour and spikes/thresholds).
SIMULATION_DROPS = ("obs", "net_input", "action_mean", "value", "log_prob")


def _clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure a user can cause (bad task file or value, missing, foreign or corrupt
    file, a path that cannot be written, a full disk, too little memory on the host or the GPU,
    a NaN) into one line naming it, exit code 2. Anything else is a bug: a traceback and exit
    code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _CLAIMS:
                return fn(*args, **kwargs)
        except (ValueError, NonFiniteError, OverflowError, OSError) as err:
            _fail(one_line(err))
        except MemoryError:
            _fail("out of memory: make the task or --episodes smaller")
        except RuntimeError as err:
            # torch.OutOfMemoryError (a GPU's memory) is a RuntimeError, not a MemoryError; torch is
            # imported here only once a command has failed, so a CPU command never waits for it
            import torch

            if not isinstance(err, torch.OutOfMemoryError):
                raise
            _fail(f"out of GPU memory ({one_line(err).split('.')[0]}): make [train] "
                  "batch_episodes or --episodes smaller, or use --device cpu")

    return wrapper


_CLAIMS = contextlib.ExitStack()
"""Output directories the running command owns (released when it ends, see _claim)."""


def _claim(out: Path, kind: str, overwrite: bool = False) -> Path:
    """Own the output directory ``out`` for this command (storage.outputs.claim)."""
    from snn_icl.storage.outputs import claim

    return _CLAIMS.enter_context(claim(out, kind, overwrite=overwrite))


def _overwrite() -> Any:
    return typer.Option(False, "--overwrite",
                        help="Write into --out even if it holds another kind of output.")


def _fail(message: str) -> None:
    lines = [line for line in message.splitlines() if line.strip()] or ["failed"]
    typer.echo(f"error: {' '.join(line.strip() for line in lines)}", err=True)
    raise typer.Exit(2)


def _seed(help_text: str, default: int | None = None) -> Any:
    return typer.Option(default, "--seed", min=0, max=SEED_MAX, help=help_text)


def _device(default: str | None, what: str) -> Any:
    return typer.Option(default, "--device", metavar="cpu|cuda",
                        help=f"Where {what} runs: cpu or cuda (or cuda:N). cuda needs a CUDA "
                        "build of torch and a GPU; the LSNN then runs its torch-ops path (the "
                        "numba kernels are CPU-only). See docs/usage.md, Devices.")


def _protocol(what: str) -> Any:
    return typer.Option(None, "--protocol", help=f"{what}: dmp (the standard evaluation), "
                        "reversal (the platform moves at the start of one trial), probe, "
                        "reference (platforms from a fixed set of places) or cued (the "
                        "visible-platform control) (default: the task's [protocol] table, else "
                        "dmp). See docs/protocols.md.")


def _protocol_set() -> Any:
    return typer.Option([], "--protocol-set", metavar="KEY=VALUE",
                        help="A [protocol] key, e.g. reversal_trial=3 (repeatable; over the "
                        "task's table).")


def _require_episodes(task: Any, episodes: int, record: bool = False) -> None:
    from snn_icl.config import episodes_bytes, require_memory

    require_memory(episodes_bytes(task, episodes, record), f"{episodes} episodes of {task.name}",
                   "ask for fewer --episodes")


def _writable_file(path: Path) -> Path:
    """--out for a single file: not a directory, in a directory that exists or can be made."""
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name (e.g. {path / 'eval.json'})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create {path.parent} for --out: {err.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"--out {path}: the directory {path.parent} is not writable")
    return path


def _publish(out: Path, stem: str, data: dict[str, Any], table: str, figure: Any) -> None:
    """Write out/STEM.json, STEM.md (the table) and STEM.png (the figure); print the table."""
    from snn_icl.storage import files
    from snn_icl.viz import plots

    files.write_json(out / f"{stem}.json", data)
    files.write_text(out / f"{stem}.md", table)
    plots.save(figure, out / f"{stem}.png")
    typer.echo(table)
    typer.echo(f"wrote {out}/{stem}.json, {stem}.md, {stem}.png")


@app.command(short_help="Recorded episodes with frozen weights (paths, spikes).")
@_clean_errors
def simulate(
    task: str = typer.Argument(..., metavar="TASK_OR_CHECKPOINT",
                               help="Task file (tasks/*.toml: untrained weights), or a checkpoint, "
                               "run directory or 'pretrained' (trained weights)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    episodes: int = typer.Option(4, "--episodes", "-n", min=1, help="Episodes to run."),
    seed: int = _seed("Episode seed (default: the task's seed).", None),
    deterministic: bool = typer.Option(False, help="Act with the policy mean (no action noise)."),
    backend: str = typer.Option("torch", "--backend", help="Simulator of the network: torch or "
                                "brian2 (LSNN only; same episodes, float64 neurons)."),
    target: str = typer.Option("auto", "--target", help="brian2 code generation: cython "
                               "(compiled once, cached in ~/.cython/brian_extensions), numpy (no "
                               "compiler) or auto (cython where a compiler works)."),
    protocol: str = _protocol("The episodes' protocol"),
    protocol_set: list[str] = _protocol_set(),
    overwrite: bool = _overwrite(),
) -> None:
    """Run an agent with frozen weights; save trajectories, spikes and thresholds, and the
    protocol the episodes ran under (simulation.json)."""
    from snn_icl.storage import files
    from snn_icl.config import CONFIG_FILE, load_task, task_to_dict
    from snn_icl.experiments.figures import SIMULATION_FILE, SIMULATION_META
    from snn_icl.config import make_agent
    from snn_icl.experiments.simulate import protocol_episodes, simulate as run_sim
    from snn_icl.episodes.measures import behaviour
    from snn_icl.config import protocol_override
    from snn_icl.models import weights_sha256

    if backend not in ("torch", "brian2"):
        raise ValueError(f"--backend must be torch or brian2, got {backend!r}")
    if task.endswith(".toml"):
        from snn_icl.envs.family import family_of, require_water_maze

        cfg = load_task(Path(task))
        require_water_maze(family_of(cfg.env), task, "simulate")
        agent, weights = make_agent(cfg), "untrained (initialised from the task seed)"
    else:
        from snn_icl.storage.checkpoint import load_agent, require_water_maze

        path, = require_water_maze([task], "simulate")
        agent, cfg, counters = load_agent(path)
        weights = f"checkpoint {path} ({counters.get('iteration', '?')} iterations)"
    seed = cfg.seed if seed is None else seed
    env, reset_kwargs, protocol_record = protocol_episodes(
        cfg, protocol_override(cfg, protocol, protocol_set))
    _require_episodes(dataclasses.replace(cfg, env=env), episodes, record=True)
    _claim(out, "simulation", overwrite)
    if backend == "brian2":
        from snn_icl.brian2.export import simulate_brian2

        sim = simulate_brian2(cfg, agent, episodes, seed, target=target, deterministic=deterministic,
                              env=env, **reset_kwargs)
    else:
        sim = run_sim(cfg, agent, episodes, seed, deterministic=deterministic, env=env,
                      **reset_kwargs)
    files.write_toml(out / CONFIG_FILE, task_to_dict(dataclasses.replace(cfg, env=env)))
    files.save_tensors(out / SIMULATION_FILE, sim.without(*SIMULATION_DROPS).tensors())
    summary = behaviour(sim, env, 8)
    files.write_json(out / SIMULATION_META, {
        "task": cfg.name, "source": str(task), "episodes": episodes, "seed": seed,
        "deterministic": deterministic, "weights": weights, "backend": backend,
        "protocol": protocol_record, "probe_trial": protocol_record["probe_trial"],
        "weights_sha256": weights_sha256(agent), "summary": summary, "versions": files.versions()})
    typer.echo(f"wrote {out / SIMULATION_FILE}: {episodes} episodes, "
               f"{summary['goals_per_episode']:.2f} goals per episode")


@app.command(short_help="Meta-train an agent: PPO on the maze, Adam on in-context tasks.")
@_clean_errors
def train(
    task: Path = typer.Argument(..., help="Task file (tasks/*.toml)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (default: runs/TASK-seedS)."),
    seed: int = _seed("Seed (default: the task's seed).", None),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    stop_after: int = typer.Option(None, "--stop-after", min=1,
                                   help="Stop (with a checkpoint) after this many more iterations."),
    iterations: int = typer.Option(None, "--iterations", min=1,
                                   help="Train to this many iterations in all (default: the task's "
                                        "[train] iterations); with --resume, extends a finished "
                                        "run."),
    device: str = _device(None, "training (default: the task's [train] device, else cpu)"),
) -> None:
    """Meta-train the agent (PPO through whole episodes; supervised in-context families: Adam on
    fresh tasks); checkpoints and metrics go to --out. SIGTERM (kill PID) stops it after the
    current iteration with a checkpoint (exit code 143); --resume continues it, and --resume
    --iterations N trains a finished run further (without an lr anneal, as if it had been N
    iterations long from the start; with one, the lr anneals again over the new end)."""
    from snn_icl.config import load_task
    from snn_icl.envs import family as families
    from snn_icl.train.run_dir import train_run

    cfg = load_task(task)
    seed = cfg.seed if seed is None else seed
    out = out if out is not None else Path("runs") / f"{cfg.name}-seed{seed}"
    state = train_run(task, out, seed=seed, resume=resume, stop_after=stop_after, device=device,
                      iterations=iterations)
    unit = "episodes" if families.supervised(cfg.env) is None else "tasks"
    if state.stopped_by is not None:
        typer.echo(f"stopped by {state.stopped_by} after iteration {state.iteration} "
                   f"({state.episodes} {unit}); checkpoint written. Continue with: "
                   f"snn-icl train {task} --out {out} --seed {seed} --resume"
                   + (f" --iterations {iterations}" if iterations is not None else ""), err=True)
        raise typer.Exit(STOPPED_BY_SIGTERM)
    typer.echo(f"trained {state.iteration} iterations ({state.episodes} {unit}, "
               f"{state.wall_time_s / 60:.1f} min); checkpoint in {out}")


@app.command("task", short_help="Print a task file's resolved config: its base files and defaults filled in.")
@_clean_errors
def show_task(
    task: Path = typer.Argument(..., help="Task file (tasks/*.toml)."),
) -> None:
    """Print the config that `snn-icl train TASK` would train, as TOML: the file's `base` chain
    merged in and every default filled in (what a run directory keeps as config.toml)."""
    from snn_icl.config import load_task, task_to_dict
    from snn_icl.storage.files import toml_text

    typer.echo(toml_text(task_to_dict(load_task(task))), nl=False)


@app.command(short_help="The shipped LSNN against its controls: figures, table.")
@_clean_errors
def demo(
    out: Path = typer.Option(Path("demo"), "--out", "-o", help="Folder for the figures and table."),
    episodes: int = typer.Option(64, "--episodes", "-n", min=1, help="Held-out episodes."),
    seed: int = _seed("Evaluation seed.", 1),
    overwrite: bool = _overwrite(),
) -> None:
    """The headline: the shipped LSNN with frozen weights against its controls, figures and table."""
    from snn_icl.api import demo as run_demo

    _claim(out, "demo", overwrite)
    typer.echo(run_demo(out, episodes=episodes, seed=seed))
    typer.echo(f"figures in {out}/: trained_paths.png, trained_raster.png, untrained_paths.png, "
               "latency_by_trial.png")


@app.command(short_help="Held-out evaluation with no-memory and random controls.")
@_clean_errors
def evaluate(
    source: str = typer.Argument(..., help="Checkpoint file, run directory, 'pretrained' (the "
                                 "shipped LSNN), 'pretrained:lstm' or 'pretrained:transformer'."),
    episodes: int = typer.Option(None, "--episodes", "-n", min=1,
                                 help="Held-out episodes (default: the task's [eval] episodes)."),
    seed: int = _seed("Evaluation seed (default: the task's [eval] seed). Seeds 1000000-1000999 "
                      "are test seeds, reserved for final numbers; all others are validation "
                      "seeds.", None),
    out: Path = typer.Option(Path("eval.json"), "--out", "-o", help="Where to write the JSON."),
    protocol: str = _protocol("Evaluation protocol"),
    protocol_set: list[str] = _protocol_set(),
    device: str = _device("cpu", "the evaluation"),
) -> None:
    """Frozen-weight evaluation on held-out platforms, with no-memory and random controls
    (supervised in-context models: regression against exact reference learners; bursty
    classification: ICL on novel classes, with flipped labels, and IWL, docs/icl_bursty.md)."""
    from snn_icl.config import ConfigError, protocol_override, resolve_device
    from snn_icl.envs import family as families
    from snn_icl.storage import files
    from snn_icl.storage.checkpoint import load_agent, provenance, resolve
    from snn_icl.experiments.evaluate import evaluate as run_eval

    where = resolve_device(device)
    _writable_file(out)
    path = resolve(source)
    agent, cfg, counters = load_agent(path, where)
    if families.supervised(cfg.env) is not None:
        if protocol is not None or protocol_set:
            raise ConfigError(f"{source} was trained on the {cfg.env.family} task family: "
                              "protocols are water-maze options")
        _evaluate_supervised(agent, cfg, counters, path, episodes, seed, out)
        return
    chosen = protocol_override(cfg, protocol, protocol_set)
    episodes = cfg.eval.episodes if episodes is None else episodes
    seed = cfg.eval.seed if seed is None else seed
    _require_episodes(cfg, episodes)
    result = run_eval(agent, cfg, episodes, seed, protocol=chosen)
    result = {**provenance(path, cfg, counters), **result, "versions": files.versions()}
    files.write_json(out, result)
    lat = result["latency_by_trial"]
    line = (f"wrote {out} ({result['seed_kind']} seed {seed}), protocol {chosen.name}: "
            f"goals/episode {result['goals_per_episode']:.2f}, latency trial 1 {lat[0]}, ")
    if chosen.name == "reversal":
        r = result["protocol"]["agent"]
        line += (f"reversal trial {r['reversal_trial']}: latency {r['reversal_latency']}, "
                 f"success {r['reversal_success']}, old-zone entries "
                 f"{r['old_zone_entry_fraction']}; next trial latency {r['next_latency']}")
    elif chosen.name == "cued":
        r = result["protocol"]["agent"]
        line += (f"trial 1 visible {r['cued']['latency_by_trial'][0]} / hidden "
                 f"{r['hidden']['latency_by_trial'][0]}, trials 2-4 visible "
                 f"{r['cued']['latency_trials2_4']} / hidden {r['hidden']['latency_trials2_4']}")
    else:
        line += (f"trials 2-4 {result['latency_trials2_4']}, ratio {result['one_shot_ratio']}, "
                 f"probe quadrant {result['probe_target_quadrant_fraction']}")
    if chosen.name == "reference":
        line += (f"; {'novel places' if chosen.novel else 'trained places'} "
                 f"({chosen.n_places} places, places_seed {chosen.places_seed})")
    typer.echo(line)


def _evaluate_supervised(model: Any, cfg: Any, counters: dict[str, Any], path: Path,
                         tasks: int | None, seed: int | None, out: Path) -> None:
    """`evaluate` of an in-context model, per family (--episodes counts test sequences)."""
    from snn_icl.experiments.in_context_families import family_of
    from snn_icl.storage import files
    from snn_icl.storage.checkpoint import provenance

    seed = cfg.eval.seed if seed is None else seed
    fam = family_of(cfg)
    result = fam.evaluate(model, cfg, seed, n_tasks=4096 if tasks is None else tasks)
    if fam.from_training is not None:
        from snn_icl.experiments.compare import training_rows

        result.update(fam.from_training(cfg.env, training_rows(path, counters.get("iteration"))))
    files.write_json(out, {**provenance(path, cfg, counters), **result, "versions": files.versions()})
    typer.echo(f"wrote {out} ({result['seed_kind']} seed {seed}): {fam.summary(result)}")


@app.command("bursty-curves", short_help="Bursty ICL/IWL learning curves: table and figure.")
@_clean_errors
def bursty_curves(
    source: Path = typer.Argument(..., metavar="DIR",
                                  help="A directory of metrics CSVs of bursty-classification "
                                  "runs (*_metrics.csv, e.g. snn_icl/pretrained/icl_bursty) or "
                                  "of run directories (*/metrics.csv)."),
    out: Path = typer.Option(Path("bursty_curves"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """When in-context learning emerges and whether it lasts, per run: iteration at which
    novel-class ICL first reaches 0.9, peaks and final values of ICL and IWL (curves.md,
    curves.json), and the three held-out accuracies along training (curves.png;
    docs/icl_bursty.md)."""
    from snn_icl.envs.icl_bursty import BurstyConfig
    from snn_icl.experiments.icl_bursty import MEASURES, curve_summary, curves_table, read_curves
    from snn_icl.viz.icl import plot_bursty_curves

    if not source.is_dir():
        raise ValueError(f"{source}: not a directory")
    paths = {p.name.removesuffix("_metrics.csv"): p for p in sorted(source.glob("*_metrics.csv"))}
    paths.update({p.parent.name: p for p in sorted(source.glob("*/metrics.csv"))})
    if not paths:
        raise ValueError(f"{source} holds no *_metrics.csv and no */metrics.csv")
    curves, summaries = {}, {}
    for name, path in paths.items():
        try:
            curves[name] = read_curves(path)
        except KeyError as err:
            raise ValueError(f"{path} has no column {err} (not a bursty-classification run)") from None
        if not curves[name]["iteration"]:
            raise ValueError(f"{path} has no tracked rows (columns {', '.join(MEASURES)})")
        summaries[name] = curve_summary(curves[name])
    _claim(out, "bursty-curves", overwrite)
    _publish(out, "curves", summaries, curves_table(summaries),
             plot_bursty_curves(curves, 1 / BurstyConfig().n_labels))


@app.command("icl-track", short_help="In-context regression runs' training track against GD.")
@_clean_errors
def icl_track(
    sources: list[Path] = typer.Argument(..., metavar="SOURCE...",
                                         help="Metrics CSVs of in-context regression runs "
                                         "(a run's metrics.csv, or shipped *_metrics.csv), or "
                                         "directories searched for them (run or sweep "
                                         "directories, e.g. snn_icl/pretrained/icl_regression/"
                                         "flagged_small_d)."),
    out: Path = typer.Option(Path("icl_track"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """When each run's held-out loss (the training track: 1,024 tasks of the track seed, k = N)
    reaches one step of gradient descent on the same tasks, and how low it goes: per run, the
    ratio at the end and at best and the first tracked iteration at or below one GD step
    (track.md, track.json), and the ratio against training tasks, one colour per d (track.png;
    docs/icl_regression.md). A run directory's config.toml gives its tasks; a CSV alone is
    taken as the family's defaults at its d (N = 10, x ~ U(-1, 1)^d, w ~ N(0, I), no noise)."""
    from snn_icl.experiments.icl_regression_track import (read_track, track_config,
                                                           track_references, track_summary,
                                                           track_table)
    from snn_icl.viz.icl import plot_regression_track

    paths: dict[str, Path] = {}
    for src in sources:
        if src.is_dir():
            found = sorted(src.rglob("*metrics.csv"))
            if not found:
                raise ValueError(f"{src} holds no metrics.csv and no *_metrics.csv")
            for p in found:
                rel = p.relative_to(src)
                name = str(rel.parent) if p.name == "metrics.csv" else str(rel).removesuffix("_metrics.csv")
                if name == ".":  # src is the run directory itself
                    name = src.name
                elif len(sources) > 1:
                    name = f"{src.name}/{name}"
                paths[name] = p
        elif src.is_file():
            paths[src.parent.name if src.name == "metrics.csv"
                  else src.name.removesuffix("_metrics.csv").removesuffix(".csv")] = src
        else:
            raise ValueError(f"{src}: no such file or directory")
    curves, summaries, refs = {}, {}, {}
    for name, path in paths.items():
        curves[name] = read_track(path)
        cfg = track_config(path, curves[name]["d"])
        if cfg not in refs:
            refs[cfg] = track_references(cfg)
        summaries[name] = track_summary(curves[name], refs[cfg])
    _claim(out, "icl-track", overwrite)
    _publish(out, "track", {"runs": summaries, "curves": curves}, track_table(summaries),
             plot_regression_track(curves, summaries))


@app.command("bursty-map", short_help="Bursty ICL/IWL at the end of training against K, B, eps, alpha.")
@_clean_errors
def bursty_map(
    sources: list[str] = typer.Argument(..., metavar="AXIS=REPORT[,REPORT...]",
                                        help="An axis (n_classes, burstiness, eps or alpha) and the "
                                        "sweep reports (directories of `snn-icl report`, or their "
                                        "report.json) whose conditions vary it; one panel per axis."),
    out: Path = typer.Option(Path("bursty_map"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """Reddy (2023)'s data-dependence map: held-out novel-class ICL, flipped-label ICL and IWL
    accuracy at the end of training against K, B, eps or alpha, mean and 95 % CI across
    training seeds, one panel per axis (map.md, map.json, map.png; docs/icl_bursty.md)."""
    from snn_icl.envs.icl_bursty import BurstyConfig
    from snn_icl.experiments.icl_bursty_map import AXES, map_points, map_table
    from snn_icl.storage import files
    from snn_icl.viz.icl import plot_bursty_map

    usage = f"give AXIS=REPORT[,REPORT...] with AXIS one of {', '.join(AXES)}"
    rows: dict[str, list[dict]] = {}
    for item in sources:
        axis, reports = _pooled(item, usage)
        if axis not in AXES:
            raise ValueError(f"{item!r}: {usage}")
        for report in reports:
            path = Path(report)
            path = path / "report.json" if path.is_dir() else path
            if not path.is_file():
                raise ValueError(f"{report}: no report.json (give a directory of `snn-icl report`)")
            rows.setdefault(axis, []).extend(files.read_json(path).get("rows", []))
    panels = {axis: map_points(r, axis) for axis, r in rows.items()}
    empty = [axis for axis, groups in panels.items() if not groups]
    if empty:
        raise ValueError(f"no bursty-classification condition varies {', '.join(empty)} in the "
                         "reports given")
    _claim(out, "bursty-map", overwrite)
    _publish(out, "map", panels, map_table(panels),
             plot_bursty_map(panels, 1 / BurstyConfig().n_labels, AXES))


@app.command(short_help="Several agents on the same episodes: table and figure.")
@_clean_errors
def compare(
    sources: list[str] = typer.Argument(..., help="Checkpoints, run directories or pretrained[:kind]."),
    episodes: int = typer.Option(256, "--episodes", "-n", min=1, help="Held-out episodes per model."),
    seed: int = _seed("Evaluation seed (the same episodes for every model).", 1),
    out: Path = typer.Option(Path("compare"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """Evaluate several trained agents on the same episodes: table (Markdown, CSV) and figure."""
    from snn_icl.storage import files
    from snn_icl.viz import plots
    from snn_icl.config import seed_kind
    from snn_icl.experiments.compare import compare as run_compare, csv_table, markdown_table
    from snn_icl.storage.checkpoint import require_water_maze

    require_water_maze(sources, "compare")
    _claim(out, "compare", overwrite)
    rows, results = run_compare(sources, episodes, seed)
    files.write_text(out / "compare.md", markdown_table(rows))
    files.write_text(out / "compare.csv", csv_table(rows))
    files.write_json(out / "compare.json", {"episodes": episodes, "seed": seed,
                                            "seed_kind": seed_kind(seed), "results": results})
    plots.save(plots.plot_comparison(results), out / "compare.png")
    typer.echo(markdown_table(rows))
    typer.echo(f"wrote {out}/compare.md, compare.csv, compare.json, compare.png")


@app.command("time-to-targets", short_help="A run's snapshots on held-out episodes: time to each target.")
@_clean_errors
def time_to_targets(
    runs: list[str] = typer.Argument(..., metavar="LABEL=RUN | RUN",
                                     help="Run directories trained with [train] snapshot_every "
                                     "(optionally labelled for the figure), or LABEL.json files "
                                     "this command wrote before (drawn as they are, on the same "
                                     "seeds and episodes)."),
    seeds: str = typer.Option("5", "--seeds", help="Evaluation seeds: 5, 0-2 or 1000000,1000001. "
                              "A target is met when every seed meets it."),
    episodes: int = typer.Option(256, "--episodes", "-n", min=1, help="Held-out episodes per seed."),
    budget: float = typer.Option(None, "--budget-min", min=0,
                                 help="A time budget (min) drawn on the figure."),
    out: Path = typer.Option(Path("time_to_targets"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """Evaluate every snapshot of a run (and its final checkpoint) frozen on held-out episodes and
    give the training time (iterations, env steps, the run's wall time) at which each one-shot
    target, and all of them, is first met and met from then on (LABEL.md, LABEL.json, one figure
    for all runs: targets.png; docs/speed.md#time-to-a-trained-one-shot-lsnn)."""
    from snn_icl.config import NAME_PATTERN
    from snn_icl.experiments.sweep import parse_seeds
    from snn_icl.experiments.time_to_targets import (load_result, markdown, snapshots,
                                                     time_to_targets as run_ttt)
    from snn_icl.storage.checkpoint import require_water_maze
    from snn_icl.storage import files
    from snn_icl.viz import plots
    from snn_icl.viz.targets import plot_time_to_targets

    seed_list = parse_seeds(seeds)
    labelled = {}
    for item in runs:
        label, path = _label_split(item)
        path_ = Path(path)
        saved = path_.suffix == ".json"
        label = label or (path_.stem if saved else path_.name)
        if not NAME_PATTERN.fullmatch(label):
            raise ValueError(f"{item}: the label {label!r} must be a file name (letters, digits, "
                             "'_', '.', '+', '-')")
        if label in labelled:
            raise ValueError(f"two runs are labelled {label!r}; name them LABEL=RUN")
        if saved:  # every source checked before anything is evaluated or written
            labelled[label] = load_result(path_, episodes, seed_list)
        else:
            require_water_maze([str(snapshots(path_)[-1])], "time-to-targets")
            labelled[label] = path_
    _claim(out, "time-to-targets", overwrite)
    results = {}
    for label, source in labelled.items():
        results[label] = source if isinstance(source, dict) else run_ttt(source, episodes, seed_list)
        table = markdown(results[label])
        files.write_text(out / f"{label}.md", table)
        files.write_json(out / f"{label}.json", results[label])
        typer.echo(f"{label}:\n{table}")
    plots.save(plot_time_to_targets(results, budget_min=budget), out / "targets.png")
    typer.echo(f"wrote {out}/" + ", ".join(f"{k}.md, {k}.json" for k in results) + ", targets.png")


@app.command(short_help="Behaviour along training: every snapshot under one or more protocols.")
@_clean_errors
def course(
    sources: list[str] = typer.Argument(..., metavar="RUN | LABEL=RUN,RUN,... | SWEEP_DIR",
                                        help="Run directories trained with [train] snapshot_every: "
                                        "single runs, LABEL=RUN,RUN,... (one condition over "
                                        "training seeds; a member may be a sweep's setting "
                                        "directory SWEEP/TASK/SETTING, for its seeds) or a sweep "
                                        "directory (one condition per task and setting)."),
    views: list[str] = typer.Option([], "--view", metavar="NAME[:KEY=VALUE,...]",
                                    help="A protocol view, e.g. 'trained' and "
                                    "'novel:novel=true' (repeatable; default: one view, "
                                    "'default', with the run's own [protocol] table)."),
    protocol: str = _protocol("Every view"),
    protocol_set: list[str] = _protocol_set(),
    every: int = typer.Option(1, "--every", min=1, help="Every N-th snapshot (the last always)."),
    episodes: int = typer.Option(256, "--episodes", "-n", min=1,
                                 help="Held-out episodes per snapshot and view."),
    seed: int = _seed("Evaluation seed (the same episodes at every snapshot).", 1),
    workers: int = typer.Option(1, "--workers", min=1, help="Runs evaluated at once, one process "
                                "and torch thread each."),
    out: Path = typer.Option(Path("course"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """Evaluate every snapshot of each run frozen on held-out episodes under each view and draw
    trial-1 latency, success, trials 2-4 latency, one-shot ratio and probe preference against
    training iterations, mean and 95 % t-band across training seeds (course.json, course.md,
    course.png; docs/protocols.md, the reference memory along training)."""
    from snn_icl.experiments.time_to_targets import snapshots
    from snn_icl.experiments.training_course import courses, markdown, parse_view, pool
    from snn_icl.storage.checkpoint import require_water_maze
    from snn_icl.storage import files
    from snn_icl.viz.course import plot_course

    groups, singles = _retention_sources(sources)
    for single in singles:
        if Path(single).name in groups:
            raise ValueError(f"two conditions are labelled {Path(single).name!r}; name them LABEL=RUN")
        groups[Path(single).name] = [single]
    runs = {label: [Path(m) for m in members] for label, members in groups.items()}
    parsed = dict(parse_view(v) for v in views) if views else {"default": []}
    if views and len(parsed) != len(views):
        raise ValueError("two --view options share a name")
    for members in runs.values():
        for run in members:
            require_water_maze([str(snapshots(run)[-1])], "course")  # every run checked first
    settings = {name: list(protocol_set) + extra for name, extra in parsed.items()}
    _claim(out, "course", overwrite)
    pooled = pool(courses(runs, settings, episodes, seed, protocol=protocol, every=every,
                          workers=workers))
    pooled["versions"] = files.versions()
    _publish(out, "course", pooled, markdown(pooled), plot_course(pooled))


@app.command("protocol-figure", short_help="One protocol's evaluations: table and figure.")
@_clean_errors
def protocol_figure(
    groups: list[str] = typer.Argument(..., metavar="LABEL=EVAL.json[,EVAL.json...]",
                                       help="Evaluations of one protocol (snn-icl evaluate "
                                       "--protocol ...), by agent; several files after one label "
                                       "are that agent's training seeds, pooled."),
    out: Path = typer.Option(Path("protocol"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """Latency by trial and the protocol's score per agent, mean and 95 % t-interval across
    training seeds (protocol.png, protocol.md, protocol.json; docs/protocols.md)."""
    from snn_icl.experiments.protocol_summary import markdown, summarise
    from snn_icl.viz.protocols import plot_protocol

    pooled: dict[str, list[dict[str, Any]]] = {}
    for group in groups:
        label, paths = _pooled(group, "expected LABEL=EVAL.json[,EVAL.json...]")
        if label in pooled:
            raise ValueError(f"label {label!r} is given twice")
        pooled[label] = [_eval_json(Path(p)) for p in paths]
    summary = summarise(pooled)
    _claim(out, "protocol-figure", overwrite)
    _publish(out, "protocol", summary, markdown(summary), plot_protocol(summary))


def _eval_json(path: Path) -> dict[str, Any]:
    """An evaluation JSON of the water maze (one line naming the file when it is not one)."""
    import json

    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a JSON file ({err})") from None
    if not isinstance(result, dict) or "latency_by_trial" not in result:
        raise ValueError(f"{path} is not a water-maze evaluation (snn-icl evaluate output)")
    return result


@app.command(short_help="Memory across a dark delay after trial 1.")
@_clean_errors
def retention(
    sources: list[str] = typer.Argument(None, help="Checkpoints, run directories, pretrained[:kind], "
                                        "LABEL=SRC,SRC,... (one condition over training seeds: mean "
                                        "and 95 % CI; a SRC may be a sweep's SWEEP/TASK/SETTING "
                                        "directory, for its seeds) or a sweep directory (one "
                                        "condition per task). None with --add-to: that output "
                                        "drawn again, nothing measured."),
    delays: str = typer.Option(None, "--delays", help="Comma-separated dark delays after trial 1 "
                               "(env steps; default: snn_icl.experiments.retention.DEFAULT_DELAYS, 0 to 400)."),
    episodes: int = typer.Option(128, "--episodes", "-n", min=1, help="Held-out episodes per point."),
    seed: int = _seed("Evaluation seed (the same episodes for every model).", 1),
    out: Path = typer.Option(Path("retention"), "--out", "-o", help="Output directory."),
    every_trial: bool = typer.Option(False, "--every-trial", help="The delay after every trial "
                                     "(delayed matching to place with dark inter-trial "
                                     "intervals: trial-2 latency and one-shot ratio against the "
                                     "delay), not after trial 1 only."),
    probe: bool = typer.Option(False, "--probe", help="Also run trial 2 as a probe (no "
                               "platform) after each delay: target-quadrant fraction per delay."),
    workers: int = typer.Option(1, "--workers", min=1, help="Networks measured at once, one "
                                "process and torch thread each."),
    add_to: Path = typer.Option(None, "--add-to", help="A retention output whose networks join "
                                "this table and figure without being measured again (same "
                                "delays, episodes, seed and options)."),
    overwrite: bool = _overwrite(),
) -> None:
    """Memory across a dark delay after trial 1, for each agent (table and figure).

    Trial-2 latency against the delay, with each agent's span marked (transformer context
    window, LSNN tau_a): retention.json, retention.md and retention.png. With --every-trial the
    delay follows every trial (the DMP delay curve of docs/protocols.md), and the one-shot ratio
    is reported too. With --probe, or conditions pooled over training seeds (LABEL=SRC,... or a
    sweep directory), retention_curves.png shows trial-2 latency, success and probe preference
    with 95 % CIs across seeds (docs/silent_memory.md).
    """
    from snn_icl.storage import files
    from snn_icl.viz import plots
    from snn_icl.storage.checkpoint import display_names, require_water_maze
    from snn_icl.config import seed_kind
    from snn_icl.experiments.retention import (DEFAULT_DELAYS, combine_seeds, markdown_table,
                                               retention_many, single_probe)

    if not sources and add_to is None:
        raise ValueError("give the networks to measure, or --add-to RETENTION to draw an "
                         "earlier output again")
    try:
        steps = list(DEFAULT_DELAYS) if delays is None else [int(x) for x in delays.split(",")]
    except ValueError:
        raise ValueError(f"--delays must be comma-separated integers, got {delays!r}") from None
    groups, singles = _retention_sources(sources or [])
    flat = singles + [m for members in groups.values() for m in members]
    require_water_maze(flat, "retention")  # every checkpoint found and checked before any work
    if sources:
        earlier = _earlier_retention(add_to, steps, episodes, seed, every_trial, probe)
    else:  # no networks: that output drawn again, as it was measured
        saved = _earlier_retention_file(add_to)
        earlier, episodes, seed = saved["results"], saved.get("episodes"), saved.get("seed")
        probe = all("probe_trial2" in r or "probe_quadrant" in r for r in earlier.values())
    _claim(out, "retention", overwrite)
    measured = iter(retention_many(flat, steps, episodes, seed, workers=workers,
                                   every_trial=every_trial, probe=probe) if flat else [])
    results = dict(earlier)
    for name in (display_names(singles) if singles else []):
        results[name] = next(measured)
    for label, members in groups.items():
        results[label] = combine_seeds([next(measured) for _ in members])
    if probe or groups or any(r.get("n_seeds", 1) > 1 for r in results.values()):
        plots.save(plots.plot_delay_curves({k: single_probe(r) for k, r in results.items()}),
                   out / "retention_curves.png")
    _publish(out, "retention", {"episodes": episodes, "seed": seed, "seed_kind": seed_kind(seed),
                                "results": results, "versions": files.versions()},
             markdown_table(results), plots.plot_retention(results))


@app.command("silent-memory", short_help="Is the memory across a silent delay activity-silent?")
@_clean_errors
def silent_memory(
    sources: list[str] = typer.Argument(None, help="An LSNN: checkpoint, run directory or "
                                        "pretrained[:kind] (default pretrained:lsnn_delay); or "
                                        "several, or LABEL=SRC,SRC,... (one condition over "
                                        "training seeds), pooled with 95 % CIs."),
    delay: int = typer.Option(100, "--delay", min=1, help="Dark delay after trial 1 (env steps)."),
    episodes: int = typer.Option(256, "--episodes", "-n", min=8, help="Held-out episodes."),
    seed: int = _seed("Evaluation seed.", 1),
    out: Path = typer.Option(Path("silent_memory"), "--out", "-o", help="Output directory."),
    paired_to: str = typer.Option(None, "--paired-to", help="A condition LABEL: every other "
                                  "condition's memory minus its, network by network in the "
                                  "order given (same starting weights or training seed)."),
    overwrite: bool = _overwrite(),
) -> None:
    """Rates during a dark delay against swimming, decoding of the platform from a, v and spikes
    along it, the membrane potential below threshold along it (and its episode-specific part),
    resets of a or of v/z and swaps of a or of v/z with another episode's at its end, and the
    bytes of state the memory costs: silent_memory.json, .md and .png (docs/silent_memory.md).

    With several networks or LABEL=SRC,SRC,... conditions, every network is measured on the same
    episodes and each condition is pooled: means with 95 % t-intervals across its networks, the
    causal tests as changes from intact per network."""
    from snn_icl.config import seed_kind
    from snn_icl.experiments import silent_memory as sm
    from snn_icl.experiments import silent_memory_pooled as smp
    from snn_icl.storage import files
    from snn_icl.storage.checkpoint import display_names, load_agent, require_water_maze
    from snn_icl.viz.silent import plot_silent_memory, plot_silent_memory_pooled

    sources = sources or ["pretrained:lsnn_delay"]
    groups, singles = _retention_sources(sources)
    conditions = {name: [src] for name, src in zip(display_names(singles), singles)}
    conditions.update(groups)
    if paired_to is not None:  # checked before any network is loaded or measured
        smp.check_pairing({label: len(members) for label, members in conditions.items()},
                          paired_to)
    flat = [src for group in conditions.values() for src in group]
    loaded = dict(zip(flat, map(load_agent, require_water_maze(flat, "silent-memory"))))
    for src, (agent, _, _) in loaded.items():  # every network checked before any work
        if not getattr(agent, "spiking", False) or agent.kind != "lsnn":
            raise ValueError(f"{src}: silent-memory needs an LSNN, not a {agent.kind!r} agent")
    _claim(out, "silent-memory", overwrite)
    if len(loaded) == 1 and not groups:
        (src, (agent, task, _)), = loaded.items()
        result, data = sm.silent_memory(agent, task, delay, episodes, seed)
        result = {"source": str(src), "seed_kind": seed_kind(seed), **result,
                  "versions": files.versions()}
        _publish(out, "silent_memory", result, sm.markdown(result), plot_silent_memory(result, data))
        return
    pooled = {}
    for label, members in conditions.items():
        results = []
        for src in members:
            agent, task, _ = loaded[src]
            result, _ = sm.silent_memory(agent, task, delay, episodes, seed)
            results.append({"source": str(src), **result})
        pooled[label] = smp.pool(results)
    differences = None if paired_to is None else smp.paired(pooled, paired_to)
    text = smp.markdown(pooled, seed_kind(seed), paired_to, differences)
    extra = {} if paired_to is None else {"paired_to": paired_to, "paired": differences}
    _publish(out, "silent_memory",
             {"seed_kind": seed_kind(seed), "conditions": pooled, **extra, "versions": files.versions()},
             text, plot_silent_memory_pooled(pooled, silent_ratio=sm.SILENT_RATIO))


@app.command("icl-readouts", short_help="In-context regression: what the state holds, what the read-out uses.")
@_clean_errors
def icl_readouts(
    sources: list[str] = typer.Argument(..., help="In-context regression models: checkpoints or "
                                        "run directories, each optionally LABEL=SRC."),
    tune_tasks: int = typer.Option(32768, "--tune-tasks", min=8, help="Held-out tasks the "
                                   "read-outs are fitted on (the context ceilings need many)."),
    tasks: int = typer.Option(4096, "--tasks", "-n", min=1, help="Held-out test tasks."),
    seed: int = _seed("Evaluation seed.", 1),
    out: Path = typer.Option(Path("icl_readouts"), "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """Each model's loss against the best ridge read-out of y_q from each of its states at the
    query, and (LSTM, LSNN) from each state after the context combined bilinearly with x_q, beside
    one GD step and the exact X^T Y read out the same way: readouts.json, .md and .png
    (docs/icl_regression.md, "What limited the LSNN")."""
    from snn_icl.experiments import icl_readouts as ir
    from snn_icl.storage import files
    from snn_icl.storage.checkpoint import display_names, load_agent, resolve
    from snn_icl.viz.icl import plot_readouts

    labelled = [_label_split(item) for item in sources]
    names = display_names([src for _, src in labelled])
    names = [label or name for (label, _), name in zip(labelled, names)]
    if len(set(names)) != len(names):
        raise ValueError(f"icl-readouts: the labels {names} are not distinct")
    loaded = {name: load_agent(resolve(src)) for name, (_, src) in zip(names, labelled)}
    for name, (_, task, _) in loaded.items():  # every model checked before any work
        ir.require_regression(name, task)
    _claim(out, "icl-readouts", overwrite)
    results = {name: ir.icl_readouts(agent, task, seed, tune_tasks=tune_tasks, test_tasks=tasks)
               for name, (agent, task, _) in loaded.items()}
    _publish(out, "readouts", {"models": results, "versions": files.versions()},
             ir.markdown(results), plot_readouts(results))


def _earlier_retention(path: Path | None, delays: list[int], episodes: int, seed: int,
                       every_trial: bool, probe: bool) -> dict[str, Any]:
    """The results of an earlier `snn-icl retention` output (``--add-to``), checked to be
    measured the same way; {} without one."""
    if path is None:
        return {}
    saved = _earlier_retention_file(path)
    results = saved["results"]
    file = path / "retention.json" if path.is_dir() else path
    dark = "after every trial" if every_trial else "after trial 1"
    for name, r in results.items():
        same = (r.get("delays") == delays and saved.get("episodes") == episodes
                and saved.get("seed") == seed and r.get("dark") == dark
                and (("probe_trial2" in r or "probe_quadrant" in r) == probe))
        if not same:
            raise ValueError(f"--add-to {file}: {name} was measured at other delays, episodes, "
                             "seed or options; measure it again with these")
    return results


def _earlier_retention_file(path: Path) -> dict[str, Any]:
    """The contents of an earlier `snn-icl retention` output's retention.json (``path``: it or
    its directory), checked to hold at least one result."""
    from snn_icl.storage import files

    file = path / "retention.json" if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"--add-to {path}: no retention.json there")
    saved = files.read_json(file)
    if not isinstance(saved, dict) or not saved.get("results"):
        raise ValueError(f"--add-to {file}: it holds no results")
    return saved


def _label_split(item: str) -> tuple[str, str]:
    """``LABEL=SRC`` -> (LABEL, SRC); anything else -> ("", item). A sweep's run paths hold "="
    (``SWEEP/TASK/lr=0.001/seed0``), so an item that exists, or whose text before its first "="
    holds a "/", is a path, not a label."""
    label, sep, source = item.partition("=")
    if not sep or Path(item).exists() or "/" in label:
        return "", item
    return label, source


def _pooled(item: str, usage: str) -> tuple[str, list[str]]:
    """``LABEL=A,B,...`` -> (label, [A, B, ...]): one condition over training seeds."""
    from snn_icl.experiments.sweep import split_values

    label, sep, rest = item.partition("=")
    members = [m for m in split_values(rest) if m]
    if not sep or not label or not members:
        raise ValueError(f"{item!r}: {usage}")
    return label, members


def _runs_of(member: str) -> list[str]:
    """A member of ``LABEL=...``: a run; a sweep's setting directory (``SWEEP/TASK/SETTING``:
    its finished seeds); or a sweep of one condition (its finished runs)."""
    from snn_icl.experiments.retention import sweep_groups
    from snn_icl.experiments.sweep import SWEEP_FILE

    path = Path(member)
    if not path.is_dir() or (path / "run.json").is_file():
        return [member]
    if (path / SWEEP_FILE).is_file():
        groups = sweep_groups(path)
        if len(groups) > 1:
            raise ValueError(f"{path} holds {len(groups)} conditions ({', '.join(groups)}); "
                             f"pool one of them as LABEL={path}/TASK/SETTING")
        return [str(r) for r in next(iter(groups.values()))]
    sweep = path.parent.parent  # SWEEP/TASK/SETTING: the sweep's finished runs in this setting
    runs = ([str(r) for group in sweep_groups(sweep).values() for r in group if r.parent == path]
            if (sweep / SWEEP_FILE).is_file() else [])
    if not runs:
        raise ValueError(f"{path}: neither a run nor a sweep setting with a finished run")
    return runs


def _retention_sources(sources: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Conditions pooled over training seeds (``LABEL=SRC,SRC,...``, or a sweep directory: one
    condition per task and setting) and single networks, in the order given."""
    from snn_icl.experiments.retention import sweep_groups
    from snn_icl.experiments.sweep import SWEEP_FILE

    groups: dict[str, list[str]] = {}
    singles: list[str] = []
    for source in sources:
        if Path(source).is_dir() and (Path(source) / SWEEP_FILE).is_file():
            groups.update({k: [str(p) for p in v] for k, v in sweep_groups(source).items()})
        elif _label_split(source) != ("", source):  # LABEL=... (an empty LABEL is refused)
            label, members = _pooled(source, "a pooled condition is LABEL=SRC,SRC,...")
            groups[label] = [run for m in members for run in _runs_of(m)]
        else:
            singles.append(source)
    return groups, singles


@app.command("export-brian2", short_help="The LSNN as a standalone Brian2 script with weights.")
@_clean_errors
def export_brian2(
    source: str = typer.Argument(..., metavar="CHECKPOINT",
                                 help="LSNN checkpoint file, run directory or 'pretrained'."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
) -> None:
    """Write the LSNN as a standalone Brian2 script with its weights (no snn_icl needed).

    The script needs only brian2 and numpy; beside it: the weights (.npz, .json), a reference
    input with the torch spikes, and a README.txt.
    """
    from snn_icl.brian2.export import SCRIPT_NAME, export

    _claim(out, "Brian2 export", overwrite)
    export(source, out)
    typer.echo(f"wrote {out}: {SCRIPT_NAME}, weights.npz, params.json, reference_input.npy, "
               f"reference_spikes.npy, README.txt; run: python {out / SCRIPT_NAME} --episodes 4")


@app.command("export-nwb", short_help="One simulated episode as an NWB file (pynwb).")
@_clean_errors
def export_nwb(
    sim_dir: Path = typer.Argument(..., metavar="SIM_DIR", help="Simulation directory "
                                   "(snn-icl simulate)."),
    out: Path = typer.Option(..., "--out", "-o", help="NWB file to write (e.g. episode.nwb)."),
    episode: int = typer.Option(0, "--episode", min=0, help="Episode to export (one file per "
                                "episode: loop over --episode for a multi-episode run)."),
) -> None:
    """Write one episode of a simulation as a Neurodata Without Borders file: spikes (Units),
    swim path, trials, adaptive thresholds, the agent as subject, the task in the notes."""
    from snn_icl.experiments.nwb import export_nwb as run_export

    _writable_file(out)
    try:
        done = run_export(sim_dir, out, episode)
    except ModuleNotFoundError as err:  # pynwb missing: one line naming the extra
        raise ValueError(str(err)) from None
    typer.echo(f"wrote {out}: episode {done['episode']}, {done['units']} units, {done['spikes']} "
               f"spikes, {done['trials']} trials, {done['seconds']:g} s")


@app.command(short_help="Where the memory lives: decoding, ablations, fields.")
@_clean_errors
def analyze(
    sources: list[str] = typer.Argument(..., metavar="CHECKPOINT...",
                                        help="Checkpoints, run directories or pretrained[:kind]."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    overwrite: bool = _overwrite(),
    episodes: int = typer.Option(64, "--episodes", "-n", min=8,
                                 help="Held-out episodes per agent (cross-validation needs >= 8)."),
    seed: int = _seed("Evaluation seed (the same episodes for every model).", 1),
) -> None:
    """Where the memory lives: decoding, ablations, place fields, attention retrieval.

    Platform decoding from state variables, reset/swap ablations with frozen weights, spatial
    information and attention retrieval, on the same episodes for every agent (analysis.json
    and figures).
    """
    from snn_icl.experiments.analyze import analyze as run_analyze
    from snn_icl.storage.checkpoint import require_water_maze

    require_water_maze(sources, "analyze")
    _claim(out, "analysis", overwrite)
    result = run_analyze(sources, out, episodes, seed)
    for name, a in result["agents"].items():
        dec = a["decoding"]
        errors = {k: v["release_error"] for k, v in dec["variables"].items()
                  if v["release_error"] is not None}
        typer.echo(f"{name}: platform decoding error at release points (pool radii; chance "
                   f"{dec['release_chance_mean_prediction']:.2f}): "
                   + ", ".join(f"{k} {v:.2f}" for k, v in errors.items()))
        typer.echo("  latency trial 2 / trials 2-4, share heading to / reaching first the "
                   "partner's platform: "
                   + "; ".join(f"{c} {v['latency_trial2']}/{v['latency_trials2_4']} "
                               f"{v['toward_other_fraction']:.2f}/"
                               f"{_fraction(v.get('other_zone_first_fraction'))}"
                               for c, v in a["ablations"].items()
                               if v["toward_other_fraction"] is not None))
    typer.echo(f"wrote {out}/analysis.json and {len(result['figures'])} figures")


def _fraction(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


@app.command(short_help="Swim paths, rasters and a run's learning curve.")
@_clean_errors
def plot(
    run: Path = typer.Argument(..., help="A directory from `snn-icl simulate` or `snn-icl train`."),
    episode: int = typer.Option(0, "--episode", "-e", min=0, help="Which episode to draw."),
    max_trials: int = typer.Option(None, "--max-trials",
                                   help="Draw only the first trials (trained runs: 4)."),
    fmt: str = typer.Option("png", "--format", help="png or pdf."),
) -> None:
    """Draw swim paths and the spike raster with thresholds (training runs: more figures).

    For a training run also the learning curve, the probe-trial occupancy and, with
    RUN/eval.json, latency by trial.
    """
    from snn_icl.experiments.figures import figures_for
    from snn_icl.storage.checkpoint import CHECKPOINT_FILE, require_water_maze

    if (run / CHECKPOINT_FILE).is_file():  # a training run: its figures are the maze's
        require_water_maze([str(run)], "plot")
    for path in figures_for(run, episode, fmt, max_trials):
        typer.echo(f"wrote {path}")


@app.command(short_help="Train a grid of tasks x seeds x settings (local or Slurm).")
@_clean_errors
def sweep(
    tasks: list[Path] = typer.Argument(..., metavar="TASK.toml", help="Task files."),
    seeds: str = typer.Option(..., "--seeds", help="Training seeds: 0-4, 0,2,5 or a mix."),
    sets: list[str] = typer.Option([], "--set", metavar="TABLE.KEY=V1,V2",
                                   help="Values to sweep (TOML scalars), e.g. train.lr=1e-3,3e-4; "
                                   "repeat for more keys (the grid is every combination)."),
    out: Path = typer.Option(..., "--out", "-o", help="Sweep directory."),
    backend: str = typer.Option("local", "--backend", help="local (a process pool) or slurm "
                                "(a Slurm job array through submitit: pip install 'snn-icl[sweep]')."),
    workers: int = typer.Option(None, "--workers", min=1, help="Runs at once (local: default the "
                                "number of cores; slurm: the array's parallelism)."),
    stop_after: int = typer.Option(None, "--stop-after", min=1,
                                   help="Stop every run (with a checkpoint) after this many more "
                                   "iterations; the next sweep resumes them."),
    partition: str = typer.Option(None, "--partition", help="Slurm partition (default: the task "
                                  "files' [sweep] partition, else Slurm's default)."),
    time_min: int = typer.Option(None, "--time-min", min=1, help="Slurm time limit per run, "
                                 "minutes (default: [sweep] time_min, else 60)."),
    cpus: int = typer.Option(None, "--cpus", min=1, help="Slurm CPUs per run, also its torch "
                             "threads (default: [sweep] cpus, else 1)."),
    gpus: int = typer.Option(None, "--gpus", min=0, help="Slurm GPUs per run (default: [sweep] "
                             "gpus, else 0)."),
    device: str = typer.Option(None, "--device", metavar="cpu|cuda",
                               help="Where every run trains: cpu or cuda (default: each task's "
                               "[train] device, else cpu). Local runs share this machine's GPU; "
                               "on Slurm, --device cuda asks for one GPU per run unless --gpus "
                               "says otherwise."),
    cluster: str = typer.Option(None, "--cluster", hidden=True,
                                help="submitit cluster for --backend slurm: slurm, local or debug "
                                "(tests run the slurm path with local)."),
) -> None:
    """Train a grid of runs: task files x --set values x seeds, one run directory each.

    Runs go to OUT/TASK/SETTING/seedS (SETTING names the values, e.g. lr=0.001,tau_a=600), each
    with its own output in train.log; OUT/sweep.json records the grid and every run's status.
    Running the same command again skips finished runs and resumes stopped or killed ones from
    their checkpoints. A failed run does not stop the others; the exit code is then 2. SIGTERM
    (kill PID) stops the running runs after their current iteration with a checkpoint and
    starts no other (exit code 143).
    """
    from tqdm.auto import tqdm

    from snn_icl.experiments import sweep as sw

    if backend not in ("local", "slurm"):
        raise ValueError(f"--backend must be local or slurm, got {backend!r}")
    if cluster not in (None, "slurm", "local", "debug"):
        raise ValueError(f"--cluster must be slurm, local or debug, got {cluster!r}")
    if backend == "slurm":
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ValueError(sw.SUBMITIT_MISSING) from None
    from snn_icl.config import load_task, resolve_device

    loaded = [load_task(t) for t in tasks]
    for path, cfg in zip(tasks, loaded):  # before the sweep directory is made
        # Slurm: the runs' nodes have the GPUs, not necessarily this machine
        resolve_device(device or cfg.train.device,
                       "--device" if device is not None else f"{path} [train] device",
                       available=backend == "local")
    if backend == "slurm":
        wants_gpu = any((device or t.train.device).startswith("cuda") for t in loaded)
        if wants_gpu and gpus is None and all(t.sweep.gpus is None for t in loaded):
            gpus = 1  # a run on cuda needs a GPU on its node
        res = sw.slurm_resources(loaded, {
            "partition": partition, "time_min": time_min, "cpus": cpus, "gpus": gpus})
        partition, time_min, cpus, gpus = (res[k] for k in ("partition", "time_min", "cpus", "gpus"))
    command = ["snn-icl", "sweep", *map(str, tasks), "--seeds", seeds,
               *[a for s in sets for a in ("--set", s)], "--out", str(out), "--backend", backend]
    options = {"--workers": workers, "--stop-after": stop_after, "--device": device}
    if backend == "slurm":
        options.update({"--partition": partition, "--time-min": time_min, "--cpus": cpus,
                        "--gpus": gpus})
    command += [a for k, v in options.items() if v is not None for a in (k, str(v))]
    threads = cpus if backend == "slurm" else 1
    _claim(out, "sweep")
    grid = sw.prepare(tasks, sets, seeds, out, command, backend, threads=threads,
                      stop_after=stop_after, device=device)
    grid.save()
    bar = tqdm(total=len(grid.specs), desc="runs", unit="run")

    def on_done(result: dict[str, Any]) -> None:
        grid.results[result["dir"]] = result
        grid.save()
        bar.update(1)
        if result["status"] == "failed":
            bar.write(f"failed: {result['dir']}: {result['error']}")

    stopped = False
    try:
        if backend == "local":
            sw.run_local(grid, workers or len(os.sched_getaffinity(0)), on_done)
        else:
            sw.run_submitit(grid, on_done, cluster=cluster or "slurm", partition=partition,
                            time_min=time_min, cpus=cpus, gpus=gpus, workers=workers)
    except sw.SweepStopped:
        stopped = True
    finally:
        bar.close()
        grid.save()
    runs = grid.record()["runs"]
    counts: dict[str, int] = {}
    for r in runs:
        key = "skipped (done)" if r["action"] == "skipped" else r["status"]
        counts[key] = counts.get(key, 0) + 1
    typer.echo(f"{len(runs)} runs in {out}: "
               + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if stopped:
        typer.echo(f"wrote {out / sw.SWEEP_FILE}")
        typer.echo("stopped by SIGTERM: the running runs stopped after their current iteration "
                   "with a checkpoint; run the same command again to resume", err=True)
        raise typer.Exit(STOPPED_BY_SIGTERM)
    for r in grid.failed:
        typer.echo(f"error: {r['dir']}: {r['error'] or 'not run'}", err=True)
    typer.echo(f"wrote {out / sw.SWEEP_FILE}")
    if grid.failed:
        raise typer.Exit(2)


@app.command(short_help="Mean and 95 % CI across seeds of a sweep; learning curves.")
@_clean_errors
def report(
    sweep_dirs: list[Path] = typer.Argument(..., metavar="SWEEP_DIR",
                                            help="Directories of `snn-icl sweep`; a condition's "
                                            "runs in several of them are pooled as its seeds."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    episodes: int = typer.Option(64, "--episodes", "-n", min=1,
                                 help="Held-out episodes per run (the same for every run; in-context "
                                 "regression runs: test tasks, e.g. -n 4096)."),
    seed: int = _seed("Evaluation seed (the same episodes for every run).", 1),
    overwrite: bool = _overwrite(),
) -> None:
    """Evaluate every finished run of one or more sweeps; a table per condition across seeds,
    and a figure.

    For each condition (task x setting): the number of seeds, and the mean and 95 % CI (t) of
    each one-shot measure and of the training env steps (report.md, report.csv, report.json),
    and the learning curves, mean and range across seeds (report_curves.png).
    """
    from snn_icl.storage import files
    from snn_icl.viz import plots
    from snn_icl.experiments import report as rep

    _claim(out, "report", overwrite)
    result = rep.report(sweep_dirs if len(sweep_dirs) > 1 else sweep_dirs[0], episodes, seed)
    files.write_text(out / "report.md", rep.markdown_table(result["rows"])
                     + rep.differences_markdown(result.get("loss_differences", [])
                                                + result.get("differences", [])))
    files.write_text(out / "report.csv", rep.csv_table(result["rows"]))
    files.write_json(out / "report.json", {**result, "versions": files.versions()})
    plots.save(plots.plot_sweep_curves(result["curves"]), out / "report_curves.png")
    written = "report_curves.png"
    if result.get("in_context"):
        from snn_icl.viz.icl import plot_in_context

        plots.save(plot_in_context(result["in_context"], result["rows"],
                                   result["runs"]), out / "report_icl.png")
        written += ", report_icl.png"
    typer.echo(rep.markdown_table(result["rows"]))
    for skipped in result["skipped"]:
        typer.echo(f"not evaluated: {skipped}", err=True)
    typer.echo(f"wrote {out}/report.md, report.csv, report.json, {written}")


def main(argv: list[str] | None = None) -> None:
    """The ``snn-icl`` console command (``argv``: its arguments, default ``sys.argv[1:]``): usage
    errors (a bad flag or value) end like every other user error, with one line naming it and exit
    code 2. It always ends in ``SystemExit``."""
    # typer ships its own click; its exception types are only reachable here
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    from snn_icl.train.stop_signal import dump_stacks_on_sigusr1

    dump_stacks_on_sigusr1()  # kill -USR1 PID: where a long command is, without stopping it

    try:
        rv = app(args=argv, prog_name="snn-icl", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(2)
    except NoArgsIsHelpError as err:
        typer.echo(err.format_message())
        sys.exit(2)
    except ClickException as err:
        command = getattr(getattr(err, "ctx", None), "command_path", "snn-icl")
        message = " ".join(err.format_message().split())
        typer.echo(f"error: {command}: {message}", err=True)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
