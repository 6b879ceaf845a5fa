"""TensorBoard's HParams summaries in an events file of their own, written atomically, without TensorFlow.

One events file holds, for one TensorBoard run (a session): the experiment (every hyperparameter
with its discrete domain, every metric with its display name), the session's start info (its
hyperparameter values), its end info (its status) and one scalar per metric. Rewriting the file
replaces it: a second write adds nothing (``SummaryWriter.add_hparams`` instead writes a new
timestamped run each time). The protobufs are TensorBoard's own (``tensorboard.plugins.hparams``,
``tensorboard.compat.proto``) and are imported when a file is written, not when this module is.

The temp file of the atomic write has no ``tfevents`` in its name, so that a TensorBoard reading the
folder at that moment never takes it for an events file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from utils.fileio import atomic_write

# TensorBoard reads every file whose name contains "tfevents"; a letter after the dot sorts this
# one after the training's own files (events.out.tfevents.<seconds>...), which a running
# TensorBoard reads in name order.
EVENTS_FILE = "events.out.tfevents.hparams"
STATUSES = ("unknown", "success", "failure", "running")  # api_pb2.Status, without its prefix


@dataclass(frozen=True)
class HParam:
    """A hyperparameter: its values (numbers or strings, not mixed) make its discrete domain."""

    name: str
    domain: tuple
    description: str = ""


@dataclass(frozen=True)
class Metric:
    """A metric: the scalar ``tag`` of each session's run, shown as ``display_name``."""

    tag: str
    display_name: str
    description: str = ""


@dataclass(frozen=True)
class Experiment:
    hparams: tuple[HParam, ...]
    metrics: tuple[Metric, ...]
    description: str = ""
    created: float | None = None  # seconds since the epoch


@dataclass
class Session:
    """One session: its hyperparameter values, status (:data:`STATUSES`), times and metric values;
    ``group`` names it in the HParams tab (its Trial ID; sessions of one group are aggregated)."""

    hparams: dict[str, float | str]
    group: str = ""  # TensorBoard's default: the session's run
    status: str = "unknown"
    metrics: dict[str, float] = field(default_factory=dict)  # by tag; NaN and infinities are left out
    step: int = 0  # the step of the metrics' scalars (e.g. the epochs trained)
    started: float | None = None
    ended: float | None = None


def _value(value):
    from google.protobuf import struct_pb2

    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    return struct_pb2.Value(number_value=float(value))


def _plugin_summary(tag: str, **data):
    """A Summary whose one value carries ``HParamsPluginData(**data)`` as its metadata, serialized with
    its maps in key order (the same view is then the same bytes in any process)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
    plugin = summary_pb2.SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME,
                                                    content=content.SerializeToString(deterministic=True))
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=tag, metadata=summary_pb2.SummaryMetadata(plugin_data=plugin), tensor=metadata.NULL_TENSOR)])


def experiment_summary(experiment: Experiment):
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata

    infos = []
    for hparam in experiment.hparams:
        numeric = all(not isinstance(value, str) for value in hparam.domain)
        infos.append(api_pb2.HParamInfo(
            name=hparam.name, display_name=hparam.name, description=hparam.description,
            differs=len(hparam.domain) > 1,
            type=api_pb2.DATA_TYPE_FLOAT64 if numeric else api_pb2.DATA_TYPE_STRING,
            domain_discrete=struct_pb2.ListValue(values=[_value(value) for value in hparam.domain])))
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=metric.tag), display_name=metric.display_name,
                                  description=metric.description) for metric in experiment.metrics]
    proto = api_pb2.Experiment(description=experiment.description, hparam_infos=infos, metric_infos=metrics,
                               time_created_secs=experiment.created or 0.0)
    return _plugin_summary(metadata.EXPERIMENT_TAG, experiment=proto)


def session_summaries(session: Session) -> list:
    """The start info, and the end info with the session's status (none when it is unknown)."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=session.started or 0.0, group_name=session.group)
    for name, value in session.hparams.items():
        start.hparams[name].CopyFrom(_value(value))
    found = [_plugin_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start)]
    if session.status != "unknown":
        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(f"STATUS_{session.status.upper()}"),
                                             end_time_secs=session.ended or 0.0)
        found.append(_plugin_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end))
    return found


def events_bytes(experiment: Experiment, session: Session, *, wall_time: float) -> bytes:
    """The events file's content: its version record, the experiment, the session and its metrics,
    each record stamped ``wall_time`` (seconds since the epoch)."""
    import io

    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    # simple_value (float32, about 7 significant digits) is what every TensorBoard loader reads as a
    # scalar; its fast loader (the Rust data server of --load_fast) skips double-precision tensors.
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
              for tag, value in session.metrics.items() if math.isfinite(value)]
    events = [event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2")]
    events += [event_pb2.Event(wall_time=wall_time, step=0, summary=summary)
               for summary in (experiment_summary(experiment), *session_summaries(session))]
    if values:
        events.append(event_pb2.Event(wall_time=wall_time, step=session.step, summary=summary_pb2.Summary(value=values)))
    buffer = io.BytesIO()
    records = RecordWriter(buffer)
    for event in events:
        records.write(event.SerializeToString(deterministic=True))
    return buffer.getvalue()


def write_events(folder: str | os.PathLike, experiment: Experiment, session: Session) -> Path:
    """``<folder>/events.out.tfevents.hparams``, replaced atomically (see the module docstring); a file
    that already holds the same content is left as it is (its records are stamped with the session's
    times, not the time of writing, so that an unchanged view is the same bytes)."""
    if session.status not in STATUSES:
        raise ValueError(f"session status {session.status!r}: one of {', '.join(STATUSES)}")
    stamp = session.ended or session.started or experiment.created or 0.0
    content = events_bytes(experiment, session, wall_time=stamp)
    path = Path(folder) / EVENTS_FILE
    try:
        if path.read_bytes() == content:
            return path
    except OSError:
        pass  # not there yet (or unreadable): written below
    return atomic_write(path, lambda handle: handle.write(content), temp_prefix="hparams")
