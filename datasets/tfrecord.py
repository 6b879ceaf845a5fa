"""TFRecord files of ``tf.train.Example``s holding serialized tensors, read and written without TensorFlow.

A TFRecord file is a sequence of records, each::

    uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2^32). Both checksums are
verified (the ``crc32c`` package computes them); a record cut short or a checksum that does not
match is one line naming the file and the record. ``tf.train.Example`` (``features.feature``: a
map from names to bytes, float or int64 lists) is parsed by protobuf from a descriptor built here,
the same wire format as TensorFlow's ``example.proto``; a tensor that ``tf.io.serialize_tensor``
wrote is a ``TensorProto``, parsed with the protobufs the tensorboard package ships.
"""
from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from utils.errors import UserError

MASK_DELTA = 0xA282EAD8
HEADER = struct.Struct("<QI")
FOOTER = struct.Struct("<I")


def masked_crc(data: bytes) -> int:
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def _broken(path: Path, number: int, what: str) -> UserError:
    return UserError(f"{path}: record {number} {what}; the file is truncated or damaged: copy it again from the "
                     "competition's data")


def _header(handle, path: Path, number: int) -> int | None:
    """The length of the next record (None at the end of the file), its header checked."""
    head = handle.read(HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        raise _broken(path, number, f"has a header of {len(head)} of {HEADER.size} bytes")
    length, crc = HEADER.unpack(head)
    if masked_crc(head[:8]) != crc:
        raise _broken(path, number, "has a length whose checksum does not match")
    return length


def records(path: str | Path) -> Iterator[bytes]:
    """The data of every record of ``path``, each checksum verified."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            number = 0
            while (length := _header(handle, path, number)) is not None:
                data, footer = handle.read(length), handle.read(FOOTER.size)
                if len(data) < length or len(footer) < FOOTER.size:
                    raise _broken(path, number, f"is cut short ({len(data)} of {length} bytes of data)")
                if masked_crc(data) != FOOTER.unpack(footer)[0]:
                    raise _broken(path, number, "has data whose checksum does not match")
                yield data
                number += 1
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None


def count_records(path: str | Path) -> int:
    """The number of records of ``path``, its framing checked (headers and sizes) without reading the data."""
    path = Path(path)
    try:
        size, number = path.stat().st_size, 0
        with open(path, "rb") as handle:
            while (length := _header(handle, path, number)) is not None:
                end = handle.tell() + length + FOOTER.size
                if end > size:
                    raise _broken(path, number, f"is cut short ({size - handle.tell()} of {length + FOOTER.size} "
                                  "bytes after its header)")
                handle.seek(end)
                number += 1
        return number
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None


def write_records(path: str | Path, items: Iterable[bytes]) -> Path:
    """A TFRecord file of ``items`` (atomically), framed by TensorBoard's record writer (the one
    ``utils.hparams_events`` writes events with)."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    from utils.fileio import atomic_write

    def write(handle) -> None:
        writer = RecordWriter(handle)
        for item in items:
            writer.write(item)

    return atomic_write(path, write)


# -- tf.train.Example -----------------------------------------------------------------------------------------
@functools.cache
def example_class():
    """The message class of ``tf.train.Example``, from a descriptor of TensorFlow's ``example.proto``
    and ``feature.proto`` (same field numbers and types, so the same bytes)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="hp_example.proto", package="hp_example", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str], oneof: str | None = None):
        found = file.message_type.add(name=name)
        if oneof:
            found.oneof_decl.add(name=oneof)
        for field_name, number, label, kind, type_name in fields:
            added = found.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                added.type_name = type_name
            if oneof:
                added.oneof_index = 0
        return found

    repeated, optional = proto.LABEL_REPEATED, proto.LABEL_OPTIONAL
    message("BytesList", ("value", 1, repeated, proto.TYPE_BYTES, ""))
    message("FloatList", ("value", 1, repeated, proto.TYPE_FLOAT, ""))
    message("Int64List", ("value", 1, repeated, proto.TYPE_INT64, ""))
    message("Feature", ("bytes_list", 1, optional, proto.TYPE_MESSAGE, ".hp_example.BytesList"),
            ("float_list", 2, optional, proto.TYPE_MESSAGE, ".hp_example.FloatList"),
            ("int64_list", 3, optional, proto.TYPE_MESSAGE, ".hp_example.Int64List"), oneof="kind")
    features = message("Features", ("feature", 1, repeated, proto.TYPE_MESSAGE, ".hp_example.Features.FeatureEntry"))
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=optional, type=proto.TYPE_STRING)
    entry.field.add(name="value", number=2, label=optional, type=proto.TYPE_MESSAGE, type_name=".hp_example.Feature")
    message("Example", ("features", 1, optional, proto.TYPE_MESSAGE, ".hp_example.Features"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("hp_example.Example"))


def bytes_features(record: bytes) -> dict[str, bytes]:
    """The single-value bytes features of a serialized ``tf.train.Example``, by name."""
    example = example_class().FromString(record)
    return {name: feature.bytes_list.value[0] for name, feature in example.features.feature.items()
            if feature.WhichOneof("kind") == "bytes_list" and len(feature.bytes_list.value) == 1}


def example_bytes(features: dict[str, bytes]) -> bytes:
    """A serialized ``tf.train.Example`` of single-value bytes features."""
    example = example_class()()
    for name, value in features.items():
        example.features.feature[name].bytes_list.value.append(value)
    return example.SerializeToString()


# -- TensorProto (tf.io.serialize_tensor) --------------------------------------------------------------------
# TensorFlow's DataType codes (types.proto) and their numpy types and value fields.
DTYPES = {1: (np.dtype("<f4"), "float_val"), 2: (np.dtype("<f8"), "double_val"), 3: (np.dtype("<i4"), "int_val"),
          4: (np.dtype("u1"), "int_val"), 9: (np.dtype("<i8"), "int64_val")}
CODES = {dtype: code for code, (dtype, _) in DTYPES.items()}


def tensor_array(data: bytes) -> np.ndarray:
    """The array of a serialized ``TensorProto``: its ``tensor_content``, else its typed values (a
    shorter list repeats its last value, as TensorFlow fills it)."""
    from tensorboard.compat.proto.tensor_pb2 import TensorProto

    proto = TensorProto.FromString(data)
    if proto.dtype not in DTYPES:
        raise ValueError(f"tensor of DataType {proto.dtype}, which this reader does not decode "
                         f"({', '.join(str(dtype) for dtype, _ in DTYPES.values())} only)")
    dtype, field_name = DTYPES[proto.dtype]
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    values = np.asarray(getattr(proto, field_name), dtype=dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if len(values) < count:
        values = np.concatenate([values, np.full(count - len(values), values[-1] if len(values) else 0, dtype)])
    return values[:count].reshape(shape)


def tensor_bytes(array: np.ndarray) -> bytes:
    """A serialized ``TensorProto`` of ``array``, as ``tf.io.serialize_tensor`` writes it (tensor_content)."""
    from tensorboard.compat.proto.tensor_pb2 import TensorProto

    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    proto = TensorProto(dtype=CODES[np.dtype(dtype)], tensor_content=np.ascontiguousarray(array, dtype=dtype).tobytes())
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    return proto.SerializeToString()
