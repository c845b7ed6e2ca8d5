"""Replay one study run step by step: where does its loss jump, and what would have stopped it?

    python tools/spike.py ResNeSt-14-1s1x40d 1 --until 5 --branch 3 --out runs/spike

1. Replays the run of chapter 6's study (``cpu`` profile) through the queue's own code path, logging
   every step's loss, gradient norm and rate, and checks its epochs against the stored record (a
   replay on the same machine and thread count is expected to match it exactly).
2. From the checkpoint after epoch ``--branch``, trains the next epochs again with one change each
   (``--variants``): float32 instead of bfloat16, or gradient clipping.

Writes <out>/steps.json (every variant's steps) and prints, per variant, each epoch's mean loss and
the largest steps. CPU-heavy: pause the background queue first.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from course_lib.engine.records import precision_of
from course_lib.engine.runner import Numerics, _parts, build_model, run
from course_lib.engine.train import read_checkpoint, train
from course_lib.study.specs import find, protocol, results_dir

VARIANTS = {"bf16": {}, "fp32": {"precision": "fp32", "channels_last": False},
            "clip1": {"grad_clip": 1.0}, "clip2": {"grad_clip": 2.0}, "clip5": {"grad_clip": 5.0}}


class Stop(Exception):
    pass


class StepLog:
    """Global hooks: the loss of every cross-entropy call in training, and the gradient norm and
    rate before every optimizer step. With ``probe=(step, model)``, that step's batch is kept and,
    before the optimizer takes it, its gradient is computed once more in bfloat16 and in float32."""

    def __init__(self, probe: tuple | None = None):
        self.rows: list[dict] = []
        self.probe, self.probed = probe, None
        self._loss = self._batch = None
        self.handles = [torch.nn.modules.module.register_module_forward_hook(self._on_forward),
                        torch.nn.modules.module.register_module_forward_pre_hook(self._on_input),
                        register_optimizer_step_pre_hook(self._on_step)]

    def _on_input(self, module, args):
        if self.probe and module is self.probe[1] and torch.is_grad_enabled():
            self._batch = {"x": args[0].detach().clone(), "rng": torch.get_rng_state()}

    def _on_forward(self, module, args, out):
        if isinstance(module, torch.nn.CrossEntropyLoss) and torch.is_grad_enabled():
            self._loss = float(out.detach())
            if self._batch is not None:
                self._batch["y"] = args[1].detach().clone()

    def _on_step(self, opt, args, kwargs):
        grads = [p.grad.detach().float().norm() for g in opt.param_groups for p in g["params"] if p.grad is not None]
        self.rows.append({"step": len(self.rows) + 1, "loss": self._loss, "lr": opt.param_groups[0]["lr"],
                          "grad_norm": float(torch.stack(grads).norm())})
        if self.probe and len(self.rows) == self.probe[0]:
            self.probed = {"as run": self.rows[-1]["grad_norm"], **regrad(self.probe[1], self._batch)}
            raise Stop

    def close(self):
        for h in self.handles:
            h.remove()


def regrad(model, batch: dict) -> dict:
    """The batch's gradient norm recomputed from the same weights and dropout draws, in bf16 and fp32,
    and the five parameters with the largest bf16 gradient (name: bf16 norm / fp32 norm)."""
    import copy
    out, per = {}, {}
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    for precision in ("bf16", "fp32"):
        net = copy.deepcopy(model)
        torch.set_rng_state(batch["rng"])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = net(batch["x"])
        loss = loss_fn(logits.float(), batch["y"])
        loss.backward()
        per[precision] = {n: float(p.grad.float().norm()) for n, p in net.named_parameters() if p.grad is not None}
        out[precision] = {"loss": float(loss), "grad_norm": float(torch.stack(
            [torch.tensor(v) for v in per[precision].values()]).norm())}
    top = sorted(per["bf16"], key=lambda n: -per["bf16"][n])[:5]
    out["largest"] = {n: f"{per['bf16'][n]:.2f} / {per['fp32'][n]:.2f}" for n in top}
    return out


def study_spec(label: str, seed: int, group: str):
    for s in protocol("06", "cpu"):
        if s.group == group and s.label == label and s.seed == seed:
            return s
    raise SystemExit(f"no run {label} seed {seed} in group {group!r} of chapter 6's cpu protocol")


def replay(spec, out: Path, until: int, steps_per_epoch: list, epochs: list) -> list[dict]:
    """The run itself, up to epoch ``until``; keeps a copy of every epoch's checkpoint."""
    log = StepLog()

    def on_epoch(epoch, entry, history):
        ckpt = max((out / "runs").glob("*.pt"), key=lambda p: p.stat().st_mtime)   # the run's, just written
        shutil.copy(ckpt, out / f"epoch{epoch}.pt")
        steps_per_epoch.append(len(log.rows))
        epochs.append({"epoch": epoch, "train_loss": entry["train_loss"], "val_acc": entry["val_acc"]})
        print(f"  replay epoch {epoch}: train loss {entry['train_loss']:.4f}, val acc {entry['val_acc']:.4f}",
              flush=True)
        if epoch >= until:
            raise Stop
    try:
        run(spec.model, spec.recipe, data=spec.data(), numerics=Numerics(**spec.numerics()), seed=spec.seed,
            model_overrides=spec.model_overrides or None, results_dir=out / "results", runs_dir=out / "runs",
            force=True, progress=False, callback=on_epoch, raise_on_divergence=False, **spec.recipe_fields)
    except Stop:
        pass
    finally:
        log.close()
    return log.rows


