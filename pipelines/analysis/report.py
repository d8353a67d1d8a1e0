"""A self-contained HTML report of one run (or a comparison of several): the
figures of pipelines.analysis.figures as PNG files next to `report.html`, which refers to
nothing else: inline CSS, no JavaScript, no external URLs.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from pipelines.analysis import figures
from pipelines.analysis.captions import (
    best_so_far_caption,
    importance_caption,
    learning_curves_caption,
    loss_diagnosis_caption,
    lr_schedule_caption,
    metric_vs_params_caption,
    parallel_coordinates_caption,
    pareto_front_caption,
)
from pipelines.analysis.confirmation import verdict
from pipelines.analysis.curves import best_so_far, compare_runs
from pipelines.analysis.formatting import TABLE_DIGITS, format_value, table_number
from pipelines.analysis.lr_diagnosis import (
    advice,
    has_diagnosis,
    label_counts,
    label_table,
    rule_summary,
)
from pipelines.analysis.objectives import constraint_names, objective_columns, objective_names
from pipelines.analysis.pareto import pareto_front
from pipelines.analysis.ranking import (
    feasible,
    leaderboard,
    recorded,
    stage_table,
    stop_reason_summary,
    stop_reasons,
)
from pipelines.analysis.runs import Run, best_config, built_in_trainer, concat_runs
from pipelines.analysis.space_inference import inferred_space_note
from pipelines.errors import UsageError
from pipelines.records.storage import resolve
from pipelines.records.tables import CONFIG_PREFIX

__all__ = ["REPORT_NAME", "write_report"]

REPORT_NAME = "report.html"
LEADERBOARD_ROWS = 10
MISSING = "–"  # a table cell without a value

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fff; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem;
     margin-top: 2.2rem; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e3e3e3; text-align: right;
         white-space: nowrap; }
thead th { background: #f4f4f4; }
th:first-child, td:first-child, table.kv th { text-align: left; }
.wide { overflow-x: auto; }
figure { margin: 1.8rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #555; max-width: 85ch; margin-top: 0.3rem; }
.note { color: #666; font-size: 0.9rem; }
ul.advice { font-weight: 600; }
h3 { font-size: 1.05rem; margin-bottom: 0.2rem; }
"""


def write_report(runs: list[Run], out_dir: str | Path,
                 importances: Mapping[str, pd.Series | None] | None = None,
                 final: dict | None = None,
                 confirmation: pd.DataFrame | None = None) -> Path:
    """Write the figures of `runs[0]` (and best-so-far curves of every run) as PNGs
    into `out_dir`, and `report.html` showing them; returns the HTML's path.
    `importances`: {evaluator: pipelines.analysis.anova(...)}; `final`: the
    test score of the chosen configuration ({"test_acc": ..., "config": {...}});
    `confirmation`: the run's retrains of its top configurations, as
    pipelines.analysis.confirmation.summarise gives them."""
    if not runs:
        raise ValueError("write_report needs at least one run")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = runs[0]
    sections = [
        _header(run),
        _final_section(final) if final else "",
        _comparison_section(runs) if len(runs) > 1 else "",
        _stages_section(run),
        _leaderboard_section(run),
        _confirmation_section(confirmation, run) if confirmation is not None else "",
        _pareto_section(run) if len(run.objectives) > 1 else "",
        _best_config_section(run),
        _importance_section(importances, run) if importances else "",
        _diagnosis_section(run, out) if has_diagnosis(run.trials) else "",
        _figures_section(draw_figures(runs, out, importances)),
    ]
    title = f"{run.meta.get('sweep', 'sweep')} / {run.name}"
    path = out / REPORT_NAME
    resolve(str(path)).write_bytes(_page(title, sections).encode("utf-8"))  # temp + rename
    return path


