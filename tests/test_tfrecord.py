"""TFRecord files without TensorFlow (datasets/tfrecord.py): the framing and its two CRC32C checks, built
here by hand from the format's definition; tf.train.Example; TensorProto in both of its encodings; a
truncated or damaged file is one line naming it."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from datasets.tfrecord import (
    bytes_features,
    count_records,
    example_bytes,
    records,
    tensor_array,
    tensor_bytes,
    write_records,
)
from utils.errors import UserError


def by_hand(data: bytes) -> bytes:
    """One record as TensorFlow's record writer frames it, from the format's definition."""
    import crc32c

    def masked(chunk: bytes) -> int:
        crc = crc32c.crc32c(chunk)
        return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked(length)) + data + struct.pack("<I", masked(data))


def test_crc32c_is_the_castagnoli_checksum():
    import crc32c

    assert crc32c.crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C


def test_the_writer_frames_records_byte_for_byte_as_tensorflow(tmp_path):
    items = [b"", b"a", b"hyperplanes" * 100]
    path = tmp_path / "by_hand.tfrecord"
    path.write_bytes(b"".join(by_hand(item) for item in items))
    assert list(records(path)) == items and count_records(path) == 3
    written = write_records(tmp_path / "ours.tfrecord", items)
    assert written.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("cut", [5, 14, 20, -2])
def test_a_truncated_file_is_one_line_naming_it(tmp_path, cut):
    whole = by_hand(b"first record") + by_hand(b"second record")
    path = tmp_path / "shard_1.tfrecord"
    path.write_bytes(whole[: len(by_hand(b"first record")) + cut] if cut > 0 else whole[:cut])
    for read in (lambda: list(records(path)), lambda: count_records(path)):
        with pytest.raises(UserError) as found:
            read()
        message = str(found.value)
        assert "\n" not in message and str(path) in message and "record 1" in message and "truncated" in message


def test_damaged_data_fails_its_checksum(tmp_path):
    data = bytearray(by_hand(b"some image bytes"))
    data[15] ^= 0x01
    path = tmp_path / "damaged.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="record 0 has data whose checksum does not match"):
        list(records(path))
    assert count_records(path) == 1  # the framing is intact; the data check needs the data


def test_a_damaged_length_fails_its_checksum(tmp_path):
    data = bytearray(by_hand(b"x" * 40))
    data[0] ^= 0x02
    path = tmp_path / "damaged.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="record 0 has a length whose checksum does not match"):
        count_records(path)


def test_examples_of_serialized_tensors_round_trip():
    image = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) / 7
    record = example_bytes({"inputs": tensor_bytes(image), "output": tensor_bytes(np.int32(7))})
    found = bytes_features(record)
    assert set(found) == {"inputs", "output"}
    np.testing.assert_array_equal(tensor_array(found["inputs"]), image)
    label = tensor_array(found["output"])
    assert label.shape == () and label.dtype == np.int32 and int(label) == 7


def test_a_tensor_proto_of_typed_values_repeats_its_last_one():
    """TensorFlow may store a tensor in its typed fields instead of tensor_content; a shorter list repeats
    its last value to the shape's size."""
    from tensorboard.compat.proto.tensor_pb2 import TensorProto

    proto = TensorProto(dtype=1, float_val=[1.5, 2.5])
    for size in (2, 2):
        proto.tensor_shape.dim.add(size=size)
    np.testing.assert_array_equal(tensor_array(proto.SerializeToString()), [[1.5, 2.5], [2.5, 2.5]])
    scalar = TensorProto(dtype=3, int_val=[4])
    assert int(tensor_array(scalar.SerializeToString())) == 4


def test_the_example_wire_format_is_tensorflow_s():
    """Field numbers of example.proto and feature.proto: Example.features = 1, Features.feature = 1 (a map,
    key 1, value 2), Feature.bytes_list = 1, BytesList.value = 1: the bytes of a one-feature example."""
    value = b"\x01\x02"
    bytes_list = b"\x0a" + bytes([len(value)]) + value  # BytesList.value (1, length-delimited)
    feature = b"\x0a" + bytes([len(bytes_list)]) + bytes_list  # Feature.bytes_list (1)
    entry = b"\x0a\x01k" + b"\x12" + bytes([len(feature)]) + feature  # map entry: key (1), value (2)
    features = b"\x0a" + bytes([len(entry)]) + entry  # Features.feature (1)
    example = b"\x0a" + bytes([len(features)]) + features  # Example.features (1)
    assert example_bytes({"k": value}) == example
    assert bytes_features(example) == {"k": value}
