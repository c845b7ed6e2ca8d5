"""The experiment chapters' tables: the runs of a chapter with their records, and what they show.

:func:`open_chapter` is a chapter's first cell; :func:`collect` gives one row per run
(None where a record is missing or unfinished); :func:`summary` the mean ± std over
seeds next to the report's numbers; :func:`compare` the differences and whether they
exceed the seed spread; :func:`setting` and :func:`missing_text` say where the figures
come from and what is still to be trained.
"""
from __future__ import annotations

from ..engine import records as res
from ..engine.data import DATASETS
from ..engine.train import loss_exploded
from .queue import load_latency, train
from .specs import Spec, command, find, record_dirs, results_dir, study
from .stats import pooled_std, welch


def open_chapter(chapter: str, profile: str, train_missing: bool = False, results: str = ""):
    """A chapter's first cell: its records folder, the missing runs trained if asked, what it shows.

    Prints the chapter's setting (data, scale, seeds, hardware, command) and returns
    ``(results folder, runs table, latency records)``.
    """
    if not isinstance(train_missing, bool):   # papermill -p TRAIN false passes the string 'false'
        raise ValueError(f"TRAIN must be True or False, got {train_missing!r} (papermill: -p TRAIN False, "
                         "or -y 'TRAIN: false')")
    directory = results_dir(profile, results or None)
    if train_missing:
        train(profile, chapter, directory)
    runs = collect(chapter, profile, directory)
    print(f"Profile '{profile}':")
    print(setting(runs, profile, chapter))
    folders = record_dirs(profile, directory)
    if train_missing or len(folders) > 1:
        print(where_text(folders))
    return directory, runs, load_latency(profile, directory)


def where_text(folders) -> str:
    """Where new records go and where records are read from (the folders of ``record_dirs``)."""
    text = f"- records: new runs are written to {folders[0]}"
    if len(folders) > 1:
        shipped = sum(1 for p in folders[1].glob("*.json") if res.is_record_file(p))
        text += (f"; records are read from there first, then from the {shipped} records that came with "
                 f"course_lib ({folders[1]})")
    return text


def collect(chapter: str, profile: str, directory=None):
    """One row per run of the chapter: spec fields + record fields (None where not finished).

    A record still being written (status 'running') counts as missing, so what a chapter
    shows depends on finished, committed records only. ``exploded`` says why a finished run
    had in fact diverged (records written before the engine stored such runs as 'diverged').
    """
    import pandas as pd
    directory = results_dir(profile, directory)
    rows = []
    for s in study(chapter, profile):
        rec = find(s, directory) or {}
        if rec.get("status") != "finished":
            rec = {}
        hw = rec.get("hardware") or {}
        rows.append({"group": s.group, "label": s.label, "model": s.model, "recipe": s.recipe, "seed": s.seed,
                     "dataset": s.dataset, "images": s.images, "epochs": s.epochs, "init": s.init,
                     "status": rec.get("status", "missing"), "test_acc": rec.get("test_acc"),
                     "val_acc": rec.get("val_acc"), "params": rec.get("params"),
                     "train_images": _train_images(s), "wall_seconds": rec.get("wall_seconds"),
                     "hardware": hardware_text(hw, (rec.get("settings") or {}).get("precision", "float32")), "exploded": _exploded(s, rec)})
    return pd.DataFrame(rows)


def _exploded(spec: Spec, rec: dict) -> str | None:
    """Why a finished run's loss exploded (:func:`~course_lib.engine.train.loss_exploded`), or None."""
    hist = rec.get("history")
    if not hist or not isinstance(hist[-1], dict) or hist[-1].get("train_loss") is None:
        return None
    return loss_exploded(rec["history"], DATASETS[spec.dataset]["num_classes"], {"test_loss": rec.get("test_loss")})


def _train_images(spec: Spec) -> int | None:
    if spec.images is not None:
        return spec.images
    return {"cifar10": 50_000 - (5_000 if spec.val_size is None else spec.val_size), "hotdog": None}[spec.dataset]


def hardware_text(hw: dict, precision: str | None = None) -> str:
    """A record's hardware in a few words: the GPU, or the CPU and its threads (and the precision)."""
    if not hw:
        return ""
    what = hw.get("gpu") or f"{hw.get('cpu') or 'CPU'} ({hw.get('torch_threads')} threads)"
    return f"{what}, {precision}" if precision else what


def missing(chapter: str, profile: str, directory=None) -> list[Spec]:
    directory = results_dir(profile, directory)
    return [s for s in study(chapter, profile) if (find(s, directory) or {}).get("status") != "finished"]


DATASET_NAMES = {"cifar10": "CIFAR-10 (the book's JPEG copy)",
                 "hotdog": "hotdog64 (64x64 Food-101 photos, 1,598 train / 400 test; not D2L's Hotdog)"}