def branch(spec, out: Path, start: int, until: int, change: dict, probe_step: int | None = None,
           epochs: list | None = None):
    """Epochs start+1..until again from the checkpoint after epoch ``start``, with ``change`` applied.
    With ``probe_step``, stops at that step of the branch and returns its gradient compared (``regrad``)."""
    fields = {**spec.recipe_fields, **{k: v for k, v in change.items() if k not in Numerics.fields()}}
    numerics = {**spec.numerics(), **{k: v for k, v in change.items() if k in Numerics.fields()}}
    recipe, data, num = _parts(spec.recipe, spec.data(), Numerics(**numerics), fields)
    blob = read_checkpoint(out / f"epoch{start}.pt")
    if blob is None:
        raise SystemExit(f"no checkpoint after epoch {start} in {out}: replay first")
    blob["key"] = None                                   # the same state, under another configuration
    path = out / "branch.pt"
    torch.save(blob, path)
    model = build_model(spec.model, data.spec["num_classes"], recipe.drop_rate, **spec.model_overrides)
    log = StepLog((probe_step, model) if probe_step else None)

    def on_epoch(epoch, entry, history):
        if epochs is not None:
            epochs.append({"epoch": epoch, "train_loss": entry["train_loss"], "val_acc": entry["val_acc"]})
        print(f"  {change or 'as run'} epoch {epoch}: train loss {entry['train_loss']:.4f}, "
              f"val acc {entry['val_acc']:.4f}", flush=True)
        if epoch >= until:
            raise Stop
    try:
        train(model, data.load(), recipe, settings=num.resolve(), seed=spec.seed, checkpoint=path,
              mean=data.spec["mean"], std=data.spec["std"], image_size=data.image_size, progress=False,
              callback=on_epoch)
    except Stop:
        pass
    finally:
        log.close()
        path.unlink(missing_ok=True)
    return log.probed if probe_step else log.rows


def digest(out: Path) -> dict:
    """The facts of a replay in a small file: the largest step, each variant's epochs, how often a clip binds."""
    d = json.loads((out / "steps.json").read_text())
    n, rows = d["steps_per_epoch"], d["variants"]["bf16 (as run)"]
    top = max(rows, key=lambda r: r["grad_norm"])
    e = (top["step"] - 1) // n
    norms = [r["grad_norm"] for r in rows[e * n:(e + 1) * n]]
    probe = out / f"probe-step{top['step'] - d['branch'] * n}.json"
    def epochs(name):
        part = d["variants"][name]
        stats = [part[i:i + n] for i in range(0, len(part), n)]
        return [{**ep, **norm_stats(st)} for ep, st in zip(d["epochs"][name], stats)]
    return {"command": f"python tools/spike.py {d['label']} {d['seed']} --until {len(d['epochs']['bf16 (as run)'])} "
                       f"--branch {d['branch']} --variants {','.join(v for v in d['variants'] if v in VARIANTS)}",
            "label": d["label"], "seed": d["seed"], "steps_per_epoch": n, "replay_identical": d.get("identical"),
            "largest_step": {"step": top["step"], "epoch": e + 1, "grad_norm": top["grad_norm"], "loss": top["loss"],
                             "lr": top["lr"], "next_loss": rows[top["step"]]["loss"] if top["step"] < len(rows) else None,
                             "epoch_median_grad_norm": statistics.median(norms)},
            "recomputed": json.loads(probe.read_text()) if probe.exists() else None,
            "clip_binds_as_run": {str(c): [sum(r["grad_norm"] > c for r in rows[i:i + n]) for i in range(0, len(rows), n)]
                                  for c in (1.0, 2.0, 5.0)},
            "branch": d["branch"],
            "epochs": {name: epochs(name) for name in d["variants"]},
            "note": "the gradient norms of a clipped branch are logged after clipping (at most the clip)"}