def draw_figures(runs: list[Run], out: Path,
                 importances: Mapping[str, pd.Series | None] | None = None,
                 ) -> list[tuple[str, str]]:
    """Draw every figure into `out`; (file name, caption) pairs in reading order."""
    run = runs[0]
    t, e, meta, metric = run.trials, run.epochs, run.meta, run.metric
    per_epoch = not _epochs_not_recorded(run)  # else curves would be empty
    drawn = [
        (figures.plot_learning_curves(t, e, meta, out / "learning_curves.png"),
         learning_curves_caption(run)),
    ] if per_epoch else []
    drawn += [
        (figures.plot_metric_vs_params(t, meta, out / "metric_vs_params.png"),
         metric_vs_params_caption(metric)),
        (figures.plot_parallel_coordinates(t, meta, out / "parallel_coordinates.png"),
         parallel_coordinates_caption(metric)),
    ]
    if len(run.objectives) > 1:
        drawn.append((figures.plot_pareto_front(t, meta, out / "pareto_front.png"),
                      pareto_front_caption(run)))
    if importances:
        drawn.append((figures.plot_importances(importances, metric, out / "importance.png"),
                      importance_caption(importances, metric)))
    if "lr" in e and bool((e["lr"].astype(float) > 0).any()):  # a trainer may report none
        drawn.append((figures.plot_lr_schedule(t, e, meta, out / "lr_schedule.png"),
                      lr_schedule_caption(run)))
    if per_epoch:
        drawn.append((figures.plot_best_so_far(_best_so_far(runs), metric,
                                               out / "best_so_far.png"),
                      best_so_far_caption(runs)))
    return [(path.name, caption) for path, caption in drawn]


def _epochs_not_recorded(run: Run) -> bool:
    """Whether trials scored but no epoch was recorded: trials brought from a tool
    that wrote no epochs.parquet."""
    return run.epochs.empty and bool(run.trials[f"best_{run.metric}"].notna().any())


# ---- sections ---------------------------------------------------------------------


def _header(run: Run) -> str:
    """The run's facts; those run.json does not give (a run brought from another
    tool) are left out."""
    meta = run.meta
    rows = {
        "sweep": meta.get("sweep"), "run": run.name, "location": str(run.location),
        "metric": f"{run.metric} ({'higher' if run.mode == 'max' else 'lower'} is better)"
        if len(run.objectives) == 1 else None,
        "objectives": objective_names(run.objectives) if len(run.objectives) > 1 else None,
        "constraints": constraint_names(run.constraints) if run.constraints else None,
        "algorithm": meta.get("algorithm"), "scheduler": meta.get("scheduler"),
        "status": meta.get("status"), "trials": len(run.trials),
        "stop reasons": stop_reason_summary(run.trials) or "none yet",
        "epochs trained": None if _epochs_not_recorded(run) else len(run.epochs),
        "budget": None if "budget" not in meta else ", ".join(
            f"{k} {v}" for k, v in (meta["budget"] or {}).items() if k != "fixed"),
        "fixed config": None if "fixed" not in meta else ", ".join(
            f"{k}={v}" for k, v in (meta["fixed"] or {}).items()),
        "started": meta.get("start_time"),
        "ended": None if "end_time" not in meta else meta["end_time"] or "not yet",
        "searched": inferred_space_note(run.space, run.trials) if run.space_inferred else None,
    }
    title = f"Sweep report: {meta.get('sweep', 'sweep')} / {run.name}"
    shown = {k: v for k, v in rows.items() if v is not None}
    return f"<h1>{_esc(title)}</h1>\n{_kv_table(shown)}"


def _final_section(final: dict) -> str:
    scores = {k: v for k, v in final.items() if k != "config"}
    parts = ["<h2>Final test score</h2>",
             '<p class="note">The best configuration, retrained on the training images and '
             "evaluated once on the test split, which the sweep never read.</p>",
             _kv_table(scores)]
    if final.get("config"):
        parts += ["<h3>Configuration</h3>", _kv_table(final["config"])]
    return "\n".join(parts)


def _comparison_section(runs: list[Run]) -> str:
    table = compare_runs(runs).rename(columns={
        "epochs_trained": "epochs trained", f"best_{runs[0].metric}": "best score",
        "epochs_to_best": "epochs to reach it", "wall_s_to_best": "wall time to reach it (s)"})
    return "<h2>Runs compared</h2>\n" + _table(table)