# with internet (the full profile) the hotdog loader finds or downloads D2L's own set
DATASET_NAMES_FULL = {**DATASET_NAMES, "hotdog": "D2L's Hotdog (2,000 train / 800 test photos, resized to 224x224)"}


def setting(rows, profile: str, chapter: str) -> str:
    """Where the figures of ``rows`` (from :func:`collect`) come from: data, images, epochs, seeds, hardware."""
    lines = []
    for (group, dataset, images, epochs, recipe), part in rows.groupby(
            ["group", "dataset", "train_images", "epochs", "recipe"], sort=False, dropna=False):
        done = part[part.status == "finished"]
        imgs = "all" if images != images or images is None else f"{int(images):,}"
        seeds = ", ".join(str(v) for v in sorted(part.seed.unique()))
        names = DATASET_NAMES_FULL if profile == "full" else DATASET_NAMES
        lines.append(f"- {group}: {names[dataset]}, {imgs} training images, {epochs} epochs, "
                     f"'{recipe}' recipe, seeds {seeds}; {len(done)} of {len(part)} runs finished")
    hw = sorted({h for h in rows.hardware if h})
    lines.append(f"- hardware: {'; '.join(hw) if hw else 'no finished run yet'}")
    lines.append(f"- reproduce: {command(profile, chapter)}  (or: make experiments PROFILE={profile})")
    return "\n".join(lines)


def missing_text(rows, profile: str, chapter: str) -> str:
    todo = rows[rows.status != "finished"]
    if todo.empty:
        return f"All {len(rows)} runs of this chapter's '{profile}' profile are finished."
    names = "\n".join(f"  - {label}: seed{'s' if len(p) > 1 else ''} {', '.join(map(str, p.seed))}"
                      for label, p in todo.groupby("label", sort=False))
    return (f"{len(todo)} of {len(rows)} runs of the '{profile}' profile have no finished record yet, "
            f"so no figure is shown for them:\n{names}\nProduce them with:\n  {command(profile, chapter)}")


def summary(rows, latency: dict | None = None, report: dict | None = None, group: str = "table"):
    """One row per model of a group: parameters, latency, accuracy mean ± std over seeds, and the report's."""
    import pandas as pd
    latency, report = latency or {}, report or {}
    out = []
    for label, part in rows[rows.group == group].groupby("label", sort=False):
        done = part[part.status == "finished"]
        acc = done.test_acc.astype(float)
        lat = (latency.get(part.model.iloc[0]) or {}).get("latency") or {}
        params = done.params.iloc[0] if len(done) else (latency.get(part.model.iloc[0]) or {}).get("params")
        rep = report.get(label)
        out.append({
            "model": label,
            "params (M)": None if params is None else round(params / 1e6, 2),
            "ms / image": None if not lat else round(lat["ms_per_image"], 3),
            "img/s": None if not lat else round(lat["img_per_s"]),
            "accuracy %": res.mean_std(acc.mean(), acc.std() if len(acc) > 1 else None) if len(acc) else "-",
            "seeds": len(acc),
            "loss exploded": f"{done.exploded.notna().sum()} of {len(done)}" if len(done) else "-",
            "report params (M)": rep[0] if rep else None,
            "report ms / img/s": f"{rep[1]:.4f} / {rep[2]}" if rep else "-",
            "report accuracy %": f"{rep[3]:.2f}" if rep else "-",
        })
    return pd.DataFrame(out).set_index("model")


def compare(rows, pairs, group: str = "table"):
    """Each pair (a, b): difference of mean test accuracy, pooled seed std, Welch's t-test."""
    import pandas as pd
    done = rows[(rows.group == group) & (rows.status == "finished")]
    out = []
    for a, b in pairs:
        xa = done[done.label == a].test_acc.astype(float).values * 100
        xb = done[done.label == b].test_acc.astype(float).values * 100
        row = {"comparison": f"{a} - {b}", "seeds": f"{len(xa)} / {len(xb)}"}
        if len(xa) < 2 or len(xb) < 2:
            row.update({"difference (pp)": None, "pooled std (pp)": None, "Welch t": None, "p": None,
                        "verdict": "needs >= 2 seeds of each"})
        else:
            w = welch(xa, xb)
            pooled = pooled_std(xa, xb)
            row.update({"difference (pp)": round(w["diff"], 2), "pooled std (pp)": round(pooled, 2),
                        "Welch t": round(w["t"], 2), "p": round(w["p"], 3),
                        "verdict": "larger than the seed spread (p < 0.05)" if w["p"] < 0.05
                        else "within the seed spread"})
        out.append(row)
    return pd.DataFrame(out).set_index("comparison")
