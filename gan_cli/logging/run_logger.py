"""Everything a run logs: TensorBoard events under <run>/tb and <run>/metrics.jsonl.

One SummaryWriter per run. Scalars are plain `add_scalar`-style values (no `add_scalars`,
which would make a TensorBoard run per key); the first write of a tag carries its metadata:
its help text, and the scalar data class, without which TensorBoard's Rust data server (what
`tensorboard --logdir` uses when tensorboard-data-server is installed) drops the metadata of a
`simple_value`. Hyperparameters go through the HParams plugin into the same run, so the jobs
of a sweep line up in one table.

A run that starts at step N (a resume, or a restart after a crash) continues the history
instead of repeating it: metrics.jsonl keeps only its rows up to step N, and the writer's
`purge_step` tells TensorBoard to drop every older event past step N.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.summary_pb2 import DATA_CLASS_SCALAR, Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2 as hp
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
from tensorboard.plugins.scalar import metadata as scalar_metadata
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import scalar as scalar_summary

from gan_cli.logging.tags import describe


class RunLogger:
    def __init__(self, run_dir: Path, help_text: dict[str, str] | None = None, start_step: int = 0):
        self.continues = any((run_dir / "tb").glob("events.out.tfevents.*"))  # an earlier attempt logged here
        self.writer = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=start_step + 1)
        keep_rows_up_to(run_dir / "metrics.jsonl", start_step)
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.help_text = dict(help_text or {})
        self._described: set[str] = set()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        events = self.writer._get_file_writer()
        for tag, value in values.items():
            summary = scalar_summary(tag, value)
            if tag not in self._described:  # readers keep a tag's first metadata
                summary.value[0].metadata.CopyFrom(self._scalar_metadata(tag))
                self._described.add(tag)
            events.add_summary(summary, step, now)
        strict = {k: v if math.isfinite(v) else None for k, v in values.items()}  # JSON has no NaN / Infinity
        self.jsonl.write(json.dumps({"step": step, "time": round(now, 3), **strict}, allow_nan=False) + "\n")
        self.jsonl.flush()

    def _scalar_metadata(self, tag: str) -> SummaryMetadata:
        metadata = scalar_metadata.create_summary_metadata(display_name=tag, description=describe(self.help_text, tag))
        metadata.data_class = DATA_CLASS_SCALAR  # else the Rust data server drops the rest for a simple_value
        return metadata

    def image(self, tag: str, image: Tensor, step: int) -> None:
        """`image`: (3, H, W) float in [0, 1] or uint8."""
        self.writer.add_image(tag, image, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)

    def hparams(self, params: dict[str, Any], metric_tags: list[str]) -> None:
        """Write the HParams plugin's summaries into this run (not a sub-run).

        TensorBoard orders the table's columns by (not `differs`, name), whatever order they are
        written in, and its HParams dashboard shows the first five: the columns named in
        `params.lead` (see gan_cli.engine.report.HParams) are marked `differs` so that they come
        first. They are written in the order shown."""
        lead = set(getattr(params, "lead", ()))
        start, infos = SessionStartInfo(), []
        for name in sorted(params, key=lambda k: (k not in lead, k)):
            value, slot = params[name], start.hparams[name]
            if isinstance(value, bool):
                slot.bool_value, kind = value, hp.DATA_TYPE_BOOL
            elif isinstance(value, (int, float)):
                slot.number_value, kind = value, hp.DATA_TYPE_FLOAT64
            else:
                slot.string_value, kind = str(value), hp.DATA_TYPE_STRING
            infos.append(hp.HParamInfo(name=name, type=kind, differs=name in lead))
        metrics = [hp.MetricInfo(name=hp.MetricName(tag=tag), description=describe(self.help_text, tag))
                   for tag in metric_tags]
        experiment = hp.Experiment(hparam_infos=infos, metric_infos=metrics)
        end = SessionEndInfo(status=hp.STATUS_SUCCESS)  # as torch's hparams() writes it
        for tag, data in ((hparams_metadata.EXPERIMENT_TAG, HParamsPluginData(experiment=experiment)),
                          (hparams_metadata.SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start)),
                          (hparams_metadata.SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=end))):
            metadata = hparams_metadata.create_summary_metadata(data)
            self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, metadata=metadata)]))

    def flush(self) -> None:
        self.writer.flush()
        self.jsonl.flush()

    def close(self) -> None:
        self.writer.close()
        self.jsonl.close()


def keep_rows_up_to(path: Path, step: int) -> None:
    """Drop the rows of `path` past `step` (and a row torn by a crash), atomically."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


class NullLogger:
    """What processes other than rank 0 log: nothing."""

    continues = False

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None
