"""A run folder described for a reader (``cryoscape view-config``): data, settings, epochs, losses, provenance."""

from __future__ import annotations

import os


def _data_lines(data: dict) -> list[str]:
    lines = []
    for key in ("particles", "poses", "ctf", "ind", "datadir"):
        if data.get(key) is not None:
            lines.append(f"  {key}: {data[key]}")
    box, pixel = data.get("box_size"), data.get("pixel_size_angstrom")
    lines.append(
        f"  box {box if box is not None else '?'} px, "
        f"{f'{pixel:.4g} Å/px' if pixel is not None else 'pixel size unknown'}, "
        f"data_std {data.get('data_std')}, invert_data {data.get('invert_data')}"
    )
    return lines


def _settings_lines(values: dict) -> list[str]:
    import yaml

    shown = {k: v for k, v in values.items() if k != "data"}
    data = values.get("data") or {}
    shown["data"] = {
        k: v for k, v in data.items()
        if k not in ("particles", "poses", "ctf", "ind", "datadir", "box_size", "pixel_size_angstrom", "data_std")
    }
    return ["  " + line for line in yaml.safe_dump(shown, sort_keys=False).rstrip().splitlines()]


def _losses(entry: dict) -> str:
    parts = [f"loss {entry['loss']:.6g}"] if "loss" in entry else []
    parts += [f"{k} {entry[k]:.4g}" for k in ("mse", "kl") if k in entry]
    if "seconds" in entry:
        parts.append(f"{entry['seconds']:.1f} s")
    return ", ".join(parts)


def _invocation_line(i: int, record: dict) -> list[str]:
    import shlex

    epochs = [e for e in record.get("epochs") or [] if isinstance(e, dict)]
    done = f"epochs {epochs[0]['epoch']}..{epochs[-1]['epoch']}" if epochs else "no epoch finished"
    seconds = [float(e["seconds"]) for e in epochs if "seconds" in e]
    timing = f", {sum(seconds) / len(seconds):.1f} s/epoch" if seconds else ""
    kind = "resume" if record.get("resumed_from") else "start"
    status = record.get("status", "?")
    if status == "running" and not record.get("end_time"):
        status = "running or killed"
    head = (
        f"  {i}. {kind} {record.get('start_time', '?')} on {record.get('host', '?')} (pid {record.get('pid', '?')}), "
        f"cryoscape {record.get('cryoscape_version', '?')}, torch {record.get('torch_version', '?')}: "
        f"{done}{timing}; {status}"
    )
    command = record.get("command")
    lines = [head]
    if command:
        lines.append(f"     $ {shlex.join(str(c) for c in command)}")
    return lines


def run_summary(run: str | os.PathLike, epoch: int | None = None) -> list[str]:
    """Lines describing the run folder (or weights.N.pt) ``run``: its data, settings (those stored in epoch
    ``epoch``'s checkpoint when given, else config.yaml), epochs done, latest losses and invocations."""
    from cryoscape.errors import InputError
    from cryoscape.runs import find_run
    from cryoscape.training.provenance import read_provenance

    run_dir, found = find_run(run)
    if epoch is None:
        epoch = found
    epochs = run_dir.epochs()
    if epoch is not None:
        epoch = run_dir.resolve_epoch(epoch)  # InputError naming the saved epochs when out of range
    if epoch is not None:
        values = run_dir.load_checkpoint(epoch).get("config")
        if not isinstance(values, dict):
            raise InputError("the checkpoint holds no configuration", path=run_dir.weights_path(epoch))
        source = run_dir.weights_path(epoch).name
    else:
        values = run_dir.load_config_dict()
        source = run_dir.config_path.name
    model = values.get("model") or {}
    zdim = int(model.get("zdim") or 0)
    kind = f"VAE (zdim {zdim})" if zdim else "homogeneous decoder"
    out = [f"run: {run_dir.path.resolve()}", f"kind: {kind}", "data:", *_data_lines(values.get("data") or {})]
    out += [f"settings ({source}):", *_settings_lines(values)]
    if epochs:
        outputs = [e for e in epochs if run_dir.z_path(e).exists() or run_dir.volume_path(e).exists()]
        missing = sorted(set(epochs) - set(outputs))
        line = f"epochs done: {epochs[-1]} (checkpoints: {', '.join(map(str, epochs))})"
        if missing:
            line += f"; outputs missing for {', '.join(map(str, missing))} (a resume recomputes them)"
        out.append(line)
    else:
        out.append("epochs done: 0 (no checkpoint yet)")
    records = read_provenance(run_dir)
    entries = {int(e["epoch"]): e for r in records for e in r.get("epochs") or [] if isinstance(e, dict)}
    shown = epoch if epoch is not None else (max(entries) if entries else None)
    if shown is not None and shown in entries:
        out.append(f"losses of epoch {shown}: {_losses(entries[shown])}")
    elif epochs:
        last = epoch if epoch is not None else epochs[-1]
        loss = run_dir.load_checkpoint(last).get("train_loss")
        out.append(f"loss of epoch {last}: {loss:.6g}" if isinstance(loss, float) else f"losses of epoch {last}: "
                   "not recorded")
    if records:
        out.append(f"invocations ({run_dir.provenance_path.name}):")
        for i, record in enumerate(records, 1):
            out += _invocation_line(i, record)
    else:
        out.append("invocations: no provenance.yaml (run written by an older cryoscape or imported)")
    return out