def _stages_section(run: Run) -> str:
    summaries = run.meta.get("stage_results")
    if not summaries:
        return ""
    return "<h2>Stages</h2>\n" + _table(stage_table(summaries, run.metric))


def _leaderboard_section(run: Run) -> str:
    top = leaderboard(run.trials, run.metric, run.mode, n=LEADERBOARD_ROWS)
    if top.empty:
        return "<h2>Leaderboard</h2>\n<p class='note'>No trial has reported yet.</p>"
    broke = len(run.trials) - len(feasible(run.trials))
    heading = f"Leaderboard: top {len(top)} of {len(run.trials)} trials by best {run.metric}"
    note = (f"<p class='note'>{broke} trial(s) broke a constraint "
            f"({_esc(constraint_names(run.constraints))}) and are not ranked.</p>\n"
            if broke else "")
    return f"<h2>{_esc(heading)}</h2>\n{note}{_trials_table(run, top)}"


def _pareto_section(run: Run) -> str:
    front = pareto_front(run)
    if front.empty:
        return ("<h2>Pareto front</h2>\n<p class='note'>No feasible trial has a value of "
                "every objective yet.</p>")
    values = feasible(run.trials)[objective_columns(run.objectives)]
    scored = int(values.notna().all(axis=1).sum())
    heading = f"Pareto front: {len(front)} of {scored} feasible scored trials"
    note = (f"<p class='note'>The trials no other feasible trial beats on every objective "
            f"at once ({_esc(objective_names(run.objectives))}), best "
            f"{_esc(run.metric)} first: each is the best found for what it gives up.</p>")
    return f"<h2>{_esc(heading)}</h2>\n{note}\n{_trials_table(run, front)}"


def _trials_table(run: Run, rows: pd.DataFrame) -> str:
    """Trials as the leaderboard shows them: id, every objective, epochs, stop reason,
    wall time (failures where some trial had one) and the searched config values."""
    searched = [CONFIG_PREFIX + p for p in run.space if CONFIG_PREFIX + p in rows]
    config = searched or [c for c in map(str, rows.columns) if c.startswith(CONFIG_PREFIX)]
    scores = list(dict.fromkeys([f"best_{run.metric}", *objective_columns(run.objectives)]))
    columns = recorded(rows, ("trial_id", *scores, "best_epoch", "epochs", "stop_reason",
                              "wall_s", "failures")) + config
    if "failures" in rows and not rows["failures"].any():  # a column of zeros says nothing
        columns.remove("failures")
    table = rows[columns].copy()
    table["stop_reason"] = stop_reasons(table)
    table = table.rename(columns=lambda c: c.removeprefix(CONFIG_PREFIX)).rename(
        columns={"wall_s": "wall (s)"})
    return _table(table)


def _confirmation_section(summary: pd.DataFrame, run: Run) -> str:
    """The retrains of the top configurations: mean, sd and 95% interval per
    configuration, best mean first, and the verdict."""
    heading = (f"Confirmation: the top {len(summary)} configuration(s) retrained with fresh "
               f"seeds, {run.metric} per configuration")
    table = summary.rename(columns=lambda c: str(c).removeprefix(CONFIG_PREFIX)).rename(
        columns={"config_rank": "search rank", "n": "seeds", "ci_low": "95% CI low",
                 "ci_high": "95% CI high"})
    return (f"<h2>{_esc(heading)}</h2>\n<p class='note'>{_esc(verdict(summary, run.mode))}."
            f"</p>\n{_table(table)}")


def _best_config_section(run: Run) -> str:
    try:
        config = best_config(run)
    except UsageError:
        return "<h2>Best configuration</h2>\n<p class='note'>No scored trial yet.</p>"
    best = figures.best_trial_id(run.trials, run.meta)
    row = run.trials[run.trials["trial_id"] == best].iloc[0]
    note = f"Trial {best}: best {run.metric} {table_number(row[f'best_{run.metric}'])}"
    note += "." if pd.isna(row["best_epoch"]) else f" at epoch {row['best_epoch']}."
    if "lr" in config and built_in_trainer(run.trials):
        note += " lr is per 256 examples: the optimizer gets lr × batch_size / 256."
    return (f"<h2>Best configuration</h2>\n<p class='note'>{_esc(note)}</p>\n"
            f"{_kv_table(config)}")