def norm_stats(steps: list[dict]) -> dict:
    """The largest and the median gradient norm of some steps (an epoch's)."""
    norms = [r["grad_norm"] for r in steps]
    return {"max_grad_norm": max(norms), "median_grad_norm": statistics.median(norms)}


def summary(name: str, rows: list[dict], first_step: int, per_epoch: int) -> str:
    lines = [f"{name}:"]
    for e in range(0, len(rows), per_epoch):
        part = [r for r in rows[e:e + per_epoch] if r["loss"] is not None]
        if part:
            st = norm_stats(part)
            lines.append(f"  epoch {(first_step + e) // per_epoch + 1}: mean loss "
                         f"{sum(r['loss'] for r in part) / len(part):.3f}, max loss {max(r['loss'] for r in part):.2f}, "
                         f"median grad norm {st['median_grad_norm']:.2f}, max grad norm {st['max_grad_norm']:.2f}")
    worst = sorted((r for r in rows if r["loss"] is not None and math.isfinite(r["loss"])),
                   key=lambda r: -r["loss"])[:5]
    lines.append("  largest losses: " + ", ".join(f"step {first_step + r['step']} ({r['loss']:.2f}, "
                                                  f"grad {r['grad_norm']:.1f})" for r in worst))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("label")
    ap.add_argument("seed", type=int)
    ap.add_argument("--until", type=int, default=5, help="the last epoch to train (default 5)")
    ap.add_argument("--branch", type=int, default=3, help="branch from the checkpoint after this epoch")
    ap.add_argument("--variants", default="fp32,clip1", help=f"changes to try, of {sorted(VARIANTS)}")
    ap.add_argument("--group", default="unclipped", help="the protocol group of the run (default unclipped)")
    ap.add_argument("--out", type=Path, default=Path("runs/spike"))
    ap.add_argument("--no-replay", action="store_true", help="branch from the checkpoints an earlier replay kept")
    ap.add_argument("--probe-step", type=int, help="after a replay: recompute the gradient of this step of the "
                    "branch (counted from --branch) in bf16 and fp32, from the same weights, batch and dropout")
    args = ap.parse_args(argv)
    spec = study_spec(args.label, args.seed, args.group)
    out = args.out / f"{args.label}_seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    if args.probe_step:
        got = branch(spec, out, args.branch, args.until, {}, args.probe_step)
        print(json.dumps(got, indent=1))
        (out / f"probe-step{args.probe_step}.json").write_text(json.dumps(got, indent=1))
        return 0
    stored = find(spec, results_dir("cpu"))
    if stored is not None and precision_of(stored) != spec.precision:
        raise SystemExit(f"the stored record of {args.label} seed {args.seed} trained in "
                         f"{stored['settings']['precision']}, not {spec.precision} (a float32 stand-in): "
                         f"this tool replays bfloat16 study runs")
    per_epoch: list = []
    saved = json.loads((out / "steps.json").read_text()) if args.no_replay else {}
    epochs: dict = dict(saved.get("epochs", {}))
    if args.no_replay:
        rows = dict(saved["variants"])
        steps = saved["steps_per_epoch"]
    else:
        epochs["bf16 (as run)"] = []
        rows = {"bf16 (as run)": replay(spec, out, args.until, per_epoch, epochs["bf16 (as run)"])}
        steps = per_epoch[0]
    if stored and not args.no_replay:
        mine = [e["train_loss"] for e in epochs["bf16 (as run)"]]
        theirs = [h["train_loss"] for h in (stored.get("history") or [])[:len(mine)]]
        saved["identical"] = mine == theirs
        print(f"replay against the record: {'identical' if mine == theirs else 'DIFFERENT'} "
              f"training losses over {len(mine)} epochs ({mine} vs {theirs})")
    for v in filter(None, args.variants.split(",")):
        if v not in VARIANTS:
            raise SystemExit(f"--variants: unknown {v!r}; choose from {sorted(VARIANTS)}")
        epochs[v] = []
        rows[v] = branch(spec, out, args.branch, args.until, VARIANTS[v], epochs=epochs[v])
    (out / "steps.json").write_text(json.dumps({"label": args.label, "seed": args.seed, "branch": args.branch,
                                                "steps_per_epoch": steps, "identical": saved.get("identical"),
                                                "variants": rows, "epochs": epochs}))
    (out / "summary.json").write_text(json.dumps(digest(out), indent=1))
    print(summary("bf16 (as run)", rows["bf16 (as run)"], 0, steps))
    for v, r in rows.items():
        if v != "bf16 (as run)":
            print(summary(f"{v} from epoch {args.branch}", r, args.branch * steps, steps))
    print(f"steps: {out / 'steps.json'}; summary: {out / 'summary.json'}; records: {out / 'results'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
