"""Reads a TensorBoard folder with TensorBoard's own EventAccumulator and prints what it
found as JSON, for tests/tensorboard_test.cpp: scalars, images (with the size the PNG
itself states), histograms, text, and each tag's description.

usage: read_tensorboard.py DIR
"""
import json
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator as ea


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return list(struct.unpack(">II", data[16:24]))


def main():
    acc = ea.EventAccumulator(sys.argv[1], size_guidance={k: 0 for k in ea.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "images": {}, "histograms": {}, "texts": {}, "descriptions": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    for tag in tags["images"]:
        out["images"][tag] = [
            {"step": e.step, "width": e.width, "height": e.height, "png": png_size(e.encoded_image_string)}
            for e in acc.Images(tag)
        ]
    for tag in tags["histograms"]:
        out["histograms"][tag] = [
            {"step": e.step, "num": e.histogram_value.num, "min": e.histogram_value.min,
             "max": e.histogram_value.max, "sum": e.histogram_value.sum,
             "bucket_total": sum(e.histogram_value.bucket), "buckets": len(e.histogram_value.bucket)}
            for e in acc.Histograms(tag)
        ]
    for tag in tags["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "text":
            out["texts"][tag] = [[e.step, e.tensor_proto.string_val[0].decode()] for e in acc.Tensors(tag)]
    for tag, metadata in acc.summary_metadata.items():
        if metadata.summary_description:
            out["descriptions"][tag] = metadata.summary_description
    print(json.dumps(out))


if __name__ == "__main__":
    main()