def _importance_section(importances: Mapping[str, pd.Series | None], run: Run) -> str:
    shares = {figures.EVALUATOR_NAMES.get(k, k): v for k, v in importances.items()
              if v is not None and len(v)}
    heading = (f"<h2>Hyperparameter importance for best {_esc(run.metric)} "
               f"(shares sum to 1)</h2>")
    if not shares:
        why = "Too few scored trials" if run.space else "No searched hyperparameters"
        return f"{heading}\n<p class='note'>{why} to estimate importance.</p>"
    table = pd.DataFrame(shares).fillna(0.0)
    table = table.sort_values(table.columns[0], ascending=False).rename_axis("parameter")
    return f"{heading}\n{_table(table.reset_index())}"


def _diagnosis_section(run: Run, out: Path) -> str:
    """What the trials' training-loss curves say of the lr: the rule, the advice (a
    note where no pattern is clear), labels against the lr and the batch size (where
    it varies), and the curves."""
    counts = label_counts(run.trials)
    unjudged = len(run.trials) - sum(counts.values())
    tally = ", ".join(f"{label} {n}" for label, n in counts.items())
    tally += f"; {unjudged} not judged (no or too few step windows)" if unjudged else ""
    parts = ["<h2>Learning-rate diagnosis</h2>",
             f"<p class='note'>{_esc(rule_summary())} Trials: {_esc(tally)}.</p>"]
    sentences = advice(run.trials)
    if sentences:
        parts.append('<ul class="advice">' + "".join(f"<li>{_esc(s)}</li>" for s in sentences)
                     + "</ul>")
    else:
        parts.append("<p class='note'>No clear pattern of labels against the lr, so no "
                     "advice on its domain.</p>")
    unit = " (per 256 examples)" if built_in_trainer(run.trials) else ""
    for key, heading in (("lr", f"Labels by lr{unit}"), ("batch_size", "Labels by batch size")):
        table = label_table(run.trials, key)
        if len(table) > (0 if key == "lr" else 1):  # a batch size that never varied says nothing
            parts += [f"<h3>{_esc(heading)}</h3>", _table(table)]
    if not run.steps.empty:
        path = figures.plot_loss_diagnosis(run.trials, run.steps, run.meta,
                                           out / "loss_diagnosis.png")
        parts.append(_figure(path.name, loss_diagnosis_caption()))
    return "\n".join(parts)


def _figures_section(drawn: list[tuple[str, str]]) -> str:
    return "<h2>Figures</h2>\n" + "\n".join(_figure(name, caption) for name, caption in drawn)


def _figure(name: str, caption: str) -> str:
    return (f'<figure><img src="{_esc(name)}" alt="{_esc(_alt(name))}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _alt(file_name: str) -> str:
    return Path(file_name).stem.replace("_", " ")


# ---- HTML helpers -----------------------------------------------------------------


def _best_so_far(runs: list[Run]) -> pd.DataFrame:
    """One run's best-so-far curve, or every run's, told apart by a `run` column."""
    if len(runs) == 1:
        r = runs[0]
        return best_so_far(r.trials, r.epochs, r.metric, r.mode)
    trials, epochs = concat_runs(runs)
    return best_so_far(trials, epochs, runs[0].metric, runs[0].mode)


def _table(frame: pd.DataFrame) -> str:
    body = frame.to_html(index=False, escape=True, border=0, na_rep=MISSING,
                         float_format=table_number)
    return f'<div class="wide">{body}</div>'


def _kv_table(values: Mapping[str, object]) -> str:
    """A two-column table: each key beside its value."""
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_cell(v))}</td></tr>"
                   for k, v in values.items())
    return f'<div class="wide"><table class="kv">{rows}</table></div>'


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return MISSING
    return format_value(value, TABLE_DIGITS)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, sections: list[str]) -> str:
    body = "\n".join(s for s in sections if s)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body><main>\n{body}\n</main></body>\n</html>\n")
